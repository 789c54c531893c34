//! A batch with a poison record replayed after a restart completes the same way: its
//! dead letters are delivered again, identically, so a dead-letter sink must be idempotent by
//! their identity, like an output by its batch time.
#![allow(clippy::unwrap_used)] // Helpers outside #[test] functions; a failure is the test failing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::{DeadLetter, Error, ManualClock, QueueHandle, StepCluster, StreamingContext, Time};
use dstream_storage::Memory;

type Letters = Arc<Mutex<Vec<(Time, DeadLetter)>>>;
type Sums = Arc<Mutex<Vec<(Time, u64)>>>;

struct Run {
    ssc: StreamingContext,
    queue: QueueHandle<u64>,
    _cluster: StepCluster,
}

/// Sums each batch of numbers, setting aside the multiples of 7 (the parser panics on them).
/// `crash_at`: the batch whose dead-letter delivery fails after the sink saw the letters, as a
/// process dying there would leave it (outputs done, batch not completed).
fn start(storage: &Memory, sums: &Sums, letters: &Letters, crash_at: Option<Time>, workers: u32) -> Run {
    let cluster = StepCluster::builder().workers(workers).build();
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let checkpointing = dstream_storage::checkpointing(storage.clone());
    let (sums, letters) = (Arc::clone(sums), Arc::clone(letters));
    let (ssc, queue) =
        StreamingContext::get_or_create(cluster.context(), Duration::from_secs(1), clock, checkpointing, move |ssc| {
            let (queue, numbers) = ssc.queue_stream::<u64>(2);
            let parsed =
                numbers.map(|x| if x % 7 == 0 { panic!("cannot parse {x}") } else { x }).with_dead_letters()?;
            parsed.foreach_rdd(move |rdd, time| {
                sums.lock().unwrap().push((time, rdd.fold(0, |a, b| a + b)?));
                Ok(())
            })?;
            ssc.foreach_dead_letters(move |dead, time| {
                letters.lock().unwrap().extend(dead.iter().map(|d| (time, d.clone())));
                if Some(time) == crash_at {
                    return Err(Error::BatchFailed("the process died".into()));
                }
                Ok(())
            })?;
            Ok(queue)
        })
        .unwrap();
    Run { ssc, queue, _cluster: cluster }
}

fn batch(k: u64) -> Vec<u64> {
    (k * 10..k * 10 + 10).collect()
}

#[test]
fn a_replayed_batch_sets_the_same_records_aside_again() {
    let storage = Memory::new();
    let (sums, letters) = (Sums::default(), Letters::default());
    let crash = Time::from_millis(2000);
    {
        let first = start(&storage, &sums, &letters, Some(crash), 2);
        first.queue.push(batch(1));
        first.ssc.step().unwrap();
        first.queue.push(batch(2));
        assert!(first.ssc.step().is_err(), "batch 2 dies after delivering its dead letters");
    }
    let before = letters.lock().unwrap().clone();
    let second = start(&storage, &sums, &letters, None, 3);
    let replayed = second.ssc.step().unwrap();
    assert_eq!((replayed.time, replayed.dead_letters), (crash, 2));
    second.queue.push(batch(3));
    second.ssc.step().unwrap();

    let all = letters.lock().unwrap().clone();
    let of_batch_2: Vec<&(Time, DeadLetter)> = all.iter().filter(|(t, _)| *t == crash).collect();
    assert_eq!(of_batch_2.len(), 4, "delivered before the crash and again after the restart");
    assert_eq!(of_batch_2[..2], of_batch_2[2..], "identically");
    let records: Vec<u64> = all.iter().map(|(_, d)| d.record::<u64>().unwrap()).collect();
    assert_eq!(records, vec![14, 21, 28, 21, 28, 35]);
    assert_eq!(before.len(), 3, "batch 1 and batch 2 before the crash");
    let sums: Vec<(u64, u64)> = sums.lock().unwrap().iter().map(|(t, s)| (t.as_millis(), *s)).collect();
    let sum = |k: u64| batch(k).iter().filter(|x| *x % 7 != 0).sum::<u64>();
    assert_eq!(sums, vec![(1000, sum(1)), (2000, sum(2)), (2000, sum(2)), (3000, sum(3))]);
}
