//! Partitions computed ahead of their batch's close: on a `LocalCluster` the narrow part of a
//! batch runs on each input partition once it is complete, while the batch fills. The outputs
//! must be the ones a stepped run (which computes nothing ahead) gives, batch by batch, byte
//! for byte, including operators that see the partition's index through a union, and the
//! batches must read what was computed ahead.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)] // Helpers outside #[test] functions; a failure is the test failing.

use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::{
    BatchInfo, Context, InputHandle, ManualClock, PartitionsAhead, StepCluster, StreamingContext, StreamingListener,
    Time,
};
use dstream_inproc::LocalCluster;

const BATCHES: u64 = 4;
/// Block intervals per batch: 1 s batches, 200 ms block intervals.
const INTERVALS: u64 = 5;

type Lines = Arc<Mutex<Vec<String>>>;

struct Program {
    ssc: StreamingContext,
    clock: Arc<ManualClock>,
    a: InputHandle<String>,
    b: InputHandle<String>,
    lines: Lines,
}

/// Three frontier streams: a `map` over one input feeding a shuffle, a `map_partitions` over a
/// union that records each partition's index, and a `filter` read by an output.
fn program(ctx: Context) -> Program {
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let ssc = StreamingContext::new(ctx, Duration::from_secs(1), clock.clone()).unwrap();
    let lines: Lines = Arc::default();
    let (a, words_a) = ssc.input_stream::<String>();
    let (b, words_b) = ssc.input_stream::<String>();
    let out = Arc::clone(&lines);
    words_a
        .map(|w| (w, 1u64))
        .reduce_by_key(|x, y| x + y)
        .foreach_rdd(move |rdd, time| {
            let mut counts = rdd.collect()?;
            counts.sort();
            out.lock().unwrap().push(format!("{time} counts {counts:?}"));
            Ok(())
        })
        .unwrap();
    let out = Arc::clone(&lines);
    words_a
        .union(std::slice::from_ref(&words_b))
        .unwrap()
        .map_partitions(|index, words| [(index, words.len(), words.first().cloned())])
        .foreach_rdd(move |rdd, time| {
            out.lock().unwrap().push(format!("{time} partitions {:?}", rdd.collect()?));
            Ok(())
        })
        .unwrap();
    let out = Arc::clone(&lines);
    words_b
        .filter(|w| w.contains('x'))
        .foreach_rdd(move |rdd, time| {
            out.lock().unwrap().push(format!("{time} matches {:?}", rdd.collect()?));
            Ok(())
        })
        .unwrap();
    Program { ssc, clock, a, b, lines }
}

/// The words of input `input`'s push `push` in block interval `interval` of batch `k`.
fn words(input: char, k: u64, interval: u64, push: u64) -> Vec<String> {
    (0..7 + (k + interval + push) % 5)
        .map(|i| format!("{input}{}{}", (k * 31 + interval * 7 + push * 3 + i) % 11, if i % 4 == 0 { "x" } else { "" }))
        .collect()
}

/// Pushes batch `k`'s records: two pushes into `a` and one into `b` in every block interval.
fn push_batch(p: &Program, k: u64) {
    for interval in 0..INTERVALS {
        let start = (k - 1) * 1_000 + interval * 200;
        p.clock.set(Time::from_nanos((start + 10) * 1_000_000));
        p.a.push_all(words('a', k, interval, 0)).unwrap();
        p.b.push_all(words('b', k, interval, 0)).unwrap();
        p.clock.set(Time::from_nanos((start + 60) * 1_000_000));
        p.a.push_all(words('a', k, interval, 1)).unwrap();
    }
}

struct Completed(Mutex<std::sync::mpsc::Sender<Time>>);

impl StreamingListener for Completed {
    fn on_batch_completed(&self, info: &BatchInfo) {
        let _ = self.0.lock().unwrap().send(info.time);
    }
}

/// The stepped run: nothing is computed ahead.
fn stepped() -> Vec<String> {
    let cluster = StepCluster::builder().workers(2).build();
    let p = program(cluster.context());
    for k in 1..=BATCHES {
        push_batch(&p, k);
        assert_eq!(p.ssc.step().unwrap().time, Time::from_nanos(k * 1_000_000_000));
    }
    assert_eq!(p.ssc.partitions_ahead(), PartitionsAhead::default());
    let lines = p.lines.lock().unwrap().clone();
    lines
}

/// The run on its own batch thread on a `LocalCluster`: each batch closes when the clock
/// reaches it, once its records are pushed.
fn threaded() -> (Vec<String>, PartitionsAhead) {
    let cluster = LocalCluster::builder().workers(2).threads(2).build().unwrap();
    let p = program(cluster.context());
    let (tx, completed): (_, Receiver<Time>) = channel();
    p.ssc.add_listener(Arc::new(Completed(Mutex::new(tx))));
    p.ssc.allow_unbounded_lineage();
    let handle = p.ssc.start().unwrap();
    for k in 1..=BATCHES {
        push_batch(&p, k);
        let time = Time::from_nanos(k * 1_000_000_000);
        p.clock.set(time);
        assert_eq!(completed.recv().unwrap(), time);
    }
    let ahead = p.ssc.partitions_ahead();
    handle.stop(false).unwrap();
    let lines = p.lines.lock().unwrap().clone();
    (lines, ahead)
}

#[test]
fn partitions_computed_ahead_give_the_stepped_outputs_and_are_read() {
    let expected = stepped();
    assert_eq!(expected.len() as u64, 3 * BATCHES);
    let (lines, ahead) = threaded();
    assert_eq!(lines, expected);
    // Of each input's five partitions per batch, the first four are complete before the batch
    // closes (the last one only at the close). The map over `a` and the filter over `b`: 4 per
    // batch each; the union's: `a`'s 4 per batch, and `b`'s 4 from the second batch on, once
    // `a`'s partition count is known from the batch before.
    let per_batch = 4;
    let computed = per_batch * BATCHES + (per_batch * BATCHES + per_batch * (BATCHES - 1)) + per_batch * BATCHES;
    assert_eq!(ahead, PartitionsAhead { computed, read: computed });
}
