//! The D-Streams paper's recovery figures, reproduced in the simulation (virtual time): batch
//! processing times around one and two worker failures with 2, 10 and 30 s checkpoint
//! intervals (the paper's Figures 10 and 11), recovery time on 20 and on 40 workers
//! (Figure 12), one worker slowed down with and without speculation (Figure 13), and the
//! model of section 5.1: recovery time against the load before the failure, parallel
//! recovery measured in the simulation beside the model's parallel recovery and upstream
//! backup.
//!
//! ```text
//! cargo run --release --example recovery                  # every figure, as tables
//! cargo run --release --example recovery -- --svg-dir out  # and an SVG chart of each
//! cargo run --release --example recovery -- --only model   # one of them
//! ```
//!
//! The job is WordCount over a 30 s window sliding every 1 s batch (`reduce_by_key_and_window`
//! with its inverse function), its window state checkpointed every `C` seconds. Tasks cost what
//! the simulation's cost model says (`--per-task-us`, `--per-kib-us`); BENCHMARKS.md says how
//! it was calibrated.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)] // An example program reports on stdout.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use dstream::{CostModel, DStream, Error, SplitMix64, StreamingContext, Time};
use dstream_inproc::sim::{BatchDelay, FaultPlan, Outputs, Simulation};

#[path = "recovery/model.rs"]
mod model;

/// Reproduces the paper's recovery figures in the simulation.
#[derive(Clone, Debug, Parser)]
#[command(name = "recovery")]
struct Args {
    /// Records per batch (each a word)
    #[arg(long, value_name = "N", default_value_t = 50_000)]
    records: usize,
    /// Distinct words
    #[arg(long, value_name = "N", default_value_t = 4_000)]
    words: usize,
    /// Batches per run
    #[arg(long, value_name = "N", default_value_t = 70)]
    batches: u64,
    /// Partitions of the window state per worker (each worker has 2 task slots)
    #[arg(long, value_name = "N", default_value_t = 8)]
    partitions_per_worker: usize,
    /// The cost of a task, in microseconds
    #[arg(long, value_name = "US", default_value_t = 2_000)]
    per_task_us: u64,
    /// The cost of a KiB of a task's input, in microseconds
    #[arg(long, value_name = "US", default_value_t = 18_500)]
    per_kib_us: u64,
    /// Write an SVG chart of each figure into this directory
    #[arg(long, value_name = "DIR")]
    svg_dir: Option<PathBuf>,
    /// Run only this figure: figure10, figure11, figure12, figure13 or model
    #[arg(long, value_name = "NAME")]
    only: Option<String>,
}

impl Args {
    fn runs(&self, name: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == name)
    }
}

/// One run: the cluster, the checkpoint interval and what goes wrong.
struct Scenario {
    label: String,
    workers: u32,
    checkpoint_s: u64,
    plan: FaultPlan,
    speculation: bool,
}

fn words(n: usize, records: usize, t: Time) -> Vec<(String, u64)> {
    let mut rng = SplitMix64::new(t.as_millis());
    (0..records).map(|_| (format!("w{}", rng.below(n)), 1)).collect()
}

fn run(args: &Args, s: &Scenario) -> Result<Vec<BatchDelay>, Box<dyn std::error::Error>> {
    let partitions = args.partitions_per_worker * s.workers as usize;
    let checkpoint = Duration::from_secs(s.checkpoint_s);
    let program = move |_: &StreamingContext, words: DStream<(String, u64)>, _: &Outputs| -> Result<(), Error> {
        let second = Duration::from_secs(1);
        let counts = words
            .reduce_by_key_and_window_inv_with_partitions(|a, b| a + b, |a, b| a - b, 30 * second, second, partitions)?
            .checkpoint(checkpoint)?;
        counts.foreach_rdd(|rdd, _| rdd.count().map(drop))
    };
    let cost = CostModel {
        per_task: Duration::from_micros(args.per_task_us),
        per_input_kib: Duration::from_micros(args.per_kib_us),
    };
    let sim = Simulation::builder()
        .workers(s.workers)
        .batches(args.batches)
        .partitions(partitions)
        .cost(cost)
        .speculation(s.speculation)
        .plan(s.plan.clone())
        .build()?;
    let (n, records) = (args.words, args.records);
    Ok(sim.run(move |t| words(n, records, t), program)?.batches)
}

