//! `DStream::persist`/`cache`: a stream feeding several outputs is computed once per batch;
//! and the partition-count forms of the stream operators (`_with_partitions`).
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::testing::StreamTest;
use dstream::{DStream, ManualClock, StepCluster, StreamingContext, Time};

const SEC: Duration = Duration::from_secs(1);

/// Runs one batch of 1,000 records through a counted `map`, read by two outputs, persisted or
/// not; returns the map calls and what the two outputs saw.
fn two_outputs(persist: Option<fn(&DStream<u64>) -> DStream<u64>>) -> (usize, u64, u64) {
    let cluster = StepCluster::builder().workers(2).build();
    let ssc = StreamingContext::new(cluster.context(), SEC, Arc::new(ManualClock::new(Time::ZERO))).unwrap();
    let (queue, numbers) = ssc.queue_stream::<u64>(4);
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let doubled = numbers.map(move |x| {
        counted.fetch_add(1, Ordering::SeqCst);
        x * 2
    });
    let doubled = match persist {
        Some(persist) => persist(&doubled),
        None => doubled,
    };
    let seen = Arc::new(Mutex::new((0u64, 0u64)));
    let (a, b) = (Arc::clone(&seen), Arc::clone(&seen));
    doubled
        .foreach_rdd(move |rdd, _| {
            a.lock().unwrap().0 = rdd.count()?;
            Ok(())
        })
        .unwrap();
    doubled
        .foreach_rdd(move |rdd, _| {
            b.lock().unwrap().1 = rdd.collect()?.iter().sum();
            Ok(())
        })
        .unwrap();
    queue.push((0..1000).collect());
    ssc.step().unwrap();
    let (count, sum) = *seen.lock().unwrap();
    (calls.load(Ordering::SeqCst), count, sum)
}

#[test]
fn a_persisted_stream_feeding_two_outputs_is_computed_once_per_batch() {
    let sum = (0..1000u64).map(|x| x * 2).sum::<u64>();
    assert_eq!(two_outputs(None), (2000, 1000, sum), "without persist each output computes the stream");
    assert_eq!(two_outputs(Some(DStream::persist)), (1000, 1000, sum), "persisted: one map call per record");
    assert_eq!(two_outputs(Some(DStream::cache)), (1000, 1000, sum), "cache is persist");
}

/// Partition counts of each batch's result.
fn partition_counts<T: dstream::Data>(s: &DStream<T>) -> DStream<usize> {
    s.glom().count().map(|n| n as usize)
}

#[test]
fn every_pair_operator_has_a_partition_count_form() {
    let pairs = vec![vec![(1u32, 10i64), (2, 20), (1, 5)], vec![(3, 1)]];
    let others = vec![vec![(1u32, 'x'), (4, 'y')], vec![(3, 'z')]];
    let s = SEC;
    type Build = fn(&DStream<(u32, i64)>, &DStream<(u32, char)>) -> DStream<usize>;
    let forms: Vec<(&str, Build)> = vec![
        ("reduce_by_key", |a, _| partition_counts(&a.reduce_by_key_with_partitions(|x, y| x + y, 5).unwrap())),
        ("group_by_key", |a, _| partition_counts(&a.group_by_key_with_partitions(5).unwrap())),
        ("count_by_value", |a, _| partition_counts(&a.map(|(k, _)| k).count_by_value_with_partitions(5).unwrap())),
        ("join", |a, b| partition_counts(&a.join_with_partitions(b, 5).unwrap())),
        ("left_outer_join", |a, b| partition_counts(&a.left_outer_join_with_partitions(b, 5).unwrap())),
        ("right_outer_join", |a, b| partition_counts(&a.right_outer_join_with_partitions(b, 5).unwrap())),
        ("full_outer_join", |a, b| partition_counts(&a.full_outer_join_with_partitions(b, 5).unwrap())),
        ("cogroup", |a, b| partition_counts(&a.cogroup_with_partitions(b, 5).unwrap())),
        ("reduce_by_key_and_window", |a, _| {
            partition_counts(&a.reduce_by_key_and_window_with_partitions(|x, y| x + y, 2 * SEC, SEC, 5).unwrap())
        }),
        ("reduce_by_key_and_window_inv", |a, _| {
            partition_counts(
                &a.reduce_by_key_and_window_inv_with_partitions(|x, y| x + y, |x, y| x - y, 2 * SEC, SEC, 5).unwrap(),
            )
        }),
        ("count_by_value_and_window", |a, _| {
            partition_counts(&a.map(|(k, _)| k).count_by_value_and_window_with_partitions(2 * SEC, SEC, 5).unwrap())
        }),
        ("group_by_key_and_window", |a, _| {
            partition_counts(&a.group_by_key_and_window_with_partitions(2 * SEC, SEC, 5).unwrap())
        }),
    ];
    for (name, build) in forms {
        let out = StreamTest::new().run2(pairs.clone(), others.clone(), |a, b| build(&a, &b)).unwrap();
        assert_eq!(out, vec![vec![5], vec![5]], "{name}_with_partitions(.., 5)");
    }
    // Zero is refused when the stream is built.
    let zero = StreamTest::new().run(pairs.clone(), |a| {
        assert!(matches!(a.reduce_by_key_with_partitions(|x, y| x + y, 0), Err(dstream::Error::ZeroPartitions { .. })));
        assert!(a.group_by_key_with_partitions(0).is_err());
        assert!(a.join_with_partitions(&a, 0).is_err());
        assert!(a.reduce_by_key_and_window_inv_with_partitions(|x, y| x + y, |x, y| x - y, s, s, 0).is_err());
        a.clone()
    });
    assert!(zero.is_ok());
}

#[test]
fn the_state_keeping_defaults_use_the_contexts_default_parallelism() {
    let pairs = vec![vec![(1u32, 10i64), (2, 20)], vec![(3, 1)]];
    let out = StreamTest::new()
        .run(pairs.clone(), |a| {
            partition_counts(&a.reduce_by_key_and_window_inv(|x, y| x + y, |x, y| x - y, 2 * SEC, SEC).unwrap())
        })
        .unwrap();
    assert_eq!(out, vec![vec![dstream::DEFAULT_PARALLELISM]; 2]);
    let out = StreamTest::new()
        .run(pairs, |a| {
            a.context().context().set_default_parallelism(3).unwrap();
            partition_counts(&a.map(|(k, _)| k).count_by_value_and_window(2 * SEC, SEC).unwrap())
        })
        .unwrap();
    assert_eq!(out, vec![vec![3]; 2]);
}
