//! `baculink probe` against the real Bacula 9.6 Director, FD and SD.

use baculink_interop::{probe, require_peers, Harness};

fn assert_version_reply(run: &baculink_interop::ProbeRun, h: &Harness) {
    assert_eq!(run.code, 0, "probe failed: {}\n{}", run.stderr, h.logs());
    let reply = run.json["reply"].as_str().unwrap_or_default();
    assert!(reply.contains("Version: 9.6.7"), "version reply: {reply:?}");
}

#[test]
fn console_login_clear() {
    if !require_peers("bacula") {
        return;
    }
    let h = Harness::start("clear", "dir", &[]);
    let run = probe(&h.etc("bconsole.conf"), &["--command", "version"]);
    assert_version_reply(&run, &h);
    assert_eq!(run.json["mode"], "clear");
    assert_eq!(run.json["dialect"], "9.6");
    assert_eq!(run.json["peer_version"], 103);
    assert!(run.json["tls_version"].is_null());
}

#[test]
fn console_login_tls() {
    if !require_peers("bacula") {
        return;
    }
    let h = Harness::start("tls", "dir", &[]);
    let run = probe(&h.etc("bconsole.conf"), &["--command", "version"]);
    assert_version_reply(&run, &h);
    assert_eq!(run.json["mode"], "tls");
    assert_eq!(run.json["dialect"], "9.6");
    assert_eq!(run.json["tls_version"], "TLSv1.3");
    assert!(run.json["cipher"]
        .as_str()
        .unwrap_or_default()
        .starts_with("TLS_"));
    let subject = run.json["peer_subject"].as_str().unwrap_or_default();
    assert!(
        subject.contains("CN=bacula-dir"),
        "peer subject {subject:?}"
    );
    assert!(run.json["peer_days_left"].as_i64().unwrap_or(0) > 300);
}

#[test]
fn director_login_to_real_fd_and_sd_tls() {
    if !require_peers("bacula") {
        return;
    }
    let h = Harness::start("tls", "fd sd", &[]);
    let conf = h.etc("bacula-dir.conf");
    let fd = probe(&conf, &["--client", "bacula-fd", "--command", "status"]);
    assert_eq!(fd.code, 0, "probe FD failed: {}\n{}", fd.stderr, h.logs());
    assert_eq!(fd.json["mode"], "tls");
    assert_eq!(fd.json["tls_version"], "TLSv1.3");
    assert_eq!(fd.json["peer_version"], 214);
    assert!(fd.json["peer_subject"]
        .as_str()
        .unwrap_or_default()
        .contains("CN=bacula-fd"));
    let reply = fd.json["reply"].as_str().unwrap_or_default();
    assert!(
        reply.contains("Director connected using TLS"),
        "FD status: {reply}"
    );

    let sd = probe(&conf, &["--storage", "File1", "--command", "status"]);
    assert_eq!(sd.code, 0, "probe SD failed: {}\n{}", sd.stderr, h.logs());
    assert_eq!(sd.json["mode"], "tls");
    assert_eq!(sd.json["peer_version"], 306);
    assert!(sd.json["peer_subject"]
        .as_str()
        .unwrap_or_default()
        .contains("CN=bacula-sd"));
    assert!(sd.json["reply"]
        .as_str()
        .unwrap_or_default()
        .contains("bacula-sd Version: 9.6.7"));
}

#[test]
fn wrong_password_is_refused_with_its_message() {
    if !require_peers("bacula") {
        return;
    }
    let h = Harness::start(
        "tls",
        "dir",
        &[("CONSOLE_DIR_PASSWORD", "not-the-password".into())],
    );
    let run = probe(&h.etc("bconsole.conf"), &["--command", "version"]);
    assert_eq!(
        run.code, 2,
        "expected the wrong-password exit code: {}",
        run.stderr
    );
    assert!(run.stderr.contains("wrong password"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("not-the-password"),
        "the password leaked: {}",
        run.stderr
    );
}

#[test]
fn certificate_cn_not_in_allowed_cn_is_refused() {
    if !require_peers("bacula") {
        return;
    }
    let h = Harness::start("tls", "dir", &[]);
    // A console certificate from the right CA, but with a CN the director's
    // TLS Allowed CN (bconsole) does not list.
    let certs = h.path().join("certs");
    let ca = baculink_tls::certgen::Ca::load(&certs.join("ca.crt"), &certs.join("ca.key")).unwrap();
    let (c, k) = ca
        .issue(
            "intruder",
            &["localhost"],
            &["127.0.0.1".parse().unwrap()],
            30,
        )
        .unwrap();
    baculink_tls::certgen::write_pem_files(&certs, "intruder", &c, &k).unwrap();
    let conf = std::fs::read_to_string(h.etc("bconsole.conf"))
        .unwrap()
        .replace("console.crt", "intruder.pem")
        .replace("console.key", "intruder.key");
    let path = h.etc("bconsole-intruder.conf");
    std::fs::write(&path, conf).unwrap();
    let run = probe(&path, &["--command", "version"]);
    assert_eq!(
        run.code,
        5,
        "expected the CN-mismatch exit code: {}\n{}",
        run.stderr,
        h.logs()
    );
    assert!(run.stderr.contains("Allowed CN"), "{}", run.stderr);
}

#[test]
fn server_certificate_from_another_ca_fails_verification() {
    if !require_peers("bacula") {
        return;
    }
    let h = Harness::start("tls", "dir", &[]);
    let other = h.path().join("other-ca.pem");
    let ca = baculink_tls::certgen::Ca::new("unrelated CA").unwrap();
    baculink_tls::certgen::write_cert_pem(&other, &ca.cert).unwrap();
    let conf = std::fs::read_to_string(h.etc("bconsole.conf"))
        .unwrap()
        .replace(
            &format!("{}/ca.crt", h.path().join("certs").display()),
            &other.display().to_string(),
        );
    let path = h.etc("bconsole-otherca.conf");
    std::fs::write(&path, conf).unwrap();
    let run = probe(&path, &["--command", "version"]);
    assert_eq!(
        run.code, 4,
        "expected the certificate exit code: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("certificate verification failed"),
        "{}",
        run.stderr
    );
}
