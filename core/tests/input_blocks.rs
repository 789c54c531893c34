//! Input data lives on the workers: every pushed block is stored on exactly `input_replicas`
//! distinct workers before its push returns (and every queued partition before its batch's
//! jobs run), the driver's block tracker says where, the workers' stores agree, and a batch's
//! blocks are released once nothing reads them.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::{BlockId, Error, ManualClock, StepCluster, StreamingContext, TaskErrorKind, Time, WorkerId};

/// The input blocks the tracker lists that `before` did not.
fn new_blocks(
    all: &BTreeMap<BlockId, Vec<WorkerId>>,
    before: &BTreeMap<BlockId, Vec<WorkerId>>,
) -> BTreeMap<BlockId, Vec<WorkerId>> {
    all.iter().filter(|(b, _)| !before.contains_key(b)).map(|(b, w)| (*b, w.clone())).collect()
}

/// The stores hold exactly the input blocks the tracker says, no more, no less, once the
/// messages on their way (releases) arrived.
fn check_stores_agree(cluster: &StepCluster, context: &str) {
    cluster.settle().unwrap();
    let tracked = cluster.input_blocks();
    for (w, ids) in cluster.stored_block_ids().iter().enumerate() {
        let held: BTreeSet<BlockId> = ids.iter().copied().filter(|b| matches!(b, BlockId::Input { .. })).collect();
        let listed: BTreeSet<BlockId> =
            tracked.iter().filter(|(_, at)| at.contains(&WorkerId(w as u32))).map(|(b, _)| *b).collect();
        assert_eq!(held, listed, "worker {w}, {context}: {tracked:?}");
    }
}

fn check_replicas(block: BlockId, at: &[WorkerId], replicas: u32, context: &str) {
    let distinct: BTreeSet<&WorkerId> = at.iter().collect();
    assert_eq!(at.len(), replicas as usize, "{block}: {at:?}, {context}");
    assert_eq!(distinct.len(), at.len(), "{block}: {at:?}, {context}");
}

#[test]
fn every_pushed_block_is_on_exactly_input_replicas_distinct_workers_when_the_push_returns() {
    for (workers, replicas) in [(1, 1), (2, 1), (2, 2), (4, 2), (7, 2), (7, 3)] {
        let cluster =
            Arc::new(StepCluster::builder().workers(workers).input_replicas(replicas).seed(workers.into()).build());
        let clock = Arc::new(ManualClock::new(Time::ZERO));
        let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), clock.clone()).unwrap();
        let (input, numbers) = ssc.input_stream::<u32>();
        let totals = Arc::new(Mutex::new(Vec::new()));
        let (t, c) = (Arc::clone(&totals), Arc::clone(&cluster));
        numbers
            .map(|x| x * 2)
            .foreach_rdd(move |rdd, time| {
                t.lock().unwrap().push(rdd.collect()?.iter().sum::<u32>());
                check_stores_agree(&c, &format!("batch {time}"));
                Ok(())
            })
            .unwrap();
        let context = format!("{workers} workers, {replicas} replicas");
        for k in 0..6u32 {
            // k pushes in this batch, at different block intervals, 5 records each.
            for j in 0..k {
                clock.set(Time::from_millis(u64::from(k) * 1_000 + u64::from(j) * 150));
                let before = cluster.input_blocks();
                input.push_all((0..5).map(|x| x + 5 * j)).unwrap();
                // Acknowledged: stored, with all its replicas, before the push returned.
                let pushed = new_blocks(&cluster.input_blocks(), &before);
                assert_eq!(pushed.len(), 1, "one block per push, {context}");
                for (block, at) in &pushed {
                    check_replicas(*block, at, replicas, &context);
                }
                check_stores_agree(&cluster, &format!("after a push, {context}"));
            }
            clock.set(Time::from_millis(u64::from(k + 1) * 1_000));
            ssc.step().unwrap();
        }
        let want: Vec<u32> = (0..6u32).map(|k| (0..k * 5).map(|x| x * 2).sum()).collect();
        assert_eq!(*totals.lock().unwrap(), want, "{context}");
        // Batches the stream has forgotten hold no block anywhere: memory stays bounded.
        let left = cluster.input_blocks();
        assert!(left.len() <= 5 + 4, "input blocks still stored: {left:?}");
        check_stores_agree(&cluster, &format!("at the end, {context}"));
    }
}

