//! The handshake that opens every connection, before any message.
//!
//! ```text
//! connector                                   acceptor
//!   MAGIC, PROTOCOL_VERSION (raw, 12 bytes) ->
//!                                           <- MAGIC, PROTOCOL_VERSION (raw; not sent after a bad magic)
//!   Hello { node, incarnation, program, nonce_c } ->
//!                                           <- Challenge { nonce_a }
//!   Proof { HMAC(secret, "connect", hello, challenge) } ->
//!                                           <- Welcome { node, incarnation, program,
//!                                                        HMAC(secret, "accept", hello, challenge, body) }
//!                                              or Refused (the proof did not verify)
//! ```
//!
//! The preambles are raw so that anything that is not dstream, or another protocol version,
//! is told apart before a frame is parsed. The steps after them are [`Frame::Handshake`]
//! frames, limited to [`HANDSHAKE_FRAME_BYTES_MAX`] bytes, holding postcard encodings. Each
//! side proves it knows the secret with an HMAC-SHA256 over both fresh nonces (so neither a
//! recorded handshake nor a reflected one can be replayed); the labels differ by role, and the
//! acceptor computes a MAC only for a connector that proved itself first. MACs are compared in
//! constant time (`Mac::verify_slice`). The whole handshake runs under one deadline,
//! [`HandshakeConfig::handshake_timeout`], so a silent or slow peer costs at most that long.
//!
//! What it does not do: the frames after the handshake are neither encrypted nor
//! authenticated, so the secret keeps out processes that do not know it, not an attacker on
//! the network path who can rewrite the connection (that needs TLS, or a MAC per frame keyed
//! from the handshake). An authenticated peer is trusted to name itself ([`PeerInfo::node`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use dstream::codec::{self, CodecError};
use dstream::NodeId;
use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::connection::Connection;
use crate::frame::{Frame, FrameCodec, WireConfig, WireError};
use crate::secret::Secret;

/// The first bytes a connector sends, and the acceptor answers with.
pub const MAGIC: [u8; 8] = *b"dstream\n";

/// The protocol version this build speaks; peers must speak the same one.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest handshake frame, in bytes: an unauthenticated peer can make the acceptor
/// buffer no more than this.
pub const HANDSHAKE_FRAME_BYTES_MAX: usize = 256;

/// The default [`HandshakeConfig::handshake_timeout`].
pub const HANDSHAKE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);

const NONCE_BYTES: usize = 32;
const CONNECT_LABEL: &[u8] = b"dstream handshake v1: connector proof";
const ACCEPT_LABEL: &[u8] = b"dstream handshake v1: acceptor proof";

type HmacSha256 = Hmac<Sha256>;

/// Who this side is and what it shares with its peers.
#[derive(Clone, Debug)]
pub struct HandshakeConfig {
    /// This member.
    pub node: NodeId,
    /// This member's incarnation (a restarted worker has a higher one).
    pub incarnation: u64,
    /// The fingerprint of the program this process runs
    /// ([`dstream::ProgramSummary::fingerprint`]); peers must run the same program.
    pub program: u64,
    /// The cluster's shared secret.
    pub secret: Secret,
    /// The most the whole handshake may take, from the connection's start.
    pub handshake_timeout: Duration,
    /// The limits of the connection once it is established.
    pub wire: WireConfig,
}

impl HandshakeConfig {
    /// A configuration with the default timeout and limits.
    pub fn new(node: NodeId, incarnation: u64, program: u64, secret: Secret) -> HandshakeConfig {
        HandshakeConfig {
            node,
            incarnation,
            program,
            secret,
            handshake_timeout: HANDSHAKE_TIMEOUT_DEFAULT,
            wire: WireConfig::default(),
        }
    }
}

/// The authenticated peer of an established connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// The member it says it is (it proved it knows the secret).
    pub node: NodeId,
    /// Its incarnation.
    pub incarnation: u64,
    /// Its program's fingerprint (equal to ours).
    pub program: u64,
    /// Its socket address.
    pub addr: SocketAddr,
}

