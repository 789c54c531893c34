//! Messages between the driver and the workers, and the payloads they carry.
//!
//! Transports route and serialize [`Message`]s but never interpret them. A [`Payload`] is either
//! a shared pointer to typed data (within one process, where partitions move without being
//! serialized) or its encoding (between processes).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{self, Serializer};
use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::dead_letter::{DeadLetter, Isolation};
use crate::error::TaskError;
use crate::graph::ProgramSummary;
use crate::ids::{ActionId, BlockId, JobId, RddId, ShuffleId, StageId, StreamId, TaskId, WorkerId};
use crate::time::Time;

/// Data carried by a message or held in a block store.
#[derive(Clone)]
pub enum Payload {
    /// Typed data shared by pointer; it never leaves the process.
    Local(Arc<dyn Any + Send + Sync>),
    /// The encoding of the data, produced by [`crate::codec`].
    Encoded(Arc<[u8]>),
}

impl Payload {
    /// Wraps typed data.
    pub fn local<V: Any + Send + Sync>(value: Arc<V>) -> Payload {
        Payload::Local(value)
    }

    /// The data as a `V`: downcast if local, decoded if encoded.
    pub fn typed<V: serde::de::DeserializeOwned + Any + Send + Sync>(&self) -> Result<Arc<V>, CodecError> {
        match self {
            Payload::Local(any) => Arc::clone(any).downcast::<V>().map_err(|_| CodecError::Decode {
                type_name: std::any::type_name::<V>(),
                len: 0,
                message: "the payload holds a different type".into(),
            }),
            Payload::Encoded(bytes) => codec::decode::<V>(bytes).map(Arc::new),
        }
    }

    /// The payload in encoded form; `V` is the type a local payload holds.
    pub fn encoded<V: Serialize + Any + Send + Sync>(&self) -> Result<Payload, CodecError> {
        match self {
            Payload::Encoded(_) => Ok(self.clone()),
            Payload::Local(any) => {
                let value = any.downcast_ref::<V>().ok_or_else(|| CodecError::Encode {
                    type_name: std::any::type_name::<V>(),
                    message: "the payload holds a different type".into(),
                })?;
                Ok(Payload::Encoded(codec::encode(value)?.into()))
            }
        }
    }

