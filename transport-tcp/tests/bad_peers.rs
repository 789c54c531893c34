//! Every kind of bad peer, over loopback: each gets a typed error and a closed connection,
//! and the listener goes on accepting good peers.
#![forbid(unsafe_code)] // dstream-tcp only denies it, for its `pod` module.
#![allow(clippy::unwrap_used)] // Integration tests are test code.

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::*;
use dstream::NodeId;
use dstream_tcp::{connect, Frame, FrameCodec, HandshakeError, ListenerConfig, WireError, MAGIC, PROTOCOL_VERSION};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Encoder;

fn preamble(version: u32) -> Vec<u8> {
    let mut p = MAGIC.to_vec();
    p.extend_from_slice(&version.to_be_bytes());
    p
}

/// Reads until the listener closes the connection; returns what it sent.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    bounded(stream.read_to_end(&mut got)).await.unwrap();
    got
}

/// The listener still completes a handshake with a good peer.
async fn still_accepts(listener: &mut dstream_tcp::Listener) {
    let (connector, acceptor) = pair(listener, config(worker(9), SECRET)).await;
    assert_eq!(connector.peer().node, NodeId::Driver);
    assert_eq!(acceptor.peer().node, worker(9));
}

#[tokio::test]
async fn garbage_bytes_get_bad_magic_and_no_answer() {
    let mut listener = driver_listener().await;
    let mut raw = TcpStream::connect(listener.local_addr()).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let err = rejection(&mut listener).await;
    assert!(matches!(err, HandshakeError::BadMagic { theirs } if &theirs == b"GET / HT"), "{err:?}");
    assert!(read_until_closed(&mut raw).await.is_empty(), "a non-dstream peer gets no answer");
    still_accepts(&mut listener).await;
}

#[tokio::test]
async fn an_oversized_length_prefix_in_the_handshake_is_refused() {
    let mut listener = driver_listener().await;
    let mut raw = TcpStream::connect(listener.local_addr()).await.unwrap();
    raw.write_all(&preamble(PROTOCOL_VERSION)).await.unwrap();
    raw.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let err = rejection(&mut listener).await;
    assert!(
        matches!(err, HandshakeError::Wire(WireError::FrameTooLarge { frame_bytes_max: 256 })),
        "the handshake's own small limit applies: {err:?}"
    );
    assert_eq!(read_until_closed(&mut raw).await, preamble(PROTOCOL_VERSION));
    still_accepts(&mut listener).await;
}

#[tokio::test]
async fn an_oversized_length_prefix_after_the_handshake_is_refused() {
    let mut listener = driver_listener().await;
    let (connector, acceptor) = pair(&mut listener, config(worker(1), SECRET)).await;
    let (_, _, mut writer) = connector.into_split();
    let (_, mut reader, _) = acceptor.into_split();
    let announced = WIRE.frame_bytes_max as u32 + 1;
    writer.get_mut().write_all(&announced.to_be_bytes()).await.unwrap();
    let err = bounded(reader.recv()).await.unwrap_err();
    assert!(matches!(err, WireError::FrameTooLarge { frame_bytes_max } if frame_bytes_max == WIRE.frame_bytes_max));
}

#[tokio::test]
async fn a_connector_with_the_wrong_secret() {
    let mut listener = driver_listener().await;
    let result = connect(listener.local_addr(), &config(worker(1), "not-the-cluster-secret")).await;
    assert!(matches!(result, Err(HandshakeError::AuthRefused)), "{result:?}");
    assert!(matches!(rejection(&mut listener).await, HandshakeError::AuthFailed));
    still_accepts(&mut listener).await;
}

#[tokio::test]
async fn a_listener_with_the_wrong_secret() {
    let mut listener = listen(config(NodeId::Driver, "not-the-cluster-secret"), ListenerConfig::default()).await;
    let result = connect(listener.local_addr(), &config(worker(1), SECRET)).await;
    assert!(matches!(result, Err(HandshakeError::AuthRefused)), "{result:?}");
    assert!(matches!(rejection(&mut listener).await, HandshakeError::AuthFailed));
}

