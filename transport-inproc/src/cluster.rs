//! [`LocalCluster`]: the driver and the workers as threads of this process.
//!
//! Each member's thread runs the polling loop its state machine documents: it waits on its
//! inbox until the machine's `poll_timeout` at the latest, hands over what arrived (or calls
//! `handle_timeout` once the deadline passes), then drains the machine's outputs. When a
//! worker's thread ends (stopped, killed or panicked), the driver and the other workers get
//! `PeerLost` for it, as over TCP every peer of a dead process sees its connection close; a send
//! to a worker whose thread is gone is reported the same way.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};
use dstream::transport::{Transport, TransportError};
use dstream::{
    BlockUpload, Clock, Context, Driver, DriverConfig, DriverEvent, Error, Graph, JobRequest, JobRunner, LossReason,
    NodeId, Payload, SystemClock, TaskDone, Time, Worker, WorkerConfig, WorkerId,
};

use crate::transport::{InProcTransport, Inboxes};

/// What a member's thread receives.
pub(crate) enum Input {
    /// A message from another member.
    Net { from: NodeId, msg: dstream::Message },
    /// A task this worker's executor finished.
    Done(TaskDone),
    /// A job from the host (driver only).
    Submit { request: JobRequest, reply: Sender<Result<Vec<Payload>, Error>> },
    /// Blocks to store on the workers (driver only).
    Store { upload: BlockUpload, reply: Sender<Result<Vec<Payload>, Error>> },
    /// A member's thread has ended.
    PeerLost(NodeId),
    /// Shut down.
    Stop,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Net { from, msg } => write!(f, "Net({from}, {})", msg.kind()),
            Input::Done(_) => f.write_str("Done"),
            Input::Submit { request, .. } => write!(f, "Submit({request:?})"),
            Input::Store { upload, .. } => write!(f, "Store({upload:?})"),
            Input::PeerLost(node) => write!(f, "PeerLost({node})"),
            Input::Stop => f.write_str("Stop"),
        }
    }
}

/// Builds a [`LocalCluster`]: how many workers, the task pool and slots, input replicas, the
/// block stores' bound, task attempts and failure-detection timeouts. Every setting has a
/// default ([`LocalCluster::builder`]); values below a setting's minimum are raised to it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use dstream_inproc::LocalCluster;
///
/// let cluster = LocalCluster::builder()
///     .workers(3) // default: one per core
///     .threads(2) // the task pool the workers share; default: one per core
///     .slots(2) // tasks each worker runs at once; default: one per core
///     .input_replicas(2) // copies of each input block on distinct workers; default 2 (1 with one worker)
///     .block_store_bytes_max(256 << 20) // each worker's store, in estimated bytes; default 1 GiB
///     .task_attempts_max(3) // attempts before a job fails; default 4
///     .heartbeat_interval(Duration::from_millis(50)) // default 100 ms
///     .heartbeat_timeout(Duration::from_millis(500)) // a silent worker is lost after this; default 1 s
///     .fetch_timeout(Duration::from_secs(2)) // a fetch of a remote block; default 5 s
///     .build()?;
/// let words = cluster.context().parallelize(vec!["a".to_string(), "b".into(), "a".into()], 3)?;
/// let mut counts = words.map(|w| (w, 1u64)).reduce_by_key(|a, b| a + b).collect()?;
/// counts.sort();
/// assert_eq!(counts, [("a".to_string(), 2), ("b".to_string(), 1)]);
/// # Ok::<(), dstream::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct LocalClusterBuilder {
    workers: u32,
    threads: usize,
    worker: WorkerConfig,
    task_attempts_max: u32,
    input_replicas: Option<u32>,
    heartbeat_timeout: Duration,
    workers_wait_max: Duration,
    speculation: bool,
}

impl LocalClusterBuilder {
    /// On how many distinct workers each input block is stored (default 2, as in the paper,
    /// or 1 for a cluster of one worker).
    pub fn input_replicas(mut self, replicas: u32) -> Self {
        self.input_replicas = Some(replicas.max(1));
        self
    }

    /// The number of workers (default: the number of cores; at least 1).
    pub fn workers(mut self, n: u32) -> Self {
        self.workers = n.max(1);
        self
    }

