//! Partitions computed ahead: the narrow part of a batch runs on each input partition as soon
//! as the partition is complete, while the batch is still filling, instead of on all of them
//! at the batch's close.
//!
//! An input's batch has one partition per block interval that received records (split at
//! 64 MiB of records), and which blocks a partition has is known before the batch closes: a
//! partition is complete once a push is stamped in a later block interval, or would overflow
//! it. The input's [`Tracker`] follows its pushes in the order the close will take them and
//! hands each complete partition to the context's [`AheadRun`]. Its threads compute, for every
//! *frontier* stream over that input (the last stream of a chain of per-partition operators,
//! `map`, `filter`, `map_partitions`, ..., through unions, whose dataset something else reads:
//! a shuffle, a window, an output), that stream's partition, by a job over a dataset that reads
//! the partition's blocks where they are stored ([`Context::early_input`]), and keep the result
//! in the [`AheadMemo`], keyed by the frontier stream, the partition's index and its blocks.
//!
//! When the batch closes, the frontier's dataset is generated as always and wrapped
//! ([`ReadAhead`]): a partition whose key is in the memo is read from there, any other is
//! computed from its lineage. A partition is the same records (the same blocks, in order)
//! under the same functions with the same index, so the result is the one the batch would
//! compute: results stay identical, batch by batch. A guess that turns out wrong (a push
//! failed, a union's earlier members had another partition count) only means the partition is
//! computed at the close. The batch's generation waits for the partitions of its batch still
//! being computed ahead, so nothing is computed twice.
//!
//! It runs only where every worker shares the driver's graph in one process and jobs may run
//! on threads of their own ([`JobRunner::early_parallelism`](crate::JobRunner)): the in-process
//! cluster. Elsewhere (a stepped cluster, worker processes) nothing changes. The last partition
//! of a batch is complete only at the close, so what is left for the close is at most one
//! block interval of each input, plus the stages after the frontier.

use std::any::Any;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, TaskError};
use crate::graph::{Dep, Graph, NarrowMap, Node};
use crate::hash::FixedMap;
use crate::ids::{BlockId, RddId, StreamId};
use crate::rdd::{Compute, Pieces, Rdd, RddNode};
use crate::task::{self, Sink, TaskContext};
use crate::time::Time;
use crate::Data;

use super::{duration_nanos, lock, StreamNode, StreamNodeDyn, StreamingContext};

/// The most partitions computed ahead that are kept or being computed at once; past it a
/// partition waits for its batch's close.
const ENTRIES_MAX: usize = 1024;

/// The most estimated bytes of results computed ahead kept at once; a result past it is
/// dropped and its partition computed at the close.
const BYTES_MAX: u64 = 1 << 30;

/// The most complete partitions queued for the threads; past it a partition waits for its
/// batch's close.
const QUEUE_MAX: usize = 256;

/// Partitions whose batch's narrow part was computed ahead of the batch's close
/// ([`StreamingContext::partitions_ahead`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartitionsAhead {
    /// Partitions computed ahead.
    pub computed: u64,
    /// Of those, the ones a batch read (the others were left when a guess of their index
    /// proved wrong, or when the context stopped).
    pub read: u64,
}

/// A partition of a frontier stream's batch dataset: the stream, the partition's index, and the
/// input blocks it reads, in order (unique to one input batch).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct AheadKey {
    pub(crate) stream: StreamId,
    pub(crate) index: usize,
    pub(crate) blocks: Vec<BlockId>,
}

enum Slot {
    Running,
    /// The result and its estimated bytes.
    Ready(Arc<dyn Any + Send + Sync>, u64),
}

struct Entry {
    batch: Time,
    slot: Slot,
}

#[derive(Default)]
struct MemoState {
    entries: FixedMap<AheadKey, Entry>,
    /// Batches up to this time are generated: nothing more is computed ahead for them.
    generated: Time,
    stopped: bool,
    /// The estimated bytes of the results kept, at most `BYTES_MAX`.
    bytes: u64,
    /// Partitions computed ahead so far.
    computed: u64,
    /// Partitions read from what was computed ahead, so far.
    used: u64,
}

/// The partitions computed ahead of their batch, until the batch's tasks read them.
#[derive(Default)]
pub(crate) struct AheadMemo {
    state: Mutex<MemoState>,
    /// Notified whenever a running entry ends.
    ended: Condvar,
}

