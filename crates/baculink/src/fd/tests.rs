//! Hermetic tests: parsers, and our own Director / Storage daemon roles on
//! loopback talking to the File daemon.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use baculink_conf::TlsSettings;
use baculink_proto::job::attr::{ft, stream, AttrRecord, RecHdr, Stat, StreamHeader};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

const CONF: &str = r#"
Director {
  Name = "test-dir"
  Password = "dir-fd-password"
}
Director {
  Name = "test-mon"
  Password = "mon-password"
  Monitor = yes
}
FileDaemon {
  Name = "test-fd"
  FDAddress = 127.0.0.1
  FDport = 9102
  SD Connect Timeout = 1 sec
}
"#;

fn daemon() -> Arc<FileDaemon> {
    let (conf, _) = FdConfig::parse_str("bacula-fd.conf", CONF).expect("config");
    Arc::new(FileDaemon::from_config(conf, Duration::from_secs(3)).expect("daemon"))
}

/// Serves every connection on an ephemeral port; returns the port.
async fn serve(fd: Arc<FileDaemon>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(crate::daemon::serve(l, move |tcp, addr| {
        fd.clone().handle(tcp, addr)
    }));
    port
}

async fn director(port: u16, name: &str, password: &str) -> Result<(BSock, Peer), LoginError> {
    let setup = login::client_setup(
        Hello::Director {
            name: name.into(),
            version: Some(hello::DIRECTOR_VERSION_V96),
            tlspsk: None,
        },
        Secret::from_password(password),
        &TlsSettings::default(),
        None,
        name,
        "127.0.0.1",
        format!("File daemon at 127.0.0.1:{port}"),
        Dialect::V96,
        Duration::from_secs(5),
    );
    baculink_net::connect("127.0.0.1", port, &setup).await
}

/// Sends a command and collects the text packets up to EOD.
async fn ask(sock: &mut BSock, cmd: &str) -> Vec<String> {
    sock.send_text(cmd).await.expect("send");
    let mut out = Vec::new();
    loop {
        match sock
            .recv_timeout(Duration::from_secs(5))
            .await
            .expect("reply")
        {
            Packet::Data(d) => out.push(c_text(&d)),
            Packet::Signal(Signal::Eod) => return out,
            Packet::Signal(s) => panic!("unexpected signal {s:?} after {out:?}"),
        }
    }
}

#[test]
fn job_line_parses_leniently() {
    let j = JobLine::parse(
        "JobId=0 Job=-Console-.2026-11-29_06.44.02_03 SDid=0 SDtime=0 Authorization=dummy\n",
    )
    .expect("job line");
    assert_eq!(j.job_id, "0");
    assert_eq!(j.job, "-Console-.2026-11-29_06.44.02_03");
    assert_eq!(j.key.expose(), b"dummy");
    let j = JobLine::parse("JobId=7 Job=a\u{1}b SDid=3 SDtime=1795934477 Authorization=KEY")
        .expect("job line");
    assert_eq!((j.job.as_str(), j.sd_id, j.sd_time), ("a b", 3, 1795934477));
    assert!(JobLine::parse("JobId=1 Job=x").is_none());
    assert!(JobLine::parse("JobId= Job=x SDid=0 SDtime=0 Authorization=k").is_none());
}

#[test]
fn setdebug_both_forms() {
    let d = SetDebug::parse("setdebug=10 trace=0 hangup=0 blowup=0 options= tags=\n").unwrap();
    assert_eq!(
        d.reply(),
        "2000 OK setdebug=10 trace=0 hangup=0 blowup=0 options= tags=\n"
    );
    let d = SetDebug::parse("setdebug=5 trace=1 hangup=0").unwrap();
    assert_eq!((d.level, d.trace), (5, 1));
    assert!(SetDebug::parse("setdebug=5").is_none());
    // What the real 9.6 Director sends: -1 = leave unchanged.
    let d = SetDebug::parse("setdebug=12 trace=-1 hangup=-1 blowup=-1 options= tags=").unwrap();
    assert_eq!(
        d.reply(),
        "2000 OK setdebug=12 trace=-1 hangup=-1 blowup=-1 options= tags=\n"
    );
}

#[test]
fn command_prefixes_follow_bacula_order() {
    assert_eq!(Command::of("status"), Some(Command::Status));
    assert_eq!(Command::of(".status header"), Some(Command::DotStatus));
    assert_eq!(Command::of("JobId=0 Job=x"), Some(Command::Job));
    assert_eq!(Command::of("level = full"), Some(Command::Level));
    assert_eq!(Command::of("RunAfterJob x"), Some(Command::RunScript));
    assert_eq!(Command::of("restore files=1"), Some(Command::Restore));
    assert_eq!(Command::of("endrestore"), Some(Command::EndRestore));
    assert_eq!(Command::of("backup FileIndex=0"), Some(Command::Backup));
    assert_eq!(
        Command::of("restoreobject"),
        Some(Command::NotYet("restoreobject"))
    );
    assert_eq!(Command::of("stop Job=x"), Some(Command::Stop));
    assert_eq!(Command::of("Status"), None);
    assert_eq!(Command::of("frobnicate"), None);
}

