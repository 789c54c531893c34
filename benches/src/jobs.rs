//! The three jobs of the benchmark (BENCHMARKS.md: Grep, WordCount, TopKCount), the three
//! implementations measured, and what a batch outputs.

use std::fmt;
use std::time::Duration;

use dstream::generator::GREP_PATTERN;
use dstream::hash::partition_of;

/// The length of the WordCount and TopKCount window.
pub const WINDOW: Duration = Duration::from_secs(30);

/// How many words TopKCount outputs.
pub const TOP_K: usize = 10;

/// A benchmark job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Job {
    /// Count the records that contain [`GREP_PATTERN`], per batch.
    Grep,
    /// Word counts over a window sliding every batch, with the inverse function.
    WordCount,
    /// The [`TOP_K`] most frequent words over a window sliding every batch.
    TopK,
}

impl Job {
    /// All jobs, in report order.
    pub const ALL: [Job; 3] = [Job::Grep, Job::WordCount, Job::TopK];

    /// The job's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Job::Grep => "grep",
            Job::WordCount => "wordcount",
            Job::TopK => "topk",
        }
    }

    /// The job called `name`.
    pub fn parse(name: &str) -> Option<Job> {
        Job::ALL.into_iter().find(|j| j.name() == name)
    }
}

impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An implementation of the jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Impl {
    /// This project, in process (`dstream_inproc::LocalCluster`).
    Dstream,
    /// This project on a driver and two worker processes over TCP on loopback
    /// (`dstream_tcp::Cluster`); the harness's `--transport` chooses it, not `--impls`.
    DstreamTcp,
    /// timely dataflow.
    Timely,
    /// Hand-written threads and hash maps, no framework.
    Baseline,
}

impl Impl {
    /// The implementations `--impls` names, in report order (dstream's TCP runtime,
    /// [`Impl::DstreamTcp`], is reported next to [`Impl::Dstream`]).
    pub const ALL: [Impl; 3] = [Impl::Dstream, Impl::Timely, Impl::Baseline];

    /// The implementation's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Impl::Dstream => "dstream",
            Impl::DstreamTcp => "dstream-tcp",
            Impl::Timely => "timely",
            Impl::Baseline => "baseline",
        }
    }

    /// The implementation called `name`.
    pub fn parse(name: &str) -> Option<Impl> {
        Impl::ALL.into_iter().find(|i| i.name() == name)
    }
}

impl fmt::Display for Impl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How much of a WordCount window a batch outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// Every word and its count (for cross-checks).
    Full,
    /// The number of words and the sum of their counts, computed over the whole window (for
    /// measurements: the work is the same, the output small).
    Summary,
}

/// A batch's output, or one worker's part of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Grep: the matching records.
    Grep(u64),
    /// WordCount in [`Detail::Full`]: every word of the window with its count, by word.
    Counts(Vec<(String, u64)>),
    /// WordCount in [`Detail::Summary`].
    Summary {
        /// Distinct words in the window.
        words: u64,
        /// The sum of their counts.
        total: u64,
    },
    /// TopKCount: the largest counts, largest first, ties by word.
    Top(Vec<(String, u64)>),
}

impl Output {
    /// A WordCount part from a worker's window.
    pub fn of_window<'a>(detail: Detail, window: impl Iterator<Item = (&'a str, u64)>) -> Output {
        match detail {
            Detail::Full => {
                let mut all: Vec<(String, u64)> = window.map(|(w, n)| (w.to_owned(), n)).collect();
                all.sort_unstable();
                Output::Counts(all)
            }
            Detail::Summary => {
                let (mut words, mut total) = (0, 0);
                for (_, n) in window {
                    words += 1;
                    total += n;
                }
                Output::Summary { words, total }
            }
        }
    }

    /// A TopKCount part from a worker's window.
    pub fn top_of<'a>(window: impl Iterator<Item = (&'a str, u64)>) -> Output {
        let best = top_k(TOP_K, window.collect());
        Output::Top(best.into_iter().map(|(w, n)| (w.to_owned(), n)).collect())
    }

    /// Merges the parts of one batch (all of the same kind) into its output.
    pub fn merge(parts: Vec<Output>) -> Output {
        let mut parts = parts.into_iter();
        let Some(mut out) = parts.next() else { return Output::Grep(0) };
        for part in parts {
            match (&mut out, part) {
                (Output::Grep(a), Output::Grep(b)) => *a += b,
                (Output::Counts(a), Output::Counts(b)) => a.extend(b),
                (Output::Summary { words, total }, Output::Summary { words: w, total: t }) => {
                    *words += w;
                    *total += t;
                }
                (Output::Top(a), Output::Top(b)) => a.extend(b),
                // Parts of one batch come from one job; a mismatch would be a harness bug,
                // which the cross-check test would show as a different output.
                (_, other) => out = other,
            }
        }
        match out {
            Output::Counts(mut all) => {
                all.sort_unstable();
                Output::Counts(all)
            }
            Output::Top(all) => Output::Top(top_k(TOP_K, all)),
            other => other,
        }
    }
}

/// Whether a record is a Grep match: it contains [`GREP_PATTERN`].
pub fn grep_matches(line: &[u8]) -> bool {
    // A scan for the pattern's first byte, comparing the rest where it occurs: the
    // straightforward search for a 10-byte pattern in a 100-byte line.
    let pattern = GREP_PATTERN.as_bytes();
    let Some((&first, _)) = pattern.split_first() else { return true };
    let last_start = line.len().saturating_sub(pattern.len());
    line.len() >= pattern.len()
        && line[..=last_start].iter().enumerate().any(|(j, &b)| b == first && &line[j..j + pattern.len()] == pattern)
}

/// The words of a record: its line split at spaces.
pub fn words(line: &[u8; dstream::generator::RECORD_BYTES]) -> impl Iterator<Item = &str> {
    // Records are ASCII (checked by the generator), so this never falls back.
    std::str::from_utf8(line).unwrap_or_default().split_ascii_whitespace()
}

/// Which of `workers` owns a word's window counts.
pub fn owner(word: &str, workers: usize) -> usize {
    partition_of(word, workers)
}

/// The `k` largest counts, largest first, ties by the smaller key: the examples' selection.
pub use dstream_examples::top_k;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_merge_into_the_batch_output() {
        assert_eq!(Output::merge(vec![Output::Grep(2), Output::Grep(3)]), Output::Grep(5));
        let a = Output::Top(vec![("b".into(), 5), ("a".into(), 1)]);
        let b = Output::Top(vec![("a".into(), 5), ("c".into(), 7)]);
        let merged = Output::merge(vec![a, b]);
        assert_eq!(merged, Output::Top(vec![("c".into(), 7), ("a".into(), 5), ("b".into(), 5), ("a".into(), 1)]));
        assert!(grep_matches(format!("xx {GREP_PATTERN} yy").as_bytes()));
        assert!(!grep_matches(b"nothing here"));
    }
}
