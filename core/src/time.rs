//! Logical time: a point on a clock, counted in nanoseconds from the clock's origin.
//!
//! The state machines never read the OS clock; their callers pass `now` in. A [`Clock`] is what
//! a runtime reads `now` from: [`ManualClock`] for tests, the system clock in the runtimes.

use std::fmt;
use std::ops::{Add, Sub};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::runtime::{self, Stopwatch};

/// A point in time, in nanoseconds since the origin of the clock that produced it.
///
/// Only differences between two `Time`s of the same clock are meaningful.
///
/// ```
/// use dstream::Time;
/// use std::time::Duration;
/// let t = Time::from_millis(500) + Duration::from_millis(250);
/// assert_eq!(t.as_millis(), 750);
/// assert_eq!(t - Duration::from_millis(700), Time::from_millis(50));
/// assert_eq!(t - Duration::from_secs(1), Time::ZERO); // saturates at the origin
/// assert_eq!(t - Time::from_millis(250), Duration::from_millis(500));
/// ```
///
/// `Display` prints seconds since the origin to the millisecond (`1.500s`); `Debug` prints
/// them too (`Time(1.500s)`), to the nanosecond when the time is not a whole number of
/// milliseconds.
///
/// ```
/// use dstream::Time;
/// assert_eq!(format!("{:?}", Time::from_millis(1500)), "Time(1.500s)");
/// assert_eq!(format!("{:?}", Time::from_nanos(1_000_000_001)), "Time(1.000000001s)");
/// assert_eq!(Time::from_millis(1500).to_string(), "1.500s");
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Time(u64);

impl Time {
    /// The origin of the clock.
    pub const ZERO: Time = Time(0);

    /// A time `nanos` nanoseconds after the origin.
    pub const fn from_nanos(nanos: u64) -> Time {
        Time(nanos)
    }

    /// A time `millis` milliseconds after the origin.
    pub const fn from_millis(millis: u64) -> Time {
        Time(millis.saturating_mul(1_000_000))
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Whole milliseconds since the origin.
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// The time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Time) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, rhs: Duration) -> Time {
        let nanos = u64::try_from(rhs.as_nanos()).unwrap_or(u64::MAX);
        Time(self.0.saturating_add(nanos))
    }
}

impl Sub<Duration> for Time {
    type Output = Time;
    /// The time `rhs` earlier, or the origin if that is before it.
    fn sub(self, rhs: Duration) -> Time {
        let nanos = u64::try_from(rhs.as_nanos()).unwrap_or(u64::MAX);
        Time(self.0.saturating_sub(nanos))
    }
}

impl Sub<Time> for Time {
    type Output = Duration;
    fn sub(self, rhs: Time) -> Duration {
        self.saturating_since(rhs)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1_000_000_000, (self.0 / 1_000_000) % 1000)
    }
}

impl fmt::Debug for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (secs, nanos) = (self.0 / 1_000_000_000, self.0 % 1_000_000_000);
        if nanos % 1_000_000 == 0 {
            write!(f, "Time({secs}.{:03}s)", nanos / 1_000_000)
        } else {
            write!(f, "Time({secs}.{nanos:09}s)")
        }
    }
}

/// A source of the current time for a runtime that drives the state machines.
pub trait Clock: Send + Sync {
    /// The current time. Successive calls never go backwards.
    fn now(&self) -> Time;

    /// Blocks until the clock reaches `deadline` or `stop` is set (and [`Clock::wake`] called).
    /// Returns whether the deadline was reached.
    fn wait_until(&self, deadline: Time, stop: &AtomicBool) -> bool;

    /// Wakes every thread blocked in [`Clock::wait_until`], so it rechecks its stop flag.
    fn wake(&self);
}

/// Waiting and waking for clocks: a condition variable with a generation counter.
#[derive(Debug, Default)]
struct Waiters {
    generation: Mutex<u64>,
    changed: Condvar,
}

impl Waiters {
    fn wake(&self) {
        let mut g = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        *g += 1;
        self.changed.notify_all();
    }