#[test]
fn logs_never_carry_the_session_key() {
    let r = redact("JobId=1 Job=x SDid=0 SDtime=0 Authorization=SECRETKEY\n");
    assert!(!r.contains("SECRETKEY"), "{r}");
    assert_eq!(first_word("Authorization=SECRETKEY"), "Authorization");
}

#[test]
fn iso_time_format() {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_934_580);
    assert_eq!(status::iso_time(t), "2026-11-29 06:43:00");
}

#[tokio::test]
async fn director_status_session() {
    let fd = daemon();
    let port = serve(fd.clone()).await;
    let (mut sock, peer) = director(port, "test-dir", "dir-fd-password")
        .await
        .expect("login");
    assert_eq!(peer.established.peer_version, Some(hello::FD_VERSION_V13));
    sock.send_text("JobId=0 Job=-Console-.1 SDid=0 SDtime=0 Authorization=dummy\n")
        .await
        .unwrap();
    let reply = sock.recv_timeout(Duration::from_secs(5)).await.unwrap();
    let reply = reply.text().unwrap();
    assert!(reply.starts_with("2000 OK Job "), "{reply}");
    assert!(!reply.ends_with('\n'), "{reply:?}");

    let status = ask(&mut sock, "status").await.concat();
    assert!(status.starts_with("\ntest-fd Version: "), "{status}");
    assert!(status.contains("Director connected at: "), "{status}");
    assert!(
        status.contains("Connections:\n from Director \"test-dir\" at 127.0.0.1:"),
        "{status}"
    );

    let running = ask(&mut sock, ".status running api=2 api_opts=")
        .await
        .concat();
    assert!(running.contains("DirTLS=0\n"), "{running}");
    assert!(running.contains("Mode=clear\n"), "{running}");
    assert!(running.contains("TLSVersion=\n"), "{running}");
    let header = ask(&mut sock, ".status header").await.concat();
    assert!(header.starts_with("header:\nname=test-fd\n"), "{header}");
    assert_eq!(
        ask(&mut sock, ".status current").await,
        ["2000 OK .status\n"]
    );
    assert_eq!(
        ask(&mut sock, "cancel Job=nope.1\n").await,
        ["2901 Job nope.1 not found.\n"]
    );

    sock.send(&Packet::Signal(Signal::Heartbeat)).await.unwrap();
    sock.send(&Packet::Signal(Signal::Poll)).await.unwrap();
    let p = sock.recv_timeout(Duration::from_secs(5)).await.unwrap();
    assert_eq!(p.text().as_deref(), Some("2000 OK\n"));

    sock.send_text("setdebug=20 trace=0 hangup=0 blowup=0 options= tags=\n")
        .await
        .unwrap();
    let p = sock.recv_timeout(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        p.text().as_deref(),
        Some("2000 OK setdebug=20 trace=0 hangup=0 blowup=0 options= tags=\n")
    );
    let p = ask(&mut sock, ".status bogus").await;
    assert_eq!(p, ["2900 Bad .status command, wrong argument.\n"]);
    // The FD ends the conversation after a bad .status.
    let p = sock.recv_timeout(Duration::from_secs(5)).await;
    assert!(
        matches!(p, Ok(Packet::Signal(Signal::Terminate)) | Err(_)),
        "{p:?}"
    );
}

#[tokio::test]
async fn invalid_command_and_bad_job_line_end_the_conversation() {
    let fd = daemon();
    let port = serve(fd.clone()).await;
    let (mut sock, _) = director(port, "test-dir", "dir-fd-password").await.unwrap();
    sock.send_text("status").await.unwrap();
    let p = sock.recv_timeout(Duration::from_secs(5)).await.unwrap();
    assert_eq!(p.text().as_deref(), Some("2901 Bad Job\n"));
    let p = sock.recv_timeout(Duration::from_secs(5)).await.unwrap();
    assert_eq!(p, Packet::Signal(Signal::Terminate));

    let (mut sock, _) = director(port, "test-dir", "dir-fd-password").await.unwrap();
    sock.send_text("JobId=0 Job=x SDid=0 SDtime=0 Authorization=dummy")
        .await
        .unwrap();
    sock.recv_timeout(Duration::from_secs(5)).await.unwrap();
    sock.send_text("frobnicate\n").await.unwrap();
    let p = sock.recv_timeout(Duration::from_secs(5)).await.unwrap();
    assert_eq!(p.text().as_deref(), Some("2999 Invalid command\n"));
    let p = sock.recv_timeout(Duration::from_secs(5)).await.unwrap();
    assert_eq!(p, Packet::Signal(Signal::Terminate));
    assert_eq!(
        fd.links.count("Director"),
        0,
        "links are removed on disconnect"
    );
}

