//! The workspace's example binaries, as `cargo test --workspace` builds them.
// Each test target uses a part.
#![allow(dead_code)]

use std::path::PathBuf;

/// The path of example `name`, failing the test with how to build it when it is missing.
pub fn example_binary(name: &str) -> PathBuf {
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap().to_path_buf();
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} not built: run `cargo test --workspace` (it builds the examples)",
        path.display()
    );
    path
}
