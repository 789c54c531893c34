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

mod file_stream;
mod save;
mod socket;
mod stream_ext;
mod text_file;
mod wait;

pub use file_stream::{FileStreamStats, TextFileStreamReceiver};
pub use save::{text_files_dir, write_text_dir, SaveError};
pub use socket::{SocketStats, SocketTextReceiver};
pub use stream_ext::{DStreamExt, RddExt, StreamingContextExt};
pub use text_file::TextFile;
