//! Shared test helpers: certificate fixtures, the `openssl` binary as a peer, timeouts.
#![allow(dead_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baculink_conf::TlsSettings;
use baculink_tls::certgen::{write_pem_files, Ca, LeafSpec};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// Upper bound for any single wait in these tests.
pub const WAIT: Duration = Duration::from_secs(15);

/// Whether the `openssl` tool is there. Missing tool fails the test unless
/// `BACULINK_ALLOW_SKIP=1`, in which case the test is skipped with a note.
pub fn need_openssl() -> bool {
    let ok = std::process::Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        return true;
    }
    if std::env::var("BACULINK_ALLOW_SKIP").as_deref() == Ok("1") {
        eprintln!("SKIPPED: the `openssl` command-line tool is not installed");
        return false;
    }
    panic!(
        "this test needs the `openssl` command-line tool as a peer; install it \
         (Debian/Ubuntu: apt-get install openssl), or set BACULINK_ALLOW_SKIP=1 to skip"
    );
}

/// Returns early from a test when the openssl tool is missing and skipping is allowed.
#[macro_export]
macro_rules! require_openssl {
    () => {
        if !common::need_openssl() {
            return;
        }
    };
}

/// Runs a future with the test timeout.
pub async fn within<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A free loopback port (bound then released; the race is acceptable in tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Hex of the key bytes, as `openssl -psk` wants it.
pub fn hex(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// A running `openssl s_server` / `s_client`, killed on drop.
pub struct Peer {
    child: Child,
    pub stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    log: Arc<Mutex<String>>,
}

fn pump<R: AsyncRead + Unpin + Send + 'static>(
    r: R,
    tx: Option<mpsc::UnboundedSender<String>>,
    log: Arc<Mutex<String>>,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            {
                let mut g = log.lock().unwrap();
                g.push_str(&l);
                g.push('\n');
            }
            if let Some(tx) = &tx {
                let _ = tx.send(l);
            }
        }
    });
}

impl Peer {
    /// Starts `openssl <args>` with all three standard streams piped.
    pub fn spawn(args: &[String]) -> Peer {
        let mut child = Command::new("openssl")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn openssl");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::unbounded_channel();
        pump(child.stdout.take().unwrap(), Some(tx), log.clone());
        pump(child.stderr.take().unwrap(), None, log.clone());
        Peer {
            stdin: child.stdin.take(),
            child,
            lines: rx,
            log,
        }
    }

    /// Starts `openssl s_server` on a free port and waits until it listens.
    /// The port comes from [`free_port`], so another test's outgoing
    /// connection can take it before s_server binds it: then s_server exits
    /// at once, and a new port is tried.
    pub async fn s_server(extra: &[&str]) -> (Peer, u16) {
        const TRIES: usize = 5;
        for attempt in 1..=TRIES {
            let port = free_port();
            let mut args: Vec<String> = vec![
                "s_server".into(),
                "-accept".into(),
                format!("127.0.0.1:{port}"),
                "-naccept".into(),
                "1".into(),
            ];
            args.extend(extra.iter().map(|s| s.to_string()));
            let mut p = Peer::spawn(&args);
            if attempt < TRIES {
                if p.try_wait_line(|l| l.contains("ACCEPT")).await.is_some() {
                    return (p, port);
                }
                continue;
            }
            p.wait_line("s_server listening", |l| l.contains("ACCEPT"))
                .await;
            return (p, port);
        }
        unreachable!("the last try returns or panics")
    }

