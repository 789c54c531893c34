//! Frames on the wire: tokio-util's [`LengthDelimitedCodec`] (a 4-byte big-endian length, then
//! that many bytes) with a hard limit, [`WireConfig::frame_bytes_max`], and one tag byte at the
//! start of each frame saying what it carries ([`Frame`]).
//!
//! The decoder never panics and never allocates past the limit it was given: a length prefix
//! above it, an unknown tag, a malformed chunk header or a stream that ends inside a frame is a
//! typed [`WireError`], after which the connection is closed.

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use dstream::codec::CodecError;
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec, LengthDelimitedCodecError};

/// The default [`WireConfig::frame_bytes_max`]: 16 MiB.
pub const FRAME_BYTES_MAX_DEFAULT: usize = 16 << 20;

/// The default [`WireConfig::message_bytes_max`]: 256 MiB.
pub const MESSAGE_BYTES_MAX_DEFAULT: usize = 256 << 20;

/// The smallest accepted [`WireConfig::frame_bytes_max`]: room for a chunk header and data.
pub const FRAME_BYTES_MIN: usize = 64;

/// The length prefix of every frame, in bytes (not counted in the frame's length).
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// Limits of the framing layer, the same on both ends of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireConfig {
    /// The largest frame, in bytes after the length prefix (tag byte included). A peer that
    /// announces a longer frame gets [`WireError::FrameTooLarge`] before any of it is buffered.
    /// Messages whose encoding does not fit are sent in chunks.
    pub frame_bytes_max: usize,
    /// The largest encoded message, in bytes: the bound on the buffer that reassembles a
    /// chunked message. Past it, [`WireError::MessageTooLarge`] (on either side).
    pub message_bytes_max: usize,
}

impl Default for WireConfig {
    fn default() -> Self {
        WireConfig { frame_bytes_max: FRAME_BYTES_MAX_DEFAULT, message_bytes_max: MESSAGE_BYTES_MAX_DEFAULT }
    }
}

impl WireConfig {
    /// Checks the limits: `frame_bytes_max` between [`FRAME_BYTES_MIN`] and `u32::MAX` (the
    /// length prefix's range) and `message_bytes_max` at least 1.
    pub fn validate(&self) -> Result<(), WireError> {
        if self.frame_bytes_max < FRAME_BYTES_MIN || self.frame_bytes_max as u64 > u64::from(u32::MAX) {
            return Err(WireError::BadConfig { reason: "frame_bytes_max must be in 64..=u32::MAX" });
        }
        if self.message_bytes_max == 0 {
            return Err(WireError::BadConfig { reason: "message_bytes_max must be at least 1" });
        }
        Ok(())
    }
}

/// Something wrong on the wire. Every variant closes the connection it happened on.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The socket failed.
    #[error("i/o error on the connection: {0}")]
    Io(#[from] io::Error),
    /// A frame is longer than the limit: announced by the peer's length prefix, or one this
    /// side was about to send.
    #[error("a frame is longer than frame_bytes_max ({frame_bytes_max} bytes)")]
    FrameTooLarge {
        /// The limit in force.
        frame_bytes_max: usize,
    },
    /// The peer closed the connection in the middle of a frame.
    #[error("the connection ended inside a frame ({bytes_buffered} bytes of it received)")]
    Truncated {
        /// The bytes of the unfinished frame (or length prefix) that had arrived.
        bytes_buffered: usize,
    },
    /// A frame of zero bytes: it has no tag.
    #[error("an empty frame (no tag byte)")]
    EmptyFrame,
    /// A frame whose tag byte names no [`Frame`] variant.
    #[error("unknown frame tag {0}")]
    UnknownTag(u8),
    /// A frame whose tag is known but whose content is not valid for it.
    #[error("malformed frame: {reason}")]
    BadFrame {
        /// What is wrong.
        reason: &'static str,
    },
    /// A chunk that does not continue the message being reassembled, or a whole message or
    /// a new first chunk while one is.
    #[error("chunk out of order: {reason}")]
    ChunkOutOfOrder {
        /// What is wrong.
        reason: &'static str,
    },
    /// An encoded message longer than [`WireConfig::message_bytes_max`].
    #[error("a message of {bytes} bytes is longer than message_bytes_max ({message_bytes_max} bytes)")]
    MessageTooLarge {
        /// The message's encoded length (announced by the peer, or ours).
        bytes: u64,
        /// The limit in force.
        message_bytes_max: usize,
    },
    /// A frame that has no place after the handshake (a handshake frame).
    #[error("unexpected {kind} frame")]
    UnexpectedFrame {
        /// The frame's kind ([`Frame::kind`]).
        kind: &'static str,
    },
    /// A message could not be encoded, or the bytes of one are not a valid `Message`.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The limits are out of range ([`WireConfig::validate`]).
    #[error("bad wire configuration: {reason}")]
    BadConfig {
        /// What is wrong.
        reason: &'static str,
    },
}

