//! Planning helpers of the driver: which shuffles a stage waits for, which blocks a task reads,
//! and where a task runs.

use std::collections::{BTreeMap, BTreeSet};

use super::blocks::InputBlocks;
use crate::graph::{Dep, Graph};
use crate::ids::{BlockId, RddId, Scope, ShuffleId, StreamId, WorkerId};
use crate::message::TaskInput;
use crate::time::Time;

/// A block that a task needs is not available.
#[derive(Debug)]
pub(super) enum Missing {
    /// A shuffle output: its map stage must run (again).
    Shuffle,
    /// Every replica of an input block of the batch at the given time: it cannot be recomputed.
    Input(BlockId, Time),
}

/// What the driver knows about where blocks live.
pub(super) struct Held<'a> {
    pub(super) cached: &'a BTreeMap<(RddId, u32), BTreeSet<WorkerId>>,
    pub(super) map_outputs: &'a BTreeMap<ShuffleId, Vec<Option<WorkerId>>>,
    pub(super) inputs: &'a InputBlocks,
}

/// Whether every partition of a persisted dataset is cached somewhere.
fn fully_cached(cached: &BTreeMap<(RddId, u32), BTreeSet<WorkerId>>, rdd: RddId, partitions: usize) -> bool {
    (0..partitions as u32).all(|p| cached.get(&(rdd, p)).is_some_and(|w| !w.is_empty()))
}

/// The streams whose batch datasets a stage computing `rdd` computes: the `Batch` scopes along
/// its narrow lineage (up to the shuffles it reads).
pub(super) fn lineage_streams(graph: &Graph, rdd: RddId) -> BTreeSet<StreamId> {
    let mut streams = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut stack = vec![rdd];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        if let Scope::Batch { stream, .. } = id.scope {
            streams.insert(stream);
        }
        let Ok(node) = graph.rdd(id) else { continue };
        for dep in &node.deps() {
            if let Dep::Narrow { parent, .. } = *dep {
                stack.push(parent);
            }
        }
    }
    streams
}

/// The shuffles a stage computing `rdd` reads, found by following narrow dependencies and
/// stopping at fully cached datasets. Sorted, without duplicates.
pub(super) fn parent_shuffles(
    graph: &Graph,
    cached: &BTreeMap<(RddId, u32), BTreeSet<WorkerId>>,
    rdd: RddId,
) -> Vec<ShuffleId> {
    let mut found = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut stack = vec![rdd];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        let Ok(node) = graph.rdd(id) else { continue };
        let info = node.info();
        if info.persisted && fully_cached(cached, id, info.partitions) {
            continue;
        }
        for dep in &node.deps() {
            match *dep {
                Dep::Narrow { parent, .. } => stack.push(parent),
                Dep::Shuffle { shuffle, .. } => {
                    found.insert(shuffle);
                }
            }
        }
    }
    found.into_iter().collect()
}

/// The blocks the task for partition `partition` of `rdd` reads: cached partitions of persisted
/// datasets on its narrow lineage, input blocks of the input batches it reaches, and the
/// shuffle buckets at the lineage's shuffle boundaries.
pub(super) fn task_inputs(
    graph: &Graph,
    held: &Held<'_>,
    rdd: RddId,
    partition: u32,
) -> Result<Vec<TaskInput>, Missing> {
    let Held { cached, map_outputs, inputs: input_blocks } = *held;
    let mut inputs = Vec::new();
    let mut stack = vec![(rdd, partition)];
    let mut seen = BTreeSet::new();
    while let Some((id, p)) = stack.pop() {
        if !seen.insert((id, p)) {
            continue;
        }
        let Ok(node) = graph.rdd(id) else { continue };
        let info = node.info();
        if let Some(batch) = &info.input {
            for &block in batch.partitions.get(p as usize).map_or(&[][..], Vec::as_slice) {
                let holders = input_blocks.locations(block).ok_or(Missing::Input(block, batch.time))?;
                inputs.push(TaskInput { block, locations: holders.iter().copied().collect() });
            }
            continue;
        }
        if info.persisted {
            if let Some(holders) = cached.get(&(id, p)).filter(|h| !h.is_empty()) {
                let block = BlockId::Rdd { rdd: id, partition: p };
                inputs.push(TaskInput { block, locations: holders.iter().copied().collect() });
                continue;
            }
        }
        for dep in node.deps().iter().rev() {
            match *dep {
                Dep::Narrow { parent, map } => {
                    if let Some(pp) = map.parent_partition(p as usize) {
                        stack.push((parent, pp as u32));
                    }
                }
                Dep::Shuffle { shuffle, .. } => {
                    let outputs = map_outputs.get(&shuffle).ok_or(Missing::Shuffle)?;
                    for (m, holder) in outputs.iter().enumerate() {
                        let holder = holder.ok_or(Missing::Shuffle)?;
                        let block = BlockId::Shuffle { shuffle, map: m as u32, reduce: p };
                        inputs.push(TaskInput { block, locations: vec![holder] });
                    }
                }
            }
        }
    }
    Ok(inputs)
}

/// The worker a task runs on: among workers with a free slot (`free`: id and free slots, in id
/// order), the one holding the most of its input blocks; without locality, the one with the most
/// free slots, ties broken by the partition number so partitions spread over workers.
pub(super) fn choose_worker(free: &[(WorkerId, u32)], inputs: &[TaskInput], partition: u32) -> Option<WorkerId> {
    if free.is_empty() {
        return None;
    }
    let local = |w: WorkerId| inputs.iter().filter(|i| i.locations.contains(&w)).count();
    let best_local = free.iter().map(|(w, _)| local(*w)).max().unwrap_or(0);
    let most_free = free.iter().map(|(_, s)| *s).max().unwrap_or(0);
    let candidates: Vec<WorkerId> = free
        .iter()
        .filter(|(w, s)| if best_local > 0 { local(*w) == best_local } else { *s == most_free })
        .map(|(w, _)| *w)
        .collect();
    candidates.get(partition as usize % candidates.len()).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(block: u32, at: &[u32]) -> TaskInput {
        TaskInput {
            block: BlockId::Rdd { rdd: RddId::program(0), partition: block },
            locations: at.iter().map(|w| WorkerId(*w)).collect(),
        }
    }

    #[test]
    fn choose_worker_table() {
        let w = WorkerId;
        let cases: Vec<(Vec<(WorkerId, u32)>, Vec<TaskInput>, u32, Option<WorkerId>)> = vec![
            (vec![], vec![], 0, None),
            (vec![(w(0), 1), (w(1), 1)], vec![], 0, Some(w(0))),
            (vec![(w(0), 1), (w(1), 1)], vec![], 1, Some(w(1))),
            (vec![(w(0), 1), (w(1), 2)], vec![], 0, Some(w(1))),
            (vec![(w(0), 1), (w(1), 1)], vec![input(0, &[1])], 0, Some(w(1))),
            (vec![(w(0), 1), (w(1), 1)], vec![input(0, &[1]), input(1, &[0]), input(2, &[0])], 0, Some(w(0))),
            (vec![(w(0), 1)], vec![input(0, &[3])], 5, Some(w(0))),
        ];
        for (free, inputs, partition, expected) in cases {
            assert_eq!(choose_worker(&free, &inputs, partition), expected, "free={free:?} partition={partition}");
        }
    }
}
