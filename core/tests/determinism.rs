//! Determinism of the stepping harness and of results: the same seed gives the same trace on a
//! fresh cluster; different seeds give different traces; every seed and every worker count
//! gives the same result, byte for byte.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use dstream::{Context, Error, SplitMix64, Step, StepCluster};
use proptest::prelude::*;

const SEEDS: std::ops::Range<u64> = 0..100;

const VOCABULARY: [&str; 24] = [
    "stream", "batch", "window", "key", "value", "shuffle", "stage", "task", "driver", "worker", "block", "lineage",
    "cache", "join", "reduce", "map", "filter", "sort", "time", "seed", "trace", "state", "sink", "source",
];

/// 120 lines of 1 to 9 words of the vocabulary.
fn lines() -> Vec<String> {
    let mut rng = SplitMix64::new(2024);
    (0..120)
        .map(|_| {
            let n = 1 + rng.below(9);
            (0..n).map(|_| VOCABULARY[rng.below(VOCABULARY.len())]).collect::<Vec<_>>().join(" ")
        })
        .collect()
}

/// A category for every other word of the vocabulary, and two for "join".
fn lexicon() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = VOCABULARY
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(i, w)| (w.to_string(), format!("kind{}", i % 3)))
        .collect();
    out.push(("join".into(), "operator".into()));
    out
}

type Row = (String, (u64, String));

/// The job: count words, then join the counts with the lexicon.
fn wordcount_join(ctx: &Context) -> Result<Vec<Row>, Error> {
    let counts = ctx
        .parallelize(lines(), 5)?
        .flat_map(|l| l.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .map(|w| (w, 1u64))
        .reduce_by_key(|a, b| a + b);
    let kinds = ctx.parallelize(lexicon(), 3)?;
    counts.join(&kinds).collect()
}

/// The sequential reference of the job, sorted.
fn reference() -> Vec<Row> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for line in lines() {
        for w in line.split(' ') {
            *counts.entry(w.to_owned()).or_default() += 1;
        }
    }
    let mut out = Vec::new();
    for (w, kind) in lexicon() {
        if let Some(n) = counts.get(&w) {
            out.push((w, (*n, kind)));
        }
    }
    out.sort();
    out
}

struct Run {
    trace: Vec<Step>,
    raw: Vec<u8>,
    result: Vec<Row>,
}

fn run(cluster: &StepCluster, seed: u64) -> Run {
    let result = wordcount_join(&cluster.context()).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    Run { trace: cluster.trace(), raw: common::bytes(&result), result }
}

#[test]
fn same_seed_same_trace_different_seeds_different_traces() {
    let expected = reference();
    let mut traces: BTreeSet<String> = BTreeSet::new();
    let mut first_raw: Option<Vec<u8>> = None;
    for seed in SEEDS {
        let a_cluster = StepCluster::builder().workers(3).seed(seed).build();
        let b_cluster = StepCluster::builder().workers(3).seed(seed).build();
        let a = run(&a_cluster, seed);
        let b = run(&b_cluster, seed);
        assert!(!a.trace.is_empty(), "seed {seed}");
        assert_eq!(a.trace, b.trace, "seed {seed}");
        assert_eq!(a_cluster.now(), b_cluster.now(), "seed {seed}");
        assert_eq!(a.raw, b.raw, "seed {seed}");
        assert!(
            *first_raw.get_or_insert_with(|| a.raw.clone()) == a.raw,
            "seed {seed}: raw result differs from seed 0's"
        );
        let mut sorted = a.result;
        sorted.sort();
        assert_eq!(sorted, expected, "seed {seed}");
        traces.insert(format!("{:?}", a.trace));
    }
    let n = SEEDS.end - SEEDS.start;
    assert!(traces.len() as u64 >= n * 9 / 10, "only {} distinct traces over {n} seeds", traces.len());
}

