//! Pieces shared by the example programs: the flags they share (parsed with `clap`), the
//! cluster they run on (in-process or TCP processes, `cluster`), a per-batch progress report and a summary, a run that ends
//! after a duration, at the end of the input, or on Ctrl-C, and the top-k of a dataset of
//! counts. `cargo run --release --example NAME -- --help` lists each program's flags with
//! their defaults.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)] // Example programs report on stdout.

use std::fmt::Display;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::generator::Record;
use dstream::hash::FixedMap;
use dstream::{DStream, Data, Error, Rdd, StreamingContext, StreamingHandle};
use dstream_storage::{SignalsExt, SocketTextReceiver};

mod cluster;
mod progress;

pub use cluster::{ClusterArgs, ClusterError, ClusterSpec, ClusterSpecError, ExampleCluster};
pub use progress::Progress;

/// How a run should end.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// After this long, or on Ctrl-C.
    Elapsed(Duration),
    /// When `done` reports the end of the input, or on Ctrl-C.
    InputEnds,
    /// On Ctrl-C only.
    Interrupted,
}

impl Until {
    /// After `seconds` if given, else on Ctrl-C.
    pub fn seconds(seconds: Option<u64>) -> Until {
        seconds.map_or(Until::Interrupted, |s| Until::Elapsed(Duration::from_secs(s)))
    }
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
        Until::InputEnds | Until::Interrupted => {
            handle.await_termination_or_signal()?;
            true
        }
    };
    if !ended {
        handle.stop(true)?;
    }
    Ok(())
}

/// Parses the flags and runs `run`: the `main` of every example. `--help` (or `-h`) prints
/// the flags with their descriptions and defaults (exit code 0); a malformed command line is
/// refused with a message (exit code 2); an error of the run is reported on stderr (exit code
/// 1).
pub fn main_with<A: clap::Parser>(run: impl FnOnce(A) -> Result<(), Box<dyn std::error::Error>>) -> ExitCode {
    match run(A::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reads `reader` to its end and hands its lines (without their `\n` or `\r\n`) to `push`,
/// one call per buffer fill of up to `buffer_bytes`, with every line completed in that fill: a
/// push is a chunk of lines, not one line (each push is one unit of input for the stream). A
/// line cut by the end of a fill goes with the next one; a last line without terminator is
/// kept. Invalid UTF-8 is replaced (`U+FFFD`). Stops early when `push` returns `false`.
pub fn read_line_chunks(
    reader: impl std::io::Read,
    buffer_bytes: usize,
    mut push: impl FnMut(Vec<String>) -> bool,
) -> std::io::Result<()> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::with_capacity(buffer_bytes.max(1), reader);
    let mut partial: Vec<u8> = Vec::new();
    loop {
        let filled = match reader.fill_buf() {
            Ok(filled) => filled,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if filled.is_empty() {
            break;
        }
        let (start, n) = (partial.len(), filled.len());
        partial.extend_from_slice(filled);
        reader.consume(n);
        // Only the new bytes can hold a terminator the earlier fills did not end at.
        let Some(last) = partial[start..].iter().rposition(|&b| b == b'\n').map(|i| start + i) else { continue };
        let rest = partial.split_off(last + 1);
        // `partial` ends with the fill's last terminator: its lines are the pieces before it.
        let lines = partial[..last]
            .split(|&b| b == b'\n')
            .map(|line| String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line)).into_owned())
            .collect();
        partial = rest;
        if !push(lines) {
            return Ok(());
        }
    }
    if !partial.is_empty() {
        let line = partial.strip_suffix(b"\r").unwrap_or(&partial);
        push(vec![String::from_utf8_lossy(line).into_owned()]);
    }
    Ok(())
}

/// The words of a line, split at whitespace.
pub fn words_of(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

/// The program of the stateful network word counts: the words of the lines `receiver` reads,
/// with their running totals kept by `update_state_by_key` in `partitions` partitions, the
/// first 20 printed every batch.
pub fn print_running_word_totals(
    ssc: &StreamingContext,
    receiver: SocketTextReceiver,
    partitions: usize,
) -> Result<(), Error> {
    let words = ssc.receiver_stream(receiver).flat_map(|line| words_of(&line));
    // `values` are the word's ones in this batch (empty if it had none), `total` its count so
    // far; the new total is kept (returning `None` would drop the word).
    let totals = words.map(|word| (word, 1u64)).update_state_by_key(
        |values: Vec<u64>, total: Option<u64>| Some(total.unwrap_or(0) + values.iter().sum::<u64>()),
        partitions,
    )?;
    totals.print(20)
}

/// The smallest multiple of `slide` of at least 10 s: the default interval of a stateful
/// stream's data checkpoints, shown in the examples' banners.
pub fn default_checkpoint_interval(slide: Duration) -> Duration {
    let min = Duration::from_secs(10);
    if slide.is_zero() {
        return min;
    }
    let k = min.as_nanos().div_ceil(slide.as_nanos()).max(1);
    slide * u32::try_from(k).unwrap_or(u32::MAX)
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
/// printing the first `shown` of them per batch unless `quiet`. As [`top_k_of`] does, each
/// partition's top `k` is taken on the workers and merged on the driver; the per-partition
/// step is a stream of the program (not a dataset made inside the output), so worker
/// processes, which build the program but run no outputs, can compute it too.
pub fn track_top(
    counts: &DStream<(String, u64)>,
    k: usize,
    shown: usize,
    quiet: bool,
) -> Result<Arc<Mutex<Vec<(String, u64)>>>, Error> {
    let top: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let latest = Arc::clone(&top);
    let tops = counts.map_partitions_ref(move |_, part| top_k_borrowed(k, part));
    tops.foreach_rdd(move |rdd, time| {
        let best = top_k(k, rdd.collect()?);
        if !quiet {
            if best.is_empty() {
                println!("window ending {time}: empty (no words in the window)");
            } else {
                println!("window ending {time}: {}", format_top(&best[..best.len().min(shown)]));
            }
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
    if top.is_empty() {
        println!("{:>10}  (none)", "");
    }
    for (key, n) in top {
        println!("{n:>10}  {key}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_pushed_one_chunk_per_buffer_fill() {
        let text = "to be\r\nor not\nto be\nthat is\nthe question";
        let mut chunks: Vec<Vec<String>> = Vec::new();
        read_line_chunks(text.as_bytes(), 16, |lines| {
            chunks.push(lines);
            true
        })
        .unwrap();
        // Fills of 16 bytes: "to be\r\nor not\nt", "o be\nthat is\nthe", " question".
        assert_eq!(chunks, vec![vec!["to be", "or not"], vec!["to be", "that is"], vec!["the question"]]);
        let mut calls = 0;
        read_line_chunks(text.as_bytes(), 1 << 16, |lines| {
            calls += 1;
            assert_eq!(lines.len(), 4);
            false // stops at once
        })
        .unwrap();
        assert_eq!(calls, 1);
    }

    #[test]
    fn the_default_checkpoint_interval_is_a_multiple_of_the_slide() {
        assert_eq!(default_checkpoint_interval(Duration::from_millis(500)), Duration::from_secs(10));
        assert_eq!(default_checkpoint_interval(Duration::from_secs(3)), Duration::from_secs(12));
        assert_eq!(default_checkpoint_interval(Duration::from_secs(30)), Duration::from_secs(30));
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
