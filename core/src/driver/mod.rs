//! The driver: a state machine that turns jobs into stages and tasks, places tasks on workers,
//! tracks where blocks live, retries failed tasks and collects results. It does no I/O.
//!
//! # Driving it
//!
//! A runtime owns one [`Driver`] and, in a loop:
//! 1. feeds it inputs, always with the current time (`now` never goes backwards):
//!    [`Driver::submit_job`] for each job, [`Driver::handle_message`] for each message from a
//!    worker, [`Driver::handle_peer_lost`] when the transport reports a worker's connection
//!    gone (`TransportEvent::PeerLost`);
//! 2. after every input, drains its outputs: [`Driver::poll_transmit`] until `None`, sending
//!    each message (a send that fails because the worker is gone is itself reported with
//!    [`Driver::handle_peer_lost`]), then [`Driver::poll_event`] until `None`, delivering job
//!    results and membership changes;
//! 3. then reads [`Driver::poll_timeout`]: it waits for the next input until that time at the
//!    latest, and once `now` reaches it calls [`Driver::handle_timeout`] (an input like the
//!    others, so step 2 follows) and reads `poll_timeout` again. The deadline can move after
//!    any input, so it is read afresh each time round.
//!
//! Nothing happens between calls: the driver never runs by itself, and never reads a clock.
//!
//! # Membership
//!
//! Workers register, then heartbeat every [`crate::WorkerConfig::heartbeat_interval`]; any
//! message of a worker's current incarnation counts as hearing from it. A worker silent for
//! [`DriverConfig::heartbeat_timeout`], reported gone by the runtime, or replaced by a newer
//! incarnation is lost ([`DriverEvent::WorkerLost`]): no task is launched on it again, the
//! tasks running on it are relaunched elsewhere (attempt + 1), and every block it held is
//! forgotten (its cached partitions lose that holder; its shuffle outputs are missing, so the
//! stages that need them recompute them). Messages of a lost incarnation, or of one older than
//! the registered one, are ignored. A lost worker returns only as a newer incarnation.

mod announce;
mod blocks;
mod membership;
mod plan;
mod speculation;
mod stages;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::context::{BlockUpload, JobRequest};
use crate::dead_letter::{DeadLetterLog, Isolation};
use crate::error::{Error, TaskError};
use crate::graph::{ActionNode, Graph, ProgramSummary, Released};
use crate::ids::{ActionId, BlockId, JobId, NodeId, RddId, ShuffleId, StageId, TaskId, WorkerId};
use crate::message::{Builtin, Fact, Message, Payload};
use crate::time::Time;

pub use membership::LossReason;
use membership::{Lost, Membership, Registration};

