//! Our Storage daemon: the real Bacula 9.6 Director asks it for `status
//! storage` (clear and certificate TLS); file daemons log in on the data
//! channel with a job's session key (TLS-PSK, certificate TLS, 9.6 clear
//! text; wrong key, unknown job and a second client refused); bad input is
//! closed within the login timeout while the Director is still served; and
//! `sd -t` checks a config.
//!
//! Jobs are pre-registered through the SD's test hook `BACULINK_TEST_JOB`
//! (`job:key[,job:key...]`), standing in for the Director's job setup.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baculink_conf::tls::TlsRole;
use baculink_conf::TlsSettings;
use baculink_interop::{baculink_bin, free_port, require_peers, Harness, OurDaemon};
use baculink_net::{BSock, ClientSetup, LoginError, Peer};
use baculink_proto::frame::{Packet, Signal};
use baculink_proto::handshake::{ClientConfig, Local};
use baculink_proto::hello::Hello;
use baculink_proto::negotiate::{Dialect, Mode, Needs};
use baculink_proto::Secret;
use baculink_tls::CertContext;

/// Our SD run with extra arguments and environment; killed on drop.
struct Sd {
    child: Child,
    log: PathBuf,
}

impl Sd {
    fn start(config: &Path, port: u16, log_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Sd {
        let log = log_dir.join("baculink-sd-test.log");
        let file = std::fs::File::create(&log).expect("create log");
        let mut cmd = Command::new(baculink_bin());
        cmd.args(["sd", "-f", "-d", "20", "-c"])
            .arg(config)
            .args(args)
            .env("NO_COLOR", "1")
            .stdout(file.try_clone().expect("dup log"))
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start baculink sd (build it first)");
        let mut sd = Sd { child, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !listening(port) {
            if let Ok(Some(st)) = sd.child.try_wait() {
                panic!("baculink sd exited with {st}:\n{}", sd.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "baculink sd did not listen on {port}:\n{}",
                sd.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sd
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Sd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a socket listens on this loopback port (from /proc: no probe
/// connection that the daemon would log as bad input).
fn listening(port: u16) -> bool {
    let hex = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|t| {
            t.lines().skip(1).any(|l| {
                let c: Vec<&str> = l.split_whitespace().collect();
                c.len() > 3 && c[1].ends_with(&hex) && c[3] == "0A"
            })
        })
    })
}

fn status_storage(h: &Harness) -> String {
    let out = h.bconsole(&["status storage"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_our_status(text: &str, logs: &str) {
    assert!(
        text.contains("(baculink)"),
        "our SD answered: {text}\n{logs}"
    );
    assert!(text.contains(". Jobs: run=0, running="), "{text}");
    assert!(text.contains(" Res: ndevices=1 nautochgr=0"), "{text}");
    assert!(text.contains("\nDevice status:\n"), "{text}");
    assert!(text.contains("Device File: \"FileStorage\""), "{text}");
    assert!(text.contains("\nConnections:\n"), "{text}");
}

fn real_director(mode: &str) {
    let h = Harness::start(mode, "dir", &[]);
    let ours = OurDaemon::start("sd", &h.etc("bacula-sd.conf"), h.sd_port, h.path());
    let text = status_storage(&h);
    let logs = format!("{}\n{}", ours.log_text(), h.logs());
    assert_our_status(&text, &logs);
    if mode == "clear" {
        assert!(
            text.contains("from Director \"bacula-dir\" at 127.0.0.1:"),
            "{text}"
        );
        assert!(text.contains("dialect 9.6, clear"), "{text}\n{logs}");
    } else {
        assert!(
            text.contains("dialect 9.6, certificate TLS, TLSv1.3"),
            "{text}\n{logs}"
        );
        assert!(text.contains("CN=bacula-dir"), "{text}");
    }
    // The 9.6 Director accepted our `3000 OK Hello 30007` (it needs >= 2).
    assert!(!text.contains("incompatible"), "{text}");
}

#[test]
fn real_director_status_storage_clear() {
    if require_peers("bacula") {
        real_director("clear");
    }
}

#[test]
fn real_director_status_storage_tls() {
    if require_peers("bacula") {
        real_director("tls");
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A file daemon's data-channel login: 13.x (FD version 14, TLS/PSK per
/// `tls`) or 9.6 (version 214, no `tlspsk`).
fn fd_setup(job: &str, key: &str, tls: &TlsSettings, dialect: Dialect) -> ClientSetup {
    let cert = if tls.enable {
        Some(Arc::new(
            CertContext::new(tls, TlsRole::Client).expect("client TLS context"),
        ))
    } else {
        None
    };
    let (fd_version, needs) = match dialect {
        Dialect::V13 => (14, tls.policy(TlsRole::Client).needs()),
        Dialect::V96 => (214, Needs::NONE),
    };
    ClientSetup {
        config: ClientConfig {
            hello: Hello::FdToSd {
                job: job.into(),
                fd_version,
                sd_version: None,
                tlspsk: None,
            },
            local: Local {
                key: Secret::new(key.as_bytes()),
                needs,
                authenticate: false,
                dialect,
                name: "test-fd".into(),
            },
        },
        cert,
        psk: None,
        host: "127.0.0.1".into(),
        allowed_cn: Vec::new(),
        timeout: Duration::from_secs(15),
        label: format!("our SD for job {job}"),
    }
}

async fn fd_login(port: u16, setup: &ClientSetup) -> Result<(BSock, Peer), LoginError> {
    baculink_net::connect("127.0.0.1", port, setup).await
}

/// A data-channel command gets the "not supported yet" error, then EOD.
async fn not_supported_yet(sock: &mut BSock) {
    sock.send_text("append open session\n").await.unwrap();
    let reply = sock.recv_timeout(Duration::from_secs(5)).await.unwrap();
    let text = reply.text().unwrap_or_default();
    assert!(text.contains("not supported yet"), "{text:?}");
    assert_eq!(
        sock.recv_timeout(Duration::from_secs(5)).await.unwrap(),
        Packet::Signal(Signal::Eod)
    );
}

fn write_sd_conf(dir: &Path, port: u16) -> PathBuf {
    let p = dir.join("bacula-sd.conf");
    std::fs::write(
        &p,
        format!(
            "Storage {{\n  Name = test-sd\n  SDAddress = 127.0.0.1\n  SDPort = {port}\n  \
             WorkingDirectory = \"{w}\"\n  Pid Directory = \"{w}\"\n}}\n\
             Director {{\n  Name = test-dir\n  Password = \"dir-pass\"\n}}\n\
             Device {{\n  Name = FileStorage\n  Media Type = File\n  Archive Device = \"{w}\"\n}}\n",
            w = dir.display()
        ),
    )
    .unwrap();
    p
}

/// Default TLS settings on both sides: TLS-PSK keyed with the session key.
#[test]
fn fd_data_channel_psk_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = write_sd_conf(dir.path(), port);
    let jobs = "Job.A:key-of-a,Job.B:key-of-b,Job.C:key-of-c";
    let mut sd = Sd::start(
        &conf,
        port,
        dir.path(),
        &["--auth-timeout", "5"],
        &[("BACULINK_TEST_JOB", jobs)],
    );
    let defaults = TlsSettings::default();
    rt().block_on(async {
        // Right key: PSK, TLS 1.3, the SD's final line.
        let (mut sock, peer) = fd_login(
            port,
            &fd_setup("Job.A", "key-of-a", &defaults, Dialect::V13),
        )
        .await
        .unwrap_or_else(|e| panic!("login: {e}\n{}", sd.log_text()));
        assert_eq!(peer.mode(), Mode::Psk);
        assert_eq!(peer.tls.as_ref().unwrap().version, "TLSv1.3");
        assert_eq!(
            peer.established.final_line.as_deref().map(str::trim_end),
            Some("3000 OK Hello 30007")
        );
        not_supported_yet(&mut sock).await;

        // A second client for the authenticated job is refused.
        let second = fd_login(
            port,
            &fd_setup("Job.A", "key-of-a", &defaults, Dialect::V13),
        )
        .await;
        assert!(second.is_err(), "second client for Job.A accepted");

        // Wrong key (the PSK handshake or CRAM-MD5 fails).
        let wrong = fd_login(
            port,
            &fd_setup("Job.B", "not-the-key", &defaults, Dialect::V13),
        )
        .await;
        assert!(wrong.is_err(), "wrong key accepted");

        // Unknown job.
        let unknown = fd_login(port, &fd_setup("No.Such.Job", "x", &defaults, Dialect::V13)).await;
        assert!(unknown.is_err(), "unknown job accepted");

        // A 9.6 file daemon (no tlspsk, version 214) against a Storage
        // resource without certificate TLS: CRAM-MD5 in clear, final line.
        let (mut sock96, p96) = fd_login(
            port,
            &fd_setup("Job.C", "key-of-c", &defaults, Dialect::V96),
        )
        .await
        .unwrap_or_else(|e| panic!("9.6 login: {e}\n{}", sd.log_text()));
        assert_eq!(p96.mode(), Mode::Clear);
        assert_eq!(
            p96.established.final_line.as_deref().map(str::trim_end),
            Some("3000 OK Hello 30007")
        );
        not_supported_yet(&mut sock96).await;
        sock96.signal(Signal::Terminate).await.unwrap();
        sock.signal(Signal::Terminate).await.unwrap();
    });
    std::thread::sleep(Duration::from_millis(300));
    let log = sd.log_text();
    assert!(
        log.contains("Client connect failed: Job name not found: No.Such.Job"),
        "{log}"
    );
    assert!(log.contains("already has an authenticated client"), "{log}");
    assert!(
        log.contains("Incorrect authorization key for job \"Job.B\""),
        "{log}"
    );
    assert!(!log.contains("key-of-"), "a session key was logged:\n{log}");
    assert!(sd.alive());
}

/// The harness's tls-mode Storage resource (TLS Enable + Require, Verify
/// Peer, Allowed CN bacula-fd): the FD presenting the bacula-fd certificate
/// gets certificate TLS; one without a certificate is refused.
#[test]
fn fd_data_channel_certificate_tls() {
    if !require_peers("bacula") {
        return;
    }
    let h = Harness::start("tls", "", &[]);
    let sd = Sd::start(
        &h.etc("bacula-sd.conf"),
        h.sd_port,
        h.path(),
        &["--auth-timeout", "5"],
        &[("BACULINK_TEST_JOB", "Cert.Job:k1,Cert.Job2:k2")],
    );
    let certs = h.path().join("certs");
    let mut tls = TlsSettings {
        enable: true,
        require: true,
        ca_file: Some(certs.join("ca.crt")),
        certificate: Some(certs.join("fd.crt")),
        key: Some(certs.join("fd.key")),
        ..TlsSettings::default()
    };
    rt().block_on(async {
        let (mut sock, peer) = fd_login(h.sd_port, &fd_setup("Cert.Job", "k1", &tls, Dialect::V13))
            .await
            .unwrap_or_else(|e| panic!("login: {e}\n{}", sd.log_text()));
        assert_eq!(peer.mode(), Mode::Tls);
        let facts = peer.tls.as_ref().unwrap();
        assert_eq!(facts.version, "TLSv1.3");
        assert!(
            facts
                .peer_subject
                .as_deref()
                .unwrap_or("")
                .contains("CN=bacula-sd"),
            "{facts:?}"
        );
        not_supported_yet(&mut sock).await;

        // No client certificate: the SD's Verify Peer refuses it.
        tls.certificate = None;
        tls.key = None;
        let r = fd_login(h.sd_port, &fd_setup("Cert.Job2", "k2", &tls, Dialect::V13)).await;
        assert!(r.is_err(), "FD without certificate accepted");
        sock.signal(Signal::Terminate).await.unwrap();
    });
}

/// Raw TCP bad input: each connection is closed within the login timeout
/// (3 s) plus a margin, each leaves one warning naming its address, and the
/// real Director's `status storage` still works afterwards.
#[test]
fn bad_input_then_real_director() {
    if !require_peers("bacula") {
        return;
    }
    let h = Harness::start("clear", "dir", &[]);
    let mut sd = Sd::start(
        &h.etc("bacula-sd.conf"),
        h.sd_port,
        h.path(),
        &["--auth-timeout", "3"],
        &[],
    );
    let port = h.sd_port;
    let malformed: Vec<u8> = {
        let text = b"Hello this is no storage daemon hello at all\n";
        let mut v = (text.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(text);
        v
    };
    let huge = vec![0x7f, 0xff, 0xff, 0xff, b'a', b'b', b'c', b'd'];
    let half: Vec<u8> = {
        let text = b"Hello SD: Bacula Director bacula-dir calling 103\n";
        let mut v = (text.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(&text[..text.len() / 2]);
        v
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("malformed Hello", malformed),
        ("2 GB header", huge),
        ("silence", Vec::new()),
        ("half a Hello", half),
    ];
    let threads: Vec<_> = cases
        .into_iter()
        .map(|(name, bytes)| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                let local = s.local_addr().unwrap().to_string();
                let t0 = Instant::now();
                if !bytes.is_empty() {
                    s.write_all(&bytes).unwrap();
                }
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let mut buf = [0u8; 256];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => continue, // e.g. BNET_TERMINATE before the close
                    }
                }
                (name, local, t0.elapsed())
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    std::thread::sleep(Duration::from_millis(500));
    let log = sd.log_text();
    for (name, local, took) in &results {
        assert!(
            *took < Duration::from_secs(9),
            "{name}: closed after {took:?}\n{log}"
        );
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("WARN") && l.contains(local.as_str()))
            .collect();
        assert_eq!(lines.len(), 1, "{name}: one warning naming {local}:\n{log}");
    }
    assert!(!log.contains("panicked"), "{log}");
    assert!(sd.alive(), "SD died:\n{log}");
    let text = status_storage(&h);
    assert_our_status(&text, &format!("{}\n{}", sd.log_text(), h.logs()));
}

/// `sd -t`: a config error names file:line and exits 1; a good one exits 0.
#[test]
fn config_test_flag() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_sd_conf(dir.path(), free_port());
    let st = Command::new(baculink_bin())
        .args(["sd", "-t", "-c"])
        .arg(&good)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        st.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let bad = dir.path().join("bad-sd.conf");
    let text =
        std::fs::read_to_string(&good)
            .unwrap()
            .replacen("SDPort = ", "SDPort = not-a-port ", 1);
    std::fs::write(&bad, text).unwrap();
    let st = Command::new(baculink_bin())
        .args(["sd", "-t", "-c"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&st.stderr);
    assert_eq!(st.status.code(), Some(1), "{err}");
    assert!(err.contains("bad-sd.conf:4"), "file:line in {err}");
}
