//! Shuffles: the map side writes one bucket per reduce partition (combining values by key first
//! when the operation reduces); the reduce side reads its bucket from every map partition, in
//! map-partition order, so its result does not depend on which worker ran what or when.

use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::sync::Arc;

use super::{Compute, Rdd, RddNode};
use crate::error::{TaskError, TaskErrorKind};
use crate::graph::{Dep, Graph, PartitionerKind, ShuffleNode};
use crate::hash::{partition_of, FixedMap};
use crate::ids::{BlockId, RddId, ShuffleId};
use crate::message::Payload;
use crate::task::{self, Sink, TaskContext};
use crate::Data;

/// How keys are assigned to reduce partitions.
pub(crate) trait KeyPartitioner<K>: Send + Sync {
    fn partitions(&self) -> usize;
    fn partition(&self, key: &K) -> usize;
    /// What the partitioning is, if it can be shared by other datasets (co-partitioning).
    fn kind(&self) -> Option<PartitionerKind>;
}

/// Hash partitioning with the fixed-key hasher.
pub(crate) struct HashPartitioner(pub(crate) usize);

impl<K: Hash> KeyPartitioner<K> for HashPartitioner {
    fn partitions(&self) -> usize {
        self.0
    }
    fn partition(&self, key: &K) -> usize {
        partition_of(key, self.0)
    }
    fn kind(&self) -> Option<PartitionerKind> {
        Some(PartitionerKind::Hash(self.0))
    }
}

/// The key is the partition number itself (used by `repartition`).
pub(crate) struct DirectPartitioner(pub(crate) usize);

impl KeyPartitioner<usize> for DirectPartitioner {
    fn partitions(&self) -> usize {
        self.0
    }
    fn partition(&self, key: &usize) -> usize {
        key % self.0
    }
    fn kind(&self) -> Option<PartitionerKind> {
        None
    }
}

/// Range partitioning by sorted bounds: partition `i` holds keys in `(bounds[i-1], bounds[i]]`.
pub(crate) struct RangePartitioner<K> {
    pub(crate) bounds: Vec<K>,
    pub(crate) ascending: bool,
    pub(crate) id: RddId,
}

impl<K: Ord + Send + Sync> KeyPartitioner<K> for RangePartitioner<K> {
    fn partitions(&self) -> usize {
        self.bounds.len() + 1
    }
    fn partition(&self, key: &K) -> usize {
        let i = self.bounds.partition_point(|b| b < key);
        if self.ascending {
            i
        } else {
            self.bounds.len() - i
        }
    }
    fn kind(&self) -> Option<PartitionerKind> {
        Some(PartitionerKind::Range(self.id))
    }
}

/// The three functions that combine the values of a key into a combined value `C`, as in
/// Spark's `combineByKey`.
pub struct Aggregator<V, C> {
    /// Makes a combined value from the first value of a key.
    pub create: Box<dyn Fn(V) -> C + Send + Sync>,
    /// Adds one more value to a combined value.
    pub merge_value: Box<dyn Fn(&mut C, V) + Send + Sync>,
    /// Merges two combined values of the same key.
    pub merge_combiners: Box<dyn Fn(&mut C, C) + Send + Sync>,
}

impl<V, C> Aggregator<V, C> {
    /// An aggregator from its three functions.
    pub fn new(
        create: impl Fn(V) -> C + Send + Sync + 'static,
        merge_value: impl Fn(&mut C, V) + Send + Sync + 'static,
        merge_combiners: impl Fn(&mut C, C) + Send + Sync + 'static,
    ) -> Aggregator<V, C> {
        Aggregator {
            create: Box::new(create),
            merge_value: Box::new(merge_value),
            merge_combiners: Box::new(merge_combiners),
        }
    }

    fn add_value<K: Eq + Hash>(&self, map: &mut FixedMap<K, C>, k: K, v: V) {
        match map.entry(k) {
            Entry::Occupied(mut e) => (self.merge_value)(e.get_mut(), v),
            Entry::Vacant(e) => {
                e.insert((self.create)(v));
            }
        }
    }

    fn add_combiner<K: Eq + Hash>(&self, map: &mut FixedMap<K, C>, k: K, c: C) {
        match map.entry(k) {
            Entry::Occupied(mut e) => (self.merge_combiners)(e.get_mut(), c),
            Entry::Vacant(e) => {
                e.insert(c);
            }
        }
    }
}

