//! Transformations that group records by key: they shuffle unless the input is already
//! partitioned the way they need.

use std::sync::Arc;

use super::shuffle::{
    AggregateRead, Aggregator, CombineWriter, DirectPartitioner, HashPartitioner, KeyPartitioner, LocalCombine,
    MergeRead, PlainRead, PlainWriter, RangePartitioner, ShuffleDep,
};
use super::{check_partitions, Compute, Rdd, RddNode};
use crate::error::{Error, TaskError};
use crate::graph::{Dep, NarrowMap};
use crate::hash::FixedMap;
use crate::task::{self, Sink, TaskContext};
use crate::{Data, Key};

/// How many keys each partition contributes to the sample that picks `sort_by_key`'s bounds.
const SORT_SAMPLE_PER_PARTITION: usize = 20;

impl<K: Key, V: Data> Rdd<(K, V)> {
    #[doc(alias = "combineByKey")]
    /// Combines the values of each key with `agg`, into a dataset hash-partitioned by key into
    /// `partitions` partitions. With `map_side_combine`, values are combined within each map
    /// partition before the shuffle (right for reductions; grouping gains nothing from it).
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::Aggregator;
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let pairs = ctx.parallelize(vec![('a', 1), ('b', 5), ('a', 3)], 2)?;
    /// // (sum, count) per key
    /// let agg = Aggregator::new(|v| (v, 1), |c: &mut (i32, i32), v| { c.0 += v; c.1 += 1 }, |c, o| { c.0 += o.0; c.1 += o.1 });
    /// let mut out = pairs.combine_by_key(agg, 2, true)?.collect()?;
    /// out.sort();
    /// assert_eq!(out, vec![('a', (4, 2)), ('b', (5, 1))]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn combine_by_key<C: Data>(
        &self,
        agg: Aggregator<V, C>,
        partitions: usize,
        map_side_combine: bool,
    ) -> Result<Rdd<(K, C)>, Error> {
        let n = check_partitions("combine_by_key", partitions)?;
        Ok(self.combine_with(Arc::new(agg), Arc::new(HashPartitioner(n)), map_side_combine))
    }

    pub(super) fn combine_with<C: Data>(
        &self,
        agg: Arc<Aggregator<V, C>>,
        partitioner: Arc<dyn KeyPartitioner<K>>,
        map_side_combine: bool,
    ) -> Rdd<(K, C)> {
        let kind = partitioner.kind();
        let n = partitioner.partitions();
        if kind.is_some() && self.node().partitioner() == kind {
            let deps = vec![Dep::Narrow { parent: self.id(), map: NarrowMap::OneToOne }];
            let compute = LocalCombine { parent: Arc::clone(self.node()), agg };
            return Rdd::from_compute(self.context(), "combine_by_key", n, deps, kind, compute);
        }
        if map_side_combine {
            let dep = ShuffleDep::register(self, partitioner, CombineWriter(Arc::clone(&agg)));
            let deps = vec![dep.dep()];
            Rdd::from_compute(self.context(), "combine_by_key", n, deps, kind, MergeRead { dep, agg })
        } else {
            let dep = ShuffleDep::register(self, partitioner, PlainWriter);
            let deps = vec![dep.dep()];
            Rdd::from_compute(self.context(), "combine_by_key", n, deps, kind, AggregateRead { dep, agg })
        }
    }

    #[doc(alias = "reduceByKey")]
    /// Merges the values of each key with `f`, combining on the map side before the shuffle;
    /// keeps the number of partitions.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let words = ctx.parallelize(vec!["a", "b", "a"].into_iter().map(String::from).collect(), 2)?;
    /// let mut counts = words.map(|w| (w, 1u64)).reduce_by_key(|a, b| a + b).collect()?;
    /// counts.sort();
    /// assert_eq!(counts, vec![("a".to_string(), 2), ("b".to_string(), 1)]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn reduce_by_key(&self, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> Rdd<(K, V)> {
        self.reduce_by_key_hashed(f, self.num_partitions())
    }

    /// [`Rdd::reduce_by_key`] into `partitions` partitions.
    pub fn reduce_by_key_with_partitions(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        partitions: usize,
    ) -> Result<Rdd<(K, V)>, Error> {
        Ok(self.reduce_by_key_hashed(f, check_partitions("reduce_by_key", partitions)?))
    }

    /// [`Rdd::reduce_by_key`] into a single partition.
    pub(crate) fn reduce_by_key_single(&self, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> Rdd<(K, V)> {
        self.reduce_by_key_hashed(f, 1)
    }

    pub(super) fn reduce_by_key_hashed(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        partitions: usize,
    ) -> Rdd<(K, V)> {
        // The combined value is an `Option` so the merge can move the old value out of its slot;
        // it is `None` only transiently, inside a merge.
        let f = Arc::new(f);
        let (f1, f2) = (Arc::clone(&f), f);
        let agg = Aggregator::new(
            Some,
            move |c: &mut Option<V>, v| {
                *c = Some(match c.take() {
                    Some(a) => f1(a, v),
                    None => v,
                })
            },
            move |c: &mut Option<V>, o: Option<V>| {
                *c = match (c.take(), o) {
                    (Some(a), Some(b)) => Some(f2(a, b)),
                    (a, b) => a.or(b),
                }
            },
        );
        let combined = self.combine_with(Arc::new(agg), Arc::new(HashPartitioner(partitions)), true);
        combined.flat_map_values(|c| c)
    }

    #[doc(alias = "groupByKey")]
    /// Groups the values of each key; keeps the number of partitions. Values keep their order
    /// within each input partition, and input partitions are read in order.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let mut groups = ctx.parallelize(vec![(1, 'x'), (2, 'y'), (1, 'z')], 2)?.group_by_key().collect()?;
    /// groups.sort();
    /// assert_eq!(groups, vec![(1, vec!['x', 'z']), (2, vec!['y'])]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn group_by_key(&self) -> Rdd<(K, Vec<V>)> {
        self.group_with(Arc::new(HashPartitioner(self.num_partitions())))
    }

    /// [`Rdd::group_by_key`] into `partitions` partitions.
    pub fn group_by_key_with_partitions(&self, partitions: usize) -> Result<Rdd<(K, Vec<V>)>, Error> {
        Ok(self.group_with(Arc::new(HashPartitioner(check_partitions("group_by_key", partitions)?))))
    }

    fn group_with(&self, partitioner: Arc<dyn KeyPartitioner<K>>) -> Rdd<(K, Vec<V>)> {
        let agg = Aggregator::new(|v| vec![v], |c: &mut Vec<V>, v| c.push(v), |c: &mut Vec<V>, mut o| c.append(&mut o));
        self.combine_with(Arc::new(agg), partitioner, false)
    }

    /// For each key present in either dataset, the values it has in `self` and in `other`.
    /// Uses the hash partitioning of `self` if it has one, so a co-partitioned side is not
    /// shuffled again.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let a = ctx.parallelize(vec![(1, 'a'), (2, 'b')], 2)?;
    /// let b = ctx.parallelize(vec![(1, 10), (3, 30)], 1)?;
    /// let mut g = a.cogroup(&b).collect()?;
    /// g.sort();
    /// assert_eq!(g, vec![(1, (vec!['a'], vec![10])), (2, (vec!['b'], vec![])), (3, (vec![], vec![30]))]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn cogroup<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (Vec<V>, Vec<W>))> {
        let n = match self.node().partitioner() {
            Some(crate::graph::PartitionerKind::Hash(n)) => n,
            _ => self.num_partitions().max(other.num_partitions()),
        };
        self.cogroup_hashed(other, n)
    }

    /// [`Rdd::cogroup`] into `partitions` hash partitions.
    pub fn cogroup_with_partitions<W: Data>(
        &self,
        other: &Rdd<(K, W)>,
        partitions: usize,
    ) -> Result<Rdd<(K, (Vec<V>, Vec<W>))>, Error> {
        Ok(self.cogroup_hashed(other, check_partitions("cogroup", partitions)?))
    }

    fn cogroup_hashed<W: Data>(&self, other: &Rdd<(K, W)>, n: usize) -> Rdd<(K, (Vec<V>, Vec<W>))> {
        let left = self.group_with(Arc::new(HashPartitioner(n)));
        let right = other.group_with(Arc::new(HashPartitioner(n)));
        let deps = vec![
            Dep::Narrow { parent: left.id(), map: NarrowMap::OneToOne },
            Dep::Narrow { parent: right.id(), map: NarrowMap::OneToOne },
        ];
        let kind = left.node().partitioner();
        let compute = CoGroup { left: Arc::clone(left.node()), right: Arc::clone(right.node()) };
        Rdd::from_compute(self.context(), "cogroup", n, deps, kind, compute)
    }

    /// Pairs every value of a key in `self` with every value of the same key in `other`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let a = ctx.parallelize(vec![(1, 'a'), (2, 'b')], 2)?;
    /// let b = ctx.parallelize(vec![(1, 10), (1, 11)], 1)?;
    /// let mut j = a.join(&b).collect()?;
    /// j.sort();
    /// assert_eq!(j, vec![(1, ('a', 10)), (1, ('a', 11))]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn join<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (V, W))> {
        inner_pairs(&self.cogroup(other))
    }

    /// [`Rdd::join`] into `partitions` hash partitions (zero is an error).
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let a = ctx.parallelize(vec![(1, 'a'), (2, 'b')], 2)?;
    /// let b = ctx.parallelize(vec![(1, 10)], 1)?;
    /// let j = a.join_with_partitions(&b, 3)?;
    /// assert_eq!(j.num_partitions(), 3);
    /// assert_eq!(j.collect()?, vec![(1, ('a', 10))]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn join_with_partitions<W: Data>(
        &self,
        other: &Rdd<(K, W)>,
        partitions: usize,
    ) -> Result<Rdd<(K, (V, W))>, Error> {
        Ok(inner_pairs(&self.cogroup_with_partitions(other, partitions)?))
    }

    #[doc(alias = "leftOuterJoin")]
    /// Like [`Rdd::join`], keeping keys of `self` that `other` lacks, with `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let a = ctx.parallelize(vec![(1, 'a'), (2, 'b')], 2)?;
    /// let b = ctx.parallelize(vec![(1, 10)], 1)?;
    /// let mut j = a.left_outer_join(&b).collect()?;
    /// j.sort();
    /// assert_eq!(j, vec![(1, ('a', Some(10))), (2, ('b', None))]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn left_outer_join<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (V, Option<W>))> {
        left_pairs(&self.cogroup(other))
    }

    /// [`Rdd::left_outer_join`] into `partitions` hash partitions (zero is an error).
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let a = ctx.parallelize(vec![(1, 'a')], 2)?;
    /// let b = ctx.parallelize(vec![(3, 30)], 1)?;
    /// assert_eq!(a.left_outer_join_with_partitions(&b, 1)?.collect()?, vec![(1, ('a', None))]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn left_outer_join_with_partitions<W: Data>(
        &self,
        other: &Rdd<(K, W)>,
        partitions: usize,
    ) -> Result<Rdd<(K, (V, Option<W>))>, Error> {
        Ok(left_pairs(&self.cogroup_with_partitions(other, partitions)?))
    }

    #[doc(alias = "rightOuterJoin")]
    /// Like [`Rdd::join`], keeping keys of `other` that `self` lacks, with `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let a = ctx.parallelize(vec![(1, 'a')], 2)?;
    /// let b = ctx.parallelize(vec![(1, 10), (3, 30)], 1)?;
    /// let mut j = a.right_outer_join(&b).collect()?;
    /// j.sort();
    /// assert_eq!(j, vec![(1, (Some('a'), 10)), (3, (None, 30))]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn right_outer_join<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (Option<V>, W))> {
        right_pairs(&self.cogroup(other))
    }

    /// [`Rdd::right_outer_join`] into `partitions` hash partitions (zero is an error).
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let a = ctx.parallelize(vec![(1, 'a')], 2)?;
    /// let b = ctx.parallelize(vec![(3, 30)], 1)?;
    /// assert_eq!(a.right_outer_join_with_partitions(&b, 1)?.collect()?, vec![(3, (None, 30))]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn right_outer_join_with_partitions<W: Data>(
        &self,
        other: &Rdd<(K, W)>,
        partitions: usize,
    ) -> Result<Rdd<(K, (Option<V>, W))>, Error> {
        Ok(right_pairs(&self.cogroup_with_partitions(other, partitions)?))
    }

    #[doc(alias = "fullOuterJoin")]
    /// Like [`Rdd::join`], keeping the keys either side lacks, with `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let a = ctx.parallelize(vec![(1, 'a'), (2, 'b')], 2)?;
    /// let b = ctx.parallelize(vec![(1, 10), (3, 30)], 1)?;
    /// let mut j = a.full_outer_join(&b).collect()?;
    /// j.sort();
    /// assert_eq!(j, vec![(1, (Some('a'), Some(10))), (2, (Some('b'), None)), (3, (None, Some(30)))]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn full_outer_join<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (Option<V>, Option<W>))> {
        full_pairs(&self.cogroup(other))
    }

    /// [`Rdd::full_outer_join`] into `partitions` hash partitions (zero is an error).
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let a = ctx.parallelize(vec![(1, 'a')], 2)?;
    /// let b = ctx.parallelize(vec![(3, 30)], 1)?;
    /// let mut j = a.full_outer_join_with_partitions(&b, 2)?.collect()?;
    /// j.sort();
    /// assert_eq!(j, vec![(1, (Some('a'), None)), (3, (None, Some(30)))]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn full_outer_join_with_partitions<W: Data>(
        &self,
        other: &Rdd<(K, W)>,
        partitions: usize,
    ) -> Result<Rdd<(K, (Option<V>, Option<W>))>, Error> {
        Ok(full_pairs(&self.cogroup_with_partitions(other, partitions)?))
    }
}

