//! A restart with a program that would read the checkpoints differently is refused, saying
//! what changed: a window length, a state's partition count, the program's own version. What
//! may change safely (the checkpoint interval) is accepted.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use dstream::{Error, ManualClock, QueueHandle, StepCluster, StreamingContext, Time};
use dstream_storage::Memory;

const SECOND: Duration = Duration::from_secs(1);

/// The parameters a test changes between the first run and the restart.
#[derive(Clone, Copy)]
struct Shape {
    window: Duration,
    partitions: usize,
    version: Option<&'static str>,
    checkpoint_every: Duration,
}

const BASE: Shape = Shape { window: Duration::from_secs(4), partitions: 3, version: None, checkpoint_every: SECOND };

fn start(storage: &Memory, shape: Shape) -> Result<(StreamingContext, QueueHandle<(String, u64)>), Error> {
    let cluster = StepCluster::builder().workers(2).build();
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let checkpointing = dstream_storage::checkpointing(storage.clone());
    StreamingContext::get_or_create(cluster.context(), SECOND, clock, checkpointing, |ssc| {
        if let Some(v) = shape.version {
            ssc.program_version(v)?;
        }
        let (queue, views) = ssc.queue_stream::<(String, u64)>(2);
        let windowed = views
            .reduce_by_key_and_window_inv(|a, b| a + b, |a, b| a - b, shape.window, SECOND, 2)?
            .checkpoint(shape.checkpoint_every)?;
        let totals = views.update_state_by_key(
            |vs: Vec<u64>, s: Option<u64>| Some(s.unwrap_or(0) + vs.iter().sum::<u64>()),
            shape.partitions,
        )?;
        windowed.foreach_rdd(|rdd, _| rdd.count().map(drop))?;
        totals.foreach_rdd(|rdd, _| rdd.count().map(drop))?;
        Ok(queue)
    })
}

/// Runs the base program for three batches on `storage`.
fn first_run(storage: &Memory) {
    let (ssc, queue) = start(storage, BASE).unwrap();
    for k in 0..3u64 {
        queue.push(vec![("home".into(), k), ("news".into(), 1)]);
        ssc.step().unwrap();
    }
}

#[test]
fn a_restart_that_would_read_the_state_differently_is_refused_naming_the_change() {
    let cases: [(&str, Shape, &str, &str); 4] = [
        ("shorter window", Shape { window: 2 * SECOND, ..BASE }, "length=2s", "length=4s"),
        ("longer window", Shape { window: 6 * SECOND, ..BASE }, "length=6s", "length=4s"),
        ("state partitions", Shape { partitions: 4, ..BASE }, "partitions=4", "partitions=3"),
        ("program version", Shape { version: Some("2"), ..BASE }, "version 2", "queue_stream"),
    ];
    for (case, shape, ours, theirs) in cases {
        let storage = Memory::new();
        first_run(&storage);
        match start(&storage, shape) {
            Err(Error::ProgramMismatch { expected, found, .. }) => {
                assert!(expected.contains(ours), "{case}: this program's side is {expected}");
                assert!(found.contains(theirs), "{case}: the checkpoints' side is {found}");
            }
            Err(other) => panic!("{case}: another error: {other}"),
            Ok(_) => panic!("{case}: the restart was accepted"),
        }
    }
}

#[test]
fn a_restart_with_another_checkpoint_interval_is_accepted() {
    let storage = Memory::new();
    first_run(&storage);
    let (ssc, queue) = start(&storage, Shape { checkpoint_every: 2 * SECOND, ..BASE }).unwrap();
    queue.push(vec![("home".into(), 1)]);
    let info = ssc.step().unwrap();
    assert_eq!(info.time, Time::from_millis(4_000), "it goes on after the last completed batch");
}
