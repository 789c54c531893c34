//! Stateful stream operators: `update_state_by_key` and `map_with_state`, as tables of
//! `input batches -> operation -> expected batches`. Every case runs with 1, 2 and 4 workers and
//! two seeds; outputs whose order depends on hashing are sorted within each batch before the
//! comparison, and the raw (unsorted) outputs must be identical in every configuration.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::testing::StreamTest;
use dstream::{DStream, Data, Error, ManualClock, SplitMix64, State, StateSpec, StepCluster, StreamingContext, Time};

const WORKERS: [u32; 3] = [1, 2, 4];
const SEEDS: [u64; 2] = [0, 0xD5_7EA4];

/// An operation on the input stream.
type Op<T, U> = Box<dyn Fn(DStream<T>) -> DStream<U>>;

/// One row of a table.
struct Case<T, U> {
    name: &'static str,
    input: Vec<Vec<T>>,
    /// Batches to run (inputs beyond their end are empty).
    batches: usize,
    op: Op<T, U>,
    expected: Vec<Vec<U>>,
}

fn case<T, U>(
    name: &'static str,
    input: Vec<Vec<T>>,
    batches: usize,
    op: impl Fn(DStream<T>) -> DStream<U> + 'static,
    expected: Vec<Vec<U>>,
) -> Case<T, U> {
    Case { name, input, batches, op: Box::new(op), expected }
}

/// Runs every case in every configuration: sorted batches must equal the expected ones, raw
/// batches must be the same everywhere.
fn check_table<T: Data, U: Data + Ord + Debug>(table: &[Case<T, U>]) {
    for c in table {
        let mut first: Option<(Vec<Vec<U>>, u32, u64)> = None;
        for workers in WORKERS {
            for seed in SEEDS {
                let at = format!("{}: {workers} workers, seed {seed}", c.name);
                let test = StreamTest::new().workers(workers).seed(seed).batches(c.batches);
                let raw = test.run(c.input.clone(), |s| (c.op)(s)).unwrap_or_else(|e| panic!("{at}: {e}"));
                let mut sorted = raw.clone();
                sorted.iter_mut().for_each(|b| b.sort());
                assert_eq!(sorted, c.expected, "{at}");
                match &first {
                    None => first = Some((raw, workers, seed)),
                    Some((raw0, w0, s0)) => {
                        assert_eq!(&raw, raw0, "{at}: raw output differs from {w0} workers, seed {s0}")
                    }
                }
            }
        }
    }
}

fn s(x: &str) -> String {
    x.to_string()
}

/// Running count: the number of values seen so far.
fn running_count(vs: Vec<u64>, total: Option<u64>) -> Option<u64> {
    Some(total.unwrap_or(0) + vs.iter().sum::<u64>())
}

#[test]
fn update_state_by_key_table() {
    // The paper's page-view counts: (url, 1) per view.
    let views = vec![
        vec![(s("/a"), 1u64), (s("/b"), 1), (s("/a"), 1)],
        vec![(s("/c"), 1)],
        vec![],
        vec![(s("/a"), 1), (s("/c"), 1), (s("/c"), 1)],
    ];
    let table: Vec<Case<(String, u64), (String, u64)>> = vec![
        case(
            "pageview running counts",
            views.clone(),
            5,
            |v| v.update_state_by_key(running_count, 3).unwrap(),
            vec![
                vec![(s("/a"), 2), (s("/b"), 1)],
                vec![(s("/a"), 2), (s("/b"), 1), (s("/c"), 1)],
                vec![(s("/a"), 2), (s("/b"), 1), (s("/c"), 1)],
                vec![(s("/a"), 3), (s("/b"), 1), (s("/c"), 3)],
                vec![(s("/a"), 3), (s("/b"), 1), (s("/c"), 3)],
            ],
        ),
        case(
            "a key without views in a batch is removed",
            views.clone(),
            5,
            |v| v.update_state_by_key(|vs, t| if vs.is_empty() { None } else { running_count(vs, t) }, 2).unwrap(),
            vec![
                vec![(s("/a"), 2), (s("/b"), 1)],
                vec![(s("/c"), 1)],
                vec![],
                vec![(s("/a"), 1), (s("/c"), 2)],
                vec![],
            ],
        ),
        case(
            "f runs for every key of the state: batches since last seen",
            views.clone(),
            4,
            |v| {
                v.update_state_by_key(
                    |vs: Vec<u64>, idle: Option<u64>| Some(if vs.is_empty() { idle.unwrap_or(0) + 1 } else { 0 }),
                    1,
                )
                .unwrap()
            },
            vec![
                vec![(s("/a"), 0), (s("/b"), 0)],
                vec![(s("/a"), 1), (s("/b"), 1), (s("/c"), 0)],
                vec![(s("/a"), 2), (s("/b"), 2), (s("/c"), 1)],
                vec![(s("/a"), 0), (s("/b"), 3), (s("/c"), 0)],
            ],
        ),
        case(
            "values arrive in batch order; the state is removed by a reset value",
            vec![vec![(s("k"), 1), (s("k"), 2)], vec![(s("k"), 3), (s("k"), 0), (s("j"), 5)], vec![(s("k"), 7)]],
            3,
            |v| {
                // Keeps the last value, as digits; 0 resets.
                v.update_state_by_key(
                    |vs: Vec<u64>, st: Option<u64>| {
                        vs.into_iter()
                            .try_fold(st.unwrap_or(0), |acc, x| if x == 0 { None } else { Some(acc * 10 + x) })
                    },
                    2,
                )
                .unwrap()
            },
            vec![vec![(s("k"), 12)], vec![(s("j"), 5)], vec![(s("j"), 5), (s("k"), 7)]],
        ),
        case(
            "empty input gives an empty state",
            vec![],
            3,
            |v| v.update_state_by_key(running_count, 2).unwrap(),
            vec![vec![], vec![], vec![]],
        ),
    ];
    check_table(&table);
}

