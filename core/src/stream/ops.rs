//! Stream transformations: each applies a dataset transformation to every batch.

use std::sync::Arc;

use std::any::Any;

use super::early::{AheadCompute, AheadKind};
use super::{BatchCtx, DStream, StreamCompute, StreamNode};
use crate::error::Error;
use crate::ids::StreamId;
use crate::rdd::{Aggregator, Rdd};
use crate::time::Time;
use crate::{Data, Key};

/// A stream computed from one parent's dataset of the same batch.
struct Transform<T, F> {
    parent: Arc<StreamNode<T>>,
    f: F,
}

impl<T: Data, U: Data, F> StreamCompute<U> for Transform<T, F>
where
    F: Fn(&Rdd<T>, Time) -> Result<Rdd<U>, Error> + Send + Sync,
{
    fn compute(&self, time: Time, b: &BatchCtx<'_>) -> Result<Option<Rdd<U>>, Error> {
        match self.parent.get(time, b)? {
            Some(rdd) => (self.f)(&rdd, time).map(Some),
            None => Ok(None),
        }
    }
}

/// A stream computed from two parents' datasets of the same batch.
struct Transform2<T, W, F> {
    left: Arc<StreamNode<T>>,
    right: Arc<StreamNode<W>>,
    f: F,
}

impl<T: Data, W: Data, U: Data, F> StreamCompute<U> for Transform2<T, W, F>
where
    F: Fn(&Rdd<T>, &Rdd<W>, Time) -> Result<Rdd<U>, Error> + Send + Sync,
{
    fn compute(&self, time: Time, b: &BatchCtx<'_>) -> Result<Option<Rdd<U>>, Error> {
        match (self.left.get(time, b)?, self.right.get(time, b)?) {
            (Some(l), Some(r)) => (self.f)(&l, &r, time).map(Some),
            _ => Ok(None),
        }
    }
}

/// A stream whose dataset is `f` of its parent's, one operator over each partition (`map`,
/// `filter`, ...): its partitions can be computed ahead over its inputs' (see `early.rs`).
struct Each<T, F> {
    parent: Arc<StreamNode<T>>,
    f: F,
}

impl<T: Data, U: Data, F> StreamCompute<U> for Each<T, F>
where
    F: Fn(&Rdd<T>) -> Rdd<U> + Send + Sync,
{
    fn compute(&self, time: Time, b: &BatchCtx<'_>) -> Result<Option<Rdd<U>>, Error> {
        Ok(self.parent.get(time, b)?.map(|rdd| (self.f)(&rdd)))
    }

    fn ahead(&self) -> Option<&dyn AheadCompute<U>> {
        Some(self)
    }
}

impl<T: Data, U: Data, F> AheadCompute<U> for Each<T, F>
where
    F: Fn(&Rdd<T>) -> Rdd<U> + Send + Sync,
{
    fn kind(&self) -> AheadKind {
        AheadKind::Each
    }

    fn inputs(&self) -> Vec<StreamId> {
        self.parent.ahead_inputs()
    }

    fn index(&self, input: StreamId, partition: usize) -> Option<usize> {
        self.parent.ahead_index(input, partition)
    }

    fn build(&self, input: StreamId, base: &dyn Any, time: Time) -> Option<Rdd<U>> {
        self.parent.ahead_build(input, base, time).map(|rdd| (self.f)(&rdd))
    }
}

/// A stream of the union of several parents' datasets of the same batch.
struct UnionStreams<T> {
    parents: Vec<Arc<StreamNode<T>>>,
}

impl<T: Data> StreamCompute<T> for UnionStreams<T> {
    fn compute(&self, time: Time, b: &BatchCtx<'_>) -> Result<Option<Rdd<T>>, Error> {
        let mut rdds = Vec::with_capacity(self.parents.len());
        for p in &self.parents {
            if let Some(rdd) = p.get(time, b)? {
                rdds.push(rdd);
            }
        }
        Ok(rdds.split_first().map(|(first, rest)| first.union(rest)))
    }