#[test]
fn every_queued_partition_is_stored_on_exactly_input_replicas_distinct_workers() {
    for (workers, replicas) in [(1, 1), (2, 2), (4, 2), (7, 3)] {
        let cluster =
            Arc::new(StepCluster::builder().workers(workers).input_replicas(replicas).seed(workers.into()).build());
        let ssc =
            StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))
                .unwrap();
        let (queue, numbers) = ssc.queue_stream::<u32>(3);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (sink, c) = (Arc::clone(&seen), Arc::clone(&cluster));
        let before = Mutex::new(BTreeMap::new());
        numbers
            .foreach_rdd(move |rdd, time| {
                let all = c.input_blocks();
                let mut before = before.lock().unwrap();
                sink.lock().unwrap().push((time, rdd.collect()?.len(), new_blocks(&all, &before)));
                *before = all;
                check_stores_agree(&c, &format!("batch {time}"));
                Ok(())
            })
            .unwrap();
        for k in 0..6u32 {
            queue.push((0..k * 5).collect());
            ssc.step().unwrap();
        }
        let context = format!("{workers} workers, {replicas} replicas");
        for (time, records, blocks) in seen.lock().unwrap().iter() {
            // A non-empty partition is one block; an empty one reads none.
            let want = if *records == 0 { 0 } else { 3.min(*records) };
            assert_eq!(blocks.len(), want, "at {time}, {context}");
            for (block, at) in blocks {
                check_replicas(*block, at, replicas, &context);
            }
        }
        assert!(cluster.input_blocks().len() <= 6, "{context}");
    }
}

#[test]
fn more_replicas_than_workers_fail_after_a_bounded_wait_never_with_a_single_copy() {
    let cluster = StepCluster::builder().workers(1).input_replicas(2).build();
    let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))
        .unwrap();
    let (queue, numbers) = ssc.queue_stream::<u32>(1);
    numbers.foreach_rdd(|rdd, _| rdd.count().map(drop)).unwrap();
    queue.push(vec![1, 2, 3]);
    let started = cluster.now();
    let err = ssc.step().unwrap_err();
    assert!(matches!(err, Error::NotEnoughWorkers { needed: 2, alive: 1, .. }), "{err:?}");
    let waited = cluster.now() - started;
    assert!(waited >= Duration::from_secs(10) && waited < Duration::from_secs(11), "a bounded wait: {waited:?}");
    assert!(cluster.input_blocks().is_empty(), "no block counts as stored");
    assert!(cluster.stored_block_ids().concat().is_empty(), "and none is stored anywhere");
}

#[test]
fn a_worker_silent_while_its_replica_is_on_the_way_is_replaced_and_the_batch_goes_on() {
    for seed in 0..8u64 {
        let cluster = Arc::new(StepCluster::builder().workers(3).input_replicas(2).seed(seed).build());
        let ssc =
            StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))
                .unwrap();
        let (queue, numbers) = ssc.queue_stream::<u32>(4);
        let sums = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&sums);
        numbers
            .foreach_rdd(move |rdd, _| {
                sink.lock().unwrap().push(rdd.collect()?.iter().sum::<u32>());
                Ok(())
            })
            .unwrap();
        for k in 0..6u32 {
            if k == 3 {
                // Silent from now on: the next batch's replicas sent to it are never acknowledged.
                cluster.isolate(WorkerId(1)).unwrap();
            }
            queue.push((0..10 * k).collect());
            let before = cluster.input_blocks();
            ssc.step().unwrap_or_else(|e| panic!("seed {seed}, batch {k}: {e}"));
            if k >= 3 {
                let holders: BTreeSet<WorkerId> = cluster.input_blocks().into_values().flatten().collect();
                assert!(!holders.contains(&WorkerId(1)), "seed {seed}: a lost worker holds nothing: {holders:?}");
                // This batch's blocks have their two copies; an earlier batch's copy on the lost
                // worker is gone (re-replicating it is recovery's work).
                let current = new_blocks(&cluster.input_blocks(), &before);
                assert_eq!(current.len(), 4, "seed {seed}");
                for (block, at) in current {
                    assert_eq!(at.len(), 2, "seed {seed}: {block} on {at:?}");
                }
            }
        }
        let want: Vec<u32> = (0..6u32).map(|k| (0..10 * k).sum()).collect();
        assert_eq!(*sums.lock().unwrap(), want, "seed {seed}");
        assert_eq!(cluster.alive_workers(), [WorkerId(0), WorkerId(2)], "seed {seed}");
    }
}

