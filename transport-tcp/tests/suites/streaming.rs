//! The streaming cases: per-batch operators, windows (with and without an inverse function),
//! state, transforms and operators over two streams, on inputs shaped like the core's
//! streaming suites' (`core/tests/stream_ops.rs`, `stream_windows.rs`, `stream_state.rs`):
//! empty batches, repeated keys, keys on one side only.
//!
//! Every case has queue streams of its own on the program's one streaming context, and an
//! output recording each batch's time and records (`Debug`, in the order the dataset holds
//! them) in its sink. Only the driver feeds the queues; the worker processes, which built the
//! same streams, rebuild each batch from what the driver tells them.

use std::fmt::Debug;

use super::sum_count;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::{Context, DStream, Data, Error, ManualClock, SplitMix64, State, StateSpec, StreamingContext, Time};

/// The batches every case runs.
pub(crate) const BATCHES: usize = 8;
/// The partitions of every input batch.
const PARTITIONS: usize = 3;
const SECOND: Duration = Duration::from_secs(1);

/// What a case's output recorded: one line per batch it had a dataset for.
pub(crate) type Sink = Arc<Mutex<Vec<String>>>;
/// Pushes batch `b`'s input into a case's queues (in the driver); false if one refused it.
type Feed = Box<dyn Fn(usize) -> bool>;
/// How a case builds its streams and its output (every process runs it).
type Build = Box<dyn Fn(&StreamingContext, &Sink) -> Result<Feed, Error>>;

/// One row of the table: a name and the builder of its streams.
pub(crate) struct Case {
    pub(crate) name: &'static str,
    build: Build,
}

/// The program: one streaming context on a manual clock, and every case's feed and sink.
pub(crate) struct Program {
    ssc: StreamingContext,
    clock: Arc<ManualClock>,
    cases: Vec<(Feed, Sink)>,
}

type Pair = (u32, i64);

/// Batches of numbers below `max`, of sizes drawn from `sizes` (0: an empty batch).
fn number_batches(seed: u64, sizes: &[usize], max: u32) -> Vec<Vec<u32>> {
    let mut rng = SplitMix64::new(seed);
    (0..BATCHES)
        .map(|_| {
            let n = sizes[rng.below(sizes.len())];
            (0..n).map(|_| rng.below(max as usize) as u32).collect()
        })
        .collect()
}

/// Batches of pairs with keys below `keys` and values in `-20..=20`.
fn pair_batches(seed: u64, sizes: &[usize], keys: u32) -> Vec<Vec<Pair>> {
    let mut rng = SplitMix64::new(seed);
    (0..BATCHES)
        .map(|_| {
            let n = sizes[rng.below(sizes.len())];
            (0..n).map(|_| (rng.below(keys as usize) as u32, rng.below(41) as i64 - 20)).collect()
        })
        .collect()
}

fn numbers() -> Vec<Vec<u32>> {
    number_batches(11, &[0, 1, 7, 40], 50)
}

fn pairs() -> Vec<Vec<Pair>> {
    pair_batches(12, &[0, 1, 9, 30], 6)
}

/// The other side of the two-stream cases: some of `pairs`' keys, and keys of its own.
fn letters() -> Vec<Vec<(u32, char)>> {
    let mut rng = SplitMix64::new(13);
    (0..BATCHES)
        .map(|b| (0..b % 4 * 3).map(|i| (rng.below(9) as u32, char::from(b'a' + (i % 26) as u8))).collect())
        .collect()
}

/// Page views: (url, 1), with batches without views.
fn views() -> Vec<Vec<(String, u64)>> {
    let mut rng = SplitMix64::new(14);
    (0..BATCHES)
        .map(|b| (0..[3, 1, 0, 5, 0, 0, 2, 4][b]).map(|_| (format!("/{}", rng.below(5)), 1u64)).collect())
        .collect()
}

