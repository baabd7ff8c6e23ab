//! Our Director running jobs against the real Bacula 9.6 FD and SD: the
//! harness's bacula-dir.conf unchanged, our console piping commands.
//!
//! * backup + restore in clear text and in certificate TLS: "Backup OK",
//!   "Restore OK", `list jobs` / `list files`, and the restored tree equal
//!   to the source (contents, modes, mtimes, symlinks);
//! * the real FD killed in the middle of a backup: the job ends in error
//!   with a clear message, and after the FD is restarted the next job runs.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use baculink_interop::{baculink_bin, port_listening, require_peers, Harness, OurDaemon};

/// Runs `baculink console -n` with these commands (then `quit`); its output.
fn console(h: &Harness, cmds: &[&str], limit: Duration) -> String {
    let mut child = Command::new(baculink_bin())
        .args(["console", "-n", "-c"])
        .arg(h.etc("bconsole.conf"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start baculink console");
    {
        let mut stdin = child.stdin.take().expect("console stdin");
        let mut text = cmds.join("\n");
        text.push_str("\nquit\n");
        stdin.write_all(text.as_bytes()).expect("write commands");
    }
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().expect("poll console").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("console output");
            panic!(
                "console did not finish {cmds:?} within {limit:?}:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("console output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "console failed:\n{text}");
    text
}

/// Sets a file's or directory's mtime (no symlink following needed here).
fn set_mtime(p: &Path, secs: u64) {
    let f = std::fs::File::open(p).expect("open for mtime");
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .expect("set mtime");
}

/// A small tree with what a restore must reproduce: contents, modes,
/// mtimes, an empty file, relative and absolute symlinks, nested dirs.
fn make_tree(root: &Path) {
    let sub = root.join("sub");
    let deep = sub.join("dir");
    std::fs::create_dir_all(&deep).unwrap();
    let file = |p: PathBuf, data: &[u8], mode: u32, mtime: u64| {
        std::fs::write(&p, data).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        set_mtime(&p, mtime);
    };
    file(
        root.join("hello.txt"),
        b"hello from baculink\n",
        0o644,
        1_600_000_000,
    );
    file(
        root.join("run.sh"),
        b"#!/bin/sh\necho hi\n",
        0o755,
        1_600_000_100,
    );
    file(
        root.join("secret.txt"),
        b"top secret\n",
        0o600,
        1_600_000_200,
    );
    file(root.join("empty"), b"", 0o644, 1_600_000_300);
    let big: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    file(root.join("data.bin"), &big, 0o640, 1_600_000_400);
    let numbers: String = (1..5000).map(|i| format!("{i}\n")).collect();
    file(
        deep.join("numbers.txt"),
        numbers.as_bytes(),
        0o644,
        1_600_000_500,
    );
    std::os::unix::fs::symlink("../hello.txt", sub.join("rel-link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", sub.join("abs-link")).unwrap();
    std::fs::set_permissions(&deep, std::fs::Permissions::from_mode(0o750)).unwrap();
    set_mtime(&deep, 1_600_001_000);
    set_mtime(&sub, 1_600_002_000);
    set_mtime(root, 1_600_003_000);
}

/// Every path under `root` (itself included), sorted.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let p = out[i].clone();
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            let mut kids: Vec<PathBuf> = std::fs::read_dir(&p)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            kids.sort();
            out.extend(kids);
        }
        i += 1;
    }
    out
}

/// Asserts that `restored` reproduces `src` (directory mtimes only when
/// `dir_mtimes`: restoring several jobs, files of a later job touch
/// directories restored from an earlier one).
fn assert_same_tree(src: &Path, restored: &Path, dir_mtimes: bool) {
    let a = walk(src);
    let b = walk(restored);
    let rel = |root: &Path, v: &[PathBuf]| -> Vec<PathBuf> {
        v.iter()
            .map(|p| p.strip_prefix(root).unwrap().to_path_buf())
            .collect()
    };
    assert_eq!(rel(src, &a), rel(restored, &b), "same paths");
    for p in &a {
        let q = restored.join(p.strip_prefix(src).unwrap());
        let (m1, m2) = (
            std::fs::symlink_metadata(p).unwrap(),
            std::fs::symlink_metadata(&q).unwrap(),
        );
        assert_eq!(m1.file_type(), m2.file_type(), "{}", q.display());
        if m1.file_type().is_symlink() {
            assert_eq!(
                std::fs::read_link(p).unwrap(),
                std::fs::read_link(&q).unwrap(),
                "{}",
                q.display()
            );
            continue;
        }
        assert_eq!(
            m1.mode() & 0o7777,
            m2.mode() & 0o7777,
            "mode of {}",
            q.display()
        );
        if dir_mtimes || !m1.is_dir() {
            assert_eq!(m1.mtime(), m2.mtime(), "mtime of {}", q.display());
        }
        if m1.is_file() {
            assert_eq!(
                std::fs::read(p).unwrap(),
                std::fs::read(&q).unwrap(),
                "contents of {}",
                q.display()
            );
        }
    }
}

