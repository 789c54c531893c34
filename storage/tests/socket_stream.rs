//! `socket_text_stream` against real TCP connections on the loopback interface.

mod common;

use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{collect_batches, listen, wait_for_batches, wait_for_message, wait_for_records, EVENT_TIMEOUT};
use dstream::{FlowControl, ManualClock, StepCluster, StreamingContext, SystemClock, Time};
use dstream_storage::{SocketTextReceiver, StreamingContextExt};

/// Accepts the next connection, failing the test if none comes.
fn accept(listener: &TcpListener) -> TcpStream {
    let listener = listener.try_clone().expect("clone the listener");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(listener.accept().map(|(s, _)| s));
    });
    rx.recv_timeout(EVENT_TIMEOUT).expect("the receiver connects").expect("accept")
}

#[test]
fn every_valid_line_arrives_once_across_reconnections_and_bad_lines_are_reported() {
    let server = TcpListener::bind("127.0.0.1:0").expect("bind");
    let receiver = SocketTextReceiver::new(server.local_addr().expect("address"))
        .expect("resolve")
        .backoff(Duration::from_millis(10), Duration::from_millis(100))
        .max_line_bytes(64)
        .chunk_lines(2);
    let stats = receiver.stats();
    let cluster = StepCluster::builder().workers(2).build();
    let ssc = StreamingContext::new(cluster.context(), Duration::from_millis(20), Arc::new(SystemClock::new()))
        .expect("context");
    let events = listen(&ssc);
    let batches = collect_batches(&ssc.receiver_stream(receiver));
    let running = ssc.start().expect("start");

    let mut first = accept(&server);
    let long = "x".repeat(100);
    first.write_all(format!("a1\na2\n{long}\n").as_bytes()).expect("write");
    first.write_all(b"\xff\xfe not UTF-8\na3\r\n").expect("write");
    drop(first);
    let mut seen = Vec::new();
    wait_for_records(&batches, &mut seen, 3, "the lines of the first connection");
    let mut errors = Vec::new();
    wait_for_message(&events.errors, &mut errors, "about the closed connection", |m| m.contains("closed by the peer"));

    let mut second = accept(&server);
    second.write_all(b"b1\nb2\nb3 without terminator").expect("write");
    drop(second);
    wait_for_records(&batches, &mut seen, 6, "the lines of the second connection");
    // More batches, in which a duplicate would show.
    wait_for_batches(&events.batches, 5);
    running.stop(true).expect("stop");
    seen.extend(batches.try_iter().flatten());

    assert_eq!(seen, vec!["a1", "a2", "a3", "b1", "b2", "b3 without terminator"]);
    errors.extend(events.errors.try_iter());
    let invalid: Vec<&String> = errors.iter().filter(|m| m.contains("not valid UTF-8")).collect();
    assert_eq!(invalid.len(), 1, "one report per invalid line: {errors:?}");
    assert!(invalid[0].contains("line 4"), "{}", invalid[0]);
    assert_eq!(errors.iter().filter(|m| m.contains("longer than 64 bytes")).count(), 1, "{errors:?}");
    assert_eq!((stats.lines(), stats.invalid_lines(), stats.oversized_lines()), (6, 1, 1));
    assert!(stats.connections() >= 2);
}

#[test]
fn a_refused_address_is_retried_with_reports_and_stopping_is_prompt() {
    // A port nobody listens on: bound, then released.
    let addr = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address");
    let receiver =
        SocketTextReceiver::new(addr).expect("resolve").backoff(Duration::from_millis(5), Duration::from_millis(20));
    let stats = receiver.stats();
    let cluster = StepCluster::builder().build();
    let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))
        .expect("context");
    let events = listen(&ssc);
    let _batches = collect_batches(&ssc.receiver_stream(receiver));
    ssc.start_receivers().expect("start");
    let mut errors = Vec::new();
    for _ in 0..3 {
        wait_for_message(&events.errors, &mut errors, "about a refused connection", |m| {
            m.starts_with("cannot connect")
        });
    }
    for m in &errors {
        assert!(m.contains(&addr.to_string()) && m.contains("reconnecting in"), "{m}");
    }
    // Stopping must not wait for anything but the receiver noticing the stop flag.
    let (done_tx, done) = mpsc::channel();
    let stopper = ssc.clone();
    std::thread::spawn(move || {
        stopper.stop_receivers();
        let _ = done_tx.send(());
    });
    done.recv_timeout(EVENT_TIMEOUT).expect("stop_receivers returns");
    assert!(stats.failures() >= 3);
    assert_eq!((stats.connections(), stats.lines()), (0, 0));
    assert_eq!(ssc.step().expect("batch").records, 0);
}

