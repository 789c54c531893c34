//! # dstream-tcp
//!
//! The TCP runtime of dstream: the same driver and worker state machines as every other mode,
//! run as separate processes that talk over TCP (tokio), with length-prefixed frames, a
//! handshake carrying the protocol version and the program fingerprint, and heartbeats.
//!
//! This crate is a placeholder for that runtime; it has no API yet.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
