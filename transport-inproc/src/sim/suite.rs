//! The fault-tolerance suite: a program with every kind of state, run over random fault plans,
//! each seed's outputs checked against a fault-free run. The CI test runs it over 1,000 seeds;
//! `cargo run --release --example soak -- --seeds N` runs it over any number and prints the
//! summary.
//!
//! The program reads page views through a windowed reduction with an inverse function,
//! `update_state_by_key`, `map_with_state` with a timeout and a join of the window with the
//! totals, each written every batch to the batch-keyed sink.
//!
//! ```
//! use dstream_inproc::sim::suite;
//! let summary = suite::soak(0..3, 4, 8);
//! assert_eq!(summary.seeds, 3);
//! assert!(summary.failures.is_empty(), "{summary}");
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::time::Duration;

use dstream::{DStream, Error, State, StateSpec, StreamingContext, Time};

use super::{Cause, FaultPlan, Outputs, PlanError, SimError, Simulation};

/// A page and a count of views.
pub type View = (String, u64);

const PAGES: [&str; 9] = ["home", "news", "about", "shop", "blog", "help", "jobs", "docs", "team"];

/// The views of the batch at `t`: different every batch, some pages only now and then (so
/// sessions time out and window entries fall to zero).
pub fn views(t: Time) -> Vec<View> {
    let k = t.as_millis() / 1000;
    let n = 8 + (k * 5) % 13;
    (0..n)
        .map(|i| {
            let spread = if k % 4 == 0 { 3 } else { PAGES.len() as u64 };
            (PAGES[((k * 7 + i * i * 3) % spread) as usize].to_string(), 1 + (k + i) % 4)
        })
        .collect()
}

/// The program: four stateful or shuffling streams, each written every batch.
pub fn program(_ssc: &StreamingContext, views: DStream<View>, out: &Outputs) -> Result<(), Error> {
    let second = Duration::from_secs(1);
    let windowed = views
        .reduce_by_key_and_window_inv_with_partitions(|a, b| a + b, |a, b| a - b, 4 * second, second, 3)?
        .checkpoint(2 * second)?;
    let totals = views
        .update_state_by_key(|vs: Vec<u64>, s: Option<u64>| Some(s.unwrap_or(0) + vs.iter().sum::<u64>()), 3)?
        .checkpoint(3 * second)?;
    let spec = StateSpec::function(|page: &String, v: Option<u64>, state: &mut State<u64>| match v {
        Some(v) => {
            let views = state.get().copied().unwrap_or(0) + v;
            state.update(views);
            Some((page.clone(), views))
        }
        // The session of a page unseen for two batches ends: emit it as closed.
        None => Some((format!("{page} closed"), state.get().copied().unwrap_or(0))),
    })
    .partitions(2)
    .timeout(2 * second);
    let sessions = views.map_with_state(spec)?.checkpoint(3 * second)?;
    let joined = windowed.join(&totals)?;
    out.write_each_batch(&windowed, "window")?;
    out.write_each_batch(&totals, "totals")?;
    out.write_each_batch(sessions.stream(), "sessions")?;
    out.write_each_batch(&joined, "joined")
}

