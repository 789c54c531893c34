//! Gathers the batches' outputs of a run, with the time each was produced, and judges the
//! run against the stability criterion.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::histogram::Histogram;
use crate::jobs::Output;

/// One batch's output: the records it held and when it was produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchRecord {
    /// The batch's index from the start of the run.
    pub batch: u64,
    /// The indices of its records: `first..end`.
    pub first: u64,
    /// See `first`.
    pub end: u64,
    /// When the batch closed, in nanoseconds after the start.
    pub close_ns: u64,
    /// When its output was produced (its last part, if it has several), after the start.
    pub output_ns: u64,
}

impl BatchRecord {
    /// From the batch's close to its output: the time it took to process, including any wait
    /// behind earlier batches.
    pub fn lag_ns(&self) -> u64 {
        self.output_ns.saturating_sub(self.close_ns)
    }
}

#[derive(Default)]
struct Pending {
    parts: Vec<Output>,
    first: u64,
    end: u64,
    close_ns: u64,
    output_ns: u64,
}

#[derive(Default)]
struct State {
    pending: BTreeMap<u64, Pending>,
    done: Vec<BatchRecord>,
    outputs: Vec<(u64, Output)>,
    measured_done: u64,
}

/// Receives each batch's parts from the workers of an implementation.
pub struct Collector {
    parts: usize,
    keep_outputs: bool,
    measured: Range<u64>,
    abort_lag_ns: u64,
    state: Mutex<State>,
    aborted: AtomicBool,
    /// Why the run failed, when an implementation reported a failure rather than a lag.
    failure: Mutex<Option<String>>,
    stopped: AtomicBool,
    changed: Condvar,
}

impl Collector {
    /// A collector of batches made of `parts` parts each. A measured batch (`measured`)
    /// whose output lags its close by `abort_lag` or more ends the run early as unstable, and
    /// so does any batch lagging by four times that plus 2 s. Outputs are kept when
    /// `keep_outputs` (otherwise only the last one).
    pub fn new(parts: usize, measured: Range<u64>, abort_lag: Duration, keep_outputs: bool) -> Collector {
        Collector {
            parts: parts.max(1),
            keep_outputs,
            measured,
            abort_lag_ns: u64::try_from(abort_lag.as_nanos()).unwrap_or(u64::MAX),
            state: Mutex::new(State::default()),
            aborted: AtomicBool::new(false),
            failure: Mutex::new(None),
            stopped: AtomicBool::new(false),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking worker ends the run with an error anyway; its partial state is harmless.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One part of batch `batch` (records `first..end`, closed at `close_ns`), produced at
    /// `output_ns`.
    /// Parts reported once the run is over or cut short are ignored: a worker told to stop
    /// may close the batches it never fed.
    pub fn report(&self, batch: u64, first: u64, end: u64, close_ns: u64, output_ns: u64, part: Output) {
        if self.stopping() {
            return;
        }
        let mut state = self.lock();
        let pending = state.pending.entry(batch).or_default();
        pending.parts.push(part);
        (pending.first, pending.end, pending.close_ns) = (first, end, close_ns);
        pending.output_ns = pending.output_ns.max(output_ns);
        if pending.parts.len() < self.parts {
            return;
        }
        let Some(p) = state.pending.remove(&batch) else { return };
        let record = BatchRecord { batch, first: p.first, end: p.end, close_ns: p.close_ns, output_ns: p.output_ns };
        let output = Output::merge(p.parts);
        if !self.keep_outputs {
            state.outputs.clear();
        }
        state.outputs.push((batch, output));
        state.done.push(record);
        let lag = record.lag_ns();
        let measured = self.measured.contains(&batch);
        if measured {
            state.measured_done += 1;
        }
        let hopeless = self.abort_lag_ns.saturating_mul(4).saturating_add(2_000_000_000);
        if (measured && lag >= self.abort_lag_ns) || lag >= hopeless {
            self.aborted.store(true, Ordering::SeqCst);
        }
        self.changed.notify_all();
    }

    /// Whether the run was cut short as unstable.
    pub fn aborted(&self) -> bool {
        self.aborted.load(Ordering::SeqCst)
    }

    /// Cuts the run short if an input lags its schedule by `late` or more: every batch after
    /// it will then lag at least as much.
    pub fn input_late(&self, late: Duration) {
        if late.as_nanos() >= u128::from(self.abort_lag_ns) {
            self.abort();
        }
    }

    /// Marks the run as cut short because the implementation failed (a batch failed, for
    /// example when an overloaded engine's block stores are full): unstable, with `reason`.
    pub fn fail(&self, reason: String) {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(reason);
        self.abort();
    }

    /// Why the run was cut short, if it was.
    pub fn abort_reason(&self) -> Option<String> {
        if !self.aborted() {
            return None;
        }
        let failure = self.failure.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Some(failure.map_or_else(|| "cut short: a batch lagged too far".to_string(), |f| format!("cut short: {f}")))
    }

    /// Marks the run as cut short (an implementation that cannot keep up).
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::SeqCst);
        self.changed.notify_all();
    }

