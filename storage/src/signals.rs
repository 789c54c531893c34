//! Graceful stops on SIGINT (Ctrl-C) and SIGTERM: [`SignalsExt::await_termination_or_signal`].
//!
//! The handler is installed once per process, by the first wait, through the `ctrlc` crate
//! (with its `termination` feature: SIGINT, SIGTERM and SIGHUP on Unix, Ctrl-C and Ctrl-Break on
//! Windows); before that a signal ends the process as usual. A program that installs a
//! `ctrlc` handler of its own cannot use these waits (a process has one handler).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use dstream::{StreamingContext, StreamingHandle};

/// How [`SignalsExt::await_termination_or_signal`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Termination {
    /// The context stopped by itself: a `stop` from elsewhere, or a failed batch (then the
    /// wait returned its error instead).
    Stopped,
    /// The process received SIGINT or SIGTERM, and the context then stopped gracefully.
    Signalled,
}

/// The process's signal state, shared with the handler.
#[derive(Debug, Default)]
struct Signals {
    state: Mutex<SignalState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct SignalState {
    /// Signals received since the handler was installed.
    received: u64,
    /// Graceful stops in progress because of a signal: one more signal exits the process.
    stopping: u32,
}

/// The exit code of a process ended by a second signal during a graceful stop: 128 + SIGINT,
/// as a shell reports a process killed by Ctrl-C.
pub const EXIT_CODE_SECOND_SIGNAL: i32 = 130;

impl Signals {
    fn lock(&self) -> MutexGuard<'_, SignalState> {
        // Plain counters: a panic elsewhere cannot leave them torn.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The handler: counts the signal and wakes the waits; a signal during a graceful stop
    /// ends the process at once, as a second Ctrl-C is expected to.
    fn raise(&self) {
        let mut state = self.lock();
        if state.stopping > 0 {
            eprintln!("dstream: second signal during a graceful stop: exiting now");
            std::process::exit(EXIT_CODE_SECOND_SIGNAL);
        }
        state.received += 1;
        self.changed.notify_all();
    }

    fn wake(&self) {
        let _state = self.lock();
        self.changed.notify_all();
    }
}

static SIGNALS: OnceLock<Result<Signals, String>> = OnceLock::new();

/// The process's signal state, installing the handler the first time.
fn signals() -> Result<&'static Signals, dstream::Error> {
    let installed = SIGNALS.get_or_init(|| {
        ctrlc::set_handler(|| {
            if let Some(Ok(signals)) = SIGNALS.get() {
                signals.raise();
            }
        })
        .map(|()| Signals::default())
        .map_err(|e| e.to_string())
    });
    match installed {
        Ok(signals) => Ok(signals),
        Err(e) => Err(dstream::Error::Io(io::Error::other(format!("cannot handle SIGINT and SIGTERM: {e}")))),
    }
}

/// Waiting for a streaming context to stop, or for the process to be told to stop (bring the
/// trait into scope: `use dstream_storage::SignalsExt`).
pub trait SignalsExt {
    /// Waits until the context stops, or until the process receives SIGINT (Ctrl-C) or
    /// SIGTERM; on a signal, stops the context gracefully ([`StreamingContext::stop`]`(true)`:
    /// the batch in progress finishes, and so do the batches of the records received before the
    /// signal), then returns [`Termination::Signalled`]. A second signal during that stop ends
    /// the process at once, with exit code [`EXIT_CODE_SECOND_SIGNAL`]. Returns the error that
    /// stopped the context, if one did; an error if the signal handler cannot be installed
    /// (another handler of the `ctrlc` crate is, for instance).
    ///
    /// The handler is installed by the first call and stays for the life of the process.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use dstream::{StepCluster, StreamingContext, SystemClock};
    /// use dstream_storage::{SignalsExt, Termination};
    ///
    /// let cluster = StepCluster::builder().build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_millis(10), Arc::new(SystemClock::new()))?;
    /// let (_input, lines) = ssc.input_stream::<String>();
    /// lines.count().print(1)?;
    /// let running = ssc.start()?;
    /// # let stopper = ssc.clone();
    /// # std::thread::spawn(move || stopper.stop(false));
    /// // Runs until Ctrl-C (or a stop from elsewhere, as here), then stops gracefully.
    /// let how = running.await_termination_or_signal()?;
    /// assert_eq!(how, Termination::Stopped);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    fn await_termination_or_signal(&self) -> Result<Termination, dstream::Error>;

