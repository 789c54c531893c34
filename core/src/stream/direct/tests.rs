use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::harness::StepCluster;
use crate::time::ManualClock;

/// A source over a shared sequence of numbers: position = the index of the next one; each
/// batch reads everything appended since, split in two partitions, at most `records_max`.
#[derive(Clone, Default)]
struct Sequence {
    numbers: Arc<Mutex<Vec<u64>>>,
    completed: Arc<Mutex<Vec<(Time, u64)>>>,
    reads: Arc<Mutex<Vec<DirectRead>>>,
    /// Read errors to report (and give an empty batch), then to fail with.
    recoverable: Arc<Mutex<u32>>,
    fatal: Arc<Mutex<bool>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the sequence is gone")]
struct Gone;

impl DirectSource for Sequence {
    type Record = u64;
    type Position = u64;
    type Error = Gone;

    fn read_batch(
        &mut self,
        read: &DirectRead,
        from: Option<&u64>,
        ctx: &DirectContext,
    ) -> Result<DirectBatch<u64, u64>, Gone> {
        lock(&self.reads).push(read.clone());
        let start = from.copied().unwrap_or(0);
        if *lock(&self.fatal) {
            return Err(Gone);
        }
        {
            let mut recoverable = lock(&self.recoverable);
            if *recoverable > 0 {
                *recoverable -= 1;
                ctx.report_error("the sequence is unreachable");
                return Ok(DirectBatch { partitions: Vec::new(), position: start });
            }
        }
        let numbers = lock(&self.numbers);
        let end = (numbers.len() as u64).min(start.saturating_add(read.records_max.unwrap_or(u64::MAX)));
        let batch: Vec<u64> = numbers[start as usize..end as usize].to_vec();
        let half = batch.len() / 2;
        Ok(DirectBatch { partitions: vec![batch[..half].to_vec(), batch[half..].to_vec()], position: end })
    }

    fn batch_completed(&mut self, time: Time, position: &u64, _ctx: &DirectContext) {
        lock(&self.completed).push((time, *position));
    }
}

fn context() -> (StepCluster, StreamingContext) {
    let cluster = StepCluster::builder().workers(2).build();
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), clock).unwrap();
    (cluster, ssc)
}

type Batches = Arc<Mutex<Vec<(Time, Vec<Vec<u64>>)>>>;

fn collect(stream: &DStream<u64>) -> Batches {
    let batches = Batches::default();
    let sink = Arc::clone(&batches);
    stream
        .foreach_rdd(move |rdd, time| {
            lock(&sink).push((time, rdd.glom().collect()?));
            Ok(())
        })
        .unwrap();
    batches
}

#[test]
fn each_batch_reads_on_from_where_the_last_ended_and_completions_follow() {
    let (_cluster, ssc) = context();
    let source = Sequence::default();
    let batches = collect(&ssc.direct_stream(source.clone()));
    lock(&source.numbers).extend(0..5);
    ssc.step().unwrap();
    ssc.step().unwrap(); // nothing new: an empty batch
    lock(&source.numbers).extend(5..8);
    let info = ssc.step().unwrap();
    assert_eq!(info.records, 3);
    let got = lock(&batches).clone();
    let t = |s: u64| Time::from_millis(s * 1000);
    assert_eq!(
        got,
        vec![(t(1), vec![vec![0, 1], vec![2, 3, 4]]), (t(2), vec![vec![], vec![]]), (t(3), vec![vec![5], vec![6, 7]])]
    );
    assert_eq!(*lock(&source.completed), vec![(t(1), 5), (t(2), 5), (t(3), 8)]);
    assert_eq!(ssc.input_buffered_bytes(), vec![(ssc.input_buffered_bytes()[0].0, 0)]);
}

