//! The streaming context's behaviour: invalid durations, missing outputs, the start/stop life
//! cycle, failing batches, listeners, output order, `remember` + `slice`, and graceful and
//! immediate stops of the threaded runner. Time only moves through a `ManualClock`; threads
//! synchronize through channels, barriers and listener callbacks, never sleeps.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use dstream::{
    BatchInfo, Error, ManualClock, StepCluster, StreamingContext, StreamingListener, StreamingState, TaskErrorKind,
    Time,
};

const SEC: Duration = Duration::from_secs(1);
const SEED: u64 = 0xC0_0C;
const WORKERS: u32 = 2;
/// The configuration, for assertion messages.
const AT: &str = "StepCluster of 2 workers, seed 0xc00c";

fn secs(n: u64) -> Time {
    Time::from_millis(n * 1000)
}

/// A stepping cluster, a manual clock at zero and a context with one-second batches. The
/// cluster must outlive the context.
fn setup() -> (StepCluster, Arc<ManualClock>, StreamingContext) {
    let cluster = StepCluster::builder().workers(WORKERS).seed(SEED).build();
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let ssc = StreamingContext::new(cluster.context(), SEC, clock.clone()).unwrap();
    (cluster, clock, ssc)
}

/// A listener that forwards every event to a channel.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    Submitted(Time),
    Started(Time),
    Completed(BatchInfo),
    Failed(Time, String),
}

struct Forward(Mutex<Sender<Event>>);

impl StreamingListener for Forward {
    fn on_batch_submitted(&self, time: Time) {
        let _ = self.0.lock().unwrap().send(Event::Submitted(time));
    }
    fn on_batch_started(&self, time: Time) {
        let _ = self.0.lock().unwrap().send(Event::Started(time));
    }
    fn on_batch_completed(&self, info: &BatchInfo) {
        let _ = self.0.lock().unwrap().send(Event::Completed(info.clone()));
    }
    fn on_batch_failed(&self, time: Time, error: &Error) {
        let _ = self.0.lock().unwrap().send(Event::Failed(time, error.to_string()));
    }
}

fn listen(ssc: &StreamingContext) -> Receiver<Event> {
    let (tx, rx) = channel();
    ssc.add_listener(Arc::new(Forward(Mutex::new(tx))));
    rx
}

/// Blocks until the batch at `time` completed (events of earlier batches are skipped).
fn await_batch(events: &Receiver<Event>, time: Time) {
    loop {
        match events.recv().unwrap() {
            Event::Completed(info) if info.time == time => return,
            Event::Failed(t, e) => panic!("batch {t} failed: {e} ({AT})"),
            _ => {}
        }
    }
}

/// A shared log that outputs append to.
type Log<T> = Arc<Mutex<Vec<T>>>;

/// Appends to a log, as an output operation's result.
fn append<T>(log: &Log<T>, entry: T) -> Result<(), Error> {
    log.lock().unwrap().push(entry);
    Ok(())
}

#[test]
fn a_zero_batch_interval_is_invalid() {
    let cluster = StepCluster::builder().workers(WORKERS).seed(SEED).build();
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let err = StreamingContext::new(cluster.context(), Duration::ZERO, clock.clone()).unwrap_err();
    assert!(
        matches!(err, Error::InvalidDuration { ref what, .. } if what.contains("batch interval")),
        "{err:?} ({AT})"
    );
    let err = StreamingContext::create(cluster.context(), Duration::ZERO, clock, |_| Ok(())).unwrap_err();
    assert!(matches!(err, Error::InvalidDuration { .. }), "{err:?} ({AT})");
}

