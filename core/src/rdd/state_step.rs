//! The dataset step of stateful streams (`update_state_by_key`, `map_with_state`): the next
//! state is computed, partition by partition, from the previous state and the batch's values
//! grouped by key. The previous state is hash-partitioned like the grouped values, so it is read
//! narrowly (from the block store when it is persisted) and never shuffled again; only the
//! batch's values move.

use std::sync::Arc;

use super::shuffle::{Aggregator, HashPartitioner};
use super::{Compute, Rdd, RddNode};
use crate::context::Context;
use crate::error::TaskError;
use crate::graph::{Dep, NarrowMap, PartitionerKind};
use crate::hash::FixedMap;
use crate::task::{self, Sink, TaskContext};
use crate::{Data, Key};

/// The update of one key: its key, its previous record (if any) and its values in this batch
/// (in batch order; empty when the key got none) give its next record, or none to drop it.
pub(crate) type KeyUpdate<K, V, R> = Arc<dyn Fn(&K, Option<R>, Vec<V>) -> Result<Option<R>, TaskError> + Send + Sync>;

struct StateStep<K, V, R> {
    prev: Option<Arc<RddNode<(K, R)>>>,
    batch: Arc<RddNode<(K, Vec<V>)>>,
    update: KeyUpdate<K, V, R>,
}

impl<K: Key, V: Data, R: Data> Compute<(K, R)> for StateStep<K, V, R> {
    fn compute(&self, split: usize, tc: &mut TaskContext<'_>, out: &mut Sink<'_, (K, R)>) -> Result<(), TaskError> {
        let mut batch: FixedMap<K, Vec<V>> = FixedMap::default();
        self.batch.run(split, tc, &mut |chunk: &mut Vec<(K, Vec<V>)>| {
            for (k, mut vs) in chunk.drain(..) {
                batch.entry(k).or_default().append(&mut vs);
            }
            Ok(())
        })?;
        let mut next = Vec::new();
        if let Some(prev) = &self.prev {
            // The previous state first, in its order: its keys are distinct.
            prev.run(split, tc, &mut |chunk: &mut Vec<(K, R)>| {
                for (k, r) in chunk.drain(..) {
                    let values = batch.remove(&k).unwrap_or_default();
                    if let Some(r) = (self.update)(&k, Some(r), values)? {
                        next.push((k, r));
                    }
                }
                Ok(())
            })?;
        }
        // Then the keys new to the state, in the (fixed-hasher) order of the map.
        for (k, values) in batch {
            if let Some(r) = (self.update)(&k, None, values)? {
                next.push((k, r));
            }
        }
        task::push_owned(next, out)
    }
}

/// The next state from `prev` (the previous state, or none before the first batch) and the
/// batch's records, hash-partitioned into `partitions` (not zero). A previous state without
/// that partitioning (an initial state given by the user) is shuffled once, keeping the last
/// record of a repeated key; the batch's records are grouped by key with the same partitioning
/// (shuffled, unless they already have it).
pub(crate) fn state_step<K: Key, V: Data, R: Data>(
    ctx: &Context,
    prev: Option<&Rdd<(K, R)>>,
    batch: &Rdd<(K, V)>,
    partitions: usize,
    update: KeyUpdate<K, V, R>,
) -> Rdd<(K, R)> {
    let kind = PartitionerKind::Hash(partitions);
    let group = Aggregator::new(|v| vec![v], |c: &mut Vec<V>, v| c.push(v), |c: &mut Vec<V>, mut o| c.append(&mut o));
    let grouped = batch.combine_with(Arc::new(group), Arc::new(HashPartitioner(partitions)), false);
    let prev = prev.map(|p| {
        if p.node().partitioner() == Some(kind) {
            p.clone()
        } else {
            p.reduce_by_key_hashed(|_, last| last, partitions)
        }
    });
    let mut deps = Vec::with_capacity(2);
    if let Some(p) = &prev {
        deps.push(Dep::Narrow { parent: p.id(), map: NarrowMap::OneToOne });
    }
    deps.push(Dep::Narrow { parent: grouped.id(), map: NarrowMap::OneToOne });
    let compute =
        StateStep { prev: prev.as_ref().map(|p| Arc::clone(p.node())), batch: Arc::clone(grouped.node()), update };
    Rdd::from_compute(ctx, "state_step", partitions, deps, Some(kind), compute)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Node;
    use crate::StepCluster;

    fn keep_sum() -> KeyUpdate<u32, u32, u32> {
        Arc::new(|_: &u32, prev: Option<u32>, values: Vec<u32>| {
            Ok(Some(prev.unwrap_or(0) + values.iter().sum::<u32>()))
        })
    }

    #[test]
    fn the_previous_state_is_read_narrowly_and_only_the_batch_is_shuffled() {
        let cluster = StepCluster::builder().workers(2).build();
        let ctx = cluster.context();
        let batch = ctx.parallelize(vec![(1u32, 1u32), (2, 2), (1, 3)], 2).unwrap();
        let first = state_step(&ctx, None, &batch, 3, keep_sum()).persist();
        let second = state_step(&ctx, Some(&first), &batch, 3, keep_sum());
        let deps = &second.node().deps();
        assert!(matches!(deps[0], Dep::Narrow { parent, map: NarrowMap::OneToOne } if parent == first.id()));
        assert_eq!(second.node().partitioner(), Some(PartitionerKind::Hash(3)));
        let mut got = second.collect().unwrap();
        got.sort();
        assert_eq!(got, vec![(1, 8), (2, 4)]);
    }

    #[test]
    fn a_state_without_the_partitioning_is_moved_once_keeping_the_last_record() {
        let cluster = StepCluster::builder().workers(2).build();
        let ctx = cluster.context();
        let initial = ctx.parallelize(vec![(1u32, 10u32), (1, 20), (5, 50)], 2).unwrap();
        let batch = ctx.parallelize(vec![(1u32, 1u32)], 1).unwrap();
        let next = state_step(&ctx, Some(&initial), &batch, 2, keep_sum());
        let deps = &next.node().deps();
        assert!(matches!(deps[0], Dep::Narrow { parent, .. } if parent != initial.id()));
        let mut got = next.collect().unwrap();
        got.sort();
        assert_eq!(got, vec![(1, 21), (5, 50)]);
    }
}
