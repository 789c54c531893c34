//! The [`Context`]: where datasets are created and where actions send their jobs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::codec::CodecError;
use crate::dead_letter::DeadLetterLog;
use crate::error::{Error, TaskErrorKind};
use crate::graph::{ActionNode, Graph};
use crate::ids::{ActionId, BlockId, RddId};
use crate::message::{Builtin, Fact, Payload};
use crate::time::Time;

/// A job ready for a driver: an action over some partitions of a dataset. Opaque to runners,
/// which hand it to [`Driver::submit_job`](crate::Driver::submit_job).
pub struct JobRequest {
    pub(crate) action: ActionId,
    pub(crate) handle: Arc<dyn ActionNode>,
    pub(crate) rdd: RddId,
    pub(crate) partitions: Vec<u32>,
    /// The built-in computation the action is, if it is one (see [`Builtin`]).
    pub(crate) builtin: Option<Builtin>,
    /// Where the job's dead letters go, when some stream of the context has them on.
    pub(crate) dead_letters: Option<Arc<DeadLetterLog>>,
}

impl std::fmt::Debug for JobRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobRequest")
            .field("action", &self.action)
            .field("rdd", &self.rdd)
            .field("partitions", &self.partitions.len())
            .finish()
    }
}

/// Blocks for the workers' stores, ready for
/// [`Driver::store_blocks`](crate::Driver::store_blocks): input blocks of a stream. Opaque to
/// runners.
pub struct BlockUpload {
    pub(crate) blocks: Vec<(BlockId, Payload, u64)>,
    /// Where the blocks go: uploads of the same group go to the same workers while the alive
    /// workers stay the same (a stream's blocks of one block interval, read by one task).
    pub(crate) group: u64,
    /// Encodes one of the blocks' local payloads, for workers in other processes.
    pub(crate) encode: fn(&Payload) -> Result<Payload, CodecError>,
}

impl std::fmt::Debug for BlockUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockUpload").field("blocks", &self.blocks.len()).finish()
    }
}

/// Runs jobs on a cluster: implemented by each way of running the engine (the in-process
/// cluster, the stepping harness, ...).
pub trait JobRunner: Send + Sync {
    /// Runs `job` to completion; returns one result payload per requested partition, in
    /// order.
    fn run_job(&self, job: JobRequest) -> Result<Vec<Payload>, Error>;

    /// Stores `upload`'s blocks on the workers, each on as many distinct workers as the
    /// driver's `input_replicas`; returns once every replica is stored.
    fn store_blocks(&self, upload: BlockUpload) -> Result<(), Error>;

    /// Tells the workers that build the program themselves what they need to rebuild batches
    /// as the driver made them ([`Fact`]): a runtime whose workers have graphs of their own
    /// hands it to [`Driver::announce`](crate::Driver::announce). The default does nothing,
    /// which is right when every worker shares the driver's graph (in one process).
    fn announce(&self, fact: Fact) {
        let _ = fact;
    }

    /// How many jobs a streaming context may run at once over input blocks as they are stored,
    /// ahead of their batch's close (the narrow part of each batch, see
    /// `StreamingContext::early_partitions`). Zero, the default, turns this off: it is for
    /// runtimes whose workers all share the driver's graph in one process, so that a result
    /// computed ahead is there for the batch's task to read, and whose jobs may run on threads
    /// of their own (not a stepped, deterministic runtime).
    fn early_parallelism(&self) -> usize {
        0
    }
}

/// The entry point of a program: creates datasets and runs their jobs on a cluster.
///
/// Obtained from a cluster (`LocalCluster::context`, [`StepCluster::context`](crate::StepCluster::context));
/// cheap to clone.
#[derive(Clone)]
pub struct Context {
    graph: Arc<Graph>,
    runner: Arc<dyn JobRunner>,
    /// The streams with dead letters on, and the letters their jobs set aside.
    dead_letters: Arc<DeadLetterLog>,
    /// See [`Context::default_parallelism`].
    default_parallelism: Arc<AtomicUsize>,
    /// Who stores lost input blocks again, if anyone (a checkpointing streaming context).
    input_restorer: Arc<Mutex<Option<Weak<dyn InputRestorer>>>>,
}

/// Restores input blocks that no worker holds any more from a copy kept elsewhere: a
/// checkpointing streaming context's input log.
pub(crate) trait InputRestorer: Send + Sync {
    /// Stores every block of the input batch at `batch` that `block` belongs to again, from
    /// the copy; returns whether there was one.
    fn restore(&self, block: BlockId, batch: Time) -> Result<bool, Error>;
}

/// How many times one job may have lost input restored before its failure stands: every input
/// batch it reads can be lost once, and a few again.
const INPUT_RESTORES_PER_JOB_MAX: usize = 64;

/// [`Context::default_parallelism`] until [`Context::set_default_parallelism`] changes it.
pub const DEFAULT_PARALLELISM: usize = 2;

