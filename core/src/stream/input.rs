//! Input streams fed by the host: a queue of whole batches (tests) and a handle that any thread
//! can push records into (host applications).

use std::any::Any;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use serde::ser::SerializeSeq;
use serde::Serialize;

use super::checkpoint::Checkpointer;
use super::context::StreamingContext;
use super::early::{AheadCompute, AheadHook, AheadKind, AheadRun, AheadSource, Shape};
use super::flow::FlowControl;
use super::rate::RecordsAt;
use super::{duration_nanos, lock, BatchCtx, DStream, StreamCompute};
use crate::context::Context;
use crate::error::Error;
use crate::ids::{BlockId, RddId, StreamId};
use crate::rdd::{NewBlock, Rdd};
use crate::task::estimate_bytes;
use crate::time::{Clock, Time};
use crate::Data;

/// What the context needs from an input: closing a batch, stopping, and forgetting.
pub(crate) trait InputDyn: Send + Sync {
    /// Freezes the records of the batch `(prev, time]`; returns how many there are.
    fn close_batch(&self, prev: Time, time: Time) -> Result<u64, Error>;
    /// Refuses records from now on.
    fn stop_accepting(&self);
    /// Whether every accepted record is in a closed batch.
    fn drained(&self) -> bool;
    /// The estimated bytes of the records accepted and not yet in a closed batch.
    fn buffered_bytes(&self) -> u64;
    /// The batches closed so far, for the input log.
    fn frozen(&self) -> &dyn FrozenDyn;
    /// Hands each partition to `run` once it is complete, ahead of its batch's close, when the
    /// input can tell (pushed inputs), for a context started at `zero` with batches of
    /// `interval`.
    fn compute_ahead(&self, run: &Arc<AheadRun>, zero: Time, interval: Duration) {
        let _ = (run, zero, interval);
    }
}

/// The closed batches of an input, type-erased: what the input log writes and reads back.
pub(crate) trait FrozenDyn: Send + Sync {
    /// Writes the closed batch `time` to the input log.
    fn log(&self, stream: StreamId, time: Time, ck: &Checkpointer) -> Result<(), Error>;
    /// Closes batch `time` with the records its log holds; returns how many there are.
    fn close_from_log(&self, stream: StreamId, time: Time, ck: &Checkpointer) -> Result<u64, Error>;
    /// How many records the closed batch `time` holds (none once it is generated).
    fn records_at(&self, time: Time) -> u64;
    /// Stores `block` of the generated batch `time` again, from its log: `count` records of
    /// its partition `partition`, from `from` on.
    fn restore(&self, time: Time, ck: &Checkpointer, block: BlockId, span: (usize, u64, u64)) -> Result<(), Error>;
}

impl<T: Data> FrozenDyn for Frozen<T> {
    fn log(&self, stream: StreamId, time: Time, ck: &Checkpointer) -> Result<(), Error> {
        let closed = lock(&self.closed);
        match closed.get(&time) {
            None => ck.log_input::<Vec<T>>(stream, time, &[]),
            Some(Closed::Records(parts)) => ck.log_input(stream, time, parts),
            Some(Closed::Blocks(parts)) => {
                let parts: Vec<Chained<'_, T>> = parts.iter().map(|p| Chained(p)).collect();
                ck.log_input(stream, time, &parts)
            }
        }
    }

    fn close_from_log(&self, stream: StreamId, time: Time, ck: &Checkpointer) -> Result<u64, Error> {
        let parts: Vec<Vec<T>> = ck.read_input(stream, time)?;
        let n = parts.iter().map(|p| p.len() as u64).sum();
        if let Some(Closed::Blocks(old)) = lock(&self.closed).insert(time, Closed::Records(parts)) {
            self.release(&old);
        }
        Ok(n)
    }

    fn records_at(&self, time: Time) -> u64 {
        lock(&self.closed).get(&time).map_or(0, Closed::records)
    }

    fn restore(&self, time: Time, ck: &Checkpointer, block: BlockId, span: (usize, u64, u64)) -> Result<(), Error> {
        let parts: Vec<Vec<T>> = ck.read_input(self.stream()?, time)?;
        self.restore_from(time, &parts, block, span)
    }
}

