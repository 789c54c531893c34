//! Narrow transformations: each output partition depends on one input partition, so they are
//! pipelined inside one task.

use std::sync::Arc;

use super::{Compute, Pieces, Rdd, RddNode};
use crate::dead_letter::Refusals;
use crate::error::TaskError;
use crate::graph::{Dep, NarrowMap};
use crate::task::{self, Sink, TaskContext, CHUNK_RECORDS};
use crate::Data;

/// Passes the parent's records through (used by `persist`).
pub(super) struct Identity<T>(pub(super) Arc<RddNode<T>>);

impl<T: Data> Compute<T> for Identity<T> {
    fn compute(&self, split: usize, tc: &mut TaskContext<'_>, out: &mut Sink<'_, T>) -> Result<(), TaskError> {
        self.0.run(split, tc, out)
    }
}

struct Map<T, F> {
    parent: Arc<RddNode<T>>,
    f: F,
}

impl<T: Data, U: Data, F: Fn(T) -> U + Send + Sync> Compute<U> for Map<T, F> {
    fn compute(&self, split: usize, tc: &mut TaskContext<'_>, out: &mut Sink<'_, U>) -> Result<(), TaskError> {
        let mut buf = Vec::with_capacity(CHUNK_RECORDS);
        self.parent.run(split, tc, &mut |chunk: &mut Vec<T>| {
            buf.extend(chunk.drain(..).map(&self.f));
            let r = out(&mut buf);
            buf.clear();
            r
        })
    }

    fn compute_isolated(
        &self,
        split: usize,
        tc: &mut TaskContext<'_>,
        out: &mut Sink<'_, U>,
        mut refusals: Refusals,
    ) -> Result<(), TaskError> {
        let mut buf = Vec::with_capacity(CHUNK_RECORDS);
        self.parent.run(split, tc, &mut |chunk: &mut Vec<T>| {
            for x in chunk.drain(..) {
                let record = x.clone();
                buf.extend(refusals.call(&record, || (self.f)(x))?);
            }
            let r = if buf.is_empty() { Ok(()) } else { out(&mut buf) };
            buf.clear();
            r
        })?;
        tc.refused(refusals)
    }
}

struct Filter<T, F> {
    parent: Arc<RddNode<T>>,
    f: F,
}

impl<T: Data, F: Fn(&T) -> bool + Send + Sync> Compute<T> for Filter<T, F> {
    fn compute(&self, split: usize, tc: &mut TaskContext<'_>, out: &mut Sink<'_, T>) -> Result<(), TaskError> {
        if let Some(data) = self.parent.borrowed(split, tc)? {
            // Only the records that pass are copied out of a partition held in memory.
            return task::push_iter(data.iter().filter(|x| (self.f)(x)).cloned(), out);
        }
        self.parent.run(split, tc, &mut |chunk: &mut Vec<T>| {
            chunk.retain(|x| (self.f)(x));
            if chunk.is_empty() {
                Ok(())
            } else {
                out(chunk)
            }
        })
    }

    fn compute_isolated(
        &self,
        split: usize,
        tc: &mut TaskContext<'_>,
        out: &mut Sink<'_, T>,
        mut refusals: Refusals,
    ) -> Result<(), TaskError> {
        let mut keep = |chunk: &mut Vec<T>, refusals: &mut Refusals| -> Result<(), TaskError> {
            let mut kept = Vec::with_capacity(chunk.len());
            for x in chunk.drain(..) {
                if refusals.call(&x, || (self.f)(&x))? == Some(true) {
                    kept.push(x);
                }
            }
            if kept.is_empty() {
                Ok(())
            } else {
                out(&mut kept)
            }
        };
        if let Some(data) = self.parent.borrowed(split, tc)? {
            for chunk in data.slices().flat_map(|s| s.chunks(CHUNK_RECORDS)) {
                keep(&mut chunk.to_vec(), &mut refusals)?;
            }
        } else {
            self.parent.run(split, tc, &mut |chunk: &mut Vec<T>| keep(chunk, &mut refusals))?;
        }
        tc.refused(refusals)
    }
}

struct FlatMap<T, F> {
    parent: Arc<RddNode<T>>,
    f: F,
}

