//! [`TcpTransport`]: the core's [`Transport`] over established [`Connection`]s, one per peer.
//!
//! Each peer has a writer task fed by a bounded queue ([`TransportConfig::queue_messages_max`])
//! and a reader task that turns frames into [`TransportEvent::Message`]s on one bounded event
//! queue ([`TransportConfig::queue_events_max`]); while that queue is full the readers stop
//! reading, so TCP pushes back on the senders. The writer sends a heartbeat frame when it has
//! sent nothing for [`TransportConfig::heartbeat_interval`]; a reader that hears nothing (no
//! message, no heartbeat) for [`TransportConfig::peer_silence_max`], or whose connection
//! closes or fails, reports [`TransportEvent::PeerLost`] once and the peer is removed.
//!
//! Messages are encoded on the sender's thread, so an unencodable message is an error from
//! [`Transport::send`] itself. A queue that stays full for [`TransportConfig::send_wait_max`]
//! (or at all, when `send` is called from inside the tokio runtime, where it must not block)
//! means the peer does not keep up: it is dropped and reported lost.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use dstream::transport::{Transport, TransportError, TransportEvent};
use dstream::{Message, NodeId};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::{sleep_until, timeout, Instant};

use crate::chunk::{message_frames, Inbound};
use crate::connection::{Connection, MessageReader, MessageWriter};
use crate::frame::{Frame, WireConfig};

/// The bounds and periods of a [`TcpTransport`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportConfig {
    /// Messages waiting to be written to one peer; at least 1.
    pub queue_messages_max: usize,
    /// Events waiting for [`TransportEvents::recv`]; at least 1.
    pub queue_events_max: usize,
    /// How long [`Transport::send`] waits for room in a full peer queue before it gives the
    /// peer up.
    pub send_wait_max: Duration,
    /// How long a writer stays quiet before it sends a heartbeat frame.
    pub heartbeat_interval: Duration,
    /// How long a reader waits for any frame before it reports the peer lost; several
    /// heartbeat intervals.
    pub peer_silence_max: Duration,
    /// The limits used to encode messages (the same as the connections').
    pub wire: WireConfig,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            queue_messages_max: 1024,
            queue_events_max: 4096,
            send_wait_max: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(1),
            peer_silence_max: Duration::from_secs(10),
            wire: WireConfig::default(),
        }
    }
}

/// What the transport's tasks report to the runtime: messages and lost peers.
#[derive(Debug)]
pub struct TransportEvents {
    events: mpsc::Receiver<TransportEvent>,
}

impl TransportEvents {
    /// The next event (`None` once the transport and all its tasks are gone).
    pub async fn recv(&mut self) -> Option<TransportEvent> {
        self.events.recv().await
    }

    /// The next event, blocking the thread (for a state machine's own thread; panics inside
    /// the tokio runtime, as `blocking_recv` does).
    pub fn blocking_recv(&mut self) -> Option<TransportEvent> {
        self.events.blocking_recv()
    }
}

/// Sends messages to peers over TCP connections that passed the handshake.
pub struct TcpTransport {
    inner: Arc<Inner>,
}

struct Inner {
    local: NodeId,
    runtime: Handle,
    config: TransportConfig,
    events: mpsc::Sender<TransportEvent>,
    peers: Mutex<Peers>,
}

#[derive(Default)]
struct Peers {
    next_generation: u64,
    by_node: HashMap<NodeId, Peer>,
}

/// One connected peer: its queue and its two tasks. The generation tells a replaced
/// connection's tasks from the current one's; the incarnation is the peer's, from the
/// handshake.
struct Peer {
    generation: u64,
    incarnation: u64,
    queue: mpsc::Sender<Vec<Frame>>,
    reader: AbortHandle,
    writer: AbortHandle,
}

impl Peer {
    /// Stops the peer's tasks, except `caller` (a task closing its own peer must not cancel
    /// itself before it reports the loss). The socket closes as the tasks drop their halves.
    fn close(self, caller: Option<tokio::task::Id>) {
        for task in [&self.reader, &self.writer] {
            if caller != Some(task.id()) {
                task.abort();
            }
        }
    }
}

impl fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpTransport").field("local", &self.inner.local).field("peers", &self.peers()).finish()
    }
}

impl TcpTransport {
    /// A transport sending from `local`, its tasks on `runtime`, with no peers yet.
    pub fn new(local: NodeId, runtime: Handle, config: TransportConfig) -> (TcpTransport, TransportEvents) {
        let (events_tx, events) = mpsc::channel(config.queue_events_max.max(1));
        let inner = Inner { local, runtime, config, events: events_tx, peers: Mutex::new(Peers::default()) };
        (TcpTransport { inner: Arc::new(inner) }, TransportEvents { events })
    }

    /// Starts sending to and receiving from the connection's peer. A connection to a node
    /// already connected replaces the old one, which is closed. If the new connection's peer
    /// has the same incarnation (the same process reconnected), that is all; if it has
    /// another (the process was restarted), a [`TransportEvent::PeerLost`] for the old one is
    /// reported first, before any message of the new connection, so the state machine lets go
    /// of what it awaited from the old process.
    pub fn add(&self, connection: Connection) {
        let (peer, reader, writer) = connection.into_split();
        let node = peer.node;
        let config = self.inner.config;
        let (queue, queued) = mpsc::channel(config.queue_messages_max.max(1));
        let mut peers = self.inner.lock();
        let generation = peers.next_generation;
        peers.next_generation += 1;
        let replaces = peers.by_node.get(&node).is_some_and(|old| old.incarnation != peer.incarnation);
        let weak = Arc::downgrade(&self.inner);
        let events = self.inner.events.clone();
        let read = read_loop(reader, node, generation, replaces, config, events, weak.clone());
        let reader = self.inner.runtime.spawn(read);
        let writer = self.inner.runtime.spawn(write_loop(writer, queued, node, generation, config, weak));
        let entry = Peer {
            generation,
            incarnation: peer.incarnation,
            queue,
            reader: reader.abort_handle(),
            writer: writer.abort_handle(),
        };
        let old = peers.by_node.insert(node, entry);
        drop(peers);
        if let Some(old) = old {
            old.close(None);
        }
    }

