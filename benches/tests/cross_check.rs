//! The three implementations compute the same answers: each job runs without a clock (batch
//! `k` is a fixed number of consecutive pool records) on dstream, timely and the baseline, and
//! every batch's output must equal a plain sequential reference computed here.
#![allow(clippy::unwrap_used)] // Integration tests are test code.

use std::collections::BTreeMap;

use dstream::generator::RecordPool;
use dstream_benches::jobs::{grep_matches, top_k, words, Detail, Impl, Job, Output, TOP_K};
use dstream_benches::{run_fixed, Setup};

const BATCHES: u64 = 7;
const PER_BATCH: u64 = 3_000;
const WINDOW_BATCHES: u64 = 3;

/// The outputs computed by one thread, batch by batch, with a BTreeMap.
fn reference(job: Job) -> Vec<Output> {
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

fn check(job: Job) {
    let expected = reference(job);
    for imp in Impl::ALL {
        for workers in [1, 3] {
            let setup = Setup { job, workers, window_batches: WINDOW_BATCHES, detail: Detail::Full };
            let got = run_fixed(imp, &setup, BATCHES, PER_BATCH).unwrap();
            assert_eq!(got.len(), expected.len(), "{imp} {job} with {workers} workers");
            for (k, (g, e)) in got.iter().zip(&expected).enumerate() {
                assert!(
                    g == e,
                    "{imp} {job} with {workers} workers: batch {k} differs:\n got {g:.200?}\nwant {e:.200?}"
                );
            }
        }
    }
}

#[test]
fn the_reference_is_not_trivial() {
    // Grep finds matches, windows hold thousands of words and lose the batches leaving them.
    let grep = reference(Job::Grep);
    assert!(grep.iter().any(|o| *o != Output::Grep(0)));
    let counts = reference(Job::WordCount);
    let total = |o: &Output| match o {
        Output::Counts(c) => c.iter().map(|(_, n)| n).sum::<u64>(),
        _ => 0,
    };
    assert!(total(&counts[2]) > total(&counts[1]) && total(&counts[6]) < 2 * total(&counts[2]));
    let Output::Top(top) = &reference(Job::TopK)[6] else { panic!("not a top") };
    assert_eq!(top.len(), TOP_K);
}

#[test]
fn grep_is_the_same_everywhere() {
    check(Job::Grep);
}

#[test]
fn wordcount_is_the_same_everywhere() {
    check(Job::WordCount);
}

#[test]
fn topk_is_the_same_everywhere() {
    check(Job::TopK);
}