impl<T, U, I, F> Compute<U> for FlatMap<T, F>
where
    T: Data,
    U: Data,
    I: IntoIterator<Item = U>,
    F: Fn(T) -> I + Send + Sync,
{
    fn compute(&self, split: usize, tc: &mut TaskContext<'_>, out: &mut Sink<'_, U>) -> Result<(), TaskError> {
        let mut buf = Vec::with_capacity(CHUNK_RECORDS);
        self.parent.run(split, tc, &mut |chunk: &mut Vec<T>| {
            for x in chunk.drain(..) {
                buf.extend((self.f)(x));
                if buf.len() >= CHUNK_RECORDS {
                    out(&mut buf)?;
                    buf.clear();
                }
            }
            Ok(())
        })?;
        if buf.is_empty() {
            Ok(())
        } else {
            out(&mut buf)
        }
    }

    fn compute_isolated(
        &self,
        split: usize,
        tc: &mut TaskContext<'_>,
        out: &mut Sink<'_, U>,
        mut refusals: Refusals,
    ) -> Result<(), TaskError> {
        let mut buf = Vec::with_capacity(CHUNK_RECORDS);
        self.parent.run(split, tc, &mut |chunk: &mut Vec<T>| {
            for x in chunk.drain(..) {
                let record = x.clone();
                // Iterated inside the call: a collection may panic lazily, while it is read.
                if let Some(produced) = refusals.call(&record, || (self.f)(x).into_iter().collect::<Vec<U>>())? {
                    buf.extend(produced);
                }
                if buf.len() >= CHUNK_RECORDS {
                    out(&mut buf)?;
                    buf.clear();
                }
            }
            Ok(())
        })?;
        if !buf.is_empty() {
            out(&mut buf)?;
        }
        tc.refused(refusals)
    }
}

struct MapPartitions<T, F> {
    parent: Arc<RddNode<T>>,
    f: F,
}

impl<T, U, I, F> Compute<U> for MapPartitions<T, F>
where
    T: Data,
    U: Data,
    I: IntoIterator<Item = U>,
    F: Fn(usize, Vec<T>) -> I + Send + Sync,
{
    fn compute(&self, split: usize, tc: &mut TaskContext<'_>, out: &mut Sink<'_, U>) -> Result<(), TaskError> {
        let all = self.parent.collect_partition(split, tc, true)?;
        task::push_iter((self.f)(split, all), out)
    }
}

struct MapPartitionsRef<T, F> {
    parent: Arc<RddNode<T>>,
    f: F,
}

impl<T, U, I, F> Compute<U> for MapPartitionsRef<T, F>
where
    T: Data,
    U: Data,
    I: IntoIterator<Item = U>,
    F: Fn(usize, &[T]) -> I + Send + Sync,
{
    fn compute(&self, split: usize, tc: &mut TaskContext<'_>, out: &mut Sink<'_, U>) -> Result<(), TaskError> {
        let all = self.parent.shared_partition(split, tc)?;
        task::push_iter((self.f)(split, &all), out)
    }
}

/// Partition `p` holds partition `p` of every parent in turn (parents partitioned alike).
struct ZipUnion<T> {
    parents: Vec<Arc<RddNode<T>>>,
}

impl<T: Data> Compute<T> for ZipUnion<T> {
    fn compute(&self, split: usize, tc: &mut TaskContext<'_>, out: &mut Sink<'_, T>) -> Result<(), TaskError> {
        for parent in &self.parents {
            parent.run(split, tc, out)?;
        }
        Ok(())
    }
}

struct Union<T> {
    parents: Vec<Arc<RddNode<T>>>,
}

impl<T: Data> Union<T> {
    /// The parent holding partition `split` of the union, and its partition number there.
    fn locate(&self, split: usize) -> Option<(&RddNode<T>, usize)> {
        let mut start = 0;
        for parent in &self.parents {
            if split < start + parent.partitions() {
                return Some((parent, split - start));
            }
            start += parent.partitions();
        }
        None
    }
}

impl<T: Data> Compute<T> for Union<T> {
    fn compute(&self, split: usize, tc: &mut TaskContext<'_>, out: &mut Sink<'_, T>) -> Result<(), TaskError> {
        match self.locate(split) {
            Some((parent, p)) => parent.run(p, tc, out),
            None => Ok(()),
        }
    }