impl Context {
    /// A context whose datasets live in `graph` and whose jobs run on `runner`.
    pub fn new(graph: Arc<Graph>, runner: Arc<dyn JobRunner>) -> Context {
        Context {
            graph,
            runner,
            dead_letters: Arc::new(DeadLetterLog::new()),
            default_parallelism: Arc::new(AtomicUsize::new(DEFAULT_PARALLELISM)),
            input_restorer: Arc::new(Mutex::new(None)),
        }
    }

    /// Sets who restores lost input blocks (see [`InputRestorer`]).
    pub(crate) fn set_input_restorer(&self, restorer: Weak<dyn InputRestorer>) {
        *self.input_restorer.lock().unwrap_or_else(|p| p.into_inner()) = Some(restorer);
    }

    fn input_restorer(&self) -> Option<Arc<dyn InputRestorer>> {
        self.input_restorer.lock().unwrap_or_else(|p| p.into_inner()).as_ref().and_then(Weak::upgrade)
    }

    /// The partition count of operators that keep a state across batches and are not given
    /// one (Spark's `spark.default.parallelism`): the incremental windows
    /// (`DStream::reduce_by_key_and_window_inv`, `DStream::count_by_value_and_window`).
    /// [`DEFAULT_PARALLELISM`] unless set. Operators over one dataset keep its partition count
    /// instead (`reduce_by_key`, `group_by_key`, joins), as in Spark without the setting.
    pub fn default_parallelism(&self) -> usize {
        self.default_parallelism.load(Ordering::Relaxed)
    }

    /// Sets [`Context::default_parallelism`] for the operators built from now on; zero is an
    /// error. The partition counts are part of the program, so set it in the job function every
    /// process runs (a worker building a program with another count is refused, naming the
    /// stream that differs).
    ///
    /// # Examples
    ///
    /// ```
    /// let cluster = dstream::StepCluster::builder().build();
    /// let ctx = cluster.context();
    /// assert_eq!(ctx.default_parallelism(), dstream::DEFAULT_PARALLELISM);
    /// ctx.set_default_parallelism(8)?;
    /// assert_eq!(ctx.default_parallelism(), 8);
    /// assert!(ctx.set_default_parallelism(0).is_err());
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn set_default_parallelism(&self, partitions: usize) -> Result<(), Error> {
        let n = crate::rdd::check_partitions("set_default_parallelism", partitions)?;
        self.default_parallelism.store(n, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn dead_letter_log(&self) -> &Arc<DeadLetterLog> {
        &self.dead_letters
    }

    /// The program's graph.
    pub fn graph(&self) -> &Arc<Graph> {
        &self.graph
    }

    /// Stores the blocks of `upload` on the workers (see [`JobRunner::store_blocks`]).
    pub(crate) fn store_blocks(&self, upload: BlockUpload) -> Result<(), Error> {
        self.runner.store_blocks(upload)
    }

    /// See [`JobRunner::early_parallelism`].
    pub(crate) fn early_parallelism(&self) -> usize {
        self.runner.early_parallelism()
    }

    /// Tells workers with graphs of their own `fact` (see [`JobRunner::announce`]).
    pub(crate) fn announce(&self, fact: Fact) {
        self.runner.announce(fact);
    }

    /// Runs a job once: lost input is the job's error, never restored. For work whose failure
    /// only means it is done later another way (a partition computed ahead of its batch).
    pub(crate) fn run_job_once(
        &self,
        action: ActionId,
        handle: Arc<dyn ActionNode>,
        partitions: Vec<u32>,
        builtin: Option<Builtin>,
    ) -> Result<Vec<Payload>, Error> {
        self.runner.run_job(self.job_request(action, handle, partitions, builtin))
    }

    fn job_request(
        &self,
        action: ActionId,
        handle: Arc<dyn ActionNode>,
        partitions: Vec<u32>,
        builtin: Option<Builtin>,
    ) -> JobRequest {
        let rdd = handle.rdd();
        let dead_letters = self.dead_letters.any_covered().then(|| Arc::clone(&self.dead_letters));
        JobRequest { action, handle, rdd, partitions, builtin, dead_letters }
    }

    pub(crate) fn run_job(
        &self,
        action: ActionId,
        handle: Arc<dyn ActionNode>,
        partitions: Vec<u32>,
        builtin: Option<Builtin>,
    ) -> Result<Vec<Payload>, Error> {
        let mut restored = 0;
        loop {
            let result = self.run_job_once(action, Arc::clone(&handle), partitions.clone(), builtin);
            // Input no worker holds any more is stored again from its copy, if there is one,
            // and the job runs again; without a copy the loss is the job's error.
            let lost = match &result {
                Err(Error::TaskFailed { cause, .. }) => match cause.kind {
                    TaskErrorKind::InputLost { block, batch } => Some((block, batch)),
                    _ => None,
                },
                _ => None,
            };
            let Some((block, batch)) = lost.filter(|_| restored < INPUT_RESTORES_PER_JOB_MAX) else {
                return result;
            };
            let Some(restorer) = self.input_restorer() else { return result };
            if !restorer.restore(block, batch)? {
                return result;
            }
            restored += 1;
            tracing::warn!(%block, %batch, "every replica of an input block was lost; stored again from the input log");
        }
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("graph", &self.graph).finish()
    }
}