#[test]
fn update_state_by_key_over_thirty_batches_matches_a_sequential_reference() {
    // Keys come and go; a key whose sum is a multiple of 5 leaves; idle keys count down.
    let mut rng = SplitMix64::new(42);
    let input: Vec<Vec<(u32, i64)>> = (0..30)
        .map(|b| {
            let n = if b % 7 == 3 { 0 } else { rng.below(40) };
            (0..n).map(|_| (rng.below(50) as u32, rng.below(21) as i64 - 10)).collect()
        })
        .collect();
    let update = |vs: Vec<i64>, st: Option<(i64, u32)>| -> Option<(i64, u32)> {
        let (sum, ttl) = st.unwrap_or((0, 3));
        if vs.is_empty() {
            return (ttl > 1).then_some((sum, ttl - 1));
        }
        let sum = vs.iter().fold(sum, |a, v| a * 3 % 1_000_003 + v);
        (sum % 5 != 0).then_some((sum, 3))
    };
    let mut state: BTreeMap<u32, (i64, u32)> = BTreeMap::new();
    let mut expected = Vec::new();
    for batch in &input {
        let mut groups: BTreeMap<u32, Vec<i64>> = state.keys().map(|k| (*k, Vec::new())).collect();
        batch.iter().for_each(|(k, v)| groups.entry(*k).or_default().push(*v));
        state = groups.into_iter().filter_map(|(k, vs)| update(vs, state.get(&k).copied()).map(|s| (k, s))).collect();
        expected.push(state.iter().map(|(k, s)| (*k, *s)).collect::<Vec<_>>());
    }
    assert!(expected.iter().all(|b| !b.is_empty()), "the reference should keep some state in every batch");
    let table = vec![case("thirty batches", input, 30, move |v| v.update_state_by_key(update, 4).unwrap(), expected)];
    check_table(&table);
}

/// The running-sum spec: emits each key's new sum.
fn running_sum() -> StateSpec<char, i64, i64, (char, i64)> {
    StateSpec::function(|k: &char, v: Option<i64>, state: &mut State<i64>| {
        let sum = state.get().copied().unwrap_or(0) + v?;
        state.update(sum);
        Some((*k, sum))
    })
}

