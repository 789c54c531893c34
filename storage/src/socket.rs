//! Lines read from a TCP connection, reconnecting when it drops: the receiver behind
//! [`StreamingContextExt::socket_text_stream`](crate::StreamingContextExt::socket_text_stream).

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use dstream::{Receiver, ReceiverContext};

use crate::lines::{LineSplitter, Piece, MAX_LINE_BYTES_DEFAULT};
use crate::report::{report, worth_printing};

/// A [`Receiver`] of the lines of a TCP connection, as UTF-8 strings without their `\n` (or
/// `\r\n`) terminator.
///
/// - It connects to the address (each resolved address in turn) with a connect timeout, on a
///   helper thread, so a stop is noticed within the poll interval even while a connection is
///   being attempted; reads use the poll interval as their timeout for the same reason.
/// - Lines are stored as they arrive: after every read, in chunks of at most
///   [`SocketTextReceiver::chunk_lines`].
/// - A line that is not valid UTF-8 is skipped, counted ([`SocketStats::invalid_lines`]) and
///   reported through [`ReceiverContext::report_error`]; so is a line longer than
///   [`SocketTextReceiver::max_line_bytes`], which bounds the memory a peer can make it hold.
/// - When the peer closes the connection (a last line without terminator is kept), refuses it
///   or the connection fails, the event is reported and the receiver reconnects after a delay
///   that doubles from the minimum to the maximum backoff, and starts again from the minimum
///   once a connection delivers data. It never panics and never spins. A line cut by a failed
///   connection is dropped: the peer must send it again.
/// - Every report reaches the context (its listeners, and
///   [`StreamingContext::receiver_errors`](dstream::StreamingContext::receiver_errors)) and is
///   printed to stderr unless [`SocketTextReceiver::report_to_stderr`] turns that off: pointed at
///   a closed port, the receiver says so without any setup.
///
/// Waits (the backoff) are in real time, whatever the streaming context's clock: the peer
/// lives in real time. Delivery is at most once per line received: what the peer sent while
/// no connection was open is not seen.
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use std::sync::{mpsc, Arc, Mutex};
/// use std::time::Duration;
/// use dstream::{ManualClock, StepCluster, StreamId, StreamingContext, StreamingListener, Time};
/// use dstream_storage::SocketTextReceiver;
///
/// // A peer that sends two lines and closes the connection.
/// let server = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let receiver = SocketTextReceiver::new(server.local_addr()?)?;
/// let stats = receiver.stats();
///
/// // The receiver reports the closed connection after storing what it read.
/// struct Errors(Mutex<mpsc::Sender<String>>);
/// impl StreamingListener for Errors {
///     fn on_receiver_error(&self, _: StreamId, message: &str) {
///         let _ = self.0.lock().unwrap().send(message.to_owned());
///     }
/// }
/// let (tx, errors) = mpsc::channel();
/// let cluster = StepCluster::builder().build();
/// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))?;
/// ssc.add_listener(Arc::new(Errors(Mutex::new(tx))));
/// let lines = ssc.receiver_stream(receiver);
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let sink = Arc::clone(&seen);
/// lines.foreach_rdd(move |rdd, _| {
///     sink.lock().unwrap().extend(rdd.collect()?);
///     Ok(())
/// })?;
///
/// ssc.start_receivers()?;
/// let (mut peer, _) = server.accept()?;
/// peer.write_all(b"hello\nworld\n")?;
/// drop(peer);
/// let report = errors.recv_timeout(Duration::from_secs(10))?;
/// assert!(report.contains("closed by the peer"), "{report}");
/// ssc.stop_receivers();
/// ssc.step()?;
/// assert_eq!(*seen.lock().unwrap(), vec!["hello", "world"]);
/// assert_eq!(stats.lines(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SocketTextReceiver {
    addrs: Vec<SocketAddr>,
    label: String,
    connect_timeout: Duration,
    poll: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
    chunk_lines: usize,
    max_line_bytes: usize,
    stats: Arc<SocketStats>,
    stderr: bool,
}

/// Counters of a [`SocketTextReceiver`], readable while it runs.
#[derive(Debug, Default)]
pub struct SocketStats {
    lines: AtomicU64,
    invalid_lines: AtomicU64,
    oversized_lines: AtomicU64,
    connections: AtomicU64,
    failures: AtomicU64,
}

impl SocketStats {
    /// Lines stored.
    pub fn lines(&self) -> u64 {
        self.lines.load(Ordering::Relaxed)
    }

    /// Lines skipped because they are not valid UTF-8.
    pub fn invalid_lines(&self) -> u64 {
        self.invalid_lines.load(Ordering::Relaxed)
    }

    /// Lines skipped because they are longer than the limit.
    pub fn oversized_lines(&self) -> u64 {
        self.oversized_lines.load(Ordering::Relaxed)
    }

