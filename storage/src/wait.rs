//! Waiting in real time while watching a receiver's stop flag.

use std::time::{Duration, Instant};

use dstream::{Data, ReceiverContext};

/// How often a waiting receiver looks at its stop flag.
const STOP_CHECK: Duration = Duration::from_millis(10);

/// Waits `d` of real time, or less if the receiver is told to stop; returns false if it was.
///
/// Receivers of the outside world (sockets, directories) wait in real time whatever the
/// streaming context's clock is (a manual clock in tests would otherwise freeze them), so they
/// cannot wait on that clock; they look at the stop flag every few milliseconds instead, which
/// bounds how long a stop takes without spinning.
pub(crate) fn pause<T: Data>(ctx: &ReceiverContext<T>, d: Duration) -> bool {
    let deadline = Instant::now() + d;
    loop {
        if ctx.is_stopped() {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::sleep((deadline - now).min(STOP_CHECK));
    }
}
