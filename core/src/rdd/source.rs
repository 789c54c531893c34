//! Datasets with no parent: a collection held by the program (`parallelize`) and partitions read
//! by a user-provided [`PartitionSource`] (files, for example, in `dstream-storage`).

use std::sync::Arc;

use super::{check_partitions, Compute, Pieces, Rdd};
use crate::context::{BlockUpload, Context};
use crate::error::{Error, TaskError, TaskErrorKind};
use crate::graph::{BatchBlocks, NodeInfo};
use crate::ids::{BlockId, StreamId};
use crate::message::{Fact, Payload};
use crate::task::{self, Sink, TaskContext};
use crate::time::Time;
use crate::Data;

/// Reads the partitions of a dataset from outside the program, on the worker that runs the
/// task. Implementations do the I/O; the core never does.
///
/// `read` must return the same records every time it is called for the same partition: lost
/// partitions are recomputed by reading them again.
pub trait PartitionSource<T>: Send + Sync + 'static {
    /// How many partitions the source has; at least one.
    fn partitions(&self) -> usize;
    /// Reads partition `split`, or says why it cannot.
    fn read(&self, split: usize) -> Result<Vec<T>, String>;
    /// A short description for errors, such as the path read.
    fn describe(&self) -> String;
}

struct Parallelized<T> {
    slices: Vec<Arc<Vec<T>>>,
}

impl<T: Data> Compute<T> for Parallelized<T> {
    fn compute(&self, split: usize, _tc: &mut TaskContext<'_>, out: &mut Sink<'_, T>) -> Result<(), TaskError> {
        task::push_shared(&self.slices[split], out)
    }

    fn held(&self, split: usize, _tc: &mut TaskContext<'_>) -> Result<Option<Pieces<T>>, TaskError> {
        Ok(self.slices.get(split).cloned().map(Pieces::one))
    }
}

struct FromSource<S> {
    source: S,
}

impl<T: Data, S: PartitionSource<T>> Compute<T> for FromSource<S> {
    fn compute(&self, split: usize, _tc: &mut TaskContext<'_>, out: &mut Sink<'_, T>) -> Result<(), TaskError> {
        let records = self.source.read(split).map_err(|e| {
            TaskError::new(TaskErrorKind::Source, format!("{} partition {split}: {e}", self.source.describe()))
        })?;
        task::push_owned(records, out)
    }
}

/// An input stream's batch: each partition reads its blocks, in order, where they are stored.
struct InputBatch {
    blocks: Arc<BatchBlocks>,
}

impl InputBatch {
    fn pieces<T: Data>(&self, split: usize, tc: &mut TaskContext<'_>) -> Result<Pieces<T>, TaskError> {
        let ids = self.blocks.partitions.get(split).map_or(&[][..], Vec::as_slice);
        let mut pieces = Vec::with_capacity(ids.len());
        for &block in ids {
            let data = tc.input::<Vec<T>>(block)?.ok_or_else(|| {
                TaskError::new(TaskErrorKind::FetchFailed { block }, "the task was launched without this input block")
            })?;
            pieces.push(data);
        }
        Ok(Pieces::many(pieces))
    }
}

impl<T: Data> Compute<T> for InputBatch {
    fn compute(&self, split: usize, tc: &mut TaskContext<'_>, out: &mut Sink<'_, T>) -> Result<(), TaskError> {
        self.pieces::<T>(split, tc)?.slices().try_for_each(|s| task::push_shared(s, out))
    }

    fn held(&self, split: usize, tc: &mut TaskContext<'_>) -> Result<Option<Pieces<T>>, TaskError> {
        self.pieces(split, tc).map(Some)
    }
}

/// One input block to store: its id and its records.
pub(crate) type NewBlock<T> = (BlockId, Arc<Vec<T>>);

impl Context {
    /// Stores `blocks` on the workers, each on the driver's `input_replicas` distinct workers,
    /// and returns once every replica is stored: this is the acknowledgement of the records.
    /// Blocks of the same `group` go to the same workers (while the alive workers stay the
    /// same), so a partition reading several of them finds them together.
    pub(crate) fn store_input_blocks<T: Data>(&self, blocks: Vec<NewBlock<T>>, group: u64) -> Result<(), Error> {
        if self.graph().replica().is_some() {
            return Err(Error::NotReplayable("a worker's input stream cannot take records: only the driver's can"));
        }
        let blocks = blocks
            .into_iter()
            .map(|(id, records)| {
                let bytes = task::estimate_bytes(&records);
                (id, Payload::local(records), bytes)
            })
            .collect();
        self.store_blocks(BlockUpload { blocks, group, encode: |p| p.encoded::<Vec<T>>() })
    }

