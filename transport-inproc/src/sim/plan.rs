//! Fault plans: what goes wrong in a simulation, and when.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use dstream::{Fault, LinkModel, SplitMix64, Time, WorkerId};

/// A fault of the checkpoint storage, applied to the next matching operation after its time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageFault {
    /// The next checkpoint write fails (the disk is full): the checkpoint is reported failed
    /// and taken again later.
    FailWrite,
    /// The next checkpoint write reports success but keeps only its first half (a store that
    /// broke its atomicity promise): a restart detects it and falls back to the checkpoint
    /// before.
    TearWrite,
    /// The next checkpoint read returns one byte flipped (a bad sector): detected by the
    /// checksum; a restart falls back to the checkpoint before.
    FlipRead,
}

/// One fault of a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Planned {
    /// A fault of the cluster (workers, links, the driver).
    Cluster(Fault),
    /// A fault of the checkpoint storage.
    Storage(StorageFault),
}

impl Planned {
    /// The fault's kind, as the soak summary counts it.
    pub fn kind(&self) -> &'static str {
        match self {
            Planned::Cluster(Fault::Kill(_)) => "kill",
            Planned::Cluster(Fault::Restart(_)) => "restart",
            Planned::Cluster(Fault::Isolate(_)) => "partition",
            Planned::Cluster(Fault::Slow { times, .. }) if *times > 1 => "slow",
            Planned::Cluster(Fault::Slow { .. }) => "slow end",
            Planned::Cluster(Fault::Cut(..)) => "link cut",
            Planned::Cluster(Fault::Mend(..)) => "link mend",
            Planned::Cluster(Fault::CrashDriver) => "driver crash",
            Planned::Storage(StorageFault::FailWrite) => "checkpoint write failed",
            Planned::Storage(StorageFault::TearWrite) => "checkpoint write torn",
            Planned::Storage(StorageFault::FlipRead) => "checkpoint read corrupted",
        }
    }
}

/// A plan built with a fault the simulated cluster cannot have.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The plan names a worker the cluster does not have.
    #[error("the fault plan names worker {worker}, but the cluster has {workers} workers (0 to {})", workers.saturating_sub(1))]
    UnknownWorker {
        /// The worker named.
        worker: u32,
        /// How many workers the plan was made for.
        workers: u32,
    },
    /// A fault that ends before it starts.
    #[error("the fault plan has a {kind} from {from} until {until}, which ends before it starts")]
    EndsBeforeStart {
        /// The kind of fault.
        kind: &'static str,
        /// When it starts.
        from: Time,
        /// When it ends.
        until: Time,
    },
    /// The plan was made for another number of workers than the simulation has.
    #[error("the fault plan is for {plan} workers, but the simulation has {simulation}")]
    WorkerCount {
        /// The workers of the plan.
        plan: u32,
        /// The workers of the simulation.
        simulation: u32,
    },
    /// A link cut of a worker with itself.
    #[error("the fault plan cuts the link of worker {0} with itself")]
    SelfLink(u32),
}

/// What goes wrong in a simulation and when, for a cluster of a given number of workers.
/// Every verb checks what it names, so a plan that exists can be run.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use dstream::Time;
/// use dstream_inproc::sim::{FaultPlan, PlanError};
/// let s = |secs: u64| Time::from_millis(secs * 1000);
/// let plan = FaultPlan::new(4)
///     .kill(1, s(3))?
///     .restart(1, s(6))?
///     .slow(2, 5, s(2), s(8))?
///     .crash_driver(s(7));
/// assert_eq!(plan.counts()["kill"], 1);
/// assert_eq!(FaultPlan::new(4).kill(4, s(1)).unwrap_err(), PlanError::UnknownWorker { worker: 4, workers: 4 });
/// # Ok::<(), PlanError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultPlan {
    workers: u32,
    faults: Vec<(Time, Planned)>,
    link: LinkModel,
}

impl FaultPlan {
    /// An empty plan for a cluster of `workers` workers, with instant links.
    pub fn new(workers: u32) -> FaultPlan {
        FaultPlan { workers, faults: Vec::new(), link: LinkModel::default() }
    }

    /// The number of workers the plan is for.
    pub fn workers(&self) -> u32 {
        self.workers
    }

    /// The faults in time order (faults at the same time in the order they were added).
    pub fn faults(&self) -> &[(Time, Planned)] {
        &self.faults
    }

    /// How messages travel (see [`LinkModel`]).
    pub fn link(&self) -> LinkModel {
        self.link
    }