#[test]
fn a_push_with_too_few_workers_alive_fails_after_a_bounded_wait_and_loses_nothing_accepted() {
    let cluster = StepCluster::builder().workers(1).input_replicas(2).build();
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), clock.clone()).unwrap();
    let (input, numbers) = ssc.input_stream::<u32>();
    let counts = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&counts);
    numbers
        .foreach_rdd(move |rdd, _| {
            sink.lock().unwrap().push(rdd.count()?);
            Ok(())
        })
        .unwrap();
    let started = cluster.now();
    let err = input.push_all(vec![1, 2, 3]).unwrap_err();
    assert!(matches!(err, Error::NotEnoughWorkers { needed: 2, alive: 1, .. }), "{err:?}");
    let waited = cluster.now() - started;
    assert!(waited >= Duration::from_secs(10) && waited < Duration::from_secs(11), "a bounded wait: {waited:?}");
    // Not accepted: not stored anywhere, not buffered, not in the batch.
    assert!(cluster.input_blocks().is_empty());
    assert!(cluster.stored_block_ids().concat().is_empty(), "no single copy is left behind");
    assert_eq!(input.buffered_bytes(), 0);
    clock.set(Time::from_millis(1_000));
    assert_eq!(ssc.step().unwrap().records, 0);
    assert_eq!(*counts.lock().unwrap(), vec![0]);
}

#[test]
#[allow(clippy::disallowed_methods)] // The pushers play host threads.
fn pushes_from_many_threads_while_batches_close_land_each_in_exactly_one_batch() {
    let cluster = Arc::new(StepCluster::builder().workers(3).input_replicas(2).seed(5).build());
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), clock.clone()).unwrap();
    let (input, numbers) = ssc.input_stream::<u64>();
    let batches = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&batches);
    numbers
        .foreach_rdd(move |rdd, _| {
            sink.lock().unwrap().push(rdd.collect()?);
            Ok(())
        })
        .unwrap();
    let (threads, pushes, per_push) = (4u64, 50u64, 7u64);
    std::thread::scope(|s| {
        let pushers: Vec<_> = (0..threads)
            .map(|t| {
                let input = input.clone();
                s.spawn(move || {
                    for p in 0..pushes {
                        let first = (t * pushes + p) * per_push;
                        input.push_all(first..first + per_push).unwrap();
                    }
                })
            })
            .collect();
        // Batches close while the pushers run, then once more after they finished.
        let mut k = 0;
        while pushers.iter().any(|p| !p.is_finished()) {
            k += 1;
            clock.set(Time::from_millis(k * 1_000));
            ssc.step().unwrap();
        }
        clock.set(Time::from_millis((k + 1) * 1_000));
        ssc.step().unwrap();
    });
    let mut all: Vec<u64> = batches.lock().unwrap().concat();
    all.sort_unstable();
    assert_eq!(all, (0..threads * pushes * per_push).collect::<Vec<_>>(), "every record once");
    // Each push's records stay together, in order, in one batch.
    for batch in batches.lock().unwrap().iter() {
        for run in batch.chunks(per_push as usize) {
            assert!(run.windows(2).all(|w| w[1] == w[0] + 1) && run[0] % per_push == 0, "{run:?}");
        }
    }
}

#[test]
fn a_batch_whose_every_input_replica_is_lost_fails_naming_the_block_and_the_batch() {
    let cluster = StepCluster::builder().workers(3).input_replicas(1).seed(2).build();
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), clock.clone()).unwrap();
    let (input, numbers) = ssc.input_stream::<u32>();
    let ran = Arc::new(Mutex::new(None));
    let at = Arc::clone(&ran);
    numbers
        .foreach_rdd(move |rdd, time| {
            *at.lock().unwrap() = Some(time);
            rdd.count().map(drop)
        })
        .unwrap();
    clock.set(Time::from_millis(500));
    input.push_all(vec![1, 2, 3]).unwrap();
    let (block, holders) = cluster.input_blocks().into_iter().next().unwrap();
    cluster.isolate(holders[0]).unwrap();
    // The driver notices the silent worker by the time the batch's task would read the block.
    cluster.advance(Duration::from_secs(2)).unwrap();
    clock.set(Time::from_millis(1_000));
    let err = ssc.step().unwrap_err();
    let Error::TaskFailed { cause, .. } = &err else { panic!("{err:?}") };
    let time = ran.lock().unwrap().unwrap();
    assert!(matches!(cause.kind, TaskErrorKind::InputLost { block: b, batch } if b == block && batch == time), "{err}");
    assert!(err.to_string().contains("of the batch at"), "{err}");
}
