//! The protocol core stays sans-IO: no tokio, no OpenSSL in its dependency tree.

use std::process::Command;

#[test]
fn proto_depends_on_neither_tokio_nor_openssl() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-e",
            "normal,build",
            "-p",
            "baculink-proto",
            "--manifest-path",
            manifest,
        ])
        .output()
        .expect("run cargo tree");
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(tree.contains("baculink-proto"), "unexpected tree: {tree}");
    for banned in ["tokio", "openssl"] {
        assert!(
            !tree.contains(banned),
            "baculink-proto depends on {banned}:\n{tree}"
        );
    }
}
