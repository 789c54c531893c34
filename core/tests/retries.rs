//! Retries: a task whose user code fails only on its first attempt(s) is retried, and the job
//! succeeds with the right result, as long as the failures fit in `task_attempts_max`.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use dstream::{Error, PartitionSource, Step, StepCluster, TaskErrorKind};

use common::WORKERS;

/// Panics on record 13 while `failures` has room left, counting the calls on that record.
fn flaky(calls: &Arc<AtomicUsize>, failures: usize) -> impl Fn(u32) -> u32 + Send + Sync + 'static {
    let calls = Arc::clone(calls);
    move |x| {
        if x == 13 && calls.fetch_add(1, Ordering::SeqCst) < failures {
            panic!("transient failure on record {x}");
        }
        x
    }
}

fn retried_runs(cluster: &StepCluster) -> Vec<u32> {
    cluster
        .trace()
        .iter()
        .filter_map(|s| match s {
            Step::Run { attempt, .. } if *attempt > 0 => Some(*attempt),
            _ => None,
        })
        .collect()
}

#[test]
fn a_panic_on_the_first_attempt_only_is_retried() {
    type Job = fn(&dstream::Context, Arc<AtomicUsize>) -> Result<Vec<(u32, u32)>, Error>;
    let jobs: [(&str, Job, Vec<(u32, u32)>); 3] = [
        (
            "result stage",
            |ctx, calls| ctx.parallelize((0..40u32).collect(), 4)?.map(flaky(&calls, 1)).map(|x| (x, x)).collect(),
            (0..40).map(|x| (x, x)).collect(),
        ),
        (
            "shuffle map stage",
            |ctx, calls| {
                let mut out = ctx
                    .parallelize((0..40u32).collect(), 4)?
                    .map(flaky(&calls, 1))
                    .map(|x| (x % 4, x))
                    .reduce_by_key(|a, b| a + b)
                    .collect()?;
                out.sort();
                Ok(out)
            },
            (0..4).map(|k| (k, (0..40).filter(|x| x % 4 == k).sum())).collect(),
        ),
        (
            "shuffle reduce stage",
            |ctx, calls| {
                let mut out = ctx
                    .parallelize((0..40u32).collect(), 4)?
                    .map(|x| (x, x))
                    .reduce_by_key(|a, b| a + b)
                    .map_values(flaky(&calls, 1))
                    .collect()?;
                out.sort();
                Ok(out)
            },
            (0..40).map(|x| (x, x)).collect(),
        ),
    ];
    for (name, job, expected) in jobs {
        for workers in WORKERS {
            for seed in [0, 1, 2] {
                for wire in [true, false] {
                    let at = format!("{name}, {workers} workers, seed {seed}, wire {wire}");
                    let cluster = StepCluster::builder().workers(workers).seed(seed).wire(wire).build();
                    let calls = Arc::new(AtomicUsize::new(0));
                    let got = job(&cluster.context(), Arc::clone(&calls)).unwrap_or_else(|e| panic!("{at}: {e}"));
                    assert_eq!(got, expected, "{at}");
                    assert_eq!(calls.load(Ordering::SeqCst), 2, "{at}: record 13 seen once per attempt");
                    assert_eq!(retried_runs(&cluster), vec![1], "{at}: one task retried once");
                }
            }
        }
    }
}

/// Failing `k` times in a row succeeds with `k + 1` attempts and fails with `k`.
#[test]
fn retries_stop_at_task_attempts_max() {
    for failures in [1usize, 2, 3] {
        for attempts_max in [failures as u32, failures as u32 + 1] {
            for seed in [4, 5] {
                let at = format!("{failures} failures, {attempts_max} attempts, seed {seed}");
                let cluster = StepCluster::builder().workers(2).seed(seed).task_attempts_max(attempts_max).build();
                let calls = Arc::new(AtomicUsize::new(0));
                let rdd = cluster.context().parallelize((0..30u32).collect(), 3).unwrap().map(flaky(&calls, failures));
                let result = rdd.reduce(|a, b| a + b);
                if attempts_max as usize > failures {
                    assert_eq!(result.unwrap(), (0..30).sum::<u32>(), "{at}");
                } else {
                    match result {
                        Err(Error::TaskFailed { attempts, cause, .. }) => {
                            assert_eq!(attempts, attempts_max, "{at}");
                            assert_eq!(cause.kind, TaskErrorKind::Panicked, "{at}");
                            assert!(cause.message.contains("transient failure on record 13"), "{at}: {cause}");
                        }
                        other => panic!("{at}: expected Error::TaskFailed, got {other:?}"),
                    }
                }
                assert_eq!(
                    calls.load(Ordering::SeqCst),
                    failures.min(attempts_max as usize) + usize::from(attempts_max as usize > failures),
                    "{at}"
                );
            }
        }
    }
}

