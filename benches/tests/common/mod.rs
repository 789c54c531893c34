//! The reference the cross-checks compare every implementation with: each job computed by one
//! thread, batch by batch, with a BTreeMap.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;

use dstream::generator::RecordPool;
use dstream_benches::jobs::{grep_matches, top_k, words, Detail, Job, Output, TOP_K};

/// Batches of each run.
pub const BATCHES: u64 = 7;
/// Consecutive pool records in each batch.
pub const PER_BATCH: u64 = 3_000;
/// The window of WordCount and TopKCount, in batches.
pub const WINDOW_BATCHES: u64 = 3;

/// The outputs computed by one thread, batch by batch, with a BTreeMap.
pub fn reference(job: Job) -> Vec<Output> {
    let pool = RecordPool::standard();
    let mut per_batch: Vec<BTreeMap<String, u64>> = Vec::new();
    let mut out = Vec::new();
    for k in 0..BATCHES {
        let lines: Vec<_> = (k * PER_BATCH..(k + 1) * PER_BATCH).map(|i| pool.line(i)).collect();
        if job == Job::Grep {
            out.push(Output::Grep(lines.iter().filter(|l| grep_matches(&l[..])).count() as u64));
            continue;
        }
        let mut counts = BTreeMap::new();
        for line in &lines {
            for w in words(line) {
                *counts.entry(w.to_string()).or_insert(0) += 1;
            }
        }
        per_batch.push(counts);
        let mut window: BTreeMap<String, u64> = BTreeMap::new();
        for counts in per_batch.iter().rev().take(WINDOW_BATCHES as usize) {
            for (w, n) in counts {
                *window.entry(w.clone()).or_insert(0) += n;
            }
        }
        out.push(match job {
            Job::TopK => Output::Top(top_k(TOP_K, window.into_iter().collect())),
            _ => Output::Counts(window.into_iter().collect()),
        });
    }
    out
}

/// The outputs of `job` in `detail`: a WordCount summary is the reference's window counted.
pub fn expected(job: Job, detail: Detail) -> Vec<Output> {
    let all = reference(job);
    match (job, detail) {
        (Job::WordCount, Detail::Summary) => all
            .into_iter()
            .map(|o| match o {
                Output::Counts(c) => Output::Summary { words: c.len() as u64, total: c.iter().map(|(_, n)| n).sum() },
                other => other,
            })
            .collect(),
        _ => all,
    }
}

/// The details each job is checked in: WordCount's summary is what the harness measures.
pub fn details(job: Job) -> &'static [Detail] {
    match job {
        Job::WordCount => &[Detail::Full, Detail::Summary],
        _ => &[Detail::Full],
    }
}