#[tokio::test]
async fn monitor_may_only_ask_status() {
    let fd = daemon();
    let port = serve(fd.clone()).await;
    let (mut sock, _) = director(port, "test-mon", "mon-password").await.unwrap();
    // A monitor needs no job line.
    let status = ask(&mut sock, "status").await.concat();
    assert!(status.contains("Director connected at: "), "{status}");
    let p = ask(&mut sock, "setdebug=1 trace=0 hangup=0").await;
    assert_eq!(p, ["2999 Invalid command\n"]);
    let header = ask(&mut sock, ".status header").await.concat();
    assert!(header.starts_with("header:\n"), "{header}");
}

#[tokio::test]
async fn wrong_password_and_unknown_director_are_refused() {
    let fd = daemon();
    let port = serve(fd.clone()).await;
    let e = director(port, "test-dir", "wrong")
        .await
        .expect_err("refused");
    assert_eq!(
        login::FailureClass::of(&e),
        login::FailureClass::WrongPassword
    );
    let e = director(port, "other-dir", "dir-fd-password")
        .await
        .expect_err("refused");
    assert_eq!(
        login::FailureClass::of(&e),
        login::FailureClass::Other,
        "{e}"
    );
}

#[tokio::test]
async fn bad_input_is_dropped_and_the_daemon_keeps_serving() {
    let fd = daemon();
    let port = serve(fd.clone()).await;
    // A 2 GB length header: dropped at once.
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    raw.write_all(&[0x7f, 0xff, 0xff, 0xff, 1, 2, 3, 4])
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), raw.read(&mut buf))
        .await
        .expect("closed at once")
        .unwrap_or(0);
    assert_eq!(n, 0);
    // Half a Hello: closed by the 3 s auth timeout.
    let mut half = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    half.write_all(&[0, 0, 0, 40, b'H', b'e', b'l'])
        .await
        .unwrap();
    let start = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(6), half.read(&mut buf))
        .await
        .expect("closed by the auth timeout")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    // Still serving.
    let (mut sock, _) = director(port, "test-dir", "dir-fd-password").await.unwrap();
    sock.send_text("JobId=0 Job=x SDid=0 SDtime=0 Authorization=dummy")
        .await
        .unwrap();
    let p = sock.recv_timeout(Duration::from_secs(5)).await.unwrap();
    assert!(p.text().unwrap().starts_with("2000 OK Job"));
}

/// A loopback Storage daemon accepting one FD data connection for `job`
/// with the raw session `key`; returns the port and what the SD saw.
async fn storage(
    job: &'static str,
    key: &'static str,
) -> (u16, tokio::task::JoinHandle<Option<String>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.ok()?;
        let setup = ServerSetup {
            config: ServerConfig {
                kind: ServerKind::StorageClient,
                name: "test-sd".into(),
                version: hello::SD_VERSION_V96,
                version_text: String::new(),
                dialect: Dialect::V13,
            },
            timeout: Duration::from_secs(5),
            damping: false,
        };
        let (mut sock, peer) = baculink_net::accept(BSock::new(tcp), &setup, |h| {
            (h.name() == job).then(|| {
                login::peer_setup(
                    Secret::new(key.as_bytes()),
                    &TlsSettings::default(),
                    None,
                    "test-sd",
                    format!("File daemon of job {job}"),
                )
            })
        })
        .await
        .ok()?;
        let hello = peer.established.peer_hello.map(|h| h.to_string());
        let p = sock.recv_timeout(Duration::from_secs(5)).await.ok()?;
        Some(format!("{} / {}", hello.unwrap_or_default(), p.text()?))
    });
    (port, task)
}

#[tokio::test]
async fn connect_to_sd_uses_the_raw_session_key() {
    let fd = daemon();
    let (port, sd) = storage("Backup.2026-01-01_00.00.00_01", "sessionkey123").await;
    let link = fd
        .connect_to_sd(
            "127.0.0.1",
            port,
            "Backup.2026-01-01_00.00.00_01",
            &Secret::new(b"sessionkey123".to_vec()),
        )
        .await
        .expect("FD -> SD login");
    assert_eq!(
        link.peer.established.peer_version,
        Some(hello::SD_VERSION_V96)
    );
    assert_eq!(fd.links.count("Storage daemon"), 1);
    let status = status::status_lines(&fd).concat();
    assert!(
        status.contains(" to Storage daemon at 127.0.0.1:"),
        "{status}"
    );
    let mut sock = link.sock;
    sock.send_text("append open session\n").await.unwrap();
    let seen = sd.await.unwrap().expect("SD accepted");
    assert!(
        seen.starts_with("Hello Bacula SD: Start Job Backup.2026-01-01_00.00.00_01 14"),
        "{seen}"
    );
    assert!(seen.ends_with("append open session\n"), "{seen}");
    drop(link._link);
    assert_eq!(fd.links.count("Storage daemon"), 0);

    // A wrong key is refused; no link is left behind.
    let (port, _sd) = storage("J.1", "right").await;
    let e = fd
        .connect_to_sd("127.0.0.1", port, "J.1", &Secret::new(b"wrong".to_vec()))
        .await
        .err()
        .expect("refused");
    assert_eq!(
        login::FailureClass::of(&e),
        login::FailureClass::WrongPassword,
        "{e}"
    );
    assert_eq!(fd.links.count("Storage daemon"), 0);
}

