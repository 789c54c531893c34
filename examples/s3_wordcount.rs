//! Running word totals over synthetic records, checkpointed to an S3 bucket: any machine that
//! runs the same command with the same bucket and prefix resumes where the last run stopped.
//! Needs the `s3` feature.
//!
//! ```text
//! export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...
//! cargo run --release --features s3 --example s3_wordcount -- --bucket my-bucket --seconds 10
//! cargo run --release --features s3 --example s3_wordcount -- --bucket my-bucket --seconds 10
//! # the second run says it resumes, and its totals go on from the first run's
//! ```
//!
//! `--endpoint http://127.0.0.1:9000` points it at another S3 server (MinIO, moto). With
//! `--cluster local:N` every process connects to the bucket itself: the workers write and
//! read the state's checkpoints there.
//!
//! The totals (`update_state_by_key`) are checkpointed every 10 s, the metadata after every
//! batch and each batch's input before its outputs; a restart reads them back as it does
//! from a directory (see `recoverable_network_wordcount`). Each batch prints nothing; the run
//! ends with the words counted so far, over every run on this prefix.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)] // An example program reports on stdout.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use dstream::generator::RecordPool;
use dstream::{Context, Error, Storage, StreamingContext, SystemClock};
use dstream_examples::{main_with, run_until, ClusterArgs, Progress, Until};
use dstream_storage::{S3Config, S3};

/// Running word totals, checkpointed to S3 and resumed from there.
#[derive(Debug, Parser)]
#[command(name = "s3_wordcount")]
struct Args {
    /// The bucket of the checkpoints
    #[arg(long)]
    bucket: String,
    /// The checkpoints' key prefix in the bucket (a restart must keep it)
    #[arg(long, default_value = "s3_wordcount")]
    prefix: String,
    /// Another S3 server's URL [default: AWS]
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// The bucket's region
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// How long to run, in seconds (Ctrl-C stops earlier, gracefully)
    #[arg(long, value_name = "N", default_value_t = 10)]
    seconds: u64,
    /// Synthetic records per second
    #[arg(long, value_name = "N", default_value_t = 2_000)]
    rate: u64,
    /// The batch interval, in milliseconds (a restart must keep it)
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    batch_ms: u64,
    #[command(flatten)]
    cluster: ClusterArgs,
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let batch = Duration::from_millis(args.batch_ms);
    let mut config = S3Config::new(&args.bucket).prefix(&args.prefix).region(&args.region);
    if let Some(endpoint) = &args.endpoint {
        config = config.endpoint(endpoint);
    }
    // Fails here, typed, on a missing bucket or refused credentials.
    let store = S3::connect(config)?;
    let resuming = !store.list("metadata/")?.is_empty();
    let checkpoints = dstream_storage::checkpointing(store);
    let progress = Progress::new(true);
    let words_so_far = Arc::new(AtomicU64::new(0));
    let latest = Arc::clone(&words_so_far);

    let program = |ctx: &Context| {
        StreamingContext::get_or_create(ctx.clone(), batch, Arc::new(SystemClock::new()), checkpoints, |ssc| {
            ssc.add_listener(progress.clone());
            let words = ssc
                .generator_stream(RecordPool::standard(), args.rate)
                .flat_map(|r| r.words().map(str::to_owned).collect::<Vec<_>>());
            let totals = words.map(|w| (w, 1u64)).update_state_by_key(
                |ones: Vec<u64>, total: Option<u64>| Some(total.unwrap_or(0) + ones.len() as u64),
                4,
            )?;
            // Derived outside the output, so that worker processes build it too.
            totals.map(|(_, n)| n).reduce(|a, b| a + b).foreach_rdd(move |rdd, _| {
                latest.store(rdd.collect()?.iter().sum(), Ordering::SeqCst);
                Ok(())
            })?;
            Ok::<(), Error>(())
        })
    };
    let (_cluster, (ssc, ())) = args.cluster.launch(program)?;
    if args.cluster.is_worker_process() {
        let handle = ssc.start()?;
        return Ok(run_until(&handle, Until::Interrupted, None)?);
    }
    let url = format!("s3://{}/{}", args.bucket, args.prefix);
    if resuming {
        println!("s3_wordcount: resuming from the checkpoints in {url}");
    } else {
        println!("s3_wordcount: starting fresh, checkpointing to {url}");
    }
    let handle = ssc.start()?;
    run_until(&handle, Until::seconds(Some(args.seconds)), None)?;
    progress.summary(batch);
    println!("words counted over every run: {}", words_so_far.load(Ordering::SeqCst));
    Ok(())
}

fn main() -> ExitCode {
    main_with(run)
}