/// Why a handshake failed. The connection is closed in every case.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The socket failed.
    #[error("i/o error in the handshake: {0}")]
    Io(#[from] io::Error),
    /// A frame could not be read (too long, cut short, unknown tag, ...).
    #[error("bad frame in the handshake: {0}")]
    Wire(#[from] WireError),
    /// The peer's first bytes are not [`MAGIC`]: it does not speak dstream.
    #[error("the peer does not speak dstream (first bytes {theirs:?})")]
    BadMagic {
        /// The bytes it sent.
        theirs: [u8; 8],
    },
    /// The peer speaks another protocol version.
    #[error("protocol version mismatch: ours {ours}, theirs {theirs}")]
    VersionMismatch {
        /// [`PROTOCOL_VERSION`].
        ours: u32,
        /// The peer's.
        theirs: u32,
    },
    /// The peer runs another program (checked after authentication).
    #[error("program mismatch: our fingerprint {ours:#018x}, theirs {theirs:#018x}")]
    ProgramMismatch {
        /// [`HandshakeConfig::program`].
        ours: u64,
        /// The peer's.
        theirs: u64,
    },
    /// The peer's proof did not verify: it does not know the secret.
    #[error("authentication failed: the peer does not know the secret")]
    AuthFailed,
    /// The peer did not accept our proof: the secrets differ.
    #[error("authentication refused by the peer: the secrets differ")]
    AuthRefused,
    /// A valid frame that is not the expected step.
    #[error("unexpected {got} in the handshake, waiting for {step}")]
    Unexpected {
        /// The step waited for.
        step: &'static str,
        /// What came.
        got: &'static str,
    },
    /// A handshake frame that is not a valid step.
    #[error("malformed handshake step, waiting for {step}: {source}")]
    Malformed {
        /// The step waited for.
        step: &'static str,
        /// The decoder's error.
        source: CodecError,
    },
    /// The handshake did not finish within [`HandshakeConfig::handshake_timeout`].
    #[error("the handshake timed out waiting for {step}")]
    Timeout {
        /// The step waited for.
        step: &'static str,
    },
    /// The peer closed the connection.
    #[error("the peer closed the connection, waiting for {step}")]
    Closed {
        /// The step waited for.
        step: &'static str,
    },
    /// The OS gave no randomness for a nonce.
    #[error("no randomness for a nonce: {0}")]
    Random(getrandom::Error),
}

/// The steps after the preambles, postcard-encoded in [`Frame::Handshake`] frames.
#[derive(Debug, Serialize, Deserialize)]
enum Step {
    Hello { node: NodeId, incarnation: u64, program: u64, nonce: [u8; NONCE_BYTES] },
    Challenge { nonce: [u8; NONCE_BYTES] },
    Proof { mac: [u8; 32] },
    Welcome { node: NodeId, incarnation: u64, program: u64, mac: [u8; 32] },
    Refused,
}

impl Step {
    fn kind(&self) -> &'static str {
        match self {
            Step::Hello { .. } => "hello",
            Step::Challenge { .. } => "challenge",
            Step::Proof { .. } => "proof",
            Step::Welcome { .. } => "welcome",
            Step::Refused => "refused",
        }
    }
}

/// Connects to `addr` and runs the connector's side of the handshake (the connect itself
/// counts against the timeout).
pub async fn connect(addr: SocketAddr, config: &HandshakeConfig) -> Result<Connection, HandshakeError> {
    let deadline = Instant::now() + config.handshake_timeout;
    let stream = within(deadline, "connect", TcpStream::connect(addr)).await??;
    connector(stream, config, deadline).await
}

/// Runs the connector's side of the handshake on an open stream.
pub async fn connect_stream(stream: TcpStream, config: &HandshakeConfig) -> Result<Connection, HandshakeError> {
    connector(stream, config, Instant::now() + config.handshake_timeout).await
}

/// Runs the acceptor's side of the handshake on an accepted stream.
pub async fn accept_stream(stream: TcpStream, config: &HandshakeConfig) -> Result<Connection, HandshakeError> {
    acceptor(stream, config, Instant::now() + config.handshake_timeout).await
}

