//! The stepping harness: a driver and N workers stepped by one thread, with a seeded choice of
//! which message is delivered or which task runs next, tasks run inline, and a trace of every
//! step. The same seed gives the same trace; every seed gives the same results.
//!
//! It runs the same state machines as every other mode; only delivery, time and the executor
//! differ. Messages between one pair of members stay in order (as over one TCP connection),
//! while the interleaving across pairs and tasks follows the seed.
//!
//! Time is virtual: each step moves it forward by a microsecond, and the machines' timers
//! (heartbeats, fetch and heartbeat timeouts) fire when it reaches their deadlines, in deadline
//! order (ties: the driver first, then the workers by id), each firing a step of the trace.
//! [`StepCluster::advance`] moves it on explicitly; a job waiting only on time (the tasks of a
//! silent worker, relaunched once the driver's heartbeat timeout passes) makes
//! [`Context`]'s actions jump to the next deadline. Faults ([`Fault`]: isolating or restarting
//! a worker) are applied at once or at a planned virtual time.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::Duration;

use crate::codec;
use crate::context::{BlockUpload, Context, JobRequest, JobRunner};
use crate::driver::{Driver, DriverConfig, DriverEvent, LossReason};
use crate::error::Error;
use crate::graph::Graph;
use crate::ids::{BlockId, JobId, NodeId, TaskId, WorkerId};
use crate::message::{Fact, Message, Payload};
use crate::rng::SplitMix64;
use crate::time::Time;
use crate::worker::{RunnableTask, Worker, WorkerConfig};

mod programs;

/// One step of the harness, as recorded in its trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A message was delivered.
    Deliver {
        /// The sender.
        from: NodeId,
        /// The receiver.
        to: NodeId,
        /// The kind of message (see [`Message::kind`]).
        kind: &'static str,
    },
    /// A task ran to completion on a worker.
    Run {
        /// The worker.
        worker: WorkerId,
        /// The task.
        task: TaskId,
        /// The attempt.
        attempt: u32,
    },
    /// A member's timer fired (its `handle_timeout` was called).
    Timer {
        /// The member.
        node: NodeId,
    },
    /// A message was dropped: it came from or went to an isolated worker, or went to a worker
    /// that was restarted before it arrived.
    Dropped {
        /// The sender.
        from: NodeId,
        /// The receiver.
        to: NodeId,
        /// The kind of message (see [`Message::kind`]).
        kind: &'static str,
    },
    /// The driver launched a copy of a straggling task ([`DriverEvent::Speculated`]).
    Speculated {
        /// The task.
        task: TaskId,
        /// Where the copy runs.
        worker: WorkerId,
    },
    /// The driver reported a worker lost ([`DriverEvent::WorkerLost`]).
    Lost {
        /// The worker.
        worker: WorkerId,
        /// Its incarnation that is lost.
        incarnation: u64,
        /// Why.
        reason: LossReason,
    },
    /// A fault was applied.
    Fault(Fault),
}

/// A fault the harness can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Every message from or to the worker is dropped from now on, including those in flight;
    /// the worker itself goes on running (a network partition). A restart ends it.
    Isolate(WorkerId),
    /// The worker's process is replaced by a fresh one: a new [`Worker`] with the next
    /// incarnation and an empty block store. Messages in flight to the old process, and from
    /// it to other workers, are lost, and so are the tasks it had ready to run; those from it
    /// to the driver still arrive (late messages of the old incarnation, which the driver
    /// ignores). An isolated worker is reconnected by its restart.
    Restart(WorkerId),
}

/// Builds a [`StepCluster`].
#[derive(Clone, Debug)]
pub struct StepClusterBuilder {
    workers: u32,
    seed: u64,
    wire: bool,
    worker: WorkerConfig,
    task_attempts_max: u32,
    input_replicas: Option<u32>,
    heartbeat_timeout: Duration,
    speculation: bool,
    step_nanos: u64,
}

impl StepClusterBuilder {
    /// The number of workers (default 2; at least 1).
    pub fn workers(mut self, n: u32) -> Self {
        self.workers = n.max(1);
        self
    }

    /// The seed of the delivery order (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Whether every message goes through the codec and workers encode their payloads, as
    /// between processes (default true).
    pub fn wire(mut self, wire: bool) -> Self {
        self.wire = wire;
        self
    }