fn backup_and_restore(mode: &str) {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir(&src).unwrap();
    make_tree(&src);
    // Incremental backups compare ctimes with the Full's start time (whole
    // seconds): let the tree's ctimes be strictly older.
    std::thread::sleep(Duration::from_millis(1100));
    let src = src.canonicalize().unwrap();
    let h = Harness::start(mode, "fd sd", &[("BACKUP_SRC", src.display().to_string())]);
    let ours = OurDaemon::start("dir", &h.etc("bacula-dir.conf"), h.dir_port, h.path());
    let ctx = |what: &str, out: &str| {
        format!(
            "{what}:\n{out}\n--- our director\n{}\n{}",
            ours.log_text(),
            h.logs()
        )
    };

    let out = console(
        &h,
        &[
            "run job=BackupData yes",
            "wait",
            "messages",
            "list jobs",
            "list files jobid=1",
        ],
        Duration::from_secs(90),
    );
    assert!(out.contains("Job queued. JobId=1"), "{}", ctx("run", &out));
    assert!(
        out.contains("Termination:            Backup OK"),
        "{}",
        ctx("backup", &out)
    );
    assert!(
        out.contains("FD Files Written:       11"),
        "{}",
        ctx("backup", &out)
    );
    assert!(
        out.contains("bacula-sd JobId 1: Labeled new Volume"),
        "{}",
        ctx("backup", &out)
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("|     1 | BackupData")
                && l.trim_end().ends_with("| T         |")),
        "{}",
        ctx("list jobs", &out)
    );
    for name in [
        "hello.txt",
        "sub/dir/numbers.txt",
        "sub/rel-link",
        "sub/dir/",
    ] {
        let path = format!("| {}/{name}", src.display());
        assert!(
            out.contains(&path),
            "{path} missing\n{}",
            ctx("list files", &out)
        );
    }

    let target = work.path().join("restored");
    let restore = format!("restore jobid=1 where={} all done yes", target.display());
    let out = console(
        &h,
        &[&restore, "wait", "messages", "list jobs"],
        Duration::from_secs(90),
    );
    assert!(
        out.contains("Job queued. JobId=2"),
        "{}",
        ctx("restore", &out)
    );
    assert!(
        out.contains("Termination:            Restore OK"),
        "{}",
        ctx("restore", &out)
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("|     2 | RestoreData") && l.contains("| R ")),
        "{}",
        ctx("list jobs", &out)
    );
    let restored = target.join(src.strip_prefix("/").unwrap());
    assert_same_tree(&src, &restored, true);

    // An Incremental after changes, then the newest version of everything
    // (`restore current`: the Full and the Incremental).
    std::thread::sleep(Duration::from_millis(1100));
    let file = |p: PathBuf, data: &[u8], mtime: u64| {
        std::fs::write(&p, data).unwrap();
        set_mtime(&p, mtime);
    };
    file(src.join("hello.txt"), b"hello again\n", 1_700_000_000);
    file(src.join("sub/new.txt"), b"new file\n", 1_700_000_100);
    set_mtime(&src.join("sub"), 1_700_000_200);
    let out = console(
        &h,
        &[
            "run job=BackupData level=Incremental yes wait",
            "messages",
            "list files jobid=3",
        ],
        Duration::from_secs(90),
    );
    assert!(
        out.contains("Backup Level:           Incremental"),
        "{}",
        ctx("incr", &out)
    );
    assert!(
        out.contains("Termination:            Backup OK"),
        "{}",
        ctx("incr", &out)
    );
    assert!(out.contains("/sub/new.txt"), "{}", ctx("incr", &out));
    assert!(
        !out.contains("/data.bin"),
        "{}",
        ctx("unchanged file in the Incremental", &out)
    );
    let target = work.path().join("restored-latest");
    let restore = format!("restore current where={} all done yes", target.display());
    let out = console(&h, &[&restore, "wait", "messages"], Duration::from_secs(90));
    assert!(
        out.contains("Building directory tree for JobId(s) 1,3 ..."),
        "{}",
        ctx("restore current", &out)
    );
    assert!(
        out.contains("Termination:            Restore OK"),
        "{}",
        ctx("restore 1,3", &out)
    );
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()), false);
    let log = ours.log_text();
    assert!(!log.contains("panicked"), "{log}");
}