    /// How many faults of each kind the plan has.
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        let mut counts = BTreeMap::new();
        for (_, f) in &self.faults {
            *counts.entry(f.kind()).or_insert(0) += 1;
        }
        if self.link.loss_one_in > 0 {
            counts.insert("lossy links", 1);
        }
        if !self.link.jitter.is_zero() {
            counts.insert("jittery links", 1);
        }
        counts
    }

    fn worker(&self, w: u32) -> Result<WorkerId, PlanError> {
        if w < self.workers {
            Ok(WorkerId(w))
        } else {
            Err(PlanError::UnknownWorker { worker: w, workers: self.workers })
        }
    }

    fn add(mut self, at: Time, fault: Planned) -> FaultPlan {
        let i = self.faults.partition_point(|(t, _)| *t <= at);
        self.faults.insert(i, (at, fault));
        self
    }

    fn window(kind: &'static str, from: Time, until: Time) -> Result<(), PlanError> {
        if until < from {
            return Err(PlanError::EndsBeforeStart { kind, from, until });
        }
        Ok(())
    }

    /// Kills worker `w` at `at`: its process dies and stays down until a restart.
    pub fn kill(self, w: u32, at: Time) -> Result<FaultPlan, PlanError> {
        let w = self.worker(w)?;
        Ok(self.add(at, Planned::Cluster(Fault::Kill(w))))
    }

    /// Restarts worker `w` at `at`: a fresh process (the next incarnation, an empty store).
    pub fn restart(self, w: u32, at: Time) -> Result<FaultPlan, PlanError> {
        let w = self.worker(w)?;
        Ok(self.add(at, Planned::Cluster(Fault::Restart(w))))
    }

    /// Slows worker `w` down `times` times from `from` until `until`.
    pub fn slow(self, w: u32, times: u32, from: Time, until: Time) -> Result<FaultPlan, PlanError> {
        let w = self.worker(w)?;
        Self::window("slowdown", from, until)?;
        let plan = self.add(from, Planned::Cluster(Fault::Slow { worker: w, times: times.max(1) }));
        Ok(plan.add(until, Planned::Cluster(Fault::Slow { worker: w, times: 1 })))
    }

    /// Partitions worker `w` from everyone from `from` until `until`. A worker whose
    /// connection to the driver broke starts over, so at `until` it comes back as a new
    /// incarnation.
    pub fn partition(self, w: u32, from: Time, until: Time) -> Result<FaultPlan, PlanError> {
        let w = self.worker(w)?;
        Self::window("partition", from, until)?;
        Ok(self.add(from, Planned::Cluster(Fault::Isolate(w))).add(until, Planned::Cluster(Fault::Restart(w))))
    }

    /// Cuts the link between workers `a` and `b` from `from` until `until`.
    pub fn cut(self, a: u32, b: u32, from: Time, until: Time) -> Result<FaultPlan, PlanError> {
        let (wa, wb) = (self.worker(a)?, self.worker(b)?);
        if a == b {
            return Err(PlanError::SelfLink(a));
        }
        Self::window("link cut", from, until)?;
        Ok(self.add(from, Planned::Cluster(Fault::Cut(wa, wb))).add(until, Planned::Cluster(Fault::Mend(wa, wb))))
    }

    /// Crashes the driver at `at`; the program restarts from its checkpoint on a new cluster.
    pub fn crash_driver(self, at: Time) -> FaultPlan {
        self.add(at, Planned::Cluster(Fault::CrashDriver))
    }

    /// Applies `fault` to the checkpoint storage's next matching operation after `at`.
    pub fn storage(self, at: Time, fault: StorageFault) -> FaultPlan {
        self.add(at, Planned::Storage(fault))
    }

    /// Sets how messages travel.
    pub fn with_link(mut self, link: LinkModel) -> FaultPlan {
        self.link = link;
        self
    }

    /// A random plan over `horizon` for `workers` workers (at least 2), drawn from `seed`: up
    /// to three worker incidents one after another (a kill and a later restart, a partition,
    /// or a restart in place), never more than one worker down at a time (input has two
    /// replicas, so one loss at a time is what it survives); up to two slowdowns of 2 to 8
    /// times; maybe a cut link between two workers; links with latency, jitter and losses;
    /// up to two storage faults; and, one time in three, a driver crash.
    pub fn random(seed: u64, workers: u32, horizon: Duration) -> FaultPlan {
        let mut rng = SplitMix64::new(seed ^ 0x5eed_fa17_0000_0000);
        let workers = workers.max(2);
        let mut plan = FaultPlan::new(workers);
        let span = u64::try_from(horizon.as_nanos()).unwrap_or(u64::MAX).max(4);
        let draw = |rng: &mut SplitMix64, lo: u64, hi: u64| lo + rng.next_u64() % (hi - lo).max(1);
        let worker = |rng: &mut SplitMix64| rng.below(workers as usize) as u32;
        // Worker incidents, each in a slot of its own so they never overlap.
        let incidents = rng.below(4) as u64;
        for i in 0..incidents {
            let (lo, hi) = (span * i / incidents.max(1), span * (i + 1) / incidents.max(1));
            let from = draw(&mut rng, lo, lo + (hi - lo) / 2);
            let until = draw(&mut rng, from + 1, hi);
            let (from, until) = (Time::from_nanos(from), Time::from_nanos(until));
            let w = worker(&mut rng);
            plan = match rng.below(3) {
                0 => plan
                    .add(from, Planned::Cluster(Fault::Kill(WorkerId(w))))
                    .add(until, Planned::Cluster(Fault::Restart(WorkerId(w)))),
                1 => plan
                    .add(from, Planned::Cluster(Fault::Isolate(WorkerId(w))))
                    .add(until, Planned::Cluster(Fault::Restart(WorkerId(w)))),
                _ => plan.add(from, Planned::Cluster(Fault::Restart(WorkerId(w)))),
            };
        }
        for _ in 0..rng.below(3) {
            let from = draw(&mut rng, 0, span);
            let until = draw(&mut rng, from + 1, span + span / 4);
            let times = 2 + rng.below(7) as u32;
            let w = WorkerId(worker(&mut rng));
            plan = plan
                .add(Time::from_nanos(from), Planned::Cluster(Fault::Slow { worker: w, times }))
                .add(Time::from_nanos(until), Planned::Cluster(Fault::Slow { worker: w, times: 1 }));
        }
        if rng.below(3) == 0 {
            let a = worker(&mut rng);
            let b = (a + 1 + rng.below(workers as usize - 1) as u32) % workers;
            let from = draw(&mut rng, 0, span);
            let until = draw(&mut rng, from + 1, span);
            plan = plan
                .add(Time::from_nanos(from), Planned::Cluster(Fault::Cut(WorkerId(a), WorkerId(b))))
                .add(Time::from_nanos(until), Planned::Cluster(Fault::Mend(WorkerId(a), WorkerId(b))));
        }
        plan.link = LinkModel {
            latency: Duration::from_micros(draw(&mut rng, 50, 1_000)),
            jitter: Duration::from_micros([0, 500, 3_000][rng.below(3)]),
            loss_one_in: [0, 1_000, 200][rng.below(3)],
            ..LinkModel::default()
        };
        for _ in 0..rng.below(3) {
            let fault = [StorageFault::FailWrite, StorageFault::TearWrite, StorageFault::FlipRead][rng.below(3)];
            plan = plan.storage(Time::from_nanos(draw(&mut rng, 0, span)), fault);
        }
        if rng.below(3) == 0 {
            plan = plan.crash_driver(Time::from_nanos(draw(&mut rng, span / 8, span)));
        }
        plan
    }
}

