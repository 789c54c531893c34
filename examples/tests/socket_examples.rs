//! The socket examples (`network_wordcount`, `stateful_network_wordcount`,
//! `recoverable_network_wordcount`) on a driver and two worker processes
//! (`--cluster local:2`), reading lines from a server in this test: their printed counts must
//! be the counts of the lines sent, and a restarted `recoverable_network_wordcount` must go on
//! from the first run's totals.
//!
//! Each run is watched on its standard output: once the expected counts are printed, the test
//! interrupts it (SIGINT, the graceful stop) and waits for it to exit with status 0, within a
//! deadline.
//!
//! The examples' executables are those `cargo test` builds beside this test's
//! (`target/<profile>/examples/`): `cargo test -p dstream-examples` builds them, this test
//! alone (`--test socket_examples`) does not, so build them first
//! (`cargo build -p dstream-examples --examples`) when running it alone.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use wait_timeout::ChildExt;

/// The most one run may take to print what is expected, or to exit once interrupted.
const RUN_WAIT_MAX: Duration = Duration::from_secs(90);

/// The first lines the server sends.
const FIRST: &str = "to be or not to be\nthat is the question\n";
/// What the server of a restarted run sends.
const SECOND: &str = "to be is to do\n";

/// Word counts, by word.
type Counts = BTreeMap<String, u64>;

/// The counts of the words of `text`.
fn counts_of(text: &str) -> Counts {
    let mut counts = Counts::new();
    for word in text.split_whitespace() {
        *counts.entry(word.to_string()).or_default() += 1;
    }
    counts
}

/// A server on loopback that sends `text` to the first connection and keeps every connection
/// open (a receiver that reconnected would otherwise read nothing new, or the text again).
fn serve(text: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts until the test process exits.
    std::thread::spawn(move || {
        let mut open: Vec<TcpStream> = Vec::new();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            if open.is_empty() {
                let _ = conn.write_all(text.as_bytes());
            }
            open.push(conn);
        }
    });
    port
}

/// A running example, its standard output read line by line.
struct Run {
    name: &'static str,
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Run {
    /// Starts example `name` with `args`, on a driver and two worker processes, reading the
    /// server at `port`.
    fn start(name: &'static str, port: u16, args: &[&str]) -> Run {
        let port = port.to_string();
        let mut child = Command::new(common::executable(name))
            .args(args)
            .args(["--batch-ms", "200", "--cluster", "local:2", "127.0.0.1", &port])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Run { name, child, lines, seen: Vec::new() }
    }

    /// Reads output until `done` holds for all of it so far; fails after [`RUN_WAIT_MAX`].
    fn wait_for(&mut self, what: &str, mut done: impl FnMut(&[String]) -> bool) {
        let deadline = Instant::now() + RUN_WAIT_MAX;
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(e) => {
                    let _ = self.child.kill();
                    panic!("{}: no {what} ({e:?}); its output:\n{}", self.name, self.seen.join("\n"))
                }
            }
        }
    }

    /// Interrupts the run (SIGINT: a graceful stop) and waits for it to exit with status 0.
    fn interrupt(mut self) -> Vec<String> {
        let sent = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status().unwrap();
        assert!(sent.success(), "kill -INT {}", self.child.id());
        let Some(status) = self.child.wait_timeout(RUN_WAIT_MAX).unwrap() else {
            let _ = self.child.kill();
            panic!("{} did not exit within {RUN_WAIT_MAX:?} of SIGINT", self.name)
        };
        assert!(status.success(), "{} exited with {status}; its output:\n{}", self.name, self.seen.join("\n"));
        self.seen.extend(self.lines.try_iter());
        self.seen
    }
}

/// The records `print` printed, as counts, one map per batch (from its `Time:` line on).
fn printed_batches(lines: &[String]) -> Vec<Counts> {
    let mut batches = Vec::new();
    for line in lines {
        if line.starts_with("Time: ") {
            batches.push(Counts::new());
        } else if let (Some(batch), Some(record)) = (batches.last_mut(), line.strip_prefix("(\"")) {
            // A record: ("word", n)
            let (word, rest) = record.split_once("\", ").unwrap();
            let n = rest.strip_suffix(')').unwrap().parse().unwrap();
            batch.insert(word.to_string(), n);
        }
    }
    batches
}

/// Whether some batch printed exactly `totals` (running totals: fewer words than `print`
/// shows).
fn printed_totals(lines: &[String], totals: &Counts) -> bool {
    printed_batches(lines).iter().any(|batch| batch == totals)
}

#[test]
fn network_wordcount_counts_the_lines_on_two_worker_processes() {
    let port = serve(FIRST);
    let mut run = Run::start("network_wordcount", port, &[]);
    let expected = counts_of(FIRST);
    // Per-batch counts: the lines may straddle batches, so their sum is what must match.
    run.wait_for("word counts of the lines sent", |lines| {
        let mut sum = Counts::new();
        for batch in printed_batches(lines) {
            for (word, n) in batch {
                *sum.entry(word).or_default() += n;
            }
        }
        sum == expected
    });
    let out = run.interrupt();
    assert!(out[0].starts_with("network_wordcount: counting the words of 127.0.0.1:"), "{out:?}");
}

#[test]
fn stateful_network_wordcount_keeps_running_totals_on_two_worker_processes() {
    let port = serve(FIRST);
    let mut run = Run::start("stateful_network_wordcount", port, &[]);
    let expected = counts_of(FIRST);
    run.wait_for("running totals of the lines sent", |lines| printed_totals(lines, &expected));
    let out = run.interrupt();
    // A later batch (the stop's) prints the same totals again, never more.
    let batches = printed_batches(&out);
    assert!(batches.iter().all(|b| b.iter().all(|(w, n)| expected.get(w).is_some_and(|e| n <= e))), "{batches:?}");
}

#[test]
fn recoverable_network_wordcount_resumes_on_two_worker_processes() {
    let dir = std::env::temp_dir().join(format!("dstream-test-recoverable-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_arg = dir.to_str().unwrap().to_string();
    let args = ["--checkpoint-dir", dir_arg.as_str()];

    let mut first = Run::start("recoverable_network_wordcount", serve(FIRST), &args);
    let totals = counts_of(FIRST);
    first.wait_for("running totals of the first lines", |lines| printed_totals(lines, &totals));
    let out = first.interrupt();
    assert!(out[0].contains("starting fresh"), "{out:?}");

    // A new driver and new worker processes on the same directory: the totals go on.
    let mut second = Run::start("recoverable_network_wordcount", serve(SECOND), &args);
    let mut totals = totals;
    for (word, n) in counts_of(SECOND) {
        *totals.entry(word).or_default() += n;
    }
    second.wait_for("the first run's totals plus the new lines", |lines| printed_totals(lines, &totals));
    let out = second.interrupt();
    assert!(out[0].contains("resuming from the checkpoints"), "{out:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