impl AheadMemo {
    /// Claims `key` of `batch` for computing; false when it is not worth it any more (its batch
    /// is generated, the memo is full or stopped) or someone else has it.
    fn begin(&self, key: &AheadKey, batch: Time) -> bool {
        let mut s = lock(&self.state);
        if s.stopped || batch <= s.generated || s.entries.len() >= ENTRIES_MAX || s.entries.contains_key(key) {
            return false;
        }
        s.entries.insert(key.clone(), Entry { batch, slot: Slot::Running });
        true
    }

    /// Ends the computation of `key`: its result with its estimated bytes, or none if it
    /// failed.
    fn finish(&self, key: &AheadKey, result: Option<(Arc<dyn Any + Send + Sync>, u64)>) {
        let mut s = lock(&self.state);
        let running = s.entries.get(key).is_some_and(|e| matches!(e.slot, Slot::Running));
        // Claims end only here, once each, and nothing else removes a running one; were it
        // otherwise, dropping the result is still right (the partition is computed at the close).
        debug_assert!(running, "a partition computed ahead ended without having begun: {key:?}");
        match result {
            Some((value, bytes)) if running && !s.stopped && s.bytes.saturating_add(bytes) <= BYTES_MAX => {
                s.computed += 1;
                s.bytes += bytes;
                if let Some(e) = s.entries.get_mut(key) {
                    e.slot = Slot::Ready(value, bytes);
                }
            }
            _ if running => {
                s.entries.remove(key);
            }
            _ => {}
        }
        debug_assert!(s.bytes <= BYTES_MAX);
        drop(s);
        self.ended.notify_all();
    }

    /// Takes the result computed ahead for `key`, if there is one.
    fn take(&self, key: &AheadKey) -> Option<Arc<dyn Any + Send + Sync>> {
        let mut s = lock(&self.state);
        if !s.entries.get(key).is_some_and(|e| matches!(e.slot, Slot::Ready(..))) {
            return None;
        }
        let entry = s.entries.remove(key)?;
        s.used += 1;
        match entry.slot {
            Slot::Ready(value, bytes) => {
                s.bytes -= bytes;
                Some(value)
            }
            Slot::Running => None,
        }
    }

