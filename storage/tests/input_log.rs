//! A restart knows which logged batches it needs: one deleted is refused with the stream and
//! the batch named, the whole log deleted too, metadata deleted while checkpoints exist as
//! well; damage to a logged batch only the older checkpoint would need does not matter.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::{Error, ManualClock, QueueHandle, StepCluster, Storage, StreamingContext, Time};
use dstream_storage::Memory;

type Totals = Arc<Mutex<Vec<(u64, Vec<(String, u64)>)>>>;

/// Page-view totals (`update_state_by_key`, checkpointed every 3 batches) and a 2 s window,
/// each batch's totals recorded in `out`.
fn start(storage: &Memory, out: &Totals) -> Result<(StreamingContext, QueueHandle<(String, u64)>), Error> {
    let cluster = StepCluster::builder().workers(2).build();
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let checkpointing = dstream_storage::checkpointing(storage.clone());
    let sink = Arc::clone(out);
    StreamingContext::get_or_create(cluster.context(), Duration::from_secs(1), clock, checkpointing, move |ssc| {
        let (queue, views) = ssc.queue_stream::<(String, u64)>(2);
        let totals = views
            .update_state_by_key(|vs: Vec<u64>, s: Option<u64>| Some(s.unwrap_or(0) + vs.iter().sum::<u64>()), 2)?
            .checkpoint(Duration::from_secs(3))?;
        views.window(Duration::from_secs(2), Duration::from_secs(1))?.foreach_rdd(|rdd, _| rdd.count().map(drop))?;
        totals.foreach_rdd(move |rdd, time| {
            let mut all = rdd.collect()?;
            all.sort();
            sink.lock().unwrap().push((time.as_millis(), all));
            Ok(())
        })?;
        Ok(queue)
    })
}

fn views(k: u64) -> Vec<(String, u64)> {
    vec![(["home", "news", "shop"][(k % 3) as usize].to_string(), k), ("home".into(), 1)]
}

/// Runs batches `from..=to` (from 1).
fn run(ssc: &StreamingContext, queue: &QueueHandle<(String, u64)>, from: u64, to: u64) {
    for k in from..=to {
        queue.push(views(k));
        ssc.step().unwrap();
    }
}

/// A first run of 7 batches on fresh storage: totals checkpointed at 3 s and 6 s.
fn first_run() -> Memory {
    let storage = Memory::new();
    let (ssc, queue) = start(&storage, &Totals::default()).unwrap();
    run(&ssc, &queue, 1, 7);
    storage
}

fn log_of(secs: u64) -> String {
    format!("input/0/{:020}", secs * 1_000_000_000)
}

#[test]
fn a_deleted_logged_batch_the_restart_needs_is_refused_naming_it() {
    let storage = first_run();
    // The newest checkpoint is of batch 6: the restart recomputes 7, with the window back to 6.
    storage.delete(&log_of(7)).unwrap();
    let err = start(&storage, &Totals::default()).expect_err("refused");
    assert!(matches!(&err, Error::NoValidCheckpoint(m) if m.contains("stream0") && m.contains("7.000s")), "{err}");
}

#[test]
fn a_deleted_input_log_is_refused() {
    let storage = first_run();
    for name in storage.list("input/").unwrap() {
        storage.delete(&name).unwrap();
    }
    let err = start(&storage, &Totals::default()).expect_err("refused");
    assert!(matches!(&err, Error::NoValidCheckpoint(m) if m.contains("is missing")), "{err}");
}

#[test]
fn deleted_metadata_with_checkpoints_left_is_refused_not_a_fresh_start() {
    let storage = first_run();
    for name in storage.list("metadata/").unwrap() {
        storage.delete(&name).unwrap();
    }
    let err = start(&storage, &Totals::default()).expect_err("refused");
    assert!(matches!(&err, Error::NoValidCheckpoint(m) if m.contains("no metadata")), "{err}");
    // Empty storage is a fresh start.
    assert!(start(&Memory::new(), &Totals::default()).is_ok());
}

#[test]
fn damage_only_the_older_checkpoint_would_need_does_not_refuse_the_restart() {
    let reference = Totals::default();
    {
        let storage = Memory::new();
        let (ssc, queue) = start(&storage, &reference).unwrap();
        run(&ssc, &queue, 1, 10);
    }
    let storage = first_run();
    // Batch 2 is kept for the older checkpoint (3 s) and its window, but resuming from the
    // newest (6 s) needs only batches 6 and 7.
    let mut bytes = storage.get(&log_of(2)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    storage.overwrite(&log_of(2), &bytes).unwrap();
    let out = Totals::default();
    let (ssc, queue) = start(&storage, &out).unwrap();
    run(&ssc, &queue, 8, 10);
    let want: Vec<_> = reference.lock().unwrap()[7..].to_vec();
    assert_eq!(*out.lock().unwrap(), want);
}