/// A loopback Storage daemon that authenticates the FD of `job` with `key`
/// and then hands the data connection to `script`.
async fn scripted_sd<F, Fut, T>(
    job: &'static str,
    key: &'static str,
    script: F,
) -> (u16, tokio::task::JoinHandle<Option<T>>)
where
    F: FnOnce(BSock) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + Send,
    T: Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.ok()?;
        let setup = ServerSetup {
            config: ServerConfig {
                kind: ServerKind::StorageClient,
                name: "test-sd".into(),
                version: hello::SD_VERSION_V96,
                version_text: String::new(),
                dialect: Dialect::V13,
            },
            timeout: Duration::from_secs(5),
            damping: false,
        };
        let (sock, _) = baculink_net::accept(BSock::new(tcp), &setup, |h| {
            (h.name() == job).then(|| {
                login::peer_setup(
                    Secret::new(key.as_bytes()),
                    &TlsSettings::default(),
                    None,
                    "test-sd",
                    format!("File daemon of job {job}"),
                )
            })
        })
        .await
        .ok()?;
        Some(script(sock).await)
    });
    (port, task)
}

/// Next packet within 10 s (panics on timeout or error).
async fn next(sock: &mut BSock) -> Packet {
    sock.recv_timeout(Duration::from_secs(10))
        .await
        .expect("packet")
}

/// Sends a command and expects exactly `reply` (Jmsg lines skipped).
async fn expect(sock: &mut BSock, cmd: &str, reply: &str) {
    sock.send_text(cmd).await.unwrap();
    let got = reply_skipping_jmsg(sock).await;
    assert_eq!(got, reply, "reply to {cmd:?}");
}

/// The next text packet that is not a Jmsg line.
async fn reply_skipping_jmsg(sock: &mut BSock) -> String {
    loop {
        match next(sock).await {
            Packet::Data(d) => {
                let t = c_text(&d);
                if !t.starts_with("Jmsg ") {
                    return t;
                }
            }
            Packet::Signal(s) => panic!("unexpected {s:?}"),
        }
    }
}

/// A Director's job session up to (and including) `storage`.
async fn job_setup(port: u16, sd_port: u16, job: &str, key: &str, root: &Path) -> BSock {
    job_setup_with(port, sd_port, job, key, root, "O M\n").await
}

/// [`job_setup`] with another Options line.
async fn job_setup_with(
    port: u16,
    sd_port: u16,
    job: &str,
    key: &str,
    root: &Path,
    options: &str,
) -> BSock {
    let (mut dir, _) = director(port, "test-dir", "dir-fd-password").await.unwrap();
    dir.send_text(&format!(
        "JobId=7 Job={job} SDid=1 SDtime=2 Authorization={key}\n"
    ))
    .await
    .unwrap();
    assert!(next(&mut dir)
        .await
        .text()
        .unwrap()
        .starts_with("2000 OK Job"));
    expect(&mut dir, "level = full  mtime_only=0 \n", "2000 OK level\n").await;
    for l in ["fileset vss=1\n", "I\n", options, "N\n"] {
        dir.send_text(l).await.unwrap();
    }
    dir.send_text(&format!("F {}", root.display()))
        .await
        .unwrap();
    dir.send_text("N\n").await.unwrap();
    dir.signal(Signal::Eod).await.unwrap();
    assert_eq!(reply_skipping_jmsg(&mut dir).await, "2000 OK include\n");
    expect(
        &mut dir,
        &format!("storage address=127.0.0.1 port={sd_port} ssl=0\n"),
        "2000 OK storage\n",
    )
    .await;
    dir
}

/// The FD's end-of-job line (Jmsg lines skipped), then its TERMINATE.
async fn end_line(dir: &mut BSock) -> EndJob {
    end_line_and_jmsgs(dir).await.0
}