    fn ahead(&self) -> Option<&dyn AheadCompute<T>> {
        Some(self)
    }
}

impl<T: Data> AheadCompute<T> for UnionStreams<T> {
    fn kind(&self) -> AheadKind {
        AheadKind::Union
    }

    fn inputs(&self) -> Vec<StreamId> {
        self.parents.iter().flat_map(|p| p.ahead_inputs()).collect()
    }

    fn index(&self, input: StreamId, partition: usize) -> Option<usize> {
        // The parents before the one reading `input` come first in the union; their partition
        // counts in the batch being filled are guessed from the last batch (a wrong guess only
        // means the partition is computed at the close).
        let mut offset = 0;
        for p in &self.parents {
            if let Some(index) = p.ahead_index(input, partition) {
                return Some(offset + index);
            }
            offset += p.last_partitions()?;
        }
        None
    }

    fn build(&self, input: StreamId, base: &dyn Any, time: Time) -> Option<Rdd<T>> {
        self.parents.iter().find(|p| p.ahead_inputs().contains(&input))?.ahead_build(input, base, time)
    }
}

impl<T: Data> DStream<T> {
    /// A stream whose dataset for each batch is `f` of this stream's dataset and the batch
    /// time. `f` runs on the driver when the batch is generated: it may use any dataset
    /// operation, including joins with static datasets, but should not run actions.
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let out = StreamTest::new().run(vec![vec![3, 1, 2]], |s| {
    ///     s.transform(|rdd, _| Ok(rdd.map(|x| (x, ())).sort_by_key(true, 1)?.map(|(x, ())| x)))
    /// })?;
    /// assert_eq!(out, vec![vec![1, 2, 3]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn transform<U: Data>(
        &self,
        f: impl Fn(&Rdd<T>, Time) -> Result<Rdd<U>, Error> + Send + Sync + 'static,
    ) -> DStream<U> {
        DStream::new_node(
            &self.ssc,
            "transform",
            self.slide_duration(),
            vec![self.as_parent()],
            Transform { parent: Arc::clone(self.node()), f },
        )
    }

    #[doc(alias = "transformWith")]
    /// A stream whose dataset for each batch is `f` of this stream's and `other`'s datasets of
    /// the same batch. Both streams must have the same slide.
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let out = StreamTest::new().run2(vec![vec![1, 2]], vec![vec![10]], |a, b| {
    ///     a.transform_with(&b, |x, y, _| Ok(x.union(&[y.clone()]))).unwrap()
    /// })?;
    /// assert_eq!(out, vec![vec![1, 2, 10]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn transform_with<W: Data, U: Data>(
        &self,
        other: &DStream<W>,
        f: impl Fn(&Rdd<T>, &Rdd<W>, Time) -> Result<Rdd<U>, Error> + Send + Sync + 'static,
    ) -> Result<DStream<U>, Error> {
        same_slide("transform_with", self.slide_duration(), other.slide_duration())?;
        let parents = vec![self.as_parent(), other.as_parent()];
        Ok(DStream::new_node(
            &self.ssc,
            "transform_with",
            self.slide_duration(),
            parents,
            Transform2 { left: Arc::clone(self.node()), right: Arc::clone(other.node()), f },
        ))
    }

    /// `f` on every batch's dataset, where `f` reads its input as a whole (a shuffle, a
    /// cache): nothing of it is computed ahead.
    fn each_whole<U: Data>(
        &self,
        name: &'static str,
        f: impl Fn(&Rdd<T>) -> Rdd<U> + Send + Sync + 'static,
    ) -> DStream<U> {
        let parent = Arc::clone(self.node());
        let compute = Transform { parent, f: move |rdd: &Rdd<T>, _: Time| Ok(f(rdd)) };
        DStream::new_node(&self.ssc, name, self.slide_duration(), vec![self.as_parent()], compute)
    }

    /// `f` on every batch's dataset, where `f` is one operator over each partition: its
    /// partitions may be computed ahead of the batch's close (see `early.rs`).
    fn each<U: Data>(&self, name: &'static str, f: impl Fn(&Rdd<T>) -> Rdd<U> + Send + Sync + 'static) -> DStream<U> {
        DStream::new_node(
            &self.ssc,
            name,
            self.slide_duration(),
            vec![self.as_parent()],
            Each { parent: Arc::clone(self.node()), f },
        )
    }

    /// [`Rdd::map`] on every batch.
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let out = StreamTest::new().run(vec![vec![1, 2], vec![], vec![3]], |s| s.map(|x| x * 10))?;
    /// assert_eq!(out, vec![vec![10, 20], vec![], vec![30]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn map<U: Data>(&self, f: impl Fn(T) -> U + Send + Sync + 'static) -> DStream<U> {
        let f = Arc::new(f);
        self.each("map", move |rdd| {
            let f = Arc::clone(&f);
            rdd.map(move |x| f(x))
        })
    }

    #[doc(alias = "flatMap")]
    /// [`Rdd::flat_map`] on every batch.
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let out = StreamTest::new().run(vec![vec![2u32, 0, 1]], |s| s.flat_map(|n| 0..n))?;
    /// assert_eq!(out, vec![vec![0, 1, 0]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn flat_map<U: Data, I: IntoIterator<Item = U>>(
        &self,
        f: impl Fn(T) -> I + Send + Sync + 'static,
    ) -> DStream<U> {
        let f = Arc::new(f);
        self.each("flat_map", move |rdd| {
            let f = Arc::clone(&f);
            rdd.flat_map(move |x| f(x))
        })
    }

