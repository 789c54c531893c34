//! Input streams fed by the host: a queue of whole batches (tests) and a handle that any thread
//! can push records into (host applications).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use super::checkpoint::Checkpointer;
use super::context::StreamingContext;
use super::flow::FlowControl;
use super::rate::RecordsAt;
use super::{duration_nanos, lock, BatchCtx, DStream, StreamCompute};
use crate::error::Error;
use crate::ids::StreamId;
use crate::rdd::Rdd;
use crate::task::estimate_bytes;
use crate::time::{Clock, Time};
use crate::Data;

/// What the context needs from an input: closing a batch, stopping, and forgetting.
pub(crate) trait InputDyn: Send + Sync {
    /// Freezes the records of the batch `(prev, time]`; returns how many there are.
    fn close_batch(&self, prev: Time, time: Time) -> u64;
    /// Refuses records from now on.
    fn stop_accepting(&self);
    /// Whether every accepted record is in a closed batch.
    fn drained(&self) -> bool;
    /// The batches closed so far, for the input log.
    fn frozen(&self) -> &dyn FrozenDyn;
}

/// The closed batches of an input, type-erased: what the input log writes and reads back.
pub(crate) trait FrozenDyn: Send + Sync {
    /// Writes the closed batch `time` to the input log.
    fn log(&self, stream: StreamId, time: Time, ck: &Checkpointer) -> Result<(), Error>;
    /// Closes batch `time` with the records its log holds; returns how many there are.
    fn close_from_log(&self, stream: StreamId, time: Time, ck: &Checkpointer) -> Result<u64, Error>;
    /// How many records the closed batch `time` holds (none once it is generated).
    fn records_at(&self, time: Time) -> u64;
}

impl<T: Data> FrozenDyn for Frozen<T> {
    fn log(&self, stream: StreamId, time: Time, ck: &Checkpointer) -> Result<(), Error> {
        let closed = lock(&self.closed);
        let parts = closed.get(&time).map_or(&[][..], Vec::as_slice);
        ck.log_input(stream, time, parts)
    }

    fn close_from_log(&self, stream: StreamId, time: Time, ck: &Checkpointer) -> Result<u64, Error> {
        let parts: Vec<Vec<T>> = ck.read_input(stream, time)?;
        let n = parts.iter().map(|p| p.len() as u64).sum();
        lock(&self.closed).insert(time, parts);
        Ok(n)
    }

    fn records_at(&self, time: Time) -> u64 {
        lock(&self.closed).get(&time).map_or(0, |parts| parts.iter().map(|p| p.len() as u64).sum())
    }
}

/// The partitions of each closed batch, by batch time.
type Closed<T> = Mutex<BTreeMap<Time, Vec<Vec<T>>>>;

struct Frozen<T> {
    closed: Closed<T>,
    /// The input stream, set once its node exists.
    stream: OnceLock<StreamId>,
}

impl<T> Frozen<T> {
    fn new() -> Arc<Frozen<T>> {
        Arc::new(Frozen { closed: Mutex::new(BTreeMap::new()), stream: OnceLock::new() })
    }
}

