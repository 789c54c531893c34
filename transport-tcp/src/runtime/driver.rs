//! The driver's thread and the [`JobRunner`] of the driver process's `Context`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use dstream::transport::{Transport, TransportError};
use dstream::{
    BlockUpload, Clock, Driver, DriverEvent, Error, Fact, JobRequest, JobRunner, LossReason, NodeId, Payload,
    SystemClock, WorkerId,
};

use super::{wait, Input, Reply, Wait};
use crate::transport::TcpTransport;

/// What the driver reported about its workers, shared with the launch and the [`Cluster`]
/// (which wait on it).
///
/// [`Cluster`]: crate::Cluster
#[derive(Default)]
pub(crate) struct Observed {
    state: Mutex<Members>,
    changed: Condvar,
}

/// The workers as the driver reported them.
#[derive(Default)]
pub(crate) struct Members {
    /// Workers that registered.
    pub(crate) registered: BTreeSet<WorkerId>,
    /// Workers registered and not reported lost since.
    pub(crate) alive: BTreeSet<WorkerId>,
    /// How many times each worker registered (once per incarnation).
    pub(crate) registrations: BTreeMap<WorkerId, u32>,
    /// The last loss reported for each worker.
    pub(crate) lost: BTreeMap<WorkerId, LossReason>,
    /// Workers refused, with the reason.
    pub(crate) refused: BTreeMap<WorkerId, String>,
    /// Whether the driver's thread has ended.
    pub(crate) stopped: bool,
}

impl Observed {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Members> {
        // Plain sets and maps, consistent whatever a panicking holder did.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut Members)) {
        f(&mut self.lock());
        self.changed.notify_all();
    }

    /// Waits until `done` holds of the members, for `wait_max` at most (checking `watch`
    /// every `watch_interval`); returns whether it holds.
    pub(crate) fn wait_until(
        &self,
        wait_max: Duration,
        watch_interval: Duration,
        mut watch: impl FnMut(),
        mut done: impl FnMut(&Members) -> bool,
    ) -> bool {
        let deadline = Instant::now() + wait_max;
        let mut members = self.lock();
        loop {
            if done(&members) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let slice = (deadline - now).min(watch_interval);
            members = self.changed.wait_timeout(members, slice).unwrap_or_else(|p| p.into_inner()).0;
            drop(members);
            watch();
            members = self.lock();
        }
    }
}

/// Brings the driver's side of a cluster up (listener, workers, driver thread) the first time
/// the program needs it: a program resuming from checkpoints runs jobs while it is built.
pub(crate) trait Bringup: Send + Sync {
    /// Returns once the cluster is up, or [`Error::ClusterStopped`] if it could not come up
    /// (the launch reports why).
    fn ensure_up(&self) -> Result<(), Error>;
}

/// The runner of the driver process's `Context`: jobs go to the driver's thread, once the
/// cluster is up.
pub(crate) struct DriverRunner {
    pub(crate) inbox: Sender<Input>,
    pub(crate) bringup: Arc<dyn Bringup>,
}

impl JobRunner for DriverRunner {
    fn run_job(&self, request: JobRequest) -> Result<Vec<Payload>, Error> {
        self.bringup.ensure_up()?;
        let (reply, result) = bounded(1);
        self.inbox.send(Input::Submit { request, reply }).map_err(|_| Error::ClusterStopped { submitted: false })?;
        result.recv().map_err(|_| Error::ClusterStopped { submitted: true })?
    }

    fn store_blocks(&self, upload: BlockUpload) -> Result<(), Error> {
        self.bringup.ensure_up()?;
        let (reply, result) = bounded(1);
        self.inbox.send(Input::Store { upload, reply }).map_err(|_| Error::ClusterStopped { submitted: false })?;
        result.recv().map_err(|_| Error::ClusterStopped { submitted: true })?.map(drop)
    }

    fn announce(&self, fact: Fact) {
        // The facts go to the driver's thread in order, so it must be running; a driver that
        // could not come up or stopped runs no more jobs that could need them.
        if self.bringup.ensure_up().is_ok() {
            let _ = self.inbox.send(Input::Announce(fact));
        }
    }
}

