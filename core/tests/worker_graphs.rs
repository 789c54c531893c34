//! The process-faithful mode: every worker builds the program itself, on a graph of its own,
//! and rebuilds each batch's datasets from its own streams when a task names them (the replay
//! model of ARCHITECTURE.md). What it cannot rebuild is refused with a typed error, never
//! answered wrongly; a worker running another program is refused, naming what differs.
#![allow(clippy::unwrap_used)]

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::{DStream, Error, ManualClock, QueueHandle, Rdd, StepCluster, StreamingContext, Time};

const SECOND: Duration = Duration::from_secs(1);

/// A word count over a window of `length`; its transform counts its calls in `calls`.
fn words(
    ssc: &StreamingContext,
    length: Duration,
    calls: Arc<AtomicUsize>,
) -> (QueueHandle<String>, DStream<(String, u64)>) {
    let (queue, lines) = ssc.queue_stream::<String>(2);
    let counts = lines
        .flat_map(|l| l.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .transform(move |rdd, _| {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(rdd.map(|w| (w, 1u64)))
        })
        .reduce_by_key_and_window(|a, b| a + b, length, SECOND)
        .unwrap();
    (queue, counts)
}

/// A context on a manual clock, batches of a second.
fn context(ctx: &dstream::Context) -> Result<StreamingContext, Error> {
    StreamingContext::new(ctx.clone(), SECOND, Arc::new(ManualClock::new(Time::ZERO)))
}

/// A cluster of `workers` workers each running `words` with a window of `length`, and the
/// calls of the workers' transforms.
fn cluster(workers: u32, length: Duration) -> (StepCluster, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let cluster = StepCluster::builder()
        .workers(workers)
        .seed(7)
        .build_with_worker_programs(move |ctx| {
            let ssc = context(ctx)?;
            words(&ssc, length, Arc::clone(&c)).1.foreach_rdd(|_, _| Ok(()))?;
            Ok(Box::new(ssc) as Box<dyn Any + Send>)
        })
        .unwrap();
    (cluster, calls)
}

type Batches = Arc<Mutex<Vec<Vec<(String, u64)>>>>;

/// Runs `words` (window of two batches) on the driver of `cluster` over `input`, one line per
/// batch; returns each batch's sorted counts and the driver's transform calls.
fn run(cluster: &StepCluster, input: &[&str]) -> Result<(Vec<Vec<(String, u64)>>, usize), Error> {
    let ssc = context(&cluster.context())?;
    let calls = Arc::new(AtomicUsize::new(0));
    let (queue, counts) = words(&ssc, 2 * SECOND, Arc::clone(&calls));
    let seen: Batches = Arc::default();
    let sink = Arc::clone(&seen);
    counts.foreach_rdd(move |rdd, _| {
        let mut batch = rdd.collect()?;
        batch.sort();
        sink.lock().unwrap().push(batch);
        Ok(())
    })?;
    for line in input {
        queue.push(vec![line.to_string()]);
        ssc.step()?;
    }
    let out = seen.lock().unwrap().clone();
    Ok((out, calls.load(Ordering::SeqCst)))
}

fn pairs(words: &[(&str, u64)]) -> Vec<(String, u64)> {
    words.iter().map(|&(w, n)| (w.to_string(), n)).collect()
}

#[test]
fn workers_rebuild_every_batch_themselves() {
    let input = ["a b", "b c", "c"];
    let expected =
        vec![pairs(&[("a", 1), ("b", 1)]), pairs(&[("a", 1), ("b", 2), ("c", 1)]), pairs(&[("b", 1), ("c", 2)])];
    let shared = StepCluster::builder().workers(3).seed(7).build();
    let (out, driver_calls) = run(&shared, &input).unwrap();
    assert_eq!((out, driver_calls), (expected.clone(), 3));
    let (cluster, worker_calls) = cluster(3, 2 * SECOND);
    let (out, driver_calls) = run(&cluster, &input).unwrap();
    assert_eq!(out, expected);
    assert_eq!(driver_calls, 3, "the driver generates each batch once");
    // Every batch ran a task on at least one worker, which rebuilt it by running the
    // transform itself; a worker rebuilds a batch at most once.
    let calls = worker_calls.load(Ordering::SeqCst);
    assert!((3..=9).contains(&calls), "the workers' transforms ran {calls} times");
}

#[test]
fn what_workers_keep_of_the_driver_is_bounded() {
    let (cluster, _) = cluster(2, 2 * SECOND);
    let input: Vec<String> = (0..30).map(|i| format!("w{} w{}", i % 5, i % 3)).collect();
    let input: Vec<&str> = input.iter().map(String::as_str).collect();
    run(&cluster, &input).unwrap();
    for (worker, (inputs, results)) in cluster.worker_batch_facts().into_iter().enumerate() {
        // The window reads two batches: their input blocks are what is still kept.
        assert!(inputs <= 3, "worker {worker} keeps {inputs} input batches after 30 batches");
        assert_eq!(results, 0, "worker {worker} keeps job results");
    }
}

#[test]
fn a_worker_running_another_program_is_refused_naming_the_difference() {
    let (cluster, _) = cluster(2, 3 * SECOND);
    let err = run(&cluster, &["a"]).unwrap_err();
    let Error::Refused { reason, .. } = &err else { panic!("{err:?}") };
    assert!(reason.contains("length=2s") && reason.contains("length=3s"), "{reason}");
}

#[test]
fn a_dataset_derived_inside_an_output_is_refused_not_answered() {
    let build = |ssc: &StreamingContext, inside: Arc<Mutex<Vec<u64>>>| {
        let (queue, lines) = ssc.queue_stream::<String>(2);
        let lengths = lines.map(|l| l.len() as u64);
        lengths
            .foreach_rdd(move |rdd: &Rdd<u64>, _| {
                // Built-in actions over the batch's own dataset run anywhere...
                inside.lock().unwrap().push(rdd.count()?);
                inside.lock().unwrap().extend(rdd.take(1)?);
                // ...a dataset derived here exists on the driver only.
                inside.lock().unwrap().extend(rdd.map(|n| n * 2).collect()?);
                Ok(())
            })
            .unwrap();
        queue
    };
    let cluster = StepCluster::builder()
        .workers(2)
        .build_with_worker_programs(|ctx| {
            let ssc = context(ctx)?;
            build(&ssc, Arc::default());
            Ok(Box::new(ssc) as Box<dyn Any + Send>)
        })
        .unwrap();
    let ssc = context(&cluster.context()).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let queue = build(&ssc, Arc::clone(&seen));
    queue.push(vec!["abc".into(), "de".into()]);
    let err = ssc.step().unwrap_err();
    assert_eq!(*seen.lock().unwrap(), vec![2, 3], "count and take ran before the refusal");
    let message = err.to_string();
    assert!(message.contains("output0@") && message.contains("output operation"), "{message}");
    assert!(ssc.step().is_err(), "the failed batch stopped the context");
}

#[test]
fn a_batch_program_running_a_job_is_refused_on_a_worker() {
    let built = StepCluster::builder().workers(2).build_with_worker_programs(|ctx| {
        // `sort_by_key` samples its keys with a job while the dataset is built.
        let sorted = ctx.parallelize(vec![(3u32, 'c'), (1, 'a')], 2)?.sort_by_key(true, 2)?;
        Ok(Box::new(sorted) as Box<dyn Any + Send>)
    });
    assert!(matches!(built, Err(Error::ActionOnWorker { .. })), "{built:?}");
}
