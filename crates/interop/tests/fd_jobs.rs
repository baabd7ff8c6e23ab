//! Our File daemon as a drop-in for the real one: the real Bacula 9.6
//! Director and Storage daemon (driven by the real bconsole) run a Full
//! backup of a test tree through it and a restore back, in clear text and
//! with certificate TLS on every link. The restored tree must equal the
//! source byte for byte, with modes, owners, mtimes and symlink targets.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use baculink_interop::{require_peers, Harness, OurDaemon};

/// Deterministic pseudo-random bytes (xorshift64), incompressible enough.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.extend_from_slice(&seed.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn set_mtime(p: &Path, secs: u64) {
    // `touch -h` sets the link itself for symlinks, the object otherwise.
    let ok = Command::new("touch")
        .arg("-h")
        .arg("-d")
        .arg(format!("@{secs}"))
        .arg(p)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "touch {}", p.display());
}

/// Builds the test tree: empty file, a few MiB of noise, nested
/// directories, symlinks (relative, absolute, dangling), a hard link pair,
/// a FIFO, a name with spaces, varied modes and mtimes.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::create_dir_all(root.join("empty dir")).unwrap();
    fs::write(root.join("empty.txt"), b"").unwrap();
    fs::write(root.join("random.bin"), noise(3 * 1024 * 1024 + 12345, 7)).unwrap();
    fs::write(root.join("a/hello.txt"), b"hello from baculink\n").unwrap();
    fs::write(root.join("a/b/c/deep.txt"), noise(70_000, 3)).unwrap();
    fs::write(root.join("a/b/exact64k.bin"), noise(65536, 5)).unwrap();
    fs::write(root.join("with space.txt"), b"spaces\n").unwrap();
    fs::write(root.join("script.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::write(root.join("readonly.txt"), b"ro\n").unwrap();
    fs::write(root.join("hard1"), b"linked content\n").unwrap();
    fs::hard_link(root.join("hard1"), root.join("a/hard2")).unwrap();
    std::os::unix::fs::symlink("random.bin", root.join("link-rel")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("link-abs")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", root.join("a/dangling")).unwrap();
    // A FIFO via mkfifo(1) keeps this crate free of unsafe code.
    assert!(Command::new("mkfifo")
        .arg("-m")
        .arg("0640")
        .arg(root.join("fifo"))
        .status()
        .unwrap()
        .success());
    let modes: &[(&str, u32)] = &[
        ("script.sh", 0o755),
        ("readonly.txt", 0o444),
        ("random.bin", 0o600),
        ("a/hello.txt", 0o640),
        ("a/b", 0o750),
        ("empty dir", 0o700),
    ];
    for (p, m) in modes {
        fs::set_permissions(root.join(p), fs::Permissions::from_mode(*m)).unwrap();
    }
    // Distinct whole-second mtimes, children before parents.
    let mut t = 1_600_000_000u64;
    let mut all: Vec<PathBuf> = walk(root).into_keys().map(|r| root.join(r)).collect();
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in all {
        t += 3600;
        set_mtime(&p, t);
    }
    set_mtime(root, t + 3600);
}

/// Relative path -> lstat of every object below `root` (root excluded).
fn walk(root: &Path) -> BTreeMap<PathBuf, fs::Metadata> {
    fn rec(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, fs::Metadata>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            out.insert(p.strip_prefix(root).unwrap().to_path_buf(), m.clone());
            if m.is_dir() {
                rec(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    rec(root, root, &mut out);
    out
}

/// Differences between two trees (empty = identical): type, mode, owner,
/// mtime (seconds), content, link targets, hard links.
fn compare(src: &Path, dst: &Path) -> Vec<String> {
    let mut diffs = Vec::new();
    let a = walk(src);
    let b = walk(dst);
    for k in a.keys().filter(|k| !b.contains_key(*k)) {
        diffs.push(format!("missing {}", k.display()));
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        diffs.push(format!("extra {}", k.display()));
    }
    let mut entries: Vec<(PathBuf, fs::Metadata, fs::Metadata)> = Vec::new();
    entries.push((
        PathBuf::new(),
        fs::symlink_metadata(src).unwrap(),
        fs::symlink_metadata(dst).unwrap(),
    ));
    for (k, ma) in &a {
        if let Some(mb) = b.get(k) {
            entries.push((k.clone(), ma.clone(), mb.clone()));
        }
    }
    for (k, ma, mb) in entries {
        let name = k.display().to_string();
        if ma.mode() != mb.mode() {
            diffs.push(format!("{name}: mode {:o} != {:o}", ma.mode(), mb.mode()));
        }
        if (ma.uid(), ma.gid()) != (mb.uid(), mb.gid()) {
            diffs.push(format!("{name}: owner differs"));
        }
        if ma.mtime() != mb.mtime() {
            diffs.push(format!("{name}: mtime {} != {}", ma.mtime(), mb.mtime()));
        }
        if ma.file_type().is_symlink() {
            let ta = fs::read_link(src.join(&k)).unwrap();
            let tb = fs::read_link(dst.join(&k)).ok();
            if Some(&ta) != tb.as_ref() {
                diffs.push(format!("{name}: link {ta:?} != {tb:?}"));
            }
        } else if ma.is_file() && fs::read(src.join(&k)).ok() != fs::read(dst.join(&k)).ok() {
            diffs.push(format!("{name}: content differs"));
        }
    }
    let (h1, h2) = (dst.join("hard1"), dst.join("a/hard2"));
    if let (Ok(x), Ok(y)) = (fs::metadata(&h1), fs::metadata(&h2)) {
        if x.ino() != y.ino() {
            diffs.push("hard1 and a/hard2 are not one file".into());
        }
    }
    diffs
}

fn bcon(h: &Harness, cmds: &[&str]) -> String {
    let out = h.bconsole(cmds);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `run`/`restore` output -> the queued JobId.
fn queued_job(out: &str) -> Option<u32> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Job queued. JobId="))
        .and_then(|n| n.trim().parse().ok())
}

/// Waits for a job; its status letter.
fn wait_job(h: &Harness, id: u32) -> String {
    let out = bcon(h, &[&format!("wait jobid={id}")]);
    out.lines()
        .filter_map(|l| l.strip_prefix("JobStatus="))
        .filter_map(|l| {
            l.rsplit_once('(')
                .map(|(_, s)| s.trim_end_matches(')').to_string())
        })
        .next_back()
        .unwrap_or_default()
}

/// The job log (Messages resource `append`).
fn job_log(h: &Harness) -> String {
    fs::read_to_string(h.path().join("log/bacula.log")).unwrap_or_default()
}

/// The messages of job `id` in the log, with the indented lines of its
/// multi-line report.
fn report(h: &Harness, id: u32) -> String {
    let log = job_log(h);
    let key = format!("JobId {id}: ");
    let mut out = Vec::new();
    let mut inside = false;
    for l in log.lines() {
        if l.contains(&key) {
            inside = true;
            out.push(l);
        } else if inside && (l.starts_with(' ') || l.is_empty()) {
            out.push(l);
        } else {
            inside = false;
        }
    }
    out.join("\n")
}

/// The number after `label` in a job report.
fn report_number(rep: &str, label: &str) -> Option<u64> {
    rep.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|v| v.trim().replace(',', "").parse().ok())
}

fn backup_and_restore(mode: &str) {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let h = Harness::start(mode, "dir sd", &[("BACKUP_SRC", src.display().to_string())]);
    let fd = OurDaemon::start("fd", &h.etc("bacula-fd.conf"), h.fd_port, h.path());
    let ctx = |what: &str| {
        format!(
            "{what}\n--- job log\n{}\n--- our fd log\n{}\n{}",
            job_log(&h),
            fd.log_text(),
            h.logs()
        )
    };

    let out = bcon(&h, &["run job=BackupData yes"]);
    let bjid = queued_job(&out).unwrap_or_else(|| panic!("{}", ctx(&out)));
    let st = wait_job(&h, bjid);
    assert_eq!(st, "T", "{}", ctx("backup status"));
    let rep = report(&h, bjid);
    assert!(
        rep.contains("Termination:")
            && rep.contains("Backup OK")
            && !rep.contains("Backup OK -- with warnings"),
        "{}",
        ctx(&rep)
    );
    // Every object below src, plus src itself.
    let objects = walk(&src).len() as u64 + 1;
    assert_eq!(
        report_number(&rep, "FD Files Written:"),
        Some(objects),
        "{}",
        ctx(&rep)
    );
    // The catalog got the files (and their MD5 digests) from our records.
    let list = bcon(&h, &[&format!("list files jobid={bjid}")]);
    assert!(
        list.contains("deep.txt") && list.contains("with space.txt"),
        "{}",
        ctx(&list)
    );

    let where_ = tmp.path().join("restored");
    let out = bcon(
        &h,
        &[&format!(
            "restore jobid={bjid} where={} all done yes",
            where_.display()
        )],
    );
    let rjid = queued_job(&out).unwrap_or_else(|| panic!("{}", ctx(&out)));
    let st = wait_job(&h, rjid);
    assert_eq!(st, "T", "{}", ctx("restore status"));
    let rep = report(&h, rjid);
    assert!(
        rep.contains("Restore OK") && !rep.contains("Restore OK --"),
        "{}",
        ctx(&rep)
    );
    let restored = where_.join(src.strip_prefix("/").unwrap());
    let diffs = compare(&src, &restored);
    assert!(diffs.is_empty(), "{}", ctx(&diffs.join("\n")));

    // replace=never over the restored tree: nothing changes, job still OK.
    fs::write(restored.join("a/hello.txt"), b"local change\n").unwrap();
    let out = bcon(
        &h,
        &[&format!(
            "restore jobid={bjid} where={} replace=never all done yes",
            where_.display()
        )],
    );
    let njid = queued_job(&out).unwrap_or_else(|| panic!("{}", ctx(&out)));
    assert_eq!(wait_job(&h, njid), "T", "{}", ctx("replace=never status"));
    assert_eq!(
        fs::read(restored.join("a/hello.txt")).unwrap(),
        b"local change\n",
        "replace=never kept the existing file"
    );

    // estimate lists what a backup would save.
    let est = bcon(&h, &["estimate job=BackupData listing"]);
    assert!(
        est.contains(&format!("2000 OK estimate files={objects} ")),
        "{}",
        ctx(&est)
    );
    assert!(est.contains("with space.txt"), "{}", ctx(&est));

    // Incremental: a rewritten file and a new one (whose directory changes
    // too), found by the since-time after the BTIME clock exchange.
    fs::write(src.join("a/hello.txt"), b"changed\n").unwrap();
    fs::write(src.join("a/b/new.txt"), b"new\n").unwrap();
    let out = bcon(&h, &["run job=BackupData level=Incremental yes"]);
    let ijid = queued_job(&out).unwrap_or_else(|| panic!("{}", ctx(&out)));
    assert_eq!(wait_job(&h, ijid), "T", "{}", ctx("incremental status"));
    let rep = report(&h, ijid);
    assert!(rep.contains("Incremental"), "{}", ctx(&rep));
    assert_eq!(
        report_number(&rep, "FD Files Written:"),
        Some(3),
        "{}",
        ctx(&rep)
    );
    let list = bcon(&h, &[&format!("list files jobid={ijid}")]);
    assert!(
        list.contains("new.txt") && list.contains("hello.txt"),
        "{}",
        ctx(&list)
    );

    // Restoring the Full and the Incremental together gives today's tree
    // (directory attributes are set after every file of both jobs).
    let where2 = tmp.path().join("restored2");
    let out = bcon(
        &h,
        &[&format!(
            "restore jobid={bjid},{ijid} where={} all done yes",
            where2.display()
        )],
    );
    let r2 = queued_job(&out).unwrap_or_else(|| panic!("{}", ctx(&out)));
    assert_eq!(wait_job(&h, r2), "T", "{}", ctx("two-job restore status"));
    let diffs = compare(&src, &where2.join(src.strip_prefix("/").unwrap()));
    assert!(diffs.is_empty(), "{}", ctx(&diffs.join("\n")));

    // Accurate Incremental: the Director sends the catalog's files; a
    // deleted file goes back as deleted, its directory as changed.
    fs::remove_file(src.join("a/b/new.txt")).unwrap();
    let out = bcon(
        &h,
        &["run job=BackupData level=Incremental accurate=yes yes"],
    );
    let ajid = queued_job(&out).unwrap_or_else(|| panic!("{}", ctx(&out)));
    assert_eq!(wait_job(&h, ajid), "T", "{}", ctx("accurate status"));
    let rep = report(&h, ajid);
    assert_eq!(
        report_number(&rep, "FD Files Written:"),
        Some(2),
        "{}",
        ctx(&rep)
    );
    assert!(
        fd.log_text().contains("accurate list of "),
        "{}",
        ctx("no accurate list")
    );

    assert!(
        started.elapsed() < Duration::from_secs(110),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn real_director_and_sd_backup_restore_tls() {
    if require_peers("bacula") {
        backup_and_restore("tls");
    }
}

#[test]
fn real_director_and_sd_backup_restore_clear() {
    if require_peers("bacula") {
        backup_and_restore("clear");
    }
}

/// A backup canceled from bconsole while it runs ends 'A' on both sides
/// and the File daemon stays usable.
#[test]
fn real_director_cancel_running_backup() {
    if !require_peers("bacula") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    // A large sparse file: cheap to create, takes a while to stream.
    let f = fs::File::create(src.join("big.img")).unwrap();
    f.set_len(8 << 30).unwrap();
    let h = Harness::start(
        "clear",
        "dir sd",
        &[
            ("BACKUP_SRC", src.display().to_string()),
            ("BACKUP_SIGNATURE", "none".to_string()),
        ],
    );
    let fd = OurDaemon::start("fd", &h.etc("bacula-fd.conf"), h.fd_port, h.path());
    let ctx = |what: &str| {
        format!(
            "{what}\n--- job log\n{}\n--- our fd log\n{}\n{}",
            job_log(&h),
            fd.log_text(),
            h.logs()
        )
    };
    let out = bcon(&h, &["run job=BackupData yes"]);
    let id = queued_job(&out).unwrap_or_else(|| panic!("{}", ctx(&out)));
    // Wait until our FD is streaming.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = bcon(&h, &["status client"]);
        if st.contains("Processing file:") || st.contains("big.img") {
            break;
        }
        assert!(Instant::now() < deadline, "{}", ctx(&st));
        std::thread::sleep(Duration::from_millis(200));
    }
    let t0 = SystemTime::now();
    let out = bcon(&h, &[&format!("cancel jobid={id} yes")]);
    let st = wait_job(&h, id);
    assert_eq!(st, "A", "{}", ctx(&out));
    let secs = SystemTime::now().duration_since(t0).unwrap_or_default();
    assert!(secs < Duration::from_secs(30), "cancel took {secs:?}");
    let log = fd.log_text();
    assert!(
        log.contains("Canceled") || log.contains("canceled"),
        "{}",
        ctx("fd log")
    );
    // Still serving.
    let st = bcon(&h, &["status client"]);
    assert!(st.contains("Terminated Jobs"), "{}", ctx(&st));
}
