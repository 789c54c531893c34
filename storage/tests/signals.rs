//! `await_termination_or_signal`: SIGINT and SIGTERM stop a running context gracefully, the
//! batch in progress finishing first. The signal goes to a child process (this test binary
//! running the same test as the child), never to the test process itself.
#![cfg(unix)]

use std::io::{BufRead, BufReader, Lines, Write};
use std::process::{ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use dstream::{StreamingContext, SystemClock};
use dstream_storage::{SignalsExt, Termination};

/// The child: one batch of 100 records whose output announces itself on stderr, then waits
/// for a line on stdin before it finishes; the main thread waits for a signal.
fn child_waits_for_a_signal() {
    let cluster = dstream::StepCluster::builder().build();
    let ssc = StreamingContext::new(cluster.context(), Duration::from_millis(20), Arc::new(SystemClock::new()))
        .expect("context");
    let (queue, numbers) = ssc.queue_stream::<u32>(2);
    numbers
        .foreach_rdd(|rdd, _| {
            let n = rdd.count()?;
            if n > 0 {
                eprintln!("child: batch in progress");
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                eprintln!("child: batch done, {n} records");
            }
            Ok(())
        })
        .expect("output");
    queue.push((0..100).collect());
    let running = ssc.start().expect("start");
    let how = running.await_termination_or_signal().expect("a graceful stop");
    assert_eq!(how, Termination::Signalled);
    eprintln!("child: stopped after the signal, state {:?}", running.state());
}

/// Reads the child's stderr on a thread; lines arrive on the channel.
fn lines_of(stderr: ChildStderr) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let lines: Lines<BufReader<ChildStderr>> = BufReader::new(stderr).lines();
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits (bounded) for a line of the child's stderr containing `what`; returns those seen.
fn wait_for(lines: &mpsc::Receiver<String>, what: &str, seen: &mut Vec<String>) {
    loop {
        match lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                let found = line.contains(what);
                seen.push(line);
                if found {
                    return;
                }
            }
            Err(e) => panic!("no `{what}` from the child ({e}); it said: {seen:#?}"),
        }
    }
}

#[test]
fn a_signal_stops_the_context_after_the_batch_in_progress() {
    if std::env::var("DSTREAM_TEST_SIGNAL_CHILD").is_ok() {
        return child_waits_for_a_signal();
    }
    for signal in ["-INT", "-TERM"] {
        let mut child = Command::new(std::env::current_exe().expect("the test binary"))
            .args(["a_signal_stops_the_context_after_the_batch_in_progress", "--exact", "--nocapture"])
            .env("DSTREAM_TEST_SIGNAL_CHILD", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the child");
        let lines = lines_of(child.stderr.take().expect("stderr"));
        let mut seen = Vec::new();
        wait_for(&lines, "child: batch in progress", &mut seen);
        // The signal arrives while the batch runs: the child must not die in it.
        let sent = Command::new("kill").args([signal, &child.id().to_string()]).status().expect("run kill");
        assert!(sent.success(), "kill {signal}");
        wait_for(&lines, "stopping gracefully", &mut seen);
        // Only now does the batch finish.
        child.stdin.take().expect("stdin").write_all(b"go on\n").expect("release the batch");
        wait_for(&lines, "child: batch done, 100 records", &mut seen);
        wait_for(&lines, "child: stopped after the signal, state Stopped", &mut seen);
        let status = child.wait().expect("the child ends");
        assert!(status.success(), "{signal}: the child exits cleanly: {status}; it said: {seen:#?}");
    }
}

#[test]
fn without_a_signal_the_waits_end_with_the_context_or_the_timeout() {
    let cluster = dstream::StepCluster::builder().build();
    let ssc = StreamingContext::new(cluster.context(), Duration::from_millis(10), Arc::new(SystemClock::new()))
        .expect("context");
    let (_queue, numbers) = ssc.queue_stream::<u32>(1);
    numbers.foreach_rdd(|_, _| Ok(())).expect("output");
    let running = ssc.start().expect("start");
    // Still running when the timeout passes: not stopped by the wait.
    assert_eq!(running.await_termination_or_signal_timeout(Duration::from_millis(20)).expect("wait"), None);
    assert_eq!(running.state(), dstream::StreamingState::Active);
    // A stop from elsewhere ends both forms of the wait.
    let stopper = ssc.clone();
    let stop = std::thread::spawn(move || stopper.stop(false));
    assert_eq!(
        running.await_termination_or_signal_timeout(Duration::from_secs(60)).expect("wait"),
        Some(Termination::Stopped)
    );
    assert_eq!(running.await_termination_or_signal().expect("wait"), Termination::Stopped);
    stop.join().expect("the stopper").expect("stop");
}
