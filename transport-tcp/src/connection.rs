//! An established, authenticated connection: messages in and out over [`Frame`]s.

use dstream::Message;
use futures_util::{SinkExt, StreamExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::chunk::{message_frames, Inbound, Reassembler};
use crate::frame::{Frame, FrameCodec, WireConfig, WireError};
use crate::handshake::PeerInfo;

/// A connection whose handshake succeeded. Split it to read and write from different tasks.
#[derive(Debug)]
pub struct Connection {
    peer: PeerInfo,
    reader: MessageReader,
    writer: MessageWriter,
}

impl Connection {
    pub(crate) fn new(
        peer: PeerInfo,
        frames_in: FramedRead<OwnedReadHalf, FrameCodec>,
        frames_out: FramedWrite<OwnedWriteHalf, FrameCodec>,
        wire: WireConfig,
    ) -> Connection {
        Connection {
            peer,
            reader: MessageReader { frames: frames_in, reassembler: Reassembler::new(wire.message_bytes_max) },
            writer: MessageWriter { frames: frames_out, wire },
        }
    }

    /// The authenticated peer.
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }

    /// Sends `msg` ([`MessageWriter::send`]).
    pub async fn send(&mut self, msg: &Message) -> Result<(), WireError> {
        self.writer.send(msg).await
    }

    /// Sends a heartbeat ([`MessageWriter::heartbeat`]).
    pub async fn heartbeat(&mut self) -> Result<(), WireError> {
        self.writer.heartbeat().await
    }

    /// Receives the next message or heartbeat ([`MessageReader::recv`]).
    pub async fn recv(&mut self) -> Result<Option<Inbound>, WireError> {
        self.reader.recv().await
    }

    /// Sends one step of a runtime-level exchange that follows the handshake, before the
    /// connection carries messages (a [`Frame::Handshake`] frame; see `runtime::join`).
    pub(crate) async fn send_step(&mut self, bytes: Vec<u8>) -> Result<(), WireError> {
        self.writer.frames.send(Frame::Handshake(bytes.into())).await
    }

    /// Receives the next step of a runtime-level exchange ([`Connection::send_step`]),
    /// skipping heartbeats; `None` if the peer closed the connection. Any other frame is
    /// [`WireError::UnexpectedFrame`].
    pub(crate) async fn recv_step(&mut self) -> Result<Option<bytes::Bytes>, WireError> {
        loop {
            match self.reader.frames.next().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(e),
                Some(Ok(Frame::Heartbeat)) => {}
                Some(Ok(Frame::Handshake(bytes))) => return Ok(Some(bytes)),
                Some(Ok(other)) => return Err(WireError::UnexpectedFrame { kind: other.kind() }),
            }
        }
    }

    /// The peer, the reading half and the writing half.
    pub fn into_split(self) -> (PeerInfo, MessageReader, MessageWriter) {
        (self.peer, self.reader, self.writer)
    }
}

/// The reading half of a [`Connection`].
#[derive(Debug)]
pub struct MessageReader {
    frames: FramedRead<OwnedReadHalf, FrameCodec>,
    reassembler: Reassembler,
}

impl MessageReader {
    /// The next message or heartbeat; `None` once the peer closed the connection between
    /// messages. A peer that closes inside a frame, or between the chunks of a message, is
    /// [`WireError::Truncated`]; any error means the connection is unusable.
    ///
    /// Cancel safe: frames read so far stay buffered for the next call.
    pub async fn recv(&mut self) -> Result<Option<Inbound>, WireError> {
        loop {
            match self.frames.next().await {
                None if self.reassembler.buffered_bytes() > 0 => {
                    return Err(WireError::Truncated { bytes_buffered: self.reassembler.buffered_bytes() })
                }
                None => return Ok(None),
                Some(Err(e)) => return Err(e),
                Some(Ok(frame)) => {
                    if let Some(inbound) = self.reassembler.push(frame)? {
                        return Ok(Some(inbound));
                    }
                }
            }
        }
    }
}

/// The writing half of a [`Connection`].
#[derive(Debug)]
pub struct MessageWriter {
    frames: FramedWrite<OwnedWriteHalf, FrameCodec>,
    wire: WireConfig,
}

impl MessageWriter {
    /// Sends `msg`, in chunks if its encoding is longer than a frame, and flushes. Errors:
    /// the message cannot be encoded or is too long ([`message_frames`]), or the socket
    /// failed. Not cancel safe: a send cut short leaves part of a message on the wire, so
    /// the connection must then be dropped.
    pub async fn send(&mut self, msg: &Message) -> Result<(), WireError> {
        self.send_frames(message_frames(msg, &self.wire)?).await
    }

    /// Sends the frames of one message, made by [`message_frames`] with this connection's
    /// [`WireConfig`], and flushes (the form for encoding on another thread).
    pub async fn send_frames(&mut self, frames: Vec<Frame>) -> Result<(), WireError> {
        for frame in frames {
            self.frames.feed(frame).await?;
        }
        self.frames.flush().await
    }

    /// The limits this connection was established with.
    pub fn wire(&self) -> &WireConfig {
        &self.wire
    }

    /// Sends a heartbeat frame and flushes.
    pub async fn heartbeat(&mut self) -> Result<(), WireError> {
        self.frames.send(Frame::Heartbeat).await
    }

    /// Closes the writing side (the peer's reader sees the end of the stream).
    pub async fn close(&mut self) -> Result<(), WireError> {
        self.frames.close().await
    }

    /// The socket's writing half, to write raw bytes that bypass the framing (for tests of
    /// misbehaving peers). Call only after a flush.
    pub fn get_mut(&mut self) -> &mut OwnedWriteHalf {
        self.frames.get_mut()
    }
}
