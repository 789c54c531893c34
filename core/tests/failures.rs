//! Bad input and failing tasks: each case asserts its typed error (`dstream::Error`,
//! `TaskErrorKind`), none hangs, and the cluster runs a new job correctly afterwards.
#![allow(clippy::unwrap_used)]

mod common;

use dstream::{Aggregator, BlockId, Context, Error, PartitionSource, Rdd, Step, StepCluster, TaskError, TaskErrorKind};
use serde::{Deserialize, Serialize, Serializer};

use common::{split, WORKERS};

/// The failure of a job, or a panic naming what was expected instead.
fn task_failure<T: std::fmt::Debug>(result: Result<T, Error>, at: &str) -> (u32, u32, dstream::RddId, TaskError) {
    match result {
        Err(Error::TaskFailed { partition, attempts, rdd, cause, .. }) => (partition, attempts, rdd, *cause),
        other => panic!("{at}: expected Error::TaskFailed, got {other:?}"),
    }
}

/// After a failure, the same cluster still runs jobs with shuffles, persistence and actions.
fn still_works(ctx: &Context, at: &str) {
    let pairs = ctx.parallelize((0..200u32).map(|i| (i % 7, i)).collect(), 4).unwrap();
    let mut sums = pairs.reduce_by_key(|a, b| a + b).collect().unwrap();
    sums.sort();
    let want: Vec<(u32, u32)> = (0..7).map(|k| (k, (0..200).filter(|i| i % 7 == k).sum())).collect();
    assert_eq!(sums, want, "{at}: after the failure");
    let cached = pairs.map_values(|v| v * 2).persist();
    assert_eq!(cached.count().unwrap(), 200, "{at}: after the failure");
    assert_eq!(cached.join(&cached).count().unwrap(), (0..7).map(|k| want_count(k).pow(2)).sum::<u64>(), "{at}");
}

fn want_count(k: u32) -> u64 {
    (0..200u32).filter(|i| i % 7 == k).count() as u64
}

type Attempt = Box<dyn Fn(&Context) -> Result<(), Error>>;

#[test]
fn zero_partitions_is_refused_when_the_dataset_is_built() {
    let cases: Vec<(&str, Attempt)> = vec![
        ("parallelize", Box::new(|ctx| ctx.parallelize(vec![1u8], 0).map(drop))),
        ("repartition", Box::new(|ctx| ctx.parallelize(vec![1u8], 2)?.repartition(0).map(drop))),
        (
            "reduce_by_key",
            Box::new(|ctx| {
                ctx.parallelize(vec![(1u8, 1u8)], 2)?.reduce_by_key_with_partitions(|a, b| a + b, 0).map(drop)
            }),
        ),
        (
            "group_by_key",
            Box::new(|ctx| ctx.parallelize(vec![(1u8, 1u8)], 2)?.group_by_key_with_partitions(0).map(drop)),
        ),
        (
            "combine_by_key",
            Box::new(|ctx| {
                let agg = Aggregator::new(|v: u8| v, |c: &mut u8, v| *c += v, |c, o| *c += o);
                ctx.parallelize(vec![(1u8, 1u8)], 2)?.combine_by_key(agg, 0, true).map(drop)
            }),
        ),
        (
            "cogroup",
            Box::new(|ctx| {
                let a = ctx.parallelize(vec![(1u8, 1u8)], 2)?;
                a.cogroup_with_partitions(&a, 0).map(drop)
            }),
        ),
        ("sort_by_key", Box::new(|ctx| ctx.parallelize(vec![(1u8, 1u8)], 2)?.sort_by_key(true, 0).map(drop))),
        (
            "from_source",
            Box::new(|ctx| {
                ctx.from_source(Flaky { partitions: 0, fail_first: 0, calls: Default::default() }).map(drop)
            }),
        ),
    ];
    for (expected, attempt) in cases {
        let cluster = common::cluster(2, 0);
        match attempt(&cluster.context()) {
            Err(Error::ZeroPartitions { operation }) => assert_eq!(operation, expected),
            other => panic!("{expected}: expected Error::ZeroPartitions, got {other:?}"),
        }
        still_works(&cluster.context(), expected);
    }
}