#[test]
fn window_durations_must_be_multiples_of_the_parent_slide() {
    let (_cluster, _clock, ssc) = setup();
    let (_, nums) = ssc.queue_stream::<u32>(1);
    let pairs = nums.map(|x| (x, 1u64));
    let ms = Duration::from_millis;
    let bad = [(ms(1500), SEC), (2 * SEC, ms(500)), (Duration::ZERO, SEC), (SEC, Duration::ZERO), (ms(999), ms(999))];
    for (l, s) in bad {
        let results = [
            ("window", nums.window(l, s).err()),
            ("count_by_window", nums.count_by_window(l, s).err()),
            ("reduce_by_window", nums.reduce_by_window(|a, b| a + b, l, s).err()),
            ("reduce_by_window_inv", nums.reduce_by_window_inv(|a, b| a + b, |a, b| a - b, l, s).err()),
            ("count_by_value_and_window", nums.count_by_value_and_window_with_partitions(l, s, 2).err()),
            ("reduce_by_key_and_window", pairs.reduce_by_key_and_window(|a, b| a + b, l, s).err()),
            (
                "reduce_by_key_and_window_inv",
                pairs.reduce_by_key_and_window_inv_with_partitions(|a, b| a + b, |a, b| a - b, l, s, 2).err(),
            ),
            (
                "reduce_by_key_and_window_inv_filtered",
                pairs.reduce_by_key_and_window_inv_filtered(|a, b| a + b, |a, b| a - b, l, s, 2, |_| true).err(),
            ),
            ("group_by_key_and_window", pairs.group_by_key_and_window(l, s).err()),
        ];
        for (name, err) in results {
            assert!(matches!(err, Some(Error::InvalidDuration { .. })), "{name}({l:?}, {s:?}): {err:?} ({AT})");
        }
    }
    // A window of a stream sliding by 2 s must use multiples of 2 s.
    let slow = nums.window(2 * SEC, 2 * SEC).unwrap();
    assert!(matches!(slow.window(3 * SEC, 2 * SEC), Err(Error::InvalidDuration { .. })), "{AT}");
    assert!(matches!(slow.window(4 * SEC, SEC), Err(Error::InvalidDuration { .. })), "{AT}");
    assert!(slow.window(4 * SEC, 2 * SEC).is_ok(), "{AT}");
    // Streams combined batch by batch must slide together.
    assert!(matches!(nums.union(std::slice::from_ref(&slow)), Err(Error::InvalidDuration { .. })), "{AT}");
    assert!(matches!(nums.transform_with(&slow, |a, _, _| Ok(a.clone())), Err(Error::InvalidDuration { .. })), "{AT}");
    let slow_pairs = pairs.window(2 * SEC, 2 * SEC).unwrap();
    assert!(matches!(pairs.join(&slow_pairs), Err(Error::InvalidDuration { .. })), "{AT}");
    assert!(matches!(pairs.cogroup(&slow_pairs), Err(Error::InvalidDuration { .. })), "{AT}");
    // Zero partitions are refused when the stream is built, too.
    assert!(matches!(nums.repartition(0), Err(Error::ZeroPartitions { .. })), "{AT}");
    assert!(
        matches!(
            pairs.reduce_by_key_and_window_inv_with_partitions(|a, b| a + b, |a, b| a - b, SEC, SEC, 0),
            Err(Error::ZeroPartitions { .. })
        ),
        "{AT}"
    );
    assert_eq!(ssc.state(), StreamingState::Initialized, "{AT}");
}

#[test]
fn starting_without_outputs_is_an_error() {
    let (_cluster, _clock, ssc) = setup();
    let (queue, nums) = ssc.queue_stream::<u32>(1);
    let _unused = nums.map(|x| x + 1);
    assert!(matches!(ssc.step(), Err(Error::NoOutputOperations)), "{AT}");
    assert!(matches!(ssc.start(), Err(Error::NoOutputOperations)), "{AT}");
    assert_eq!(ssc.state(), StreamingState::Initialized, "{AT}");
    // Adding an output afterwards makes the context runnable.
    let seen: Log<Vec<u32>> = Arc::default();
    let sink = Arc::clone(&seen);
    nums.foreach_rdd(move |rdd, _| append(&sink, rdd.collect()?)).unwrap();
    queue.push(vec![7]);
    assert_eq!(ssc.step().unwrap().time, secs(1), "{AT}");
    assert_eq!(*seen.lock().unwrap(), vec![vec![7]], "{AT}");
}

