//! Scripted exchanges between a driver and workers, stepped by hand.

use std::sync::Arc;

use super::*;
use crate::harness::StepCluster;
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
