//! The jobs on dstream, written as the examples write them (`examples/grep.rs`,
//! `examples/topk.rs`): one [`GeneratorReceiver`] per core, each a share of the schedule,
//! replays the pool at the rate (open loop, stamping each record with its scheduled time; timely
//! generates on each worker the same way) into a `LocalCluster` with one worker and one task
//! thread per core; Grep filters and counts each batch; WordCount and TopKCount count each
//! partition's words where they are, then keep the window with
//! `reduce_by_key_and_window_inv_filtered` (adding the batch entering the window and
//! subtracting the one leaving it) over two partitions per worker. The output operation of a
//! batch reads the clock when its action returns: that is the batch's output time.
//!
//! The records of each batch are known from the engine's `BatchInfo`: the receivers store
//! records in schedule order, so a batch's records are the next `records` indices of the
//! schedule, to within the records one receiver is behind another at the batch's close (a
//! chunk at most while they keep pace).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dstream::generator::{GeneratorReceiver, Record, RecordPool};
use dstream::{BatchInfo, Clock, DStream, Error, ManualClock, StreamingContext, StreamingListener, SystemClock, Time};
use dstream_examples::{top_k_of, word_counts};
use dstream_inproc::LocalCluster;

use crate::collector::Collector;
use crate::feed::Feed;
use crate::jobs::{grep_matches, Detail, Job, Output, TOP_K};
use crate::{HarnessError, Setup};

/// Each worker's block store limit: the incremental window keeps the shuffle outputs of every
/// batch alive until checkpoints cut its lineage, far beyond the default 1 GiB in a long run at
/// a high rate.
const BLOCK_STORE_BYTES: u64 = 6 << 30;

/// Outputs by batch time, with the clock's time when each was produced.
type Outputs = Arc<Mutex<BTreeMap<Time, (Output, Time)>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock means a panicking output operation, which fails the batch anyway.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `setup`'s job over `feed` until its last batch is output or `collector` says stop.
pub fn run(setup: &Setup, feed: Feed, collector: &Arc<Collector>) -> Result<(), HarnessError> {
    let workers = u32::try_from(setup.workers.max(1)).unwrap_or(u32::MAX);
    let cluster = LocalCluster::builder()
        .workers(workers)
        .threads(setup.workers.max(1))
        .slots(workers)
        .block_store_bytes_max(BLOCK_STORE_BYTES)
        .build()?;
    match feed {
        Feed::Fixed { per_batch, batches } => run_fixed(setup, &cluster, per_batch, batches, feed, collector),
        Feed::Timed { start, rate, batch, batches } => {
            run_timed(setup, &cluster, (start, rate, batch, batches), collector)
        }
    }
}

/// Builds the job on `records`, recording each batch's output in `outputs`.
fn build(
    setup: &Setup,
    records: &DStream<Record>,
    batch: Duration,
    clock: Arc<dyn Clock>,
    outputs: &Outputs,
) -> Result<(), Error> {
    let outputs = Arc::clone(outputs);
    let done = move |time: Time, output: Output| {
        lock(&outputs).insert(time, (output, clock.now()));
    };
    if setup.job == Job::Grep {
        return records.filter(|r| grep_matches(r.as_bytes())).foreach_rdd(move |rdd, time| {
            done(time, Output::Grep(rdd.count()?));
            Ok(())
        });
    }
    // Each partition's words counted where they are, reading the records in place
    // (`word_counts`, as examples/topk.rs does). Owned keys sit together in the map: keys
    // borrowed from the records made each lookup's comparison a cache miss into the partition
    // (about 20% lower throughput).
    let ones = records.map_partitions_ref(|_, part| word_counts(part));
    let length = batch * u32::try_from(setup.window_batches).unwrap_or(u32::MAX);
    let partitions = 2 * setup.workers.max(1);
    let counts = ones.reduce_by_key_and_window_inv_filtered(
        |a, b| a + b,
        |a, b| a - b,
        length,
        batch,
        partitions,
        |(_, n)| *n > 0,
    )?;
    let (job, detail) = (setup.job, setup.detail);
    counts.foreach_rdd(move |rdd, time| {
        let output = match (job, detail) {
            (Job::TopK, _) => Output::Top(top_k_of(TOP_K, rdd)?),
            (_, Detail::Full) => {
                let mut all = rdd.collect()?;
                all.sort_unstable();
                Output::Counts(all)
            }
            (_, Detail::Summary) => {
                let parts =
                    rdd.map_partitions_ref(|_, part| [(part.len() as u64, part.iter().map(|(_, n)| n).sum::<u64>())]);
                let (words, total) = parts.collect()?.into_iter().fold((0, 0), |(a, b), (w, t)| (a + w, b + t));
                Output::Summary { words, total }
            }
        };
        done(time, output);
        Ok(())
    })
}