/// The pairs of a cogroup: every value of a key on the left with every one on the right.
fn inner_pairs<K: Key, V: Data, W: Data>(g: &Rdd<(K, (Vec<V>, Vec<W>))>) -> Rdd<(K, (V, W))> {
    g.flat_map_values(|(vs, ws)| cross(vs, ws))
}

/// [`inner_pairs`], keeping left keys without right values, with `None`.
fn left_pairs<K: Key, V: Data, W: Data>(g: &Rdd<(K, (Vec<V>, Vec<W>))>) -> Rdd<(K, (V, Option<W>))> {
    g.flat_map_values(|(vs, ws)| cross(vs, optional(ws)))
}

/// [`inner_pairs`], keeping right keys without left values, with `None`.
fn right_pairs<K: Key, V: Data, W: Data>(g: &Rdd<(K, (Vec<V>, Vec<W>))>) -> Rdd<(K, (Option<V>, W))> {
    g.flat_map_values(|(vs, ws)| cross(optional(vs), ws))
}

/// [`inner_pairs`], keeping the keys either side lacks, with `None`.
fn full_pairs<K: Key, V: Data, W: Data>(g: &Rdd<(K, (Vec<V>, Vec<W>))>) -> Rdd<(K, (Option<V>, Option<W>))> {
    g.flat_map_values(|(vs, ws)| cross(optional(vs), optional(ws)))
}

