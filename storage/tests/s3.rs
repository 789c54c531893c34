//! `S3` against a real S3-API server: `moto_server` (PyPI's `moto[server]`), started by this
//! test on a free port of loopback, one bucket per test. The store's contract, multipart
//! uploads and ranged snapshot reads, a failed write leaving the old object, the typed errors
//! (missing bucket, wrong credentials, throttling past the retries, a server that is down),
//! the checkpoint format's corruption detection, and the restart suite
//! (tests/common/restart_suite.rs) as it runs on `Memory`.
//!
//! Without `moto_server` on `PATH` the tests report that they did not run and pass, unless
//! `CI` is set, where they fail (`.ci/servers.sh` installs it). Run with
//! `cargo test -p dstream-storage --features s3 --test s3`.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Duration;

use common::restart_suite as suite;
use dstream::{Storage, StorageError, StreamId, Time};
use dstream_storage::checkpoint::{self, CheckpointError, CheckpointHeader, DEFAULT_LEVEL, MAGIC};
use dstream_storage::{S3Config, S3};

/// How long the server may take to start; only a failing run waits this long.
const START_WAIT_MAX: Duration = Duration::from_secs(60);

/// A running `moto_server`. It runs under a shell that kills it when this process's end of
/// its standard input closes, so no server outlives the test binary (the shared one is never
/// dropped).
struct Moto {
    port: u16,
    _child: Child,
    _stdin: ChildStdin,
}

/// Starts `moto_server` with `env`, or tells why it cannot (absent outside CI).
fn start_moto(env: &[(&str, &str)]) -> Option<Moto> {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("moto_server").is_file()));
    if !on_path {
        assert!(std::env::var_os("CI").is_none(), "CI must have moto_server on PATH (.ci/servers.sh installs it)");
        eprintln!("moto_server is not on PATH: this test did not run");
        return None;
    }
    let mut child = Command::new("sh")
        .args(["-c", "moto_server -H 127.0.0.1 -p 0 & m=$!; read _; kill $m"])
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, port) = mpsc::channel();
    // Reads the server's log to its end (a full pipe would block it), after the port.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split_once("Running on http://127.0.0.1:").map(|(_, rest)| rest) {
                let _ = tx.send(rest.trim().parse::<u16>().unwrap());
            }
        }
    });
    let port = port.recv_timeout(START_WAIT_MAX).expect("moto_server printed its port");
    Some(Moto { port, _child: child, _stdin: stdin })
}

/// The server the tests share.
fn moto() -> Option<&'static Moto> {
    static MOTO: OnceLock<Option<Moto>> = OnceLock::new();
    MOTO.get_or_init(|| start_moto(&[])).as_ref()
}

/// Sends one HTTP/1.0 request to `port`; returns the status line and the body.
fn http(port: u16, method: &str, path: &str) -> (String, String) {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(conn, "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n").unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.lines().next().unwrap_or_default().to_string(), body.to_string())
}

/// A new bucket on the shared server.
fn new_bucket(moto: &Moto) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let bucket = format!("dstream-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
    let (status, body) = http(moto.port, "PUT", &format!("/{bucket}"));
    assert!(status.contains(" 200 "), "create bucket {bucket}: {status} {body}");
    bucket
}

fn config(port: u16, bucket: &str) -> S3Config {
    S3Config::new(bucket)
        .endpoint(format!("http://127.0.0.1:{port}"))
        .credentials("test-key", "test-secret")
        .backoff_initial(Duration::from_millis(10))
        .retries_max(3)
}

/// A store on a new bucket of the shared server.
fn fresh(moto: &Moto) -> S3 {
    S3::connect(config(moto.port, &new_bucket(moto))).unwrap()
}

/// Bytes `0..len` of a pattern that differs for every `seed`.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u64).wrapping_mul(31).wrapping_add(u64::from(seed)) as u8).collect()
}

#[test]
fn objects_are_put_read_listed_and_deleted() {
    let Some(moto) = moto() else { return };
    let bucket = new_bucket(moto);
    let store = S3::connect(config(moto.port, &bucket).prefix("job-a")).unwrap();
    let other = S3::connect(config(moto.port, &bucket).prefix("job-b")).unwrap();
    assert!(matches!(store.get("ckpt/a"), Err(StorageError::NotFound { .. })));
    store.put("ckpt/b", b"second").unwrap();
    store.put("ckpt/a", b"first").unwrap();
    store.put("ckpt-x/c", b"").unwrap();
    store.put("meta/1", b"m").unwrap();
    other.put("ckpt/a", b"another program's").unwrap();
    assert_eq!(store.get("ckpt/a").unwrap(), b"first");
    assert_eq!(store.get("ckpt-x/c").unwrap(), b"");
    store.put("ckpt/a", b"replaced").unwrap();
    assert_eq!(store.get("ckpt/a").unwrap(), b"replaced");
    // String prefixes, not only directories; sorted; the other prefix's objects unseen.
    assert_eq!(store.list("").unwrap(), ["ckpt-x/c", "ckpt/a", "ckpt/b", "meta/1"]);
    assert_eq!(store.list("ckpt").unwrap(), ["ckpt-x/c", "ckpt/a", "ckpt/b"]);
    assert_eq!(store.list("ckpt/").unwrap(), ["ckpt/a", "ckpt/b"]);
    assert_eq!(store.list("ckpt/b").unwrap(), ["ckpt/b"]);
    assert!(store.list("nothing/").unwrap().is_empty());
    store.delete("ckpt/a").unwrap();
    assert!(matches!(store.delete("ckpt/a"), Err(StorageError::NotFound { .. })));
    assert!(matches!(store.get("ckpt/a"), Err(StorageError::NotFound { .. })));
    assert_eq!(other.get("ckpt/a").unwrap(), b"another program's");
    for bad in ["../x", "/abs", "a//b", "a/"] {
        assert!(matches!(store.put(bad, b"x"), Err(StorageError::InvalidName { .. })), "{bad}");
    }
}