    /// The payload's size in bytes if encoded (local payloads are sized by their producer).
    pub fn encoded_len(&self) -> Option<usize> {
        match self {
            Payload::Encoded(b) => Some(b.len()),
            Payload::Local(_) => None,
        }
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Local(_) => f.write_str("Payload::Local(..)"),
            Payload::Encoded(b) => write!(f, "Payload::Encoded({} bytes)", b.len()),
        }
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Payload::Encoded(bytes) => serializer.serialize_bytes(bytes),
            Payload::Local(_) => Err(ser::Error::custom(
                "a local payload cannot leave its process; the worker must run in encoding mode",
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Payload, D::Error> {
        struct BytesVisitor;
        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = Payload;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("encoded payload bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Payload, E> {
                Ok(Payload::Encoded(v.into()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Payload, E> {
                Ok(Payload::Encoded(v.into()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Payload, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = seq.next_element::<u8>()? {
                    v.push(b);
                }
                Ok(Payload::Encoded(v.into()))
            }
        }
        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}

/// What a task computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskKind {
    /// Runs an action over one partition and returns its result to the driver.
    Result {
        /// The action.
        action: ActionId,
        /// What the action computes, when it is one of the built-in ones: a worker that does
        /// not have the action's node (it was made where only the driver runs, inside an output
        /// operation) runs this instead.
        builtin: Option<Builtin>,
    },
    /// Computes one map-side partition of a shuffle and stores its buckets on the worker.
    ShuffleMap {
        /// The shuffle.
        shuffle: ShuffleId,
    },
}

/// An action any worker can run over a dataset it has, whoever made the action: its result
/// for a partition is a function of the partition's records alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Builtin {
    /// Every record of the partition, in order (`Vec<T>`).
    Collect,
    /// The number of records of the partition (`u64`).
    Count,
    /// The first `n` records of the partition, in order (`Vec<T>`).
    Take {
        /// How many.
        n: u64,
    },
}

/// What the driver tells a worker that builds the program itself (a graph of its own) so it
/// can rebuild any batch's datasets as the driver made them. Each is sent before any task
/// that needs it, and again to such a worker when it registers, while it still matters.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Fact {
    /// An input batch and its blocks, already stored: the worker's own input streams receive
    /// nothing.
    InputBatch {
        /// The input stream.
        stream: StreamId,
        /// The batch time.
        time: Time,
        /// The zero time of the streaming context: batch `k` is at `zero + k * interval`.
        zero: Time,
        /// The blocks each partition reads, in order.
        partitions: Vec<Vec<BlockId>>,
    },
    /// The results of a job run inside a batch's computation (a sort samples its keys): the
    /// worker's run of the computation takes them instead of running the job.
    JobResult {
        /// The job's action.
        action: ActionId,
        /// Its results, one per partition, encoded.
        results: Vec<Payload>,
    },
    /// A data checkpoint of a stream's dataset a restart reads: first to check it
    /// (`restored: false`), then, once it is found intact, as the stream's dataset at `time`.
    Checkpoint {
        /// The stream.
        stream: StreamId,
        /// The batch time of its dataset.
        time: Time,
        /// Its partitions.
        partitions: u32,
        /// Whether it is hash-partitioned into them.
        hashed: bool,
        /// Whether the stream restarts from it.
        restored: bool,
    },
    /// The batch at `time` completed: the driver generated every output's stream at `time`,
    /// then forgot the datasets of each stream from before `keep_from` (keeping those a data
    /// checkpoint due then may read, counted from `checkpoint_zero`). A worker does the same,
    /// so what it keeps of each stream is what the driver keeps.
    Completed {
        /// The batch time.
        time: Time,
        /// What is kept: batches from this time on (and what each stream remembers beyond).
        keep_from: Time,
        /// The zero time data checkpoints are due from, when the program checkpoints.
        checkpoint_zero: Option<Time>,
    },
    /// A stream's dataset at `time` now reads its checkpoint instead of its parents. A worker
    /// that never generated that batch (it registered after the batch's input was released)
    /// makes the dataset as the cut left it, from what the fact says of it, without its
    /// lineage.
    Cut {
        /// The stream.
        stream: StreamId,
        /// The batch time of its dataset.
        time: Time,
        /// The dataset's id.
        rdd: RddId,
        /// Its partitions.
        partitions: u32,
        /// How its records are placed in them (a child reads a co-partitioned parent narrowly).
        partitioning: Partitioning,
        /// Whether it is persisted (its partitions are cached where they are computed).
        persisted: bool,
    },
}

/// How a dataset's records are placed in its partitions, as far as its children's structure
/// depends on it (see [`Fact::Cut`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Partitioning {
    /// No known placement.
    Unknown,
    /// Hashed into this many partitions.
    Hash(u32),
    /// Ranges of a sort's keys, with the bounds of the sort of this dataset.
    Range(RddId),
}

/// A block a task reads, and the workers that hold it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInput {
    /// The block.
    pub block: BlockId,
    /// Workers holding it, preferred first. Never empty.
    pub locations: Vec<WorkerId>,
}

/// A task to run: small, and free of code. The worker finds the code in its own graph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskDesc {
    /// The task.
    pub task: TaskId,
    /// The attempt number, from zero.
    pub attempt: u32,
    /// The job it serves (the first one, if a stage is shared).
    pub job: JobId,
    /// The stage it belongs to.
    pub stage: StageId,
    /// What it computes.
    pub kind: TaskKind,
    /// The dataset whose partition it computes.
    pub rdd: RddId,
    /// The partition.
    pub partition: u32,
    /// The blocks it reads (cached partitions and shuffle buckets), in the order it reads them.
    pub inputs: Vec<TaskInput>,
    /// Set on the one extra attempt of a task that panicked on every attempt and covers a
    /// stream with dead letters on: its covered operators set the records they panic on aside
    /// instead of failing. `None` on every ordinary attempt.
    pub isolation: Option<Isolation>,
}

/// How a task attempt ended.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum TaskOutcome {
    /// A result task finished; this is its result.
    Result(Payload),
    /// A shuffle map task finished and its buckets are stored on the worker.
    ShuffleMapDone,
    /// The attempt failed.
    Failed(TaskError),
}

