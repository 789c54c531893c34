//! # dstream-tcp
//!
//! The wire layer and transport of dstream's TCP runtime: how driver and worker processes open
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
//!   heartbeat frames;
//! - [`transport`]: [`TcpTransport`], the core's `dstream::transport::Transport` over
//!   established connections (a writer task per peer fed by a bounded queue, a reader task per
//!   connection, heartbeats, `TransportEvent::PeerLost` when a connection closes, fails or
//!   falls silent).
//!
//! Every misbehaving peer (garbage bytes, an oversized frame, a wrong secret, program or
//! version, a peer that stops inside a frame, says nothing, or floods the listener) gets a
//! typed error and a closed connection, within bounded memory and time; the listener goes on.
//!
//! What does **not** exist yet: the driver and worker processes that run the core state
//! machines over this transport (roles chosen at launch, the same binary for all, dialing and
//! redialing peers, worker-to-worker connections for fetches, restart with a new incarnation).
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
pub mod cluster;
pub mod connection;
pub mod frame;
pub mod handshake;
pub mod listener;
pub mod runtime;
pub mod secret;
pub mod transport;

pub use chunk::{message_frames, Inbound, Reassembler};
pub use cluster::{Cluster, ClusterBuilder, LaunchError, Role};
pub use connection::{Connection, MessageReader, MessageWriter};
pub use frame::{Frame, FrameCodec, WireConfig, WireError};
pub use handshake::{
    accept_stream, connect, connect_stream, HandshakeConfig, HandshakeError, PeerInfo, MAGIC, PROTOCOL_VERSION,
};
pub use listener::{Listener, ListenerConfig, ListenerEvent};
pub use secret::{Secret, SecretError};
pub use transport::{TcpTransport, TransportConfig, TransportEvents};