/// Settings of the driver.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// Attempts a task gets before its job fails (retryable errors only).
    pub task_attempts_max: u32,
    /// Times a task may be relaunched because a block it needed was missing.
    pub fetch_failures_max: u32,
    /// How long a worker may stay silent (no heartbeat, no message) before it is reported lost.
    ///
    /// Default 1 s, ten heartbeat intervals of the worker's default 100 ms
    /// ([`crate::WorkerConfig::heartbeat_interval`]). Spark's executors heartbeat every 10 s
    /// and are declared lost after 120 s: with sub-second batches that is hundreds of batches
    /// waiting on a dead worker. One second notices a loss within a few batches of 200 ms to
    /// 1 s, while tolerating nine heartbeats in a row lost or late: heartbeats come from the
    /// worker's state-machine thread, which never runs a task, so only a stalled process or a
    /// broken link keeps them away that long. A worker reported lost by mistake is only an
    /// efficiency loss (its tasks and blocks are redone elsewhere), never a wrong result.
    pub heartbeat_timeout: Duration,
    /// On how many distinct workers each input block is stored before its upload completes
    /// (the paper's two copies by default). An upload waits while fewer workers are
    /// registered; it never stores fewer copies.
    pub input_replicas: u32,
    /// How long an upload of input blocks waits for `input_replicas` alive workers before it
    /// fails with [`Error::NotEnoughWorkers`]: 10 s by default, ten heartbeat timeouts, time
    /// for a lost worker's replacement to join.
    pub upload_wait_max: Duration,
    /// Whether the blocks the driver sends are encoded (workers in other processes, or the
    /// stepping harness's wire mode); within one process they move as shared pointers.
    pub encode_payloads: bool,
    /// How long a job waits while no worker is alive before it fails with
    /// [`Error::NoWorkers`]: 30 s by default, time for a supervisor to restart lost workers
    /// (or for the first ones to register) without a batch waiting forever.
    pub workers_wait_max: Duration,
    /// Whether straggling tasks get a copy on another worker, the first result winning (on by
    /// default: a batch waits for its slowest task, so one slow machine delays every batch).
    /// A task is a straggler once it ran `speculation_multiplier` times the median of its
    /// stage's finished tasks, at least `speculation_min_runtime`, after
    /// `speculation_quantile` of them finished.
    pub speculation: bool,
    /// 1.4, the D-Streams paper's own setting (SOSP 2013, section 6.2): a batch's tasks do
    /// alike amounts of work, so 40 % over the median is already slow, where Spark's batch
    /// default (1.5 in Spark 3, 3 in Spark 4) waits for tasks of skewed batch jobs.
    pub speculation_multiplier: f64,
    /// 0.75 of a stage's tasks finished before any copy (Spark 3's default): a streaming
    /// stage often has few tasks, and Spark 4's 0.9 would wait for every one of four.
    pub speculation_quantile: f64,
    /// 100 ms (Spark's default): no copy of a task shorter than this, so the tasks of a busy
    /// batch interval are not duplicated over noise.
    pub speculation_min_runtime: Duration,
}

impl DriverConfig {
    /// The defaults: 4 attempts per task (as Spark), 16 relaunches for missing blocks, workers
    /// lost after 1 s of silence, input blocks on 2 workers, payloads not encoded.
    pub fn new() -> DriverConfig {
        DriverConfig {
            task_attempts_max: 4,
            fetch_failures_max: 16,
            heartbeat_timeout: Duration::from_secs(1),
            input_replicas: 2,
            upload_wait_max: Duration::from_secs(10),
            encode_payloads: false,
            workers_wait_max: Duration::from_secs(30),
            speculation: true,
            speculation_multiplier: 1.4,
            speculation_quantile: 0.75,
            speculation_min_runtime: Duration::from_millis(100),
        }
    }
}

impl Default for DriverConfig {
    fn default() -> DriverConfig {
        DriverConfig::new()
    }
}

/// What the driver reports to its runtime.
#[derive(Debug)]
pub enum DriverEvent {
    /// A job ended: one payload per requested partition, in order, or why it failed.
    JobFinished {
        /// The job.
        job: JobId,
        /// Its results or its error.
        result: Result<Vec<Payload>, Error>,
    },
    /// A worker registered and will receive tasks.
    WorkerRegistered(WorkerId),
    /// A worker tried to register with another program and was refused.
    WorkerRefused {
        /// The worker.
        worker: WorkerId,
        /// Why.
        reason: String,
    },
    /// An incarnation of a worker is lost: it gets no more tasks, its running tasks are
    /// relaunched elsewhere and its blocks are forgotten. Only a newer incarnation of the worker
    /// can register again.
    WorkerLost {
        /// The worker.
        worker: WorkerId,
        /// The incarnation that is lost.
        incarnation: u64,
        /// Why it is considered lost.
        reason: LossReason,
    },
    /// A straggling task got a copy on another worker (see
    /// [`DriverConfig::speculation`]); the first of the two to finish completes the task.
    Speculated {
        /// The task.
        task: TaskId,
        /// Where the copy runs.
        worker: WorkerId,
    },
}

