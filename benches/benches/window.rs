//! The cost of one slide of a windowed word count as the window grows from 10 to 100 to 1,000
//! batches: incremental, with the inverse function
//! (`DStream::reduce_by_key_and_window_inv_filtered`, which should cost O(slide)), beside the
//! plain `DStream::reduce_by_key_and_window` (which recomputes the whole window: O(window)),
//! in the same run.
//!
//! A `StreamingContext` with a `ManualClock` and 1 s batches runs on a
//! `dstream_inproc::LocalCluster` of one worker with one task slot and one pool thread. Its
//! input is a queue stream of 2 partitions; every batch is the next 10,000 words of the
//! standard pool (`dstream::generator::RecordPool::standard()`, seed 42, cycled), mapped to
//! `(word, 1)` and counted over a window of L batches sliding by one batch, into 2 partitions;
//! the output operation counts the window's distinct words (a job). The incremental count
//! drops the words whose count falls to zero (`|(_, n)| *n > 0`, as the `wordcount` example
//! does), so its state is the words of the window, as the plain count's result is; without
//! the filter the state would keep every word ever seen and grow during the measurement.
//!
//! Each benchmark first fills the window (L batches; the plain count runs no job while
//! filling, only its last fill batch computes the window), then times `step()` alone, one
//! batch per iteration (`iter_custom`; queueing the batch is not timed): closing the batch,
//! the per-batch reduction, the window's step and the output's job. The window's distinct
//! words are printed to stderr (`window-size` lines).
//!
//! The plain count is measured by criterion up to 100 batches only: at 1,000 batches its fill
//! takes about 40 s and one slide 20-30 s on a 2-vCPU machine. With the environment variable
//! `DSTREAM_BENCH_WINDOW_PLAIN_ONCE` set, it is filled to 1,000 batches and one slide is timed
//! by hand and printed to stderr (a `window-once` line), adding about a minute and a quarter.
//!
//! Run: `cargo bench -p dstream-benches --bench window -- --warm-up-time 1 --measurement-time 3 --noplot`
//! (about 1.5 minutes; with `DSTREAM_BENCH_WINDOW_PLAIN_ONCE=1` in front, about 3).
//! See BENCHMARKS.md for the figures.
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dstream::generator::RecordPool;
use dstream::{DStream, ManualClock, QueueHandle, StreamingContext, Time};
use dstream_inproc::LocalCluster;

/// Words per batch.
const WORDS_PER_BATCH: usize = 10_000;
/// Window lengths, in batches.
const WINDOWS: [usize; 3] = [10, 100, 1_000];
/// Partitions of the input and of the window's counts.
const PARTITIONS: usize = 2;
/// The longest window the plain count is measured at by criterion; longer ones get one slide.
const PLAIN_MAX: usize = 100;
/// Set (to anything) to time one slide of the plain count at the windows over [`PLAIN_MAX`].
const PLAIN_ONCE: &str = "DSTREAM_BENCH_WINDOW_PLAIN_ONCE";
/// The batch interval.
const BATCH: Duration = Duration::from_secs(1);

/// The words of the standard pool, in order.
fn pool_words() -> Arc<Vec<String>> {
    let pool = RecordPool::standard();
    Arc::new(
        (0..pool.len() as u64)
            .flat_map(|i| pool.record(i, Time::ZERO).words().map(str::to_owned).collect::<Vec<_>>())
            .collect(),
    )
}

/// A running windowed count and what drives it.
struct Run {
    // Declared first so the context is dropped before the cluster it runs on.
    ssc: StreamingContext,
    clock: Arc<ManualClock>,
    queue: QueueHandle<String>,
    words: Arc<Vec<String>>,
    /// The next batch's index.
    batch: usize,
    /// Whether the output operation runs its job.
    active: Arc<AtomicBool>,
    /// The last count of the window's distinct words.
    distinct: Arc<AtomicU64>,
    _cluster: LocalCluster,
}