#[test]
fn outputs_cannot_be_added_after_start_and_a_context_starts_once() {
    let (_cluster, _clock, ssc) = setup();
    let (_, nums) = ssc.queue_stream::<u32>(1);
    nums.foreach_rdd(|_, _| Ok(())).unwrap();
    ssc.step().unwrap();
    let late = nums.map(|x| x * 2);
    assert!(
        matches!(late.foreach_rdd(|_, _| Ok(())), Err(Error::StreamingStarted { operation: "foreach_rdd" })),
        "{AT}"
    );
    assert!(matches!(late.print(3), Err(Error::StreamingStarted { operation: "print" })), "{AT}");
    assert!(matches!(ssc.start(), Err(Error::StreamingStarted { .. })), "start after step ({AT})");

    let (_cluster, _clock, ssc) = setup();
    let (_, nums) = ssc.queue_stream::<u32>(1);
    nums.foreach_rdd(|_, _| Ok(())).unwrap();
    let handle = ssc.start().unwrap();
    assert_eq!(handle.state(), StreamingState::Active, "{AT}");
    assert!(matches!(ssc.start(), Err(Error::StreamingStarted { operation: "start" })), "second start ({AT})");
    assert!(matches!(nums.foreach_rdd(|_, _| Ok(())), Err(Error::StreamingStarted { .. })), "{AT}");
    assert!(!handle.await_termination_timeout(Duration::ZERO).unwrap(), "{AT}");
    handle.stop(false).unwrap();
    assert_eq!(handle.state(), StreamingState::Stopped, "{AT}");
    assert!(handle.await_termination_timeout(Duration::ZERO).unwrap(), "{AT}");
    assert!(matches!(ssc.start(), Err(Error::StreamingStopped)), "start after stop ({AT})");
    assert!(matches!(ssc.step(), Err(Error::StreamingStopped)), "step after stop ({AT})");
}

#[test]
fn create_runs_the_job_function() {
    let cluster = StepCluster::builder().workers(WORKERS).seed(SEED).build();
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let seen: Log<(Time, u64)> = Arc::default();
    let sink = Arc::clone(&seen);
    let (ssc, queue) = StreamingContext::create(cluster.context(), SEC, clock.clone(), move |ssc| {
        let (queue, words) = ssc.queue_stream::<String>(2);
        words.count().foreach_rdd(move |rdd, t| append(&sink, (t, rdd.collect()?[0])))?;
        Ok(queue)
    })
    .unwrap();
    queue.push(vec!["a".into(), "b".into()]);
    ssc.step().unwrap();
    ssc.step().unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![(secs(1), 2), (secs(2), 0)], "{AT}");
    let err = StreamingContext::create(cluster.context(), SEC, clock, |_| Err::<(), _>(Error::NoOutputOperations));
    assert!(matches!(err, Err(Error::NoOutputOperations)), "{AT}");
}

/// Starts a context whose single output runs `f` on each batch's records and advances the
/// clock by five batches; returns the error `await_termination` gave and the listener events.
fn run_until_failure(
    f: impl Fn(Vec<u32>) -> Result<(), Error> + Send + Sync + 'static,
    map_panics_on: u32,
) -> (Error, Vec<Event>) {
    let (_cluster, clock, ssc) = setup();
    let events = listen(&ssc);
    let (queue, nums) = ssc.queue_stream::<u32>(2);
    for b in 1..=5 {
        queue.push(vec![b * 10, b * 10 + 3]);
    }
    let mapped = nums.map(move |x| if x == map_panics_on { panic!("bad record {x}") } else { x });
    mapped.foreach_rdd(move |rdd, _| f(rdd.collect()?)).unwrap();
    let handle = ssc.start().unwrap();
    clock.advance(5 * SEC);
    let err = handle.await_termination().unwrap_err();
    assert_eq!(handle.state(), StreamingState::Stopped, "{AT}");
    assert!(matches!(handle.await_termination_timeout(Duration::ZERO), Err(Error::BatchFailed(_))), "{AT}");
    (err, events.try_iter().collect())
}