    fn held(&self, split: usize, tc: &mut TaskContext<'_>) -> Result<Option<Pieces<T>>, TaskError> {
        match self.locate(split) {
            Some((parent, p)) => parent.borrowed(p, tc),
            None => Ok(None),
        }
    }
}

impl<T: Data> Rdd<T> {
    fn narrow<U: Data>(
        &self,
        name: &'static str,
        keeps_partitioner: bool,
        compute: impl Compute<U> + 'static,
    ) -> Rdd<U> {
        let partitioner = if keeps_partitioner { self.node.partitioner() } else { None };
        let deps = vec![Dep::Narrow { parent: self.id(), map: NarrowMap::OneToOne }];
        Rdd::from_compute(&self.ctx, name, self.num_partitions(), deps, partitioner, compute)
    }

    /// A dataset of `f` applied to every record.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let lens = ctx.parallelize(vec!["a".to_string(), "abc".to_string()], 2)?.map(|s| s.len());
    /// assert_eq!(lens.collect()?, vec![1, 3]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn map<U: Data>(&self, f: impl Fn(T) -> U + Send + Sync + 'static) -> Rdd<U> {
        self.narrow("map", false, Map { parent: Arc::clone(&self.node), f })
    }

    /// A dataset of the records for which `f` is true.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let odd = ctx.parallelize((1..=6u8).collect(), 3)?.filter(|x| x % 2 == 1);
    /// assert_eq!(odd.collect()?, vec![1, 3, 5]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn filter(&self, f: impl Fn(&T) -> bool + Send + Sync + 'static) -> Rdd<T> {
        self.narrow("filter", true, Filter { parent: Arc::clone(&self.node), f })
    }

    #[doc(alias = "flatMap")]
    /// A dataset of all the records of the collections `f` returns for every record.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let lines = ctx.parallelize(vec!["to be".to_string(), "or not".to_string()], 2)?;
    /// let words = lines.flat_map(|l| l.split(' ').map(str::to_owned).collect::<Vec<_>>());
    /// assert_eq!(words.collect()?, vec!["to", "be", "or", "not"]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn flat_map<U: Data, I: IntoIterator<Item = U>>(&self, f: impl Fn(T) -> I + Send + Sync + 'static) -> Rdd<U> {
        self.narrow("flat_map", false, FlatMap { parent: Arc::clone(&self.node), f })
    }

    #[doc(alias = "mapPartitions")]
    /// A dataset computed by `f` from each whole partition: `f` receives the partition's index
    /// and its records in order.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let sums = ctx.parallelize((1..=6u32).collect(), 2)?.map_partitions(|_, xs| [xs.iter().sum::<u32>()]);
    /// assert_eq!(sums.collect()?, vec![6, 15]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn map_partitions<U: Data, I: IntoIterator<Item = U>>(
        &self,
        f: impl Fn(usize, Vec<T>) -> I + Send + Sync + 'static,
    ) -> Rdd<U> {
        self.narrow("map_partitions", false, MapPartitions { parent: Arc::clone(&self.node), f })
    }

    /// [`Rdd::map_partitions`] for a `f` that only reads the records: it borrows each partition,
    /// so a partition already in memory (a cached block, data the program holds) is not
    /// copied first.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let words = ctx.parallelize(vec!["a b".to_string(), "c".to_string(), "d e f".to_string()], 2)?.persist();
    /// let per_partition = words.map_partitions_ref(|_, lines| [lines.iter().map(|l| l.split(' ').count()).sum::<usize>()]);
    /// assert_eq!(per_partition.collect()?, vec![2, 4]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn map_partitions_ref<U: Data, I: IntoIterator<Item = U>>(
        &self,
        f: impl Fn(usize, &[T]) -> I + Send + Sync + 'static,
    ) -> Rdd<U> {
        self.narrow("map_partitions_ref", false, MapPartitionsRef { parent: Arc::clone(&self.node), f })
    }

    /// A dataset with one record per partition: the partition's records as a vector.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let parts = ctx.parallelize((1..=4u32).collect(), 2)?.glom();
    /// assert_eq!(parts.collect()?, vec![vec![1, 2], vec![3, 4]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn glom(&self) -> Rdd<Vec<T>> {
        self.map_partitions(|_, xs| [xs])
    }

    /// A dataset holding the records of `self` followed by those of `others`; its partitions are
    /// the partitions of each input in turn, so no data moves.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let a = ctx.parallelize(vec![1, 2], 1)?;
    /// let b = ctx.parallelize(vec![3], 1)?;
    /// assert_eq!(a.union(&[b]).collect()?, vec![1, 2, 3]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn union(&self, others: &[Rdd<T>]) -> Rdd<T> {
        let mut parents = vec![Arc::clone(&self.node)];
        parents.extend(others.iter().map(|o| Arc::clone(&o.node)));
        let mut deps = Vec::with_capacity(parents.len());
        let mut start = 0;
        for p in &parents {
            deps.push(Dep::Narrow { parent: p.id(), map: NarrowMap::Slice { start, len: p.partitions() } });
            start += p.partitions();
        }
        Rdd::from_compute(&self.ctx, "union", start, deps, None, Union { parents })
    }

    /// The union of datasets with the same partitioner, partition by partition: partition `p`
    /// holds partition `p` of each of `rdds` in turn, and the partitioner is kept, so a keyed
    /// step over it needs no shuffle. `None` unless all of them (at least one) share a known
    /// partitioner.
    pub(crate) fn zip_union(rdds: &[Rdd<T>]) -> Option<Rdd<T>> {
        let first = rdds.first()?;
        let partitioner = first.node.partitioner()?;
        if rdds.iter().any(|r| r.node.partitioner() != Some(partitioner)) {
            return None;
        }
        let parents: Vec<Arc<RddNode<T>>> = rdds.iter().map(|r| Arc::clone(&r.node)).collect();
        let deps = parents.iter().map(|p| Dep::Narrow { parent: p.id(), map: NarrowMap::OneToOne }).collect();
        let compute = ZipUnion { parents };
        Some(Rdd::from_compute(&first.ctx, "zip_union", first.num_partitions(), deps, Some(partitioner), compute))
    }
}

