//! The program's graph: every dataset, shuffle and action, by the id its scope and construction
//! order gave it (see [`crate::ids::Scope`]). Workers look nodes up here to find the code a
//! task descriptor names.
//!
//! The graph holds nodes weakly: a dataset lives as long as a user handle, a child dataset or a
//! running job refers to it. When a persisted dataset or a shuffle is dropped, its id is queued
//! so the driver can tell the workers to release its blocks.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::ThreadId;

use serde::{Deserialize, Serialize};

use crate::error::{TaskError, TaskErrorKind};
use crate::hash::Digest;
use crate::ids::{ActionId, BlockId, RddId, Scope, ShuffleId, StreamId};
use crate::message::{Builtin, Partitioning, Payload};
use crate::replica::{Held, Replica};
use crate::task::TaskContext;
use crate::time::Time;

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

impl PartitionerKind {
    /// The partitioner `p` describes, if any.
    pub(crate) fn from_partitioning(p: Partitioning) -> Option<PartitionerKind> {
        match p {
            Partitioning::Unknown => None,
            Partitioning::Hash(n) => Some(PartitionerKind::Hash(n as usize)),
            Partitioning::Range(rdd) => Some(PartitionerKind::Range(rdd)),
        }
    }

    /// How `p` places records, as a fact tells it.
    pub(crate) fn partitioning(p: Option<PartitionerKind>) -> Partitioning {
        match p {
            None => Partitioning::Unknown,
            Some(PartitionerKind::Hash(n)) => Partitioning::Hash(u32::try_from(n).unwrap_or(u32::MAX)),
            Some(PartitionerKind::Range(rdd)) => Partitioning::Range(rdd),
        }
    }
}

/// What the scheduler knows about a dataset, without knowing its record type.
#[derive(Clone, Debug)]
pub(crate) struct NodeInfo {
    pub(crate) id: RddId,
    pub(crate) name: &'static str,
    pub(crate) partitions: usize,
    pub(crate) partitioner: Option<PartitionerKind>,
    pub(crate) persisted: bool,
    /// For an input stream's batch: the blocks each partition reads, held by the workers the
    /// driver placed them on.
    pub(crate) input: Option<Arc<BatchBlocks>>,
}

/// A dataset node, type-erased.
pub(crate) trait Node: Send + Sync {
    fn info(&self) -> &NodeInfo;
    /// The datasets it is computed from; none once its lineage is cut by a checkpoint.
    fn deps(&self) -> Vec<Dep>;
    /// Encodes a cached partition of this dataset held as a local payload.
    fn encode_block(&self, payload: &Payload) -> Result<Payload, TaskError>;
    /// Runs a built-in action over partition `split` (see [`Builtin`]), encoding the result
    /// when `encode` says so.
    fn run_builtin(
        &self,
        builtin: Builtin,
        split: usize,
        tc: &mut TaskContext<'_>,
        encode: bool,
    ) -> Result<Payload, TaskError>;
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
    /// Input batches (stream, batch time) nothing reads any more.
    pub(crate) inputs: Vec<(StreamId, Time)>,
    /// Input blocks nothing reads any more: those of the released batches, and those stored
    /// for a batch that will never be generated.
    pub(crate) input_blocks: Vec<BlockId>,
}

/// The input blocks of one input stream's batch: partition `p` reads `partitions[p]`, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BatchBlocks {
    pub(crate) stream: StreamId,
    pub(crate) time: Time,
    pub(crate) partitions: Vec<Vec<BlockId>>,
    /// A view over blocks that a batch's own dataset holds (a partition computed ahead of its
    /// batch, see `stream/early.rs`): dropping it releases nothing.
    pub(crate) view: bool,
}

/// Numbers handed out in one scope so far.
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    rdds: u32,
    shuffles: u32,
    actions: u32,
}

/// A scope entered by a thread, with the numbers handed out in it so far.
struct Frame {
    scope: Scope,
    next: Counters,
}

/// A part of the program described outside the graph's own nodes: a streaming context's
/// stream graph and outputs.
pub(crate) trait ProgramPart: Send + Sync {
    /// One line per node, in construction order.
    fn describe(&self) -> Vec<String>;
}

