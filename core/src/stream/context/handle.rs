//! [`StreamingHandle`]: stops a started streaming context and waits for it to end.

use std::time::Duration;

use super::{StreamingContext, StreamingState};
use crate::error::Error;

/// Controls a started streaming context: what [`StreamingContext::start`] returns.
///
/// The context runs until it is stopped ([`StreamingHandle::stop`],
/// [`StreamingContext::stop`]) or a batch fails, as Spark's does: **dropping the handle does not
/// stop it**. Keep the handle to wait for the end ([`StreamingHandle::await_termination`],
/// Spark's `awaitTermination`) or to stop; every method here is also on the context itself.
/// A `main` that returns while the context runs ends the process, batches and all.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use dstream::{StepCluster, StreamingContext, StreamingState, SystemClock};
///
/// let cluster = StepCluster::builder().build();
/// let ssc = StreamingContext::new(cluster.context(), Duration::from_millis(10), Arc::new(SystemClock::new()))?;
/// let (input, numbers) = ssc.input_stream::<u64>();
/// numbers.reduce(|a, b| a + b).print(1)?;
/// let running = ssc.start()?;
/// input.push_all(1..=10)?;
/// // Still running after a wait: only a stop (or a failed batch) ends it.
/// assert!(!running.await_termination_timeout(Duration::from_millis(20))?);
/// running.stop(true)?;
/// assert_eq!(running.state(), StreamingState::Stopped);
/// running.await_termination()?; // returns at once: it has stopped
/// # Ok::<(), dstream::Error>(())
/// ```
///
/// Dropping the handle unused is flagged (`unused_must_use`), since it usually means `main`
/// forgot to wait:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// # use std::sync::Arc;
/// # use std::time::Duration;
/// # use dstream::{StepCluster, StreamingContext, SystemClock};
/// fn main() -> Result<(), dstream::Error> {
///     # let cluster = StepCluster::builder().build();
///     # let ssc = StreamingContext::new(cluster.context(), Duration::from_millis(10), Arc::new(SystemClock::new()))?;
///     # let (_queue, numbers) = ssc.queue_stream::<u32>(1);
///     # numbers.print(1)?;
///     ssc.start()?; // error: unused `StreamingHandle` that must be used
///     # ssc.stop(false)?;
///     Ok(())
/// }
/// ```
#[must_use = "the context runs until stopped: keep the handle to wait for it (`await_termination`) or to stop it; \
              dropping it does not stop the context, and a `main` that returns ends the process"]
pub struct StreamingHandle {
    ssc: StreamingContext,
}

impl StreamingHandle {
    /// The handle of `ssc`, whose batches run on its batch thread.
    pub(super) fn new(ssc: StreamingContext) -> StreamingHandle {
        StreamingHandle { ssc }
    }

    /// The context this handle controls.
    pub fn context(&self) -> &StreamingContext {
        &self.ssc
    }

    /// Stops the context: see [`StreamingContext::stop`]. A graceful stop first stops the
    /// inputs from accepting records, then runs batches until every record received before the
    /// stop has been processed; otherwise the context stops after the batch in progress. Waits
    /// until it has stopped.
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
        self.ssc.stop(graceful)
    }

    /// Waits until the context stops; returns the error that stopped it, if any. See
    /// [`StreamingContext::await_termination`].
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
        self.ssc.await_termination()
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
        self.ssc.await_termination_timeout(timeout)
    }

    /// The context's state.
    pub fn state(&self) -> StreamingState {
        self.ssc.state()
    }

    /// The latest errors the receivers reported: see [`StreamingContext::receiver_errors`].
    pub fn receiver_errors(&self) -> Vec<crate::stream::ReceiverError> {
        self.ssc.receiver_errors()
    }
}

impl std::fmt::Debug for StreamingHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingHandle").field("state", &self.state()).finish()
    }
}
