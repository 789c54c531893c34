//! [`GeneratorReceiver`]: replays a [`RecordPool`] on the streaming context's clock, open loop,
//! and [`StreamingContext::generator_stream`], the stream it feeds.

use std::sync::Arc;
use std::time::Duration;

use super::{Record, RecordPool};
use crate::stream::{DStream, Receiver, ReceiverContext, StreamingContext};
use crate::time::Time;

/// A [`Receiver`] that replays a [`RecordPool`] at a target rate, open loop.
///
/// Record `i` (counted from 0) is due at `start + (i + 1) / rate`; it is stamped with that time as
/// [`Record::emitted`]. Each round the receiver reads the context's clock, stores every record
/// due by then (in chunks of at most [`GeneratorReceiver::chunk_records`]), and waits on the
/// clock until the next record is due, but at least one round interval (1 ms by default), so a
/// high rate is served in bursts rather than one wake-up per record. When the engine or the
/// generator falls behind, the due records are stored at once with their scheduled times: the
/// latency measured includes the lag, as an open-loop load generator must (no coordinated
/// omission). When stopped, it stores the records due by the time of the stop, then returns.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use dstream::generator::{GeneratorReceiver, RecordPool};
/// use dstream::{ManualClock, StepCluster, StreamingContext, Time};
///
/// let clock = Arc::new(ManualClock::new(Time::ZERO));
/// let cluster = StepCluster::builder().build();
/// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), clock.clone())?;
/// let receiver = GeneratorReceiver::new(Arc::new(RecordPool::new(42, 100)), 10)
///     .start_time(Time::ZERO)
///     .chunk_records(4);
/// let records = ssc.receiver_stream(receiver);
/// records.foreach_rdd(|_, _| Ok(()))?;
/// ssc.start_receivers()?;
/// clock.advance(Duration::from_secs(1));
/// ssc.stop_receivers();
/// assert_eq!(ssc.step()?.records, 10);
/// # Ok::<(), dstream::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct GeneratorReceiver {
    pool: Arc<RecordPool>,
    rate: u64,
    chunk: usize,
    round: Duration,
    start: Option<Time>,
    first: u64,
    /// This receiver's share of the schedule: records `i` with `i % share.1 == share.0`.
    share: (u64, u64),
}

/// The most records a [`GeneratorReceiver`] stores in one call unless told otherwise: each
/// store waits for the records' copies on the workers, so at tens of millions of records per
/// second small chunks would leave the receiver waiting on round trips (at 4,096 records, two
/// receivers fell behind Grep's schedule at 25.6 million records/s with cores to spare); a
/// round stores what is due, so at low rates the chunks are smaller anyway.
pub const CHUNK_RECORDS_DEFAULT: usize = 65_536;

impl GeneratorReceiver {
    /// Replays `pool` at `rate` records per second (0 emits nothing).
    pub fn new(pool: Arc<RecordPool>, rate: u64) -> GeneratorReceiver {
        GeneratorReceiver {
            pool,
            rate,
            chunk: CHUNK_RECORDS_DEFAULT,
            round: Duration::from_millis(1),
            start: None,
            first: 0,
            share: (0, 1),
        }
    }

    /// The most records stored in one call (default [`CHUNK_RECORDS_DEFAULT`]; at least 1).
    pub fn chunk_records(mut self, n: usize) -> Self {
        self.chunk = n.max(1);
        self
    }

    /// The shortest wait between two rounds (default 1 ms).
    pub fn round_interval(mut self, d: Duration) -> Self {
        self.round = d;
        self
    }

    /// The time record 0 is due (default: the clock's time when the receiver starts). Fixing it
    /// makes a run under a manual clock independent of when the receiver's thread starts.
    pub fn start_time(mut self, start: Time) -> Self {
        self.start = Some(start);
        self
    }

    /// The pool index of record 0 (default 0), so that several generators replay different
    /// parts of the pool.
    pub fn pool_offset(mut self, index: u64) -> Self {
        self.first = index;
        self
    }