#[derive(Default)]
struct Inner {
    /// Numbers of the program's static nodes.
    program: Counters,
    /// Numbers of what the driver makes after the program was built.
    driver: Counters,
    /// Whether the program is built: nodes made outside a scope from now on are the driver's.
    sealed: bool,
    /// The scopes each thread is in, innermost last.
    frames: HashMap<ThreadId, Vec<Frame>>,
    rdds: BTreeMap<RddId, Weak<dyn Node>>,
    shuffles: BTreeMap<ShuffleId, Weak<dyn ShuffleNode>>,
    actions: BTreeMap<ActionId, Weak<dyn ActionNode>>,
    released: Released,
    /// The blocks of every live input batch dataset of the driver, partition by partition,
    /// each with its record count, by stream and batch time: what a lost block is restored
    /// from in the input log (which keeps each partition as one run of records).
    input_batches: BTreeMap<(StreamId, Time), Vec<Vec<(BlockId, u64)>>>,
    /// One line per static dataset of the program, in construction order.
    described: Vec<String>,
    parts: Vec<Weak<dyn ProgramPart>>,
}

impl Inner {
    /// The counters of the scope a node made now by the calling thread belongs to.
    fn counters(&mut self) -> (Scope, &mut Counters) {
        let sealed = self.sealed;
        match self.frames.get_mut(&std::thread::current().id()).and_then(|f| f.last_mut()) {
            Some(frame) => (frame.scope, &mut frame.next),
            None if sealed => (Scope::Driver, &mut self.driver),
            None => (Scope::Program, &mut self.program),
        }
    }
}

/// What a program is, as a process that runs it sees it: one line per static dataset, stream
/// and output, in construction order, and their digest. Workers send it when they register,
/// so the driver refuses a worker that runs another program and says what differs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramSummary {
    /// The digest of `nodes`.
    pub fingerprint: u64,
    /// One line per node.
    pub nodes: Vec<String>,
}

impl ProgramSummary {
    /// The summary of `nodes`.
    pub fn new(nodes: Vec<String>) -> ProgramSummary {
        let fingerprint = nodes.iter().fold(Digest::new(), |d, n| d.add_str(n)).value();
        ProgramSummary { fingerprint, nodes }
    }

    /// What differs between this program and `other`, in words, or `None` if they are the
    /// same.
    ///
    /// ```
    /// use dstream::ProgramSummary;
    /// let a = ProgramSummary::new(vec!["stream0 input".into(), "stream1 window length=4s".into()]);
    /// let b = ProgramSummary::new(vec!["stream0 input".into(), "stream1 window length=2s".into()]);
    /// assert_eq!(a.difference(&a), None);
    /// let d = a.difference(&b).unwrap();
    /// assert!(d.contains("length=4s") && d.contains("length=2s"), "{d}");
    /// ```
    pub fn difference(&self, other: &ProgramSummary) -> Option<String> {
        let Some((i, here, there)) = self.first_difference(&other.nodes) else {
            return (self.fingerprint != other.fingerprint).then(|| {
                format!("the fingerprints differ ({:016x} here, {:016x} there)", self.fingerprint, other.fingerprint)
            });
        };
        let side = |line: Option<&str>, n: usize| {
            line.map_or_else(|| format!("ends after {n} nodes"), |l| format!("is `{l}`"))
        };
        Some(format!("node {i} {} here and {} there", side(here, self.nodes.len()), side(there, other.nodes.len())))
    }

    /// Where this program and the one described by `theirs` first differ: the node's index and
    /// each side's line there (`None` past its end), or `None` if every line is the same.
    pub fn first_difference<'a>(&'a self, theirs: &'a [String]) -> Option<(usize, Option<&'a str>, Option<&'a str>)> {
        let i = self.nodes.iter().zip(theirs).position(|(a, b)| a != b).unwrap_or(self.nodes.len().min(theirs.len()));
        if i == self.nodes.len() && i == theirs.len() {
            return None;
        }
        Some((i, self.nodes.get(i).map(String::as_str), theirs.get(i).map(String::as_str)))
    }
}

/// Leaves a scope when dropped (see [`Graph::enter`]).
pub(crate) struct ScopeGuard<'a> {
    graph: &'a Graph,
    thread: ThreadId,
    depth: usize,
}

impl Drop for ScopeGuard<'_> {
    fn drop(&mut self) {
        let mut g = self.graph.lock();
        if let Some(frames) = g.frames.get_mut(&self.thread) {
            debug_assert_eq!(frames.len(), self.depth, "scopes left out of order");
            frames.truncate(self.depth - 1);
            if frames.is_empty() {
                g.frames.remove(&self.thread);
            }
        }
    }
}