impl<T: Data> StreamCompute<T> for Arc<Frozen<T>> {
    fn compute(&self, time: Time, b: &BatchCtx<'_>) -> Result<Option<Rdd<T>>, Error> {
        // Each block of the batch becomes one partition, stored on the workers. Input streams
        // are generated as soon as their batch closes, so the records move there exactly once.
        let parts = lock(&self.closed).remove(&time).unwrap_or_default();
        let stream = *self.stream.get().ok_or(Error::Internal("an input stream generated before its node existed"))?;
        b.ctx.input_batch(stream, time, b.zero, parts).map(Some)
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
    fn close_batch(&self, _prev: Time, time: Time) -> u64 {
        let batch = lock(&self.pending).pop_front().unwrap_or_default();
        let n = batch.len();
        lock(&self.frozen.closed).insert(time, split(batch, self.partitions));
        n as u64
    }

    fn stop_accepting(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    fn drained(&self) -> bool {
        lock(&self.pending).is_empty()
    }

    fn frozen(&self) -> &dyn FrozenDyn {
        &*self.frozen
    }
}

/// The most bytes of records (`size_of` each) that chunks are gathered into one partition of
/// a pushed batch: larger partitions would each be a fresh mapping of the allocator (glibc maps
/// allocations above 32 MiB on their own), faulted in page by page and unmapped when dropped.
const PARTITION_BYTES_MAX: usize = 16 << 20;

/// The records of `chunks` in order, gathered into vectors of about `bytes_max` bytes of records
/// at most (a larger chunk stays whole): a chunk that makes a partition alone moves as it is,
/// others are copied once into a vector of the exact size.
fn concat<T>(chunks: Vec<Vec<T>>, bytes_max: usize) -> Vec<Vec<T>> {
    let per_part = (bytes_max / std::mem::size_of::<T>().max(1)).max(1);
    let mut parts = Vec::new();
    let mut group: Vec<Vec<T>> = Vec::new();
    let mut len = 0;
    let flush = |group: &mut Vec<Vec<T>>, parts: &mut Vec<Vec<T>>| match group.len() {
        0 => {}
        1 => parts.extend(group.pop()),
        _ => {
            let mut all = Vec::with_capacity(group.iter().map(Vec::len).sum());
            for mut chunk in group.drain(..) {
                all.append(&mut chunk);
            }
            parts.push(all);
        }
    };
    for chunk in chunks {
        if len > 0 && len + chunk.len() > per_part {
            flush(&mut group, &mut parts);
            len = 0;
        }
        len += chunk.len();
        group.push(chunk);
    }
    flush(&mut group, &mut parts);
    parts
}

/// Splits `records` into `n` contiguous slices of nearly equal size (as `parallelize` does).
fn split<T>(records: Vec<T>, n: usize) -> Vec<Vec<T>> {
    let len = records.len();
    let mut it = records.into_iter();
    (0..n).map(|i| it.by_ref().take((i + 1) * len / n - i * len / n).collect()).collect()
}

/// Feeds a [`StreamingContext::input_stream`] from any thread: each record lands in the batch
/// that is open when it is pushed, in the block of its arrival.
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
    /// Pushes one record. Waits while the buffer is full (at most the bounded wait, then
    /// [`Error::InputBufferFull`]); fails with [`Error::StreamingStopped`] once the context has
    /// stopped accepting input.
    pub fn push(&self, record: T) -> Result<(), Error> {
        let bytes = estimate_bytes(std::slice::from_ref(&record));
        let mut buffer = self.input.admit(bytes + CHUNK_OVERHEAD_BYTES, None)?;
        let now = self.input.clock.now();
        match buffer.chunks.back_mut() {
            Some(last) if last.at == now => {
                last.records.push(record);
                last.bytes += bytes;
                buffer.bytes += bytes;
            }
            _ => {
                let bytes = bytes + CHUNK_OVERHEAD_BYTES;
                buffer.chunks.push_back(Chunk { at: now, records: vec![record], bytes });
                buffer.bytes += bytes;
            }
        }
        Ok(())
    }

    /// Pushes records, all stamped with the same arrival time. A `Vec` is kept as it is, as
    /// one chunk of the batch: records are not copied on their way into a batch's partition
    /// unless the partition gathers several chunks. Waits while the buffer is full, as
    /// [`InputHandle::push`]; the records are accepted all or none.
    pub fn push_all(&self, records: impl IntoIterator<Item = T>) -> Result<(), Error> {
        // Collecting a `Vec`'s own iterator reuses its buffer.
        let records: Vec<T> = records.into_iter().collect();
        self.push_chunk(records, None).map_err(|(e, _)| *e)
    }

    /// The estimated bytes of the records pushed and not yet in a closed batch.
    pub fn buffered_bytes(&self) -> u64 {
        lock(&self.input.buffer).bytes
    }

    /// Pushes `records` as one chunk, waiting for room; gives them back with the error if they
    /// were not accepted. A set `stop` ends the wait with [`Error::StreamingStopped`].
    pub(crate) fn push_chunk(&self, records: Vec<T>, stop: Option<&AtomicBool>) -> Result<(), (Box<Error>, Vec<T>)> {
        if records.is_empty() {
            return self.input.admit(0, stop).map(drop).map_err(|e| (Box::new(e), records));
        }
        let bytes = estimate_bytes(&records) + CHUNK_OVERHEAD_BYTES;
        let mut buffer = match self.input.admit(bytes, stop) {
            Ok(buffer) => buffer,
            Err(e) => return Err((Box::new(e), records)),
        };
        let at = self.input.clock.now();
        buffer.chunks.push_back(Chunk { at, records, bytes });
        buffer.bytes += bytes;
        Ok(())
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

/// Records that arrived together, with their arrival time and estimated size.
struct Chunk<T> {
    at: Time,
    records: Vec<T>,
    bytes: u64,
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
    fn close_batch(&self, prev: Time, time: Time) -> u64 {
        let mut buffer = lock(&self.buffer);
        let stopped = self.stopped.load(Ordering::SeqCst);
        // Chunks stamped after `time` wait for their batch; after a stop, everything goes now.
        // Only chunks move here, never records.
        let mut taken = Vec::new();
        let mut rest = VecDeque::with_capacity(buffer.chunks.len());
        let mut freed = 0;
        for chunk in buffer.chunks.drain(..) {
            if stopped || chunk.at <= time {
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
        let n = taken.iter().map(|c| c.records.len() as u64).sum();
        {
            let mut counts = lock(&self.closed_counts);
            if counts.len() == CLOSED_COUNTS_MAX {
                counts.pop_front();
            }
            counts.push_back((time, n));
        }
        let block = duration_nanos(self.block_interval).max(1);
        let mut blocks: BTreeMap<u64, Vec<Vec<T>>> = BTreeMap::new();
        for chunk in taken {
            let index = chunk.at.as_nanos().saturating_sub(prev.as_nanos()) / block;
            blocks.entry(index).or_default().push(chunk.records);
        }
        let parts = blocks.into_values().flat_map(|chunks| concat(chunks, PARTITION_BYTES_MAX)).collect();
        lock(&self.frozen.closed).insert(time, parts);
        n
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

    fn frozen(&self) -> &dyn FrozenDyn {
        &*self.frozen
    }
}

impl StreamingContext {
    /// A stream fed batch by batch through the returned handle: each batch takes the next queued
    /// collection (or nothing), split into `partitions` partitions. Mostly for tests.
    pub fn queue_stream<T: Data>(&self, partitions: usize) -> (QueueHandle<T>, DStream<T>) {
        let frozen = Frozen::new();
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
        let frozen = Frozen::new();
        let input = Arc::new(PushInput {
            buffer: Mutex::new(Buffer { chunks: VecDeque::new(), bytes: 0 }),
            block_interval: self.inner.block_interval,
            clock: Arc::clone(&self.inner.clock),
            stopped: AtomicBool::new(false),
            frozen: Arc::clone(&frozen),
            bytes_max: flow.buffer_bytes_max,
            wait_max: flow.buffer_wait_max,
            waiting: Mutex::new(Vec::new()),
            closed_counts: Mutex::new(VecDeque::new()),
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
    use super::concat;

    #[test]
    fn concat_gathers_chunks_into_bounded_partitions_in_order() {
        // (chunk lengths, records per partition at most) -> partition lengths
        let table: &[(&[usize], usize, &[usize])] = &[
            (&[], 4, &[]),
            (&[3], 4, &[3]),
            (&[9], 4, &[9]),
            (&[1, 2, 1], 4, &[4]),
            (&[1, 2, 2], 4, &[3, 2]),
            (&[2, 9, 1], 4, &[2, 9, 1]),
            (&[4, 4, 4], 4, &[4, 4, 4]),
            (&[1, 1, 1, 1, 1], 2, &[2, 2, 1]),
        ];
        for (chunks, per_part, want) in table {
            let mut next = 0u64;
            let input: Vec<Vec<u64>> = chunks
                .iter()
                .map(|n| {
                    next += *n as u64;
                    (next - *n as u64..next).collect()
                })
                .collect();
            let parts = concat(input, per_part * std::mem::size_of::<u64>());
            let lens: Vec<usize> = parts.iter().map(Vec::len).collect();
            assert_eq!(&lens, want, "chunks {chunks:?}, {per_part} per partition");
            let all: Vec<u64> = parts.concat();
            assert_eq!(all, (0..next).collect::<Vec<_>>(), "chunks {chunks:?}: order");
        }
    }
}
