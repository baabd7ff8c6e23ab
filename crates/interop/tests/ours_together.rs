//! Our four components with one another and no certificates configured:
//! every link is TLS 1.3 PSK, and `status` shows it. The configs are the
//! ones the README's main job (`baculink demo`) writes.

use std::process::Command;

use baculink_interop::{baculink_bin, config_port, our_console, require_peers, OurDaemon};

#[test]
fn demo_then_daemons_as_processes_all_links_psk() {
    if !require_peers("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let demo = Command::new(baculink_bin())
        .args(["demo", "--big-mib", "1", "--dir"])
        .arg(d)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&demo.stdout);
    assert!(
        demo.status.success(),
        "demo failed: {out}\n{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    for link in [
        "console -> director",
        "director -> file daemon",
        "director -> storage",
    ] {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(link))
            .unwrap_or_else(|| panic!("{link}: {out}"));
        assert!(line.contains("TLS-PSK, TLSv1.3"), "{line}");
    }

    // Now the same configs, each daemon its own process, and our console.
    let dir_conf = d.join("bacula-dir.conf");
    let _dir = OurDaemon::start("dir", &dir_conf, config_port(&dir_conf, "DIRport"), d);
    let fd_conf = d.join("bacula-fd.conf");
    let _fd = OurDaemon::start("fd", &fd_conf, config_port(&fd_conf, "FDport"), d);
    let sd_conf = d.join("bacula-sd.conf");
    let _sd = OurDaemon::start("sd", &sd_conf, config_port(&sd_conf, "SDPort"), d);
    let res = our_console(
        &d.join("bconsole.conf"),
        "status dir\nstatus client=demo-fd\nstatus storage=File1\nquit\n",
    );
    let text = String::from_utf8_lossy(&res.stdout);
    assert!(
        res.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(
        text.contains("Connected with TLS-PSK TLSv1.3"),
        "console link: {text}"
    );
    // The director lists the console link; the FD and SD list the director's.
    let psk_links = text
        .lines()
        .filter(|l| l.contains("dialect 13.x, TLS-PSK, TLSv1.3 TLS_AES_128_GCM_SHA256"))
        .count();
    assert!(
        psk_links >= 3,
        "expected PSK links in status dir, client and storage:\n{text}"
    );
    assert!(text.contains("from Console \"*UserAgent*\""), "{text}");
    assert_eq!(
        text.matches("from Director \"demo-dir\"").count(),
        2,
        "{text}"
    );
    assert!(
        !text.contains("clear"),
        "no link may be clear text:\n{text}"
    );
}
