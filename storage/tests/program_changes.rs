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
            .reduce_by_key_and_window_inv_with_partitions(|a, b| a + b, |a, b| a - b, shape.window, SECOND, 2)?
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

/// Forwards the times of batches submitted and completed.
struct Times(std::sync::Mutex<std::sync::mpsc::Sender<(bool, Time)>>);

impl dstream::StreamingListener for Times {
    fn on_batch_submitted(&self, time: Time) {
        let _ = self.0.lock().unwrap().send((false, time));
    }
    fn on_batch_completed(&self, info: &dstream::BatchInfo) {
        let _ = self.0.lock().unwrap().send((true, info.time));
    }
}

#[test]
fn a_restart_on_the_system_clock_goes_on_at_the_present_not_after_the_old_run_s_length() {
    use dstream::{Clock, SystemClock};
    let interval = Duration::from_millis(100);
    let storage = Memory::new();
    let run = |clock: Arc<SystemClock>| {
        let cluster = StepCluster::builder().workers(2).build();
        let checkpointing = dstream_storage::checkpointing(storage.clone());
        let (ssc, _queue) = StreamingContext::get_or_create(cluster.context(), interval, clock, checkpointing, |ssc| {
            let (queue, numbers) = ssc.queue_stream::<u32>(1);
            numbers.foreach_rdd(|rdd, _| rdd.count().map(drop))?;
            Ok(queue)
        })
        .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        ssc.add_listener(Arc::new(Times(std::sync::Mutex::new(tx))));
        (ssc, rx)
    };
    let (first, events) = run(Arc::new(SystemClock::new()));
    let handle = first.start().unwrap();
    let mut completed = 0;
    while completed < 4 {
        if events.recv().unwrap().0 {
            completed += 1;
        }
    }
    handle.stop(false).unwrap();

    let clock = Arc::new(SystemClock::new());
    let (second, events) = run(Arc::clone(&clock));
    let now = clock.now();
    let handle = second.start().unwrap();
    let (_, next) = events.recv().unwrap();
    handle.stop(false).unwrap();
    // The next batch is due now (or was, during the restart), not an old run's length later.
    assert!(next <= now + interval, "the next batch at {next} waits past {now} + {interval:?}");
}
