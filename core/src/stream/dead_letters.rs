//! The streaming side of dead letters (see [`crate::dead_letter`]): streams opt in, one output
//! receives the letters once per batch, and the batch's report counts them.

use std::sync::Arc;

use super::context::StreamingState;
use super::{lock, DStream, StreamingContext};
use crate::dead_letter::DeadLetter;
use crate::error::Error;
use crate::time::Time;
use crate::Data;

/// The function receiving a batch's dead letters.
pub(crate) type DeadLetterFn = dyn Fn(&[DeadLetter], Time) -> Result<(), Error> + Send + Sync;

impl<T: Data> DStream<T> {
    /// Sets this stream's poison records aside instead of failing the batch: a record on which
    /// the stream's own per-record function (`map`, `filter`, `flat_map`, `map_values`,
    /// `flat_map_values`) panics on every attempt becomes a [`DeadLetter`], delivered with its
    /// error to [`StreamingContext::foreach_dead_letters`] (required), and the rest of the
    /// batch goes on. Off by default: without it such a panic fails the batch.
    ///
    /// Only a task that failed on every attempt pays for it: it runs once more, catching a
    /// panic per record, so a transient panic is retried as usual and sets nothing aside. A
    /// panic this cannot blame on one record (in a reduce or combine function, in
    /// `map_partitions`, in another stream's function) still fails the batch, with
    /// [`TaskErrorKind::PanicNotCovered`](crate::TaskErrorKind::PanicNotCovered). Fails once the
    /// context has started.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use dstream::{ManualClock, StepCluster, StreamingContext, Time};
    /// let cluster = StepCluster::builder().build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))?;
    /// let (queue, lines) = ssc.queue_stream::<String>(2);
    /// let numbers = lines.map(|l| l.parse::<u32>().expect("a number")).with_dead_letters()?;
    /// let (sums, letters) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
    /// let s = Arc::clone(&sums);
    /// numbers.foreach_rdd(move |rdd, _| Ok(s.lock().unwrap().push(rdd.fold(0, |a, b| a + b)?)))?;
    /// let l = Arc::clone(&letters);
    /// ssc.foreach_dead_letters(move |dead, _time| {
    ///     l.lock().unwrap().extend(dead.iter().map(|d| d.record::<String>().unwrap()));
    ///     Ok(())
    /// })?;
    /// queue.push(vec!["1".into(), "x".into(), "2".into()]);
    /// ssc.step()?;
    /// assert_eq!(*sums.lock().unwrap(), vec![3]);
    /// assert_eq!(*letters.lock().unwrap(), vec!["x".to_string()]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn with_dead_letters(&self) -> Result<DStream<T>, Error> {
        if self.context().state() != StreamingState::Initialized {
            return Err(Error::StreamingStarted { operation: "with_dead_letters" });
        }
        self.context().context().dead_letter_log().cover(self.id());
        Ok(self.clone())
    }
}

impl StreamingContext {
    /// Receives the dead letters of the streams that set poison records aside
    /// ([`DStream::with_dead_letters`]): `f` runs on the driver once per batch that has some,
    /// after the batch's outputs and before the batch counts as completed, with the letters in
    /// a deterministic order (by dataset, partition and record) and the batch time. An error
    /// (or a panic) fails the batch, as an output's does.
    ///
    /// A batch replayed after a restart, or recomputed, sets the same records aside again
    /// with the same identities (`stream`, `time`, `rdd`, `partition`, `index`): like an
    /// output's, `f`'s writes must be idempotent by them. One function per context: a second
    /// call replaces the first. Fails once the context has started.
    ///
    /// # Examples
    ///
    /// See [`DStream::with_dead_letters`].
    pub fn foreach_dead_letters(
        &self,
        f: impl Fn(&[DeadLetter], Time) -> Result<(), Error> + Send + Sync + 'static,
    ) -> Result<(), Error> {
        if self.state() != StreamingState::Initialized {
            return Err(Error::StreamingStarted { operation: "foreach_dead_letters" });
        }
        *lock(&self.inner.dead_letter_output) = Some(Arc::new(f));
        Ok(())
    }

    /// Dead letters one batch may set aside (default 1000): one more fails the batch with
    /// [`Error::TooManyDeadLetters`], since so many poison records point at a bug or a changed
    /// input rather than at a few bad records. It also bounds what is held until delivery.
    /// Fails once the context has started.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use dstream::{ManualClock, StepCluster, StreamingContext, Time};
    /// # let cluster = StepCluster::builder().build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))?;
    /// ssc.dead_letters_per_batch_max(10)?;
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn dead_letters_per_batch_max(&self, max: u32) -> Result<(), Error> {
        if self.state() != StreamingState::Initialized {
            return Err(Error::StreamingStarted { operation: "dead_letters_per_batch_max" });
        }
        self.inner.ctx.dead_letter_log().set_per_batch_max(max);
        Ok(())
    }

    /// Refuses to start a context whose dead letters no output would receive.
    pub(crate) fn check_dead_letter_output(&self) -> Result<(), Error> {
        match self.inner.ctx.dead_letter_log().covered().first() {
            Some(stream) if lock(&self.inner.dead_letter_output).is_none() => {
                Err(Error::NoDeadLetterOutput { stream: *stream })
            }
            _ => Ok(()),
        }
    }

    /// Delivers the dead letters that arrived since the last delivery; returns how many.
    pub(crate) fn deliver_dead_letters(&self, time: Time) -> Result<u64, Error> {
        let log = self.inner.ctx.dead_letter_log();
        if !log.any_covered() {
            return Ok(0);
        }
        let graph = self.inner.ctx.graph();
        let letters = log.take(|rdd| graph.rdd(rdd).is_ok()).map_err(|count| Error::TooManyDeadLetters {
            time,
            count,
            max: log.per_batch_max(),
        })?;
        if letters.is_empty() {
            return Ok(0);
        }
        let output = lock(&self.inner.dead_letter_output).clone();
        let Some(f) = output else {
            let stream = letters.first().map_or(crate::ids::StreamId(0), |l| l.stream);
            return Err(Error::NoDeadLetterOutput { stream });
        };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&letters, time))).unwrap_or_else(|panic| {
            Err(Error::OutputPanicked {
                output: "foreach_dead_letters",
                time,
                message: crate::task::panic_message(&*panic),
            })
        })?;
        Ok(letters.len() as u64)
    }
}
