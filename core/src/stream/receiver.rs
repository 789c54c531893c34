//! Receivers: user code that pulls records from outside (a socket, a directory, a generator)
//! on a thread of its own and stores them into an input stream.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use super::context::{Inner, StreamingContext};
use super::flow::FlowControl;
use super::input::InputHandle;
use super::pid::PidRateEstimator;
use super::rate::{RateController, RateLimiter};
use super::{lock, DStream};
use crate::error::Error;
use crate::ids::StreamId;
use crate::runtime::{self, Stopwatch};
use crate::time::{Clock, Time};
use crate::Data;

/// A source of records that runs on its own thread while the streaming context is active.
///
/// `run` should return when [`ReceiverContext::is_stopped`] becomes true (poll it between
/// blocking reads that have a timeout) or when the source ends. Errors it recovers from are
/// reported with [`ReceiverContext::report_error`]; an error it returns ends the receiver and is
/// reported the same way.
pub trait Receiver<T>: Send + 'static {
    /// Receives records until stopped.
    fn run(&mut self, ctx: &ReceiverContext<T>) -> Result<(), String>;
}

/// How many of the latest receiver errors a context keeps ([`StreamingContext::receiver_errors`]).
pub const RECEIVER_ERRORS_KEPT: usize = 32;

/// An error a receiver reported ([`ReceiverContext::report_error`]), as the context keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiverError {
    /// The stream the receiver feeds.
    pub stream: StreamId,
    /// When it was reported, on the context's clock.
    pub time: Time,
    /// What the receiver said (for the socket receiver: `cannot connect to 127.0.0.1:9999:
    /// Connection refused ...; reconnecting in 100ms`).
    pub message: String,
}

/// The latest receiver errors of a context, and how many there were.
#[derive(Debug, Default)]
pub(crate) struct ReceiverErrors {
    latest: std::collections::VecDeque<ReceiverError>,
    total: u64,
}

impl StreamingContext {
    /// Reports an error an input recovered from: kept among the latest, given to every
    /// listener, logged at the warn level.
    pub(crate) fn report_receiver_error(&self, stream: StreamId, message: &str) {
        tracing::warn!(stream = %stream, message, "receiver error");
        self.record_receiver_error(ReceiverError { stream, time: self.inner.clock.now(), message: message.to_owned() });
        self.listeners().iter().for_each(|l| l.on_receiver_error(stream, message));
    }

    fn record_receiver_error(&self, error: ReceiverError) {
        let mut errors = lock(&self.inner.receiver_errors);
        if errors.latest.len() == RECEIVER_ERRORS_KEPT {
            errors.latest.pop_front();
        }
        errors.latest.push_back(error);
        errors.total += 1;
    }

    /// The latest errors the context's receivers reported (at most [`RECEIVER_ERRORS_KEPT`],
    /// oldest first): a refused or dropped connection, an invalid line, a full input buffer.
    /// Receivers recover from these, so they stop nothing and fail no batch; besides the
    /// listeners' [`on_receiver_error`](crate::StreamingListener::on_receiver_error), this is
    /// where a program sees them without installing anything (dstream's core prints nothing;
    /// the receivers of `dstream-storage` also print their reports to stderr by default).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use dstream::{ManualClock, Receiver, ReceiverContext, StepCluster, StreamingContext, Time};
    ///
    /// struct Flaky;
    /// impl Receiver<u32> for Flaky {
    ///     fn run(&mut self, ctx: &ReceiverContext<u32>) -> Result<(), String> {
    ///         ctx.report_error("the source hiccupped; retrying");
    ///         Err("the source is gone".into()) // ends the receiver, reported the same way
    ///     }
    /// }
    /// let cluster = StepCluster::builder().build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))?;
    /// ssc.receiver_stream(Flaky).print(1)?;
    /// ssc.start_receivers()?;
    /// ssc.stop_receivers(); // waits for the receiver, which has ended
    /// let messages: Vec<String> = ssc.receiver_errors().into_iter().map(|e| e.message).collect();
    /// assert_eq!(messages, ["the source hiccupped; retrying", "the source is gone"]);
    /// assert_eq!(ssc.receiver_error_count(), 2);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn receiver_errors(&self) -> Vec<ReceiverError> {
        lock(&self.inner.receiver_errors).latest.iter().cloned().collect()
    }

    /// How many errors the context's receivers reported since it was built, including those
    /// [`StreamingContext::receiver_errors`] no longer holds.
    pub fn receiver_error_count(&self) -> u64 {
        lock(&self.inner.receiver_errors).total
    }
}

