//! A driver and three worker processes on loopback, against the in-process runtime.
//!
//! Each test re-runs this test executable as its worker processes (`--exact <its name>`, the
//! role in the environment): in them, the same test function runs up to
//! [`ClusterBuilder::launch`], which serves and exits the process.
#![forbid(unsafe_code)] // dstream-tcp only denies it, for its `pod` module.
#![allow(clippy::unwrap_used)]

#[path = "common/processes.rs"]
mod processes;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::{Context, Error, ManualClock, QueueHandle, Rdd, StreamingContext, Time, WorkerId};
use dstream_inproc::LocalCluster;
use dstream_tcp::{Cluster, LaunchError};
use processes::cluster;

/// The most a test may take before it fails instead of hanging.
const TEST_WAIT_MAX: Duration = Duration::from_secs(90);

/// Runs `body` on a thread of its own, failing the test past [`TEST_WAIT_MAX`].
fn bounded(body: impl FnOnce() + Send + 'static) {
    processes::bounded(TEST_WAIT_MAX, body);
}

fn words() -> Vec<String> {
    (0..2_000u64).map(|i| format!("w{}", (i * 7919) % 97)).collect()
}

/// The batch program: a word count over a parallelized collection.
fn word_count(ctx: &Context) -> Result<Rdd<(String, u64)>, Error> {
    Ok(ctx.parallelize(words(), 6)?.map(|w| (w, 1u64)).reduce_by_key(|a, b| a + b))
}

#[test]
fn a_batch_job_on_three_worker_processes_matches_the_local_cluster() {
    bounded(|| {
        let (cluster, counts) =
            cluster("a_batch_job_on_three_worker_processes_matches_the_local_cluster").launch(word_count).unwrap();
        let mut got = counts.collect().unwrap();
        got.sort();
        // Again: the shuffle's buckets are fetched between the worker processes once more.
        let mut again = counts.collect().unwrap();
        again.sort();
        assert!(cluster.lost_workers().is_empty(), "{:?}", cluster.lost_workers());
        drop(cluster);

        let local = LocalCluster::builder().workers(3).build().unwrap();
        let mut expected = word_count(&local.context()).unwrap().collect().unwrap();
        expected.sort();
        assert_eq!(got.len(), 97);
        assert_eq!(got, expected);
        assert_eq!(again, expected);
    });
}

const SECOND: Duration = Duration::from_secs(1);

/// Each batch's sorted records, with the batch's time.
type Sink = Arc<Mutex<Vec<(Time, Vec<(String, u64)>)>>>;

/// The streaming program: per batch a word count, and a word count over a window of three
/// batches (which reads input blocks of earlier batches again).
struct WordCount {
    ssc: StreamingContext,
    clock: Arc<ManualClock>,
    lines: QueueHandle<String>,
    counts: Sink,
    windowed: Sink,
    /// Run by the windowed output (in the driver only).
    hook: Hook,
}

/// Something the driver does inside the output of one batch, before its job runs.
type Hook = Arc<Mutex<Option<(Time, Box<dyn FnOnce() + Send>)>>>;

fn sink_into(
    sink: &Sink,
    hook: &Hook,
) -> impl Fn(&Rdd<(String, u64)>, Time) -> Result<(), Error> + Send + Sync + 'static {
    let (sink, hook) = (Arc::clone(sink), Arc::clone(hook));
    move |rdd, time| {
        let due = {
            let mut hook = hook.lock().unwrap();
            if hook.as_ref().is_some_and(|(at, _)| *at == time) {
                hook.take()
            } else {
                None
            }
        };
        if let Some((_, f)) = due {
            f();
        }
        let mut records = rdd.collect()?;
        records.sort();
        sink.lock().unwrap().push((time, records));
        Ok(())
    }
}

fn streaming_word_count(ctx: &Context) -> Result<WordCount, Error> {
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let ssc = StreamingContext::new(ctx.clone(), SECOND, clock.clone())?;
    let (lines, stream) = ssc.queue_stream::<String>(3);
    let pairs = stream.flat_map(|l| l.split(' ').map(str::to_owned).collect::<Vec<_>>()).map(|w| (w, 1u64));
    let (counts, windowed, hook) = (Sink::default(), Sink::default(), Hook::default());
    pairs.reduce_by_key(|a, b| a + b).foreach_rdd(sink_into(&counts, &Hook::default()))?;
    pairs.reduce_by_key_and_window(|a, b| a + b, 3 * SECOND, SECOND)?.foreach_rdd(sink_into(&windowed, &hook))?;
    Ok(WordCount { ssc, clock, lines, counts, windowed, hook })
}