    /// Starts `openssl s_client` against our port.
    pub fn s_client(port: u16, extra: &[&str]) -> Peer {
        let mut args: Vec<String> = vec![
            "s_client".into(),
            "-connect".into(),
            format!("127.0.0.1:{port}"),
            "-quiet".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Peer::spawn(&args)
    }

    /// Waits for a stdout line satisfying `f`.
    pub async fn wait_line(&mut self, what: &str, f: impl Fn(&str) -> bool) -> String {
        match self.try_wait_line(f).await {
            Some(l) => l,
            None => panic!(
                "openssl peer: no line for {what}; its output:\n{}",
                self.log.lock().unwrap()
            ),
        }
    }

    /// The same; `None` if the peer ends or [`WAIT`] passes first.
    async fn try_wait_line(&mut self, f: impl Fn(&str) -> bool) -> Option<String> {
        let fut = async {
            while let Some(l) = self.lines.recv().await {
                if f(&l) {
                    return Some(l);
                }
            }
            None
        };
        tokio::time::timeout(WAIT, fut).await.ok().flatten()
    }

    /// Writes to the peer's stdin.
    pub async fn send(&mut self, data: &str) {
        let w = self.stdin.as_mut().unwrap();
        w.write_all(data.as_bytes()).await.unwrap();
        w.flush().await.unwrap();
    }

    /// Everything the peer printed so far.
    pub fn output(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Connects to a loopback port.
pub async fn tcp(port: u16) -> tokio::net::TcpStream {
    within(
        "connect",
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    .expect("connect")
}

/// Reads one line (up to `\n`) byte by byte, so nothing is read past it.
pub async fn read_line<R: AsyncRead + Unpin>(r: &mut R) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    loop {
        let n = within("read line", r.read(&mut b)).await.expect("read");
        if n == 0 || b[0] == b'\n' {
            break;
        }
        out.push(b[0]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A (cert, key) pair on disk.
#[derive(Clone, Debug)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Certificates for the tests, all under one temporary directory.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    /// CN=bacula-dir, DNS localhost + bacula-dir.example, IP 127.0.0.1.
    pub server: Pair,
    /// CN=bacula-fd, no SAN.
    pub client: Pair,
    /// Signed by another CA.
    pub rogue: Pair,
    /// CN/DNS other.example only.
    pub other_host: Pair,
    /// CN=bacula-sd, DNS localhost only (no IP SAN).
    pub localhost_only: Pair,
    /// Expired yesterday.
    pub expired: Pair,
}

fn write(dir: &Path, name: &str, ca: &Ca, spec: &LeafSpec) -> Pair {
    let (c, k) = ca.issue_spec(spec).unwrap();
    let (cert, key) = write_pem_files(dir, name, &c, &k).unwrap();
    Pair { cert, key }
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ca = Ca::new("baculink test CA").unwrap();
        let ca_path = d.join("ca.pem");
        baculink_tls::certgen::write_cert_pem(&ca_path, &ca.cert).unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let server = write(
            d,
            "server",
            &ca,
            &LeafSpec::new(
                "bacula-dir",
                &["localhost", "bacula-dir.example"],
                &[lo],
                30,
            ),
        );
        let client = write(d, "client", &ca, &LeafSpec::new("bacula-fd", &[], &[], 30));
        let other_host = write(
            d,
            "other",
            &ca,
            &LeafSpec::new("other.example", &["other.example"], &[], 30),
        );
        let localhost_only = write(
            d,
            "lonly",
            &ca,
            &LeafSpec::new("bacula-sd", &["localhost"], &[], 30),
        );
        let mut spec = LeafSpec::new("bacula-dir", &["localhost"], &[lo], 30);
        spec.not_before_days = -10;
        spec.not_after_days = -1;
        let expired = write(d, "expired", &ca, &spec);
        let rogue_ca = Ca::new("rogue CA").unwrap();
        let rogue = write(
            d,
            "rogue",
            &rogue_ca,
            &LeafSpec::new("bacula-dir", &["localhost"], &[lo], 30),
        );
        Fixture {
            dir,
            ca: ca_path,
            server,
            client,
            rogue,
            other_host,
            localhost_only,
            expired,
        }
    }

    /// Settings with our CA and the given certificate.
    pub fn settings(&self, pair: Option<&Pair>) -> TlsSettings {
        TlsSettings {
            enable: true,
            ca_file: Some(self.ca.clone()),
            certificate: pair.map(|p| p.cert.clone()),
            key: pair.map(|p| p.key.clone()),
            ..TlsSettings::default()
        }
    }
}

/// Path as a string argument for openssl.
pub fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}
