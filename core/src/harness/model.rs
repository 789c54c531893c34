//! What time things take in the stepping harness: how long a task runs ([`CostModel`]) and how
//! long a message travels ([`LinkModel`]). Both default to zero, where a task completes in the
//! step that runs it and a message can be delivered in the next step.

use std::time::Duration;

use crate::rng::SplitMix64;

/// How long a task runs in virtual time: `per_task` plus `per_input_kib` for every KiB of
/// encoded input it read, times the slowdown of its worker when it started (see
/// [`crate::Fault::Slow`]). The harness always encodes what moves between members, so the
/// input size is the size on the wire, a stand-in for the number of records.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use dstream::CostModel;
/// let cost = CostModel { per_task: Duration::from_millis(2), per_input_kib: Duration::from_micros(50) };
/// assert_eq!(cost.duration(4096, 1), Duration::from_micros(2_200));
/// assert_eq!(cost.duration(4096, 3), Duration::from_micros(6_600));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CostModel {
    /// The fixed cost of a task: launching it, its closures' setup, reporting it.
    pub per_task: Duration,
    /// The cost of each KiB of encoded input.
    pub per_input_kib: Duration,
}

impl CostModel {
    /// Whether tasks take no time at all (the default): each completes in the step that runs it.
    pub fn is_zero(&self) -> bool {
        self.per_task.is_zero() && self.per_input_kib.is_zero()
    }

    /// How long a task reading `input_bytes` runs on a worker slowed `slowdown` times.
    pub fn duration(&self, input_bytes: u64, slowdown: u32) -> Duration {
        let input = self.per_input_kib.as_nanos().saturating_mul(u128::from(input_bytes)) / 1024;
        let nanos = self.per_task.as_nanos() + input;
        let nanos = nanos.saturating_mul(u128::from(slowdown.max(1)));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// How long a message takes from its sender to its receiver in virtual time.
///
/// Every link is an ordered, reliable connection, as a TCP connection is: messages of one
/// sender to one receiver arrive in the order sent, while messages on different links overtake
/// each other as their delays differ (the reordering a cluster sees). A message takes
/// `latency` plus a uniformly drawn part of `jitter`; one in `loss_one_in` is lost on the wire
/// and arrives `retransmit` later, holding back the messages behind it on its link, as a
/// retransmitted segment does. Losing a connection itself is a fault of its own
/// ([`crate::Fault::Isolate`], [`crate::Fault::Cut`], [`crate::Fault::Kill`]).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use dstream::LinkModel;
/// let lan = LinkModel { latency: Duration::from_micros(200), jitter: Duration::from_micros(300), ..LinkModel::default() };
/// assert_eq!(lan.loss_one_in, 0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkModel {
    /// The least time a message takes.
    pub latency: Duration,
    /// The most added to `latency`, drawn uniformly per message.
    pub jitter: Duration,
    /// One message in this many is lost and retransmitted (0: none).
    pub loss_one_in: u32,
    /// How much later a lost message arrives (default 200 ms, Linux's least retransmission
    /// timeout).
    pub retransmit: Duration,
}

impl Default for LinkModel {
    fn default() -> LinkModel {
        LinkModel {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            loss_one_in: 0,
            retransmit: Duration::from_millis(200),
        }
    }
}

impl LinkModel {
    /// The delay of the next message, drawn from `rng` (nothing is drawn when the link has no
    /// jitter and no loss, so a seed's trace does not change when links are instant); whether
    /// it was lost once is the second value.
    pub(super) fn delay(&self, rng: &mut SplitMix64) -> (Duration, bool) {
        let mut delay = self.latency;
        let jitter = u64::try_from(self.jitter.as_nanos()).unwrap_or(u64::MAX);
        if jitter > 0 {
            delay += Duration::from_nanos(rng.next_u64() % (jitter + 1));
        }
        let lost = self.loss_one_in > 0 && rng.next_u64() % u64::from(self.loss_one_in) == 0;
        if lost {
            delay += self.retransmit;
        }
        (delay, lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_costs_its_fixed_part_and_its_input_times_the_slowdown() {
        let cost = CostModel { per_task: Duration::from_millis(1), per_input_kib: Duration::from_micros(1024) };
        let cases =
            [(0, 1, 1_000_000), (1024, 1, 2_024_000), (2048, 1, 3_048_000), (1024, 4, 8_096_000), (0, 0, 1_000_000)];
        for (bytes, slowdown, nanos) in cases {
            assert_eq!(cost.duration(bytes, slowdown), Duration::from_nanos(nanos), "{bytes} bytes, {slowdown}x");
        }
        assert!(CostModel::default().is_zero());
        assert!(!cost.is_zero());
    }

    #[test]
    fn an_instant_link_draws_nothing_and_a_lossy_one_retransmits() {
        let mut rng = SplitMix64::new(7);
        let before = rng.clone().next_u64();
        assert_eq!(LinkModel::default().delay(&mut rng), (Duration::ZERO, false));
        assert_eq!(rng.next_u64(), before, "no draw on an instant link");
        let lossy = LinkModel { latency: Duration::from_millis(1), loss_one_in: 1, ..LinkModel::default() };
        assert_eq!(lossy.delay(&mut rng), (Duration::from_millis(201), true));
        let jittery = LinkModel { jitter: Duration::from_micros(10), ..LinkModel::default() };
        for _ in 0..100 {
            let (d, lost) = jittery.delay(&mut rng);
            assert!(d <= Duration::from_micros(10) && !lost, "{d:?}");
        }
    }
}
