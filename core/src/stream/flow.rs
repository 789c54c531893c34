//! Flow control of an input stream: the byte bound of its buffer, how long a pusher waits at
//! that bound, and, for receivers, the rate they store at.

use std::time::Duration;

/// The byte bound of an input buffer by default: 1 GiB of records (estimated sizes). Large
/// enough for a batch interval of a fast source (64 MiB capped the benchmark harness's Grep at
/// about 1.2 million records/s, a seventh of what it sustains), small enough that a flood
/// cannot take the machine's memory.
pub const INPUT_BUFFER_BYTES_MAX_DEFAULT: u64 = 1 << 30;

/// How long a pusher waits at a full input buffer by default, on the context's clock.
pub const INPUT_BUFFER_WAIT_MAX_DEFAULT: Duration = Duration::from_secs(10);

/// The flow control of one input stream, for
/// [`StreamingContext::input_stream_with`](crate::StreamingContext::input_stream_with) and
/// [`StreamingContext::receiver_stream_with`](crate::StreamingContext::receiver_stream_with);
/// [`FlowControl::default`] is what `input_stream` and `receiver_stream` use.
///
/// - **A byte bound on the buffer** (default 1 GiB): the records pushed and not yet in a
///   closed batch, counted with the same size estimates as the block store (a record's own
///   size plus its sampled encoded size). A push that does not fit blocks until a batch closes
///   and frees room, at most `buffer_wait_max` (default 10 s, on the context's clock), then
///   fails with [`Error::InputBufferFull`](crate::Error::InputBufferFull); the records of that
///   push are not accepted, every record accepted before stays. A push into an empty buffer is
///   always accepted, so one push larger than the bound still goes through (alone). A stop
///   wakes a blocked pusher at once, with [`Error::StreamingStopped`](crate::Error::StreamingStopped).
/// - **Receivers** never drop records at the bound: [`ReceiverContext::store`](crate::ReceiverContext::store)
///   keeps waiting, reporting each `buffer_wait_max` it waited through the listeners'
///   `on_receiver_error`, until room is freed or the receiver is stopped. A receiver blocked in
///   `store` does not read its source, so a TCP peer is pushed back by the kernel.
/// - **A static maximum rate** (receivers only, records per second, default none): `store`
///   is paced by a token bucket holding 100 ms of records at that rate.
/// - **Backpressure** (receivers only, default off): the rate is adapted after every batch by
///   Spark's PID estimator (proportional 1.0, integral 0.2, derivative 0, at least 100
///   records/s) from the batch's records, processing delay and scheduling delay, starting
///   from the initial rate given (so the first batches are bounded too), and never above the
///   static maximum.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use dstream::{FlowControl, ManualClock, StepCluster, StreamingContext, Time};
///
/// let cluster = StepCluster::builder().build();
/// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))?;
/// let flow = FlowControl::default().buffer_bytes_max(1 << 20).buffer_wait_max(Duration::from_millis(500));
/// let (input, numbers) = ssc.input_stream_with::<u64>(flow);
/// numbers.count().print(1)?;
/// input.push_all(0..1000)?; // 1000 records of 8 bytes: well under 1 MiB
/// assert_eq!(ssc.step()?.records, 1000);
/// # Ok::<(), dstream::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct FlowControl {
    pub(crate) buffer_bytes_max: u64,
    pub(crate) buffer_wait_max: Duration,
    pub(crate) rate_max_per_sec: Option<u64>,
    pub(crate) backpressure_initial_rate_per_sec: Option<u64>,
}

impl Default for FlowControl {
    fn default() -> Self {
        FlowControl {
            buffer_bytes_max: INPUT_BUFFER_BYTES_MAX_DEFAULT,
            buffer_wait_max: INPUT_BUFFER_WAIT_MAX_DEFAULT,
            rate_max_per_sec: None,
            backpressure_initial_rate_per_sec: None,
        }
    }
}

impl FlowControl {
    /// The byte bound of the input buffer (default 1 GiB; at least 1).
    pub fn buffer_bytes_max(mut self, bytes: u64) -> Self {
        self.buffer_bytes_max = bytes.max(1);
        self
    }

    /// How long a push waits at a full buffer before it fails (default 10 s, measured on the
    /// context's clock; zero fails at once).
    pub fn buffer_wait_max(mut self, wait: Duration) -> Self {
        self.buffer_wait_max = wait;
        self
    }

    /// The most records per second a receiver stores, or a direct stream's batch holds (at
    /// least 1). An [`InputHandle`](crate::InputHandle) ignores it.
    pub fn rate_max_per_sec(mut self, rate: u64) -> Self {
        self.rate_max_per_sec = Some(rate.max(1));
        self
    }

    /// Turns backpressure on, starting at `initial_rate` records per second (at least the
    /// estimator's minimum, 100). Receivers and direct streams.
    pub fn backpressure(mut self, initial_rate_per_sec: u64) -> Self {
        self.backpressure_initial_rate_per_sec = Some(initial_rate_per_sec.max(super::pid::MIN_RATE_PER_SEC as u64));
        self
    }
}