/// The registry of a program's datasets, shuffles and actions.
///
/// Shared by the driver and, within one process, by the workers. Processes that run the same
/// program build graphs with the same ids and the same [`Graph::fingerprint`].
pub struct Graph {
    inner: Mutex<Inner>,
    /// Set in the graph of a worker that runs the program itself (see [`Graph::for_worker`]).
    replica: Option<Replica>,
}

impl Graph {
    /// An empty graph, for a driver (and the workers sharing its memory).
    pub fn new() -> Arc<Graph> {
        Arc::new(Graph { inner: Mutex::new(Inner::default()), replica: None })
    }

    /// An empty graph for a worker that builds the program by running it, as a worker in
    /// another process does: a task naming a dataset a batch generates makes the graph
    /// generate that batch from the program's streams, and the datasets it derives are not
    /// reported to any driver (this graph has none).
    pub fn for_worker() -> Arc<Graph> {
        Arc::new(Graph { inner: Mutex::new(Inner::default()), replica: Some(Replica::default()) })
    }

    /// The replay state of a worker's own graph; `None` in a driver's graph.
    pub(crate) fn replica(&self) -> Option<&Replica> {
        self.replica.as_ref()
    }

    /// Rebuilds what `scope` numbers, when this graph can (a worker's own graph, and a batch's
    /// or a checkpoint's scope).
    fn replay(&self, scope: Scope) -> Result<(), TaskError> {
        self.replica.as_ref().map_or(Ok(()), |replica| replica.rebuild(scope))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves only plain maps behind, which stay consistent.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The program as built so far: its static datasets, streams and outputs. The same in every
    /// run of the program and at every batch: what batches generate is not part of it.
    pub fn program(&self) -> ProgramSummary {
        let (mut nodes, parts) = {
            let g = self.lock();
            (g.described.clone(), g.parts.clone())
        };
        for part in parts.iter().filter_map(Weak::upgrade) {
            nodes.extend(part.describe());
        }
        ProgramSummary::new(nodes)
    }

    /// The digest of [`Graph::program`]: two processes running the same program agree on it,
    /// a different program almost surely gives another value.
    pub fn fingerprint(&self) -> u64 {
        self.program().fingerprint
    }

    /// How many datasets are alive in the graph.
    pub fn live_rdds(&self) -> usize {
        self.lock().rdds.values().filter(|w| w.strong_count() > 0).count()
    }

    /// Makes every node the calling thread makes until the guard drops part of `scope`,
    /// numbered from zero within it. Scopes nest: a stream asking its parent for a batch
    /// enters the parent's scope while the parent generates.
    pub(crate) fn enter(&self, scope: Scope) -> ScopeGuard<'_> {
        let thread = std::thread::current().id();
        let mut g = self.lock();
        let frames = g.frames.entry(thread).or_default();
        frames.push(Frame { scope, next: Counters::default() });
        ScopeGuard { graph: self, thread, depth: frames.len() }
    }

    /// Marks the program as built: nodes made outside any scope from now on belong to the
    /// driver ([`Scope::Driver`]), not to the program.
    pub(crate) fn seal(&self) {
        self.lock().sealed = true;
    }

    /// Adds a part of the program that describes itself (a streaming context).
    pub(crate) fn add_program_part(&self, part: Weak<dyn ProgramPart>) {
        let mut g = self.lock();
        g.parts.retain(|p| p.strong_count() > 0);
        g.parts.push(part);
    }

    pub(crate) fn next_rdd_id(&self) -> RddId {
        let mut g = self.lock();
        let (scope, c) = g.counters();
        c.rdds += 1;
        RddId { scope, index: c.rdds - 1 }
    }

    pub(crate) fn next_shuffle_id(&self) -> ShuffleId {
        let mut g = self.lock();
        let (scope, c) = g.counters();
        c.shuffles += 1;
        ShuffleId { scope, index: c.shuffles - 1 }
    }

    pub(crate) fn next_action_id(&self) -> ActionId {
        let mut g = self.lock();
        let (scope, c) = g.counters();
        c.actions += 1;
        ActionId { scope, index: c.actions - 1 }
    }