    /// Threads of the task pool shared by the workers (default: the number of cores).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        self
    }

    /// Tasks each worker runs at once (default: the number of cores).
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

    /// How often workers heartbeat (default: [`WorkerConfig::heartbeat_interval`], 100 ms).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.worker.heartbeat_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How long a silent worker stays alive for the driver (default:
    /// [`DriverConfig::heartbeat_timeout`], 1 s).
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long a job waits while no worker is alive before it fails with
    /// [`Error::NoWorkers`] (default: [`DriverConfig::workers_wait_max`], 30 s).
    pub fn workers_wait_max(mut self, wait: Duration) -> Self {
        self.workers_wait_max = wait;
        self
    }

    /// Whether straggling tasks get a copy on another worker (default: on, see
    /// [`DriverConfig::speculation`]).
    pub fn speculation(mut self, on: bool) -> Self {
        self.speculation = on;
        self
    }

    /// How long a worker waits for a fetch reply (default: [`WorkerConfig::fetch_timeout`],
    /// 5 s).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.worker.fetch_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Starts the driver and worker threads.
    pub fn build(self) -> Result<LocalCluster, Error> {
        let graph = Graph::new();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads)
            .thread_name(|i| format!("dstream-task-{i}"))
            .build()
            .map_err(|e| Error::ThreadStart { name: "dstream-task-*".into(), reason: e.to_string() })?;
        let pool = Arc::new(pool);
        let (driver_tx, driver_rx) = unbounded();
        let worker_channels: Vec<(Sender<Input>, Receiver<Input>)> = (0..self.workers).map(|_| unbounded()).collect();
        let inboxes = Arc::new(Inboxes {
            driver: driver_tx.clone(),
            workers: worker_channels.iter().map(|(tx, _)| tx.clone()).collect(),
        });
        let clock = SystemClock::new();
        let observed = Arc::new(Observed::default());

        let mut driver_config = DriverConfig::new();
        driver_config.task_attempts_max = self.task_attempts_max;
        driver_config.input_replicas = self.input_replicas.unwrap_or(2.min(self.workers));
        driver_config.heartbeat_timeout = self.heartbeat_timeout;
        driver_config.workers_wait_max = self.workers_wait_max;
        driver_config.speculation = self.speculation;
        let driver = Driver::new(driver_config, Arc::clone(&graph));
        let transport = InProcTransport::new(NodeId::Driver, Arc::clone(&inboxes));
        let driver_clock = clock.clone();
        let driver_observed = Arc::clone(&observed);
        let driver_thread =
            spawn("dstream-driver", move || run_driver(driver, driver_rx, transport, driver_clock, driver_observed))?;
        let mut workers = Vec::new();

        for (i, (tx, rx)) in worker_channels.into_iter().enumerate() {
            let mut config = self.worker.clone();
            config.shares_driver_graph = true;
            config.encode_payloads = false;
            let id = WorkerId(i as u32);
            let worker = Worker::new(id, config, Arc::clone(&graph));
            let transport = InProcTransport::new(NodeId::Worker(id), Arc::clone(&inboxes));
            let pool = Arc::clone(&pool);
            let clock = clock.clone();
            let farewell = Farewell { id, inboxes: Arc::clone(&inboxes) };
            workers.push(Some(spawn(&format!("dstream-worker-{i}"), move || {
                run_worker(worker, rx, tx, transport, pool, clock, farewell)
            })?));
        }
        let runner = Arc::new(LocalRunner { driver: driver_tx, pool });
        Ok(LocalCluster {
            context: Context::new(graph, runner),
            inboxes,
            driver: Some(driver_thread),
            workers: Mutex::new(workers),
            observed,
        })
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, Error> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map_err(|e| Error::ThreadStart { name: name.to_string(), reason: e.to_string() })
}

/// A driver and workers running as threads of this process.
///
/// Dropping the cluster stops its threads; jobs still running then fail with
/// [`Error::ClusterStopped`]. Keep it alive as long as the contexts built on it run: a
/// [`StreamingContext`](dstream::StreamingContext) takes its [`LocalCluster::context`].
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use dstream::{StreamingContext, SystemClock};
/// use dstream_inproc::LocalCluster;
///
/// let cluster = LocalCluster::builder().workers(2).build()?;
/// let ssc = StreamingContext::new(cluster.context(), Duration::from_millis(500), Arc::new(SystemClock::new()))?;
/// let (input, numbers) = ssc.input_stream::<u64>();
/// numbers.count().print(1)?;
/// let running = ssc.start()?;
/// input.push_all(0..100)?;
/// running.stop(true)?;
/// assert!(cluster.lost_workers().is_empty());
/// # Ok::<(), dstream::Error>(())
/// ```
pub struct LocalCluster {
    context: Context,
    inboxes: Arc<Inboxes>,
    driver: Option<JoinHandle<()>>,
    /// The worker threads by id; `None` once killed.
    workers: Mutex<Vec<Option<JoinHandle<()>>>>,
    /// What the driver reported.
    observed: Arc<Observed>,
}