/// A receiver's stop request: a flag, and a condition variable that wakes a receiver pausing
/// in real time as soon as the flag is set.
#[derive(Default)]
struct StopSignal {
    flag: AtomicBool,
    lock: Mutex<()>,
    changed: Condvar,
}

impl StopSignal {
    fn stop(&self) {
        let _guard = lock(&self.lock);
        self.flag.store(true, Ordering::SeqCst);
        self.changed.notify_all();
    }

    /// Waits `d` of real time unless stopped first; returns false if stopped.
    fn pause(&self, d: Duration) -> bool {
        let watch = Stopwatch::start();
        let mut guard = lock(&self.lock);
        loop {
            if self.flag.load(Ordering::SeqCst) {
                return false;
            }
            let elapsed = watch.elapsed();
            if elapsed >= d {
                return true;
            }
            guard = self.changed.wait_timeout(guard, d - elapsed).unwrap_or_else(|p| p.into_inner()).0;
        }
    }
}

/// What a running receiver stores into, and how it learns that it must stop.
pub struct ReceiverContext<T> {
    input: InputHandle<T>,
    stream: StreamId,
    stop: Arc<StopSignal>,
    ssc: Weak<Inner>,
    clock: Arc<dyn Clock>,
    limiter: Option<Arc<RateLimiter>>,
}

impl<T: Data> ReceiverContext<T> {
    /// Stores records; they land in the batch open when each part is stored, in order.
    ///
    /// Flow control (see [`FlowControl`]): with a rate (static or from backpressure) the
    /// records are stored in parts as the token bucket lets them through, waiting on the
    /// context's clock. While the stream's buffer is full, it waits for a batch to free room;
    /// each bounded wait that passes is reported through the listeners' `on_receiver_error`
    /// and the wait goes on: a receiver's records are never dropped at the bound, and a
    /// receiver blocked here does not read its source (a TCP peer is pushed back).
    ///
    /// Fails with [`Error::StreamingStopped`] once the context stops accepting input, or when
    /// the receiver is told to stop while it waits; the records not stored yet are then not
    /// accepted (those stored before are kept).
    pub fn store(&self, mut records: Vec<T>) -> Result<(), Error> {
        if records.is_empty() {
            // Nothing to pace: this only says whether the context still accepts input.
            return self.store_part(records);
        }
        while !records.is_empty() {
            let take = match &self.limiter {
                None => records.len(),
                Some(l) => l.acquire(records.len(), &*self.clock, &self.stop.flag).ok_or(Error::StreamingStopped)?,
            };
            let rest = records.split_off(take);
            self.store_part(records)?;
            records = rest;
        }
        Ok(())
    }

    /// Stores one part, waiting for room as long as it takes (or until a stop).
    fn store_part(&self, mut part: Vec<T>) -> Result<(), Error> {
        loop {
            match self.input.push_chunk(part, Some(&self.stop.flag)) {
                Ok(()) => return Ok(()),
                Err((e, back)) if matches!(*e, Error::InputBufferFull { .. }) => {
                    self.report_error(&format!("{e}; the receiver keeps waiting"));
                    part = back;
                }
                Err((e, _)) => return Err(*e),
            }
        }
    }

    /// The rate the receiver stores at, in records per second, if it is limited (a static
    /// maximum, or the latest backpressure estimate).
    pub fn rate_per_sec(&self) -> Option<u64> {
        self.limiter.as_ref().map(|l| l.rate_per_sec())
    }

