//! The restart suite over any store: a stateful program (running totals and a sliding window
//! with its inverse, both checkpointed) stopped or crashed at every batch and restarted from
//! its checkpoints, damaged checkpoints and metadata, orphans of an interrupted checkpoint.
//! Each test takes the store to run on (`fresh` makes an empty one): tests/restart.rs runs it
//! on `Memory`, tests/s3.rs on an S3 server.
#![allow(clippy::unwrap_used)] // Test helpers: a failure is the test failing.
#![allow(dead_code)] // Each test file uses a part of this module.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::{Error, ManualClock, QueueHandle, StepCluster, Storage, StreamingContext, Time};
use dstream_storage::Memory;

pub(crate) type Page = (String, u64);
/// Every output of a run, in order: (batch, output name, sorted records).
pub(crate) type Outputs = Arc<Mutex<Vec<(Time, &'static str, Vec<Page>)>>>;

pub(crate) const BATCHES: u64 = 10;

/// The page views of batch `k` (from 1): deterministic, different every batch, some pages
/// only now and then.
pub(crate) fn views(k: u64) -> Vec<Page> {
    let mut out = Vec::new();
    for i in 0..(3 + k % 4) {
        let page = ["home", "news", "about", "shop", "blog"][((k * 7 + i * 3) % 5) as usize];
        out.push((page.to_string(), 1 + (k + i) % 3));
    }
    out
}

pub(crate) struct Run {
    pub(crate) ssc: StreamingContext,
    pub(crate) queue: QueueHandle<Page>,
    pub(crate) _cluster: StepCluster,
}

/// The program: page-view totals (update_state_by_key, checkpointed every 3 batches) and
/// views over a sliding 4 s window (reduce_by_key_and_window with its inverse, checkpointed
/// every 2 batches), both written to `outputs`. `fail_at`: the batch whose first output
/// fails, as a crash in the middle of the batch would leave it.
pub(crate) fn program(
    ssc: &StreamingContext,
    outputs: &Outputs,
    fail_at: Option<Time>,
) -> Result<QueueHandle<Page>, Error> {
    let (queue, views) = ssc.queue_stream::<Page>(2);
    let totals = views
        .update_state_by_key(|vs: Vec<u64>, s: Option<u64>| Some(s.unwrap_or(0) + vs.iter().sum::<u64>()), 3)?
        .checkpoint(Duration::from_secs(3))?;
    let windowed = views
        .reduce_by_key_and_window_inv_with_partitions(
            |a, b| a + b,
            |a, b| a - b,
            Duration::from_secs(4),
            Duration::from_secs(1),
            2,
        )?
        .checkpoint(Duration::from_secs(2))?;
    let sink = Arc::clone(outputs);
    totals.foreach_rdd(move |rdd, time| {
        if Some(time) == fail_at {
            return Err(Error::BatchFailed("the process died".into()));
        }
        let mut records = rdd.collect()?;
        records.sort();
        sink.lock().unwrap().push((time, "totals", records));
        Ok(())
    })?;
    let sink = Arc::clone(outputs);
    windowed.foreach_rdd(move |rdd, time| {
        let mut records = rdd.collect()?;
        records.sort();
        sink.lock().unwrap().push((time, "window", records));
        Ok(())
    })?;
    Ok(queue)
}

/// Starts (or restarts) `program` on `workers` workers sharing the driver's graph.
pub(crate) fn start<S: Storage + Clone + 'static>(
    storage: &S,
    outputs: &Outputs,
    fail_at: Option<Time>,
    workers: u32,
) -> Result<Run, Error> {
    start_on(storage, outputs, fail_at, workers, false)
}

/// Starts (or restarts) `program`; with `own_graphs`, every worker builds it itself with the
/// same storage, as worker processes do, and rebuilds the batches and restored checkpoints; a
/// restarted worker builds it again.
pub(crate) fn start_on<S: Storage + Clone + 'static>(
    storage: &S,
    outputs: &Outputs,
    fail_at: Option<Time>,
    workers: u32,
    own_graphs: bool,
) -> Result<Run, Error> {
    let second = Duration::from_secs(1);
    let builder = StepCluster::builder().workers(workers);
    let cluster = if own_graphs {
        let storage = storage.clone();
        // A restarted worker builds the program again, as a new process does.
        builder.build_with_worker_processes(move |ctx| {
            let clock = Arc::new(ManualClock::new(Time::ZERO));
            let checkpointing = dstream_storage::checkpointing(storage.clone());
            let (ssc, _) = StreamingContext::get_or_create(ctx.clone(), second, clock, checkpointing, |ssc| {
                program(ssc, &Outputs::default(), None)
            })?;
            Ok(Box::new(ssc) as Box<dyn std::any::Any + Send>)
        })?
    } else {
        builder.build()
    };
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let checkpointing = dstream_storage::checkpointing(storage.clone());
    let (ssc, queue) = StreamingContext::get_or_create(cluster.context(), second, clock, checkpointing, |ssc| {
        program(ssc, outputs, fail_at)
    })?;
    Ok(Run { ssc, queue, _cluster: cluster })
}

