//! Scripted exchanges between a driver and workers, stepped by hand.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::error::TaskErrorKind;
use crate::harness::StepCluster;
use crate::message::{TaskDesc, TaskKind, TaskOutcome};
use crate::worker::{Worker, WorkerConfig};

/// A context whose jobs are never run: the test submits them to its own driver by hand.
struct Capture(std::sync::Mutex<Vec<JobRequest>>);

impl crate::context::JobRunner for Capture {
    fn run_job(&self, job: JobRequest) -> Result<Vec<Payload>, Error> {
        self.0.lock().unwrap().push(job);
        Err(Error::ClusterStopped { submitted: false })
    }

    fn store_blocks(&self, _upload: crate::context::BlockUpload) -> Result<(), Error> {
        Err(Error::Internal("this test runs no uploads"))
    }
}

fn capture() -> (crate::Context, Arc<Capture>) {
    let runner = Arc::new(Capture(std::sync::Mutex::new(Vec::new())));
    (crate::Context::new(Graph::new(), runner.clone()), runner)
}

/// Delivers every message between `driver` and `workers`, running tasks inline, until quiet.
fn drive(driver: &mut Driver, workers: &mut [Worker]) -> Vec<DriverEvent> {
    let now = Time::from_millis(1);
    let mut events = Vec::new();
    loop {
        let mut progressed = false;
        while let Some((to, msg)) = driver.poll_transmit() {
            progressed = true;
            let NodeId::Worker(w) = to else { panic!("driver sent to itself") };
            workers[w.0 as usize].handle_message(now, NodeId::Driver, msg);
        }
        events.extend(std::iter::from_fn(|| driver.poll_event()));
        for i in 0..workers.len() {
            while let Some((to, msg)) = workers[i].poll_transmit() {
                progressed = true;
                let from = workers[i].id();
                match to {
                    NodeId::Driver => driver.handle_message(now, from, msg),
                    NodeId::Worker(w) => workers[w.0 as usize].handle_message(now, NodeId::Worker(from), msg),
                }
            }
            while let Some(task) = workers[i].poll_task() {
                progressed = true;
                let done = task.run();
                workers[i].handle_task_done(now, done);
            }
        }
        if !progressed {
            return events;
        }
    }
}

/// A graph built by running a small program whose first dataset has `partitions` partitions.
fn program(partitions: usize) -> Arc<Graph> {
    let (ctx, _) = capture();
    let _doubled = ctx.parallelize(vec![1u32, 2, 3], partitions).unwrap().map(|x| x * 2);
    Arc::clone(ctx.graph())
}

#[test]
fn a_worker_running_another_program_is_refused_naming_the_difference() {
    let mut driver = Driver::new(DriverConfig::new(), program(2));
    let mut workers = vec![Worker::new(WorkerId(0), WorkerConfig::new(), program(3))];
    let events = drive(&mut driver, &mut workers);
    assert!(
        matches!(&events[..], [DriverEvent::WorkerRefused { worker: WorkerId(0), reason }]
            if reason.contains("same binary") && reason.contains("parallelize<u32> partitions=2") && reason.contains("partitions=3")),
        "{events:?}"
    );
    assert!(workers[0].refused().is_some_and(|r| r.contains("node 0")), "{:?}", workers[0].refused());
    assert_eq!(driver.workers().count(), 0);
}

#[test]
fn a_worker_that_built_the_same_program_in_its_own_graph_is_accepted() {
    let (driver_graph, worker_graph) = (program(2), program(2));
    assert!(!Arc::ptr_eq(&driver_graph, &worker_graph));
    assert_eq!(driver_graph.program(), worker_graph.program());
    let mut driver = Driver::new(DriverConfig::new(), driver_graph);
    let mut workers = vec![Worker::new(WorkerId(0), WorkerConfig::new(), worker_graph)];
    let events = drive(&mut driver, &mut workers);
    assert!(matches!(&events[..], [DriverEvent::WorkerRegistered(WorkerId(0))]), "{events:?}");
    assert_eq!(driver.workers().count(), 1);
}

