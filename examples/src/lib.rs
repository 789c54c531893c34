//! Pieces shared by the example programs: command-line flags, the in-process cluster they run
//! on, a per-batch progress report and a summary, a run that ends after a duration, at the end
//! of the input, or on Ctrl-C, and the top-k of a dataset of counts.
//! Each program is `cargo run --release --example NAME -- --help`.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)] // Example programs report on stdout.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::generator::Record;
use dstream::hash::FixedMap;
use dstream::{BatchInfo, DStream, Data, Error, Rdd, StreamingHandle, StreamingListener, Time};
use dstream_inproc::LocalCluster;
use dstream_storage::SignalsExt;

/// Command-line flags: `--name value` pairs and bare `--name` switches.
#[derive(Debug, Default)]
pub struct Flags {
    values: BTreeMap<String, String>,
    usage: String,
}

impl Flags {
    /// Parses the process's arguments. `usage` is printed for `--help` or a malformed flag; a
    /// flag it does not name is refused. `switches` name the flags that take no value.
    pub fn parse(usage: &str, switches: &[&str]) -> Result<Flags, String> {
        Flags::parse_from(usage, switches, std::env::args().skip(1))
    }

    /// [`Flags::parse`] of the given arguments.
    pub fn parse_from(usage: &str, switches: &[&str], args: impl IntoIterator<Item = String>) -> Result<Flags, String> {
        let mut flags = Flags { values: BTreeMap::new(), usage: usage.to_string() };
        let known: Vec<&str> = usage
            .split(|c: char| c.is_whitespace() || "[]|".contains(c))
            .filter_map(|w| w.strip_prefix("--"))
            .collect();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let Some(name) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument {arg}\n{usage}"));
            };
            if name == "help" {
                return Err(usage.to_string());
            }
            if !known.contains(&name) {
                return Err(format!("unknown flag --{name}\n{usage}"));
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
    ///
    /// Two batches are partial: the first (batch times are multiples of the interval, so the
    /// first starts between two of them), and the one open at a graceful stop, which runs at
    /// once, before its batch time (so its total delay is shorter than its processing). Both
    /// count in the records and the processing times; the rate is taken over the batches in
    /// between (or over all when there are none), the total delays over those on schedule.
    pub fn summary(&self, batch_interval: Duration) {
        let batches = self.batches.lock().unwrap_or_else(|p| p.into_inner());
        let records: u64 = batches.iter().map(|b| b.records).sum();
        let on_schedule: Vec<&BatchInfo> = batches.iter().filter(|b| b.total_delay >= b.processing_delay).collect();
        let cut_short = batches.len() - on_schedule.len();
        let all: Vec<&BatchInfo> = batches.iter().collect();
        let full = if on_schedule.len() > 1 { &on_schedule[1..] } else { &all[..] };
        let seconds = batch_interval.as_secs_f64() * full.len() as f64;
        let rate = if seconds > 0.0 { full.iter().map(|b| b.records).sum::<u64>() as f64 / seconds } else { 0.0 };
        let avg = |bs: &[&BatchInfo], f: fn(&BatchInfo) -> Duration| {
            bs.iter().map(|b| f(b)).sum::<Duration>() / bs.len().max(1) as u32
        };
        let max = |bs: &[&BatchInfo], f: fn(&BatchInfo) -> Duration| bs.iter().map(|b| f(b)).max().unwrap_or_default();
        println!(
            "summary: {} batches of {} ms{}, {records} records ({rate:.0} records/s); processing avg {} ms, max {} ms; total delay avg {} ms, max {} ms; {} receiver errors",
            batches.len(),
            batch_interval.as_millis(),
            match cut_short {
                0 => String::new(),
                1 => " (the last cut short by the stop)".to_string(),
                n => format!(" ({n} cut short by the stop)"),
            },
            avg(&all, |b| b.processing_delay).as_millis(),
            max(&all, |b| b.processing_delay).as_millis(),
            avg(&on_schedule, |b| b.total_delay).as_millis(),
            max(&on_schedule, |b| b.total_delay).as_millis(),
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
/// Ctrl-C (SIGINT) or SIGTERM ends the run early, gracefully too: the batch in progress
/// finishes (`dstream_storage::SignalsExt`); a second one exits at once.
pub fn run_until(
    handle: &StreamingHandle,
    until: Until,
    input_done: Option<std::sync::mpsc::Receiver<()>>,
) -> Result<(), Error> {
    if let Some(done) = input_done {
        // The end of the input stops the context, from a thread of its own.
        let ssc = handle.context().clone();
        std::thread::spawn(move || {
            let _ = done.recv();
            let _ = ssc.stop(true);
        });
    }
    let ended = match until {
        Until::Elapsed(d) => handle.await_termination_or_signal_timeout(d)?.is_some(),
        Until::InputEnds => {
            handle.await_termination_or_signal()?;
            true
        }
    };
    if !ended {
        handle.stop(true)?;
    }
    Ok(())
}

/// Parses the flags and runs `run`: the `main` of every example. `--help` prints the usage
/// (exit code 0); a malformed command line (exit code 2) or an error (exit code 1) is reported
/// on stderr.
pub fn main_with(
    usage: &str,
    switches: &[&str],
    run: impl FnOnce(&Flags) -> Result<(), Box<dyn std::error::Error>>,
) -> ExitCode {
    let flags = match Flags::parse(usage, switches) {
        Ok(flags) => flags,
        Err(message) if message == usage => {
            println!("{usage}"); // --help
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(&flags) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// An in-process cluster with `--workers N` workers (default: the cluster's own default).
pub fn local_cluster(flags: &Flags) -> Result<LocalCluster, Box<dyn std::error::Error>> {
    let mut builder = LocalCluster::builder();
    if flags.has("workers") {
        let workers = flags.number("workers", 2)?;
        builder = builder.workers(u32::try_from(workers).map_err(|_| format!("--workers: too large: {workers}"))?);
    }
    Ok(builder.build()?)
}

/// The partitions of a keyed stream's state: two per core, so every core has work while the
/// slowest partition does not hold up the batch.
pub fn state_partitions() -> usize {
    2 * std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The `k` largest counts, largest first (ties by key), found by a partial selection:
/// O(n + k log k) rather than a full sort.
pub fn top_k<K: Ord>(k: usize, mut counts: Vec<(K, u64)>) -> Vec<(K, u64)> {
    let order = |a: &(K, u64), b: &(K, u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0));
    if k == 0 {
        return Vec::new();
    }
    if counts.len() > k {
        counts.select_nth_unstable_by(k - 1, order);
        counts.truncate(k);
    }
    counts.sort_unstable_by(order);
    counts
}

/// The words of `records` with their number of occurrences, counted in place: a word is copied
/// into a `String` once (when first seen), not once per occurrence. The keys are owned so the
/// map's comparisons stay within the map rather than reaching into the records.
pub fn word_counts(records: &[Record]) -> Vec<(String, u64)> {
    let mut counts: FixedMap<String, u64> = FixedMap::default();
    for record in records {
        for word in record.words() {
            match counts.get_mut(word) {
                Some(n) => *n += 1,
                None => {
                    counts.insert(word.to_owned(), 1);
                }
            }
        }
    }
    counts.into_iter().collect()
}

/// [`top_k`] of borrowed counts: only the `k` winners' keys are cloned.
pub fn top_k_borrowed<K: Ord + Clone>(k: usize, counts: &[(K, u64)]) -> Vec<(K, u64)> {
    let refs: Vec<(&K, u64)> = counts.iter().map(|(key, n)| (key, *n)).collect();
    top_k(k, refs).into_iter().map(|(key, n)| (key.clone(), n)).collect()
}

/// The `k` largest counts of a dataset: the top `k` of each partition, on the workers, merged
/// on the driver (only `k` records per partition travel, and only they are copied).
pub fn top_k_of<K: Data + Ord>(k: usize, counts: &Rdd<(K, u64)>) -> Result<Vec<(K, u64)>, Error> {
    Ok(top_k(k, counts.map_partitions_ref(move |_, part| top_k_borrowed(k, part)).collect()?))
}

/// Counts per word over a window of `length` sliding every `slide`, computed incrementally;
/// words whose count falls to zero leave the result.
pub fn windowed_counts(
    ones: &DStream<(String, u64)>,
    length: Duration,
    slide: Duration,
    partitions: usize,
) -> Result<DStream<(String, u64)>, Error> {
    ones.reduce_by_key_and_window_inv_filtered(|a, b| a + b, |a, b| a - b, length, slide, partitions, |(_, n)| *n > 0)
}

/// Registers an output that keeps the `k` largest counts of each window in the returned slot,
/// printing the first `shown` of them per batch unless `quiet`.
pub fn track_top(
    counts: &DStream<(String, u64)>,
    k: usize,
    shown: usize,
    quiet: bool,
) -> Result<Arc<Mutex<Vec<(String, u64)>>>, Error> {
    let top: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let latest = Arc::clone(&top);
    counts.foreach_rdd(move |rdd, time| {
        let best = top_k_of(k, rdd)?;
        if !quiet {
            println!("window ending {time}: {}", format_top(&best[..best.len().min(shown)]));
        }
        *latest.lock().map_err(|_| Error::BatchFailed("a lock was poisoned".into()))? = best;
        Ok(())
    })?;
    Ok(top)
}

/// `key=count` pairs on one line, for a per-batch report.
pub fn format_top<K: Display>(top: &[(K, u64)]) -> String {
    top.iter().map(|(k, n)| format!("{k}={n}")).collect::<Vec<_>>().join(" ")
}

/// Prints a ranking, one `count  key` line each, under a heading.
pub fn print_top<K: Display>(heading: &str, top: &[(K, u64)]) {
    println!("{heading}");
    for (key, n) in top {
        println!("{n:>10}  {key}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_take_values_and_switches_and_refuse_unknown_names() {
        let usage = "usage: x [--socket HOST:PORT | --stdin] [--window-s N] [--quiet]";
        let flags = Flags::parse_from(usage, &["stdin", "quiet"], args(&["--window-s", "5", "--quiet"])).unwrap();
        assert_eq!(flags.number("window-s", 30), Ok(5));
        assert!(flags.has("quiet") && !flags.has("stdin"));
        assert_eq!(flags.number("seconds", 10), Ok(10));
        assert!(Flags::parse_from(usage, &[], args(&["--window", "5"]))
            .unwrap_err()
            .starts_with("unknown flag --window"));
        assert!(Flags::parse_from(usage, &[], args(&["--socket"])).unwrap_err().starts_with("--socket needs a value"));
        assert_eq!(Flags::parse_from(usage, &[], args(&["--help"])).unwrap_err(), usage);
        assert!(Flags::parse_from(usage, &[], args(&["--window-s", "x"])).unwrap().number("window-s", 1).is_err());
    }

    #[test]
    fn top_k_keeps_the_largest_counts_largest_first_ties_by_key() {
        let counts = vec![("d", 1), ("b", 5), ("a", 5), ("c", 7), ("e", 0)];
        assert_eq!(top_k(3, counts.clone()), vec![("c", 7), ("a", 5), ("b", 5)]);
        assert_eq!(top_k(10, counts.clone()).len(), 5);
        assert_eq!(top_k(0, counts), vec![]);
        let many: Vec<(u32, u64)> = (0..1000).map(|i| (i, u64::from(i % 97))).collect();
        let mut sorted = many.clone();
        sorted.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        sorted.truncate(10);
        assert_eq!(top_k(10, many), sorted);
    }

    #[test]
    fn top_k_of_merges_the_partitions_tops() -> Result<(), Error> {
        let cluster = dstream::StepCluster::builder().workers(2).build();
        let counts: Vec<(String, u64)> = (0..100u64).map(|i| (format!("w{i:03}"), i % 10)).collect();
        let top = top_k_of(3, &cluster.context().parallelize(counts, 4)?)?;
        assert_eq!(top, vec![("w009".to_string(), 9), ("w019".to_string(), 9), ("w029".to_string(), 9)]);
        Ok(())
    }
}
