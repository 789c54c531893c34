//! Word counts over a 30 s window sliding every batch (the paper's WordCount), printed with a
//! one-line progress report per batch.
//!
//! ```text
//! cargo run --release --example wordcount                      # synthetic 100-byte records
//! cargo run --release --example wordcount -- --socket 127.0.0.1:9999
//! some-command | cargo run --release --example wordcount -- --stdin
//! ```
//!
//! Flags: `--seconds N` (run time, default 10), `--rate N` (synthetic records per second,
//! default 100000), `--batch-ms N` (default 500), `--window-s N` (default 30), `--workers N`,
//! `--quiet` (no per-batch lines).
//!
//! Without checkpointing (not implemented yet) the incremental window's lineage reaches back
//! to the first batch, so every shuffle it read stays pinned in the block store: at the default
//! rate a run fails after about a minute, when the block store (1 GiB) is full.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)] // An example program reports on stdout.

use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use dstream::generator::RecordPool;
use dstream::{DStream, StreamingContext, SystemClock};
use dstream_examples::{
    local_cluster, main_with, print_top, run_until, state_partitions, track_top, windowed_counts, Flags, Progress,
    Until,
};
use dstream_storage::StreamingContextExt;

const USAGE: &str = "usage: wordcount [--socket HOST:PORT | --stdin] [--seconds N] [--rate N] [--batch-ms N] [--window-s N] [--workers N] [--quiet]";

/// The words of the input, from the source the flags name.
fn words(
    ssc: &StreamingContext,
    flags: &Flags,
) -> Result<(DStream<String>, Option<mpsc::Receiver<()>>), Box<dyn std::error::Error>> {
    if let Some(addr) = flags.text("socket") {
        let lines = ssc.socket_text_stream(addr)?;
        return Ok((lines.flat_map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>()), None));
    }
    if flags.has("stdin") {
        let (input, lines) = ssc.input_stream::<String>();
        let (done, ended) = mpsc::channel();
        // Reading stdin blocks, so it has a thread of its own that the context does not wait for.
        std::thread::spawn(move || {
            for line in std::io::stdin().lines().map_while(Result::ok) {
                if input.push(line).is_err() {
                    break;
                }
            }
            let _ = done.send(());
        });
        return Ok((lines.flat_map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>()), Some(ended)));
    }
    let rate = flags.number("rate", 100_000)?;
    let records = ssc.generator_stream(RecordPool::standard(), rate);
    Ok((records.flat_map(|r| r.words().map(str::to_owned).collect::<Vec<_>>()), None))
}

fn run(flags: &Flags) -> Result<(), Box<dyn std::error::Error>> {
    let batch = Duration::from_millis(flags.number("batch-ms", 500)?);
    let window = Duration::from_secs(flags.number("window-s", 30)?);
    let cluster = local_cluster(flags)?;
    let partitions = state_partitions();
    let ssc = StreamingContext::new(cluster.context(), batch, Arc::new(SystemClock::new()))?;
    let progress = Progress::new(flags.has("quiet"));
    ssc.add_listener(progress.clone());

    let (words, input_done) = words(&ssc, flags)?;
    let counts = windowed_counts(&words.map(|w| (w, 1u64)), window, batch, partitions)?;
    let top = track_top(&counts, 10, 5, flags.has("quiet"))?;

    // A run of bounded length without checkpoints: the state's lineage grows for its duration.
    ssc.allow_unbounded_lineage();
    let handle = ssc.start()?;
    let until = if input_done.is_some() {
        Until::InputEnds
    } else {
        Until::Elapsed(Duration::from_secs(flags.number("seconds", 10)?))
    };
    run_until(&handle, until, input_done)?;
    progress.summary(batch);
    print_top("top words over the last window:", &top.lock().map_err(|_| "a lock was poisoned")?);
    Ok(())
}

fn main() -> ExitCode {
    main_with(USAGE, &["stdin", "quiet"], run)
}
