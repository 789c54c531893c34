//! Spark's RecoverableNetworkWordCount: running word counts of the lines a TCP server sends,
//! on a context built with `StreamingContext::get_or_create`, so a killed program restarted
//! with the same checkpoint directory resumes where it stopped.
//!
//! ```text
//! nc -lk 9999
//! cargo run --release --example recoverable_network_wordcount -- localhost 9999
//! # type some lines into netcat's terminal, then kill the program (Ctrl-C, or kill -9 PID)
//! cargo run --release --example recoverable_network_wordcount -- localhost 9999
//! # it says it resumes, and its totals go on from the last completed batch
//! ```
//!
//! The checkpoint directory (`--checkpoint-dir`, by default `dstream-recoverable-wordcount`
//! under the system's temporary directory) keeps the metadata after every batch, each batch's
//! input before its outputs run, and the running totals every 10 s. A restart reads the newest
//! intact checkpoint of the totals, recomputes the batches after it from the logged input
//! without printing them again, runs once the batch that had started but not completed, runs
//! at once the batches whose time passed while the program was down, then goes on. Lines the
//! server sent while no program was connected were never received, and are not counted.
//!
//! With `--cluster local:N` (a driver and N worker processes) or `listen:IP:PORT:N`, every
//! process opens the directory: it must be storage they all reach (on one machine, any
//! directory; across machines, a shared one).
//!
//! The directory belongs to this program: a restart with another batch interval or another
//! number of partitions is refused (`ProgramMismatch`); delete the directory to start over.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)] // An example program reports on stdout.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use dstream::{Context, Error, StreamingContext, SystemClock};
use dstream_examples::{main_with, print_running_word_totals, run_until, ClusterArgs, Progress, Until};
use dstream_storage::{LocalFs, SocketTextReceiver};

/// Running word counts of the lines read from a TCP server, resumed after a restart.
#[derive(Debug, Parser)]
#[command(name = "recoverable_network_wordcount")]
struct Args {
    /// The host of the server to read lines from
    #[arg(default_value = "localhost")]
    host: String,
    /// Its port
    #[arg(default_value_t = 9999)]
    port: u16,
    /// Where the checkpoints live; a restart with the same directory resumes
    /// [default: dstream-recoverable-wordcount in the temporary directory]
    #[arg(long, value_name = "DIR")]
    checkpoint_dir: Option<PathBuf>,
    /// Stop after N seconds [default: run until Ctrl-C]
    #[arg(long, value_name = "N")]
    seconds: Option<u64>,
    /// The batch interval, in milliseconds (a restart must keep it)
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    batch_ms: u64,
    /// Partitions of the running totals (a restart must keep them)
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    partitions: u64,
    #[command(flatten)]
    cluster: ClusterArgs,
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let batch = Duration::from_millis(args.batch_ms);
    let dir = args.checkpoint_dir.clone().unwrap_or_else(|| std::env::temp_dir().join("dstream-recoverable-wordcount"));
    let resuming = std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some());
    let partitions = usize::try_from(args.partitions)?;
    // Resolved before the program is built: the job function returns dstream errors only.
    let receiver = SocketTextReceiver::new((args.host.as_str(), args.port))?;
    let checkpoints = dstream_storage::checkpointing(LocalFs::new(&dir)?);
    let progress = Progress::new(true);

    // The job function defines the program; it runs on a fresh start and on a restart alike,
    // so both build the same streams. Every process of the cluster builds it (`--cluster`):
    // the worker processes of `local:N` run with the same flags, so they open the same
    // directory, where they write and read the state's checkpoints; the receiver, the output
    // and the resuming run in the driver only.
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
    let (_cluster, (ssc, ())) = args.cluster.launch(program)?;

    if resuming {
        println!("recoverable_network_wordcount: resuming from the checkpoints in {}", dir.display());
    } else {
        println!("recoverable_network_wordcount: starting fresh, checkpointing to {}", dir.display());
    }
    println!("  counting the words of {}:{} every {} ms", args.host, args.port, args.batch_ms);
    let handle = ssc.start()?;
    run_until(&handle, Until::seconds(args.seconds), None)?;
    progress.summary(batch);
    Ok(())
}

fn main() -> ExitCode {
    main_with(run)
}