/// Pushes and runs batches `from..=to`.
pub(crate) fn run_batches(run: &Run, from: u64, to: u64) -> Result<(), Error> {
    for k in from..=to {
        run.queue.push(views(k));
        run.ssc.step()?;
    }
    Ok(())
}

pub(crate) fn uninterrupted() -> Vec<(Time, &'static str, Vec<Page>)> {
    let outputs = Outputs::default();
    let run = start(&Memory::new(), &outputs, None, 2).unwrap();
    run_batches(&run, 1, BATCHES).unwrap();
    let out = outputs.lock().unwrap().clone();
    out
}

/// Damages the object `name` at rest: one flipped byte in its middle.
pub(crate) fn damage<S: Storage>(storage: &S, name: &str) {
    let mut bytes = storage.get(name).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    storage.put(name, &bytes).unwrap();
}

/// The objects of the checkpoints of the totals stream (stream 1) at `secs`.
pub(crate) fn totals_checkpoint<S: Storage>(storage: &S, secs: u64) -> Vec<String> {
    let prefix = format!("state/1/{:020}/", secs * 1_000_000_000);
    storage.list(&prefix).unwrap()
}

pub(crate) fn a_restart_between_batches_at_every_position_matches_an_uninterrupted_run<S: Storage + Clone + 'static>(
    fresh: impl Fn() -> S,
) {
    let expected = uninterrupted();
    assert_eq!(expected.len() as u64, 2 * BATCHES);
    for (stop_after, own) in (1..BATCHES).flat_map(|k| [(k, false), (k, true)]) {
        let storage = fresh();
        let outputs = Outputs::default();
        {
            let first = start_on(&storage, &outputs, None, 2, own).unwrap();
            run_batches(&first, 1, stop_after).unwrap();
            // Dropped without a stop: the process is gone.
        }
        let second = start_on(&storage, &outputs, None, 3, own).unwrap();
        run_batches(&second, stop_after + 1, BATCHES).unwrap();
        assert_eq!(*outputs.lock().unwrap(), expected, "stopped after batch {stop_after} (own graphs: {own})");
    }
}

pub(crate) fn restored_state_is_read_and_cached_by_the_workers<S: Storage + Clone + 'static>(fresh: impl Fn() -> S) {
    let storage = fresh();
    let outputs = Outputs::default();
    {
        let first = start(&storage, &outputs, None, 2).unwrap();
        run_batches(&first, 1, 6).unwrap();
    }
    // Both stateful streams have checkpoints by batch 6: restoring reads them on the workers,
    // which keep their partitions (3 of the totals, 2 of the window) before any batch runs.
    let second = start(&storage, &outputs, None, 3).unwrap();
    let cached: u64 = second._cluster.stored_bytes().iter().sum();
    assert!(cached > 0, "the restored partitions are blocks in the workers' stores");
    run_batches(&second, 7, BATCHES).unwrap();
    assert_eq!(*outputs.lock().unwrap(), uninterrupted());
}

pub(crate) fn a_batch_interrupted_after_its_input_closed_runs_once_after_the_restart<S: Storage + Clone + 'static>(
    fresh: impl Fn() -> S,
) {
    let expected = uninterrupted();
    for (crash_at, own) in (1..=BATCHES).flat_map(|k| [(k, false), (k, true)]) {
        let storage = fresh();
        let outputs = Outputs::default();
        let crash_time = Time::from_millis(crash_at * 1000);
        {
            let first = start_on(&storage, &outputs, Some(crash_time), 2, own).unwrap();
            run_batches(&first, 1, crash_at - 1).unwrap();
            first.queue.push(views(crash_at));
            assert!(first.ssc.step().is_err(), "batch {crash_at} fails");
        }
        let second = start_on(&storage, &outputs, None, 2, own).unwrap();
        // The interrupted batch's input was logged: it runs again without being pushed.
        second.ssc.step().unwrap();
        run_batches(&second, crash_at + 1, BATCHES).unwrap();
        assert_eq!(*outputs.lock().unwrap(), expected, "crashed in batch {crash_at} (own graphs: {own})");
    }
}

