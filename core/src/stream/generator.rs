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
//!   from [`SplitMix64`] seeded with the seed ([`SEED`] for the benchmarks), in rank order: the
//!   first word drawn is the most frequent.
//! - Words: Zipf with exponent 1.0 over the ranks (`P(rank k) ∝ 1/k`), sampled by binary search
//!   in a precomputed cumulative distribution, from the same generator.
//! - Records: words separated by single spaces and padded with spaces to [`RECORD_BYTES`]; a
//!   word that does not fit starts the next record instead (it never straddles the end).
//! - The pool: [`POOL_RECORDS`] records built once ([`RecordPool::standard`]) and replayed
//!   cyclically, so generating input costs a copy of 100 bytes per record.
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

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};

use super::receiver::{Receiver, ReceiverContext};
use super::{DStream, StreamingContext};
use crate::hash::FixedState;
use crate::rng::SplitMix64;
use crate::time::Time;

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

/// Draws the benchmark input from a seed: the vocabulary, then an endless sequence of lines.
///
/// # Examples
///
/// ```
/// use dstream::generator::{Generator, RECORD_BYTES};
/// let mut generator = Generator::new(42);
/// let line = generator.next_line();
/// assert_eq!(line.len(), RECORD_BYTES);
/// assert!(line.iter().all(|b| *b == b' ' || b.is_ascii_lowercase()));
/// assert_eq!(Generator::new(42).next_line(), line); // the same seed, the same bytes
/// ```
#[derive(Clone)]
pub struct Generator {
    rng: SplitMix64,
    words: Vec<Box<str>>,
    /// `cdf[k]`: the probability of drawing one of the ranks `0..=k`; the last is exactly 1.
    cdf: Vec<f64>,
    /// A word drawn that did not fit in the previous line: it starts the next one.
    pending: Option<usize>,
}

impl fmt::Debug for Generator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generator").field("words", &self.words.len()).finish_non_exhaustive()
    }
}

impl Generator {
    /// A generator seeded with `seed`: builds the vocabulary of [`VOCABULARY_WORDS`] words and
    /// the Zipf distribution over it.
    pub fn new(seed: u64) -> Generator {
        let mut rng = SplitMix64::new(seed);
        let words = vocabulary(&mut rng, VOCABULARY_WORDS);
        let cdf = zipf_cdf(words.len());
        Generator { rng, words, cdf, pending: None }
    }

    /// The vocabulary in rank order: `vocabulary()[0]` is the most frequent word.
    pub fn vocabulary(&self) -> &[Box<str>] {
        &self.words
    }

    /// Draws the rank of one word (0 is the most frequent).
    fn draw(&mut self) -> usize {
        // 53 random bits: a uniform f64 in [0, 1).
        let u = (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        self.cdf.partition_point(|&c| c <= u).min(self.cdf.len() - 1)
    }

    /// The next line: words separated by single spaces, padded with spaces to
    /// [`RECORD_BYTES`].
    pub fn next_line(&mut self) -> Line {
        let mut line = [b' '; RECORD_BYTES];
        let mut len = 0;
        loop {
            let rank = match self.pending.take() {
                Some(rank) => rank,
                None => self.draw(),
            };
            let word = self.words[rank].as_bytes();
            let start = if len == 0 { 0 } else { len + 1 };
            if start + word.len() > RECORD_BYTES {
                // Never straddles the end; a word is at most 10 bytes, so a line holds at least one.
                self.pending = Some(rank);
                return line;
            }
            line[start..start + word.len()].copy_from_slice(word);
            len = start + word.len();
        }
    }
}

impl Iterator for Generator {
    type Item = Line;

