//! The metrics endpoint: a small HTTP/1.1 server on its own thread that answers
//! `GET /metrics` (and `HEAD`) with the rendered metrics and closes each connection after one
//! response. Bounded everywhere: a request head of at most [`REQUEST_BYTES_MAX`], read within
//! [`IO_TIMEOUT`]; at most [`CONNECTIONS_MAX`] connections served at once (the rest get 503).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The largest request head (request line and headers) the endpoint reads; a longer one gets
/// 431.
pub const REQUEST_BYTES_MAX: usize = 8 * 1024;
/// The most connections served at once; one more gets 503 and is closed.
pub const CONNECTIONS_MAX: usize = 16;
/// How long a connection may take to send its request head, and each write may block.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// What renders the metrics for a scrape.
pub(super) type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// A running metrics endpoint (see [`PrometheusMetrics::serve`](super::PrometheusMetrics::serve)).
/// Stops when dropped, or with [`MetricsServer::stop`].
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use dstream::{ManualClock, StepCluster, StreamingContext, Time};
/// use dstream_storage::PrometheusMetrics;
///
/// let cluster = StepCluster::builder().workers(1).build();
/// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))?;
/// let server = PrometheusMetrics::register(&ssc)?.serve("127.0.0.1:0")?;
/// let mut conn = std::net::TcpStream::connect(server.local_addr())?;
/// conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
/// let mut response = String::new();
/// conn.read_to_string(&mut response)?;
/// assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
/// assert!(response.contains("dstream_context_state{state=\"initialized\"} 1"));
/// assert_eq!(server.scrapes(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MetricsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

struct Shared {
    stop: AtomicBool,
    /// Connections being served.
    active: AtomicUsize,
    /// Successful `GET /metrics` responses so far.
    scrapes: Mutex<u64>,
    scraped: Condvar,
}

