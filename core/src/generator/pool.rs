//! The benchmark input drawn from a seed: the vocabulary, Zipf-distributed words, lines of
//! [`RECORD_BYTES`] bytes, and the [`RecordPool`] they are replayed from.

use std::fmt;
use std::sync::{Arc, OnceLock};

use super::{Line, Record, POOL_RECORDS, RECORD_BYTES, SEED, VOCABULARY_WORDS, WORD_LENGTHS};
use crate::hash::FixedState;
use crate::rng::SplitMix64;
use crate::time::Time;

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
