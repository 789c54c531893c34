//! # dstream
//!
//! Fault-tolerant stream processing with discretized streams: a stream is a series of small,
//! immutable, partitioned datasets ([`Rdd`]s) with lineage, computed by short deterministic
//! batch jobs. It is the model of Spark Streaming, with its DStream API in Rust casing.
//!
//! This crate holds the data model, the API and the driver and worker state machines. It does
//! no I/O: no sockets, no files, no reading of the clock inside the state machines. Runtimes
//! (`dstream-inproc`, `dstream-tcp`) and the [`StepCluster`] harness drive the same machines;
//! `dstream-storage` has the sources and sinks that touch the outside world (sockets, files,
//! checkpoint storage).
//!
//! ## A streaming quick start
//!
//! A program builds a cluster, a [`StreamingContext`] with a batch interval, input streams,
//! transformations and output operations, then starts it. Word counts over a window of 30 s
//! sliding every 1 s batch, on an in-process cluster (`dstream_inproc::LocalCluster`):
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//! use dstream::{StreamingContext, SystemClock};
//! use dstream_inproc::LocalCluster;
//!
//! let cluster = LocalCluster::builder().workers(2).build()?;
//! let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(SystemClock::new()))?;
//!
//! // An input the program pushes into, from any thread (see also `queue_stream` for tests,
//! // `receiver_stream` for a source of your own, and the sockets and directories of
//! // `dstream_storage::StreamingContextExt`).
//! let (input, lines) = ssc.input_stream::<String>();
//!
//! let counts = lines
//!     .flat_map(|line| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
//!     .map(|word| (word, 1u64))
//!     .reduce_by_key_and_window(|a, b| a + b, Duration::from_secs(30), Duration::from_secs(1))?;
//!
//! // An output operation runs once per batch, on the driver; its actions (`collect`, `count`,
//! // ...) run jobs on the cluster.
//! let latest = Arc::new(Mutex::new(Vec::new()));
//! let sink = Arc::clone(&latest);
//! counts.foreach_rdd(move |rdd, _time| {
//!     let mut window = rdd.collect()?;
//!     window.sort();
//!     *sink.lock().unwrap() = window;
//!     Ok(())
//! })?;
//!
//! // Batches run on a thread of their own until the handle stops them; keep the handle.
//! let running = ssc.start()?;
//! input.push_all(["to be or not to be".to_string()])?;
//! running.stop(true)?; // graceful: every record pushed before the stop is processed
//!
//! let window = latest.lock().unwrap().clone();
//! assert_eq!(window[0], ("be".to_string(), 2));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Tests drive the same program batch by batch, without a clock, with [`ManualClock`] and
//! [`StreamingContext::step`], or with [`testing::StreamTest`]:
//!
//! ```
//! use dstream::testing::StreamTest;
//!
//! let input = vec![vec!["a b a".to_string()], vec!["b".to_string()]];
//! let counts = StreamTest::new().workers(2).run(input, |lines| {
//!     lines.flat_map(|l| l.split(' ').map(str::to_owned).collect::<Vec<_>>()).count()
//! })?;
//! assert_eq!(counts, vec![vec![3], vec![1]]);
//! # Ok::<(), dstream::Error>(())
//! ```
//!
//! ## Where to go next
//!
//! - [`StreamingContext`]: the entry point (inputs, [`start`](StreamingContext::start),
//!   [`get_or_create`](StreamingContext::get_or_create) for checkpoints and restarts) and
//!   [`StreamingHandle`] (stop, await termination).
//! - [`DStream`]: every operator, each with an example; windows, state
//!   ([`DStream::update_state_by_key`], [`DStream::map_with_state`] with [`StateSpec`]) and
//!   outputs ([`DStream::foreach_rdd`], [`DStream::print`]).
//! - [`StreamingListener`] and [`BatchInfo`]: what each batch did, and receiver errors.
//! - [`guide`]: coming from Spark Streaming (a table of names), deployment, monitoring,
//!   fault-tolerance semantics and tuning.
//!
//! The batch engine underneath is usable on its own:
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
pub mod guide;
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
pub use harness::{CostModel, Fault, LinkModel, Step, StepCluster, StepClusterBuilder};
pub use ids::{ActionId, BlockId, JobId, NodeId, RddId, Scope, ShuffleId, StageId, StreamId, TaskId, WorkerId};
pub use message::{Builtin, Fact, Message, Partitioning, Payload, TaskDesc, TaskInput, TaskKind, TaskOutcome};
pub use rdd::{Aggregator, PartitionSource, Rdd};
pub use rng::SplitMix64;
pub use storage::{Storage, StorageError};
pub use stream::state::{MapWithStateDStream, State, StateSpec};
pub use stream::testing;
pub use stream::{
    BatchInfo, CheckpointInfo, DStream, DirectBatch, DirectContext, DirectRead, DirectSource, FlowControl, InputHandle,
    PartitionsAhead, QueueHandle, Receiver, ReceiverContext, ReceiverError, Resumed, StreamingContext, StreamingHandle,
    StreamingListener, StreamingState, INPUT_BUFFER_BYTES_MAX_DEFAULT, INPUT_BUFFER_WAIT_MAX_DEFAULT,
    RECEIVER_ERRORS_KEPT,
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
