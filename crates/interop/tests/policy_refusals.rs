//! Refusals end the connection with the specific message on both ends: our
//! Director (a daemon run from a config file) and our console-side probe.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use baculink_interop::{free_port, probe, require_peers, OurDaemon};
use baculink_proto::cram;
use baculink_proto::frame::{self, Decoder, Packet};
use baculink_proto::Secret;
use baculink_tls::certgen::{self, Ca};

struct Setup {
    dir: tempfile::TempDir,
    port: u16,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        std::fs::create_dir_all(&certs).unwrap();
        let ca = Ca::new("policy test CA").unwrap();
        certgen::write_cert_pem(&certs.join("ca.pem"), &ca.cert).unwrap();
        for cn in ["bacula-dir", "bconsole"] {
            let (c, k) = ca
                .issue(cn, &["localhost"], &["127.0.0.1".parse().unwrap()], 30)
                .unwrap();
            certgen::write_pem_files(&certs, cn, &c, &k).unwrap();
        }
        Setup {
            dir,
            port: free_port(),
        }
    }

    fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    fn cert_lines(&self, who: &str) -> String {
        let c = self.certs();
        format!(
            "  TLS CA Certificate File = \"{c}/ca.pem\"\n  TLS Certificate = \"{c}/{who}.pem\"\n  TLS Key = \"{c}/{who}.key\"\n",
            c = c.display()
        )
    }

    /// Starts our director whose Director resource has these TLS lines.
    fn director(&self, tls: &str) -> OurDaemon {
        let conf = self.dir.path().join("bacula-dir.conf");
        std::fs::write(
            &conf,
            format!(
                "Director {{\n  Name = bacula-dir\n  DIRAddress = 127.0.0.1\n  DIRport = {}\n  Password = \"right-password\"\n  \
                 WorkingDirectory = \"{w}\"\n  PidDirectory = \"{w}\"\n  Messages = Daemon\n{tls}}}\n\
                 Messages {{\n  Name = Daemon\n  console = all\n}}\n",
                self.port,
                w = self.dir.path().display()
            ),
        )
        .unwrap();
        OurDaemon::start("dir", &conf, self.port, self.dir.path())
    }

    /// A bconsole.conf with this password and TLS lines.
    fn console(&self, name: &str, password: &str, tls: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(
            &p,
            format!(
                "Director {{\n  Name = bacula-dir\n  Address = 127.0.0.1\n  DIRport = {}\n  Password = \"{password}\"\n{tls}}}\n",
                self.port
            ),
        )
        .unwrap();
        p
    }
}

