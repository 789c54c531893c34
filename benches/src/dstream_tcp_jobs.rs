//! The jobs on dstream's TCP runtime (`dstream-tcp`): the program of the in-process runs
//! ([`dstream_jobs::program`]) on a driver and [`WORKER_PROCESSES`] worker processes over
//! loopback (`Cluster::builder().local(2)`), the implementation `dstream-tcp` of the reports.
//!
//! The worker processes are the running executable again, with the role in their environment
//! (`dstream_tcp::cluster::ROLE_ENV`) and the run's [`Program`] in their arguments
//! ([`worker_args`]): an executable that runs this implementation calls [`serve_if_worker`]
//! first thing in `main`, which in a worker process parses them, builds the same program,
//! serves the driver and exits. Each run launches its own cluster, so each worker builds the
//! program of that run (its job, interval, rate and partitions).
//!
//! The receivers run in the driver, as on every dstream cluster: each block they store is
//! encoded and uploaded to both workers (two input replicas), and the tasks read their input
//! and shuffle buckets from the workers' stores over TCP. The task threads are split between
//! the worker processes: each has half of [`Setup::workers`] (rounded up) and as many slots as
//! a worker of the in-process cluster.
//!
//! Each run launches a cluster (starting the processes, building the program in each, the
//! joins and registrations: milliseconds on an idle machine, more on a loaded one) and stops it
//! afterwards; a timed run's schedule starts [`crate::START_AHEAD`] after the launch has
//! returned, so neither is in the measured window.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dstream_tcp::cluster::ROLE_ENV;
use dstream_tcp::{Cluster, ClusterBuilder};

use crate::collector::Collector;
use crate::dstream_jobs::{self, drive, Input, Program, BLOCK_STORE_BYTES};
use crate::feed::Feed;
use crate::jobs::{Detail, Job};
use crate::{HarnessError, Setup};

/// The worker processes of a run.
pub const WORKER_PROCESSES: u32 = 2;

/// The cluster of a run of `setup`, in the driver and in the workers alike (the workers take
/// their task pool and slots from it).
fn builder(setup: &Setup) -> ClusterBuilder {
    let workers = setup.workers.max(1);
    Cluster::builder()
        .local(WORKER_PROCESSES)
        .threads(workers.div_ceil(WORKER_PROCESSES as usize))
        .slots(u32::try_from(workers).unwrap_or(u32::MAX))
        .block_store_bytes_max(BLOCK_STORE_BYTES)
}

/// Runs `setup`'s job over `feed` on a new TCP cluster until its last batch is output or
/// `collector` says stop; a timed feed's schedule starts after the launch.
pub fn run(setup: &Setup, feed: Feed, collector: &Arc<Collector>) -> Result<(), HarnessError> {
    let program = Program::of(setup, &feed);
    let (cluster, built) =
        builder(setup).worker_args(worker_args(&program)).launch(|ctx| dstream_jobs::program(&program, ctx))?;
    let feed = match feed {
        Feed::Timed { rate, batch, batches, .. } => {
            Feed::Timed { start: Instant::now() + crate::START_AHEAD, rate, batch, batches }
        }
        fixed @ Feed::Fixed { .. } => fixed,
    };
    let result = drive(built, feed, collector);
    // The workers see the driver go and exit; the cluster waits for them.
    drop(cluster);
    result
}

/// In a worker process of a TCP cluster (`DSTREAM_ROLE=worker`): builds the program its
/// arguments describe ([`worker_args`]), serves the driver until it goes away and exits the
/// process (status 2, with the reason on stderr, if the arguments are not a program or the
/// worker could not join). Elsewhere it returns at once.
pub fn serve_if_worker() {
    if std::env::var_os(ROLE_ENV).is_none_or(|role| role != "worker") {
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match parse_worker_args(&args) {
        Err(message) => {
            eprintln!("dstream-tcp worker: {message}");
            2
        }
        // In a worker, `launch` serves, then exits the process: it returns only with an error.
        Ok(program) => match builder(&program.setup).launch(|ctx| dstream_jobs::program(&program, ctx)) {
            Ok(_) => 0,
            Err(e) => {
                eprintln!("dstream-tcp worker: {e}");
                2
            }
        },
    };
    std::process::exit(code)
}

fn detail_name(detail: Detail) -> &'static str {
    match detail {
        Detail::Full => "full",
        Detail::Summary => "summary",
    }
}

