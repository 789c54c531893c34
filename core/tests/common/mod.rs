//! Helpers shared by the integration tests: cluster configurations, reference partitioning,
//! input generators and the table-driven `check` helpers.
//!
//! Every check runs the same job on fresh clusters with 1, 2, 4 and 7 workers (sharing the
//! driver's graph, and each with a graph of its own built by running the program:
//! `StepClusterBuilder::build_with_worker_programs`), several seeds and several partition
//! counts, compares the result with a sequential reference computed in plain Rust, and asserts
//! that the raw (unsorted) result is byte-identical for every configuration of a given
//! partition count.
#![allow(dead_code)] // Each test crate uses a different subset of the helpers.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fmt::Debug;

use dstream::{codec, Data, Error, Rdd, SplitMix64, StepCluster};

/// The worker counts every check runs with.
pub(crate) const WORKERS: [u32; 4] = [1, 2, 4, 7];
/// The partition counts of the input datasets.
pub(crate) const PARTITIONS: [usize; 3] = [1, 3, 8];
/// The seeds of the delivery order every configuration runs with.
pub(crate) const SEEDS: [u64; 2] = [0, 0xD5_7EA4];

/// A cluster of `workers` workers stepped in the order of `seed`, in wire mode.
pub(crate) fn cluster(workers: u32, seed: u64) -> StepCluster {
    StepCluster::builder().workers(workers).seed(seed).build()
}

/// Every (workers, seed) configuration of a check.
pub(crate) fn configs() -> impl Iterator<Item = (u32, u64)> {
    WORKERS.into_iter().flat_map(|w| SEEDS.into_iter().map(move |s| (w, s ^ u64::from(w))))
}

/// The reference of `Context::parallelize`: `data` cut into `n` contiguous slices of nearly
/// equal size, the i-th being `data[i * len / n .. (i + 1) * len / n]`.
pub(crate) fn split<T: Clone>(data: &[T], n: usize) -> Vec<Vec<T>> {
    let len = data.len();
    (0..n).map(|i| data[i * len / n..(i + 1) * len / n].to_vec()).collect()
}

/// All records of the partitions, in partition order.
pub(crate) fn flat<T: Clone>(parts: &[Vec<T>]) -> Vec<T> {
    parts.concat()
}

/// Leaves a result as it is: its order is defined.
pub(crate) fn exact<U>(_: &mut [U]) {}

/// Sorts a result whose order depends on hashing.
pub(crate) fn sorted<U: Ord>(v: &mut [U]) {
    v.sort();
}

/// The bytes of a value's encoding, to compare results byte for byte.
pub(crate) fn bytes<T: serde::Serialize>(value: &T) -> Vec<u8> {
    codec::encode(value).unwrap()
}

/// `n` numbers below `max`, drawn from `seed`.
pub(crate) fn numbers(seed: u64, n: usize, max: u64) -> Vec<u64> {
    let mut rng = SplitMix64::new(seed);
    (0..n).map(|_| rng.next_u64() % max).collect()
}

/// `n` pairs with keys below `keys` (so keys repeat) and signed values, drawn from `seed`.
pub(crate) fn pairs(seed: u64, n: usize, keys: u32) -> Vec<(u32, i64)> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            let k = rng.below(keys as usize) as u32;
            let v = rng.below(201) as i64 - 100;
            (k, v)
        })
        .collect()
}

/// The inputs of the number tables: empty, one record, a short run and one large enough to
/// span several chunks of the pipeline (1024 records) in one partition.
pub(crate) fn number_inputs() -> Vec<Vec<u64>> {
    vec![vec![], vec![42], (0..23).collect(), numbers(1, 2_500, 1_000)]
}

/// The inputs of the pair tables: empty, one pair, few keys with many values and many keys.
pub(crate) fn pair_inputs() -> Vec<Vec<(u32, i64)>> {
    vec![vec![], vec![(7, 1)], pairs(2, 40, 5), pairs(3, 2_100, 97)]
}

/// The values of each key, in input order.
pub(crate) fn groups<K: Ord + Clone, V: Clone>(records: &[(K, V)]) -> BTreeMap<K, Vec<V>> {
    let mut g: BTreeMap<K, Vec<V>> = BTreeMap::new();
    for (k, v) in records {
        g.entry(k.clone()).or_default().push(v.clone());
    }
    g
}

/// A boxed transformation from the input dataset.
pub(crate) type Op<T, U> = Box<dyn Fn(&Rdd<T>) -> Result<Rdd<U>, Error>>;
/// A boxed sequential reference over the input's partitions.
pub(crate) type Reference<T, U> = Box<dyn Fn(&[Vec<T>]) -> Vec<U>>;

/// One row of a table: a named operation and its sequential reference.
pub(crate) struct Case<T, U> {
    pub(crate) name: &'static str,
    pub(crate) op: Op<T, U>,
    pub(crate) reference: Reference<T, U>,
    /// How to normalize both results before comparing them (`exact` or `sorted`).
    pub(crate) norm: fn(&mut [U]),
}

