//! Errors: [`Error`] for the user-facing API, [`TaskError`] for a failed task (it crosses
//! processes, so it is plain data).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{ActionId, BlockId, JobId, NodeId, RddId, StageId, StreamId, WorkerId};
use crate::time::Time;

/// An error returned by the dstream API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A dataset or operation was asked to have zero partitions.
    #[error("{operation}: the number of partitions must be at least 1")]
    ZeroPartitions {
        /// The operation that was asked for zero partitions.
        operation: &'static str,
    },
    /// An action that needs at least one record ran over an empty dataset.
    #[error("{action} over {rdd}: the dataset is empty")]
    EmptyRdd {
        /// The action, such as `reduce`.
        action: &'static str,
        /// The dataset.
        rdd: RddId,
    },
    /// A task failed on every attempt it was allowed, or with an error that retrying cannot fix.
    #[error(
        "{job} failed: task for {rdd} partition {partition} in {stage} failed after {attempts} attempt(s): {cause}"
    )]
    TaskFailed {
        /// The job that failed.
        job: JobId,
        /// The stage the task belongs to.
        stage: StageId,
        /// The dataset the task computes.
        rdd: RddId,
        /// The partition the task computes.
        partition: u32,
        /// How many attempts were made.
        attempts: u32,
        /// The error of the last attempt (boxed: it is rare, and keeps every `Result` small).
        cause: Box<TaskError>,
    },
    /// A worker did not take a replica of an input block (its store was full of blocks it
    /// cannot evict, for example), so the batch's input is not stored as often as required.
    #[error("{worker} did not store {block}: {cause}")]
    BlockNotStored {
        /// The block.
        block: BlockId,
        /// The worker that refused it.
        worker: WorkerId,
        /// Why (boxed: it is rare, and keeps every `Result` small).
        cause: Box<TaskError>,
    },
    /// A worker with a graph of its own was asked to rebuild an input batch the driver did not
    /// announce to it (or already released): it cannot know the batch's blocks.
    #[error("batch {time} of {stream} was not announced to this worker, so it cannot rebuild its input")]
    InputNotAnnounced {
        /// The input stream.
        stream: StreamId,
        /// The batch time.
        time: Time,
    },
    /// A worker with a graph of its own cannot rebuild what a task names yet, for the reason
    /// given (its program has no streaming context, the driver has told it nothing yet).
    #[error("this worker cannot rebuild batches: {0}")]
    NotReplayable(&'static str),
    /// A worker was asked to rebuild a batch of a stream its program does not have.
    #[error("the program has no stream {stream}")]
    UnknownStream {
        /// The stream.
        stream: StreamId,
    },
    /// A program running on a worker with a graph of its own asked for an action: only the
    /// driver runs jobs, a worker only builds the program's datasets (inside a batch's
    /// computation it takes the result of the driver's run of the same job, when the driver
    /// sent one).
    #[error(
        "the program ran {action} on a worker, where only the driver runs jobs (and the driver sent no result of it)"
    )]
    ActionOnWorker {
        /// The action.
        action: ActionId,
    },
    /// Fewer workers are alive than each input block must be stored on, and none joined in
    /// time (or the last one that could take a replica was lost): the batch's input is not
    /// stored, never stored fewer times than required.
    #[error(
        "input blocks must be stored on {needed} workers, only {alive} are alive (waited {waited:?}): add workers or lower input_replicas"
    )]
    NotEnoughWorkers {
        /// Replicas each block needs.
        needed: usize,
        /// Workers alive.
        alive: usize,
        /// How long the upload waited for more.
        waited: std::time::Duration,
    },
    /// No worker was alive for the driver's `workers_wait_max`: the job cannot run anywhere.
    #[error(
        "no worker has been alive for {waited:?}: the job cannot run; start workers (or restart the lost ones) within the driver's workers_wait_max"
    )]
    NoWorkers {
        /// How long the job waited for a worker.
        waited: std::time::Duration,
    },
    /// A stream's data checkpoints failed `failures` times in a row (see
    /// `StreamingContext::checkpoint_failures_max`): its lineage, and what a restart must
    /// replay, would grow without a bound, so the context stops. Free the storage (or fix
    /// it) and restart: nothing that completed is lost.
    #[error("the data checkpoints of {stream} failed {failures} times in a row, the last with: {last}")]
    CheckpointsFailing {
        /// The stream.
        stream: crate::ids::StreamId,
        /// Consecutive failures.
        failures: u32,
        /// The last failure.
        last: String,
    },
    /// More records of one batch were set aside as dead letters than
    /// `StreamingContext::dead_letters_per_batch_max` allows: so many poison records point at
    /// a bug or a changed input format rather than at a few bad records, and the batch fails
    /// rather than set its input aside wholesale. Fix the cause (or raise the bound) and
    /// restart: the batch is replayed.
    #[error("the batch at {time} set aside {count} dead letters, more than the {max} allowed")]
    TooManyDeadLetters {
        /// The batch.
        time: crate::time::Time,
        /// Dead letters that arrived (at least).
        count: usize,
        /// The bound.
        max: u32,
    },
    /// A stream sets records aside as dead letters (`DStream::with_dead_letters`) but no
    /// output receives them: they would be lost. Add
    /// `StreamingContext::foreach_dead_letters` before the start.
    #[error("{stream} sets poison records aside, but no output receives them: add foreach_dead_letters")]
    NoDeadLetterOutput {
        /// A stream with dead letters on.
        stream: StreamId,
    },
    /// An output operation's closure panicked: its batch failed, and the context stops.
    #[error("output {output} of the batch at {time} panicked: {message}")]
    OutputPanicked {
        /// The output operation (`foreach_rdd`, `print`, ...).
        output: &'static str,
        /// The batch.
        time: crate::time::Time,
        /// The panic's message.
        message: String,
    },
    /// A result could not be encoded or decoded.
    #[error("codec: {0}")]
    Codec(#[from] crate::codec::CodecError),
    /// A worker was refused by the driver when joining.
    #[error("{worker} refused by the driver: {reason}")]
    Refused {
        /// The worker that was refused.
        worker: WorkerId,
        /// Why.
        reason: String,
    },
    /// An action (`collect`, `count`, ...) was called from inside a task: from a function that
    /// runs on a worker, such as the closure of a `map` or a `filter`.
    ///
    /// Refused rather than run, because the runtime is busy with the outer job and waiting for
    /// the inner one would deadlock. Run the action in the driver program (for instance in the
    /// function of `foreach_rdd`, outside the dataset's closures) and move its result into the
    /// closures that need it, or combine the two datasets with a join.
    #[error(
        "an action was called from inside a task: actions run in the driver program, not in the functions of map, filter and the like"
    )]
    ActionInTask,
    /// The cluster stopped (it was dropped, or its driver thread ended) before the job finished.
    ///
    /// Raised by `dstream-inproc`'s `LocalCluster` for a job submitted after its driver thread
    /// ended (`submitted` false: nothing of the job ran) and for a job still running when it
    /// stopped (`submitted` true: some of its tasks may have run). No job can run on this cluster
    /// any more: keep the cluster alive as long as its contexts are used, or build a new one.
    #[error("{}", if *submitted { "the cluster stopped before the job finished" } else { "the cluster has stopped: the job was not submitted" })]
    ClusterStopped {
        /// Whether the job had reached the driver (and so may have run tasks).
        submitted: bool,
    },
    /// A job cannot progress: no message is in flight and no task is ready, yet the job has not
    /// finished.
    ///
    /// Raised by the [`StepCluster`](crate::StepCluster) harness, which runs everything on the
    /// calling thread and so sees the cluster go quiet. The harness always has a worker, so this
    /// is a bug in the driver or worker state machines (a message dropped, a task never queued):
    /// report it with the harness's seed and its [`trace`](crate::StepCluster::trace).
    #[error("{job} cannot progress: no message in flight and no task to run ({workers} workers registered)")]
    NoProgress {
        /// The job that cannot finish.
        job: JobId,
        /// How many workers the driver had registered.
        workers: usize,
    },
    /// The driver of a [`StepCluster`](crate::StepCluster) crashed, as planned by
    /// [`Fault::CrashDriver`](crate::Fault::CrashDriver): the cluster runs nothing any more,
    /// and the program restarts on a new one from its checkpoint.
    #[error("the driver crashed at {at} (a planned fault): restart the program from its checkpoint")]
    DriverCrashed {
        /// The virtual time of the crash.
        at: crate::time::Time,
    },
    /// The operating system refused to start a thread (too many threads, or out of memory).
    ///
    /// Raised when a runtime starts its threads: `StreamingContext::start` (the batch thread),
    /// `StreamingContext::start_receivers` (one thread per receiver), `dstream-inproc`'s
    /// `LocalClusterBuilder::build` (driver, worker and task-pool threads). What failed to start
    /// does not run; the call can be retried once the process holds fewer threads (fewer
    /// receivers, workers or pool threads).
    #[error("cannot start thread {name}: {reason}")]
    ThreadStart {
        /// The name of the thread (or pool of threads) that could not be started.
        name: String,
        /// What the operating system said.
        reason: String,
    },
    /// The batch thread of a started streaming context panicked.
    ///
    /// Returned by `StreamingHandle::stop` and `StreamingHandle::await_termination`. A panic in
    /// a task becomes a failed task, and a batch that fails stops the context with
    /// [`Error::BatchFailed`]; this is a panic in code the batch thread runs itself: an output
    /// operation's function outside its tasks, a listener, or dstream. The context is stopped;
    /// `message` is the panic's.
    #[error("the batch thread panicked: {message}")]
    BatchThreadPanicked {
        /// The panic message.
        message: String,
    },
    /// An internal invariant of dstream does not hold: a bug in dstream, to be reported with
    /// the message (and, under the harness, its seed). Nothing the caller did causes it.
    #[error("internal error (a bug in dstream, please report it): {0}")]
    Internal(&'static str),
    /// A duration (batch interval, window length or slide) is not valid.
    #[error("invalid {what}: {reason}")]
    InvalidDuration {
        /// Which duration.
        what: String,
        /// Why it is not valid.
        reason: String,
    },
    /// [`StreamingContext::start`](crate::StreamingContext::start) was called on a context
    /// that does not checkpoint, and a stream keeps a state across batches
    /// (`update_state_by_key`, `map_with_state`, the incremental windows). Each state's lineage
    /// reaches back to the first batch until a checkpoint cuts it, so without checkpoints the
    /// memory it holds grows every batch, without bound; Spark refuses to start such a program
    /// without a checkpoint directory. Build the context with
    /// [`StreamingContext::get_or_create`](crate::StreamingContext::get_or_create), or, for a
    /// run of bounded length (a test, a demo), call
    /// [`StreamingContext::allow_unbounded_lineage`](crate::StreamingContext::allow_unbounded_lineage)
    /// before starting. Contexts driven by `step` are not checked: they run the batches asked for.
    #[error(
        "{stream} ({operator}) keeps a state across batches, and this context does not checkpoint: its lineage, and the memory it holds, would grow every batch without bound; build the context with StreamingContext::get_or_create, or call StreamingContext::allow_unbounded_lineage for a run of bounded length"
    )]
    CheckpointRequired {
        /// The first stateful stream.
        stream: StreamId,
        /// Its operator, such as `update_state_by_key`.
        operator: &'static str,
    },
    /// A streaming context was started without any output operation.
    #[error("no output operation is registered: nothing would run (add foreach_rdd or print)")]
    NoOutputOperations,
    /// An operation that must happen before the streaming context starts came after.
    #[error("{operation}: the streaming context has already started")]
    StreamingStarted {
        /// The operation.
        operation: &'static str,
    },
    /// An input stream's buffer stayed full for the whole bounded wait: the records of the push
    /// were not accepted (every record accepted before is kept). Batches do not free room as
    /// fast as records are pushed: push more slowly, process faster, or raise the bound (see
    /// `FlowControl`).
    #[error(
        "the input buffer of {stream} is full ({bytes_max} bytes) and no batch freed room in {waited:?}: the records were not accepted"
    )]
    InputBufferFull {
        /// The input stream.
        stream: crate::ids::StreamId,
        /// The buffer's bound, in estimated bytes.
        bytes_max: u64,
        /// How long the push waited, on the context's clock.
        waited: std::time::Duration,
    },
    /// The streaming context has stopped (or stops accepting input).
    #[error("the streaming context has stopped")]
    StreamingStopped,
    /// A batch failed and stopped the streaming context.
    #[error("a batch failed: {0}")]
    BatchFailed(String),
    /// A message came from, or went to, a peer the receiver does not know.
    #[error("unknown peer {0}")]
    UnknownPeer(NodeId),
    /// A checkpoint (of state, of metadata, or of a batch's input) could not be written or read.
    #[error("{what}: {source}")]
    Checkpoint {
        /// What was being written or read.
        what: String,
        /// Why it failed.
        source: crate::checkpoint::CheckpointError,
    },
    /// The checkpoints a program was asked to resume from were written by another program: its
    /// streams, operators or static datasets differ, or its batch interval does.
    #[error(
        "the checkpoints were written by another program: {what} is {found}, this program's is {expected}; resume with the program that wrote them, or start from empty storage"
    )]
    ProgramMismatch {
        /// What differs: the program fingerprint or the batch interval.
        what: &'static str,
        /// This program's value.
        expected: String,
        /// The value the checkpoints hold.
        found: String,
    },
    /// An I/O operation failed: a source could not be set up (an address that does not
    /// resolve, for `dstream-storage`'s `socket_text_stream`), or a file or socket operation of
    /// the program's own failed. dstream's core does no I/O itself; this variant lets a
    /// program whose `main` returns `Result<(), dstream::Error>` use `?` on `std::io::Result`.
    /// What to do depends on the operation: the error says what the OS reported.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A direct source (see [`StreamingContext::direct_stream`](crate::StreamingContext::direct_stream))
    /// could not read a batch; the context stops with this error before the batch runs, and
    /// nothing of it was consumed: a restart reads it again.
    #[error("the source of {stream} failed at batch {time}: {source}")]
    SourceFailed {
        /// The source's stream.
        stream: crate::ids::StreamId,
        /// The batch it was reading.
        time: crate::time::Time,
        /// The source's own error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The checkpoints a program was asked to resume from cannot be used: every copy of what is
    /// needed is damaged or missing.
    #[error("cannot resume from the checkpoints: {0}")]
    NoValidCheckpoint(String),
}