    /// Connections established.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Failed connection attempts and connections that ended (closed or failed).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

fn bump(counter: &AtomicU64, by: u64) -> u64 {
    counter.fetch_add(by, Ordering::Relaxed) + by
}

impl SocketTextReceiver {
    /// A receiver of the lines sent by the server at `addr`, which is resolved now; fails if it
    /// does not resolve to any address. Defaults: connect timeout 3 s, poll interval 100 ms,
    /// backoff from 100 ms to 5 s, chunks of 1,000 lines, lines of at most 1 MiB.
    ///
    /// # Examples
    ///
    /// Every option, then the stream, with the receiver's counters kept (what
    /// [`StreamingContextExt::socket_text_stream`](crate::StreamingContextExt::socket_text_stream)
    /// does with the defaults):
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use dstream::{ManualClock, StepCluster, StreamingContext, Time};
    /// use dstream_storage::SocketTextReceiver;
    ///
    /// let receiver = SocketTextReceiver::new(("localhost", 9999))?
    ///     .connect_timeout(Duration::from_secs(1)) // one attempt; default 3 s
    ///     .backoff(Duration::from_millis(50), Duration::from_secs(2)) // between attempts; default 100 ms to 5 s
    ///     .poll_interval(Duration::from_millis(50)) // how soon a stop is noticed; default 100 ms
    ///     .chunk_lines(10_000) // the most lines stored at once; default 1,000
    ///     .max_line_bytes(64 << 10); // longer lines are skipped and reported; default 1 MiB
    /// let stats = receiver.stats();
    ///
    /// let cluster = StepCluster::builder().build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))?;
    /// let lines = ssc.receiver_stream(receiver);
    /// lines.count().print(1)?;
    /// assert_eq!(stats.lines(), 0); // read while it runs: lines, invalid lines, connections, failures
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(addr: impl ToSocketAddrs) -> io::Result<SocketTextReceiver> {
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
        let Some(first) = addrs.first() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "the address resolves to no socket address"));
        };
        Ok(SocketTextReceiver {
            label: first.to_string(),
            addrs,
            connect_timeout: Duration::from_secs(3),
            poll: Duration::from_millis(100),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            chunk_lines: 1000,
            max_line_bytes: MAX_LINE_BYTES_DEFAULT,
            stats: Arc::default(),
            stderr: true,
        })
    }

    /// How long one connection attempt may take (default 3 s; at least 1 ms). A stop does not
    /// wait for it.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d.max(Duration::from_millis(1));
        self
    }

    /// How often a blocked read or connection attempt checks whether the receiver must stop
    /// (default 100 ms; at least 1 ms).
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll = d.max(Duration::from_millis(1));
        self
    }

    /// The delay before reconnecting starts at `min` and doubles on every failure up to `max`
    /// (defaults 100 ms and 5 s; `min` at least 1 ms, `max` at least `min`).
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min.max(Duration::from_millis(1));
        self.backoff_max = max.max(self.backoff_min);
        self
    }

    /// The most lines stored in one call (default 1,000; at least 1).
    pub fn chunk_lines(mut self, n: usize) -> Self {
        self.chunk_lines = n.max(1);
        self
    }

    /// The longest line kept, in bytes without its terminator (default 1 MiB; at least 1);
    /// longer lines are skipped and reported.
    pub fn max_line_bytes(mut self, n: usize) -> Self {
        self.max_line_bytes = n.max(1);
        self
    }

    /// Whether every report (a refused or dropped connection, an invalid line) is also printed
    /// to stderr, as one line naming the stream (default true; invalid and oversized lines are
    /// printed the first ten times, then at every power of ten). Reports always reach the
    /// context: [`StreamingListener::on_receiver_error`](dstream::StreamingListener::on_receiver_error)
    /// and [`StreamingContext::receiver_errors`](dstream::StreamingContext::receiver_errors).
    /// Turn it off when a listener shows them.
    pub fn report_to_stderr(mut self, on: bool) -> Self {
        self.stderr = on;
        self
    }

    /// The receiver's counters, shared with the running receiver.
    pub fn stats(&self) -> Arc<SocketStats> {
        Arc::clone(&self.stats)
    }

    /// Connects on a helper thread, checking for a stop every poll interval; `None` if the
    /// receiver was stopped first (the helper then ends on its own within the timeout).
    fn connect(&self, ctx: &ReceiverContext<String>) -> Option<io::Result<TcpStream>> {
        let (tx, rx) = mpsc::channel();
        let addrs = self.addrs.clone();
        let timeout = self.connect_timeout;
        let spawned = std::thread::Builder::new().name("dstream-socket-connect".into()).spawn(move || {
            // The receiver may have stopped waiting: then nobody needs the result.
            let _ = tx.send(connect_any(&addrs, timeout));
        });
        if let Err(e) = spawned {
            return Some(Err(e));
        }
        loop {
            match rx.recv_timeout(self.poll) {
                Ok(result) => return Some(result),
                Err(mpsc::RecvTimeoutError::Timeout) if ctx.is_stopped() => return None,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Some(Err(io::Error::other("the connecting thread ended without a result")))
                }
            }
        }
    }

    /// Reads lines from `stream` until the connection ends or the receiver must stop.
    fn read_connection(&self, ctx: &ReceiverContext<String>, mut stream: TcpStream) -> (ConnectionEnd, bool) {
        if let Err(e) = stream.set_read_timeout(Some(self.poll)) {
            return (ConnectionEnd::Failed(e), false);
        }
        let mut splitter = LineSplitter::new(self.max_line_bytes);
        let mut buf = vec![0u8; 64 * 1024];
        let mut chunk: Vec<String> = Vec::new();
        let mut line_no: u64 = 0;
        let mut got_data = false;
        loop {
            if ctx.is_stopped() {
                return (ConnectionEnd::Stopped, got_data);
            }
            let end = match stream.read(&mut buf) {
                Ok(0) => {
                    splitter.finish(&mut |piece| self.take(ctx, piece, &mut line_no, &mut chunk));
                    Some(ConnectionEnd::Closed)
                }
                Ok(n) => {
                    got_data = true;
                    splitter.feed(&buf[..n], &mut |piece| self.take(ctx, piece, &mut line_no, &mut chunk));
                    None
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => Some(ConnectionEnd::Failed(e)),
            };
            if !self.store(ctx, &mut chunk) {
                return (ConnectionEnd::ContextStopped, got_data);
            }
            if let Some(end) = end {
                return (end, got_data);
            }
        }
    }

    /// Handles one line (or a skipped oversized one) of the connection.
    fn take(&self, ctx: &ReceiverContext<String>, piece: Piece<'_>, line_no: &mut u64, chunk: &mut Vec<String>) {
        *line_no += 1;
        match piece {
            Piece::Line(bytes) => {
                let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
                match std::str::from_utf8(bytes) {
                    Ok(line) => chunk.push(line.to_owned()),
                    Err(e) => {
                        let n = bump(&self.stats.invalid_lines, 1);
                        report(ctx, self.stderr && worth_printing(n), &format!(
                            "{}: line {line_no} of the connection is not valid UTF-8 ({e}); skipped ({n} invalid line(s) so far)",
                            self.label
                        ));
                    }
                }
            }
            Piece::TooLong => {
                let n = bump(&self.stats.oversized_lines, 1);
                report(ctx, self.stderr && worth_printing(n), &format!(
                    "{}: line {line_no} of the connection is longer than {} bytes; skipped ({n} oversized line(s) so far)",
                    self.label, self.max_line_bytes
                ));
            }
        }
    }

    /// Stores the chunk's lines in pieces of at most `chunk_lines`; false if the context no
    /// longer accepts input.
    fn store(&self, ctx: &ReceiverContext<String>, chunk: &mut Vec<String>) -> bool {
        while !chunk.is_empty() {
            let rest = chunk.split_off(chunk.len().min(self.chunk_lines));
            let lines = std::mem::replace(chunk, rest);
            let n = lines.len() as u64;
            if ctx.store(lines).is_err() {
                return false;
            }
            bump(&self.stats.lines, n);
        }
        true
    }
}

