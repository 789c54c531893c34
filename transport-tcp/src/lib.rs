//! # dstream-tcp
//!
//! dstream's TCP runtime: one program across processes and machines (tokio, only here). The
//! same binary runs as the driver and as every worker; [`ClusterBuilder::launch`] picks the
//! role from the environment ([`cluster::ROLE_ENV`] and the variables beside it) or the
//! builder, builds the program in every process, and returns the [`Cluster`] in the driver (in a
//! worker it serves, then exits the process):
//!
//! ```no_run
//! use dstream_tcp::Cluster;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (cluster, squares) = Cluster::builder().local(3).launch(|ctx| {
//!     Ok(ctx.parallelize((1..=6u64).collect(), 3)?.map(|x| x * x))
//! })?;
//! assert_eq!(squares.collect()?, vec![1, 4, 9, 16, 25, 36]);
//! # drop(cluster);
//! # Ok(())
//! # }
//! ```
//!
//! What exists:
//!
//! - [`cluster`]: [`Cluster`] and its [`ClusterBuilder`]: roles from the environment, a local
//!   cluster of worker processes of the current executable ([`ClusterBuilder::local`], with a
//!   fresh secret passed in their environment), a driver waiting for workers started elsewhere
//!   ([`ClusterBuilder::listen`]), a bounded launch with typed [`LaunchError`]s, and a lost
//!   worker process restarted ([`Cluster::restart_worker`] locally; elsewhere a supervisor
//!   starts it again with the same variables) that rejoins the running cluster as a new
//!   incarnation ([`cluster::INCARNATION_ENV`]), awaited with [`Cluster::wait_registered`];
//! - [`runtime`]: the driver's and workers' loops over the transport, the join that tells
//!   workers each other's addresses (shuffle fetches go directly between workers), also to a
//!   worker that joins after the launch, and how a closed connection becomes a lost peer;
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
//!   falls silent, or is replaced by a connection of the peer's next incarnation).
//!
//! Every misbehaving peer (garbage bytes, an oversized frame, a wrong secret, program or
//! version, a peer that stops inside a frame, says nothing, or floods the listener) gets a
//! typed error and a closed connection, within bounded memory and time; the listener goes on.
//!
//! ## Restarting a worker
//!
//! A worker process that died can be started again at any time after the launch, with the
//! same index: [`Cluster::restart_worker`] does it for a [`ClusterBuilder::local`] cluster. On
//! another machine a supervisor runs the same binary with the same arguments and
//! `DSTREAM_ROLE=worker`, `DSTREAM_DRIVER_ADDR`, `DSTREAM_WORKER_INDEX` (the dead worker's),
//! the secret (`DSTREAM_SECRET` or `DSTREAM_SECRET_FILE`) and, optionally,
//! `DSTREAM_INCARNATION` (higher than the last run's; without it the incarnation is the
//! milliseconds since the Unix epoch at the start). The driver answers its join with the other
//! workers' addresses, it dials each of them (their connections to the dead process are
//! replaced), registers, and the driver gives it tasks again; messages still in flight from
//! the dead incarnation are ignored. A join whose incarnation is not higher than the last one
//! of its index is dropped (the process exits with status 2), so a stale process cannot take
//! the live one's place. Of two workers restarted at once, the one that joins second is given
//! the first's new address and dials it.
//!
//! What does **not** exist yet: the examples' `--cluster` flag; a rejoining worker that cannot
//! reach a live peer at that moment (a network partition) does not dial it again, so the two
//! stay unconnected (their fetches from each other fail) until one
//! of them is restarted.
//!
//! ## Fuzzing
//!
//! `tests/fuzz.rs` feeds arbitrary bytes to the frame decoder, the reassembler and a live
//! listener with proptest; it runs a few hundred cases by default. For a longer run:
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test -p dstream-tcp --release --test fuzz
//! ```
//!
//! ## Feature `pod-codec` (off by default)
//!
//! `pod`: an opt-in codec that copies records of fixed-width integers as their memory through
//! abomonation, a crate flagged unsound (RUSTSEC-2021-0120). Nothing in dstream uses it: the
//! engine's codec is `dstream::codec` (postcard). It is the one module of the workspace with
//! unsafe code; without the feature this crate forbids unsafe code, as every other crate does.
#![cfg_attr(not(feature = "pod-codec"), forbid(unsafe_code))]
#![cfg_attr(feature = "pod-codec", deny(unsafe_code))]
#![deny(missing_docs)]

pub mod chunk;
pub mod cluster;
pub mod connection;
pub mod frame;
pub mod handshake;
pub mod listener;
#[cfg(feature = "pod-codec")]
#[allow(unsafe_code)]
pub mod pod;
pub mod runtime;
pub mod secret;
pub mod transport;

pub use chunk::{message_frames, Inbound, Reassembler};
pub use cluster::{
    Cluster, ClusterBuilder, LaunchError, Role, DRIVER_ADDR_ENV, INCARNATION_ENV, ROLE_ENV, WORKERS_ENV,
    WORKER_INDEX_ENV,
};
pub use connection::{Connection, MessageReader, MessageWriter};
pub use frame::{Frame, FrameCodec, WireConfig, WireError};
pub use handshake::{
    accept_stream, connect, connect_stream, HandshakeConfig, HandshakeError, PeerInfo, MAGIC, PROTOCOL_VERSION,
};
pub use listener::{Listener, ListenerConfig, ListenerEvent};
pub use secret::{Secret, SecretError};
pub use transport::{TcpTransport, TransportConfig, TransportEvents};
