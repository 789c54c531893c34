//! [`StreamingContext`]: the stream graph, its output operations, and the batches that run it.

mod execute;
mod handle;

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

pub use handle::StreamingHandle;

use super::checkpoint::{CheckpointInfo, Checkpointer};
use super::dead_letters::DeadLetterFn;
use super::early::{AheadRun, PartitionsAhead};
use super::input::InputDyn;
use super::receiver::ReceiverDyn;
use super::{lock, BatchCtx, StreamNodeDyn};
use crate::error::Error;
use crate::graph::{ProgramPart, ProgramSummary};
use crate::ids::StreamId;
use crate::runtime::{self, batches::StopRequest};
use crate::scheduler::{BatchScheduler, CheckpointWrites, Config, Driving, Position};
use crate::time::{Clock, Time};
use crate::Context;
use execute::Executor;

/// Failed data checkpoints of one stream in a row that stop the context, by default: with the
/// default interval (at least 10 s), half a minute of a store refusing writes.
const CHECKPOINT_FAILURES_MAX: u32 = 3;

/// An output operation: runs once per batch, in definition order.
pub(crate) struct OutputOp {
    pub(crate) name: &'static str,
    /// The stream it reads.
    pub(crate) stream: StreamId,
    pub(crate) run: Box<dyn Fn(Time, &BatchCtx<'_>) -> Result<(), Error> + Send + Sync>,
}

/// Where a streaming context is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamingState {
    /// Built, not started: streams and outputs may be added.
    Initialized,
    /// Running batches.
    Active,
    /// Stopped; it cannot be started again.
    Stopped,
}

/// What happened in one batch, reported to [`StreamingListener`]s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchInfo {
    /// The batch time.
    pub time: Time,
    /// Records the inputs received for the batch.
    pub records: u64,
    /// Each input stream's records in the batch, in the order the inputs were created; they
    /// sum to `records`.
    pub input_records: Vec<(StreamId, u64)>,
    /// From the batch time to the start of its processing.
    pub scheduling_delay: Duration,
    /// From the start to the end of its processing.
    pub processing_delay: Duration,
    /// From the batch time to the end of its processing.
    pub total_delay: Duration,
    /// Each output operation's name and running time, in definition order.
    pub output_ops: Vec<(&'static str, Duration)>,
    /// Dead letters delivered with the batch (see `DStream::with_dead_letters`): records set
    /// aside by this batch's jobs, of this batch or of earlier ones they recomputed.
    pub dead_letters: u64,
}

/// Receives events of a running streaming context. Methods have empty defaults.
///
/// Add one with [`StreamingContext::add_listener`]. Batch events arrive on the thread that
/// runs the batches (a slow listener delays the next batch), receiver errors on the
/// receiver's thread. The [monitoring guide](crate::guide::monitoring) has more.
///
/// # Examples
///
/// A listener that prints a line per batch and keeps the records of each:
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use dstream::{BatchInfo, ManualClock, StepCluster, StreamId, StreamingContext, StreamingListener, Time};
///
/// #[derive(Default)]
/// struct Report(Mutex<Vec<u64>>);
///
/// impl StreamingListener for Report {
///     fn on_batch_completed(&self, info: &BatchInfo) {
///         println!("batch {}: {} records in {:?}", info.time, info.records, info.processing_delay);
///         self.0.lock().unwrap().push(info.records);
///     }
///     fn on_receiver_error(&self, stream: StreamId, message: &str) {
///         eprintln!("{stream}: {message}");
///     }
/// }
///
/// let cluster = StepCluster::builder().build();
/// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))?;
/// let report = Arc::new(Report::default());
/// ssc.add_listener(report.clone());
/// let (queue, words) = ssc.queue_stream::<String>(1);
/// words.print(5)?;
/// queue.push(vec!["to".into(), "be".into()]);
/// ssc.step()?;
/// ssc.step()?; // an empty batch
/// assert_eq!(*report.0.lock().unwrap(), [2, 0]);
/// # Ok::<(), dstream::Error>(())
/// ```
pub trait StreamingListener: Send + Sync {
    /// A batch's time has come: its inputs are about to close.
    fn on_batch_submitted(&self, _time: Time) {}
    /// A batch's inputs are closed and its output operations are about to run.
    fn on_batch_started(&self, _time: Time) {}
    /// A batch completed.
    fn on_batch_completed(&self, _info: &BatchInfo) {}
    /// A batch failed; the context stops with this error.
    fn on_batch_failed(&self, _time: Time, _error: &Error) {}
    /// A receiver met an error it recovered from (a dropped connection, an invalid line).
    /// The context also keeps the latest ones, listener or not:
    /// [`StreamingContext::receiver_errors`].
    fn on_receiver_error(&self, _stream: StreamId, _message: &str) {}
    /// A data checkpoint ended, written or failed. Reported at the batch boundary where its
    /// lineage is cut: after the batch that started it when batches run through
    /// [`StreamingContext::step`], at the next batch when they run on their own thread.
    fn on_checkpoint(&self, _info: &CheckpointInfo) {}
}

