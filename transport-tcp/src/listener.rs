//! Accepting connections: an accept loop that runs each handshake on its own task, at most
//! [`ListenerConfig::handshakes_max`] at once, each bounded by the handshake timeout.
//!
//! While all handshake slots are taken the loop stops accepting, and new connections wait in
//! the OS's listen backlog; each slot frees within [`HandshakeConfig::handshake_timeout`], so a
//! peer that connects and says nothing, or a flood of them, delays a good peer by at most
//! `(connections ahead of it / handshakes_max) × handshake_timeout` and costs at most
//! `handshakes_max` tasks with [`crate::handshake::HANDSHAKE_FRAME_BYTES_MAX`]-bounded buffers.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use crate::connection::Connection;
use crate::handshake::{accept_stream, HandshakeConfig, HandshakeError};

/// The default [`ListenerConfig::handshakes_max`].
pub const HANDSHAKES_MAX_DEFAULT: usize = 64;

/// The default [`ListenerConfig::queue_events_max`].
pub const QUEUE_EVENTS_MAX_DEFAULT: usize = 64;

/// How long the accept loop waits after the OS refuses an accept (out of file descriptors,
/// say) before it tries again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// The listener's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenerConfig {
    /// The most connections in their handshake (or waiting to be handed over) at once; at
    /// least 1.
    pub handshakes_max: usize,
    /// The most events waiting for [`Listener::next`]; at least 1. Accepted connections wait
    /// for room (holding their handshake slot); rejections past the bound are dropped.
    pub queue_events_max: usize,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig { handshakes_max: HANDSHAKES_MAX_DEFAULT, queue_events_max: QUEUE_EVENTS_MAX_DEFAULT }
    }
}

/// What the listener has to say.
#[derive(Debug)]
pub enum ListenerEvent {
    /// A peer completed the handshake (boxed: a connection is much larger than a rejection).
    Accepted(Box<Connection>),
    /// A peer's handshake failed; its connection is closed.
    Rejected {
        /// The peer's address.
        addr: SocketAddr,
        /// Why.
        error: HandshakeError,
    },
}

/// A bound socket with its accept loop. Dropping it stops the loop and every handshake in
/// progress.
#[derive(Debug)]
pub struct Listener {
    local_addr: SocketAddr,
    events: mpsc::Receiver<ListenerEvent>,
    accept_loop: JoinHandle<()>,
}

impl Listener {
    /// Binds `addr` and starts accepting (on the current tokio runtime). Errors: the address
    /// cannot be bound, or a bound is 0 (`InvalidInput`).
    pub async fn bind(
        addr: impl ToSocketAddrs,
        handshake: HandshakeConfig,
        config: ListenerConfig,
    ) -> io::Result<Listener> {
        if config.handshakes_max == 0 || config.queue_events_max == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "handshakes_max and queue_events_max must be >= 1",
            ));
        }
        handshake.wire.validate().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let (tx, events) = mpsc::channel(config.queue_events_max);
        let accept_loop = tokio::spawn(accept_loop(listener, Arc::new(handshake), config.handshakes_max, tx));
        Ok(Listener { local_addr, events, accept_loop })
    }

    /// The bound address (with the port the OS chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The next event; `None` only if the accept loop ended (it does not, short of a panic).
    pub async fn next(&mut self) -> Option<ListenerEvent> {
        self.events.recv().await
    }

    /// The next accepted connection, skipping rejections.
    pub async fn accept(&mut self) -> Option<Connection> {
        loop {
            if let ListenerEvent::Accepted(c) = self.next().await? {
                return Some(*c);
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    config: Arc<HandshakeConfig>,
    handshakes_max: usize,
    tx: mpsc::Sender<ListenerEvent>,
) {
    let slots = Arc::new(Semaphore::new(handshakes_max));
    // Owns the handshake tasks: they end when the loop does.
    let mut handshakes = JoinSet::new();
    loop {
        // The semaphore is never closed, so this waits for a slot and never fails.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
        while handshakes.try_join_next().is_some() {}
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        if tx.is_closed() {
            return;
        }
        let config = Arc::clone(&config);
        let tx = tx.clone();
        handshakes.spawn(async move {
            match accept_stream(stream, &config).await {
                Ok(connection) => {
                    let _ = tx.send(ListenerEvent::Accepted(Box::new(connection))).await;
                }
                Err(error) => {
                    let _ = tx.try_send(ListenerEvent::Rejected { addr, error });
                }
            }
            drop(slot);
        });
    }
}