/// A message between members of the cluster.
///
/// Every worker-to-driver message carries the sender's `incarnation` (see
/// [`crate::WorkerConfig::incarnation`]) as a field of its own variant rather than in an
/// envelope around the message: transports route `Message`s as they are, driver-to-worker and
/// worker-to-worker messages need no incarnation, and a field makes it impossible to build a
/// worker-to-driver message without one. [`Message::incarnation`] is the one place the driver
/// reads it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Message {
    /// Worker to driver: the first message of a worker (of each incarnation).
    Register {
        /// How many tasks the worker runs at once.
        slots: u32,
        /// The program the worker built, checked against the driver's; `None` for a worker
        /// that shares the driver's graph (in one process), where there is nothing to check.
        program: Option<ProgramSummary>,
        /// The sender's incarnation.
        incarnation: u64,
    },
    /// Worker to driver: the worker is alive; sent every
    /// [`crate::WorkerConfig::heartbeat_interval`] once registered.
    Heartbeat {
        /// The sender's incarnation.
        incarnation: u64,
    },
    /// Driver to worker: the driver accepted the worker.
    Registered,
    /// Driver to worker: the driver refused the worker.
    Refused {
        /// Why.
        reason: String,
    },
    /// Driver to worker: run a task.
    Launch(TaskDesc),
    /// Worker to driver: a task attempt ended.
    TaskFinished {
        /// The task.
        task: TaskId,
        /// The attempt.
        attempt: u32,
        /// How it ended.
        outcome: TaskOutcome,
        /// Blocks the attempt added to the worker's store (shuffle buckets and cached partitions).
        stored: Vec<BlockId>,
        /// The records an isolating attempt set aside (empty unless it succeeded isolating).
        dead_letters: Vec<DeadLetter>,
        /// The sender's incarnation.
        incarnation: u64,
    },
    /// Worker to driver: blocks the worker's store no longer holds.
    BlocksDropped {
        /// The blocks.
        blocks: Vec<BlockId>,
        /// The sender's incarnation.
        incarnation: u64,
    },
    /// Worker to worker: send me a block.
    Fetch {
        /// Chosen by the requester, echoed in the reply.
        request: u64,
        /// The block.
        block: BlockId,
    },
    /// Worker to worker: the reply to [`Message::Fetch`].
    FetchReply {
        /// The request this answers.
        request: u64,
        /// The block.
        block: BlockId,
        /// The block's data, or why it cannot be sent.
        data: Result<Payload, TaskError>,
    },
    /// Driver to worker: drop these blocks, their datasets are gone.
    Release {
        /// Shuffles whose buckets can be dropped.
        shuffles: Vec<ShuffleId>,
        /// Datasets whose cached partitions can be dropped.
        rdds: Vec<RddId>,
        /// Input batches (stream, batch time) nobody reads any more: a worker rebuilding
        /// batches forgets what it was told of them.
        inputs: Vec<(StreamId, Time)>,
        /// Input blocks that can be dropped.
        input_blocks: Vec<BlockId>,
    },
    /// Driver to worker: keep a replica of this block (an input block) until it is released.
    StoreBlock {
        /// The block.
        block: BlockId,
        /// Its data.
        data: Payload,
        /// Its estimated size in bytes.
        bytes: u64,
    },
    /// Driver to a worker with a graph of its own: what it needs to rebuild batches itself
    /// (see [`Fact`]).
    Replay(Fact),
    /// Worker to driver: the reply to [`Message::StoreBlock`].
    BlockStored {
        /// The block.
        block: BlockId,
        /// Whether the store took it, or why not.
        result: Result<(), TaskError>,
        /// The sender's incarnation.
        incarnation: u64,
    },
}

impl Message {
    /// A short name of the message kind, for traces and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Register { .. } => "register",
            Message::Heartbeat { .. } => "heartbeat",
            Message::Registered => "registered",
            Message::Refused { .. } => "refused",
            Message::Launch(_) => "launch",
            Message::TaskFinished { .. } => "task-finished",
            Message::BlocksDropped { .. } => "blocks-dropped",
            Message::Fetch { .. } => "fetch",
            Message::FetchReply { .. } => "fetch-reply",
            Message::Release { .. } => "release",
            Message::StoreBlock { .. } => "store-block",
            Message::Replay(_) => "replay",
            Message::BlockStored { .. } => "block-stored",
        }
    }

    /// The sender's incarnation, for the messages a worker sends to the driver; `None` for
    /// the others.
    pub fn incarnation(&self) -> Option<u64> {
        match self {
            Message::Register { incarnation, .. }
            | Message::Heartbeat { incarnation }
            | Message::TaskFinished { incarnation, .. }
            | Message::BlocksDropped { incarnation, .. }
            | Message::BlockStored { incarnation, .. } => Some(*incarnation),
            Message::Registered
            | Message::Refused { .. }
            | Message::Launch(_)
            | Message::Fetch { .. }
            | Message::FetchReply { .. }
            | Message::Release { .. }
            | Message::StoreBlock { .. }
            | Message::Replay(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_payload_refuses_to_serialize() {
        let p = Payload::local(Arc::new(vec![1u32, 2]));
        assert!(codec::encode(&p).is_err());
        let e = p.encoded::<Vec<u32>>().unwrap();
        let bytes = codec::encode(&e).unwrap();
        let back: Payload = codec::decode(&bytes).unwrap();
        assert_eq!(*back.typed::<Vec<u32>>().unwrap(), vec![1, 2]);
        assert!(p.typed::<Vec<u64>>().is_err());
    }
}