/// What the map side of a shuffle writes into the buckets: the parent's records, or their
/// values combined by key over the whole map partition.
pub(crate) trait MapWriter<K, V, X>: Send + Sync {
    fn write(
        &self,
        parent: &RddNode<(K, V)>,
        map: usize,
        tc: &mut TaskContext<'_>,
        put: &mut dyn FnMut(K, X),
    ) -> Result<(), TaskError>;
}

/// Writes records as they are.
pub(crate) struct PlainWriter;

impl<K: Data, V: Data> MapWriter<K, V, V> for PlainWriter {
    fn write(
        &self,
        parent: &RddNode<(K, V)>,
        map: usize,
        tc: &mut TaskContext<'_>,
        put: &mut dyn FnMut(K, V),
    ) -> Result<(), TaskError> {
        parent.run(map, tc, &mut |chunk: &mut Vec<(K, V)>| {
            chunk.drain(..).for_each(|(k, v)| put(k, v));
            Ok(())
        })
    }
}

/// Combines values by key before writing (map-side combine).
pub(crate) struct CombineWriter<V, C>(pub(crate) Arc<Aggregator<V, C>>);

impl<K: Data + Eq + Hash, V: Data, C: Data> MapWriter<K, V, C> for CombineWriter<V, C> {
    fn write(
        &self,
        parent: &RddNode<(K, V)>,
        map: usize,
        tc: &mut TaskContext<'_>,
        put: &mut dyn FnMut(K, C),
    ) -> Result<(), TaskError> {
        let mut combined: FixedMap<K, C> = FixedMap::default();
        parent.run(map, tc, &mut |chunk: &mut Vec<(K, V)>| {
            chunk.drain(..).for_each(|(k, v)| self.0.add_value(&mut combined, k, v));
            Ok(())
        })?;
        combined.into_iter().for_each(|(k, c)| put(k, c));
        Ok(())
    }
}

/// The map side of a shuffle whose buckets hold `(K, X)` records.
pub(crate) struct ShuffleDep<K, V, X> {
    id: ShuffleId,
    parent: Arc<RddNode<(K, V)>>,
    partitioner: Arc<dyn KeyPartitioner<K>>,
    writer: Box<dyn MapWriter<K, V, X>>,
    graph: Arc<Graph>,
}

impl<K: Data, V: Data, X: Data> ShuffleDep<K, V, X> {
    /// Registers a shuffle of `parent` by `partitioner`.
    pub(crate) fn register(
        parent: &Rdd<(K, V)>,
        partitioner: Arc<dyn KeyPartitioner<K>>,
        writer: impl MapWriter<K, V, X> + 'static,
    ) -> Arc<ShuffleDep<K, V, X>> {
        let graph = Arc::clone(parent.context().graph());
        let id = graph.next_shuffle_id();
        let dep = Arc::new(ShuffleDep {
            id,
            parent: Arc::clone(parent.node()),
            partitioner,
            writer: Box::new(writer),
            graph: Arc::clone(&graph),
        });
        let erased: Arc<dyn ShuffleNode> = dep.clone();
        graph.register_shuffle(id, &erased);
        dep
    }

    /// The dependency of a reduce-side dataset on this shuffle.
    pub(crate) fn dep(&self) -> Dep {
        Dep::Shuffle { shuffle: self.id, parent: self.parent.id() }
    }

    /// Calls `f` on every record of the buckets for reduce partition `split`, in map order.
    pub(crate) fn read(
        &self,
        split: usize,
        tc: &mut TaskContext<'_>,
        mut f: impl FnMut(K, X),
    ) -> Result<(), TaskError> {
        for map in 0..self.parent.partitions() {
            let block = BlockId::Shuffle { shuffle: self.id, map: map as u32, reduce: split as u32 };
            let bucket = tc.input::<Vec<(K, X)>>(block)?.ok_or_else(|| {
                TaskError::new(TaskErrorKind::FetchFailed { block }, "the task was launched without it")
            })?;
            match Arc::try_unwrap(bucket) {
                Ok(owned) => owned.into_iter().for_each(|(k, x)| f(k, x)),
                Err(shared) => shared.iter().for_each(|(k, x)| f(k.clone(), x.clone())),
            }
        }
        Ok(())
    }
}

impl<K: Data, V: Data, X: Data> ShuffleNode for ShuffleDep<K, V, X> {
    fn map_rdd(&self) -> RddId {
        self.parent.id()
    }