#[test]
fn a_large_object_is_uploaded_in_parts_and_read_back_in_ranges() {
    let Some(moto) = moto() else { return };
    let store = S3::connect(config(moto.port, &new_bucket(moto)).part_bytes(5 << 20)).unwrap();
    let bytes = pattern((13 << 20) + 12_345, 7);
    store.put_with("big/object", &mut |w| bytes.chunks(100_000).try_for_each(|c| w.write_all(c))).unwrap();
    assert_eq!(store.get("big/object").unwrap(), bytes);
    assert_eq!(store.list("big/").unwrap(), ["big/object"]);
}

#[test]
fn a_failed_write_leaves_the_old_object_and_no_upload_behind() {
    let Some(moto) = moto() else { return };
    let bucket = new_bucket(moto);
    let store = S3::connect(config(moto.port, &bucket).part_bytes(5 << 20)).unwrap();
    store.put("state/p0", b"version 1").unwrap();
    for written in [100, 11 << 20] {
        let bytes = pattern(written, 3);
        let err = store
            .put_with("state/p0", &mut |w| {
                w.write_all(&bytes)?;
                Err(std::io::Error::other("the encoder failed"))
            })
            .unwrap_err();
        assert!(err.to_string().contains("the encoder failed"), "{err}");
        assert_eq!(store.get("state/p0").unwrap(), b"version 1", "after a failed write of {written} bytes");
        assert_eq!(store.list("").unwrap(), ["state/p0"]);
    }
    // The multipart upload of the 11 MiB write was aborted, not left to cost storage.
    let (status, body) = http(moto.port, "GET", &format!("/{bucket}?uploads"));
    assert!(status.contains(" 200 ") && !body.contains("<Upload>"), "{status} {body}");
}

#[test]
fn an_object_replaced_while_it_is_read_fails_the_read() {
    let Some(moto) = moto() else { return };
    let store = fresh(moto);
    let first = pattern((9 << 20) + 1, 1);
    store.put("state/p0", &first).unwrap();
    let mut reader = store.open("state/p0").unwrap();
    let mut start = [0u8; 1024];
    reader.read_exact(&mut start).unwrap();
    assert_eq!(start[..], first[..1024]);
    store.put("state/p0", &pattern((9 << 20) + 1, 2)).unwrap();
    let mut rest = Vec::new();
    let err = reader.read_to_end(&mut rest).unwrap_err();
    assert!(err.to_string().contains("replaced while it was read"), "{err}");
}

#[test]
fn a_missing_bucket_is_a_typed_error() {
    let Some(moto) = moto() else { return };
    let err = S3::connect(config(moto.port, "no-such-bucket")).unwrap_err();
    assert!(matches!(&err, StorageError::BucketMissing { bucket, .. } if bucket == "no-such-bucket"), "{err:?}");
}

#[test]
fn wrong_credentials_are_a_typed_error() {
    // A server that checks credentials from its first request on: the test's key is unknown.
    let Some(checking) = start_moto(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]) else { return };
    let err = S3::connect(config(checking.port, "any-bucket")).unwrap_err();
    assert!(
        matches!(&err, StorageError::Unauthorized { message, .. } if message.contains("InvalidAccessKeyId")),
        "{err:?}"
    );
}

#[test]
fn a_server_that_is_down_is_an_io_error_after_the_bounded_retries() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let err = S3::connect(config(port, "bucket").retries_max(2)).unwrap_err();
    assert!(matches!(err, StorageError::Io { .. }), "{err:?}");
}

/// A proxy in front of the server that answers the first `throttled` requests with 503
/// SlowDown, as S3 does under load, and forwards the rest.
fn throttling_proxy(target: u16, throttled: u64) -> (u16, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let answered = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&answered);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            if count.fetch_add(1, Ordering::SeqCst) < throttled {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let body = "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
                let _ = write!(
                    conn,
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                continue;
            }
            count.fetch_sub(1, Ordering::SeqCst);
            let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else { continue };
            let (mut a, b) = (conn.try_clone().unwrap(), upstream.try_clone().unwrap());
            std::thread::spawn(move || {
                std::io::copy(&mut a, &mut b.try_clone().unwrap()).map(|_| b.shutdown(std::net::Shutdown::Write))
            });
            let (mut c, mut d) = (upstream, conn);
            std::thread::spawn(move || std::io::copy(&mut c, &mut d).map(|_| d.shutdown(std::net::Shutdown::Write)));
        }
    });
    (port, answered)
}