#[test]
fn a_failing_output_stops_the_context() {
    let (err, events) = run_until_failure(
        |records| if records.contains(&20) { Err(Error::BatchFailed("sink down".into())) } else { Ok(()) },
        u32::MAX,
    );
    assert!(matches!(&err, Error::BatchFailed(m) if m.contains("sink down")), "{err:?}, {AT}");
    // Batch 1 completed, batch 2 failed, later batches never ran.
    assert!(
        matches!(&events[..], [Event::Submitted(t0), Event::Started(t1), Event::Completed(_), Event::Submitted(_), Event::Started(t2), Event::Failed(t3, m)]
        if *t0 == secs(1) && *t1 == secs(1) && *t2 == secs(2) && *t3 == secs(2) && m.contains("sink down")),
        "{events:?}, {AT}"
    );
}

/// A panic in code the batch thread runs itself (an output's function, outside any task) ends
/// the thread; waiting for the context reports it with the panic's message.
#[test]
fn a_panicking_output_fails_its_batch_tells_the_listeners_and_stops_the_context() {
    let (_cluster, clock, ssc) = setup();
    let events = listen(&ssc);
    let (input, nums) = ssc.input_stream::<u32>();
    nums.foreach_rdd(|_, _| panic!("output down")).unwrap();
    let handle = ssc.start().unwrap();
    clock.advance(SEC);
    // The listeners hear of the failure, and the context stops by itself with the error.
    let failed = loop {
        match events.recv().unwrap() {
            Event::Failed(t, e) => break (t, e),
            Event::Completed(info) => panic!("batch {} completed, {AT}", info.time),
            _ => {}
        }
    };
    assert_eq!(failed.0, secs(1), "{AT}");
    assert!(failed.1.contains("output down"), "{failed:?}, {AT}");
    let err = handle.await_termination().unwrap_err();
    assert!(
        matches!(&err, Error::BatchFailed(m) if m.contains("output foreach_rdd") && m.contains("output down")),
        "{err:?}, {AT}"
    );
    assert_eq!(ssc.state(), StreamingState::Stopped, "{AT}");
    assert!(input.push(1).is_err(), "a stopped context accepts no input, {AT}");

    // Stepping, the same error comes back from `step`, and the context is stopped.
    let (_cluster, _clock, ssc) = setup();
    let (queue, nums) = ssc.queue_stream::<u32>(1);
    nums.foreach_rdd(|_, _| panic!("output down")).unwrap();
    queue.push(vec![1]);
    let err = ssc.step().unwrap_err();
    assert!(
        matches!(&err, Error::OutputPanicked { output: "foreach_rdd", message, .. } if message == "output down"),
        "{err:?}"
    );
    assert_eq!(ssc.state(), StreamingState::Stopped, "{AT}");
}

#[test]
fn a_panicking_map_stops_the_context() {
    let (err, events) = run_until_failure(|_| Ok(()), 33);
    assert!(matches!(&err, Error::BatchFailed(m) if m.contains("bad record 33")), "{err:?}, {AT}");
    assert!(matches!(events.last(), Some(Event::Failed(t, _)) if *t == secs(3)), "{events:?}, {AT}");
    assert_eq!(events.iter().filter(|e| matches!(e, Event::Completed(_))).count(), 2, "{events:?}, {AT}");

    // Stepping, the error is the task's.
    let (_cluster, _clock, ssc) = setup();
    let (queue, nums) = ssc.queue_stream::<u32>(1);
    nums.map(|x| if x == 33 { panic!("bad record {x}") } else { x })
        .foreach_rdd(|rdd, _| rdd.count().map(drop))
        .unwrap();
    queue.push(vec![33]);
    let err = ssc.step().unwrap_err();
    assert!(matches!(&err, Error::TaskFailed { cause, .. } if cause.kind == TaskErrorKind::Panicked), "{err:?}, {AT}");
}