    fn next(&mut self) -> Option<Line> {
        Some(self.next_line())
    }
}

/// `n` distinct lowercase words of 3 to 10 letters, in the order drawn.
fn vocabulary(rng: &mut SplitMix64, n: usize) -> Vec<Box<str>> {
    // Only membership is asked of the set, so its iteration order never matters.
    let mut seen: std::collections::HashSet<Box<str>, FixedState> = Default::default();
    let mut words = Vec::with_capacity(n);
    let lengths = WORD_LENGTHS.end() - WORD_LENGTHS.start() + 1;
    while words.len() < n {
        let len = WORD_LENGTHS.start() + rng.below(lengths);
        let word: Box<str> = (0..len).map(|_| char::from(b'a' + rng.below(26) as u8)).collect();
        if seen.insert(word.clone()) {
            words.push(word);
        }
    }
    words
}

/// The cumulative distribution of Zipf(1.0) over ranks `1..=n`, summed in rank order (the same
/// floating-point operations in the same order on every platform).
fn zipf_cdf(n: usize) -> Vec<f64> {
    let mut cdf = Vec::with_capacity(n);
    let mut total = 0.0;
    for k in 1..=n {
        total += 1.0 / k as f64;
        cdf.push(total);
    }
    for c in &mut cdf {
        *c /= total;
    }
    if let Some(last) = cdf.last_mut() {
        *last = 1.0;
    }
    cdf
}

/// A pool of lines built once and replayed cyclically.
///
/// # Examples
///
/// ```
/// use dstream::generator::RecordPool;
/// let pool = RecordPool::new(42, 10);
/// assert_eq!(pool.len(), 10);
/// assert_eq!(pool.line(13), pool.line(3)); // replayed cyclically
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RecordPool {
    lines: Vec<Line>,
}

impl fmt::Debug for RecordPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordPool").field("records", &self.lines.len()).finish()
    }
}

impl RecordPool {
    /// The first `records` lines of a [`Generator`] seeded with `seed` (at least one).
    pub fn new(seed: u64, records: usize) -> RecordPool {
        RecordPool { lines: Generator::new(seed).take(records.max(1)).collect() }
    }

    /// The benchmark pool: [`POOL_RECORDS`] records from seed [`SEED`], built on first use and
    /// shared by the whole process.
    pub fn standard() -> Arc<RecordPool> {
        static POOL: OnceLock<Arc<RecordPool>> = OnceLock::new();
        Arc::clone(POOL.get_or_init(|| Arc::new(RecordPool::new(SEED, POOL_RECORDS))))
    }

    /// The number of distinct records before the pool repeats.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Always false: a pool holds at least one record.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The `index`-th line of the endless replay (`index` modulo [`RecordPool::len`]).
    pub fn line(&self, index: u64) -> &Line {
        // The remainder is below the length, which is a usize.
        &self.lines[(index % self.lines.len() as u64) as usize]
    }

    /// The `index`-th record of the replay, stamped with its emission time.
    pub fn record(&self, index: u64, emitted: Time) -> Record {
        Record { emitted, line: *self.line(index) }
    }

    /// The pool's lines, in order.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }
}

/// One input record: a line of [`RECORD_BYTES`] ASCII bytes and the time it was emitted.
///
/// The line is stored inline, so a record is plain data (112 bytes, `Copy`): a partition of
/// records is one contiguous allocation, cloning a record copies it without touching a shared
/// counter, and it crosses a process as its 100 bytes plus the time. `emitted` is the time the
/// generator's schedule gave the record (on the streaming context's clock), so an end-to-end
/// latency is `output time - emitted`, including any lag of the generator itself.
///
/// # Examples
///
/// ```
/// use dstream::generator::RecordPool;
/// use dstream::Time;
/// let record = RecordPool::new(42, 1).record(0, Time::from_millis(5));
/// assert_eq!(record.as_bytes().len(), 100);
/// assert_eq!(record.line().trim_end().split(' ').count(), record.words().count());
/// assert_eq!(record.emitted, Time::from_millis(5));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Record {
    /// When the record was emitted, on the streaming context's clock.
    pub emitted: Time,
    /// ASCII, so always valid UTF-8 (checked when a record is decoded).
    line: Line,
}

impl Record {
    /// The line as text, with its padding.
    pub fn line(&self) -> &str {
        // Lines are ASCII by construction and by the check in `deserialize`, so this never
        // falls back to the empty string.
        std::str::from_utf8(&self.line).unwrap_or_default()
    }

    /// The line's bytes, with its padding.
    pub fn as_bytes(&self) -> &Line {
        &self.line
    }

    /// The words of the line, in order.
    pub fn words(&self) -> impl Iterator<Item = &str> {
        self.line().split_ascii_whitespace()
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record").field("emitted", &self.emitted).field("line", &self.line().trim_end()).finish()
    }
}

/// Serializes the line as one byte string (serde derives only arrays of up to 32 elements).
struct LineBytes<'a>(&'a Line);

impl Serialize for LineBytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&self.emitted)?;
        t.serialize_element(&LineBytes(&self.line))?;
        t.end()
    }
}

