//! Benchmarks of dstream; see BENCHMARKS.md for the figures and the commands.
#![forbid(unsafe_code)]