#[test]
fn a_job_waits_for_a_worker_then_runs() {
    let (ctx, captured) = capture();
    let rdd = ctx.parallelize((0..10u32).collect(), 3).unwrap().map(|x| (x % 2, x)).reduce_by_key(|a, b| a + b);
    assert!(rdd.count().is_err());
    let job = captured.0.lock().unwrap().pop().unwrap();
    let graph = Arc::clone(ctx.graph());
    let mut driver = Driver::new(DriverConfig::new(), Arc::clone(&graph));
    let id = driver.submit_job(Time::ZERO, job);
    assert!(drive(&mut driver, &mut []).is_empty(), "nothing can run without workers");
    assert_eq!(driver.active_jobs(), 1);

    let mut workers = vec![Worker::new(WorkerId(0), WorkerConfig::new(), graph)];
    let events = drive(&mut driver, &mut workers);
    let results = events
        .into_iter()
        .find_map(|e| match e {
            DriverEvent::JobFinished { job, result } if job == id => Some(result.unwrap()),
            _ => None,
        })
        .unwrap();
    let total: u64 = results.iter().map(|p| *p.typed::<u64>().unwrap()).sum();
    assert_eq!(total, 2);
    assert_eq!(driver.active_jobs(), 0);
}

#[test]
fn dropped_shuffles_are_released_from_the_workers() {
    let cluster = StepCluster::builder().workers(2).build();
    let ctx = cluster.context();
    let shuffled = ctx.parallelize((0..1_000u64).collect(), 4).unwrap().map(|x| (x % 7, x)).group_by_key();
    assert_eq!(shuffled.count().unwrap(), 7);
    assert!(cluster.stored_bytes().iter().sum::<u64>() > 0, "the shuffle buckets are stored");
    drop(shuffled);
    // The release goes out with the next job.
    assert_eq!(ctx.parallelize(vec![1u8], 1).unwrap().count().unwrap(), 1);
    cluster.settle().unwrap();
    assert_eq!(cluster.stored_bytes(), vec![0, 0]);
}

/// A driver and `n` workers of program 7 for the dataset `0..100` in two partitions, registered
/// by hand at `T0`, with the count job over that dataset captured, not yet submitted.
fn registered(n: u32) -> (Driver, Vec<Worker>, JobRequest, crate::Context) {
    let (ctx, captured) = capture();
    assert!(ctx.parallelize((0..100u64).collect(), 2).unwrap().count().is_err());
    let job = captured.0.lock().unwrap().pop().unwrap();
    let graph = Arc::clone(ctx.graph());
    let mut driver = Driver::new(DriverConfig::new(), Arc::clone(&graph));
    let mut workers: Vec<Worker> =
        (0..n).map(|i| Worker::new(WorkerId(i), WorkerConfig::new(), Arc::clone(&graph))).collect();
    for w in &mut workers {
        let from = w.id();
        for (_, msg) in std::iter::from_fn(|| w.poll_transmit()) {
            driver.handle_message(T0, from, msg);
        }
    }
    to_workers(&mut driver, &mut workers, T0);
    let events: Vec<DriverEvent> = std::iter::from_fn(|| driver.poll_event()).collect();
    assert_eq!(events.len(), n as usize, "{events:?}");
    (driver, workers, job, ctx)
}

const T0: Time = Time::from_millis(1);

/// Delivers every message the driver has to send to its worker, at `now`.
fn to_workers(driver: &mut Driver, workers: &mut [Worker], now: Time) -> Vec<&'static str> {
    let mut kinds = Vec::new();
    while let Some((to, msg)) = driver.poll_transmit() {
        let NodeId::Worker(w) = to else { panic!("driver sent to itself") };
        kinds.push(msg.kind());
        workers[w.0 as usize].handle_message(now, NodeId::Driver, msg);
    }
    kinds
}

/// Runs every ready task of `worker` at `now` and returns what it then has to send.
fn run_ready(worker: &mut Worker, now: Time) -> Vec<(NodeId, Message)> {
    while let Some(task) = worker.poll_task() {
        let done = task.run();
        worker.handle_task_done(now, done);
    }
    std::iter::from_fn(|| worker.poll_transmit()).collect()
}

