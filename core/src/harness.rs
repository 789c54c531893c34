//! The stepping harness: a driver and N workers stepped by one thread, with a seeded choice of
//! which message is delivered or which task runs next, tasks run inline, and a trace of every
//! step. The same seed gives the same trace; every seed gives the same results.
//!
//! It runs the same state machines as every other mode; only delivery, time and the executor
//! differ. Messages between one pair of members stay in order (as over one TCP connection),
//! while the interleaving across pairs and tasks follows the seed.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::Duration;

use crate::codec;
use crate::context::{BlockUpload, Context, JobRequest, JobRunner};
use crate::driver::{Driver, DriverConfig, DriverEvent};
use crate::error::Error;
use crate::graph::Graph;
use crate::ids::{BlockId, JobId, NodeId, TaskId, WorkerId};
use crate::message::{Message, Payload};
use crate::rng::SplitMix64;
use crate::time::Time;
use crate::worker::{RunnableTask, Worker, WorkerConfig};

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

    /// Builds the cluster with an empty program graph.
    pub fn build(self) -> StepCluster {
        let graph = Graph::new();
        let sim = Sim::new(&self, Arc::clone(&graph));
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

    /// The virtual time: each step advances it by a fixed amount.
    pub fn now(&self) -> Time {
        self.runner.sim().now
    }

    /// Steps until no message is in flight and no task is ready: every message sent so far has
    /// been handled. Returns the number of steps taken.
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

    /// Where the driver's block tracker says each stored input block's replicas are.
    pub fn input_blocks(&self) -> BTreeMap<BlockId, Vec<WorkerId>> {
        self.runner.sim().driver.input_blocks()
    }

    /// The ids of the blocks each worker's store holds, by worker.
    pub fn stored_block_ids(&self) -> Vec<Vec<BlockId>> {
        self.runner.sim().workers.iter().map(Worker::stored_block_ids).collect()
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
}

struct Sim {
    driver: Driver,
    workers: Vec<Worker>,
    rng: SplitMix64,
    now: Time,
    step: Duration,
    wire: bool,
    queues: BTreeMap<(NodeId, NodeId), VecDeque<Message>>,
    ready: Vec<(WorkerId, RunnableTask)>,
    trace: Vec<Step>,
    finished: BTreeMap<JobId, Result<Vec<Payload>, Error>>,
}

impl Sim {
    fn new(b: &StepClusterBuilder, graph: Arc<Graph>) -> Sim {
        let mut driver_config = DriverConfig::new();
        driver_config.task_attempts_max = b.task_attempts_max;
        driver_config.input_replicas = b.input_replicas.unwrap_or(2.min(b.workers));
        driver_config.encode_payloads = b.wire;
        let mut worker_config = b.worker.clone();
        worker_config.encode_payloads = b.wire;
        Sim {
            driver: Driver::new(driver_config, Arc::clone(&graph)),
            workers: (0..b.workers)
                .map(|i| Worker::new(WorkerId(i), worker_config.clone(), Arc::clone(&graph)))
                .collect(),
            rng: SplitMix64::new(b.seed),
            now: Time::ZERO,
            step: Duration::from_nanos(b.step_nanos),
            wire: b.wire,
            queues: BTreeMap::new(),
            ready: Vec::new(),
            trace: Vec::new(),
            finished: BTreeMap::new(),
        }
    }

    fn run_job(&mut self, job: JobRequest) -> Result<Vec<Payload>, Error> {
        let id = self.driver.submit_job(self.now, job);
        self.wait_for(id)
    }

    /// Steps until the job (or upload) `id` ends.
    fn wait_for(&mut self, id: JobId) -> Result<Vec<Payload>, Error> {
        loop {
            self.collect_outputs()?;
            if let Some(result) = self.finished.remove(&id) {
                return result;
            }
            if !self.step()? {
                return Err(Error::NoProgress { job: id, workers: self.driver.workers().count() });
            }
        }
    }

    /// Moves every output of every state machine into the queues.
    fn collect_outputs(&mut self) -> Result<(), Error> {
        while let Some((to, msg)) = self.driver.poll_transmit() {
            self.enqueue(NodeId::Driver, to, msg)?;
        }
        while let Some(event) = self.driver.poll_event() {
            if let DriverEvent::JobFinished { job, result } = event {
                self.finished.insert(job, result);
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
        let msg = if self.wire { codec::decode(&codec::encode(&msg)?)? } else { msg };
        self.queues.entry((from, to)).or_default().push_back(msg);
        Ok(())
    }

    /// Delivers one message or runs one task, chosen by the seeded generator. Returns false when
    /// there is nothing to do.
    fn step(&mut self) -> Result<bool, Error> {
        self.queues.retain(|_, q| !q.is_empty());
        let choices = self.queues.len() + self.ready.len();
        if choices == 0 {
            return Ok(false);
        }
        self.now = self.now + self.step;
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