/// The frames of a connection being opened.
struct Handshaking {
    reader: FramedRead<OwnedReadHalf, FrameCodec>,
    writer: FramedWrite<OwnedWriteHalf, FrameCodec>,
    deadline: Instant,
}

impl Handshaking {
    fn new(read: OwnedReadHalf, write: OwnedWriteHalf, deadline: Instant) -> Handshaking {
        Handshaking {
            reader: FramedRead::new(read, FrameCodec::new(HANDSHAKE_FRAME_BYTES_MAX)),
            writer: FramedWrite::new(write, FrameCodec::new(HANDSHAKE_FRAME_BYTES_MAX)),
            deadline,
        }
    }

    /// Sends `step`, returning its encoding (part of what the MACs cover).
    async fn send(&mut self, step: &Step) -> Result<Bytes, HandshakeError> {
        let bytes = Bytes::from(codec::encode(step).map_err(WireError::Codec)?);
        within(self.deadline, step.kind(), self.writer.send(Frame::Handshake(bytes.clone()))).await??;
        Ok(bytes)
    }

    /// Receives the next step, with its encoding.
    async fn recv(&mut self, step: &'static str) -> Result<(Step, Bytes), HandshakeError> {
        let bytes = match within(self.deadline, step, self.reader.next()).await? {
            None => return Err(HandshakeError::Closed { step }),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(Frame::Handshake(bytes))) => bytes,
            Some(Ok(other)) => return Err(HandshakeError::Unexpected { step, got: other.kind() }),
        };
        let decoded = codec::decode(&bytes).map_err(|source| HandshakeError::Malformed { step, source })?;
        Ok((decoded, bytes))
    }

    fn established(self, peer: PeerInfo, wire: WireConfig) -> Connection {
        let Handshaking { mut reader, mut writer, .. } = self;
        reader.decoder_mut().set_frame_bytes_max(wire.frame_bytes_max);
        writer.encoder_mut().set_frame_bytes_max(wire.frame_bytes_max);
        Connection::new(peer, reader, writer, wire)
    }
}

async fn connector(
    stream: TcpStream,
    config: &HandshakeConfig,
    deadline: Instant,
) -> Result<Connection, HandshakeError> {
    config.wire.validate()?;
    stream.set_nodelay(true)?;
    let addr = stream.peer_addr()?;
    let (mut read, mut write) = stream.into_split();
    within(deadline, "preamble", write_preamble(&mut write)).await??;
    let theirs = within(deadline, "preamble", read_preamble(&mut read)).await??;
    check_version(theirs)?;
    let mut hs = Handshaking::new(read, write, deadline);

    let hello =
        Step::Hello { node: config.node, incarnation: config.incarnation, program: config.program, nonce: nonce()? };
    let hello = hs.send(&hello).await?;
    let challenge = match hs.recv("challenge").await? {
        (Step::Challenge { .. }, bytes) => bytes,
        (other, _) => return Err(HandshakeError::Unexpected { step: "challenge", got: other.kind() }),
    };
    let proof = keyed(&config.secret, CONNECT_LABEL, &[&hello, &challenge]).finalize().into_bytes().into();
    hs.send(&Step::Proof { mac: proof }).await?;
    let (node, incarnation, program) = match hs.recv("welcome").await? {
        (Step::Welcome { node, incarnation, program, mac }, _) => {
            let body = welcome_body(node, incarnation, program)?;
            keyed(&config.secret, ACCEPT_LABEL, &[&hello, &challenge, &body])
                .verify_slice(&mac)
                .map_err(|_| HandshakeError::AuthFailed)?;
            (node, incarnation, program)
        }
        (Step::Refused, _) => return Err(HandshakeError::AuthRefused),
        (other, _) => return Err(HandshakeError::Unexpected { step: "welcome", got: other.kind() }),
    };
    if program != config.program {
        return Err(HandshakeError::ProgramMismatch { ours: config.program, theirs: program });
    }
    Ok(hs.established(PeerInfo { node, incarnation, program, addr }, config.wire))
}

