//! Receiver errors are visible without any setup: pointed at a closed port on 127.0.0.1, the
//! socket word count's "connection refused" reaches the listeners, the context's recent
//! receiver errors, and (by default) stderr, which is checked in a child process.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{listen, wait_for_message};
use dstream::{StreamingContext, SystemClock};
use dstream_storage::SocketTextReceiver;

/// A port on the loopback interface nobody listens on: bound, then released.
fn closed_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address")
}

/// Runs a socket word count at `addr` until its receiver reported a refused connection (the
/// listener is only the event to wait on); returns the context's recent receiver errors.
fn word_count_at(addr: SocketAddr, stderr: bool) -> (Vec<String>, Vec<dstream::ReceiverError>) {
    let cluster = dstream::StepCluster::builder().build();
    let ssc = StreamingContext::new(cluster.context(), Duration::from_millis(50), Arc::new(SystemClock::new()))
        .expect("context");
    let events = listen(&ssc);
    let receiver = SocketTextReceiver::new(addr).expect("resolve").report_to_stderr(stderr);
    let words = ssc.receiver_stream(receiver).flat_map(|l| l.split(' ').map(str::to_owned).collect::<Vec<_>>());
    words.map(|w| (w, 1u64)).reduce_by_key(|a, b| a + b).foreach_rdd(|_, _| Ok(())).expect("output");
    let running = ssc.start().expect("start");
    let mut heard = Vec::new();
    wait_for_message(&events.errors, &mut heard, "about the refused connection", |m| m.starts_with("cannot connect"));
    running.stop(false).expect("stop");
    (heard, running.receiver_errors())
}

#[test]
fn a_refused_connection_reaches_the_listeners_and_the_contexts_recent_errors() {
    let addr = closed_port();
    let (heard, kept) = word_count_at(addr, false);
    let refused = heard.iter().find(|m| m.starts_with("cannot connect")).expect("a report");
    assert!(refused.contains(&addr.to_string()) && refused.contains("reconnecting in"), "{refused}");
    // Without a listener of its own, the program finds it on the context.
    let first = kept.first().expect("the context keeps the receiver's errors");
    assert_eq!(&first.message, &heard[0]);
    assert!(kept.len() <= dstream::RECEIVER_ERRORS_KEPT);
}

/// Runs this test binary again, as the child half of the stderr test (the same test, with
/// the address in the environment); returns the child's stderr.
fn child_stderr(addr: SocketAddr, stderr: bool) -> String {
    let out = Command::new(std::env::current_exe().expect("the test binary"))
        .args(["a_refused_connection_is_printed_to_stderr_by_default", "--exact", "--nocapture"])
        .env("DSTREAM_TEST_ADDR", addr.to_string())
        .env("DSTREAM_TEST_STDERR", if stderr { "1" } else { "0" })
        .output()
        .expect("run the child");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "the child failed: {text}\n{}", String::from_utf8_lossy(&out.stdout));
    text
}

#[test]
fn a_refused_connection_is_printed_to_stderr_by_default() {
    // In the child this test starts: count words at the address, printing reports or not.
    if let Ok(addr) = std::env::var("DSTREAM_TEST_ADDR") {
        let addr: SocketAddr = addr.parse().expect("an address");
        word_count_at(addr, std::env::var("DSTREAM_TEST_STDERR").as_deref() == Ok("1"));
        return;
    }
    let addr = closed_port();
    let printed = child_stderr(addr, true);
    let line = printed
        .lines()
        .find(|l| l.starts_with("dstream: receiver of ") && l.contains(&format!("cannot connect to {addr}")))
        .unwrap_or_else(|| panic!("no report on stderr: {printed:?}"));
    assert!(line.contains("reconnecting in"), "{line}");
    // Off when asked.
    let quiet = child_stderr(addr, false);
    assert!(!quiet.contains("cannot connect"), "{quiet:?}");
}
