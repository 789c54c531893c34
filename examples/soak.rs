//! The fault-tolerance soak: the simulation suite's program (windows with an inverse,
//! `update_state_by_key`, `map_with_state` with a timeout, a join) over random fault plans,
//! one per seed, each checked batch by batch against a fault-free run. Prints the summary:
//! seeds, faults injected by kind, outputs checked, failures (each with the seed that replays
//! it).
//!
//! ```text
//! cargo run --release --example soak -- --seeds 10000
//! cargo run --release --example soak -- --from 260 --seeds 1   # replay one seed
//! cargo run --release --example soak -- --seeds 1000 --worker-programs
//! ```
#![allow(clippy::print_stdout)] // An example program reports on stdout.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use dstream_inproc::sim::suite;

/// Runs the fault-tolerance suite over many seeds.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// How many seeds to run.
    #[arg(long, default_value_t = 1_000)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Workers of the simulated cluster.
    #[arg(long, default_value_t = 4)]
    workers: u32,
    /// Batches (of 1 s of virtual time) per seed.
    #[arg(long, default_value_t = 12)]
    batches: u64,
    /// Every worker builds the program itself, as the workers of a cluster of processes do.
    #[arg(long)]
    worker_programs: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let started = Instant::now();
    let summary = suite::soak_on(args.from..args.from + args.seeds, args.workers, args.batches, args.worker_programs);
    print!("{summary}");
    println!("wall time: {:.1} s", started.elapsed().as_secs_f64());
    if summary.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
