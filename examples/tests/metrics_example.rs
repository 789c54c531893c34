//! A real Prometheus server scrapes the `metrics_wordcount` example while it runs, and its
//! query API then returns the example's series with the values the example printed: the
//! records it counted, the batches completed, and the stopped state it was left in.
//!
//! The example is run with `--scrapes-before-stop 3 --linger-scrapes 3`: it stops only once
//! Prometheus scraped it three times running, and after its context stopped it waits until
//! Prometheus scraped it three more times. Prometheus scrapes a target one scrape after
//! another and stores each before the next, so the first two of those (the final values) are
//! stored once the example exits, and the test queries them with `last_over_time` (an instant
//! query would see the series marked stale once the target is gone).
//!
//! It needs the `prometheus` binary on `PATH` (Debian's package `prometheus`; `.ci/run`
//! installs it). Without it the test reports that it did not run and passes, unless `CI` is
//! set, where it fails. Like tests/socket_examples.rs, it runs the example built beside it.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use wait_timeout::ChildExt;

/// The most the example may take to run and be scraped.
const RUN_WAIT_MAX: Duration = Duration::from_secs(90);

/// The `prometheus` binary on `PATH`.
fn prometheus_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join("prometheus")).find(|p| p.is_file())
}

/// A directory for Prometheus's configuration and data, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let path = std::env::temp_dir().join(format!("dstream-metrics-example-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed when dropped (a failing test leaves no server behind).
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free port on loopback (bound and released: Prometheus binds it next).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts Prometheus scraping `target` every 200 ms, its API on loopback; returns its port.
fn start_prometheus(binary: &Path, dir: &Path, target: &str) -> (Process, u16) {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\nscrape_configs:\n  - job_name: dstream\n    \
             static_configs:\n      - targets: [\"{target}\"]\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    (Process(child), port)
}

/// The value of the one series `query` returns, from Prometheus's instant-query API.
fn query(port: u16, query: &str) -> f64 {
    let encoded: String = query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(RUN_WAIT_MAX)).unwrap();
    // HTTP/1.0: the answer comes whole, not chunked, and the server closes the connection.
    write!(conn, "GET /api/v1/query?query={encoded} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body).unwrap_or_default();
    let answer: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{query}: {e}: {response}"));
    assert_eq!(answer["status"], "success", "{query}: {answer}");
    let result = answer["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{query}: one series expected: {answer}");
    result[0]["value"][1].as_str().unwrap().parse().unwrap()
}

/// The number after `key: ` on the line of `lines` that starts with it.
fn printed(lines: &[String], key: &str) -> f64 {
    let prefix = format!("{key}: ");
    let line = lines.iter().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {key}: in {lines:?}"));
    line[prefix.len()..].parse().unwrap()
}

#[test]
fn prometheus_scrapes_the_running_example_and_returns_its_series() {
    let Some(binary) = prometheus_binary() else {
        assert!(std::env::var_os("CI").is_none(), "CI must have the prometheus binary on PATH (.ci/run installs it)");
        eprintln!("prometheus is not on PATH: this test did not run");
        return;
    };
    let dir = TempDir::new();
    let mut example = Command::new(common::executable("metrics_wordcount"))
        .args(["--metrics-addr", "127.0.0.1:0", "--seconds", "3", "--rate", "2000", "--batch-ms", "200"])
        .args(["--scrapes-before-stop", "3", "--linger-scrapes", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = example.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = lines.recv_timeout(RUN_WAIT_MAX).unwrap();
    let target = first
        .strip_prefix("metrics_wordcount: serving metrics on http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string();
    let (_prometheus, port) = start_prometheus(&binary, &dir.0, &target);

    let deadline = Instant::now() + RUN_WAIT_MAX;
    let Some(status) = example.wait_timeout(RUN_WAIT_MAX).unwrap() else {
        let _ = example.kill();
        let log = std::fs::read_to_string(dir.0.join("prometheus.log")).unwrap_or_default();
        panic!("metrics_wordcount was not scraped within {RUN_WAIT_MAX:?}; prometheus's log:\n{log}");
    };
    assert!(status.success(), "metrics_wordcount exited with {status}");
    let mut output = Vec::new();
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        output.push(line);
    }
    let (records, batches, scrapes) =
        (printed(&output, "records"), printed(&output, "batches"), printed(&output, "scrapes"));
    assert!(records > 0.0 && batches > 0.0, "{output:?}");
    assert!(scrapes >= 6.0, "{output:?}");

    let last = |series: &str| query(port, &format!("last_over_time({series}[10m])"));
    assert_eq!(last("dstream_input_records_total"), records);
    assert_eq!(last("dstream_batches_completed_total"), batches);
    assert_eq!(last("dstream_batch_total_delay_seconds_count"), batches);
    assert_eq!(last("dstream_batch_processing_delay_seconds_bucket{le=\"+Inf\"}"), batches);
    assert_eq!(last("dstream_batches_failed_total"), 0.0);
    assert_eq!(last("dstream_context_state{state=\"stopped\"}"), 1.0);
    assert_eq!(last("dstream_batch_interval_seconds"), 0.2);
    // It was scraped running, and its records counted while it ran.
    assert_eq!(query(port, "max_over_time(dstream_context_state{state=\"active\"}[10m])"), 1.0);
    assert!(query(port, "min_over_time(dstream_input_records_total[10m])") < records);
    // Every sample Prometheus stored came from a scrape the example answered.
    let stored = query(port, "count_over_time(dstream_batches_completed_total[10m])");
    assert!(stored >= 2.0 && stored <= scrapes, "{stored} samples stored of {scrapes} scrapes");
    eprintln!("prometheus stored {stored} scrapes of {scrapes} answered: {records} records in {batches} batches");
}
