//! A sample of the core's table-driven suites on one cluster of a driver and three worker
//! processes, compared line for line with `LocalCluster` running the same cases.
//!
//! Each test builds every case of its table inside one `launch`, so the table costs one
//! cluster start: the program closure builds every case's datasets (or streams) in every
//! process, and the jobs run in the driver once `launch` has returned. The test re-runs this
//! test executable as the worker processes (`--exact <its name>`): in them the same test
//! function runs up to the launch, which serves and exits the process. Cases whose outputs
//! differ are named, each with the first line that differs.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

#[path = "common/processes.rs"]
mod processes;

#[path = "suites/batch.rs"]
mod batch;
#[path = "suites/streaming.rs"]
mod streaming;

use std::time::Duration;

use dstream::{Error, TaskErrorKind};
use dstream_inproc::LocalCluster;
use processes::cluster;

/// The most a test may take before it fails instead of hanging.
const TEST_WAIT_MAX: Duration = Duration::from_secs(240);

/// (sum, count) per key: Spark's `combineByKey` example, in both tables.
fn sum_count() -> dstream::Aggregator<i64, (i64, u32)> {
    dstream::Aggregator::new(
        |v| (v, 1),
        |c: &mut (i64, u32), v| {
            c.0 += v;
            c.1 += 1;
        },
        |c: &mut (i64, u32), o: (i64, u32)| {
            c.0 += o.0;
            c.1 += o.1;
        },
    )
}

/// The in-process cluster the outputs are compared with: as many workers, threads and slots.
fn local_cluster() -> LocalCluster {
    LocalCluster::builder().workers(3).threads(2).slots(2).build().unwrap()
}

/// Runs `body` on a thread of its own, failing the test past [`TEST_WAIT_MAX`].
fn bounded(body: impl FnOnce() + Send + 'static) {
    processes::bounded(TEST_WAIT_MAX, body);
}

/// Compares every case's output on the TCP cluster with the in-process one; panics naming
/// every case that differs, with its first differing line. Also requires each case to have
/// produced something, so that two empty outputs do not pass for a match.
fn compare(names: &[&str], got: &[Vec<String>], expected: &[Vec<String>], nonempty: impl Fn(&[String]) -> bool) {
    assert_eq!((got.len(), expected.len()), (names.len(), names.len()));
    let mut differ = Vec::new();
    for ((name, got), expected) in names.iter().zip(got).zip(expected) {
        assert!(nonempty(expected), "{name}: the in-process cluster gave nothing to compare: {expected:?}");
        if got != expected {
            let at = got.iter().zip(expected).position(|(g, e)| g != e).unwrap_or(got.len().min(expected.len()));
            differ.push(format!(
                "{name}: line {at} is {:?} on the TCP cluster, {:?} in-process ({} and {} lines)",
                got.get(at),
                expected.get(at),
                got.len(),
                expected.len()
            ));
        }
    }
    assert!(differ.is_empty(), "{} of {} cases differ:\n{}", differ.len(), names.len(), differ.join("\n"));
}

/// Runs every batch case's jobs, in table order.
fn run_jobs(jobs: &[batch::Jobs]) -> Vec<Vec<String>> {
    jobs.iter().map(|job| job().unwrap()).collect()
}

#[test]
fn the_batch_cases_on_three_worker_processes_match_the_local_cluster() {
    bounded(|| {
        let name = "the_batch_cases_on_three_worker_processes_match_the_local_cluster";
        let table = batch::table();
        let (cluster, (jobs, refused)) =
            cluster(name).launch(|ctx| Ok((batch::build(ctx, &table)?, batch::refused_input(ctx)?))).unwrap();
        let got = run_jobs(&jobs);
        // The actions with a function exist on the driver only: each fails with a typed error
        // naming what the workers lack, rather than giving a wrong answer or hanging.
        for (action, run) in batch::actions_with_a_function() {
            match run(&refused) {
                Err(Error::TaskFailed { cause, .. }) if cause.kind == TaskErrorKind::UnknownNode => {}
                other => panic!("{action} on the TCP cluster: {other:?}"),
            }
        }
        assert!(cluster.lost_workers().is_empty(), "{:?}", cluster.lost_workers());
        drop((jobs, refused));
        drop(cluster);

        let local = local_cluster();
        let (expected, refused) = {
            let jobs = batch::build(&local.context(), &table).unwrap();
            (run_jobs(&jobs), batch::refused_input(&local.context()).unwrap())
        };
        for (action, run) in batch::actions_with_a_function() {
            assert!(run(&refused).is_ok(), "{action} in-process");
        }
        let names: Vec<&str> = table.iter().map(|c| c.name).collect();
        // Every case has a line per input and partition count, and some record lines.
        compare(&names, &got, &expected, |lines| lines.iter().any(|l| !l.starts_with("input #")));
    });
}

#[test]
fn the_streaming_cases_on_three_worker_processes_match_the_local_cluster() {
    bounded(|| {
        let name = "the_streaming_cases_on_three_worker_processes_match_the_local_cluster";
        let table = streaming::table();
        let (cluster, program) = cluster(name).launch(|ctx| streaming::build(ctx, &table)).unwrap();
        let got = streaming::run(&program).unwrap();
        assert!(cluster.lost_workers().is_empty(), "{:?}", cluster.lost_workers());
        drop(program);
        drop(cluster);

        let local = local_cluster();
        let expected = streaming::run(&streaming::build(&local.context(), &table).unwrap()).unwrap();
        let names: Vec<&str> = table.iter().map(|c| c.name).collect();
        // Every case recorded some batch with records.
        compare(&names, &got, &expected, |lines| lines.iter().any(|l| !l.ends_with(": []")));
    });
}