    /// Makes this receiver one of `of` that replay the schedule together, for input on several
    /// threads: it emits the records `i` with `i % of == index`, each at its due time on the
    /// whole schedule at `rate`, so the union of the `of` receivers' streams holds the records
    /// one receiver at `rate` would. An `index` of `of` or more is taken modulo `of`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use dstream::generator::{GeneratorReceiver, RecordPool};
    /// use dstream::{ManualClock, StepCluster, StreamingContext, Time};
    ///
    /// let clock = Arc::new(ManualClock::new(Time::ZERO));
    /// let cluster = StepCluster::builder().build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), clock.clone())?;
    /// let pool = Arc::new(RecordPool::new(7, 100));
    /// let parts: Vec<_> = (0..3)
    ///     .map(|i| ssc.receiver_stream(GeneratorReceiver::new(Arc::clone(&pool), 10).start_time(Time::ZERO).share(i, 3)))
    ///     .collect();
    /// let all = parts[0].union(&parts[1..])?;
    /// all.foreach_rdd(|_, _| Ok(()))?;
    /// ssc.start_receivers()?;
    /// clock.advance(Duration::from_secs(1));
    /// ssc.stop_receivers();
    /// assert_eq!(ssc.step()?.records, 10);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn share(mut self, index: u64, of: u64) -> Self {
        let of = of.max(1);
        self.share = (index % of, of);
        self
    }

    /// How many of this receiver's records are due at `now`.
    fn due_share(&self, start: Time, now: Time) -> u64 {
        let (index, of) = self.share;
        // Global records 0..due, of which those congruent to `index`.
        self.due(start, now).saturating_sub(index).div_ceil(of)
    }

    /// How many records are due at `now`: those whose [`GeneratorReceiver::due_time`] is at
    /// or before it.
    pub(super) fn due(&self, start: Time, now: Time) -> u64 {
        if now < start {
            return 0;
        }
        // Record i is due floor((i + 1) * 1e9 / rate) ns after the start, so the ones due
        // within `e` ns are those with (i + 1) * 1e9 < (e + 1) * rate.
        let e = (now - start).as_nanos();
        let due = ((e + 1) * u128::from(self.rate)).div_ceil(1_000_000_000).saturating_sub(1);
        u64::try_from(due).unwrap_or(u64::MAX)
    }

    /// When record `i` is due: `(i + 1) / rate` seconds after the start, so that `n` records
    /// are due `n / rate` seconds after it.
    pub(super) fn due_time(&self, start: Time, i: u64) -> Time {
        if self.rate == 0 {
            return Time::from_nanos(u64::MAX);
        }
        let offset = (u128::from(i) + 1) * 1_000_000_000 / u128::from(self.rate);
        Time::from_nanos(start.as_nanos().saturating_add(u64::try_from(offset).unwrap_or(u64::MAX)))
    }
}

impl Receiver<Record> for GeneratorReceiver {
    fn run(&mut self, ctx: &ReceiverContext<Record>) -> Result<(), String> {
        let clock = Arc::clone(ctx.clock());
        let start = self.start.unwrap_or_else(|| clock.now());
        let mut emitted: u64 = 0;
        let (index, of) = self.share;
        // This receiver's k-th record is record `index + k * of` of the whole schedule.
        let global = |k: u64| index.saturating_add(k.saturating_mul(of));
        loop {
            let now = clock.now();
            let due = self.due_share(start, now);
            while emitted < due {
                let n = (due - emitted).min(self.chunk as u64);
                let chunk: Vec<Record> = (emitted..emitted + n)
                    .map(|k| self.pool.record(self.first.wrapping_add(global(k)), self.due_time(start, global(k))))
                    .collect();
                if ctx.store(chunk).is_err() {
                    // The context stopped accepting input: nothing more can be delivered.
                    return Ok(());
                }
                emitted += n;
            }
            if ctx.is_stopped() {
                return Ok(());
            }
            let next = self.due_time(start, global(emitted)).max(now + self.round);
            // Returns early when stopped; the next round stores what is due by then and exits.
            ctx.wait_until(next);
        }
    }
}

impl StreamingContext {
    /// A stream of benchmark records replayed from `pool` at `rate` records per second, by a
    /// [`GeneratorReceiver`] with its default settings (use
    /// [`StreamingContext::receiver_stream`] with a configured receiver for others).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use dstream::generator::RecordPool;
    /// use dstream::{ManualClock, StepCluster, StreamingContext, Time};
    ///
    /// let clock = Arc::new(ManualClock::new(Time::ZERO));
    /// let cluster = StepCluster::builder().build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_millis(500), clock.clone())?;
    /// let words = ssc
    ///     .generator_stream(Arc::new(RecordPool::new(42, 100)), 1_000)
    ///     .flat_map(|r| r.words().map(str::to_owned).collect::<Vec<_>>());
    /// words.count().foreach_rdd(|_, _| Ok(()))?;
    /// ssc.start_receivers()?;
    /// ssc.stop_receivers();
    /// ssc.step()?;
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn generator_stream(&self, pool: Arc<RecordPool>, rate: u64) -> DStream<Record> {
        self.receiver_stream(GeneratorReceiver::new(pool, rate))
    }
}