#[test]
fn reduce_of_an_empty_dataset() {
    for workers in WORKERS {
        for p in [1, 3, 8] {
            let at = format!("{p} partitions, {workers} workers, seed {workers}");
            let cluster = common::cluster(workers, u64::from(workers));
            let ctx = cluster.context();
            let empty: Rdd<u64> = ctx.parallelize(Vec::new(), p).unwrap();
            let filtered = ctx.parallelize((0..50u64).collect(), p).unwrap().filter(|x| *x > 100);
            for rdd in [&empty, &filtered] {
                match rdd.reduce(|a, b| a + b) {
                    Err(Error::EmptyRdd { action, rdd: id }) => {
                        assert_eq!(action, "reduce", "{at}");
                        assert_eq!(id, rdd.id(), "{at}");
                    }
                    other => panic!("{at}: expected Error::EmptyRdd, got {other:?}"),
                }
                // The other actions have an answer for an empty dataset.
                assert_eq!(rdd.count().unwrap(), 0, "{at}");
                assert_eq!(rdd.fold(u64::MAX, u64::min).unwrap(), u64::MAX, "{at}");
                assert_eq!(rdd.take(3).unwrap(), Vec::<u64>::new(), "{at}");
                assert_eq!(rdd.collect().unwrap(), Vec::<u64>::new(), "{at}");
            }
            still_works(&ctx, &at);
        }
    }
}

/// Where the user code panics: in the result stage, on the map side of a shuffle, or on its
/// reduce side.
#[derive(Clone, Copy, Debug)]
enum Where {
    ResultStage,
    ShuffleMap,
    ShuffleReduce,
}

/// A job whose user code panics on record 13, and the dataset the failing stage computes.
fn panicking_job(ctx: &Context, at: Where) -> (Result<Vec<(u32, u32)>, Error>, Rdd<(u32, u32)>) {
    let boom = |x: u32| {
        if x == 13 {
            panic!("boom on record {x}");
        }
        x
    };
    let input = ctx.parallelize((0..40u32).collect(), 4).unwrap();
    match at {
        Where::ResultStage => {
            let failing = input.map(move |x| (boom(x), x));
            (failing.collect(), failing)
        }
        Where::ShuffleMap => {
            let failing = input.map(move |x| (boom(x) % 3, x));
            (failing.reduce_by_key(|a, b| a + b).collect(), failing)
        }
        Where::ShuffleReduce => {
            let failing = input.map(|x| (x, x)).reduce_by_key(|a, b| a + b).map_values(boom);
            (failing.collect(), failing)
        }
    }
}

#[test]
fn a_panicking_task_fails_its_job_after_every_attempt() {
    for attempts_max in [1, 2, 4] {
        for at in [Where::ResultStage, Where::ShuffleMap, Where::ShuffleReduce] {
            for workers in [1, 3] {
                for wire in [true, false] {
                    let seed = u64::from(attempts_max) * 10 + u64::from(workers);
                    let name = format!("{at:?}, {attempts_max} attempts, {workers} workers, wire {wire}, seed {seed}");
                    let cluster = StepCluster::builder()
                        .workers(workers)
                        .seed(seed)
                        .wire(wire)
                        .task_attempts_max(attempts_max)
                        .build();
                    let (result, failing) = panicking_job(&cluster.context(), at);
                    let (partition, attempts, rdd, cause) = task_failure(result, &name);
                    assert_eq!(cause.kind, TaskErrorKind::Panicked, "{name}: {cause}");
                    assert!(cause.message.contains("boom on record 13"), "{name}: {cause}");
                    assert_eq!(attempts, attempts_max, "{name}");
                    assert_eq!(rdd, failing.id(), "{name}");
                    if let Where::ResultStage | Where::ShuffleMap = at {
                        assert_eq!(partition, 1, "{name}: record 13 is in partition 1 of 4");
                    }
                    let last_attempt = attempts_max - 1;
                    assert!(
                        cluster
                            .trace()
                            .iter()
                            .any(|s| matches!(s, Step::Run { attempt, .. } if *attempt == last_attempt)),
                        "{name}: no attempt {last_attempt} in the trace"
                    );
                    still_works(&cluster.context(), &name);
                }
            }
        }
    }
}

#[test]
fn the_default_is_four_attempts() {
    let cluster = StepCluster::builder().build();
    let (result, _) = panicking_job(&cluster.context(), Where::ResultStage);
    let (_, attempts, _, cause) = task_failure(result, "default builder");
    assert_eq!((attempts, cause.kind), (4, TaskErrorKind::Panicked));
}

/// A record whose encoding fails (only the value 13 does).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
struct Touchy(u32);

impl Serialize for Touchy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 == 13 {
            Err(serde::ser::Error::custom("touchy record 13 refuses to be encoded"))
        } else {
            serializer.serialize_u32(self.0)
        }
    }
}