pub(crate) struct Run {
    pub(crate) state: StreamingState,
    /// Whether batches run on the batch thread (`start`) rather than through `step`.
    threaded: bool,
    /// The time before the first batch: fixed when the context starts (or restored by a
    /// restart); the batch scheduler counts from it.
    pub(crate) zero: Time,
    /// Set by a restart, before the start: the batches completed since `zero`. From the start
    /// on the batch scheduler counts them.
    pub(crate) batches: u64,
    result: Option<Result<(), String>>,
    /// After a restart: the zero time is the one restored, and batches up to this time take
    /// their input from the input log instead of the inputs.
    pub(crate) replay_until: Option<Time>,
}

pub(crate) struct Inner {
    pub(crate) ctx: Context,
    pub(crate) batch_interval: Duration,
    pub(crate) block_interval: Duration,
    pub(crate) clock: Arc<dyn Clock>,
    next_id: AtomicU64,
    pub(crate) nodes: Mutex<Vec<Arc<dyn StreamNodeDyn>>>,
    pub(crate) outputs: Mutex<Vec<Arc<OutputOp>>>,
    pub(crate) inputs: Mutex<Vec<(Arc<dyn InputDyn>, Arc<dyn StreamNodeDyn>)>>,
    receivers: Mutex<Vec<Arc<dyn ReceiverDyn>>>,
    listeners: Mutex<Vec<Arc<dyn StreamingListener>>>,
    pub(crate) remember: Mutex<Duration>,
    /// The version the program gave itself, if any (see `StreamingContext::program_version`).
    version: Mutex<Option<String>>,
    /// Failed data checkpoints of one stream in a row that stop the context.
    pub(crate) checkpoint_failures_max: AtomicU32,
    /// Set by [`StreamingContext::allow_unbounded_lineage`].
    unbounded_lineage: AtomicBool,
    pub(crate) run: Mutex<Run>,
    /// Set when the context checkpoints ([`StreamingContext::get_or_create`]).
    pub(crate) checkpointer: OnceLock<Arc<Checkpointer>>,
    ended: Condvar,
    /// The batch thread of a started context, until someone waits for it to end.
    batch_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// A stop asked of the batch thread.
    stop: Arc<StopRequest>,
    /// The batch scheduler of a context driven by `step` (the batch thread owns its own).
    stepper: Mutex<Option<BatchScheduler>>,
    /// Where dead letters go (`foreach_dead_letters`).
    pub(crate) dead_letter_output: Mutex<Option<Arc<DeadLetterFn>>>,
    /// The latest errors the receivers reported.
    pub(crate) receiver_errors: Mutex<super::receiver::ReceiverErrors>,
    /// The threads computing partitions ahead of their batch's close, once started.
    ahead: Mutex<Option<Arc<AheadRun>>>,
}

impl ProgramPart for Inner {
    fn describe(&self) -> Vec<String> {
        let mut lines: Vec<String> = lock(&self.version).iter().map(|v| format!("version {v}")).collect();
        lines.extend(lock(&self.nodes).iter().map(|n| n.describe()));
        let outputs = lock(&self.outputs);
        lines.extend((0..).zip(outputs.iter()).map(|(i, op)| format!("output{i} {} of {}", op.name, op.stream)));
        lines
    }
}