async fn acceptor(
    stream: TcpStream,
    config: &HandshakeConfig,
    deadline: Instant,
) -> Result<Connection, HandshakeError> {
    config.wire.validate()?;
    stream.set_nodelay(true)?;
    let addr = stream.peer_addr()?;
    let (mut read, mut write) = stream.into_split();
    // A peer whose first bytes are not the magic gets no answer at all.
    let theirs = within(deadline, "preamble", read_preamble(&mut read)).await??;
    within(deadline, "preamble", write_preamble(&mut write)).await??;
    check_version(theirs)?;
    let mut hs = Handshaking::new(read, write, deadline);

    let (node, incarnation, program, hello) = match hs.recv("hello").await? {
        (Step::Hello { node, incarnation, program, .. }, bytes) => (node, incarnation, program, bytes),
        (other, _) => return Err(HandshakeError::Unexpected { step: "hello", got: other.kind() }),
    };
    let challenge = hs.send(&Step::Challenge { nonce: nonce()? }).await?;
    let proof = match hs.recv("proof").await? {
        (Step::Proof { mac }, _) => mac,
        (other, _) => return Err(HandshakeError::Unexpected { step: "proof", got: other.kind() }),
    };
    if keyed(&config.secret, CONNECT_LABEL, &[&hello, &challenge]).verify_slice(&proof).is_err() {
        // Best effort: the peer learns why before the connection closes.
        let _ = hs.send(&Step::Refused).await;
        return Err(HandshakeError::AuthFailed);
    }
    let body = welcome_body(config.node, config.incarnation, config.program)?;
    let mac = keyed(&config.secret, ACCEPT_LABEL, &[&hello, &challenge, &body]).finalize().into_bytes().into();
    let welcome = Step::Welcome { node: config.node, incarnation: config.incarnation, program: config.program, mac };
    hs.send(&welcome).await?;
    // The peer is authenticated, so it learns our program (in the welcome) and refuses too.
    if program != config.program {
        return Err(HandshakeError::ProgramMismatch { ours: config.program, theirs: program });
    }
    Ok(hs.established(PeerInfo { node, incarnation, program, addr }, config.wire))
}

/// Runs `fut` until `deadline`; past it, [`HandshakeError::Timeout`] naming `step`.
async fn within<T>(deadline: Instant, step: &'static str, fut: impl Future<Output = T>) -> Result<T, HandshakeError> {
    timeout_at(deadline, fut).await.map_err(|_| HandshakeError::Timeout { step })
}

async fn write_preamble(write: &mut OwnedWriteHalf) -> Result<(), HandshakeError> {
    let mut preamble = [0u8; 12];
    preamble[..8].copy_from_slice(&MAGIC);
    preamble[8..].copy_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    write.write_all(&preamble).await?;
    Ok(())
}

/// Reads the peer's preamble and returns its protocol version; the magic is checked before
/// the version is read.
async fn read_preamble(read: &mut OwnedReadHalf) -> Result<u32, HandshakeError> {
    let eof = |e: io::Error| match e.kind() {
        io::ErrorKind::UnexpectedEof => HandshakeError::Closed { step: "preamble" },
        _ => HandshakeError::Io(e),
    };
    let mut magic = [0u8; 8];
    read.read_exact(&mut magic).await.map_err(eof)?;
    if magic != MAGIC {
        return Err(HandshakeError::BadMagic { theirs: magic });
    }
    let mut version = [0u8; 4];
    read.read_exact(&mut version).await.map_err(eof)?;
    Ok(u32::from_be_bytes(version))
}

fn check_version(theirs: u32) -> Result<(), HandshakeError> {
    if theirs == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(HandshakeError::VersionMismatch { ours: PROTOCOL_VERSION, theirs })
    }
}

fn nonce() -> Result<[u8; NONCE_BYTES], HandshakeError> {
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(HandshakeError::Random)?;
    Ok(nonce)
}