    /// Task slots per worker (default 2).
    pub fn slots(mut self, slots: u32) -> Self {
        self.worker.slots = slots.max(1);
        self
    }

    /// Each worker's block store limit in estimated bytes (default 1 GiB).
    pub fn block_store_bytes_max(mut self, bytes: u64) -> Self {
        self.worker.block_store_bytes_max = bytes;
        self
    }

    /// Attempts a task gets before its job fails (default 4).
    pub fn task_attempts_max(mut self, attempts: u32) -> Self {
        self.task_attempts_max = attempts.max(1);
        self
    }

    /// On how many distinct workers each input block is stored (default 2, as in the paper,
    /// or 1 for a cluster of one worker; more than the workers can never complete).
    pub fn input_replicas(mut self, replicas: u32) -> Self {
        self.input_replicas = Some(replicas.max(1));
        self
    }

    /// How often workers heartbeat (default: [`WorkerConfig::heartbeat_interval`], 100 ms).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.worker.heartbeat_interval = interval.max(Duration::from_micros(1));
        self
    }

    /// How long a silent worker stays alive for the driver (default:
    /// [`DriverConfig::heartbeat_timeout`], 1 s).
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat_timeout = timeout.max(Duration::from_micros(1));
        self
    }

    /// How long a worker waits for a fetch reply (default: [`WorkerConfig::fetch_timeout`],
    /// 5 s).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.worker.fetch_timeout = timeout.max(Duration::from_micros(1));
        self
    }

    /// Whether straggling tasks get a copy on another worker (default: on, see
    /// [`DriverConfig::speculation`]). Tasks take no virtual time here, so only a task out on
    /// a silent worker straggles.
    pub fn speculation(mut self, on: bool) -> Self {
        self.speculation = on;
        self
    }

    /// Builds the cluster with an empty program graph, shared by the driver and the workers
    /// (as in one process). [`StepClusterBuilder::build_with_worker_programs`] gives every
    /// worker a graph of its own instead.
    pub fn build(self) -> StepCluster {
        self.build_on(None)
    }

    fn build_on(self, own: Option<programs::OwnGraphs>) -> StepCluster {
        let graph = Graph::new();
        let sim = Sim::new(&self, Arc::clone(&graph), own);
        let runner = Arc::new(StepRunner { sim: Mutex::new(sim), busy: Mutex::new(None) });
        StepCluster { context: Context::new(graph, runner.clone()), runner }
    }
}

/// A driver and workers stepped by one thread in a seeded order.
///
/// # Examples
///
/// ```
/// use dstream::StepCluster;
/// let cluster = StepCluster::builder().workers(4).seed(42).build();
/// let words = cluster.context().parallelize(vec!["a b".to_string(), "b".to_string()], 2)?;
/// let mut counts = words
///     .flat_map(|l| l.split(' ').map(str::to_owned).collect::<Vec<_>>())
///     .map(|w| (w, 1))
///     .reduce_by_key(|a, b| a + b)
///     .collect()?;
/// counts.sort();
/// assert_eq!(counts, vec![("a".to_string(), 1), ("b".to_string(), 2)]);
/// assert!(!cluster.trace().is_empty());
/// # Ok::<(), dstream::Error>(())
/// ```
pub struct StepCluster {
    context: Context,
    runner: Arc<StepRunner>,
}

impl StepCluster {
    /// A builder with the defaults: 2 workers, seed 0, wire mode on.
    pub fn builder() -> StepClusterBuilder {
        let mut worker = WorkerConfig::new();
        worker.encode_payloads = true;
        worker.shares_driver_graph = true;
        StepClusterBuilder {
            workers: 2,
            seed: 0,
            wire: true,
            worker,
            task_attempts_max: 4,
            input_replicas: None,
            heartbeat_timeout: DriverConfig::new().heartbeat_timeout,
            speculation: DriverConfig::new().speculation,
            step_nanos: 1_000,
        }
    }

    /// The context to create datasets in.
    pub fn context(&self) -> Context {
        self.context.clone()
    }

    /// Every step taken so far.
    pub fn trace(&self) -> Vec<Step> {
        self.runner.sim().trace.clone()
    }

    /// The virtual time: each step advances it by a fixed amount (a microsecond), and
    /// [`StepCluster::advance`] or a job waiting on a timer moves it further.
    pub fn now(&self) -> Time {
        self.runner.sim().now
    }