impl<T: Data> Frozen<T> {
    /// Stores `block` of the generated batch `time` again from `parts`, the batch's partitions
    /// as its input log holds them: `count` records of partition `partition`, from `from` on.
    pub(super) fn restore_from(
        &self,
        time: Time,
        parts: &[Vec<T>],
        block: BlockId,
        span: (usize, u64, u64),
    ) -> Result<(), Error> {
        let stream = self.stream()?;
        let (partition, from, count) = span;
        let records = parts.get(partition).and_then(|p| {
            let from = usize::try_from(from).ok()?;
            p.get(from..from.checked_add(usize::try_from(count).ok()?)?)
        });
        let Some(records) = records else {
            return Err(Error::NoValidCheckpoint(format!(
                "the input log of {stream} for batch {time} does not hold the records of {block}"
            )));
        };
        self.ctx.store_input_blocks(vec![(block, Arc::new(records.to_vec()))], time.as_nanos() / 1_000_000)
    }
}

/// A closed batch of an input, until its dataset is generated.
pub(super) enum Closed<T> {
    /// Records not stored yet (a queued batch, a batch read back from the input log): each
    /// partition is stored as one block when the batch is generated.
    Records(Vec<Vec<T>>),
    /// Blocks stored when their records were pushed, partition by partition, with their
    /// records for the input log (in one process, shared with the workers' stores).
    Blocks(Vec<Vec<NewBlock<T>>>),
}

impl<T> Closed<T> {
    pub(super) fn records(&self) -> u64 {
        match self {
            Closed::Records(parts) => parts.iter().map(|p| p.len() as u64).sum(),
            Closed::Blocks(parts) => parts.iter().flatten().map(|(_, r)| r.len() as u64).sum(),
        }
    }
}

/// A partition made of blocks, serialized as the one vector of their records it is (the input
/// log stores partitions whole, so it reads back the same partitions whatever the blocks were).
struct Chained<'a, T>(&'a [NewBlock<T>]);

impl<T: Serialize> Serialize for Chained<'_, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let len = self.0.iter().map(|(_, r)| r.len()).sum();
        let mut seq = serializer.serialize_seq(Some(len))?;
        for record in self.0.iter().flat_map(|(_, r)| r.iter()) {
            seq.serialize_element(record)?;
        }
        seq.end()
    }
}

/// The closed batches of an input, by batch time, and the numbering of its blocks.
pub(super) struct Frozen<T> {
    pub(super) closed: Mutex<BTreeMap<Time, Closed<T>>>,
    /// The input stream, set once its node exists.
    pub(super) stream: OnceLock<StreamId>,
    /// The number of the stream's next block.
    next_block: AtomicU64,
    /// Where the blocks are stored.
    ctx: Context,
}

impl<T> Frozen<T> {
    pub(super) fn new(ctx: &Context) -> Arc<Frozen<T>> {
        Arc::new(Frozen {
            closed: Mutex::new(BTreeMap::new()),
            stream: OnceLock::new(),
            next_block: AtomicU64::new(0),
            ctx: ctx.clone(),
        })
    }

    pub(super) fn stream(&self) -> Result<StreamId, Error> {
        self.stream.get().copied().ok_or(Error::Internal("an input stream used before its node existed"))
    }

    /// The id of the stream's next block.
    fn next_block(&self) -> Result<BlockId, Error> {
        Ok(BlockId::Input { stream: self.stream()?, seq: self.next_block.fetch_add(1, Ordering::Relaxed) })
    }

    /// Releases stored blocks no batch will read.
    pub(super) fn release(&self, parts: &[Vec<NewBlock<T>>]) {
        self.ctx.graph().release_input_blocks(parts.iter().flatten().map(|(id, _)| *id));
    }
}

impl<T> Drop for Frozen<T> {
    fn drop(&mut self) {
        // Batches closed and never generated (the context stopped in between).
        let closed = std::mem::take(&mut *lock(&self.closed));
        for batch in closed.into_values() {
            if let Closed::Blocks(parts) = batch {
                self.release(&parts);
            }
        }
    }
}

