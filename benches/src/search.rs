//! The search for the maximum sustainable rate: an exponential ramp (multiply the rate while
//! runs are stable, divide it while they are not) until one stable and one unstable rate are
//! known, then bisection (geometric) until they are within the precision asked or the steps
//! run out. Each step is one measured run.

use crate::collector::RunStats;
use crate::HarnessError;

/// How to search.
#[derive(Clone, Copy, Debug)]
pub struct SearchPlan {
    /// The first rate tried, records per second.
    pub start_rate: u64,
    /// The ramp's factor.
    pub factor: f64,
    /// Stop when the unstable rate is within this fraction above the stable one.
    pub precision: f64,
    /// The most runs.
    pub max_steps: usize,
    /// The lowest rate tried.
    pub min_rate: u64,
    /// How many times an unstable run is tried again at the same rate before the search
    /// takes it as unstable: one stall near the limit should not turn a search down.
    pub retries: usize,
}

/// What a search found.
#[derive(Clone, Debug, Default)]
pub struct SearchResult {
    /// The run at the highest stable rate, if any rate was stable.
    pub best: Option<RunStats>,
    /// Every run, in the order made.
    pub steps: Vec<RunStats>,
}

/// Rounds a rate to three significant digits, for rates a reader can compare.
fn round_rate(rate: f64) -> u64 {
    if rate < 1000.0 {
        return rate.round().max(1.0) as u64;
    }
    let scale = 10f64.powi(rate.log10().floor() as i32 - 2);
    ((rate / scale).round() * scale) as u64
}

/// Searches with `run` measuring one rate.
pub fn search(
    plan: &SearchPlan,
    mut run: impl FnMut(u64) -> Result<RunStats, HarnessError>,
) -> Result<SearchResult, HarnessError> {
    let mut result = SearchResult::default();
    let (mut stable, mut unstable): (Option<u64>, Option<u64>) = (None, None);
    let mut rate = plan.start_rate.max(plan.min_rate);
    for _ in 0..plan.max_steps {
        let mut stats = run(rate)?;
        for _ in 0..plan.retries {
            if stats.stable {
                break;
            }
            result.steps.push(stats);
            stats = run(rate)?;
        }
        if stats.stable {
            if stable.is_none_or(|s| rate > s) {
                stable = Some(rate);
                result.best = Some(stats.clone());
            }
        } else if unstable.is_none_or(|u| rate < u) {
            unstable = Some(rate);
        }
        result.steps.push(stats);
        let next = match (stable, unstable) {
            (Some(s), None) => s as f64 * plan.factor,
            (None, Some(u)) => u as f64 / plan.factor,
            (Some(s), Some(u)) if (u as f64) > s as f64 * (1.0 + plan.precision) => (s as f64 * u as f64).sqrt(),
            _ => break,
        };
        let next = round_rate(next);
        if next < plan.min_rate || Some(next) == stable || Some(next) == unstable {
            break;
        }
        rate = next;
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(rate: u64, stable: bool) -> RunStats {
        RunStats {
            rate,
            p50_ms: 0.0,
            p99_ms: 0.0,
            mean_lag_ms: 0.0,
            max_lag_ms: 0.0,
            lag_growth_ms: 0.0,
            batches: (1, 1),
            stable,
            reason: String::new(),
            usage: Default::default(),
        }
    }

    #[test]
    fn finds_the_limit_within_the_precision() {
        let plan = SearchPlan {
            start_rate: 100_000,
            factor: 4.0,
            precision: 0.05,
            max_steps: 30,
            min_rate: 1_000,
            retries: 0,
        };
        let found = search(&plan, |r| Ok(stats(r, r <= 1_234_567))).unwrap();
        let best = found.best.unwrap().rate;
        assert!(best <= 1_234_567 && best as f64 >= 1_234_567.0 / 1.06, "{best}");
        let found = search(&plan, |r| Ok(stats(r, r <= 5_000))).unwrap();
        assert!(found.best.unwrap().rate <= 5_000);
        let none = search(&plan, |r| Ok(stats(r, false))).unwrap();
        assert!(none.best.is_none() && none.steps.len() < 30);
    }

    #[test]
    fn an_unstable_run_is_tried_again_before_the_search_turns_down() {
        // Every rate fails on its first try: without a retry the search finds nothing.
        let plan = SearchPlan {
            start_rate: 100_000,
            factor: 4.0,
            precision: 0.05,
            max_steps: 12,
            min_rate: 1_000,
            retries: 1,
        };
        let mut tried = std::collections::BTreeSet::new();
        let found = search(&plan, |r| Ok(stats(r, r <= 1_000_000 && !tried.insert(r)))).unwrap();
        let best = found.best.unwrap().rate;
        assert!((800_000..=1_000_000).contains(&best), "{best}");
        let once = SearchPlan { retries: 0, ..plan };
        let mut tried = std::collections::BTreeSet::new();
        assert!(search(&once, |r| Ok(stats(r, r <= 1_000_000 && !tried.insert(r)))).unwrap().best.is_none());
    }
}