    /// Called before a frontier stream generates `batch`: nothing more starts for it or
    /// before, what earlier batches left unread goes, and the partitions of `batch` still
    /// being computed are waited for (their tasks are already on the cluster).
    fn generating(&self, batch: Time) {
        let mut s = lock(&self.state);
        if s.generated < batch {
            s.generated = batch;
        }
        let mut freed = 0;
        s.entries.retain(|_, e| match e.slot {
            // Claims of earlier batches ended before their generation (waited for below).
            Slot::Running => true,
            Slot::Ready(_, bytes) if e.batch < batch => {
                freed += bytes;
                false
            }
            Slot::Ready(..) => true,
        });
        s.bytes -= freed;
        while !s.stopped && s.entries.values().any(|e| e.batch <= batch && matches!(e.slot, Slot::Running)) {
            s = self.ended.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn stop(&self) {
        let mut s = lock(&self.state);
        s.stopped = true;
        s.entries.retain(|_, e| matches!(e.slot, Slot::Running));
        s.bytes = 0;
        drop(s);
        self.ended.notify_all();
    }

    fn counts(&self) -> PartitionsAhead {
        let s = lock(&self.state);
        PartitionsAhead { computed: s.computed, read: s.used }
    }
}

/// A complete input partition, to compute ahead.
pub(crate) struct AheadWork {
    pub(crate) input: StreamId,
    pub(crate) batch: Time,
    /// Its index among the input's partitions of the batch.
    pub(crate) partition: usize,
    pub(crate) blocks: Vec<BlockId>,
    source: Arc<dyn AheadSource>,
    /// The frontier partitions claimed in the memo for it, to compute.
    claims: Vec<(Arc<dyn AheadFrontier>, AheadKey)>,
}

/// An input stream, as the base of partitions computed ahead.
pub(crate) trait AheadSource: Send + Sync {
    /// A dataset (an `Rdd` of the input's records, boxed) whose partition `index` reads
    /// `blocks`, stored for the input's batch at `batch`, with its id.
    fn base(&self, index: usize, batch: Time, blocks: Vec<BlockId>) -> Result<(RddId, Box<dyn Any>), Error>;
}

/// A frontier stream: computes its partitions ahead.
pub(crate) trait AheadFrontier: Send + Sync {
    fn stream(&self) -> StreamId;
    /// Whether its datasets read `input`'s partitions.
    fn over(&self, input: StreamId) -> bool;
    /// The index partition `partition` of `input`'s batch will have in its batch dataset, if
    /// it can tell.
    fn index(&self, input: StreamId, partition: usize) -> Option<usize>;
    /// Computes its partition `key` over `work`'s blocks into `memo`, where `key` is claimed;
    /// returns false if the stream turned out not to be per partition.
    fn compute_ahead(&self, work: &AheadWork, key: &AheadKey, memo: &AheadMemo) -> bool;
}

/// Computes `rdd`'s partition `key.index` ahead, over the base dataset `base`, into `memo`,
/// where `key` is claimed. False if `rdd` does not read `base` partition by partition (then
/// nothing is kept).
pub(crate) fn compute<T: Data>(rdd: &Rdd<T>, base: RddId, key: &AheadKey, memo: &AheadMemo) -> bool {
    if !per_partition(rdd.context().graph(), rdd.id(), base) {
        memo.finish(key, None);
        return false;
    }
    let result = match rdd.collect_partition(key.index) {
        Ok(records) => {
            let bytes = crate::task::estimate_bytes(&records);
            Some((Arc::new(records) as Arc<dyn Any + Send + Sync>, bytes))
        }
        Err(e) => {
            // Computed at the close instead, where a failure is the batch's.
            tracing::debug!(stream = %key.stream, error = %e, "a partition computed ahead failed");
            None
        }
    };
    memo.finish(key, result);
    true
}

/// Whether `rdd` reads `base` through one-to-one narrow dependencies only.
fn per_partition(graph: &Graph, rdd: RddId, base: RddId) -> bool {
    let mut id = rdd;
    loop {
        if id == base {
            return true;
        }
        let Ok(node) = graph.rdd(id) else { return false };
        match node.deps().as_slice() {
            [Dep::Narrow { parent, map: NarrowMap::OneToOne }] => id = *parent,
            _ => return false,
        }
    }
}

/// The input blocks partition `split` of `node` reads along its narrow lineage, if it reads
/// exactly one input partition and nothing else.
fn source_blocks(graph: &Graph, node: &Arc<dyn Node>, split: usize) -> Option<Vec<BlockId>> {
    let mut node = Arc::clone(node);
    let mut split = split;
    loop {
        if let Some(batch) = &node.info().input {
            return batch.partitions.get(split).cloned();
        }
        let mut read = None;
        for dep in node.deps() {
            match dep {
                Dep::Narrow { parent, map } => {
                    if let Some(p) = map.parent_partition(split) {
                        if read.is_some() {
                            return None;
                        }
                        read = Some((parent, p));
                    }
                }
                Dep::Shuffle { .. } => return None,
            }
        }
        let (parent, p) = read?;
        node = graph.rdd(parent).ok()?;
        split = p;
    }
}

/// A frontier stream's batch dataset that reads the partitions computed ahead from the memo and
/// computes the others from its lineage.
struct ReadAhead<T> {
    inner: Arc<RddNode<T>>,
    keys: Vec<Option<AheadKey>>,
    memo: Arc<AheadMemo>,
}

impl<T: Data> ReadAhead<T> {
    fn ahead(&self, split: usize) -> Option<Arc<Vec<T>>> {
        let key = self.keys.get(split)?.as_ref()?;
        self.memo.take(key)?.downcast::<Vec<T>>().ok()
    }
}

impl<T: Data> Compute<T> for ReadAhead<T> {
    fn compute(&self, split: usize, tc: &mut TaskContext<'_>, out: &mut Sink<'_, T>) -> Result<(), TaskError> {
        match self.ahead(split) {
            Some(records) => match Arc::try_unwrap(records) {
                Ok(records) => task::push_owned(records, out),
                Err(shared) => task::push_shared(&shared, out),
            },
            None => self.inner.run(split, tc, out),
        }
    }

    fn held(&self, split: usize, tc: &mut TaskContext<'_>) -> Result<Option<Pieces<T>>, TaskError> {
        match self.ahead(split) {
            Some(records) => Ok(Some(Pieces::one(records))),
            None => self.inner.borrowed(split, tc),
        }
    }
}

/// `rdd`, frontier stream `stream`'s dataset of `batch`, reading what was computed ahead for
/// it. Waits for the partitions of `batch` still being computed.
pub(crate) fn read_ahead<T: Data>(rdd: Rdd<T>, stream: StreamId, batch: Time, memo: &Arc<AheadMemo>) -> Rdd<T> {
    memo.generating(batch);
    let graph = rdd.context().graph();
    let node: Arc<dyn Node> = Arc::clone(rdd.node()) as Arc<dyn Node>;
    let keys: Vec<Option<AheadKey>> = (0..rdd.num_partitions())
        .map(|index| source_blocks(graph, &node, index).map(|blocks| AheadKey { stream, index, blocks }))
        .collect();
    if keys.iter().all(Option::is_none) {
        return rdd;
    }
    let compute = ReadAhead { inner: Arc::clone(rdd.node()), keys, memo: Arc::clone(memo) };
    let deps = vec![Dep::Narrow { parent: rdd.id(), map: NarrowMap::OneToOne }];
    Rdd::from_compute(rdd.context(), "read_ahead", rdd.num_partitions(), deps, rdd.node().partitioner(), compute)
}

/// The partition layout the input's close makes, for the tracker.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    /// The context's zero time: batch `k` is at `zero + k * interval`.
    pub(crate) zero: Time,
    pub(crate) interval: Duration,
    pub(crate) block_interval: Duration,
    /// The most records of one partition (a larger block makes a partition alone).
    pub(crate) records_max: usize,
}

impl Shape {
    /// The batch a push stamped `at` lands in, and its block interval within the batch, as
    /// the close computes them (a batch at `t` takes what is stamped in `(t - interval, t]`).
    fn place(&self, at: Time) -> (Time, u64) {
        let interval = duration_nanos(self.interval).max(1);
        let block = duration_nanos(self.block_interval).max(1);
        let since = at.as_nanos().saturating_sub(self.zero.as_nanos());
        let k = since.div_ceil(interval).max(1);
        let batch = Time::from_nanos(self.zero.as_nanos().saturating_add(k.saturating_mul(interval)));
        let prev = batch.as_nanos().saturating_sub(interval);
        (batch, at.as_nanos().saturating_sub(prev) / block)
    }
}

/// The partition being filled.
struct Open {
    batch: Time,
    interval: u64,
    index: usize,
    blocks: Vec<BlockId>,
    records: usize,
}

/// Follows one input's pushes, in the order its close takes them, and tells which partition a
/// push completes.
#[derive(Default)]
pub(crate) struct Tracker {
    open: Option<Open>,
}

impl Tracker {
    /// A push of `records` records stamped `at` as block `block`: the partition it completes
    /// (batch, index, blocks), if any.
    fn stamped(
        &mut self,
        shape: &Shape,
        at: Time,
        block: BlockId,
        records: usize,
    ) -> Option<(Time, usize, Vec<BlockId>)> {
        let (batch, interval) = shape.place(at);
        if let Some(open) = &mut self.open {
            let same = open.batch == batch && open.interval == interval;
            if same && !(open.records > 0 && open.records + records > shape.records_max) {
                open.blocks.push(block);
                open.records += records;
                return None;
            }
        }
        let index = match &self.open {
            Some(open) if open.batch == batch => open.index + 1,
            _ => 0,
        };
        let done = self.open.replace(Open { batch, interval, index, blocks: vec![block], records });
        done.map(|o| (o.batch, o.index, o.blocks))
    }
}

/// The threads computing partitions ahead for one running streaming context.
pub(crate) struct AheadRun {
    memo: Arc<AheadMemo>,
    frontiers: Arc<Mutex<Vec<Arc<dyn AheadFrontier>>>>,
    queue: Mutex<Option<SyncSender<AheadWork>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl AheadRun {
    /// Starts `threads` threads computing `frontiers`' partitions ahead into `memo`.
    pub(crate) fn start(
        threads: usize,
        frontiers: Vec<Arc<dyn AheadFrontier>>,
        memo: Arc<AheadMemo>,
    ) -> Result<Arc<AheadRun>, Error> {
        let (tx, rx) = sync_channel::<AheadWork>(QUEUE_MAX);
        let rx = Arc::new(Mutex::new(rx));
        let frontiers = Arc::new(Mutex::new(frontiers));
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let (rx, frontiers, memo) = (Arc::clone(&rx), Arc::clone(&frontiers), Arc::clone(&memo));
            handles.push(crate::runtime::spawn(format!("dstream-ahead-{i}"), move || serve(&rx, &frontiers, &memo))?);
        }
        Ok(Arc::new(AheadRun { memo, frontiers, queue: Mutex::new(Some(tx)), threads: Mutex::new(handles) }))
    }

