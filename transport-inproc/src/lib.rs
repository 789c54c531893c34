//! # dstream-inproc
//!
//! The in-process runtime of dstream: [`LocalCluster`] runs the driver and N workers as
//! threads of one process, connected by crossbeam channels ([`InProcTransport`]), with tasks on
//! a rayon pool. Partitions move between workers as shared pointers, never serialized.
//!
//! ```
//! use dstream_inproc::LocalCluster;
//! let cluster = LocalCluster::builder().workers(2).build()?;
//! let ctx = cluster.context();
//! let n = ctx.parallelize((0..1000u32).collect(), 8)?.filter(|x| x % 3 == 0).count()?;
//! assert_eq!(n, 334);
//! # Ok::<(), dstream::Error>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod cluster;
pub mod sim;
mod transport;

pub use cluster::{LocalCluster, LocalClusterBuilder};
pub use transport::InProcTransport;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