#[test]
fn map_with_state_table() {
    let input = vec![vec![('a', 1), ('b', 2), ('a', 3)], vec![], vec![('b', 1), ('c', 5)], vec![('a', -4)]];
    let table: Vec<Case<(char, i64), (char, i64)>> = vec![
        case(
            "running sum emits each new sum",
            input.clone(),
            4,
            |x| x.map_with_state(running_sum().partitions(3)).unwrap().into_stream(),
            vec![vec![('a', 1), ('a', 4), ('b', 2)], vec![], vec![('b', 3), ('c', 5)], vec![('a', 0)]],
        ),
        case(
            "snapshots hold the whole state after each batch",
            input.clone(),
            4,
            |x| x.map_with_state(running_sum()).unwrap().state_snapshots(),
            vec![
                vec![('a', 4), ('b', 2)],
                vec![('a', 4), ('b', 2)],
                vec![('a', 4), ('b', 3), ('c', 5)],
                vec![('a', 0), ('b', 3), ('c', 5)],
            ],
        ),
        case(
            "initial state",
            input.clone(),
            2,
            |x| {
                let initial = x.context().context().parallelize(vec![('a', 100), ('z', 7)], 2).unwrap();
                x.map_with_state(running_sum().initial_state(initial).partitions(2)).unwrap().state_snapshots()
            },
            vec![vec![('a', 104), ('b', 2), ('z', 7)], vec![('a', 104), ('b', 2), ('z', 7)]],
        ),
        case(
            "initial state sets the default partitioning",
            input.clone(),
            1,
            |x| {
                let initial = x.context().context().parallelize(vec![('b', 10)], 3).unwrap();
                x.map_with_state(running_sum().initial_state(initial)).unwrap().into_stream()
            },
            vec![vec![('a', 1), ('a', 4), ('b', 12)]],
        ),
        case(
            "remove on a negative value",
            vec![vec![('a', 1), ('b', 2)], vec![('a', -1), ('b', 1)], vec![('a', 5)]],
            3,
            |x| {
                let spec = StateSpec::function(|k: &char, v: Option<i64>, state: &mut State<i64>| {
                    let v = v?;
                    if v < 0 {
                        state.remove();
                        return Some((*k, -1));
                    }
                    let sum = state.get().copied().unwrap_or(0) + v;
                    state.update(sum);
                    None
                });
                x.map_with_state(spec).unwrap().state_snapshots()
            },
            vec![vec![('a', 1), ('b', 2)], vec![('b', 3)], vec![('a', 5), ('b', 3)]],
        ),
    ];
    check_table(&table);
}

/// Running sums with a one-second timeout; the timeout call emits `(key, -sum)`.
fn with_timeout() -> StateSpec<char, i64, i64, (char, i64)> {
    StateSpec::function(|k: &char, v: Option<i64>, state: &mut State<i64>| match v {
        Some(v) => {
            let sum = state.get().copied().unwrap_or(0) + v;
            state.update(sum);
            None
        }
        None => {
            assert!(state.is_timing_out() && state.exists());
            Some((*k, -state.get().copied().unwrap_or(0)))
        }
    })
    .timeout(Duration::from_secs(1))
    .partitions(2)
}

#[test]
fn map_with_state_idle_timeout() {
    // a: seen at 1 and 3; b: at 1 only; c: at 2 and 4.
    let input = vec![vec![('a', 1), ('b', 2)], vec![('c', 3)], vec![('a', 1)], vec![('c', 1)]];
    let table: Vec<Case<(char, i64), (char, i64)>> = vec![
        case(
            "each idle key gets exactly one timeout call",
            input.clone(),
            8,
            |x| x.map_with_state(with_timeout()).unwrap().into_stream(),
            vec![vec![], vec![], vec![('b', -2)], vec![], vec![('a', -2)], vec![('c', -4)], vec![], vec![]],
        ),
        case(
            "timed-out keys leave the snapshots",
            input,
            8,
            |x| x.map_with_state(with_timeout()).unwrap().state_snapshots(),
            vec![
                vec![('a', 1), ('b', 2)],
                vec![('a', 1), ('b', 2), ('c', 3)],
                vec![('a', 2), ('c', 3)],
                vec![('a', 2), ('c', 4)],
                vec![('c', 4)],
                vec![],
                vec![],
                vec![],
            ],
        ),
    ];
    check_table(&table);
}

#[test]
fn updating_a_timing_out_state_fails_the_batch() {
    let spec = || {
        StateSpec::function(|_: &char, v: Option<i64>, state: &mut State<i64>| {
            state.update(v.unwrap_or(0));
            None::<()>
        })
        .timeout(Duration::ZERO)
    };
    let test = StreamTest::new().batches(2);
    let err = test.run(vec![vec![('a', 1)]], |x| x.map_with_state(spec()).unwrap().into_stream()).unwrap_err();
    assert!(err.to_string().contains("State::update called on a state that is timing out"), "{err}");
}

