//! # dstream-tcp
//!
//! The wire layer of dstream's TCP runtime (in progress): [`frame`], frames over tokio-util's
//! `LengthDelimitedCodec` with a hard [`WireConfig::frame_bytes_max`] and typed
//! [`WireError`]s; [`chunk`], messages longer than a frame in chunks, reassembled within
//! [`WireConfig::message_bytes_max`]. The handshake, the listener and the driver and worker
//! processes do not exist yet.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod chunk;
pub mod frame;

pub use chunk::{message_frames, Inbound, Reassembler};
pub use frame::{Frame, FrameCodec, WireConfig, WireError};
