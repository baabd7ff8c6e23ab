//! The TLS policy directives reach real connections through our daemons:
//! a Director resource's `TLS Cipher Suites` and `TLS Protocol` decide the
//! PSK session a console gets.

use baculink_interop::{free_port, probe, require_peers, OurDaemon};

fn director_with(
    dir_tls: &str,
    console_tls: &str,
) -> (tempfile::TempDir, OurDaemon, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let (conf, con) = baculink_interop::director_configs(d, port, dir_tls, console_tls);
    let daemon = OurDaemon::start("dir", &conf, port, d);
    (dir, daemon, con)
}

#[test]
fn psk_cipher_suites_directive_is_used() {
    if !require_peers("openssl") {
        return;
    }
    let (_d, daemon, con) =
        director_with("  TLS Cipher Suites = TLS_CHACHA20_POLY1305_SHA256\n", "");
    let run = probe(&con, &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, daemon.log_text());
    assert_eq!(run.json["mode"], "psk");
    assert_eq!(run.json["cipher"], "TLS_CHACHA20_POLY1305_SHA256");
}

#[test]
fn psk_groups_directive_is_used() {
    if !require_peers("openssl") {
        return;
    }
    let (_d, daemon, con) = director_with("  TLS Groups = secp384r1\n", "");
    let run = probe(&con, &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, daemon.log_text());
    assert_eq!(run.json["mode"], "psk");
    assert_eq!(run.json["group"], "secp384r1");
    // The console's side of the directive: no group in common is refused.
    let (_d, _daemon, con) = director_with("  TLS Groups = secp384r1\n", "  TLS Groups = X25519\n");
    let run = probe(&con, &[]);
    assert_ne!(run.code, 0, "no common group, yet logged in: {}", run.json);
}

#[test]
fn psk_protocol_max_tls12_negotiates_tls12() {
    if !require_peers("openssl") {
        return;
    }
    let (_d, daemon, con) = director_with("  TLS Protocol = \"max TLSv1.2\"\n", "");
    let run = probe(&con, &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, daemon.log_text());
    assert_eq!(run.json["mode"], "psk");
    assert_eq!(run.json["tls_version"], "TLSv1.2");
    assert_eq!(run.json["cipher"], "PSK-AES256-CBC-SHA");
}

#[test]
fn psk_protocol_mismatch_is_refused() {
    if !require_peers("openssl") {
        return;
    }
    let (_d, _daemon, con) = director_with(
        "  TLS Protocol = \"max TLSv1.2\"\n",
        "  TLS Protocol = TLSv1.3\n",
    );
    let run = probe(&con, &[]);
    assert_ne!(
        run.code, 0,
        "a TLS 1.3-only console must not get in over TLS 1.2"
    );
}

#[test]
fn psk_suites_without_sha256_refused_at_load() {
    if !require_peers("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("bacula-dir.conf");
    std::fs::write(
        &conf,
        "Director {\n  Name = d\n  Password = \"pw\"\n  TLS Cipher Suites = TLS_AES_256_GCM_SHA384\n  Messages = M\n}\nMessages {\n  Name = M\n  console = all\n}\n",
    )
    .unwrap();
    let out = std::process::Command::new(baculink_interop::baculink_bin())
        .args(["dir", "-t", "-c"])
        .arg(&conf)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("SHA-256") || err.contains("SHA256"), "{err}");
    assert!(err.contains("bacula-dir.conf:"), "names file:line: {err}");
}
