//! Prometheus metrics of a streaming context: a [`StreamingListener`] that keeps per-batch and
//! per-stream metric families, rendered in Prometheus's text exposition format, and an HTTP
//! endpoint serving them ([`MetricsServer`]).
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `dstream_batches_completed_total` | counter | |
//! | `dstream_batches_failed_total` | counter | |
//! | `dstream_input_records_total` | counter | `stream` |
//! | `dstream_last_batch_records` | gauge | `stream` |
//! | `dstream_last_completed_batch_time_seconds` | gauge | |
//! | `dstream_batch_scheduling_delay_seconds` | histogram | |
//! | `dstream_batch_processing_delay_seconds` | histogram | |
//! | `dstream_batch_total_delay_seconds` | histogram | |
//! | `dstream_output_op_duration_seconds` | histogram | `output`, `op` |
//! | `dstream_dead_letters_total` | counter | |
//! | `dstream_receiver_errors_total` | counter | `stream` |
//! | `dstream_checkpoints_written_total` | counter | `stream` |
//! | `dstream_checkpoints_failed_total` | counter | `stream` |
//! | `dstream_checkpoint_duration_seconds` | histogram | `stream` |
//! | `dstream_checkpoint_bytes_total` | counter | `stream` |
//! | `dstream_input_buffered_bytes` | gauge, sampled at each scrape | `stream` |
//! | `dstream_context_state` | gauge, 1 for the current state | `state` |
//! | `dstream_batch_interval_seconds` | gauge | |
//!
//! A stopped context keeps its metrics: a scrape after the stop returns the final values, with
//! `dstream_context_state{state="stopped"} 1`, for as long as the [`PrometheusMetrics`] (or its
//! server) lives.

mod http;

pub use http::{MetricsServer, CONNECTIONS_MAX, REQUEST_BYTES_MAX};

use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::Duration;

use dstream::{BatchInfo, CheckpointInfo, Error, StreamId, StreamingContext, StreamingListener, StreamingState, Time};
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// The default buckets of the delay and duration histograms, in seconds: from 1 ms to 60 s.
pub const DELAY_BUCKETS_SECONDS: [f64; 15] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0];

/// Why metrics could not be set up or served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The histogram buckets are empty, not increasing, or not finite.
    #[error("invalid histogram buckets {0:?}: they must be finite and strictly increasing")]
    InvalidBuckets(Vec<f64>),
    /// The address to serve on could not be resolved or bound.
    #[error("cannot serve metrics on {addr}: {source}")]
    Bind {
        /// The address as given.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// A metric family could not be built (a defect of this module).
    #[error("metric family: {0}")]
    Prometheus(#[from] prometheus::Error),
}

/// The metrics of one streaming context, in Prometheus's text format.
///
/// [`PrometheusMetrics::register`] adds the listener that keeps them to the context;
/// [`PrometheusMetrics::render`] renders them; [`PrometheusMetrics::serve`] serves them over
/// HTTP. Clones share the metrics.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use dstream::{ManualClock, StepCluster, StreamingContext, Time};
/// use dstream_storage::PrometheusMetrics;
///
/// let cluster = StepCluster::builder().workers(2).build();
/// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))?;
/// let metrics = PrometheusMetrics::register(&ssc)?;
/// let (queue, numbers) = ssc.queue_stream::<u64>(2);
/// numbers.count().foreach_rdd(|_, _| Ok(()))?;
/// queue.push(vec![1, 2, 3]);
/// ssc.step()?;
/// let text = metrics.render();
/// assert!(text.contains("dstream_batches_completed_total 1\n"));
/// assert!(text.contains(&format!("dstream_input_records_total{{stream=\"{}\"}} 3\n", numbers.id())));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct PrometheusMetrics {
    ssc: StreamingContext,
    recorder: Arc<Recorder>,
}

impl std::fmt::Debug for PrometheusMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusMetrics").finish_non_exhaustive()
    }
}

impl PrometheusMetrics {
    /// Adds a metrics listener to `ssc`, with the default histogram buckets
    /// ([`DELAY_BUCKETS_SECONDS`]). Batches completed before it was added are not counted.
    pub fn register(ssc: &StreamingContext) -> Result<PrometheusMetrics, MetricsError> {
        PrometheusMetrics::register_with_buckets(ssc, &DELAY_BUCKETS_SECONDS)
    }