/// A source that fails to read partition 1 on its first `fail_first` calls.
struct Transient {
    fail_first: usize,
    calls: Arc<AtomicUsize>,
}

impl PartitionSource<u32> for Transient {
    fn partitions(&self) -> usize {
        3
    }
    fn read(&self, split: usize) -> Result<Vec<u32>, String> {
        if split == 1 && self.calls.fetch_add(1, Ordering::SeqCst) < self.fail_first {
            return Err("connection reset".into());
        }
        Ok(vec![split as u32; 4])
    }
    fn describe(&self) -> String {
        "transient source".into()
    }
}

#[test]
fn a_source_failing_transiently_is_read_again() {
    for workers in WORKERS {
        for fail_first in [1, 3] {
            let at = format!("{workers} workers, {fail_first} failures, seed {workers}");
            let cluster = StepCluster::builder().workers(workers).seed(u64::from(workers)).build();
            let calls = Arc::new(AtomicUsize::new(0));
            let source = Transient { fail_first, calls: Arc::clone(&calls) };
            let rdd = cluster.context().from_source(source).unwrap();
            assert_eq!(rdd.collect().unwrap(), vec![0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2], "{at}");
            assert_eq!(calls.load(Ordering::SeqCst), fail_first + 1, "{at}");
        }
    }
}

/// A job that failed leaves partial shuffle outputs behind; once the fault is gone, the same
/// action on the same dataset succeeds.
#[test]
fn the_same_action_succeeds_once_the_fault_is_gone() {
    for workers in WORKERS {
        for seed in [0, 6] {
            let at = format!("{workers} workers, seed {seed}");
            let cluster = StepCluster::builder().workers(workers).seed(seed).build();
            let broken = Arc::new(AtomicBool::new(true));
            let b = Arc::clone(&broken);
            let sums = cluster
                .context()
                .parallelize((0..60u32).collect(), 6)
                .unwrap()
                .map(move |x| {
                    if x == 45 && b.load(Ordering::SeqCst) {
                        panic!("record {x} is broken");
                    }
                    (x % 5, x)
                })
                .reduce_by_key(|a, b| a + b);
            match sums.collect() {
                Err(Error::TaskFailed { cause, attempts: 4, .. }) => {
                    assert_eq!(cause.kind, TaskErrorKind::Panicked, "{at}")
                }
                other => panic!("{at}: expected Error::TaskFailed after 4 attempts, got {other:?}"),
            }
            broken.store(false, Ordering::SeqCst);
            let mut got = sums.collect().unwrap();
            got.sort();
            let want: Vec<(u32, u32)> = (0..5).map(|k| (k, (0..60).filter(|x| x % 5 == k).sum())).collect();
            assert_eq!(got, want, "{at}");
            assert_eq!(sums.count().unwrap(), 5, "{at}");
        }
    }
}

/// A failed attempt stores nothing: the retry of a task that computes a persisted partition
/// caches it once, and later actions read it.
#[test]
fn a_retried_task_caches_its_partition_once() {
    for workers in [1, 2, 4] {
        let at = format!("{workers} workers, seed 8");
        let cluster = StepCluster::builder().workers(workers).seed(8).build();
        let computed = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&computed);
        let calls = Arc::new(AtomicUsize::new(0));
        let cached = cluster
            .context()
            .parallelize((0..20u32).collect(), 2)
            .unwrap()
            .map(move |x| {
                c.fetch_add(1, Ordering::SeqCst);
                x * 2 + 1
            })
            .persist();
        let flaky_sum = cached.map(flaky(&calls, 1));
        assert_eq!(flaky_sum.reduce(|a, b| a + b).unwrap(), 400, "{at}");
        // Partition 1 computed once, partition 0 (which holds 13 = 2 * 6 + 1) twice.
        assert_eq!(computed.load(Ordering::SeqCst), 30, "{at}");
        assert_eq!(cached.collect().unwrap(), (0..20).map(|x| x * 2 + 1).collect::<Vec<_>>(), "{at}");
        assert_eq!(computed.load(Ordering::SeqCst), 30, "{at}: the cache was not used");
    }
}