    /// The lag of a measured batch that cuts the run short.
    pub fn abort_lag(&self) -> Duration {
        Duration::from_nanos(self.abort_lag_ns)
    }

    /// Tells the workers to stop: the run is over.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.changed.notify_all();
    }

    /// Whether the workers should stop: the run is over or was cut short.
    pub fn stopping(&self) -> bool {
        self.stopped.load(Ordering::SeqCst) || self.aborted()
    }

    /// Waits until every measured batch has an output, the run is cut short, or `deadline`.
    pub fn wait(&self, deadline: Instant) {
        let mut state = self.lock();
        let wanted = self.measured.end.saturating_sub(self.measured.start);
        while state.measured_done < wanted && !self.aborted() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            state = self.changed.wait_timeout(state, left).map_or_else(|p| p.into_inner().0, |(s, _)| s);
        }
    }

    /// The batches output so far, in batch order, and the outputs kept.
    pub fn take(&self) -> (Vec<BatchRecord>, Vec<(u64, Output)>) {
        let mut state = self.lock();
        let mut done = std::mem::take(&mut state.done);
        done.sort_unstable_by_key(|b| b.batch);
        let mut outputs = std::mem::take(&mut state.outputs);
        outputs.sort_unstable_by_key(|(b, _)| *b);
        (done, outputs)
    }
}

/// What a measured run showed.
#[derive(Clone, Debug, PartialEq)]
pub struct RunStats {
    /// Records per second offered.
    pub rate: u64,
    /// Median end-to-end latency of the measured records, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Mean lag of a batch's output behind its close, ms.
    pub mean_lag_ms: f64,
    /// The largest lag, ms.
    pub max_lag_ms: f64,
    /// Mean lag of the last quarter of the measured batches minus that of the first, ms.
    pub lag_growth_ms: f64,
    /// Measured batches with an output, of those expected.
    pub batches: (u64, u64),
    /// Whether the run met the stability criterion.
    pub stable: bool,
    /// Why not, when it did not.
    pub reason: String,
    /// What the run used: peak resident memory and CPU.
    pub usage: crate::usage::Usage,
}

/// Judges a run: the latency of every record of the measured batches, and the criterion of
/// BENCHMARKS.md made precise. Stable means all of: every measured batch produced an output
/// and the run was not cut short (a batch output, a batch started or an input lagging its
/// schedule by the collector's abort lag, twice the bound in the harness); p99 latency below `bound`; mean lag below the batch
/// interval (processing keeps up); lag not growing (the last quarter's mean lag exceeds the
/// first quarter's by less than half a batch interval); no batch lagging by twice the bound.
pub fn evaluate(
    batches: &[BatchRecord],
    measured: Range<u64>,
    rate: u64,
    batch: Duration,
    bound: Duration,
    aborted: Option<String>,
) -> RunStats {
    let ms = |ns: f64| ns / 1e6;
    let seen: Vec<&BatchRecord> = batches.iter().filter(|b| measured.contains(&b.batch)).collect();
    let mut hist = Histogram::new();
    for b in &seen {
        hist.record_batch(rate, b.first, b.end, b.output_ns);
    }
    let lags: Vec<f64> = seen.iter().map(|b| b.lag_ns() as f64).collect();
    let mean = |xs: &[f64]| if xs.is_empty() { 0.0 } else { xs.iter().sum::<f64>() / xs.len() as f64 };
    let quarter = (lags.len() / 4).max(1).min(lags.len());
    let growth = mean(&lags[lags.len() - quarter..]) - mean(&lags[..quarter]);
    let max_lag = lags.iter().copied().fold(0.0, f64::max);
    let expected = measured.end.saturating_sub(measured.start);
    let p99 = hist.quantile(0.99) as f64;
    let (batch_ns, bound_ns) = (batch.as_nanos() as f64, bound.as_nanos() as f64);
    let reason = if let Some(why) = aborted {
        why
    } else if (seen.len() as u64) < expected {
        format!("{} of {expected} measured batches output", seen.len())
    } else if p99 >= bound_ns {
        format!("p99 {:.1} ms over the bound", ms(p99))
    } else if mean(&lags) >= batch_ns {
        format!("mean lag {:.1} ms over the batch interval", ms(mean(&lags)))
    } else if growth >= batch_ns / 2.0 {
        format!("lag grew by {:.1} ms", ms(growth))
    } else if max_lag >= 2.0 * bound_ns {
        format!("max lag {:.1} ms", ms(max_lag))
    } else {
        String::new()
    };
    RunStats {
        rate,
        p50_ms: ms(hist.quantile(0.5) as f64),
        p99_ms: ms(p99),
        mean_lag_ms: ms(mean(&lags)),
        max_lag_ms: ms(max_lag),
        lag_growth_ms: ms(growth),
        batches: (seen.len() as u64, expected),
        stable: reason.is_empty() && expected > 0,
        reason,
        usage: crate::usage::Usage::default(),
    }
}
