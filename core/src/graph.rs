//! The program's graph: every dataset, shuffle and action, by the id its construction order
//! gave it. Workers look nodes up here to find the code a task descriptor names.
//!
//! The graph holds nodes weakly: a dataset lives as long as a user handle, a child dataset or a
//! running job refers to it. When a persisted dataset or a shuffle is dropped, its id is queued
//! so the driver can tell the workers to release its blocks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::error::{TaskError, TaskErrorKind};
use crate::hash::Digest;
use crate::ids::{ActionId, RddId, ShuffleId};
use crate::message::Payload;
use crate::task::TaskContext;

/// How a child partition depends on its parent's partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dep {
    /// Partition `p` of the child reads a known set of parent partitions (see [`NarrowMap`]).
    Narrow { parent: RddId, map: NarrowMap },
    /// Every child partition reads one bucket from every partition of `parent`.
    Shuffle { shuffle: ShuffleId, parent: RddId },
}

/// Which parent partitions a child partition of a narrow dependency reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NarrowMap {
    /// Child partition `p` reads parent partition `p`.
    OneToOne,
    /// Child partitions `start..start + len` read parent partitions `0..len` (union).
    Slice { start: usize, len: usize },
}

impl NarrowMap {
    /// The parent partition child partition `p` reads, if any.
    pub(crate) fn parent_partition(self, p: usize) -> Option<usize> {
        match self {
            NarrowMap::OneToOne => Some(p),
            NarrowMap::Slice { start, len } => (start..start + len).contains(&p).then(|| p - start),
        }
    }
}

/// Identifies how a dataset is partitioned, so co-partitioned datasets skip a shuffle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum PartitionerKind {
    /// Hash partitioning into `n` partitions.
    Hash(usize),
    /// Range partitioning with bounds computed for one sort, named by the sorted dataset.
    Range(RddId),
}

/// What the scheduler knows about a dataset, without knowing its record type.
#[derive(Clone, Debug)]
pub(crate) struct NodeInfo {
    pub(crate) id: RddId,
    pub(crate) name: &'static str,
    pub(crate) partitions: usize,
    pub(crate) partitioner: Option<PartitionerKind>,
    pub(crate) persisted: bool,
}

/// A dataset node, type-erased.
pub(crate) trait Node: Send + Sync {
    fn info(&self) -> &NodeInfo;
    /// The datasets it is computed from; none once its lineage is cut by a checkpoint.
    fn deps(&self) -> Vec<Dep>;
    /// Encodes a cached partition of this dataset held as a local payload.
    fn encode_block(&self, payload: &Payload) -> Result<Payload, TaskError>;
}

