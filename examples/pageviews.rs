//! Running page-view counts per URL, kept with `update_state_by_key` (the D-Streams paper's
//! example): each batch prints the five most viewed URLs so far, and the end of the run the ten.
//!
//! ```text
//! cargo run --release --example pageviews                      # synthetic page views
//! cargo run --release --example pageviews -- --socket 127.0.0.1:9999   # one URL per line
//! cargo run --release --example pageviews -- --cluster local:3   # a driver and 3 worker processes
//! ```
//!
//! The synthetic views choose among `--pages` URLs (`/page/0` to `/page/999` by default) with a
//! Zipf distribution of exponent 1.0 from a seeded generator, so every run sees the same
//! sequence; they are emitted at `--rate` views per second, paced by the streaming context's
//! clock.
//!
//! `--help` lists the flags with their defaults.
//!
//! It runs without checkpointing, so the state's lineage reaches back to the first batch and
//! what each batch shuffled stays referenced: memory grows with the length of the run. A
//! context built with `StreamingContext::get_or_create` checkpoints the state and cuts its
//! lineage (see `recoverable_network_wordcount`).
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)] // An example program reports on stdout.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use dstream::{Context, DStream, Error, Receiver, ReceiverContext, SplitMix64, StreamingContext, SystemClock, Time};
use dstream_examples::{
    format_top, main_with, print_top, run_until, state_partitions, top_k, top_k_borrowed, ClusterArgs, Progress, Until,
};
use dstream_storage::SocketTextReceiver;

/// Running page-view counts per URL, kept with `update_state_by_key`.
#[derive(Debug, Parser)]
#[command(name = "pageviews")]
struct Args {
    /// Read URLs, one per line, from the TCP server at HOST:PORT instead of synthetic views
    #[arg(long, value_name = "HOST:PORT")]
    socket: Option<String>,
    /// How long to run, in seconds (Ctrl-C stops earlier, gracefully)
    #[arg(long, value_name = "N", default_value_t = 10)]
    seconds: u64,
    /// Synthetic views per second
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    rate: u64,
    /// Synthetic URLs to choose from
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pages: usize,
    /// The batch interval, in milliseconds
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    batch_ms: u64,
    /// Print no per-batch lines, only the summary and the final ranking
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// The seed of the synthetic views.
const SEED: u64 = 42;

/// The most views stored in one call.
const CHUNK: u64 = 4096;

/// A receiver of synthetic page views: URLs drawn with Zipf(1.0) over `pages` ranks, emitted at
/// `rate` views per second from its start, open loop (views due while it was late are emitted
/// at once).
struct PageViews {
    rate: u64,
    pages: usize,
    /// Spreads the ranks over the page numbers: coprime with `pages`, about 0.618 of it.
    stride: usize,
    rng: SplitMix64,
    /// `cdf[k]`: the probability of drawing one of the ranks `0..=k`; the last is exactly 1.
    cdf: Vec<f64>,
}

impl PageViews {
    fn new(rate: u64, pages: usize, seed: u64) -> PageViews {
        let pages = pages.max(1);
        let mut cdf: Vec<f64> = (1..=pages)
            .scan(0.0, |total, k| {
                *total += 1.0 / k as f64;
                Some(*total)
            })
            .collect();
        let total = cdf[pages - 1];
        cdf.iter_mut().for_each(|c| *c /= total);
        cdf[pages - 1] = 1.0;
        let stride = (pages * 618 / 1000..pages).find(|s| gcd(*s, pages) == 1).unwrap_or(1);
        PageViews { rate, pages, stride, rng: SplitMix64::new(seed), cdf }
    }

