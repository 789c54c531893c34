//! The join: how workers tell the driver where they listen, and learn where their peers do.
//!
//! ```text
//! worker i                                  driver
//!   (handshake as Worker(i))               ->
//!   Join { listen }                        ->
//!                                          <- Directory { workers }   (once all N have joined)
//! worker i dials each j < i, accepts each j > i, then uses the driver's connection for messages
//! ```
//!
//! Both steps are handshake-tagged frames holding postcard encodings of [`Step`], sent on the
//! worker's connection to the driver before it carries any message.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dstream::{codec, NodeId, WorkerId};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout_at, Instant};

use crate::cluster::LaunchError;
use crate::connection::Connection;
use crate::handshake::{connect, connect_stream, HandshakeConfig};
use crate::listener::{Listener, ListenerConfig, ListenerEvent};
use crate::transport::TcpTransport;

/// How long a worker waits before it dials a driver that refused the connection again (the
/// driver may not listen yet).
const REDIAL_BACKOFF: Duration = Duration::from_millis(50);

/// The most the driver waits for one worker's join step, so that a worker that says
/// nothing after its handshake holds up the others' joins this long at most.
const JOIN_STEP_WAIT_MAX: Duration = Duration::from_secs(10);

/// How often the driver checks, while it waits for workers, whether one of them has died.
const WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// One step of the join.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Step {
    /// Worker to driver: where the worker accepts connections from its peers.
    Join {
        /// The address.
        listen: SocketAddr,
    },
    /// Driver to worker: every worker's address, by index.
    Directory {
        /// The addresses.
        workers: Vec<(u32, SocketAddr)>,
    },
}

fn encode(step: &Step) -> Result<Vec<u8>, LaunchError> {
    codec::encode(step).map_err(|e| LaunchError::Join { reason: format!("cannot encode a join step: {e}") })
}

async fn recv(conn: &mut Connection, deadline: Instant) -> Result<Step, LaunchError> {
    let peer = conn.peer().node;
    let bytes = match timeout_at(deadline, conn.recv_step()).await {
        Err(_) => return Err(LaunchError::Join { reason: format!("{peer} said nothing of the join in time") }),
        Ok(Err(e)) => return Err(LaunchError::Join { reason: format!("bad join step from {peer}: {e}") }),
        Ok(Ok(None)) => return Err(LaunchError::Join { reason: format!("{peer} closed the connection in the join") }),
        Ok(Ok(Some(bytes))) => bytes,
    };
    codec::decode(&bytes).map_err(|e| LaunchError::Join { reason: format!("bad join step from {peer}: {e}") })
}

/// The driver's side: accepts connections until `expected` workers (indices `0..expected`)
/// have joined, then sends each the directory. `watch` is called every
/// [`WATCH_INTERVAL`] and fails the wait if it fails (a local worker process died, say).
/// Returns the connections, by worker.
pub(crate) async fn gather(
    listener: &mut Listener,
    expected: u32,
    deadline: Instant,
    mut watch: impl FnMut() -> Result<(), LaunchError>,
) -> Result<Vec<Connection>, LaunchError> {
    let started = Instant::now();
    let mut joined: BTreeMap<u32, (SocketAddr, Connection)> = BTreeMap::new();
    let mut rejection = None;
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    while (joined.len() as u32) < expected {
        let event = tokio::select! {
            event = timeout_at(deadline, listener.next()) => event,
            _ = tick.tick() => {
                if let Err(mut error) = watch() {
                    // A worker that exited may have been rejected first: say why.
                    while let Ok(Some(ListenerEvent::Rejected { addr, error })) =
                        tokio::time::timeout(Duration::ZERO, listener.next()).await
                    {
                        rejection = Some(format!("{addr}: {error}"));
                    }
                    if let LaunchError::WorkerExited { last_rejection, .. } = &mut error {
                        last_rejection.clone_from(&rejection);
                    }
                    return Err(error);
                }
                continue;
            }
        };
        let mut conn = match event {
            Err(_) | Ok(None) => {
                return Err(LaunchError::WorkersTimeout {
                    expected,
                    joined: joined.len() as u32,
                    registered: 0,
                    waited: started.elapsed(),
                    last_rejection: rejection,
                })
            }
            Ok(Some(ListenerEvent::Rejected { addr, error })) => {
                tracing::warn!(%addr, %error, "the driver rejected a connection");
                rejection = Some(format!("{addr}: {error}"));
                continue;
            }
            Ok(Some(ListenerEvent::Accepted(conn))) => *conn,
        };
        let index = match conn.peer().node {
            NodeId::Worker(WorkerId(i)) if i < expected => i,
            other => {
                tracing::warn!(%other, expected, "the driver drops a connection from an unexpected member");
                continue;
            }
        };
        match recv(&mut conn, deadline.min(Instant::now() + JOIN_STEP_WAIT_MAX)).await {
            Ok(Step::Join { listen }) => {
                // A later connection of the same worker replaces the earlier one.
                joined.insert(index, (listen, conn));
            }
            Ok(other) => tracing::warn!(?other, index, "the driver drops a worker that did not join"),
            Err(e) => tracing::warn!(%e, index, "the driver drops a worker whose join failed"),
        }
    }
    let workers: Vec<(u32, SocketAddr)> = joined.iter().map(|(i, (addr, _))| (*i, *addr)).collect();
    let directory = encode(&Step::Directory { workers })?;
    let mut connections = Vec::new();
    for (index, (_, mut conn)) in joined {
        conn.send_step(directory.clone())
            .await
            .map_err(|e| LaunchError::Join { reason: format!("cannot send the directory to worker {index}: {e}") })?;
        connections.push(conn);
    }
    Ok(connections)
}