impl<T: Data> StreamCompute<T> for Arc<Frozen<T>> {
    fn compute(&self, time: Time, b: &BatchCtx<'_>) -> Result<Option<Rdd<T>>, Error> {
        // Input streams are generated as soon as their batch closes; the records were stored
        // on the workers when they were pushed, or are stored now, one block per partition.
        let stream = self.stream()?;
        let closed = lock(&self.closed).remove(&time);
        // Each partition's blocks with their record counts: the dataset's partitions, and
        // what a lost block is restored from (`Graph::note_input_batch`).
        let mut blocks = Vec::new();
        let layout: Vec<Vec<(BlockId, u64)>> = match closed {
            None => Vec::new(),
            Some(Closed::Blocks(parts)) => {
                parts.iter().map(|p| p.iter().map(|(id, r)| (*id, r.len() as u64)).collect()).collect()
            }
            Some(Closed::Records(parts)) => {
                let mut layout = Vec::with_capacity(parts.len());
                for part in parts {
                    if part.is_empty() {
                        layout.push(Vec::new());
                        continue;
                    }
                    let id = self.next_block()?;
                    layout.push(vec![(id, part.len() as u64)]);
                    blocks.push((id, Arc::new(part)));
                }
                layout
            }
        };
        let partitions = layout.iter().map(|p| p.iter().map(|(id, _)| *id).collect()).collect();
        b.ctx.graph().note_input_batch(stream, time, layout);
        if !blocks.is_empty() {
            b.ctx.store_input_blocks(blocks, time.as_nanos() / 1_000_000)?;
        }
        b.ctx.input_batch(stream, time, b.zero, partitions).map(Some)
    }

    fn ahead(&self) -> Option<&dyn AheadCompute<T>> {
        Some(self)
    }
}

impl<T: Data> AheadCompute<T> for Arc<Frozen<T>> {
    fn kind(&self) -> AheadKind {
        AheadKind::Input
    }

    fn inputs(&self) -> Vec<StreamId> {
        self.stream.get().copied().into_iter().collect()
    }

    fn index(&self, input: StreamId, partition: usize) -> Option<usize> {
        (self.stream.get() == Some(&input)).then_some(partition)
    }

    fn build(&self, input: StreamId, base: &dyn Any, _time: Time) -> Option<Rdd<T>> {
        (self.stream.get() == Some(&input)).then(|| base.downcast_ref::<Rdd<T>>().cloned()).flatten()
    }
}

impl<T: Data> AheadSource for Frozen<T> {
    fn base(&self, index: usize, batch: Time, blocks: Vec<BlockId>) -> Result<(RddId, Box<dyn Any>), Error> {
        let rdd = self.ctx.early_input::<T>(self.stream()?, batch, index, blocks);
        Ok((rdd.id(), Box::new(rdd)))
    }
}

/// Feeds a [`StreamingContext::queue_stream`]: each batch takes the next queued collection.
pub struct QueueHandle<T> {
    queue: Arc<QueueInput<T>>,
}

impl<T> Clone for QueueHandle<T> {
    fn clone(&self) -> Self {
        QueueHandle { queue: Arc::clone(&self.queue) }
    }
}

impl<T> std::fmt::Debug for QueueHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueHandle").finish_non_exhaustive()
    }
}

impl<T: Data> QueueHandle<T> {
    /// Queues the records of one future batch. Returns false if the context stopped accepting.
    pub fn push(&self, batch: Vec<T>) -> bool {
        if self.queue.stopped.load(Ordering::SeqCst) {
            return false;
        }
        lock(&self.queue.pending).push_back(batch);
        true
    }
}

struct QueueInput<T> {
    pending: Mutex<VecDeque<Vec<T>>>,
    partitions: usize,
    stopped: AtomicBool,
    frozen: Arc<Frozen<T>>,
}

impl<T: Data> InputDyn for QueueInput<T> {
    fn close_batch(&self, _prev: Time, time: Time) -> Result<u64, Error> {
        let batch = lock(&self.pending).pop_front().unwrap_or_default();
        let n = batch.len();
        lock(&self.frozen.closed).insert(time, Closed::Records(split(batch, self.partitions)));
        Ok(n as u64)
    }