#[tokio::test]
async fn a_connector_with_another_protocol_version() {
    let mut listener = driver_listener().await;
    let mut raw = TcpStream::connect(listener.local_addr()).await.unwrap();
    raw.write_all(&preamble(PROTOCOL_VERSION + 1)).await.unwrap();
    let err = rejection(&mut listener).await;
    assert!(
        matches!(err, HandshakeError::VersionMismatch { ours, theirs } if ours == PROTOCOL_VERSION && theirs == PROTOCOL_VERSION + 1),
        "{err:?}"
    );
    assert_eq!(read_until_closed(&mut raw).await, preamble(PROTOCOL_VERSION), "it learns our version");
    still_accepts(&mut listener).await;
}

#[tokio::test]
async fn a_listener_with_another_protocol_version() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let old = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut theirs = [0u8; 12];
        stream.read_exact(&mut theirs).await.unwrap();
        stream.write_all(&preamble(PROTOCOL_VERSION + 1)).await.unwrap();
        theirs
    });
    let result = connect(addr, &config(worker(1), SECRET)).await;
    assert!(
        matches!(result, Err(HandshakeError::VersionMismatch { ours, theirs }) if ours == PROTOCOL_VERSION && theirs == PROTOCOL_VERSION + 1),
        "{result:?}"
    );
    assert_eq!(old.await.unwrap().to_vec(), preamble(PROTOCOL_VERSION));
}

#[tokio::test]
async fn a_connector_running_another_program() {
    let mut listener = driver_listener().await;
    let mut other = config(worker(1), SECRET);
    other.program = PROGRAM + 1;
    let result = connect(listener.local_addr(), &other).await;
    assert!(
        matches!(result, Err(HandshakeError::ProgramMismatch { ours, theirs }) if ours == PROGRAM + 1 && theirs == PROGRAM),
        "{result:?}"
    );
    let err = rejection(&mut listener).await;
    assert!(
        matches!(err, HandshakeError::ProgramMismatch { ours, theirs } if ours == PROGRAM && theirs == PROGRAM + 1),
        "{err:?}"
    );
    still_accepts(&mut listener).await;
}

#[tokio::test]
async fn a_peer_that_stops_inside_a_handshake_frame() {
    let mut listener = driver_listener().await;
    let mut raw = TcpStream::connect(listener.local_addr()).await.unwrap();
    raw.write_all(&preamble(PROTOCOL_VERSION)).await.unwrap();
    raw.write_all(&[0, 0, 0, 50, 0, 1, 2]).await.unwrap();
    raw.shutdown().await.unwrap();
    let err = rejection(&mut listener).await;
    assert!(matches!(err, HandshakeError::Wire(WireError::Truncated { bytes_buffered: 3 })), "{err:?}");
    still_accepts(&mut listener).await;
}

#[tokio::test]
async fn a_peer_that_stops_inside_the_preamble() {
    let mut listener = driver_listener().await;
    let mut raw = TcpStream::connect(listener.local_addr()).await.unwrap();
    raw.write_all(&MAGIC[..5]).await.unwrap();
    raw.shutdown().await.unwrap();
    let err = rejection(&mut listener).await;
    assert!(matches!(err, HandshakeError::Closed { step: "preamble" }), "{err:?}");
}

#[tokio::test]
async fn a_peer_that_stops_inside_a_frame_or_between_chunks_after_the_handshake() {
    let mut listener = driver_listener().await;
    for cut in [Cut::InsideAFrame, Cut::BetweenChunks] {
        let (connector, acceptor) = pair(&mut listener, config(worker(1), SECRET)).await;
        let (_, _, mut writer) = connector.into_split();
        let (_, mut reader, _) = acceptor.into_split();
        let bytes = match cut {
            Cut::InsideAFrame => vec![0, 0, 0, 100, 1, 2, 3],
            Cut::BetweenChunks => {
                let mut out = BytesMut::new();
                let first = Frame::ChunkFirst { total_bytes: 5000, data: Bytes::from(vec![1u8; 1000]) };
                FrameCodec::new(WIRE.frame_bytes_max).encode(first, &mut out).unwrap();
                out.to_vec()
            }
        };
        writer.get_mut().write_all(&bytes).await.unwrap();
        writer.get_mut().shutdown().await.unwrap();
        let err = bounded(reader.recv()).await.unwrap_err();
        let expected = match cut {
            Cut::InsideAFrame => 3,
            Cut::BetweenChunks => 1000,
        };
        assert!(matches!(err, WireError::Truncated { bytes_buffered } if bytes_buffered == expected), "{err:?}");
    }
}