fn welcome_body(node: NodeId, incarnation: u64, program: u64) -> Result<Vec<u8>, HandshakeError> {
    Ok(codec::encode(&(node, incarnation, program)).map_err(WireError::Codec)?)
}

/// An HMAC-SHA256 keyed with the secret, fed `label` and each part with its length.
fn keyed(secret: &Secret, label: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    // HMAC takes keys of any length, so `new_from_slice` cannot fail.
    #[allow(clippy::expect_used)]
    let mut mac = HmacSha256::new_from_slice(secret.expose()).expect("HMAC accepts keys of any length");
    mac.update(label);
    for part in parts {
        mac.update(&(part.len() as u64).to_le_bytes());
        mac.update(part);
    }
    mac
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn config(secret: &str) -> HandshakeConfig {
        let mut c = HandshakeConfig::new(NodeId::Driver, 1, 42, Secret::from_bytes(secret).unwrap());
        c.handshake_timeout = Duration::from_secs(5);
        c
    }

    /// An acceptor that follows the protocol but signs its welcome with another key: the
    /// connector must not take it for a member.
    #[tokio::test]
    async fn a_connector_refuses_an_acceptor_that_does_not_know_the_secret() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let rogue = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (mut read, mut write) = stream.into_split();
            read_preamble(&mut read).await.unwrap();
            write_preamble(&mut write).await.unwrap();
            let mut hs = Handshaking::new(read, write, Instant::now() + Duration::from_secs(5));
            let (_, hello) = hs.recv("hello").await.unwrap();
            let challenge = hs.send(&Step::Challenge { nonce: [1; NONCE_BYTES] }).await.unwrap();
            hs.recv("proof").await.unwrap();
            let wrong = Secret::from_bytes("not-the-cluster-secret").unwrap();
            let body = welcome_body(NodeId::Driver, 1, 42).unwrap();
            let mac = keyed(&wrong, ACCEPT_LABEL, &[&hello, &challenge, &body]).finalize().into_bytes().into();
            hs.send(&Step::Welcome { node: NodeId::Driver, incarnation: 1, program: 42, mac }).await.unwrap();
        });
        let result = connect(addr, &config("the-cluster-secret")).await;
        assert!(matches!(result, Err(HandshakeError::AuthFailed)), "{result:?}");
        rogue.await.unwrap();
    }

    /// A connector that skips the proof and sends something else gets a typed error.
    #[tokio::test]
    async fn an_acceptor_refuses_a_step_out_of_order() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let rogue = tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            let (mut read, mut write) = stream.into_split();
            write_preamble(&mut write).await.unwrap();
            read_preamble(&mut read).await.unwrap();
            let mut hs = Handshaking::new(read, write, Instant::now() + Duration::from_secs(5));
            hs.send(&Step::Hello { node: NodeId::Driver, incarnation: 1, program: 42, nonce: [0; 32] }).await.unwrap();
            hs.recv("challenge").await.unwrap();
            hs.send(&Step::Challenge { nonce: [0; 32] }).await.unwrap();
        });
        let (stream, _) = listener.accept().await.unwrap();
        let result = accept_stream(stream, &config("the-cluster-secret")).await;
        assert!(matches!(result, Err(HandshakeError::Unexpected { step: "proof", got: "challenge" })), "{result:?}");
        rogue.await.unwrap();
    }

    #[test]
    fn macs_differ_by_label_and_by_parts() {
        let s = Secret::from_bytes("the-cluster-secret").unwrap();
        let a: [u8; 32] = keyed(&s, CONNECT_LABEL, &[b"ab", b"c"]).finalize().into_bytes().into();
        let b: [u8; 32] = keyed(&s, ACCEPT_LABEL, &[b"ab", b"c"]).finalize().into_bytes().into();
        let c: [u8; 32] = keyed(&s, CONNECT_LABEL, &[b"a", b"bc"]).finalize().into_bytes().into();
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert!(keyed(&s, CONNECT_LABEL, &[b"ab", b"c"]).verify_slice(&a).is_ok());
    }
}
