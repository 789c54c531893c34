//! The three implementations compute the same answers: each job runs without a clock (batch
//! `k` is a fixed number of consecutive pool records) on dstream, timely and the baseline, and
//! every batch's output must equal a plain sequential reference (`common/mod.rs`).
//! `cross_check_tcp.rs` checks dstream's TCP runtime against the same reference.
#![allow(clippy::unwrap_used)] // Integration tests are test code.

mod common;

use common::{details, expected, reference, BATCHES, PER_BATCH, WINDOW_BATCHES};
use dstream_benches::jobs::{Impl, Job, Output, TOP_K};
use dstream_benches::{run_fixed, Setup};

fn check(job: Job) {
    for &detail in details(job) {
        let expected = expected(job, detail);
        for imp in Impl::ALL {
            for workers in [1, 3] {
                let setup = Setup { job, workers, window_batches: WINDOW_BATCHES, detail };
                let got = run_fixed(imp, &setup, BATCHES, PER_BATCH).unwrap();
                let run = format!("{imp} {job} ({detail:?}) with {workers} workers");
                assert_eq!(got.len(), expected.len(), "{run}");
                for (k, (g, e)) in got.iter().zip(&expected).enumerate() {
                    assert!(g == e, "{run}: batch {k} differs:\n got {g:.200?}\nwant {e:.200?}");
                }
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