    /// [`Rdd::filter`] on every batch.
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let out = StreamTest::new().run(vec![vec![1, 2, 3, 4]], |s| s.filter(|x| x % 2 == 0))?;
    /// assert_eq!(out, vec![vec![2, 4]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn filter(&self, f: impl Fn(&T) -> bool + Send + Sync + 'static) -> DStream<T> {
        let f = Arc::new(f);
        self.each("filter", move |rdd| {
            let f = Arc::clone(&f);
            rdd.filter(move |x| f(x))
        })
    }

    #[doc(alias = "mapPartitions")]
    /// [`Rdd::map_partitions`] on every batch.
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let out = StreamTest::new().partitions(2).run(vec![vec![1, 2, 3, 4]], |s| {
    ///     s.map_partitions(|_, xs| [xs.iter().sum::<i32>()])
    /// })?;
    /// assert_eq!(out, vec![vec![3, 7]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn map_partitions<U: Data, I: IntoIterator<Item = U>>(
        &self,
        f: impl Fn(usize, Vec<T>) -> I + Send + Sync + 'static,
    ) -> DStream<U> {
        let f = Arc::new(f);
        self.each("map_partitions", move |rdd| {
            let f = Arc::clone(&f);
            rdd.map_partitions(move |i, xs| f(i, xs))
        })
    }

    /// [`Rdd::map_partitions_ref`] on every batch: `f` borrows each partition, so one already
    /// in memory (an input batch's block, a cached state) is not copied first.
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let out = StreamTest::new().partitions(2).run(vec![vec![1, 2, 3, 4]], |s| {
    ///     s.map_partitions_ref(|_, xs| [xs.iter().max().copied().unwrap_or(0)])
    /// })?;
    /// assert_eq!(out, vec![vec![2, 4]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn map_partitions_ref<U: Data, I: IntoIterator<Item = U>>(
        &self,
        f: impl Fn(usize, &[T]) -> I + Send + Sync + 'static,
    ) -> DStream<U> {
        let f = Arc::new(f);
        self.each("map_partitions_ref", move |rdd| {
            let f = Arc::clone(&f);
            rdd.map_partitions_ref(move |i, xs| f(i, xs))
        })
    }

    /// [`Rdd::glom`] on every batch: one record per partition.
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let out = StreamTest::new().partitions(2).run(vec![vec![1, 2, 3]], |s| s.glom())?;
    /// assert_eq!(out, vec![vec![vec![1], vec![2, 3]]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn glom(&self) -> DStream<Vec<T>> {
        self.each("glom", Rdd::glom)
    }

    /// [`Rdd::repartition`] on every batch. Zero partitions is an error.
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let out = StreamTest::new().run(vec![vec![1, 2, 3]], |s| s.repartition(3).unwrap().glom().map(|p| p.len()))?;
    /// assert_eq!(out, vec![vec![1, 1, 1]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn repartition(&self, partitions: usize) -> Result<DStream<T>, Error> {
        crate::rdd::check_partitions("repartition", partitions)?;
        Ok(self.transform(move |rdd, _| rdd.repartition(partitions)).with_params(format!("partitions={partitions}")))
    }

    /// The union of this stream and `others`, batch by batch. All must have the same slide.
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let out = StreamTest::new().run2(vec![vec![1]], vec![vec![2]], |a, b| a.union(&[b]).unwrap())?;
    /// assert_eq!(out, vec![vec![1, 2]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn union(&self, others: &[DStream<T>]) -> Result<DStream<T>, Error> {
        for o in others {
            same_slide("union", self.slide_duration(), o.slide_duration())?;
        }
        let mut parents = vec![Arc::clone(self.node())];
        parents.extend(others.iter().map(|o| Arc::clone(o.node())));
        let remember = parents.iter().map(|p| p.clone() as Arc<dyn super::RememberDyn>).collect();
        Ok(DStream::new_node(&self.ssc, "union", self.slide_duration(), remember, UnionStreams { parents }))
    }

    /// A stream with one record per batch: the number of records in the batch.
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let out = StreamTest::new().run(vec![vec!['a', 'b'], vec![]], |s| s.count())?;
    /// assert_eq!(out, vec![vec![2], vec![0]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn count(&self) -> DStream<u64> {
        self.each_whole("count", |rdd| {
            rdd.map_partitions_ref(|_, xs| [((), xs.len() as u64)]).reduce_by_key_single(|a, b| a + b).map(|((), n)| n)
        })
    }

    /// A stream with at most one record per batch: the batch's records merged with `f`
    /// (associative and commutative). Empty batches give no record.
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let out = StreamTest::new().run(vec![vec![1, 2, 3], vec![]], |s| s.reduce(|a, b| a + b))?;
    /// assert_eq!(out, vec![vec![6], vec![]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn reduce(&self, f: impl Fn(T, T) -> T + Send + Sync + 'static) -> DStream<T> {
        let f = Arc::new(f);
        self.each_whole("reduce", move |rdd| {
            let f = Arc::clone(&f);
            rdd.map(|x| ((), x)).reduce_by_key_single(move |a, b| f(a, b)).map(|((), x)| x)
        })
    }
}