    /// Queues a complete partition; dropped (computed at the close) when the queue is full or
    /// the run stopped.
    /// the run stopped. Its frontier partitions are claimed in the memo first, so the batch's
    /// generation waits for them (they are on their way) rather than computing them again.
    fn submit(&self, mut work: AheadWork) {
        let frontiers: Vec<Arc<dyn AheadFrontier>> =
            lock(&self.frontiers).iter().filter(|f| f.over(work.input)).cloned().collect();
        for frontier in frontiers {
            let Some(index) = frontier.index(work.input, work.partition) else { continue };
            let key = AheadKey { stream: frontier.stream(), index, blocks: work.blocks.clone() };
            if self.memo.begin(&key, work.batch) {
                work.claims.push((frontier, key));
            }
        }
        if work.claims.is_empty() {
            return;
        }
        let refused = match lock(&self.queue).as_ref() {
            Some(queue) => match queue.try_send(work) {
                Ok(()) => None,
                Err(TrySendError::Full(work) | TrySendError::Disconnected(work)) => Some(work),
            },
            None => Some(work),
        };
        if let Some(work) = refused {
            tracing::debug!(input = %work.input, "a partition is not computed ahead: the queue is full or stopped");
            work.claims.iter().for_each(|(_, key)| self.memo.finish(key, None));
        }
    }