    pub(crate) fn register_rdd(&self, node: &Arc<dyn Node>, type_name: &str) {
        let info = node.info();
        if let Some(replica) = &self.replica {
            replica.record(Held::Rdd(Arc::clone(node)));
        }
        let mut g = self.lock();
        let taken = g.rdds.get(&info.id).is_some_and(|w| w.strong_count() > 0);
        // A worker replaying a batch again (after a replay that stopped at a job) makes the
        // same nodes again, by design; elsewhere it is a bug.
        debug_assert!(
            !taken || self.replica.is_some(),
            "{} registered twice: a scope generated the same batch twice",
            info.id
        );
        if taken && self.replica.is_none() {
            tracing::error!(rdd = %info.id, "a dataset id was registered twice; the newer node replaces the older");
        }
        if info.id.scope == Scope::Program {
            let mut line = format!("{} {}<{type_name}> partitions={}", info.id, info.name, info.partitions);
            if info.persisted {
                line.push_str(" persisted");
            }
            for dep in &node.deps() {
                match dep {
                    Dep::Narrow { parent, map } => line.push_str(&format!(" narrow({parent}, {map:?})")),
                    Dep::Shuffle { shuffle, parent } => line.push_str(&format!(" shuffle({shuffle}, {parent})")),
                }
            }
            g.described.push(line);
        }
        g.rdds.insert(info.id, Arc::downgrade(node));
    }

    /// Records the blocks of `stream`'s input batch at `time`, partition by partition, with
    /// their record counts, until its dataset is dropped. A worker's own graph keeps none.
    pub(crate) fn note_input_batch(&self, stream: StreamId, time: Time, layout: Vec<Vec<(BlockId, u64)>>) {
        if self.replica.is_none() {
            self.lock().input_batches.insert((stream, time), layout);
        }
    }

    /// Where `block` of `stream`'s input batch at `time` lies in the batch: its partition,
    /// and the records of that partition it holds (from, count).
    pub(crate) fn input_block_span(&self, stream: StreamId, time: Time, block: BlockId) -> Option<(usize, u64, u64)> {
        let g = self.lock();
        let layout = g.input_batches.get(&(stream, time))?;
        layout.iter().enumerate().find_map(|(p, blocks)| {
            let i = blocks.iter().position(|(b, _)| *b == block)?;
            let from = blocks[..i].iter().map(|(_, n)| n).sum();
            Some((p, from, blocks[i].1))
        })
    }

    pub(crate) fn register_shuffle(&self, id: ShuffleId, node: &Arc<dyn ShuffleNode>) {
        if let Some(replica) = &self.replica {
            replica.record(Held::Shuffle(Arc::clone(node)));
        }
        self.lock().shuffles.insert(id, Arc::downgrade(node));
    }

    pub(crate) fn register_action(&self, id: ActionId, node: &Arc<dyn ActionNode>) {
        let mut g = self.lock();
        g.actions.retain(|_, w| w.strong_count() > 0);
        g.actions.insert(id, Arc::downgrade(node));
    }

    pub(crate) fn rdd(&self, id: RddId) -> Result<Arc<dyn Node>, TaskError> {
        let find = || self.lock().rdds.get(&id).and_then(Weak::upgrade);
        if let Some(node) = find() {
            return Ok(node);
        }
        self.replay(id.scope)?;
        find().ok_or_else(|| unknown(&id, id.scope))
    }

    pub(crate) fn shuffle(&self, id: ShuffleId) -> Result<Arc<dyn ShuffleNode>, TaskError> {
        let find = || self.lock().shuffles.get(&id).and_then(Weak::upgrade);
        if let Some(node) = find() {
            return Ok(node);
        }
        self.replay(id.scope)?;
        find().ok_or_else(|| unknown(&id, id.scope))
    }

    pub(crate) fn action(&self, id: ActionId) -> Result<Arc<dyn ActionNode>, TaskError> {
        if let Some(action) = self.lock().actions.get(&id).and_then(Weak::upgrade) {
            return Ok(action);
        }
        // A worker's own graph makes the one kind of action it can: a checkpoint's write.
        if let Some(replica) = &self.replica {
            if let Some(write) = replica.checkpoint_write(id)? {
                return Ok(write);
            }
        }
        Err(unknown(&id, id.scope))
    }

    /// Called when a dataset node is dropped.
    pub(crate) fn forget_rdd(&self, id: RddId, persisted: bool, input: Option<&BatchBlocks>) {
        let mut g = self.lock();
        // A newer node with the same id (see `register_rdd`) stays.
        if g.rdds.get(&id).is_some_and(|w| w.strong_count() == 0) {
            g.rdds.remove(&id);
        }
        // Only a driver releases blocks: a worker's own graph has nobody to tell.
        if self.replica.is_none() {
            if let Some(batch) = input.filter(|b| !b.view) {
                g.input_batches.remove(&(batch.stream, batch.time));
                g.released.inputs.push((batch.stream, batch.time));
                g.released.input_blocks.extend(batch.partitions.iter().flatten());
            }
            if persisted {
                g.released.rdds.push(id);
            }
        }
    }

