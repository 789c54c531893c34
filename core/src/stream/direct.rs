//! Direct sources: streams read batch by batch, at each batch's close, from a position the
//! context keeps (Spark's "direct" approach to Kafka). The source is told where the previous
//! batch ended, reads the next range, and says where it ended; the context logs that
//! position with the batch's records, so a restart goes on exactly after the last batch it
//! logged, and tells the source when a batch completed (Kafka commits its offsets then).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::checkpoint::Checkpointer;
use super::context::{BatchInfo, Inner, StreamingContext, StreamingListener};
use super::input::{Closed, FrozenDyn, InputDyn};
use super::rate::{RateController, RateLimiter, RecordsAt};
use super::{lock, DStream};
use crate::error::Error;
use crate::ids::{BlockId, StreamId};
use crate::stream::flow::FlowControl;
use crate::stream::input::Frozen;
use crate::stream::pid::PidRateEstimator;
use crate::time::Time;
use crate::Data;

/// Closed batches whose record counts are kept for backpressure.
const COUNTS_KEPT_MAX: usize = 64;

/// A source read batch by batch from a position: see [`StreamingContext::direct_stream`].
///
/// Every method runs on the driver, on the thread that runs the batches: a read delays its
/// batch by its own time. In a cluster of processes every process builds the program, so a
/// source must not connect anywhere before its first [`read_batch`](DirectSource::read_batch).
pub trait DirectSource: Send + 'static {
    /// The records of the stream.
    type Record: Data;
    /// Where a batch ended (Kafka: the next offset of every partition). Logged with every
    /// batch when the context checkpoints.
    type Position: Data;
    /// The source's errors.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Reads the records of batch `read.time`, from `from` (where the previous batch ended;
    /// `None` at a fresh start, where the source decides, such as from the offsets committed
    /// last), at most `read.records_max` when set. Returns one vector per partition of the
    /// batch's dataset and where the batch ended.
    ///
    /// A failure the source recovers from (a broker that is down) should be reported with
    /// [`DirectContext::report_error`] and give an empty batch ending at `from`: nothing is
    /// lost, the next batch tries again. An error stops the context
    /// ([`Error::SourceFailed`]) before the batch runs.
    fn read_batch(
        &mut self,
        read: &DirectRead,
        from: Option<&Self::Position>,
        ctx: &DirectContext,
    ) -> Result<DirectBatch<Self::Record, Self::Position>, Self::Error>;

    /// Batch `time`, which ended at `position`, completed: every output ran, and with
    /// checkpoints the context recorded it. Kafka commits the offsets here. Batches complete
    /// in time order; after a restart the batches recomputed from the input log complete too.
    fn batch_completed(&mut self, _time: Time, _position: &Self::Position, _ctx: &DirectContext) {}
}

/// What batch a [`DirectSource`] reads, and how much it may read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirectRead {
    /// The batch.
    pub time: Time,
    /// The batch interval: with a rate, how much the batch may hold.
    pub interval: Duration,
    /// The most records the batch may hold, from the stream's [`FlowControl`]: its
    /// `rate_max_per_sec` and its backpressure estimate, times the interval.
    pub records_max: Option<u64>,
}

/// A batch a [`DirectSource`] read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectBatch<T, P> {
    /// The records of each partition of the batch's dataset, in the order of the partitions.
    pub partitions: Vec<Vec<T>>,
    /// Where the batch ended: the next batch starts here.
    pub position: P,
}

/// What a [`DirectSource`] may do beside reading: report the errors it recovered from.
#[derive(Clone, Debug)]
pub struct DirectContext {
    stream: StreamId,
    ssc: Weak<Inner>,
}

impl DirectContext {
    /// The stream the source feeds.
    pub fn stream(&self) -> StreamId {
        self.stream
    }

