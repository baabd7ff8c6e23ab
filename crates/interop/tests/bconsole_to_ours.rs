//! The real Bacula 9.6 `bconsole` logs in to our Director, which reads the
//! harness's real bacula-dir.conf unchanged.

use baculink_interop::{require_peers, Harness, OurDaemon};

fn run(mode: &str) {
    let h = Harness::start(mode, "", &[]);
    let ours = OurDaemon::start("dir", &h.etc("bacula-dir.conf"), h.dir_port, h.path());
    let out = h.bconsole(&["version", "status dir"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bconsole failed: {text}\n{}",
        ours.log_text()
    );
    assert!(
        text.contains("bacula-dir Version: "),
        "version answer: {text}"
    );
    assert!(text.contains("(baculink)"), "our director answered: {text}");
    if mode == "clear" {
        assert!(text.contains("Console connected at"), "{text}");
        assert!(text.contains("dialect 9.6, clear"), "{text}");
    } else {
        assert!(text.contains("Console connected using TLS at"), "{text}");
        assert!(
            text.contains("dialect 9.6, certificate TLS, TLSv1.3"),
            "{text}"
        );
        assert!(text.contains("CN=bconsole"), "{text}");
    }
}

#[test]
fn real_bconsole_clear() {
    if require_peers("bacula") {
        run("clear");
    }
}

#[test]
fn real_bconsole_tls() {
    if require_peers("bacula") {
        run("tls");
    }
}
