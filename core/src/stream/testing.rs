//! Testing streaming jobs, in the manner of Spark's streaming test base: run an operation over
//! a list of input batches, with a manual clock, and get back one output list per batch.
//!
//! ```
//! use dstream::testing::StreamTest;
//! let input = vec![vec!["a b".to_string(), "b".to_string()], vec!["c".to_string()]];
//! let mut out = StreamTest::new().workers(3).run(input, |lines| {
//!     lines.flat_map(|l| l.split(' ').map(str::to_owned).collect::<Vec<_>>()).map(|w| (w, 1u32)).reduce_by_key(|a, b| a + b)
//! })?;
//! out.iter_mut().for_each(|batch| batch.sort());
//! assert_eq!(out, vec![vec![("a".to_string(), 1), ("b".to_string(), 2)], vec![("c".to_string(), 1)]]);
//! # Ok::<(), dstream::Error>(())
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{DStream, StreamingContext};
use crate::error::Error;
use crate::harness::StepCluster;
use crate::time::{ManualClock, Time};
use crate::{Context, Data};

/// A configured run of a streaming operation over input batches.
#[derive(Clone, Debug)]
pub struct StreamTest {
    workers: u32,
    partitions: usize,
    seed: u64,
    batch_interval: Duration,
    batches: Option<usize>,
    context: Option<Context>,
    worker_graphs: bool,
}

impl Default for StreamTest {
    fn default() -> Self {
        StreamTest::new()
    }
}

impl StreamTest {
    /// Defaults: a [`StepCluster`] of 2 workers with seed 0, inputs in 2 partitions, batches of
    /// one second, as many batches as the longest input.
    pub fn new() -> StreamTest {
        StreamTest {
            workers: 2,
            partitions: 2,
            seed: 0,
            batch_interval: Duration::from_secs(1),
            batches: None,
            context: None,
            worker_graphs: false,
        }
    }

    /// Workers of the stepping cluster.
    pub fn workers(mut self, n: u32) -> Self {
        self.workers = n;
        self
    }

    /// Partitions of each input batch.
    pub fn partitions(mut self, n: usize) -> Self {
        self.partitions = n;
        self
    }

    /// Seed of the stepping cluster.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The batch interval.
    pub fn batch_interval(mut self, d: Duration) -> Self {
        self.batch_interval = d;
        self
    }

    /// Runs this many batches (inputs beyond their end are empty).
    pub fn batches(mut self, n: usize) -> Self {
        self.batches = Some(n);
        self
    }

    /// Runs on a stepping cluster in its process-faithful mode
    /// ([`StepClusterBuilder::build_with_worker_programs`](crate::StepClusterBuilder::build_with_worker_programs)):
    /// every worker builds the program itself and rebuilds each batch from its own streams, as
    /// a worker process does. Outputs are the same as with a shared graph.
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let out = StreamTest::new().workers(3).worker_graphs(true).run(vec![vec![1u32, 2], vec![3]], |s| s.map(|x| x * 10))?;
    /// assert_eq!(out, vec![vec![10, 20], vec![30]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn worker_graphs(mut self, on: bool) -> Self {
        self.worker_graphs = on;
        self
    }

    /// Runs on the cluster behind `ctx` (a `LocalCluster`, say) instead of a stepping cluster.
    pub fn on(mut self, ctx: Context) -> Self {
        self.context = Some(ctx);
        self
    }

    /// Runs `op` over one input stream fed with `input`, one collection per batch. Returns the
    /// records of the output stream for every batch, in the order the dataset holds them
    /// (empty where the stream had no dataset, as between a window's slides).
    pub fn run<T: Data, U: Data>(
        &self,
        input: Vec<Vec<T>>,
        op: impl Fn(DStream<T>) -> DStream<U>,
    ) -> Result<Vec<Vec<U>>, Error> {
        let n = self.batches.unwrap_or(input.len());
        let mut input = Some(input);
        self.execute(n, |ssc, feed| {
            let (queue, stream) = ssc.queue_stream(self.partitions);
            if feed {
                input.take().into_iter().flatten().for_each(|b| {
                    queue.push(b);
                });
            }
            op(stream)
        })
    }

    /// Runs `op` over two input streams fed with `a` and `b`.
    pub fn run2<T: Data, W: Data, U: Data>(
        &self,
        a: Vec<Vec<T>>,
        b: Vec<Vec<W>>,
        op: impl Fn(DStream<T>, DStream<W>) -> DStream<U>,
    ) -> Result<Vec<Vec<U>>, Error> {
        let n = self.batches.unwrap_or(a.len().max(b.len()));
        let mut inputs = Some((a, b));
        self.execute(n, |ssc, feed| {
            let (qa, sa) = ssc.queue_stream(self.partitions);
            let (qb, sb) = ssc.queue_stream(self.partitions);
            if let Some((a, b)) = if feed { inputs.take() } else { None } {
                a.into_iter().for_each(|x| {
                    qa.push(x);
                });
                b.into_iter().for_each(|x| {
                    qb.push(x);
                });
            }
            op(sa, sb)
        })
    }

    /// Builds the program with `build` (told whether to feed its inputs: only the driver's
    /// are fed), steps `batches` batches and collects the output of each.
    fn execute<U: Data>(
        &self,
        batches: usize,
        mut build: impl FnMut(&StreamingContext, bool) -> DStream<U>,
    ) -> Result<Vec<Vec<U>>, Error> {
        let cluster;
        let ctx = match &self.context {
            Some(ctx) => ctx.clone(),
            None => {
                let builder = StepCluster::builder().workers(self.workers).seed(self.seed);
                cluster = if self.worker_graphs {
                    builder.build_with_worker_programs(|ctx| {
                        let clock = Arc::new(ManualClock::new(Time::ZERO));
                        let ssc = StreamingContext::new(ctx.clone(), self.batch_interval, clock)?;
                        // The same output as the driver's, so the programs describe alike; a
                        // worker never runs it.
                        build(&ssc, false).foreach_rdd(|_, _| Ok(()))?;
                        Ok(Box::new(ssc) as Box<dyn std::any::Any + Send>)
                    })?
                } else {
                    builder.build()
                };
                cluster.context()
            }
        };
        let clock = Arc::new(ManualClock::new(Time::ZERO));
        let ssc = StreamingContext::new(ctx, self.batch_interval, clock.clone())?;
        let output = build(&ssc, true);
        let collected: Arc<Mutex<Vec<(Time, Vec<U>)>>> = Arc::default();
        let sink = Arc::clone(&collected);
        output.foreach_rdd(move |rdd, time| {
            let records = rdd.collect()?;
            sink.lock().unwrap_or_else(|p| p.into_inner()).push((time, records));
            Ok(())
        })?;
        let mut results = Vec::with_capacity(batches);
        for _ in 0..batches {
            let info = ssc.step()?;
            clock.set(info.time);
            let mut got = collected.lock().unwrap_or_else(|p| p.into_inner());
            results.push(match got.pop() {
                Some((t, records)) if t == info.time => records,
                Some(other) => {
                    got.push(other);
                    Vec::new()
                }
                None => Vec::new(),
            });
        }
        Ok(results)
    }
}