fn connect_any(addrs: &[SocketAddr], timeout: Duration) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to")))
}

/// How a connection ended.
#[derive(Debug)]
enum ConnectionEnd {
    /// The receiver was told to stop.
    Stopped,
    /// The context stopped accepting input.
    ContextStopped,
    /// The peer closed the connection.
    Closed,
    /// Reading failed.
    Failed(io::Error),
}

/// Reconnection delays: doubling from `min` to `max`.
#[derive(Debug)]
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { min, max, next: min }
    }

    fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    fn reset(&mut self) {
        self.next = self.min;
    }
}

impl Receiver<String> for SocketTextReceiver {
    fn run(&mut self, ctx: &ReceiverContext<String>) -> Result<(), String> {
        let mut backoff = Backoff::new(self.backoff_min, self.backoff_max);
        loop {
            if ctx.is_stopped() {
                return Ok(());
            }
            let what = match self.connect(ctx) {
                None => return Ok(()),
                Some(Err(e)) => format!("cannot connect to {}: {e}", self.label),
                Some(Ok(stream)) => {
                    bump(&self.stats.connections, 1);
                    let (end, got_data) = self.read_connection(ctx, stream);
                    if got_data {
                        backoff.reset();
                    }
                    match end {
                        ConnectionEnd::Stopped | ConnectionEnd::ContextStopped => return Ok(()),
                        ConnectionEnd::Closed => format!("connection to {} closed by the peer", self.label),
                        ConnectionEnd::Failed(e) => format!("connection to {} failed: {e}", self.label),
                    }
                }
            };
            bump(&self.stats.failures, 1);
            let delay = backoff.next_delay();
            report(ctx, self.stderr, &format!("{what}; reconnecting in {delay:?}"));
            if !ctx.pause(delay) {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_bound_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let delays: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }
}