impl<T: Data> DStream<T> {
    /// A stream with the same datasets, each persisted when generated (Spark's
    /// `DStream.persist`): its partitions are kept in the workers' block stores once computed,
    /// so every output and child stream of the batch reads them instead of computing them
    /// again. Without it, a stream feeding two outputs is computed twice per batch. The blocks
    /// are released once the batch is forgotten (see [`StreamingContext::remember`]).
    ///
    /// Build the outputs on the returned stream: the stream it is called on is not persisted.
    ///
    /// [`StreamingContext::remember`]: crate::StreamingContext::remember
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use dstream::{ManualClock, StepCluster, StreamingContext, Time};
    ///
    /// let cluster = StepCluster::builder().workers(2).build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))?;
    /// let (queue, numbers) = ssc.queue_stream::<u32>(2);
    /// let calls = Arc::new(AtomicUsize::new(0));
    /// let counted = Arc::clone(&calls);
    /// let squares = numbers.map(move |x| { counted.fetch_add(1, Ordering::Relaxed); x * x }).persist();
    /// squares.count().print(1)?;
    /// squares.reduce(|a, b| a + b).print(1)?;
    /// queue.push((1..=10).collect());
    /// ssc.step()?;
    /// assert_eq!(calls.load(Ordering::Relaxed), 10); // once per record, for both outputs
    /// # Ok::<(), dstream::Error>(())
    /// ```
    #[must_use = "persist returns the persisted stream; outputs on the original stream compute it again"]
    pub fn persist(&self) -> DStream<T> {
        self.each_whole("persist", Rdd::persist)
    }

