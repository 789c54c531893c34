//! The [`Context`]: where datasets are created and where actions send their jobs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::codec::CodecError;
use crate::dead_letter::DeadLetterLog;
use crate::error::Error;
use crate::graph::{ActionNode, Graph};
use crate::ids::{ActionId, BlockId, RddId};
use crate::message::{Builtin, Fact, Payload};

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
}

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
        }
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

    /// Tells workers with graphs of their own `fact` (see [`JobRunner::announce`]).
    pub(crate) fn announce(&self, fact: Fact) {
        self.runner.announce(fact);
    }

    pub(crate) fn run_job(
        &self,
        action: ActionId,
        handle: Arc<dyn ActionNode>,
        partitions: Vec<u32>,
        builtin: Option<Builtin>,
    ) -> Result<Vec<Payload>, Error> {
        let rdd = handle.rdd();
        let dead_letters = self.dead_letters.any_covered().then(|| Arc::clone(&self.dead_letters));
        self.runner.run_job(JobRequest { action, handle, rdd, partitions, builtin, dead_letters })
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("graph", &self.graph).finish()
    }
}
