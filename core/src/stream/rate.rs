//! Rate control of receivers: a token bucket on the context's clock, and the listener that
//! sets its rate from completed batches (backpressure).

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::context::{BatchInfo, StreamingListener};
use super::lock;
use super::pid::PidRateEstimator;
use crate::time::{Clock, Time};

/// Token units per record: the bucket counts in billionths of a record, so that one
/// nanosecond at `rate` records per second adds exactly `rate` units (integer arithmetic, no
/// rounding drift).
const UNITS_PER_RECORD: u128 = 1_000_000_000;

/// A token bucket: `rate` records per second, holding at most 100 ms of them (at least one).
#[derive(Debug)]
pub(crate) struct RateLimiter {
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    rate_per_sec: u64,
    units: u128,
    /// When the bucket was last filled; `None` before the first record (it starts full).
    filled_at: Option<Time>,
}

impl Bucket {
    fn capacity_records(&self) -> u64 {
        (self.rate_per_sec / 10).max(1)
    }

    fn fill(&mut self, now: Time) {
        let cap = u128::from(self.capacity_records()) * UNITS_PER_RECORD;
        self.units = match self.filled_at {
            None => cap,
            Some(at) => {
                let elapsed = u128::from(now.as_nanos().saturating_sub(at.as_nanos()));
                self.units.saturating_add(elapsed.saturating_mul(u128::from(self.rate_per_sec))).min(cap)
            }
        };
        self.filled_at = Some(now);
    }
}

impl RateLimiter {
    pub(crate) fn new(rate_per_sec: u64) -> RateLimiter {
        RateLimiter { bucket: Mutex::new(Bucket { rate_per_sec: rate_per_sec.max(1), units: 0, filled_at: None }) }
    }

    /// Changes the rate (at least 1 record per second); tokens already in the bucket stay,
    /// up to the new capacity.
    pub(crate) fn set_rate(&self, rate_per_sec: u64, now: Time) {
        let mut b = lock(&self.bucket);
        b.fill(now);
        b.rate_per_sec = rate_per_sec.max(1);
        let cap = u128::from(b.capacity_records()) * UNITS_PER_RECORD;
        b.units = b.units.min(cap);
    }

    /// The rate, in records per second.
    pub(crate) fn rate_per_sec(&self) -> u64 {
        lock(&self.bucket).rate_per_sec
    }

    /// Waits on `clock` until at least one record may pass, and takes up to `wanted` of those
    /// the bucket holds: returns how many (at least 1, at most the bucket's capacity), or
    /// `None` if `stop` was set first.
    pub(crate) fn acquire(&self, wanted: usize, clock: &dyn Clock, stop: &AtomicBool) -> Option<usize> {
        loop {
            let deadline = {
                let mut b = lock(&self.bucket);
                let now = clock.now();
                b.fill(now);
                let available = u64::try_from(b.units / UNITS_PER_RECORD).unwrap_or(u64::MAX);
                let take = (wanted as u64).max(1).min(available);
                if take > 0 {
                    b.units -= u128::from(take) * UNITS_PER_RECORD;
                    return Some(take as usize);
                }
                // Until one record's worth has dripped in.
                let rate = u128::from(b.rate_per_sec);
                let nanos = (UNITS_PER_RECORD - b.units).div_ceil(rate);
                now + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
            };
            if !clock.wait_until(deadline, stop) {
                return None;
            }
        }
    }
}

/// How many records an input closed into each recent batch: what backpressure reads.
pub(crate) trait RecordsAt: Send + Sync {
    fn records_closed_at(&self, time: Time) -> Option<u64>;
}