    fn run_map(&self, map: usize, tc: &mut TaskContext<'_>) -> Result<Vec<(Payload, u64)>, TaskError> {
        let partitioner = &self.partitioner;
        let mut buckets: Vec<Vec<(K, X)>> = (0..partitioner.partitions()).map(|_| Vec::new()).collect();
        self.writer.write(&self.parent, map, tc, &mut |k, x| buckets[partitioner.partition(&k)].push((k, x)))?;
        Ok(buckets
            .into_iter()
            .map(|b| {
                let bytes = task::estimate_bytes(&b);
                (Payload::local(Arc::new(b)), bytes)
            })
            .collect())
    }

    fn encode_bucket(&self, payload: &Payload) -> Result<Payload, TaskError> {
        payload.encoded::<Vec<(K, X)>>().map_err(|e| TaskError::new(TaskErrorKind::Encode, e.to_string()))
    }
}

impl<K, V, X> Drop for ShuffleDep<K, V, X> {
    fn drop(&mut self) {
        self.graph.forget_shuffle(self.id);
    }
}

/// Reads a shuffle of plain records: the buckets concatenated in map order, optionally sorted
/// by key (stably, so equal keys keep map order).
pub(crate) struct PlainRead<K, V> {
    pub(crate) dep: Arc<ShuffleDep<K, V, V>>,
    pub(crate) sort: Option<bool>,
}

impl<K: Data, V: Data> Compute<(K, V)> for PlainRead<K, V>
where
    K: Ord,
{
    fn compute(&self, split: usize, tc: &mut TaskContext<'_>, out: &mut Sink<'_, (K, V)>) -> Result<(), TaskError> {
        let mut all = Vec::new();
        self.dep.read(split, tc, |k, v| all.push((k, v)))?;
        match self.sort {
            Some(true) => all.sort_by(|a, b| a.0.cmp(&b.0)),
            Some(false) => all.sort_by(|a, b| b.0.cmp(&a.0)),
            None => {}
        }
        task::push_owned(all, out)
    }
}

/// Reads a shuffle of raw values and combines them by key.
pub(crate) struct AggregateRead<K, V, C> {
    pub(crate) dep: Arc<ShuffleDep<K, V, V>>,
    pub(crate) agg: Arc<Aggregator<V, C>>,
}

impl<K: Data + Eq + Hash, V: Data, C: Data> Compute<(K, C)> for AggregateRead<K, V, C> {
    fn compute(&self, split: usize, tc: &mut TaskContext<'_>, out: &mut Sink<'_, (K, C)>) -> Result<(), TaskError> {
        emit_combined(out, |map| self.dep.read(split, tc, |k, v| self.agg.add_value(map, k, v)))
    }
}

/// Reads a shuffle of values combined on the map side and merges them by key.
pub(crate) struct MergeRead<K, V, C> {
    pub(crate) dep: Arc<ShuffleDep<K, V, C>>,
    pub(crate) agg: Arc<Aggregator<V, C>>,
}

impl<K: Data + Eq + Hash, V: Data, C: Data> Compute<(K, C)> for MergeRead<K, V, C> {
    fn compute(&self, split: usize, tc: &mut TaskContext<'_>, out: &mut Sink<'_, (K, C)>) -> Result<(), TaskError> {
        emit_combined(out, |map| self.dep.read(split, tc, |k, c| self.agg.add_combiner(map, k, c)))
    }
}

/// Combines the values of each key within a partition, for datasets already partitioned by key.
pub(crate) struct LocalCombine<K, V, C> {
    pub(crate) parent: Arc<RddNode<(K, V)>>,
    pub(crate) agg: Arc<Aggregator<V, C>>,
}

impl<K: Data + Eq + Hash, V: Data, C: Data> Compute<(K, C)> for LocalCombine<K, V, C> {
    fn compute(&self, split: usize, tc: &mut TaskContext<'_>, out: &mut Sink<'_, (K, C)>) -> Result<(), TaskError> {
        emit_combined(out, |map| {
            self.parent.run(split, tc, &mut |chunk: &mut Vec<(K, V)>| {
                chunk.drain(..).for_each(|(k, v)| self.agg.add_value(map, k, v));
                Ok(())
            })
        })
    }
}

/// Fills a map of combined values with `feed`, then pushes its entries into `out`.
fn emit_combined<K, C>(
    out: &mut Sink<'_, (K, C)>,
    feed: impl FnOnce(&mut FixedMap<K, C>) -> Result<(), TaskError>,
) -> Result<(), TaskError> {
    let mut map = FixedMap::default();
    feed(&mut map)?;
    task::push_iter(map, out)
}