    fn stop_accepting(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    fn buffered_bytes(&self) -> u64 {
        lock(&self.pending).iter().map(|batch| estimate_bytes(batch)).sum()
    }

    fn drained(&self) -> bool {
        lock(&self.pending).is_empty()
    }

    fn frozen(&self) -> &dyn FrozenDyn {
        &*self.frozen
    }
}

/// The most bytes of records (`size_of` each) one partition of a pushed batch reads: a block
/// interval that received more is read by several tasks, so a busy interval still spreads over
/// the cluster. Large enough that an interval at a high rate is one partition, whose narrow
/// part runs as one task with one map-side combine (at 16 MiB, WordCount at 2.4 million
/// records/s on two receivers had two partitions per interval and was not stable; at 64 MiB
/// it is, see BENCHMARKS.md).
const PARTITION_BYTES_MAX: usize = 64 << 20;

/// Groups `blocks`, in order, into partitions of about `bytes_max` bytes of records at most (a
/// larger block makes a partition alone). Nothing is copied: a partition reads its blocks.
fn group_blocks<B>(
    blocks: Vec<B>,
    records: impl Fn(&B) -> usize,
    record_bytes: usize,
    bytes_max: usize,
) -> Vec<Vec<B>> {
    let per_part = (bytes_max / record_bytes.max(1)).max(1);
    let mut parts = Vec::new();
    let mut part: Vec<B> = Vec::new();
    let mut len = 0;
    for block in blocks {
        let n = records(&block);
        if len > 0 && len + n > per_part {
            parts.push(std::mem::take(&mut part));
            len = 0;
        }
        len += n;
        part.push(block);
    }
    if !part.is_empty() {
        parts.push(part);
    }
    parts
}

/// Splits `records` into `n` contiguous slices of nearly equal size (as `parallelize` does).
fn split<T>(records: Vec<T>, n: usize) -> Vec<Vec<T>> {
    let len = records.len();
    let mut it = records.into_iter();
    (0..n).map(|i| it.by_ref().take((i + 1) * len / n - i * len / n).collect()).collect()
}

/// Feeds a [`StreamingContext::input_stream`] from any thread: each record lands in the batch
/// that is open when it is pushed, in the partition of its block interval of arrival.
///
/// **A push is acknowledged:** the records of one call become one input block, stored on the
/// driver's `input_replicas` distinct workers (two by default) before the call returns. So
/// once `push_all` returns `Ok`, the records survive the loss of a worker; a source that can
/// replay (a message queue, a file) commits its position then. Each call pays one round trip
/// to the workers: push many records at a time ([`InputHandle::push_all`]) for throughput.
/// When fewer workers are alive than the replicas need, the push waits for them, at most the
/// driver's `upload_wait_max`, then fails with [`Error::NotEnoughWorkers`].
///
/// The buffer of records not yet in a closed batch has a byte bound (see [`FlowControl`]): a
/// push that does not fit waits for a batch to free room, at most the bounded wait, then
/// fails with [`Error::InputBufferFull`]; its records are not accepted, and every record
/// accepted before stays.
pub struct InputHandle<T> {
    input: Arc<PushInput<T>>,
}

impl<T> Clone for InputHandle<T> {
    fn clone(&self) -> Self {
        InputHandle { input: Arc::clone(&self.input) }
    }
}

impl<T> std::fmt::Debug for InputHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputHandle").finish_non_exhaustive()
    }
}

/// What a chunk costs on top of its records' estimated size.
const CHUNK_OVERHEAD_BYTES: u64 = std::mem::size_of::<Chunk<()>>() as u64;

impl<T: Data> InputHandle<T> {
    /// Pushes one record, as a block of its own (see [`InputHandle`]: one round trip to the
    /// workers per call). Waits while the buffer is full (at most the bounded wait, then
    /// [`Error::InputBufferFull`]); fails with [`Error::StreamingStopped`] once the context has
    /// stopped accepting input.
    pub fn push(&self, record: T) -> Result<(), Error> {
        self.push_chunk(vec![record], None).map_err(|(e, _)| *e)
    }

    /// Pushes records, all stamped with the same arrival time, as one input block stored on
    /// the workers before it returns (see [`InputHandle`]). A `Vec` is kept as it is: records
    /// are not copied on their way into a batch's partition. Waits while the buffer is full,
    /// as [`InputHandle::push`]; the records are accepted all or none.
    pub fn push_all(&self, records: impl IntoIterator<Item = T>) -> Result<(), Error> {
        // Collecting a `Vec`'s own iterator reuses its buffer.
        let records: Vec<T> = records.into_iter().collect();
        self.push_chunk(records, None).map_err(|(e, _)| *e)
    }

    /// The estimated bytes of the records pushed and not yet in a closed batch.
    pub fn buffered_bytes(&self) -> u64 {
        lock(&self.input.buffer).bytes
    }

