//! Helpers shared by the storage integration tests: temporary directories, a listener that
//! forwards events through channels, and waiting on channels with a bound.

#![allow(dead_code)] // Each test file uses a part of this module.

pub(crate) mod restart_suite;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dstream::{BatchInfo, DStream, Data, Error, StreamId, StreamingContext, StreamingListener, Time};

/// How long a test waits for one expected event before failing: generous, because it only
/// bounds a failure; a passing test never waits for it.
pub(crate) const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// A directory under the system's temporary directory, removed when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("dstream-storage-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Forwards receiver errors, completed batches and failed batches through channels.
pub(crate) struct Events {
    pub(crate) errors: Receiver<String>,
    pub(crate) batches: Receiver<Time>,
    pub(crate) failures: Receiver<String>,
}

struct Forward {
    errors: Sender<String>,
    batches: Sender<Time>,
    failures: Sender<String>,
}

impl StreamingListener for Forward {
    fn on_batch_completed(&self, info: &BatchInfo) {
        let _ = self.batches.send(info.time);
    }
    fn on_batch_failed(&self, _time: Time, error: &Error) {
        let _ = self.failures.send(error.to_string());
    }
    fn on_receiver_error(&self, _stream: StreamId, message: &str) {
        let _ = self.errors.send(message.to_owned());
    }
}

/// Adds a listener to `ssc` whose events arrive on the returned channels.
pub(crate) fn listen(ssc: &StreamingContext) -> Events {
    let (errors_tx, errors) = mpsc::channel();
    let (batches_tx, batches) = mpsc::channel();
    let (failures_tx, failures) = mpsc::channel();
    ssc.add_listener(Arc::new(Forward { errors: errors_tx, batches: batches_tx, failures: failures_tx }));
    Events { errors, batches, failures }
}

/// Sends the records of every batch of `stream` through the returned channel.
pub(crate) fn collect_batches<T: Data>(stream: &DStream<T>) -> Receiver<Vec<T>> {
    let (tx, rx) = mpsc::channel();
    stream
        .foreach_rdd(move |rdd, _| {
            let _ = tx.send(rdd.collect()?);
            Ok(())
        })
        .expect("register the output");
    rx
}

/// The time left until `deadline` (zero once it has passed).
fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Receives batches, appending their records to `seen`, until `seen` holds `n` records; fails
/// after `EVENT_TIMEOUT` in all (empty batches keep coming: they do not extend the wait).
pub(crate) fn wait_for_records<T>(batches: &Receiver<Vec<T>>, seen: &mut Vec<T>, n: usize, what: &str) {
    let deadline = Instant::now() + EVENT_TIMEOUT;
    while seen.len() < n {
        match batches.recv_timeout(left(deadline)) {
            Ok(batch) => seen.extend(batch),
            Err(e) => panic!("waiting for {what}: {} of {n} records after {EVENT_TIMEOUT:?} ({e})", seen.len()),
        }
    }
}

/// Receives messages, keeping every one in `log`, until one satisfies `matches`; fails after
/// `EVENT_TIMEOUT` in all.
pub(crate) fn wait_for_message(
    messages: &Receiver<String>,
    log: &mut Vec<String>,
    what: &str,
    matches: impl Fn(&str) -> bool,
) {
    let deadline = Instant::now() + EVENT_TIMEOUT;
    loop {
        match messages.recv_timeout(left(deadline)) {
            Ok(m) => {
                let found = matches(&m);
                log.push(m);
                if found {
                    return;
                }
            }
            Err(e) => panic!("no message {what} within {EVENT_TIMEOUT:?} ({e}); got {log:?}"),
        }
    }
}

/// Waits until `n` more batches complete (counted from now: earlier events are dropped).
pub(crate) fn wait_for_batches(batches: &Receiver<Time>, n: usize) {
    while batches.try_recv().is_ok() {}
    for i in 0..n {
        if let Err(e) = batches.recv_timeout(EVENT_TIMEOUT) {
            panic!("only {i} of {n} batches completed within {EVENT_TIMEOUT:?} ({e})");
        }
    }
}
