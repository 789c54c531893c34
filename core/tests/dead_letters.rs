//! Poison records (issue 13, defect 8): a record that makes a per-record function panic on
//! every attempt fails its batch, unless its stream sets poison records aside
//! (`DStream::with_dead_letters`); then the rest of the batch goes on and the record reaches
//! `foreach_dead_letters` with its error, the same whatever the cluster.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::testing::StreamTest;
use dstream::{DStream, DeadLetter, Error, ManualClock, StepCluster, StreamingContext, TaskErrorKind, Time};

/// What a test keeps of a dead letter: batch delivered in, stream-free identity and content.
type Seen = (Time, Time, String, u32, u64, String, u32);

fn parse(x: u32) -> u32 {
    if x % 10 == 7 {
        panic!("poison record {x}");
    }
    x * 2
}

fn keep(x: &u32) -> bool {
    if *x == 42 {
        panic!("filter refuses {x}");
    }
    x % 3 != 0
}

/// Sends the dead letters of `s`'s context to `sink`.
fn collect_letters(s: &DStream<u32>, sink: &Arc<Mutex<Vec<Seen>>>) {
    let sink = Arc::clone(sink);
    s.context()
        .foreach_dead_letters(move |letters: &[DeadLetter], time| {
            let mut seen = sink.lock().unwrap();
            for d in letters {
                let record = d.record::<u32>().unwrap();
                seen.push((time, d.time, d.operator.clone(), d.partition, d.index, d.error.clone(), record));
            }
            Ok(())
        })
        .unwrap();
}

fn input() -> Vec<Vec<u32>> {
    vec![(0..30).collect(), (30..60).collect(), (60..64).collect()]
}

#[test]
fn a_poison_record_fails_its_batch_when_dead_letters_are_off() {
    let err = StreamTest::new().run(input(), |s| s.map(parse)).unwrap_err();
    let Error::TaskFailed { attempts, cause, .. } = err else { panic!("{err:?}") };
    assert_eq!((attempts, &cause.kind), (4, &TaskErrorKind::Panicked));
    assert!(cause.message.contains("poison record"), "{cause}");
}

#[test]
fn poison_records_become_dead_letters_identically_on_every_cluster() {
    let mut runs = Vec::new();
    for (workers, worker_graphs, seed) in [(1, false, 0), (2, false, 3), (4, false, 9), (2, true, 1), (4, true, 5)] {
        let letters: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let out = StreamTest::new()
            .workers(workers)
            .worker_graphs(worker_graphs)
            .seed(seed)
            .partitions(3)
            .run(input(), |s| {
                collect_letters(&s, &letters);
                let parsed = s.map(parse).with_dead_letters().unwrap();
                parsed.filter(keep).with_dead_letters().unwrap()
            })
            .unwrap();
        let expected: Vec<Vec<u32>> = input()
            .into_iter()
            .map(|b| b.into_iter().filter(|x| x % 10 != 7).map(|x| x * 2).filter(|x| *x != 42 && x % 3 != 0).collect())
            .collect();
        assert_eq!(out, expected, "{workers} workers, worker graphs {worker_graphs}");
        runs.push(letters.lock().unwrap().clone());
    }
    let first = &runs[0];
    let records: Vec<(String, u32)> = first.iter().map(|l| (l.2.clone(), l.6)).collect();
    let mut want: Vec<(String, u32)> = (0..64).filter(|x| x % 10 == 7).map(|x| ("map".to_string(), x)).collect();
    want.push(("filter".to_string(), 42));
    let mut sorted = records.clone();
    sorted.sort();
    want.sort();
    assert_eq!(sorted, want);
    assert!(first.iter().all(|l| l.0 == l.1), "delivered with their own batch: {first:?}");
    assert!(first.iter().any(|l| l.5 == "poison record 37"), "{first:?}");
    for run in &runs[1..] {
        assert_eq!(run, first, "the same dead letters, in the same order, on every cluster");
    }
}