#[test]
fn an_unencodable_record_fails_without_retries_in_wire_mode() {
    type Job = fn(&Context) -> Result<u64, Error>;
    let jobs: [(&str, Job); 2] = [
        ("collect", |ctx| Ok(ctx.parallelize((0..40).map(Touchy).collect(), 4)?.collect()?.len() as u64)),
        ("shuffle", |ctx| {
            ctx.parallelize((0..40).map(|i| (Touchy(i), i)).collect(), 4)?.reduce_by_key(|a, b| a + b).count()
        }),
    ];
    for (name, job) in jobs {
        for workers in WORKERS {
            let at = format!("{name}, {workers} workers, seed {workers}");
            let cluster = StepCluster::builder().workers(workers).seed(u64::from(workers)).wire(true).build();
            let (_, attempts, _, cause) = task_failure(job(&cluster.context()), &at);
            assert_eq!(cause.kind, TaskErrorKind::Encode, "{at}: {cause}");
            // The codec names the type it could not encode (postcard drops the custom message).
            assert!(cause.message.contains("Touchy"), "{at}: {cause}");
            assert_eq!(attempts, 1, "{at}: an encoding failure is not retried");
            still_works(&cluster.context(), &at);

            // Without the wire, records move as shared pointers and are never encoded.
            let shared = StepCluster::builder().workers(workers).seed(u64::from(workers)).wire(false).build();
            assert_eq!(job(&shared.context()).unwrap(), 40, "{at}, wire false");
        }
    }
}

#[test]
fn a_block_larger_than_the_store_fails_without_retries() {
    for wire in [true, false] {
        for workers in [1, 2, 7] {
            let at = format!("{workers} workers, wire {wire}, seed 5");
            let cluster = StepCluster::builder().workers(workers).seed(5).wire(wire).block_store_bytes_max(16).build();
            let ctx = cluster.context();
            let persisted = ctx.parallelize((0..100u64).collect(), 2).unwrap().persist();
            let (partition, attempts, _, cause) = task_failure(persisted.count(), &at);
            assert_eq!(attempts, 1, "{at}");
            match cause.kind {
                TaskErrorKind::BlockTooLarge { block, bytes, limit_bytes } => {
                    assert_eq!(block, BlockId::Rdd { rdd: persisted.id(), partition }, "{at}");
                    assert!(bytes > 16, "{at}: {bytes}");
                    assert_eq!(limit_bytes, 16, "{at}");
                }
                other => panic!("{at}: expected BlockTooLarge, got {other:?}"),
            }
            // The same data without persistence needs no room in the store.
            let plain = ctx.parallelize((0..100u64).collect(), 2).unwrap();
            assert_eq!(plain.map(|x| x + 1).reduce(|a, b| a + b).unwrap(), 5_050, "{at}");
            // A shuffle bucket larger than the store fails the same way.
            let grouped = plain.map(|x| (x, x)).group_by_key_with_partitions(1).unwrap();
            let (_, attempts, _, cause) = task_failure(grouped.count(), &at);
            assert_eq!(attempts, 1, "{at}");
            assert!(
                matches!(
                    cause.kind,
                    TaskErrorKind::BlockTooLarge { block: BlockId::Shuffle { .. }, limit_bytes: 16, .. }
                ),
                "{at}: {cause:?}"
            );
            assert_eq!(plain.count().unwrap(), 100, "{at}");
        }
    }
}