fn is_task_finished(m: &(NodeId, Message)) -> bool {
    matches!(m, (NodeId::Driver, Message::TaskFinished { .. }))
}

/// The count a finished job's results add up to.
fn total(events: Vec<DriverEvent>, id: JobId) -> Option<u64> {
    events.into_iter().find_map(|e| match e {
        DriverEvent::JobFinished { job, result } if job == id => {
            Some(result.unwrap().iter().map(|p| *p.typed::<u64>().unwrap()).sum())
        }
        _ => None,
    })
}

#[test]
fn registration_starts_the_watch_and_the_heartbeats() {
    let (driver, mut workers, _, _) = registered(2);
    let timeout = DriverConfig::new().heartbeat_timeout;
    let interval = WorkerConfig::new().heartbeat_interval;
    assert_eq!(driver.poll_timeout(), Some(T0 + timeout));
    let w = &mut workers[0];
    assert_eq!(w.poll_timeout(), Some(T0 + interval));
    w.handle_timeout(T0 + interval - Duration::from_nanos(1));
    assert!(w.poll_transmit().is_none(), "no heartbeat before it is due");
    w.handle_timeout(T0 + interval);
    assert!(matches!(w.poll_transmit(), Some((NodeId::Driver, Message::Heartbeat { incarnation: 0 }))));
    assert_eq!(w.poll_timeout(), Some(T0 + 2 * interval), "the beat keeps its grid");
    // A runtime that fell behind gets one heartbeat, not a burst.
    w.handle_timeout(T0 + 10 * interval + Duration::from_millis(1));
    assert_eq!(std::iter::from_fn(|| w.poll_transmit()).count(), 1);
    assert_eq!(w.poll_timeout(), Some(T0 + 11 * interval));
}

#[test]
fn a_late_result_from_a_worker_lost_by_timeout_is_ignored() {
    let (mut driver, mut workers, job, _ctx) = registered(2);
    let timeout = driver.config.heartbeat_timeout;
    let id = driver.submit_job(T0, job);
    assert_eq!(to_workers(&mut driver, &mut workers, T0), ["launch", "launch"]);
    assert_eq!(driver.running_tasks(), 2);
    // Worker 0 computes its partition, but its report is held back: it has gone silent.
    let held: Vec<_> = run_ready(&mut workers[0], T0).into_iter().filter(is_task_finished).collect();
    assert_eq!(held.len(), 1);
    for (_, msg) in run_ready(&mut workers[1], T0) {
        driver.handle_message(T0, WorkerId(1), msg);
    }
    // Worker 1 heartbeats; worker 0's heartbeats are lost.
    let later = T0 + Duration::from_millis(900);
    workers[1].handle_timeout(later);
    for (_, msg) in std::iter::from_fn(|| workers[1].poll_transmit()) {
        driver.handle_message(later, WorkerId(1), msg);
    }
    assert_eq!(driver.poll_timeout(), Some(T0 + timeout), "worker 0 was last heard at registration");

    driver.handle_timeout(T0 + timeout - Duration::from_nanos(1));
    assert!(driver.poll_event().is_none(), "not lost before the timeout");
    driver.handle_timeout(T0 + timeout);
    let events: Vec<DriverEvent> = std::iter::from_fn(|| driver.poll_event()).collect();
    assert!(
        matches!(
            &events[..],
            [DriverEvent::WorkerLost { worker: WorkerId(0), incarnation: 0, reason: LossReason::Timeout { silent_for } }]
                if *silent_for == timeout
        ),
        "{events:?}"
    );
    assert_eq!(driver.workers().collect::<Vec<_>>(), [WorkerId(1)]);
    assert_eq!(driver.poll_timeout(), Some(later + timeout));

    // The task is relaunched on worker 1 as attempt 1.
    let relaunch: Vec<_> = std::iter::from_fn(|| driver.poll_transmit()).collect();
    assert!(
        matches!(&relaunch[..], [(NodeId::Worker(WorkerId(1)), Message::Launch(d))] if d.attempt == 1),
        "{relaunch:?}"
    );
    // The lost incarnation's result arrives late, and so do its heartbeats: all ignored.
    let now = T0 + timeout + Duration::from_millis(1);
    for (_, msg) in held {
        driver.handle_message(now, WorkerId(0), msg);
    }
    driver.handle_message(now, WorkerId(0), Message::Heartbeat { incarnation: 0 });
    assert!(driver.poll_event().is_none(), "no result accepted from a lost incarnation");
    assert!(driver.poll_transmit().is_none());
    assert_eq!(driver.active_jobs(), 1);
    assert_eq!(driver.workers().collect::<Vec<_>>(), [WorkerId(1)], "a lost incarnation does not come back");

    for (to, msg) in relaunch {
        let NodeId::Worker(w) = to else { unreachable!() };
        workers[w.0 as usize].handle_message(now, NodeId::Driver, msg);
    }
    for (_, msg) in run_ready(&mut workers[1], now) {
        driver.handle_message(now, WorkerId(1), msg);
    }
    let events: Vec<DriverEvent> = std::iter::from_fn(|| driver.poll_event()).collect();
    assert_eq!(total(events, id), Some(100));
    assert_eq!(driver.running_tasks(), 0);
}

