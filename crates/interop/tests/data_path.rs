//! Backup and restore through our Director, File daemon and Storage daemon,
//! each its own process reading the config files the main job writes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use baculink_interop::{
    baculink_bin, config_port, contains_bytes, demo_configs, our_console, require_peers, OurDaemon,
    RecordingProxy,
};

/// Runs our console with these commands; stdout and stderr together.
fn console(conf: &Path, cmds: &str) -> String {
    let out = our_console(conf, cmds);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn job_id(out: &str) -> u64 {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Job queued. JobId="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no job queued:\n{out}"))
}

/// Writes the demo's configs for `mode` into `d` (data in `d/data`).
fn configs(d: &Path, mode: &[&str], big_mib: &str) -> PathBuf {
    demo_configs(d, mode, big_mib);
    d.to_path_buf()
}

struct Trio {
    dir: OurDaemon,
    fd: OurDaemon,
    sd: OurDaemon,
}

fn start(d: &Path) -> Trio {
    let (dc, fc, sc) = (
        d.join("bacula-dir.conf"),
        d.join("bacula-fd.conf"),
        d.join("bacula-sd.conf"),
    );
    let sd = OurDaemon::start("sd", &sc, config_port(&sc, "SDPort"), d);
    let fd = OurDaemon::start("fd", &fc, config_port(&fc, "FDport"), d);
    let dir = OurDaemon::start("dir", &dc, config_port(&dc, "DIRport"), d);
    Trio { dir, fd, sd }
}

/// Full backup and restore of the demo tree (regular, empty and 100 MiB
/// files, nested folders, a symlink) in PSK, certificate and clear modes;
/// the demo itself compares the restored tree.
#[test]
fn backup_restore_byte_identical_in_every_mode() {
    if !require_peers("openssl") {
        return;
    }
    for mode in [&[][..], &["--certs"][..], &["--clear"][..]] {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(baculink_bin())
            .args(["demo", "--big-mib", "100", "--dir"])
            .arg(dir.path())
            .args(mode)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{mode:?}: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("Termination:            Backup OK"),
            "{mode:?}: {text}"
        );
        assert!(
            text.contains("Termination:            Restore OK"),
            "{mode:?}: {text}"
        );
        assert!(
            text.contains("identical (contents, modes, mtimes, symlinks)"),
            "{mode:?}: {text}"
        );
        let want = match mode.first() {
            None => "TLS-PSK, TLSv1.3",
            Some(&"--certs") => "certificate TLS, TLSv1.3",
            _ => "dialect 13.x, clear",
        };
        let links = text
            .lines()
            .filter(|l| l.contains(" -> ") && l.contains(want))
            .count();
        assert!(links >= 4, "{mode:?}: every link {want}:\n{text}");
    }
}

/// TLS protects the network only: the volume holds the file data in clear,
/// while nothing of it crosses the network in clear (all traffic to the
/// Storage daemon, Director's and File daemon's, goes through a recording
/// proxy).
#[test]
fn volume_in_clear_network_encrypted() {
    if !require_peers("openssl") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = configs(tmp.path(), &[], "1");
    let marker = b"baculink demo data: backed up over TLS, stored in clear.";
    let sd_conf = d.join("bacula-sd.conf");
    let proxy = RecordingProxy::start(config_port(&sd_conf, "SDPort"));
    let dir_conf = d.join("bacula-dir.conf");
    let text = std::fs::read_to_string(&dir_conf).unwrap();
    let sd_port = config_port(&sd_conf, "SDPort");
    std::fs::write(
        &dir_conf,
        text.replace(
            &format!("SDPort = {sd_port}"),
            &format!("SDPort = {}", proxy.port),
        ),
    )
    .unwrap();
    let trio = start(&d);
    let con = d.join("bconsole.conf");
    let out = console(&con, "run job=BackupData yes\nwait\nmessages\nquit\n");
    assert!(
        out.contains("Backup OK"),
        "{out}\n{}\n{}",
        trio.fd.log_text(),
        trio.sd.log_text()
    );
    let wire = proxy.bytes();
    assert!(
        wire.len() > 1 << 20,
        "the data went through the proxy ({} bytes)",
        wire.len()
    );
    assert!(
        !contains_bytes(&wire, marker),
        "file content crossed the network in clear"
    );
    assert!(
        !contains_bytes(&wire, b"README.txt"),
        "file names crossed the network in clear"
    );
    let volume = std::fs::read_dir(d.join("volumes"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read(e.path()).unwrap())
        .find(|v| contains_bytes(v, marker));
    assert!(volume.is_some(), "the volume holds the file data in clear");
    drop(trio);
}

/// A job whose File daemon is killed mid-backup ends in error in the
/// Director with a clear message, and the next job runs fine.
#[test]
fn fd_killed_mid_backup_then_next_job_ok() {
    if !require_peers("openssl") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = configs(tmp.path(), &[], "1500");
    let mut trio = start(&d);
    let con = d.join("bconsole.conf");
    let id = job_id(&console(&con, "run job=BackupData yes\nquit\n"));
    // Kill the FD once data flows to the SD.
    let t0 = Instant::now();
    loop {
        let vol: u64 = std::fs::read_dir(d.join("volumes"))
            .map(|r| {
                r.flatten()
                    .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0);
        if vol > 50 << 20 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no data reached the volume\n{}",
            trio.fd.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    trio.fd.signal("KILL");
    let out = console(&con, &format!("wait jobid={id}\nmessages\nquit\n"));
    assert!(
        out.contains("Backup Error") || out.contains("Fatal error"),
        "job {id} must end in error:\n{out}"
    );
    assert!(!out.contains("Backup OK"), "{out}");
    let status = console(&con, "list jobs\nquit\n");
    assert!(
        status.contains(&format!("| {id:>5} |")) || status.contains(&id.to_string()),
        "{status}"
    );
    // A new FD from the same config; the next job is fine.
    let fc = d.join("bacula-fd.conf");
    trio.fd = OurDaemon::start("fd", &fc, config_port(&fc, "FDport"), &d);
    std::fs::remove_file(d.join("data/big.bin")).unwrap();
    let out = console(&con, "run job=BackupData yes\nwait\nmessages\nquit\n");
    assert!(
        out.contains("Backup OK"),
        "the next job after the failure:\n{out}\n{}",
        trio.dir.log_text()
    );
}