/// The map side of a shuffle, type-erased.
pub(crate) trait ShuffleNode: Send + Sync {
    fn map_rdd(&self) -> RddId;
    /// Computes map partition `map` and returns one bucket per reduce partition, each with its
    /// estimated size in bytes.
    fn run_map(&self, map: usize, tc: &mut TaskContext<'_>) -> Result<Vec<(Payload, u64)>, TaskError>;
    fn encode_bucket(&self, payload: &Payload) -> Result<Payload, TaskError>;
}

/// An action, type-erased.
pub(crate) trait ActionNode: Send + Sync {
    fn rdd(&self) -> RddId;
    /// Runs the action over one partition.
    fn run(&self, partition: usize, tc: &mut TaskContext<'_>) -> Result<Payload, TaskError>;
    fn encode_result(&self, payload: &Payload) -> Result<Payload, TaskError>;
}

/// Resources whose blocks workers may drop: their nodes are gone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Released {
    pub(crate) shuffles: Vec<ShuffleId>,
    pub(crate) rdds: Vec<RddId>,
}

#[derive(Default)]
struct Inner {
    next_rdd: u64,
    next_shuffle: u64,
    next_action: u64,
    rdds: BTreeMap<RddId, Weak<dyn Node>>,
    shuffles: BTreeMap<ShuffleId, Weak<dyn ShuffleNode>>,
    actions: BTreeMap<ActionId, Weak<dyn ActionNode>>,
    released: Released,
    fingerprint: Option<Digest>,
}

/// The registry of a program's datasets, shuffles and actions.
///
/// Shared by the driver and, within one process, by the workers. Processes that run the same
/// program build graphs with the same ids and the same [`Graph::fingerprint`].
pub struct Graph {
    inner: Mutex<Inner>,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Arc<Graph> {
        Arc::new(Graph { inner: Mutex::new(Inner::default()) })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves only plain maps behind, which stay consistent.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A digest of every node registered so far, in order: two processes running the same
    /// program agree on it, a different program almost surely gives another value.
    pub fn fingerprint(&self) -> u64 {
        self.lock().fingerprint.unwrap_or_else(Digest::new).value()
    }

    /// How many datasets are alive in the graph.
    pub fn live_rdds(&self) -> usize {
        self.lock().rdds.values().filter(|w| w.strong_count() > 0).count()
    }

    pub(crate) fn next_rdd_id(&self) -> RddId {
        let mut g = self.lock();
        g.next_rdd += 1;
        RddId(g.next_rdd - 1)
    }

    pub(crate) fn next_shuffle_id(&self) -> ShuffleId {
        let mut g = self.lock();
        g.next_shuffle += 1;
        ShuffleId(g.next_shuffle - 1)
    }

    pub(crate) fn next_action_id(&self) -> ActionId {
        let mut g = self.lock();
        g.next_action += 1;
        ActionId(g.next_action - 1)
    }

    pub(crate) fn register_rdd(&self, node: &Arc<dyn Node>, type_name: &str) {
        let info = node.info();
        let mut g = self.lock();
        let mut d = g.fingerprint.unwrap_or_else(Digest::new).add(info.id.0).add_str(info.name).add_str(type_name);
        d = d.add(info.partitions as u64).add(u64::from(info.persisted));
        for dep in &node.deps() {
            d = match dep {
                Dep::Narrow { parent, .. } => d.add(1).add(parent.0),
                Dep::Shuffle { shuffle, parent } => d.add(2).add(shuffle.0).add(parent.0),
            };
        }
        g.fingerprint = Some(d);
        g.rdds.insert(info.id, Arc::downgrade(node));
    }

    pub(crate) fn register_shuffle(&self, id: ShuffleId, node: &Arc<dyn ShuffleNode>) {
        self.lock().shuffles.insert(id, Arc::downgrade(node));
    }

    pub(crate) fn register_action(&self, id: ActionId, node: &Arc<dyn ActionNode>) {
        let mut g = self.lock();
        g.actions.retain(|_, w| w.strong_count() > 0);
        g.actions.insert(id, Arc::downgrade(node));
    }

    pub(crate) fn rdd(&self, id: RddId) -> Result<Arc<dyn Node>, TaskError> {
        self.lock().rdds.get(&id).and_then(Weak::upgrade).ok_or_else(|| unknown(&id))
    }

    pub(crate) fn shuffle(&self, id: ShuffleId) -> Result<Arc<dyn ShuffleNode>, TaskError> {
        self.lock().shuffles.get(&id).and_then(Weak::upgrade).ok_or_else(|| unknown(&id))
    }

    pub(crate) fn action(&self, id: ActionId) -> Result<Arc<dyn ActionNode>, TaskError> {
        self.lock().actions.get(&id).and_then(Weak::upgrade).ok_or_else(|| unknown(&id))
    }

    /// Called when a dataset node is dropped.
    pub(crate) fn forget_rdd(&self, id: RddId, persisted: bool) {
        let mut g = self.lock();
        g.rdds.remove(&id);
        if persisted {
            g.released.rdds.push(id);
        }
    }

    /// Releases the cached blocks of a persisted dataset that stays in the graph (a child's
    /// lineage holds it): the workers drop them, and a task that needs them again recomputes
    /// and caches them.
    pub(crate) fn release_rdd_blocks(&self, id: RddId) {
        self.lock().released.rdds.push(id);
    }

    /// Called when a shuffle's node is dropped.
    pub(crate) fn forget_shuffle(&self, id: ShuffleId) {
        let mut g = self.lock();
        g.shuffles.remove(&id);
        g.released.shuffles.push(id);
    }

    /// Takes the resources released since the last call.
    pub(crate) fn take_released(&self) -> Released {
        std::mem::take(&mut self.lock().released)
    }
}

fn unknown(id: &dyn std::fmt::Display) -> TaskError {
    TaskError::new(TaskErrorKind::UnknownNode, format!("{id} is not in this process's graph"))
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.lock();
        f.debug_struct("Graph")
            .field("rdds", &g.rdds.len())
            .field("shuffles", &g.shuffles.len())
            .field("fingerprint", &g.fingerprint.unwrap_or_else(Digest::new).value())
            .finish()
    }
}