fn secs(s: u64) -> Time {
    Time::from_millis(s * 1000)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The processing time of each batch in `from..=to` (seconds), one column per run.
fn table(title: &str, runs: &[(String, Vec<BatchDelay>)], from: u64, to: u64) -> String {
    let mut out = format!("\n{title}\n\n| batch (s) |");
    for (label, _) in runs {
        let _ = write!(out, " {label} |");
    }
    out.push_str("\n| ---: |");
    out.push_str(&" ---: |".repeat(runs.len()));
    for t in from..=to {
        let _ = write!(out, "\n| {t} |");
        for (_, batches) in runs {
            match batches.iter().rev().find(|b| b.time == secs(t)) {
                Some(b) => {
                    let _ = write!(out, " {:.0} ms |", ms(b.processing));
                }
                None => out.push_str(" - |"),
            }
        }
    }
    out.push('\n');
    out
}

/// The mean processing time of the batches in `from..=to` (seconds).
fn mean(batches: &[BatchDelay], from: u64, to: u64) -> f64 {
    let picked: Vec<f64> =
        batches.iter().filter(|b| b.time >= secs(from) && b.time <= secs(to)).map(|b| ms(b.processing)).collect();
    picked.iter().sum::<f64>() / picked.len().max(1) as f64
}

/// A line chart of processing time per batch, one line per run.
fn svg(title: &str, runs: &[(String, Vec<BatchDelay>)], from: u64, to: u64) -> String {
    const COLORS: [&str; 5] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];
    let (w, h, left, bottom) = (640.0, 360.0, 60.0, 40.0);
    let max = runs.iter().flat_map(|(_, b)| b.iter().map(|b| ms(b.processing))).fold(1.0, f64::max) * 1.1;
    let x = |t: u64| left + (t - from) as f64 / (to - from).max(1) as f64 * (w - left - 20.0);
    let y = |v: f64| h - bottom - v / max * (h - bottom - 40.0);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <text x=\"{left}\" y=\"20\" font-size=\"14\">{title}</text>\n\
         <line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n\
         <line x1=\"{left}\" y1=\"40\" x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>\n\
         <text x=\"{}\" y=\"{}\">batch time (s)</text>\n\
         <text x=\"10\" y=\"35\">processing (ms), max {max:.0}</text>\n",
        h - bottom,
        w - 20.0,
        h - bottom,
        h - bottom,
        w / 2.0,
        h - 8.0
    );
    for t in (from..=to).step_by(5) {
        let _ = writeln!(out, "<text x=\"{:.1}\" y=\"{}\">{t}</text>", x(t) - 6.0, h - bottom + 16.0);
    }
    for (i, (label, batches)) in runs.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut points = String::new();
        for t in from..=to {
            if let Some(b) = batches.iter().rev().find(|b| b.time == secs(t)) {
                let _ = write!(points, "{:.1},{:.1} ", x(t), y(ms(b.processing)));
            }
        }
        let _ = writeln!(out, "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{points}\"/>");
        let _ = writeln!(out, "<text x=\"{}\" y=\"{}\" fill=\"{color}\">{label}</text>", w - 230.0, 56 + 16 * i);
    }
    out.push_str("</svg>\n");
    out
}

fn kills(workers: u32, which: &[u32], at: Time) -> Result<FaultPlan, Box<dyn std::error::Error>> {
    let mut plan = FaultPlan::new(workers);
    for w in which {
        plan = plan.kill(*w, at)?;
    }
    Ok(plan)
}

