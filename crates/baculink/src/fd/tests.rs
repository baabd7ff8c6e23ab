//! Hermetic tests: parsers, and our own Director / Storage daemon roles on
//! loopback talking to the File daemon.

use std::time::Duration;

use baculink_conf::TlsSettings;
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
