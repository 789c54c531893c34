//! # dstream-tcp
//!
//! The wire layer of dstream's TCP runtime: how driver and worker processes open
//! authenticated connections and exchange [`dstream::Message`]s over them (tokio). What exists:
//!
//! - [`frame`]: frames over tokio-util's `LengthDelimitedCodec` with a hard
//!   [`WireConfig::frame_bytes_max`], a tag byte per frame, typed [`WireError`]s;
//! - [`chunk`]: a message longer than a frame goes in chunks, reassembled by a
//!   [`Reassembler`] bounded by [`WireConfig::message_bytes_max`];
//! - [`handshake`]: magic and protocol version, then the program fingerprint, node id and
//!   incarnation, with mutual HMAC-SHA256 challenge-response over a shared [`Secret`]
//!   (`DSTREAM_SECRET` or `DSTREAM_SECRET_FILE`, never the command line), under one timeout;
//! - [`listener`]: an accept loop with at most [`ListenerConfig::handshakes_max`]
//!   unauthenticated connections at once, handing authenticated [`Connection`]s to the caller;
//! - [`connection`]: an established connection, split into a reader and a writer, with
//!   heartbeat frames.
//!
//! Every misbehaving peer (garbage bytes, an oversized frame, a wrong secret, program or
//! version, a peer that stops inside a frame, says nothing, or floods the listener) gets a
//! typed error and a closed connection, within bounded memory and time; the listener goes on.
//!
//! What does **not** exist yet: a `dstream::transport::Transport` over these connections, and
//! the driver and worker processes (roles chosen at launch, reconnection, heartbeat-based loss
//! detection) that run the core state machines over it.
//!
//! ## Fuzzing
//!
//! `tests/fuzz.rs` feeds arbitrary bytes to the frame decoder, the reassembler and a live
//! listener with proptest; it runs a few hundred cases by default. For a longer run:
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test -p dstream-tcp --release --test fuzz
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod chunk;
pub mod connection;
pub mod frame;
pub mod handshake;
pub mod listener;
pub mod secret;

pub use chunk::{message_frames, Inbound, Reassembler};
pub use connection::{Connection, MessageReader, MessageWriter};
pub use frame::{Frame, FrameCodec, WireConfig, WireError};
pub use handshake::{
    accept_stream, connect, connect_stream, HandshakeConfig, HandshakeError, PeerInfo, MAGIC, PROTOCOL_VERSION,
};
pub use listener::{Listener, ListenerConfig, ListenerEvent};
pub use secret::{Secret, SecretError};
