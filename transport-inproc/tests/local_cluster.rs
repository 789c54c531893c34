//! The in-process cluster runs the same jobs as the stepping harness, with the same results.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dstream::{Context, Error, StepCluster, TaskErrorKind};
use dstream_inproc::LocalCluster;

/// A job touching every kind of stage: narrow chains, a reducing shuffle, a grouping shuffle,
/// a join, a cached dataset read twice and a sort. Returns its outputs, unsorted.
type Outputs = (Vec<(String, u64)>, Vec<(u32, (u64, Option<usize>))>, Vec<(u64, String)>, u64);

fn job(ctx: &Context) -> Result<Outputs, Error> {
    let lines: Vec<String> = (0..2_000u32).map(|i| format!("w{} w{} x{}", i % 37, i % 11, i % 5)).collect();
    let words = ctx.parallelize(lines, 6)?.flat_map(|l| l.split(' ').map(str::to_owned).collect::<Vec<_>>()).persist();
    let counts = words.map(|w| (w, 1u64)).reduce_by_key(|a, b| a + b);
    let lengths = words.map(|w| (w.len() as u32, w)).group_by_key().map_values(|ws| ws.len());
    let by_len = counts.map(|(w, n)| (w.len() as u32, n)).reduce_by_key(|a, b| a.max(b));
    let joined = by_len.left_outer_join(&lengths);
    let sorted = counts.map(|(w, n)| (n, w)).sort_by_key(false, 3)?;
    Ok((counts.collect()?, joined.collect()?, sorted.take(10)?, words.count()?))
}

#[test]
fn local_cluster_matches_the_stepping_harness() {
    let reference = job(&StepCluster::builder().workers(1).build().context()).unwrap();
    assert_eq!(reference.3, 6_000);
    for workers in [1, 2, 4, 7] {
        let cluster = LocalCluster::builder().workers(workers).threads(2).slots(2).build().unwrap();
        assert_eq!(job(&cluster.context()).unwrap(), reference, "LocalCluster with {workers} workers");
        let stepped = StepCluster::builder().workers(workers).seed(u64::from(workers)).build();
        assert_eq!(job(&stepped.context()).unwrap(), reference, "StepCluster with {workers} workers");
    }
}

/// Runs six actions over a persisted dataset of 20 partitions of 1,000 records and returns how
/// many records the map before `persist` computed.
fn computations_with_store(bytes: u64) -> usize {
    let cluster = LocalCluster::builder().workers(2).block_store_bytes_max(bytes).build().unwrap();
    let ctx = cluster.context();
    let computed = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&computed);
    let data: Vec<u64> = (0..20_000).collect();
    let cached = ctx
        .parallelize(data.clone(), 20)
        .unwrap()
        .map(move |x| {
            c.fetch_add(1, Ordering::Relaxed);
            x * 3
        })
        .persist();
    let expected: u64 = data.iter().map(|x| x * 3).sum();
    for _ in 0..3 {
        assert_eq!(cached.fold(0, |a, b| a + b).unwrap(), expected);
        assert_eq!(cached.count().unwrap(), 20_000);
    }
    computed.load(Ordering::Relaxed)
}

#[test]
fn a_large_store_computes_each_cached_partition_once() {
    assert_eq!(computations_with_store(1 << 30), 20_000);
}

#[test]
fn eviction_recomputes_from_lineage() {
    // Each cached partition is estimated at about 11 kB; each store holds three of them.
    let computed = computations_with_store(40_000);
    assert!(computed > 20_000, "nothing was evicted: {computed} records computed");
}

#[test]
fn a_panicking_task_fails_its_job_and_the_cluster_keeps_working() {
    let cluster = LocalCluster::builder().workers(3).task_attempts_max(3).build().unwrap();
    let ctx = cluster.context();
    let err = ctx
        .parallelize((0..100u32).collect(), 4)
        .unwrap()
        .map(|x| if x == 42 { panic!("bad record {x}") } else { x })
        .count();
    match err {
        Err(Error::TaskFailed { attempts, cause, partition, .. }) => {
            assert_eq!(attempts, 3);
            assert_eq!(cause.kind, TaskErrorKind::Panicked);
            assert_eq!(cause.message, "bad record 42");
            assert_eq!(partition, 1);
        }
        other => panic!("expected a task failure, got {other:?}"),
    }
    assert_eq!(ctx.parallelize((0..100u32).collect(), 4).unwrap().count().unwrap(), 100);
}

#[test]
fn a_task_failing_once_is_retried() {
    let cluster = LocalCluster::builder().workers(2).build().unwrap();
    let failures = Arc::new(AtomicUsize::new(0));
    let f = Arc::clone(&failures);
    let rdd = cluster.context().parallelize((0..10u32).collect(), 2).unwrap().map(move |x| {
        if x == 7 && f.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("transient");
        }
        x
    });
    assert_eq!(rdd.collect().unwrap(), (0..10).collect::<Vec<_>>());
    assert_eq!(failures.load(Ordering::SeqCst), 2);
}

#[test]
fn an_action_inside_a_task_is_an_error_not_a_deadlock() {
    let cluster = LocalCluster::builder().workers(1).threads(1).build().unwrap();
    let ctx = cluster.context();
    let inner = ctx.parallelize(vec![1u8], 1).unwrap();
    let refused =
        ctx.parallelize(vec![1u8], 1).unwrap().map(move |_| matches!(inner.count(), Err(Error::ActionInTask)));
    assert_eq!(refused.collect().unwrap(), vec![true]);
}

#[test]
fn jobs_after_the_cluster_is_dropped_fail_cleanly() {
    let cluster = LocalCluster::builder().workers(2).build().unwrap();
    let ctx = cluster.context();
    let rdd = ctx.parallelize(vec![1, 2, 3], 2).unwrap();
    drop(cluster);
    let err = rdd.count().unwrap_err();
    assert!(matches!(err, Error::ClusterStopped { submitted: false }), "{err:?}");
}

#[test]
fn concurrent_jobs_from_many_threads() {
    let cluster = LocalCluster::builder().workers(3).build().unwrap();
    let ctx = cluster.context();
    let handles: Vec<_> = (0..8u64)
        .map(|i| {
            let ctx = ctx.clone();
            std::thread::spawn(move || {
                let rdd = ctx.parallelize((0..1_000u64).collect(), 5).unwrap().map(move |x| (x % 10, x * i));
                rdd.reduce_by_key(|a, b| a + b).map(|(_, v)| v).fold(0, |a, b| a + b).unwrap()
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), 499_500 * i as u64);
    }
}
