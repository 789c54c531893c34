//! What a running task sees: its input blocks, the blocks it produces, and the chunked push
//! protocol through which narrow operators are pipelined.
//!
//! A task is a pure function of its inputs. It never touches the worker's block store: the
//! worker gathers the inputs before the task starts and stores the task's new blocks after it
//! ends, so tasks can run on any thread while the worker's state machine stays single-threaded.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::codec;
use crate::dead_letter::{DeadLetter, Isolation, Refusals};
use crate::error::{TaskError, TaskErrorKind};
use crate::ids::{BlockId, RddId};
use crate::message::Payload;
use crate::Data;

/// Records flow between pipelined operators in chunks of at most this many records, so the
/// framework's cost (one dynamic call) is paid per chunk, not per record.
pub(crate) const CHUNK_RECORDS: usize = 1024;

/// The receiving end of a pipeline: called with each chunk of records, in order. It may take
/// the records out of the vector; the caller clears the vector afterwards either way.
pub(crate) type Sink<'s, T> = dyn FnMut(&mut Vec<T>) -> Result<(), TaskError> + 's;

/// A block a task produced for the worker to store.
#[derive(Debug)]
pub(crate) struct NewBlock {
    pub(crate) block: BlockId,
    pub(crate) payload: Payload,
    pub(crate) bytes: u64,
}

/// The context of one running task.
pub(crate) struct TaskContext<'a> {
    inputs: &'a BTreeMap<BlockId, Payload>,
    pub(crate) new_blocks: Vec<NewBlock>,
    /// Set on an isolating attempt (see [`crate::dead_letter`]).
    isolation: Option<&'a Isolation>,
    /// The records the attempt's covered operators set aside, in the order they finished.
    pub(crate) dead_letters: Vec<DeadLetter>,
}

