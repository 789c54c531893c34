//! Helpers shared by the streaming tests: input generators, sequential references of windows
//! and the table-driven checks.
//!
//! A case reads as `input batches -> operation -> expected batches`: the expected batches come
//! from a sequential reference computed here in plain Rust. Every check runs the operation with
//! `StreamTest` on stepping clusters of 1, 2 and 4 workers sharing the driver's graph and of 1,
//! 2, 4 and 7 workers with graphs of their own (each with its own seed), and several input
//! partition counts, compares every batch with the reference, and requires the raw (unsorted)
//! output to be byte-identical for every configuration.
#![allow(dead_code)] // Each test crate uses a different subset of the helpers.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use dstream::testing::StreamTest;
use dstream::{codec, DStream, Data, SplitMix64};

/// The worker counts every check runs with, sharing the driver's graph.
pub(crate) const WORKERS: [u32; 3] = [1, 2, 4];
/// The worker counts every check runs with in the process-faithful mode (every worker builds
/// the program itself and rebuilds each batch, `StreamTest::worker_graphs`).
pub(crate) const OWN_GRAPH_WORKERS: [u32; 4] = [1, 2, 4, 7];

/// Every (workers, own graphs) configuration of a check.
pub(crate) fn configs() -> impl Iterator<Item = (u32, bool)> {
    WORKERS.into_iter().map(|w| (w, false)).chain(OWN_GRAPH_WORKERS.into_iter().map(|w| (w, true)))
}
/// The partition counts of the input batches.
pub(crate) const PARTITIONS: [usize; 2] = [1, 3];

/// The seed of the stepping cluster with `workers` workers.
pub(crate) fn seed_for(workers: u32) -> u64 {
    0x5EED_0000 ^ u64::from(workers)
}

/// `n` batches of the batch interval (one second).
pub(crate) fn secs(n: usize) -> Duration {
    Duration::from_secs(n as u64)
}

/// The bytes of a value's encoding, to compare outputs byte for byte.
pub(crate) fn bytes<T: serde::Serialize>(value: &T) -> Vec<u8> {
    codec::encode(value).unwrap()
}

/// The reference of a queue stream's partitioning: `data` cut into `n` contiguous slices.
pub(crate) fn split<T: Clone>(data: &[T], n: usize) -> Vec<Vec<T>> {
    let len = data.len();
    (0..n).map(|i| data[i * len / n..(i + 1) * len / n].to_vec()).collect()
}

/// Leaves a batch as it is: its order is defined.
pub(crate) fn exact<U>(_: &mut [U]) {}

/// Sorts a batch whose order depends on hashing.
pub(crate) fn sorted<U: Ord>(v: &mut [U]) {
    v.sort();
}

/// `batches` batches of numbers below `max`, with sizes drawn from `sizes` (0 gives an empty
/// batch), drawn from `seed`.
pub(crate) fn number_batches(seed: u64, batches: usize, sizes: &[usize], max: u32) -> Vec<Vec<u32>> {
    let mut rng = SplitMix64::new(seed);
    (0..batches)
        .map(|_| {
            let n = sizes[rng.below(sizes.len())];
            (0..n).map(|_| rng.below(max as usize) as u32).collect()
        })
        .collect()
}

/// Batches of pairs with keys below `keys` (so keys repeat) and values in `-20..=20`.
pub(crate) fn pair_batches(seed: u64, batches: usize, sizes: &[usize], keys: u32) -> Vec<Vec<(u32, i64)>> {
    let mut rng = SplitMix64::new(seed);
    (0..batches)
        .map(|_| {
            let n = sizes[rng.below(sizes.len())];
            (0..n).map(|_| (rng.below(keys as usize) as u32, rng.below(41) as i64 - 20)).collect()
        })
        .collect()
}

/// The number inputs: a small literal stream with an empty batch, a random one, an empty one.
pub(crate) fn number_inputs() -> Vec<Vec<Vec<u32>>> {
    vec![
        vec![vec![1, 2, 3], vec![], vec![4, 5], vec![6]],
        number_batches(11, 6, &[0, 1, 7, 40], 50),
        vec![vec![], vec![]],
    ]
}