    /// Pushes `records` as one block, waiting for room, and stores it on the workers; gives
    /// them back with the error if they were not accepted. A set `stop` ends the wait for room
    /// with [`Error::StreamingStopped`].
    pub(crate) fn push_chunk(&self, records: Vec<T>, stop: Option<&AtomicBool>) -> Result<(), (Box<Error>, Vec<T>)> {
        let input = &*self.input;
        if records.is_empty() {
            return input.admit(0, stop).map(drop).map_err(|e| (Box::new(e), records));
        }
        let bytes = estimate_bytes(&records) + CHUNK_OVERHEAD_BYTES;
        // Stamped and queued in arrival order under the lock, so the batch open now takes it;
        // that batch's close waits for the block to be stored.
        let (id, at, complete) = {
            let mut buffer = match input.admit(bytes, stop) {
                Ok(buffer) => buffer,
                Err(e) => return Err((Box::new(e), records)),
            };
            let id = match input.frozen.next_block() {
                Ok(id) => id,
                Err(e) => return Err((Box::new(e), records)),
            };
            let at = input.clock.now();
            buffer.chunks.push_back(Chunk { at, id, bytes, stored: None });
            buffer.bytes += bytes;
            // In the buffer's order, which is the order the close takes.
            let complete = input.ahead.get().and_then(|hook| hook.stamped(at, id, records.len()));
            (id, at, complete)
        };
        let records = Arc::new(records);
        let group = at.as_nanos() / duration_nanos(input.block_interval).max(1);
        let result = input.frozen.ctx.store_input_blocks(vec![(id, Arc::clone(&records))], group);
        let mut buffer = lock(&input.buffer);
        let Some(pos) = buffer.chunks.iter().rposition(|c| c.id == id) else {
            // A close waits for the chunks it takes to be stored, so the chunk is still here.
            drop(buffer);
            debug_assert!(false, "{id} left the buffer before it was stored");
            let records = Arc::try_unwrap(records).unwrap_or_else(|shared| (*shared).clone());
            return Err((Box::new(Error::Internal("an input block left the buffer before it was stored")), records));
        };
        let outcome = match result {
            Ok(()) => {
                buffer.chunks[pos].stored = Some(records);
                Ok(())
            }
            Err(e) => {
                buffer.chunks.remove(pos);
                buffer.bytes -= bytes;
                Err((Box::new(e), Arc::try_unwrap(records).unwrap_or_else(|shared| (*shared).clone())))
            }
        };
        drop(buffer);
        input.stored.notify_all();
        if outcome.is_err() {
            input.wake_waiting();
        }
        if let (Some(work), Some(hook)) = (complete, input.ahead.get()) {
            hook.submit(work);
        }
        outcome
    }

    /// Wakes the pushers waiting for room, so they recheck their stop flags.
    pub(crate) fn wake_waiting(&self) {
        self.input.wake_waiting();
    }

    /// The records closed into recent batches, for backpressure.
    pub(crate) fn records_at(&self) -> Arc<dyn RecordsAt> {
        self.input.clone()
    }
}

/// The records of one push: their arrival time, their block, and, once the block is stored on
/// the workers, the records themselves (kept for the input log until the batch is generated).
struct Chunk<T> {
    at: Time,
    id: BlockId,
    bytes: u64,
    stored: Option<Arc<Vec<T>>>,
}

/// The chunks not yet in a closed batch, in arrival order, and their estimated size.
struct Buffer<T> {
    chunks: VecDeque<Chunk<T>>,
    bytes: u64,
}

/// How many recent batches' record counts an input remembers for backpressure.
const CLOSED_COUNTS_MAX: usize = 64;

struct PushInput<T> {
    buffer: Mutex<Buffer<T>>,
    /// Notified whenever a chunk's block is stored (or its push failed).
    stored: Condvar,
    block_interval: Duration,
    clock: Arc<dyn Clock>,
    stopped: AtomicBool,
    frozen: Arc<Frozen<T>>,
    bytes_max: u64,
    wait_max: Duration,
    /// The wake flags of pushers waiting for room.
    waiting: Mutex<Vec<Arc<AtomicBool>>>,
    /// Records closed into each recent batch, newest last, at most `CLOSED_COUNTS_MAX`.
    closed_counts: Mutex<VecDeque<(Time, u64)>>,
    /// Where complete partitions go while they are computed ahead (see `early.rs`).
    ahead: OnceLock<AheadHook>,
}

/// Removes a waiting pusher's flag when its wait ends, however it ends.
struct Waiting<'a> {
    list: &'a Mutex<Vec<Arc<AtomicBool>>>,
    flag: Arc<AtomicBool>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        lock(self.list).retain(|f| !Arc::ptr_eq(f, &self.flag));
    }
}