#[test]
fn an_address_that_does_not_resolve_is_an_error_when_the_stream_is_created() {
    let cluster = StepCluster::builder().build();
    let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))
        .expect("context");
    assert!(ssc.socket_text_stream("not an address").is_err());
}

/// `fn main() -> Result<(), dstream::Error>` with a socket source: the `io::Error` of an
/// address that does not resolve converts with `?`, into `Error::Io`.
#[test]
fn the_socket_source_works_in_a_function_returning_dstream_error() {
    fn word_counts(ssc: &StreamingContext, addr: &str) -> Result<(), dstream::Error> {
        let words = ssc.socket_text_stream(addr)?.flat_map(|l| l.split(' ').map(str::to_owned).collect::<Vec<_>>());
        words.map(|w| (w, 1u64)).reduce_by_key(|a, b| a + b).print(10)?;
        Ok(())
    }
    let cluster = StepCluster::builder().build();
    let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))
        .expect("context");
    match word_counts(&ssc, "127.0.0.1:99999") {
        Err(dstream::Error::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}"),
        other => panic!("an out-of-range port is an I/O error: {other:?}"),
    }
    word_counts(&ssc, "127.0.0.1:9").expect("a valid address");
}

#[test]
fn a_receiver_at_a_full_buffer_stops_reading_so_tcp_pushes_back_on_the_peer() {
    const LINE: &[u8] =
        b"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456\n";
    const BYTES_MAX: u64 = 1 << 20;
    // Far more than the kernel's socket buffers can hold (up to 32 MiB received, 4 MiB sent).
    const LINES: u64 = (96 << 20) / LINE.len() as u64;
    let server = TcpListener::bind("127.0.0.1:0").expect("bind");
    let receiver = SocketTextReceiver::new(server.local_addr().expect("address")).expect("resolve").chunk_lines(100);
    let stats = receiver.stats();
    let cluster = StepCluster::builder().build();
    // No batch runs until the test steps one: nothing frees the buffer meanwhile.
    let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))
        .expect("context");
    let lines = ssc.receiver_stream_with(receiver, FlowControl::default().buffer_bytes_max(BYTES_MAX));
    let processed = Arc::new(AtomicU64::new(0));
    let sink = Arc::clone(&processed);
    lines
        .foreach_rdd(move |rdd, _| {
            sink.fetch_add(rdd.count()?, Ordering::SeqCst);
            Ok(())
        })
        .expect("output");
    ssc.start_receivers().expect("start");
    let mut peer = accept(&server);

    // The peer writes until the kernel refuses more: three writes in a row make no progress
    // within their timeout (the timeout only bounds the observation).
    peer.set_write_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let block: Vec<u8> = LINE.repeat(1000);
    let total = LINES * LINE.len() as u64;
    // The bytes after the first `written` of the stream: whole lines repeated, so a partial
    // write resumes inside the pattern.
    let rest = move |written: u64| {
        let start = (written % LINE.len() as u64) as usize;
        let len = (block.len() - start).min((total - written) as usize);
        block[start..start + len].to_vec()
    };
    let (mut written, mut stalls) = (0u64, 0);
    while stalls < 3 && written < total {
        match peer.write(&rest(written)) {
            Ok(n) => {
                written += n as u64;
                stalls = 0;
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => stalls += 1,
            Err(e) => panic!("write: {e}"),
        }
    }
    assert!(written < total, "the peer's writes block: {written} of {total} bytes written");
    let stored = stats.lines();
    assert!(
        stored * (LINE.len() as u64 - 1) <= BYTES_MAX,
        "the receiver stored {stored} lines (more than the 1 MiB buffer holds) while no batch ran"
    );

    // Batches free the buffer: the receiver reads again, and every line written arrives once.
    peer.set_write_timeout(None).expect("timeout");
    let writer = std::thread::spawn(move || {
        let mut written = written;
        while written < total {
            written += peer.write(&rest(written)).expect("write") as u64;
        }
        peer
    });
    let deadline = Instant::now() + EVENT_TIMEOUT * 3;
    while processed.load(Ordering::SeqCst) < LINES {
        assert!(Instant::now() < deadline, "{} of {LINES} lines processed", processed.load(Ordering::SeqCst));
        ssc.step().expect("batch");
    }
    let peer = writer.join().expect("writer");
    drop(peer);
    ssc.stop_receivers();
    ssc.step().expect("batch");
    assert_eq!((processed.load(Ordering::SeqCst), stats.lines(), stats.invalid_lines()), (LINES, LINES, 0));
}