#[test]
fn listeners_see_every_batch_with_its_records_and_outputs() {
    let (_cluster, _clock, ssc) = setup();
    let events = listen(&ssc);
    let (qa, a) = ssc.queue_stream::<u32>(2);
    let (qb, b) = ssc.queue_stream::<u32>(1);
    a.foreach_rdd(|_, _| Ok(())).unwrap();
    a.union(std::slice::from_ref(&b)).unwrap().print(2).unwrap();
    b.count().foreach_rdd(|_, _| Ok(())).unwrap();
    for (x, y) in [(vec![1, 2, 3], vec![9]), (vec![], vec![8]), (vec![4, 5], vec![])] {
        qa.push(x);
        qb.push(y);
    }
    let infos: Vec<BatchInfo> = (0..4).map(|_| ssc.step().unwrap()).collect();
    let seen: Vec<Event> = events.try_iter().collect();
    let expected: Vec<Event> = infos
        .iter()
        .flat_map(|i| [Event::Submitted(i.time), Event::Started(i.time), Event::Completed(i.clone())])
        .collect();
    assert_eq!(seen, expected, "{AT}");
    for (k, info) in infos.iter().enumerate() {
        assert_eq!(info.time, secs(k as u64 + 1), "batch {}, {AT}", k + 1);
        let names: Vec<&str> = info.output_ops.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["foreach_rdd", "print", "foreach_rdd"], "batch {}, {AT}", k + 1);
    }
    let records: Vec<u64> = infos.iter().map(|i| i.records).collect();
    assert_eq!(records, [4, 1, 2, 0], "{AT}");
}

#[test]
fn outputs_run_in_definition_order_once_per_batch() {
    let (_cluster, clock, ssc) = setup();
    let events = listen(&ssc);
    let (queue, nums) = ssc.queue_stream::<u32>(2);
    let log: Log<(&'static str, Time, Vec<u32>)> = Arc::default();
    let output = |name: &'static str| {
        let log = Arc::clone(&log);
        move |rdd: &dstream::Rdd<u32>, t: Time| append(&log, (name, t, rdd.collect()?))
    };
    nums.foreach_rdd(output("first")).unwrap();
    nums.window(2 * SEC, 2 * SEC).unwrap().foreach_rdd(output("window")).unwrap();
    nums.map(|x| x * 10).foreach_rdd(output("third")).unwrap();
    for k in 1..=5 {
        queue.push(vec![k]);
    }
    let handle = ssc.start().unwrap();
    clock.advance(5 * SEC);
    await_batch(&events, secs(5));
    handle.stop(false).unwrap();
    let mut expected = Vec::new();
    for k in 1..=5u32 {
        let t = secs(u64::from(k));
        expected.push(("first", t, vec![k]));
        if k % 2 == 0 {
            expected.push(("window", t, vec![k - 1, k]));
        }
        expected.push(("third", t, vec![k * 10]));
    }
    assert_eq!(*log.lock().unwrap(), expected, "{AT}");
}

