//! The throughput harness: for each job and implementation, the maximum input rate whose runs
//! meet a latency bound (BENCHMARKS.md), found by a search over the rate.
//!
//! ```text
//! cargo run --release -p dstream-benches --bin harness -- --quick --out target/harness-quick
//! cargo run --release -p dstream-benches --bin harness -- --measure-secs 20 --bounds 1000
//! cargo run --release -p dstream-benches --bin harness -- --quick --transport both --out target/harness-quick-tcp
//! ```
//!
//! `--transport` says where dstream runs: `inproc` (the default: `LocalCluster`, reported as
//! `dstream`), `tcp` (a driver and two worker processes over loopback, `dstream-tcp`) or
//! `both` (the two rows side by side). Each step of a `dstream-tcp` search launches a cluster
//! whose worker processes are this executable again, given the step's program in their
//! arguments: `main` recognizes them first (`DSTREAM_ROLE=worker`) and serves. The launch is
//! not in the measured window.
//!
//! For the 1000 ms bound the batch interval is 500 ms (the paper's setting). For a smaller
//! bound, each interval of `--small-batches` below the bound is searched and the one
//! sustaining the highest rate is reported. The table goes to stdout, progress to stderr, and
//! `report.json`, `report.md` and `report.svg` to `--out`.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)] // The harness reports its table on stdout.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use dstream_benches::jobs::{Detail, Impl, Job, WINDOW};
use dstream_benches::report::{self, Report, Row};
use dstream_benches::search::{search, SearchPlan, SearchResult};
use dstream_benches::{run_timed, HarnessError, Setup};

const USAGE: &str = "usage: harness [--quick] [--jobs grep,wordcount,topk] [--impls dstream,timely,baseline] \
[--transport inproc|tcp|both] [--bounds 1000,100] [--small-batches 50,25,10] [--workers N] [--warmup-secs S] [--measure-secs S] \
[--start-rate N] [--max-steps N] [--precision F] [--retries N] [--out DIR]";

/// Where dstream's runs go: `--transport`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    /// In process: [`Impl::Dstream`].
    InProc,
    /// A driver and worker processes over TCP: [`Impl::DstreamTcp`].
    Tcp,
    /// Both, side by side.
    Both,
}

impl Transport {
    fn parse(value: &str) -> Option<Transport> {
        match value {
            "inproc" => Some(Transport::InProc),
            "tcp" => Some(Transport::Tcp),
            "both" => Some(Transport::Both),
            _ => None,
        }
    }

    /// The implementations that measure dstream.
    fn dstream(self) -> &'static [Impl] {
        match self {
            Transport::InProc => &[Impl::Dstream],
            Transport::Tcp => &[Impl::DstreamTcp],
            Transport::Both => &[Impl::Dstream, Impl::DstreamTcp],
        }
    }
}

/// The command line.
#[derive(Debug)]
struct Options {
    jobs: Vec<Job>,
    impls: Vec<Impl>,
    transport: Transport,
    bounds: Vec<u64>,
    small_batches: Vec<u64>,
    workers: usize,
    warmup: f64,
    measure: f64,
    plan: SearchPlan,
    out: PathBuf,
}

fn list<T>(value: &str, flag: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Vec<T>, String> {
    value.split(',').map(|v| parse(v.trim()).ok_or_else(|| format!("--{flag}: unknown value {v:?}\n{USAGE}"))).collect()
}

fn number<T: std::str::FromStr>(value: &str, flag: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("--{flag}: not a number: {value}\n{USAGE}"))
}