    /// Steps until no message is in flight and no task is ready: every message sent so far has
    /// been handled. Time moves only by the steps taken, so it never waits for a timer (and
    /// never spins on heartbeats). Returns the number of steps taken.
    pub fn settle(&self) -> Result<usize, Error> {
        let mut sim = self.runner.sim();
        let mut steps = 0;
        loop {
            sim.collect_outputs()?;
            if !sim.step()? {
                return Ok(steps);
            }
            steps += 1;
        }
    }

    /// What each worker with a graph of its own keeps of the driver's announcements: input
    /// batches and job results (see
    /// [`StepClusterBuilder::build_with_worker_programs`]); empty with a shared graph.
    pub fn worker_batch_facts(&self) -> Vec<(usize, usize)> {
        let sim = self.runner.sim();
        let graphs = sim.own.iter().flat_map(|o| (0..sim.workers.len() as u32).map(move |i| o.graph(i)));
        graphs.filter_map(|g| g.replica().map(crate::replica::Replica::kept)).collect()
    }

    /// Where the driver's block tracker says each stored input block's replicas are.
    pub fn input_blocks(&self) -> BTreeMap<BlockId, Vec<WorkerId>> {
        self.runner.sim().driver.input_blocks()
    }

    /// The ids of the blocks each worker's store holds, by worker.
    pub fn stored_block_ids(&self) -> Vec<Vec<BlockId>> {
        self.runner.sim().workers.iter().map(Worker::stored_block_ids).collect()
    }

    /// Moves virtual time forward by `by`: runs every step there is to run, and whenever
    /// nothing is left, jumps to the next timer deadline or planned fault, up to `now + by`.
    /// Timers fire in deadline order (ties: the driver, then the workers by id) and the steps
    /// their messages cause run before time moves on. Ends at `now + by` at the earliest (later
    /// only if the last steps ran past it), with nothing in flight. Returns the number of
    /// message and task steps taken.
    pub fn advance(&self, by: Duration) -> Result<usize, Error> {
        let mut sim = self.runner.sim();
        let end = sim.now + by;
        let mut steps = 0;
        loop {
            sim.collect_outputs()?;
            if sim.step()? {
                steps += 1;
                continue;
            }
            match sim.next_deadline() {
                Some(at) if at <= end => sim.jump(at)?,
                _ => break,
            }
        }
        sim.now = sim.now.max(end);
        Ok(steps)
    }

    /// Isolates `worker` now ([`Fault::Isolate`]): its messages are dropped both ways.
    pub fn isolate(&self, worker: WorkerId) -> Result<(), Error> {
        let mut sim = self.runner.sim();
        sim.apply(Fault::Isolate(worker))?;
        sim.collect_outputs()
    }

    /// Restarts `worker` now ([`Fault::Restart`]): a fresh worker with the next incarnation and
    /// an empty store, which registers with the driver as the next steps run.
    pub fn restart_worker(&self, worker: WorkerId) -> Result<(), Error> {
        let mut sim = self.runner.sim();
        sim.apply(Fault::Restart(worker))?;
        sim.collect_outputs()
    }

    /// Plans `fault` for the moment virtual time reaches `at` (applied before the step or timer
    /// of that moment; at once, on the next step, if `at` has passed). Faults planned for the
    /// same time apply in the order they were planned.
    pub fn fault_at(&self, at: Time, fault: Fault) {
        let mut sim = self.runner.sim();
        let i = sim.planned.partition_point(|(t, _)| *t <= at);
        sim.planned.insert(i, (at, fault));
    }

    /// The incarnation each worker currently runs.
    pub fn incarnations(&self) -> Vec<u64> {
        self.runner.sim().workers.iter().map(Worker::incarnation).collect()
    }

    /// The workers the driver considers alive, in id order.
    pub fn alive_workers(&self) -> Vec<WorkerId> {
        self.runner.sim().driver.workers().collect()
    }

    /// Estimated bytes held by each worker's block store.
    pub fn stored_bytes(&self) -> Vec<u64> {
        self.runner.sim().workers.iter().map(Worker::stored_bytes).collect()
    }
}

impl std::fmt::Debug for StepCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepCluster").field("steps", &self.runner.sim().trace.len()).finish()
    }
}

struct StepRunner {
    sim: Mutex<Sim>,
    /// The thread inside `run_job`, to refuse an action called from inside a task.
    busy: Mutex<Option<ThreadId>>,
}