impl<'a> TaskContext<'a> {
    pub(crate) fn new(inputs: &'a BTreeMap<BlockId, Payload>) -> TaskContext<'a> {
        TaskContext { inputs, new_blocks: Vec::new(), isolation: None, dead_letters: Vec::new() }
    }

    /// The context of an attempt that isolates records when `isolation` is set.
    pub(crate) fn isolating(mut self, isolation: Option<&'a Isolation>) -> TaskContext<'a> {
        self.isolation = isolation;
        self
    }

    /// How the operator `name` computing partition `split` of `rdd` sets records aside, when
    /// this attempt isolates and covers it; `None` otherwise (one check per partition, so
    /// ordinary attempts pay nothing per record).
    pub(crate) fn refusals(&self, rdd: RddId, name: &'static str, split: usize) -> Option<Refusals> {
        let isolation = self.isolation?;
        let batch = isolation.covers(rdd)?;
        let room = (isolation.dead_letters_max as usize).saturating_sub(self.dead_letters.len());
        Some(Refusals::new(batch, name, rdd, split as u32, room))
    }

    /// Takes the records an operator set aside; fails once the attempt holds more than its bound.
    pub(crate) fn refused(&mut self, refusals: Refusals) -> Result<(), TaskError> {
        self.dead_letters.extend(refusals.letters);
        let max = self.isolation.map_or(0, |i| i.dead_letters_max as usize);
        if self.dead_letters.len() > max {
            return Err(crate::dead_letter::exceeded(self.dead_letters.len()));
        }
        Ok(())
    }

    /// The input block `block` as a `V`, if the driver listed it (or this task produced it).
    pub(crate) fn input<V: DeserializeOwned + Any + Send + Sync>(
        &self,
        block: BlockId,
    ) -> Result<Option<Arc<V>>, TaskError> {
        let payload = match self.inputs.get(&block) {
            Some(p) => p,
            None => match self.new_blocks.iter().find(|b| b.block == block) {
                Some(b) => &b.payload,
                None => return Ok(None),
            },
        };
        payload.typed::<V>().map(Some).map_err(|e| TaskError::new(TaskErrorKind::Decode, format!("block {block}: {e}")))
    }

    /// Hands a computed block to the worker for storage.
    pub(crate) fn store(&mut self, block: BlockId, payload: Payload, bytes: u64) {
        self.new_blocks.push(NewBlock { block, payload, bytes });
    }
}

/// Pushes the records of a shared partition into `out` in chunks, cloning them (the partition
/// stays shared and immutable).
pub(crate) fn push_shared<T: Clone>(data: &[T], out: &mut Sink<'_, T>) -> Result<(), TaskError> {
    let mut buf = Vec::with_capacity(CHUNK_RECORDS.min(data.len()));
    for chunk in data.chunks(CHUNK_RECORDS) {
        buf.extend_from_slice(chunk);
        out(&mut buf)?;
        buf.clear();
    }
    Ok(())
}

/// Pushes owned records into `out` in chunks; a partition of one chunk or less moves as is.
pub(crate) fn push_owned<T>(mut data: Vec<T>, out: &mut Sink<'_, T>) -> Result<(), TaskError> {
    match data.len() {
        0 => Ok(()),
        n if n <= CHUNK_RECORDS => out(&mut data),
        _ => push_iter(data, out),
    }
}

/// Pushes the records of an iterator into `out` in chunks.
pub(crate) fn push_iter<T>(records: impl IntoIterator<Item = T>, out: &mut Sink<'_, T>) -> Result<(), TaskError> {
    let mut it = records.into_iter();
    let mut buf = Vec::with_capacity(CHUNK_RECORDS.min(it.size_hint().0.max(1)));
    loop {
        buf.extend(it.by_ref().take(CHUNK_RECORDS));
        if buf.is_empty() {
            return Ok(());
        }
        out(&mut buf)?;
        buf.clear();
    }
}

/// Collects everything pushed into a sink into one vector.
pub(crate) fn collect_into<T>(dst: &mut Vec<T>) -> impl FnMut(&mut Vec<T>) -> Result<(), TaskError> + '_ {
    move |chunk: &mut Vec<T>| {
        dst.append(chunk);
        Ok(())
    }
}

/// Estimates the in-memory size of a partition: the records' own size plus the heap data they
/// own, measured on an evenly spaced sample of up to 16 records through their encoding.
pub(crate) fn estimate_bytes<T: Data>(data: &[T]) -> u64 {
    const SAMPLE: usize = 16;
    if data.is_empty() {
        return 0;
    }
    let step = data.len().div_ceil(SAMPLE);
    let (mut sampled, mut encoded) = (0u64, 0u64);
    for record in data.iter().step_by(step) {
        sampled += 1;
        encoded += codec::encode(record).map_or(0, |b| b.len() as u64);
    }
    let per_record = std::mem::size_of::<T>() as u64 + encoded / sampled;
    per_record.saturating_mul(data.len() as u64)
}

/// Runs user code, turning a panic into a task error that carries the panic message.
pub(crate) fn catch_panic<R>(f: impl FnOnce() -> Result<R, TaskError>) -> Result<R, TaskError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => Err(TaskError::new(TaskErrorKind::Panicked, panic_message(&*panic))),
    }
}

/// The message of a panic, from its payload (a `&str` or a `String` for `panic!` with a message).
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_owned_chunks_everything_in_order() {
        for n in [0, 1, CHUNK_RECORDS, CHUNK_RECORDS + 1, 3 * CHUNK_RECORDS + 7] {
            let data: Vec<usize> = (0..n).collect();
            let mut got = Vec::new();
            let mut sizes = Vec::new();
            push_owned(data.clone(), &mut |c: &mut Vec<usize>| {
                sizes.push(c.len());
                got.append(c);
                Ok(())
            })
            .unwrap();
            assert_eq!(got, data);
            assert!(sizes.iter().all(|s| *s > 0 && *s <= CHUNK_RECORDS.max(1)), "{sizes:?}");
        }
    }

    #[test]
    fn estimate_counts_heap_data() {
        let small: Vec<String> = vec!["a".into(); 100];
        let large: Vec<String> = vec!["a".repeat(1000); 100];
        assert!(estimate_bytes(&large) > estimate_bytes(&small) + 90_000);
        assert_eq!(estimate_bytes::<u64>(&[]), 0);
    }

    #[test]
    fn panics_become_errors() {
        let e = catch_panic::<()>(|| panic!("boom {}", 7)).unwrap_err();
        assert_eq!(e.kind, TaskErrorKind::Panicked);
        assert_eq!(e.message, "boom 7");
    }
}