    /// Closes the connection to `node`, if any, without a [`TransportEvent::PeerLost`].
    pub fn remove(&self, node: NodeId) {
        let old = self.inner.lock().by_node.remove(&node);
        if let Some(old) = old {
            old.close(None);
        }
    }

    /// The connected peers.
    pub fn peers(&self) -> Vec<NodeId> {
        let mut nodes: Vec<NodeId> = self.inner.lock().by_node.keys().copied().collect();
        nodes.sort();
        nodes
    }
}

impl Transport for TcpTransport {
    fn local(&self) -> NodeId {
        self.inner.local
    }

    fn send(&self, to: NodeId, msg: Message) -> Result<(), TransportError> {
        let frames = message_frames(&msg, &self.inner.config.wire)
            .map_err(|e| TransportError::Encode { to, reason: e.to_string() })?;
        let (queue, generation) = {
            let peers = self.inner.lock();
            let peer = peers.by_node.get(&to).ok_or(TransportError::Unreachable(to))?;
            (peer.queue.clone(), peer.generation)
        };
        let frames = match queue.try_send(frames) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(TransportError::Unreachable(to)),
            Err(mpsc::error::TrySendError::Full(frames)) => frames,
        };
        // Blocking is allowed only outside the runtime.
        if Handle::try_current().is_err() {
            let wait_max = self.inner.config.send_wait_max;
            // The timer is made inside `block_on`, where the runtime's context is entered.
            if let Ok(Ok(())) = self.inner.runtime.block_on(async { timeout(wait_max, queue.send(frames)).await }) {
                return Ok(());
            }
        }
        if self.inner.lost(to, generation, None) {
            // Reported by a task, so that this thread does not wait for room in the event
            // queue and the report is not dropped when there is none.
            let events = self.inner.events.clone();
            self.inner.runtime.spawn(async move { events.send(TransportEvent::PeerLost(to)).await });
        }
        Err(TransportError::Unreachable(to))
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Peers> {
        // The map stays consistent even if a holder panicked: every change is one insert or
        // remove.
        self.peers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Removes `node`'s connection if it is still the one of `generation` and stops its
    /// tasks except `caller`. Returns whether it was removed: then the caller reports the loss.
    fn lost(&self, node: NodeId, generation: u64, caller: Option<tokio::task::Id>) -> bool {
        let mut peers = self.lock();
        if peers.by_node.get(&node).map(|p| p.generation) != Some(generation) {
            return false;
        }
        let removed = peers.by_node.remove(&node);
        drop(peers);
        removed.map(|peer| peer.close(caller)).is_some()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for (_, peer) in std::mem::take(&mut self.lock().by_node) {
            peer.close(None);
        }
    }
}

/// Called by a peer's task when its connection is gone: reports `node` lost if the
/// connection of `generation` is still the current one (so once per connection, and never for
/// a replaced or removed one).
async fn report_lost(inner: &Weak<Inner>, events: &mpsc::Sender<TransportEvent>, node: NodeId, generation: u64) {
    let caller = tokio::task::try_id();
    let removed = inner.upgrade().is_some_and(|inner| inner.lost(node, generation, caller));
    if removed {
        let _ = events.send(TransportEvent::PeerLost(node)).await;
    }
}

/// Reads the connection of `generation` to `node` into `events` until it is gone. If it
/// `replaces` an older incarnation's connection, that one's loss is reported first, by the
/// same task, so that it comes before the new connection's messages.
async fn read_loop(
    mut reader: MessageReader,
    node: NodeId,
    generation: u64,
    replaces: bool,
    config: TransportConfig,
    events: mpsc::Sender<TransportEvent>,
    inner: Weak<Inner>,
) {
    if replaces && events.send(TransportEvent::PeerLost(node)).await.is_err() {
        return;
    }
    loop {
        match timeout(config.peer_silence_max, reader.recv()).await {
            Ok(Ok(Some(Inbound::Message(msg)))) => {
                if events.send(TransportEvent::Message { from: node, msg }).await.is_err() {
                    return;
                }
            }
            Ok(Ok(Some(Inbound::Heartbeat))) => {}
            // Closed, failed or silent: the peer is gone.
            Ok(Ok(None)) | Ok(Err(_)) | Err(_) => break,
        }
    }
    report_lost(&inner, &events, node, generation).await;
}

async fn write_loop(
    mut writer: MessageWriter,
    mut queued: mpsc::Receiver<Vec<Frame>>,
    node: NodeId,
    generation: u64,
    config: TransportConfig,
    inner: Weak<Inner>,
) {
    let events = match inner.upgrade() {
        Some(inner) => inner.events.clone(),
        None => return,
    };
    let mut quiet_until = Instant::now() + config.heartbeat_interval;
    loop {
        let result = tokio::select! {
            frames = queued.recv() => match frames {
                Some(frames) => writer.send_frames(frames).await,
                // The transport dropped this peer.
                None => return,
            },
            () = sleep_until(quiet_until) => writer.heartbeat().await,
        };
        if result.is_err() {
            break;
        }
        quiet_until = Instant::now() + config.heartbeat_interval;
    }
    report_lost(&inner, &events, node, generation).await;
}