impl Run {
    fn new(words: Arc<Vec<String>>, length: usize, incremental: bool) -> Run {
        let cluster = LocalCluster::builder()
            .workers(1)
            .threads(1)
            .slots(1)
            // Room for 1,000 batches' shuffle buckets and the window's, whatever the estimate.
            .block_store_bytes_max(16 << 30)
            .build()
            .expect("starts the cluster");
        let clock = Arc::new(ManualClock::new(Time::ZERO));
        let ssc = StreamingContext::new(cluster.context(), BATCH, clock.clone()).expect("a valid interval");
        let (queue, input) = ssc.queue_stream::<String>(PARTITIONS);
        let pairs = input.map(|w| (w, 1u64));
        let length = BATCH * length as u32;
        let counts: DStream<(String, u64)> = if incremental {
            pairs
                .reduce_by_key_and_window_inv_filtered(
                    |a, b| a + b,
                    |a, b| a - b,
                    length,
                    BATCH,
                    PARTITIONS,
                    |(_, n)| *n > 0,
                )
                .expect("a valid window")
        } else {
            pairs.reduce_by_key_and_window(|a, b| a + b, length, BATCH).expect("a valid window")
        };
        let active = Arc::new(AtomicBool::new(true));
        let distinct = Arc::new(AtomicU64::new(0));
        let (on, out) = (Arc::clone(&active), Arc::clone(&distinct));
        counts
            .foreach_rdd(move |rdd, _| {
                if on.load(Ordering::Relaxed) {
                    out.store(black_box(rdd.count()?), Ordering::Relaxed);
                }
                Ok(())
            })
            .expect("registers the output");
        Run { ssc, clock, queue, words, batch: 0, active, distinct, _cluster: cluster }
    }

    /// Queues the next batch's words.
    fn push(&mut self) {
        let n = self.words.len();
        let start = self.batch * WORDS_PER_BATCH;
        let batch: Vec<String> = (start..start + WORDS_PER_BATCH).map(|i| self.words[i % n].clone()).collect();
        assert!(self.queue.push(batch), "the context stopped accepting");
        self.batch += 1;
    }

    /// Runs the queued batch; returns how long `step` took.
    fn step(&self) -> Duration {
        let started = Instant::now();
        let info = self.ssc.step().expect("the batch runs");
        let took = started.elapsed();
        self.clock.set(info.time);
        took
    }

    /// Runs the first `length` batches; only the last runs the output's job unless `every`.
    fn fill(&mut self, length: usize, every: bool) {
        for i in 0..length {
            self.active.store(every || i + 1 == length, Ordering::Relaxed);
            self.push();
            self.step();
        }
        self.active.store(true, Ordering::Relaxed);
    }
}

fn windows(c: &mut Criterion) {
    let words = pool_words();
    for (incremental, name) in [(true, "window_inv"), (false, "window_plain")] {
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(WORDS_PER_BATCH as u64));
        // Slides of 10 ms to 0.5 s: ten samples keep each benchmark near its measurement time.
        group.sample_size(10);
        for length in WINDOWS {
            if !incremental && length > PLAIN_MAX && std::env::var_os(PLAIN_ONCE).is_none() {
                continue;
            }
            let mut run = Run::new(Arc::clone(&words), length, incremental);
            // The incremental state is built slide by slide, so each fill batch runs its job.
            let filling = Instant::now();
            run.fill(length, incremental);
            eprintln!(
                "window-size op={name} batches={length} words_per_batch={WORDS_PER_BATCH} distinct={} fill_s={:.1}",
                run.distinct.load(Ordering::Relaxed),
                filling.elapsed().as_secs_f64()
            );
            if !incremental && length > PLAIN_MAX {
                // Tens of seconds a slide: one slide, timed by hand, instead of criterion's ten.
                run.push();
                let took = run.step();
                eprintln!(
                    "window-once op={name} batches={length} slide_ms={:.1} distinct={}",
                    took.as_secs_f64() * 1e3,
                    run.distinct.load(Ordering::Relaxed)
                );
                continue;
            }
            group.bench_function(format!("slide_{length}"), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        run.push();
                        total += run.step();
                    }
                    total
                });
            });
        }
        group.finish();
    }
}

criterion_group!(benches, windows);
criterion_main!(benches);
