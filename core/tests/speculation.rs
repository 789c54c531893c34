//! Speculation in virtual time: tasks sent to a worker that fell silent straggle; once three
//! quarters of their stage finished and they ran the minimum runtime, each gets a copy on
//! another worker, the first result wins, and the job ends long before the silent worker is
//! even reported lost. Without speculation the same job waits for the loss.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use dstream::{Step, StepCluster, WorkerId};

const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(1);
const MIN_RUNTIME: Duration = Duration::from_millis(100);

/// Runs a job of 8 partitions on 4 workers of 2 slots, worker 1 silent from the start; returns
/// the job's sum, how long it took in virtual time, and the trace of the job.
fn run(seed: u64, speculation: bool) -> (u64, Duration, Vec<Step>) {
    let cluster = StepCluster::builder().workers(4).slots(2).seed(seed).speculation(speculation).build();
    let data = cluster.context().parallelize((0..800u64).collect(), 8).unwrap().map(|x| x * 3);
    cluster.settle().unwrap();
    cluster.isolate(WorkerId(1)).unwrap();
    let (before, start) = (cluster.trace().len(), cluster.now());
    let sum = data.collect().unwrap().iter().sum();
    (sum, cluster.now() - start, cluster.trace()[before..].to_vec())
}

#[test]
fn tasks_on_a_silent_worker_get_copies_and_the_job_ends_before_the_loss() {
    let want: u64 = (0..800u64).map(|x| x * 3).sum();
    for seed in 0..16 {
        let (sum, took, trace) = run(seed, true);
        assert_eq!(sum, want, "seed {seed}");
        let copies: Vec<WorkerId> = trace
            .iter()
            .filter_map(|s| match s {
                Step::Speculated { worker, .. } => Some(*worker),
                _ => None,
            })
            .collect();
        // The two tasks sent to worker 1 are copied elsewhere, once each.
        assert_eq!(copies.len(), 2, "seed {seed}: {copies:?}");
        assert!(copies.iter().all(|w| *w != WorkerId(1)), "seed {seed}: {copies:?}");
        assert!(took >= MIN_RUNTIME && took < HEARTBEAT_TIMEOUT, "seed {seed}: took {took:?}");
        assert!(!trace.iter().any(|s| matches!(s, Step::Lost { .. })), "seed {seed}: nobody was lost yet");
        // Same seed, same trace: speculation is decided in virtual time only.
        assert_eq!(run(seed, true).2, trace, "seed {seed}");
    }
}

#[test]
fn without_speculation_the_job_waits_for_the_silent_worker_to_be_lost() {
    let want: u64 = (0..800u64).map(|x| x * 3).sum();
    for seed in 0..4 {
        let (sum, took, trace) = run(seed, false);
        assert_eq!(sum, want, "seed {seed}");
        assert!(took >= HEARTBEAT_TIMEOUT, "seed {seed}: took {took:?}");
        assert!(!trace.iter().any(|s| matches!(s, Step::Speculated { .. })), "seed {seed}");
        assert!(trace.iter().any(|s| matches!(s, Step::Lost { worker: WorkerId(1), .. })), "seed {seed}");
    }
}

/// A straggler due for a copy while every other worker's slots are taken waits for a slot
/// without its timer falling due again and again (the harness fails a job whose member leaves a
/// timer due after firing it), and gets its copy when a slot frees: tasks take virtual time
/// here, worker 1 runs 20 times slower, and the other worker is busy with the stage's tasks.
#[test]
fn a_straggler_waits_for_a_free_slot_without_a_timer_in_the_past() {
    let want: u64 = (0..2_000u64).sum();
    for seed in 0..16 {
        let cost = dstream::CostModel { per_task: Duration::from_millis(150), per_input_kib: Duration::from_millis(1) };
        let cluster = StepCluster::builder().workers(2).slots(1).seed(seed).cost(cost).build();
        cluster.inject(dstream::Fault::Slow { worker: WorkerId(1), times: 20 }).unwrap();
        let data = cluster.context().parallelize((0..2_000u64).collect(), 12).unwrap();
        let sum: u64 = data.collect().unwrap().iter().sum();
        assert_eq!(sum, want, "seed {seed}");
        let copies = cluster.trace().iter().filter(|s| matches!(s, Step::Speculated { .. })).count();
        assert!(copies >= 1, "seed {seed}: the slow worker's task got a copy");
    }
}