enum Cut {
    InsideAFrame,
    BetweenChunks,
}

#[tokio::test]
async fn a_peer_that_connects_and_says_nothing_times_out() {
    let mut quick = config(NodeId::Driver, SECRET);
    quick.handshake_timeout = Duration::from_millis(250);
    let mut listener = listen(quick, ListenerConfig::default()).await;
    let mut silent = TcpStream::connect(listener.local_addr()).await.unwrap();
    let err = rejection(&mut listener).await;
    assert!(matches!(err, HandshakeError::Timeout { step: "preamble" }), "{err:?}");
    assert!(read_until_closed(&mut silent).await.is_empty(), "the listener closed it");
    still_accepts(&mut listener).await;
}

#[tokio::test]
async fn a_peer_that_stops_talking_mid_handshake_times_out() {
    let mut quick = config(NodeId::Driver, SECRET);
    quick.handshake_timeout = Duration::from_millis(250);
    let mut listener = listen(quick, ListenerConfig::default()).await;
    let mut raw = TcpStream::connect(listener.local_addr()).await.unwrap();
    raw.write_all(&preamble(PROTOCOL_VERSION)).await.unwrap();
    let err = rejection(&mut listener).await;
    assert!(matches!(err, HandshakeError::Timeout { step: "hello" }), "{err:?}");
    still_accepts(&mut listener).await;
}

#[tokio::test]
async fn a_flood_of_silent_connections_does_not_keep_a_good_peer_out() {
    let mut quick = config(NodeId::Driver, SECRET);
    quick.handshake_timeout = Duration::from_millis(250);
    let bounds = ListenerConfig { handshakes_max: 32, queue_events_max: 16 };
    let mut listener = listen(quick, bounds).await;
    let addr = listener.local_addr();
    let mut flood = Vec::new();
    for _ in 0..200 {
        flood.push(TcpStream::connect(addr).await.unwrap());
    }
    // The good peer queues behind the flood: 200 / 32 slots × 250 ms ≈ 1.6 s.
    let mut patient = config(worker(2), SECRET);
    patient.handshake_timeout = Duration::from_secs(8);
    let (connector, acceptor) = pair(&mut listener, patient).await;
    assert_eq!(connector.peer().node, NodeId::Driver);
    assert_eq!(acceptor.peer().node, worker(2));
    // Every flooding connection was closed by the listener.
    for mut stream in flood {
        assert!(read_until_closed(&mut stream).await.is_empty());
    }
}

#[tokio::test]
async fn handshakes_beyond_handshakes_max_wait_for_a_slot() {
    let mut quick = config(NodeId::Driver, SECRET);
    quick.handshake_timeout = Duration::from_millis(250);
    let mut listener = listen(quick, ListenerConfig { handshakes_max: 1, queue_events_max: 4 }).await;
    let addr = listener.local_addr();
    let _silent = TcpStream::connect(addr).await.unwrap();
    let mut patient = config(worker(2), SECRET);
    patient.handshake_timeout = Duration::from_secs(8);
    let good = tokio::spawn(async move { connect(addr, &patient).await.map(|c| *c.peer()) });
    // The one slot is the silent peer's until it times out; only then is the good peer served.
    let err = rejection(&mut listener).await;
    assert!(matches!(err, HandshakeError::Timeout { step: "preamble" }), "{err:?}");
    match bounded(listener.next()).await {
        Some(dstream_tcp::ListenerEvent::Accepted(c)) => assert_eq!(c.peer().node, worker(2)),
        other => panic!("{other:?}"),
    }
    assert_eq!(bounded(good).await.unwrap().unwrap().node, NodeId::Driver);
}