/// The entry point of a streaming program: creates input streams, holds the stream graph and
/// its output operations, and runs one batch per batch interval.
///
/// Streams and outputs are added before [`StreamingContext::start`]; registering an output
/// after it is an error. Cheap to clone (a handle).
///
/// Sources: [`queue_stream`](StreamingContext::queue_stream) (tests),
/// [`input_stream`](StreamingContext::input_stream) (a handle to push into),
/// [`receiver_stream`](StreamingContext::receiver_stream) (a [`Receiver`](crate::Receiver) of
/// your own) and `generator_stream` (synthetic records, in [`generator`](crate::generator)).
/// The sources that read the outside world live in `dstream-storage`, as methods of its
/// extension trait [`StreamingContextExt`](../dstream_storage/trait.StreamingContextExt.html)
/// (`use dstream_storage::StreamingContextExt`):
/// [`socket_text_stream`](../dstream_storage/trait.StreamingContextExt.html#tymethod.socket_text_stream)
/// (lines from a TCP server; its receiver and options:
/// [`SocketTextReceiver`](../dstream_storage/struct.SocketTextReceiver.html)) and
/// [`text_file_stream`](../dstream_storage/trait.StreamingContextExt.html#tymethod.text_file_stream)
/// (new files of a directory:
/// [`TextFileStreamReceiver`](../dstream_storage/struct.TextFileStreamReceiver.html)); the
/// file sink is [`save_as_text_files`](../dstream_storage/trait.DStreamExt.html#tymethod.save_as_text_files).
///
/// Running: [`start`](StreamingContext::start) returns the [`StreamingHandle`] that stops the
/// context and waits for it (Spark's `stop` and `awaitTermination`);
/// [`step`](StreamingContext::step) runs one batch now, for tests;
/// [`get_or_create`](StreamingContext::get_or_create) builds a context that checkpoints and
/// resumes after a restart. Coming from Spark: [`guide::from_spark`](crate::guide::from_spark).
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use dstream::{ManualClock, StepCluster, StreamingContext, Time};
///
/// let cluster = StepCluster::builder().workers(2).build();
/// let clock = Arc::new(ManualClock::new(Time::ZERO));
/// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), clock)?;
/// let (queue, lines) = ssc.queue_stream::<String>(2);
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let sink = Arc::clone(&seen);
/// lines.map(|l| l.len()).foreach_rdd(move |rdd, _time| {
///     sink.lock().unwrap().push(rdd.collect()?);
///     Ok(())
/// })?;
/// queue.push(vec!["a".into(), "bcd".into()]);
/// ssc.step()?; // runs the first batch now, without waiting for the clock
/// assert_eq!(*seen.lock().unwrap(), vec![vec![1, 3]]);
/// # Ok::<(), dstream::Error>(())
/// ```
#[derive(Clone)]
pub struct StreamingContext {
    pub(crate) inner: Arc<Inner>,
}