/// The worker's side: dials the driver (again while it refuses, until `deadline`), binds the
/// peer listener on the interface that reached it, joins, then connects to every peer
/// (adding each connection to `transport`) and keeps accepting later ones. Returns the
/// driver's connection, for the caller to add once it is ready for messages.
pub(crate) async fn join(
    driver: SocketAddr,
    handshake: &HandshakeConfig,
    deadline: Instant,
    transport: &Arc<TcpTransport>,
) -> Result<Connection, LaunchError> {
    let NodeId::Worker(WorkerId(me)) = handshake.node else {
        return Err(LaunchError::Join { reason: "only a worker joins".into() });
    };
    let stream = loop {
        match timeout_at(deadline, TcpStream::connect(driver)).await {
            Ok(Ok(stream)) => break stream,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused && Instant::now() < deadline => {
                sleep(REDIAL_BACKOFF).await;
            }
            Ok(Err(source)) => {
                return Err(LaunchError::Io { what: format!("connecting to the driver at {driver}"), source })
            }
            Err(_) => {
                return Err(LaunchError::Join { reason: format!("the driver at {driver} did not answer in time") })
            }
        }
    };
    let io = |what: &str| {
        let what = what.to_string();
        move |source| LaunchError::Io { what, source }
    };
    let ip = stream.local_addr().map_err(io("reading the local address"))?.ip();
    let mut peers = Listener::bind((ip, 0), handshake.clone(), ListenerConfig::default())
        .await
        .map_err(io("binding the peer listener"))?;
    let mut conn = timeout_at(deadline, connect_stream(stream, handshake))
        .await
        .map_err(|_| LaunchError::Join { reason: "the handshake with the driver took too long".into() })?
        .map_err(|source| LaunchError::Handshake { peer: driver.to_string(), source })?;
    conn.send_step(encode(&Step::Join { listen: peers.local_addr() })?)
        .await
        .map_err(|e| LaunchError::Join { reason: format!("cannot join: {e}") })?;
    let Step::Directory { workers } = recv(&mut conn, deadline).await? else {
        return Err(LaunchError::Join { reason: "the driver answered the join with something else".into() });
    };
    let mut awaited: BTreeSet<u32> = BTreeSet::new();
    for (index, addr) in workers {
        if index < me {
            let peer = timeout_at(deadline, connect(addr, handshake))
                .await
                .map_err(|_| LaunchError::Join { reason: format!("worker {index} at {addr} did not answer in time") })?
                .map_err(|source| LaunchError::Handshake { peer: format!("worker {index} at {addr}"), source })?;
            transport.add(peer);
        } else if index > me {
            awaited.insert(index);
        }
    }
    while !awaited.is_empty() {
        match timeout_at(deadline, peers.next()).await {
            Err(_) | Ok(None) => {
                return Err(LaunchError::Join { reason: format!("workers {awaited:?} did not connect in time") })
            }
            Ok(Some(ListenerEvent::Rejected { addr, error })) => {
                tracing::warn!(%addr, %error, "a worker rejected a connection")
            }
            Ok(Some(ListenerEvent::Accepted(peer))) => {
                if let NodeId::Worker(WorkerId(j)) = peer.peer().node {
                    awaited.remove(&j);
                }
                transport.add(*peer);
            }
        }
    }
    // Later connections (a peer reconnecting) are taken as they come, for as long as the
    // runtime runs.
    let transport = Arc::clone(transport);
    tokio::spawn(async move {
        while let Some(peer) = peers.accept().await {
            transport.add(peer);
        }
    });
    Ok(conn)
}