/// All four of ours (Director, FD, SD, console) on the harness's configs.
fn all_ours(mode: &str) {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir(&src).unwrap();
    make_tree(&src);
    let src = src.canonicalize().unwrap();
    let h = Harness::start(mode, "", &[("BACKUP_SRC", src.display().to_string())]);
    let sd = OurDaemon::start("sd", &h.etc("bacula-sd.conf"), h.sd_port, h.path());
    let fd = OurDaemon::start("fd", &h.etc("bacula-fd.conf"), h.fd_port, h.path());
    let dir = OurDaemon::start("dir", &h.etc("bacula-dir.conf"), h.dir_port, h.path());
    let logs = || {
        format!(
            "--- dir\n{}\n--- fd\n{}\n--- sd\n{}",
            dir.log_text(),
            fd.log_text(),
            sd.log_text()
        )
    };
    let target = work.path().join("restored");
    let restore = format!("restore jobid=1 where={} all done yes", target.display());
    let out = console(
        &h,
        &["run job=BackupData yes wait", &restore, "wait", "messages"],
        Duration::from_secs(90),
    );
    assert!(
        out.contains("Termination:            Backup OK"),
        "{out}\n{}",
        logs()
    );
    assert!(
        out.contains("Termination:            Restore OK"),
        "{out}\n{}",
        logs()
    );
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()), true);
}

#[test]
fn backup_and_restore_all_ours_tls() {
    if require_peers("bacula") {
        all_ours("tls");
    }
}

#[test]
fn backup_and_restore_with_real_fd_and_sd_clear() {
    if require_peers("bacula") {
        backup_and_restore("clear");
    }
}

#[test]
fn backup_and_restore_with_real_fd_and_sd_tls() {
    if require_peers("bacula") {
        backup_and_restore("tls");
    }
}

/// Size of the first volume file the SD writes (0 while none).
fn volume_size(h: &Harness) -> u64 {
    std::fs::metadata(h.path().join("volumes/Vol-0001"))
        .map(|m| m.len())
        .unwrap_or(0)
}

#[test]
fn file_daemon_killed_mid_backup_fails_the_job_and_the_next_runs() {
    if !require_peers("bacula") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir(&src).unwrap();
    make_tree(&src);
    // Big enough to still be sending when it is killed (sparse: no disk use).
    let big = src.join("big.bin");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(8 << 30)
        .unwrap();
    let src = src.canonicalize().unwrap();
    let h = Harness::start(
        "clear",
        "fd sd",
        &[("BACKUP_SRC", src.display().to_string())],
    );
    let ours = OurDaemon::start("dir", &h.etc("bacula-dir.conf"), h.dir_port, h.path());

    let out = console(&h, &["run job=BackupData yes"], Duration::from_secs(30));
    assert!(out.contains("Job queued. JobId=1"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while volume_size(&h) < 20 << 20 {
        assert!(
            Instant::now() < deadline,
            "the backup never got going\n{}\n{}",
            ours.log_text(),
            h.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Live progress while data moves (the Director polls the FD).
    std::thread::sleep(Duration::from_millis(2500));
    let out = console(
        &h,
        &[".jobprogress jobid=1", "status dir"],
        Duration::from_secs(30),
    );
    assert!(out.contains("Running=1"), "{out}");
    let bytes: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("JobBytes="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(bytes > 0, "no progress reported:\n{out}");
    assert!(out.contains("BackupData        is running"), "{out}");

    let pid_file = h.path().join("run/bacula-fd.pid");
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_string();
    let killed = Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    assert!(killed.success());

    let started = Instant::now();
    let out = console(
        &h,
        &["wait jobid=1", "messages", "list jobs"],
        Duration::from_secs(100),
    );
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "the failed job took too long to end"
    );
    assert!(
        out.contains("Fatal error: Network error with FD during Backup"),
        "{out}\n{}",
        ours.log_text()
    );
    assert!(
        out.contains("Termination:            *** Backup Error ***"),
        "{out}"
    );
    assert!(out.contains("JobStatus=Error"), "{out}");

    // Restart the FD the way start-bacula.sh does; the harness stops it.
    std::fs::remove_file(&big).unwrap();
    let log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(h.path().join("log/bacula-fd.out"))
        .unwrap();
    let mut fd = Command::new("/usr/sbin/bacula-fd")
        .arg("-f")
        .arg("-c")
        .arg(h.etc("bacula-fd.conf"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("restart bacula-fd");
    std::fs::write(&pid_file, format!("{}\n", fd.id())).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !port_listening(h.fd_port) {
        assert!(Instant::now() < deadline, "bacula-fd did not come back");
        std::thread::sleep(Duration::from_millis(100));
    }

    let out = console(
        &h,
        &["run job=BackupData yes", "wait", "messages", "status dir"],
        Duration::from_secs(90),
    );
    assert!(out.contains("Job queued. JobId=2"), "{out}");
    assert!(
        out.contains("Termination:            Backup OK"),
        "{out}\n{}\n{}",
        ours.log_text(),
        h.logs()
    );
    assert!(out.contains("No Jobs running."), "{out}");
    let log = ours.log_text();
    assert!(!log.contains("panicked"), "{log}");
    // The harness stops the restarted FD by its pid file; then reap it.
    drop(ours);
    drop(h);
    let _ = fd.wait();
}