/// Reads a line back from bytes (or a sequence of numbers, for formats without bytes),
/// refusing anything but [`RECORD_BYTES`] ASCII bytes.
struct LineBuf(Line);

impl<'de> Deserialize<'de> for LineBuf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<LineBuf, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LineBuf;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{RECORD_BYTES} ASCII bytes")
            }

            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<LineBuf, E> {
                let line: Line = v.try_into().map_err(|_| E::invalid_length(v.len(), &self))?;
                if !line.is_ascii() {
                    return Err(E::invalid_value(de::Unexpected::Bytes(v), &self));
                }
                Ok(LineBuf(line))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LineBuf, A::Error> {
                let mut bytes = Vec::with_capacity(RECORD_BYTES);
                while let Some(b) = seq.next_element::<u8>()? {
                    if bytes.len() == RECORD_BYTES {
                        return Err(de::Error::invalid_length(RECORD_BYTES + 1, &self));
                    }
                    bytes.push(b);
                }
                self.visit_bytes(&bytes)
            }
        }
        d.deserialize_bytes(V)
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Record, D::Error> {
        let (emitted, LineBuf(line)) = <(Time, LineBuf)>::deserialize(d)?;
        Ok(Record { emitted, line })
    }
}

/// A [`Receiver`] that replays a [`RecordPool`] at a target rate, open loop.
///
/// Record `i` (counted from 0) is due at `start + (i + 1) / rate`; it is stamped with that time as
/// [`Record::emitted`]. Each round the receiver reads the context's clock, stores every record
/// due by then (in chunks of at most [`GeneratorReceiver::chunk_records`]), and waits on the
/// clock until the next record is due, but at least one round interval (1 ms by default), so a
/// high rate is served in bursts rather than one wake-up per record. When the engine or the
/// generator falls behind, the due records are stored at once with their scheduled times: the
/// latency measured includes the lag, as an open-loop load generator must (no coordinated
/// omission). When stopped, it stores the records due by the time of the stop, then returns.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use dstream::generator::{GeneratorReceiver, RecordPool};
/// use dstream::{ManualClock, StepCluster, StreamingContext, Time};
///
/// let clock = Arc::new(ManualClock::new(Time::ZERO));
/// let cluster = StepCluster::builder().build();
/// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), clock.clone())?;
/// let receiver = GeneratorReceiver::new(Arc::new(RecordPool::new(42, 100)), 10)
///     .start_time(Time::ZERO)
///     .chunk_records(4);
/// let records = ssc.receiver_stream(receiver);
/// records.foreach_rdd(|_, _| Ok(()))?;
/// ssc.start_receivers()?;
/// clock.advance(Duration::from_secs(1));
/// ssc.stop_receivers();
/// assert_eq!(ssc.step()?.records, 10);
/// # Ok::<(), dstream::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct GeneratorReceiver {
    pool: Arc<RecordPool>,
    rate: u64,
    chunk: usize,
    round: Duration,
    start: Option<Time>,
    first: u64,
    /// This receiver's share of the schedule: records `i` with `i % share.1 == share.0`.
    share: (u64, u64),
}

impl GeneratorReceiver {
    /// Replays `pool` at `rate` records per second (0 emits nothing).
    pub fn new(pool: Arc<RecordPool>, rate: u64) -> GeneratorReceiver {
        GeneratorReceiver {
            pool,
            rate,
            chunk: 4096,
            round: Duration::from_millis(1),
            start: None,
            first: 0,
            share: (0, 1),
        }
    }

    /// The most records stored in one call (default 4096; at least 1).
    pub fn chunk_records(mut self, n: usize) -> Self {
        self.chunk = n.max(1);
        self
    }

    /// The shortest wait between two rounds (default 1 ms).
    pub fn round_interval(mut self, d: Duration) -> Self {
        self.round = d;
        self
    }

    /// The time record 0 is due (default: the clock's time when the receiver starts). Fixing it
    /// makes a run under a manual clock independent of when the receiver's thread starts.
    pub fn start_time(mut self, start: Time) -> Self {
        self.start = Some(start);
        self
    }

    /// The pool index of record 0 (default 0), so that several generators replay different
    /// parts of the pool.
    pub fn pool_offset(mut self, index: u64) -> Self {
        self.first = index;
        self
    }