impl StreamingContext {
    /// A context whose batches run every `batch_interval` on the cluster of `ctx`, reading time
    /// from `clock`. A zero interval is an error.
    pub fn new(ctx: Context, batch_interval: Duration, clock: Arc<dyn Clock>) -> Result<StreamingContext, Error> {
        if batch_interval.is_zero() {
            return Err(Error::InvalidDuration { what: "batch interval".into(), reason: "it must not be zero".into() });
        }
        let block_interval = batch_interval.min(Duration::from_millis(200));
        let ssc = StreamingContext {
            inner: Arc::new(Inner {
                ctx,
                batch_interval,
                block_interval,
                clock,
                next_id: AtomicU64::new(0),
                nodes: Mutex::new(Vec::new()),
                outputs: Mutex::new(Vec::new()),
                inputs: Mutex::new(Vec::new()),
                receivers: Mutex::new(Vec::new()),
                listeners: Mutex::new(Vec::new()),
                remember: Mutex::new(Duration::ZERO),
                version: Mutex::new(None),
                checkpoint_failures_max: AtomicU32::new(CHECKPOINT_FAILURES_MAX),
                unbounded_lineage: AtomicBool::new(false),
                run: Mutex::new(Run {
                    state: StreamingState::Initialized,
                    threaded: false,
                    zero: Time::ZERO,
                    batches: 0,
                    result: None,
                    replay_until: None,
                }),
                checkpointer: OnceLock::new(),
                ended: Condvar::new(),
                batch_thread: Mutex::new(None),
                stop: Arc::default(),
                stepper: Mutex::new(None),
                dead_letter_output: Mutex::new(None),
                receiver_errors: Mutex::default(),
                ahead: Mutex::new(None),
            }),
        };
        let part: Arc<dyn ProgramPart> = ssc.inner.clone();
        ssc.inner.ctx.graph().add_program_part(Arc::downgrade(&part));
        if let Some(replica) = ssc.inner.ctx.graph().replica() {
            // A worker's context: it rebuilds the batches its tasks name.
            let replayer: Arc<dyn crate::replica::Replayer> = ssc.inner.clone();
            replica.set_replayer(Arc::downgrade(&replayer));
        }
        Ok(ssc)
    }

    /// Builds a context and runs `job` on it to define the streams and outputs; returns both.
    /// Every process of a cluster runs the same job function, so they build the same graph.
    pub fn create<H>(
        ctx: Context,
        batch_interval: Duration,
        clock: Arc<dyn Clock>,
        job: impl FnOnce(&StreamingContext) -> Result<H, Error>,
    ) -> Result<(StreamingContext, H), Error> {
        let ssc = StreamingContext::new(ctx, batch_interval, clock)?;
        let handles = job(&ssc)?;
        Ok((ssc, handles))
    }

    /// The batch context of the cluster: for static datasets to join streams with.
    #[doc(alias = "sparkContext")]
    pub fn context(&self) -> &Context {
        &self.inner.ctx
    }

    /// The interval between batches.
    pub fn batch_interval(&self) -> Duration {
        self.inner.batch_interval
    }

    /// The clock batches are timed by.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Keeps every stream's datasets for at least `duration` after their batch, so they can be
    /// read with [`DStream::slice`](super::DStream::slice) while the context runs.
    pub fn remember(&self, duration: Duration) {
        *lock(&self.inner.remember) = duration;
    }

    /// Adds a listener of batch events.
    #[doc(alias = "addStreamingListener")]
    pub fn add_listener(&self, listener: Arc<dyn StreamingListener>) {
        lock(&self.inner.listeners).push(listener);
    }

    /// The context's state.
    pub fn state(&self) -> StreamingState {
        lock(&self.inner.run).state
    }