    /// Adds a metrics listener to `ssc` whose delay and duration histograms have `buckets`
    /// (upper bounds in seconds, strictly increasing).
    pub fn register_with_buckets(ssc: &StreamingContext, buckets: &[f64]) -> Result<PrometheusMetrics, MetricsError> {
        let valid = !buckets.is_empty()
            && buckets.iter().all(|b| b.is_finite())
            && buckets.windows(2).all(|pair| pair[0] < pair[1]);
        if !valid {
            return Err(MetricsError::InvalidBuckets(buckets.to_vec()));
        }
        let recorder = Arc::new(Recorder::new(buckets)?);
        recorder.batch_interval.set(ssc.batch_interval().as_secs_f64());
        ssc.add_listener(Arc::clone(&recorder) as Arc<dyn StreamingListener>);
        Ok(PrometheusMetrics { ssc: ssc.clone(), recorder })
    }

    /// The metrics now, in Prometheus's text format (version 0.0.4). Samples the gauges read at
    /// scrape time first: the inputs' buffers and the context's state.
    pub fn render(&self) -> String {
        let r = &self.recorder;
        for (stream, bytes) in self.ssc.input_buffered_bytes() {
            let stream = stream.to_string();
            r.input_buffered_bytes.with_label_values(&[stream.as_str()]).set(saturating_i64(bytes));
            // Every input has a records series from the start, zero until its first batch.
            r.input_records.with_label_values(&[stream.as_str()]);
        }
        let current = self.ssc.state();
        for (state, name) in [
            (StreamingState::Initialized, "initialized"),
            (StreamingState::Active, "active"),
            (StreamingState::Stopped, "stopped"),
        ] {
            r.state.with_label_values(&[name]).set(i64::from(state == current));
        }
        let mut text = Vec::new();
        // Encoding into a `Vec` of families this module built cannot fail.
        if let Err(e) = TextEncoder::new().encode(&r.registry.gather(), &mut text) {
            return format!("# dstream: the metrics could not be encoded: {e}\n");
        }
        String::from_utf8(text).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// Serves the metrics over HTTP on `addr` (`GET /metrics`) until the returned server is
    /// stopped or dropped. Port 0 picks a free port: [`MetricsServer::local_addr`] tells which.
    pub fn serve(&self, addr: impl ToSocketAddrs + std::fmt::Debug) -> Result<MetricsServer, MetricsError> {
        let named = format!("{addr:?}");
        let metrics = self.clone();
        MetricsServer::start(addr, Arc::new(move || metrics.render()))
            .map_err(|source| MetricsError::Bind { addr: named.trim_matches('"').to_string(), source })
    }
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The listener: the metric families and their registry.
struct Recorder {
    registry: Registry,
    batches_completed: IntCounter,
    batches_failed: IntCounter,
    input_records: IntCounterVec,
    last_batch_records: IntGaugeVec,
    last_batch_time: Gauge,
    scheduling_delay: Histogram,
    processing_delay: Histogram,
    total_delay: Histogram,
    output_duration: HistogramVec,
    dead_letters: IntCounter,
    receiver_errors: IntCounterVec,
    checkpoints_written: IntCounterVec,
    checkpoints_failed: IntCounterVec,
    checkpoint_duration: HistogramVec,
    checkpoint_bytes: IntCounterVec,
    input_buffered_bytes: IntGaugeVec,
    state: IntGaugeVec,
    batch_interval: Gauge,
}

impl Recorder {
    fn new(buckets: &[f64]) -> Result<Recorder, MetricsError> {
        let registry = Registry::new();
        let histogram = |name: &str, help: &str| -> Result<Histogram, MetricsError> {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))?;
            registry.register(Box::new(h.clone()))?;
            Ok(h)
        };
        let histograms = |name: &str, help: &str, labels: &[&str]| -> Result<HistogramVec, MetricsError> {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels)?;
            registry.register(Box::new(h.clone()))?;
            Ok(h)
        };
        let counter = |name: &str, help: &str| -> Result<IntCounter, MetricsError> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let counters = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, MetricsError> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let gauges = |name: &str, help: &str, labels: &[&str]| -> Result<IntGaugeVec, MetricsError> {
            let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let gauge = |name: &str, help: &str| -> Result<Gauge, MetricsError> {
            let g = Gauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let stream = &["stream"];
        Ok(Recorder {
            batches_completed: counter("dstream_batches_completed_total", "Batches completed.")?,
            batches_failed: counter("dstream_batches_failed_total", "Batches failed (each stops the context).")?,
            input_records: counters("dstream_input_records_total", "Records of the input stream's batches.", stream)?,
            last_batch_records: gauges("dstream_last_batch_records", "Records of the latest completed batch.", stream)?,
            last_batch_time: gauge("dstream_last_completed_batch_time_seconds", "The latest completed batch's time.")?,
            scheduling_delay: histogram(
                "dstream_batch_scheduling_delay_seconds",
                "From a batch's time to the start of its processing.",
            )?,
            processing_delay: histogram("dstream_batch_processing_delay_seconds", "A batch's processing time.")?,
            total_delay: histogram("dstream_batch_total_delay_seconds", "From a batch's time to its end.")?,
            output_duration: histograms(
                "dstream_output_op_duration_seconds",
                "An output operation's running time in a batch.",
                &["output", "op"],
            )?,
            dead_letters: counter("dstream_dead_letters_total", "Dead letters delivered.")?,
            receiver_errors: counters("dstream_receiver_errors_total", "Errors receivers recovered from.", stream)?,
            checkpoints_written: counters("dstream_checkpoints_written_total", "Data checkpoints written.", stream)?,
            checkpoints_failed: counters("dstream_checkpoints_failed_total", "Data checkpoints failed.", stream)?,
            checkpoint_duration: histograms(
                "dstream_checkpoint_duration_seconds",
                "A written data checkpoint's duration.",
                stream,
            )?,
            checkpoint_bytes: counters(
                "dstream_checkpoint_bytes_total",
                "Bytes of the written data checkpoints.",
                stream,
            )?,
            input_buffered_bytes: gauges(
                "dstream_input_buffered_bytes",
                "Estimated bytes an input holds that are not in a closed batch yet.",
                stream,
            )?,
            state: gauges("dstream_context_state", "1 for the streaming context's current state.", &["state"])?,
            batch_interval: gauge("dstream_batch_interval_seconds", "The batch interval.")?,
            registry,
        })
    }
}

fn seconds(time: Time) -> f64 {
    Duration::from_nanos(time.as_nanos()).as_secs_f64()
}

impl StreamingListener for Recorder {
    fn on_batch_completed(&self, info: &BatchInfo) {
        self.batches_completed.inc();
        for (stream, records) in &info.input_records {
            let stream = stream.to_string();
            self.input_records.with_label_values(&[stream.as_str()]).inc_by(*records);
            self.last_batch_records.with_label_values(&[stream.as_str()]).set(saturating_i64(*records));
        }
        self.last_batch_time.set(seconds(info.time));
        self.scheduling_delay.observe(info.scheduling_delay.as_secs_f64());
        self.processing_delay.observe(info.processing_delay.as_secs_f64());
        self.total_delay.observe(info.total_delay.as_secs_f64());
        for (index, (op, took)) in info.output_ops.iter().enumerate() {
            let index = index.to_string();
            self.output_duration.with_label_values(&[index.as_str(), op]).observe(took.as_secs_f64());
        }
        self.dead_letters.inc_by(info.dead_letters);
    }

    fn on_batch_failed(&self, _time: Time, _error: &Error) {
        self.batches_failed.inc();
    }

    fn on_receiver_error(&self, stream: StreamId, _message: &str) {
        self.receiver_errors.with_label_values(&[stream.to_string().as_str()]).inc();
    }

    fn on_checkpoint(&self, info: &CheckpointInfo) {
        let stream = info.stream.to_string();
        let labels = [stream.as_str()];
        if info.error.is_some() {
            self.checkpoints_failed.with_label_values(&labels).inc();
        } else {
            self.checkpoints_written.with_label_values(&labels).inc();
            self.checkpoint_duration.with_label_values(&labels).observe(info.duration.as_secs_f64());
            self.checkpoint_bytes.with_label_values(&labels).inc_by(info.stats.file_bytes);
        }
    }
}

#[cfg(test)]
mod tests;
