//! Spark's StatefulNetworkWordCount: running word counts, since the start, of the lines a TCP
//! server sends, kept with `update_state_by_key` and printed every 1 s batch.
//!
//! ```text
//! nc -lk 9999
//! cargo run --release --example stateful_network_wordcount -- localhost 9999
//! ```
//!
//! Type lines into netcat's terminal: each batch prints the words seen so far with their
//! totals. It runs until Ctrl-C, or for `--seconds N`. The state is the running totals, a
//! dataset hash-partitioned by word; each batch adds its own counts to it without shuffling it.
//!
//! The context runs without checkpointing, so the state's lineage reaches back to the first
//! batch and memory grows with the run; `recoverable_network_wordcount` checkpoints, which cuts
//! the lineage and survives a restart.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)] // An example program reports on stdout.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use dstream::{StreamingContext, SystemClock};
use dstream_examples::{main_with, run_until, words_of, ClusterArgs, Progress, Until};
use dstream_storage::StreamingContextExt;

/// Running word counts of the lines read from a TCP server.
#[derive(Debug, Parser)]
#[command(name = "stateful_network_wordcount")]
struct Args {
    /// The host of the server to read lines from
    #[arg(default_value = "localhost")]
    host: String,
    /// Its port
    #[arg(default_value_t = 9999)]
    port: u16,
    /// Stop after N seconds [default: run until Ctrl-C]
    #[arg(long, value_name = "N")]
    seconds: Option<u64>,
    /// The batch interval, in milliseconds
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    batch_ms: u64,
    /// Partitions of the running totals
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    partitions: u64,
    #[command(flatten)]
    cluster: ClusterArgs,
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let batch = Duration::from_millis(args.batch_ms);
    let cluster = args.cluster.local_cluster()?;
    let ssc = StreamingContext::new(cluster.context(), batch, Arc::new(SystemClock::new()))?;
    let progress = Progress::new(true);
    ssc.add_listener(progress.clone());

    let words = ssc.socket_text_stream((args.host.as_str(), args.port))?.flat_map(|line| words_of(&line));
    // `values` are the word's ones in this batch (empty if it had none), `total` its count so
    // far; the new total is kept (returning `None` would drop the word).
    let totals = words.map(|word| (word, 1u64)).update_state_by_key(
        |values: Vec<u64>, total: Option<u64>| Some(total.unwrap_or(0) + values.iter().sum::<u64>()),
        usize::try_from(args.partitions)?,
    )?;
    totals.print(20)?;

    println!(
        "stateful_network_wordcount: running word counts of {}:{} every {} ms",
        args.host, args.port, args.batch_ms
    );
    let handle = ssc.start()?;
    run_until(&handle, Until::seconds(args.seconds), None)?;
    progress.summary(batch);
    Ok(())
}

fn main() -> ExitCode {
    main_with(run)
}