/// The values as options; one `None` when there are none.
fn optional<X>(xs: Vec<X>) -> Vec<Option<X>> {
    if xs.is_empty() {
        vec![None]
    } else {
        xs.into_iter().map(Some).collect()
    }
}

impl<K: Key + Ord, V: Data> Rdd<(K, V)> {
    #[doc(alias = "sortByKey")]
    /// The records sorted by key, range-partitioned into about `partitions` partitions (fewer if
    /// there are fewer distinct keys); within a key, records keep their input order. Picking the
    /// ranges runs a small sampling job now.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let pairs = ctx.parallelize(vec![(3, 'c'), (1, 'a'), (2, 'b')], 2)?;
    /// assert_eq!(pairs.sort_by_key(true, 2)?.collect()?, vec![(1, 'a'), (2, 'b'), (3, 'c')]);
    /// assert_eq!(pairs.sort_by_key(false, 1)?.collect()?, vec![(3, 'c'), (2, 'b'), (1, 'a')]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn sort_by_key(&self, ascending: bool, partitions: usize) -> Result<Rdd<(K, V)>, Error> {
        let n = check_partitions("sort_by_key", partitions)?;
        let sample_rdd = self.map_partitions(|_, xs: Vec<(K, V)>| {
            let step = xs.len().div_ceil(SORT_SAMPLE_PER_PARTITION).max(1);
            xs.into_iter().step_by(step).map(|(k, _)| k).collect::<Vec<K>>()
        });
        let mut sample = sample_rdd.collect()?;
        sample.sort();
        let mut bounds: Vec<K> = (1..n).filter_map(|i| sample.get(i * sample.len() / n).cloned()).collect();
        bounds.dedup();
        let partitioner = Arc::new(RangePartitioner { bounds, ascending, id: sample_rdd.id() });
        let kind = partitioner.kind();
        let parts = KeyPartitioner::<K>::partitions(&*partitioner);
        let dep = ShuffleDep::register(self, partitioner, PlainWriter);
        let deps = vec![dep.dep()];
        Ok(Rdd::from_compute(
            self.context(),
            "sort_by_key",
            parts,
            deps,
            kind,
            PlainRead { dep, sort: Some(ascending) },
        ))
    }
}