#[test]
fn same_result_for_every_seed_and_worker_count() {
    let expected = reference();
    let mut first: Option<(Vec<u8>, u64)> = None;
    for seed in SEEDS {
        let workers = common::WORKERS[(seed % 4) as usize];
        let cluster = StepCluster::builder().workers(workers).seed(seed).build();
        let got = run(&cluster, seed);
        let (raw0, seed0) = first.get_or_insert_with(|| (got.raw.clone(), seed));
        assert!(*raw0 == got.raw, "seed {seed} ({workers} workers): raw result differs from seed {seed0}'s");
        let mut sorted = got.result;
        sorted.sort();
        assert_eq!(sorted, expected, "seed {seed} ({workers} workers)");
    }
}

/// A cluster keeps its trace across jobs: a second job extends the first job's trace, and two
/// clusters with the same seed running the same two jobs agree step for step.
#[test]
fn traces_accumulate_across_jobs() {
    for seed in [3, 17, 99] {
        let traces: Vec<(usize, Vec<Step>)> = (0..2)
            .map(|_| {
                let cluster = StepCluster::builder().workers(2).seed(seed).build();
                let ctx = cluster.context();
                let rdd = ctx.parallelize((0..50u32).collect(), 4).unwrap();
                assert_eq!(rdd.count().unwrap(), 50, "seed {seed}");
                let after_first = cluster.trace().len();
                let sum = rdd.map(|x| (x % 3, x)).reduce_by_key(|a, b| a + b);
                assert_eq!(sum.count().unwrap(), 3, "seed {seed}");
                (after_first, cluster.trace())
            })
            .collect();
        let (first_len, trace) = &traces[0];
        assert!(*first_len > 0 && trace.len() > *first_len, "seed {seed}");
        assert_eq!(traces[0], traces[1], "seed {seed}");
        let runs = trace.iter().filter(|s| matches!(s, Step::Run { .. })).count();
        // 4 count tasks, then 4 map tasks and 4 count tasks of the reduced dataset.
        assert_eq!(runs, 12, "seed {seed}");
        assert!(
            trace.iter().all(|s| !matches!(s, Step::Run { attempt, .. } if *attempt > 0)),
            "seed {seed}: a task was retried without any failure"
        );
    }
}

fn sums(input: &[(u8, u16)]) -> Vec<(u8, u32)> {
    let mut m: BTreeMap<u8, u32> = BTreeMap::new();
    for (k, v) in input {
        *m.entry(*k).or_default() += u32::from(*v);
    }
    m.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any input, partition count, worker count, seed and wire mode: `reduce_by_key` and
    /// `group_by_key` give the reference result, and exactly the bytes one worker gives.
    #[test]
    fn results_do_not_depend_on_the_cluster(
        input in proptest::collection::vec((0u8..20, any::<u16>()), 0..200),
        partitions in 1usize..6,
        workers in 1u32..8,
        seed in any::<u64>(),
        wire in any::<bool>(),
    ) {
        let job = |cluster: &StepCluster| {
            let rdd = cluster.context().parallelize(input.clone(), partitions).unwrap();
            let pairs = rdd.map(|(k, v)| (k, u32::from(v)));
            let reduced = pairs.reduce_by_key(|a, b| a + b).collect().unwrap();
            let grouped = pairs.group_by_key().collect().unwrap();
            (reduced, grouped)
        };
        let one = job(&StepCluster::builder().workers(1).build());
        let many = job(&StepCluster::builder().workers(workers).seed(seed).wire(wire).build());
        prop_assert_eq!(common::bytes(&one), common::bytes(&many), "seed {}", seed);
        let (mut reduced, mut grouped) = many;
        reduced.sort();
        grouped.sort();
        prop_assert_eq!(&reduced, &sums(&input), "seed {}", seed);
        let expected: Vec<(u8, Vec<u32>)> = common::groups(&input)
            .into_iter()
            .map(|(k, vs)| (k, vs.into_iter().map(u32::from).collect()))
            .collect();
        prop_assert_eq!(&grouped, &expected, "seed {}", seed);
    }
}
