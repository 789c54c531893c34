//! Data checkpoints of a dataset: a job that writes every partition to storage, the cut that
//! then makes the dataset read its checkpoint instead of its parents, and datasets restored
//! from a checkpoint after a restart.

use std::sync::Arc;

use super::{Compute, Rdd, RddNode};
use crate::checkpoint::{self, CheckpointHeader, CheckpointStats, Checkpointing};
use crate::error::{Error, TaskError, TaskErrorKind};
use crate::graph::{ActionNode, Node, PartitionerKind};
use crate::ids::{ActionId, RddId, Scope, StreamId};
use crate::message::{Fact, Payload};
use crate::replica::CutFact;
use crate::task::{self, Sink, TaskContext};
use crate::time::Time;
use crate::Data;

/// One checkpoint of a stream's dataset: where its partitions are stored and what their
/// headers say.
#[derive(Clone, Debug)]
pub(crate) struct CheckpointTarget {
    pub(crate) checkpointing: Checkpointing,
    pub(crate) fingerprint: u64,
    pub(crate) stream: StreamId,
    pub(crate) time: Time,
}

impl CheckpointTarget {
    /// The prefix of the checkpoint's objects.
    pub(crate) fn prefix(&self) -> String {
        state_prefix(self.stream, self.time)
    }

    /// The object holding `partition`.
    pub(crate) fn object(&self, partition: usize) -> String {
        format!("{}{partition:05}", self.prefix())
    }

    fn header(&self, partition: usize) -> CheckpointHeader {
        CheckpointHeader {
            fingerprint: self.fingerprint,
            stream: self.stream,
            batch_time: self.time,
            partition: partition as u32,
        }
    }

    /// Reads partition `partition`, checking every byte.
    pub(crate) fn read<T: Data>(&self, partition: usize) -> Result<Vec<T>, checkpoint::CheckpointError> {
        let c = &self.checkpointing;
        let name = self.object(partition);
        let (header, records) = checkpoint::read_records(&*c.format, &*c.storage, &name, self.fingerprint)?;
        if header != self.header(partition) {
            let reason = format!("its header says {header:?}, {:?} was expected", self.header(partition));
            return Err(checkpoint::CheckpointError::Malformed { name, reason });
        }
        Ok(records)
    }
}

/// The prefix of the objects of the checkpoint of `stream` at `time`.
pub(crate) fn state_prefix(stream: StreamId, time: Time) -> String {
    format!("state/{}/{:020}/", stream.0, time.as_nanos())
}

/// Computes a partition by reading it from its checkpoint.
struct ReadCheckpoint {
    target: CheckpointTarget,
}

impl<T: Data> Compute<T> for ReadCheckpoint {
    fn compute(&self, split: usize, _tc: &mut TaskContext<'_>, out: &mut Sink<'_, T>) -> Result<(), TaskError> {
        let records = self.target.read::<T>(split).map_err(|e| TaskError::new(TaskErrorKind::Source, e.to_string()))?;
        task::push_owned(records, out)
    }
}

/// The action writing every partition of a dataset to its checkpoint.
struct WriteCheckpoint<T> {
    rdd: Arc<RddNode<T>>,
    target: CheckpointTarget,
}

impl<T: Data> ActionNode for WriteCheckpoint<T> {
    fn rdd(&self) -> RddId {
        self.rdd.id()
    }

    fn run(&self, partition: usize, tc: &mut TaskContext<'_>) -> Result<Payload, TaskError> {
        // The partition is usually the cached block of a persisted state: written in place.
        let data = self.rdd.shared_partition(partition, tc)?;
        let c = &self.target.checkpointing;
        let name = self.target.object(partition);
        let stats = checkpoint::write_records(&*c.format, &*c.storage, &name, &self.target.header(partition), &*data)
            .map_err(|e| TaskError::new(TaskErrorKind::Source, e.to_string()))?;
        // Read back before the lineage is cut to it: a store that tore or lost the write (or
        // a bad sector) is caught while the partition can still be written again, rather than
        // when a lost partition or a restart needs it.
        let mut read = 0u64;
        let verified = c.format.read(&*c.storage, &name, self.target.fingerprint, &mut |_| {
            read += 1;
            Ok(())
        });
        match verified {
            Ok(header) if header == self.target.header(partition) && read == stats.records => {}
            Ok(header) => {
                let why =
                    format!("checkpoint {name:?} read back as {header:?} with {read} of {} records", stats.records);
                return Err(TaskError::new(TaskErrorKind::Source, why));
            }
            Err(e) => {
                let why = format!("checkpoint {name:?} did not read back intact after its write: {e}");
                return Err(TaskError::new(TaskErrorKind::Source, why));
            }
        }
        Ok(Payload::local(Arc::new((stats.records, stats.body_bytes, stats.file_bytes))))
    }

