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

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::Duration;

use crate::context::{BlockUpload, Context, JobRequest, JobRunner};
use crate::driver::{DriverConfig, LossReason};
use crate::error::Error;
use crate::graph::Graph;
use crate::ids::{BlockId, NodeId, TaskId, WorkerId};
use crate::message::{Fact, Payload};
use crate::time::{ManualClock, Time};
use crate::worker::{Worker, WorkerConfig};

mod model;
mod programs;
mod sim;

pub use model::{CostModel, LinkModel};
use sim::Sim;

/// One step of the harness, as recorded in its trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A message was delivered.
    Deliver {
        /// The sender.
        from: NodeId,
        /// The receiver.
        to: NodeId,
        /// The kind of message (see [`Message::kind`](crate::Message::kind)).
        kind: &'static str,
    },
    /// A task ran on a worker: to completion when tasks take no time (the default
    /// [`CostModel`]), else it started, and [`Step::Done`] is its completion.
    Run {
        /// The worker.
        worker: WorkerId,
        /// The task.
        task: TaskId,
        /// The attempt.
        attempt: u32,
    },
    /// A task that takes virtual time completed on its worker.
    Done {
        /// The worker.
        worker: WorkerId,
        /// The task.
        task: TaskId,
        /// The attempt.
        attempt: u32,
    },
    /// A message was lost on the wire and is retransmitted ([`LinkModel::loss_one_in`]).
    Retransmitted {
        /// The sender.
        from: NodeId,
        /// The receiver.
        to: NodeId,
        /// The kind of message (see [`Message::kind`](crate::Message::kind)).
        kind: &'static str,
    },
    /// A member's timer fired (its `handle_timeout` was called).
    Timer {
        /// The member.
        node: NodeId,
    },
    /// A message was dropped: it came from or went to an isolated or killed worker, crossed a
    /// cut link, went to a worker that was restarted before it arrived, or was in flight when
    /// the driver crashed.
    Dropped {
        /// The sender.
        from: NodeId,
        /// The receiver.
        to: NodeId,
        /// The kind of message (see [`Message::kind`](crate::Message::kind)).
        kind: &'static str,
    },
    /// The driver launched a copy of a straggling task ([`DriverEvent::Speculated`](crate::DriverEvent::Speculated)).
    Speculated {
        /// The task.
        task: TaskId,
        /// Where the copy runs.
        worker: WorkerId,
    },
    /// The driver reported a worker lost ([`DriverEvent::WorkerLost`](crate::DriverEvent::WorkerLost)).
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
    /// ignores). An isolated or killed worker is brought back by its restart, at normal speed.
    Restart(WorkerId),
    /// The worker's process dies and stays down until a [`Fault::Restart`]: what it had in
    /// flight and running is lost as for a restart, and its connections are reset, so the
    /// driver and the other workers learn it at once (their `handle_peer_lost`).
    Kill(WorkerId),
    /// From now on, the worker's tasks take `times` as long as the [`CostModel`] says (1: its
    /// normal speed again); a task keeps the speed it started with.
    Slow {
        /// The worker.
        worker: WorkerId,
        /// The slowdown factor (0 is taken as 1).
        times: u32,
    },
    /// The link between two workers drops every message both ways, including those in flight,
    /// until [`Fault::Mend`]: their fetches time out and go elsewhere.
    Cut(WorkerId, WorkerId),
    /// The link between two workers carries messages again.
    Mend(WorkerId, WorkerId),
    /// The driver's process dies: every message in flight and every task is lost, and every
    /// job waiting, now or later, fails with [`Error::DriverCrashed`]. The program restarts on
    /// a new cluster from its checkpoint, as a restarted driver process does.
    CrashDriver,
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
    cost: CostModel,
    link: LinkModel,
    start: Time,
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

    /// How long tasks take in virtual time (default: no time at all, each completes in the
    /// step that runs it).
    pub fn cost(mut self, cost: CostModel) -> Self {
        self.cost = cost;
        self
    }

    /// How long messages take in virtual time (default: instant, delivered by the next step).
    pub fn link(mut self, link: LinkModel) -> Self {
        self.link = link;
        self
    }

    /// The virtual time the cluster starts at (default zero): a cluster standing in for a
    /// restarted process starts where the one it replaces stopped.
    pub fn start_at(mut self, at: Time) -> Self {
        self.start = at;
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
            cost: CostModel::default(),
            link: LinkModel::default(),
            start: Time::ZERO,
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
            if !sim.step(None)? {
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
            if sim.step(Some(end))? {
                steps += 1;
                continue;
            }
            match sim.next_deadline() {
                Some(at) if at <= end => sim.jump(at)?,
                _ => break,
            }
        }
        sim.set_now(end);
        Ok(steps)
    }

    /// Isolates `worker` now ([`Fault::Isolate`]): its messages are dropped both ways.
    pub fn isolate(&self, worker: WorkerId) -> Result<(), Error> {
        self.inject(Fault::Isolate(worker))
    }

    /// Restarts `worker` now ([`Fault::Restart`]): a fresh worker with the next incarnation and
    /// an empty store, which registers with the driver as the next steps run.
    pub fn restart_worker(&self, worker: WorkerId) -> Result<(), Error> {
        self.inject(Fault::Restart(worker))
    }

    /// Applies `fault` now (see [`Fault`]); a fault naming a worker the cluster does not have
    /// is refused with [`Error::UnknownPeer`].
    pub fn inject(&self, fault: Fault) -> Result<(), Error> {
        let mut sim = self.runner.sim();
        sim.apply(fault)?;
        sim.collect_outputs()
    }

    /// A clock that follows the cluster's virtual time, for a streaming context on it: it
    /// moves as the cluster steps, [`StepCluster::advance`] moves it, and setting it does not
    /// move the cluster (it never goes back).
    pub fn clock(&self) -> Arc<ManualClock> {
        self.runner.sim().clock()
    }

    /// When the driver crashed ([`Fault::CrashDriver`]), if it did.
    pub fn driver_crashed(&self) -> Option<Time> {
        self.runner.sim().crashed
    }

    /// Plans `fault` for the moment virtual time reaches `at` (applied before the step or timer
    /// of that moment; at once, on the next step, if `at` has passed). Faults planned for the
    /// same time apply in the order they were planned. A fault naming a worker the cluster
    /// does not have fails the step that applies it ([`StepCluster::plan`] refuses it at once).
    pub fn fault_at(&self, at: Time, fault: Fault) {
        let mut sim = self.runner.sim();
        let i = sim.planned.partition_point(|(t, _)| *t <= at);
        sim.planned.insert(i, (at, fault));
    }

    /// Plans `fault` for `at`, as [`StepCluster::fault_at`] does, after checking that it names
    /// only workers the cluster has.
    pub fn plan(&self, at: Time, fault: Fault) -> Result<(), Error> {
        self.runner.sim().check(fault)?;
        self.fault_at(at, fault);
        Ok(())
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
        sim.alive()?;
        let now = sim.now;
        let id = sim.driver.store_blocks(now, upload);
        sim.wait_for(id).map(drop)
    }

    fn announce(&self, fact: Fact) {
        let mut sim = self.sim();
        if sim.crashed.is_none() {
            let now = sim.now;
            sim.driver.announce(now, fact);
        }
    }
}