    /// Whether the receiver must stop.
    pub fn is_stopped(&self) -> bool {
        self.stop.flag.load(Ordering::SeqCst)
    }

    /// Waits `d` of real time, whatever the context's clock, unless the receiver is told to
    /// stop, which wakes it at once; returns false if it was. For receivers of the outside world
    /// (sockets, directories) that retry or poll on a real-time schedule.
    pub fn pause(&self, d: Duration) -> bool {
        self.stop.pause(d)
    }

    /// Reports an error the receiver met and recovered from (a refused connection, an invalid
    /// line): it is kept among the context's recent receiver errors
    /// ([`StreamingContext::receiver_errors`]), then given to every listener's
    /// [`on_receiver_error`](crate::StreamingListener::on_receiver_error), and logged with
    /// `tracing` at the warn level.
    pub fn report_error(&self, message: &str) {
        if let Some(inner) = self.ssc.upgrade() {
            StreamingContext { inner }.report_receiver_error(self.stream, message);
        }
    }

    /// The stream this receiver feeds.
    pub fn stream(&self) -> StreamId {
        self.stream
    }

    /// The streaming context's clock, for receivers that pace themselves (a generator).
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Waits until the context's clock reaches `deadline` or the receiver is told to stop
    /// (which wakes it at once); returns whether the deadline was reached.
    pub fn wait_until(&self, deadline: Time) -> bool {
        self.clock.wait_until(deadline, &self.stop.flag)
    }
}

/// A receiver waiting for the context to start, or running.
pub(crate) trait ReceiverDyn: Send + Sync {
    fn start(&self) -> Result<(), Error>;
    fn stop(&self);
}

struct Slot<T, R> {
    receiver: Mutex<Option<R>>,
    input: InputHandle<T>,
    stream: StreamId,
    stop: Arc<StopSignal>,
    thread: Mutex<Option<JoinHandle<()>>>,
    ssc: Weak<Inner>,
    clock: Arc<dyn Clock>,
    limiter: Option<Arc<RateLimiter>>,
}

impl<T: Data, R: Receiver<T>> ReceiverDyn for Slot<T, R> {
    fn start(&self) -> Result<(), Error> {
        let Some(mut receiver) = lock(&self.receiver).take() else { return Ok(()) };
        let ctx = ReceiverContext {
            input: self.input.clone(),
            stream: self.stream,
            stop: Arc::clone(&self.stop),
            ssc: self.ssc.clone(),
            clock: Arc::clone(&self.clock),
            limiter: self.limiter.clone(),
        };
        let thread = runtime::spawn(format!("dstream-receiver-{}", self.stream.0), move || {
            if let Err(message) = receiver.run(&ctx) {
                ctx.report_error(&message);
            }
        })?;
        *lock(&self.thread) = Some(thread);
        Ok(())
    }

    fn stop(&self) {
        // Wakes a receiver pausing in real time (`ReceiverContext::pause`) ...
        self.stop.stop();
        // ... one waiting for room in its buffer (`ReceiverContext::store`) ...
        self.input.wake_waiting();
        // ... and one waiting on the clock (`ReceiverContext::wait_until`, a rate limit).
        self.clock.wake();
        if let Some(t) = lock(&self.thread).take() {
            if t.join().is_err() {
                tracing::error!(stream = %self.stream, "a receiver panicked");
            }
        }
    }
}