/// Records each batch of `stream` in `sink`.
fn record<U: Data + Debug>(stream: &DStream<U>, sink: &Sink) -> Result<(), Error> {
    let sink = Arc::clone(sink);
    stream.foreach_rdd(move |rdd, time| {
        let records = rdd.collect()?;
        sink.lock().unwrap_or_else(|p| p.into_inner()).push(format!("{time}: {records:?}"));
        Ok(())
    })
}

/// A row over one queue stream fed with `input`.
fn one<T: Data, U: Data + Debug>(
    name: &'static str,
    input: fn() -> Vec<Vec<T>>,
    op: impl Fn(&DStream<T>) -> Result<DStream<U>, Error> + 'static,
) -> Case {
    let build = move |ssc: &StreamingContext, sink: &Sink| -> Result<Feed, Error> {
        let (queue, stream) = ssc.queue_stream::<T>(PARTITIONS);
        record(&op(&stream)?, sink)?;
        let input = input();
        Ok(Box::new(move |b| queue.push(input[b].clone())))
    };
    Case { name, build: Box::new(build) }
}

/// A row over two queue streams fed with `a` and `b`.
fn two<A: Data, B: Data, U: Data + Debug>(
    name: &'static str,
    a: fn() -> Vec<Vec<A>>,
    b: fn() -> Vec<Vec<B>>,
    op: impl Fn(&DStream<A>, &DStream<B>) -> Result<DStream<U>, Error> + 'static,
) -> Case {
    let build = move |ssc: &StreamingContext, sink: &Sink| -> Result<Feed, Error> {
        let (qa, sa) = ssc.queue_stream::<A>(PARTITIONS);
        let (qb, sb) = ssc.queue_stream::<B>(2);
        record(&op(&sa, &sb)?, sink)?;
        let (a, b) = (a(), b());
        Ok(Box::new(move |k| qa.push(a[k].clone()) && qb.push(b[k].clone())))
    };
    Case { name, build: Box::new(build) }
}

/// Running count: the values seen so far.
fn running_count(vs: Vec<u64>, total: Option<u64>) -> Option<u64> {
    Some(total.unwrap_or(0) + vs.iter().sum::<u64>())
}

/// Running sums per key emitting each new sum; a key idle for more than a second emits its
/// last sum negated and leaves.
fn running_sums() -> StateSpec<u32, i64, i64, (u32, i64)> {
    StateSpec::function(|k: &u32, v: Option<i64>, state: &mut State<i64>| {
        let sum = state.get().copied().unwrap_or(0);
        match v {
            Some(v) => {
                state.update(sum + v);
                Some((*k, sum + v))
            }
            None => Some((*k, -sum)),
        }
    })
    .partitions(3)
    .timeout(SECOND)
}

