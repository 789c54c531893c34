//! The driver and worker processes: the core's state machines driven over [`TcpTransport`](crate::TcpTransport).
//!
//! # Threads and tasks
//!
//! Each process has one tokio runtime (two threads) for the sockets: the listener, and per
//! peer the transport's reader and writer tasks. The state machine itself runs on a std
//! thread of its own, as in `dstream-inproc`'s `LocalCluster`: it waits on one bounded inbox
//! ([`INBOX_INPUTS_MAX`]) until the machine's `poll_timeout` at the latest, hands over what
//! arrived, and drains the machine's outputs into the transport. A *pump* thread moves the
//! transport's events ([`TransportEvents::blocking_recv`](crate::TransportEvents::blocking_recv)) into that inbox, so a full inbox
//! stops the pump, the transport's event queue fills, its readers stop reading and TCP
//! pushes back on the senders. In a worker, tasks run on a rayon pool and post their results
//! to the same inbox; in the driver, the [`JobRunner`](dstream::JobRunner) of the driver's
//! `Context` posts jobs to it and waits for their reply, and the facts the workers need to rebuild batches
//! (`JobRunner::announce`) go the same way, so they reach the driver before the jobs that
//! need them.
//!
//! # How members find each other (the join)
//!
//! Every connection starts with the handshake ([`crate::handshake`]). The connection of a
//! worker to the driver then carries a short exchange of its own (`join.rs`), in
//! handshake-tagged frames before any message: the worker names the address where it listens
//! for other workers (it binds the interface it reached the driver from, port 0); once every
//! expected worker has joined, the driver answers each with the directory of all their
//! addresses. Worker `i` then dials every worker `j < i` and accepts a connection from every
//! `j > i`, so each pair of workers shares one connection, on which their shuffle fetches go
//! directly. Only once its mesh is complete does a worker hand the driver's connection to its
//! transport, so the driver has no registered worker that cannot reach its peers.
//!
//! # Loss
//!
//! A connection that closes, fails or falls silent is `TransportEvent::PeerLost` on both of
//! its sides (the OS closes the sockets of a killed process at once): the driver calls
//! `Driver::handle_peer_lost`, a worker `Worker::handle_peer_lost` for a peer worker, and a
//! worker that loses the driver stops serving. A send to a peer that is no longer connected
//! is reported the same way. The core's own heartbeats cover a worker that stays connected
//! but stops working.
//!
//! # Rejoining
//!
//! After the launch the driver keeps its listener: a worker process restarted with an index
//! the cluster has joins again (`join.rs`'s `admit`). The driver records its new address and
//! answers at once with the other workers' last addresses; the newcomer dials each of them
//! (every worker accepts peers for as long as it runs), so each pair of workers still shares
//! one connection, and only then hands the driver's connection to its transport and
//! registers. Its higher incarnation (from the handshake and `Register`) makes it a new
//! member for the core: on each side [`TcpTransport`](crate::TcpTransport) reports the
//! replaced connection's peer lost before the new one's first message, and the driver
//! ignores whatever the dead incarnation still sent.

pub(crate) mod driver;
pub(crate) mod join;
pub(crate) mod worker;

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use dstream::transport::TransportEvent;
use dstream::{BlockUpload, Clock, Error, Fact, JobRequest, Message, NodeId, Payload, SystemClock, TaskDone, Time};

use crate::transport::TransportEvents;

/// The most inputs waiting in a state machine's inbox.
pub const INBOX_INPUTS_MAX: usize = 8192;

/// The reply channel of a job.
pub(crate) type Reply = Sender<Result<Vec<Payload>, Error>>;

/// What a state machine's thread receives.
pub(crate) enum Input {
    /// A message from a peer.
    Net { from: NodeId, msg: Message },
    /// A peer's connection is gone.
    PeerLost(NodeId),
    /// A task this worker's pool finished.
    Done(TaskDone),
    /// A job from the driver's context.
    Submit { request: JobRequest, reply: Reply },
    /// Blocks to store on the workers (driver only).
    Store { upload: BlockUpload, reply: Reply },
    /// What the workers need to rebuild batches (driver only).
    Announce(Fact),
    /// Shut down.
    Stop,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Net { from, msg } => write!(f, "Net({from}, {})", msg.kind()),
            Input::PeerLost(node) => write!(f, "PeerLost({node})"),
            Input::Done(_) => f.write_str("Done"),
            Input::Submit { request, .. } => write!(f, "Submit({request:?})"),
            Input::Store { upload, .. } => write!(f, "Store({upload:?})"),
            Input::Announce(_) => f.write_str("Announce"),
            Input::Stop => f.write_str("Stop"),
        }
    }
}

/// Starts a named std thread.
pub(crate) fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<std::thread::JoinHandle<()>, Error> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map_err(|e| Error::ThreadStart { name: name.to_string(), reason: e.to_string() })
}

/// Starts the pump: the transport's events into `inbox`, until either side is gone.
pub(crate) fn pump(mut events: TransportEvents, inbox: Sender<Input>) -> Result<std::thread::JoinHandle<()>, Error> {
    spawn("dstream-tcp-pump", move || {
        while let Some(event) = events.blocking_recv() {
            let input = match event {
                TransportEvent::Message { from, msg } => Input::Net { from, msg },
                TransportEvent::PeerLost(node) => Input::PeerLost(node),
            };
            if inbox.send(input).is_err() {
                return;
            }
        }
    })
}

/// What waiting on an inbox until a deadline gave.
pub(crate) enum Wait {
    Input(Input),
    Deadline,
    Closed,
}

/// Waits for the next input, until `deadline` (on `clock`) at the latest.
pub(crate) fn wait(inbox: &Receiver<Input>, deadline: Option<Time>, clock: &SystemClock) -> Wait {
    // A deadline too far to express as an `Instant` is as good as none.
    let instant = deadline.and_then(|d| Instant::now().checked_add(d.saturating_since(clock.now())));
    let Some(instant) = instant else {
        return inbox.recv().map_or(Wait::Closed, Wait::Input);
    };
    match inbox.recv_deadline(instant) {
        Ok(input) => Wait::Input(input),
        Err(RecvTimeoutError::Timeout) => Wait::Deadline,
        Err(RecvTimeoutError::Disconnected) => Wait::Closed,
    }
}

/// A tokio runtime for a process's sockets.
pub(crate) fn tokio_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("dstream-tcp-io").enable_all().build()
}

/// The incarnation of this process: milliseconds since the epoch, so a restarted process has
/// a larger one (see `WorkerConfig::incarnation`).
pub(crate) fn incarnation() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or(Duration::ZERO);
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}