struct Job {
    action: ActionId,
    /// What the action computes, if it is a built-in one.
    builtin: Option<Builtin>,
    /// Keeps the action, and through it the dataset's lineage, alive while the job runs.
    _handle: Arc<dyn ActionNode>,
    /// Where each requested partition's result goes in `results` (the request's order).
    slots: BTreeMap<u32, Vec<usize>>,
    results: Vec<Option<Payload>>,
    /// Distinct partitions without a result yet.
    remaining: usize,
    /// Where its tasks' dead letters go, when its context has streams with them on.
    dead_letters: Option<Arc<DeadLetterLog>>,
    /// When it was submitted.
    submitted: Time,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StageKind {
    Result(JobId),
    ShuffleMap(ShuffleId),
}

#[derive(Debug)]
struct Stage {
    rdd: RddId,
    kind: StageKind,
    /// Partitions whose output does not exist yet.
    missing: BTreeSet<u32>,
    /// Partitions with a task queued or running.
    active: BTreeMap<u32, TaskId>,
    /// Stages waiting for this one to finish.
    children: BTreeSet<StageId>,
    /// Jobs that need this stage.
    jobs: BTreeSet<JobId>,
    /// Tasks created for it, and how long those that finished took, sorted (for speculation).
    tasks: usize,
    durations: Vec<Duration>,
}

#[derive(Debug)]
struct Task {
    stage: StageId,
    partition: u32,
    attempt: u32,
    failures: u32,
    fetch_failures: u32,
    worker: Option<WorkerId>,
    /// Set for the one isolating attempt after every ordinary one panicked (dead letters).
    isolation: Option<Isolation>,
    /// When the attempt was launched.
    launched: Time,
    /// A speculative second attempt, running alongside.
    copy: Option<speculation::Copy>,
    /// The number the next attempt (a retry or a copy) gets.
    next_attempt: u32,
}

/// The driver state machine. See the [module documentation](self) for how to drive it.
pub struct Driver {
    config: DriverConfig,
    graph: Arc<Graph>,
    now: Time,
    members: Membership,
    next_id: u64,
    jobs: BTreeMap<JobId, Job>,
    stages: BTreeMap<StageId, Stage>,
    shuffle_stages: BTreeMap<ShuffleId, StageId>,
    map_outputs: BTreeMap<ShuffleId, Vec<Option<WorkerId>>>,
    cached: BTreeMap<(RddId, u32), BTreeSet<WorkerId>>,
    inputs: blocks::InputBlocks,
    announcements: announce::Announcements,
    tasks: BTreeMap<TaskId, Task>,
    pending: VecDeque<TaskId>,
    outbox: VecDeque<(NodeId, Message)>,
    events: VecDeque<DriverEvent>,
    /// Since when no worker has been alive (the start, before any registered); `None` while
    /// some worker is.
    no_worker_since: Option<Time>,
}

impl Driver {
    /// A driver for the program whose nodes are in `graph`.
    pub fn new(config: DriverConfig, graph: Arc<Graph>) -> Driver {
        Driver {
            members: Membership::new(config.heartbeat_timeout),
            config,
            graph,
            now: Time::ZERO,
            next_id: 0,
            jobs: BTreeMap::new(),
            stages: BTreeMap::new(),
            shuffle_stages: BTreeMap::new(),
            map_outputs: BTreeMap::new(),
            cached: BTreeMap::new(),
            inputs: blocks::InputBlocks::default(),
            announcements: announce::Announcements::default(),
            tasks: BTreeMap::new(),
            pending: VecDeque::new(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            no_worker_since: Some(Time::ZERO),
        }
    }

    fn advance(&mut self, now: Time) {
        debug_assert!(now >= self.now, "time went backwards: {now} < {}", self.now);
        self.now = self.now.max(now);
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The next message to send, if any.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<(NodeId, Message)> {
        self.outbox.pop_front()
    }

    /// The next event for the runtime, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<DriverEvent> {
        self.events.pop_front()
    }

    /// When [`Driver::handle_timeout`] is to be called next (once `now` reaches it), if ever:
    /// the moment the first alive worker will have been silent for
    /// [`DriverConfig::heartbeat_timeout`] unless it is heard from before, an upload stops
    /// waiting for workers, or, while no worker is alive, a job stops waiting for one.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        let uploads = self.inputs.next_deadline(self.config.upload_wait_max);
        let timers = [self.members.next_deadline(), uploads, self.no_workers_deadline(), self.next_speculation()];
        timers.into_iter().flatten().min()
    }

