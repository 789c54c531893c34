//! A log-bucketed latency histogram: 64 linear sub-buckets per power of two, so a recorded
//! value's bucket is within 1/64 (1.6%) of it, over the whole `u64` range, in 30 KiB.
//!
//! Besides single values it records, exactly and in time proportional to the number of
//! buckets spanned, the latencies of a batch of records emitted at a constant rate and output
//! together ([`Histogram::record_batch`]): the harness derives every record's latency from its
//! index instead of reading a clock per record.

use crate::feed::due_by;

/// Sub-buckets per power of two (a power of two itself).
const SUB: u64 = 64;
/// log2 of [`SUB`].
const SUB_BITS: u32 = 6;
/// Enough buckets for any `u64`.
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

/// Counts of nanosecond values in logarithmic buckets.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; BUCKETS], total: 0 }
    }
}

/// The bucket of a value.
fn bucket(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let exponent = 63 - v.leading_zeros(); // at least SUB_BITS
    let mantissa = (v >> (exponent - SUB_BITS)) & (SUB - 1);
    ((exponent - SUB_BITS + 1) as u64 * SUB + mantissa) as usize
}

/// The smallest value of a bucket and the smallest of the next one.
fn bounds(b: usize) -> (u64, u64) {
    let b = b as u64;
    if b < SUB {
        return (b, b + 1);
    }
    let shift = b / SUB - 1;
    let mantissa = b % SUB;
    let low = (SUB + mantissa) << shift;
    (low, low.saturating_add(1 << shift))
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram::default()
    }

    /// Records one value.
    pub fn record(&mut self, v: u64) {
        self.counts[bucket(v)] += 1;
        self.total += 1;
    }

    /// Records the latencies of the records `first..end` of a stream emitted at `rate`
    /// records per second (record `i` at `(i + 1) / rate` seconds, see [`due_by`]) and all
    /// output at `output_ns`, on the same time line. A record output before its emission
    /// (impossible in a correct run) counts as latency zero.
    pub fn record_batch(&mut self, rate: u64, first: u64, end: u64, output_ns: u64) {
        if end <= first {
            return;
        }
        // Latency of record i: output - emitted(i); the records with latency in [lo, hi) are
        // those emitted in (output - hi, output - lo], counted with `due_by`.
        let emitted_before = |t: u64| due_by(rate, t).clamp(first, end); // records with emitted <= t, within the batch
        let mut remaining = end - first;
        // Records emitted after the output (none in a correct run) count as latency zero.
        let future = end - emitted_before(output_ns);
        self.counts[0] += future;
        self.total += future;
        remaining -= future;
        let mut b = bucket(output_ns.saturating_sub(crate::feed::emitted_ns(rate, end - 1)));
        while remaining > 0 && b < BUCKETS {
            let (lo, hi) = bounds(b);
            let newest = output_ns.checked_sub(lo).map_or(first, emitted_before);
            let oldest = output_ns.checked_sub(hi).map_or(first, emitted_before);
            let n = newest.saturating_sub(oldest).min(remaining);
            if n > 0 {
                self.counts[b] += n;
                self.total += n;
                remaining -= n;
            }
            b += 1;
        }
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }

    /// The number of values recorded.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The value at quantile `q` (0 to 1): the upper end of the bucket holding it (so at most
    /// 1.6% above the true value), or 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return bounds(b).1 - 1;
            }
        }
        u64::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        for b in 0..BUCKETS - 1 {
            assert_eq!(bounds(b).1, bounds(b + 1).0, "bucket {b}");
        }
        for v in [0u64, 1, 63, 64, 65, 127, 128, 1000, 123_456_789, u64::MAX / 3, u64::MAX] {
            let (lo, hi) = bounds(bucket(v));
            assert!(lo <= v && (v < hi || hi == u64::MAX), "{v}: {lo}..{hi}");
            assert!((hi - lo) as f64 <= (lo as f64 / 64.0).max(1.0), "{v}");
        }
    }

    #[test]
    fn a_batch_counts_every_record_as_one_by_one_would() {
        for (rate, first, end, out) in
            [(1_000u64, 0u64, 500u64, 600_000_000u64), (333_333, 1_000, 170_000, 900_000_000), (7, 3, 9, 5_000_000_000)]
        {
            let mut bulk = Histogram::new();
            bulk.record_batch(rate, first, end, out);
            let mut single = Histogram::new();
            for i in first..end {
                single.record(out.saturating_sub(crate::feed::emitted_ns(rate, i)));
            }
            assert_eq!(bulk.counts, single.counts, "rate {rate}");
            assert_eq!(bulk.len(), end - first);
        }
    }

    #[test]
    fn quantiles_are_within_a_bucket() {
        let mut h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        let p99 = h.quantile(0.99) as f64;
        assert!((p99 / 9_900_000.0 - 1.0).abs() < 0.02, "{p99}");
        assert_eq!(Histogram::new().quantile(0.5), 0);
    }
}
