//! What the tests that run the examples' executables share.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

/// The example `name`, built beside the running test (`target/<profile>/examples/`):
/// `cargo test -p dstream-examples` builds the examples, a test run alone (`--test NAME`)
/// does not, so build them first (`cargo build -p dstream-examples --examples`).
pub(crate) fn executable(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<this test> -> target/<profile>/examples/<name>
    let path = exe.parent().and_then(|deps| deps.parent()).unwrap().join("examples").join(name);
    assert!(
        path.exists(),
        "{} is not built: `cargo test -p dstream-examples` builds the examples, or run \
         `cargo build -p dstream-examples --examples` before this test alone",
        path.display()
    );
    path
}