/// What the driver reported, for [`LocalCluster::lost_workers`] and
/// [`LocalCluster::speculated_tasks`].
#[derive(Default)]
struct Observed {
    /// The last loss the driver reported for each worker: at most one entry per worker.
    lost: Mutex<BTreeMap<WorkerId, LossReason>>,
    /// Speculative copies launched.
    speculated: AtomicU64,
}

impl LocalCluster {
    /// A builder with the defaults: as many workers, pool threads and slots as cores.
    pub fn builder() -> LocalClusterBuilder {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut worker = WorkerConfig::new();
        worker.slots = cores as u32;
        let DriverConfig { heartbeat_timeout, workers_wait_max, speculation, .. } = DriverConfig::new();
        LocalClusterBuilder {
            workers: cores as u32,
            threads: cores,
            worker,
            task_attempts_max: 4,
            input_replicas: None,
            heartbeat_timeout,
            workers_wait_max,
            speculation,
        }
    }

    /// The context to create datasets in.
    pub fn context(&self) -> Context {
        self.context.clone()
    }

    /// Stops `worker`'s thread, as if its process died: nothing is said to the driver, which
    /// learns of it as of any dead peer (the runtime reports the thread gone; a silent worker
    /// would time out). Its tasks still running on the pool finish, but their results are
    /// dropped. For tests. Returns once the thread has ended.
    pub fn kill_worker(&self, worker: WorkerId) -> Result<(), Error> {
        let unknown = || Error::UnknownPeer(NodeId::Worker(worker));
        let thread = {
            let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
            workers.get_mut(worker.0 as usize).ok_or_else(unknown)?.take()
        };
        let Some(thread) = thread else {
            return Ok(()); // Killed already.
        };
        let inbox = self.inboxes.workers.get(worker.0 as usize).ok_or_else(unknown)?;
        // The thread may have ended by itself; then there is nothing to stop.
        let _ = inbox.send(Input::Stop);
        if thread.join().is_err() {
            tracing::error!(%worker, "a dstream worker thread panicked");
        }
        Ok(())
    }

    /// How many speculative copies of straggling tasks the driver launched so far.
    pub fn speculated_tasks(&self) -> u64 {
        self.observed.speculated.load(Ordering::Relaxed)
    }

    /// The workers the driver has reported lost, each with the reason of its last loss, in id
    /// order.
    pub fn lost_workers(&self) -> Vec<(WorkerId, LossReason)> {
        self.observed.lost.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(w, r)| (*w, *r)).collect()
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let _ = self.inboxes.driver.send(Input::Stop);
        for w in &self.inboxes.workers {
            let _ = w.send(Input::Stop);
        }
        let workers = std::mem::take(self.workers.get_mut().unwrap_or_else(|p| p.into_inner()));
        for t in self.driver.take().into_iter().chain(workers.into_iter().flatten()) {
            if t.join().is_err() {
                tracing::error!("a dstream thread panicked");
            }
        }
    }
}

impl std::fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCluster")
            .field("workers", &self.inboxes.workers.len())
            .field("lost", &self.lost_workers())
            .finish()
    }
}

struct LocalRunner {
    driver: Sender<Input>,
    pool: Arc<rayon::ThreadPool>,
}

impl JobRunner for LocalRunner {
    fn run_job(&self, request: JobRequest) -> Result<Vec<Payload>, Error> {
        if self.pool.current_thread_index().is_some() {
            // Blocking a pool thread on a job that needs pool threads could deadlock.
            return Err(Error::ActionInTask);
        }
        let (reply, result) = bounded(1);
        self.driver.send(Input::Submit { request, reply }).map_err(|_| Error::ClusterStopped { submitted: false })?;
        result.recv().map_err(|_| Error::ClusterStopped { submitted: true })?
    }

    fn store_blocks(&self, upload: BlockUpload) -> Result<(), Error> {
        let (reply, result) = bounded(1);
        self.driver.send(Input::Store { upload, reply }).map_err(|_| Error::ClusterStopped { submitted: false })?;
        result.recv().map_err(|_| Error::ClusterStopped { submitted: true })?.map(drop)
    }

    fn early_parallelism(&self) -> usize {
        // Every worker shares the driver's graph here; one job per task thread keeps them busy.
        self.pool.current_num_threads()
    }
}

/// What waiting on an inbox until a deadline gave.
enum Wait {
    Input(Input),
    Deadline,
    Closed,
}

