//! Helpers of the tests that re-run their own executable as worker processes: the local
//! cluster builder they share, and a bound on the whole test.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::sync::mpsc;
use std::time::Duration;

use dstream_tcp::{Cluster, ClusterBuilder};

/// A local cluster of three worker processes running the test `name` (the test executable
/// again, `--exact name`), with margins for a loaded machine.
pub fn cluster(name: &str) -> ClusterBuilder {
    Cluster::builder()
        .local(3)
        .worker_args(["--exact", name, "--nocapture", "--test-threads", "1"])
        .threads(2)
        .slots(2)
        .heartbeat_timeout(Duration::from_secs(5))
        .workers_wait_max(Duration::from_secs(60))
}

/// Runs `body` on a thread of its own, failing the test if it takes more than `wait_max`.
pub fn bounded(wait_max: Duration, body: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::sync_channel(1);
    let thread = std::thread::spawn(move || {
        body();
        let _ = done.send(());
    });
    match finished.recv_timeout(wait_max) {
        Ok(()) => thread.join().unwrap(),
        // The body panicked: its panic is the test's.
        Err(mpsc::RecvTimeoutError::Disconnected) => std::panic::resume_unwind(thread.join().unwrap_err()),
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the test took more than {wait_max:?}"),
    }
}
