//! Which streams are checkpointed, and what happens when checkpoints keep failing:
//! `checkpoint(interval)` on the result of `map_with_state` checkpoints the state stream at
//! that interval, as Spark's `MapWithStateDStream.checkpoint` does, never the stream of emitted
//! records; data checkpoints failing `checkpoint_failures_max` times in a row stop the context
//! before its next batch.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::{
    CheckpointInfo, ManualClock, State, StateSpec, StepCluster, StreamId, StreamingContext, StreamingListener, Time,
};
use dstream_storage::Memory;

struct Checkpoints(Mutex<Vec<(StreamId, Time)>>);

impl StreamingListener for Checkpoints {
    fn on_checkpoint(&self, info: &CheckpointInfo) {
        assert!(info.error.is_none(), "{info:?}");
        self.0.lock().unwrap().push((info.stream, info.time));
    }
}

#[test]
fn the_state_is_checkpointed_at_the_interval_asked_of_the_mapped_stream() {
    let cluster = StepCluster::builder().workers(2).build();
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let checkpointing = dstream_storage::checkpointing(Memory::new());
    let (ssc, (queue, mapped)) =
        StreamingContext::get_or_create(cluster.context(), Duration::from_secs(1), clock, checkpointing, |ssc| {
            let (queue, pairs) = ssc.queue_stream::<(String, u64)>(2);
            let spec = StateSpec::function(|k: &String, v: Option<u64>, s: &mut State<u64>| {
                let total = s.get().copied().unwrap_or(0) + v.unwrap_or(0);
                s.update(total);
                Some((k.clone(), total))
            });
            let mapped = pairs.map_with_state(spec)?.checkpoint(Duration::from_secs(2))?;
            mapped.foreach_rdd(|rdd, _| rdd.count().map(drop))?;
            Ok((queue, mapped.id()))
        })
        .unwrap();
    let seen = Arc::new(Checkpoints(Mutex::default()));
    ssc.add_listener(seen.clone());
    for k in 0..4u64 {
        queue.push(vec![("a".into(), k)]);
        ssc.step().unwrap();
    }
    let seen = seen.0.lock().unwrap().clone();
    let times: Vec<u64> = seen.iter().map(|(_, t)| t.as_millis()).collect();
    assert_eq!(times, vec![2_000, 4_000], "every 2 s, not at the 10 s default: {seen:?}");
    assert!(seen.iter().all(|(s, _)| *s != mapped), "the emitted records are never checkpointed: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0].0 == w[1].0), "one stream, the state: {seen:?}");
}

#[test]
fn checkpoints_failing_in_a_row_stop_the_context_before_the_next_batch() {
    use dstream::Error;
    use dstream_storage::Fault;
    let storage = Memory::new();
    let cluster = StepCluster::builder().workers(2).build();
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let checkpointing = dstream_storage::checkpointing(storage.clone());
    let (ssc, queue) =
        StreamingContext::get_or_create(cluster.context(), Duration::from_secs(1), clock, checkpointing, |ssc| {
            ssc.checkpoint_failures_max(2);
            let (queue, pairs) = ssc.queue_stream::<(String, u64)>(2);
            let totals = pairs
                .update_state_by_key(|vs: Vec<u64>, s: Option<u64>| Some(s.unwrap_or(0) + vs.iter().sum::<u64>()), 2)?
                .checkpoint(Duration::from_secs(1))?;
            totals.foreach_rdd(|rdd, _| rdd.count().map(drop))?;
            Ok(queue)
        })
        .unwrap();
    // Every write of a state object fails, as on a full disk (the input log still fits).
    for _ in 0..100 {
        storage.inject(Fault::FailPut { name_prefix: "state/".into(), kind: std::io::ErrorKind::StorageFull });
    }
    struct Failed(Mutex<Vec<u64>>);
    impl StreamingListener for Failed {
        fn on_checkpoint(&self, info: &CheckpointInfo) {
            assert!(info.error.is_some(), "{info:?}");
            self.0.lock().unwrap().push(info.time.as_millis());
        }
    }
    let seen = Arc::new(Failed(Mutex::default()));
    ssc.add_listener(seen.clone());
    queue.push(vec![("a".into(), 1)]);
    ssc.step().unwrap(); // batch 1: its checkpoint fails (1 in a row)
    queue.push(vec![("a".into(), 2)]);
    ssc.step().unwrap(); // batch 2: fails again (2 in a row)
    queue.push(vec![("a".into(), 3)]);
    let err = ssc.step().unwrap_err(); // batch 3 does not start
    assert!(matches!(&err, Error::CheckpointsFailing { failures: 2, .. }), "{err}");
    assert!(err.to_string().contains("stream"), "{err}");
    assert_eq!(*seen.0.lock().unwrap(), vec![1_000, 2_000], "each failure was reported");
    let logged = dstream::Storage::list(&storage, "input/").unwrap();
    assert!(
        logged.iter().all(|n| !n.ends_with(&format!("{:020}", 3_000_000_000u64))),
        "batch 3's input was not consumed: {logged:?}"
    );
}