    /// The same as [`DStream::persist`], with Spark's other name.
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let out = StreamTest::new().run(vec![vec![1, 2]], |s| s.map(|x| x + 1).cache())?;
    /// assert_eq!(out, vec![vec![2, 3]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    #[must_use = "cache returns the cached stream; outputs on the original stream compute it again"]
    pub fn cache(&self) -> DStream<T> {
        self.persist()
    }
}

impl<T: Key> DStream<T> {
    #[doc(alias = "countByValue")]
    /// A stream of `(record, occurrences)` for every distinct record of each batch.
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let mut out = StreamTest::new().run(vec![vec!['a', 'b', 'a']], |s| s.count_by_value())?;
    /// out[0].sort();
    /// assert_eq!(out, vec![vec![('a', 2), ('b', 1)]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn count_by_value(&self) -> DStream<(T, u64)> {
        self.map(|x| (x, 1u64)).reduce_by_key(|a, b| a + b)
    }

    /// [`DStream::count_by_value`] into `partitions` partitions (zero is an error).
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let out = StreamTest::new().run(vec![vec!['a', 'a']], |s| s.count_by_value_with_partitions(1).unwrap())?;
    /// assert_eq!(out, vec![vec![('a', 2)]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    #[doc(alias = "countByValue")]
    pub fn count_by_value_with_partitions(&self, partitions: usize) -> Result<DStream<(T, u64)>, Error> {
        self.map(|x| (x, 1u64)).reduce_by_key_with_partitions(|a, b| a + b, partitions)
    }
}