/// Why a task attempt failed. Plain data: it travels from a worker to the driver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskError {
    /// What kind of failure it was.
    pub kind: TaskErrorKind,
    /// What happened, for people.
    pub message: String,
}

/// The kinds of task failure. [`TaskErrorKind::retryable`] says which ones a retry may fix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TaskErrorKind {
    /// User code panicked; the message is the panic payload.
    Panicked,
    /// A record or result could not be serialized.
    Encode,
    /// A block or result could not be deserialized.
    Decode,
    /// A block the task needs was not found where it was expected.
    FetchFailed {
        /// The missing block.
        block: BlockId,
    },
    /// The worker a block was asked of answered that it does not hold it (a restarted process,
    /// a block dropped): the driver stops listing it there.
    BlockNotHeld {
        /// The block.
        block: BlockId,
        /// The worker that does not hold it.
        holder: WorkerId,
    },
    /// A block is larger than the whole block store.
    BlockTooLarge {
        /// The block.
        block: BlockId,
        /// Its estimated size.
        bytes: u64,
        /// The store's limit.
        limit_bytes: u64,
    },
    /// The store is full of blocks that cannot be evicted (shuffle outputs in use).
    StoreFull {
        /// The block that did not fit.
        block: BlockId,
        /// Bytes held by blocks that cannot be evicted.
        pinned_bytes: u64,
        /// The store's limit.
        limit_bytes: u64,
    },
    /// A user-provided source failed to read a partition.
    Source,
    /// The worker does not know a node the task names: it runs a different program.
    UnknownNode,
    /// No worker holds any replica of an input block the task reads: the input is lost.
    InputLost {
        /// The block (it names its stream).
        block: BlockId,
        /// The time of the input batch the block belongs to.
        batch: Time,
    },
    /// User code panicked on every attempt, and again when the task ran once more setting
    /// poison records aside (dead letters): the panic is in code dead letters do not cover (a
    /// reduce or combine function, `map_partitions`, a stream without dead letters on), so no
    /// one record can be blamed. The message is the last panic's.
    PanicNotCovered,
    /// A task setting poison records aside refused more of them than its batch may keep
    /// (`StreamingContext::dead_letters_per_batch_max`).
    DeadLettersExceeded,
}

