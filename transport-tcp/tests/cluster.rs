//! A driver and three worker processes on loopback, against the in-process runtime.
//!
//! Each test re-runs this test executable as its worker processes (`--exact <its name>`, the
//! role in the environment): in them, the same test function runs up to
//! [`ClusterBuilder::launch`], which serves and exits the process.
#![allow(clippy::unwrap_used)]

use std::sync::mpsc;
use std::time::Duration;

use dstream::{Context, Error, Rdd};
use dstream_inproc::LocalCluster;
use dstream_tcp::{Cluster, ClusterBuilder};

/// The most a test may take before it fails instead of hanging.
const TEST_WAIT_MAX: Duration = Duration::from_secs(90);

/// A local cluster of three worker processes running the test `name`, with margins for a
/// loaded machine.
fn cluster(name: &str) -> ClusterBuilder {
    Cluster::builder()
        .local(3)
        .worker_args(["--exact", name, "--nocapture", "--test-threads", "1"])
        .threads(2)
        .slots(2)
        .heartbeat_timeout(Duration::from_secs(5))
        .workers_wait_max(Duration::from_secs(60))
}

/// Runs `body` on a thread of its own, failing the test if it takes more than
/// [`TEST_WAIT_MAX`].
fn bounded(body: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::sync_channel(1);
    let thread = std::thread::spawn(move || {
        body();
        let _ = done.send(());
    });
    match finished.recv_timeout(TEST_WAIT_MAX) {
        Ok(()) => thread.join().unwrap(),
        // The body panicked: its panic is the test's.
        Err(mpsc::RecvTimeoutError::Disconnected) => std::panic::resume_unwind(thread.join().unwrap_err()),
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the test took more than {TEST_WAIT_MAX:?}"),
    }
}

fn words() -> Vec<String> {
    (0..2_000u64).map(|i| format!("w{}", (i * 7919) % 97)).collect()
}

/// The batch program: a word count over a parallelized collection.
fn word_count(ctx: &Context) -> Result<Rdd<(String, u64)>, Error> {
    Ok(ctx.parallelize(words(), 6)?.map(|w| (w, 1u64)).reduce_by_key(|a, b| a + b))
}

#[test]
fn a_batch_job_on_three_worker_processes_matches_the_local_cluster() {
    bounded(|| {
        let (cluster, counts) =
            cluster("a_batch_job_on_three_worker_processes_matches_the_local_cluster").launch(word_count).unwrap();
        let mut got = counts.collect().unwrap();
        got.sort();
        // Again: the shuffle's buckets are fetched between the worker processes once more.
        let mut again = counts.collect().unwrap();
        again.sort();
        assert!(cluster.lost_workers().is_empty(), "{:?}", cluster.lost_workers());
        drop(cluster);

        let local = LocalCluster::builder().workers(3).build().unwrap();
        let mut expected = word_count(&local.context()).unwrap().collect().unwrap();
        expected.sort();
        assert_eq!(got.len(), 97);
        assert_eq!(got, expected);
        assert_eq!(again, expected);
    });
}