/// A row whose result order is defined: compared exactly.
pub(crate) fn ordered<T, U>(
    name: &'static str,
    op: impl Fn(&Rdd<T>) -> Result<Rdd<U>, Error> + 'static,
    reference: impl Fn(&[Vec<T>]) -> Vec<U> + 'static,
) -> Case<T, U> {
    Case { name, op: Box::new(op), reference: Box::new(reference), norm: exact }
}

/// A row whose result order depends on hashing: compared after sorting (and its raw order is
/// still required to be the same for every worker count and seed).
pub(crate) fn unordered<T, U: Ord>(
    name: &'static str,
    op: impl Fn(&Rdd<T>) -> Result<Rdd<U>, Error> + 'static,
    reference: impl Fn(&[Vec<T>]) -> Vec<U> + 'static,
) -> Case<T, U> {
    Case { name, op: Box::new(op), reference: Box::new(reference), norm: sorted }
}

/// Runs every case of `table` over every input, partition count, worker count and seed:
/// `input -> parallelize -> op -> collect` must equal the reference, and the raw collected
/// bytes must be the same for every worker count and seed.
pub(crate) fn check_table<T, U>(inputs: &[Vec<T>], table: &[Case<T, U>])
where
    T: Data,
    U: Data + Debug + PartialEq,
{
    for case in table {
        for input in inputs {
            check(case, input);
        }
    }
}

/// [`check_table`] on workers sharing the driver's graph only: for operations that run a job
/// while the program is built (`sort_by_key` samples its keys), which a worker building the
/// program ahead of the driver's jobs cannot rebuild (it is refused with
/// `Error::ActionOnWorker`, see `a_batch_program_running_a_job_is_refused_on_a_worker`).
pub(crate) fn check_table_shared_graph<T, U>(inputs: &[Vec<T>], table: &[Case<T, U>])
where
    T: Data,
    U: Data + Debug + PartialEq,
{
    for case in table {
        for input in inputs {
            check_in(case, input, &[false]);
        }
    }
}

/// Runs one case over one input (see [`check_table`]).
pub(crate) fn check<T, U>(case: &Case<T, U>, input: &[T])
where
    T: Data,
    U: Data + Debug + PartialEq,
{
    check_in(case, input, &[false, true]);
}

/// Runs one case over one input with workers sharing the driver's graph (`false` in `own`)
/// and with graphs of their own (`true`).
fn check_in<T, U>(case: &Case<T, U>, input: &[T], own: &[bool])
where
    T: Data,
    U: Data + Debug + PartialEq,
{
    for p in PARTITIONS {
        let mut expected = (case.reference)(&split(input, p));
        (case.norm)(&mut expected);
        let mut first: Option<(Vec<u8>, u32, u64)> = None;
        for ((workers, seed), own) in configs().flat_map(|c| own.iter().map(move |&o| (c, o))) {
            let at = format!(
                "{}: {} records, {p} partitions, {workers} workers (own graphs: {own}), seed {seed}",
                case.name,
                input.len()
            );
            let program = |ctx: &dstream::Context| ctx.parallelize(input.to_vec(), p).and_then(|rdd| (case.op)(&rdd));
            let cluster = if own {
                let builder = StepCluster::builder().workers(workers).seed(seed);
                builder.build_with_worker_programs(|ctx| Ok(Box::new(program(ctx)?) as _)).unwrap()
            } else {
                cluster(workers, seed)
            };
            let out = program(&cluster.context()).and_then(|r| r.collect()).unwrap_or_else(|e| panic!("{at}: {e}"));
            let raw = bytes(&out);
            match &first {
                None => first = Some((raw, workers, seed)),
                Some((raw0, w0, s0)) => {
                    assert!(*raw0 == raw, "{at}: raw output differs from the one with {w0} workers, seed {s0}")
                }
            }
            let mut out = out;
            (case.norm)(&mut out);
            assert_eq!(out, expected, "{at}");
        }
    }
}

/// Runs an action over every input, partition count, worker count and seed, and compares its
/// result with the reference computed from the input's partitions.
pub(crate) fn check_action<T, R>(
    name: &str,
    inputs: &[Vec<T>],
    action: impl Fn(&Rdd<T>) -> Result<R, Error>,
    reference: impl Fn(&[Vec<T>]) -> R,
) where
    T: Data,
    R: Debug + PartialEq,
{
    for input in inputs {
        for p in PARTITIONS {
            let expected = reference(&split(input, p));
            for (workers, seed) in configs() {
                let at = format!("{name}: {} records, {p} partitions, {workers} workers, seed {seed}", input.len());
                let cluster = cluster(workers, seed);
                let rdd = cluster.context().parallelize(input.clone(), p).unwrap();
                let got = action(&rdd).unwrap_or_else(|e| panic!("{at}: {e}"));
                assert_eq!(got, expected, "{at}");
            }
        }
    }
}
