//! The one place in core that starts threads and reads the OS clock.
//!
//! The state machines (driver, worker, the datasets and streams they compute) take time as a
//! `now` argument and never start a thread. A few pieces of core do need both, because they are
//! small runtimes themselves: the batch thread of a started [`StreamingContext`], the threads
//! of receivers, of asynchronous checkpoint writes and of partitions computed ahead, the real-time pause of a receiver, and
//! [`SystemClock`]. They reach the OS only through this module:
//!
//! - [`spawn`]: a named thread (receivers start theirs through it);
//! - [`Stopwatch`]: elapsed real (monotonic) time since it was started;
//! - [`checkpoints`]: the threads of asynchronous data checkpoint writes.
//!
//! Nothing else in `core/src` may call `std::thread::spawn`, `std::thread::Builder::spawn`,
//! `Instant::now`, `Instant::elapsed` or `SystemTime::now`. Two checks keep it so: clippy's
//! `disallowed-methods` (configured in `core/clippy.toml`, allowed only in this module and its
//! submodules) and the source scan of `core/tests/architecture.rs`.
//!
//! [`StreamingContext`]: crate::StreamingContext
//! [`SystemClock`]: crate::SystemClock

// This module is the sanctioned exception to the lint that keeps threads and the OS clock out
// of the rest of core (see `core/clippy.toml`): every such call in core goes through here.
#![allow(clippy::disallowed_methods)]

pub(crate) mod batches;
pub(crate) mod checkpoints;

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::Error;

/// Starts a thread named `name` running `f`; joining the handle returns what `f` returned (or
/// its panic).
///
/// Fails with [`Error::ThreadStart`], naming the thread, when the OS refuses to start one (out
/// of memory or of threads); `f` does not run then.
pub(crate) fn spawn<T: Send + 'static>(
    name: impl Into<String>,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, Error> {
    let name = name.into();
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(f)
        .map_err(|e| Error::ThreadStart { name, reason: e.to_string() })
}

/// Real time elapsed since the stopwatch was started, read from the OS's monotonic clock.
///
/// It never goes backwards. Used for durations people read (how long a checkpoint took), for
/// waits in real time (a receiver's pause) and as the reading behind [`SystemClock`].
///
/// [`SystemClock`]: crate::SystemClock
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stopwatch {
    started: Instant,
}

impl Stopwatch {
    /// A stopwatch started now.
    pub(crate) fn start() -> Stopwatch {
        Stopwatch { started: Instant::now() }
    }

    /// The real time elapsed since [`Stopwatch::start`].
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// The wall-clock time now, as a duration since the Unix epoch (zero if the system clock is set
/// before it). Read once by [`SystemClock`], which then advances with a [`Stopwatch`], so its
/// times line up with real time in every process and never go backwards.
///
/// [`SystemClock`]: crate::SystemClock
pub(crate) fn since_unix_epoch() -> Duration {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spawned_thread_runs_under_its_name() {
        let handle = spawn("dstream-test-thread", || {
            assert_eq!(std::thread::current().name(), Some("dstream-test-thread"));
        })
        .expect("a thread starts");
        assert!(handle.join().is_ok());
    }

    #[test]
    fn a_stopwatch_never_goes_back() {
        let watch = Stopwatch::start();
        let first = watch.elapsed();
        assert!(watch.elapsed() >= first);
    }
}
