//! Extension traits giving the core types their I/O operations: sources on
//! [`StreamingContext`], outputs on [`DStream`] and [`Rdd`].

use std::fmt::Display;
use std::io;
use std::net::ToSocketAddrs;
use std::path::Path;

use dstream::{DStream, Data, Rdd, StreamingContext};

use crate::file_stream::TextFileStreamReceiver;
use crate::save::{text_files_dir, write_text_dir, SaveError};
use crate::socket::SocketTextReceiver;

/// Input streams that read the outside world, on a [`StreamingContext`] (bring the trait into
/// scope: `use dstream_storage::StreamingContextExt`).
///
/// Each is a receiver with its default settings; build the receiver
/// ([`SocketTextReceiver`], [`TextFileStreamReceiver`]) and pass it to
/// [`StreamingContext::receiver_stream`] to change them or to read its counters.
pub trait StreamingContextExt {
    #[doc(alias = "socketTextStream")]
    /// The lines sent by the TCP server at `addr`, reconnecting whenever the connection
    /// drops; see [`SocketTextReceiver`] for the details (invalid lines, backoff, stopping).
    /// Fails if `addr` does not resolve (an `io::Error`, which `?` turns into
    /// [`dstream::Error::Io`]). What goes wrong later (a refused connection, say) is printed to
    /// stderr and kept in [`StreamingContext::receiver_errors`]; build the receiver with
    /// [`SocketTextReceiver::report_to_stderr`] to keep stderr quiet.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use dstream::{ManualClock, StepCluster, StreamingContext, Time};
    /// use dstream_storage::StreamingContextExt;
    ///
    /// let cluster = StepCluster::builder().build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))?;
    /// let server = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let words = ssc.socket_text_stream(server.local_addr()?)?.flat_map(|line| {
    ///     line.split_whitespace().map(str::to_owned).collect::<Vec<_>>()
    /// });
    /// words.count().print(1)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn socket_text_stream(&self, addr: impl ToSocketAddrs) -> io::Result<DStream<String>>;

    #[doc(alias = "textFileStream")]
    /// The lines of the files that appear in the directory `dir` from now on, each file read
    /// once when it is complete; see [`TextFileStreamReceiver`] for the contract (files present
    /// now are ignored, files being written, unreadable files, chunks and the line limit).
    ///
    /// **Move files into `dir` complete** (write them elsewhere, or under a name starting with
    /// `.` or `_`, then rename them in): a file written in place can be read half-way; every
    /// change to a file after it was read is reported to
    /// [`StreamingListener::on_receiver_error`](dstream::StreamingListener::on_receiver_error),
    /// not read.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use dstream::{ManualClock, StepCluster, StreamingContext, Time};
    /// use dstream_storage::StreamingContextExt;
    ///
    /// let cluster = StepCluster::builder().build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))?;
    /// let errors = ssc.text_file_stream(std::env::temp_dir().join("incoming")).filter(|line| line.contains("ERROR"));
    /// errors.print(10)?;
    /// # Ok::<(), dstream::Error>(())
    /// ```
    fn text_file_stream(&self, dir: impl AsRef<Path>) -> DStream<String>;
}

impl StreamingContextExt for StreamingContext {
    fn socket_text_stream(&self, addr: impl ToSocketAddrs) -> io::Result<DStream<String>> {
        Ok(self.receiver_stream(SocketTextReceiver::new(addr)?))
    }

    fn text_file_stream(&self, dir: impl AsRef<Path>) -> DStream<String> {
        self.receiver_stream(TextFileStreamReceiver::new(dir))
    }
}

/// Output operations that write files, on a [`DStream`] (bring the trait into scope:
/// `use dstream_storage::DStreamExt`).
pub trait DStreamExt<T> {
    #[doc(alias = "saveAsTextFiles")]
    /// Writes every batch into the directory `{prefix}-{batch time in ms}{suffix}` (see
    /// [`text_files_dir`]; pass `".txt"`, with its dot, for a dotted suffix), one file per
    /// partition, one line per record in its [`Display`] form (Spark's `toString`).
    ///
    /// The batch is collected to the driver (`glom().collect()`) and written with
    /// [`write_text_dir`]: atomically (a reader never sees a partial directory) and
    /// idempotently (writing a batch time again replaces its directory with the new, equal,
    /// content), so an output that is re-run after a failure leaves exactly one copy. Write
    /// errors fail the batch: the error, naming the path, reaches
    /// [`StreamingListener::on_batch_failed`](dstream::StreamingListener::on_batch_failed) and
    /// [`StreamingContext::step`] (or stops a started context). Must be called before the
    /// context starts.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use dstream::{ManualClock, StepCluster, StreamingContext, Time};
    /// use dstream_storage::DStreamExt;
    /// # let out = std::env::temp_dir().join(format!("dstream-doc-save-{}", std::process::id()));
    ///
    /// let cluster = StepCluster::builder().build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))?;
    /// let (queue, numbers) = ssc.queue_stream::<u32>(2);
    /// numbers.map(|n| n * 10).save_as_text_files(out.join("tens"), ".txt")?;
    /// queue.push(vec![1, 2, 3]);
    /// ssc.step()?;
    /// let batch = out.join("tens-1000.txt");
    /// assert_eq!(std::fs::read_to_string(batch.join("part-00000"))?, "10\n");
    /// assert_eq!(std::fs::read_to_string(batch.join("part-00001"))?, "20\n30\n");
    /// # std::fs::remove_dir_all(&out)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn save_as_text_files(&self, prefix: impl AsRef<Path>, suffix: &str) -> Result<(), dstream::Error>;
}

impl<T: Data + Display> DStreamExt<T> for DStream<T> {
    fn save_as_text_files(&self, prefix: impl AsRef<Path>, suffix: &str) -> Result<(), dstream::Error> {
        let prefix = prefix.as_ref().to_path_buf();
        let suffix = suffix.to_owned();
        self.foreach_rdd(move |rdd, time| {
            let dir = text_files_dir(&prefix, &suffix, time);
            let partitions = rdd.glom().collect()?;
            Ok(write_text_dir(&dir, &partitions)?)
        })
    }
}

/// Actions that write files, on an [`Rdd`] (bring the trait into scope:
/// `use dstream_storage::RddExt`).
pub trait RddExt<T> {
    /// Computes the dataset and writes it into the directory `dir` with [`write_text_dir`]:
    /// one file per partition, one line per record in its [`Display`] form, atomically.
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream_storage::RddExt;
    /// # let out = std::env::temp_dir().join(format!("dstream-doc-rdd-{}", std::process::id()));
    /// let cluster = dstream::StepCluster::builder().build();
    /// let numbers = cluster.context().parallelize(vec![1, 2, 3], 2)?;
    /// numbers.save_as_text_file(out.join("numbers"))?;
    /// assert_eq!(std::fs::read_to_string(out.join("numbers/part-00001"))?, "2\n3\n");
    /// # std::fs::remove_dir_all(&out)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn save_as_text_file(&self, dir: impl AsRef<Path>) -> Result<(), SaveError>;
}

impl<T: Data + Display> RddExt<T> for Rdd<T> {
    fn save_as_text_file(&self, dir: impl AsRef<Path>) -> Result<(), SaveError> {
        let partitions = self.glom().collect()?;
        write_text_dir(dir, &partitions)
    }
}