impl TaskErrorKind {
    /// Whether another attempt of the same task can succeed. Deterministic failures (a block
    /// larger than the store, an unencodable record, a different program) are not retried.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            TaskErrorKind::Panicked
                | TaskErrorKind::Source
                | TaskErrorKind::FetchFailed { .. }
                | TaskErrorKind::BlockNotHeld { .. }
        )
    }
}

impl TaskError {
    /// An error of `kind` with `message`.
    pub fn new(kind: TaskErrorKind, message: impl Into<String>) -> TaskError {
        TaskError { kind, message: message.into() }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            TaskErrorKind::Panicked => write!(f, "user code panicked: {}", self.message),
            TaskErrorKind::Encode => write!(f, "encode failed: {}", self.message),
            TaskErrorKind::Decode => write!(f, "decode failed: {}", self.message),
            TaskErrorKind::FetchFailed { block } => write!(f, "block {block} not found: {}", self.message),
            TaskErrorKind::BlockNotHeld { block, holder } => {
                write!(f, "block {block} is not held by {holder}: {}", self.message)
            }
            TaskErrorKind::BlockTooLarge { block, bytes, limit_bytes } => write!(
                f,
                "block {block} of about {bytes} bytes is larger than the block store ({limit_bytes} bytes)"
            ),
            TaskErrorKind::StoreFull { block, pinned_bytes, limit_bytes } => write!(
                f,
                "block {block} does not fit: {pinned_bytes} of {limit_bytes} bytes are held by blocks that cannot be evicted"
            ),
            TaskErrorKind::Source => write!(f, "source failed: {}", self.message),
            TaskErrorKind::UnknownNode => write!(f, "unknown graph node: {}", self.message),
            TaskErrorKind::InputLost { block, batch } => {
                write!(f, "input block {block} of the batch at {batch} is lost: {}", self.message)
            }
            TaskErrorKind::PanicNotCovered => write!(
                f,
                "user code panicked on every attempt, also when setting poison records aside: the panic is outside the per-record operators dead letters cover: {}",
                self.message
            ),
            TaskErrorKind::DeadLettersExceeded => write!(f, "too many dead letters: {}", self.message),
        }
    }
}

impl std::error::Error for TaskError {}