    /// The URL of the next view. Ranks are spread over the page numbers (rank 0 is not
    /// `/page/0`, rank 1 not `/page/1`).
    fn next_url(&mut self) -> String {
        // 53 random bits: a uniform f64 in [0, 1).
        let u = (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        let rank = self.cdf.partition_point(|&c| c <= u).min(self.pages - 1);
        format!("/page/{}", (rank * self.stride + 17) % self.pages)
    }

    /// How many views are due `elapsed` after the start.
    fn due(&self, elapsed: Duration) -> u64 {
        u64::try_from(elapsed.as_nanos() * u128::from(self.rate) / 1_000_000_000).unwrap_or(u64::MAX)
    }

    /// When view `i` (from 0) is due: `(i + 1) / rate` seconds after the start.
    fn due_time(&self, start: Time, i: u64) -> Time {
        if self.rate == 0 {
            return Time::from_nanos(u64::MAX);
        }
        let offset = ((u128::from(i) + 1) * 1_000_000_000).div_ceil(u128::from(self.rate));
        Time::from_nanos(start.as_nanos().saturating_add(u64::try_from(offset).unwrap_or(u64::MAX)))
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Receiver<String> for PageViews {
    fn run(&mut self, ctx: &ReceiverContext<String>) -> Result<(), String> {
        let clock = Arc::clone(ctx.clock());
        let start = clock.now();
        let mut emitted: u64 = 0;
        loop {
            let now = clock.now();
            let due = self.due(now - start);
            while emitted < due {
                let n = (due - emitted).min(CHUNK);
                let views: Vec<String> = (0..n).map(|_| self.next_url()).collect();
                if ctx.store(views).is_err() {
                    // The context stopped accepting input.
                    return Ok(());
                }
                emitted += n;
            }
            if ctx.is_stopped() {
                return Ok(());
            }
            // Wakes for the next view, but at most once a millisecond; a stop wakes it at once,
            // and the next round stores what is due by then and returns.
            ctx.wait_until(self.due_time(start, emitted).max(now + Duration::from_millis(1)));
        }
    }
}

/// The URLs viewed, from the source the flags name: `socket`'s lines, or synthetic views.
fn views(ssc: &StreamingContext, args: &Args, socket: Option<SocketTextReceiver>) -> DStream<String> {
    if let Some(receiver) = socket {
        return ssc.receiver_stream(receiver).map(|line| line.trim().to_owned()).filter(|url| !url.is_empty());
    }
    ssc.receiver_stream(PageViews::new(args.rate, args.pages, SEED))
}

/// What the end of a batch reports: the ten most viewed URLs, the views and the pages so far.
#[derive(Debug, Default, Clone)]
struct Totals {
    top: Vec<(String, u64)>,
    views: u64,
    pages: u64,
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let batch = Duration::from_millis(args.batch_ms);
    let partitions = state_partitions();
    let quiet = args.quiet;
    let progress = Progress::new(quiet);
    // Resolved before the program is built, so a bad address fails here, with its own error.
    let socket = args.socket.as_deref().map(SocketTextReceiver::new).transpose()?;
    let last: Arc<Mutex<Totals>> = Arc::default();
    // Every process of the cluster builds the program (`--cluster`); its outputs run in the
    // driver only.
    let program = |ctx: &Context| -> Result<_, Error> {
        let ssc = StreamingContext::new(ctx.clone(), batch, Arc::new(SystemClock::new()))?;
        ssc.add_listener(progress.clone());
        // Each batch's views are counted per URL (combined before the shuffle) into the
        // state's partitioning, so adding them to the state moves nothing more.
        let batch_counts = views(&ssc, &args, socket)
            .map(|url| (url, 1u64))
            .transform(move |rdd, _| rdd.reduce_by_key_with_partitions(|a, b| a + b, partitions));
        let running = batch_counts.update_state_by_key(
            |counts: Vec<u64>, total: Option<u64>| Some(total.unwrap_or(0) + counts.iter().sum::<u64>()),
            partitions,
        )?;
        // Each partition's top ten, views and pages, on the workers: a stream of the program
        // (not a dataset made inside the output), so worker processes can compute it too.
        let partials = running.map_partitions_ref(|_, part: &[(String, u64)]| {
            let views = part.iter().map(|(_, n)| n).sum::<u64>();
            let pages = part.len() as u64;
            [(top_k_borrowed(10, part), views, pages)]
        });
        let sink = Arc::clone(&last);
        // One job per batch, its partitions' results merged here.
        partials.foreach_rdd(move |rdd, time| {
            let mut totals = Totals::default();
            let mut tops = Vec::new();
            for (top, views, pages) in rdd.collect()? {
                tops.extend(top);
                totals.views += views;
                totals.pages += pages;
            }
            totals.top = top_k(10, tops);
            if !quiet {
                let top5 = &totals.top[..totals.top.len().min(5)];
                println!("batch {time}: {} views of {} pages; top {}", totals.views, totals.pages, format_top(top5));
            }
            *sink.lock().map_err(|_| Error::BatchFailed("a lock was poisoned".into()))? = totals;
            Ok(())
        })?;
        Ok(ssc)
    };
    let (_cluster, ssc) = args.cluster.launch(program)?;

    // A run of bounded length without checkpoints: the state's lineage grows for its duration.
    ssc.allow_unbounded_lineage();
    let handle = ssc.start()?;
    run_until(&handle, Until::Elapsed(Duration::from_secs(args.seconds)), None)?;
    progress.summary(batch);
    let totals = last.lock().map_err(|_| "a lock was poisoned")?.clone();
    print_top(&format!("most viewed of {} pages ({} views):", totals.pages, totals.views), &totals.top);
    Ok(())
}

fn main() -> ExitCode {
    main_with(run)
}
