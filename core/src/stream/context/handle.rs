//! [`StreamingHandle`]: stops a started streaming context and waits for it to end.

use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{StreamingContext, StreamingState};
use crate::error::Error;
use crate::stream::lock;

/// Controls a started streaming context.
pub struct StreamingHandle {
    ssc: StreamingContext,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl StreamingHandle {
    /// The handle of `ssc`, whose batches run on `thread`.
    pub(super) fn new(ssc: StreamingContext, thread: JoinHandle<()>) -> StreamingHandle {
        StreamingHandle { ssc, thread: Mutex::new(Some(thread)) }
    }

    /// Stops the context. A graceful stop first stops the inputs from accepting records, then
    /// runs batches until every record received before the stop has been processed; otherwise
    /// the context stops after the batch in progress. Waits until it has stopped.
    ///
    /// Spark's `ssc.stop(stopSparkContext, stopGracefully)`: the cluster is not stopped with the
    /// context (it stops when it is dropped). Returns the error that stopped the context, if
    /// something else stopped it first.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use dstream::{StreamingContext, StreamingState, SystemClock};
    /// use dstream_inproc::LocalCluster;
    ///
    /// let cluster = LocalCluster::builder().workers(2).build()?;
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_millis(100), Arc::new(SystemClock::new()))?;
    /// let (input, numbers) = ssc.input_stream::<u64>();
    /// let seen = Arc::new(AtomicU64::new(0));
    /// let sink = Arc::clone(&seen);
    /// numbers.foreach_rdd(move |rdd, _time| {
    ///     sink.fetch_add(rdd.count()?, Ordering::SeqCst);
    ///     Ok(())
    /// })?;
    /// let running = ssc.start()?;
    /// input.push_all(1..=1000)?;
    /// running.stop(true)?; // graceful: returns once the 1,000 records are processed
    /// assert_eq!(seen.load(Ordering::SeqCst), 1000);
    /// assert_eq!(running.state(), StreamingState::Stopped);
    /// assert!(input.push(1).is_err()); // a stopped context takes no more input
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn stop(&self, graceful: bool) -> Result<(), Error> {
        let inner = &self.ssc.inner;
        // Receivers first: what they stored before stopping is still processed by a graceful stop.
        self.ssc.stop_receivers();
        lock(&inner.inputs).iter().for_each(|(i, _)| i.stop_accepting());
        inner.stop.request(graceful);
        inner.clock.wake();
        self.await_termination()
    }

    /// Waits until the context stops; returns the error that stopped it, if any. Spark's
    /// `ssc.awaitTermination()`, here on the handle that [`StreamingContext::start`] returns.
    ///
    /// # Examples
    ///
    /// A context stops by itself when a batch fails; the error comes back here:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use dstream::{Error, StreamingContext, SystemClock};
    /// use dstream_inproc::LocalCluster;
    ///
    /// let cluster = LocalCluster::builder().workers(2).build()?;
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_millis(100), Arc::new(SystemClock::new()))?;
    /// let (input, numbers) = ssc.input_stream::<u64>();
    /// numbers.foreach_rdd(|rdd, _time| match rdd.count()? {
    ///     0 => Ok(()),
    ///     _ => Err(Error::BatchFailed("the sink is gone".into())),
    /// })?;
    /// let running = ssc.start()?;
    /// input.push(7)?;
    /// let error = running.await_termination().unwrap_err();
    /// assert!(error.to_string().contains("the sink is gone"), "{error}");
    /// # Ok::<(), dstream::Error>(())
    /// ```
    #[doc(alias = "awaitTermination")]
    pub fn await_termination(&self) -> Result<(), Error> {
        if let Some(t) = lock(&self.thread).take() {
            if let Err(panic) = t.join() {
                return Err(Error::BatchThreadPanicked { message: crate::task::panic_message(&*panic) });
            }
        }
        self.outcome()
    }

    /// Waits at most `timeout` for the context to stop. Returns `Ok(true)` if it stopped,
    /// `Ok(false)` if it is still running, and the error that stopped it, if any. Spark's
    /// `ssc.awaitTerminationOrTimeout(ms)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use dstream::{StreamingContext, SystemClock};
    /// use dstream_inproc::LocalCluster;
    ///
    /// let cluster = LocalCluster::builder().workers(2).build()?;
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_millis(100), Arc::new(SystemClock::new()))?;
    /// let (_input, numbers) = ssc.input_stream::<u64>();
    /// numbers.count().print(1)?;
    /// let running = ssc.start()?;
    /// assert!(!running.await_termination_timeout(Duration::from_millis(10))?); // still running
    /// running.stop(false)?;
    /// assert!(running.await_termination_timeout(Duration::ZERO)?); // stopped
    /// # Ok::<(), dstream::Error>(())
    /// ```
    #[doc(alias = "awaitTerminationOrTimeout")]
    pub fn await_termination_timeout(&self, timeout: Duration) -> Result<bool, Error> {
        let inner = &self.ssc.inner;
        let run = lock(&inner.run);
        let (run, _) = inner
            .ended
            .wait_timeout_while(run, timeout, |r| r.state != StreamingState::Stopped)
            .unwrap_or_else(|p| p.into_inner());
        if run.state != StreamingState::Stopped {
            return Ok(false);
        }
        drop(run);
        self.outcome().map(|()| true)
    }

    fn outcome(&self) -> Result<(), Error> {
        match &lock(&self.ssc.inner.run).result {
            Some(Err(message)) => Err(Error::BatchFailed(message.clone())),
            _ => Ok(()),
        }
    }

    /// The context's state.
    pub fn state(&self) -> StreamingState {
        self.ssc.state()
    }
}

impl Drop for StreamingHandle {
    fn drop(&mut self) {
        if self.state() == StreamingState::Active {
            let _ = self.stop(false);
        }
    }
}

impl std::fmt::Debug for StreamingHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingHandle").field("state", &self.state()).finish()
    }
}
