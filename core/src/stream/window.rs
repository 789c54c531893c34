//! Windowed streams: a window of length `L` sliding by `S` covers, at time `t`, the batches in
//! `(t - L, t]`, and produces a dataset only at multiples of `S`. Lengths and slides must be
//! non-zero multiples of the parent stream's slide; anything else is an error when the stream
//! is built.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use super::{duration_nanos, is_multiple, BatchCtx, DStream, RememberDyn, StreamCompute, StreamNode};
use crate::error::Error;
use crate::rdd::{KeepKey, Rdd, Reduce};
use crate::time::Time;
use crate::{Data, Key};

/// Checks a window's length and slide against its parent's slide.
fn check_window(length: Duration, slide: Duration, parent: Duration) -> Result<(), Error> {
    for (what, d) in [("window length", length), ("window slide", slide)] {
        if d.is_zero() || !is_multiple(d, parent) {
            return Err(Error::InvalidDuration {
                what: what.into(),
                reason: format!("{d:?} is not a non-zero multiple of the parent stream's slide ({parent:?})"),
            });
        }
    }
    Ok(())
}

/// The batch times of a stream sliding by `slide` in `(after, upto]`, oldest first, none before
/// the first batch.
fn times_in(after: Time, upto: Time, slide: Duration, zero: Time) -> Vec<Time> {
    let step = duration_nanos(slide);
    let mut times = Vec::new();
    let mut t = upto.as_nanos();
    while t > after.as_nanos() && t > zero.as_nanos() {
        times.push(Time::from_nanos(t));
        t = t.saturating_sub(step);
        if step == 0 {
            break;
        }
    }
    times.reverse();
    times
}

/// The datasets of `node` at the given times.
fn datasets<T: Data>(node: &StreamNode<T>, times: &[Time], b: &BatchCtx<'_>) -> Result<Vec<Rdd<T>>, Error> {
    let mut rdds = Vec::with_capacity(times.len());
    for t in times {
        if let Some(rdd) = node.get(*t, b)? {
            rdds.push(rdd);
        }
    }
    Ok(rdds)
}

struct Window<T> {
    parent: Arc<StreamNode<T>>,
    length: Duration,
}

impl<T: Data> StreamCompute<T> for Window<T> {
    fn compute(&self, time: Time, b: &BatchCtx<'_>) -> Result<Option<Rdd<T>>, Error> {
        let times = times_in(time - self.length, time, self.parent.slide, b.zero);
        let rdds = datasets(&self.parent, &times, b)?;
        Ok(Some(match rdds.split_first() {
            Some((first, rest)) => first.union(rest),
            None => b.ctx.parallelize_partitions(Vec::new()),
        }))
    }
}

impl<T: Data> DStream<T> {
    /// A stream whose dataset at each multiple of `slide` holds every record of the batches in
    /// the last `length`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use dstream::testing::StreamTest;
    /// let s = Duration::from_secs(1);
    /// let out = StreamTest::new().run(vec![vec![1], vec![2], vec![3], vec![4]], |x| x.window(2 * s, 2 * s).unwrap())?;
    /// assert_eq!(out, vec![vec![], vec![1, 2], vec![], vec![3, 4]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    ///
    /// A length or slide that is not a multiple of the batch interval is refused:
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use dstream::{Error, ManualClock, StepCluster, StreamingContext, Time};
    /// # let cluster = StepCluster::builder().build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))?;
    /// let (_, numbers) = ssc.queue_stream::<u32>(1);
    /// let err = numbers.window(Duration::from_millis(1500), Duration::from_secs(1)).unwrap_err();
    /// assert!(matches!(err, Error::InvalidDuration { .. }));
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn window(&self, length: Duration, slide: Duration) -> Result<DStream<T>, Error> {
        check_window(length, slide, self.slide_duration())?;
        self.node().remember_at_least(length);
        Ok(DStream::new_node(
            self.context(),
            "window",
            slide,
            vec![self.as_parent()],
            Window { parent: Arc::clone(self.node()), length },
        )
        .with_params(format!("length={length:?}")))
    }