    /// Partitions computed ahead, and read from there, so far.
    pub(crate) fn counts(&self) -> PartitionsAhead {
        self.memo.counts()
    }

    /// Stops the threads once the partitions they are computing end; what was computed ahead
    /// and not read is dropped.
    pub(crate) fn stop(&self) {
        drop(lock(&self.queue).take());
        self.memo.stop();
        let threads = std::mem::take(&mut *lock(&self.threads));
        for t in threads {
            if t.join().is_err() {
                tracing::error!("a thread computing partitions ahead panicked");
            }
        }
    }
}

fn serve(rx: &Mutex<Receiver<AheadWork>>, frontiers: &Mutex<Vec<Arc<dyn AheadFrontier>>>, memo: &AheadMemo) {
    loop {
        // One thread waits on the queue at a time; the others wait for the lock.
        let next = lock(rx).recv();
        let Ok(work) = next else { return };
        for (frontier, key) in &work.claims {
            let computed =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| frontier.compute_ahead(&work, key, memo)));
            let Ok(per_partition) = computed else {
                // Building the partition's datasets panicked (tasks catch their own panics):
                // the claim ends, so the batch's generation does not wait for it.
                tracing::error!(stream = %key.stream, "computing a partition ahead panicked");
                memo.finish(key, None);
                continue;
            };
            if !per_partition {
                // Not per partition after all (a `transform` made of a shuffle, say): never again.
                let stream = frontier.stream();
                lock(frontiers).retain(|f| f.stream() != stream);
            }
        }
    }
}

/// What an input needs to hand its complete partitions to the run.
pub(crate) struct AheadHook {
    pub(crate) input: StreamId,
    pub(crate) shape: Shape,
    pub(crate) run: Arc<AheadRun>,
    pub(crate) source: Arc<dyn AheadSource>,
    pub(crate) tracker: Mutex<Tracker>,
}

impl AheadHook {
    /// A push stamped `at` as `block`, under the input's buffer lock (in the close's order):
    /// the partition it completes, to [`AheadHook::submit`] once the lock is released.
    pub(crate) fn stamped(&self, at: Time, block: BlockId, records: usize) -> Option<AheadWork> {
        let (batch, partition, blocks) = lock(&self.tracker).stamped(&self.shape, at, block, records)?;
        Some(AheadWork {
            input: self.input,
            batch,
            partition,
            blocks,
            source: Arc::clone(&self.source),
            claims: Vec::new(),
        })
    }

    pub(crate) fn submit(&self, work: AheadWork) {
        self.run.submit(work);
    }
}

impl AheadWork {
    /// The base dataset of this partition with index `index`, built by its input.
    pub(crate) fn base(&self, index: usize) -> Result<(RddId, Box<dyn Any>), Error> {
        self.source.base(index, self.batch, self.blocks.clone())
    }
}

/// What a stream is to partitions computed ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AheadKind {
    /// An input stream: its partitions are the base.
    Input,
    /// A union: its partitions are its parents', one after the other.
    Union,
    /// A per-partition operator of one parent (`map`, `filter`, `map_partitions`, ...).
    Each,
}

