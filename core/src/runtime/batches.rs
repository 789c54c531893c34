//! The batch thread of a started streaming context: it waits on the context's clock for the
//! batch scheduler's next timer (or a stop), tells the scheduler the time, and executes the
//! work the scheduler emits, one item at a time, reporting each back with the time it ended.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::error::Error;
use crate::scheduler::{BatchFailure, BatchScheduler, Done, Work};
use crate::task::panic_message;
use crate::time::Clock;

/// A stop asked of a batch thread, immediate or graceful; set from any thread.
#[derive(Debug, Default)]
pub(crate) struct StopRequest {
    /// Set by any stop request: what the clock's wait watches.
    requested: AtomicBool,
    /// Set by a graceful one, before `requested`.
    graceful: AtomicBool,
}

impl StopRequest {
    /// Asks for a stop; once graceful, it stays graceful. Wake the clock after it
    /// ([`Clock::wake`]), so a thread waiting on it sees the request.
    pub(crate) fn request(&self, graceful: bool) {
        if graceful {
            self.graceful.store(true, Ordering::SeqCst);
        }
        self.requested.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked for, and if so whether it is graceful.
    fn get(&self) -> Option<bool> {
        // `graceful` is stored before `requested`, so a graceful request is never seen as an
        // immediate one.
        self.requested.load(Ordering::SeqCst).then(|| self.graceful.load(Ordering::SeqCst))
    }
}

/// What the batch thread executes: the work items of its scheduler.
pub(crate) trait BatchExecutor: Send + 'static {
    /// Executes one work item; the result goes back to the scheduler.
    fn execute(&mut self, work: &Work) -> Result<Done, Error>;
    /// The batches are over: the scheduler stopped, on request (`Ok`) or because a batch
    /// failed (its error). Called once, last, on the batch thread.
    fn finish(self, outcome: Result<(), Error>);
}

/// Starts the batch thread: it runs `scheduler`'s batches on `executor`, timed by `clock`,
/// until the scheduler stops (a request in `stop`, or a failed batch), then calls
/// [`BatchExecutor::finish`]. Whatever fails on the thread, even a panic outside the work
/// items, ends in `finish` with the error: the thread never ends silently.
pub(crate) fn start(
    scheduler: BatchScheduler,
    clock: Arc<dyn Clock>,
    stop: Arc<StopRequest>,
    mut executor: impl BatchExecutor,
) -> Result<JoinHandle<()>, Error> {
    super::spawn("dstream-batches", move || {
        let ran = catch_unwind(AssertUnwindSafe(|| run(scheduler, &*clock, &stop, &mut executor)))
            .unwrap_or_else(|panic| Err(Error::BatchThreadPanicked { message: panic_message(&*panic) }));
        executor.finish(ran);
    })
}

