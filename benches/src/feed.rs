//! The input schedule shared by every implementation: which records make up each batch and
//! when each record is due.
//!
//! Record `i` (counted from 0) of a stream at `rate` records per second is emitted
//! `(i + 1) / rate` seconds after the start, truncated to the nanosecond: the schedule of
//! [`dstream::generator::GeneratorReceiver`], so one formula gives the emission time of any
//! record in any implementation. Batch `k` closes `(k + 1)` batch intervals after the start
//! and holds the records emitted up to then that earlier batches did not. Record `i` is line
//! `i` of the replayed [`dstream::generator::RecordPool`].

use std::time::{Duration, Instant};

/// When record `i` is emitted, in nanoseconds after the start (`u64::MAX` at rate zero).
pub fn emitted_ns(rate: u64, i: u64) -> u64 {
    if rate == 0 {
        return u64::MAX;
    }
    u64::try_from((u128::from(i) + 1) * 1_000_000_000 / u128::from(rate)).unwrap_or(u64::MAX)
}

/// How many records are emitted by `t_ns` after the start: those with
/// [`emitted_ns`] at or before it.
pub fn due_by(rate: u64, t_ns: u64) -> u64 {
    // emitted(i) <= t  <=>  (i + 1) * 1e9 < (t + 1) * rate.
    let due = ((u128::from(t_ns) + 1) * u128::from(rate)).div_ceil(1_000_000_000).saturating_sub(1);
    u64::try_from(due).unwrap_or(u64::MAX)
}

/// Where the records come from and how they are cut into batches.
#[derive(Clone, Copy, Debug)]
pub enum Feed {
    /// Paced by the wall clock from `start`: `rate` records per second, batches of `batch`.
    Timed {
        /// Time zero of the schedule.
        start: Instant,
        /// Records per second.
        rate: u64,
        /// The batch interval.
        batch: Duration,
        /// The number of batches in the run.
        batches: u64,
    },
    /// No clock: batch `k` is records `k * per_batch .. (k + 1) * per_batch`, all due at once.
    Fixed {
        /// Records per batch.
        per_batch: u64,
        /// The number of batches in the run.
        batches: u64,
    },
}

impl Feed {
    /// The number of batches.
    pub fn batches(&self) -> u64 {
        match *self {
            Feed::Timed { batches, .. } | Feed::Fixed { batches, .. } => batches,
        }
    }

    /// The index after the last record of batch `k`.
    pub fn end(&self, k: u64) -> u64 {
        match *self {
            Feed::Timed { rate, batch, .. } => due_by(rate, self.close_ns_of(k, batch)),
            Feed::Fixed { per_batch, .. } => (k + 1) * per_batch,
        }
    }

    /// The index of the first record of batch `k`.
    pub fn first(&self, k: u64) -> u64 {
        if k == 0 {
            0
        } else {
            self.end(k - 1)
        }
    }

    /// The records of the whole run.
    pub fn total(&self) -> u64 {
        match self.batches() {
            0 => 0,
            n => self.end(n - 1),
        }
    }

    /// When batch `k` closes, in nanoseconds after the start (0 without a clock).
    pub fn close_ns(&self, k: u64) -> u64 {
        match *self {
            Feed::Timed { batch, .. } => self.close_ns_of(k, batch),
            Feed::Fixed { .. } => 0,
        }
    }

    fn close_ns_of(&self, k: u64, batch: Duration) -> u64 {
        u64::try_from(batch.as_nanos() * u128::from(k + 1)).unwrap_or(u64::MAX)
    }

    /// Nanoseconds since the start (0 before it, and without a clock).
    pub fn now_ns(&self) -> u64 {
        match *self {
            Feed::Timed { start, .. } => {
                u64::try_from(Instant::now().saturating_duration_since(start).as_nanos()).unwrap_or(u64::MAX)
            }
            Feed::Fixed { .. } => 0,
        }
    }

    /// How many records are due now (all of them without a clock).
    pub fn due_now(&self) -> u64 {
        match *self {
            Feed::Timed { rate, start, .. } if Instant::now() >= start => due_by(rate, self.now_ns()).min(self.total()),
            Feed::Timed { .. } => 0,
            Feed::Fixed { .. } => self.total(),
        }
    }

    /// How long ago record `i` was due (zero without a clock or when it is not due yet): how
    /// far an input that has not taken it yet lags the schedule.
    pub fn late_by(&self, i: u64) -> Duration {
        match *self {
            Feed::Timed { rate, .. } => Duration::from_nanos(self.now_ns().saturating_sub(emitted_ns(rate, i))),
            Feed::Fixed { .. } => Duration::ZERO,
        }
    }

    /// How long until record `i` is due (zero without a clock or when it is due).
    pub fn wait_for(&self, i: u64) -> Duration {
        match *self {
            Feed::Timed { rate, .. } => Duration::from_nanos(emitted_ns(rate, i).saturating_sub(self.now_ns())),
            Feed::Fixed { .. } => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_by_counts_the_records_emitted_by_then() {
        for rate in [1u64, 7, 1_000, 333_333, 10_000_000] {
            for i in [0u64, 1, 2, 99, 12_345] {
                let e = emitted_ns(rate, i);
                assert_eq!(due_by(rate, e), i + 1, "rate {rate} record {i}");
                assert_eq!(due_by(rate, e - 1), i, "rate {rate} record {i}");
            }
        }
    }

    #[test]
    fn batches_tile_the_records() {
        let feed = Feed::Timed { start: Instant::now(), rate: 333_333, batch: Duration::from_millis(10), batches: 50 };
        let mut next = 0;
        for k in 0..feed.batches() {
            assert_eq!(feed.first(k), next);
            next = feed.end(k);
            assert!(emitted_ns(333_333, next - 1) <= feed.close_ns(k));
            assert!(emitted_ns(333_333, next) > feed.close_ns(k));
        }
        assert_eq!(feed.total(), next);
        assert_eq!(Feed::Fixed { per_batch: 5, batches: 3 }.total(), 15);
    }
}