impl<T> PushInput<T> {
    /// The buffer, locked, once `bytes` more fit in it (or it is empty), if the input still
    /// accepts records. Checked under the lock, so a record is either refused or seen by the
    /// final batch. Waits on the context's clock for a batch to free room, at most `wait_max`.
    fn admit(&self, bytes: u64, stop: Option<&AtomicBool>) -> Result<MutexGuard<'_, Buffer<T>>, Error> {
        let started = self.clock.now();
        let deadline = started + self.wait_max;
        let mut waiting: Option<Waiting<'_>> = None;
        loop {
            let buffer = lock(&self.buffer);
            if self.stopped.load(Ordering::SeqCst) {
                return Err(Error::StreamingStopped);
            }
            if buffer.bytes == 0 || buffer.bytes.saturating_add(bytes) <= self.bytes_max {
                return Ok(buffer);
            }
            // A stop matters only to a push that would wait.
            if stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
                return Err(Error::StreamingStopped);
            }
            let now = self.clock.now();
            if now >= deadline {
                let stream = self.frozen.stream.get().copied().unwrap_or(StreamId(u64::MAX));
                return Err(Error::InputBufferFull { stream, bytes_max: self.bytes_max, waited: now - started });
            }
            // Registered (or reset) under the buffer lock: a batch that frees room after this
            // sets the flag, so the wait below cannot miss it.
            let flag = &waiting
                .get_or_insert_with(|| {
                    let flag = Arc::new(AtomicBool::new(false));
                    lock(&self.waiting).push(Arc::clone(&flag));
                    Waiting { list: &self.waiting, flag }
                })
                .flag;
            flag.store(false, Ordering::SeqCst);
            let flag = Arc::clone(flag);
            drop(buffer);
            self.clock.wait_until(deadline, &flag);
        }
    }

    fn wake_waiting(&self) {
        lock(&self.waiting).iter().for_each(|f| f.store(true, Ordering::SeqCst));
        self.clock.wake();
    }
}

impl<T: Data> RecordsAt for PushInput<T> {
    fn records_closed_at(&self, time: Time) -> Option<u64> {
        lock(&self.closed_counts).iter().rev().find(|(t, _)| *t == time).map(|(_, n)| *n)
    }
}

impl<T: Data> InputDyn for PushInput<T> {
    fn close_batch(&self, prev: Time, time: Time) -> Result<u64, Error> {
        let mut buffer = lock(&self.buffer);
        let stopped = self.stopped.load(Ordering::SeqCst);
        // Chunks stamped after `time` wait for their batch; after a stop, everything goes now.
        let takes = |c: &Chunk<T>| stopped || c.at <= time;
        // A chunk taken must be stored first: its push is on its way to the workers (bounded
        // by the driver's upload wait), or fails and leaves.
        while buffer.chunks.iter().any(|c| takes(c) && c.stored.is_none()) {
            buffer = self.stored.wait(buffer).unwrap_or_else(|p| p.into_inner());
        }
        // Only chunks move here, never records.
        let mut taken = Vec::new();
        let mut rest = VecDeque::with_capacity(buffer.chunks.len());
        let mut freed = 0;
        for chunk in buffer.chunks.drain(..) {
            if takes(&chunk) {
                freed += chunk.bytes;
                taken.push(chunk);
            } else {
                rest.push_back(chunk);
            }
        }
        buffer.chunks = rest;
        buffer.bytes -= freed;
        drop(buffer);
        if freed > 0 {
            self.wake_waiting();
        }
        // Every chunk taken is stored (waited for above).
        let n = taken.iter().flat_map(|c| &c.stored).map(|r| r.len() as u64).sum();
        {
            let mut counts = lock(&self.closed_counts);
            if counts.len() == CLOSED_COUNTS_MAX {
                counts.pop_front();
            }
            counts.push_back((time, n));
        }
        let block = duration_nanos(self.block_interval).max(1);
        let mut intervals: BTreeMap<u64, Vec<NewBlock<T>>> = BTreeMap::new();
        for chunk in taken {
            let index = chunk.at.as_nanos().saturating_sub(prev.as_nanos()) / block;
            if let Some(records) = chunk.stored {
                intervals.entry(index).or_default().push((chunk.id, records));
            }
        }
        let size = std::mem::size_of::<T>();
        let parts = intervals
            .into_values()
            .flat_map(|blocks| group_blocks(blocks, |(_, r)| r.len(), size, PARTITION_BYTES_MAX))
            .collect();
        lock(&self.frozen.closed).insert(time, Closed::Blocks(parts));
        Ok(n)
    }

