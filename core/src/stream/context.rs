//! [`StreamingContext`]: the stream graph, its output operations, and the batches that run it.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use super::checkpoint::{CheckpointInfo, Checkpointer};
use super::input::InputDyn;
use super::receiver::ReceiverDyn;
use super::{duration_nanos, lock, BatchCtx, StreamNodeDyn};
use crate::error::Error;
use crate::graph::{ProgramPart, ProgramSummary};
use crate::ids::{Scope, StreamId};
use crate::runtime;
use crate::time::{Clock, Time};
use crate::Context;

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
    /// From the batch time to the start of its processing.
    pub scheduling_delay: Duration,
    /// From the start to the end of its processing.
    pub processing_delay: Duration,
    /// From the batch time to the end of its processing.
    pub total_delay: Duration,
    /// Each output operation's name and running time, in definition order.
    pub output_ops: Vec<(&'static str, Duration)>,
}

/// Receives events of a running streaming context. Methods have empty defaults.
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
    pub(crate) zero: Time,
    /// The number of batches run so far (counted from the zero time after a restart).
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
    pub(crate) run: Mutex<Run>,
    /// Set when the context checkpoints ([`StreamingContext::get_or_create`]).
    pub(crate) checkpointer: OnceLock<Arc<Checkpointer>>,
    ended: Condvar,
    stop_now: AtomicBool,
    stop_graceful: AtomicBool,
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
                stop_now: AtomicBool::new(false),
                stop_graceful: AtomicBool::new(false),
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
    pub fn add_listener(&self, listener: Arc<dyn StreamingListener>) {
        lock(&self.inner.listeners).push(listener);
    }

    /// The context's state.
    pub fn state(&self) -> StreamingState {
        lock(&self.inner.run).state
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

    /// Moves from `Initialized` to `Active`, fixing the zero time.
    fn activate(&self, threaded: bool) -> Result<(), Error> {
        if lock(&self.inner.outputs).is_empty() {
            return Err(Error::NoOutputOperations);
        }
        let mut run = lock(&self.inner.run);
        match run.state {
            StreamingState::Initialized => {}
            StreamingState::Active => return Err(Error::StreamingStarted { operation: "start" }),
            StreamingState::Stopped => return Err(Error::StreamingStopped),
        }
        // The program is built: what the driver makes outside a batch from now on (a slice,
        // an ad-hoc query) is its own, not the program's.
        self.inner.ctx.graph().seal();
        if run.replay_until.is_none() {
            let interval = duration_nanos(self.inner.batch_interval);
            let now = self.inner.clock.now().as_nanos();
            run.zero = Time::from_nanos(now - now % interval);
            if let Some(ck) = self.inner.checkpointer.get() {
                self.begin_checkpoints(ck, run.zero);
            }
        }
        run.state = StreamingState::Active;
        run.threaded = threaded;
        Ok(())
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
    /// [`StreamingContext::start`] refuses it. A failed batch stops the context.
    pub fn step(&self) -> Result<BatchInfo, Error> {
        if self.state() == StreamingState::Initialized {
            self.activate(false)?;
        }
        {
            let run = lock(&self.inner.run);
            if run.state != StreamingState::Active {
                return Err(Error::StreamingStopped);
            }
            if run.threaded {
                return Err(Error::StreamingStarted { operation: "step" });
            }
        }
        let result = self.run_batch(self.next_batch_time());
        if let Err(e) = &result {
            // A failed batch stops the context, as it does on the batch thread: its inputs were
            // consumed, so running on would skip them silently.
            self.finish(Err(e.to_string()));
        }
        result
    }

    /// Runs the batch at `time`: closes the inputs' batch, runs the outputs in order, forgets
    /// datasets no stream needs any more.
    fn run_batch(&self, time: Time) -> Result<BatchInfo, Error> {
        let inner = &self.inner;
        let (zero, replay_until, threaded) = {
            let run = lock(&inner.run);
            (run.zero, run.replay_until, run.threaded)
        };
        let started = inner.clock.now();
        let listeners = self.listeners();
        let ck = inner.checkpointer.get();
        if let Some(ck) = ck {
            self.apply_checkpoints(ck, &listeners);
            // Before the inputs close, so a stop here consumes no input.
            if let Some(error) = self.checkpoints_failing(ck) {
                listeners.iter().for_each(|l| l.on_batch_failed(time, &error));
                return Err(error);
            }
        }
        listeners.iter().for_each(|l| l.on_batch_submitted(time));
        let inputs = lock(&inner.inputs).clone();
        let records = if replay_until.is_some_and(|until| time <= until) {
            // Closed before the restart: the input log holds the batch (read when restoring).
            inputs.iter().map(|(i, _)| i.frozen().records_at(time)).sum()
        } else {
            let prev = time - inner.batch_interval;
            let records = inputs.iter().map(|(i, _)| i.close_batch(prev, time)).sum();
            if let Some(ck) = ck {
                for (input, node) in &inputs {
                    input.frozen().log(node.id(), time, ck)?;
                }
            }
            records
        };
        if let Some(ck) = ck {
            ck.batch_started(time)?;
        }
        let b = BatchCtx { ctx: &inner.ctx, zero };
        for (_, node) in &inputs {
            node.generate(time, &b)?;
        }
        listeners.iter().for_each(|l| l.on_batch_started(time));
        let outputs = lock(&inner.outputs).clone();
        let mut output_ops = Vec::with_capacity(outputs.len());
        for (index, op) in (0u32..).zip(&outputs) {
            let op_started = inner.clock.now();
            let ran = {
                let _scope = inner.ctx.graph().enter(Scope::Output { output: index, time });
                // A panicking output fails its batch, as a failed task does: listeners hear of
                // it and the context stops with the error.
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (op.run)(time, &b))).unwrap_or_else(|panic| {
                    Err(Error::OutputPanicked { output: op.name, time, message: crate::task::panic_message(&*panic) })
                })
            };
            if let Err(error) = ran {
                listeners.iter().for_each(|l| l.on_batch_failed(time, &error));
                return Err(error);
            }
            output_ops.push((op.name, inner.clock.now() - op_started));
        }
        if let Some(ck) = ck {
            self.start_checkpoints(ck, time, zero, threaded);
            if !threaded {
                self.apply_checkpoints(ck, &listeners);
            }
        }
        let remember = *lock(&inner.remember);
        let keep_from = time - remember;
        let checkpoint_zero = ck.is_some().then_some(zero);
        lock(&inner.nodes).iter().for_each(|n| n.forget_before(keep_from, checkpoint_zero));
        if let Some(ck) = ck {
            ck.batch_completed(time, self.input_remember())?;
        }
        lock(&inner.run).batches += 1;
        let ended = inner.clock.now();
        let info = BatchInfo {
            time,
            records,
            scheduling_delay: started - time,
            processing_delay: ended - started,
            total_delay: ended - time,
            output_ops,
        };
        listeners.iter().for_each(|l| l.on_batch_completed(&info));
        Ok(info)
    }

    /// Starts running a batch every batch interval on a thread of its own.
    pub fn start(&self) -> Result<StreamingHandle, Error> {
        self.activate(true)?;
        self.start_receivers()?;
        let ssc = self.clone();
        let thread = runtime::spawn("dstream-batches", move || ssc.batch_loop())?;
        Ok(StreamingHandle { ssc: self.clone(), thread: Mutex::new(Some(thread)) })
    }

    fn batch_loop(&self) {
        let inner = &self.inner;
        let result = loop {
            let time = self.next_batch_time();
            if inner.stop_graceful.load(Ordering::SeqCst) {
                // A graceful stop runs the remaining batches at once, until every record received
                // before the stop is in a batch.
                if lock(&inner.inputs).iter().all(|(i, _)| i.drained()) {
                    break Ok(());
                }
            } else if !inner.clock.wait_until(time, &inner.stop_now) {
                if inner.stop_graceful.load(Ordering::SeqCst) {
                    continue;
                }
                break Ok(());
            }
            // Whatever fails in a batch, even a panic outside the outputs, stops the context
            // with the error: the thread never ends with the context still looking alive.
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_batch(time))).unwrap_or_else(
                |panic| Err(Error::BatchThreadPanicked { message: crate::task::panic_message(&*panic) }),
            );
            if let Err(e) = ran {
                tracing::error!(%time, error = %e, "batch failed; stopping the streaming context");
                break Err(e.to_string());
            }
        };
        self.finish(result);
    }

    /// The time of the batch after the last one run.
    fn next_batch_time(&self) -> Time {
        let run = lock(&self.inner.run);
        let k = run.batches.saturating_add(1);
        Time::from_nanos(
            run.zero.as_nanos().saturating_add(duration_nanos(self.inner.batch_interval).saturating_mul(k)),
        )
    }

    fn finish(&self, result: Result<(), String>) {
        // A stopped context takes no more input, whatever stopped it: a pusher learns at once
        // (`Error::StreamingStopped`) instead of feeding a context nothing will ever process.
        self.stop_receivers();
        lock(&self.inner.inputs).iter().for_each(|(i, _)| i.stop_accepting());
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

/// Controls a started streaming context.
pub struct StreamingHandle {
    ssc: StreamingContext,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl StreamingHandle {
    /// Stops the context. A graceful stop first stops the inputs from accepting records, then
    /// runs batches until every record received before the stop has been processed; otherwise
    /// the context stops after the batch in progress. Waits until it has stopped.
    pub fn stop(&self, graceful: bool) -> Result<(), Error> {
        let inner = &self.ssc.inner;
        // Receivers first: what they stored before stopping is still processed by a graceful stop.
        self.ssc.stop_receivers();
        lock(&inner.inputs).iter().for_each(|(i, _)| i.stop_accepting());
        if graceful {
            inner.stop_graceful.store(true, Ordering::SeqCst);
        }
        inner.stop_now.store(true, Ordering::SeqCst);
        inner.clock.wake();
        self.await_termination()
    }

    /// Waits until the context stops; returns the error that stopped it, if any.
    pub fn await_termination(&self) -> Result<(), Error> {
        if let Some(t) = lock(&self.thread).take() {
            if let Err(panic) = t.join() {
                return Err(Error::BatchThreadPanicked { message: crate::task::panic_message(&*panic) });
            }
        }
        self.outcome()
    }

    /// Waits at most `timeout` for the context to stop. Returns `Ok(true)` if it stopped,
    /// `Ok(false)` if it is still running, and the error that stopped it, if any.
    pub fn await_termination_timeout(&self, timeout: Duration) -> Result<bool, Error> {
        let inner = &self.ssc.inner;
        let run = lock(&inner.run);
        let (run, _) = inner
            .ended
            .wait_timeout_while(run, timeout, |r| r.state != StreamingState::Stopped)
            .unwrap_or_else(|p| p.into_inner());
        if run.state != StreamingState::Stopped {
            return Ok(false);
        }
        drop(run);
        self.outcome().map(|()| true)
    }

    fn outcome(&self) -> Result<(), Error> {
        match &lock(&self.ssc.inner.run).result {
            Some(Err(message)) => Err(Error::BatchFailed(message.clone())),
            _ => Ok(()),
        }
    }

    /// The context's state.
    pub fn state(&self) -> StreamingState {
        self.ssc.state()
    }
}

impl Drop for StreamingHandle {
    fn drop(&mut self) {
        if self.state() == StreamingState::Active {
            let _ = self.stop(false);
        }
    }
}

impl std::fmt::Debug for StreamingHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingHandle").field("state", &self.state()).finish()
    }
}
