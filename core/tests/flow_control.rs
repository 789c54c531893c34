//! Flow control of input streams: the byte bound of a pushed input's buffer (a bounded wait,
//! then a typed error, nothing accepted lost, a stop wakes the pusher) and a receiver's
//! static rate, all on a manual clock.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, Receiver as Events, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::{Clock, Error, FlowControl, ManualClock, Receiver, ReceiverContext, StepCluster, StreamingContext, Time};

/// Bounds a wait for an expected event; a passing test never waits for it.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// A manual clock that says whenever a thread starts waiting on it, with the deadline: how a
/// test learns, without sleeping, that a pusher is blocked.
struct Signalling {
    clock: ManualClock,
    waits: Mutex<Sender<Time>>,
}

impl Clock for Signalling {
    fn now(&self) -> Time {
        self.clock.now()
    }
    fn wait_until(&self, deadline: Time, stop: &AtomicBool) -> bool {
        let _ = self.waits.lock().unwrap().send(deadline);
        self.clock.wait_until(deadline, stop)
    }
    fn wake(&self) {
        self.clock.wake();
    }
}

fn signalling() -> (Arc<Signalling>, Events<Time>) {
    let (tx, rx) = mpsc::channel();
    (Arc::new(Signalling { clock: ManualClock::new(Time::ZERO), waits: Mutex::new(tx) }), rx)
}

/// Waits until a thread waits on the clock with `deadline`.
fn wait_for_waiter(waits: &Events<Time>, deadline: Time) {
    loop {
        match waits.recv_timeout(EVENT_TIMEOUT) {
            Ok(d) if d == deadline => return,
            Ok(_) => {}
            Err(e) => panic!("nobody waited until {deadline} within {EVENT_TIMEOUT:?} ({e})"),
        }
    }
}

/// 400 records of `u64` are about 3.6 KB by the size estimates: one push fits a 4 KiB buffer,
/// two do not.
const RECORDS: u64 = 400;
const BYTES_MAX: u64 = 4096;

#[test]
#[allow(clippy::disallowed_methods)] // The pusher plays a host thread.
fn a_push_at_a_full_buffer_waits_then_fails_with_the_typed_error_and_nothing_accepted_is_lost() {
    let (clock, waits) = signalling();
    let cluster = StepCluster::builder().build();
    let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), clock.clone()).unwrap();
    let flow = FlowControl::default().buffer_bytes_max(BYTES_MAX).buffer_wait_max(Duration::from_secs(2));
    let (input, numbers) = ssc.input_stream_with::<u64>(flow);
    let (tx, batches) = mpsc::channel();
    numbers
        .foreach_rdd(move |rdd, _| {
            let _ = tx.send(rdd.collect()?);
            Ok(())
        })
        .unwrap();
    input.push_all(0..RECORDS).unwrap();
    let full = input.buffered_bytes();
    assert!(full > BYTES_MAX / 2 && full <= BYTES_MAX, "{full} bytes");

    let pusher = input.clone();
    let blocked = std::thread::spawn(move || pusher.push_all(RECORDS..2 * RECORDS));
    wait_for_waiter(&waits, Time::from_millis(2000));
    clock.clock.advance(Duration::from_secs(2));
    match blocked.join().unwrap() {
        Err(Error::InputBufferFull { bytes_max, waited, .. }) => {
            assert_eq!((bytes_max, waited), (BYTES_MAX, Duration::from_secs(2)));
        }
        other => panic!("expected InputBufferFull, got {other:?}"),
    }
    assert_eq!(input.buffered_bytes(), full, "the refused records were not taken");

    // The accepted records are all in the next batch, and the batch frees the buffer.
    assert_eq!(ssc.step().unwrap().records, RECORDS);
    assert_eq!(batches.recv_timeout(EVENT_TIMEOUT).unwrap(), (0..RECORDS).collect::<Vec<_>>());
    assert_eq!(input.buffered_bytes(), 0);
}