    /// Makes this receiver one of `of` that replay the schedule together, for input on several
    /// threads: it emits the records `i` with `i % of == index`, each at its due time on the
    /// whole schedule at `rate`, so the union of the `of` receivers' streams holds the records
    /// one receiver at `rate` would. An `index` of `of` or more is taken modulo `of`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use dstream::generator::{GeneratorReceiver, RecordPool};
    /// use dstream::{ManualClock, StepCluster, StreamingContext, Time};
    ///
    /// let clock = Arc::new(ManualClock::new(Time::ZERO));
    /// let cluster = StepCluster::builder().build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), clock.clone())?;
    /// let pool = Arc::new(RecordPool::new(7, 100));
    /// let parts: Vec<_> = (0..3)
    ///     .map(|i| ssc.receiver_stream(GeneratorReceiver::new(Arc::clone(&pool), 10).start_time(Time::ZERO).share(i, 3)))
    ///     .collect();
    /// let all = parts[0].union(&parts[1..])?;
    /// all.foreach_rdd(|_, _| Ok(()))?;
    /// ssc.start_receivers()?;
    /// clock.advance(Duration::from_secs(1));
    /// ssc.stop_receivers();
    /// assert_eq!(ssc.step()?.records, 10);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn share(mut self, index: u64, of: u64) -> Self {
        let of = of.max(1);
        self.share = (index % of, of);
        self
    }

    /// How many of this receiver's records are due at `now`.
    fn due_share(&self, start: Time, now: Time) -> u64 {
        let (index, of) = self.share;
        // Global records 0..due, of which those congruent to `index`.
        self.due(start, now).saturating_sub(index).div_ceil(of)
    }

    /// How many records are due at `now`: those whose [`GeneratorReceiver::due_time`] is at
    /// or before it.
    fn due(&self, start: Time, now: Time) -> u64 {
        if now < start {
            return 0;
        }
        // Record i is due floor((i + 1) * 1e9 / rate) ns after the start, so the ones due
        // within `e` ns are those with (i + 1) * 1e9 < (e + 1) * rate.
        let e = u128::from(now.as_nanos() - start.as_nanos());
        let due = ((e + 1) * u128::from(self.rate)).div_ceil(1_000_000_000).saturating_sub(1);
        u64::try_from(due).unwrap_or(u64::MAX)
    }

    /// When record `i` is due: `(i + 1) / rate` seconds after the start, so that `n` records
    /// are due `n / rate` seconds after it.
    fn due_time(&self, start: Time, i: u64) -> Time {
        if self.rate == 0 {
            return Time::from_nanos(u64::MAX);
        }
        let offset = (u128::from(i) + 1) * 1_000_000_000 / u128::from(self.rate);
        Time::from_nanos(start.as_nanos().saturating_add(u64::try_from(offset).unwrap_or(u64::MAX)))
    }
}

impl Receiver<Record> for GeneratorReceiver {
    fn run(&mut self, ctx: &ReceiverContext<Record>) -> Result<(), String> {
        let clock = Arc::clone(ctx.clock());
        let start = self.start.unwrap_or_else(|| clock.now());
        let mut emitted: u64 = 0;
        let (index, of) = self.share;
        // This receiver's k-th record is record `index + k * of` of the whole schedule.
        let global = |k: u64| index.saturating_add(k.saturating_mul(of));
        loop {
            let now = clock.now();
            let due = self.due_share(start, now);
            while emitted < due {
                let n = (due - emitted).min(self.chunk as u64);
                let chunk: Vec<Record> = (emitted..emitted + n)
                    .map(|k| self.pool.record(self.first.wrapping_add(global(k)), self.due_time(start, global(k))))
                    .collect();
                if ctx.store(chunk).is_err() {
                    // The context stopped accepting input: nothing more can be delivered.
                    return Ok(());
                }
                emitted += n;
            }
            if ctx.is_stopped() {
                return Ok(());
            }
            let next = self.due_time(start, global(emitted)).max(now + self.round);
            // Returns early when stopped; the next round stores what is due by then and exits.
            ctx.wait_until(next);
        }
    }
}