/// How a stream's dataset is made over one input partition, for the streams whose datasets
/// read their inputs partition by partition.
pub(crate) trait AheadCompute<T>: Send + Sync {
    fn kind(&self) -> AheadKind;
    /// The inputs whose partitions its datasets read.
    fn inputs(&self) -> Vec<StreamId>;
    /// The index partition `partition` of `input`'s batch will have in this stream's batch
    /// dataset, if it can tell.
    fn index(&self, input: StreamId, partition: usize) -> Option<usize>;
    /// This stream's dataset of batch `time` made over `base` (an `Rdd` of `input`'s records)
    /// in place of `input`'s dataset.
    fn build(&self, input: StreamId, base: &dyn Any, time: Time) -> Option<Rdd<T>>;
}

impl<T: Data> StreamNode<T> {
    pub(super) fn ahead_kind(&self) -> Option<AheadKind> {
        self.compute.ahead().map(AheadCompute::kind)
    }

    pub(super) fn ahead_inputs(&self) -> Vec<StreamId> {
        self.compute.ahead().map(AheadCompute::inputs).unwrap_or_default()
    }

    pub(super) fn ahead_index(&self, input: StreamId, partition: usize) -> Option<usize> {
        self.compute.ahead()?.index(input, partition)
    }

    pub(super) fn ahead_build(&self, input: StreamId, base: &dyn Any, time: Time) -> Option<Rdd<T>> {
        self.compute.ahead()?.build(input, base, time)
    }

    /// The partition count of the newest dataset it generated, if any: a union's guess of
    /// its earlier parents' counts in the batch being filled.
    pub(super) fn last_partitions(&self) -> Option<usize> {
        lock(&self.generated).values().next_back().map(|rdd| rdd.as_ref().map_or(0, Rdd::num_partitions))
    }
}

impl<T: Data> AheadFrontier for StreamNode<T> {
    fn stream(&self) -> StreamId {
        self.id
    }

    fn over(&self, input: StreamId) -> bool {
        self.ahead_inputs().contains(&input)
    }

    fn index(&self, input: StreamId, partition: usize) -> Option<usize> {
        self.ahead_index(input, partition)
    }

    fn compute_ahead(&self, work: &AheadWork, key: &AheadKey, memo: &AheadMemo) -> bool {
        let built = work.base(key.index).map(|(id, base)| (id, self.ahead_build(work.input, &*base, work.batch)));
        match built {
            Ok((base, Some(rdd))) => compute(&rdd, base, key, memo),
            Ok((_, None)) => {
                memo.finish(key, None);
                true
            }
            Err(e) => {
                tracing::debug!(input = %work.input, error = %e, "no base for a partition computed ahead");
                memo.finish(key, None);
                true
            }
        }
    }
}

/// Starts computing partitions ahead for `ssc`, started from `zero`, if its cluster can and
/// its program has a frontier stream over an input: the per-partition streams over inputs
/// that a stream of another kind or an output reads.
pub(crate) fn start(ssc: &StreamingContext, zero: Time) -> Result<Option<Arc<AheadRun>>, Error> {
    let inner = &ssc.inner;
    let threads = inner.ctx.early_parallelism();
    if threads == 0 {
        return Ok(None);
    }
    let nodes: Vec<Arc<dyn StreamNodeDyn>> = lock(&inner.nodes).clone();
    let kinds: FixedMap<StreamId, Option<AheadKind>> = nodes.iter().map(|n| (n.id(), n.ahead_kind())).collect();
    let mut read_whole: Vec<StreamId> = lock(&inner.outputs).iter().map(|o| o.stream).collect();
    for n in &nodes {
        if kinds.get(&n.id()).copied().flatten() != Some(AheadKind::Each) {
            read_whole.extend(n.parent_ids());
        }
    }
    let memo = Arc::new(AheadMemo::default());
    let mut frontiers = Vec::new();
    for n in nodes {
        let id = n.id();
        if kinds.get(&id).copied().flatten() == Some(AheadKind::Each) && read_whole.contains(&id) {
            if let Some(frontier) = n.into_frontier(&memo) {
                frontiers.push(frontier);
            }
        }
    }
    if frontiers.is_empty() {
        return Ok(None);
    }
    let run = AheadRun::start(threads, frontiers, memo)?;
    for (input, _) in lock(&inner.inputs).iter() {
        input.compute_ahead(&run, zero, inner.batch_interval);
    }
    Ok(Some(run))
}

#[cfg(test)]
mod tests;