/// The arguments that describe `program` to a worker process ([`parse_worker_args`] reads
/// them back).
pub fn worker_args(program: &Program) -> Vec<String> {
    let Setup { job, workers, window_batches, detail } = program.setup;
    let input = match program.input {
        Input::Queue => "queue".to_string(),
        Input::Generators { rate } => format!("generators:{rate}"),
    };
    [
        ("--job", job.name().to_string()),
        ("--workers", workers.to_string()),
        ("--window-batches", window_batches.to_string()),
        ("--detail", detail_name(detail).to_string()),
        ("--batch-ns", program.batch.as_nanos().to_string()),
        ("--input", input),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_string(), value])
    .collect()
}

/// The program described by [`worker_args`]: every flag once, none missing.
pub fn parse_worker_args(args: &[String]) -> Result<Program, String> {
    let mut values: [Option<&str>; 6] = [None; 6];
    const FLAGS: [&str; 6] = ["--job", "--workers", "--window-batches", "--detail", "--batch-ns", "--input"];
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let i = FLAGS.iter().position(|f| f == flag).ok_or_else(|| format!("unexpected argument {flag:?}"))?;
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        if values[i].replace(value).is_some() {
            return Err(format!("{flag} given twice"));
        }
    }
    let get = |i: usize| values[i].ok_or_else(|| format!("{} missing", FLAGS[i]));
    let bad = |i: usize, value: &str| format!("{}: bad value {value:?}", FLAGS[i]);
    let number = |i: usize| get(i).and_then(|v| v.parse::<u64>().map_err(|_| bad(i, v)));
    let job = get(0).and_then(|v| Job::parse(v).ok_or_else(|| bad(0, v)))?;
    let workers = get(1).and_then(|v| v.parse::<usize>().map_err(|_| bad(1, v)))?;
    let window_batches = number(2)?;
    let detail = get(3).and_then(|v| match v {
        "full" => Ok(Detail::Full),
        "summary" => Ok(Detail::Summary),
        other => Err(bad(3, other)),
    })?;
    let batch = Duration::from_nanos(number(4)?);
    let input = get(5).and_then(|v| match v.split_once(':') {
        None if v == "queue" => Ok(Input::Queue),
        Some(("generators", rate)) => rate.parse().map(|rate| Input::Generators { rate }).map_err(|_| bad(5, v)),
        _ => Err(bad(5, v)),
    })?;
    Ok(Program { setup: Setup { job, workers, window_batches, detail }, batch, input })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_arguments_describe_the_program() {
        let timed = Program {
            setup: Setup { job: Job::TopK, workers: 3, window_batches: 60, detail: Detail::Summary },
            batch: Duration::from_millis(500),
            input: Input::Generators { rate: 1_234_000 },
        };
        let fixed = Program {
            setup: Setup { job: Job::WordCount, workers: 1, window_batches: 3, detail: Detail::Full },
            batch: Duration::from_nanos(1_000_000_001),
            input: Input::Queue,
        };
        for program in [timed, fixed] {
            assert_eq!(parse_worker_args(&worker_args(&program)), Ok(program));
        }
        let args = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let full = "--job grep --workers 2 --window-batches 60 --detail full --batch-ns 10 --input queue";
        assert!(parse_worker_args(&args(full)).is_ok());
        for (bad, why) in [
            ("--job grep", "--workers missing"),
            ("--job sort", "--job: bad value \"sort\""),
            ("--job grep --job grep", "--job given twice"),
            ("--job", "--job needs a value"),
            ("--quick", "unexpected argument \"--quick\""),
        ] {
            assert_eq!(parse_worker_args(&args(bad)), Err(why.to_string()), "{bad}");
        }
        let input = |value: &str| parse_worker_args(&args(&full.replace("queue", value)));
        assert_eq!(input("generators:7").map(|p| p.input), Ok(Input::Generators { rate: 7 }));
        assert!(input("generators:").is_err() && input("queued").is_err() && input("other:1").is_err());
    }
}