/// Backpressure: after each completed batch, sets the limiter's rate to the PID estimate
/// (never above the static maximum).
pub(crate) struct RateController {
    pub(crate) limiter: Arc<RateLimiter>,
    pub(crate) input: Arc<dyn RecordsAt>,
    pub(crate) estimator: Mutex<PidRateEstimator>,
    pub(crate) rate_max_per_sec: Option<u64>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl StreamingListener for RateController {
    fn on_batch_completed(&self, info: &BatchInfo) {
        let Some(records) = self.input.records_closed_at(info.time) else { return };
        let end = info.time + info.total_delay;
        let estimate = lock(&self.estimator).compute(
            end.as_nanos() as f64 / 1e9,
            records,
            info.processing_delay,
            info.scheduling_delay,
        );
        if let Some(rate) = estimate {
            // The estimate is finite and at least the minimum rate: rounding cannot give 0.
            let rate = (rate.round() as u64).min(self.rate_max_per_sec.unwrap_or(u64::MAX)).max(1);
            self.limiter.set_rate(rate, self.clock.now());
            tracing::debug!(time = %info.time, records, rate, "backpressure rate");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ManualClock;

    #[test]
    fn the_bucket_passes_its_capacity_then_the_rate() {
        let clock = ManualClock::new(Time::ZERO);
        let stop = AtomicBool::new(false);
        let limiter = RateLimiter::new(1000); // 100 records of capacity
        assert_eq!(limiter.acquire(500, &clock, &stop), Some(100));
        clock.advance(Duration::from_millis(7));
        assert_eq!(limiter.acquire(500, &clock, &stop), Some(7));
        clock.advance(Duration::from_secs(5));
        assert_eq!(limiter.acquire(500, &clock, &stop), Some(100), "capped at the capacity");
        limiter.set_rate(10, clock.now());
        clock.advance(Duration::from_millis(100));
        assert_eq!(limiter.acquire(5, &clock, &stop), Some(1), "10/s holds one record");
        assert_eq!(limiter.rate_per_sec(), 10);
    }

    struct Counts(Vec<(Time, u64)>);
    impl RecordsAt for Counts {
        fn records_closed_at(&self, time: Time) -> Option<u64> {
            self.0.iter().find(|(t, _)| *t == time).map(|(_, n)| *n)
        }
    }

    fn batch(secs: u64, processing_ms: u64, scheduling_ms: u64) -> BatchInfo {
        let (processing, scheduling) = (Duration::from_millis(processing_ms), Duration::from_millis(scheduling_ms));
        BatchInfo {
            time: Time::from_millis(secs * 1000),
            records: 0,
            input_records: Vec::new(),
            scheduling_delay: scheduling,
            processing_delay: processing,
            total_delay: processing + scheduling,
            output_ops: Vec::new(),
            dead_letters: 0,
        }
    }

    #[test]
    fn backpressure_sets_the_estimate_capped_at_the_static_maximum() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Time::ZERO));
        let limiter = Arc::new(RateLimiter::new(5000));
        let controller = RateController {
            limiter: Arc::clone(&limiter),
            input: Arc::new(Counts(vec![(Time::from_millis(1000), 1000), (Time::from_millis(2000), 1000)])),
            estimator: Mutex::new(PidRateEstimator::new(Duration::from_secs(1))),
            rate_max_per_sec: Some(800),
            clock,
        };
        // The first batch only measures (1000 records in 500 ms): the initial rate stays.
        controller.on_batch_completed(&batch(1, 500, 0));
        assert_eq!(limiter.rate_per_sec(), 5000);
        // 1000 in 1 s with 500 ms of scheduling delay: 2000 - 1000 - 0.2 * 500 = 900, capped.
        controller.on_batch_completed(&batch(2, 1000, 500));
        assert_eq!(limiter.rate_per_sec(), 800);
        // A batch the input did not close (another stream's) changes nothing.
        controller.on_batch_completed(&batch(3, 1000, 0));
        assert_eq!(limiter.rate_per_sec(), 800);
    }

    #[test]
    fn a_stop_ends_a_wait_for_tokens() {
        let clock = Arc::new(ManualClock::new(Time::ZERO));
        let stop = Arc::new(AtomicBool::new(true));
        let limiter = RateLimiter::new(1);
        assert_eq!(limiter.acquire(1, &*clock, &stop), Some(1));
        assert_eq!(limiter.acquire(1, &*clock, &stop), None, "no token, and stopped");
    }
}