/// One frame's content, after the length prefix: a tag byte, then the tag's fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Tag 0: a step of the handshake (its encoding is the handshake's business).
    Handshake(Bytes),
    /// Tag 1: a whole encoded [`dstream::Message`].
    Message(Bytes),
    /// Tag 2: the first chunk of a message too long for one frame: the message's encoded
    /// length (u64, little-endian), then the chunk's bytes.
    ChunkFirst {
        /// The encoded length of the whole message.
        total_bytes: u64,
        /// This chunk's bytes.
        data: Bytes,
    },
    /// Tag 3: a following chunk of the message being reassembled.
    ChunkNext(Bytes),
    /// Tag 4: the sender is alive (no content).
    Heartbeat,
}

const TAG_HANDSHAKE: u8 = 0;
const TAG_MESSAGE: u8 = 1;
const TAG_CHUNK_FIRST: u8 = 2;
const TAG_CHUNK_NEXT: u8 = 3;
const TAG_HEARTBEAT: u8 = 4;

/// The bytes a [`Frame::ChunkFirst`] spends before its data: tag and total length.
pub(crate) const CHUNK_FIRST_HEADER_BYTES: usize = 1 + 8;

/// The bytes [`Frame::Message`] and [`Frame::ChunkNext`] spend before their data: the tag.
pub(crate) const TAG_BYTES: usize = 1;

impl Frame {
    /// A short name of the frame's kind, for errors and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Frame::Handshake(_) => "handshake",
            Frame::Message(_) => "message",
            Frame::ChunkFirst { .. } => "chunk-first",
            Frame::ChunkNext(_) => "chunk-next",
            Frame::Heartbeat => "heartbeat",
        }
    }

    /// The frame's length on the wire after the length prefix.
    pub fn len_bytes(&self) -> usize {
        match self {
            Frame::Handshake(b) | Frame::Message(b) | Frame::ChunkNext(b) => TAG_BYTES + b.len(),
            Frame::ChunkFirst { data, .. } => CHUNK_FIRST_HEADER_BYTES + data.len(),
            Frame::Heartbeat => TAG_BYTES,
        }
    }

    /// Parses one frame's content (the bytes after the length prefix).
    pub fn parse(mut bytes: Bytes) -> Result<Frame, WireError> {
        if bytes.is_empty() {
            return Err(WireError::EmptyFrame);
        }
        let tag = bytes.get_u8();
        match tag {
            TAG_HANDSHAKE => Ok(Frame::Handshake(bytes)),
            TAG_MESSAGE => Ok(Frame::Message(bytes)),
            TAG_CHUNK_FIRST => {
                if bytes.len() < 8 {
                    return Err(WireError::BadFrame { reason: "a first chunk shorter than its length field" });
                }
                let total_bytes = bytes.get_u64_le();
                Ok(Frame::ChunkFirst { total_bytes, data: bytes })
            }
            TAG_CHUNK_NEXT => Ok(Frame::ChunkNext(bytes)),
            TAG_HEARTBEAT if bytes.is_empty() => Ok(Frame::Heartbeat),
            TAG_HEARTBEAT => Err(WireError::BadFrame { reason: "a heartbeat with content" }),
            other => Err(WireError::UnknownTag(other)),
        }
    }

    /// Writes the frame's content (without the length prefix) to `out`.
    pub fn write_to(&self, out: &mut BytesMut) {
        out.reserve(self.len_bytes());
        match self {
            Frame::Handshake(b) => {
                out.put_u8(TAG_HANDSHAKE);
                out.put_slice(b);
            }
            Frame::Message(b) => {
                out.put_u8(TAG_MESSAGE);
                out.put_slice(b);
            }
            Frame::ChunkFirst { total_bytes, data } => {
                out.put_u8(TAG_CHUNK_FIRST);
                out.put_u64_le(*total_bytes);
                out.put_slice(data);
            }
            Frame::ChunkNext(b) => {
                out.put_u8(TAG_CHUNK_NEXT);
                out.put_slice(b);
            }
            Frame::Heartbeat => out.put_u8(TAG_HEARTBEAT),
        }
    }
}

/// The codec of a connection: [`LengthDelimitedCodec`] with `max_frame_length` set to the
/// limit in force, and [`Frame`] parsing on top. Use it with `FramedRead` / `FramedWrite`.
#[derive(Debug)]
pub struct FrameCodec {
    inner: LengthDelimitedCodec,
    frame_bytes_max: usize,
}

impl FrameCodec {
    /// A codec refusing frames longer than `frame_bytes_max` bytes (after the length prefix).
    pub fn new(frame_bytes_max: usize) -> FrameCodec {
        let inner = LengthDelimitedCodec::builder()
            .length_field_length(LENGTH_PREFIX_BYTES)
            .max_frame_length(frame_bytes_max)
            .new_codec();
        FrameCodec { inner, frame_bytes_max }
    }

