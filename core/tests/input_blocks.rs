//! Input data lives on the workers: every block of every input batch is stored on exactly
//! `input_replicas` distinct workers before the batch's jobs run, the driver's block tracker
//! says where, the workers' stores agree, and a batch's blocks are released once nothing reads
//! them.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::{BlockId, Error, ManualClock, StepCluster, StreamingContext, Time, WorkerId};

/// What the tracker and the stores said about one batch's input blocks while it ran.
type Seen = Arc<Mutex<Vec<(Time, BTreeMap<BlockId, Vec<WorkerId>>)>>>;

/// The input blocks of batch `time` in the tracker's map.
fn blocks_of(all: &BTreeMap<BlockId, Vec<WorkerId>>, at: Time) -> BTreeMap<BlockId, Vec<WorkerId>> {
    all.iter()
        .filter(|(b, _)| matches!(b, BlockId::Input { time, .. } if *time == at))
        .map(|(b, w)| (*b, w.clone()))
        .collect()
}

#[test]
fn every_input_block_is_on_exactly_input_replicas_distinct_workers() {
    for (workers, replicas) in [(1, 1), (2, 1), (2, 2), (4, 2), (7, 2), (7, 3)] {
        let cluster =
            Arc::new(StepCluster::builder().workers(workers).input_replicas(replicas).seed(workers.into()).build());
        let ssc =
            StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))
                .unwrap();
        let (queue, numbers) = ssc.queue_stream::<u32>(3);
        let seen: Seen = Arc::default();
        let (sink, c) = (Arc::clone(&seen), Arc::clone(&cluster));
        let totals = Arc::new(Mutex::new(Vec::new()));
        let t = Arc::clone(&totals);
        numbers
            .map(|x| x * 2)
            .foreach_rdd(move |rdd, time| {
                t.lock().unwrap().push(rdd.collect()?.iter().sum::<u32>());
                let blocks = blocks_of(&c.input_blocks(), time);
                // The stores hold exactly what the tracker says, no more, no less.
                for (w, ids) in c.stored_block_ids().iter().enumerate() {
                    let held: BTreeSet<BlockId> = ids
                        .iter()
                        .copied()
                        .filter(|b| matches!(b, BlockId::Input { time: t, .. } if *t == time))
                        .collect();
                    let tracked: BTreeSet<BlockId> =
                        blocks.iter().filter(|(_, at)| at.contains(&WorkerId(w as u32))).map(|(b, _)| *b).collect();
                    assert_eq!(held, tracked, "worker {w} at {time}, {workers} workers");
                }
                sink.lock().unwrap().push((time, blocks));
                Ok(())
            })
            .unwrap();
        for k in 0..6u32 {
            queue.push((0..k * 5).collect());
            ssc.step().unwrap();
        }
        let want: Vec<u32> = (0..6u32).map(|k| (0..k * 5).map(|x| x * 2).sum()).collect();
        assert_eq!(*totals.lock().unwrap(), want, "{workers} workers, {replicas} replicas");
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 6);
        for (time, blocks) in seen.iter() {
            assert_eq!(blocks.len(), 3, "three partitions, one block each, at {time}");
            for (block, at) in blocks {
                let distinct: BTreeSet<&WorkerId> = at.iter().collect();
                assert_eq!(at.len(), replicas as usize, "{block}: {at:?} ({workers} workers)");
                assert_eq!(distinct.len(), at.len(), "{block}: {at:?}");
            }
        }
        // Batches the stream has forgotten hold no block anywhere: memory stays bounded.
        let left: Vec<BlockId> =
            cluster.stored_block_ids().concat().into_iter().filter(|b| matches!(b, BlockId::Input { .. })).collect();
        let kept: BTreeSet<Time> = left
            .iter()
            .map(|b| match b {
                BlockId::Input { time, .. } => *time,
                _ => unreachable!(),
            })
            .collect();
        assert!(kept.len() <= 2, "input blocks of {kept:?} are still stored");
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
            ssc.step().unwrap_or_else(|e| panic!("seed {seed}, batch {k}: {e}"));
            if k >= 3 {
                let holders: BTreeSet<WorkerId> = cluster.input_blocks().into_values().flatten().collect();
                assert!(!holders.contains(&WorkerId(1)), "seed {seed}: a lost worker holds nothing: {holders:?}");
                // This batch's blocks have their two copies; an earlier batch's copy on the lost
                // worker is gone (re-replicating it is recovery's work).
                let now = Time::from_millis(1000 * u64::from(k + 1));
                let current = blocks_of(&cluster.input_blocks(), now);
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
