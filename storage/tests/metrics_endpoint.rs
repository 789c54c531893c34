//! The metrics endpoint over real sockets: what it answers, its bounds (request size,
//! connections at once), a slow client next to a scrape, a scrape of a stopped context, and
//! the port closed once the server stops. (examples/tests/metrics_example.rs has a real
//! Prometheus scrape it.)
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use dstream::{ManualClock, StepCluster, StreamingContext, Time};
use dstream_storage::metrics::{CONNECTIONS_MAX, REQUEST_BYTES_MAX};
use dstream_storage::{MetricsServer, PrometheusMetrics};

/// Bounds each read of a response: only a failing test waits this long.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

fn connect(addr: SocketAddr) -> TcpStream {
    let conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    conn
}

/// Sends `request` on `conn` and reads the whole response.
fn exchange(mut conn: TcpStream, request: &[u8]) -> String {
    conn.write_all(request).unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    response
}

fn get(addr: SocketAddr, path: &str) -> String {
    exchange(connect(addr), format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
}

fn status(response: &str) -> &str {
    response.lines().next().unwrap_or_default()
}

fn serving() -> (StepCluster, StreamingContext, MetricsServer, dstream::QueueHandle<u64>) {
    let cluster = StepCluster::builder().workers(2).build();
    let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))
        .unwrap();
    let metrics = PrometheusMetrics::register(&ssc).unwrap();
    let (queue, numbers) = ssc.queue_stream::<u64>(2);
    numbers.count().foreach_rdd(|_, _| Ok(())).unwrap();
    let server = metrics.serve("127.0.0.1:0").unwrap();
    (cluster, ssc, server, queue)
}

#[test]
fn answers_metrics_head_and_errors_with_their_statuses() {
    let (_cluster, ssc, server, queue) = serving();
    let addr = server.local_addr();
    queue.push(vec![1, 2, 3, 4]);
    ssc.step().unwrap();

    let ok = get(addr, "/metrics");
    assert_eq!(status(&ok), "HTTP/1.1 200 OK");
    assert!(ok.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), "{ok}");
    let body = ok.split_once("\r\n\r\n").unwrap().1;
    assert!(ok.contains(&format!("Content-Length: {}\r\n", body.len())), "{ok}");
    assert!(body.contains("dstream_batches_completed_total 1\n"), "{body}");
    assert!(body.contains("dstream_input_records_total{stream=\"stream0\"} 4\n"), "{body}");

    let head = exchange(connect(addr), b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status(&head), "HTTP/1.1 200 OK");
    assert!(head.ends_with("\r\n\r\n"), "a HEAD response has no body: {head}");

    let table = [
        ("GET /nothing HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found"),
        ("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 405 Method Not Allowed"),
        ("GET /metrics\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        ("\u{1}\u{2}\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        ("GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK"),
    ];
    for (request, want) in table {
        let response = exchange(connect(addr), request.as_bytes());
        assert_eq!(status(&response), want, "{request:?}");
    }
    let post = exchange(connect(addr), b"POST /metrics HTTP/1.1\r\n\r\n");
    assert!(post.contains("Allow: GET, HEAD\r\n"), "{post}");

    // Only the successful GETs of /metrics and the HEAD count as scrapes.
    assert_eq!(server.scrapes(), 2);
}

#[test]
fn a_request_head_over_the_bound_gets_431() {
    let (_cluster, _ssc, server, _queue) = serving();
    let mut request = b"GET /metrics HTTP/1.1\r\nX-Padding: ".to_vec();
    request.resize(REQUEST_BYTES_MAX + 1024, b'a');
    let mut conn = connect(server.local_addr());
    // The server answers once the bound is passed, without reading the rest; the write may
    // then fail with a reset, which is the point.
    let _ = conn.write_all(&request);
    let mut response = String::new();
    let _ = conn.read_to_string(&mut response);
    assert_eq!(status(&response), "HTTP/1.1 431 Request Header Fields Too Large");
    assert_eq!(server.scrapes(), 0);
}

#[test]
fn connections_past_the_bound_get_503_and_slow_clients_hold_no_scrape_back() {
    let (_cluster, _ssc, server, _queue) = serving();
    let addr = server.local_addr();
    // A slow client: connected, no request yet. A scrape is served next to it.
    let slow = connect(addr);
    assert_eq!(status(&get(addr, "/metrics")), "HTTP/1.1 200 OK");

    let mut idle: Vec<TcpStream> = (1..CONNECTIONS_MAX).map(|_| connect(addr)).collect();
    idle.insert(0, slow);
    // One more is refused: answered 503, or reset if its request was still on its way when
    // the refusal closed the connection (see `refuse`); never served.
    let mut conn = connect(addr);
    let _ = conn.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
    let mut refused = Vec::new();
    let _ = conn.read_to_end(&mut refused);
    let refused = String::from_utf8_lossy(&refused);
    assert!(refused.is_empty() || status(&refused) == "HTTP/1.1 503 Service Unavailable", "{refused}");

    // Each held connection is served once it sends its request; a response read to its end
    // means its connection no longer counts, so a new one is served again.
    for conn in idle {
        assert_eq!(status(&exchange(conn, b"GET /metrics HTTP/1.1\r\n\r\n")), "HTTP/1.1 200 OK");
    }
    assert_eq!(status(&get(addr, "/metrics")), "HTTP/1.1 200 OK");
    assert_eq!(server.scrapes(), 1 + CONNECTIONS_MAX as u64 + 1);
    assert!(server.wait_for_scrapes(CONNECTIONS_MAX as u64 + 2, Duration::ZERO));
}

#[test]
fn a_stopped_context_is_still_scraped_with_its_final_values() {
    let (_cluster, ssc, server, queue) = serving();
    queue.push(vec![5, 6]);
    ssc.step().unwrap();
    ssc.stop(true).unwrap();
    let body = get(server.local_addr(), "/metrics");
    assert!(body.contains("dstream_context_state{state=\"stopped\"} 1\n"), "{body}");
    assert!(body.contains("dstream_input_records_total{stream=\"stream0\"} 2\n"), "{body}");
}

#[test]
fn a_stopped_server_closes_its_port() {
    let (_cluster, _ssc, server, _queue) = serving();
    let addr = server.local_addr();
    assert_eq!(status(&get(addr, "/metrics")), "HTTP/1.1 200 OK");
    server.stop();
    assert!(TcpStream::connect(addr).is_err(), "{addr} still accepts connections");
}