/// The batch thread's loop, in the order [`BatchScheduler`] documents.
fn run(
    mut scheduler: BatchScheduler,
    clock: &dyn Clock,
    stop: &StopRequest,
    executor: &mut impl BatchExecutor,
) -> Result<(), Error> {
    loop {
        // The batch that is due starts before a stop is looked at: a stop asked for while it
        // was due stops after it.
        scheduler.handle_timeout(clock.now());
        if let Some(graceful) = stop.get() {
            scheduler.handle_stop(graceful);
        }
        while let Some(work) = scheduler.poll_work() {
            // A panic in a work item (a listener's, dstream's) fails its batch like an error.
            let result = catch_unwind(AssertUnwindSafe(|| executor.execute(&work)))
                .unwrap_or_else(|panic| Err(Error::BatchThreadPanicked { message: panic_message(&*panic) }));
            scheduler.handle_work_done(clock.now(), &work, result);
            if let Some(graceful) = stop.get() {
                scheduler.handle_stop(graceful);
            }
        }
        match scheduler.poll_stopped() {
            Some(Ok(())) => return Ok(()),
            Some(Err(BatchFailure { time, error })) => {
                tracing::error!(%time, error = %error, "batch failed; stopping the streaming context");
                return Err(error);
            }
            None => {}
        }
        let Some(deadline) = scheduler.poll_timeout() else {
            return Err(Error::Internal("the batch scheduler neither stopped nor set a timer"));
        };
        // Returns at the deadline, or earlier once a stop is asked for.
        clock.wait_until(deadline, &stop.requested);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{channel, Receiver, Sender};
    use std::time::Duration;

    use super::*;
    use crate::scheduler::{Config, Driving, Phase, Position};
    use crate::time::{ManualClock, Time};

    /// What the fake executor tells the test.
    #[derive(Debug)]
    enum Seen {
        Reported(Time),
        Finished(Result<(), String>),
    }

    /// Succeeds at everything, except the output of the batch at `fail_at` (an error, or a
    /// panic when `panic`); reports each completed batch and the end.
    struct Fake {
        seen: Sender<Seen>,
        fail_at: Option<(Time, bool)>,
    }

    impl BatchExecutor for Fake {
        fn execute(&mut self, work: &Work) -> Result<Done, Error> {
            match work.phase {
                Phase::RunOutput { .. } if self.fail_at == Some((work.time, false)) => {
                    Err(Error::Internal("an output failed"))
                }
                Phase::RunOutput { .. } if self.fail_at == Some((work.time, true)) => panic!("an output panicked"),
                Phase::CloseInputs { .. } => Ok(Done::Closed { records: 0 }),
                Phase::CheckDrained => Ok(Done::Drained(true)),
                Phase::Report(_) => {
                    let _ = self.seen.send(Seen::Reported(work.time));
                    Ok(Done::Ran)
                }
                _ => Ok(Done::Ran),
            }
        }

        fn finish(self, outcome: Result<(), Error>) {
            let _ = self.seen.send(Seen::Finished(outcome.map_err(|e| e.to_string())));
        }
    }

    fn secs(n: u64) -> Time {
        Time::from_millis(n * 1000)
    }

    /// A batch thread over a manual clock at zero, one-second batches and one output.
    fn started(fail_at: Option<(Time, bool)>) -> (Arc<ManualClock>, Arc<StopRequest>, Receiver<Seen>, JoinHandle<()>) {
        let clock = Arc::new(ManualClock::new(Time::ZERO));
        let stop = Arc::new(StopRequest::default());
        let (tx, rx) = channel();
        let config =
            Config { interval: Duration::from_secs(1), outputs: 1, checkpoints: None, driving: Driving::Clock };
        let scheduler = BatchScheduler::new(config, Position { zero: Time::ZERO, completed: 0, replay_until: None });
        let thread = start(scheduler, clock.clone(), Arc::clone(&stop), Fake { seen: tx, fail_at }).unwrap();
        (clock, stop, rx, thread)
    }

    #[test]
    fn the_thread_runs_missed_batches_in_order_and_stops_on_request() {
        let (clock, stop, seen, thread) = started(None);
        clock.set(Time::from_millis(3500));
        for k in 1..=3 {
            assert!(matches!(seen.recv().unwrap(), Seen::Reported(t) if t == secs(k)), "batch {k}");
        }
        // The next batch is not due: the thread waits on the clock until the stop wakes it.
        stop.request(false);
        clock.wake();
        thread.join().unwrap();
        let rest: Vec<Seen> = seen.try_iter().collect();
        assert!(matches!(rest.as_slice(), [Seen::Finished(Ok(()))]), "{rest:?}");
    }

    #[test]
    fn a_failed_or_panicking_batch_ends_the_thread_with_its_error() {
        for (panic, error) in [(false, "an output failed"), (true, "the batch thread panicked: an output panicked")] {
            let (clock, _stop, seen, thread) = started(Some((secs(2), panic)));
            clock.set(secs(5));
            thread.join().unwrap();
            let all: Vec<Seen> = seen.try_iter().collect();
            match all.as_slice() {
                [Seen::Reported(t), Seen::Finished(Err(e))] => {
                    assert_eq!(*t, secs(1));
                    assert!(e.contains(error), "{e}");
                }
                other => panic!("panic {panic}: {other:?}"),
            }
        }
    }
}