#[test]
fn the_rate_bounds_each_batch_and_a_stop_reads_nothing_more() {
    let (_cluster, ssc) = context();
    let source = Sequence::default();
    let stream = ssc.direct_stream_with(source.clone(), FlowControl::default().rate_max_per_sec(4));
    let batches = collect(&stream);
    lock(&source.numbers).extend(0..10);
    for _ in 0..3 {
        ssc.step().unwrap();
    }
    let sizes: Vec<usize> = lock(&batches).iter().map(|(_, p)| p.iter().map(Vec::len).sum()).collect();
    assert_eq!(sizes, vec![4, 4, 2]);
    assert!(lock(&source.reads).iter().all(|r| r.records_max == Some(4)));
    ssc.stop(true).unwrap();
    assert_eq!(lock(&source.reads).len(), 3, "a stopped source is not read");
}

#[test]
fn a_recovered_error_is_reported_and_loses_nothing_and_a_fatal_one_stops_the_context() {
    let (_cluster, ssc) = context();
    let source = Sequence::default();
    let stream = ssc.direct_stream(source.clone());
    let batches = collect(&stream);
    lock(&source.numbers).extend(0..3);
    *lock(&source.recoverable) = 2;
    for _ in 0..3 {
        ssc.step().unwrap();
    }
    let records: Vec<u64> = lock(&batches).iter().flat_map(|(_, p)| p.concat()).collect();
    assert_eq!(records, vec![0, 1, 2], "read once the source is back");
    let errors = ssc.receiver_errors();
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().all(|e| e.stream == stream.id() && e.message.contains("unreachable")));

    *lock(&source.fatal) = true;
    let err = ssc.step().unwrap_err();
    assert!(matches!(&err, Error::SourceFailed { stream: s, .. } if *s == stream.id()), "{err}");
    assert!(err.to_string().contains("the sequence is gone"), "{err}");
    assert_eq!(ssc.state(), super::super::StreamingState::Stopped);
}

#[test]
fn backpressure_bounds_the_first_batch_then_follows_the_processing_rate() {
    let (_cluster, ssc) = context();
    let source = Sequence::default();
    let flow = FlowControl::default().backpressure(200).rate_max_per_sec(1000);
    let batches = collect(&ssc.direct_stream_with(source.clone(), flow));
    lock(&source.numbers).extend(0..5000);
    ssc.step().unwrap();
    let first: usize = lock(&batches)[0].1.iter().map(Vec::len).sum();
    assert_eq!(first, 200, "the initial rate times the 1 s interval");
    for _ in 0..5 {
        ssc.step().unwrap();
    }
    // The estimate moves with the batches' delays, and never passes the static maximum.
    let maxima: Vec<Option<u64>> = lock(&source.reads).iter().map(|r| r.records_max).collect();
    assert_eq!(maxima[0], Some(200));
    assert!(maxima.iter().all(|m| m.is_some_and(|m| (1..=1000).contains(&m))), "{maxima:?}");
    let read: usize = lock(&batches).iter().map(|(_, p)| p.iter().map(Vec::len).sum::<usize>()).sum();
    let bounds: u64 = maxima.iter().flatten().sum();
    assert!(read as u64 <= bounds, "{read} records read within bounds summing to {bounds}");
}

/// Reads ten records a batch whatever the bound.
struct Greedy;

impl DirectSource for Greedy {
    type Record = u64;
    type Position = u64;
    type Error = Gone;

    fn read_batch(
        &mut self,
        _: &DirectRead,
        _: Option<&u64>,
        _: &DirectContext,
    ) -> Result<DirectBatch<u64, u64>, Gone> {
        Ok(DirectBatch { partitions: vec![(0..10).collect()], position: 10 })
    }
}

#[test]
fn a_source_reading_past_its_bound_fails_the_batch_with_a_typed_error() {
    let (_cluster, ssc) = context();
    let stream = ssc.direct_stream_with(Greedy, FlowControl::default().rate_max_per_sec(4));
    let batches = collect(&stream);
    let err = ssc.step().unwrap_err();
    assert!(matches!(&err, Error::SourceFailed { stream: s, .. } if *s == stream.id()), "{err}");
    assert!(err.to_string().contains("more than the 4"), "{err}");
    assert!(lock(&batches).is_empty(), "no batch ran");
}