impl<T: Data> Rdd<T> {
    /// The records sorted by `key` (Spark's `sortBy(f, ascending, numPartitions)`),
    /// range-partitioned into about `partitions` partitions; records with equal keys keep their
    /// input order. Like [`Rdd::sort_by_key`], picking the ranges runs a small sampling job now.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let words = ctx.parallelize(vec!["ccc".to_string(), "a".into(), "bb".into()], 2)?;
    /// assert_eq!(words.sort_by(|w| w.len(), true, 2)?.collect()?, vec!["a", "bb", "ccc"]);
    /// assert_eq!(words.sort_by(|w| w.clone(), false, 1)?.collect()?, vec!["ccc", "bb", "a"]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    #[doc(alias = "sortBy")]
    pub fn sort_by<K: Key + Ord>(
        &self,
        key: impl Fn(&T) -> K + Send + Sync + 'static,
        ascending: bool,
        partitions: usize,
    ) -> Result<Rdd<T>, Error> {
        Ok(self.map(move |x| (key(&x), x)).sort_by_key(ascending, partitions)?.map(|(_, x)| x))
    }
}

impl<T: Key> Rdd<T> {
    /// The distinct records; keeps the number of partitions.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let mut d = ctx.parallelize(vec![3, 1, 3, 2, 1], 2)?.distinct().collect()?;
    /// d.sort();
    /// assert_eq!(d, vec![1, 2, 3]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn distinct(&self) -> Rdd<T> {
        self.map(|x| (x, ())).reduce_by_key(|_, _| ()).map(|(x, ())| x)
    }
}