impl StreamingContext {
    #[doc(alias = "receiverStream")]
    /// A stream of the records `receiver` stores. The receiver runs on a thread of its own from
    /// the start of the context until it stops; records land in the batch open when stored,
    /// one partition per block interval of arrival.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use dstream::{ManualClock, Receiver, ReceiverContext, StepCluster, StreamingContext, Time};
    ///
    /// struct Countdown(u32);
    /// impl Receiver<u32> for Countdown {
    ///     fn run(&mut self, ctx: &ReceiverContext<u32>) -> Result<(), String> {
    ///         ctx.store((1..=self.0).rev().collect()).map_err(|e| e.to_string())
    ///     }
    /// }
    /// let cluster = StepCluster::builder().build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))?;
    /// let numbers = ssc.receiver_stream(Countdown(3));
    /// numbers.foreach_rdd(|_, _| Ok(()))?;
    /// ssc.start_receivers()?;
    /// ssc.stop_receivers(); // waits for the receiver, which has stored its records
    /// let info = ssc.step()?;
    /// assert_eq!(info.records, 3);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn receiver_stream<T: Data, R: Receiver<T>>(&self, receiver: R) -> DStream<T> {
        self.receiver_stream_with(receiver, FlowControl::default())
    }

    /// [`StreamingContext::receiver_stream`] with the flow control of `flow`: its buffer bound
    /// (a wait shorter than 100 ms counts as 100 ms: it only paces the reports of a receiver
    /// waiting for room), its static maximum rate and its backpressure.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use dstream::{FlowControl, ManualClock, Receiver, ReceiverContext, StepCluster, StreamingContext, Time};
    ///
    /// struct Numbers;
    /// impl Receiver<u64> for Numbers {
    ///     fn run(&mut self, ctx: &ReceiverContext<u64>) -> Result<(), String> {
    ///         ctx.store((0..10).collect()).map_err(|e| e.to_string())
    ///     }
    /// }
    /// let cluster = StepCluster::builder().build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))?;
    /// // At most 100 records per second, 1,000 to start with and adapted to the batches.
    /// let flow = FlowControl::default().rate_max_per_sec(100).backpressure(1000);
    /// let numbers = ssc.receiver_stream_with(Numbers, flow);
    /// numbers.count().print(1)?;
    /// ssc.start_receivers()?;
    /// ssc.stop_receivers(); // the bucket holds 100 ms at 100/s: 10 records, stored at once
    /// assert_eq!(ssc.step()?.records, 10);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn receiver_stream_with<T: Data, R: Receiver<T>>(&self, receiver: R, flow: FlowControl) -> DStream<T> {
        let wait = flow.buffer_wait_max.max(Duration::from_millis(100));
        let (input, stream) = self.input_stream_with::<T>(flow.clone().buffer_wait_max(wait));
        let initial = match (flow.rate_max_per_sec, flow.backpressure_initial_rate_per_sec) {
            (None, None) => None,
            (Some(max), None) => Some(max),
            (max, Some(initial)) => Some(initial.min(max.unwrap_or(u64::MAX))),
        };
        let limiter = initial.map(|rate| Arc::new(RateLimiter::new(rate)));
        if let (Some(limiter), Some(_)) = (&limiter, flow.backpressure_initial_rate_per_sec) {
            self.add_listener(Arc::new(RateController {
                limiter: Arc::clone(limiter),
                input: input.records_at(),
                estimator: Mutex::new(PidRateEstimator::new(self.batch_interval())),
                rate_max_per_sec: flow.rate_max_per_sec,
                clock: Arc::clone(&self.inner.clock),
            }));
        }
        let slot = Slot {
            receiver: Mutex::new(Some(receiver)),
            input,
            stream: stream.id(),
            stop: Arc::new(StopSignal::default()),
            thread: Mutex::new(None),
            ssc: Arc::downgrade(&self.inner),
            clock: Arc::clone(&self.inner.clock),
            limiter,
        };
        self.register_receiver(Arc::new(slot));
        stream
    }

    /// Starts every receiver that is not running yet. [`StreamingContext::start`] does this;
    /// a context driven by [`StreamingContext::step`] calls it when it wants input to flow.
    pub fn start_receivers(&self) -> Result<(), Error> {
        for r in self.receivers() {
            r.start()?;
        }
        Ok(())
    }

    /// Tells every receiver to stop and waits for them. Records they stored stay queued for
    /// the next batches.
    pub fn stop_receivers(&self) {
        for r in self.receivers() {
            r.stop();
        }
    }
}
