//! # dstream-storage
//!
//! Storage for dstream: reading datasets from files, the [`Storage`](dstream::Storage)
//! implementations and the zstd checkpoint format. The core crate does no I/O; this crate does
//! it on its behalf.
//!
//! - [`TextFile`]: a [`PartitionSource`](dstream::PartitionSource) that splits a text file into
//!   byte ranges and reads the lines of each range on the worker that computes it.
//! - [`LocalFs`]: objects as files under a directory, each put atomic and crash-safe.
//! - `S3` (feature `s3`): objects in an S3 bucket, each put atomic, for checkpoints any
//!   machine can restart from.
//! - `KafkaSource` (feature `kafka`): Kafka topics as a direct stream, each record in
//!   exactly one batch across restarts.
//! - [`Memory`]: objects in memory, with scripted [`Fault`]s, for tests and the simulation.
//! - [`SignalsExt::await_termination_or_signal`]: runs a started context until SIGINT (Ctrl-C)
//!   or SIGTERM, then stops it gracefully.
//! - [`PrometheusMetrics`]: per-batch and per-stream metrics of a streaming context, served in
//!   Prometheus's text format by a [`MetricsServer`] (see [`metrics`] for the families).
//! - [`checkpoint`]: the checkpoint file format (header, zstd body, checksums), written and
//!   read as a stream.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod checkpoint;
mod file_stream;
#[cfg(feature = "kafka")]
pub mod kafka;
mod lines;
mod local_fs;
mod memory;
pub mod metrics;
mod report;
#[cfg(feature = "s3")]
pub mod s3;
mod save;
mod signals;
mod socket;
mod stream_ext;
mod temporaries;
mod text_file;

pub use checkpoint::{read_checkpoint, write_checkpoint, CheckpointError, CheckpointHeader, CheckpointStats, Zstd};
pub use file_stream::{FileStreamStats, TextFileStreamReceiver};
#[cfg(feature = "kafka")]
pub use kafka::{KafkaConfig, KafkaError, KafkaOffsets, KafkaRecord, KafkaSource, StartFrom};
pub use local_fs::LocalFs;
pub use memory::{Fault, Memory};
pub use metrics::{MetricsError, MetricsServer, PrometheusMetrics};
#[cfg(feature = "s3")]
pub use s3::{S3Config, S3};
pub use save::{text_files_dir, write_text_dir, SaveError};
pub use signals::{SignalsExt, Termination, EXIT_CODE_SECOND_SIGNAL};
pub use socket::{SocketStats, SocketTextReceiver};
pub use stream_ext::{DStreamExt, RddExt, StreamingContextExt};
pub use text_file::TextFile;

use std::sync::Arc;

/// Checkpointing to `storage` in the zstd format at its default level: what
/// [`StreamingContext::get_or_create`](dstream::StreamingContext::get_or_create) takes.
///
/// ```
/// let checkpoints = dstream_storage::checkpointing(dstream_storage::Memory::new());
/// assert!(format!("{checkpoints:?}").contains("Zstd"));
/// ```
pub fn checkpointing(storage: impl dstream::Storage + 'static) -> dstream::Checkpointing {
    dstream::Checkpointing::new(Arc::new(storage), Arc::new(Zstd::default()))
}
