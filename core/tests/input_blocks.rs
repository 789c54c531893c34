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
fn more_replicas_than_workers_is_an_error_never_a_single_copy() {
    let cluster = StepCluster::builder().workers(1).input_replicas(2).build();
    let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))
        .unwrap();
    let (queue, numbers) = ssc.queue_stream::<u32>(1);
    numbers.foreach_rdd(|rdd, _| rdd.count().map(drop)).unwrap();
    queue.push(vec![1, 2, 3]);
    let err = ssc.step().unwrap_err();
    assert!(matches!(err, Error::NoProgress { .. }), "{err:?}");
    assert!(cluster.input_blocks().is_empty(), "no block counts as stored");
}