    /// Reports an error the source recovered from, as a receiver does
    /// ([`ReceiverContext::report_error`](crate::ReceiverContext::report_error)): kept among
    /// [`StreamingContext::receiver_errors`], given to every listener's `on_receiver_error`,
    /// logged with `tracing`.
    pub fn report_error(&self, message: &str) {
        if let Some(inner) = self.ssc.upgrade() {
            StreamingContext { inner }.report_receiver_error(self.stream, message);
        }
    }
}

/// One part of a direct input's log object: the batch's end position first, then its
/// partitions. (The serialized forms of the two enums are the same.)
#[derive(Serialize)]
enum LoggedRef<'a, T, P> {
    Position(&'a P),
    Records(&'a [T]),
}

#[derive(Deserialize)]
enum Logged<T, P> {
    Position(P),
    Records(Vec<T>),
}

/// The input of a direct stream.
struct DirectInput<S: DirectSource> {
    source: Mutex<S>,
    frozen: Arc<Frozen<S::Record>>,
    ctx: DirectContext,
    interval: Duration,
    /// Where each closed, not yet completed batch ended.
    ends: Mutex<BTreeMap<Time, S::Position>>,
    /// Where the newest closed batch ended, and when: the next batch starts there.
    last: Mutex<Option<(Time, S::Position)>>,
    stopped: AtomicBool,
    /// The static rate bound of the stream's flow control, records per second.
    rate_max_per_sec: Option<u64>,
    /// The backpressure estimate, if on.
    limiter: Option<Arc<RateLimiter>>,
    /// The records of the latest closed batches, for backpressure.
    counts: Mutex<VecDeque<(Time, u64)>>,
}

impl<S: DirectSource> DirectInput<S> {
    fn records_max(&self) -> Option<u64> {
        let rate = match (&self.limiter, self.rate_max_per_sec) {
            (Some(limiter), max) => Some(limiter.rate_per_sec().min(max.unwrap_or(u64::MAX))),
            (None, max) => max,
        }?;
        Some(((rate as f64 * self.interval.as_secs_f64()).ceil() as u64).max(1))
    }

    fn note_end(&self, time: Time, position: S::Position) {
        lock(&self.ends).insert(time, position.clone());
        let mut last = lock(&self.last);
        if last.as_ref().is_none_or(|(t, _)| *t <= time) {
            *last = Some((time, position));
        }
    }
}

impl<S: DirectSource> InputDyn for DirectInput<S> {
    fn close_batch(&self, _prev: Time, time: Time) -> Result<u64, Error> {
        if self.stopped.load(Ordering::SeqCst) {
            // A stopped source reads nothing more: the batches a graceful stop still runs
            // are empty, and the next run starts where the last batch read ended.
            lock(&self.frozen.closed).insert(time, Closed::Records(Vec::new()));
            return Ok(0);
        }
        let from = lock(&self.last).as_ref().map(|(_, p)| p.clone());
        let read = DirectRead { time, interval: self.interval, records_max: self.records_max() };
        let batch = lock(&self.source)
            .read_batch(&read, from.as_ref(), &self.ctx)
            .map_err(|e| Error::SourceFailed { stream: self.ctx.stream, time, source: Box::new(e) })?;
        let n: u64 = batch.partitions.iter().map(|p| p.len() as u64).sum();
        if let Some(max) = read.records_max.filter(|max| n > *max) {
            // A source reading past its bound would defeat the flow control silently.
            let message = format!("the source read {n} records, more than the {max} the batch allows");
            return Err(Error::SourceFailed { stream: self.ctx.stream, time, source: message.into() });
        }
        lock(&self.frozen.closed).insert(time, Closed::Records(batch.partitions));
        self.note_end(time, batch.position);
        let mut counts = lock(&self.counts);
        if counts.len() == COUNTS_KEPT_MAX {
            counts.pop_front();
        }
        counts.push_back((time, n));
        Ok(n)
    }

    fn stop_accepting(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    fn drained(&self) -> bool {
        // Nothing is buffered: a batch reads its records when it closes.
        true
    }

    fn buffered_bytes(&self) -> u64 {
        0
    }

    fn frozen(&self) -> &dyn FrozenDyn {
        self
    }
}

impl<S: DirectSource> FrozenDyn for DirectInput<S> {
    fn log(&self, stream: StreamId, time: Time, ck: &Checkpointer) -> Result<(), Error> {
        let closed = lock(&self.frozen.closed);
        let parts: &[Vec<S::Record>] = match closed.get(&time) {
            None => &[],
            Some(Closed::Records(parts)) => parts,
            Some(Closed::Blocks(_)) => return Err(Error::Internal("a direct input's batch closed as blocks")),
        };
        let ends = lock(&self.ends);
        let last = lock(&self.last);
        // A batch closed after a stop ended where the newest batch read did.
        let position = ends.get(&time).or(last.as_ref().map(|(_, p)| p));
        let entries: Vec<LoggedRef<'_, S::Record, S::Position>> =
            position.map(LoggedRef::Position).into_iter().chain(parts.iter().map(|p| LoggedRef::Records(p))).collect();
        ck.log_input(stream, time, &entries)
    }

    fn close_from_log(&self, stream: StreamId, time: Time, ck: &Checkpointer) -> Result<u64, Error> {
        let (position, parts) = read_log::<S>(ck, stream, time)?;
        let n = parts.iter().map(|p| p.len() as u64).sum();
        lock(&self.frozen.closed).insert(time, Closed::Records(parts));
        if let Some(position) = position {
            self.note_end(time, position);
        }
        Ok(n)
    }

    fn records_at(&self, time: Time) -> u64 {
        lock(&self.frozen.closed).get(&time).map_or(0, Closed::records)
    }

    fn restore(&self, time: Time, ck: &Checkpointer, block: BlockId, span: (usize, u64, u64)) -> Result<(), Error> {
        let (_, parts) = read_log::<S>(ck, self.ctx.stream, time)?;
        self.frozen.restore_from(time, &parts, block, span)
    }
}

/// A direct input's logged batch: where it ended, and its partitions.
type LoggedBatch<S> = (Option<<S as DirectSource>::Position>, Vec<Vec<<S as DirectSource>::Record>>);

fn read_log<S: DirectSource>(ck: &Checkpointer, stream: StreamId, time: Time) -> Result<LoggedBatch<S>, Error> {
    let entries: Vec<Logged<S::Record, S::Position>> = ck.read_input_parts(stream, time)?;
    let mut position = None;
    let mut parts = Vec::with_capacity(entries.len());
    for entry in entries {
        match entry {
            Logged::Position(p) if position.is_none() && parts.is_empty() => position = Some(p),
            Logged::Records(records) => parts.push(records),
            Logged::Position(_) => {
                return Err(Error::NoValidCheckpoint(format!(
                    "the input log of {stream} for batch {time} has a position after its first part"
                )))
            }
        }
    }
    Ok((position, parts))
}

impl<S: DirectSource> RecordsAt for DirectInput<S> {
    fn records_closed_at(&self, time: Time) -> Option<u64> {
        lock(&self.counts).iter().rev().find(|(t, _)| *t == time).map(|(_, n)| *n)
    }
}

/// Tells the source of each batch completed.
struct Completions<S: DirectSource>(Arc<DirectInput<S>>);

impl<S: DirectSource> StreamingListener for Completions<S> {
    fn on_batch_completed(&self, info: &BatchInfo) {
        let input = &self.0;
        let position = {
            let mut ends = lock(&input.ends);
            let position = ends.remove(&info.time);
            // Batches complete in time order: older ends are of batches that will not.
            ends.retain(|t, _| *t > info.time);
            position
        };
        if let Some(position) = position {
            lock(&input.source).batch_completed(info.time, &position, &input.ctx);
        }
    }
}

impl StreamingContext {
    /// A stream read by `source` batch by batch, at each batch's close, from where the
    /// previous batch ended (see [`DirectSource`]); with the default [`FlowControl`] (no rate
    /// bound). `dstream_storage::KafkaSource` is one.
    ///
    /// With checkpoints ([`StreamingContext::get_or_create`]) each batch's records are logged
    /// with its end position before its outputs run, and a restart goes on from the position
    /// of the last batch logged: every record the source gives is in exactly one batch, across
    /// restarts. The source hears of each completed batch
    /// ([`DirectSource::batch_completed`]). Nothing is read ahead, so nothing is buffered:
    /// `input_buffered_bytes` reports 0 for the stream.
    ///
    /// # Examples
    ///
    /// A source counting up, one partition, five numbers a batch:
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use dstream::{DirectBatch, DirectContext, DirectRead, DirectSource, ManualClock, StepCluster, StreamingContext, Time};
    ///
    /// struct Counter;
    ///
    /// impl DirectSource for Counter {
    ///     type Record = u64;
    ///     type Position = u64;
    ///     type Error = std::convert::Infallible;
    ///     fn read_batch(&mut self, _read: &DirectRead, from: Option<&u64>, _ctx: &DirectContext)
    ///         -> Result<DirectBatch<u64, u64>, Self::Error> {
    ///         let start = from.copied().unwrap_or(0);
    ///         Ok(DirectBatch { partitions: vec![(start..start + 5).collect()], position: start + 5 })
    ///     }
    /// }
    ///
    /// let cluster = StepCluster::builder().workers(2).build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))?;
    /// let sums = Arc::new(Mutex::new(Vec::new()));
    /// let sink = Arc::clone(&sums);
    /// ssc.direct_stream(Counter).reduce(|a, b| a + b).foreach_rdd(move |rdd, _| {
    ///     sink.lock().unwrap().extend(rdd.collect()?);
    ///     Ok(())
    /// })?;
    /// ssc.step()?;
    /// ssc.step()?;
    /// assert_eq!(*sums.lock().unwrap(), vec![10, 35]); // 0..5, then 5..10
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn direct_stream<S: DirectSource>(&self, source: S) -> DStream<S::Record> {
        self.direct_stream_with(source, FlowControl::default())
    }

    /// [`StreamingContext::direct_stream`] with `flow`'s rates: `rate_max_per_sec` bounds each
    /// batch to that rate times the batch interval, and `backpressure` adapts the bound after
    /// every batch from its processing and scheduling delays (Spark's PID estimator), never
    /// above `rate_max_per_sec`. The buffer bounds do not apply: nothing is buffered.
    pub fn direct_stream_with<S: DirectSource>(&self, source: S, flow: FlowControl) -> DStream<S::Record> {
        let frozen = Frozen::new(&self.inner.ctx);
        let stream = DStream::new_node(self, "direct_stream", self.batch_interval(), Vec::new(), Arc::clone(&frozen));
        // A fresh lock is always empty, so this cannot fail.
        let _ = frozen.stream.set(stream.id());
        let limiter = flow
            .backpressure_initial_rate_per_sec
            .map(|initial| Arc::new(RateLimiter::new(initial.min(flow.rate_max_per_sec.unwrap_or(u64::MAX)))));
        let input = Arc::new(DirectInput {
            source: Mutex::new(source),
            frozen,
            ctx: DirectContext { stream: stream.id(), ssc: Arc::downgrade(&self.inner) },
            interval: self.batch_interval(),
            ends: Mutex::new(BTreeMap::new()),
            last: Mutex::new(None),
            stopped: AtomicBool::new(false),
            rate_max_per_sec: flow.rate_max_per_sec,
            limiter: limiter.clone(),
            counts: Mutex::new(VecDeque::new()),
        });
        if let Some(limiter) = limiter {
            self.add_listener(Arc::new(RateController {
                limiter,
                input: Arc::clone(&input) as Arc<dyn RecordsAt>,
                estimator: Mutex::new(PidRateEstimator::new(self.batch_interval())),
                rate_max_per_sec: flow.rate_max_per_sec,
                clock: Arc::clone(&self.inner.clock),
            }));
        }
        self.add_listener(Arc::new(Completions(Arc::clone(&input))));
        self.register_input(input, stream.node().clone());
        stream
    }
}

#[cfg(test)]
mod tests;