/// Waits until the daemon's log contains `needle`.
fn log_contains(d: &OurDaemon, needle: &str) -> bool {
    for _ in 0..100 {
        if d.log_text().contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn director_requires_tls_console_offers_none() {
    if !require_peers("openssl") {
        return;
    }
    let s = Setup::new();
    let tls = format!("  TLS Enable = yes\n  TLS Require = yes\n  TLS PSK Enable = no\n  TLS Verify Peer = no\n{}", s.cert_lines("bacula-dir"));
    let d = s.director(&tls);
    let con = s.console("plain.conf", "right-password", "  TLS PSK Enable = no\n");
    let run = probe(&con, &["--command", "version"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("TLS policy mismatch"), "{}", run.stderr);
    assert!(
        run.stderr.contains("TLS Require"),
        "names the directive: {}",
        run.stderr
    );
    assert!(log_contains(&d, "TLS policy mismatch"), "{}", d.log_text());
}

#[test]
fn console_requires_tls_director_offers_none() {
    if !require_peers("openssl") {
        return;
    }
    let s = Setup::new();
    let d = s.director("  TLS PSK Enable = no\n");
    let tls = format!(
        "  TLS Enable = yes\n  TLS Require = yes\n  TLS PSK Enable = no\n{}",
        s.cert_lines("bconsole")
    );
    let con = s.console("tls.conf", "right-password", &tls);
    let run = probe(&con, &["--command", "version"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("TLS policy mismatch"), "{}", run.stderr);
    assert!(log_contains(&d, "TLS policy mismatch"), "{}", d.log_text());
}

#[test]
fn allowed_cn_mismatch() {
    if !require_peers("openssl") {
        return;
    }
    let s = Setup::new();
    let tls = format!(
        "  TLS Enable = yes\n  TLS Require = yes\n  TLS Verify Peer = yes\n  TLS Allowed CN = \"someone-else\"\n{}",
        s.cert_lines("bacula-dir")
    );
    let d = s.director(&tls);
    let con = s.console(
        "cn.conf",
        "right-password",
        &format!(
            "  TLS Enable = yes\n  TLS Require = yes\n{}",
            s.cert_lines("bconsole")
        ),
    );
    let run = probe(&con, &["--command", "version"]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(log_contains(&d, "Allowed CN"), "{}", d.log_text());
}

#[test]
fn wrong_password_psk_and_clear() {
    if !require_peers("openssl") {
        return;
    }
    let s = Setup::new();
    let d = s.director("");
    // Default settings: PSK keyed by the password, so the TLS handshake fails.
    let run = probe(
        &s.console("psk.conf", "wrong-password", ""),
        &["--command", "version"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("wrong password"), "{}", run.stderr);
    // Without PSK the CRAM-MD5 exchange catches it.
    drop(d);
    let s = Setup::new();
    let d = s.director("  TLS PSK Enable = no\n");
    let run = probe(
        &s.console("clear.conf", "wrong-password", "  TLS PSK Enable = no\n"),
        &["--command", "version"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("wrong password"), "{}", run.stderr);
    assert!(log_contains(&d, "wrong password"), "{}", d.log_text());
    for secret in ["wrong-password", "right-password"] {
        assert!(
            !d.log_text().contains(secret),
            "a password leaked into the log: {}",
            d.log_text()
        );
        assert!(
            !run.stderr.contains(secret),
            "a password leaked: {}",
            run.stderr
        );
    }
}

fn send(tcp: &mut TcpStream, payload: &[u8]) {
    let mut out = bytes::BytesMut::new();
    frame::encode(&Packet::data(payload), false, &mut out).unwrap();
    tcp.write_all(&out).unwrap();
}

fn recv(tcp: &mut TcpStream, d: &mut Decoder) -> Option<Packet> {
    loop {
        if let Ok(Some(p)) = d.next_packet() {
            return Some(p);
        }
        let mut buf = [0u8; 4096];
        match tcp.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => d.push(&buf[..n]),
        }
    }
}

/// A 9.6-style console that agrees to TLS (ssl=2) and then keeps talking
/// clear text: our director must refuse it, not serve it.
#[test]
fn peer_ignoring_agreed_tls_is_refused() {
    if !require_peers("openssl") {
        return;
    }
    let s = Setup::new();
    let tls = format!(
        "  TLS Enable = yes\n  TLS Require = yes\n  TLS Verify Peer = no\n{}",
        s.cert_lines("bacula-dir")
    );
    let d = s.director(&tls);
    let key = Secret::from_password("right-password");
    let mut tcp = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut dec = Decoder::new();
    send(&mut tcp, b"Hello *UserAgent* calling 100\n");
    let chal = recv(&mut tcp, &mut dec).expect("challenge");
    let chal = cram::parse_challenge(chal.payload().unwrap()).unwrap();
    assert_eq!(chal.ssl, Some(baculink_proto::negotiate::Need::Required));
    send(&mut tcp, &cram::response(&key, &chal));
    assert_eq!(
        recv(&mut tcp, &mut dec).unwrap().payload().unwrap(),
        cram::AUTH_OK
    );
    let token = cram::token(1, 2, "bconsole");
    send(
        &mut tcp,
        &cram::challenge_line(&token, baculink_proto::negotiate::Need::Required),
    );
    let resp = recv(&mut tcp, &mut dec).expect("response");
    assert!(cram::verify(&key, &token, resp.payload().unwrap(), false));
    send(&mut tcp, cram::AUTH_OK);
    // Here a TLS ClientHello is due; send a command in clear instead.
    send(&mut tcp, b"version");
    let next = recv(&mut tcp, &mut dec);
    assert!(
        next.is_none()
            || next
                .as_ref()
                .and_then(|p| p.text())
                .is_some_and(|t| !t.contains("Version:")),
        "the director served a peer that ignored TLS: {next:?}"
    );
    assert!(
        log_contains(&d, "continued in clear text"),
        "{}",
        d.log_text()
    );
}

/// Silence, garbage, a 2 GB header and half a Hello: each connection is
/// closed within the login timeout with a log line, and the director keeps
/// serving a real login afterwards.
#[test]
fn director_survives_bad_input() {
    if !require_peers("openssl") {
        return;
    }
    let s = Setup::new();
    let conf_dir = s.dir.path();
    let conf = conf_dir.join("bacula-dir.conf");
    std::fs::write(
        &conf,
        format!(
            "Director {{\n  Name = bacula-dir\n  DIRAddress = 127.0.0.1\n  DIRport = {}\n  Password = \"right-password\"\n  \
             WorkingDirectory = \"{w}\"\n  PidDirectory = \"{w}\"\n  Messages = Daemon\n}}\n\
             Messages {{\n  Name = Daemon\n  console = all\n}}\n",
            s.port,
            w = conf_dir.display()
        ),
    )
    .unwrap();
    let d = OurDaemon::start_with("dir", &conf, s.port, conf_dir, &["--auth-timeout", "3"]);
    let inputs: [(&str, Vec<u8>); 4] = [
        ("malformed Hello", {
            let mut v = Vec::new();
            v.extend_from_slice(&20u32.to_be_bytes());
            v.extend_from_slice(b"Goodbye cruel world!");
            v
        }),
        ("2 GB header", vec![0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]),
        ("silence", Vec::new()),
        ("half a Hello", {
            let mut v = Vec::new();
            v.extend_from_slice(&41u32.to_be_bytes());
            v.extend_from_slice(b"Hello *UserAgent* ca");
            v
        }),
    ];
    let mut socks = Vec::new();
    for (what, bytes) in &inputs {
        let mut tcp = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        tcp.write_all(bytes).unwrap();
        socks.push((what, tcp, std::time::Instant::now()));
    }
    // A legitimate console gets in while the bad ones are pending.
    let ok = probe(
        &s.console("good.conf", "right-password", ""),
        &["--command", "version"],
    );
    assert_eq!(ok.code, 0, "{}\n{}", ok.stderr, d.log_text());
    for (what, mut tcp, t0) in socks {
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 64];
        let closed = loop {
            match tcp.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    break false
                }
                Err(_) => break true,
            }
        };
        assert!(closed, "{what}: connection not closed\n{}", d.log_text());
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "{what}: closed only after {:?}",
            t0.elapsed()
        );
    }
    let mut log = d.log_text();
    for _ in 0..50 {
        if log.matches("console login from").count() >= 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        log = d.log_text();
    }
    assert!(
        log.matches("console login from").count() >= 4,
        "one log line per bad connection:\n{log}"
    );
    assert!(log.contains("exceeds the 1000000-byte limit"), "{log}");
    assert!(log.contains("did not finish within 3 s"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[allow(dead_code)]
fn exists(p: &Path) -> bool {
    p.exists()
}