    fn encode_result(&self, payload: &Payload) -> Result<Payload, TaskError> {
        payload.encoded::<(u64, u64, u64)>().map_err(|e| TaskError::new(TaskErrorKind::Encode, e.to_string()))
    }
}

impl<T: Data> Rdd<T> {
    /// Writes every partition to `target`, on the workers; returns the totals once all are
    /// stored.
    pub(crate) fn write_checkpoint(&self, target: &CheckpointTarget) -> Result<CheckpointStats, Error> {
        let (id, action) = self.checkpoint_write_action(target);
        let partitions: Vec<u32> = (0..self.num_partitions() as u32).collect();
        let results = self.context().run_job(id, action, partitions, None)?;
        let mut total = CheckpointStats::default();
        for payload in results {
            let (records, body_bytes, file_bytes) = *payload.typed::<(u64, u64, u64)>()?;
            total = total + CheckpointStats { records, body_bytes, file_bytes };
        }
        Ok(total)
    }

    /// The action writing every partition to `target`, registered in the checkpoint's own
    /// scope (the first action there, in every process that makes it).
    pub(crate) fn checkpoint_write_action(&self, target: &CheckpointTarget) -> (ActionId, Arc<dyn ActionNode>) {
        let graph = self.context().graph();
        // Numbered in the checkpoint's own scope: the write runs beside the batches, on a
        // thread of its own, so a number from the program's count would depend on timing.
        let id = {
            let _scope = graph.enter(Scope::Checkpoint { stream: target.stream, time: target.time });
            graph.next_action_id()
        };
        let action: Arc<dyn ActionNode> =
            Arc::new(WriteCheckpoint { rdd: Arc::clone(self.node()), target: target.clone() });
        graph.register_action(id, &action);
        (id, action)
    }

    /// Cuts the lineage: the dataset's partitions are read from `target` (written by
    /// [`Rdd::write_checkpoint`]) when they are not cached, and its parents are released.
    /// Workers rebuilding batches are told, so they cut their copy too.
    pub(crate) fn cut_to_checkpoint(&self, target: &CheckpointTarget) {
        self.node().cut_lineage(Arc::new(ReadCheckpoint { target: target.clone() }));
        let info = self.node().info();
        self.context().announce(Fact::Cut {
            stream: target.stream,
            time: target.time,
            rdd: info.id,
            partitions: u32::try_from(info.partitions).unwrap_or(u32::MAX),
            partitioning: PartitionerKind::partitioning(info.partitioner),
            persisted: info.persisted,
        });
    }

    /// The dataset a cut left, made without its lineage by a worker that never generated it
    /// (see [`Fact::Cut`]): the same id, partitions, partitioning and persistence, computed by
    /// reading `target`.
    pub(crate) fn cut_dataset(ctx: &crate::Context, cut: &CutFact, target: CheckpointTarget) -> Rdd<T> {
        let partitioner = PartitionerKind::from_partitioning(cut.partitioning);
        let compute = Box::new(ReadCheckpoint { target });
        Rdd::with_id(
            ctx,
            cut.rdd,
            "checkpoint",
            cut.partitions as usize,
            Vec::new(),
            partitioner,
            cut.persisted,
            compute,
        )
    }

    /// The hash partition count of the dataset, if it is hash-partitioned.
    pub(crate) fn hash_partitions(&self) -> Option<usize> {
        match self.node().partitioner() {
            Some(PartitionerKind::Hash(n)) => Some(n),
            _ => None,
        }
    }
}

impl crate::context::Context {
    /// The dataset of the checkpoint `target` with `partitions` partitions (hash-partitioned
    /// into them when `hashed`, so co-partitioned steps read it narrowly as they read the
    /// original), read on the workers and cached there: the driver holds none of its records.
    pub(crate) fn checkpointed<T: Data>(&self, target: CheckpointTarget, partitions: usize, hashed: bool) -> Rdd<T> {
        let n = partitions.max(1);
        let partitioner = hashed.then_some(PartitionerKind::Hash(n));
        Rdd::from_compute(self, "checkpoint", n, Vec::new(), partitioner, ReadCheckpoint { target }).persist()
    }
}