    fn stop_accepting(&self) {
        let buffer = lock(&self.buffer);
        self.stopped.store(true, Ordering::SeqCst);
        drop(buffer);
        self.wake_waiting();
    }

    fn drained(&self) -> bool {
        lock(&self.buffer).chunks.is_empty()
    }

    fn buffered_bytes(&self) -> u64 {
        lock(&self.buffer).bytes
    }

    fn frozen(&self) -> &dyn FrozenDyn {
        &*self.frozen
    }

    fn compute_ahead(&self, run: &Arc<AheadRun>, zero: Time, interval: Duration) {
        let Ok(input) = self.frozen.stream() else { return };
        let records_max = (PARTITION_BYTES_MAX / std::mem::size_of::<T>().max(1)).max(1);
        let shape = Shape { zero, interval, block_interval: self.block_interval, records_max };
        let source: Arc<dyn AheadSource> = self.frozen.clone();
        let hook = AheadHook { input, shape, run: Arc::clone(run), source, tracker: Mutex::default() };
        // A context starts once, so the hook is set once.
        let _ = self.ahead.set(hook);
    }
}

impl<T> Drop for PushInput<T> {
    fn drop(&mut self) {
        // Stored blocks no batch took (the context stopped at once, or was dropped).
        let buffer = std::mem::replace(&mut *lock(&self.buffer), Buffer { chunks: VecDeque::new(), bytes: 0 });
        self.frozen.ctx.graph().release_input_blocks(buffer.chunks.iter().map(|c| c.id));
    }
}

impl StreamingContext {
    /// A stream fed batch by batch through the returned handle: each batch takes the next queued
    /// collection (or nothing), split into `partitions` partitions. Mostly for tests (Spark's
    /// `queueStream` with `oneAtATime`); the records are stored on the workers when their batch
    /// is generated, one block per non-empty partition.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use dstream::{ManualClock, StepCluster, StreamingContext, Time};
    ///
    /// let cluster = StepCluster::builder().workers(2).build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))?;
    /// let (queue, numbers) = ssc.queue_stream::<u32>(2);
    /// let sums = Arc::new(Mutex::new(Vec::new()));
    /// let sink = Arc::clone(&sums);
    /// numbers.reduce(|a, b| a + b).foreach_rdd(move |rdd, _time| {
    ///     sink.lock().unwrap().push(rdd.collect()?);
    ///     Ok(())
    /// })?;
    /// queue.push(vec![1, 2, 3]); // the first batch
    /// queue.push(vec![10]); // the second
    /// ssc.step()?;
    /// ssc.step()?;
    /// ssc.step()?; // nothing queued: an empty batch
    /// assert_eq!(*sums.lock().unwrap(), vec![vec![6], vec![10], vec![]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    #[doc(alias = "queueStream")]
    pub fn queue_stream<T: Data>(&self, partitions: usize) -> (QueueHandle<T>, DStream<T>) {
        let frozen = Frozen::new(&self.inner.ctx);
        let queue = Arc::new(QueueInput {
            pending: Mutex::new(VecDeque::new()),
            partitions: partitions.max(1),
            stopped: AtomicBool::new(false),
            frozen: Arc::clone(&frozen),
        });
        let stream = DStream::new_node(self, "queue_stream", self.batch_interval(), Vec::new(), Arc::clone(&frozen));
        // A fresh lock is always empty, so this cannot fail.
        let _ = frozen.stream.set(stream.id());
        self.register_input(queue.clone(), stream.node().clone());
        (QueueHandle { queue }, stream)
    }

    /// A stream of records pushed by the host through the returned handle, from any thread.
    /// Each batch holds the records pushed since the previous one, one partition per block
    /// interval of arrival (200 ms, or the batch interval if shorter). The buffer is bounded
    /// by [`FlowControl::default`] (1 GiB, a 10 s wait); see
    /// [`StreamingContext::input_stream_with`].
    pub fn input_stream<T: Data>(&self) -> (InputHandle<T>, DStream<T>) {
        self.input_stream_with(FlowControl::default())
    }

