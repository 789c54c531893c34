//! Word counts per batch over synthetic records, with the streaming context's metrics served
//! in Prometheus's text format while it runs.
//!
//! ```text
//! cargo run --release --example metrics_wordcount                 # metrics on 127.0.0.1:9464
//! curl -s http://127.0.0.1:9464/metrics | grep '^dstream_'
//! ```
//!
//! A Prometheus scrape configuration for it:
//!
//! ```text
//! scrape_configs:
//!   - job_name: dstream
//!     scrape_interval: 1s
//!     static_configs:
//!       - targets: ["127.0.0.1:9464"]
//! ```
//!
//! It runs for `--seconds` (Ctrl-C stops earlier, gracefully), then prints the records and
//! batches it counted. The metrics stay served after the stop, with their final values and
//! `dstream_context_state{state="stopped"} 1`: `--linger-scrapes K` waits for K more scrapes
//! before exiting, so a scraper collects the final values; `--scrapes-before-stop K` keeps it
//! running past `--seconds` until it was scraped K times. `--metrics-addr 127.0.0.1:0` picks
//! a free port; the first line printed names the address.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)] // An example program reports on stdout.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use dstream::generator::RecordPool;
use dstream::{Context, Error, StreamingContext, SystemClock};
use dstream_examples::{main_with, run_until, ClusterArgs, Progress, Until};
use dstream_storage::{PrometheusMetrics, SignalsExt};

/// How long `--linger-scrapes` waits for its scrapes at most.
const LINGER_WAIT_MAX: Duration = Duration::from_secs(60);

/// Word counts per batch, with Prometheus metrics on an HTTP endpoint.
#[derive(Debug, Parser)]
#[command(name = "metrics_wordcount")]
struct Args {
    /// Serve the metrics on this address (GET /metrics)
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:9464")]
    metrics_addr: String,
    /// How long to run, in seconds (Ctrl-C stops earlier, gracefully)
    #[arg(long, value_name = "N", default_value_t = 15)]
    seconds: u64,
    /// Synthetic records per second
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    rate: u64,
    /// The batch interval, in milliseconds
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    batch_ms: u64,
    /// Before the stop, once the time is up, wait until the metrics were scraped this many
    /// times (at most 60 s more)
    #[arg(long, value_name = "K", default_value_t = 0)]
    scrapes_before_stop: u64,
    /// After the stop, wait for this many more scrapes of the metrics before exiting (at most
    /// 60 s)
    #[arg(long, value_name = "K", default_value_t = 0)]
    linger_scrapes: u64,
    #[command(flatten)]
    cluster: ClusterArgs,
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let batch = Duration::from_millis(args.batch_ms);
    let progress = Progress::new(true);
    let records = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&records);
    let program = |ctx: &Context| -> Result<_, Error> {
        let ssc = StreamingContext::new(ctx.clone(), batch, Arc::new(SystemClock::new()))?;
        ssc.add_listener(progress.clone());
        let lines = ssc.generator_stream(RecordPool::standard(), args.rate);
        lines.count().foreach_rdd(move |rdd, _| {
            counted.fetch_add(rdd.collect()?.iter().sum::<u64>(), Ordering::SeqCst);
            Ok(())
        })?;
        let words = lines.flat_map(|r| r.words().map(str::to_owned).collect::<Vec<_>>());
        words.map(|w| (w, 1u64)).reduce_by_key(|a, b| a + b).print(3)?;
        Ok(ssc)
    };
    let (_cluster, ssc) = args.cluster.launch(program)?;
    if args.cluster.is_worker_process() {
        // A worker process serves tasks; the driver has the metrics.
        let handle = ssc.start()?;
        return Ok(run_until(&handle, Until::Interrupted, None)?);
    }
    let metrics = PrometheusMetrics::register(&ssc)?;
    let server = metrics.serve(args.metrics_addr.as_str())?;
    println!("metrics_wordcount: serving metrics on http://{}/metrics", server.local_addr());
    std::io::stdout().flush()?;

    let handle = ssc.start()?;
    if args.scrapes_before_stop == 0 {
        run_until(&handle, Until::Elapsed(Duration::from_secs(args.seconds)), None)?;
    } else if handle.await_termination_or_signal_timeout(Duration::from_secs(args.seconds))?.is_none() {
        // The time is up: the context stops once it was scraped running.
        let scraped = server.wait_for_scrapes(args.scrapes_before_stop, LINGER_WAIT_MAX);
        handle.stop(true)?;
        if !scraped {
            return Err(format!(
                "the metrics were not scraped {} times in {LINGER_WAIT_MAX:?}",
                args.scrapes_before_stop
            )
            .into());
        }
    }
    let batches = progress.batches();
    println!("records: {}", records.load(Ordering::SeqCst));
    println!("batches: {batches}");
    if args.linger_scrapes > 0 {
        let want = server.scrapes() + args.linger_scrapes;
        if !server.wait_for_scrapes(want, LINGER_WAIT_MAX) {
            return Err(
                format!("the metrics were not scraped {} times in {LINGER_WAIT_MAX:?}", args.linger_scrapes).into()
            );
        }
    }
    println!("scrapes: {}", server.scrapes());
    Ok(())
}

fn main() -> ExitCode {
    main_with(run)
}
