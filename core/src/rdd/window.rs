//! The dataset step of windowed reductions with an inverse function: the new window's state is
//! the previous state with the values leaving the window taken out and the values entering it
//! added, key by key, without shuffling the previous state.

use std::sync::Arc;

use super::shuffle::{Aggregator, HashPartitioner};

use super::{Compute, Rdd, RddNode};
use crate::error::TaskError;
use crate::graph::{Dep, NarrowMap, PartitionerKind};
use crate::hash::FixedMap;
use crate::task::{self, Sink, TaskContext};
use crate::{Data, Key};

/// The reduced values of one key leaving (`old`) and entering (`new`) the window.
pub(crate) type Delta<V> = (Option<V>, Option<V>);

/// A function of two values, shared by the closures of a windowed reduction.
pub(crate) type Reduce<V> = Arc<dyn Fn(V, V) -> V + Send + Sync>;

/// A predicate on a key and its value, deciding which keys the state keeps.
pub(crate) type KeepKey<K, V> = Arc<dyn Fn(&(K, V)) -> bool + Send + Sync>;

struct WindowStep<K, V> {
    prev: Arc<RddNode<(K, V)>>,
    delta: Arc<RddNode<(K, Delta<V>)>>,
    reduce: Reduce<V>,
    inverse: Reduce<V>,
    keep: Option<KeepKey<K, V>>,
}

impl<K: Key, V: Data> Compute<(K, V)> for WindowStep<K, V> {
    fn compute(&self, split: usize, tc: &mut TaskContext<'_>, out: &mut Sink<'_, (K, V)>) -> Result<(), TaskError> {
        let mut delta: FixedMap<K, Delta<V>> = FixedMap::default();
        self.delta.run(split, tc, &mut |chunk: &mut Vec<(K, Delta<V>)>| {
            delta.extend(chunk.drain(..));
            Ok(())
        })?;
        let keep = |kv: &(K, V)| self.keep.as_ref().is_none_or(|k| k(kv));
        let mut next = Vec::new();
        self.prev.run(split, tc, &mut |chunk: &mut Vec<(K, V)>| {
            for (k, mut v) in chunk.drain(..) {
                if let Some((old, new)) = delta.remove(&k) {
                    if let Some(old) = old {
                        v = (self.inverse)(v, old);
                    }
                    if let Some(new) = new {
                        v = (self.reduce)(v, new);
                    }
                }
                let kv = (k, v);
                if keep(&kv) {
                    next.push(kv);
                }
            }
            Ok(())
        })?;
        // Keys new to the window. A key leaving a window it was never in cannot happen for a
        // consistent inverse; its leaving value is ignored.
        next.extend(delta.into_iter().filter_map(|(k, (_, new))| new.map(|v| (k, v))).filter(|kv| keep(kv)));
        task::push_owned(next, out)
    }
}

impl<K: Key, V: Data> Rdd<(K, V)> {
    /// The next window state from `self` (the previous state, hash-partitioned into
    /// `partitions`), the reduced values leaving the window and those entering it.
    pub(crate) fn window_step(
        &self,
        leaving: &[Rdd<(K, V)>],
        entering: &[Rdd<(K, V)>],
        partitions: usize,
        reduce: Reduce<V>,
        inverse: Reduce<V>,
        keep: Option<KeepKey<K, V>>,
    ) -> Rdd<(K, V)> {
        let tagged_old = leaving.iter().map(|r| r.map_values(|v| (Some(v), None)));
        let tagged_new = entering.iter().map(|r| r.map_values(|v| (None, Some(v))));
        let tagged: Vec<Rdd<(K, Delta<V>)>> = tagged_old.chain(tagged_new).collect();
        // Values leaving (and entering) the window are merged with `reduce` on both sides of the
        // shuffle; merging a delta into a delta is the same step for a value and a combiner.
        let r = Arc::clone(&reduce);
        let merge = move |c: &mut Delta<V>, (o, n): Delta<V>| {
            let both = |a: Option<V>, b: Option<V>| match (a, b) {
                (Some(a), Some(b)) => Some(r(a, b)),
                (a, b) => a.or(b),
            };
            c.0 = both(c.0.take(), o);
            c.1 = both(c.1.take(), n);
        };
        let agg = Aggregator::new(|d| d, merge.clone(), merge);
        // Batches reduced into the window's partitioning merge partition by partition, with no
        // shuffle; others are shuffled into it.
        let window = Some(PartitionerKind::Hash(partitions));
        let tagged = match Rdd::zip_union(&tagged).filter(|u| u.node().partitioner() == window) {
            Some(zipped) => zipped,
            None => match tagged.split_first() {
                Some((first, rest)) => first.union(rest),
                None => self.context().parallelize_partitions(Vec::new()),
            },
        };
        let delta = tagged.combine_with(Arc::new(agg), Arc::new(HashPartitioner(partitions)), true);
        let prev = if self.node().partitioner() == Some(PartitionerKind::Hash(partitions)) {
            self.clone()
        } else {
            // Moves the state once, when it does not have the window's partitioning yet; its keys
            // are distinct, so nothing is reduced.
            let r = Arc::clone(&reduce);
            self.reduce_by_key_hashed(move |a, b| r(a, b), partitions)
        };
        let deps = vec![
            Dep::Narrow { parent: prev.id(), map: NarrowMap::OneToOne },
            Dep::Narrow { parent: delta.id(), map: NarrowMap::OneToOne },
        ];
        let compute =
            WindowStep { prev: Arc::clone(prev.node()), delta: Arc::clone(delta.node()), reduce, inverse, keep };
        Rdd::from_compute(
            self.context(),
            "window_step",
            partitions,
            deps,
            Some(PartitionerKind::Hash(partitions)),
            compute,
        )
    }
}