impl MetricsServer {
    pub(super) fn start(addr: impl ToSocketAddrs, render: Render) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            scrapes: Mutex::new(0),
            scraped: Condvar::new(),
        });
        let accepting = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("dstream-metrics".into())
            .spawn(move || accept(listener, accepting, render))?;
        Ok(MetricsServer { addr, shared, thread: Some(thread) })
    }

    /// The address the endpoint listens on (with the port picked, if port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many scrapes were answered: `GET /metrics` requests with a 200 response written.
    pub fn scrapes(&self) -> u64 {
        *lock(&self.shared.scrapes)
    }

    /// Waits until at least `n` scrapes were answered, at most `timeout`; tells whether they
    /// were. A program can use it to stay up until its final metrics were collected.
    pub fn wait_for_scrapes(&self, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut scrapes = lock(&self.shared.scrapes);
        while *scrapes < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            scrapes = self.shared.scraped.wait_timeout(scrapes, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        true
    }

    /// Stops accepting connections and waits for the accepting thread to end. Connections being
    /// served finish on their own threads.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        let Some(thread) = self.thread.take() else { return };
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the blocked accept; if the connection fails the listener is gone already.
        let _ = TcpStream::connect_timeout(&reachable(self.addr), IO_TIMEOUT);
        let _ = thread.join();
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Where to connect to reach a listener bound to `addr` (a wildcard address is reached on the
/// loopback interface).
fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn accept(listener: TcpListener, shared: Arc<Shared>, render: Render) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        // A failed accept (the peer reset first, out of descriptors) drops that connection only.
        let Ok(mut conn) = conn else { continue };
        let _ = conn.set_write_timeout(Some(IO_TIMEOUT));
        if shared.active.fetch_add(1, Ordering::SeqCst) >= CONNECTIONS_MAX {
            shared.active.fetch_sub(1, Ordering::SeqCst);
            refuse(conn);
            continue;
        }
        let (serving, render) = (Arc::clone(&shared), Arc::clone(&render));
        let spawned = std::thread::Builder::new().name("dstream-metrics-conn".into()).spawn(move || {
            let scraped = serve(&mut conn, &*render);
            serving.active.fetch_sub(1, Ordering::SeqCst);
            if scraped {
                *lock(&serving.scrapes) += 1;
                serving.scraped.notify_all();
            }
        });
        if spawned.is_err() {
            // The thread did not start: its connection was dropped with the closure.
            shared.active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Answers a connection past [`CONNECTIONS_MAX`] with 503 without waiting for its request: the
/// accepting thread never blocks on a client. What of the request has arrived is read first,
/// so closing does not reset the connection before the client reads the answer; a request
/// still on its way may (the client then sees the connection reset).
fn refuse(mut conn: TcpStream) {
    let _ = respond(&mut conn, Status::Unavailable, "too many connections\n", false);
    let _ = conn.shutdown(std::net::Shutdown::Write);
    if conn.set_nonblocking(true).is_ok() {
        let mut buf = [0u8; 1024];
        let mut drained = 0;
        while drained < REQUEST_BYTES_MAX {
            match conn.read(&mut buf) {
                Ok(n) if n > 0 => drained += n,
                _ => break,
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    HeadTooLarge,
    Unavailable,
}

impl Status {
    fn line(self) -> &'static str {
        match self {
            Status::Ok => "200 OK",
            Status::BadRequest => "400 Bad Request",
            Status::NotFound => "404 Not Found",
            Status::MethodNotAllowed => "405 Method Not Allowed",
            Status::RequestTimeout => "408 Request Timeout",
            Status::HeadTooLarge => "431 Request Header Fields Too Large",
            Status::Unavailable => "503 Service Unavailable",
        }
    }
}

/// Serves one connection; tells whether it was a scrape answered.
fn serve(conn: &mut TcpStream, render: &(dyn Fn() -> String + Send + Sync)) -> bool {
    let request = match read_head(conn) {
        Ok(head) => parse(&head),
        Err(status) => Err(status),
    };
    match request {
        Ok((head_only, Target::Metrics)) => respond(conn, Status::Ok, &render(), head_only).is_ok(),
        Ok((head_only, Target::Index)) => {
            let _ = respond(conn, Status::Ok, "dstream metrics: GET /metrics\n", head_only);
            false
        }
        Err(status) => {
            let _ = respond(conn, status, &format!("{}\n", status.line()), false);
            false
        }
    }
}

enum Target {
    Metrics,
    Index,
}

/// Reads up to the end of the request head, within [`REQUEST_BYTES_MAX`] and [`IO_TIMEOUT`].
fn read_head(conn: &mut TcpStream) -> Result<Vec<u8>, Status> {
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || conn.set_read_timeout(Some(left)).is_err() {
            return Err(Status::RequestTimeout);
        }
        let n = match conn.read(&mut buf) {
            Ok(0) => return Err(Status::BadRequest),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(Status::RequestTimeout),
        };
        let searched_from = head.len().saturating_sub(3);
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head[searched_from..].windows(4).position(|w| w == b"\r\n\r\n") {
            head.truncate(searched_from + end);
            return Ok(head);
        }
        if head.len() > REQUEST_BYTES_MAX {
            return Err(Status::HeadTooLarge);
        }
    }
}

/// The request line's method and target: whether only the head is wanted, and what.
fn parse(head: &[u8]) -> Result<(bool, Target), Status> {
    let text = std::str::from_utf8(head).map_err(|_| Status::BadRequest)?;
    let line = text.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Status::BadRequest);
    };
    if !version.starts_with("HTTP/1.") {
        return Err(Status::BadRequest);
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Err(Status::MethodNotAllowed),
    };
    match target.split('?').next().unwrap_or_default() {
        "/metrics" => Ok((head_only, Target::Metrics)),
        "/" => Ok((head_only, Target::Index)),
        _ => Err(Status::NotFound),
    }
}

fn respond(conn: &mut TcpStream, status: Status, body: &str, head_only: bool) -> io::Result<()> {
    let kind =
        if status == Status::Ok { "text/plain; version=0.0.4; charset=utf-8" } else { "text/plain; charset=utf-8" };
    let allow = if status == Status::MethodNotAllowed { "Allow: GET, HEAD\r\n" } else { "" };
    let head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        status.line(),
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    if !head_only {
        conn.write_all(body.as_bytes())?;
    }
    conn.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_parsed_strictly() {
        let table: &[(&str, Result<(bool, bool), Status>)] = &[
            ("GET /metrics HTTP/1.1", Ok((false, true))),
            ("GET /metrics?name[]=x HTTP/1.0", Ok((false, true))),
            ("HEAD /metrics HTTP/1.1", Ok((true, true))),
            ("GET / HTTP/1.1", Ok((false, false))),
            ("POST /metrics HTTP/1.1", Err(Status::MethodNotAllowed)),
            ("GET /other HTTP/1.1", Err(Status::NotFound)),
            ("GET /metrics", Err(Status::BadRequest)),
            ("GET /metrics HTTP/2", Err(Status::BadRequest)),
            ("GET  /metrics HTTP/1.1", Err(Status::BadRequest)),
            ("", Err(Status::BadRequest)),
        ];
        for (line, want) in table {
            let got = parse(format!("{line}\r\nHost: x").as_bytes()).map(|(h, t)| (h, matches!(t, Target::Metrics)));
            assert_eq!(&got, want, "{line:?}");
        }
    }

    #[test]
    fn wildcard_addresses_are_reached_on_loopback() {
        let v4: SocketAddr = "0.0.0.0:9464".parse().unwrap();
        assert_eq!(reachable(v4), "127.0.0.1:9464".parse().unwrap());
        let v6: SocketAddr = "[::]:9464".parse().unwrap();
        assert_eq!(reachable(v6), "[::1]:9464".parse().unwrap());
        let named: SocketAddr = "10.1.2.3:80".parse().unwrap();
        assert_eq!(reachable(named), named);
    }
}
