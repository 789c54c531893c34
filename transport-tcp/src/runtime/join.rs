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
//! After the launch the driver goes on accepting ([`admit`]): a worker process restarted
//! with an index the cluster has (and a higher incarnation) joins the same way, but the
//! driver answers at once with [`Step::Running`], the addresses the others last joined
//! with. The newcomer dials every one of them (the others are running and accept
//! connections from peers for as long as they run; one that cannot be reached is skipped,
//! it is lost or about to be), so each pair of workers still shares one connection: the
//! newcomer's replaces, in the peer's transport, the one to the dead process. Then it
//! registers like any worker.
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
    /// Driver to a worker joining a running cluster (a restarted process): the other
    /// workers' addresses, by index, each as that worker last joined; the newcomer dials
    /// them all.
    Running {
        /// The addresses.
        workers: Vec<(u32, SocketAddr)>,
    },
}

/// Each worker's last join, by index: the driver's, kept after the launch for the workers
/// that join later.
pub(crate) type Addresses = BTreeMap<u32, Joined>;

/// A worker's last join.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Joined {
    /// Where it accepts connections from its peers.
    pub(crate) listen: SocketAddr,
    /// Its process's incarnation.
    pub(crate) incarnation: u64,
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
/// Returns the connections, by worker, and the workers' addresses.
pub(crate) async fn gather(
    listener: &mut Listener,
    expected: u32,
    deadline: Instant,
    mut watch: impl FnMut() -> Result<(), LaunchError>,
) -> Result<(Vec<Connection>, Addresses), LaunchError> {
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
    let addresses: Addresses = joined
        .iter()
        .map(|(i, (listen, conn))| (*i, Joined { listen: *listen, incarnation: conn.peer().incarnation }))
        .collect();
    let workers: Vec<(u32, SocketAddr)> = addresses.iter().map(|(i, j)| (*i, j.listen)).collect();
    let directory = encode(&Step::Directory { workers })?;
    let mut connections = Vec::new();
    for (index, (_, mut conn)) in joined {
        conn.send_step(directory.clone())
            .await
            .map_err(|e| LaunchError::Join { reason: format!("cannot send the directory to worker {index}: {e}") })?;
        connections.push(conn);
    }
    Ok((connections, addresses))
}

/// The driver's side after the launch, for as long as the listener runs: takes the join of
/// every worker that connects with an index below `expected` (a restarted process), answers
/// it with [`Step::Running`] and hands its connection to `transport`, where it replaces the
/// dead process's connection. A join whose incarnation is not higher than the last one of
/// its index (a stale process, or a supervisor's wrong `DSTREAM_INCARNATION`) is dropped
/// without an answer, so it cannot take the place of the live process. Holds the transport
/// weakly: once the driver's loop has dropped
/// it, the workers' connections close (and they exit) whether or not this task still runs,
/// and a late join is dropped. At most `joins_max` joins wait for their step at once (the
/// listener bounds the handshakes before them); a worker silent after its handshake is
/// dropped after [`JOIN_STEP_WAIT_MAX`].
pub(crate) async fn admit(
    mut listener: Listener,
    expected: u32,
    addresses: Addresses,
    joins_max: usize,
    transport: std::sync::Weak<TcpTransport>,
) {
    let addresses = Arc::new(std::sync::Mutex::new(addresses));
    let joins = Arc::new(tokio::sync::Semaphore::new(joins_max.max(1)));
    while let Some(event) = listener.next().await {
        let mut conn = match event {
            ListenerEvent::Rejected { addr, error } => {
                tracing::warn!(%addr, %error, "the driver rejected a connection");
                continue;
            }
            ListenerEvent::Accepted(conn) => *conn,
        };
        let index = match conn.peer().node {
            NodeId::Worker(WorkerId(i)) if i < expected => i,
            other => {
                tracing::warn!(%other, expected, "the driver drops a connection from an unexpected member");
                continue;
            }
        };
        // The semaphore is never closed.
        let Ok(permit) = Arc::clone(&joins).acquire_owned().await else { return };
        let (addresses, transport) = (Arc::clone(&addresses), transport.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let incarnation = conn.peer().incarnation;
            let listen = match recv(&mut conn, Instant::now() + JOIN_STEP_WAIT_MAX).await {
                Ok(Step::Join { listen }) => listen,
                Ok(other) => return tracing::warn!(?other, index, "the driver drops a worker that did not join"),
                Err(e) => return tracing::warn!(%e, index, "the driver drops a worker whose join failed"),
            };
            let others: Vec<(u32, SocketAddr)> = {
                // A plain map, consistent whatever a panicking holder did.
                let mut addresses = addresses.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(last) = addresses.get(&index).filter(|last| last.incarnation >= incarnation) {
                    let known = last.incarnation;
                    return tracing::warn!(
                        index,
                        incarnation,
                        known,
                        "the driver drops the join of a stale incarnation"
                    );
                }
                // Recorded and read under one lock: of two workers joining at once, the
                // second is given the first's new address (and dials it).
                addresses.insert(index, Joined { listen, incarnation });
                addresses.iter().filter(|(i, _)| **i != index).map(|(i, j)| (*i, j.listen)).collect()
            };
            let step = match encode(&Step::Running { workers: others }) {
                Ok(step) => step,
                Err(e) => return tracing::error!(%e, index, "the driver cannot answer a join"),
            };
            if let Err(e) = conn.send_step(step).await {
                return tracing::warn!(%e, index, "the driver cannot answer a join");
            }
            match transport.upgrade() {
                Some(transport) => {
                    tracing::info!(index, incarnation, %listen, "a worker rejoined");
                    transport.add(conn);
                }
                None => tracing::debug!(index, "the driver has stopped: it drops a late join"),
            }
        });
    }
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
    let workers = match recv(&mut conn, deadline).await? {
        Step::Directory { workers } => workers,
        Step::Running { workers } => {
            rejoin(workers, handshake, deadline, transport).await;
            accept_later(peers, transport);
            return Ok(conn);
        }
        Step::Join { .. } => {
            return Err(LaunchError::Join { reason: "the driver answered the join with something else".into() })
        }
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
    accept_later(peers, transport);
    Ok(conn)
}

