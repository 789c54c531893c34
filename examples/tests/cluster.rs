//! `ClusterArgs::launch` runs one program in-process and on a TCP cluster of two worker
//! processes (`--cluster local:2`), with the same outputs.
//!
//! The worker processes are this test executable, re-run with `--exact <the test's name>`
//! and the role in their environment: in them the same test function runs up to the launch,
//! which serves and exits the process.
#![allow(clippy::unwrap_used)]

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use dstream::{Context, Error, ManualClock, QueueHandle, Rdd, StreamingContext, Time};
use dstream_examples::{track_top, windowed_counts, ClusterArgs, ClusterSpec, ExampleCluster};

/// The most the test may take before it fails instead of hanging.
const TEST_WAIT_MAX: Duration = Duration::from_secs(90);

const SECOND: Duration = Duration::from_secs(1);

/// The program: a batch word count, and a streaming one whose windowed top words an output
/// keeps (as the wordcount example's do).
struct Program {
    counts: Rdd<(String, u64)>,
    ssc: StreamingContext,
    clock: Arc<ManualClock>,
    lines: QueueHandle<String>,
    top: Arc<Mutex<Vec<(String, u64)>>>,
}

fn program(ctx: &Context) -> Result<Program, Error> {
    let words: Vec<String> = (0..500u64).map(|i| format!("w{}", (i * 7919) % 37)).collect();
    let counts = ctx.parallelize(words, 4)?.map(|w| (w, 1u64)).reduce_by_key(|a, b| a + b);
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let ssc = StreamingContext::new(ctx.clone(), SECOND, clock.clone())?;
    let (lines, stream) = ssc.queue_stream::<String>(3);
    let ones = stream.flat_map(|l| l.split(' ').map(str::to_owned).collect::<Vec<_>>()).map(|w| (w, 1u64));
    let top = track_top(&windowed_counts(&ones, 3 * SECOND, SECOND, 3)?, 5, 5, true)?;
    Ok(Program { counts, ssc, clock, lines, top })
}

/// Batch `b`'s lines.
fn lines(b: u64) -> Vec<String> {
    (0..30u64).map(|i| format!("w{} w{} w{}", (b * 31 + i) % 13, i % 7, (b + i * i) % 11)).collect()
}

/// The sorted batch counts and the top words after each of four batches.
#[allow(clippy::type_complexity)]
fn run(cluster: &ExampleCluster, program: &Program) -> (Vec<(String, u64)>, Vec<Vec<(String, u64)>>) {
    let mut counts = program.counts.collect().unwrap();
    counts.sort();
    let mut tops = Vec::new();
    for b in 0..4 {
        program.lines.push(lines(b));
        let info = program.ssc.step().unwrap();
        program.clock.set(info.time);
        tops.push(program.top.lock().unwrap().clone());
    }
    if let ExampleCluster::Tcp(tcp) = cluster {
        assert!(tcp.lost_workers().is_empty(), "{:?}", tcp.lost_workers());
    }
    (counts, tops)
}

#[test]
fn a_program_on_two_worker_processes_matches_the_in_process_cluster() {
    const NAME: &str = "a_program_on_two_worker_processes_matches_the_in_process_cluster";
    let (done, finished) = mpsc::sync_channel(1);
    let thread = std::thread::spawn(move || {
        let tcp = ClusterArgs { workers: None, cluster: ClusterSpec::Local(2) };
        // In a worker process this call serves, then exits the process.
        let (cluster, on_tcp) =
            tcp.launch_with_worker_args(["--exact", NAME, "--nocapture", "--test-threads", "1"], program).unwrap();
        assert!(matches!(cluster, ExampleCluster::Tcp(_)));
        let got = run(&cluster, &on_tcp);
        drop(on_tcp);
        drop(cluster);

        let inproc = ClusterArgs { workers: Some(2), cluster: ClusterSpec::InProcess };
        let (cluster, in_process) = inproc.launch(program).unwrap();
        assert!(matches!(cluster, ExampleCluster::InProcess(_)));
        let expected = run(&cluster, &in_process);
        assert_eq!(got.0.len(), 37);
        assert_eq!(expected.1.len(), 4);
        assert!(expected.1.iter().all(|top| top.len() == 5), "{:?}", expected.1);
        assert_eq!(got, expected);
        let _ = done.send(());
    });
    match finished.recv_timeout(TEST_WAIT_MAX) {
        Ok(()) => thread.join().unwrap(),
        // The body panicked: its panic is the test's.
        Err(mpsc::RecvTimeoutError::Disconnected) => std::panic::resume_unwind(thread.join().unwrap_err()),
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the test took more than {TEST_WAIT_MAX:?}"),
    }
}
