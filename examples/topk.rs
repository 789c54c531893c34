//! The paper's TopKCount: the ten most frequent words of the synthetic 100-byte records over a
//! 30 s window sliding every batch. Each batch prints the top three; the end of the run the top
//! ten of the last window.
//!
//! ```text
//! cargo run --release --example topk
//! cargo run --release --example topk -- --rate 200000 --window-s 10 --quiet
//! ```
//!
//! The window's counts are kept incrementally (`reduce_by_key_and_window_inv_filtered`: each
//! slide adds the batch entering the window and subtracts the one leaving it, and drops the
//! words whose count fell to zero); the top ten is taken in each partition on the workers and
//! merged on the driver.
//!
//! Without checkpointing (not implemented yet) the incremental window's lineage reaches back
//! to the first batch, so every shuffle it read stays pinned in the block store: at the default
//! rate a run fails after about a minute, when the block store (1 GiB) is full.
//!
//! Flags: `--seconds N` (run time, default 10), `--rate N` (records per second, default
//! 100000), `--batch-ms N` (default 500), `--window-s N` (default 30), `--k N` (default 10),
//! `--workers N`, `--quiet` (no per-batch lines).
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)] // An example program reports on stdout.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use dstream::generator::RecordPool;
use dstream::{StreamingContext, SystemClock};
use dstream_examples::{
    local_cluster, main_with, print_top, run_until, state_partitions, track_top, windowed_counts, word_counts, Flags,
    Progress, Until,
};

const USAGE: &str =
    "usage: topk [--seconds N] [--rate N] [--batch-ms N] [--window-s N] [--k N] [--workers N] [--quiet]";

fn run(flags: &Flags) -> Result<(), Box<dyn std::error::Error>> {
    let batch = Duration::from_millis(flags.number("batch-ms", 500)?);
    let window = Duration::from_secs(flags.number("window-s", 30)?);
    let k = usize::try_from(flags.number("k", 10)?)?;
    let rate = flags.number("rate", 100_000)?;
    let cluster = local_cluster(flags)?;
    let partitions = state_partitions();
    let ssc = StreamingContext::new(cluster.context(), batch, Arc::new(SystemClock::new()))?;
    let quiet = flags.has("quiet");
    let progress = Progress::new(quiet);
    ssc.add_listener(progress.clone());

    let records = ssc.generator_stream(RecordPool::standard(), rate);
    // Each partition's words are counted where they are, reading the records in place, so a
    // word is copied into a `String` once per partition rather than once per occurrence (Zipf:
    // most occurrences are of a few words); this about halves the processing time of plain
    // `flat_map` to `(word, 1)` pairs.
    let ones = records.map_partitions_ref(|_, part| word_counts(part));
    let counts = windowed_counts(&ones, window, batch, partitions)?;
    let top = track_top(&counts, k, 3, quiet)?;

    // A run of bounded length without checkpoints: the state's lineage grows for its duration.
    ssc.allow_unbounded_lineage();
    let handle = ssc.start()?;
    run_until(&handle, Until::Elapsed(Duration::from_secs(flags.number("seconds", 10)?)), None)?;
    progress.summary(batch);
    print_top(&format!("top {k} words over the last window:"), &top.lock().map_err(|_| "a lock was poisoned")?);
    Ok(())
}

fn main() -> ExitCode {
    main_with(USAGE, &["quiet"], run)
}
