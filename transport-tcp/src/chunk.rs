//! Messages as frames: a message whose encoding fits in one frame travels as
//! [`Frame::Message`]; a longer one as a [`Frame::ChunkFirst`] announcing its length followed
//! by [`Frame::ChunkNext`]s. The receiving side's [`Reassembler`] puts the chunks back
//! together, its buffer bounded by [`WireConfig::message_bytes_max`].

use bytes::Bytes;
use dstream::{codec, Message};

use crate::frame::{Frame, WireConfig, WireError, CHUNK_FIRST_HEADER_BYTES, TAG_BYTES};

/// The frames that carry `msg`, in order, under `config`'s limits.
///
/// Errors: the message cannot be encoded ([`WireError::Codec`], e.g. a local payload), its
/// encoding is longer than `message_bytes_max` ([`WireError::MessageTooLarge`]), or the
/// limits are out of range ([`WireError::BadConfig`]).
pub fn message_frames(msg: &Message, config: &WireConfig) -> Result<Vec<Frame>, WireError> {
    config.validate()?;
    let bytes = Bytes::from(codec::encode(msg)?);
    if bytes.len() > config.message_bytes_max {
        return Err(WireError::MessageTooLarge {
            bytes: bytes.len() as u64,
            message_bytes_max: config.message_bytes_max,
        });
    }
    Ok(frames_of(bytes, config.frame_bytes_max))
}

/// Splits an encoded message into frames of at most `frame_bytes_max` bytes
/// (`frame_bytes_max` is at least [`crate::frame::FRAME_BYTES_MIN`]).
fn frames_of(bytes: Bytes, frame_bytes_max: usize) -> Vec<Frame> {
    if TAG_BYTES + bytes.len() <= frame_bytes_max {
        return vec![Frame::Message(bytes)];
    }
    let total_bytes = bytes.len() as u64;
    let first_bytes = frame_bytes_max - CHUNK_FIRST_HEADER_BYTES;
    let next_bytes = frame_bytes_max - TAG_BYTES;
    let mut frames = Vec::with_capacity(1 + (bytes.len() - first_bytes).div_ceil(next_bytes));
    frames.push(Frame::ChunkFirst { total_bytes, data: bytes.slice(..first_bytes) });
    let mut at = first_bytes;
    while at < bytes.len() {
        let end = (at + next_bytes).min(bytes.len());
        frames.push(Frame::ChunkNext(bytes.slice(at..end)));
        at = end;
    }
    frames
}

/// What a connection delivers once frames are put together.
#[derive(Debug)]
pub enum Inbound {
    /// A message.
    Message(Message),
    /// The peer is alive.
    Heartbeat,
}

/// Puts chunked messages back together, one at a time (a connection's frames are in order and
/// the chunks of one message are never interleaved with another message).
#[derive(Debug)]
pub struct Reassembler {
    message_bytes_max: usize,
    /// The message being reassembled: its announced length and the bytes so far.
    partial: Option<(usize, Vec<u8>)>,
}

impl Reassembler {
    /// A reassembler refusing messages longer than `message_bytes_max` bytes.
    pub fn new(message_bytes_max: usize) -> Reassembler {
        Reassembler { message_bytes_max, partial: None }
    }

    /// The bytes held for an unfinished message (at most `message_bytes_max`).
    pub fn buffered_bytes(&self) -> usize {
        self.partial.as_ref().map_or(0, |(_, b)| b.len())
    }

    /// Takes the next frame: `Some` when it completes a message or is a heartbeat, `None`
    /// when it is a chunk of an unfinished message. After an error the reassembler holds
    /// nothing; the connection should be closed.
    pub fn push(&mut self, frame: Frame) -> Result<Option<Inbound>, WireError> {
        let result = self.push_inner(frame);
        if result.is_err() {
            self.partial = None;
        }
        result
    }

    fn push_inner(&mut self, frame: Frame) -> Result<Option<Inbound>, WireError> {
        match frame {
            Frame::Heartbeat => Ok(Some(Inbound::Heartbeat)),
            Frame::Handshake(_) => Err(WireError::UnexpectedFrame { kind: "handshake" }),
            Frame::Message(bytes) => {
                if self.partial.is_some() {
                    return Err(WireError::ChunkOutOfOrder { reason: "a whole message inside a chunked one" });
                }
                if bytes.len() > self.message_bytes_max {
                    return Err(self.too_large(bytes.len() as u64));
                }
                Ok(Some(Inbound::Message(codec::decode(&bytes)?)))
            }
            Frame::ChunkFirst { total_bytes, data } => {
                if self.partial.is_some() {
                    return Err(WireError::ChunkOutOfOrder { reason: "a first chunk inside a chunked message" });
                }
                let total = match usize::try_from(total_bytes) {
                    Ok(total) if total <= self.message_bytes_max => total,
                    _ => return Err(self.too_large(total_bytes)),
                };
                // The buffer grows with the chunks that arrive, never to the announced length
                // at once: a peer announcing a long message and sending nothing costs nothing.
                self.partial = Some((total, Vec::with_capacity(data.len())));
                self.append(&data)
            }
            Frame::ChunkNext(data) => {
                if self.partial.is_none() {
                    return Err(WireError::ChunkOutOfOrder { reason: "a following chunk without a first one" });
                }
                self.append(&data)
            }
        }
    }