    /// The limit in force.
    pub fn frame_bytes_max(&self) -> usize {
        self.frame_bytes_max
    }

    /// Changes the limit (the handshake runs with a small one, established connections with
    /// [`WireConfig::frame_bytes_max`]).
    pub fn set_frame_bytes_max(&mut self, frame_bytes_max: usize) {
        self.inner.set_max_frame_length(frame_bytes_max);
        self.frame_bytes_max = frame_bytes_max;
    }

    fn map_error(&self, e: io::Error) -> WireError {
        if e.get_ref().is_some_and(|inner| inner.is::<LengthDelimitedCodecError>()) {
            WireError::FrameTooLarge { frame_bytes_max: self.frame_bytes_max }
        } else {
            WireError::Io(e)
        }
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        match self.inner.decode(src) {
            Ok(Some(bytes)) => Frame::parse(bytes.freeze()).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(self.map_error(e)),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(WireError::Truncated { bytes_buffered: src.len() }),
        }
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = WireError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), WireError> {
        if frame.len_bytes() > self.frame_bytes_max {
            return Err(WireError::FrameTooLarge { frame_bytes_max: self.frame_bytes_max });
        }
        let mut content = BytesMut::with_capacity(frame.len_bytes());
        frame.write_to(&mut content);
        self.inner.encode(content.freeze(), dst).map_err(|e| self.map_error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(frame: Frame, max: usize) -> BytesMut {
        let mut out = BytesMut::new();
        FrameCodec::new(max).encode(frame, &mut out).unwrap();
        out
    }

    #[test]
    fn every_frame_round_trips() {
        let frames = [
            Frame::Handshake(Bytes::from_static(b"hi")),
            Frame::Message(Bytes::from_static(b"\x01\x02")),
            Frame::ChunkFirst { total_bytes: 300, data: Bytes::from_static(b"abc") },
            Frame::ChunkNext(Bytes::new()),
            Frame::Heartbeat,
        ];
        let mut wire = BytesMut::new();
        for f in &frames {
            wire.extend_from_slice(&encoded(f.clone(), 64));
        }
        let mut codec = FrameCodec::new(64);
        for f in &frames {
            assert_eq!(codec.decode(&mut wire).unwrap().as_ref(), Some(f));
        }
        assert_eq!(codec.decode_eof(&mut wire).unwrap(), None);
    }

    #[test]
    fn a_long_length_prefix_is_refused_before_buffering() {
        let mut codec = FrameCodec::new(64);
        let mut wire = BytesMut::from(&[0u8, 0, 0, 65][..]);
        assert!(matches!(codec.decode(&mut wire), Err(WireError::FrameTooLarge { frame_bytes_max: 64 })));
    }

    #[test]
    fn a_frame_too_long_to_send_is_an_error() {
        let mut codec = FrameCodec::new(64);
        let mut out = BytesMut::new();
        let big = Frame::Message(Bytes::from(vec![0u8; 64]));
        assert!(matches!(codec.encode(big, &mut out), Err(WireError::FrameTooLarge { .. })));
        assert!(out.is_empty());
    }

    #[test]
    fn typed_errors_for_bad_content() {
        assert!(matches!(Frame::parse(Bytes::new()), Err(WireError::EmptyFrame)));
        assert!(matches!(Frame::parse(Bytes::from_static(&[9])), Err(WireError::UnknownTag(9))));
        assert!(matches!(Frame::parse(Bytes::from_static(&[2, 1, 2])), Err(WireError::BadFrame { .. })));
        assert!(matches!(Frame::parse(Bytes::from_static(&[4, 0])), Err(WireError::BadFrame { .. })));
    }

    #[test]
    fn eof_inside_a_frame_is_truncated() {
        let mut wire = encoded(Frame::Message(Bytes::from_static(b"abcdef")), 64);
        wire.truncate(wire.len() - 2);
        let mut codec = FrameCodec::new(64);
        assert_eq!(codec.decode(&mut wire).unwrap(), None);
        assert!(matches!(codec.decode_eof(&mut wire), Err(WireError::Truncated { .. })));
        let mut head = BytesMut::from(&[0u8, 0][..]);
        assert!(matches!(FrameCodec::new(64).decode_eof(&mut head), Err(WireError::Truncated { bytes_buffered: 2 })));
    }

    #[test]
    fn config_bounds() {
        assert!(WireConfig::default().validate().is_ok());
        assert!(WireConfig { frame_bytes_max: 10, ..WireConfig::default() }.validate().is_err());
        assert!(WireConfig { message_bytes_max: 0, ..WireConfig::default() }.validate().is_err());
    }
}