/// Batch `b`'s lines.
fn lines(b: u64) -> Vec<String> {
    (0..40u64).map(|i| format!("w{} w{} w{}", (b * 31 + i) % 13, i % 7, (b + i * i) % 11)).collect()
}

/// Steps `batches` batches of `program`, calling `between(b)` before batch `b`; returns
/// each output's batches.
#[allow(clippy::type_complexity)]
fn step(
    program: &WordCount,
    batches: u64,
    mut between: impl FnMut(u64),
) -> (Vec<(Time, Vec<(String, u64)>)>, Vec<(Time, Vec<(String, u64)>)>) {
    for b in 0..batches {
        between(b);
        program.lines.push(lines(b));
        let info = program.ssc.step().unwrap();
        program.clock.set(info.time);
    }
    let counts = program.counts.lock().unwrap().clone();
    let windowed = program.windowed.lock().unwrap().clone();
    (counts, windowed)
}

/// The outputs of `batches` batches on a `LocalCluster` of three workers.
#[allow(clippy::type_complexity)]
fn in_process(batches: u64) -> (Vec<(Time, Vec<(String, u64)>)>, Vec<(Time, Vec<(String, u64)>)>) {
    let local = LocalCluster::builder().workers(3).threads(2).slots(2).build().unwrap();
    let program = streaming_word_count(&local.context()).unwrap();
    step(&program, batches, |_| {})
}

#[test]
fn a_streaming_word_count_on_three_worker_processes_matches_the_local_cluster() {
    bounded(|| {
        let (cluster, program) = cluster("a_streaming_word_count_on_three_worker_processes_matches_the_local_cluster")
            .launch(streaming_word_count)
            .unwrap();
        let got = step(&program, 6, |_| {});
        assert!(cluster.lost_workers().is_empty(), "{:?}", cluster.lost_workers());
        drop(program);
        drop(cluster);
        let expected = in_process(6);
        assert_eq!(got.0.len(), 6);
        assert_eq!(got, expected);
    });
}

#[test]
fn a_worker_process_killed_between_batches_changes_no_output() {
    bounded(|| {
        let (cluster, program) =
            cluster("a_worker_process_killed_between_batches_changes_no_output").launch(streaming_word_count).unwrap();
        let got = step(&program, 8, |b| {
            if b == 4 {
                // SIGKILL: the process gets no chance to say anything.
                cluster.kill_worker(1).unwrap();
                assert!(cluster.wait_lost(WorkerId(1), Duration::from_secs(30)), "the driver did not see the loss");
            }
        });
        assert_eq!(cluster.lost_workers().iter().map(|(w, _)| *w).collect::<Vec<_>>(), [WorkerId(1)]);
        drop(program);
        drop(cluster);
        let expected = in_process(8);
        // Exactly once: one output per batch and output, each equal to the in-process one.
        assert_eq!(got.0.len(), 8);
        assert_eq!(got.1.len(), 8);
        assert_eq!(got, expected);
    });
}

#[test]
fn workers_running_another_program_fail_the_launch_with_a_typed_error() {
    bounded(|| {
        let launched = cluster("workers_running_another_program_fail_the_launch_with_a_typed_error").launch(|ctx| {
            let counts = word_count(ctx)?;
            // The workers' program has one more dataset than the driver's.
            let in_worker = std::env::var_os(dstream_tcp::cluster::ROLE_ENV).is_some();
            Ok(if in_worker { counts.filter(|_| true) } else { counts })
        });
        let Err(error) = launched else { panic!("the launch succeeded") };
        let LaunchError::WorkerExited { status, last_rejection: Some(rejection), .. } = &error else {
            panic!("{error:?}")
        };
        assert!(status.contains('2'), "{status}");
        assert!(rejection.contains("program mismatch"), "{rejection}");
    });
}