    /// The dataset of an input stream's batch at `time`, whose partition `p` reads the blocks
    /// `partitions[p]`, already stored on the workers (one empty partition if there are none).
    /// The driver tells workers that build the program themselves which blocks the batch has
    /// (`zero` is the streaming context's zero time, which they need to rebuild the batch).
    ///
    /// In a worker's own graph (which rebuilds the batch, see [`Graph::for_worker`]) the
    /// partitions are the ones the driver told.
    ///
    /// [`Graph::for_worker`]: crate::Graph::for_worker
    pub(crate) fn input_batch<T: Data>(
        &self,
        stream: StreamId,
        time: Time,
        zero: Time,
        mut partitions: Vec<Vec<BlockId>>,
    ) -> Result<Rdd<T>, Error> {
        match self.graph().replica() {
            Some(replica) => {
                debug_assert!(partitions.is_empty(), "a worker's input stream received records");
                partitions = replica.input_blocks(stream, time)?;
            }
            None => {
                if partitions.is_empty() {
                    partitions.push(Vec::new());
                }
                self.announce(Fact::InputBatch { stream, time, zero, partitions: partitions.clone() });
            }
        }
        let blocks = Arc::new(BatchBlocks { stream, time, partitions, view: false });
        let info = NodeInfo {
            id: self.graph().next_rdd_id(),
            name: "input",
            partitions: blocks.partitions.len(),
            partitioner: None,
            persisted: false,
            input: Some(Arc::clone(&blocks)),
        };
        Ok(Rdd::from_info(self, info, Vec::new(), Box::new(InputBatch { blocks })))
    }

    /// A view of input stream `stream`'s blocks `blocks`, stored for its batch at `time` and not
    /// yet in a dataset of that batch, as partition `index` of a dataset whose other partitions
    /// are empty: the base a partition's narrow part is computed on ahead of the batch's close
    /// (`stream/early.rs`), with the index the batch's own dataset will give it. Nothing is
    /// announced and dropping it releases nothing: the batch's dataset owns the blocks.
    pub(crate) fn early_input<T: Data>(
        &self,
        stream: StreamId,
        time: Time,
        index: usize,
        blocks: Vec<BlockId>,
    ) -> Rdd<T> {
        let mut partitions = vec![Vec::new(); index + 1];
        partitions[index] = blocks;
        let blocks = Arc::new(BatchBlocks { stream, time, partitions, view: true });
        let info = NodeInfo {
            id: self.graph().next_rdd_id(),
            name: "early_input",
            partitions: index + 1,
            partitioner: None,
            persisted: false,
            input: Some(Arc::clone(&blocks)),
        };
        Rdd::from_info(self, info, Vec::new(), Box::new(InputBatch { blocks }))
    }

    /// A dataset of `data` split into `partitions` contiguous slices of nearly equal size.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let rdd = ctx.parallelize(vec![1, 2, 3, 4, 5], 2)?;
    /// assert_eq!(rdd.glom().collect()?, vec![vec![1, 2], vec![3, 4, 5]]);
    /// assert!(ctx.parallelize(vec![1], 0).is_err());
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn parallelize<T: Data>(&self, data: Vec<T>, partitions: usize) -> Result<Rdd<T>, Error> {
        let n = check_partitions("parallelize", partitions)?;
        let len = data.len();
        let mut it = data.into_iter();
        let slices = (0..n)
            .map(|i| {
                let (start, end) = (i * len / n, (i + 1) * len / n);
                Arc::new(it.by_ref().take(end - start).collect::<Vec<T>>())
            })
            .collect();
        Ok(Rdd::from_compute(self, "parallelize", n, Vec::new(), None, Parallelized { slices }))
    }

    /// A dataset with the given partitions (one empty partition if there are none).
    pub(crate) fn parallelize_partitions<T: Data>(&self, mut partitions: Vec<Vec<T>>) -> Rdd<T> {
        if partitions.is_empty() {
            partitions.push(Vec::new());
        }
        let slices: Vec<Arc<Vec<T>>> = partitions.into_iter().map(Arc::new).collect();
        Rdd::from_compute(self, "parallelize", slices.len(), Vec::new(), None, Parallelized { slices })
    }

    /// A dataset whose partitions are read by `source` on the workers.
    ///
    /// # Examples
    ///
    /// ```
    /// struct Numbers;
    /// impl dstream::PartitionSource<u32> for Numbers {
    ///     fn partitions(&self) -> usize { 3 }
    ///     fn read(&self, split: usize) -> Result<Vec<u32>, String> { Ok(vec![split as u32; 2]) }
    ///     fn describe(&self) -> String { "numbers".into() }
    /// }
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// assert_eq!(ctx.from_source(Numbers)?.collect()?, vec![0, 0, 1, 1, 2, 2]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn from_source<T: Data, S: PartitionSource<T>>(&self, source: S) -> Result<Rdd<T>, Error> {
        let n = check_partitions("from_source", source.partitions())?;
        Ok(Rdd::from_compute(self, "source", n, Vec::new(), None, FromSource { source }))
    }
}