impl<K: Data, V: Data> Rdd<(K, V)> {
    #[doc(alias = "mapValues")]
    /// A pair dataset with `f` applied to every value; keys, and so partitioning, are kept.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let doubled = ctx.parallelize(vec![('a', 1), ('b', 2)], 1)?.map_values(|v| v * 2);
    /// assert_eq!(doubled.collect()?, vec![('a', 2), ('b', 4)]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn map_values<W: Data>(&self, f: impl Fn(V) -> W + Send + Sync + 'static) -> Rdd<(K, W)> {
        self.narrow("map_values", true, Map { parent: Arc::clone(&self.node), f: move |(k, v)| (k, f(v)) })
    }

    #[doc(alias = "flatMapValues")]
    /// A pair dataset with each value replaced by every value of the collection `f` returns for
    /// it, under the same key; partitioning is kept.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let spread = ctx.parallelize(vec![('a', 2u32)], 1)?.flat_map_values(|n| 0..n);
    /// assert_eq!(spread.collect()?, vec![('a', 0), ('a', 1)]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn flat_map_values<W: Data, I: IntoIterator<Item = W>>(
        &self,
        f: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> Rdd<(K, W)> {
        let f = move |(k, v): (K, V)| f(v).into_iter().map(move |w| (k.clone(), w));
        self.narrow("flat_map_values", true, FlatMap { parent: Arc::clone(&self.node), f })
    }
}