impl StepRunner {
    fn sim(&self) -> MutexGuard<'_, Sim> {
        // The simulation's state stays consistent across a panic in user code (tasks catch
        // their panics), so a poisoned lock is safe to reuse.
        self.sim.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl JobRunner for StepRunner {
    fn run_job(&self, job: JobRequest) -> Result<Vec<Payload>, Error> {
        let me = std::thread::current().id();
        {
            let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
            if *busy == Some(me) {
                return Err(Error::ActionInTask);
            }
            *busy = Some(me);
        }
        let result = self.sim().run_job(job);
        *self.busy.lock().unwrap_or_else(|p| p.into_inner()) = None;
        result
    }

    fn store_blocks(&self, upload: BlockUpload) -> Result<(), Error> {
        let mut sim = self.sim();
        let now = sim.now;
        let id = sim.driver.store_blocks(now, upload);
        sim.wait_for(id).map(drop)
    }

    fn announce(&self, fact: Fact) {
        let mut sim = self.sim();
        let now = sim.now;
        sim.driver.announce(now, fact);
    }
}

struct Sim {
    driver: Driver,
    workers: Vec<Worker>,
    graph: Arc<Graph>,
    /// The workers' own graphs and what their programs returned, when they do not share the
    /// driver's graph.
    own: Option<programs::OwnGraphs>,
    worker_config: WorkerConfig,
    rng: SplitMix64,
    now: Time,
    step: Duration,
    wire: bool,
    queues: BTreeMap<(NodeId, NodeId), VecDeque<Message>>,
    ready: Vec<(WorkerId, RunnableTask)>,
    trace: Vec<Step>,
    finished: BTreeMap<JobId, Result<Vec<Payload>, Error>>,
    /// Workers whose messages are dropped both ways.
    isolated: BTreeSet<WorkerId>,
    /// Faults to apply when virtual time reaches them, in time order.
    planned: Vec<(Time, Fault)>,
    /// When the driver last sent a task out (or the running job was submitted).
    last_launch: Time,
    /// How long a job may wait on timers without any task launched before `run_job` gives up.
    idle_max: Duration,
}

impl Sim {
    fn new(b: &StepClusterBuilder, graph: Arc<Graph>, own: Option<programs::OwnGraphs>) -> Sim {
        let mut driver_config = DriverConfig::new();
        driver_config.task_attempts_max = b.task_attempts_max;
        driver_config.input_replicas = b.input_replicas.unwrap_or(2.min(b.workers));
        driver_config.encode_payloads = b.wire;
        driver_config.heartbeat_timeout = b.heartbeat_timeout;
        driver_config.speculation = b.speculation;
        let mut worker_config = b.worker.clone();
        worker_config.encode_payloads = b.wire;
        // Waiting on time ends with a launch within a heartbeat timeout (a silent worker's
        // tasks relaunched) or a fetch timeout (a task's input asked elsewhere or recomputed);
        // four of the longer one without a launch means time cannot help.
        let idle_max = 4 * b.heartbeat_timeout.max(worker_config.fetch_timeout);
        Sim {
            driver: Driver::new(driver_config, Arc::clone(&graph)),
            workers: (0..b.workers)
                .map(|i| {
                    let graph = own.as_ref().map_or(&graph, |o| o.graph(i));
                    Worker::new(WorkerId(i), worker_config.clone(), Arc::clone(graph))
                })
                .collect(),
            graph,
            own,
            worker_config,
            rng: SplitMix64::new(b.seed),
            now: Time::ZERO,
            step: Duration::from_nanos(b.step_nanos),
            wire: b.wire,
            queues: BTreeMap::new(),
            ready: Vec::new(),
            trace: Vec::new(),
            finished: BTreeMap::new(),
            isolated: BTreeSet::new(),
            planned: Vec::new(),
            last_launch: Time::ZERO,
            idle_max,
        }
    }

    fn run_job(&mut self, job: JobRequest) -> Result<Vec<Payload>, Error> {
        let id = self.driver.submit_job(self.now, job);
        self.wait_for(id)
    }