    /// While no worker is alive, when the job waiting longest for one fails.
    fn no_workers_deadline(&self) -> Option<Time> {
        let since = self.no_worker_since?;
        let oldest = self.jobs.values().map(|j| j.submitted).min()?;
        Some(since.max(oldest) + self.config.workers_wait_max)
    }

    /// Handles the passing of time: every alive worker silent for
    /// [`DriverConfig::heartbeat_timeout`] at `now` is reported lost
    /// ([`LossReason::Timeout`]); while no worker is alive, the jobs that waited
    /// [`DriverConfig::workers_wait_max`] for one fail with [`Error::NoWorkers`]. Calling it
    /// early does no harm.
    pub fn handle_timeout(&mut self, now: Time) {
        self.advance(now);
        for (worker, silent_for) in self.members.expired(self.now) {
            self.lose(worker, LossReason::Timeout { silent_for });
        }
        self.fail_jobs_without_workers();
        self.poll_uploads();
        self.schedule();
        self.speculate();
        self.check_invariants();
    }

    /// Handles the runtime's report that the connection to `worker` is gone (the transport's
    /// `PeerLost`, or a send to it that failed): its registered incarnation is reported lost at
    /// once ([`LossReason::PeerLost`]). A worker unknown or already lost is left as it is.
    pub fn handle_peer_lost(&mut self, now: Time, worker: WorkerId) {
        self.advance(now);
        if !self.lose(worker, LossReason::PeerLost) {
            tracing::debug!(%worker, "peer lost: the worker is not alive anyway");
        }
        self.schedule();
        self.check_invariants();
    }

    /// The number of jobs submitted and not yet finished.
    pub fn active_jobs(&self) -> usize {
        self.jobs.len()
    }

    /// The workers registered and alive (not lost), in id order.
    pub fn workers(&self) -> impl Iterator<Item = WorkerId> + '_ {
        self.members.alive()
    }

    /// The registered incarnation of `worker` and whether it is alive; `None` if it never
    /// registered.
    pub fn worker_incarnation(&self, worker: WorkerId) -> Option<(u64, bool)> {
        self.members.incarnation(worker)
    }

    /// Task attempts launched on alive workers that have not reported back yet.
    pub fn running_tasks(&self) -> usize {
        self.members.running()
    }