/// No clock: each batch is queued whole, then run with `step`.
fn run_fixed(
    setup: &Setup,
    cluster: &LocalCluster,
    per_batch: u64,
    batches: u64,
    feed: Feed,
    collector: &Collector,
) -> Result<(), HarnessError> {
    let batch = Duration::from_secs(1);
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let ssc = StreamingContext::new(cluster.context(), batch, clock.clone())?;
    let (queue, records) = ssc.queue_stream::<Record>(setup.workers.max(1));
    let outputs: Outputs = Arc::default();
    build(setup, &records, batch, clock, &outputs)?;
    let pool = RecordPool::standard();
    for k in 0..batches {
        queue.push((k * per_batch..(k + 1) * per_batch).map(|i| pool.record(i, Time::ZERO)).collect());
    }
    for k in 0..batches {
        let info = ssc.step()?;
        let (output, _) =
            lock(&outputs).remove(&info.time).ok_or_else(|| HarnessError::Worker("a batch without output".into()))?;
        collector.report(k, feed.first(k), feed.end(k), 0, 0, output);
    }
    Ok(())
}

/// Turns the engine's completed batches into the collector's reports.
struct Reporter {
    outputs: Outputs,
    collector: Arc<Collector>,
    start: Time,
    batch_ns: u64,
    /// Records stored so far: the index of the next batch's first record.
    seen: Mutex<u64>,
    clock: Arc<SystemClock>,
}

impl StreamingListener for Reporter {
    fn on_batch_started(&self, time: Time) {
        // A batch that starts late will output at least that late.
        self.collector.input_late(Duration::from_nanos(self.clock.now().as_nanos().saturating_sub(time.as_nanos())));
    }

    fn on_batch_completed(&self, info: &BatchInfo) {
        let mut seen = lock(&self.seen);
        let first = *seen;
        *seen += info.records;
        let output = lock(&self.outputs).remove(&info.time);
        let Some(since) = info.time.as_nanos().checked_sub(self.start.as_nanos()).filter(|n| *n > 0) else {
            return; // before the first record is due: empty
        };
        if let Some((output, at)) = output {
            let output_ns = at.as_nanos().saturating_sub(self.start.as_nanos());
            self.collector.report(since / self.batch_ns - 1, first, *seen, since, output_ns, output);
        }
    }

    fn on_batch_failed(&self, time: Time, error: &Error) {
        self.collector.fail(format!("batch {time} failed: {error}"));
    }
}

/// Paced by the system clock: a generator receiver from the start, batches on the clock.
fn run_timed(
    setup: &Setup,
    cluster: &LocalCluster,
    (start, rate, batch, batches): (Instant, u64, Duration, u64),
    collector: &Arc<Collector>,
) -> Result<(), HarnessError> {
    let clock = Arc::new(SystemClock::new());
    let ssc = StreamingContext::new(cluster.context(), batch, clock.clone())?;
    // A measured run of bounded length: the incremental window's lineage may grow for its
    // duration (the paper's runs do not checkpoint either).
    ssc.allow_unbounded_lineage();
    // The schedule starts on a batch time (batches close at multiples of the interval on the
    // context's clock), at or after the planned start.
    let batch_ns = u64::try_from(batch.as_nanos()).unwrap_or(u64::MAX).max(1);
    let ahead = u64::try_from(start.saturating_duration_since(Instant::now()).as_nanos()).unwrap_or(0);
    let now = clock.now().as_nanos();
    let t0 = (now + ahead).div_ceil(batch_ns) * batch_ns;
    let start = Instant::now() + Duration::from_nanos(t0 - clock.now().as_nanos().min(t0));
    let feed = Feed::Timed { start, rate, batch, batches };
    // One receiver per worker thread, as timely generates on each worker: together they replay
    // the schedule one receiver at `rate` would.
    let receivers = setup.workers.max(1) as u64;
    let pool = RecordPool::standard();
    let streams: Vec<DStream<Record>> = (0..receivers)
        .map(|i| {
            let receiver = GeneratorReceiver::new(Arc::clone(&pool), rate).start_time(Time::from_nanos(t0));
            ssc.receiver_stream(receiver.share(i, receivers))
        })
        .collect();
    let (first, rest) = streams.split_first().ok_or_else(|| HarnessError::Worker("no receiver".into()))?;
    let records = first.union(rest)?;
    let outputs: Outputs = Arc::default();
    build(setup, &records, batch, clock.clone(), &outputs)?;
    ssc.add_listener(Arc::new(Reporter {
        clock,
        outputs,
        collector: Arc::clone(collector),
        start: Time::from_nanos(t0),
        batch_ns,
        seen: Mutex::new(0),
    }));
    let handle = ssc.start()?;
    collector.wait(crate::deadline(&feed, collector));
    collector.stop();
    match handle.stop(false) {
        // A failed batch (an overloaded run whose block stores filled up, say) is an unstable
        // run, already reported to the collector: the search goes on below this rate.
        Err(Error::BatchFailed(_)) if collector.aborted() => Ok(()),
        other => other.map_err(HarnessError::from),
    }
}
