//! Guides: how to run, watch, trust and tune a dstream program, for a reader who knows Spark
//! Streaming or is meeting discretized streams for the first time.
//!
//! This module holds documentation only. Each page is a markdown file beside this one
//! (`core/src/guide/*.md`, readable as it is in the repository); rendered here, its names link
//! to the API, and its Rust code blocks are compiled and run as doc tests.
//!
//! - [`from_spark`]: Spark Streaming's names and where they live in dstream, including
//!   `awaitTermination`, `stop` and `numPartitions`.
//! - [`deployment`]: how a program runs today (embedded in one process), what the stepping
//!   cluster is for, and what does not exist yet (a cluster of processes over TCP).
//! - [`monitoring`]: the listener and its `BatchInfo`, receiver errors, logs through `tracing`.
//! - [`fault_tolerance`]: what is exactly once, what is at least once, what is lost, and
//!   what a restart does.
//! - [`tuning`]: the batch interval, partitions, the block interval, and memory (the input
//!   buffers' bounds, the block store, checkpoints).

#[doc = include_str!("from_spark.md")]
pub mod from_spark {}

#[doc = include_str!("deployment.md")]
pub mod deployment {}

#[doc = include_str!("monitoring.md")]
pub mod monitoring {}

#[doc = include_str!("fault_tolerance.md")]
pub mod fault_tolerance {}

#[doc = include_str!("tuning.md")]
pub mod tuning {}