/// The table.
pub(crate) fn table() -> Vec<Case> {
    vec![
        one("map, filter, flat_map chained", numbers, |s| {
            Ok(s.map(|x| x + 1).filter(|x| x % 2 == 1).flat_map(|x| [x, x * 10]))
        }),
        one("map_partitions sees the partition index", numbers, |s| {
            Ok(s.map_partitions(|i, xs| [i as u32 * 1000 + xs.iter().sum::<u32>()]))
        }),
        one("glom of repartition(4)", numbers, |s| Ok(s.repartition(4)?.glom())),
        one("count", numbers, |s| Ok(s.count())),
        one("reduce(+)", numbers, |s| Ok(s.reduce(|a, b| a + b))),
        one("count_by_value", numbers, |s| Ok(s.map(|x| x % 7).count_by_value())),
        one("transform: sort descending (a sampling job per batch)", numbers, |s| {
            Ok(s.transform(|rdd, _| Ok(rdd.map(|x| (x, ())).sort_by_key(false, 3)?.map(|(x, ())| x))))
        }),
        one("transform: the batch time, and a join with a static dataset", pairs, |s| {
            let names = s.context().context().parallelize((0..4u32).map(|k| (k, format!("k{k}"))).collect(), 2)?;
            Ok(s.transform(move |rdd, time| {
                let secs = time.as_millis() as i64 / 1000;
                Ok(rdd.map_values(move |v| v * secs).join(&names))
            }))
        }),
        one("reduce_by_key(+)", pairs, |s| Ok(s.reduce_by_key(|a, b| a + b))),
        one("group_by_key", pairs, |s| Ok(s.group_by_key())),
        one("combine_by_key(sum, count; 2, map-side)", pairs, |s| s.combine_by_key(sum_count, 2, true)),
        one("window 3 s, slide 1 s", numbers, |s| s.window(3 * SECOND, SECOND)),
        one("window 4 s, slide 2 s", numbers, |s| s.window(4 * SECOND, 2 * SECOND)),
        one("count_by_window 3 s, slide 1 s", numbers, |s| s.count_by_window(3 * SECOND, SECOND)),
        one("count_by_value_and_window 2 s, slide 1 s", numbers, |s| {
            s.map(|x| x % 5).count_by_value_and_window(2 * SECOND, SECOND)
        }),
        one("reduce_by_key_and_window(+) 3 s, slide 1 s", pairs, |s| {
            s.reduce_by_key_and_window(|a, b| a + b, 3 * SECOND, SECOND)
        }),
        one("reduce_by_key_and_window_inv(+, -) 3 s, slide 1 s", pairs, |s| {
            s.reduce_by_key_and_window_inv(|a, b| a + b, |a, b| a - b, 3 * SECOND, SECOND)
        }),
        one("reduce_by_key_and_window_inv(+, -) 4 s, slide 2 s, 3 partitions", pairs, |s| {
            s.reduce_by_key_and_window_inv_with_partitions(|a, b| a + b, |a, b| a - b, 4 * SECOND, 2 * SECOND, 3)
        }),
        one("update_state_by_key: running page views", views, |s| s.update_state_by_key(running_count, 3)),
        one("update_state_by_key: a page without views leaves", views, |s| {
            s.update_state_by_key(|vs, t| if vs.is_empty() { None } else { running_count(vs, t) }, 2)
        }),
        one("map_with_state: running sums, idle keys time out", pairs, |s| {
            Ok(s.map_with_state(running_sums())?.into_stream())
        }),
        one("map_with_state: the state's snapshots", pairs, |s| {
            Ok(s.map_with_state(running_sums())?.state_snapshots())
        }),
        two("join of two streams", pairs, letters, |a, b| a.join(b)),
        two("left_outer_join of two streams", pairs, letters, |a, b| a.left_outer_join(b)),
        two("cogroup of two streams", pairs, letters, |a, b| a.cogroup(b)),
        two("union of streams", pairs, letters, |a, b| {
            a.union(&[b.map(|(k, c)| (k + 100, i64::from(u32::from(c)))), a.map_values(|v| -v)])
        }),
        two("transform_with: the right side's keys only", pairs, letters, |a, b| {
            a.transform_with(b, |x, y, _| {
                Ok(x.cogroup(y).filter(|(_, (_, ws))| !ws.is_empty()).map(|(k, (vs, _))| (k, vs)))
            })
        }),
    ]
}

/// Builds one streaming context on a manual clock in `ctx`, with every case's streams and
/// outputs: the program every process runs.
pub(crate) fn build(ctx: &Context, table: &[Case]) -> Result<Program, Error> {
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let ssc = StreamingContext::new(ctx.clone(), SECOND, clock.clone())?;
    let mut cases = Vec::with_capacity(table.len());
    for case in table {
        let sink = Sink::default();
        let feed = (case.build)(&ssc, &sink)?;
        cases.push((feed, sink));
    }
    Ok(Program { ssc, clock, cases })
}

/// Steps [`BATCHES`] batches of `program` (in the driver), feeding every case's queues before
/// each; returns every case's recorded lines, in table order.
pub(crate) fn run(program: &Program) -> Result<Vec<Vec<String>>, Error> {
    for b in 0..BATCHES {
        for (feed, _) in &program.cases {
            if !feed(b) {
                return Err(Error::StreamingStopped);
            }
        }
        let info = program.ssc.step()?;
        program.clock.set(info.time);
    }
    Ok(program.cases.iter().map(|(_, sink)| sink.lock().unwrap_or_else(|p| p.into_inner()).clone()).collect())
}