#[test]
fn remember_keeps_datasets_for_slice() {
    let batches: Vec<Vec<u32>> = vec![vec![1], vec![2, 3], vec![], vec![4], vec![5, 6, 7], vec![8]];
    for remember in [None, Some(3 * SEC)] {
        let (_cluster, _clock, ssc) = setup();
        if let Some(d) = remember {
            ssc.remember(d);
        }
        let (queue, nums) = ssc.queue_stream::<u32>(2);
        let doubled = nums.map(|x| x * 2);
        doubled.foreach_rdd(|_, _| Ok(())).unwrap();
        batches.iter().for_each(|b| {
            queue.push(b.clone());
        });
        batches.iter().for_each(|_| {
            ssc.step().unwrap();
        });
        let at = format!("remember {remember:?}, {AT}");
        let sliced = doubled.slice(secs(2), secs(6));
        let times: Vec<Time> = sliced.iter().map(|(t, _)| *t).collect();
        // What is remembered lies in the range, in order, and always includes the last batch;
        // with `remember(3 s)`, every batch of the last 3 seconds.
        assert!(
            times.windows(2).all(|w| w[0] < w[1]) && times.iter().all(|t| (secs(2)..=secs(6)).contains(t)),
            "{times:?}, {at}"
        );
        let must: BTreeSet<Time> = match remember {
            Some(_) => (3..=6).map(secs).collect(),
            None => [secs(6)].into(),
        };
        assert!(must.iter().all(|t| times.contains(t)), "{times:?} lacks some of {must:?}, {at}");
        for (t, rdd) in &sliced {
            let k = (t.as_millis() / 1000) as usize;
            let want: Vec<u32> = batches[k - 1].iter().map(|x| x * 2).collect();
            assert_eq!(rdd.collect().unwrap(), want, "slice at {t}, {at}");
        }
        if remember.is_some() {
            assert_eq!(doubled.slice(secs(5), secs(5)).len(), 1, "{at}");
        }
        assert!(doubled.slice(secs(6), secs(5)).is_empty(), "{at}");
        assert!(doubled.slice(secs(7), secs(9)).is_empty(), "{at}");
    }
}

#[test]
// The test plays a program's pushing threads: core's ban on spawning threads does not apply.
#[allow(clippy::disallowed_methods)]
fn a_graceful_stop_loses_nothing() {
    const THREADS: u32 = 4;
    const ROUNDS: u32 = 3;
    let (_cluster, clock, ssc) = setup();
    let events = listen(&ssc);
    let (input, records) = ssc.input_stream::<(u32, u32)>();
    let batches: Log<(Time, Vec<(u32, u32)>)> = Arc::default();
    let sink = Arc::clone(&batches);
    records.foreach_rdd(move |rdd, t| append(&sink, (t, rdd.collect()?))).unwrap();
    let handle = ssc.start().unwrap();
    let barrier = Arc::new(Barrier::new(THREADS as usize + 1));
    let pushers: Vec<_> = (0..THREADS)
        .map(|th| {
            let (input, barrier) = (input.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                // Rounds 0..ROUNDS: 50 records each, then wait for the main thread to run a batch.
                for r in 0..ROUNDS {
                    (0..50).for_each(|i| input.push((th, r * 1000 + i)).unwrap());
                    barrier.wait();
                    barrier.wait();
                }
                // The last round races with the stop: what was accepted must be processed.
                let accepted: Vec<(u32, u32)> =
                    (0..200).map(|i| (th, ROUNDS * 1000 + i)).filter(|r| input.push_all([*r]).is_ok()).collect();
                accepted
            })
        })
        .collect();
    for r in 0..ROUNDS {
        barrier.wait(); // the round's records are in
        clock.advance(SEC);
        await_batch(&events, secs(u64::from(r) + 1));
        barrier.wait();
    }
    handle.stop(true).unwrap();
    let last_round: Vec<(u32, u32)> = pushers.into_iter().flat_map(|p| p.join().unwrap()).collect();
    assert!(matches!(input.push((99, 0)), Err(Error::StreamingStopped)), "{AT}");
    assert_eq!(handle.state(), StreamingState::Stopped, "{AT}");

    let batches = batches.lock().unwrap();
    let times: Vec<Time> = batches.iter().map(|(t, _)| *t).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "batch times {times:?}, {AT}");
    // Round r was pushed while the clock stood at r s, so it is exactly batch r + 1.
    for r in 0..ROUNDS {
        let mut got = batches[r as usize].1.clone();
        got.sort();
        let want: Vec<(u32, u32)> = (0..THREADS).flat_map(|th| (0..50).map(move |i| (th, r * 1000 + i))).collect();
        assert_eq!(got, want, "batch {}, {AT}", r + 1);
    }
    let mut all: Vec<(u32, u32)> = batches.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total, "a record appears in two batches, {AT}");
    let mut expected: Vec<(u32, u32)> =
        (0..ROUNDS).flat_map(|r| (0..THREADS).flat_map(move |th| (0..50).map(move |i| (th, r * 1000 + i)))).collect();
    expected.extend(last_round);
    expected.sort();
    assert_eq!(all, expected, "records accepted before the stop, {AT}");
}

