//! dstream on a driver and two worker processes over TCP computes the answers of the
//! reference (`common/mod.rs`), batch by batch, as `cross_check.rs` checks for the others.
//!
//! Its own `main` (`harness = false`): the worker processes of each run are this executable
//! again, given the run's program in their arguments, and must build it rather than run the
//! tests ([`serve_if_worker`]).
#![allow(clippy::unwrap_used, clippy::print_stdout)] // Test code, reporting as libtest does.

mod common;

use std::process::ExitCode;

use common::{details, expected, BATCHES, PER_BATCH, WINDOW_BATCHES};
use dstream_benches::dstream_tcp_jobs::serve_if_worker;
use dstream_benches::jobs::{Impl, Job};
use dstream_benches::{run_fixed, Setup};

/// Each job with one and with three workers' worth of partitions, on two worker processes.
fn check(job: Job) -> Result<(), String> {
    for &detail in details(job) {
        let expected = expected(job, detail);
        for workers in [1, 3] {
            let setup = Setup { job, workers, window_batches: WINDOW_BATCHES, detail };
            let run = format!("{job} ({detail:?}) with {workers} workers");
            let got = run_fixed(Impl::DstreamTcp, &setup, BATCHES, PER_BATCH).map_err(|e| format!("{run}: {e}"))?;
            if got.len() != expected.len() {
                return Err(format!("{run}: {} of {} batches", got.len(), expected.len()));
            }
            for (k, (g, e)) in got.iter().zip(&expected).enumerate() {
                if g != e {
                    return Err(format!("{run}: batch {k} differs:\n got {g:.200?}\nwant {e:.200?}"));
                }
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    serve_if_worker();
    let tests = Job::ALL.map(|job| (format!("{job}_on_tcp_worker_processes_matches_the_reference"), job));
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in &tests {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    // Free arguments filter the tests by name (whole names with `--exact`) and `--skip NAME`
    // leaves some out, as libtest's do; other flags are ignored (those taking a value with it).
    let exact = args.iter().any(|a| a == "--exact");
    let matches = |name: &str, pattern: &str| if exact { name == pattern } else { name.contains(pattern) };
    let (mut filters, mut skips) = (Vec::new(), Vec::new());
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--skip" => skips.extend(it.next()),
            "--test-threads" | "--color" | "--format" | "--logfile" | "-Z" => {
                it.next();
            }
            flag if flag.starts_with('-') => {}
            filter => filters.push(filter),
        }
    }
    let chosen: Vec<_> = tests
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| matches(name, f)))
        .filter(|(name, _)| !skips.iter().any(|s| matches(name, s)))
        .collect();
    println!("\nrunning {} tests", chosen.len());
    let mut failed = Vec::new();
    for (name, job) in &chosen {
        match check(*job) {
            Ok(()) => println!("test {name} ... ok"),
            Err(why) => {
                println!("test {name} ... FAILED\n{why}");
                failed.push(name);
            }
        }
    }
    let verdict = if failed.is_empty() { "ok" } else { "FAILED" };
    println!("\ntest result: {verdict}. {} passed; {} failed", chosen.len() - failed.len(), failed.len());
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