/// The pair inputs: a literal stream, a random one with few keys, an empty one.
pub(crate) fn pair_inputs() -> Vec<Vec<Vec<(u32, i64)>>> {
    vec![
        vec![vec![(1, 10), (2, 20), (1, 11)], vec![], vec![(3, 30), (1, 12)], vec![(2, 21), (2, 22)]],
        pair_batches(12, 6, &[0, 1, 9, 30], 6),
        vec![vec![], vec![]],
    ]
}

/// The values of each key, in input order.
pub(crate) fn groups<K: Ord + Clone, V: Clone>(records: &[(K, V)]) -> BTreeMap<K, Vec<V>> {
    let mut g: BTreeMap<K, Vec<V>> = BTreeMap::new();
    for (k, v) in records {
        g.entry(k.clone()).or_default().push(v.clone());
    }
    g
}

/// The sum of each key's values, by key.
pub(crate) fn sums(records: &[(u32, i64)]) -> Vec<(u32, i64)> {
    groups(records).into_iter().map(|(k, vs)| (k, vs.iter().sum())).collect()
}

/// The reference of windows of `l` batches sliding by `s` batches over `input`: for batch `k`
/// (from 1, at time `k` seconds), the records of batches `(k - l, k]` in batch order if `k`
/// is a multiple of `s`, else `None` (the window has no dataset then).
pub(crate) fn windows<T: Clone>(input: &[Vec<T>], batches: usize, l: usize, s: usize) -> Vec<Option<Vec<T>>> {
    (1..=batches)
        .map(|k| {
            (k % s == 0)
                .then(|| (k.saturating_sub(l) + 1..=k).filter_map(|j| input.get(j - 1)).flatten().cloned().collect())
        })
        .collect()
}

/// A stream operation under test.
pub(crate) type Op<T, U> = Box<dyn Fn(DStream<T>) -> DStream<U>>;
/// A two-stream operation under test.
pub(crate) type Op2<A, B, U> = Box<dyn Fn(DStream<A>, DStream<B>) -> DStream<U>>;
/// A sequential reference: from the input batches, each cut into the run's partitions, to the
/// expected output batches.
pub(crate) type Reference<T, U> = Box<dyn Fn(&[Vec<Vec<T>>]) -> Vec<Vec<U>>>;

/// One row of a table: a named operation, its sequential reference, and how to normalize a
/// batch before comparing (`exact` or `sorted`).
pub(crate) struct Case<T, U> {
    pub(crate) name: String,
    pub(crate) op: Op<T, U>,
    pub(crate) reference: Reference<T, U>,
    pub(crate) norm: fn(&mut [U]),
}

/// A row whose reference maps each batch (as its partitions) to its output on its own.
pub(crate) fn per_batch<T: 'static, U: 'static>(
    name: &str,
    norm: fn(&mut [U]),
    op: impl Fn(DStream<T>) -> DStream<U> + 'static,
    reference: impl Fn(&[Vec<T>]) -> Vec<U> + 'static,
) -> Case<T, U> {
    let reference = move |batches: &[Vec<Vec<T>>]| batches.iter().map(|parts| reference(parts)).collect();
    Case { name: name.into(), op: Box::new(op), reference: Box::new(reference), norm }
}

/// A row whose reference sees the whole stream (windows).
pub(crate) fn whole<T: Clone + 'static, U: 'static>(
    name: &str,
    norm: fn(&mut [U]),
    op: impl Fn(DStream<T>) -> DStream<U> + 'static,
    reference: impl Fn(&[Vec<T>]) -> Vec<Vec<U>> + 'static,
) -> Case<T, U> {
    let reference = move |batches: &[Vec<Vec<T>>]| {
        let flat: Vec<Vec<T>> = batches.iter().map(|parts| parts.concat()).collect();
        reference(&flat)
    };
    Case { name: name.into(), op: Box::new(op), reference: Box::new(reference), norm }
}