#[test]
fn an_immediate_stop_does_not_wait_for_the_clock() {
    let (_cluster, _clock, ssc) = setup();
    let (input, records) = ssc.input_stream::<u32>();
    let ran: Log<Time> = Arc::default();
    let sink = Arc::clone(&ran);
    records.foreach_rdd(move |_, t| append(&sink, t)).unwrap();
    let handle = ssc.start().unwrap();
    input.push_all(0..10).unwrap();
    // The clock never reaches the first batch: the stop must not wait for it.
    handle.stop(false).unwrap();
    assert_eq!(handle.state(), StreamingState::Stopped, "{AT}");
    assert!(ran.lock().unwrap().is_empty(), "no batch was due: {:?}, {AT}", ran.lock().unwrap());
    assert!(matches!(input.push(1), Err(Error::StreamingStopped)), "{AT}");
    handle.await_termination().unwrap();
}

#[test]
fn dropping_the_handle_leaves_the_context_running_until_it_is_stopped() {
    // Spark's `start()` returns nothing and the context runs until `stop`: `ssc.start()?;`
    // (the handle dropped at once) must not stop it.
    let (_cluster, clock, ssc) = setup();
    let events = listen(&ssc);
    let (queue, nums) = ssc.queue_stream::<u32>(1);
    let seen: Log<Vec<u32>> = Arc::default();
    let sink = Arc::clone(&seen);
    nums.foreach_rdd(move |rdd, _| append(&sink, rdd.collect()?)).unwrap();
    queue.push(vec![1, 2]);
    queue.push(vec![3]);
    drop(ssc.start().unwrap());
    assert_eq!(ssc.state(), StreamingState::Active, "the dropped handle stopped the context ({AT})");
    clock.advance(2 * SEC);
    // Bounded: a context that stopped sends nothing, and the wait fails the test.
    let completed: Vec<Time> = std::iter::from_fn(|| events.recv_timeout(Duration::from_secs(30)).ok())
        .filter_map(|e| match e {
            Event::Completed(info) => Some(info.time),
            _ => None,
        })
        .take(2)
        .collect();
    assert_eq!(completed, vec![secs(1), secs(2)], "batches after the handle was dropped ({AT})");
    assert_eq!(*seen.lock().unwrap(), vec![vec![1, 2], vec![3]], "{AT}");
    // The context stops and waits without a handle, as Spark's does.
    assert!(!ssc.await_termination_timeout(Duration::ZERO).unwrap(), "{AT}");
    ssc.stop(false).unwrap();
    assert_eq!(ssc.state(), StreamingState::Stopped, "{AT}");
    ssc.await_termination().unwrap();
    // Stopping again only says how it ended.
    ssc.stop(true).unwrap();
}

#[test]
fn stop_and_await_on_the_context_work_for_stepped_and_unstarted_contexts() {
    let (_cluster, _clock, ssc) = setup();
    let (_, nums) = ssc.queue_stream::<u32>(1);
    nums.foreach_rdd(|_, _| Ok(())).unwrap();
    ssc.step().unwrap();
    ssc.stop(true).unwrap();
    assert_eq!(ssc.state(), StreamingState::Stopped, "{AT}");
    assert!(matches!(ssc.step(), Err(Error::StreamingStopped)), "{AT}");
    ssc.await_termination().unwrap();

    let (_cluster, _clock, ssc) = setup();
    ssc.stop(false).unwrap();
    assert_eq!(ssc.state(), StreamingState::Stopped, "{AT}");
    assert!(matches!(ssc.start(), Err(Error::NoOutputOperations | Error::StreamingStopped)), "{AT}");
}

