use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dstream::{ManualClock, StepCluster, StreamingContext, Time};

use crate::CheckpointStats;

use super::*;

/// The samples of a text exposition: `name{labels}` to value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap())
        })
        .collect()
}

fn context() -> (StepCluster, StreamingContext) {
    let cluster = StepCluster::builder().workers(2).build();
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), clock).unwrap();
    (cluster, ssc)
}

#[test]
fn batches_are_counted_per_stream_with_their_delays() {
    let (_cluster, ssc) = context();
    let metrics = PrometheusMetrics::register(&ssc).unwrap();
    let (first, a) = ssc.queue_stream::<u64>(2);
    let (second, b) = ssc.queue_stream::<u64>(1);
    a.union(std::slice::from_ref(&b)).unwrap().count().foreach_rdd(|_, _| Ok(())).unwrap();
    let before = samples(&metrics.render());
    let (sa, sb) = (a.id().to_string(), b.id().to_string());
    assert_eq!(before[&format!("dstream_input_records_total{{stream=\"{sa}\"}}")], 0.0);
    assert_eq!(before["dstream_context_state{state=\"initialized\"}"], 1.0);
    assert_eq!(before["dstream_batch_interval_seconds"], 1.0);

    for (xs, ys) in [(vec![1, 2, 3], vec![7]), (vec![], vec![8, 9]), (vec![4], vec![])] {
        first.push(xs);
        second.push(ys);
        ssc.step().unwrap();
    }
    let after = samples(&metrics.render());
    assert_eq!(after["dstream_batches_completed_total"], 3.0);
    assert_eq!(after[&format!("dstream_input_records_total{{stream=\"{sa}\"}}")], 4.0);
    assert_eq!(after[&format!("dstream_input_records_total{{stream=\"{sb}\"}}")], 3.0);
    assert_eq!(after[&format!("dstream_last_batch_records{{stream=\"{sa}\"}}")], 1.0);
    assert_eq!(after[&format!("dstream_last_batch_records{{stream=\"{sb}\"}}")], 0.0);
    assert_eq!(after["dstream_last_completed_batch_time_seconds"], 3.0);
    for histogram in ["scheduling", "processing", "total"] {
        assert_eq!(after[&format!("dstream_batch_{histogram}_delay_seconds_count")], 3.0, "{histogram}");
        assert_eq!(after[&format!("dstream_batch_{histogram}_delay_seconds_bucket{{le=\"+Inf\"}}")], 3.0);
    }
    assert_eq!(after["dstream_output_op_duration_seconds_count{op=\"foreach_rdd\",output=\"0\"}"], 3.0);
    assert_eq!(after["dstream_batches_failed_total"], 0.0);
    assert_eq!(after["dstream_context_state{state=\"active\"}"], 1.0);
}

#[test]
fn a_failed_batch_is_counted_and_a_stopped_context_keeps_its_metrics() {
    let (_cluster, ssc) = context();
    let metrics = PrometheusMetrics::register(&ssc).unwrap();
    let (queue, numbers) = ssc.queue_stream::<u64>(1);
    numbers
        .foreach_rdd(|rdd, _| match rdd.count()? {
            2 => Err(dstream::Error::Internal("two records fail this output")),
            _ => Ok(()),
        })
        .unwrap();
    queue.push(vec![1]);
    queue.push(vec![1, 2]);
    ssc.step().unwrap();
    assert!(ssc.step().is_err());
    let text = metrics.render();
    let after = samples(&text);
    assert_eq!(after["dstream_batches_completed_total"], 1.0);
    assert_eq!(after["dstream_batches_failed_total"], 1.0);
    assert_eq!(after["dstream_context_state{state=\"stopped\"}"], 1.0);
    assert_eq!(after["dstream_context_state{state=\"active\"}"], 0.0);
    // Rendering again after the stop gives the same final values.
    assert_eq!(samples(&metrics.render()), after);
}

#[test]
fn checkpoints_and_receiver_errors_are_counted_per_stream() {
    let recorder = Recorder::new(&DELAY_BUCKETS_SECONDS).unwrap();
    let stats = CheckpointStats { records: 10, body_bytes: 400, file_bytes: 120 };
    let written = |ms| CheckpointInfo {
        stream: StreamId(4),
        time: Time::from_millis(1000),
        stats,
        duration: Duration::from_millis(ms),
        error: None,
    };
    recorder.on_checkpoint(&written(3));
    recorder.on_checkpoint(&written(300));
    recorder.on_checkpoint(&CheckpointInfo {
        stats: CheckpointStats::default(),
        error: Some("disk full".into()),
        ..written(1)
    });
    recorder.on_receiver_error(StreamId(2), "connection refused");
    recorder.on_receiver_error(StreamId(2), "connection refused");
    let mut text = Vec::new();
    TextEncoder::new().encode(&recorder.registry.gather(), &mut text).unwrap();
    let got = samples(&String::from_utf8(text).unwrap());
    assert_eq!(got["dstream_checkpoints_written_total{stream=\"stream4\"}"], 2.0);
    assert_eq!(got["dstream_checkpoints_failed_total{stream=\"stream4\"}"], 1.0);
    assert_eq!(got["dstream_checkpoint_bytes_total{stream=\"stream4\"}"], 240.0);
    assert_eq!(got["dstream_checkpoint_duration_seconds_bucket{stream=\"stream4\",le=\"0.005\"}"], 1.0);
    assert_eq!(got["dstream_checkpoint_duration_seconds_bucket{stream=\"stream4\",le=\"0.5\"}"], 2.0);
    assert!((got["dstream_checkpoint_duration_seconds_sum{stream=\"stream4\"}"] - 0.303).abs() < 1e-9);
    assert_eq!(got["dstream_receiver_errors_total{stream=\"stream2\"}"], 2.0);
}

#[test]
fn buckets_must_be_finite_and_increasing() {
    let (_cluster, ssc) = context();
    for bad in [&[][..], &[1.0, 1.0], &[2.0, 1.0], &[0.5, f64::INFINITY], &[f64::NAN]] {
        let err = PrometheusMetrics::register_with_buckets(&ssc, bad).unwrap_err();
        assert!(matches!(err, MetricsError::InvalidBuckets(_)), "{bad:?}: {err}");
    }
    assert!(PrometheusMetrics::register_with_buckets(&ssc, &[0.1, 1.0]).is_ok());
}

#[test]
fn an_address_in_use_is_a_bind_error() {
    let (_cluster, ssc) = context();
    let metrics = PrometheusMetrics::register(&ssc).unwrap();
    let first = metrics.serve("127.0.0.1:0").unwrap();
    let err = metrics.serve(first.local_addr()).unwrap_err();
    assert!(matches!(err, MetricsError::Bind { .. }), "{err}");
    assert!(err.to_string().contains(&first.local_addr().to_string()), "{err}");
}