    #[doc(alias = "countByWindow")]
    /// The number of records in each window.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use dstream::testing::StreamTest;
    /// let s = Duration::from_secs(1);
    /// let out = StreamTest::new().run(vec![vec!['a'], vec!['b', 'c'], vec![]], |x| x.count_by_window(2 * s, s).unwrap())?;
    /// assert_eq!(out, vec![vec![1], vec![3], vec![2]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn count_by_window(&self, length: Duration, slide: Duration) -> Result<DStream<u64>, Error> {
        Ok(self.window(length, slide)?.count())
    }

    #[doc(alias = "reduceByWindow")]
    /// The records of each window merged with `f` (associative and commutative); each batch is
    /// reduced first, then the batches of the window. Empty windows give no record.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use dstream::testing::StreamTest;
    /// let s = Duration::from_secs(1);
    /// let out = StreamTest::new().run(vec![vec![1, 2], vec![3], vec![]], |x| x.reduce_by_window(|a, b| a + b, 2 * s, s).unwrap())?;
    /// assert_eq!(out, vec![vec![3], vec![6], vec![3]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn reduce_by_window(
        &self,
        f: impl Fn(T, T) -> T + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
    ) -> Result<DStream<T>, Error> {
        let f = Arc::new(f);
        let g = Arc::clone(&f);
        Ok(self.reduce(move |a, b| f(a, b)).window(length, slide)?.reduce(move |a, b| g(a, b)))
    }

    #[doc(alias = "reduceByWindow")]
    /// [`DStream::reduce_by_window`] computed incrementally: each slide adds the batches entering
    /// the window with `f` and takes out those leaving it with `inverse`, so a slide costs
    /// O(slide), not O(window). Once records have arrived, every window has a value (the
    /// identity when all of them left).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use dstream::testing::StreamTest;
    /// let s = Duration::from_secs(1);
    /// let out = StreamTest::new().run(vec![vec![1, 2], vec![3], vec![], vec![]], |x| {
    ///     x.reduce_by_window_inv(|a, b| a + b, |a, b| a - b, 2 * s, s).unwrap()
    /// })?;
    /// assert_eq!(out, vec![vec![3], vec![6], vec![3], vec![0]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn reduce_by_window_inv(
        &self,
        f: impl Fn(T, T) -> T + Send + Sync + 'static,
        inverse: impl Fn(T, T) -> T + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
    ) -> Result<DStream<T>, Error> {
        Ok(self
            .map(|x| ((), x))
            .reduce_by_key_and_window_inv_with_partitions(f, inverse, length, slide, 1)?
            .map(|((), x)| x))
    }
}

impl<T: Key> DStream<T> {
    #[doc(alias = "countByValueAndWindow")]
    /// The number of occurrences of each distinct record in each window, computed
    /// incrementally; records whose count falls to zero leave the result. The counts are kept
    /// in the context's [default parallelism](crate::Context::default_parallelism) of hash
    /// partitions; [`DStream::count_by_value_and_window_with_partitions`] chooses the count.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use dstream::testing::StreamTest;
    /// let s = Duration::from_secs(1);
    /// let mut out = StreamTest::new().run(vec![vec!['a', 'b'], vec!['a'], vec![]], |x| {
    ///     x.count_by_value_and_window(2 * s, s).unwrap()
    /// })?;
    /// out.iter_mut().for_each(|b| b.sort());
    /// assert_eq!(out, vec![vec![('a', 1), ('b', 1)], vec![('a', 2), ('b', 1)], vec![('a', 1)]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn count_by_value_and_window(&self, length: Duration, slide: Duration) -> Result<DStream<(T, u64)>, Error> {
        let partitions = self.context().context().default_parallelism();
        self.count_by_value_and_window_with_partitions(length, slide, partitions)
    }

    /// [`DStream::count_by_value_and_window`] with the counts in `partitions` hash partitions
    /// (zero is an error).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use dstream::testing::StreamTest;
    /// let s = Duration::from_secs(1);
    /// let out = StreamTest::new().run(vec![vec!['a'], vec!['a'], vec![]], |x| {
    ///     x.count_by_value_and_window_with_partitions(2 * s, s, 1).unwrap()
    /// })?;
    /// assert_eq!(out, vec![vec![('a', 1)], vec![('a', 2)], vec![('a', 1)]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    #[doc(alias = "countByValueAndWindow")]
    pub fn count_by_value_and_window_with_partitions(
        &self,
        length: Duration,
        slide: Duration,
        partitions: usize,
    ) -> Result<DStream<(T, u64)>, Error> {
        self.map(|x| (x, 1u64)).reduce_by_key_and_window_inv_filtered(
            |a, b| a + b,
            |a, b| a - b,
            length,
            slide,
            partitions,
            |(_, n)| *n > 0,
        )
    }
}