/// The FD's end-of-job line and the Jmsg lines before it.
async fn end_line_and_jmsgs(dir: &mut BSock) -> (EndJob, Vec<String>) {
    let mut jmsgs = Vec::new();
    let line = loop {
        let t = next(dir).await.text().expect("text");
        if t.starts_with("Jmsg ") {
            jmsgs.push(t);
        } else {
            break t;
        }
    };
    let e = EndJob::decode(&line).unwrap_or_else(|_| panic!("{line:?}"));
    assert_eq!(next(dir).await, Packet::Signal(Signal::Terminate));
    (e, jmsgs)
}

/// A fake SD's append session: records every packet of the record stream.
async fn append_sd(mut sd: BSock) -> Vec<Packet> {
    assert_eq!(next(&mut sd).await.text().unwrap(), "append open session\n");
    sd.send_text("3000 OK open ticket = 4\n").await.unwrap();
    assert_eq!(next(&mut sd).await.text().unwrap(), "append data 4\n");
    sd.signal(Signal::Heartbeat).await.unwrap();
    sd.send_text("3000 OK data\n").await.unwrap();
    let mut got = Vec::new();
    let mut last_eod = false;
    loop {
        let p = next(&mut sd).await;
        let eod = p == Packet::Signal(Signal::Eod);
        if eod && last_eod {
            break;
        }
        last_eod = eod;
        got.push(p);
    }
    sd.send_text("3000 OK append data\n").await.unwrap();
    assert_eq!(
        next(&mut sd).await.text().unwrap(),
        "append end session 4\n"
    );
    sd.send_text("3000 OK end\n").await.unwrap();
    assert_eq!(
        next(&mut sd).await.text().unwrap(),
        "append close session 4\n"
    );
    sd.send_text("3000 OK close Status = 84\n").await.unwrap();
    sd.signal(Signal::Eod).await.unwrap();
    assert_eq!(next(&mut sd).await, Packet::Signal(Signal::Terminate));
    got
}