impl StreamingContext {
    /// A stream of benchmark records replayed from `pool` at `rate` records per second, by a
    /// [`GeneratorReceiver`] with its default settings (use
    /// [`StreamingContext::receiver_stream`] with a configured receiver for others).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use dstream::generator::RecordPool;
    /// use dstream::{ManualClock, StepCluster, StreamingContext, Time};
    ///
    /// let clock = Arc::new(ManualClock::new(Time::ZERO));
    /// let cluster = StepCluster::builder().build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_millis(500), clock.clone())?;
    /// let words = ssc
    ///     .generator_stream(Arc::new(RecordPool::new(42, 100)), 1_000)
    ///     .flat_map(|r| r.words().map(str::to_owned).collect::<Vec<_>>());
    /// words.count().foreach_rdd(|_, _| Ok(()))?;
    /// ssc.start_receivers()?;
    /// ssc.stop_receivers();
    /// ssc.step()?;
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn generator_stream(&self, pool: Arc<RecordPool>, rate: u64) -> DStream<Record> {
        self.receiver_stream(GeneratorReceiver::new(pool, rate))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;
    use crate::harness::StepCluster;
    use crate::time::ManualClock;

    fn standard_words() -> &'static [Box<str>] {
        static WORDS: OnceLock<Vec<Box<str>>> = OnceLock::new();
        WORDS.get_or_init(|| Generator::new(SEED).vocabulary().to_vec())
    }

    #[test]
    fn records_are_exactly_100_ascii_bytes_of_words_and_padding() {
        let pool = RecordPool::standard();
        let vocabulary: std::collections::HashSet<&str> = standard_words().iter().map(|w| &**w).collect();
        for line in pool.lines().iter().take(10_000) {
            let text = std::str::from_utf8(line).expect("ascii");
            assert_eq!(text.len(), RECORD_BYTES);
            assert!(!text.starts_with(' '), "a record starts with a word: {text:?}");
            let words = text.trim_end();
            assert!(!words.contains("  "), "single spaces between words: {text:?}");
            assert!(words.split(' ').all(|w| vocabulary.contains(w)), "only vocabulary words: {text:?}");
            // Padding is shorter than the next word plus a space would need... unless the line
            // is full: a word never straddles, so at most 10 spaces of padding remain.
            assert!(RECORD_BYTES - words.len() <= *WORD_LENGTHS.end(), "{text:?}");
        }
    }

    #[test]
    fn vocabulary_has_distinct_lowercase_words_of_3_to_10_letters() {
        let words = standard_words();
        assert_eq!(words.len(), VOCABULARY_WORDS);
        let distinct: std::collections::BTreeSet<&str> = words.iter().map(|w| &**w).collect();
        assert_eq!(distinct.len(), VOCABULARY_WORDS);
        for w in words {
            assert!(WORD_LENGTHS.contains(&w.len()) && w.bytes().all(|b| b.is_ascii_lowercase()), "{w}");
        }
    }

    #[test]
    fn same_seed_same_records_other_seed_other_records() {
        let a = RecordPool::new(SEED, 500);
        assert_eq!(a, RecordPool::new(SEED, 500));
        assert_eq!(a.lines(), &RecordPool::standard().lines()[..500]);
        assert_ne!(a, RecordPool::new(SEED + 1, 500));
    }