/// Waits for the next input, until `deadline` (on `clock`) at the latest.
fn wait(inbox: &Receiver<Input>, deadline: Option<Time>, clock: &SystemClock) -> Wait {
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

type Replies = BTreeMap<dstream::JobId, Sender<Result<Vec<Payload>, Error>>>;

/// The driver's thread: the polling loop of [`Driver`]'s documentation.
struct DriverLoop {
    driver: Driver,
    transport: InProcTransport,
    clock: SystemClock,
    waiting: Replies,
    observed: Arc<Observed>,
}

impl DriverLoop {
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
                // The worker's thread is gone: the driver learns it at once.
                Err(TransportError::Unreachable(NodeId::Worker(w))) => {
                    self.driver.handle_peer_lost(self.clock.now(), w)
                }
                Err(e) => tracing::warn!(%e, "driver could not send"),
            }
        }
        while let Some(event) = self.driver.poll_event() {
            match event {
                DriverEvent::JobFinished { job, result } => {
                    if let Some(reply) = self.waiting.remove(&job) {
                        let _ = reply.send(result);
                    }
                }
                DriverEvent::WorkerRegistered(w) => tracing::debug!(%w, "worker registered"),
                DriverEvent::WorkerRefused { worker, reason } => {
                    tracing::error!(%worker, %reason, "worker refused")
                }
                DriverEvent::WorkerLost { worker, incarnation, reason } => {
                    tracing::warn!(%worker, incarnation, %reason, "worker lost");
                    self.observed.lost.lock().unwrap_or_else(|p| p.into_inner()).insert(worker, reason);
                }
                DriverEvent::Speculated { task, worker } => {
                    tracing::debug!(%task, %worker, "speculative copy");
                    self.observed.speculated.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

fn run_driver(
    driver: Driver,
    inbox: Receiver<Input>,
    transport: InProcTransport,
    clock: SystemClock,
    observed: Arc<Observed>,
) {
    let mut l = DriverLoop { driver, transport, clock, waiting: BTreeMap::new(), observed };
    'run: loop {
        match wait(&inbox, l.driver.poll_timeout(), &l.clock) {
            Wait::Input(input) => {
                if !l.input(input) {
                    break;
                }
            }
            Wait::Deadline => {}
            Wait::Closed => break,
        }
        if l.driver.poll_timeout().is_some_and(|t| l.clock.now() >= t) {
            // First take in what is already queued: a heartbeat waiting in the inbox is proof of
            // life, and a driver that fell behind must not report its senders lost for it.
            for _ in 0..inbox.len() {
                let Ok(input) = inbox.try_recv() else { break };
                if !l.input(input) {
                    break 'run;
                }
            }
            let now = l.clock.now();
            l.driver.handle_timeout(now);
            l.flush();
        }
    }
    for (_, reply) in std::mem::take(&mut l.waiting) {
        let _ = reply.send(Err(Error::ClusterStopped { submitted: true }));
    }
}

/// Tells the driver and the other workers that a worker's thread has ended, however it ends.
struct Farewell {
    id: WorkerId,
    inboxes: Arc<Inboxes>,
}

impl Drop for Farewell {
    fn drop(&mut self) {
        let me = NodeId::Worker(self.id);
        // Members that have stopped too need not hear it.
        let _ = self.inboxes.driver.send(Input::PeerLost(me));
        for (i, inbox) in self.inboxes.workers.iter().enumerate() {
            if i != self.id.0 as usize {
                let _ = inbox.send(Input::PeerLost(me));
            }
        }
    }
}

fn run_worker(
    mut worker: Worker,
    inbox: Receiver<Input>,
    own: Sender<Input>,
    transport: InProcTransport,
    pool: Arc<rayon::ThreadPool>,
    clock: SystemClock,
    farewell: Farewell,
) {
    let _farewell = farewell;
    loop {
        while let Some((to, msg)) = worker.poll_transmit() {
            match transport.send(to, msg) {
                Ok(()) => {}
                Err(TransportError::Unreachable(NodeId::Worker(peer))) => worker.handle_peer_lost(clock.now(), peer),
                Err(e) => tracing::warn!(%e, worker = %worker.id(), "worker could not send"),
            }
        }
        while let Some(task) = worker.poll_task() {
            let own = own.clone();
            pool.spawn(move || {
                // The worker may have stopped; then the result is not needed.
                let _ = own.send(Input::Done(task.run()));
            });
        }
        let input = match wait(&inbox, worker.poll_timeout(), &clock) {
            Wait::Input(input) => Some(input),
            Wait::Deadline => None,
            Wait::Closed => return,
        };
        let now = clock.now();
        match input {
            Some(Input::Net { from, msg }) => worker.handle_message(now, from, msg),
            Some(Input::Done(done)) => worker.handle_task_done(now, done),
            Some(Input::PeerLost(NodeId::Worker(peer))) => worker.handle_peer_lost(now, peer),
            Some(Input::Stop) => return,
            Some(other) => tracing::warn!(?other, "a worker ignores an unexpected input"),
            None => {}
        }
        if worker.poll_timeout().is_some_and(|t| now >= t) {
            worker.handle_timeout(now);
        }
    }
}