#[test]
fn a_stateful_stream_without_checkpoints_is_refused_at_start_unless_allowed() {
    type Build = fn(&dstream::DStream<(u32, u64)>);
    let stateful: [(&str, Build); 3] = [
        ("update_state_by_key", |p| {
            p.update_state_by_key(|vs: Vec<u64>, s: Option<u64>| Some(s.unwrap_or(0) + vs.len() as u64), 2)
                .unwrap()
                .print(1)
                .unwrap()
        }),
        ("map_with_state", |p| {
            let spec = dstream::StateSpec::function(|_: &u32, v: Option<u64>, s: &mut dstream::State<u64>| {
                s.update(v.unwrap_or(0));
                None::<()>
            });
            p.map_with_state(spec).unwrap().print(1).unwrap()
        }),
        ("reduce_by_key_and_window", |p| {
            p.reduce_by_key_and_window_inv(|a, b| a + b, |a, b| a - b, 2 * SEC, SEC).unwrap().print(1).unwrap()
        }),
    ];
    for (operator, build) in stateful {
        let (_cluster, _clock, ssc) = setup();
        let (_, pairs) = ssc.queue_stream::<(u32, u64)>(1);
        build(&pairs);
        match ssc.start() {
            Err(Error::CheckpointRequired { operator: op, .. }) => assert_eq!(op, operator, "{AT}"),
            other => panic!("{operator}: started without checkpoints: {other:?} ({AT})"),
        }
        assert_eq!(ssc.state(), StreamingState::Initialized, "{operator}: a refused start changes nothing ({AT})");
        ssc.allow_unbounded_lineage();
        ssc.start().unwrap().stop(false).unwrap();
        assert!(matches!(ssc.start(), Err(Error::StreamingStopped)), "{operator}: start after stop ({AT})");

        // Steps run a bounded number of batches: no permission needed.
        let (_cluster, _clock, ssc) = setup();
        let (_, pairs) = ssc.queue_stream::<(u32, u64)>(1);
        build(&pairs);
        ssc.step().unwrap();
    }
    // Windows without an inverse keep no state.
    let (_cluster, _clock, ssc) = setup();
    let (_, pairs) = ssc.queue_stream::<(u32, u64)>(1);
    pairs.reduce_by_key_and_window(|a, b| a + b, 2 * SEC, SEC).unwrap().print(1).unwrap();
    ssc.start().unwrap().stop(false).unwrap();
}

#[test]
fn pushed_records_form_one_partition_per_block_interval_of_arrival() {
    // One-second batches have 200 ms blocks: a record's partition is the block of its arrival.
    let (_cluster, clock, ssc) = setup();
    let (input, records) = ssc.input_stream::<u32>();
    let parts: Log<Vec<Vec<u32>>> = Arc::default();
    let sink = Arc::clone(&parts);
    records.foreach_rdd(move |rdd, _| append(&sink, rdd.glom().collect()?)).unwrap();
    let ms = |n: u64| Duration::from_millis(n);
    // The first step fixes the context's zero time at 0: batch 1 s is empty.
    assert_eq!(ssc.step().unwrap().records, 0, "{AT}");
    clock.advance(ms(1050));
    input.push_all(vec![1, 2]).unwrap();
    clock.advance(ms(50));
    input.push(3).unwrap();
    input.push(4).unwrap(); // Same arrival time: the same chunk as 3.
    input.push_all(Vec::new()).unwrap();
    clock.advance(ms(150));
    input.push_all([5]).unwrap();
    clock.advance(ms(750)); // At the batch's end: still in it.
    input.push_all(vec![6]).unwrap();
    clock.advance(ms(50));
    input.push_all(vec![7, 8]).unwrap();
    assert_eq!(ssc.step().unwrap().records, 6, "{AT}");
    clock.advance(ms(950));
    assert_eq!(ssc.step().unwrap().records, 2, "{AT}");
    let got = parts.lock().unwrap().clone();
    assert_eq!(got, vec![vec![vec![]], vec![vec![1, 2, 3, 4], vec![5], vec![6]], vec![vec![7, 8]]], "{AT}");
}