    /// [`SignalsExt::await_termination_or_signal`] for at most `timeout` (Spark's
    /// `awaitTerminationOrTimeout`, with signals): `Ok(None)` if the context is still running
    /// when the timeout passes (it is not stopped), else how it ended. A run of fixed length
    /// stops it then.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use dstream::{StepCluster, StreamingContext, SystemClock};
    /// use dstream_storage::SignalsExt;
    ///
    /// let cluster = StepCluster::builder().build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_millis(10), Arc::new(SystemClock::new()))?;
    /// let (input, lines) = ssc.input_stream::<String>();
    /// lines.count().print(1)?;
    /// let running = ssc.start()?;
    /// input.push("hello".to_string())?;
    /// // Run for 50 ms, or less on Ctrl-C (which stops the context gracefully).
    /// if running.await_termination_or_signal_timeout(Duration::from_millis(50))?.is_none() {
    ///     running.stop(true)?;
    /// }
    /// # Ok::<(), dstream::Error>(())
    /// ```
    fn await_termination_or_signal_timeout(&self, timeout: Duration) -> Result<Option<Termination>, dstream::Error>;
}

impl SignalsExt for StreamingContext {
    fn await_termination_or_signal(&self) -> Result<Termination, dstream::Error> {
        // Without a deadline the wait only ends with the context or a signal.
        wait(self, None).map(|how| how.unwrap_or(Termination::Stopped))
    }

    fn await_termination_or_signal_timeout(&self, timeout: Duration) -> Result<Option<Termination>, dstream::Error> {
        wait(self, Some(timeout))
    }
}

impl SignalsExt for StreamingHandle {
    fn await_termination_or_signal(&self) -> Result<Termination, dstream::Error> {
        self.context().await_termination_or_signal()
    }

    fn await_termination_or_signal_timeout(&self, timeout: Duration) -> Result<Option<Termination>, dstream::Error> {
        self.context().await_termination_or_signal_timeout(timeout)
    }
}

/// Waits for the end of `ssc`, a signal, or the timeout (`None` when it passed first). A
/// scoped thread waits for the context (at most `timeout`) and wakes the signal wait when it
/// is done, so nothing polls.
fn wait(ssc: &StreamingContext, timeout: Option<Duration>) -> Result<Option<Termination>, dstream::Error> {
    let signals = signals()?;
    let seen = signals.lock().received;
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let stopped = match timeout {
                None => ssc.await_termination().map(|()| true),
                Some(d) => ssc.await_termination_timeout(d),
            };
            done.store(true, Ordering::SeqCst);
            signals.wake();
            stopped
        });
        let mut state = signals.lock();
        while state.received == seen && !done.load(Ordering::SeqCst) {
            state = signals.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        let signalled = state.received != seen && !done.load(Ordering::SeqCst);
        if signalled {
            state.stopping += 1;
        }
        drop(state);
        let stopped = if signalled {
            eprintln!("dstream: signal received: stopping gracefully (again to exit at once)");
            let stopped = ssc.stop(true);
            signals.lock().stopping -= 1;
            stopped
        } else {
            Ok(())
        };
        // The watcher returns once the context has stopped (as it has after a stop) or its
        // timeout passed.
        let outcome = watcher.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        stopped?;
        match (signalled, outcome?) {
            (true, _) => Ok(Some(Termination::Signalled)),
            (false, true) => Ok(Some(Termination::Stopped)),
            (false, false) => Ok(None),
        }
    })
}