impl<K: Key, V: Data> DStream<(K, V)> {
    #[doc(alias = "mapValues")]
    /// [`Rdd::map_values`] on every batch.
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let out = StreamTest::new().run(vec![vec![('a', 1)]], |s| s.map_values(|v| v + 1))?;
    /// assert_eq!(out, vec![vec![('a', 2)]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn map_values<W: Data>(&self, f: impl Fn(V) -> W + Send + Sync + 'static) -> DStream<(K, W)> {
        let f = Arc::new(f);
        self.each("map_values", move |rdd| {
            let f = Arc::clone(&f);
            rdd.map_values(move |v| f(v))
        })
    }

    #[doc(alias = "flatMapValues")]
    /// [`Rdd::flat_map_values`] on every batch.
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let out = StreamTest::new().run(vec![vec![('a', 2u8)]], |s| s.flat_map_values(|n| 0..n))?;
    /// assert_eq!(out, vec![vec![('a', 0), ('a', 1)]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn flat_map_values<W: Data, I: IntoIterator<Item = W>>(
        &self,
        f: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> DStream<(K, W)> {
        let f = Arc::new(f);
        self.each("flat_map_values", move |rdd| {
            let f = Arc::clone(&f);
            rdd.flat_map_values(move |v| f(v))
        })
    }

    #[doc(alias = "groupByKey")]
    /// [`Rdd::group_by_key`] on every batch.
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let mut out = StreamTest::new().run(vec![vec![('a', 1), ('b', 2), ('a', 3)]], |s| s.group_by_key())?;
    /// out[0].sort();
    /// assert_eq!(out, vec![vec![('a', vec![1, 3]), ('b', vec![2])]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn group_by_key(&self) -> DStream<(K, Vec<V>)> {
        self.each_whole("group_by_key", Rdd::group_by_key)
    }

    /// [`Rdd::group_by_key_with_partitions`] on every batch: [`DStream::group_by_key`] into
    /// `partitions` partitions (zero is an error).
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let out = StreamTest::new().run(vec![vec![('a', 1), ('a', 3)]], |s| {
    ///     s.group_by_key_with_partitions(3).unwrap().glom().map(|p| p.len())
    /// })?;
    /// assert_eq!(out[0].len(), 3); // three partitions, one of them holding the key
    /// # Ok::<(), dstream::Error>(())
    /// ```
    #[doc(alias = "groupByKey")]
    pub fn group_by_key_with_partitions(&self, partitions: usize) -> Result<DStream<(K, Vec<V>)>, Error> {
        crate::rdd::check_partitions("group_by_key", partitions)?;
        Ok(self
            .transform(move |rdd, _| rdd.group_by_key_with_partitions(partitions))
            .with_params(format!("partitions={partitions}")))
    }

    #[doc(alias = "reduceByKey")]
    /// [`Rdd::reduce_by_key`] on every batch.
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let mut out = StreamTest::new().run(vec![vec![('a', 1), ('b', 2), ('a', 3)]], |s| s.reduce_by_key(|x, y| x + y))?;
    /// out[0].sort();
    /// assert_eq!(out, vec![vec![('a', 4), ('b', 2)]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn reduce_by_key(&self, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> DStream<(K, V)> {
        let f = Arc::new(f);
        self.each_whole("reduce_by_key", move |rdd| {
            let f = Arc::clone(&f);
            rdd.reduce_by_key(move |a, b| f(a, b))
        })
    }

    /// [`Rdd::reduce_by_key_with_partitions`] on every batch: [`DStream::reduce_by_key`] into
    /// `partitions` partitions (zero is an error).
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let out = StreamTest::new().run(vec![vec![('a', 1), ('b', 2), ('a', 3)]], |s| {
    ///     s.reduce_by_key_with_partitions(|x, y| x + y, 1).unwrap()
    /// })?;
    /// assert_eq!(out, vec![vec![('a', 4), ('b', 2)]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    #[doc(alias = "reduceByKey")]
    pub fn reduce_by_key_with_partitions(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        partitions: usize,
    ) -> Result<DStream<(K, V)>, Error> {
        crate::rdd::check_partitions("reduce_by_key", partitions)?;
        let f = Arc::new(f);
        Ok(self
            .transform(move |rdd, _| {
                let f = Arc::clone(&f);
                rdd.reduce_by_key_with_partitions(move |a, b| f(a, b), partitions)
            })
            .with_params(format!("partitions={partitions}")))
    }

    #[doc(alias = "combineByKey")]
    /// [`Rdd::combine_by_key`] on every batch, into `partitions` partitions (zero is an error).
    /// The aggregator is built by `make` for each batch.
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::{testing::StreamTest, Aggregator};
    /// let mut out = StreamTest::new().run(vec![vec![('a', 1), ('a', 3)]], |s| {
    ///     s.combine_by_key(|| Aggregator::new(|v| vec![v], |c: &mut Vec<i32>, v| c.push(v), |c, mut o| c.append(&mut o)), 2, false).unwrap()
    /// })?;
    /// assert_eq!(out, vec![vec![('a', vec![1, 3])]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn combine_by_key<C: Data>(
        &self,
        make: impl Fn() -> Aggregator<V, C> + Send + Sync + 'static,
        partitions: usize,
        map_side_combine: bool,
    ) -> Result<DStream<(K, C)>, Error> {
        crate::rdd::check_partitions("combine_by_key", partitions)?;
        Ok(self
            .transform(move |rdd, _| rdd.combine_by_key(make(), partitions, map_side_combine))
            .with_params(format!("partitions={partitions} map_side_combine={map_side_combine}")))
    }

    /// [`Rdd::cogroup`] of each batch of this stream with the same batch of `other`.
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let mut out = StreamTest::new().run2(vec![vec![(1, 'a')]], vec![vec![(1, 'x'), (2, 'y')]], |a, b| a.cogroup(&b).unwrap())?;
    /// out[0].sort();
    /// assert_eq!(out, vec![vec![(1, (vec!['a'], vec!['x'])), (2, (vec![], vec!['y']))]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn cogroup<W: Data>(&self, other: &DStream<(K, W)>) -> Result<DStream<(K, (Vec<V>, Vec<W>))>, Error> {
        self.transform_with(other, |a, b, _| Ok(a.cogroup(b)))
    }

    /// [`DStream::cogroup`] into `partitions` hash partitions (zero is an error).
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let out = StreamTest::new().run2(vec![vec![(1, 'a')]], vec![vec![(1, 'x')]], |a, b| a.cogroup_with_partitions(&b, 1).unwrap())?;
    /// assert_eq!(out, vec![vec![(1, (vec!['a'], vec!['x']))]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn cogroup_with_partitions<W: Data>(
        &self,
        other: &DStream<(K, W)>,
        partitions: usize,
    ) -> Result<DStream<(K, (Vec<V>, Vec<W>))>, Error> {
        crate::rdd::check_partitions("cogroup", partitions)?;
        Ok(self
            .transform_with(other, move |a, b, _| a.cogroup_with_partitions(b, partitions))?
            .with_params(format!("partitions={partitions}")))
    }

    /// [`Rdd::join`] of each batch of this stream with the same batch of `other`.
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let out = StreamTest::new().run2(vec![vec![(1, 'a'), (2, 'b')]], vec![vec![(1, 'x')]], |a, b| a.join(&b).unwrap())?;
    /// assert_eq!(out, vec![vec![(1, ('a', 'x'))]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn join<W: Data>(&self, other: &DStream<(K, W)>) -> Result<DStream<(K, (V, W))>, Error> {
        self.transform_with(other, |a, b, _| Ok(a.join(b)))
    }

    /// [`DStream::join`] into `partitions` hash partitions (zero is an error).
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let out = StreamTest::new().run2(vec![vec![(1, 'a'), (2, 'b')]], vec![vec![(1, 'x')]], |a, b| a.join_with_partitions(&b, 4).unwrap())?;
    /// assert_eq!(out, vec![vec![(1, ('a', 'x'))]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn join_with_partitions<W: Data>(
        &self,
        other: &DStream<(K, W)>,
        partitions: usize,
    ) -> Result<DStream<(K, (V, W))>, Error> {
        crate::rdd::check_partitions("join", partitions)?;
        Ok(self
            .transform_with(other, move |a, b, _| a.join_with_partitions(b, partitions))?
            .with_params(format!("partitions={partitions}")))
    }

    #[doc(alias = "leftOuterJoin")]
    /// [`Rdd::left_outer_join`] of each batch of this stream with the same batch of `other`.
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let mut out = StreamTest::new().run2(vec![vec![(1, 'a'), (2, 'b')]], vec![vec![(1, 'x')]], |a, b| a.left_outer_join(&b).unwrap())?;
    /// out[0].sort();
    /// assert_eq!(out, vec![vec![(1, ('a', Some('x'))), (2, ('b', None))]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn left_outer_join<W: Data>(&self, other: &DStream<(K, W)>) -> Result<DStream<(K, (V, Option<W>))>, Error> {
        self.transform_with(other, |a, b, _| Ok(a.left_outer_join(b)))
    }

    /// [`DStream::left_outer_join`] into `partitions` hash partitions (zero is an error).
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let out = StreamTest::new().run2(vec![vec![(2, 'b')]], vec![vec![(1, 'x')]], |a, b| a.left_outer_join_with_partitions(&b, 1).unwrap())?;
    /// assert_eq!(out, vec![vec![(2, ('b', None))]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    #[doc(alias = "leftOuterJoin")]
    pub fn left_outer_join_with_partitions<W: Data>(
        &self,
        other: &DStream<(K, W)>,
        partitions: usize,
    ) -> Result<DStream<(K, (V, Option<W>))>, Error> {
        crate::rdd::check_partitions("left_outer_join", partitions)?;
        Ok(self
            .transform_with(other, move |a, b, _| a.left_outer_join_with_partitions(b, partitions))?
            .with_params(format!("partitions={partitions}")))
    }

    #[doc(alias = "rightOuterJoin")]
    /// [`Rdd::right_outer_join`] of each batch of this stream with the same batch of `other`.
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let mut out = StreamTest::new().run2(vec![vec![(1, 'a')]], vec![vec![(1, 'x'), (2, 'y')]], |a, b| a.right_outer_join(&b).unwrap())?;
    /// out[0].sort();
    /// assert_eq!(out, vec![vec![(1, (Some('a'), 'x')), (2, (None, 'y'))]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn right_outer_join<W: Data>(&self, other: &DStream<(K, W)>) -> Result<DStream<(K, (Option<V>, W))>, Error> {
        self.transform_with(other, |a, b, _| Ok(a.right_outer_join(b)))
    }

    /// [`DStream::right_outer_join`] into `partitions` hash partitions (zero is an error).
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let out = StreamTest::new().run2(vec![vec![(2, 'b')]], vec![vec![(1, 'x')]], |a, b| a.right_outer_join_with_partitions(&b, 1).unwrap())?;
    /// assert_eq!(out, vec![vec![(1, (None, 'x'))]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    #[doc(alias = "rightOuterJoin")]
    pub fn right_outer_join_with_partitions<W: Data>(
        &self,
        other: &DStream<(K, W)>,
        partitions: usize,
    ) -> Result<DStream<(K, (Option<V>, W))>, Error> {
        crate::rdd::check_partitions("right_outer_join", partitions)?;
        Ok(self
            .transform_with(other, move |a, b, _| a.right_outer_join_with_partitions(b, partitions))?
            .with_params(format!("partitions={partitions}")))
    }

    #[doc(alias = "fullOuterJoin")]
    /// [`Rdd::full_outer_join`] of each batch of this stream with the same batch of `other`.
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let mut out = StreamTest::new().run2(vec![vec![(1, 'a')]], vec![vec![(2, 'y')]], |a, b| a.full_outer_join(&b).unwrap())?;
    /// out[0].sort();
    /// assert_eq!(out, vec![vec![(1, (Some('a'), None)), (2, (None, Some('y')))]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn full_outer_join<W: Data>(
        &self,
        other: &DStream<(K, W)>,
    ) -> Result<DStream<(K, (Option<V>, Option<W>))>, Error> {
        self.transform_with(other, |a, b, _| Ok(a.full_outer_join(b)))
    }

    /// [`DStream::full_outer_join`] into `partitions` hash partitions (zero is an error).
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let mut out = StreamTest::new().run2(vec![vec![(2, 'b')]], vec![vec![(1, 'x')]], |a, b| a.full_outer_join_with_partitions(&b, 2).unwrap())?;
    /// out[0].sort();
    /// assert_eq!(out, vec![vec![(1, (None, Some('x'))), (2, (Some('b'), None))]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    #[doc(alias = "fullOuterJoin")]
    pub fn full_outer_join_with_partitions<W: Data>(
        &self,
        other: &DStream<(K, W)>,
        partitions: usize,
    ) -> Result<DStream<(K, (Option<V>, Option<W>))>, Error> {
        crate::rdd::check_partitions("full_outer_join", partitions)?;
        Ok(self
            .transform_with(other, move |a, b, _| a.full_outer_join_with_partitions(b, partitions))?
            .with_params(format!("partitions={partitions}")))
    }
}

/// Checks that two streams produce datasets at the same times.
pub(crate) fn same_slide(operation: &str, a: std::time::Duration, b: std::time::Duration) -> Result<(), Error> {
    if a == b {
        Ok(())
    } else {
        Err(Error::InvalidDuration {
            what: format!("{operation} slide"),
            reason: format!("the streams slide by {a:?} and {b:?}; they must slide together"),
        })
    }
}
