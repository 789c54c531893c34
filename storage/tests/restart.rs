//! Restarting a stateful streaming program from its checkpoints: the final state and the
//! concatenated outputs equal an uninterrupted run's, whatever the batch the first run
//! stopped at, and whether it stopped between batches or in the middle of one. The suite
//! (tests/common/restart_suite.rs) runs here on `Memory`, and in tests/s3.rs on an S3 server;
//! the tests below it need `Memory`'s faults or run one store only.
#![allow(clippy::unwrap_used)] // Helpers outside #[test] functions; a failure is the test failing.

use std::sync::Arc;
use std::time::Duration;

use dstream::checkpoint::CheckpointError;
use dstream::StorageError;
use dstream::{Error, ManualClock, StepCluster, StreamingContext, Time, WorkerId};
use dstream_storage::{Fault, Memory};

mod common;
use common::restart_suite::{
    self as suite, run_batches, start, start_on, uninterrupted, views, Outputs, Page, Run, BATCHES,
};

#[test]
fn a_restart_between_batches_at_every_position_matches_an_uninterrupted_run() {
    suite::a_restart_between_batches_at_every_position_matches_an_uninterrupted_run(Memory::new);
}

#[test]
fn restored_state_is_read_and_cached_by_the_workers() {
    suite::restored_state_is_read_and_cached_by_the_workers(Memory::new);
}

#[test]
fn a_batch_interrupted_after_its_input_closed_runs_once_after_the_restart() {
    suite::a_batch_interrupted_after_its_input_closed_runs_once_after_the_restart(Memory::new);
}

#[test]
fn checkpoints_are_written_cut_and_collected() {
    suite::checkpoints_are_written_cut_and_collected(Memory::new);
}

#[test]
fn a_restart_deletes_the_checkpoints_no_metadata_names() {
    suite::a_restart_deletes_the_checkpoints_no_metadata_names(Memory::new);
}

#[test]
fn a_damaged_newest_checkpoint_falls_back_to_the_one_before() {
    suite::a_damaged_newest_checkpoint_falls_back_to_the_one_before(Memory::new);
}

#[test]
fn without_an_intact_checkpoint_the_restart_says_so() {
    suite::without_an_intact_checkpoint_the_restart_says_so(Memory::new);
}

#[test]
fn damaged_metadata_falls_back_to_the_previous_batch() {
    suite::damaged_metadata_falls_back_to_the_previous_batch(Memory::new);
}

/// A small stateful program of its own, at batch interval `interval`.
fn tiny(storage: &Memory, interval: Duration) -> Result<Run, Error> {
    let cluster = StepCluster::builder().build();
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let checkpointing = dstream_storage::checkpointing(storage.clone());
    let (ssc, queue) = StreamingContext::get_or_create(cluster.context(), interval, clock, checkpointing, |ssc| {
        let (queue, views) = ssc.queue_stream::<Page>(2);
        let counts =
            views.update_state_by_key(|vs: Vec<u64>, s: Option<u64>| Some(s.unwrap_or(0) + vs.len() as u64), 2)?;
        counts.foreach_rdd(|_, _| Ok(()))?;
        Ok(queue)
    })?;
    Ok(Run { ssc, queue, _cluster: cluster })
}

#[test]
fn another_program_or_batch_interval_is_refused() {
    let storage = Memory::new();
    {
        let first = tiny(&storage, Duration::from_secs(1)).unwrap();
        run_batches(&first, 1, 2).unwrap();
    }
    let err = start(&storage, &Outputs::default(), None, 2).err().expect("another program");
    // The first stream that differs is named on both sides: the state of `tiny` has 2
    // partitions, the other program's first state stream 3.
    match &err {
        Error::ProgramMismatch { what: "a stream or output", expected, found } => {
            assert!(expected.contains("partitions=3") && found.contains("partitions=2"), "{err}")
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("another program"), "{err}");
    let err = tiny(&storage, Duration::from_secs(2)).err().expect("another batch interval");
    assert!(matches!(err, Error::ProgramMismatch { what: "the batch interval", .. }), "{err}");
    // The program that wrote them resumes.
    let again = tiny(&storage, Duration::from_secs(1)).unwrap();
    run_batches(&again, 3, 3).unwrap();
}

#[test]
fn a_full_disk_fails_the_batch_with_a_typed_error_and_a_restart_loses_nothing() {
    let expected = uninterrupted();
    let storage = Memory::new();
    let outputs = Outputs::default();
    {
        let first = start(&storage, &outputs, None, 2).unwrap();
        run_batches(&first, 1, 4).unwrap();
        storage.inject(Fault::FailPut { name_prefix: "input/".into(), kind: std::io::ErrorKind::StorageFull });
        first.queue.push(views(5));
        let err = first.ssc.step().unwrap_err();
        let Error::Checkpoint { source: CheckpointError::Storage(StorageError::Full { .. }), .. } = &err else {
            panic!("not a full-disk error: {err:?}");
        };
    }
    // The batch failed before any output ran; its source sends its records again.
    let second = start(&storage, &outputs, None, 2).unwrap();
    run_batches(&second, 5, BATCHES).unwrap();
    assert_eq!(*outputs.lock().unwrap(), expected);
}

/// Worker processes restarted after checkpoints cut the lineage (and the inputs before the
/// cuts were released) hear only the newest cut of each stream: once both are new processes,
/// they rebuild the state from those cuts and the input both replicas of which were lost from
/// the input log.
#[test]
fn a_worker_restarted_after_lineage_cuts_rebuilds_the_state_from_them() {
    let expected = uninterrupted();
    let (storage, outputs) = (Memory::new(), Outputs::default());
    let run = start_on(&storage, &outputs, None, 2, true).unwrap();
    run_batches(&run, 1, 7).unwrap();
    run._cluster.inject(dstream::Fault::Kill(WorkerId(1))).unwrap();
    run._cluster.inject(dstream::Fault::Restart(WorkerId(1))).unwrap();
    run_batches(&run, 8, 8).unwrap();
    run._cluster.inject(dstream::Fault::Kill(WorkerId(0))).unwrap();
    run._cluster.inject(dstream::Fault::Restart(WorkerId(0))).unwrap();
    run_batches(&run, 9, BATCHES).unwrap();
    assert_eq!(*outputs.lock().unwrap(), expected);
}