#[test]
fn throttling_within_the_retries_is_retried_and_past_them_is_a_typed_error() {
    let Some(moto) = moto() else { return };
    let bucket = new_bucket(moto);
    let (port, answered) = throttling_proxy(moto.port, 2);
    let store = S3::connect(config(port, &bucket).retries_max(3)).unwrap();
    store.put("a", b"through the proxy").unwrap();
    assert_eq!(store.get("a").unwrap(), b"through the proxy");
    assert_eq!(answered.load(Ordering::SeqCst), 2, "both throttled answers were retried");

    let (port, answered) = throttling_proxy(moto.port, u64::MAX);
    let err = S3::connect(config(port, &bucket).retries_max(2)).unwrap_err();
    assert!(matches!(&err, StorageError::Throttled { message, .. } if message.contains("503")), "{err:?}");
    assert_eq!(answered.load(Ordering::SeqCst), 3, "the first attempt and 2 retries");
}

const FINGERPRINT: u64 = 0x5eed_0000_0000_0042;

fn header() -> CheckpointHeader {
    CheckpointHeader {
        fingerprint: FINGERPRINT,
        stream: StreamId(7),
        batch_time: Time::from_millis(12_000),
        partition: 0,
    }
}

fn read(store: &S3, name: &str) -> Result<(CheckpointHeader, Vec<(String, u64)>), CheckpointError> {
    checkpoint::read_checkpoint(store, name, FINGERPRINT)
}

#[test]
fn checkpoint_damage_and_truncation_are_detected_on_s3() {
    let Some(moto) = moto() else { return };
    let store = fresh(moto);
    let records: Vec<(String, u64)> = (0..20u64).map(|i| (format!("w{}", i * 37 % 101), i * i + 1)).collect();
    checkpoint::write_checkpoint(&store, "ckpt/p0", &header(), &records, DEFAULT_LEVEL).unwrap();
    let file = store.get("ckpt/p0").unwrap();
    assert_eq!(read(&store, "ckpt/p0").unwrap().1, records);
    for offset in 0..file.len() {
        let mut damaged = file.clone();
        damaged[offset] ^= 0x40;
        store.put("ckpt/damaged", &damaged).unwrap();
        let result = read(&store, "ckpt/damaged");
        let detected = match &result {
            Err(CheckpointError::BadMagic { .. }) => offset < MAGIC.len(),
            Err(CheckpointError::ChecksumMismatch { .. }) => offset >= MAGIC.len(),
            _ => false,
        };
        assert!(detected, "a flip at {offset} of {}: {result:?}", file.len());
    }
    for keep in (0..file.len()).step_by(7) {
        store.put("ckpt/torn", &file[..keep]).unwrap();
        assert!(matches!(read(&store, "ckpt/torn"), Err(CheckpointError::Truncated { .. })), "cut to {keep}");
    }
}

/// Runs one test of the restart suite on new buckets of the shared server.
fn restart_suite(test: fn(&dyn Fn() -> S3)) {
    let Some(moto) = moto() else { return };
    test(&|| fresh(moto));
}

#[test]
fn restart_at_every_position_matches_an_uninterrupted_run() {
    restart_suite(|fresh| suite::a_restart_between_batches_at_every_position_matches_an_uninterrupted_run(fresh));
}

#[test]
fn restart_restored_state_is_read_and_cached_by_the_workers() {
    restart_suite(|fresh| suite::restored_state_is_read_and_cached_by_the_workers(fresh));
}

#[test]
fn restart_of_a_batch_interrupted_after_its_input_closed_runs_it_once() {
    restart_suite(|fresh| suite::a_batch_interrupted_after_its_input_closed_runs_once_after_the_restart(fresh));
}

#[test]
fn restart_checkpoints_are_written_cut_and_collected() {
    restart_suite(|fresh| suite::checkpoints_are_written_cut_and_collected(fresh));
}

#[test]
fn restart_deletes_the_checkpoints_no_metadata_names() {
    restart_suite(|fresh| suite::a_restart_deletes_the_checkpoints_no_metadata_names(fresh));
}

#[test]
fn restart_falls_back_from_a_damaged_newest_checkpoint() {
    restart_suite(|fresh| suite::a_damaged_newest_checkpoint_falls_back_to_the_one_before(fresh));
}

#[test]
fn restart_without_an_intact_checkpoint_says_so() {
    restart_suite(|fresh| suite::without_an_intact_checkpoint_the_restart_says_so(fresh));
}

#[test]
fn restart_falls_back_from_damaged_metadata() {
    restart_suite(|fresh| suite::damaged_metadata_falls_back_to_the_previous_batch(fresh));
}
