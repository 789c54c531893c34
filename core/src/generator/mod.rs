//! The synthetic input of the benchmarks (`BENCHMARKS.md`): records of exactly 100 ASCII bytes
//! made of words drawn with a Zipf distribution from a fixed vocabulary, pre-built into a pool
//! and replayed at a target rate by a [`GeneratorReceiver`].
//!
//! Everything here is pure computation from a seed, so the same seed gives the same bytes on
//! every platform and in every implementation that links this crate (ours, the peer, the
//! hand-written baseline). The receiver reads time from the streaming context's clock; it does
//! no I/O.
//!
//! - The vocabulary: [`VOCABULARY_WORDS`] distinct lowercase words of 3 to 10 letters, drawn
//!   from [`SplitMix64`](crate::SplitMix64) seeded with the seed ([`SEED`] for the
//!   benchmarks), in rank order: the first word drawn is the most frequent.
//! - Words: Zipf with exponent 1.0 over the ranks (`P(rank k) ∝ 1/k`), sampled by binary search
//!   in a precomputed cumulative distribution, from the same generator.
//! - Records: words separated by single spaces and padded with spaces to [`RECORD_BYTES`]; a
//!   word that does not fit starts the next record instead (it never straddles the end).
//! - The pool: [`POOL_RECORDS`] records built once ([`RecordPool::standard`]) and replayed
//!   cyclically, so generating input costs a copy of 100 bytes per record.
//!
//! The code: `pool.rs` draws the input ([`Generator`], [`RecordPool`]); `record.rs` is the
//! [`Record`] and its encoding; `receiver.rs` the paced [`GeneratorReceiver`] and
//! [`StreamingContext::generator_stream`](crate::StreamingContext::generator_stream).
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use dstream::generator::{GeneratorReceiver, RecordPool, GREP_PATTERN};
//! use dstream::{ManualClock, StepCluster, StreamingContext, Time};
//!
//! let pool = Arc::new(RecordPool::new(42, 1_000));
//! let clock = Arc::new(ManualClock::new(Time::ZERO));
//! let cluster = StepCluster::builder().build();
//! let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), clock.clone())?;
//! // 2,000 records per second from time zero (by default, from the receiver's start).
//! let records = ssc.receiver_stream(GeneratorReceiver::new(pool, 2_000).start_time(Time::ZERO));
//! records.filter(|r| r.words().any(|w| w == GREP_PATTERN)).count().foreach_rdd(|_, _| Ok(()))?;
//! ssc.start_receivers()?;
//! clock.advance(Duration::from_millis(250));
//! ssc.stop_receivers(); // stores the records due by now (500) and returns
//! assert_eq!(ssc.step()?.records, 500);
//! # Ok::<(), dstream::Error>(())
//! ```

mod pool;
mod receiver;
mod record;
#[cfg(test)]
mod tests;

pub use pool::{Generator, RecordPool};
pub use receiver::{GeneratorReceiver, CHUNK_RECORDS_DEFAULT};
pub use record::Record;

/// The size of every record, in bytes.
pub const RECORD_BYTES: usize = 100;

/// The number of distinct words in the vocabulary.
pub const VOCABULARY_WORDS: usize = 100_000;

/// The seed of the benchmark input.
pub const SEED: u64 = 42;

/// The number of records in the benchmark pool ([`RecordPool::standard`]).
pub const POOL_RECORDS: usize = 100_000;

/// The word the Grep job looks for: in the standard pool it occurs, as a whole word and as a
/// substring, in 100 of the 100,000 records (1 in 1,000). It was chosen, among the words whose
/// whole-word and substring record counts are equal, as the one whose count is nearest to 1 in
/// 1,000 (ties to the more frequent rank); the tests recompute this.
pub const GREP_PATTERN: &str = "xhvoukrvrk";

/// The shortest and longest words of the vocabulary.
const WORD_LENGTHS: std::ops::RangeInclusive<usize> = 3..=10;

/// One line of the input: [`RECORD_BYTES`] ASCII bytes.
pub type Line = [u8; RECORD_BYTES];
