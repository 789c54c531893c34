//! Runnable dstream programs live next to this crate as examples: `cargo run --release --example NAME`.
#![forbid(unsafe_code)]
