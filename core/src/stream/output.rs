//! Output operations and reading a running stream's recent datasets.

use std::sync::Arc;

use super::context::OutputOp;
use super::{lock, DStream};
use crate::error::Error;
use crate::rdd::Rdd;
use crate::time::Time;
use crate::Data;

impl<T: Data> DStream<T> {
    #[doc(alias = "foreachRDD")]
    /// Runs `f` on the driver for every dataset of this stream, with its batch time, once per
    /// batch and in definition order among output operations. `f` may run actions. Because it
    /// receives the batch time, a sink can make its writes idempotent. Fails once the context
    /// has started.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use dstream::{ManualClock, StepCluster, StreamingContext, Time};
    /// let cluster = StepCluster::builder().build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_millis(500), Arc::new(ManualClock::new(Time::ZERO)))?;
    /// let (queue, numbers) = ssc.queue_stream::<u32>(2);
    /// let totals = Arc::new(Mutex::new(Vec::new()));
    /// let t = Arc::clone(&totals);
    /// numbers.foreach_rdd(move |rdd, time| {
    ///     t.lock().unwrap().push((time.as_millis(), rdd.fold(0, |a, b| a + b)?));
    ///     Ok(())
    /// })?;
    /// queue.push(vec![1, 2, 3]);
    /// queue.push(vec![4]);
    /// ssc.step()?;
    /// ssc.step()?;
    /// assert_eq!(*totals.lock().unwrap(), vec![(500, 6), (1000, 4)]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn foreach_rdd(
        &self,
        f: impl Fn(&Rdd<T>, Time) -> Result<(), Error> + Send + Sync + 'static,
    ) -> Result<(), Error> {
        let node = Arc::clone(self.node());
        self.context().register_output(OutputOp {
            name: "foreach_rdd",
            stream: self.id(),
            run: Box::new(move |time, b| match node.get(time, b)? {
                Some(rdd) => f(&rdd, time),
                None => Ok(()),
            }),
        })
    }

    /// Prints the first `n` records of every dataset to standard output, under a header with
    /// the batch time.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use dstream::{ManualClock, StepCluster, StreamingContext, Time};
    /// # let cluster = StepCluster::builder().build();
    /// # let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))?;
    /// let (queue, words) = ssc.queue_stream::<String>(1);
    /// words.print(10)?;
    /// queue.push(vec!["hello".into()]);
    /// ssc.step()?; // prints the batch at 1.000s: hello
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn print(&self, n: usize) -> Result<(), Error>
    where
        T: std::fmt::Debug,
    {
        let node = Arc::clone(self.node());
        self.context().register_output(OutputOp {
            name: "print",
            stream: self.id(),
            run: Box::new(move |time, b| {
                let Some(rdd) = node.get(time, b)? else { return Ok(()) };
                let first = rdd.take(n + 1)?;
                let mut text = format!("-------------------------------------------\nTime: {time}\n-------------------------------------------\n");
                for record in first.iter().take(n) {
                    text.push_str(&format!("{record:?}\n"));
                }
                if first.len() > n {
                    text.push_str("...\n");
                }
                #[allow(clippy::print_stdout)] // Printing is this output operation's purpose.
                {
                    println!("{text}");
                }
                Ok(())
            }),
        })
    }

    /// The datasets this stream generated for batch times in `from..=to` that it still
    /// remembers, oldest first: for ad-hoc queries over recent data while the context runs.
    /// Use [`StreamingContext::remember`](super::StreamingContext::remember) to keep a longer
    /// history.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use dstream::{ManualClock, StepCluster, StreamingContext, Time};
    /// # let cluster = StepCluster::builder().build();
    /// # let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))?;
    /// ssc.remember(Duration::from_secs(60));
    /// let (queue, numbers) = ssc.queue_stream::<u32>(1);
    /// numbers.foreach_rdd(|_, _| Ok(()))?;
    /// for batch in [vec![1], vec![2, 3], vec![4]] {
    ///     queue.push(batch);
    ///     ssc.step()?;
    /// }
    /// let recent = numbers.slice(Time::from_millis(2000), Time::from_millis(3000));
    /// let counts: Vec<u64> = recent.iter().map(|(_, rdd)| rdd.count()).collect::<Result<_, _>>()?;
    /// assert_eq!(counts, vec![2, 1]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn slice(&self, from: Time, to: Time) -> Vec<(Time, Rdd<T>)> {
        if from > to {
            return Vec::new();
        }
        lock(&self.node().generated).range(from..=to).filter_map(|(t, rdd)| rdd.clone().map(|r| (*t, r))).collect()
    }
}
