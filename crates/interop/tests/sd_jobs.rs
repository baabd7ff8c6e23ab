//! Our Storage daemon runs real jobs: the real Bacula 9.6 Director and File
//! daemon back a test tree up to it and restore it from it, in clear text
//! and with certificate TLS on every link. Our SD reads the harness's
//! `bacula-sd.conf` unchanged. Checked: "Backup OK" / "Restore OK", the
//! restored tree byte for byte (modes, mtimes, symlink), and that the volume
//! file holds the file data in clear (TLS protects only the network).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use baculink_interop::{require_peers, Harness, OurDaemon};

/// Text in one backed-up file that must appear as is in the volume file.
const MARKER: &str = "baculink-sd-plaintext-marker-7f3a91c2";

/// Deterministic pseudo-random bytes (xorshift), so the data does not compress.
fn random_bytes(n: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// Builds the tree to back up: regular files (one empty, one of a few MiB
/// of random bytes, one with the marker), nested directories, a symlink,
/// unusual modes and an old mtime.
fn make_tree(root: &Path) {
    let sub = root.join("sub/dir/deeper");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(root.join("empty"), b"").unwrap();
    std::fs::write(
        root.join("marker.txt"),
        format!("first line\n{MARKER}\nlast line\n"),
    )
    .unwrap();
    std::fs::write(
        root.join("random.bin"),
        random_bytes(3 * 1024 * 1024 + 12_345, 42),
    )
    .unwrap();
    std::fs::write(sub.join("nested.txt"), b"nested file\n").unwrap();
    std::fs::write(root.join("sub/dir/exactly-64k"), random_bytes(65_536, 7)).unwrap();
    std::os::unix::fs::symlink("sub/dir/deeper/nested.txt", root.join("link")).unwrap();
    std::fs::set_permissions(
        root.join("marker.txt"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::fs::set_permissions(root.join("sub/dir"), std::fs::Permissions::from_mode(0o750)).unwrap();
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    let f = std::fs::File::options()
        .write(true)
        .open(root.join("random.bin"))
        .unwrap();
    f.set_modified(old).unwrap();
}

/// Compares the restored tree with the source: types, contents, modes,
/// mtimes (files and directories) and symlink targets.
fn compare_trees(src: &Path, restored: &Path) -> Vec<String> {
    let mut diffs = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let a = src.join(&rel);
        let b = restored.join(&rel);
        let (ma, mb) = match (std::fs::symlink_metadata(&a), std::fs::symlink_metadata(&b)) {
            (Ok(x), Ok(y)) => (x, y),
            (_, Err(e)) => {
                diffs.push(format!("{}: missing in the restore ({e})", rel.display()));
                continue;
            }
            (Err(e), _) => {
                diffs.push(format!("{}: {e}", rel.display()));
                continue;
            }
        };
        if ma.file_type() != mb.file_type() {
            diffs.push(format!("{}: file type differs", rel.display()));
            continue;
        }
        if ma.file_type().is_symlink() {
            if std::fs::read_link(&a).ok() != std::fs::read_link(&b).ok() {
                diffs.push(format!("{}: symlink target differs", rel.display()));
            }
            continue;
        }
        if ma.mode() & 0o7777 != mb.mode() & 0o7777 {
            diffs.push(format!(
                "{}: mode {:o} vs {:o}",
                rel.display(),
                ma.mode() & 0o7777,
                mb.mode() & 0o7777
            ));
        }
        if ma.mtime() != mb.mtime() {
            diffs.push(format!(
                "{}: mtime {} vs {}",
                rel.display(),
                ma.mtime(),
                mb.mtime()
            ));
        }
        if ma.is_dir() {
            let mut names: Vec<_> = std::fs::read_dir(&a)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            let mut restored_names: Vec<_> = std::fs::read_dir(&b)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            restored_names.sort();
            if names != restored_names {
                diffs.push(format!(
                    "{}: entries {names:?} vs {restored_names:?}",
                    rel.display()
                ));
            }
            for n in names {
                stack.push(rel.join(n));
            }
        } else if std::fs::read(&a).ok() != std::fs::read(&b).ok() {
            diffs.push(format!("{}: contents differ", rel.display()));
        }
    }
    diffs
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `Job queued. JobId=N` from a `run` / `restore` output.
fn queued_job_id(out: &str) -> Option<u32> {
    out.lines()
        .rev()
        .filter_map(|l| l.trim().strip_prefix("Job queued. JobId="))
        .find_map(|v| v.trim().parse().ok())
}

/// Waits for a job; its status letter (`wait jobid=N` prints
/// `JobStatus=OK (T)`).
fn wait_job(h: &Harness, id: u32) -> (Option<char>, String) {
    let out = text(&h.bconsole(&[&format!("wait jobid={id}")]));
    let letter = out
        .lines()
        .rev()
        .filter(|l| l.starts_with("JobStatus="))
        .filter_map(|l| l.trim_end().strip_suffix(')'))
        .find_map(|l| l.chars().last());
    (letter, out)
}

/// The job report lines of the harness log (`log/bacula.log`) plus the
/// console's queued messages.
fn job_messages(h: &Harness) -> String {
    let mut s = text(&h.bconsole(&["messages"]));
    if let Ok(log) = std::fs::read_to_string(h.path().join("log/bacula.log")) {
        s.push_str(&log);
    }
    s
}

/// Backs up a tree through our SD and restores it, with the real 9.6
/// Director and File daemon in `mode`.
fn backup_and_restore(mode: &str) {
    let data = tempfile::Builder::new()
        .prefix("baculink-sd-src-")
        .tempdir()
        .unwrap();
    let src = data.path().join("tree");
    make_tree(&src);
    let h = Harness::start(mode, "dir fd", &[("BACKUP_SRC", src.display().to_string())]);
    let sd = OurDaemon::start("sd", &h.etc("bacula-sd.conf"), h.sd_port, h.path());
    let diag = |what: &str| {
        format!(
            "{what}\n--- our SD log\n{}\n{}\n--- job log\n{}",
            sd.log_text(),
            h.logs(),
            std::fs::read_to_string(h.path().join("log/bacula.log")).unwrap_or_default()
        )
    };
    let started = std::time::Instant::now();

    // Backup.
    let run = text(&h.bconsole(&["run job=BackupData yes"]));
    let bjid = queued_job_id(&run).unwrap_or_else(|| panic!("{}", diag(&run)));
    let (status, out) = wait_job(&h, bjid);
    assert_eq!(status, Some('T'), "{}", diag(&out));
    let msgs = job_messages(&h);
    assert!(msgs.contains("Backup OK"), "{}", diag(&msgs));
    assert!(
        msgs.contains("Labeled new Volume \"Vol-0001\""),
        "{}",
        diag(&msgs)
    );

    // The volume holds the file data in clear.
    let vol = h.path().join("volumes/Vol-0001");
    let bytes = std::fs::read(&vol).unwrap_or_else(|e| panic!("{}", diag(&e.to_string())));
    assert!(
        bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
        "marker not found in clear in {}",
        vol.display()
    );
    let random = random_bytes(3 * 1024 * 1024 + 12_345, 42);
    assert!(
        bytes
            .windows(4096)
            .any(|w| w == &random[65_536..65_536 + 4096]),
        "file data not found in clear in the volume"
    );

    // Restore everything of that job.
    let where_ = h.path().join("restore/sd-jobs");
    let restore = text(&h.bconsole(&[&format!(
        "restore jobid={bjid} where={} all done yes",
        where_.display()
    )]));
    let rjid = queued_job_id(&restore).unwrap_or_else(|| panic!("{}", diag(&restore)));
    let (status, out) = wait_job(&h, rjid);
    assert_eq!(status, Some('T'), "{}", diag(&out));
    let msgs = job_messages(&h);
    assert!(msgs.contains("Restore OK"), "{}", diag(&msgs));
    let restored = where_.join(src.strip_prefix("/").unwrap());
    let diffs = compare_trees(&src, &restored);
    assert!(
        diffs.is_empty(),
        "restore differs: {diffs:#?}\n{}",
        diag("")
    );

    // Our status shows both jobs as terminated.
    let st = text(&h.bconsole(&["status storage"]));
    assert!(st.contains("Jobs: run=2"), "{}", diag(&st));
    assert!(st.contains("\nTerminated Jobs:\n"), "{st}");
    if mode == "tls" {
        let log = sd.log_text();
        assert!(
            log.contains("File daemon for job \"BackupData."),
            "{}",
            diag("")
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(110),
        "too slow: {:?}",
        started.elapsed()
    );
}

#[test]
fn real_director_and_fd_backup_restore_clear() {
    if require_peers("bacula") {
        backup_and_restore("clear");
    }
}

#[test]
fn real_director_and_fd_backup_restore_tls() {
    if require_peers("bacula") {
        backup_and_restore("tls");
    }
}

/// The real Director cancels a running backup (`cancel Job=` on a second
/// connection): the job ends Canceled without a hang, and the volume with
/// the interrupted session still takes the next backup, which restores.
#[test]
fn real_director_cancels_a_running_backup() {
    if !require_peers("bacula") {
        return;
    }
    let data = tempfile::Builder::new()
        .prefix("baculink-sd-cancel-")
        .tempdir()
        .unwrap();
    let src = data.path().join("tree");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("small.txt"), format!("{MARKER}\n")).unwrap();
    // 1 GiB of incompressible data: long enough to cancel in the middle.
    let big = src.join("big.bin");
    let ok = std::process::Command::new("head")
        .args(["-c", "1073741824", "/dev/urandom"])
        .stdout(std::fs::File::create(&big).unwrap())
        .status()
        .unwrap()
        .success();
    assert!(ok, "could not create the big file");
    let h = Harness::start(
        "clear",
        "dir fd",
        &[("BACKUP_SRC", src.display().to_string())],
    );
    let sd = OurDaemon::start("sd", &h.etc("bacula-sd.conf"), h.sd_port, h.path());
    let diag = |what: &str| format!("{what}\n--- our SD log\n{}\n{}", sd.log_text(), h.logs());
    let run = text(&h.bconsole(&["run job=BackupData yes"]));
    let id = queued_job_id(&run).unwrap_or_else(|| panic!("{}", diag(&run)));
    // Cancel once data flows (the volume got labeled).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !sd.log_text().contains("labeled new volume") {
        assert!(std::time::Instant::now() < deadline, "{}", diag("no data"));
        std::thread::sleep(Duration::from_millis(100));
    }
    let st = text(&h.bconsole(&["status storage"]));
    assert!(
        st.contains(&format!(
            "Writing: Full Backup job BackupData JobId={id} Volume=\"Vol-0001\""
        )),
        "{}",
        diag(&st)
    );
    let out = text(&h.bconsole(&[&format!("cancel jobid={id} yes")]));
    assert!(out.contains("marked to be canceled"), "{}", diag(&out));
    let (status, out) = wait_job(&h, id);
    assert_eq!(status, Some('A'), "{}", diag(&out));
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !sd.log_text().contains("ended: status A") {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            diag("SD job did not end")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::remove_file(&big).unwrap();

    let run = text(&h.bconsole(&["run job=BackupData yes"]));
    let id = queued_job_id(&run).unwrap_or_else(|| panic!("{}", diag(&run)));
    let (status, out) = wait_job(&h, id);
    assert_eq!(status, Some('T'), "{}", diag(&out));
    let where_ = h.path().join("restore/after-cancel");
    let restore = text(&h.bconsole(&[&format!(
        "restore jobid={id} where={} all done yes",
        where_.display()
    )]));
    let rid = queued_job_id(&restore).unwrap_or_else(|| panic!("{}", diag(&restore)));
    let (status, out) = wait_job(&h, rid);
    assert_eq!(status, Some('T'), "{}", diag(&out));
    let diffs = compare_trees(&src, &where_.join(src.strip_prefix("/").unwrap()));
    assert!(diffs.is_empty(), "{diffs:#?}");
}

// ---------------------------------------------------------------------------
// Scripted Director and File daemon: what the real peers cannot be made to
// do on cue (a File daemon vanishing mid-stream, a cancel mid-job).

mod scripted {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use baculink_interop::{free_port, OurDaemon};
    use baculink_net::{BSock, ClientSetup};
    use baculink_proto::frame::{Packet, Signal};
    use baculink_proto::handshake::{ClientConfig, Local};
    use baculink_proto::hello::Hello;
    use baculink_proto::job::catreq::{self, DirMessage, Generation, MediaInfo};
    use baculink_proto::job::sdcmd::{JobCommand, JobReply, UseStorage};
    use baculink_proto::negotiate::{Dialect, Needs};
    use baculink_proto::Secret;
    use tokio::task::JoinHandle;

    const T: Duration = Duration::from_secs(20);

    pub struct Sd {
        pub daemon: OurDaemon,
        pub port: u16,
        pub dir: tempfile::TempDir,
    }

    impl Sd {
        pub fn volumes(&self) -> PathBuf {
            self.dir.path().join("volumes")
        }
    }

    /// Our SD with one File device, in clear text (the TLS paths are
    /// covered with the real peers above).
    pub fn start_sd() -> Sd {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let vols = dir.path().join("volumes");
        std::fs::create_dir_all(&vols).unwrap();
        let conf = dir.path().join("bacula-sd.conf");
        std::fs::write(
            &conf,
            format!(
                "Storage {{\n  Name = test-sd\n  SDAddress = 127.0.0.1\n  SDPort = {port}\n  \
                 WorkingDirectory = \"{w}\"\n  Client Connect Wait = 30\n}}\n\
                 Director {{\n  Name = test-dir\n  Password = \"dir-pass\"\n}}\n\
                 Device {{\n  Name = FileStorage\n  Media Type = File\n  \
                 Archive Device = \"{v}\"\n  LabelMedia = yes\n}}\n",
                w = dir.path().display(),
                v = vols.display()
            ),
        )
        .unwrap();
        let daemon = OurDaemon::start("sd", &conf, port, dir.path());
        Sd { daemon, port, dir }
    }

    fn client(hello: Hello, key: Secret, label: &str) -> ClientSetup {
        ClientSetup {
            config: ClientConfig {
                hello,
                local: Local {
                    key,
                    needs: Needs::NONE,
                    authenticate: false,
                    dialect: Dialect::V96,
                    name: "test".into(),
                },
            },
            cert: None,
            psk: None,
            host: "127.0.0.1".into(),
            allowed_cn: Vec::new(),
            timeout: T,
            label: label.into(),
        }
    }

    pub async fn director(port: u16) -> BSock {
        let setup = client(
            Hello::DirectorToSd {
                name: "test-dir".into(),
                version: Some(103),
                tlspsk: None,
            },
            Secret::from_password("dir-pass"),
            "our SD as Director",
        );
        baculink_net::connect("127.0.0.1", port, &setup)
            .await
            .expect("Director login")
            .0
    }

    pub async fn fd(port: u16, job: &str, key: &str) -> BSock {
        let setup = client(
            Hello::FdToSd {
                job: job.into(),
                fd_version: 213,
                sd_version: None,
                tlspsk: None,
            },
            Secret::new(key.as_bytes()),
            "our SD as FD",
        );
        baculink_net::connect("127.0.0.1", port, &setup)
            .await
            .expect("FD login")
            .0
    }

    pub async fn line(sock: &mut BSock) -> String {
        loop {
            match tokio::time::timeout(T, sock.recv()).await {
                Ok(Ok(Packet::Data(d))) => {
                    return String::from_utf8_lossy(&d)
                        .trim_end_matches(['\0', '\n'])
                        .to_string()
                }
                Ok(Ok(Packet::Signal(Signal::Heartbeat))) => continue,
                Ok(Ok(Packet::Signal(s))) => return format!("<{}>", s.name()),
                Ok(Err(e)) => return format!("<error {e}>"),
                Err(_) => panic!("no reply within {T:?}"),
            }
        }
    }

    pub async fn send(sock: &mut BSock, text: &str) {
        sock.send_text(text).await.unwrap();
    }

    pub fn job_line(job_id: u32, job: &str, backup: bool) -> String {
        JobCommand {
            job_id,
            job: job.into(),
            job_name: job.split('.').next().unwrap_or(job).into(),
            client_name: "test-fd".into(),
            job_type: if backup { 'B' } else { 'R' },
            level: if backup { 'F' } else { ' ' },
            fileset: "Set".into(),
            no_attr: false,
            spool_attr: true,
            fileset_md5: "**Dummy**".into(),
            spool_data: false,
            write_part_after_job: true,
            prefer_mounted_vols: true,
            spool_size: 0,
            rerunning: false,
            vol_session_id: 0,
            vol_session_time: 0,
            sd_client: false,
            authorization: "dummy".into(),
        }
        .to_string()
    }

    /// Job line + device reservation (+ bootstrap); returns the SD's reply.
    pub async fn setup(
        d: &mut BSock,
        job_id: u32,
        job: &str,
        backup: bool,
        media_type: &str,
        bootstrap: Option<&[String]>,
    ) -> (JobReply, String) {
        send(d, &job_line(job_id, job, backup)).await;
        let r = line(d).await;
        let reply = JobReply::parse(&r).unwrap_or_else(|e| panic!("{e}: {r}"));
        let us = UseStorage {
            storage: "File1".into(),
            media_type: media_type.into(),
            pool_name: "File".into(),
            pool_type: "Backup".into(),
            append: backup,
            copy: 0,
            stripe: 0,
            wait: None,
        };
        send(d, &us.to_string()).await;
        send(d, "use device=FileStorage\n").await;
        d.signal(Signal::Eod).await.unwrap();
        d.signal(Signal::Eod).await.unwrap();
        let used = line(d).await;
        if let Some(lines) = bootstrap {
            send(d, "bootstrap\n").await;
            for l in lines {
                send(d, l).await;
            }
            d.signal(Signal::Eod).await.unwrap();
            assert_eq!(line(d).await, "3000 OK bootstrap");
        }
        (reply, used)
    }

    /// What the fake Director saw on a job's message channel.
    #[derive(Debug, Default)]
    pub struct Seen {
        pub messages: Vec<DirMessage>,
        pub jobmedia: Vec<catreq::JobMediaRange>,
        pub end: Option<catreq::JobEnd>,
    }

    /// After `run`: answers catalog requests like a Director (a fresh
    /// volume `vol`) until `3099`, EOD and TERMINATE.
    pub fn serve(mut d: BSock, vol: &str) -> JoinHandle<Seen> {
        let vol = vol.to_string();
        tokio::spawn(async move {
            let mut seen = Seen::default();
            let mut media = MediaInfo {
                vol_name: vol,
                vol_status: "Append".into(),
                media_id: 7,
                enabled: 1,
                recycle: 1,
                max_vol_bytes: 0,
                ..MediaInfo::default()
            };
            loop {
                let p = match tokio::time::timeout(T, d.recv()).await {
                    Ok(Ok(p)) => p,
                    Ok(Err(_)) => return seen,
                    Err(_) => panic!("message channel silent for {T:?}: {seen:?}"),
                };
                let Packet::Data(bytes) = p else {
                    if p == Packet::Signal(Signal::Terminate) {
                        return seen;
                    }
                    continue;
                };
                let m = catreq::parse(&bytes).unwrap_or_else(|e| panic!("{e}"));
                match &m {
                    DirMessage::FindMedia(_) | DirMessage::GetVolInfo(_) => {
                        d.send_text(&media.format(Generation::V96)).await.unwrap();
                    }
                    DirMessage::UpdateMedia(u) => {
                        media.vol_bytes = u.vol_bytes;
                        media.vol_jobs = u.vol_jobs;
                        media.vol_blocks = u.vol_blocks;
                        d.send_text(&media.format(Generation::V96)).await.unwrap();
                    }
                    DirMessage::CreateJobMedia { .. } => loop {
                        match d.recv().await.unwrap() {
                            Packet::Data(l) => seen.jobmedia.push(
                                catreq::JobMediaRange::parse(&String::from_utf8_lossy(&l)).unwrap(),
                            ),
                            Packet::Signal(Signal::Eod) => {
                                d.send_text(catreq::OK_CREATE_JOBMEDIA).await.unwrap();
                                break;
                            }
                            Packet::Signal(_) => {}
                        }
                    },
                    DirMessage::JobEnd(e) => seen.end = Some(e.clone()),
                    _ => {}
                }
                seen.messages.push(m);
            }
        })
    }

    /// Sends one stream: header, data packets, EOD.
    pub async fn stream(f: &mut BSock, fi: i32, id: i32, packets: &[&[u8]]) {
        let size: usize = packets.iter().map(|p| p.len()).sum();
        send(f, &format!("{fi} {id} {size}")).await;
        for p in packets {
            f.send(&Packet::data(p)).await.unwrap();
        }
        f.signal(Signal::Eod).await.unwrap();
    }

    pub fn attr(fi: i32, name: &str) -> Vec<u8> {
        format!("{fi} 3 {name}\0P4A mSR+ IGk B A A A m BAA I BrC8mu BrC8mu BrC8mu A A C\0\0\00\0")
            .into_bytes()
    }

    /// A whole restore job against our SD: Director setup with a bootstrap
    /// selecting `session` between the JobMedia addresses, the FD's read
    /// session; returns the records (FileIndex, stream, data), the `3099`
    /// and the session key.
    pub async fn restore_session(
        port: u16,
        job_id: u32,
        job: &str,
        vol: &str,
        session: (u32, u32),
        jm: &catreq::JobMediaRange,
    ) -> (Vec<(i32, i32, Vec<u8>)>, catreq::JobEnd, String, Seen) {
        use baculink_proto::job::attr::RecHdr;
        let bsr = [
            "Storage=\"File1\"\n".to_string(),
            format!("Volume=\"{vol}\"\n"),
            "MediaType=\"File\"\n".into(),
            "Device=\"FileStorage\"\n".into(),
            format!("VolSessionId={}\n", session.0),
            format!("VolSessionTime={}\n", session.1),
            format!("VolAddr={}-{}\n", jm.start_addr(), jm.end_addr()),
            format!("FileIndex={}-{}\n", jm.first_index, jm.last_index),
            format!("Count={}\n", jm.last_index - jm.first_index + 1),
        ];
        let mut d = director(port).await;
        let (r, used) = setup(&mut d, job_id, job, false, "File", Some(&bsr)).await;
        assert_eq!(used, "3000 OK use device device=FileStorage");
        send(&mut d, "run").await;
        let seen = serve(d, vol);
        let mut f = fd(port, job, &r.authorization).await;
        send(
            &mut f,
            &format!(
                "read open session = DummyVolume {} {} 0 0 0 0\n",
                r.sd_id, r.sd_time
            ),
        )
        .await;
        assert_eq!(
            line(&mut f).await,
            format!("3000 OK open ticket = {}", r.sd_id)
        );
        send(&mut f, &format!("read data {}\n", r.sd_id)).await;
        assert_eq!(line(&mut f).await, "3000 OK data");
        let mut records = Vec::new();
        loop {
            match f.recv().await.unwrap() {
                Packet::Signal(Signal::Eod) => break,
                Packet::Data(h) => {
                    let hdr = RecHdr::decode(&h).unwrap();
                    let Packet::Data(data) = f.recv().await.unwrap() else {
                        panic!("signal instead of record data");
                    };
                    assert_eq!(hdr.data_len as usize, data.len());
                    assert_eq!((hdr.vol_session_id, hdr.vol_session_time), session);
                    records.push((hdr.file_index, hdr.stream, data.to_vec()));
                }
                Packet::Signal(_) => {}
            }
        }
        send(&mut f, &format!("read close session {}\n", r.sd_id)).await;
        assert_eq!(line(&mut f).await, "3000 OK close Status = 82");
        assert_eq!(line(&mut f).await, "<BNET_EOD>");
        f.signal(Signal::Terminate).await.unwrap();
        let seen = seen.await.unwrap();
        let end = seen.end.clone().expect("3099");
        (records, end, r.authorization, seen)
    }

    /// A whole append session on an FD connection after `append data`'s
    /// `3000 OK data`: end of data, end and close; the close status.
    pub async fn finish_append(f: &mut BSock, ticket: u32) -> String {
        f.signal(Signal::Eod).await.unwrap();
        assert_eq!(line(f).await, "3000 OK append data");
        send(f, &format!("append end session {ticket}\n")).await;
        assert_eq!(line(f).await, "3000 OK end");
        send(f, &format!("append close session {ticket}\n")).await;
        let status = line(f).await;
        assert_eq!(line(f).await, "<BNET_EOD>");
        f.signal(Signal::Terminate).await.unwrap();
        status
    }

    pub fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    pub fn volume_file(sd: &Sd, name: &str) -> Vec<u8> {
        std::fs::read(Path::new(&sd.volumes()).join(name)).unwrap_or_default()
    }
}

/// A File daemon that vanishes in the middle of the data: the job ends in
/// error (not a hang), and what arrived before stays readable for a restore.
#[test]
fn fd_vanishing_mid_job_ends_in_error_and_the_volume_stays_readable() {
    use baculink_proto::frame::Packet;
    use baculink_proto::job::catreq::DirMessage;
    use scripted::*;

    let sd = start_sd();
    let big = random_bytes(100_000, 9);
    let keys = rt().block_on(async {
        // Backup: two complete files, then the third one is cut off.
        let mut d = director(sd.port).await;
        let (reply, used) = setup(
            &mut d,
            11,
            "Vanish.2026-01-01_00.00.00_01",
            true,
            "File",
            None,
        )
        .await;
        assert_eq!(used, "3000 OK use device device=FileStorage");
        send(&mut d, "run").await;
        let seen = serve(d, "Vol-V1");
        let mut f = fd(
            sd.port,
            "Vanish.2026-01-01_00.00.00_01",
            &reply.authorization,
        )
        .await;
        send(&mut f, "append open session\n").await;
        assert_eq!(
            line(&mut f).await,
            format!("3000 OK open ticket = {}", reply.sd_id)
        );
        send(&mut f, &format!("append data {}\n", reply.sd_id)).await;
        assert_eq!(line(&mut f).await, "3000 OK data");
        stream(&mut f, 1, 1, &[&attr(1, "/d/one")]).await;
        stream(&mut f, 1, 2, &[&big[..65_536], &big[65_536..]]).await;
        stream(&mut f, 1, 3, &[&[0xAB; 16]]).await;
        stream(&mut f, 2, 1, &[&attr(2, "/d/two")]).await;
        stream(&mut f, 2, 2, &[b"two-data"]).await;
        send(&mut f, "3 1 0").await;
        f.send(&Packet::data(attr(3, "/d/three"))).await.unwrap();
        // The FD process dies: the socket closes without EOD or TERMINATE.
        drop(f);
        let seen = tokio::time::timeout(std::time::Duration::from_secs(15), seen)
            .await
            .expect("the SD did not end the job (hang)")
            .unwrap();
        let end = seen
            .end
            .clone()
            .unwrap_or_else(|| panic!("no 3099: {seen:?}"));
        assert_eq!(end.status, b'E', "{end:?}");
        assert_eq!(end.files, 3);
        assert!(!end.err_msg.is_empty());
        let upd: Vec<_> = seen
            .messages
            .iter()
            .filter_map(|m| match m {
                DirMessage::UpdCat(u) => Some((u.file_index, u.stream)),
                _ => None,
            })
            .collect();
        assert_eq!(upd, vec![(1, 1), (1, 3), (2, 1), (3, 1)]);
        let jm = seen
            .jobmedia
            .first()
            .copied()
            .unwrap_or_else(|| panic!("{seen:?}"));
        assert_eq!((jm.first_index, jm.last_index, jm.media_id), (1, 3, 7));

        // Restore what was written, selected by the bootstrap.
        let (records, end, r2_key, _) = restore_session(
            sd.port,
            12,
            "Restore.2026-01-01_00.00.01_02",
            "Vol-V1",
            (reply.sd_id, reply.sd_time),
            &jm,
        )
        .await;
        assert_eq!((end.status, end.files), (b'T', 3), "{end:?}");
        let shape: Vec<(i32, i32, usize)> = records
            .iter()
            .map(|(fi, s, d)| (*fi, *s, d.len()))
            .collect();
        assert_eq!(
            shape,
            vec![
                (1, 1, attr(1, "/d/one").len()),
                (1, 2, 65_536),
                (1, 2, 100_000 - 65_536),
                (1, 3, 16),
                (2, 1, attr(2, "/d/two").len()),
                (2, 2, 8),
                (3, 1, attr(3, "/d/three").len()),
            ]
        );
        let data: Vec<u8> = records[1].2.iter().chain(&records[2].2).copied().collect();
        assert_eq!(data, big);

        // A damaged record: the restore stops there with a clear error
        // (status E, the FD gets its EOD and closes normally).
        let path = sd.volumes().join("Vol-V1");
        let mut vol = std::fs::read(&path).unwrap();
        let at = vol
            .windows(32)
            .position(|w| w == &big[70_000..70_032])
            .expect("file data in clear on the volume");
        vol[at + 5] ^= 0xff;
        std::fs::write(&path, &vol).unwrap();
        let (records, end, _, seen) = restore_session(
            sd.port,
            13,
            "Restore.2026-01-01_00.00.02_03",
            "Vol-V1",
            (reply.sd_id, reply.sd_time),
            &jm,
        )
        .await;
        assert_eq!(end.status, b'E', "{end:?}");
        assert!(end.err_msg.contains("corrupt"), "{end:?}");
        assert_eq!(records.len(), 2, "records before the damaged one");
        let fatal = seen
            .messages
            .iter()
            .any(|m| matches!(m, DirMessage::Jmsg(j) if j.text.contains("checksum mismatch")));
        assert!(fatal, "no job message about the damage: {seen:?}");
        [reply.authorization, r2_key]
    });
    let vol = volume_file(&sd, "Vol-V1");
    assert!(vol.windows(8).any(|w| w == b"two-data"), "data in clear");
    let log = sd.daemon.log_text();
    assert!(log.contains("ended: status E"), "{log}");
    for k in keys {
        assert!(!log.contains(&k), "a session key was logged");
    }
}

/// `cancel Job=...` on a second Director connection stops a running job
/// (status A in `3099`) and a job still waiting for its File daemon; a
/// device of another Media Type is refused with 3924.
#[test]
fn cancel_ends_jobs_and_media_type_must_match() {
    use baculink_proto::frame::Signal;
    use scripted::*;

    let sd = start_sd();
    rt().block_on(async {
        // Wrong media type: 3924, no device reserved, run refused.
        let mut d = director(sd.port).await;
        let (_, used) = setup(
            &mut d,
            20,
            "Wrong.2026-01-01_00.00.00_01",
            true,
            "LTO",
            None,
        )
        .await;
        assert!(
            used.starts_with("3924 Device \"FileStorage\" not in SD Device"),
            "{used}"
        );
        send(&mut d, "run").await;
        assert!(line(&mut d).await.starts_with("3911 "));
        d.signal(Signal::Terminate).await.unwrap();

        // Running job, FD in the middle of the data.
        let job = "Cancel.2026-01-01_00.00.00_02";
        let mut d = director(sd.port).await;
        let (reply, _) = setup(&mut d, 21, job, true, "File", None).await;
        send(&mut d, "run").await;
        let seen = serve(d, "Vol-C1");
        let mut f = fd(sd.port, job, &reply.authorization).await;
        send(&mut f, "append open session\n").await;
        line(&mut f).await;
        send(&mut f, &format!("append data {}\n", reply.sd_id)).await;
        assert_eq!(line(&mut f).await, "3000 OK data");
        stream(&mut f, 1, 1, &[&attr(1, "/c/one")]).await;
        let mut c = director(sd.port).await;
        send(&mut c, &format!("cancel Job={job}\n")).await;
        assert_eq!(
            line(&mut c).await,
            format!("3000 JobId=21 Job=\"{job}\" marked to be canceled.")
        );
        assert_eq!(line(&mut c).await, "<BNET_EOD>");
        let seen = tokio::time::timeout(std::time::Duration::from_secs(15), seen)
            .await
            .expect("canceled job did not end")
            .unwrap();
        let end = seen.end.unwrap();
        assert_eq!(end.status, b'A', "{end:?}");
        // The data channel is closed by the SD.
        let after = line(&mut f).await;
        assert!(after.starts_with('<'), "{after}");

        // A job whose FD never came.
        let job = "Waiting.2026-01-01_00.00.00_03";
        let mut d = director(sd.port).await;
        setup(&mut d, 22, job, true, "File", None).await;
        send(&mut d, "run").await;
        let seen = serve(d, "Vol-C1");
        send(&mut c, &format!("cancel Job={job}\n")).await;
        assert!(line(&mut c).await.starts_with("3000 JobId=22 "));
        assert_eq!(line(&mut c).await, "<BNET_EOD>");
        let end = tokio::time::timeout(std::time::Duration::from_secs(15), seen)
            .await
            .expect("waiting job did not end")
            .unwrap()
            .end
            .unwrap();
        assert_eq!(end.status, b'A');
        send(&mut c, "cancel Job=No.Such.Job\n").await;
        assert_eq!(line(&mut c).await, "3904 Job No.Such.Job not found.");
    });
}

/// Two backups at once on the same volume share one writer: their records
/// interleave on the volume, and each restores exactly its own files.
#[test]
fn concurrent_backups_share_a_volume() {
    use scripted::*;

    let sd = start_sd();
    let data = |job: u8, fi: i32| {
        random_bytes(
            5_000 + fi as usize * 3_001,
            u64::from(job) * 1000 + fi as u64,
        )
    };
    rt().block_on(async {
        let mut jobs = Vec::new();
        for (i, name) in [
            "Left.2026-01-01_00.00.00_01",
            "Right.2026-01-01_00.00.00_02",
        ]
        .iter()
        .enumerate()
        {
            let mut d = director(sd.port).await;
            let (reply, _) = setup(&mut d, 40 + i as u32, name, true, "File", None).await;
            send(&mut d, "run").await;
            let seen = serve(d, "Vol-S");
            let mut f = fd(sd.port, name, &reply.authorization).await;
            send(&mut f, "append open session\n").await;
            line(&mut f).await;
            send(&mut f, &format!("append data {}\n", reply.sd_id)).await;
            assert_eq!(line(&mut f).await, "3000 OK data");
            jobs.push((reply, seen, f));
        }
        for fi in 1..=12 {
            for (j, (_, _, f)) in jobs.iter_mut().enumerate() {
                stream(f, fi, 1, &[&attr(fi, &format!("/j{j}/f{fi}"))]).await;
                let d = data(j as u8, fi);
                stream(f, fi, 2, &[&d[..4_000], &d[4_000..]]).await;
            }
        }
        let mut done = Vec::new();
        for (reply, seen, mut f) in jobs {
            assert_eq!(
                finish_append(&mut f, reply.sd_id).await,
                "3000 OK close Status = 84"
            );
            let seen = seen.await.unwrap();
            let end = seen.end.clone().unwrap();
            assert_eq!((end.status, end.files), (b'T', 12), "{end:?}");
            done.push((reply, seen.jobmedia[0]));
        }
        // The two sessions overlap on the volume.
        assert!(done[0].1.end_addr() > done[1].1.start_addr());
        for (j, (reply, jm)) in done.iter().enumerate() {
            let (records, end, _, _) = restore_session(
                sd.port,
                50 + j as u32,
                &format!("Back{j}.2026-01-01_00.00.01_0{j}"),
                "Vol-S",
                (reply.sd_id, reply.sd_time),
                jm,
            )
            .await;
            assert_eq!((end.status, end.files), (b'T', 12));
            assert_eq!(records.len(), 12 * 3);
            for fi in 1..=12 {
                let got: Vec<u8> = records
                    .iter()
                    .filter(|r| r.0 == fi && r.1 == 2)
                    .flat_map(|r| r.2.clone())
                    .collect();
                assert_eq!(got, data(j as u8, fi), "job {j} file {fi}");
                let a = records.iter().find(|r| r.0 == fi && r.1 == 1).unwrap();
                assert_eq!(a.2, attr(fi, &format!("/j{j}/f{fi}")));
            }
        }
    });
}
