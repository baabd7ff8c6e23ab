//! Our Director, fed the harness's real bacula-dir.conf unchanged, against
//! the real Bacula 9.6 FD and SD: `status client=...` and `status storage=...`.

use baculink_interop::{probe, require_peers, Harness, OurDaemon};

fn run(mode: &str) {
    let h = Harness::start(mode, "fd sd", &[]);
    let ours = OurDaemon::start("dir", &h.etc("bacula-dir.conf"), h.dir_port, h.path());
    let console = h.etc("bconsole.conf");

    let fd = probe(&console, &["--command", "status client=bacula-fd"]);
    assert_eq!(
        fd.code,
        0,
        "{}\n{}\n{}",
        fd.stderr,
        ours.log_text(),
        h.logs()
    );
    let reply = fd.json["reply"].as_str().unwrap_or_default();
    assert!(
        reply.contains("Connecting to Client bacula-fd at 127.0.0.1:"),
        "{reply}"
    );
    assert!(reply.contains("bacula-fd Version: 9.6.7"), "{reply}");
    let connected = if mode == "clear" {
        "Director connected at"
    } else {
        "Director connected using TLS at"
    };
    assert!(reply.contains(connected), "{reply}");

    let sd = probe(&console, &["--command", "status storage=File1"]);
    assert_eq!(
        sd.code,
        0,
        "{}\n{}\n{}",
        sd.stderr,
        ours.log_text(),
        h.logs()
    );
    let reply = sd.json["reply"].as_str().unwrap_or_default();
    assert!(
        reply.contains("Connecting to Storage daemon File1 at 127.0.0.1:"),
        "{reply}"
    );
    assert!(reply.contains("bacula-sd Version: 9.6.7"), "{reply}");
    assert!(reply.contains("Device status:"), "{reply}");

    // Our director logged each outgoing link with its mode.
    let log = ours.log_text();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn our_director_to_real_fd_and_sd_clear() {
    if require_peers("bacula") {
        run("clear");
    }
}

#[test]
fn our_director_to_real_fd_and_sd_tls() {
    if require_peers("bacula") {
        run("tls");
    }
}

#[test]
fn config_error_is_reported_with_file_and_line() {
    if !require_peers("bacula") {
        return;
    }
    let h = Harness::start("clear", "", &[]);
    let conf = h.etc("bacula-dir.conf");
    let good = std::process::Command::new(baculink_interop::baculink_bin())
        .args(["dir", "-t", "-c"])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let text = std::fs::read_to_string(&conf).unwrap();
    let broken = text.replacen(
        "Maximum Concurrent Jobs = 20",
        "Maximum Concurrent Jobs = twenty",
        1,
    );
    let line = broken.lines().position(|l| l.contains("twenty")).unwrap() + 1;
    let bad = h.etc("broken-dir.conf");
    std::fs::write(&bad, broken).unwrap();
    let out = std::process::Command::new(baculink_interop::baculink_bin())
        .args(["dir", "-t", "-c"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("broken-dir.conf:{line}")), "{err}");
}
