//! Spark's NetworkWordCount: counts the words of the lines a TCP server sends, per batch of
//! 1 s, and prints them.
//!
//! Start a server that sends what you type (netcat), then the program, and type lines into
//! netcat's terminal:
//!
//! ```text
//! nc -lk 9999
//! cargo run --release --example network_wordcount -- localhost 9999
//! cargo run --release --example network_wordcount -- localhost 9999 --cluster local:3   # 3 worker processes
//! ```
//!
//! It runs until Ctrl-C (a graceful stop: every line received is counted), or for
//! `--seconds N`. A server that is not there, or that closes the connection, is reported on
//! stderr and the receiver keeps trying to connect (with a backoff of up to 5 s), so the
//! program can be started first. `--help` lists the flags.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)] // An example program reports on stdout.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use dstream::{Context, Error, StreamingContext, SystemClock};
use dstream_examples::{main_with, run_until, words_of, ClusterArgs, Progress, Until};
use dstream_storage::SocketTextReceiver;

/// Word counts of each batch of lines read from a TCP server.
#[derive(Debug, Parser)]
#[command(name = "network_wordcount")]
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
    #[command(flatten)]
    cluster: ClusterArgs,
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let batch = Duration::from_millis(args.batch_ms);
    // Reports receiver errors (a refused connection) on stderr, and the summary at the end.
    let progress = Progress::new(true);
    // Resolved before the program is built: the program returns dstream errors only.
    let receiver = SocketTextReceiver::new((args.host.as_str(), args.port))?;
    // Every process of the cluster builds the program (`--cluster`); the receiver and the
    // output run in the driver only.
    let program = |ctx: &Context| -> Result<_, Error> {
        let ssc = StreamingContext::new(ctx.clone(), batch, Arc::new(SystemClock::new()))?;
        ssc.add_listener(progress.clone());
        let lines = ssc.receiver_stream(receiver);
        let counts = lines.flat_map(|line| words_of(&line)).map(|word| (word, 1u64)).reduce_by_key(|a, b| a + b);
        counts.print(10)?;
        Ok(ssc)
    };
    let (_cluster, ssc) = args.cluster.launch(program)?;

    println!("network_wordcount: counting the words of {}:{} every {} ms", args.host, args.port, args.batch_ms);
    let handle = ssc.start()?;
    run_until(&handle, Until::seconds(args.seconds), None)?;
    progress.summary(batch);
    Ok(())
}

fn main() -> ExitCode {
    main_with(run)
}