#[test]
fn a_worker_process_killed_inside_a_batch_changes_no_output() {
    bounded(|| {
        let (cluster, program) =
            cluster("a_worker_process_killed_inside_a_batch_changes_no_output").launch(streaming_word_count).unwrap();
        let cluster = Arc::new(cluster);
        let killer = Arc::clone(&cluster);
        // Batch 4's per-batch counts have run, its windowed counts not yet: worker 0 dies with
        // this batch's shuffle buckets and earlier batches' input replicas.
        *program.hook.lock().unwrap() =
            Some((Time::from_millis(4_000), Box::new(move || killer.kill_worker(0).unwrap())));
        let got = step(&program, 7, |_| {});
        assert!(program.hook.lock().unwrap().is_none(), "the hook ran");
        assert!(cluster.wait_lost(WorkerId(0), Duration::from_secs(30)), "the driver did not see the loss");
        drop(program);
        drop(cluster);
        let expected = in_process(7);
        assert_eq!((got.0.len(), got.1.len()), (7, 7));
        assert_eq!(got, expected);
    });
}

/// Kills local worker process `index`, waits for the driver to see it, starts it again and
/// waits for the new process to register.
fn kill_and_restart(cluster: &Cluster, index: u32) {
    let worker = WorkerId(index);
    let before = cluster.registrations(worker);
    cluster.kill_worker(index).unwrap();
    assert!(cluster.wait_lost(worker, Duration::from_secs(30)), "the driver did not see {worker}'s loss");
    restart(cluster, index, before);
}

/// Starts the dead local worker process `index` again and waits for the new process to
/// register (its `before + 1`th registration).
fn restart(cluster: &Cluster, index: u32, before: u32) {
    let worker = WorkerId(index);
    assert!(matches!(cluster.restart_worker(index), Ok(())));
    // The new process joins the running cluster and registers as a new incarnation.
    assert!(cluster.wait_registered(worker, Duration::from_secs(60)), "{worker} did not rejoin");
    assert_eq!(cluster.registrations(worker), before + 1);
    let running = cluster.restart_worker(index);
    assert!(matches!(running, Err(LaunchError::WorkerRunning { .. })), "{running:?}");
}

#[test]
fn a_restarted_worker_process_rejoins_and_carries_work() {
    bounded(|| {
        let (cluster, program) =
            cluster("a_restarted_worker_process_rejoins_and_carries_work").launch(streaming_word_count).unwrap();
        let got = step(&program, 12, |b| match b {
            3 => kill_and_restart(&cluster, 1),
            6 => {
                // Worker 0 goes: its work and the input replicas it held fall to worker 2 and
                // the restarted worker 1; batches 6 and 7 store their input on those two.
                cluster.kill_worker(0).unwrap();
                assert!(cluster.wait_lost(WorkerId(0), Duration::from_secs(30)), "the driver did not see the loss");
            }
            8 => {
                // Worker 0 comes back (it dials the restarted worker 1 at its new address),
                // then worker 2 goes: batch 8's window reads batches 6 and 7, whose input only
                // the restarted worker 1 still holds.
                restart(&cluster, 0, 1);
                cluster.kill_worker(2).unwrap();
                assert!(cluster.wait_lost(WorkerId(2), Duration::from_secs(30)), "the driver did not see the loss");
            }
            // Worker 1 dies a second time (batches 8 and 9 have their input on worker 0 too):
            // its third process gets a higher incarnation again.
            10 => kill_and_restart(&cluster, 1),
            _ => {}
        });
        let mut lost: Vec<WorkerId> = cluster.lost_workers().iter().map(|(w, _)| *w).collect();
        lost.sort();
        assert_eq!(lost, [WorkerId(0), WorkerId(1), WorkerId(2)]);
        let unknown = cluster.restart_worker(3);
        assert!(matches!(unknown, Err(LaunchError::UnknownWorker { index: 3 })), "{unknown:?}");
        // The restarted workers are still registered, and were not lost again.
        for (w, registrations) in [(WorkerId(0), 2), (WorkerId(1), 3)] {
            assert!(cluster.wait_registered(w, Duration::ZERO), "{w} was lost again");
            assert_eq!(cluster.registrations(w), registrations);
        }
        drop(program);
        drop(cluster);
        let expected = in_process(12);
        // Exactly once: one output per batch and output, each equal to the in-process one.
        assert_eq!((got.0.len(), got.1.len()), (12, 12));
        assert_eq!(got, expected);
    });
}