pub(crate) fn checkpoints_are_written_cut_and_collected<S: Storage + Clone + 'static>(fresh: impl Fn() -> S) {
    let storage = fresh();
    let outputs = Outputs::default();
    let run = start(&storage, &outputs, None, 2).unwrap();
    let written = Arc::new(AtomicU64::new(0));
    struct Count(Arc<AtomicU64>);
    impl dstream::StreamingListener for Count {
        fn on_checkpoint(&self, info: &dstream::CheckpointInfo) {
            assert_eq!(info.error, None);
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    run.ssc.add_listener(Arc::new(Count(Arc::clone(&written))));
    run_batches(&run, 1, 12).unwrap();
    // The totals every 3 batches (4), the window every 2 (6).
    assert_eq!(written.load(Ordering::SeqCst), 10);
    let names = storage.list("state/").unwrap();
    let checkpoints: std::collections::BTreeSet<String> =
        names.iter().map(|n| n.rsplit_once('/').unwrap().0.to_string()).collect();
    // The last two of each: the totals at 9 s and 12 s, the window at 10 s and 12 s.
    let kept: Vec<&str> = checkpoints.iter().map(|c| c.rsplit_once('/').unwrap().1).collect();
    let secs = |s: u64| format!("{:020}", s * 1_000_000_000);
    assert_eq!(kept.len(), 4, "{checkpoints:?}");
    for s in [9, 10, 12] {
        assert!(kept.contains(&secs(s).as_str()), "{checkpoints:?}");
    }
    assert_eq!(storage.list("metadata/").unwrap().len(), 2);
    // A restart replays from 9 s at the earliest, reading back to the window's start (4 s
    // before) and the batch that leaves it: the input log keeps the batches after 4 s.
    let logged = storage.list("input/").unwrap();
    let first: Vec<String> = (5..=12).map(|s| format!("input/0/{}", secs(s))).collect();
    assert_eq!(logged, first);
}

pub(crate) fn a_restart_deletes_the_checkpoints_no_metadata_names<S: Storage + Clone + 'static>(fresh: impl Fn() -> S) {
    let storage = fresh();
    let outputs = Outputs::default();
    {
        let first = start(&storage, &outputs, None, 2).unwrap();
        run_batches(&first, 1, 7).unwrap();
    }
    // What a process killed in the middle of an asynchronous checkpoint leaves: objects of a
    // checkpoint that no metadata records (here, of batch 7 of the totals, due only at 9).
    let orphan = format!("state/1/{:020}/00000", 7_000_000_000u64);
    storage.put(&orphan, b"a partial checkpoint").unwrap();
    let named_before: Vec<String> = storage.list("state/").unwrap();
    let second = start(&storage, &outputs, None, 3).unwrap();
    let left = storage.list("state/").unwrap();
    assert!(!left.contains(&orphan), "the orphan is deleted: {left:?}");
    let kept: Vec<&String> = named_before.iter().filter(|n| **n != orphan).collect();
    assert!(kept.iter().all(|n| left.contains(*n)), "every named checkpoint stays: {left:?}");
    run_batches(&second, 8, BATCHES).unwrap();
    assert_eq!(*outputs.lock().unwrap(), uninterrupted());
}

pub(crate) fn a_damaged_newest_checkpoint_falls_back_to_the_one_before<S: Storage + Clone + 'static>(
    fresh: impl Fn() -> S,
) {
    let expected = uninterrupted();
    let storage = fresh();
    let outputs = Outputs::default();
    {
        let first = start(&storage, &outputs, None, 2).unwrap();
        run_batches(&first, 1, 7).unwrap();
    }
    // The totals were checkpointed at 3 s and 6 s; damage one partition of the newest.
    let newest = totals_checkpoint(&storage, 6);
    assert_eq!(newest.len(), 3);
    damage(&storage, &newest[1]);
    let second = start(&storage, &outputs, None, 2).unwrap();
    run_batches(&second, 8, BATCHES).unwrap();
    assert_eq!(*outputs.lock().unwrap(), expected);
}

pub(crate) fn without_an_intact_checkpoint_the_restart_says_so<S: Storage + Clone + 'static>(fresh: impl Fn() -> S) {
    let storage = fresh();
    let outputs = Outputs::default();
    {
        let first = start(&storage, &outputs, None, 2).unwrap();
        run_batches(&first, 1, 7).unwrap();
    }
    damage(&storage, &totals_checkpoint(&storage, 3)[0]);
    damage(&storage, &totals_checkpoint(&storage, 6)[2]);
    let err = start(&storage, &outputs, None, 2).err().expect("no intact checkpoint of the totals");
    assert!(matches!(err, Error::NoValidCheckpoint(_)), "{err}");
    assert!(err.to_string().contains("stream1"), "{err}");
}

pub(crate) fn damaged_metadata_falls_back_to_the_previous_batch<S: Storage + Clone + 'static>(fresh: impl Fn() -> S) {
    let expected = uninterrupted();
    let storage = fresh();
    let outputs = Outputs::default();
    {
        let first = start(&storage, &outputs, None, 2).unwrap();
        run_batches(&first, 1, 5).unwrap();
    }
    let metadata = storage.list("metadata/").unwrap();
    damage(&storage, metadata.last().unwrap());
    // The metadata of batch 4 is the newest intact one: batch 5 runs again, on its logged input.
    let second = start(&storage, &outputs, None, 2).unwrap();
    second.ssc.step().unwrap();
    run_batches(&second, 6, BATCHES).unwrap();
    let mut got = outputs.lock().unwrap().clone();
    let batch5 = Time::from_millis(5000);
    // Batch 5's outputs ran twice, the same both times: at least once for a batch whose
    // completion record was lost.
    let first_run: Vec<_> = got.iter().filter(|(t, _, _)| *t == batch5).cloned().collect();
    assert_eq!(first_run.len(), 4);
    assert_eq!(first_run[..2], first_run[2..]);
    let cut = got.iter().position(|(t, _, _)| *t == batch5).unwrap();
    got.drain(cut..cut + 2);
    assert_eq!(got, expected);
}