    fn append(&mut self, data: &[u8]) -> Result<Option<Inbound>, WireError> {
        let Some((total, buffer)) = self.partial.as_mut() else {
            return Err(WireError::ChunkOutOfOrder { reason: "a following chunk without a first one" });
        };
        if buffer.len() + data.len() > *total {
            return Err(WireError::ChunkOutOfOrder { reason: "chunks longer than the announced length" });
        }
        buffer.extend_from_slice(data);
        if buffer.len() < *total {
            return Ok(None);
        }
        let (_, bytes) = self.partial.take().unwrap_or_default();
        Ok(Some(Inbound::Message(codec::decode(&bytes)?)))
    }

    fn too_large(&self, bytes: u64) -> WireError {
        WireError::MessageTooLarge { bytes, message_bytes_max: self.message_bytes_max }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dstream::{BlockId, Payload, RddId};

    fn store_block(bytes: usize) -> Message {
        let data = Payload::Encoded(vec![7u8; bytes].into());
        Message::StoreBlock { block: BlockId::Rdd { rdd: RddId::program(3), partition: 1 }, data, bytes: bytes as u64 }
    }

    fn config(frame_bytes_max: usize) -> WireConfig {
        WireConfig { frame_bytes_max, message_bytes_max: 1 << 20 }
    }

    fn reassemble(frames: Vec<Frame>, message_bytes_max: usize) -> Result<Vec<Inbound>, WireError> {
        let mut r = Reassembler::new(message_bytes_max);
        let mut out = Vec::new();
        for f in frames {
            out.extend(r.push(f)?);
        }
        assert_eq!(r.buffered_bytes(), 0);
        Ok(out)
    }

    #[test]
    fn small_messages_take_one_frame_long_ones_chunks_within_the_limit() {
        assert_eq!(
            message_frames(&Message::Registered, &config(64)).unwrap(),
            [Frame::Message(Bytes::from_static(&[2]))]
        );
        let frames = message_frames(&store_block(1000), &config(64)).unwrap();
        assert!(frames.len() > 10);
        assert!(frames.iter().all(|f| f.len_bytes() <= 64));
        assert!(matches!(frames[0], Frame::ChunkFirst { .. }));
        let out = reassemble(frames, 1 << 20).unwrap();
        let [Inbound::Message(Message::StoreBlock { bytes: 1000, data, .. })] = &out[..] else { panic!("{out:?}") };
        assert_eq!(data.encoded_len(), Some(1000));
    }

    #[test]
    fn chunk_boundaries_at_every_size() {
        for n in 40..140 {
            let frames = message_frames(&store_block(n), &config(64)).unwrap();
            assert!(frames.iter().all(|f| f.len_bytes() <= 64));
            assert_eq!(reassemble(frames, 1 << 20).unwrap().len(), 1);
        }
    }

    #[test]
    fn the_reassembly_buffer_is_bounded() {
        let frames = message_frames(&store_block(1000), &config(64)).unwrap();
        assert!(matches!(reassemble(frames, 500), Err(WireError::MessageTooLarge { message_bytes_max: 500, .. })));
        let announced = Frame::ChunkFirst { total_bytes: u64::MAX, data: Bytes::new() };
        assert!(matches!(reassemble(vec![announced], 500), Err(WireError::MessageTooLarge { .. })));
        let small = WireConfig { frame_bytes_max: 64, message_bytes_max: 100 };
        assert!(matches!(message_frames(&store_block(1000), &small), Err(WireError::MessageTooLarge { .. })));
    }

    #[test]
    fn chunks_out_of_order_are_typed_errors() {
        let next = Frame::ChunkNext(Bytes::from_static(b"x"));
        assert!(matches!(reassemble(vec![next.clone()], 100), Err(WireError::ChunkOutOfOrder { .. })));
        let first = Frame::ChunkFirst { total_bytes: 2, data: Bytes::from_static(b"a") };
        let whole = Frame::Message(Bytes::from_static(&[2]));
        assert!(matches!(reassemble(vec![first.clone(), whole], 100), Err(WireError::ChunkOutOfOrder { .. })));
        assert!(matches!(reassemble(vec![first.clone(), first.clone()], 100), Err(WireError::ChunkOutOfOrder { .. })));
        let long = Frame::ChunkNext(Bytes::from_static(b"xy"));
        assert!(matches!(reassemble(vec![first, long], 100), Err(WireError::ChunkOutOfOrder { .. })));
        let hs = Frame::Handshake(Bytes::new());
        assert!(matches!(reassemble(vec![hs], 100), Err(WireError::UnexpectedFrame { kind: "handshake" })));
        let garbage = Frame::Message(Bytes::from_static(&[200, 1, 2]));
        assert!(matches!(reassemble(vec![garbage], 100), Err(WireError::Codec(_))));
    }

    #[test]
    fn heartbeats_may_come_between_chunks() {
        let mut frames = message_frames(&store_block(200), &config(64)).unwrap();
        frames.insert(1, Frame::Heartbeat);
        let out = reassemble(frames, 1 << 20).unwrap();
        assert!(matches!(out[..], [Inbound::Heartbeat, Inbound::Message(_)]));
    }

    #[test]
    fn a_local_payload_cannot_be_sent() {
        let msg = Message::StoreBlock {
            block: BlockId::Rdd { rdd: RddId::program(3), partition: 1 },
            data: Payload::local(std::sync::Arc::new(5u32)),
            bytes: 4,
        };
        assert!(matches!(message_frames(&msg, &config(64)), Err(WireError::Codec(_))));
    }
}