    /// Submits a job; its result comes out of [`Driver::poll_event`] as
    /// [`DriverEvent::JobFinished`] with the returned id.
    pub fn submit_job(&mut self, now: Time, request: JobRequest) -> JobId {
        self.advance(now);
        self.release_dropped();
        let job = JobId(self.fresh_id());
        let n = request.partitions.len();
        if n == 0 {
            self.events.push_back(DriverEvent::JobFinished { job, result: Ok(Vec::new()) });
            return job;
        }
        let stage = StageId(self.fresh_id());
        let missing: BTreeSet<u32> = request.partitions.iter().copied().collect();
        self.stages.insert(
            stage,
            Stage {
                rdd: request.rdd,
                kind: StageKind::Result(job),
                missing,
                active: BTreeMap::new(),
                children: BTreeSet::new(),
                jobs: BTreeSet::from([job]),
                tasks: 0,
                durations: Vec::new(),
            },
        );
        let mut slots: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, p) in request.partitions.iter().enumerate() {
            slots.entry(*p).or_default().push(i);
        }
        let remaining = slots.len();
        self.jobs.insert(
            job,
            Job {
                action: request.action,
                builtin: request.builtin,
                _handle: request.handle,
                slots,
                results: vec![None; n],
                remaining,
                dead_letters: request.dead_letters,
                submitted: self.now,
            },
        );
        self.submit_stage(stage);
        self.schedule();
        self.check_invariants();
        job
    }

    /// Where each stored input block's replicas are, by block: what the driver's block tracker
    /// knows.
    pub fn input_blocks(&self) -> BTreeMap<BlockId, Vec<WorkerId>> {
        self.inputs.all().map(|(b, w)| (b, w.iter().copied().collect())).collect()
    }

    /// Stores the blocks of `upload` on the workers, each on `input_replicas` distinct ones;
    /// completion comes out of [`Driver::poll_event`] as [`DriverEvent::JobFinished`] with the
    /// returned id and no payloads. Tasks reading the blocks then run where they are.
    pub fn store_blocks(&mut self, now: Time, upload: BlockUpload) -> JobId {
        self.advance(now);
        // The batches the program forgot go first: their blocks make room for these.
        self.release_dropped();
        let job = JobId(self.fresh_id());
        let alive = self.members.alive().collect();
        let mut place = placement(alive, &self.config, &mut self.outbox);
        if let Some((job, result)) = self.inputs.submit(self.now, job, upload, &mut place) {
            self.upload_finished(job, result);
        }
        job
    }

    /// Tells every worker with a graph of its own `fact`, and any that registers later while it
    /// still matters (see [`Fact`]); workers sharing the driver's graph need none.
    pub fn announce(&mut self, now: Time, fact: Fact) {
        self.advance(now);
        self.announcements.tell(fact, self.members.alive(), &mut self.outbox);
    }

    /// How many uploads of input blocks have not ended.
    pub fn uploads_in_progress(&self) -> usize {
        self.inputs.in_progress()
    }

    /// Starts the queued uploads that enough alive workers can take; fails those that waited
    /// too long.
    fn poll_uploads(&mut self) {
        let alive = self.members.alive().collect();
        let mut place = placement(alive, &self.config, &mut self.outbox);
        for (job, result) in self.inputs.poll_queued(self.now, self.config.upload_wait_max, &mut place) {
            self.upload_finished(job, result);
        }
    }

    /// Reports uploads that ended, releasing from every worker the batches of those that failed.
    fn uploads_ended(&mut self, ended: Vec<blocks::Ended>) {
        for ((job, result), released) in ended {
            if !released.is_empty() {
                self.release_on_workers(&Released { input_blocks: released, ..Released::default() });
            }
            self.upload_finished(job, result);
        }
    }

    fn upload_finished(&mut self, job: JobId, result: Result<(), Error>) {
        self.events.push_back(DriverEvent::JobFinished { job, result: result.map(|()| Vec::new()) });
    }

    fn block_stored(&mut self, from: WorkerId, block: BlockId, result: Result<(), TaskError>) {
        let ended = self.inputs.stored(from, block, result);
        self.uploads_ended(ended.into_iter().collect());
    }

    /// Handles a message from a worker. A message of a lost incarnation, or of one older than
    /// the registered one, is ignored.
    pub fn handle_message(&mut self, now: Time, from: WorkerId, msg: Message) {
        self.advance(now);
        if let (Some(incarnation), false) = (msg.incarnation(), matches!(msg, Message::Register { .. })) {
            if let Err(known) = self.members.hear(self.now, from, incarnation) {
                tracing::debug!(
                    kind = msg.kind(),
                    %from,
                    incarnation,
                    ?known,
                    "driver ignores a message from an incarnation that is lost, replaced or unknown"
                );
                return;
            }
        }
        match msg {
            Message::Register { slots, program, incarnation } => self.register(from, incarnation, slots, program),
            Message::Heartbeat { .. } => {}
            Message::TaskFinished { task, attempt, outcome, stored, dead_letters, .. } => {
                self.task_finished(from, task, attempt, outcome, stored, dead_letters)
            }
            Message::BlocksDropped { blocks, .. } => blocks.iter().for_each(|b| self.forget_block(*b, Some(from))),
            Message::BlockStored { block, result, .. } => self.block_stored(from, block, result),
            other => {
                tracing::warn!(kind = other.kind(), %from, "driver ignores an unexpected message")
            }
        }
        self.schedule();
        // A finished task frees a slot: a straggler waiting for one gets its copy now.
        self.speculate();
        self.check_invariants();
    }

    /// Accepts a worker, unless the program it built differs from the driver's.
    fn register(&mut self, worker: WorkerId, incarnation: u64, slots: u32, program: Option<ProgramSummary>) {
        let own_graph = program.is_some();
        let differs = program.and_then(|theirs| self.graph.program().difference(&theirs));
        if let Some(difference) = differs {
            let reason = format!(
                "the worker built another program than the driver: {difference} (\"here\" is the driver); start every process from the same binary with the same arguments"
            );
            self.outbox.push_back((NodeId::Worker(worker), Message::Refused { reason: reason.clone() }));
            self.events.push_back(DriverEvent::WorkerRefused { worker, reason });
            return;
        }
        match self.members.register(self.now, worker, incarnation, slots) {
            Registration::Stale { known } => {
                tracing::debug!(%worker, incarnation, known, "driver ignores the registration of an old incarnation");
                return;
            }
            Registration::Again => {}
            Registration::New | Registration::Returned => {
                self.events.push_back(DriverEvent::WorkerRegistered(worker));
                self.no_worker_since = None;
            }
            Registration::Replaced(lost) => {
                self.worker_lost(worker, lost, LossReason::Replaced { by: incarnation });
                self.events.push_back(DriverEvent::WorkerRegistered(worker));
                self.no_worker_since = None;
            }
        }
        self.outbox.push_back((NodeId::Worker(worker), Message::Registered));
        self.announcements.registered(worker, own_graph, &mut self.outbox);
        self.poll_uploads();
    }

    /// Fails the jobs that waited `workers_wait_max` for a worker while none was alive.
    fn fail_jobs_without_workers(&mut self) {
        let Some(since) = self.no_worker_since else { return };
        let wait = self.config.workers_wait_max;
        let expired: Vec<(JobId, Time)> = self
            .jobs
            .iter()
            .map(|(id, j)| (*id, since.max(j.submitted)))
            .filter(|(_, from)| *from + wait <= self.now)
            .collect();
        for (job, from) in expired {
            debug_assert_eq!(self.members.alive().count(), 0, "{job} failed for want of workers while some are alive");
            if self.jobs.remove(&job).is_some() {
                let error = Error::NoWorkers { waited: self.now - from };
                self.events.push_back(DriverEvent::JobFinished { job, result: Err(error) });
            }
            self.drop_job_stages(job);
        }
    }

    /// Reports the alive incarnation of `worker` lost; false if it was not alive.
    fn lose(&mut self, worker: WorkerId, reason: LossReason) -> bool {
        match self.members.lose(worker, reason) {
            Some(lost) => {
                self.worker_lost(worker, lost, reason);
                if self.members.alive().next().is_none() {
                    self.no_worker_since = Some(self.now);
                }
                true
            }
            None => false,
        }
    }

    /// What follows the loss of an incarnation, already marked lost in the membership: its
    /// running tasks are queued again, with a new attempt, and the blocks it held are forgotten.
    /// Lost shuffle outputs are recomputed by the missing-output paths when a task needs them.
    fn worker_lost(&mut self, worker: WorkerId, lost: Lost, reason: LossReason) {
        tracing::warn!(%worker, incarnation = lost.incarnation, %reason, "worker lost");
        self.events.push_back(DriverEvent::WorkerLost { worker, incarnation: lost.incarnation, reason });
        for (task_id, attempt) in lost.running {
            let Some(task) = self.tasks.get_mut(&task_id) else { continue };
            let main = task.attempt == attempt && task.worker == Some(worker);
            let copy = task.copy.is_some_and(|c| c.attempt == attempt && c.worker == worker);
            if (main || copy) && !Driver::hand_over(task, attempt) {
                if let Some(task) = self.tasks.remove(&task_id) {
                    self.requeue(task_id, task);
                }
            }
        }
        self.cached.retain(|_, holders| {
            holders.remove(&worker);
            !holders.is_empty()
        });
        let alive = self.members.alive().collect();
        let mut place = placement(alive, &self.config, &mut self.outbox);
        let ended = self.inputs.worker_lost(worker, &mut place);
        self.uploads_ended(ended);
        for outputs in self.map_outputs.values_mut() {
            for slot in outputs.iter_mut().filter(|s| **s == Some(worker)) {
                *slot = None;
            }
        }
    }

    /// Checks the invariants that tie tasks and blocks to membership (debug builds only): a
    /// launched task's attempt runs on an alive worker that counts it among its running
    /// attempts, and every block holder is alive.
    fn check_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        self.members.check();
        for (id, task) in &self.tasks {
            if let Some(w) = task.worker {
                debug_assert!(
                    self.members.runs(w, *id, task.attempt),
                    "{id} attempt {} on {w}: not running there",
                    task.attempt
                );
            }
            if let Some(c) = task.copy {
                debug_assert!(
                    task.worker.is_some_and(|w| w != c.worker),
                    "{id}: a copy without its task, or beside it"
                );
                debug_assert!(self.members.runs(c.worker, *id, c.attempt), "{id} copy {} on {}", c.attempt, c.worker);
            }
            debug_assert!(task.attempt < task.next_attempt, "{id}: attempt numbers run backwards");
        }
        for ((rdd, p), holders) in &self.cached {
            debug_assert!(holders.iter().all(|w| self.members.is_alive(*w)), "{rdd}/p{p} held by a lost worker");
        }
        for (block, holders) in self.inputs.all() {
            debug_assert!(holders.iter().all(|w| self.members.is_alive(*w)), "{block} held by a lost worker");
        }
        for (shuffle, outputs) in &self.map_outputs {
            debug_assert!(
                outputs.iter().flatten().all(|w| self.members.is_alive(*w)),
                "{shuffle} has an output on a lost worker"
            );
        }
    }

    /// Tells the workers to drop the blocks of datasets and shuffles the program dropped.
    fn release_dropped(&mut self) {
        let released = self.graph.take_released();
        if released == Released::default() {
            return;
        }
        self.inputs.release(&released.input_blocks);
        for s in &released.shuffles {
            self.map_outputs.remove(s);
        }
        let rdds: BTreeSet<RddId> = released.rdds.iter().copied().collect();
        self.cached.retain(|(rdd, _), _| !rdds.contains(rdd));
        self.release_on_workers(&released);
    }

    /// Tells every alive worker to drop the blocks of `released`.
    fn release_on_workers(&mut self, released: &Released) {
        self.announcements.release(&released.inputs);
        for w in self.members.alive() {
            let msg = Message::Release {
                shuffles: released.shuffles.clone(),
                rdds: released.rdds.clone(),
                inputs: released.inputs.clone(),
                input_blocks: released.input_blocks.clone(),
            };
            self.outbox.push_back((NodeId::Worker(w), msg));
        }
    }

    fn forget_block(&mut self, block: BlockId, holder: Option<WorkerId>) {
        match block {
            BlockId::Rdd { rdd, partition } => {
                if let Some(set) = self.cached.get_mut(&(rdd, partition)) {
                    match holder {
                        Some(w) => {
                            set.remove(&w);
                        }
                        None => set.clear(),
                    }
                    if set.is_empty() {
                        self.cached.remove(&(rdd, partition));
                    }
                }
            }
            BlockId::Shuffle { shuffle, map, .. } => {
                if let Some(slot) = self.map_outputs.get_mut(&shuffle).and_then(|o| o.get_mut(map as usize)) {
                    if holder.is_none() || *slot == holder {
                        *slot = None;
                    }
                }
            }
            // A replica no worker reports is gone from that worker; a task's failure to fetch
            // one says nothing of the others, which the task tries in turn.
            BlockId::Input { .. } => {
                if let Some(w) = holder {
                    self.inputs.dropped(block, w);
                }
            }
        }
    }
}

/// Where the replicas of an upload can go: the alive workers, in id order.
fn placement<'a>(
    workers: Vec<WorkerId>,
    config: &DriverConfig,
    outbox: &'a mut VecDeque<(NodeId, Message)>,
) -> blocks::Placement<'a> {
    blocks::Placement {
        workers,
        replicas: config.input_replicas.max(1) as usize,
        encode: config.encode_payloads,
        outbox,
    }
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("workers", &self.members.alive().count())
            .field("jobs", &self.jobs.len())
            .field("stages", &self.stages.len())
            .field("pending", &self.pending.len())
            .finish()
    }
}

#[cfg(test)]
mod tests;
