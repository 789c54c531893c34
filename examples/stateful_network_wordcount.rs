//! Spark's StatefulNetworkWordCount: running word counts, since the start, of the lines a TCP
//! server sends, kept with `update_state_by_key` and printed every 1 s batch.
//!
//! ```text
//! nc -lk 9999
//! cargo run --release --example stateful_network_wordcount -- localhost 9999
//! cargo run --release --example stateful_network_wordcount -- localhost 9999 --cluster local:3
//! ```
//!
//! Type lines into netcat's terminal: each batch prints the words seen so far with their
//! totals. It runs until Ctrl-C, or for `--seconds N`. The state is the running totals, a
//! dataset hash-partitioned by word; each batch adds its own counts to it without shuffling it.
//!
//! The state is checkpointed (every 10 s at the default batch interval), which cuts its
//! lineage, in a temporary directory removed at the end of the run (`--checkpoint-dir DIR`
//! keeps them in `DIR` instead); `recoverable_network_wordcount` shows the restart from them.
//! With `--cluster local:N` the worker processes write and read the checkpoints in the same
//! directory.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)] // An example program reports on stdout.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use dstream::{Context, Error, StreamingContext, SystemClock};
use dstream_examples::{main_with, print_running_word_totals, run_until, ClusterArgs, Progress, Until};
use dstream_storage::{LocalFs, SocketTextReceiver};

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
    /// Keep the checkpoints in DIR (a later run with the same flags resumes from them)
    /// [default: a temporary directory, removed at the end]
    #[arg(long, value_name = "DIR")]
    checkpoint_dir: Option<PathBuf>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let batch = Duration::from_millis(args.batch_ms);
    let partitions = usize::try_from(args.partitions)?;
    let progress = Progress::new(true);
    // A state needs checkpoints, or its lineage grows every batch (Spark's example calls
    // `ssc.checkpoint`): by default in a directory of this run, removed at the end.
    // `recoverable_network_wordcount` keeps them to resume after a restart.
    let (dir, temporary) = match &args.checkpoint_dir {
        Some(dir) => (dir.clone(), false),
        None => (std::env::temp_dir().join(format!("dstream-stateful-wordcount-{}", std::process::id())), true),
    };
    let checkpoints = dstream_storage::checkpointing(LocalFs::new(&dir)?);
    let receiver = SocketTextReceiver::new((args.host.as_str(), args.port))?;
    // Every process of the cluster builds the program (`--cluster`); the receiver and the
    // output run in the driver only.
    let program = |ctx: &Context| {
        StreamingContext::get_or_create(
            ctx.clone(),
            batch,
            Arc::new(SystemClock::new()),
            checkpoints,
            |ssc| -> Result<(), Error> {
                ssc.add_listener(progress.clone());
                print_running_word_totals(ssc, receiver, partitions)
            },
        )
    };
    // The worker processes of `--cluster local:N` write and read the state's checkpoints too:
    // they get the driver's directory, a temporary one included (which only the driver removes).
    let shared_dir = temporary.then(|| dir.clone().into_os_string());
    let worker_args = std::env::args_os()
        .skip(1)
        .chain(shared_dir.into_iter().flat_map(|dir| [OsString::from("--checkpoint-dir"), dir]));
    let (_cluster, (ssc, ())) = args.cluster.launch_with_worker_args(worker_args, program)?;

    println!(
        "stateful_network_wordcount: running word counts of {}:{} every {} ms (checkpoints in {})",
        args.host,
        args.port,
        args.batch_ms,
        dir.display()
    );
    let handle = ssc.start()?;
    let ended = run_until(&handle, Until::seconds(args.seconds), None);
    progress.summary(batch);
    if temporary {
        // Best effort: a directory left behind is in the temporary directory anyway.
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(ended?)
}

fn main() -> ExitCode {
    main_with(run)
}
