//! Running page-view counts per URL, kept with `update_state_by_key` (the D-Streams paper's
//! example): each batch prints the five most viewed URLs so far, and the end of the run the ten.
//!
//! ```text
//! cargo run --release --example pageviews                      # synthetic page views
//! cargo run --release --example pageviews -- --socket 127.0.0.1:9999   # one URL per line
//! ```
//!
//! The synthetic views choose among `--pages` URLs (`/page/0` to `/page/999` by default) with a
//! Zipf distribution of exponent 1.0 from a seeded generator, so every run sees the same
//! sequence; they are emitted at `--rate` views per second, paced by the streaming context's
//! clock.
//!
//! Flags: `--seconds N` (run time, default 10), `--rate N` (synthetic views per second,
//! default 100000), `--pages N` (synthetic URLs, default 1000), `--batch-ms N` (default 500),
//! `--workers N`, `--quiet` (no per-batch lines).
//!
//! The state's lineage reaches back to the first batch (there is no checkpointing yet to cut
//! it), so nothing a past batch computed is freed: memory grows with the length of the run
//! (about 6 MB a second at the default rate; 1.4 GB after 4 minutes).
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)] // An example program reports on stdout.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::{DStream, Error, Receiver, ReceiverContext, SplitMix64, StreamingContext, SystemClock, Time};
use dstream_examples::{
    format_top, local_cluster, main_with, print_top, run_until, state_partitions, top_k, top_k_borrowed, Flags,
    Progress, Until,
};
use dstream_storage::StreamingContextExt;

const USAGE: &str =
    "usage: pageviews [--socket HOST:PORT] [--seconds N] [--rate N] [--pages N] [--batch-ms N] [--workers N] [--quiet]";

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

/// The URLs viewed, from the source the flags name.
fn views(ssc: &StreamingContext, flags: &Flags) -> Result<DStream<String>, Box<dyn std::error::Error>> {
    if let Some(addr) = flags.text("socket") {
        return Ok(ssc.socket_text_stream(addr)?.map(|line| line.trim().to_owned()).filter(|url| !url.is_empty()));
    }
    let pages = usize::try_from(flags.number("pages", 1000)?)?;
    Ok(ssc.receiver_stream(PageViews::new(flags.number("rate", 100_000)?, pages, SEED)))
}

/// What the end of a batch reports: the ten most viewed URLs, the views and the pages so far.
#[derive(Debug, Default, Clone)]
struct Totals {
    top: Vec<(String, u64)>,
    views: u64,
    pages: u64,
}

fn run(flags: &Flags) -> Result<(), Box<dyn std::error::Error>> {
    let batch = Duration::from_millis(flags.number("batch-ms", 500)?);
    let cluster = local_cluster(flags)?;
    let partitions = state_partitions();
    let ssc = StreamingContext::new(cluster.context(), batch, Arc::new(SystemClock::new()))?;
    let quiet = flags.has("quiet");
    let progress = Progress::new(quiet);
    ssc.add_listener(progress.clone());

    // Each batch's views are counted per URL (combined before the shuffle) into the state's
    // partitioning, so adding them to the state moves nothing more.
    let batch_counts = views(&ssc, flags)?
        .map(|url| (url, 1u64))
        .transform(move |rdd, _| rdd.reduce_by_key_with_partitions(|a, b| a + b, partitions));
    let running = batch_counts.update_state_by_key(
        |counts: Vec<u64>, total: Option<u64>| Some(total.unwrap_or(0) + counts.iter().sum::<u64>()),
        partitions,
    )?;

    let last: Arc<Mutex<Totals>> = Arc::default();
    let sink = Arc::clone(&last);
    running.foreach_rdd(move |rdd, time| {
        // One job: each partition's top ten, views and pages, merged here.
        let parts = rdd
            .map_partitions_ref(|_, part: &[(String, u64)]| {
                let views = part.iter().map(|(_, n)| n).sum::<u64>();
                let pages = part.len() as u64;
                [(top_k_borrowed(10, part), views, pages)]
            })
            .collect()?;
        let mut totals = Totals::default();
        let mut tops = Vec::new();
        for (top, views, pages) in parts {
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

    // A run of bounded length without checkpoints: the state's lineage grows for its duration.
    ssc.allow_unbounded_lineage();
    let handle = ssc.start()?;
    run_until(&handle, Until::Elapsed(Duration::from_secs(flags.number("seconds", 10)?)), None)?;
    progress.summary(batch);
    let totals = last.lock().map_err(|_| "a lock was poisoned")?.clone();
    print_top(&format!("most viewed of {} pages ({} views):", totals.pages, totals.views), &totals.top);
    Ok(())
}

fn main() -> ExitCode {
    main_with(USAGE, &["quiet"], run)
}