fn md5(data: &[u8]) -> Vec<u8> {
    openssl::hash::hash(openssl::hash::MessageDigest::md5(), data)
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn backup_record_stream_to_a_scripted_sd() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    let big: Vec<u8> = (0..150_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(root.join("sub/big"), &big).unwrap();
    std::fs::write(root.join("empty"), b"").unwrap();
    std::os::unix::fs::symlink("sub/big", root.join("link")).unwrap();

    let fd = daemon();
    let port = serve(fd.clone()).await;
    let (sd_port, sd) = scripted_sd("B.1", "KEYB", append_sd).await;
    let mut dir = job_setup(port, sd_port, "B.1", "KEYB", &root).await;
    expect(&mut dir, "backup FileIndex=0\n", "2000 OK backup\n").await;
    let end = end_line(&mut dir).await;
    assert_eq!(end.term_code, JobStatus::OK);
    assert_eq!(end.job_files, 5, "data/, sub/, sub/big, empty, link");
    assert_eq!(
        (end.read_bytes, end.job_bytes, end.errors),
        (150_000, 150_000, 0)
    );

    // Split the stream into (header, packets) streams.
    let packets = sd.await.unwrap().expect("SD ran");
    let mut streams: Vec<(StreamHeader, Vec<Vec<u8>>)> = Vec::new();
    let mut it = packets.into_iter();
    while let Some(Packet::Data(h)) = it.next() {
        let header = StreamHeader::decode(&h).unwrap();
        let mut body = Vec::new();
        for p in it.by_ref() {
            match p {
                Packet::Data(d) => {
                    assert!(
                        !d.is_empty() && d.len() <= 65536,
                        "data packet of {} bytes",
                        d.len()
                    );
                    body.push(d.to_vec());
                }
                Packet::Signal(Signal::Eod) => break,
                other => panic!("{other:?}"),
            }
        }
        streams.push((header, body));
    }
    let mut names = Vec::new();
    for (h, body) in &streams {
        if h.stream == stream::UNIX_ATTRIBUTES {
            let r = AttrRecord::decode(&body[0]).unwrap();
            assert_eq!(r.file_index, h.file_index);
            names.push((
                String::from_utf8(r.fname.clone()).unwrap(),
                r.file_type,
                r.link.clone(),
            ));
        }
    }
    let rel: Vec<(String, i32)> = names
        .iter()
        .map(|(n, t, _)| {
            (
                n.strip_prefix(&root.display().to_string())
                    .unwrap()
                    .to_string(),
                *t,
            )
        })
        .collect();
    let want: Vec<(String, i32)> = [
        ("/empty", ft::REGE),
        ("/link", ft::LNK),
        ("/sub/big", ft::REG),
        ("/sub/", ft::DIREND),
        ("/", ft::DIREND),
    ]
    .iter()
    .map(|(n, t)| (n.to_string(), *t))
    .collect();
    assert_eq!(rel, want, "directories after their contents");
    assert_eq!(names[1].2, b"sub/big");
    // big: attributes, data in 64 KiB packets, MD5; empty: attributes + MD5.
    let big_fi = streams
        .iter()
        .find(|(h, b)| {
            h.stream == 1
                && AttrRecord::decode(&b[0])
                    .unwrap()
                    .fname
                    .ends_with(b"/sub/big")
        })
        .unwrap()
        .0
        .file_index;
    let data: Vec<u8> = streams
        .iter()
        .filter(|(h, _)| h.file_index == big_fi && h.stream == stream::FILE_DATA)
        .flat_map(|(h, b)| {
            assert_eq!(h.size, 150_000);
            assert_eq!(
                b.iter().map(Vec::len).collect::<Vec<_>>(),
                [65536, 65536, 18928]
            );
            b.concat()
        })
        .collect();
    assert_eq!(data, big);
    let digest = streams
        .iter()
        .find(|(h, _)| h.file_index == big_fi && h.stream == stream::MD5_DIGEST)
        .expect("MD5 stream");
    assert_eq!(digest.1.concat(), md5(&big));
    let empty_md5 = streams
        .iter()
        .filter(|(h, _)| h.stream == stream::MD5_DIGEST)
        .count();
    assert_eq!(
        empty_md5, 2,
        "digests for regular files only, empty ones too"
    );
    assert!(fd.jobs.running().is_empty());
    assert_eq!(fd.jobs.finished()[0].status, JobStatus::OK);
}

#[tokio::test]
async fn a_storage_daemon_that_drops_mid_job_fails_the_job() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("f"), vec![1u8; 300_000]).unwrap();
    let fd = daemon();
    let port = serve(fd.clone()).await;
    let (sd_port, _sd) = scripted_sd("D.1", "KEYD", |mut sd: BSock| async move {
        assert_eq!(next(&mut sd).await.text().unwrap(), "append open session\n");
        sd.send_text("3000 OK open ticket = 1\n").await.unwrap();
        next(&mut sd).await;
        sd.send_text("3000 OK data\n").await.unwrap();
        next(&mut sd).await;
        // Gone.
    })
    .await;
    // Unsupported options are reported as warnings once the job runs.
    let mut dir = job_setup_with(port, sd_port, "D.1", "KEYD", tmp.path(), "O MZ6s\n").await;
    let start = Instant::now();
    dir.send_text("backup FileIndex=0\n").await.unwrap();
    assert_eq!(next(&mut dir).await.text().unwrap(), "2000 OK backup\n");
    let (end, jmsgs) = end_line_and_jmsgs(&mut dir).await;
    assert_eq!(end.term_code, JobStatus::FATAL_ERROR);
    let all = jmsgs.concat();
    assert!(
        all.contains("Jmsg JobId=7 type=5 ")
            && all.contains("test-fd JobId 7: Warning: FileSet: compression"),
        "{all}"
    );
    assert!(all.contains("sparse"), "{all}");
    assert!(
        all.contains("type=3 ") && all.contains("Fatal error: Backup failed"),
        "{all}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn cancel_from_another_connection_stops_a_waiting_backup() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("f"), b"x").unwrap();
    let fd = daemon();
    let port = serve(fd.clone()).await;
    // The SD never says "3000 OK data" (a volume that never mounts).
    let (sd_port, _sd) = scripted_sd("C.1", "KEYC", |mut sd: BSock| async move {
        next(&mut sd).await;
        sd.send_text("3000 OK open ticket = 1\n").await.unwrap();
        next(&mut sd).await;
        loop {
            if sd.recv().await.is_err() {
                break;
            }
        }
    })
    .await;
    let mut dir = job_setup(port, sd_port, "C.1", "KEYC", tmp.path()).await;
    expect(&mut dir, "backup FileIndex=0\n", "2000 OK backup\n").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = status::status_lines(&fd).concat();
    assert!(status.contains("JobId 7 Job C.1 is running."), "{status}");
    let running = status::dot_status(&fd, ".status running api=2")
        .unwrap()
        .concat();
    assert!(
        running.starts_with("JobId=7\nJob=C.1\nVSS=0\nLevel=F\nType=B\nStatus=R\nJobFiles="),
        "{running}"
    );

    let (mut other, _) = director(port, "test-dir", "dir-fd-password").await.unwrap();
    other
        .send_text("JobId=0 Job=-Console-.9 SDid=0 SDtime=0 Authorization=dummy\n")
        .await
        .unwrap();
    next(&mut other).await;
    assert_eq!(
        ask(&mut other, "cancel Job=C.1\n").await,
        ["2001 Job \"C.1\" marked to be canceled.\n"]
    );
    let end = end_line(&mut dir).await;
    assert_eq!(end.term_code, JobStatus::CANCELED);
    let status = status::status_lines(&fd).concat();
    assert!(status.contains("Cancel"), "{status}");
}

