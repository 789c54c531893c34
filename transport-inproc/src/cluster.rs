//! [`LocalCluster`]: the driver and the workers as threads of this process.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use dstream::transport::Transport;
use dstream::{
    BlockUpload, Clock, Context, Driver, DriverConfig, DriverEvent, Error, Graph, JobRequest, JobRunner, NodeId,
    Payload, SystemClock, TaskDone, Worker, WorkerConfig, WorkerId,
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
            Input::Stop => f.write_str("Stop"),
        }
    }
}

/// Builds a [`LocalCluster`].
#[derive(Clone, Debug)]
pub struct LocalClusterBuilder {
    workers: u32,
    threads: usize,
    worker: WorkerConfig,
    task_attempts_max: u32,
    input_replicas: Option<u32>,
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
        let mut threads = Vec::new();

        let mut driver_config = DriverConfig::new();
        driver_config.task_attempts_max = self.task_attempts_max;
        driver_config.input_replicas = self.input_replicas.unwrap_or(2.min(self.workers));
        let driver = Driver::new(driver_config, Arc::clone(&graph));
        let transport = InProcTransport::new(NodeId::Driver, Arc::clone(&inboxes));
        let driver_clock = clock.clone();
        threads.push(spawn("dstream-driver", move || run_driver(driver, driver_rx, transport, driver_clock))?);

        for (i, (tx, rx)) in worker_channels.into_iter().enumerate() {
            let mut config = self.worker.clone();
            config.shares_driver_graph = true;
            config.encode_payloads = false;
            let id = WorkerId(i as u32);
            let worker = Worker::new(id, config, Arc::clone(&graph));
            let transport = InProcTransport::new(NodeId::Worker(id), Arc::clone(&inboxes));
            let pool = Arc::clone(&pool);
            let clock = clock.clone();
            threads.push(spawn(&format!("dstream-worker-{i}"), move || {
                run_worker(worker, rx, tx, transport, pool, clock)
            })?);
        }
        let runner = Arc::new(LocalRunner { driver: driver_tx, pool });
        Ok(LocalCluster { context: Context::new(graph, runner), inboxes, threads })
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
/// [`Error::ClusterStopped`].
pub struct LocalCluster {
    context: Context,
    inboxes: Arc<Inboxes>,
    threads: Vec<JoinHandle<()>>,
}

impl LocalCluster {
    /// A builder with the defaults: as many workers, pool threads and slots as cores.
    pub fn builder() -> LocalClusterBuilder {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut worker = WorkerConfig::new();
        worker.slots = cores as u32;
        LocalClusterBuilder {
            workers: cores as u32,
            threads: cores,
            worker,
            task_attempts_max: 4,
            input_replicas: None,
        }
    }

    /// The context to create datasets in.
    pub fn context(&self) -> Context {
        self.context.clone()
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let _ = self.inboxes.driver.send(Input::Stop);
        for w in &self.inboxes.workers {
            let _ = w.send(Input::Stop);
        }
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                tracing::error!("a dstream thread panicked");
            }
        }
    }
}

impl std::fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCluster").field("workers", &self.inboxes.workers.len()).finish()
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
}

fn run_driver(mut driver: Driver, inbox: Receiver<Input>, transport: InProcTransport, clock: SystemClock) {
    let mut waiting: BTreeMap<dstream::JobId, Sender<Result<Vec<Payload>, Error>>> = BTreeMap::new();
    while let Ok(input) = inbox.recv() {
        let now = clock.now();
        match input {
            Input::Net { from: NodeId::Worker(w), msg } => driver.handle_message(now, w, msg),
            Input::Submit { request, reply } => {
                let job = driver.submit_job(now, request);
                waiting.insert(job, reply);
            }
            Input::Store { upload, reply } => {
                let job = driver.store_blocks(now, upload);
                waiting.insert(job, reply);
            }
            Input::Stop => break,
            other => tracing::warn!(?other, "the driver ignores an unexpected input"),
        }
        while let Some((to, msg)) = driver.poll_transmit() {
            if let Err(e) = transport.send(to, msg) {
                tracing::warn!(%e, "driver could not send");
            }
        }
        while let Some(event) = driver.poll_event() {
            match event {
                DriverEvent::JobFinished { job, result } => {
                    if let Some(reply) = waiting.remove(&job) {
                        let _ = reply.send(result);
                    }
                }
                DriverEvent::WorkerRegistered(w) => tracing::debug!(%w, "worker registered"),
                DriverEvent::WorkerRefused { worker, reason } => {
                    tracing::error!(%worker, %reason, "worker refused")
                }
            }
        }
    }
    for (_, reply) in waiting {
        let _ = reply.send(Err(Error::ClusterStopped { submitted: true }));
    }
}

fn run_worker(
    mut worker: Worker,
    inbox: Receiver<Input>,
    own: Sender<Input>,
    transport: InProcTransport,
    pool: Arc<rayon::ThreadPool>,
    clock: SystemClock,
) {
    loop {
        while let Some((to, msg)) = worker.poll_transmit() {
            if let Err(e) = transport.send(to, msg) {
                tracing::warn!(%e, worker = %worker.id(), "worker could not send");
            }
        }
        while let Some(task) = worker.poll_task() {
            let own = own.clone();
            pool.spawn(move || {
                // The worker may have stopped; then the result is not needed.
                let _ = own.send(Input::Done(task.run()));
            });
        }
        let Ok(input) = inbox.recv() else { return };
        let now = clock.now();
        match input {
            Input::Net { from, msg } => worker.handle_message(now, from, msg),
            Input::Done(done) => worker.handle_task_done(now, done),
            Input::Stop => return,
            other => tracing::warn!(?other, "a worker ignores an unexpected input"),
        }
    }
}