impl crate::Context {
    /// The union of any number of datasets (Spark's `SparkContext.union`): the partitions of
    /// each in turn, no shuffle. No datasets give an empty dataset; one gives itself.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let parts = vec![ctx.parallelize(vec![1, 2], 1)?, ctx.parallelize(vec![3], 1)?, ctx.parallelize(vec![4], 2)?];
    /// assert_eq!(ctx.union(&parts).collect()?, vec![1, 2, 3, 4]);
    /// assert_eq!(ctx.union(&parts[..1]).collect()?, vec![1, 2]);
    /// assert!(ctx.union::<u32>(&[]).collect()?.is_empty());
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn union<T: Data>(&self, rdds: &[Rdd<T>]) -> Rdd<T> {
        match rdds.split_first() {
            None => self.parallelize_partitions(Vec::new()),
            Some((first, [])) => first.clone(),
            Some((first, rest)) => first.union(rest),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::dead_letter::{DeadLetter, Isolation};
    use crate::ids::{Scope, StreamId};
    use crate::time::Time;
    use crate::StepCluster;

    const STREAM: StreamId = StreamId(1);

    /// Computes partition `split` of `rdd` in one task attempt, isolating when `isolation` is
    /// set: the records, or the task's error, and the dead letters.
    fn run<T: Data>(
        rdd: &Rdd<T>,
        split: usize,
        isolation: Option<&Isolation>,
    ) -> (Result<Vec<T>, TaskError>, Vec<DeadLetter>) {
        let inputs = BTreeMap::new();
        let mut tc = TaskContext::new(&inputs).isolating(isolation);
        let records = crate::task::catch_panic(|| rdd.node.collect_partition(split, &mut tc, true));
        (records, tc.dead_letters)
    }

    fn isolation(max: u32) -> Isolation {
        Isolation { streams: vec![STREAM], dead_letters_max: max }
    }

    /// A pipeline of the covered operators, made in the batch scope of `STREAM`: each one
    /// panics on a record of its own.
    fn pipeline(ctx: &crate::Context) -> Rdd<(u32, u32)> {
        let _scope = ctx.graph().enter(Scope::Batch { stream: STREAM, time: Time::ZERO });
        let data = ctx.parallelize((0..3000u32).collect(), 2).unwrap();
        data.map(|x| if x == 5 { panic!("map {x}") } else { x })
            .filter(|x| if *x == 6 { panic!("filter {x}") } else { x % 2 == 0 })
            .flat_map(|x| if x == 2000 { panic!("flat_map {x}") } else { vec![x] })
            .map(|x| (x % 5, x))
            .map_values(|v| if v == 2998 { panic!("map_values {v}") } else { v })
            .flat_map_values(|v| if v == 8 { panic!("flat_map_values {v}") } else { vec![v] })
    }

    #[test]
    fn an_ordinary_attempt_fails_on_the_first_panic() {
        let cluster = StepCluster::builder().build();
        let (records, letters) = run(&pipeline(&cluster.context()), 0, None);
        assert_eq!(records.unwrap_err().message, "map 5");
        assert!(letters.is_empty());
    }

    #[test]
    fn an_isolating_attempt_sets_each_refused_record_aside_and_keeps_the_rest() {
        let cluster = StepCluster::builder().build();
        let rdd = pipeline(&cluster.context());
        let mut all = Vec::new();
        let mut refused = Vec::new();
        for split in 0..2 {
            let (records, letters) = run(&rdd, split, Some(&isolation(10)));
            all.extend(records.unwrap());
            refused.extend(letters);
        }
        let refused_values = [5, 6, 2000, 2998, 8];
        let expected: Vec<(u32, u32)> =
            (0..3000).filter(|x| x % 2 == 0 && !refused_values.contains(x)).map(|x| (x % 5, x)).collect();
        assert_eq!(all, expected);
        let seen: Vec<(&str, &str, u32)> =
            refused.iter().map(|d| (d.operator.as_str(), d.error.as_str(), d.partition)).collect();
        assert_eq!(
            seen,
            vec![
                ("map", "map 5", 0),
                ("filter", "filter 6", 0),
                ("flat_map_values", "flat_map_values 8", 0),
                ("flat_map", "flat_map 2000", 1),
                ("map_values", "map_values 2998", 1),
            ],
            "in the order the operators finish, innermost first"
        );
        assert_eq!(refused[0].record::<u32>().unwrap(), 5);
        assert_eq!(refused[0].index, 5);
        assert_eq!(refused.last().unwrap().record::<(u32, u32)>().unwrap(), (2998 % 5, 2998));
        assert!(refused.iter().all(|d| d.stream == STREAM && d.time == Time::ZERO));
    }

    #[test]
    fn an_uncovered_dataset_is_not_isolated() {
        let cluster = StepCluster::builder().build();
        let other = Isolation { streams: vec![StreamId(2)], dead_letters_max: 10 };
        let (records, letters) = run(&pipeline(&cluster.context()), 0, Some(&other));
        assert_eq!(records.unwrap_err().message, "map 5");
        assert!(letters.is_empty());
    }

    #[test]
    fn an_isolating_attempt_fails_past_its_bound() {
        let cluster = StepCluster::builder().build();
        let (records, _) = run(&pipeline(&cluster.context()), 0, Some(&isolation(2)));
        assert_eq!(records.unwrap_err().kind, crate::error::TaskErrorKind::DeadLettersExceeded);
    }
}