#[test]
fn a_new_incarnation_replaces_the_old_one_and_its_late_messages_are_ignored() {
    let (mut driver, mut workers, job, ctx) = registered(2);
    let id = driver.submit_job(T0, job);
    to_workers(&mut driver, &mut workers, T0);
    let held: Vec<_> = run_ready(&mut workers[0], T0).into_iter().filter(is_task_finished).collect();
    // Worker 0's process restarts before its report arrives.
    let mut config = WorkerConfig::new();
    config.incarnation = 1;
    workers[0] = Worker::new(WorkerId(0), config, Arc::clone(ctx.graph()));
    let now = T0 + Duration::from_millis(5);
    for (_, msg) in std::iter::from_fn(|| workers[0].poll_transmit()) {
        driver.handle_message(now, WorkerId(0), msg);
    }
    let events: Vec<DriverEvent> = std::iter::from_fn(|| driver.poll_event()).collect();
    assert!(
        matches!(
            &events[..],
            [
                DriverEvent::WorkerLost { worker: WorkerId(0), incarnation: 0, reason: LossReason::Replaced { by: 1 } },
                DriverEvent::WorkerRegistered(WorkerId(0)),
            ]
        ),
        "{events:?}"
    );
    assert_eq!(driver.worker_incarnation(WorkerId(0)), Some((1, true)));
    // The old incarnation's report and a stale registration change nothing.
    for (_, msg) in held {
        driver.handle_message(now, WorkerId(0), msg);
    }
    driver.handle_message(now, WorkerId(0), Message::Register { slots: 2, program: None, incarnation: 0 });
    assert!(driver.poll_event().is_none());
    assert_eq!(driver.active_jobs(), 1);
    // The job completes with the relaunched attempt.
    let mut events = Vec::new();
    for _ in 0..4 {
        to_workers(&mut driver, &mut workers, now);
        for w in &mut workers {
            for (_, msg) in run_ready(w, now) {
                driver.handle_message(now, w.id(), msg);
            }
        }
        events.extend(std::iter::from_fn(|| driver.poll_event()));
    }
    assert_eq!(total(events, id), Some(100));
}