    #[test]
    fn the_standard_pool_does_not_change() {
        // The bytes every implementation measures: a change here changes the benchmark.
        let pool = RecordPool::standard();
        let first = std::str::from_utf8(pool.line(0)).expect("ascii").trim_end().to_owned();
        let hash = pool.lines().iter().fold(0xcbf2_9ce4_8422_2325u64, |h, line| {
            line.iter().fold(h, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
        });
        assert_eq!(
            (first.as_str(), hash),
            (
                "pdvffclhwx lxfolgh sgflps zwyhs vik zwyhs zwyhs fsriih afdaej krag amzt ecijexl fsswsps amzt qbv",
                9_697_521_272_647_539_098
            )
        );
    }

    /// Occurrences of each rank in the standard pool.
    fn word_counts() -> Vec<u64> {
        let words = standard_words();
        let rank: std::collections::HashMap<&str, usize> = words.iter().enumerate().map(|(i, w)| (&**w, i)).collect();
        let mut counts = vec![0u64; words.len()];
        for line in RecordPool::standard().lines() {
            for w in std::str::from_utf8(line).expect("ascii").split_ascii_whitespace() {
                counts[rank[w]] += 1;
            }
        }
        counts
    }

    #[test]
    fn words_follow_zipf_with_exponent_one() {
        let counts = word_counts();
        let total: u64 = counts.iter().sum();
        let harmonic: f64 = (1..=VOCABULARY_WORDS).map(|k| 1.0 / k as f64).sum();
        // Rank 1 has probability 1/H(n); rank k about 1/k of that.
        let expected_top = total as f64 / harmonic;
        assert!((counts[0] as f64 / expected_top - 1.0).abs() < 0.02, "top {} vs {expected_top}", counts[0]);
        let ratio = counts[0] as f64 / counts[1] as f64;
        assert!((ratio - 2.0).abs() < 0.1, "rank 1 / rank 2 = {ratio}");
        let mut sorted = counts.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let median = sorted[sorted.len() / 2].max(1);
        assert!(sorted[0] > 10_000 * median, "most frequent {} vs median {median}", sorted[0]);
    }

    /// Records containing `word` as a whole word, and as a substring.
    fn record_counts(word: &str) -> (usize, usize) {
        let pool = RecordPool::standard();
        fn text(l: &Line) -> &str {
            std::str::from_utf8(l).expect("ascii")
        }
        let whole = pool.lines().iter().filter(|l| text(l).split_ascii_whitespace().any(|w| w == word)).count();
        let sub = pool.lines().iter().filter(|l| text(l).contains(word)).count();
        (whole, sub)
    }

    #[test]
    fn the_grep_pattern_matches_one_record_in_a_thousand() {
        let (whole, sub) = record_counts(GREP_PATTERN);
        assert_eq!((whole, sub), (POOL_RECORDS / 1000, POOL_RECORDS / 1000));
    }

    #[test]
    fn the_grep_pattern_is_the_rule_s_choice() {
        // Recomputes GREP_PATTERN by its documented rule: among words whose whole-word and
        // substring record counts agree, the count nearest to 1 in 1,000, lowest rank first.
        let pool = RecordPool::standard();
        let words = standard_words();
        let rank: std::collections::HashMap<&str, usize> = words.iter().enumerate().map(|(i, w)| (&**w, i)).collect();
        let mut records_with = vec![0usize; words.len()];
        for line in pool.lines() {
            let mut ranks: Vec<usize> =
                std::str::from_utf8(line).expect("ascii").split_ascii_whitespace().map(|w| rank[w]).collect();
            ranks.sort_unstable();
            ranks.dedup();
            ranks.into_iter().for_each(|r| records_with[r] += 1);
        }
        let target = POOL_RECORDS / 1000;
        let mut candidates: Vec<(usize, usize)> =
            records_with.iter().enumerate().map(|(r, n)| (n.abs_diff(target), r)).collect();
        candidates.sort_unstable();
        let chosen = candidates
            .into_iter()
            .map(|(_, r)| &*words[r])
            .find(|w| {
                let (whole, sub) = record_counts(w);
                whole == sub
            })
            .expect("a word qualifies");
        assert_eq!(chosen, GREP_PATTERN);
    }

    #[test]
    fn records_survive_the_codec_and_bad_lines_are_refused() {
        let record = RecordPool::new(SEED, 3).record(2, Time::from_millis(7));
        let bytes = crate::codec::encode(&record).expect("encodes");
        let back: Record = crate::codec::decode(&bytes).expect("decodes");
        assert_eq!(back, record);
        assert_eq!(std::mem::size_of::<Record>(), 112, "as documented");
        let short = crate::codec::encode(&(Time::ZERO, serde_bytes_of(&[b'a'; 99]))).expect("encodes");
        assert!(crate::codec::decode::<Record>(&short).is_err());
        let mut non_ascii = [b'a'; RECORD_BYTES];
        non_ascii[5] = 0xff;
        let bad = crate::codec::encode(&(Time::ZERO, serde_bytes_of(&non_ascii))).expect("encodes");
        assert!(crate::codec::decode::<Record>(&bad).is_err());
    }

    /// A byte string as serde sees one (not a sequence).
    fn serde_bytes_of(b: &[u8]) -> impl Serialize + '_ {
        struct B<'a>(&'a [u8]);
        impl Serialize for B<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        B(b)
    }

    /// A context on a manual clock collecting every record of a generated stream, by batch.
    fn generated(receiver: GeneratorReceiver) -> (StreamingContext, Arc<ManualClock>, Arc<Mutex<Vec<Vec<Record>>>>) {
        let clock = Arc::new(ManualClock::new(Time::ZERO));
        let cluster = StepCluster::builder().workers(2).build();
        let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), clock.clone()).expect("context");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        ssc.receiver_stream(receiver)
            .foreach_rdd(move |rdd, _| {
                sink.lock().expect("lock").push(rdd.collect()?);
                Ok(())
            })
            .expect("output");
        (ssc, clock, seen)
    }

    #[test]
    fn the_receiver_emits_the_records_due_stamped_with_their_schedule() {
        let pool = Arc::new(RecordPool::new(SEED, 7));
        let receiver =
            GeneratorReceiver::new(Arc::clone(&pool), 1_000).start_time(Time::ZERO).chunk_records(64).pool_offset(3);
        let (ssc, clock, seen) = generated(receiver);
        ssc.start_receivers().expect("start");
        clock.advance(Duration::from_millis(250));
        clock.advance(Duration::from_millis(250));
        ssc.stop_receivers();
        assert_eq!(ssc.step().expect("batch").records, 500);
        let records: Vec<Record> = seen.lock().expect("lock").concat();
        assert_eq!(records.len(), 500, "one record per millisecond");
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.emitted, Time::from_millis(i as u64 + 1));
            assert_eq!(r.as_bytes(), pool.line(i as u64 + 3));
        }
    }

    #[test]
    fn shared_receivers_together_emit_the_single_schedule() {
        let pool = Arc::new(RecordPool::new(SEED, 7));
        for of in [1u64, 2, 3, 7] {
            let mut all: Vec<Record> = Vec::new();
            for index in 0..of {
                let receiver = GeneratorReceiver::new(Arc::clone(&pool), 1_000)
                    .start_time(Time::ZERO)
                    .chunk_records(64)
                    .pool_offset(3)
                    .share(index, of);
                let (ssc, clock, seen) = generated(receiver);
                ssc.start_receivers().expect("start");
                clock.advance(Duration::from_millis(500));
                ssc.stop_receivers();
                ssc.step().expect("batch");
                let mine: Vec<Record> = seen.lock().expect("lock").concat();
                let at = format!("receiver {index} of {of}");
                assert!(mine.iter().all(|r| (r.emitted.as_nanos() / 1_000_000 - 1) % of == index), "{at}");
                all.extend(mine);
            }
            all.sort_by_key(|r| r.emitted);
            assert_eq!(all.len(), 500, "{of} receivers");
            for (i, r) in all.iter().enumerate() {
                assert_eq!(r.emitted, Time::from_millis(i as u64 + 1), "{of} receivers");
                assert_eq!(r.as_bytes(), pool.line(i as u64 + 3), "{of} receivers");
            }
        }
    }

    #[test]
    fn a_stopped_receiver_returns_while_waiting_on_a_manual_clock() {
        // Nothing is due for 100 s: the receiver waits on the clock until the stop wakes it.
        let receiver = GeneratorReceiver::new(Arc::new(RecordPool::new(SEED, 7)), 1).start_time(Time::from_millis(1));
        let (ssc, _clock, _seen) = generated(receiver);
        ssc.start_receivers().expect("start");
        ssc.stop_receivers();
        assert_eq!(ssc.step().expect("batch").records, 0);
    }

    #[test]
    fn rate_zero_emits_nothing() {
        let receiver = GeneratorReceiver::new(Arc::new(RecordPool::new(SEED, 7)), 0).start_time(Time::ZERO);
        let (ssc, clock, _seen) = generated(receiver);
        ssc.start_receivers().expect("start");
        clock.advance(Duration::from_secs(10));
        ssc.stop_receivers();
        assert_eq!(ssc.step().expect("batch").records, 0);
    }

    #[test]
    fn due_counts_follow_the_rate() {
        let g = GeneratorReceiver::new(Arc::new(RecordPool::new(SEED, 1)), 3);
        let start = Time::from_millis(1000);
        let due: BTreeMap<u64, u64> =
            [0, 999, 1000, 1333, 1334, 2000].iter().map(|ms| (*ms, g.due(start, Time::from_millis(*ms)))).collect();
        assert_eq!(due.into_values().collect::<Vec<_>>(), vec![0, 0, 0, 0, 1, 3]);
        assert_eq!(g.due_time(start, 0), Time::from_nanos(1_333_333_333));
        assert_eq!(g.due_time(start, 1), Time::from_nanos(1_666_666_666));
        assert_eq!(g.due(start, g.due_time(start, 1)), 2);
        assert_eq!(g.due(start, Time::from_nanos(1_666_666_665)), 1);
    }
}