fn figure(
    args: &Args,
    name: &str,
    title: &str,
    scenarios: Vec<Scenario>,
    window: (u64, u64),
) -> Result<Vec<(String, Vec<BatchDelay>)>, Box<dyn std::error::Error>> {
    let mut runs = Vec::new();
    for s in &scenarios {
        runs.push((s.label.clone(), run(args, s)?));
    }
    print!("{}", table(title, &runs, window.0, window.1));
    if let Some(dir) = &args.svg_dir {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(format!("{name}.svg")), svg(title, &runs, window.0, window.1))?;
    }
    Ok(runs)
}

fn main() -> ExitCode {
    match figures(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("recovery: {e}");
            ExitCode::FAILURE
        }
    }
}

fn figures(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    // The window is full (and its inverse function at work) from 30 s on: fail well after.
    let fail_at = Time::from_millis(50_500);
    let around = (45, 65);
    println!(
        "WordCount, 30 s window sliding every 1 s batch; {} records of {} words per batch; tasks cost {} us + {} us per KiB of input",
        args.records, args.words, args.per_task_us, args.per_kib_us
    );
    for (name, title, lost) in [
        ("figure10", "Figure 10: one worker of 20 killed at 50.5 s", &[5u32][..]),
        ("figure11", "Figure 11: two workers of 20 killed at 50.5 s", &[5, 12][..]),
    ] {
        if !args.runs(name) {
            continue;
        }
        let mut scenarios = Vec::new();
        for c in [2, 10, 30] {
            scenarios.push(Scenario {
                label: format!("checkpoint every {c} s"),
                workers: 20,
                checkpoint_s: c,
                plan: kills(20, lost, fail_at)?,
                speculation: true,
            });
        }
        figure(args, name, title, scenarios, around)?;
    }
    if args.runs("figure12") {
        figure12(args, fail_at, around)?;
    }
    if args.runs("figure13") {
        figure13(args)?;
    }
    if args.runs("model") {
        model::figure(args)?;
    }
    Ok(())
}

/// Figure 12: the same job on 20 and on 40 workers, one worker killed.
fn figure12(args: &Args, fail_at: Time, around: (u64, u64)) -> Result<(), Box<dyn std::error::Error>> {
    let mut scenarios = Vec::new();
    for workers in [20, 40] {
        scenarios.push(Scenario {
            label: format!("{workers} workers"),
            workers,
            checkpoint_s: 10,
            plan: kills(workers, &[5], fail_at)?,
            speculation: true,
        });
    }
    let runs =
        figure(args, "figure12", "Figure 12: one worker killed at 50.5 s, checkpoint every 10 s", scenarios, around)?;
    println!("\n| workers | before the failure (mean, 40-50 s) | the batches of 50 and 51 s | recovery: extra time over 50-60 s |\n| ---: | ---: | ---: | ---: |");
    for (label, batches) in &runs {
        let before = mean(batches, 40, 50 - 1);
        let (at, next) = (mean(batches, 50, 50), mean(batches, 51, 51));
        let extra = (50..=60).map(|t| mean(batches, t, t) - before).sum::<f64>();
        println!("| {label} | {before:.0} ms | {at:.0} and {next:.0} ms | {extra:.0} ms |");
    }
    Ok(())
}

/// Figure 13: one worker slowed down from the start, with and without speculation.
fn figure13(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut scenarios = Vec::new();
    for (slow, speculation, label) in [
        (1, true, "no slow worker"),
        (2, false, "2x slower, no speculation"),
        (2, true, "2x slower, speculation"),
        (4, false, "4x slower, no speculation"),
        (4, true, "4x slower, speculation"),
    ] {
        let plan = FaultPlan::new(20).slow(3, slow, Time::ZERO, secs(args.batches + 5))?;
        scenarios.push(Scenario { label: label.to_string(), workers: 20, checkpoint_s: 10, plan, speculation });
    }
    let runs = figure(args, "figure13", "Figure 13: one worker of 20 slowed down", scenarios, (35, 55))?;
    println!("\n| run | mean processing per batch (35-65 s) |\n| --- | ---: |");
    for (label, batches) in &runs {
        println!("| {label} | {:.0} ms |", mean(batches, 35, 65));
    }
    Ok(())
}
