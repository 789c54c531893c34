//! Pieces shared by the example programs: command-line flags, a per-batch progress report and
//! a summary, and a run that ends after a duration, at the end of the input, or on Ctrl-C.
//! Each program is `cargo run --release --example NAME -- --help`.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)] // Example programs report on stdout.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::{BatchInfo, Error, StreamingHandle, StreamingListener, Time};

/// Command-line flags: `--name value` pairs and bare `--name` switches.
#[derive(Debug, Default)]
pub struct Flags {
    values: BTreeMap<String, String>,
    usage: String,
}

impl Flags {
    /// Parses the process's arguments. `usage` is printed for `--help` or a malformed flag;
    /// `switches` name the flags that take no value.
    pub fn parse(usage: &str, switches: &[&str]) -> Result<Flags, String> {
        let mut flags = Flags { values: BTreeMap::new(), usage: usage.to_string() };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let Some(name) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument {arg}\n{usage}"));
            };
            if name == "help" {
                return Err(usage.to_string());
            }
            let value = if switches.contains(&name) {
                String::new()
            } else {
                args.next().ok_or_else(|| format!("--{name} needs a value\n{usage}"))?
            };
            flags.values.insert(name.to_string(), value);
        }
        Ok(flags)
    }

    /// Whether a switch or flag was given.
    pub fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// A flag's value as text.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// A flag's value as a number, or `default`.
    pub fn number(&self, name: &str, default: u64) -> Result<u64, String> {
        match self.values.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{name}: not a number: {v}\n{}", self.usage)),
        }
    }
}

/// Prints one line per completed batch and keeps what the summary needs.
#[derive(Debug, Default)]
pub struct Progress {
    batches: Mutex<Vec<BatchInfo>>,
    receiver_errors: Mutex<u64>,
    quiet: bool,
}

impl Progress {
    /// A progress report; `quiet` keeps the per-batch lines off stdout.
    pub fn new(quiet: bool) -> Arc<Progress> {
        Arc::new(Progress { quiet, ..Progress::default() })
    }

    /// Prints the summary of the run.
    pub fn summary(&self, batch_interval: Duration) {
        let batches = self.batches.lock().unwrap_or_else(|p| p.into_inner());
        let n = batches.len().max(1) as u32;
        let records: u64 = batches.iter().map(|b| b.records).sum();
        let seconds = batch_interval.as_secs_f64() * batches.len() as f64;
        let avg = |f: fn(&BatchInfo) -> Duration| batches.iter().map(f).sum::<Duration>() / n;
        let max = |f: fn(&BatchInfo) -> Duration| batches.iter().map(f).max().unwrap_or_default();
        println!(
            "summary: {} batches of {} ms, {records} records ({:.0} records/s); processing avg {} ms, max {} ms; total delay avg {} ms, max {} ms; {} receiver errors",
            batches.len(),
            batch_interval.as_millis(),
            if seconds > 0.0 { records as f64 / seconds } else { 0.0 },
            avg(|b| b.processing_delay).as_millis(),
            max(|b| b.processing_delay).as_millis(),
            avg(|b| b.total_delay).as_millis(),
            max(|b| b.total_delay).as_millis(),
            self.receiver_errors.lock().unwrap_or_else(|p| p.into_inner()),
        );
    }
}

impl StreamingListener for Progress {
    fn on_batch_completed(&self, info: &BatchInfo) {
        if !self.quiet {
            println!(
                "batch {}: {} records, scheduling {} ms, processing {} ms, total {} ms",
                info.time,
                info.records,
                info.scheduling_delay.as_millis(),
                info.processing_delay.as_millis(),
                info.total_delay.as_millis()
            );
        }
        self.batches.lock().unwrap_or_else(|p| p.into_inner()).push(info.clone());
    }

    fn on_batch_failed(&self, time: Time, error: &Error) {
        eprintln!("batch {time} failed: {error}");
    }

    fn on_receiver_error(&self, stream: dstream::StreamId, message: &str) {
        eprintln!("{stream}: {message}");
        *self.receiver_errors.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    }
}

/// How a run should end.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// After this long, or on Ctrl-C.
    Elapsed(Duration),
    /// When `done` reports the end of the input, or on Ctrl-C.
    InputEnds,
}

/// Waits for the end of the run, then stops the context gracefully, so every record received
/// is processed. `input_done` receives a message when the input ends (for `Until::InputEnds`).
pub fn run_until(
    handle: &StreamingHandle,
    until: Until,
    input_done: Option<std::sync::mpsc::Receiver<()>>,
) -> Result<(), Error> {
    let (tx, interrupted) = std::sync::mpsc::channel::<()>();
    if let Some(done) = input_done {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = done.recv();
            let _ = tx.send(());
        });
    }
    // Without a handler, Ctrl-C ends the process at once; with it, the run stops gracefully.
    if let Err(e) = ctrlc::set_handler(move || {
        let _ = tx.send(());
    }) {
        eprintln!("Ctrl-C will not stop gracefully: {e}");
    }
    match until {
        Until::Elapsed(d) => {
            let _ = interrupted.recv_timeout(d);
        }
        Until::InputEnds => {
            let _ = interrupted.recv();
        }
    }
    handle.stop(true)
}