/// A source whose read fails for partition 2 on its first `fail_first` calls.
struct Flaky {
    partitions: usize,
    fail_first: usize,
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl PartitionSource<u32> for Flaky {
    fn partitions(&self) -> usize {
        self.partitions
    }
    fn read(&self, split: usize) -> Result<Vec<u32>, String> {
        if split == 2 && self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < self.fail_first {
            return Err("the disk is on fire".into());
        }
        Ok((0..10).map(|i| split as u32 * 100 + i).collect())
    }
    fn describe(&self) -> String {
        "flaky://bucket/2026".into()
    }
}

#[test]
fn a_failing_source_fails_after_every_attempt() {
    for attempts_max in [1, 3, 4] {
        for workers in [1, 4] {
            let at = format!("{attempts_max} attempts, {workers} workers, seed {attempts_max}");
            let cluster = StepCluster::builder()
                .workers(workers)
                .seed(u64::from(attempts_max))
                .task_attempts_max(attempts_max)
                .build();
            let calls = std::sync::Arc::default();
            let source = Flaky { partitions: 5, fail_first: usize::MAX, calls };
            let rdd = cluster.context().from_source(source).unwrap();
            let (partition, attempts, _, cause) = task_failure(rdd.collect(), &at);
            assert_eq!(cause.kind, TaskErrorKind::Source, "{at}: {cause}");
            assert!(cause.message.contains("flaky://bucket/2026"), "{at}: {cause}");
            assert!(cause.message.contains("the disk is on fire"), "{at}: {cause}");
            assert_eq!((partition, attempts), (2, attempts_max), "{at}");
            still_works(&cluster.context(), &at);
        }
    }
}

/// One cluster, failures of every kind in a row, with good jobs in between.
#[test]
fn failures_leave_no_stuck_state() {
    let cluster = StepCluster::builder().workers(3).seed(31).block_store_bytes_max(4_000).build();
    let ctx = cluster.context();
    let data: Vec<u32> = (0..300).collect();
    let good = || ctx.parallelize(data.clone(), 6).unwrap().map(|x| (x % 10, x)).reduce_by_key(|a, b| a + b);
    let mut reference = good().collect().unwrap();
    reference.sort();
    for round in 0..3 {
        let at = format!("round {round}, seed 31");
        let (result, _) = panicking_job(&ctx, Where::ShuffleMap);
        assert_eq!(task_failure(result, &at).3.kind, TaskErrorKind::Panicked);
        let big = ctx.parallelize(data.iter().map(|i| format!("{i:032}")).collect::<Vec<_>>(), 1).unwrap().persist();
        assert!(matches!(task_failure(big.count(), &at).3.kind, TaskErrorKind::BlockTooLarge { .. }));
        let source = Flaky { partitions: 3, fail_first: usize::MAX, calls: Default::default() };
        assert_eq!(task_failure(ctx.from_source(source).unwrap().count(), &at).3.kind, TaskErrorKind::Source);
        let touchy = ctx.parallelize((10..20).map(Touchy).collect(), 2).unwrap();
        assert_eq!(task_failure(touchy.collect(), &at).3.kind, TaskErrorKind::Encode);
        let mut got = good().collect().unwrap();
        got.sort();
        assert_eq!(got, reference, "{at}");
        let small = ctx.parallelize(data.clone(), 6).unwrap().persist();
        assert_eq!(small.collect().unwrap(), data, "{at}");
        assert_eq!(small.glom().collect().unwrap(), split(&data, 6), "{at}");
    }
}

/// A shuffle that cannot pin its buckets fails with `StoreFull`; a failed insert evicts nothing,
/// and the persisted dataset is still read correctly afterwards.
#[test]
fn a_full_store_fails_the_job_and_keeps_cached_data_correct() {
    let want: Vec<u64> = (0..200u64).map(|x| x * 1_000).collect();
    for seed in 0..4 {
        let at = format!("1 worker, seed {seed}");
        let cluster = StepCluster::builder().workers(1).seed(seed).block_store_bytes_max(3_000).build();
        let ctx = cluster.context();
        let persisted = ctx.parallelize(want.clone(), 8).unwrap().persist();
        assert_eq!(persisted.count().unwrap(), 200, "{at}");
        {
            // Four buckets of about 600 encoded bytes each, all pinned on the one worker.
            let pairs: Vec<(u64, u64)> = (0..800u64).map(|x| (x * 1_000, x)).collect();
            let grouped = ctx.parallelize(pairs, 4).unwrap().group_by_key_with_partitions(1).unwrap();
            let (_, attempts, _, cause) = task_failure(grouped.count(), &at);
            assert_eq!(attempts, 1, "{at}");
            assert!(matches!(cause.kind, TaskErrorKind::StoreFull { limit_bytes: 3_000, .. }), "{at}: {cause:?}");
        }
        assert_eq!(persisted.count().unwrap(), 200, "{at}");
        assert_eq!(persisted.collect().unwrap(), want, "{at}");
        assert_eq!(persisted.glom().collect().unwrap(), split(&want, 8), "{at}");
    }
}

/// An action called from inside a task cannot run (the harness is busy with the outer job): it
/// returns an error instead of deadlocking.
#[test]
fn an_action_inside_a_task_is_refused() {
    let cluster = common::cluster(2, 0);
    let ctx = cluster.context();
    let inner = ctx.parallelize(vec![1u8, 2, 3], 2).unwrap();
    let outer = ctx.parallelize(vec![10u8, 20], 2).unwrap();
    let refused = outer.map(move |_| matches!(inner.count(), Err(Error::ActionInTask))).collect().unwrap();
    assert_eq!(refused, vec![true, true]);
    still_works(&ctx, "after nested actions");
}
