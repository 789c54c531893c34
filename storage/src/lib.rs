//! # dstream-storage
//!
//! Storage for dstream: reading datasets from files, and (in later versions) the `Storage`
//! implementations and the zstd checkpoint format. The core crate does no I/O; this crate does
//! it on its behalf.
//!
//! - [`TextFile`]: a [`PartitionSource`](dstream::PartitionSource) that splits a text file into
//!   byte ranges and reads the lines of each range on the worker that computes it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod text_file;

pub use text_file::TextFile;
