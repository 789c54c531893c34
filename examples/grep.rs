//! The paper's Grep: counts, every batch, the synthetic 100-byte records that contain the
//! pattern [`GREP_PATTERN`] (about 1 record in 1,000), with a one-line report per batch.
//!
//! ```text
//! cargo run --release --example grep
//! cargo run --release --example grep -- --rate 1000000 --batch-ms 100 --quiet
//! cargo run --release --example grep -- --cluster local:3   # a driver and 3 worker processes
//! ```
//!
//! `--help` lists the flags with their defaults.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)] // An example program reports on stdout.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use dstream::generator::{RecordPool, GREP_PATTERN};
use dstream::{BatchInfo, Context, Error, StreamingContext, StreamingListener, SystemClock, Time};
use dstream_examples::{main_with, run_until, ClusterArgs, Progress, Until};

/// Counts the synthetic records of each batch that contain a pattern (the paper's Grep).
#[derive(Debug, Parser)]
#[command(name = "grep")]
struct Args {
    /// How long to run, in seconds (Ctrl-C stops earlier, gracefully)
    #[arg(long, value_name = "N", default_value_t = 10)]
    seconds: u64,
    /// Synthetic records per second
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    rate: u64,
    /// The batch interval, in milliseconds
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    batch_ms: u64,
    /// Print no per-batch lines, only the summary
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// The matching records of each batch, reported with the batch's size once it completes.
///
/// The batch's record count comes from the engine's [`BatchInfo`], so each batch runs one job
/// only: the filter and the count.
#[derive(Debug, Default)]
struct Matches {
    /// The last batch's time and matching records, set by the output operation.
    last: Mutex<Option<(Time, u64)>>,
    /// Matching records and records over the whole run.
    totals: Mutex<(u64, u64)>,
    quiet: bool,
}

impl Matches {
    fn record(&self, time: Time, n: u64) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((time, n));
    }

    fn totals(&self) -> (u64, u64) {
        *self.totals.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl StreamingListener for Matches {
    fn on_batch_completed(&self, info: &BatchInfo) {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner()).take();
        // Batches run one after the other, each output before its completion: the last count
        // set is this batch's.
        let Some((time, n)) = last.filter(|(t, _)| *t == info.time) else { return };
        let mut totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        totals.0 += n;
        totals.1 += info.records;
        if !self.quiet {
            println!("batch {time}: {n} matching of {} records", info.records);
        }
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let batch = Duration::from_millis(args.batch_ms);
    let rate = args.rate;
    let quiet = args.quiet;
    let matches = Arc::new(Matches { quiet, ..Matches::default() });
    let progress = Progress::new(quiet);
    // Every process of the cluster builds the program (`--cluster`); its outputs run in the
    // driver only.
    let program = |ctx: &Context| -> Result<_, Error> {
        let ssc = StreamingContext::new(ctx.clone(), batch, Arc::new(SystemClock::new()))?;
        // The batch's result first, then its progress line, as in the other examples.
        ssc.add_listener(matches.clone());
        ssc.add_listener(progress.clone());

        let records = ssc.generator_stream(RecordPool::standard(), rate);
        // One pass over each partition, in chunks, in one job per batch: the filter keeps the
        // matching records and the count action adds up what reaches it, with no shuffle (the
        // stream's `count()` would shuffle the per-partition counts into one partition).
        let sink = Arc::clone(&matches);
        records.filter(|r| r.line().contains(GREP_PATTERN)).foreach_rdd(move |rdd, time| {
            sink.record(time, rdd.count()?);
            Ok::<(), Error>(())
        })?;
        Ok(ssc)
    };
    let (_cluster, ssc) = args.cluster.launch(program)?;

    let handle = ssc.start()?;
    run_until(&handle, Until::Elapsed(Duration::from_secs(args.seconds)), None)?;
    progress.summary(batch);
    let (matching, records) = matches.totals();
    println!("{matching} of {records} records contained {GREP_PATTERN:?}");
    Ok(())
}

fn main() -> ExitCode {
    main_with(run)
}