    /// Waits until `done()` holds or `stop` is set, waking at least every `poll` (if given).
    fn wait(&self, stop: &AtomicBool, poll: impl Fn() -> Option<Duration>, done: impl Fn() -> bool) -> bool {
        let mut g = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if done() {
                return true;
            }
            if stop.load(Ordering::SeqCst) {
                return false;
            }
            g = match poll() {
                Some(timeout) => self.changed.wait_timeout(g, timeout).unwrap_or_else(|p| p.into_inner()).0,
                None => self.changed.wait(g).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }
}

/// A clock that only moves when told to: tests step it batch by batch.
///
/// ```
/// use dstream::{Clock, ManualClock, Time};
/// use std::time::Duration;
/// let clock = ManualClock::new(Time::ZERO);
/// clock.advance(Duration::from_millis(500));
/// assert_eq!(clock.now(), Time::from_millis(500));
/// ```
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
    waiters: Waiters,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Time) -> ManualClock {
        ManualClock { nanos: AtomicU64::new(start.as_nanos()), waiters: Waiters::default() }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(nanos, Ordering::SeqCst);
        self.waiters.wake();
    }

    /// Moves the clock to `to`; a time earlier than the current one leaves the clock where it is.
    pub fn set(&self, to: Time) {
        self.nanos.fetch_max(to.as_nanos(), Ordering::SeqCst);
        self.waiters.wake();
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Time {
        Time(self.nanos.load(Ordering::SeqCst))
    }

    fn wait_until(&self, deadline: Time, stop: &AtomicBool) -> bool {
        self.waiters.wait(stop, || None, || self.now() >= deadline)
    }

    fn wake(&self) {
        self.waiters.wake();
    }
}

/// The system's clock: time since the Unix epoch, read from the wall clock when the clock is
/// made and advanced by the monotonic clock from then on, so it never goes backwards.
///
/// Because its origin is the epoch, batch times of a restarted program line up with those of
/// the run it resumes: the batches missed while the program was down run at once, one after
/// the other (as Spark runs the batches of a driver's down time), with whatever input arrived
/// meanwhile in the batch of the present.
///
/// Runtimes read it; the state machines never do.
///
/// ```
/// use dstream::{Clock, SystemClock};
/// let (a, b) = (SystemClock::new(), SystemClock::new());
/// let (ta, tb) = (a.now(), b.now());
/// assert!(ta.as_millis() > 1_600_000_000_000, "since the epoch: {ta}");
/// assert!(tb.saturating_since(ta).as_secs() < 60, "two clocks agree");
/// ```
#[derive(Debug, Clone)]
pub struct SystemClock {
    /// The wall-clock time when the clock was made, since the Unix epoch.
    at_start: Duration,
    /// Started then: the time is `at_start` plus its reading (see [`crate::runtime`]).
    since_start: Stopwatch,
    waiters: std::sync::Arc<Waiters>,
}

impl SystemClock {
    /// A clock counting from the Unix epoch: read from the wall clock once, then advanced by
    /// the monotonic clock, so it never goes backwards. Times of different processes (a
    /// restarted program and the run it resumes) line up with real time and with each other.
    pub fn new() -> SystemClock {
        SystemClock {
            at_start: runtime::since_unix_epoch(),
            since_start: Stopwatch::start(),
            waiters: std::sync::Arc::default(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Time {
        let nanos = u64::try_from((self.at_start + self.since_start.elapsed()).as_nanos()).unwrap_or(u64::MAX);
        Time(nanos)
    }

    fn wait_until(&self, deadline: Time, stop: &AtomicBool) -> bool {
        self.waiters.wait(stop, || Some(deadline.saturating_since(self.now())), || self.now() >= deadline)
    }

    fn wake(&self) {
        self.waiters.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(Time::from_nanos(5) - Time::from_nanos(9), Duration::ZERO);
        assert_eq!(Time::from_nanos(u64::MAX) + Duration::from_secs(1), Time::from_nanos(u64::MAX));
        assert_eq!(Time::from_millis(1500).to_string(), "1.500s");
    }

    #[test]
    fn debug_prints_seconds_not_nanoseconds() {
        assert_eq!(format!("{:?}", Time::from_millis(1500)), "Time(1.500s)");
        assert_eq!(format!("{:?}", Time::ZERO), "Time(0.000s)");
        assert_eq!(format!("{:?}", Time::from_nanos(2_000_000_007)), "Time(2.000000007s)");
        assert_eq!(format!("{:?}", Some(Time::from_millis(20))), "Some(Time(0.020s))");
    }

    #[test]
    fn waiting_on_a_manual_clock_ends_when_it_is_advanced_or_stopped() {
        let clock = std::sync::Arc::new(ManualClock::new(Time::ZERO));
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (c, s) = (clock.clone(), stop.clone());
        let waiter = crate::runtime::spawn("waiter", move || c.wait_until(Time::from_millis(100), &s)).unwrap();
        clock.advance(Duration::from_millis(60));
        clock.advance(Duration::from_millis(40));
        assert!(waiter.join().unwrap());
        let (c, s) = (clock.clone(), stop.clone());
        let waiter = crate::runtime::spawn("waiter", move || c.wait_until(Time::from_millis(500), &s)).unwrap();
        stop.store(true, Ordering::SeqCst);
        clock.wake();
        assert!(!waiter.join().unwrap());
    }

    #[test]
    fn manual_clock_never_goes_back() {
        let c = ManualClock::new(Time::from_millis(10));
        c.set(Time::from_millis(5));
        assert_eq!(c.now(), Time::from_millis(10));
        c.set(Time::from_millis(20));
        assert_eq!(c.now(), Time::from_millis(20));
    }
}
