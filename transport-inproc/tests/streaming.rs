//! Streaming on the in-process cluster: a job mixing windows and joins gives, batch by batch and
//! in the same order (unsorted), the same records on `LocalCluster`s of 1, 2 and 4 workers as
//! on the stepping harness; and the threaded runner with a manual clock drains every record
//! on a graceful stop.
#![allow(clippy::unwrap_used)]

use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::testing::StreamTest;
use dstream::{codec, BatchInfo, DStream, ManualClock, SplitMix64, StreamingContext, StreamingListener, Time};
use dstream_inproc::LocalCluster;

const SEC: Duration = Duration::from_secs(1);

type Out = (String, Vec<(u64, Option<u64>)>);

/// Words counted per batch, full-outer-joined with weights summed over 2 s, left-outer-joined
/// with the words' counts over the last 3 s (incremental), then grouped over 4 s every 2 s.
fn job(words: DStream<String>, weights: DStream<(String, u64)>) -> DStream<Out> {
    let ones = words.map(|w| (w, 1u64));
    let counts = ones.reduce_by_key(|a, b| a + b);
    let recent = ones
        .reduce_by_key_and_window_inv_filtered(|a, b| a + b, |a, b| a - b, 3 * SEC, SEC, 3, |(_, n)| *n > 0)
        .unwrap();
    let weighed = weights.reduce_by_key_and_window(|a, b| a + b, 2 * SEC, SEC).unwrap();
    counts
        .full_outer_join(&weighed)
        .unwrap()
        .map_values(|(c, w)| c.unwrap_or(0) + w.unwrap_or(0))
        .left_outer_join(&recent)
        .unwrap()
        .group_by_key_and_window(4 * SEC, 2 * SEC)
        .unwrap()
}

fn inputs() -> (Vec<Vec<String>>, Vec<Vec<(String, u64)>>) {
    let mut rng = SplitMix64::new(0xA11CE);
    let mut word = move |n: usize| format!("w{}", rng.below(n));
    let sizes = [0, 3, 17, 40, 0, 25, 8, 0, 12];
    let words = sizes.iter().map(|&n| (0..n).map(|_| word(9)).collect()).collect();
    let weights = sizes.iter().rev().map(|&n| (0..n / 2).map(|i| (word(12), i as u64)).collect()).collect();
    (words, weights)
}

#[test]
fn local_cluster_matches_the_stepping_harness() {
    let (words, weights) = inputs();
    let run = |test: StreamTest| test.partitions(3).run2(words.clone(), weights.clone(), job).unwrap();
    let reference = run(StreamTest::new().workers(1).seed(0));
    let reference_bytes = codec::encode(&reference).unwrap();
    assert_eq!(reference.len(), words.len(), "StepCluster, 1 worker, seed 0");
    assert!(
        reference.iter().skip(1).step_by(2).all(|b| !b.is_empty()),
        "every slide has records (1 worker, seed 0): {reference:?}"
    );
    assert!(
        reference.iter().step_by(2).all(Vec::is_empty),
        "no output between slides (1 worker, seed 0): {reference:?}"
    );
    for workers in [1, 2, 4] {
        let seed = 0x5EED ^ u64::from(workers);
        let stepped = run(StreamTest::new().workers(workers).seed(seed));
        assert!(codec::encode(&stepped).unwrap() == reference_bytes, "StepCluster, {workers} workers, seed {seed:#x}");
        let cluster = LocalCluster::builder().workers(workers).threads(2).slots(2).build().unwrap();
        let local = run(StreamTest::new().on(cluster.context()));
        assert!(
            codec::encode(&local).unwrap() == reference_bytes,
            "LocalCluster with {workers} workers differs from StepCluster (1 worker, seed 0):\n{local:?}\nvs\n{reference:?}"
        );
    }
}

struct Completed(Mutex<std::sync::mpsc::Sender<Time>>);

impl StreamingListener for Completed {
    fn on_batch_completed(&self, info: &BatchInfo) {
        let _ = self.0.lock().unwrap().send(info.time);
    }
}

#[test]
fn threaded_batches_on_a_local_cluster_drain_on_a_graceful_stop() {
    for workers in [1, 3] {
        let at = format!("LocalCluster with {workers} workers");
        let cluster = LocalCluster::builder().workers(workers).threads(2).slots(2).build().unwrap();
        let clock = Arc::new(ManualClock::new(Time::ZERO));
        let ssc = StreamingContext::new(cluster.context(), SEC, clock.clone()).unwrap();
        let (done_tx, done) = channel();
        ssc.add_listener(Arc::new(Completed(Mutex::new(done_tx))));
        let (input, numbers) = ssc.input_stream::<u64>();
        let totals: Arc<Mutex<Vec<(Time, u64, u64)>>> = Arc::default();
        let sink = Arc::clone(&totals);
        numbers
            .map(|x| (x % 4, x))
            .reduce_by_key(|a, b| a + b)
            .foreach_rdd(move |rdd, t| {
                let sums = rdd.collect()?;
                sink.lock().unwrap().push((t, sums.iter().map(|(_, s)| s).sum(), sums.len() as u64));
                Ok(())
            })
            .unwrap();
        let handle = ssc.start().unwrap();
        let pushers: Vec<_> = (0..3u64)
            .map(|th| {
                let input = input.clone();
                std::thread::spawn(move || (0..500).map(|i| th * 1000 + i).for_each(|x| input.push(x).unwrap()))
            })
            .collect();
        pushers.into_iter().for_each(|p| p.join().unwrap());
        clock.advance(SEC);
        assert_eq!(done.recv().unwrap(), Time::from_millis(1000), "{at}");
        input.push_all(10_000..10_010).unwrap();
        handle.stop(true).unwrap();
        assert!(input.push(1).is_err(), "{at}: a push after the stop is refused");
        let totals = totals.lock().unwrap();
        let first: u64 = (0..3u64).flat_map(|th| (0..500).map(move |i| th * 1000 + i)).sum();
        assert_eq!(totals[0], (Time::from_millis(1000), first, 4), "{at}");
        let rest: u64 = totals[1..].iter().map(|(_, s, _)| s).sum();
        assert_eq!(rest, (10_000..10_010).sum::<u64>(), "{at}: {totals:?}");
    }
}