fn parse(args: Vec<String>) -> Result<Options, String> {
    let quick = args.iter().any(|a| a == "--quick");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut o = Options {
        jobs: Job::ALL.to_vec(),
        impls: Impl::ALL.to_vec(),
        transport: Transport::InProc,
        bounds: vec![1000, 100],
        small_batches: if quick { vec![50] } else { vec![50, 25, 10] },
        workers: cores,
        // 30 s: past the 30 s window, so the subtraction of the batch leaving it is measured.
        warmup: if quick { 0.5 } else { 30.0 },
        measure: if quick { 1.0 } else { 20.0 },
        plan: SearchPlan {
            start_rate: 200_000,
            factor: 4.0,
            precision: 0.05,
            max_steps: if quick { 2 } else { 14 },
            min_rate: 1_000,
            retries: if quick { 0 } else { 1 },
        },
        out: PathBuf::from("target/harness"),
    };
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let flag = arg.strip_prefix("--").ok_or_else(|| format!("unexpected argument {arg}\n{USAGE}"))?;
        if flag == "quick" {
            continue;
        }
        if flag == "help" {
            return Err(USAGE.to_string());
        }
        let value = it.next().ok_or_else(|| format!("--{flag} needs a value\n{USAGE}"))?;
        match flag {
            "jobs" => o.jobs = list(&value, flag, Job::parse)?,
            "impls" => o.impls = list(&value, flag, Impl::parse)?,
            "transport" => {
                o.transport =
                    Transport::parse(&value).ok_or_else(|| format!("--transport: unknown value {value:?}\n{USAGE}"))?
            }
            "bounds" => o.bounds = list(&value, flag, |v| v.parse().ok().filter(|b| *b > 0))?,
            "small-batches" => o.small_batches = list(&value, flag, |v| v.parse().ok().filter(|b| *b > 0))?,
            "workers" => o.workers = number::<usize>(&value, flag)?.max(1),
            "warmup-secs" => o.warmup = number(&value, flag)?,
            "measure-secs" => o.measure = number(&value, flag)?,
            "start-rate" => o.plan.start_rate = number(&value, flag)?,
            "max-steps" => o.plan.max_steps = number(&value, flag)?,
            "precision" => o.plan.precision = number(&value, flag)?,
            "retries" => o.plan.retries = number(&value, flag)?,
            "out" => o.out = PathBuf::from(value),
            _ => return Err(format!("unknown flag --{flag}\n{USAGE}")),
        }
    }
    if !(o.warmup >= 0.0 && o.measure > 0.0 && o.warmup.is_finite() && o.measure.is_finite()) {
        return Err(format!("--warmup-secs and --measure-secs must be finite, the measure above zero\n{USAGE}"));
    }
    Ok(o)
}

/// The implementations measured, in report order: `--impls`, with dstream as `--transport`
/// says.
fn implementations(o: &Options) -> Vec<Impl> {
    o.impls
        .iter()
        .flat_map(|imp| if *imp == Impl::Dstream { o.transport.dstream() } else { std::slice::from_ref(imp) })
        .copied()
        .collect()
}

/// The batch intervals tried under a bound: 500 ms for 1 s, else the small ones below it.
fn intervals(o: &Options, bound: u64) -> Vec<u64> {
    if bound >= 1000 {
        vec![500.min(bound / 2).max(1)]
    } else {
        o.small_batches.iter().copied().filter(|b| *b < bound).collect()
    }
}

/// Searches one job on one implementation under one bound.
fn measure(o: &Options, job: Job, imp: Impl, bound: u64) -> Result<Row, HarnessError> {
    let mut best: Option<(u64, SearchResult)> = None;
    let mut steps = Vec::new();
    let mut plan = o.plan;
    for batch_ms in intervals(o, bound) {
        let batch = Duration::from_millis(batch_ms);
        let window_batches = (WINDOW.as_millis() / u128::from(batch_ms)) as u64;
        let setup = Setup { job, workers: o.workers, window_batches, detail: Detail::Summary };
        let found = search(&plan, |rate| {
            let stats = run_timed(
                imp,
                &setup,
                rate,
                batch,
                Duration::from_secs_f64(o.warmup),
                Duration::from_secs_f64(o.measure),
                Duration::from_millis(bound),
            )?;
            eprintln!(
                "{job} {imp} bound {bound} ms batch {batch_ms} ms: {rate} records/s: p50 {:.1} ms p99 {:.1} ms, lag mean {:.1} max {:.1} growth {:.1} ms, {}/{} batches, peak RSS {:.0} MiB, {:.2} cores: {}",
                stats.p50_ms,
                stats.p99_ms,
                stats.mean_lag_ms,
                stats.max_lag_ms,
                stats.lag_growth_ms,
                stats.batches.0,
                stats.batches.1,
                stats.usage.peak_rss_mib,
                stats.usage.cores,
                if stats.stable { "stable".to_string() } else { format!("unstable ({})", stats.reason) }
            );
            Ok(stats)
        })?;
        steps.extend(found.steps.iter().map(|s| (batch_ms, s.rate, s.p99_ms, s.stable)));
        let rate = found.best.as_ref().map_or(0, |b| b.rate);
        if let Some(b) = &found.best {
            plan.start_rate = b.rate; // the next (smaller) interval starts from here
        }
        if best.as_ref().is_none_or(|(_, f)| f.best.as_ref().map_or(0, |b| b.rate) < rate) {
            best = Some((batch_ms, found));
        }
    }
    let (batch_ms, found) = best.unwrap_or_default();
    let stats = found.best;
    let max = stats.as_ref().map_or(0, |s| s.rate);
    Ok(Row {
        job: job.name().into(),
        implementation: imp.name().into(),
        bound_ms: bound,
        batch_ms,
        workers: o.workers,
        max_records_per_s: max,
        records_per_s_per_core: max / o.workers as u64,
        p50_ms: stats.as_ref().map_or(0.0, |s| s.p50_ms),
        p99_ms: stats.as_ref().map_or(0.0, |s| s.p99_ms),
        peak_rss_mib: stats.as_ref().map_or(0.0, |s| s.usage.peak_rss_mib),
        cores: stats.as_ref().map_or(0.0, |s| s.usage.cores),
        stable: stats.is_some(),
        steps,
    })
}