fn attr_record(
    fi: i32,
    ftype: i32,
    name: &str,
    mode: u32,
    size: i64,
    mtime: i64,
    link: &str,
) -> Vec<u8> {
    AttrRecord {
        file_index: fi,
        file_type: ftype,
        fname: name.as_bytes().to_vec(),
        lstat: Stat {
            mode: i64::from(mode),
            size,
            atime: mtime,
            mtime,
            ctime: mtime,
            nlink: 1,
            data_stream: 2,
            uid: 0,
            gid: 0,
            ..Stat::default()
        }
        .encode(),
        link: link.as_bytes().to_vec(),
        attr_ex: Vec::new(),
        delta_seq: 0,
    }
    .encode()
}

#[tokio::test]
async fn restore_from_a_scripted_sd() {
    let tmp = tempfile::tempdir().unwrap();
    let where_ = tmp.path().join("where");
    let body = b"restored content\n".to_vec();
    let records: Vec<(i32, i32, Vec<u8>)> = vec![
        (
            1,
            1,
            attr_record(
                1,
                ft::REG,
                "/data/a/file",
                0o100640,
                body.len() as i64,
                1_600_000_000,
                "",
            ),
        ),
        (1, 2, body.clone()),
        (1, 3, md5(&body)),
        (
            2,
            1,
            attr_record(2, ft::REG, "/data/a/bad", 0o100600, 3, 1_600_000_000, ""),
        ),
        (2, 2, b"abc".to_vec()),
        (2, 3, md5(b"not abc")),
        (
            3,
            1,
            attr_record(
                3,
                ft::LNK,
                "/data/a/link",
                0o120777,
                0,
                1_600_000_100,
                "file",
            ),
        ),
        (
            4,
            1,
            attr_record(
                4,
                ft::REG,
                "/data/../../escape",
                0o100644,
                1,
                1_600_000_000,
                "",
            ),
        ),
        (4, 2, b"x".to_vec()),
        (
            5,
            1,
            attr_record(5, ft::DIREND, "/data/a/", 0o40751, 0, 1_600_000_200, ""),
        ),
        (
            6,
            1,
            attr_record(6, ft::REGE, "/data/empty", 0o100444, 0, 1_600_000_300, ""),
        ),
        (
            7,
            1,
            attr_record(7, ft::DIREND, "/data/", 0o40755, 0, 1_600_000_400, ""),
        ),
    ];
    let fd = daemon();
    let port = serve(fd.clone()).await;
    let (sd_port, _sd) = scripted_sd("R.1", "KEYR", move |mut sd: BSock| async move {
        assert_eq!(
            next(&mut sd).await.text().unwrap(),
            "read open session = DummyVolume 1 2 0 0 0 0\n"
        );
        sd.send_text("3000 OK open ticket = 3\n").await.unwrap();
        assert_eq!(next(&mut sd).await.text().unwrap(), "read data 3\n");
        sd.send_text("3000 OK data\n").await.unwrap();
        for (fi, st, data) in records {
            let h = RecHdr {
                vol_session_id: 1,
                vol_session_time: 99,
                file_index: fi,
                stream: st,
                data_len: data.len() as u32,
            };
            sd.send_text(&h.encode()).await.unwrap();
            sd.send(&Packet::data(&data)).await.unwrap();
        }
        sd.signal(Signal::Eod).await.unwrap();
        assert_eq!(
            next(&mut sd).await.text().unwrap(),
            "read close session 3\n"
        );
        sd.send_text("3000 OK close Status = 82\n").await.unwrap();
        sd.signal(Signal::Eod).await.unwrap();
        assert_eq!(next(&mut sd).await, Packet::Signal(Signal::Terminate));
    })
    .await;
    let (mut dir, _) = director(port, "test-dir", "dir-fd-password").await.unwrap();
    dir.send_text("JobId=8 Job=R.1 SDid=1 SDtime=2 Authorization=KEYR\n")
        .await
        .unwrap();
    next(&mut dir).await;
    expect(
        &mut dir,
        &format!("storage address=127.0.0.1 port={sd_port} ssl=0 Authorization=KEYR\n"),
        "2000 OK storage\n",
    )
    .await;
    expect(
        &mut dir,
        &format!(
            "restore files=7 replace=a prelinks=0 where={}\n",
            where_.display()
        ),
        "2000 OK restore\n",
    )
    .await;
    let mut jmsgs = Vec::new();
    loop {
        let t = next(&mut dir).await.text().unwrap();
        if t.starts_with("Jmsg ") {
            jmsgs.push(t);
            continue;
        }
        assert_eq!(t, "2000 OK storage end\n");
        break;
    }
    dir.send_text("endrestore").await.unwrap();
    let end = end_line(&mut dir).await;
    assert_eq!(end.term_code, JobStatus::OK);
    assert_eq!(end.job_files, 7);
    assert_eq!(end.errors, 2, "{jmsgs:?}");
    let all = jmsgs.concat();
    assert!(
        all.contains("type=4 ") && all.contains("digest mismatch"),
        "{all}"
    );
    assert!(all.contains("\"..\""), "{all}");
    assert!(!tmp.path().join("escape").exists());

    let d = where_.join("data");
    assert_eq!(std::fs::read(d.join("a/file")).unwrap(), body);
    let m = std::fs::metadata(d.join("a/file")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.mtime()), (0o640, 1_600_000_000));
    assert_eq!(
        std::fs::read_link(d.join("a/link")).unwrap(),
        Path::new("file")
    );
    assert_eq!(
        std::fs::symlink_metadata(d.join("a/link")).unwrap().mtime(),
        1_600_000_100
    );
    let m = std::fs::metadata(d.join("a")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.mtime()), (0o751, 1_600_000_200));
    let m = std::fs::metadata(d.join("empty")).unwrap();
    assert_eq!((m.len(), m.mode() & 0o7777), (0, 0o444));
    assert_eq!(std::fs::metadata(&d).unwrap().mtime(), 1_600_000_400);
}

