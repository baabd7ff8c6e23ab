//! SIGHUP reloads TLS material (a broken file keeps the old context) and
//! SIGTERM stops a daemon cleanly (pid file removed).

use std::path::Path;
use std::time::Duration;

use baculink_interop::{free_port, probe, require_peers, OurDaemon};
use baculink_tls::certgen::{self, Ca};

fn issue(ca: &Ca, dir: &Path, name: &str, cn: &str) {
    let (c, k) = ca
        .issue(cn, &["localhost"], &["127.0.0.1".parse().unwrap()], 30)
        .unwrap();
    certgen::write_pem_files(dir, name, &c, &k).unwrap();
}

fn wait_log(d: &OurDaemon, needle: &str) -> bool {
    (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        d.log_text().contains(needle)
    })
}

#[test]
fn sighup_reloads_certificates_and_keeps_old_ones_when_broken() {
    if !require_peers("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("reload CA").unwrap();
    certgen::write_cert_pem(&d.join("ca.pem"), &ca.cert).unwrap();
    issue(&ca, d, "dir", "first-dir-cert");
    issue(&ca, d, "console", "bconsole");
    let port = free_port();
    let w = d.display();
    let conf = d.join("bacula-dir.conf");
    std::fs::write(
        &conf,
        format!(
            "Director {{\n  Name = bacula-dir\n  DIRAddress = 127.0.0.1\n  DIRport = {port}\n  Password = \"pw\"\n  \
             WorkingDirectory = \"{w}\"\n  PidDirectory = \"{w}\"\n  Messages = Daemon\n  TLS Enable = yes\n  TLS Require = yes\n  \
             TLS CA Certificate File = \"{w}/ca.pem\"\n  TLS Certificate = \"{w}/dir.pem\"\n  TLS Key = \"{w}/dir.key\"\n}}\n\
             Messages {{\n  Name = Daemon\n  console = all\n}}\n"
        ),
    )
    .unwrap();
    let con = d.join("bconsole.conf");
    std::fs::write(
        &con,
        format!(
            "Director {{\n  Name = bacula-dir\n  Address = 127.0.0.1\n  DIRport = {port}\n  Password = \"pw\"\n  TLS Enable = yes\n  \
             TLS Require = yes\n  TLS CA Certificate File = \"{w}/ca.pem\"\n  TLS Certificate = \"{w}/console.pem\"\n  \
             TLS Key = \"{w}/console.key\"\n}}\n"
        ),
    )
    .unwrap();
    let mut daemon = OurDaemon::start("dir", &conf, port, d);
    let pid_file = d.join(format!("baculink-dir.{port}.pid"));
    assert!(pid_file.exists(), "pid file written");
    let subject = |run: &baculink_interop::ProbeRun| {
        run.json["peer_subject"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };

    let before = probe(&con, &[]);
    assert_eq!(before.code, 0, "{}", before.stderr);
    assert!(subject(&before).contains("CN=first-dir-cert"));

    issue(&ca, d, "dir", "second-dir-cert");
    daemon.signal("HUP");
    assert!(
        wait_log(&daemon, "SIGHUP: reloaded"),
        "{}",
        daemon.log_text()
    );
    let after = probe(&con, &[]);
    assert_eq!(after.code, 0, "{}", after.stderr);
    assert!(
        subject(&after).contains("CN=second-dir-cert"),
        "new connections use the new certificate"
    );

    std::fs::write(d.join("dir.pem"), "not a certificate\n").unwrap();
    daemon.signal("HUP");
    assert!(
        wait_log(&daemon, "TLS reload failed"),
        "{}",
        daemon.log_text()
    );
    assert!(
        daemon.log_text().contains("dir.pem"),
        "the log names the broken file"
    );
    let still = probe(&con, &[]);
    assert_eq!(still.code, 0, "{}", still.stderr);
    assert!(
        subject(&still).contains("CN=second-dir-cert"),
        "the old context is kept"
    );

    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(10), Some(0), "{}", daemon.log_text());
    assert!(!pid_file.exists(), "pid file removed on SIGTERM");
}
