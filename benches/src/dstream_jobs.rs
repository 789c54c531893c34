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
//!
//! The program is built by [`program`] from a [`Program`]: everything that shapes it (the job,
//! the interval, the input) and nothing that depends on the moment, so that every process of a
//! TCP cluster ([`crate::dstream_tcp_jobs`]) builds the same one. The generators' schedule
//! starts when the driver says (after the launch), through [`Scheduled`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use dstream::generator::{GeneratorReceiver, Record, RecordPool};
use dstream::{
    BatchInfo, Clock, Context, DStream, Error, FlowControl, ManualClock, QueueHandle, Receiver, ReceiverContext,
    StreamingContext, StreamingListener, SystemClock, Time,
};
use dstream_examples::{top_k, top_k_borrowed, word_counts};
use dstream_inproc::LocalCluster;

use crate::collector::Collector;
use crate::feed::Feed;
use crate::jobs::{grep_matches, Detail, Job, Output, TOP_K};
use crate::{HarnessError, Setup};

/// Each worker's block store limit, in estimated bytes (about twice the real size for
/// `Record`s): without checkpoints the incremental window's lineage keeps every batch's input
/// blocks and shuffle outputs since the start of the run, far beyond the default 1 GiB in a
/// 38 s run at a high rate (a run that outgrows the machine is cut short by the harness's
/// memory watch instead).
pub(crate) const BLOCK_STORE_BYTES: u64 = 20 << 30;

/// Each receiver's input buffer bound, in estimated bytes (about twice the real size).
const INPUT_BUFFER_BYTES: u64 = 8 << 30;

/// The batch interval of a run without a clock (any will do: batches are stepped).
const FIXED_BATCH: Duration = Duration::from_secs(1);

/// Outputs by batch time, with the clock's time when each was produced.
type Outputs = Arc<Mutex<BTreeMap<Time, (Output, Time)>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock means a panicking output operation, which fails the batch anyway.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where a run's records come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// No clock: each batch queued whole, then run with `step` ([`Feed::Fixed`]).
    Queue,
    /// One [`GeneratorReceiver`] per worker thread, together `rate` records per second on the
    /// system clock ([`Feed::Timed`]).
    Generators {
        /// Records per second, all receivers together.
        rate: u64,
    },
}

/// Everything a run's program is built from: the same value builds the same program (the same
/// datasets, streams and outputs) in every process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Program {
    /// The job, its partitions (two per worker), its window and its output.
    pub setup: Setup,
    /// The batch interval.
    pub batch: Duration,
    /// The input.
    pub input: Input,
}

impl Program {
    /// The program of `setup`'s job over `feed`.
    pub fn of(setup: &Setup, feed: &Feed) -> Program {
        match *feed {
            Feed::Fixed { .. } => Program { setup: *setup, batch: FIXED_BATCH, input: Input::Queue },
            Feed::Timed { rate, batch, .. } => Program { setup: *setup, batch, input: Input::Generators { rate } },
        }
    }
}

/// A share of the schedule of a [`GeneratorReceiver`] replaying [`RecordPool::standard`],
/// starting at a time set after the program is built (by the driver, once the cluster is up),
/// so that the program itself does not depend on when it was built. The receiver is made when
/// it starts, so a worker process, which builds the program but runs no receivers, never makes
/// the pool.
pub struct Scheduled {
    rate: u64,
    /// The share: `(index, of)` ([`GeneratorReceiver::share`]).
    share: (u64, u64),
    start: Arc<OnceLock<Time>>,
}

impl Receiver<Record> for Scheduled {
    fn run(&mut self, ctx: &ReceiverContext<Record>) -> Result<(), String> {
        let start = *self.start.get().ok_or("the schedule's start was not set before the receivers started")?;
        let (index, of) = self.share;
        GeneratorReceiver::new(RecordPool::standard(), self.rate).share(index, of).start_time(start).run(ctx)
    }
}

/// A program built on a context: in the driver, what the run needs to feed and watch it.
pub struct Built {
    ssc: StreamingContext,
    outputs: Outputs,
    clock: Arc<dyn Clock>,
    /// The queue of [`Input::Queue`].
    queue: Option<QueueHandle<Record>>,
    /// The generators' start, set by the run before it starts the context.
    start: Arc<OnceLock<Time>>,
}

