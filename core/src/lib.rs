//! # dstream
//!
//! Fault-tolerant stream processing with discretized streams: a stream is a series of small,
//! immutable, partitioned datasets ([`Rdd`]s) with lineage, computed by short deterministic
//! batch jobs.
//!
//! This crate holds the data model, the API and the driver and worker state machines. It does
//! no I/O: no sockets, no files, no reading of the clock inside the state machines. Runtimes
//! (`dstream-inproc`, `dstream-tcp`) and the [`StepCluster`] harness drive the same machines.
//!
//! ```
//! use dstream::StepCluster;
//! let cluster = StepCluster::builder().workers(2).build();
//! let ctx = cluster.context();
//! let total = ctx.parallelize((1..=100u64).collect(), 4)?.map(|x| x * 2).reduce(|a, b| a + b)?;
//! assert_eq!(total, 10_100);
//! # Ok::<(), dstream::Error>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod checkpoint;
pub mod codec;
mod context;
mod dead_letter;
pub mod driver;
mod error;
pub mod generator;
mod graph;
mod harness;
pub mod hash;
mod ids;
mod message;
mod rdd;
mod replica;
mod rng;
mod runtime;
mod scheduler;
pub mod storage;
mod stream;
mod task;
mod time;
pub mod transport;
pub mod worker;

pub use checkpoint::Checkpointing;
pub use context::{BlockUpload, Context, JobRequest, JobRunner, DEFAULT_PARALLELISM};
pub use dead_letter::{DeadLetter, Isolation};
pub use driver::{Driver, DriverConfig, DriverEvent, LossReason};
pub use error::{Error, TaskError, TaskErrorKind};
pub use graph::{Graph, ProgramSummary};
pub use harness::{Fault, Step, StepCluster, StepClusterBuilder};
pub use ids::{ActionId, BlockId, JobId, NodeId, RddId, Scope, ShuffleId, StageId, StreamId, TaskId, WorkerId};
pub use message::{Builtin, Fact, Message, Payload, TaskDesc, TaskInput, TaskKind, TaskOutcome};
pub use rdd::{Aggregator, PartitionSource, Rdd};
pub use rng::SplitMix64;
pub use storage::{Storage, StorageError};
pub use stream::state::{MapWithStateDStream, State, StateSpec};
pub use stream::testing;
pub use stream::{
    BatchInfo, CheckpointInfo, DStream, FlowControl, InputHandle, QueueHandle, Receiver, ReceiverContext,
    ReceiverError, StreamingContext, StreamingHandle, StreamingListener, StreamingState,
    INPUT_BUFFER_BYTES_MAX_DEFAULT, INPUT_BUFFER_WAIT_MAX_DEFAULT, RECEIVER_ERRORS_KEPT,
};
pub use time::{Clock, ManualClock, SystemClock, Time};
pub use worker::{RunnableTask, TaskDone, Worker, WorkerConfig};

/// The serde crate dstream encodes records with, re-exported so a program's own record types
/// can derive its traits without depending on serde itself: derive
/// `dstream::serde::Serialize` and `dstream::serde::Deserialize`, and tell the derive where
/// serde is with `#[serde(crate = "dstream::serde")]`.
///
/// # Examples
///
/// ```
/// use dstream::serde::{Deserialize, Serialize};
/// use dstream::testing::StreamTest;
///
/// #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
/// #[serde(crate = "dstream::serde")]
/// struct Click {
///     page: String,
///     millis: u64,
/// }
///
/// let clicks = vec![vec![Click { page: "/".into(), millis: 3 }, Click { page: "/a".into(), millis: 5 }]];
/// let out = StreamTest::new().run(clicks, |s| s.filter(|c: &Click| c.millis > 4).map(|c| c.page))?;
/// assert_eq!(out, vec![vec!["/a".to_string()]]);
/// # Ok::<(), dstream::Error>(())
/// ```
pub use serde;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// What a record must be: shareable between threads, and serializable so it can cross a
/// process. Implemented for every such type.
///
/// A type of your own becomes `Data` by deriving serde's traits through dstream's re-export
/// (see [`serde`]): `#[derive(Clone, dstream::serde::Serialize,
/// dstream::serde::Deserialize)]` with `#[serde(crate = "dstream::serde")]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a dstream record: it is not `Data`",
    label = "not `Data`: a record must be `Clone + Send + Sync + Serialize + DeserializeOwned + 'static`",
    note = "for a type of your own, derive `Clone`, `dstream::serde::Serialize` and `dstream::serde::Deserialize`, with `#[serde(crate = \"dstream::serde\")]` (see `dstream::serde`)"
)]
pub trait Data: Clone + Send + Sync + Serialize + DeserializeOwned + 'static {}

impl<T: Clone + Send + Sync + Serialize + DeserializeOwned + 'static> Data for T {}

/// What a key must be: a record that can be hashed and compared. Implemented for every such
/// type.
pub trait Key: Data + std::hash::Hash + Eq {}

impl<T: Data + std::hash::Hash + Eq> Key for T {}
