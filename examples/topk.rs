//! The paper's TopKCount: the ten most frequent words of the synthetic 100-byte records over a
//! 30 s window sliding every batch. Each batch prints the top three; the end of the run the top
//! ten of the last window.
//!
//! ```text
//! cargo run --release --example topk
//! cargo run --release --example topk -- --rate 200000 --window-s 10 --quiet
//! cargo run --release --example topk -- --cluster local:3   # a driver and 3 worker processes
//! ```
//!
//! The window's counts are kept incrementally (`reduce_by_key_and_window_inv_filtered`: each
//! slide adds the batch entering the window and subtracts the one leaving it, and drops the
//! words whose count fell to zero); the top ten is taken in each partition on the workers and
//! merged on the driver.
//!
//! It runs without checkpointing (as the benchmark does), so the incremental window's lineage
//! reaches back to the first batch and every shuffle it read stays pinned in the block store:
//! memory grows with the run. `wordcount` shows the same window with checkpointing on, which
//! bounds it. `--help` lists the flags with their defaults.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)] // An example program reports on stdout.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use dstream::generator::RecordPool;
use dstream::{Context, Error, StreamingContext, SystemClock};
use dstream_examples::{
    main_with, print_top, run_until, state_partitions, track_top, windowed_counts, word_counts, ClusterArgs, Progress,
    Until,
};

/// The most frequent words of synthetic records over a sliding window (the paper's TopKCount).
#[derive(Debug, Parser)]
#[command(name = "topk")]
struct Args {
    /// How long to run, in seconds (Ctrl-C stops earlier, gracefully)
    #[arg(long, value_name = "N", default_value_t = 10)]
    seconds: u64,
    /// Synthetic records per second
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    rate: u64,
    /// The batch interval, in milliseconds (the window slides every batch)
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    batch_ms: u64,
    /// The window's length, in seconds
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    window_s: u64,
    /// How many words to rank
    #[arg(long, value_name = "N", default_value_t = 10)]
    k: usize,
    /// Print no per-batch lines, only the summary and the last window's ranking
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let batch = Duration::from_millis(args.batch_ms);
    let window = Duration::from_secs(args.window_s);
    let k = args.k;
    let rate = args.rate;
    let partitions = state_partitions();
    let quiet = args.quiet;
    let progress = Progress::new(quiet);
    // Every process of the cluster builds the program (`--cluster`); its outputs run in the
    // driver only.
    let program = |ctx: &Context| -> Result<_, Error> {
        let ssc = StreamingContext::new(ctx.clone(), batch, Arc::new(SystemClock::new()))?;
        ssc.add_listener(progress.clone());
        let records = ssc.generator_stream(RecordPool::standard(), rate);
        // Each partition's words are counted where they are, reading the records in place, so a
        // word is copied into a `String` once per partition rather than once per occurrence (Zipf:
        // most occurrences are of a few words); this about halves the processing time of plain
        // `flat_map` to `(word, 1)` pairs.
        let ones = records.map_partitions_ref(|_, part| word_counts(part));
        let counts = windowed_counts(&ones, window, batch, partitions)?;
        let top = track_top(&counts, k, 3, quiet)?;
        Ok((ssc, top))
    };
    let (_cluster, (ssc, top)) = args.cluster.launch(program)?;

    // A run of bounded length without checkpoints: the state's lineage grows for its duration.
    ssc.allow_unbounded_lineage();
    let handle = ssc.start()?;
    run_until(&handle, Until::Elapsed(Duration::from_secs(args.seconds)), None)?;
    progress.summary(batch);
    print_top(&format!("top {k} words over the last window:"), &top.lock().map_err(|_| "a lock was poisoned")?);
    Ok(())
}

fn main() -> ExitCode {
    main_with(run)
}
