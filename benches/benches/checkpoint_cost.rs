//! The cost of a data checkpoint to the batch that triggers it: the processing time of a batch
//! of a word-count state stream (100,000 words in the state, 20,000 new words a batch) on a
//! 2-worker `LocalCluster`, in four setups measured side by side:
//!
//! - `plain`: no checkpointing at all (`StreamingContext::create`);
//! - `logged`: `get_or_create` on `Memory` with the state's checkpoint interval too long to
//!   come up: the metadata and the input log only;
//! - `async`: the same, checkpointing the state every second batch, with the context on its
//!   own thread (`start`): the write runs beside the next batch;
//! - `inline`: the same checkpoints driven by `step`, where the write runs within the batch.
//!
//! Each setup times the batches that start a checkpoint (`checkpointing`: even batches) and
//! the ones after them (`next`) separately; in `plain` and `logged` both are ordinary batches.
//! Each iteration times one batch: the wall time from the moment it may start (the
//! clock reaches its time, or `step` is called) to its completion. See BENCHMARKS.md.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use dstream::generator::Generator;
use dstream::{
    BatchInfo, Error, ManualClock, QueueHandle, SplitMix64, StreamingContext, StreamingHandle, StreamingListener, Time,
};
use dstream_inproc::LocalCluster;
use dstream_storage::Memory;

const SEC: Duration = Duration::from_secs(1);
/// New words per batch.
const BATCH_WORDS: usize = 20_000;

#[derive(Clone, Copy, PartialEq)]
enum Setup {
    Plain,
    Logged,
    Async,
    Inline,
}

struct Done(Mutex<Sender<BatchInfo>>);

impl StreamingListener for Done {
    fn on_batch_completed(&self, info: &BatchInfo) {
        let _ = self.0.lock().map(|tx| tx.send(info.clone()));
    }
}

/// A running word-count state stream in one of the setups.
struct Bench {
    ssc: StreamingContext,
    queue: QueueHandle<String>,
    clock: Arc<ManualClock>,
    done: Receiver<BatchInfo>,
    handle: Option<StreamingHandle>,
    words: Vec<String>,
    rng: SplitMix64,
    /// Batches run so far.
    k: u64,
    _cluster: LocalCluster,
}

impl Bench {
    fn new(setup: Setup) -> Bench {
        let cluster = LocalCluster::builder().workers(2).threads(2).build().expect("a local cluster");
        let clock = Arc::new(ManualClock::new(Time::ZERO));
        let every = if setup == Setup::Logged { 1_000_000 * SEC } else { 2 * SEC };
        let job = move |ssc: &StreamingContext| {
            let (queue, words) = ssc.queue_stream::<String>(2);
            let counts = words
                .map(|w| (w, 1u64))
                .update_state_by_key(|vs: Vec<u64>, s: Option<u64>| Some(s.unwrap_or(0) + vs.len() as u64), 2)?;
            let counts = if setup == Setup::Plain { counts } else { counts.checkpoint(every)? };
            counts.count().foreach_rdd(|rdd, _| rdd.collect().map(drop))?;
            Ok::<_, Error>(queue)
        };
        let (ssc, queue) = match setup {
            Setup::Plain => StreamingContext::create(cluster.context(), SEC, clock.clone(), job),
            _ => {
                let checkpointing = dstream_storage::checkpointing(Memory::new());
                StreamingContext::get_or_create(cluster.context(), SEC, clock.clone(), checkpointing, job)
            }
        }
        .expect("the program");
        let (tx, done) = channel();
        ssc.add_listener(Arc::new(Done(Mutex::new(tx))));
        if setup == Setup::Plain {
            // The baseline without checkpoints: a bounded run, so the lineage may grow.
            ssc.allow_unbounded_lineage();
        }
        let handle = (setup != Setup::Inline).then(|| ssc.start().expect("started"));
        let words: Vec<String> = Generator::new(42).vocabulary().iter().map(|w| w.to_string()).collect();
        let mut bench =
            Bench { ssc, queue, clock, done, handle, words, rng: SplitMix64::new(42), k: 0, _cluster: cluster };
        // The first batch puts every word in the state.
        bench.queue.push(bench.words.clone());
        bench.batch();
        bench
    }

    /// Runs the next batch; returns the wall time from its start to its completion.
    fn batch(&mut self) -> Duration {
        let batch: Vec<String> =
            (0..BATCH_WORDS).map(|_| self.words[self.rng.below(self.words.len())].clone()).collect();
        self.queue.push(batch);
        // The manual clock does not move during a batch, so the batch is timed here.
        let started = Instant::now();
        if self.handle.is_some() {
            self.clock.advance(SEC);
            self.done.recv().expect("the batch completes");
        } else {
            self.ssc.step().expect("the batch runs");
        }
        self.k += 1;
        started.elapsed()
    }

    /// Runs batches until the next one is `even` (checkpointed) or not, then times that one.
    fn timed(&mut self, even: bool) -> Duration {
        if ((self.k + 1) % 2 == 0) != even {
            self.batch();
        }
        self.batch()
    }
}

fn checkpoint_cost(c: &mut Criterion) {
    let mut group = c.benchmark_group("checkpoint_cost");
    group.sample_size(20);
    for (name, setup) in
        [("plain", Setup::Plain), ("logged", Setup::Logged), ("async", Setup::Async), ("inline", Setup::Inline)]
    {
        let mut bench = Bench::new(setup);
        for (which, even) in [("checkpointing", true), ("next", false)] {
            let id = format!("{name}/{which}");
            group.bench_function(id, |b| b.iter_custom(|iters| (0..iters).map(|_| bench.timed(even)).sum()));
        }
        if let Some(handle) = bench.handle.take() {
            handle.stop(false).expect("stops");
        }
    }
    group.finish();
}

criterion_group!(benches, checkpoint_cost);
criterion_main!(benches);