/// Builds `program` on `ctx` (the driver's, or a worker process's own): the streaming
/// context, its input and the job. It runs no job.
pub fn program(program: &Program, ctx: &Context) -> Result<Built, Error> {
    let setup = &program.setup;
    let start = Arc::new(OnceLock::new());
    let outputs: Outputs = Arc::default();
    let (ssc, clock, queue, records) = match program.input {
        Input::Queue => {
            let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Time::ZERO));
            let ssc = StreamingContext::new(ctx.clone(), program.batch, Arc::clone(&clock))?;
            let (queue, records) = ssc.queue_stream::<Record>(setup.workers.max(1));
            (ssc, clock, Some(queue), records)
        }
        Input::Generators { rate } => {
            let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
            let ssc = StreamingContext::new(ctx.clone(), program.batch, Arc::clone(&clock))?;
            // A measured run of bounded length: the incremental window's lineage may grow for
            // its duration (the paper's runs do not checkpoint either).
            ssc.allow_unbounded_lineage();
            // One receiver per worker thread, as timely generates on each worker: together they
            // replay the schedule one receiver at `rate` would.
            let receivers = setup.workers.max(1) as u64;
            // Each receiver's buffer holds a batch interval of its share: at 12.8 million
            // records/s each, 500 ms is 1.4 GB of estimated bytes, past the 1 GiB default.
            let flow = FlowControl::default().buffer_bytes_max(INPUT_BUFFER_BYTES);
            let stream = |i: u64| -> DStream<Record> {
                let receiver = Scheduled { rate, share: (i, receivers), start: Arc::clone(&start) };
                ssc.receiver_stream_with(receiver, flow.clone())
            };
            let first = stream(0);
            let rest: Vec<DStream<Record>> = (1..receivers).map(stream).collect();
            let records = first.union(&rest)?;
            (ssc, clock, None, records)
        }
    };
    build(setup, &records, program.batch, Arc::clone(&clock), &outputs)?;
    Ok(Built { ssc, outputs, clock, queue, start })
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
    let built = program(&Program::of(setup, &feed), &cluster.context())?;
    drive(built, feed, collector)
}

/// Feeds a built program and reports its batches to `collector`, until the last batch is
/// output or `collector` says stop. A timed feed's start is where the schedule starts (on the
/// next batch time at or after it).
pub(crate) fn drive(built: Built, feed: Feed, collector: &Arc<Collector>) -> Result<(), HarnessError> {
    match feed {
        Feed::Fixed { per_batch, batches } => run_fixed(&built, per_batch, batches, feed, collector),
        Feed::Timed { start, rate, batch, batches } => run_timed(built, (start, rate, batch, batches), collector),
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
    // What reaches the driver: per partition its top `k` or its summary, computed where the
    // partition is by a stream of the program, so that worker processes (which build the
    // program but run no outputs) can compute it too (as `dstream_examples::track_top` does);
    // or every count.
    match (setup.job, setup.detail) {
        (Job::TopK, _) => {
            counts.map_partitions_ref(|_, part| top_k_borrowed(TOP_K, part)).foreach_rdd(move |rdd, time| {
                done(time, Output::Top(top_k(TOP_K, rdd.collect()?)));
                Ok(())
            })
        }
        (_, Detail::Full) => counts.foreach_rdd(move |rdd, time| {
            let mut all = rdd.collect()?;
            all.sort_unstable();
            done(time, Output::Counts(all));
            Ok(())
        }),
        (_, Detail::Summary) => counts
            .map_partitions_ref(|_, part| [(part.len() as u64, part.iter().map(|(_, n)| n).sum::<u64>())])
            .foreach_rdd(move |rdd, time| {
                let (words, total) = rdd.collect()?.into_iter().fold((0, 0), |(a, b), (w, t)| (a + w, b + t));
                done(time, Output::Summary { words, total });
                Ok(())
            }),
    }
}

/// No clock: each batch is queued whole, then run with `step`.
fn run_fixed(
    built: &Built,
    per_batch: u64,
    batches: u64,
    feed: Feed,
    collector: &Collector,
) -> Result<(), HarnessError> {
    let queue = built.queue.as_ref().ok_or_else(|| HarnessError::Worker("a fixed run without a queue".into()))?;
    let pool = RecordPool::standard();
    for k in 0..batches {
        queue.push((k * per_batch..(k + 1) * per_batch).map(|i| pool.record(i, Time::ZERO)).collect());
    }
    for k in 0..batches {
        let info = built.ssc.step()?;
        let (output, _) = lock(&built.outputs)
            .remove(&info.time)
            .ok_or_else(|| HarnessError::Worker("a batch without output".into()))?;
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
    clock: Arc<dyn Clock>,
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

/// Paced by the system clock: the generator receivers from the start, batches on the clock.
fn run_timed(
    built: Built,
    (start, rate, batch, batches): (Instant, u64, Duration, u64),
    collector: &Arc<Collector>,
) -> Result<(), HarnessError> {
    let Built { ssc, outputs, clock, start: schedule, .. } = built;
    // The receivers' pool, made before the schedule starts (once per process) rather than by
    // the first receiver once its records are due.
    drop(RecordPool::standard());
    // The schedule starts on a batch time (batches close at multiples of the interval on the
    // context's clock), at or after the planned start.
    let batch_ns = u64::try_from(batch.as_nanos()).unwrap_or(u64::MAX).max(1);
    let ahead = u64::try_from(start.saturating_duration_since(Instant::now()).as_nanos()).unwrap_or(0);
    let now = clock.now().as_nanos();
    let t0 = (now + ahead).div_ceil(batch_ns) * batch_ns;
    let start = Instant::now() + Duration::from_nanos(t0 - clock.now().as_nanos().min(t0));
    let feed = Feed::Timed { start, rate, batch, batches };
    if schedule.set(Time::from_nanos(t0)).is_err() {
        return Err(HarnessError::Worker("the schedule of a run started twice".into()));
    }
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