#[test]
#[allow(clippy::disallowed_methods)] // The pusher plays a host thread.
fn a_batch_that_frees_room_wakes_the_waiting_pusher() {
    let (clock, waits) = signalling();
    let cluster = StepCluster::builder().build();
    let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), clock.clone()).unwrap();
    let flow = FlowControl::default().buffer_bytes_max(BYTES_MAX).buffer_wait_max(Duration::from_secs(3600));
    let (input, numbers) = ssc.input_stream_with::<u64>(flow);
    numbers.foreach_rdd(|_, _| Ok(())).unwrap();
    input.push_all(0..RECORDS).unwrap();
    let pusher = input.clone();
    let blocked = std::thread::spawn(move || pusher.push_all(RECORDS..2 * RECORDS));
    wait_for_waiter(&waits, Time::from_millis(3_600_000));
    assert_eq!(ssc.step().unwrap().records, RECORDS);
    blocked.join().unwrap().expect("the push goes through once the batch freed room");
    assert_eq!(ssc.step().unwrap().records, RECORDS);
}

#[test]
#[allow(clippy::disallowed_methods)] // The pusher plays a host thread.
fn a_stop_wakes_a_waiting_pusher_and_a_graceful_stop_keeps_what_was_accepted() {
    let (clock, waits) = signalling();
    let cluster = StepCluster::builder().build();
    let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), clock.clone()).unwrap();
    let flow = FlowControl::default().buffer_bytes_max(BYTES_MAX).buffer_wait_max(Duration::from_secs(3600));
    let (input, numbers) = ssc.input_stream_with::<u64>(flow);
    let (tx, counts) = mpsc::channel();
    numbers
        .foreach_rdd(move |rdd, _| {
            let _ = tx.send(rdd.count()?);
            Ok(())
        })
        .unwrap();
    let running = ssc.start().unwrap();
    input.push_all(0..RECORDS).unwrap();
    let pusher = input.clone();
    let blocked = std::thread::spawn(move || pusher.push_all(RECORDS..2 * RECORDS));
    wait_for_waiter(&waits, Time::from_millis(3_600_000));
    running.stop(true).unwrap();
    assert!(matches!(blocked.join().unwrap(), Err(Error::StreamingStopped)));
    assert_eq!(counts.try_iter().sum::<u64>(), RECORDS, "every accepted record processed");
}

/// Stores `n` records one at a time, saying after each how many it stored and when.
struct OneByOne {
    n: u64,
    stored: Sender<(u64, Time)>,
}

impl Receiver<u64> for OneByOne {
    fn run(&mut self, ctx: &ReceiverContext<u64>) -> Result<(), String> {
        for i in 0..self.n {
            ctx.store(vec![i]).map_err(|e| e.to_string())?;
            let _ = self.stored.send((i + 1, ctx.clock().now()));
        }
        Ok(())
    }
}

#[test]
fn a_receiver_at_a_static_rate_stores_no_more_than_rate_times_time_plus_the_bucket() {
    const RATE: u64 = 1000;
    const BUCKET: u64 = RATE / 10;
    const N: u64 = 300;
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let cluster = StepCluster::builder().build();
    let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), clock.clone()).unwrap();
    let (tx, stored) = mpsc::channel();
    let numbers =
        ssc.receiver_stream_with(OneByOne { n: N, stored: tx }, FlowControl::default().rate_max_per_sec(RATE));
    numbers.foreach_rdd(|_, _| Ok(())).unwrap();
    ssc.start_receivers().unwrap();

    let allowed = |t: Time| (BUCKET + RATE * t.as_nanos() / 1_000_000_000).min(N);
    let mut count = 0;
    let mut steps = 0;
    while count < N {
        // What the bucket lets through by now arrives; then the receiver waits for the clock.
        while count < allowed(clock.now()) {
            let (c, at) = stored.recv_timeout(EVENT_TIMEOUT).expect("the receiver stores what the rate allows");
            assert!(c <= allowed(at), "{c} records stored by {at}, more than {}", allowed(at));
            count = c;
        }
        assert!(stored.try_recv().is_err() || count == N, "no record beyond the rate at {}", clock.now());
        clock.advance(Duration::from_millis(10));
        steps += 1;
    }
    assert_eq!(steps, (N - BUCKET) / (RATE / 100) + 1, "paced over {steps} steps of 10 ms");
    ssc.stop_receivers();
    assert_eq!(ssc.step().unwrap().records, N);
}
