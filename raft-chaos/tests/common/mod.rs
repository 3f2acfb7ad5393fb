//! What the raft-chaos test binaries share: the `raft-kv` they run.

use std::path::PathBuf;
use std::sync::OnceLock;

/// The `raft-kv` under test, built once per test binary if need be.
pub fn raft_kv() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("RAFT_KV_BIN") {
            return bin.into();
        }
        // TARGET/debug/deps/TEST-HASH -> TARGET
        let exe = std::env::current_exe().expect("the test's path");
        let target = exe.ancestors().nth(3).expect("TARGET/debug/deps/TEST-HASH").join("raft-chaos-node");
        let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut build = std::process::Command::new(env!("CARGO"));
        build.current_dir(&workspace).args(["build", "-p", "raft-kv-example", "--bin", "raft-kv"]);
        build.arg("--target-dir").arg(&target);
        if !cfg!(feature = "rocksdb") {
            build.arg("--no-default-features");
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "cargo build of raft-kv failed: {status}");
        target.join("debug").join("raft-kv")
    })
    .clone()
}