#[test]
fn peer_lost_reports_the_worker_lost_at_once() {
    let (mut driver, _workers, _, _) = registered(2);
    let now = T0 + Duration::from_millis(2);
    driver.handle_peer_lost(now, WorkerId(1));
    let events: Vec<DriverEvent> = std::iter::from_fn(|| driver.poll_event()).collect();
    assert!(
        matches!(
            &events[..],
            [DriverEvent::WorkerLost { worker: WorkerId(1), incarnation: 0, reason: LossReason::PeerLost }]
        ),
        "{events:?}"
    );
    assert_eq!(driver.workers().collect::<Vec<_>>(), [WorkerId(0)]);
    assert_eq!(driver.worker_incarnation(WorkerId(1)), Some((0, false)));
    driver.handle_peer_lost(now, WorkerId(1));
    driver.handle_peer_lost(now, WorkerId(9));
    assert!(driver.poll_event().is_none(), "lost once; unknown workers are not reported");
    // The lost incarnation cannot register again; a newer one can.
    driver.handle_message(now, WorkerId(1), Message::Register { slots: 2, program: None, incarnation: 0 });
    assert!(driver.poll_event().is_none() && driver.poll_transmit().is_none());
    driver.handle_message(now, WorkerId(1), Message::Register { slots: 2, program: None, incarnation: 3 });
    assert!(matches!(driver.poll_event(), Some(DriverEvent::WorkerRegistered(WorkerId(1)))));
    assert!(matches!(driver.poll_transmit(), Some((NodeId::Worker(WorkerId(1)), Message::Registered))));
}

#[test]
fn a_fetch_without_reply_is_given_up_after_the_fetch_timeout() {
    let graph = Graph::new();
    let config = WorkerConfig::new();
    let fetch_timeout = config.fetch_timeout;
    let mut worker = Worker::new(WorkerId(0), config, graph);
    let _ = std::iter::from_fn(|| worker.poll_transmit()).count();
    let block = BlockId::Shuffle { shuffle: ShuffleId::program(1), map: 0, reduce: 0 };
    let desc = TaskDesc {
        task: TaskId(5),
        attempt: 0,
        job: JobId(1),
        stage: StageId(2),
        kind: TaskKind::ShuffleMap { shuffle: ShuffleId::program(9) },
        rdd: RddId::program(3),
        partition: 0,
        inputs: vec![crate::message::TaskInput { block, locations: vec![WorkerId(1)] }],
        isolation: None,
    };
    worker.handle_message(T0, NodeId::Driver, Message::Launch(desc));
    assert!(matches!(worker.poll_transmit(), Some((NodeId::Worker(WorkerId(1)), Message::Fetch { .. }))));
    assert_eq!(worker.poll_timeout(), Some(T0 + fetch_timeout), "not registered: no heartbeat, only the fetch");
    worker.handle_timeout(T0 + fetch_timeout);
    let out: Vec<_> = std::iter::from_fn(|| worker.poll_transmit()).collect();
    assert!(
        matches!(
            &out[..],
            [(NodeId::Driver, Message::TaskFinished { outcome: TaskOutcome::Failed(e), .. })]
                if matches!(e.kind, TaskErrorKind::FetchFailed { block: b } if b == block)
        ),
        "{out:?}"
    );
    assert_eq!(worker.poll_timeout(), None);
}

/// A storm of heartbeats, from a registered worker, from a lost incarnation and from a worker
/// that never registered, costs the driver nothing it keeps: no message out, no event, the
/// worker stays alive, and the lost one stays lost.
#[test]
fn a_storm_of_heartbeats_leaves_nothing_behind() {
    let mut driver = Driver::new(DriverConfig::new(), Graph::new());
    let mut workers: Vec<Worker> =
        (0..2).map(|i| Worker::new(WorkerId(i), WorkerConfig::new(), Arc::clone(&driver.graph))).collect();
    drive(&mut driver, &mut workers);
    driver.handle_peer_lost(Time::from_millis(1), WorkerId(1));
    let _ = std::iter::from_fn(|| driver.poll_event()).count();
    for i in 0..100_000u64 {
        let now = Time::from_millis(2 + i / 1_000);
        driver.handle_message(now, WorkerId(0), Message::Heartbeat { incarnation: 0 });
        driver.handle_message(now, WorkerId(1), Message::Heartbeat { incarnation: 0 });
        driver.handle_message(now, WorkerId(7), Message::Heartbeat { incarnation: 0 });
    }
    assert!(driver.poll_transmit().is_none(), "heartbeats are not answered");
    assert!(driver.poll_event().is_none(), "heartbeats make no events");
    assert_eq!(driver.workers().collect::<Vec<_>>(), vec![WorkerId(0)]);
}