/// The incremental windowed reduction: see [`DStream::reduce_by_key_and_window_inv`].
struct ReducedWindow<K, V> {
    /// The parent reduced by key within each batch.
    reduced: Arc<StreamNode<(K, V)>>,
    /// This stream itself, for the previous window's state (set once the node exists).
    this: Arc<OnceLock<Weak<StreamNode<(K, V)>>>>,
    length: Duration,
    slide: Duration,
    partitions: usize,
    reduce: Reduce<V>,
    inverse: Reduce<V>,
    keep: Option<KeepKey<K, V>>,
}

impl<K: Key, V: Data> StreamCompute<(K, V)> for ReducedWindow<K, V> {
    fn compute(&self, time: Time, b: &BatchCtx<'_>) -> Result<Option<Rdd<(K, V)>>, Error> {
        let previous = time - self.slide;
        let this = self.this.get().and_then(Weak::upgrade);
        let prev = match (&this, previous > b.zero) {
            (Some(node), true) => node.get(previous, b)?,
            _ => None,
        };
        let batch = self.reduced.slide;
        let state = match prev {
            Some(prev) => {
                // With a window shorter than its slide, the batches between two windows belong
                // to neither: they neither enter nor leave.
                let start = time - self.length;
                let leaving = times_in(previous - self.length, previous.min(start), batch, b.zero);
                let entering = times_in(previous.max(start), time, batch, b.zero);
                let leaving = datasets(&self.reduced, &leaving, b)?;
                let entering = datasets(&self.reduced, &entering, b)?;
                let (r, i, k) = (Arc::clone(&self.reduce), Arc::clone(&self.inverse), self.keep.clone());
                prev.window_step(&leaving, &entering, self.partitions, r, i, k)
            }
            None => {
                let times = times_in(time - self.length, time, batch, b.zero);
                let rdds = datasets(&self.reduced, &times, b)?;
                let all = match rdds.split_first() {
                    Some((first, rest)) => first.union(rest),
                    None => b.ctx.parallelize_partitions(Vec::new()),
                };
                let r = Arc::clone(&self.reduce);
                let first = all.reduce_by_key_with_partitions(move |x, y| r(x, y), self.partitions)?;
                match &self.keep {
                    Some(keep) => {
                        let keep = Arc::clone(keep);
                        first.filter(move |kv| keep(kv))
                    }
                    None => first,
                }
            }
        };
        // The next slide reads this state back.
        Ok(Some(state.persist()))
    }
}