/// Takes later connections (a restarted peer joining) as they come, for as long as the
/// runtime runs.
fn accept_later(mut peers: Listener, transport: &Arc<TcpTransport>) {
    let transport = Arc::clone(transport);
    tokio::spawn(async move {
        while let Some(peer) = peers.accept().await {
            transport.add(peer);
        }
    });
}

/// A worker joining a running cluster: dials every other worker at once, each for
/// [`JOIN_STEP_WAIT_MAX`] at most (and not past `deadline`), adding each connection to
/// `transport`. A worker that cannot be reached is skipped: it is dead (the driver will
/// report it lost, or has) or will dial this one when it rejoins itself.
async fn rejoin(
    workers: Vec<(u32, SocketAddr)>,
    handshake: &HandshakeConfig,
    deadline: Instant,
    transport: &Arc<TcpTransport>,
) {
    let dial_deadline = deadline.min(Instant::now() + JOIN_STEP_WAIT_MAX);
    let dials = workers.into_iter().map(|(index, addr)| async move {
        match timeout_at(dial_deadline, connect(addr, handshake)).await {
            Ok(Ok(peer)) => transport.add(peer),
            Ok(Err(e)) => tracing::warn!(index, %addr, %e, "a rejoining worker cannot reach a peer"),
            Err(_) => tracing::warn!(index, %addr, "a rejoining worker's peer did not answer in time"),
        }
    });
    futures_util::future::join_all(dials).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::transport::TransportConfig;

    const PROGRAM: u64 = 0x5eed;

    fn config(node: NodeId, incarnation: u64) -> HandshakeConfig {
        HandshakeConfig::new(node, incarnation, PROGRAM, Secret::from_bytes("a-test-secret-0123456789").unwrap())
    }

    /// A worker's join after the launch: the driver's answer, `None` if it closed the
    /// connection instead.
    async fn late_join(driver: SocketAddr, index: u32, incarnation: u64, listen: SocketAddr) -> Option<Step> {
        let mut conn = connect(driver, &config(NodeId::Worker(WorkerId(index)), incarnation)).await.unwrap();
        conn.send_step(encode(&Step::Join { listen }).unwrap()).await.unwrap();
        match conn.recv_step().await {
            Ok(Some(bytes)) => Some(codec::decode(&bytes).unwrap()),
            Ok(None) | Err(_) => None,
        }
    }

    #[tokio::test]
    async fn a_late_join_gets_the_others_addresses_unless_its_incarnation_is_stale() {
        let listener =
            Listener::bind("127.0.0.1:0", config(NodeId::Driver, 1), ListenerConfig::default()).await.unwrap();
        let driver = listener.local_addr();
        let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let addresses: Addresses =
            (0..3u32).map(|i| (i, Joined { listen: addr(7000 + i as u16), incarnation: 10 })).collect();
        let (transport, _events) =
            TcpTransport::new(NodeId::Driver, tokio::runtime::Handle::current(), TransportConfig::default());
        let transport = Arc::new(transport);
        tokio::spawn(admit(listener, 3, addresses, 4, Arc::downgrade(&transport)));
        let wait = Duration::from_secs(10);

        // Not newer than the live process: dropped, and it takes no place in the transport.
        for stale in [9, 10] {
            let answer = tokio::time::timeout(wait, late_join(driver, 1, stale, addr(8001))).await.unwrap();
            assert!(answer.is_none(), "{answer:?}");
        }
        assert!(transport.peers().is_empty());

        let answer = tokio::time::timeout(wait, late_join(driver, 1, 11, addr(8001))).await.unwrap();
        let Some(Step::Running { workers }) = answer else { panic!("{answer:?}") };
        assert_eq!(workers, [(0, addr(7000)), (2, addr(7002))]);
        // Another worker's late join is given worker 1's new address.
        let answer = tokio::time::timeout(wait, late_join(driver, 2, 11, addr(8002))).await.unwrap();
        let Some(Step::Running { workers }) = answer else { panic!("{answer:?}") };
        assert_eq!(workers, [(0, addr(7000)), (1, addr(8001))]);
        // An index the cluster does not have is dropped.
        let answer = tokio::time::timeout(wait, late_join(driver, 3, 11, addr(8003))).await.unwrap();
        assert!(answer.is_none(), "{answer:?}");
    }
}