    /// Releases the cached blocks of a persisted dataset that stays in the graph (a child's
    /// lineage holds it): the workers drop them, and a task that needs them again recomputes
    /// and caches them.
    pub(crate) fn release_rdd_blocks(&self, id: RddId) {
        if self.replica.is_none() {
            self.lock().released.rdds.push(id);
        }
    }

    /// Called when a shuffle's node is dropped.
    pub(crate) fn forget_shuffle(&self, id: ShuffleId) {
        let mut g = self.lock();
        g.shuffles.remove(&id);
        if self.replica.is_none() {
            g.released.shuffles.push(id);
        }
    }

    /// Releases input blocks stored for batches that will never be generated (a push refused
    /// after its block was stored, the buffer of a stopped input). A worker's own graph stores
    /// none.
    pub(crate) fn release_input_blocks(&self, blocks: impl IntoIterator<Item = BlockId>) {
        if self.replica.is_none() {
            self.lock().released.input_blocks.extend(blocks);
        }
    }

    /// Takes the resources released since the last call.
    pub(crate) fn take_released(&self) -> Released {
        std::mem::take(&mut self.lock().released)
    }
}

fn unknown(id: &dyn std::fmt::Display, scope: Scope) -> TaskError {
    TaskError::new(
        TaskErrorKind::UnknownNode,
        format!("{id} is not in this process's graph: {}", scope.unknown_cause()),
    )
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.lock();
        f.debug_struct("Graph")
            .field("rdds", &g.rdds.len())
            .field("shuffles", &g.shuffles.len())
            .field("program", &g.described.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::StreamId;

    #[test]
    fn an_unknown_id_is_a_typed_error_naming_the_id_and_the_likely_cause() {
        let graph = Graph::new();
        let at = Time::from_millis(2_000);
        // (id's scope, words the cause must contain)
        let table: &[(Scope, &str)] = &[
            (Scope::Program, "another program"),
            (Scope::Batch { stream: StreamId(3), time: at }, "has not generated this batch"),
            (Scope::Output { output: 1, time: at }, "inside an output operation"),
            (Scope::Checkpoint { stream: StreamId(3), time: at }, "checkpoint"),
            (Scope::Driver, "ad-hoc query"),
        ];
        for (scope, cause) in table {
            let rdd = RddId { scope: *scope, index: 7 };
            let Err(e) = graph.rdd(rdd) else { panic!("{rdd} resolved in an empty graph") };
            assert_eq!(e.kind, TaskErrorKind::UnknownNode);
            assert!(e.message.contains(&rdd.to_string()) && e.message.contains(cause), "{scope:?}: {}", e.message);
            let Err(e) = graph.shuffle(ShuffleId { scope: *scope, index: 0 }) else { panic!() };
            assert!(e.message.contains(cause), "{}", e.message);
            let Err(e) = graph.action(ActionId { scope: *scope, index: 0 }) else { panic!() };
            assert!(e.message.contains(cause), "{}", e.message);
        }
        assert_eq!(
            RddId { scope: Scope::Batch { stream: StreamId(3), time: at }, index: 7 }.to_string(),
            "stream3@2.000s/rdd7"
        );
    }

    #[test]
    fn scopes_number_from_zero_nest_and_leave_in_order() {
        let graph = Graph::new();
        assert_eq!(graph.next_rdd_id(), RddId::program(0));
        let outer = Scope::Batch { stream: StreamId(1), time: Time::from_millis(1_000) };
        let inner = Scope::Batch { stream: StreamId(0), time: Time::from_millis(1_000) };
        {
            let _o = graph.enter(outer);
            assert_eq!(graph.next_rdd_id(), RddId { scope: outer, index: 0 });
            {
                let _i = graph.enter(inner);
                assert_eq!(graph.next_rdd_id(), RddId { scope: inner, index: 0 });
                assert_eq!(graph.next_shuffle_id(), ShuffleId { scope: inner, index: 0 });
            }
            assert_eq!(graph.next_rdd_id(), RddId { scope: outer, index: 1 }, "the outer count goes on");
            // Another thread is in no scope: its nodes are the program's.
            let g = Arc::clone(&graph);
            let other = crate::runtime::spawn("scope-test", move || g.next_rdd_id()).unwrap().join().unwrap();
            assert_eq!(other, RddId::program(1));
        }
        assert_eq!(graph.next_rdd_id(), RddId::program(2));
        graph.seal();
        assert_eq!(graph.next_action_id(), ActionId { scope: Scope::Driver, index: 0 });
    }
}