impl<K: Key, V: Data> DStream<(K, V)> {
    #[doc(alias = "reduceByKeyAndWindow")]
    /// The values of each key over each window, merged with `f`: each batch is reduced by key
    /// first, then the batches of the window.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use dstream::testing::StreamTest;
    /// let s = Duration::from_secs(1);
    /// let mut out = StreamTest::new().run(vec![vec![('a', 1)], vec![('a', 2), ('b', 5)], vec![]], |x| {
    ///     x.reduce_by_key_and_window(|a, b| a + b, 2 * s, s).unwrap()
    /// })?;
    /// out.iter_mut().for_each(|b| b.sort());
    /// assert_eq!(out, vec![vec![('a', 1)], vec![('a', 3), ('b', 5)], vec![('a', 2), ('b', 5)]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn reduce_by_key_and_window(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
    ) -> Result<DStream<(K, V)>, Error> {
        let f = Arc::new(f);
        let g = Arc::clone(&f);
        let per_window = window_batches(length, self.slide_duration());
        Ok(self.reduce_by_key(move |a, b| f(a, b)).window(length, slide)?.transform(move |rdd, _| {
            let g = Arc::clone(&g);
            rdd.reduce_by_key_with_partitions(move |a, b| g(a, b), rdd.num_partitions().div_ceil(per_window))
        }))
    }

    /// [`DStream::reduce_by_key_and_window`] into `partitions` partitions (zero is an error):
    /// each window's result has that many.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use dstream::testing::StreamTest;
    /// let s = Duration::from_secs(1);
    /// let out = StreamTest::new().run(vec![vec![('a', 1)], vec![('a', 2)]], |x| {
    ///     x.reduce_by_key_and_window_with_partitions(|a, b| a + b, 2 * s, s, 1).unwrap()
    /// })?;
    /// assert_eq!(out, vec![vec![('a', 1)], vec![('a', 3)]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    #[doc(alias = "reduceByKeyAndWindow")]
    pub fn reduce_by_key_and_window_with_partitions(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
        partitions: usize,
    ) -> Result<DStream<(K, V)>, Error> {
        crate::rdd::check_partitions("reduce_by_key_and_window", partitions)?;
        let f = Arc::new(f);
        let g = Arc::clone(&f);
        Ok(self
            .reduce_by_key(move |a, b| f(a, b))
            .window(length, slide)?
            .transform(move |rdd, _| {
                let g = Arc::clone(&g);
                rdd.reduce_by_key_with_partitions(move |a, b| g(a, b), partitions)
            })
            .with_params(format!("partitions={partitions}")))
    }

    #[doc(alias = "reduceByKeyAndWindow")]
    /// [`DStream::reduce_by_key_and_window`] computed incrementally: each slide merges the
    /// previous window's state with the batches entering the window (with `f`) and those
    /// leaving it (with `inverse`), so a slide costs O(slide), not O(window). Keys stay in the
    /// state once seen (with the identity value when all their values left); see the
    /// `_filtered` variant to drop them. The state has the context's
    /// [default parallelism](crate::Context::default_parallelism) of hash partitions;
    /// [`DStream::reduce_by_key_and_window_inv_with_partitions`] chooses the count.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use dstream::testing::StreamTest;
    /// let s = Duration::from_secs(1);
    /// let mut out = StreamTest::new().run(vec![vec![('a', 1)], vec![('a', 2), ('b', 5)], vec![], vec![]], |x| {
    ///     x.reduce_by_key_and_window_inv(|a, b| a + b, |a, b| a - b, 2 * s, s).unwrap()
    /// })?;
    /// out.iter_mut().for_each(|b| b.sort());
    /// assert_eq!(out[1], vec![('a', 3), ('b', 5)]);
    /// assert_eq!(out[3], vec![('a', 0), ('b', 0)]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn reduce_by_key_and_window_inv(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        inverse: impl Fn(V, V) -> V + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
    ) -> Result<DStream<(K, V)>, Error> {
        let partitions = self.context().context().default_parallelism();
        self.reduced_window(Arc::new(f), Arc::new(inverse), length, slide, partitions, None)
    }

    /// [`DStream::reduce_by_key_and_window_inv`] with the state in `partitions` hash
    /// partitions (zero is an error).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use dstream::testing::StreamTest;
    /// let s = Duration::from_secs(1);
    /// let mut out = StreamTest::new().run(vec![vec![('a', 1)], vec![('a', 2), ('b', 5)], vec![], vec![]], |x| {
    ///     x.reduce_by_key_and_window_inv_with_partitions(|a, b| a + b, |a, b| a - b, 2 * s, s, 3).unwrap()
    /// })?;
    /// out.iter_mut().for_each(|b| b.sort());
    /// assert_eq!(out[1], vec![('a', 3), ('b', 5)]);
    /// assert_eq!(out[3], vec![('a', 0), ('b', 0)]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    #[doc(alias = "reduceByKeyAndWindow")]
    pub fn reduce_by_key_and_window_inv_with_partitions(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        inverse: impl Fn(V, V) -> V + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
        partitions: usize,
    ) -> Result<DStream<(K, V)>, Error> {
        self.reduced_window(Arc::new(f), Arc::new(inverse), length, slide, partitions, None)
    }

    #[doc(alias = "reduceByKeyAndWindow")]
    /// [`DStream::reduce_by_key_and_window_inv_with_partitions`] keeping only the keys for which
    /// `keep` holds (for counts, `|(_, n)| *n > 0` drops keys that left the window): Spark's
    /// form with `numPartitions` and `filterFunc`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use dstream::testing::StreamTest;
    /// let s = Duration::from_secs(1);
    /// let mut out = StreamTest::new().run(vec![vec![('a', 1)], vec![('b', 5)], vec![]], |x| {
    ///     x.reduce_by_key_and_window_inv_filtered(|a, b| a + b, |a, b| a - b, 2 * s, s, 2, |(_, v)| *v != 0).unwrap()
    /// })?;
    /// out.iter_mut().for_each(|b| b.sort());
    /// assert_eq!(out, vec![vec![('a', 1)], vec![('a', 1), ('b', 5)], vec![('b', 5)]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn reduce_by_key_and_window_inv_filtered(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        inverse: impl Fn(V, V) -> V + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
        partitions: usize,
        keep: impl Fn(&(K, V)) -> bool + Send + Sync + 'static,
    ) -> Result<DStream<(K, V)>, Error> {
        self.reduced_window(Arc::new(f), Arc::new(inverse), length, slide, partitions, Some(Arc::new(keep)))
    }

    fn reduced_window(
        &self,
        reduce: Reduce<V>,
        inverse: Reduce<V>,
        length: Duration,
        slide: Duration,
        partitions: usize,
        keep: Option<KeepKey<K, V>>,
    ) -> Result<DStream<(K, V)>, Error> {
        check_window(length, slide, self.slide_duration())?;
        crate::rdd::check_partitions("reduce_by_key_and_window", partitions)?;
        let r = Arc::clone(&reduce);
        // Each batch is reduced into the window's own partitioning, so the step merges the
        // batches entering and leaving the window into the state without another shuffle.
        let reduced = self
            .transform(move |rdd, _| {
                let r = Arc::clone(&r);
                rdd.reduce_by_key_with_partitions(move |a, b| r(a, b), partitions)
            })
            .with_params(format!("partitions={partitions}"));
        // Leaving batches are read up to one slide after they left the window.
        reduced.node().remember_at_least(length + slide);
        let params = format!("length={length:?} partitions={partitions} filtered={}", keep.is_some());
        let this = Arc::new(OnceLock::new());
        let compute = ReducedWindow {
            reduced: Arc::clone(reduced.node()),
            this: Arc::clone(&this),
            length,
            slide,
            partitions,
            reduce,
            inverse,
            keep,
        };
        let stream =
            DStream::new_node(self.context(), "reduce_by_key_and_window", slide, vec![reduced.as_parent()], compute)
                .with_params(params);
        // A fresh lock is always empty, so this cannot fail.
        let _ = this.set(Arc::downgrade(stream.node()));
        Ok(stream.checkpointed_by_default())
    }

    #[doc(alias = "groupByKeyAndWindow")]
    /// The values of each key over each window, grouped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use dstream::testing::StreamTest;
    /// let s = Duration::from_secs(1);
    /// let out = StreamTest::new().run(vec![vec![('a', 1)], vec![('a', 2)]], |x| x.group_by_key_and_window(2 * s, s).unwrap())?;
    /// assert_eq!(out, vec![vec![('a', vec![1])], vec![('a', vec![1, 2])]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn group_by_key_and_window(&self, length: Duration, slide: Duration) -> Result<DStream<(K, Vec<V>)>, Error> {
        let per_window = window_batches(length, self.slide_duration());
        Ok(self
            .window(length, slide)?
            .transform(move |rdd, _| rdd.group_by_key_with_partitions(rdd.num_partitions().div_ceil(per_window))))
    }

    /// [`DStream::group_by_key_and_window`] into `partitions` partitions (zero is an error).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use dstream::testing::StreamTest;
    /// let s = Duration::from_secs(1);
    /// let out = StreamTest::new().run(vec![vec![('a', 1)], vec![('a', 2)]], |x| {
    ///     x.group_by_key_and_window_with_partitions(2 * s, s, 1).unwrap()
    /// })?;
    /// assert_eq!(out, vec![vec![('a', vec![1])], vec![('a', vec![1, 2])]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    #[doc(alias = "groupByKeyAndWindow")]
    pub fn group_by_key_and_window_with_partitions(
        &self,
        length: Duration,
        slide: Duration,
        partitions: usize,
    ) -> Result<DStream<(K, Vec<V>)>, Error> {
        crate::rdd::check_partitions("group_by_key_and_window", partitions)?;
        Ok(self
            .window(length, slide)?
            .transform(move |rdd, _| rdd.group_by_key_with_partitions(partitions))
            .with_params(format!("partitions={partitions}")))
    }
}

/// How many of a stream's datasets a window of `length` spans: the window's union of them has
/// that many times their partitions, and a keyed reduction over it goes back to one dataset's
/// count, so a slide's shuffle does not grow with the square of the window.
fn window_batches(length: Duration, slide: Duration) -> usize {
    usize::try_from(duration_nanos(length) / duration_nanos(slide).max(1)).unwrap_or(usize::MAX).max(1)
}
