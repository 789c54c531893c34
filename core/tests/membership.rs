//! Time and membership in the stepping harness: heartbeats at their interval, silent workers
//! lost after the heartbeat timeout (not before), jobs that lose a worker mid-way finishing
//! with the fault-free result, and jobs with no worker alive failing after the driver's bounded
//! wait instead of waiting forever.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use dstream::{Context, Error, Fault, LossReason, NodeId, Step, StepCluster, Time, WorkerId};

const TIMEOUT: Duration = Duration::from_secs(1);

/// How many heartbeats from each of `workers` workers reached the driver in `steps`.
fn heartbeats(steps: &[Step], workers: u32) -> Vec<usize> {
    (0..workers)
        .map(|w| {
            let from = NodeId::Worker(WorkerId(w));
            steps
                .iter()
                .filter(|s| matches!(s, Step::Deliver { from: f, to: NodeId::Driver, kind: "heartbeat" } if *f == from))
                .count()
        })
        .collect()
}

fn losses(steps: &[Step]) -> Vec<(WorkerId, u64, LossReason)> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Lost { worker, incarnation, reason } => Some((*worker, *incarnation, *reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn each_worker_heartbeats_at_its_interval() {
    for (interval, expected) in [(Duration::from_millis(100), 100), (Duration::from_millis(250), 40)] {
        let cluster = StepCluster::builder().workers(3).heartbeat_interval(interval).build();
        cluster.settle().unwrap();
        let before = cluster.trace().len();
        let start = cluster.now();
        cluster.advance(Duration::from_secs(10)).unwrap();
        // The heartbeats due at the very end are delivered a few steps later.
        let end = start + Duration::from_secs(10);
        assert!(cluster.now() >= end && cluster.now() < end + Duration::from_millis(1), "{}", cluster.now());
        let trace = cluster.trace();
        assert_eq!(heartbeats(&trace[before..], 3), vec![expected; 3], "interval {interval:?}");
        assert!(losses(&trace).is_empty(), "nobody is lost while heartbeating: {:?}", losses(&trace));
        assert_eq!(cluster.alive_workers().len(), 3);
    }
}

#[test]
fn a_silent_worker_is_lost_after_the_timeout_and_not_before() {
    let cluster = StepCluster::builder().workers(2).build();
    cluster.settle().unwrap();
    // The driver last heard from worker 1 when it registered, at or a few steps before now.
    cluster.isolate(WorkerId(1)).unwrap();
    cluster.advance(TIMEOUT - Duration::from_micros(100)).unwrap();
    assert!(losses(&cluster.trace()).is_empty(), "lost before the timeout");
    assert_eq!(cluster.alive_workers(), [WorkerId(0), WorkerId(1)]);
    cluster.advance(Duration::from_micros(200)).unwrap();
    let lost = losses(&cluster.trace());
    assert!(
        matches!(&lost[..], [(WorkerId(1), 0, LossReason::Timeout { silent_for })] if *silent_for >= TIMEOUT),
        "{lost:?}"
    );
    assert_eq!(cluster.alive_workers(), [WorkerId(0)]);
    // Its heartbeats went nowhere; worker 0's kept it alive.
    cluster.advance(Duration::from_secs(5)).unwrap();
    assert_eq!(losses(&cluster.trace()).len(), 1);
    assert_eq!(heartbeats(&cluster.trace(), 2)[1], 0);
}

type Output = (Vec<(u32, u64)>, Vec<(u32, (u64, u64))>, u64);

/// Several jobs over a persisted dataset and two shuffles joined: a lost worker takes cached
/// partitions and map outputs with it.
fn jobs(ctx: &Context) -> Result<Output, Error> {
    let pairs = ctx.parallelize((0..3_000u64).collect(), 6)?.map(|x| ((x % 97) as u32, x)).persist();
    let sums = pairs.reduce_by_key(|a, b| a + b);
    let counts = pairs.map_values(|_| 1u64).reduce_by_key(|a, b| a + b);
    let mut s = sums.collect()?;
    s.sort();
    let mut j = sums.join(&counts).collect()?;
    j.sort();
    Ok((s, j, pairs.count()?))
}

const SEEDS: std::ops::Range<u64> = 0..8;

/// Runs `jobs` with `fault` applied half-way through the fault-free run of the same seed; checks
/// the result against the fault-free one and the trace against a second faulty run. Returns the
/// losses the driver reported once the cluster has settled.
fn with_fault_half_way(seed: u64, fault: Fault) -> Vec<(WorkerId, u64, LossReason)> {
    let clean = StepCluster::builder().workers(3).seed(seed).build();
    let want = jobs(&clean.context()).unwrap_or_else(|e| panic!("seed {seed}, fault-free: {e}"));
    let half = Time::from_nanos(clean.now().as_nanos() / 2);
    let run = || {
        let cluster = StepCluster::builder().workers(3).seed(seed).build();
        cluster.fault_at(half, fault);
        let got = jobs(&cluster.context()).unwrap_or_else(|e| panic!("seed {seed}, {fault:?} at {half}: {e}"));
        assert_eq!(got, want, "seed {seed}, {fault:?} at {half}: the result differs from the fault-free run");
        // A second round of jobs runs on what is left of the cluster.
        let again = jobs(&cluster.context()).unwrap_or_else(|e| panic!("seed {seed}, after {fault:?}: {e}"));
        assert_eq!(again, want, "seed {seed}, after {fault:?}");
        cluster.settle().unwrap();
        cluster.trace()
    };
    let trace = run();
    assert_eq!(trace, run(), "seed {seed}, {fault:?}: same seed, same trace");
    assert!(trace.contains(&Step::Fault(fault)), "seed {seed}: the fault was applied");
    losses(&trace)
}

#[test]
fn a_job_survives_a_worker_falling_silent() {
    let mut lost_by_timeout = 0;
    for seed in SEEDS {
        let lost = with_fault_half_way(seed, Fault::Isolate(WorkerId(1)));
        assert!(
            lost.iter().all(|(w, inc, r)| *w == WorkerId(1) && *inc == 0 && matches!(r, LossReason::Timeout { .. })),
            "seed {seed}: {lost:?}"
        );
        lost_by_timeout += lost.len();
    }
    // Half-way through, the silent worker still has work, or is given some: its loss is what
    // the jobs wait on, in most seeds at least.
    assert!(lost_by_timeout as u64 >= (SEEDS.end - SEEDS.start) / 2, "only {lost_by_timeout} losses");
}

#[test]
fn a_job_survives_a_worker_restarting() {
    for seed in SEEDS {
        let lost = with_fault_half_way(seed, Fault::Restart(WorkerId(2)));
        assert_eq!(lost, [(WorkerId(2), 0, LossReason::Replaced { by: 1 })], "seed {seed}");
    }
}

/// How long the driver waits for a worker while none is alive (`DriverConfig::workers_wait_max`).
const WORKERS_WAIT: Duration = Duration::from_secs(30);

#[test]
fn a_job_with_no_worker_alive_fails_after_the_drivers_bounded_wait() {
    let cluster = StepCluster::builder().workers(2).build();
    let data = cluster.context().parallelize((0..10u32).collect(), 2).unwrap();
    assert_eq!(data.count().unwrap(), 10);
    cluster.isolate(WorkerId(0)).unwrap();
    cluster.isolate(WorkerId(1)).unwrap();
    let start = cluster.now();
    match data.count() {
        Err(Error::NoWorkers { waited }) => assert_eq!(waited, WORKERS_WAIT),
        other => panic!("expected the no-workers error, got {other:?}"),
    }
    // Both workers were lost at the heartbeat timeout; the driver then waited for one.
    assert_eq!(losses(&cluster.trace()).len(), 2);
    let waited = cluster.now() - start;
    assert!(waited >= TIMEOUT + WORKERS_WAIT && waited < 2 * TIMEOUT + WORKERS_WAIT, "waited {waited:?}");
    // A restarted worker takes the job on again.
    cluster.restart_worker(WorkerId(0)).unwrap();
    assert_eq!(data.count().unwrap(), 10);
    assert_eq!(cluster.alive_workers(), [WorkerId(0)]);
    assert_eq!(cluster.incarnations(), [1, 0]);
}

#[test]
fn a_job_with_no_worker_alive_goes_on_when_one_returns_within_the_wait() {
    let cluster = StepCluster::builder().workers(2).build();
    let data = cluster.context().parallelize((0..10u32).collect(), 2).unwrap();
    assert_eq!(data.count().unwrap(), 10);
    cluster.isolate(WorkerId(0)).unwrap();
    cluster.isolate(WorkerId(1)).unwrap();
    let back = cluster.now() + TIMEOUT + WORKERS_WAIT - Duration::from_secs(1);
    cluster.fault_at(back, Fault::Restart(WorkerId(1)));
    assert_eq!(data.count().unwrap(), 10);
    assert!(cluster.now() >= back, "the job waited for the restarted worker");
    assert_eq!(cluster.alive_workers(), [WorkerId(1)]);
}

#[test]
fn a_job_with_no_worker_alive_does_not_wait_for_a_restart_beyond_the_bound() {
    let cluster = StepCluster::builder().workers(2).build();
    let data = cluster.context().parallelize((0..10u32).collect(), 2).unwrap();
    assert_eq!(data.count().unwrap(), 10);
    cluster.isolate(WorkerId(0)).unwrap();
    cluster.isolate(WorkerId(1)).unwrap();
    // A fault planned far ahead would help, but the driver stops waiting first.
    cluster.fault_at(Time::from_millis(3_600_000), Fault::Restart(WorkerId(0)));
    let start = cluster.now();
    assert!(matches!(data.count(), Err(Error::NoWorkers { .. })));
    let waited = cluster.now() - start;
    assert!(waited < 2 * TIMEOUT + WORKERS_WAIT, "waited {waited:?}");
}