#[test]
fn dead_letters_are_counted_in_the_batch_report() {
    let cluster = StepCluster::builder().workers(2).build();
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), clock.clone()).unwrap();
    let (queue, numbers) = ssc.queue_stream::<u32>(2);
    let letters: Arc<Mutex<Vec<Seen>>> = Arc::default();
    collect_letters(&numbers, &letters);
    let words = numbers.flat_map(|x| if x == 5 { panic!("no words for {x}") } else { vec![x; 2] });
    let counts = words.with_dead_letters().unwrap().map(|x| (x % 2, 1u32)).reduce_by_key(|a, b| a + b);
    let out: Arc<Mutex<Vec<Vec<(u32, u32)>>>> = Arc::default();
    let o = Arc::clone(&out);
    counts
        .foreach_rdd(move |rdd, _| {
            let mut c = rdd.collect()?;
            c.sort();
            o.lock().unwrap().push(c);
            Ok(())
        })
        .unwrap();
    queue.push((0..10).collect());
    queue.push((10..12).collect());
    let first = ssc.step().unwrap();
    clock.set(first.time);
    let second = ssc.step().unwrap();
    assert_eq!((first.dead_letters, second.dead_letters), (1, 0));
    // Every record but 5, twice each, through a shuffle whose map side set it aside.
    assert_eq!(*out.lock().unwrap(), vec![vec![(0, 10), (1, 8)], vec![(0, 2), (1, 2)]]);
    let seen = letters.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].2.as_str(), seen[0].5.as_str(), seen[0].6), ("flat_map", "no words for 5", 5));
}

#[test]
fn a_transient_panic_is_retried_and_sets_nothing_aside() {
    let calls = Arc::new(AtomicUsize::new(0));
    let letters: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let c = Arc::clone(&calls);
    let out = StreamTest::new()
        .run(input(), move |s| {
            collect_letters(&s, &letters);
            let c = Arc::clone(&c);
            let flaky = move |x: u32| {
                if x == 13 && c.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("first attempt only");
                }
                x
            };
            s.map(flaky).with_dead_letters().unwrap()
        })
        .unwrap();
    assert_eq!(out, input());
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one failed call, one retried");
}

#[test]
fn a_panic_in_a_reduce_function_still_fails_the_batch() {
    let err = StreamTest::new()
        .run(input(), |s| {
            collect_letters(&s, &Arc::default());
            let pairs = s.map(|x| (x % 3, x)).with_dead_letters().unwrap();
            pairs.reduce_by_key(|a, b| if a + b > 100 { panic!("reduce overflow {a} + {b}") } else { a + b })
        })
        .unwrap_err();
    let Error::TaskFailed { cause, .. } = &err else { panic!("{err:?}") };
    assert_eq!(cause.kind, TaskErrorKind::PanicNotCovered, "{err}");
    assert!(err.to_string().contains("reduce overflow"), "{err}");
    assert!(err.to_string().contains("outside the per-record operators"), "{err}");
}

#[test]
fn more_dead_letters_than_a_batch_may_keep_fail_it() {
    let err = StreamTest::new()
        .run(input(), |s| {
            collect_letters(&s, &Arc::default());
            s.context().dead_letters_per_batch_max(2).unwrap();
            s.map(parse).with_dead_letters().unwrap()
        })
        .unwrap_err();
    assert!(
        matches!(err, Error::TooManyDeadLetters { count: 3, max: 2, .. })
            || matches!(&err, Error::TaskFailed { cause, .. } if cause.kind == TaskErrorKind::DeadLettersExceeded),
        "{err:?}"
    );
}

#[test]
fn dead_letters_without_an_output_are_refused_at_the_start() {
    let err = StreamTest::new().run(input(), |s| s.map(parse).with_dead_letters().unwrap()).unwrap_err();
    assert!(matches!(err, Error::NoDeadLetterOutput { .. }), "{err:?}");
}
