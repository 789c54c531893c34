//! A direct stream (`StreamingContext::direct_stream`) restarted from its checkpoints: every
//! record the source holds lands in exactly one batch of a batch-keyed sink, whether the
//! program stopped between batches or crashed in the middle of one, on the driver's graph or
//! with worker processes that build the program themselves. (tests/kafka.rs does the same
//! against a Kafka broker.)
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::{
    DirectBatch, DirectContext, DirectRead, DirectSource, Error, ManualClock, StepCluster, StreamingContext, Time,
};
use dstream_storage::Memory;

/// The numbers a source holds: appended by the test, read by position (the index).
type Numbers = Arc<Mutex<Vec<u64>>>;

struct Sequence(Numbers);

impl DirectSource for Sequence {
    type Record = u64;
    type Position = u64;
    type Error = std::convert::Infallible;

    fn read_batch(
        &mut self,
        _: &DirectRead,
        from: Option<&u64>,
        _: &DirectContext,
    ) -> Result<DirectBatch<u64, u64>, Self::Error> {
        let numbers = self.0.lock().unwrap();
        let start = from.copied().unwrap_or(0) as usize;
        let batch = numbers[start..].to_vec();
        let (a, b) = batch.split_at(batch.len() / 2);
        Ok(DirectBatch { partitions: vec![a.to_vec(), b.to_vec()], position: numbers.len() as u64 })
    }
}

/// Each batch's records, by batch: a batch run again replaces its own entry.
type Sink = Arc<Mutex<BTreeMap<Time, Vec<u64>>>>;

struct Run {
    ssc: StreamingContext,
    _cluster: StepCluster,
}

/// The program: the counts of odd and even numbers over a sliding window (a stateful stream,
/// checkpointed), and the batch-keyed sink; its output fails at `crash_at`, as a process dying
/// in the middle of the batch would.
fn program(ssc: &StreamingContext, numbers: Numbers, sink: Sink, crash_at: Option<Time>) -> Result<(), Error> {
    let records = ssc.direct_stream(Sequence(numbers));
    records
        .map(|n| n % 2)
        .count_by_value_and_window(Duration::from_secs(3), Duration::from_secs(1))?
        .foreach_rdd(|_, _| Ok(()))?;
    records.foreach_rdd(move |rdd, time| {
        if Some(time) == crash_at {
            return Err(Error::BatchFailed("the process died".into()));
        }
        let mut records = rdd.collect()?;
        records.sort_unstable();
        sink.lock().unwrap().insert(time, records);
        Ok(())
    })?;
    Ok(())
}

/// Starts (or restarts) the program.
fn start(storage: &Memory, numbers: &Numbers, sink: &Sink, crash_at: Option<Time>, own_graphs: bool) -> Run {
    let interval = Duration::from_secs(1);
    let builder = StepCluster::builder().workers(2);
    let cluster = if own_graphs {
        let storage = storage.clone();
        builder
            .build_with_worker_processes(move |ctx| {
                let clock = Arc::new(ManualClock::new(Time::ZERO));
                let (ssc, ()) = StreamingContext::get_or_create(
                    ctx.clone(),
                    interval,
                    clock,
                    dstream_storage::checkpointing(storage.clone()),
                    |ssc| program(ssc, Numbers::default(), Sink::default(), None),
                )?;
                Ok(Box::new(ssc) as Box<dyn std::any::Any + Send>)
            })
            .unwrap()
    } else {
        builder.build()
    };
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let checkpointing = dstream_storage::checkpointing(storage.clone());
    let (numbers, sink) = (Arc::clone(numbers), Arc::clone(sink));
    let (ssc, ()) = StreamingContext::get_or_create(cluster.context(), interval, clock, checkpointing, |ssc| {
        program(ssc, numbers, sink, crash_at)
    })
    .unwrap();
    Run { ssc, _cluster: cluster }
}

/// Appends batch `k`'s new numbers (3 of them) and runs a batch.
fn step(run: &Run, numbers: &Numbers, k: u64) -> Result<(), Error> {
    numbers.lock().unwrap().extend(k * 3..k * 3 + 3);
    run.ssc.step().map(drop)
}

/// Every record of the sink, in batch order, and whether each number is there exactly once.
fn assert_exactly_once(sink: &Sink, total: u64, what: &str) {
    let all: Vec<u64> = sink.lock().unwrap().values().flatten().copied().collect();
    let mut sorted = all.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..total).collect::<Vec<_>>(), "{what}: {all:?}");
}

#[test]
fn a_restart_between_batches_reads_on_exactly_after_the_last_batch() {
    for (stop_after, own) in (1..6).flat_map(|k| [(k, false), (k, true)]) {
        let (storage, numbers, sink) = (Memory::new(), Numbers::default(), Sink::default());
        {
            let first = start(&storage, &numbers, &sink, None, own);
            for k in 0..stop_after {
                step(&first, &numbers, k).unwrap();
            }
            // Numbers that arrive while no program runs are read by the next batch.
            numbers.lock().unwrap().extend([stop_after * 3, stop_after * 3 + 1]);
        }
        let second = start(&storage, &numbers, &sink, None, own);
        let mut total = numbers.lock().unwrap().len() as u64;
        for k in stop_after + 1..8 {
            step(&second, &numbers, k).unwrap();
            total = numbers.lock().unwrap().len() as u64;
        }
        let what = format!("stopped after {stop_after} batches (own graphs: {own})");
        let all: Vec<u64> = sink.lock().unwrap().values().flatten().copied().collect();
        assert_eq!(all.len() as u64, total, "{what}: {all:?}");
        let mut distinct = all.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), all.len(), "{what}: a record in two batches: {all:?}");
    }
}

#[test]
fn a_batch_interrupted_after_its_input_closed_runs_once_with_the_same_records() {
    for (crash_at, own) in (1..6).flat_map(|k| [(k, false), (k, true)]) {
        let (storage, numbers, sink) = (Memory::new(), Numbers::default(), Sink::default());
        let crash_time = Time::from_millis(crash_at * 1000);
        {
            let first = start(&storage, &numbers, &sink, Some(crash_time), own);
            for k in 0..crash_at - 1 {
                step(&first, &numbers, k).unwrap();
            }
            assert!(step(&first, &numbers, crash_at - 1).is_err(), "batch {crash_at} fails");
        }
        // More numbers come before the restart: the interrupted batch does not take them.
        numbers.lock().unwrap().extend(crash_at * 3..crash_at * 3 + 3);
        let second = start(&storage, &numbers, &sink, None, own);
        second.ssc.step().unwrap(); // the interrupted batch, from its log
        let replayed = sink.lock().unwrap()[&crash_time].clone();
        assert_eq!(replayed, ((crash_at - 1) * 3..crash_at * 3).collect::<Vec<_>>(), "batch {crash_at}'s own records");
        for k in crash_at + 1..6 {
            step(&second, &numbers, k).unwrap();
        }
        second.ssc.step().unwrap(); // reads what is left
        let total = numbers.lock().unwrap().len() as u64;
        assert_exactly_once(&sink, total, &format!("crashed in batch {crash_at} (own graphs: {own})"));
    }
}