fn run(o: &Options, command: String) -> Result<(), HarnessError> {
    let mut rows = Vec::new();
    for &bound in &o.bounds {
        for &job in &o.jobs {
            for imp in implementations(o) {
                rows.push(measure(o, job, imp, bound)?);
            }
        }
    }
    let report = Report {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu: report::cpu_model(),
        date: report::utc_now(),
        command,
        warmup_secs: o.warmup,
        measure_secs: o.measure,
        rows,
    };
    println!("{}", report::table(&report.rows));
    println!("{}", report::ratios(&report.rows));
    report::write(&o.out, &report)?;
    eprintln!("wrote {}/report.{{json,md,svg}}", o.out.display());
    Ok(())
}

fn main() -> ExitCode {
    // A worker process of a `dstream-tcp` run builds the run's program, serves and exits.
    dstream_benches::dstream_tcp_jobs::serve_if_worker();
    let args: Vec<String> = std::env::args().collect();
    let command = args.join(" ");
    let options = match parse(args.into_iter().skip(1).collect()) {
        Ok(o) => o,
        Err(message) if message == USAGE => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(&options, command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(args: &str) -> Result<Options, String> {
        parse(args.split_whitespace().map(String::from).collect())
    }

    #[test]
    fn the_transport_chooses_where_dstream_runs() {
        let default = options("--quick").unwrap();
        assert_eq!(default.transport, Transport::InProc);
        assert_eq!(implementations(&default), [Impl::Dstream, Impl::Timely, Impl::Baseline]);
        let both = options("--quick --transport both").unwrap();
        assert_eq!(implementations(&both), [Impl::Dstream, Impl::DstreamTcp, Impl::Timely, Impl::Baseline]);
        let tcp = options("--transport tcp --impls dstream").unwrap();
        assert_eq!(implementations(&tcp), [Impl::DstreamTcp]);
        let others = options("--transport tcp --impls baseline,timely").unwrap();
        assert_eq!(implementations(&others), [Impl::Baseline, Impl::Timely]);
        assert!(options("--transport udp").unwrap_err().starts_with("--transport: unknown value \"udp\""));
        assert!(options("--transport").unwrap_err().starts_with("--transport needs a value"));
        assert!(options("--impls dstream-tcp").unwrap_err().starts_with("--impls: unknown value"));
    }

    #[test]
    fn quick_mode_keeps_its_settings() {
        let quick = options("--quick --jobs grep,topk --workers 3 --out x").unwrap();
        assert_eq!(quick.jobs, [Job::Grep, Job::TopK]);
        assert_eq!((quick.workers, quick.warmup, quick.measure, quick.plan.max_steps), (3, 0.5, 1.0, 2));
        assert_eq!(quick.small_batches, [50]);
        assert_eq!(quick.out, PathBuf::from("x"));
        assert!(options("--measure-secs 0").is_err());
        assert!(options("stray").unwrap_err().starts_with("unexpected argument stray"));
    }
}
