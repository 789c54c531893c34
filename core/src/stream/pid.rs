//! Spark Streaming's PID rate estimator: the rate a receiver should store at, from the
//! records, processing delay and scheduling delay of each completed batch.

use std::time::Duration;

/// Spark's constants: `spark.streaming.backpressure.pid.proportional`, `.integral`,
/// `.derived` and `.minRate`.
const PROPORTIONAL: f64 = 1.0;
const INTEGRAL: f64 = 0.2;
const DERIVATIVE: f64 = 0.0;
pub(crate) const MIN_RATE_PER_SEC: f64 = 100.0;

/// A PID controller whose error is the difference between the rate it last gave and the rate
/// the last batch was processed at; the integral term is the backlog the scheduling delay
/// shows, in records per second of batch interval.
///
/// Pitfalls of Spark's estimator avoided: its result is never below the minimum rate and never
/// NaN or infinite (a batch without records or without processing time gives no estimate),
/// and the caller starts from an initial rate, so the batches before the first estimate are
/// bounded too.
#[derive(Debug)]
pub(crate) struct PidRateEstimator {
    batch_interval_secs: f64,
    /// The processing end of the last batch used, in seconds on the context's clock.
    latest_time: Option<f64>,
    latest_rate: f64,
    latest_error: f64,
}

impl PidRateEstimator {
    pub(crate) fn new(batch_interval: Duration) -> PidRateEstimator {
        PidRateEstimator {
            batch_interval_secs: batch_interval.as_secs_f64().max(f64::MIN_POSITIVE),
            latest_time: None,
            latest_rate: 0.0,
            latest_error: 0.0,
        }
    }

    /// The new rate, in records per second, after a batch of `records` that ended processing
    /// at `time_secs`; `None` for the first batch (it only gives the processing rate the next
    /// estimates start from) and for batches that say nothing (no records, no processing
    /// time, or not after the last one used).
    pub(crate) fn compute(
        &mut self,
        time_secs: f64,
        records: u64,
        processing_delay: Duration,
        scheduling_delay: Duration,
    ) -> Option<f64> {
        let processing_secs = processing_delay.as_secs_f64();
        if records == 0 || processing_secs <= 0.0 || self.latest_time.is_some_and(|t| time_secs <= t) {
            return None;
        }
        let processing_rate = records as f64 / processing_secs;
        let Some(latest_time) = self.latest_time.replace(time_secs) else {
            self.latest_rate = processing_rate;
            self.latest_error = 0.0;
            return None;
        };
        let since_update = time_secs - latest_time;
        let error = self.latest_rate - processing_rate;
        let historical_error = scheduling_delay.as_secs_f64() * processing_rate / self.batch_interval_secs;
        let d_error = (error - self.latest_error) / since_update;
        let rate = (self.latest_rate - PROPORTIONAL * error - INTEGRAL * historical_error - DERIVATIVE * d_error)
            .max(MIN_RATE_PER_SEC);
        if !rate.is_finite() {
            return None;
        }
        self.latest_rate = rate;
        self.latest_error = error;
        Some(rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn estimates_follow_spark_s_formula() {
        // (end of processing in s, records, processing ms, scheduling ms) -> estimate,
        // computed by hand with rate' = rate - 1.0 * error - 0.2 * scheduling * processed / interval.
        let table: &[(f64, u64, u64, u64, Option<f64>)] = &[
            // First batch: the processing rate (2000/s) is remembered, no estimate.
            (1.0, 1000, 500, 0, None),
            // Processed at 1000/s: error 2000 - 1000, backlog 0.5 * 1000 / 1 = 500.
            (2.0, 1000, 1000, 500, Some(2000.0 - 1000.0 - 0.2 * 500.0)),
            // Processed at 1000/s: error 900 - 1000 = -100, backlog 0.4 * 1000 = 400.
            (3.0, 900, 900, 400, Some(900.0 + 100.0 - 0.2 * 400.0)),
            // No records, or no processing time, or not later: nothing changes.
            (4.0, 0, 100, 0, None),
            (4.0, 10, 0, 0, None),
            (3.0, 10, 100, 0, None),
            // Processed at 10/s: 920 - 910 - 0.2 * 20 = 6, raised to the minimum.
            (4.0, 10, 1000, 2000, Some(100.0)),
            // From the minimum: processed at 400/s, error -300, no backlog: 400.
            (5.0, 200, 500, 0, Some(400.0)),
        ];
        let mut pid = PidRateEstimator::new(Duration::from_secs(1));
        for (i, &(time, records, processing, scheduling, want)) in table.iter().enumerate() {
            let got = pid.compute(time, records, ms(processing), ms(scheduling));
            match (got, want) {
                (None, None) => {}
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "row {i}: {g} != {w}"),
                _ => panic!("row {i}: {got:?} != {want:?}"),
            }
        }
    }

    #[test]
    fn the_batch_interval_scales_the_backlog_term() {
        let mut pid = PidRateEstimator::new(ms(500));
        assert_eq!(pid.compute(1.0, 500, ms(250), ms(0)), None); // 2000/s
                                                                 // Processed at 2000/s, no error; backlog 0.25 s * 2000 / 0.5 s = 1000.
        let got = pid.compute(1.5, 500, ms(250), ms(250)).expect("an estimate");
        assert!((got - (2000.0 - 0.2 * 1000.0)).abs() < 1e-9, "{got}");
    }
}