    /// [`StreamingContext::input_stream`] with the buffer bound and wait of `flow` (its rates
    /// are for receivers and ignored here).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use dstream::{Error, FlowControl, ManualClock, StepCluster, StreamingContext, Time};
    ///
    /// let cluster = StepCluster::builder().build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))?;
    /// let flow = FlowControl::default().buffer_bytes_max(4096).buffer_wait_max(Duration::ZERO);
    /// let (input, numbers) = ssc.input_stream_with::<u64>(flow);
    /// numbers.count().print(1)?;
    /// input.push_all(0..400)?; // about 3.2 KB: fits
    /// assert!(matches!(input.push_all(0..400), Err(Error::InputBufferFull { .. })));
    /// assert_eq!(ssc.step()?.records, 400); // the batch frees the buffer
    /// input.push_all(0..400)?;
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn input_stream_with<T: Data>(&self, flow: FlowControl) -> (InputHandle<T>, DStream<T>) {
        let frozen = Frozen::new(&self.inner.ctx);
        let input = Arc::new(PushInput {
            buffer: Mutex::new(Buffer { chunks: VecDeque::new(), bytes: 0 }),
            stored: Condvar::new(),
            block_interval: self.inner.block_interval,
            clock: Arc::clone(&self.inner.clock),
            stopped: AtomicBool::new(false),
            frozen: Arc::clone(&frozen),
            bytes_max: flow.buffer_bytes_max,
            wait_max: flow.buffer_wait_max,
            waiting: Mutex::new(Vec::new()),
            closed_counts: Mutex::new(VecDeque::new()),
            ahead: OnceLock::new(),
        });
        let stream = DStream::new_node(self, "input_stream", self.batch_interval(), Vec::new(), Arc::clone(&frozen));
        // A fresh lock is always empty, so this cannot fail.
        let _ = frozen.stream.set(stream.id());
        self.register_input(input.clone(), stream.node().clone());
        (InputHandle { input }, stream)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{group_blocks, Chained};
    use crate::codec;
    use crate::ids::{BlockId, StreamId};

    #[test]
    fn a_partition_of_blocks_is_logged_as_the_vector_of_its_records() {
        // (block lengths) -> the same bytes as one vector of all their records
        let table: &[&[u64]] = &[&[], &[0], &[3], &[1, 2], &[0, 5, 0, 1], &[200, 300]];
        for lens in table {
            let mut next = 0u64;
            let blocks: Vec<(BlockId, Arc<Vec<u64>>)> = (0u64..)
                .zip(lens.iter())
                .map(|(seq, n)| {
                    next += n;
                    (BlockId::Input { stream: StreamId(1), seq }, Arc::new((next - n..next).collect()))
                })
                .collect();
            let whole: Vec<u64> = (0..next).collect();
            assert_eq!(codec::encode(&Chained(&blocks)).unwrap(), codec::encode(&whole).unwrap(), "{lens:?}");
        }
    }

    #[test]
    fn blocks_group_into_bounded_partitions_in_order_without_copies() {
        // (block lengths, records per partition at most) -> partition lengths in blocks
        let table: &[(&[usize], usize, &[&[usize]])] = &[
            (&[], 4, &[]),
            (&[3], 4, &[&[3]]),
            (&[9], 4, &[&[9]]),
            (&[1, 2, 1], 4, &[&[1, 2, 1]]),
            (&[1, 2, 2], 4, &[&[1, 2], &[2]]),
            (&[2, 9, 1], 4, &[&[2], &[9], &[1]]),
            (&[4, 4, 4], 4, &[&[4], &[4], &[4]]),
            (&[1, 1, 1, 1, 1], 2, &[&[1, 1], &[1, 1], &[1]]),
        ];
        for (blocks, per_part, want) in table {
            let input: Vec<(usize, usize)> = blocks.iter().copied().enumerate().collect();
            let parts = group_blocks(input, |(_, n)| *n, 8, per_part * 8);
            let lens: Vec<Vec<usize>> = parts.iter().map(|p| p.iter().map(|(_, n)| *n).collect()).collect();
            let want: Vec<Vec<usize>> = want.iter().map(|p| p.to_vec()).collect();
            assert_eq!(lens, want, "blocks {blocks:?}, {per_part} per partition");
            let order: Vec<usize> = parts.iter().flatten().map(|(i, _)| *i).collect();
            assert_eq!(order, (0..blocks.len()).collect::<Vec<_>>(), "blocks {blocks:?}: order");
        }
    }
}
