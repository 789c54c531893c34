//! Arbitrary bytes against the frame decoder, the reassembler and a live listener's
//! handshake reader: never a panic, always a valid frame or a typed error. The case count is
//! proptest's (256 by default, `PROPTEST_CASES` for more); the socket property runs a
//! quarter of it.
#![forbid(unsafe_code)] // dstream-tcp only denies it, for its `pod` module.
#![allow(clippy::unwrap_used)] // Integration tests are test code.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use dstream::{Message, NodeId, Payload};
use dstream_tcp::{
    message_frames, Frame, FrameCodec, HandshakeError, Inbound, ListenerConfig, ListenerEvent, Reassembler, WireConfig,
    WireError, MAGIC, PROTOCOL_VERSION,
};
use proptest::prelude::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::{Decoder, Encoder};

const FRAME_BYTES_MAX: usize = 128;

/// Decodes all of `wire` as one connection would (frames, then the end of the stream),
/// feeding frames to a reassembler; stops at the first error.
fn decode_all(wire: &[u8], split_at: usize) -> Result<Vec<Inbound>, WireError> {
    let mut codec = FrameCodec::new(FRAME_BYTES_MAX);
    let mut reassembler = Reassembler::new(4096);
    let mut out = Vec::new();
    let mut buf = BytesMut::new();
    let split_at = split_at.min(wire.len());
    for piece in [&wire[..split_at], &wire[split_at..]] {
        buf.extend_from_slice(piece);
        while let Some(frame) = codec.decode(&mut buf)? {
            assert!(frame.len_bytes() <= FRAME_BYTES_MAX);
            out.extend(reassembler.push(frame)?);
            assert!(reassembler.buffered_bytes() <= 4096);
        }
    }
    while let Some(frame) = codec.decode_eof(&mut buf)? {
        out.extend(reassembler.push(frame)?);
    }
    Ok(out)
}

fn frame() -> impl Strategy<Value = Frame> {
    let bytes = || proptest::collection::vec(any::<u8>(), 0..100).prop_map(Bytes::from);
    prop_oneof![
        bytes().prop_map(Frame::Handshake),
        bytes().prop_map(Frame::Message),
        (any::<u64>(), bytes()).prop_map(|(total_bytes, data)| Frame::ChunkFirst { total_bytes, data }),
        bytes().prop_map(Frame::ChunkNext),
        Just(Frame::Heartbeat),
    ]
}

proptest! {
    #[test]
    fn arbitrary_bytes_decode_to_frames_or_a_typed_error(
        wire in proptest::collection::vec(any::<u8>(), 0..600),
        split_at in 0usize..600,
    ) {
        // Any outcome but a panic is fine; errors are typed by construction.
        let _ = decode_all(&wire, split_at);
    }

    #[test]
    fn valid_length_prefixes_with_arbitrary_content(
        contents in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..FRAME_BYTES_MAX), 0..8),
        split_at in 0usize..600,
    ) {
        let mut wire = Vec::new();
        for c in &contents {
            wire.extend_from_slice(&(c.len() as u32).to_be_bytes());
            wire.extend_from_slice(c);
        }
        match decode_all(&wire, split_at) {
            Ok(_) => {}
            Err(WireError::Io(e)) => prop_assert!(false, "no i/o here: {e}"),
            Err(WireError::FrameTooLarge { .. } | WireError::Truncated { .. }) => {
                prop_assert!(false, "the lengths are valid")
            }
            Err(_) => {}
        }
    }

    #[test]
    fn frames_round_trip(frames in proptest::collection::vec(frame(), 0..10), split_at in 0usize..1200) {
        let mut codec = FrameCodec::new(FRAME_BYTES_MAX);
        let mut wire = BytesMut::new();
        for f in &frames {
            codec.encode(f.clone(), &mut wire).unwrap();
        }
        let split_at = split_at.min(wire.len());
        let mut buf = BytesMut::from(&wire[..split_at]);
        let mut decoded = Vec::new();
        while let Some(f) = codec.decode(&mut buf).unwrap() {
            decoded.push(f);
        }
        buf.extend_from_slice(&wire[split_at..]);
        while let Some(f) = codec.decode_eof(&mut buf).unwrap() {
            decoded.push(f);
        }
        prop_assert_eq!(decoded, frames);
    }

    #[test]
    fn messages_of_any_length_survive_chunking(
        len in 0usize..3000,
        frame_bytes_max in 64usize..300,
    ) {
        let msg = Message::Refused { reason: "x".repeat(len) };
        let config = WireConfig { frame_bytes_max, message_bytes_max: 1 << 20 };
        let frames = message_frames(&msg, &config).unwrap();
        let mut reassembler = Reassembler::new(config.message_bytes_max);
        let mut out = Vec::new();
        for f in frames {
            prop_assert!(f.len_bytes() <= frame_bytes_max);
            out.extend(reassembler.push(f).unwrap());
        }
        let [Inbound::Message(Message::Refused { reason })] = &out[..] else {
            return Err(TestCaseError::fail(format!("{out:?}")));
        };
        prop_assert_eq!(reason.len(), len);
    }
}

/// Arbitrary bytes (half the time after a valid preamble) sent to a live listener, then the
/// end of the stream: always a rejection with a typed error, never an accepted peer, and the
/// listener goes on.
#[test]
fn arbitrary_bytes_against_a_live_handshake() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let listener = runtime.block_on(listen(config(NodeId::Driver, SECRET), ListenerConfig::default()));
    let addr = listener.local_addr();
    let listener = tokio::sync::Mutex::new(listener);
    let cases = (ProptestConfig::default().cases / 4).max(1);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases, ..ProptestConfig::default() });
    let input = (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..400));
    runner
        .run(&input, |(with_preamble, bytes)| {
            runtime.block_on(async {
                let mut raw = TcpStream::connect(addr).await.unwrap();
                if with_preamble {
                    raw.write_all(&MAGIC).await.unwrap();
                    raw.write_all(&PROTOCOL_VERSION.to_be_bytes()).await.unwrap();
                }
                // The listener may close first (after a bad magic): writes may then fail.
                let _ = raw.write_all(&bytes).await;
                let _ = raw.shutdown().await;
                match bounded(async { listener.lock().await.next().await }).await {
                    Some(ListenerEvent::Rejected { error, .. }) => {
                        prop_assert!(!matches!(error, HandshakeError::Timeout { .. }), "{error:?}");
                        Ok(())
                    }
                    Some(ListenerEvent::Accepted(_)) => Err(TestCaseError::fail("arbitrary bytes were accepted")),
                    None => Err(TestCaseError::fail("the listener stopped")),
                }
            })
        })
        .unwrap();
    runtime.block_on(async {
        let (connector, _) = pair(&mut *listener.lock().await, config(worker(1), SECRET)).await;
        assert_eq!(connector.peer().node, NodeId::Driver);
    });
}

#[test]
fn a_payload_message_survives_chunking() {
    let msg = Message::StoreBlock {
        block: dstream::BlockId::Rdd { rdd: dstream::RddId::program(0), partition: 0 },
        data: Payload::Encoded(vec![3u8; 1000].into()),
        bytes: 1000,
    };
    let config = WireConfig { frame_bytes_max: 64, message_bytes_max: 4096 };
    let mut reassembler = Reassembler::new(4096);
    let out: Vec<_> =
        message_frames(&msg, &config).unwrap().into_iter().filter_map(|f| reassembler.push(f).unwrap()).collect();
    assert!(matches!(out[..], [Inbound::Message(Message::StoreBlock { bytes: 1000, .. })]));
}