#[test]
fn zero_partitions_are_refused() {
    let cluster = StepCluster::builder().build();
    let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))
        .unwrap();
    let (_, pairs) = ssc.queue_stream::<(char, i64)>(1);
    let err = pairs.update_state_by_key(|_: Vec<i64>, s: Option<i64>| s, 0).unwrap_err();
    assert!(matches!(err, Error::ZeroPartitions { operation: "update_state_by_key" }), "{err}");
    let err = pairs.map_with_state(running_sum().partitions(0)).unwrap_err();
    assert!(matches!(err, Error::ZeroPartitions { operation: "map_with_state" }), "{err}");
}

/// Runs `input` through a stream built by `build` (which registers its outputs), and returns
/// after each batch how many times `calls` was bumped during it.
fn calls_per_batch<T: Data>(
    input: &[Vec<T>],
    workers: u32,
    calls: &AtomicUsize,
    build: impl FnOnce(DStream<T>),
) -> Vec<usize> {
    let cluster = StepCluster::builder().workers(workers).build();
    let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))
        .unwrap();
    let (queue, stream) = ssc.queue_stream(2);
    input.iter().for_each(|b| {
        queue.push(b.clone());
    });
    build(stream);
    input
        .iter()
        .map(|_| {
            calls.store(0, Ordering::SeqCst);
            ssc.step().unwrap();
            calls.load(Ordering::SeqCst)
        })
        .collect()
}

/// Collects every batch of `stream`.
fn collect_into<U: Data>(stream: &DStream<U>, sink: &Arc<Mutex<Vec<Vec<U>>>>) {
    let sink = Arc::clone(sink);
    stream
        .foreach_rdd(move |rdd, _| {
            sink.lock().unwrap().push(rdd.collect()?);
            Ok(())
        })
        .unwrap();
}

#[test]
fn the_previous_state_is_read_from_the_cache_not_recomputed() {
    let mut rng = SplitMix64::new(7);
    let input: Vec<Vec<(u32, u64)>> =
        (0..20).map(|b| (0..if b == 5 { 0 } else { 30 }).map(|_| (rng.below(60) as u32, 1)).collect()).collect();
    // |state ∪ batch keys| per batch, for a state that drops keys idle for one batch.
    let mut expected = Vec::new();
    let mut state: BTreeSet<u32> = BTreeSet::new();
    for batch in &input {
        let keys: BTreeSet<u32> = batch.iter().map(|(k, _)| *k).collect();
        expected.push(state.union(&keys).count());
        state = keys;
    }
    for workers in WORKERS {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&calls);
        let (out, totals) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
        let got = calls_per_batch(&input, workers, &calls, |s| {
            let state = s
                .update_state_by_key(
                    move |vs: Vec<u64>, n: Option<u64>| {
                        c.fetch_add(1, Ordering::SeqCst);
                        (!vs.is_empty()).then(|| n.unwrap_or(0) + vs.len() as u64)
                    },
                    3,
                )
                .unwrap();
            collect_into(&state, &out);
            collect_into(&state.map(|(_, n)| n), &totals); // a second reader of the same state
        });
        assert_eq!(got, expected, "{workers} workers");
    }
}

#[test]
fn map_with_state_calls_f_once_per_record_with_both_outputs() {
    let input: Vec<Vec<(char, i64)>> =
        vec![vec![('a', 1), ('b', 1), ('a', 1)], vec![], vec![('c', 1)], vec![('a', 1)], vec![], vec![], vec![]];
    // One call per record, plus one timeout call for a and b at batch 3, c at 5 and a at 6.
    let expected = vec![3, 0, 3, 1, 1, 1, 0];
    for workers in WORKERS {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&calls);
        let (sums, snaps) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
        let got = calls_per_batch(&input, workers, &calls, |s| {
            let spec = StateSpec::function(move |k: &char, v: Option<i64>, state: &mut State<i64>| {
                c.fetch_add(1, Ordering::SeqCst);
                let sum = state.get().copied().unwrap_or(0) + v?;
                state.update(sum);
                Some((*k, sum))
            })
            .timeout(Duration::from_secs(1));
            let mapped = s.map_with_state(spec).unwrap();
            collect_into(&mapped, &sums);
            collect_into(&mapped.state_snapshots(), &snaps);
        });
        assert_eq!(got, expected, "{workers} workers");
        let snaps = snaps.lock().unwrap();
        assert_eq!(snaps.last(), Some(&Vec::new()), "{workers} workers: every key timed out");
    }
}