/// What a soak over many seeds found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Seeds run.
    pub seeds: u64,
    /// Faults injected, by kind, over every seed.
    pub faults: BTreeMap<&'static str, u64>,
    /// Outputs of batches checked equal to the fault-free run's.
    pub outputs_checked: u64,
    /// Outputs that ran again after a driver restart (the documented at-least-once), with
    /// the same records.
    pub reruns: u64,
    /// Driver restarts over every seed.
    pub driver_restarts: u64,
    /// Workers the driver reported lost.
    pub workers_lost: u64,
    /// Speculative copies launched.
    pub speculated: u64,
    /// Messages lost on the wire and retransmitted.
    pub retransmitted: u64,
    /// Messages dropped by partitions, cut links, kills and crashes.
    pub dropped: u64,
    /// The seeds that failed, with why.
    pub failures: Vec<SimError>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "seeds: {}", self.seeds)?;
        writeln!(f, "failures: {}", self.failures.len())?;
        writeln!(f, "outputs checked: {} ({} rerun after driver restarts)", self.outputs_checked, self.reruns)?;
        writeln!(f, "driver restarts: {}", self.driver_restarts)?;
        writeln!(f, "workers lost: {}", self.workers_lost)?;
        writeln!(f, "speculative copies: {}", self.speculated)?;
        writeln!(f, "messages retransmitted: {}, dropped: {}", self.retransmitted, self.dropped)?;
        writeln!(f, "faults injected:")?;
        for (kind, n) in &self.faults {
            writeln!(f, "  {kind}: {n}")?;
        }
        for e in &self.failures {
            writeln!(f, "FAILED {e}")?;
        }
        Ok(())
    }
}

/// The simulation of `seed`: `workers` workers, `batches` batches of 1 s, the random fault
/// plan of the seed ([`FaultPlan::random`], which needs at least 2 workers).
pub fn simulation(seed: u64, workers: u32, batches: u64) -> Result<Simulation, PlanError> {
    simulation_on(seed, workers, batches, false)
}

/// [`simulation`], with every worker building the program itself when `worker_programs`
/// (see [`SimulationBuilder::worker_programs`](super::SimulationBuilder::worker_programs)).
pub fn simulation_on(seed: u64, workers: u32, batches: u64, worker_programs: bool) -> Result<Simulation, PlanError> {
    let plan = FaultPlan::random(seed, workers, Duration::from_secs(batches));
    Simulation::builder()
        .workers(workers)
        .batches(batches)
        .seed(seed)
        .plan(plan)
        .worker_programs(worker_programs)
        .build()
}

/// Runs the suite's program for every seed of `seeds` on `workers` workers (at least 2) for
/// `batches` batches, and checks each against the fault-free run.
pub fn soak(seeds: Range<u64>, workers: u32, batches: u64) -> Summary {
    soak_on(seeds, workers, batches, false)
}

/// [`soak`], with every worker building the program itself when `worker_programs`, as the
/// workers of a cluster of processes do.
pub fn soak_on(seeds: Range<u64>, workers: u32, batches: u64, worker_programs: bool) -> Summary {
    let workers = workers.max(2);
    let mut summary = Summary::default();
    // The reference shares one graph: outputs must not depend on who builds the program.
    let reference = match Simulation::builder().workers(workers).batches(batches).build() {
        Ok(sim) => sim.run(views, program),
        Err(_) => unreachable!("a simulation without a plan builds"),
    };
    let reference = match reference {
        Ok(r) => r,
        Err(e) => {
            summary.failures.push(e);
            return summary;
        }
    };
    for seed in seeds {
        summary.seeds += 1;
        let report = match simulation_on(seed, workers, batches, worker_programs) {
            Ok(sim) => sim.run(views, program),
            Err(e) => Err(SimError {
                seed,
                plan: format!("{workers} workers"),
                cause: Cause::Failed { batch: None, error: e.to_string() },
            }),
        };
        let report = match report {
            Ok(r) => r,
            Err(e) => {
                summary.failures.push(e);
                continue;
            }
        };
        for (kind, n) in report.plan.counts() {
            *summary.faults.entry(kind).or_insert(0) += n;
        }
        let steps = report.step_counts();
        let count = |k: &str| steps.get(k).copied().unwrap_or(0);
        summary.workers_lost += count("workers lost");
        summary.speculated += count("speculated");
        summary.retransmitted += count("retransmitted");
        summary.dropped += count("dropped");
        summary.driver_restarts += u64::from(report.driver_restarts);
        match report.check_against(&reference) {
            Ok(checked) => {
                summary.outputs_checked += checked.outputs;
                summary.reruns += checked.reruns;
            }
            Err(e) => summary.failures.push(e),
        }
    }
    summary
}