/// The driver's thread: the polling loop of [`Driver`]'s documentation.
pub(crate) struct DriverLoop {
    pub(crate) driver: Driver,
    pub(crate) transport: Arc<TcpTransport>,
    pub(crate) clock: SystemClock,
    pub(crate) observed: Arc<Observed>,
    waiting: BTreeMap<dstream::JobId, Reply>,
}

impl DriverLoop {
    pub(crate) fn new(
        driver: Driver,
        transport: Arc<TcpTransport>,
        clock: SystemClock,
        observed: Arc<Observed>,
    ) -> DriverLoop {
        DriverLoop { driver, transport, clock, observed, waiting: BTreeMap::new() }
    }

    /// Hands one input to the driver and drains its outputs; false on `Stop`.
    fn input(&mut self, input: Input) -> bool {
        let now = self.clock.now();
        match input {
            Input::Net { from: NodeId::Worker(w), msg } => self.driver.handle_message(now, w, msg),
            Input::Submit { request, reply } => {
                let job = self.driver.submit_job(now, request);
                self.waiting.insert(job, reply);
            }
            Input::Store { upload, reply } => {
                let job = self.driver.store_blocks(now, upload);
                self.waiting.insert(job, reply);
            }
            Input::Announce(fact) => self.driver.announce(now, fact),
            Input::PeerLost(NodeId::Worker(w)) => self.driver.handle_peer_lost(now, w),
            Input::Stop => return false,
            other => tracing::warn!(?other, "the driver ignores an unexpected input"),
        }
        self.flush();
        true
    }

    fn flush(&mut self) {
        while let Some((to, msg)) = self.driver.poll_transmit() {
            match self.transport.send(to, msg) {
                Ok(()) => {}
                // Not connected (any more): the driver learns it at once.
                Err(TransportError::Unreachable(NodeId::Worker(w))) => {
                    self.driver.handle_peer_lost(self.clock.now(), w)
                }
                Err(e) => tracing::warn!(%e, "the driver could not send"),
            }
        }
        while let Some(event) = self.driver.poll_event() {
            match event {
                DriverEvent::JobFinished { job, result } => {
                    if let Some(reply) = self.waiting.remove(&job) {
                        let _ = reply.send(result);
                    }
                }
                DriverEvent::WorkerRegistered(w) => {
                    tracing::debug!(%w, "worker registered");
                    self.observed.update(|m| {
                        m.registered.insert(w);
                        m.alive.insert(w);
                        *m.registrations.entry(w).or_default() += 1;
                    });
                }
                DriverEvent::WorkerRefused { worker, reason } => {
                    tracing::error!(%worker, %reason, "worker refused");
                    self.observed.update(|m| {
                        m.refused.insert(worker, reason);
                    });
                }
                DriverEvent::WorkerLost { worker, incarnation, reason } => {
                    tracing::warn!(%worker, incarnation, %reason, "worker lost");
                    self.observed.update(|m| {
                        m.lost.insert(worker, reason);
                        m.alive.remove(&worker);
                    });
                }
                DriverEvent::Speculated { task, worker } => tracing::debug!(%task, %worker, "speculative copy"),
            }
        }
    }

    /// Runs until `Stop` or until every sender of `inbox` is gone; then fails the jobs still
    /// waiting.
    pub(crate) fn run(mut self, inbox: Receiver<Input>) {
        'run: loop {
            match wait(&inbox, self.driver.poll_timeout(), &self.clock) {
                Wait::Input(input) => {
                    if !self.input(input) {
                        break;
                    }
                }
                Wait::Deadline => {}
                Wait::Closed => break,
            }
            if self.driver.poll_timeout().is_some_and(|t| self.clock.now() >= t) {
                // First take in what is already queued: a heartbeat waiting in the inbox is
                // proof of life, and a driver that fell behind must not report its senders
                // lost for it.
                for _ in 0..inbox.len() {
                    let Ok(input) = inbox.try_recv() else { break };
                    if !self.input(input) {
                        break 'run;
                    }
                }
                let now = self.clock.now();
                self.driver.handle_timeout(now);
                self.flush();
            }
        }
        for (_, reply) in std::mem::take(&mut self.waiting) {
            let _ = reply.send(Err(Error::ClusterStopped { submitted: true }));
        }
        self.observed.update(|m| m.stopped = true);
    }
}