#[tokio::test]
async fn estimate_counts_and_lists() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("f"), vec![0u8; 1234]).unwrap();
    std::fs::create_dir(tmp.path().join("d")).unwrap();
    let fd = daemon();
    let port = serve(fd.clone()).await;
    let (mut dir, _) = director(port, "test-dir", "dir-fd-password").await.unwrap();
    dir.send_text("JobId=0 Job=-Console-.3 SDid=0 SDtime=0 Authorization=dummy\n")
        .await
        .unwrap();
    next(&mut dir).await;
    expect(&mut dir, "level = full  mtime_only=0 \n", "2000 OK level\n").await;
    dir.send_text("fileset\n").await.unwrap();
    dir.send_text("I\n").await.unwrap();
    dir.send_text(&format!("F {}", tmp.path().display()))
        .await
        .unwrap();
    dir.send_text("N\n").await.unwrap();
    dir.signal(Signal::Eod).await.unwrap();
    assert_eq!(reply_skipping_jmsg(&mut dir).await, "2000 OK include\n");
    let out = ask(&mut dir, "estimate listing=1\n").await;
    assert_eq!(out.len(), 4, "{out:?}");
    assert!(
        out[0].starts_with("drwx") || out[1].starts_with("drwx"),
        "{out:?}"
    );
    assert!(
        out.iter()
            .any(|l| l.starts_with("-rw") && l.contains("1234") && l.ends_with("/f\n")),
        "{out:?}"
    );
    assert_eq!(out[3], "2000 OK estimate files=3 bytes=1,234\n");
}

#[tokio::test]
async fn a_storage_daemon_that_drops_mid_restore_fails_the_job() {
    let tmp = tempfile::tempdir().unwrap();
    let fd = daemon();
    let port = serve(fd.clone()).await;
    let (sd_port, _sd) = scripted_sd("RD.1", "KEYRD", |mut sd: BSock| async move {
        next(&mut sd).await;
        sd.send_text("3000 OK open ticket = 1\n").await.unwrap();
        next(&mut sd).await;
        sd.send_text("3000 OK data\n").await.unwrap();
        let rec = attr_record(1, ft::REG, "/d/f", 0o100644, 10, 1, "");
        let h = RecHdr {
            vol_session_id: 1,
            vol_session_time: 2,
            file_index: 1,
            stream: 1,
            data_len: rec.len() as u32,
        };
        sd.send_text(&h.encode()).await.unwrap();
        sd.send(&Packet::data(&rec)).await.unwrap();
        // Gone in the middle of the records.
    })
    .await;
    let (mut dir, _) = director(port, "test-dir", "dir-fd-password").await.unwrap();
    dir.send_text("JobId=9 Job=RD.1 SDid=1 SDtime=2 Authorization=KEYRD\n")
        .await
        .unwrap();
    next(&mut dir).await;
    expect(
        &mut dir,
        &format!("storage address=127.0.0.1 port={sd_port} ssl=0 Authorization=KEYRD\n"),
        "2000 OK storage\n",
    )
    .await;
    let start = Instant::now();
    expect(
        &mut dir,
        &format!(
            "restore files=1 replace=a prelinks=0 where={}\n",
            tmp.path().display()
        ),
        "2000 OK restore\n",
    )
    .await;
    let (end, jmsgs) = end_line_and_jmsgs(&mut dir).await;
    assert_eq!(end.term_code, JobStatus::FATAL_ERROR, "{jmsgs:?}");
    assert!(jmsgs.concat().contains("Restore failed"), "{jmsgs:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
}