    /// Steps until the job (or upload) `id` ends.
    fn wait_for(&mut self, id: JobId) -> Result<Vec<Payload>, Error> {
        self.last_launch = self.now;
        loop {
            self.collect_outputs()?;
            if let Some(result) = self.finished.remove(&id) {
                return result;
            }
            if self.step()? {
                continue;
            }
            // Nothing in flight and no task ready: only time can help, and only if some task is
            // out on a worker (a silent worker's tasks are relaunched after the heartbeat
            // timeout, a fetch without reply is given up after the fetch timeout), a fault is
            // planned, or no worker is alive (the driver fails the job after its
            // `workers_wait_max`, a bounded wait of its own).
            let no_workers = self.driver.workers().next().is_none();
            if !no_workers
                && self.driver.running_tasks() == 0
                && self.driver.uploads_in_progress() == 0
                && self.planned.is_empty()
            {
                return Err(Error::NoProgress { job: id, workers: self.driver.workers().count() });
            }
            let waited = self.now - self.last_launch;
            let next = self.next_deadline();
            match next {
                Some(at) if waited < self.idle_max || no_workers => self.jump(at)?,
                // Waiting on timers that do not help any more.
                _ => return Err(Error::NoProgress { job: id, workers: self.driver.workers().count() }),
            }
        }
    }

    /// The earliest timer deadline of any member, or planned fault.
    fn next_deadline(&self) -> Option<Time> {
        let timers = std::iter::once(self.driver.poll_timeout()).chain(self.workers.iter().map(Worker::poll_timeout));
        timers.flatten().chain(self.planned.first().map(|(t, _)| *t)).min()
    }

    /// Moves virtual time to `at` (if later) and fires what is due.
    fn jump(&mut self, at: Time) -> Result<(), Error> {
        self.now = self.now.max(at);
        self.fire_due()
    }

    /// Applies the planned faults and fires the timers due at `now`, in deadline order (ties:
    /// faults first, then the driver, then the workers by id), collecting each one's outputs.
    fn fire_due(&mut self) -> Result<(), Error> {
        while self.planned.first().is_some_and(|(t, _)| *t <= self.now) {
            let (_, fault) = self.planned.remove(0);
            self.apply(fault)?;
            self.collect_outputs()?;
        }
        loop {
            let driver = self.driver.poll_timeout().map(|t| (t, NodeId::Driver));
            let workers = self.workers.iter().map(|w| w.poll_timeout().map(|t| (t, NodeId::Worker(w.id()))));
            let Some((_, node)) =
                std::iter::once(driver).chain(workers).flatten().filter(|(t, _)| *t <= self.now).min()
            else {
                return Ok(());
            };
            self.trace.push(Step::Timer { node });
            let still_due = match node {
                NodeId::Driver => {
                    self.driver.handle_timeout(self.now);
                    self.driver.poll_timeout()
                }
                NodeId::Worker(w) => {
                    let worker = self.workers.get_mut(w.0 as usize).ok_or_else(internal)?;
                    worker.handle_timeout(self.now);
                    worker.poll_timeout()
                }
            };
            if still_due.is_some_and(|t| t <= self.now) {
                return Err(Error::Internal("a timer is still due after it fired"));
            }
            self.collect_outputs()?;
        }
    }

    /// Applies `fault` now.
    fn apply(&mut self, fault: Fault) -> Result<(), Error> {
        self.trace.push(Step::Fault(fault));
        match fault {
            Fault::Isolate(w) => {
                if w.0 as usize >= self.workers.len() {
                    return Err(Error::UnknownPeer(NodeId::Worker(w)));
                }
                self.isolated.insert(w);
                let node = NodeId::Worker(w);
                self.drop_queued(|from, to| from == node || to == node);
            }
            Fault::Restart(w) => {
                let slot = self.workers.get(w.0 as usize).ok_or(Error::UnknownPeer(NodeId::Worker(w)))?;
                let mut config = self.worker_config.clone();
                config.incarnation = slot.incarnation() + 1;
                self.isolated.remove(&w);
                let node = NodeId::Worker(w);
                // Messages to the old process, and its requests to other workers, die with it;
                // what it sent the driver is still on the way.
                self.drop_queued(|from, to| to == node || (from == node && to != NodeId::Driver));
                self.ready.retain(|(r, _)| *r != w);
                // A worker with a graph of its own keeps it: a restarted process would build
                // the same one again by running the program.
                let graph = self.own.as_ref().map_or(&self.graph, |o| o.graph(w.0));
                self.workers[w.0 as usize] = Worker::new(w, config, Arc::clone(graph));
            }
        }
        Ok(())
    }