    /// Each input stream's buffer: the estimated bytes of the records it accepted that are not
    /// in a closed batch yet, in the order the inputs were created. What a receiver or an
    /// [`InputHandle`](crate::InputHandle) holds back waits here (its bound is the input's
    /// [`FlowControl`](crate::FlowControl)); a monitor samples it to see an input falling behind.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use dstream::{ManualClock, StepCluster, StreamingContext, Time};
    ///
    /// let cluster = StepCluster::builder().workers(1).build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))?;
    /// let (input, lines) = ssc.input_stream::<String>();
    /// lines.count().foreach_rdd(|_, _| Ok(()))?;
    /// input.push("a line".to_string())?;
    /// let buffers = ssc.input_buffered_bytes();
    /// assert_eq!(buffers.len(), 1);
    /// assert_eq!(buffers[0].0, lines.id());
    /// assert!(buffers[0].1 > 0);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn input_buffered_bytes(&self) -> Vec<(StreamId, u64)> {
        lock(&self.inner.inputs).iter().map(|(input, node)| (node.id(), input.buffered_bytes())).collect()
    }

    /// How many input partitions had the narrow part of their batch (the per-partition
    /// operators up to the first shuffle, window or output) computed while the batch was still
    /// filling, and how many of those the batches read, since the context started. Partitions
    /// are computed ahead on clusters whose workers share the driver's memory (`LocalCluster`);
    /// elsewhere both stay zero. Results are the same either way, batch by batch.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().build();
    /// # let clock = std::sync::Arc::new(dstream::ManualClock::new(dstream::Time::ZERO));
    /// let ssc = dstream::StreamingContext::new(cluster.context(), std::time::Duration::from_secs(1), clock)?;
    /// assert_eq!(ssc.partitions_ahead(), dstream::PartitionsAhead::default());
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn partitions_ahead(&self) -> PartitionsAhead {
        lock(&self.inner.ahead).as_ref().map(|run| run.counts()).unwrap_or_default()
    }

    pub(crate) fn next_stream_id(&self) -> StreamId {
        StreamId(self.inner.next_id.fetch_add(1, Ordering::SeqCst))
    }

    pub(crate) fn register_node(&self, node: Arc<dyn StreamNodeDyn>) {
        lock(&self.inner.nodes).push(node);
    }

    pub(crate) fn register_input(&self, input: Arc<dyn InputDyn>, node: Arc<dyn StreamNodeDyn>) {
        lock(&self.inner.inputs).push((input, node));
    }

    pub(crate) fn register_receiver(&self, receiver: Arc<dyn ReceiverDyn>) {
        lock(&self.inner.receivers).push(receiver);
    }

    pub(crate) fn receivers(&self) -> Vec<Arc<dyn ReceiverDyn>> {
        lock(&self.inner.receivers).clone()
    }

    pub(crate) fn register_output(&self, op: OutputOp) -> Result<(), Error> {
        if self.state() != StreamingState::Initialized {
            return Err(Error::StreamingStarted { operation: op.name });
        }
        lock(&self.inner.outputs).push(Arc::new(op));
        Ok(())
    }

    pub(crate) fn listeners(&self) -> Vec<Arc<dyn StreamingListener>> {
        lock(&self.inner.listeners).clone()
    }

    /// Moves from `Initialized` to `Active`, fixing the zero time; returns the batch scheduler
    /// that runs the batches from there (on the batch thread when `threaded`, else by steps).
    fn activate(&self, threaded: bool) -> Result<BatchScheduler, Error> {
        let outputs = lock(&self.inner.outputs).len();
        if outputs == 0 {
            return Err(Error::NoOutputOperations);
        }
        self.check_dead_letter_output()?;
        let outputs = u32::try_from(outputs).map_err(|_| Error::Internal("more output operations than u32::MAX"))?;
        let mut run = lock(&self.inner.run);
        match run.state {
            StreamingState::Initialized => {}
            StreamingState::Active => return Err(Error::StreamingStarted { operation: "start" }),
            StreamingState::Stopped => return Err(Error::StreamingStopped),
        }
        // The program is built: what the driver makes outside a batch from now on (a slice,
        // an ad-hoc query) is its own, not the program's.
        self.inner.ctx.graph().seal();
        let position = match run.replay_until {
            Some(until) => Position { zero: run.zero, completed: run.batches, replay_until: Some(until) },
            None => {
                let fresh = Position::fresh(self.inner.clock.now(), self.inner.batch_interval);
                if let Some(ck) = self.inner.checkpointer.get() {
                    self.begin_checkpoints(ck, fresh.zero);
                }
                fresh
            }
        };
        run.zero = position.zero;
        run.state = StreamingState::Active;
        run.threaded = threaded;
        let writes = if threaded { CheckpointWrites::Async } else { CheckpointWrites::Inline };
        let config = Config {
            interval: self.inner.batch_interval,
            outputs,
            checkpoints: self.inner.checkpointer.get().map(|_| writes),
            driving: if threaded { Driving::Clock } else { Driving::Steps },
        };
        Ok(BatchScheduler::new(config, position))
    }

    /// A digest of the stream program's shape: its streams (in construction order, with their
    /// operators, record types, slides, parents and shaping parameters) and its outputs.
    /// Checkpoints carry it, so a different program is refused rather than misread.
    pub(crate) fn program_fingerprint(&self) -> u64 {
        self.stream_program().fingerprint
    }

    /// The stream program's description and fingerprint (see
    /// [`StreamingContext::program_fingerprint`]).
    pub(crate) fn stream_program(&self) -> ProgramSummary {
        ProgramSummary::new(self.inner.describe())
    }

    /// Names this version of the program, for what its description cannot see: the bodies of
    /// its closures. The version is part of the program's fingerprint, so checkpoints written
    /// by another version are refused on restart ([`Error::ProgramMismatch`]) rather than read
    /// by code that may mean something else by them. Change it whenever a closure changes what
    /// a stateful stream stores. Set it while building the program; after the start it is an
    /// error.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use dstream::{ManualClock, StepCluster, StreamingContext, Time};
    /// # let cluster = StepCluster::builder().build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))?;
    /// ssc.program_version("pageviews 2: counts bots apart")?;
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn program_version(&self, version: impl Into<String>) -> Result<(), Error> {
        if self.state() != StreamingState::Initialized {
            return Err(Error::StreamingStarted { operation: "program_version" });
        }
        *lock(&self.inner.version) = Some(version.into());
        Ok(())
    }

    /// Runs the next batch now, in the calling thread, without waiting for the clock: for tests
    /// and deterministic drivers. The first call starts the context; a context started with
    /// [`StreamingContext::start`] refuses it. A failed batch stops the context. Calls from
    /// several threads run one batch after another.
    pub fn step(&self) -> Result<BatchInfo, Error> {
        let mut stepper = lock(&self.inner.stepper);
        if self.state() == StreamingState::Initialized {
            *stepper = Some(self.activate(false)?);
        }
        let zero = {
            let run = lock(&self.inner.run);
            if run.state != StreamingState::Active {
                return Err(Error::StreamingStopped);
            }
            if run.threaded {
                return Err(Error::StreamingStarted { operation: "step" });
            }
            run.zero
        };
        let Some(scheduler) = stepper.as_mut() else {
            return Err(Error::Internal("a stepped streaming context has no batch scheduler"));
        };
        let clock = &self.inner.clock;
        let mut executor = Executor::new(self.clone(), zero, false);
        scheduler.step(clock.now());
        // A panic outside the outputs (in a listener, say) fails its batch and then goes on to
        // the caller.
        let mut panicked = None;
        while let Some(work) = scheduler.poll_work() {
            let result = catch_unwind(AssertUnwindSafe(|| executor.run(&work))).unwrap_or_else(|panic| {
                let message = crate::task::panic_message(&*panic);
                panicked = Some(panic);
                Err(Error::BatchThreadPanicked { message })
            });
            scheduler.handle_work_done(clock.now(), &work, result);
        }
        if let Some(outcome) = scheduler.poll_stopped() {
            let error = match outcome {
                Err(failure) => failure.error,
                Ok(()) => Error::Internal("a stepped batch scheduler stopped without a failure"),
            };
            drop(stepper);
            // A failed batch stops the context, as it does on the batch thread: its inputs were
            // consumed, so running on would skip them silently.
            self.finish(Err(error.to_string()));
            if let Some(panic) = panicked {
                resume_unwind(panic);
            }
            return Err(error);
        }
        executor.take_reported().ok_or(Error::Internal("a stepped batch ended without its report"))
    }

    /// Starts running a batch every batch interval on a thread of its own, and the receivers.
    ///
    /// As in Spark, the context then runs until it is stopped ([`StreamingContext::stop`] or
    /// [`StreamingHandle::stop`]) or a batch fails: the returned handle is a convenience for
    /// stopping and waiting, and **dropping it does not stop the context**. A program's `main`
    /// waits for the end with [`StreamingHandle::await_termination`] (Spark's
    /// `awaitTermination`); a `main` that returns at once ends the process, and its batches
    /// with it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use dstream::{StepCluster, StreamingContext, StreamingState, SystemClock};
    ///
    /// let cluster = StepCluster::builder().build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_millis(10), Arc::new(SystemClock::new()))?;
    /// let (input, numbers) = ssc.input_stream::<u32>();
    /// numbers.count().foreach_rdd(|_, _| Ok(()))?;
    /// let running = ssc.start()?;
    /// input.push_all(0..10)?;
    /// running.stop(true)?; // processes what was pushed, then stops
    /// assert_eq!(ssc.state(), StreamingState::Stopped);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn start(&self) -> Result<StreamingHandle, Error> {
        if self.state() == StreamingState::Initialized {
            // A started or stopped context is refused for that, below.
            self.check_lineage_bounded()?;
        }
        let scheduler = self.activate(true)?;
        *lock(&self.inner.ahead) = super::early::start(self, scheduler.zero())?;
        self.start_receivers()?;
        let executor = Executor::new(self.clone(), scheduler.zero(), true);
        let inner = &self.inner;
        let thread = runtime::batches::start(scheduler, Arc::clone(&inner.clock), Arc::clone(&inner.stop), executor)?;
        *lock(&inner.batch_thread) = Some(thread);
        Ok(StreamingHandle::new(self.clone()))
    }

    /// Lets [`StreamingContext::start`] run stateful streams (`update_state_by_key`,
    /// `map_with_state`, the incremental windows) on a context that does not checkpoint, which
    /// it otherwise refuses with [`Error::CheckpointRequired`]. Without checkpoints each
    /// state's lineage, and what it holds, grows every batch, so use it only for runs of
    /// bounded length: tests, demos, benchmarks. Batches driven by [`StreamingContext::step`]
    /// need no such permission.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use dstream::{Error, StepCluster, StreamingContext, SystemClock};
    /// # let cluster = StepCluster::builder().build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_millis(10), Arc::new(SystemClock::new()))?;
    /// let (_queue, pairs) = ssc.queue_stream::<(char, u64)>(1);
    /// let totals = pairs.update_state_by_key(|vs: Vec<u64>, s: Option<u64>| Some(s.unwrap_or(0) + vs.iter().sum::<u64>()), 2)?;
    /// totals.print(10)?;
    /// assert!(matches!(ssc.start(), Err(Error::CheckpointRequired { .. })));
    /// ssc.allow_unbounded_lineage();
    /// let running = ssc.start()?;
    /// running.stop(false)?;
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn allow_unbounded_lineage(&self) {
        self.inner.unbounded_lineage.store(true, Ordering::Relaxed);
    }

    /// Refuses to start a stateful stream whose lineage nothing would cut (see
    /// [`Error::CheckpointRequired`]).
    fn check_lineage_bounded(&self) -> Result<(), Error> {
        if self.inner.checkpointer.get().is_some() || self.inner.unbounded_lineage.load(Ordering::Relaxed) {
            return Ok(());
        }
        let nodes = lock(&self.inner.nodes);
        match nodes.iter().find_map(|n| n.stateful().map(|operator| (n.id(), operator))) {
            Some((stream, operator)) => Err(Error::CheckpointRequired { stream, operator }),
            None => Ok(()),
        }
    }

    /// Stops the context (Spark's `StreamingContext.stop`). A graceful stop first stops the
    /// inputs from accepting records, then runs batches until every record received before the
    /// stop has been processed; otherwise the context stops after the batch in progress. Waits
    /// until it has stopped and returns the error that stopped it, if any. A context driven by
    /// [`StreamingContext::step`] (or not started) stops at once; stopping a stopped context
    /// only returns how it ended.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use dstream::{StepCluster, StreamingContext, StreamingState, SystemClock};
    /// # let cluster = StepCluster::builder().build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_millis(10), Arc::new(SystemClock::new()))?;
    /// let (_queue, numbers) = ssc.queue_stream::<u32>(1);
    /// numbers.print(10)?;
    /// let _ = ssc.start()?; // the handle may go: the context runs on
    /// assert_eq!(ssc.state(), StreamingState::Active);
    /// ssc.stop(false)?;
    /// assert_eq!(ssc.state(), StreamingState::Stopped);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn stop(&self, graceful: bool) -> Result<(), Error> {
        let threaded = {
            let run = lock(&self.inner.run);
            match run.state {
                StreamingState::Stopped => None,
                _ => Some(run.threaded),
            }
        };
        match threaded {
            None => {}
            Some(true) => {
                // Receivers first: what they stored before stopping is still processed by a
                // graceful stop.
                self.stop_receivers();
                lock(&self.inner.inputs).iter().for_each(|(i, _)| i.stop_accepting());
                self.inner.stop.request(graceful);
                self.inner.clock.wake();
            }
            Some(false) => {
                // Driven by steps (or never started): no batch runs between two steps, so
                // there is nothing to wait for.
                let _stepper = lock(&self.inner.stepper);
                self.finish(Ok(()));
            }
        }
        self.await_termination()
    }

    /// Waits until the context stops (Spark's `awaitTermination`); returns the error that
    /// stopped it, if any. Any number of threads may wait at once. Waiting on a context that
    /// is not started waits for its start and its end.
    pub fn await_termination(&self) -> Result<(), Error> {
        self.join_batch_thread()?;
        let inner = &self.inner;
        let run = inner.ended.wait_while(lock(&inner.run), |r| r.state != StreamingState::Stopped);
        drop(run.unwrap_or_else(|p| p.into_inner()));
        self.outcome()
    }

    /// Waits at most `timeout` for the context to stop. Returns `Ok(true)` if it stopped,
    /// `Ok(false)` if it is still running, and the error that stopped it, if any.
    pub fn await_termination_timeout(&self, timeout: Duration) -> Result<bool, Error> {
        let inner = &self.inner;
        let (run, _) = inner
            .ended
            .wait_timeout_while(lock(&inner.run), timeout, |r| r.state != StreamingState::Stopped)
            .unwrap_or_else(|p| p.into_inner());
        if run.state != StreamingState::Stopped {
            return Ok(false);
        }
        drop(run);
        self.join_batch_thread()?;
        self.outcome().map(|()| true)
    }

    /// Joins the batch thread, if it is still to be joined. The thread says the context
    /// stopped as its last act; if it panicked before (outside what it catches), this records
    /// the stop with the panic and wakes every waiter.
    fn join_batch_thread(&self) -> Result<(), Error> {
        let thread = lock(&self.inner.batch_thread).take();
        if let Some(Err(panic)) = thread.map(|t| t.join()) {
            let message = crate::task::panic_message(&*panic);
            let mut run = lock(&self.inner.run);
            run.state = StreamingState::Stopped;
            run.result.get_or_insert(Err(Error::BatchThreadPanicked { message: message.clone() }.to_string()));
            self.inner.ended.notify_all();
            return Err(Error::BatchThreadPanicked { message });
        }
        Ok(())
    }

    fn outcome(&self) -> Result<(), Error> {
        match &lock(&self.inner.run).result {
            Some(Err(message)) => Err(Error::BatchFailed(message.clone())),
            _ => Ok(()),
        }
    }

    fn finish(&self, result: Result<(), String>) {
        // A stopped context takes no more input, whatever stopped it: a pusher learns at once
        // (`Error::StreamingStopped`) instead of feeding a context nothing will ever process.
        self.stop_receivers();
        lock(&self.inner.inputs).iter().for_each(|(i, _)| i.stop_accepting());
        let ahead = lock(&self.inner.ahead).clone();
        if let Some(run) = ahead {
            run.stop();
        }
        if let Some(ck) = self.inner.checkpointer.get() {
            // Checkpoints in flight complete (or fail) before the context says it stopped, and
            // the metadata records the ones that completed.
            ck.wait_in_flight();
            self.apply_checkpoints(ck, &self.listeners());
            if let Err(e) = ck.rewrite_metadata() {
                tracing::warn!(error = %e, "cannot record the last checkpoints in the metadata");
            }
        }
        let mut run = lock(&self.inner.run);
        run.state = StreamingState::Stopped;
        run.result.get_or_insert(result);
        self.inner.ended.notify_all();
    }
}

impl std::fmt::Debug for StreamingContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingContext")
            .field("batch_interval", &self.inner.batch_interval)
            .field("state", &self.state())
            .finish()
    }
}