impl fmt::Display for FaultPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} workers, links {:?}", self.workers, self.link)?;
        for (at, fault) in &self.faults {
            write!(f, "; {at}: {fault:?}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_refuse_what_the_cluster_cannot_have() {
        let t = Time::from_millis;
        assert_eq!(FaultPlan::new(2).restart(2, t(1)).unwrap_err(), PlanError::UnknownWorker { worker: 2, workers: 2 });
        assert!(matches!(FaultPlan::new(2).slow(0, 3, t(5), t(1)), Err(PlanError::EndsBeforeStart { .. })));
        assert_eq!(FaultPlan::new(3).cut(1, 1, t(1), t(2)).unwrap_err(), PlanError::SelfLink(1));
        assert!(matches!(FaultPlan::new(3).cut(0, 7, t(1), t(2)), Err(PlanError::UnknownWorker { worker: 7, .. })));
    }

    #[test]
    fn faults_stay_in_time_order_and_random_plans_keep_one_worker_down_at_a_time() {
        let t = Time::from_millis;
        let plan = FaultPlan::new(3).crash_driver(t(9)).kill(0, t(2)).unwrap().restart(0, t(4)).unwrap();
        let times: Vec<Time> = plan.faults().iter().map(|(at, _)| *at).collect();
        assert_eq!(times, vec![t(2), t(4), t(9)]);
        for seed in 0..500 {
            let plan = FaultPlan::random(seed, 4, Duration::from_secs(12));
            assert_eq!(plan, FaultPlan::random(seed, 4, Duration::from_secs(12)), "seed {seed}: the same plan");
            let mut down = 0i32;
            for (_, fault) in plan.faults() {
                match fault {
                    Planned::Cluster(Fault::Kill(_) | Fault::Isolate(_)) => down += 1,
                    Planned::Cluster(Fault::Restart(_)) => down = (down - 1).max(0),
                    _ => {}
                }
                assert!(down <= 1, "seed {seed}: two workers down at once: {plan}");
            }
        }
    }
}
