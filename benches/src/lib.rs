//! Benchmarks of dstream; see BENCHMARKS.md for the figures and the commands.
//!
//! Besides the criterion micro-benchmarks (`benches/`), this crate holds the throughput
//! harness (`src/bin/harness.rs`): the paper's Grep, WordCount and TopKCount jobs
//! ([`jobs`]) on dstream, in process ([`dstream_jobs`]) and on a driver and worker processes
//! over TCP ([`dstream_tcp_jobs`]), on timely dataflow ([`timely_jobs`]) and as a hand-written
//! baseline ([`baseline`]), fed the same records on the same schedule
//! ([`feed`]), their outputs gathered and judged by a [`collector::Collector`], and the
//! maximum sustainable rate found by [`search`] and written out by [`report`].
//!
//! Every implementation runs in two modes: timed (records paced by the wall clock at a rate,
//! batches closed by time) and fixed ([`run_fixed`]: no clock, batch `k` is a fixed number of
//! consecutive records), in which all of them must give identical outputs batch by batch.
//!
//! An executable that runs [`Impl::DstreamTcp`] calls [`dstream_tcp_jobs::serve_if_worker`]
//! first in its `main`: its worker processes are that executable again.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod baseline;
pub mod collector;
pub mod dstream_jobs;
pub mod dstream_tcp_jobs;
pub mod feed;
pub mod histogram;
pub mod jobs;
pub mod report;
pub mod search;
pub mod timely_jobs;
pub mod usage;

use collector::Collector;
use feed::Feed;
use jobs::{Detail, Impl, Job, Output};

/// The shortest wait of a paced input between two rounds of records: a high rate is served
/// in bursts of at least this much time, as `dstream`'s generator receiver does.
pub const ROUND: Duration = Duration::from_millis(1);

/// How long after a timed run is set up its schedule starts (for `dstream-tcp`, after its
/// cluster's launch): the inputs and workers are ready by then.
pub const START_AHEAD: Duration = Duration::from_millis(200);

/// What a run of one job on one implementation computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setup {
    /// The job.
    pub job: Job,
    /// Worker threads (dstream: workers and task threads).
    pub workers: usize,
    /// The window of WordCount and TopKCount, in batches.
    pub window_batches: u64,
    /// What WordCount outputs per batch.
    pub detail: Detail,
}

/// Why a run failed (as opposed to running and being unstable).
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// dstream returned an error.
    #[error("dstream: {0}")]
    Dstream(#[from] dstream::Error),
    /// dstream's TCP cluster could not be launched (boxed: the error is large).
    #[error("dstream-tcp: {0}")]
    Tcp(#[source] Box<dstream_tcp::LaunchError>),
    /// A worker thread of timely or of the baseline failed.
    #[error("{0}")]
    Worker(String),
    /// Writing the report failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

impl From<dstream_tcp::LaunchError> for HarnessError {
    fn from(e: dstream_tcp::LaunchError) -> HarnessError {
        HarnessError::Tcp(Box::new(e))
    }
}

/// When a timed run gives up waiting for its last measured batch: the collector's abort lag
/// after the last batch closes, plus a second.
pub(crate) fn deadline(feed: &Feed, collector: &Collector) -> Instant {
    match *feed {
        Feed::Timed { start, batch, batches, .. } => {
            start + batch * u32::try_from(batches).unwrap_or(u32::MAX) + collector.abort_lag() + Duration::from_secs(1)
        }
        Feed::Fixed { .. } => Instant::now(),
    }
}

/// The batches a collector of `imp` receives per batch.
fn parts(imp: Impl, setup: &Setup) -> usize {
    match imp {
        Impl::Dstream | Impl::DstreamTcp => 1,
        Impl::Timely | Impl::Baseline => setup.workers.max(1),
    }
}

/// Runs `imp` over `feed`, reporting to `collector`.
pub fn run_with(imp: Impl, setup: &Setup, feed: Feed, collector: &Arc<Collector>) -> Result<(), HarnessError> {
    match imp {
        Impl::Dstream => dstream_jobs::run(setup, feed, collector),
        Impl::DstreamTcp => dstream_tcp_jobs::run(setup, feed, collector),
        Impl::Timely => timely_jobs::run(setup, feed, collector),
        Impl::Baseline => baseline::run(setup, feed, collector),
    }
}

/// Runs `imp` without a clock: `batches` batches of `per_batch` consecutive pool records, and
/// returns each batch's output, in order. The outputs of all implementations must be equal.
pub fn run_fixed(imp: Impl, setup: &Setup, batches: u64, per_batch: u64) -> Result<Vec<Output>, HarnessError> {
    let collector = Arc::new(Collector::new(parts(imp, setup), 0..0, Duration::MAX, true));
    run_with(imp, setup, Feed::Fixed { per_batch, batches }, &collector)?;
    let (_, outputs) = collector.take();
    if outputs.len() as u64 != batches || outputs.iter().enumerate().any(|(i, (b, _))| *b != i as u64) {
        return Err(HarnessError::Worker(format!("{imp}: {} of {batches} batches output", outputs.len())));
    }
    Ok(outputs.into_iter().map(|(_, o)| o).collect())
}

/// One timed run: `imp` at `rate` records per second in batches of `batch`, `warmup` then
/// `measure`, judged against the latency `bound`.
pub fn run_timed(
    imp: Impl,
    setup: &Setup,
    rate: u64,
    batch: Duration,
    warmup: Duration,
    measure: Duration,
    bound: Duration,
) -> Result<collector::RunStats, HarnessError> {
    let batch_ns = batch.as_nanos().max(1);
    let first_measured = u64::try_from(warmup.as_nanos().div_ceil(batch_ns)).unwrap_or(u64::MAX);
    let batches = u64::try_from((warmup + measure).as_nanos().div_ceil(batch_ns)).unwrap_or(u64::MAX);
    let measured = first_measured..batches.max(first_measured + 1);
    let abort_lag = bound * 2;
    let collector = Arc::new(Collector::new(parts(imp, setup), measured.clone(), abort_lag, false));
    let feed = Feed::Timed { start: Instant::now() + START_AHEAD, rate, batch, batches: measured.end };
    // A run that falls behind may hold ever more input: cut it short at three quarters of the
    // machine's memory, so that the search goes on instead of the kernel killing the harness.
    let watch = usage::Watch::start(&collector, usage::machine_bytes() / 4 * 3);
    let ran = run_with(imp, setup, feed, &collector);
    let used = watch.finish();
    ran?;
    let (done, _) = collector.take();
    let mut stats = collector::evaluate(&done, measured, rate, batch, bound, collector.abort_reason());
    stats.usage = used;
    Ok(stats)
}