impl<T: Data> Rdd<T> {
    /// The same records spread evenly over `partitions` partitions, through a shuffle. Which
    /// partition a record lands in depends only on its position, so the result is deterministic.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let r = ctx.parallelize((0..10u32).collect(), 1)?.repartition(3)?;
    /// assert_eq!(r.num_partitions(), 3);
    /// assert_eq!(r.glom().collect()?.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 3, 3]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn repartition(&self, partitions: usize) -> Result<Rdd<T>, Error> {
        let n = check_partitions("repartition", partitions)?;
        let keyed = self.map_partitions(move |split, xs| {
            xs.into_iter().enumerate().map(move |(i, x)| ((split + i) % n, x)).collect::<Vec<_>>()
        });
        let dep = ShuffleDep::register(&keyed, Arc::new(DirectPartitioner(n)), PlainWriter);
        let deps = vec![dep.dep()];
        let shuffled = Rdd::from_compute(self.context(), "repartition", n, deps, None, PlainRead { dep, sort: None });
        Ok(shuffled.map(|(_, x)| x))
    }
}

/// Every pair of one `a` and one `b`.
fn cross<A: Clone, B: Clone>(a: Vec<A>, b: Vec<B>) -> Vec<(A, B)> {
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in &b {
            out.push((x.clone(), y.clone()));
        }
    }
    out
}

/// Merges two co-partitioned grouped datasets key by key.
struct CoGroup<K, V, W> {
    left: Arc<RddNode<(K, Vec<V>)>>,
    right: Arc<RddNode<(K, Vec<W>)>>,
}

impl<K: Key, V: Data, W: Data> Compute<(K, (Vec<V>, Vec<W>))> for CoGroup<K, V, W> {
    fn compute(
        &self,
        split: usize,
        tc: &mut TaskContext<'_>,
        out: &mut Sink<'_, (K, (Vec<V>, Vec<W>))>,
    ) -> Result<(), TaskError> {
        let mut groups: FixedMap<K, (Vec<V>, Vec<W>)> = FixedMap::default();
        self.left.run(split, tc, &mut |chunk: &mut Vec<(K, Vec<V>)>| {
            for (k, mut vs) in chunk.drain(..) {
                groups.entry(k).or_default().0.append(&mut vs);
            }
            Ok(())
        })?;
        self.right.run(split, tc, &mut |chunk: &mut Vec<(K, Vec<W>)>| {
            for (k, mut ws) in chunk.drain(..) {
                groups.entry(k).or_default().1.append(&mut ws);
            }
            Ok(())
        })?;
        task::push_iter(groups, out)
    }
}