/// Compares the output of one configuration with the expected batches, batch by batch.
fn compare<U: Debug + PartialEq>(at: &str, mut out: Vec<Vec<U>>, expected: &[Vec<U>], norm: fn(&mut [U])) {
    assert_eq!(out.len(), expected.len(), "{at}: number of output batches");
    for (k, (got, want)) in out.iter_mut().zip(expected).enumerate() {
        norm(got);
        assert_eq!(got, want, "{at}: batch {} (time {}s)", k + 1, k + 1);
    }
}

/// Runs every case of `table` over every input, partition count and worker count (see the
/// module documentation).
pub(crate) fn check_table<T, U>(inputs: &[Vec<Vec<T>>], table: &[Case<T, U>])
where
    T: Data,
    U: Data + Debug + PartialEq,
{
    for case in table {
        for (i, input) in inputs.iter().enumerate() {
            for p in PARTITIONS {
                let parts: Vec<Vec<Vec<T>>> = input.iter().map(|b| split(b, p)).collect();
                let mut expected = (case.reference)(&parts);
                expected.iter_mut().for_each(|b| (case.norm)(b));
                let mut first: Option<(Vec<u8>, u32)> = None;
                for (workers, own) in configs() {
                    let seed = seed_for(workers);
                    let at = format!(
                        "{} on input #{i}: {p} partitions, {workers} workers (own graphs: {own}), seed {seed:#x}",
                        case.name
                    );
                    let test = StreamTest::new().workers(workers).seed(seed).partitions(p).worker_graphs(own);
                    let out = test.run(input.clone(), |s| (case.op)(s)).unwrap_or_else(|e| panic!("{at}: {e}"));
                    same_raw(&at, &mut first, &out, workers);
                    compare(&at, out, &expected, case.norm);
                }
            }
        }
    }
}

/// Requires `out` to be byte-identical to the first configuration's output.
pub(crate) fn same_raw<U: Data + Debug>(at: &str, first: &mut Option<(Vec<u8>, u32)>, out: &[Vec<U>], workers: u32) {
    let raw = bytes(&out);
    match first {
        None => *first = Some((raw, workers)),
        Some((raw0, w0)) => assert!(*raw0 == raw, "{at}: raw output {out:?} differs from the one with {w0} workers"),
    }
}

/// One row of a two-stream table, with a per-batch reference over both batches.
pub(crate) struct Case2<A, B, U> {
    pub(crate) name: &'static str,
    pub(crate) op: Op2<A, B, U>,
    pub(crate) reference: Box<dyn Fn(&[A], &[B]) -> Vec<U>>,
}

/// A two-stream row; batches are compared after sorting.
pub(crate) fn case2<A, B, U>(
    name: &'static str,
    op: impl Fn(DStream<A>, DStream<B>) -> DStream<U> + 'static,
    reference: impl Fn(&[A], &[B]) -> Vec<U> + 'static,
) -> Case2<A, B, U> {
    Case2 { name, op: Box::new(op), reference: Box::new(reference) }
}

/// Runs a two-stream case over every pair of inputs and worker count. Streams of different
/// lengths run as long as the longer one; the shorter gets empty batches.
pub(crate) fn check2<A, B, U>(inputs: &[(Vec<Vec<A>>, Vec<Vec<B>>)], case: &Case2<A, B, U>)
where
    A: Data,
    B: Data,
    U: Data + Debug + Ord,
{
    for (i, (a, b)) in inputs.iter().enumerate() {
        let n = a.len().max(b.len());
        let expected: Vec<Vec<U>> = (0..n)
            .map(|k| {
                let mut out = (case.reference)(a.get(k).map_or(&[], |x| x), b.get(k).map_or(&[], |x| x));
                out.sort();
                out
            })
            .collect();
        let mut first = None;
        for (workers, own) in configs() {
            let seed = seed_for(workers);
            let at = format!("{} on inputs #{i}: {workers} workers (own graphs: {own}), seed {seed:#x}", case.name);
            let test = StreamTest::new().workers(workers).seed(seed).partitions(2).worker_graphs(own);
            let out = test.run2(a.clone(), b.clone(), |x, y| (case.op)(x, y)).unwrap_or_else(|e| panic!("{at}: {e}"));
            same_raw(&at, &mut first, &out, workers);
            compare(&at, out, &expected, sorted);
        }
    }
}