    /// Drops every queued message between a pair that `which` selects, tracing each.
    fn drop_queued(&mut self, which: impl Fn(NodeId, NodeId) -> bool) {
        for (&(from, to), queue) in self.queues.iter_mut().filter(|((f, t), _)| which(*f, *t)) {
            for msg in queue.drain(..) {
                self.trace.push(Step::Dropped { from, to, kind: msg.kind() });
            }
        }
    }

    /// Moves every output of every state machine into the queues.
    fn collect_outputs(&mut self) -> Result<(), Error> {
        while let Some((to, msg)) = self.driver.poll_transmit() {
            self.enqueue(NodeId::Driver, to, msg)?;
        }
        while let Some(event) = self.driver.poll_event() {
            match event {
                DriverEvent::JobFinished { job, result } => {
                    self.finished.insert(job, result);
                }
                DriverEvent::WorkerLost { worker, incarnation, reason } => {
                    self.trace.push(Step::Lost { worker, incarnation, reason });
                }
                // Every worker of a stepping cluster runs the program the test gave it: one the
                // driver refuses is a mistake the waiting job reports.
                DriverEvent::WorkerRefused { worker, reason } => return Err(Error::Refused { worker, reason }),
                DriverEvent::WorkerRegistered(_) => {}
                DriverEvent::Speculated { task, worker } => self.trace.push(Step::Speculated { task, worker }),
            }
        }
        for i in 0..self.workers.len() {
            let id = self.workers[i].id();
            while let Some((to, msg)) = self.workers[i].poll_transmit() {
                self.enqueue(NodeId::Worker(id), to, msg)?;
            }
            while let Some(task) = self.workers[i].poll_task() {
                self.ready.push((id, task));
            }
        }
        Ok(())
    }

    fn enqueue(&mut self, from: NodeId, to: NodeId, msg: Message) -> Result<(), Error> {
        let cut = |n: NodeId| matches!(n, NodeId::Worker(w) if self.isolated.contains(&w));
        if cut(from) || cut(to) {
            self.trace.push(Step::Dropped { from, to, kind: msg.kind() });
            return Ok(());
        }
        if matches!(msg, Message::Launch(_)) {
            self.last_launch = self.now;
        }
        let msg = if self.wire { codec::decode(&codec::encode(&msg)?)? } else { msg };
        self.queues.entry((from, to)).or_default().push_back(msg);
        Ok(())
    }

    /// Delivers one message or runs one task, chosen by the seeded generator, after firing
    /// what falls due as the step moves time on. Returns false when there is nothing to do.
    fn step(&mut self) -> Result<bool, Error> {
        self.queues.retain(|_, q| !q.is_empty());
        if self.queues.is_empty() && self.ready.is_empty() {
            return Ok(false);
        }
        self.now = self.now + self.step;
        self.fire_due()?;
        self.queues.retain(|_, q| !q.is_empty());
        let choices = self.queues.len() + self.ready.len();
        if choices == 0 {
            return Ok(true); // A fault dropped what there was to do; time still moved.
        }
        let pick = self.rng.below(choices);
        if pick < self.queues.len() {
            let (&(from, to), queue) = self.queues.iter_mut().nth(pick).ok_or_else(internal)?;
            let msg = queue.pop_front().ok_or_else(internal)?;
            self.trace.push(Step::Deliver { from, to, kind: msg.kind() });
            match (from, to) {
                (NodeId::Worker(w), NodeId::Driver) => self.driver.handle_message(self.now, w, msg),
                (_, NodeId::Worker(w)) => {
                    let worker = self.workers.get_mut(w.0 as usize).ok_or(Error::UnknownPeer(to))?;
                    worker.handle_message(self.now, from, msg);
                }
                (NodeId::Driver, NodeId::Driver) => return Err(Error::UnknownPeer(to)),
            }
        } else {
            let (w, task) = self.ready.swap_remove(pick - self.queues.len());
            let (task_id, attempt) = (task.desc().task, task.desc().attempt);
            self.trace.push(Step::Run { worker: w, task: task_id, attempt });
            let done = task.run();
            self.workers[w.0 as usize].handle_task_done(self.now, done);
        }
        Ok(true)
    }
}

fn internal() -> Error {
    Error::Internal("the harness lost track of its queues")
}
