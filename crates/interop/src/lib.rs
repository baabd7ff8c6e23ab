//! Shared helpers for the conformance tests in `tests/`: the real Bacula 9.6
//! daemons of the shared interop harness, and the `openssl` command line.
//!
//! A real-peer test never passes silently without its peer: when Bacula or
//! openssl is missing, [`require_peers`] panics with what to install, unless
//! `BACULINK_ALLOW_SKIP=1` is set (then the test prints `SKIP` and returns).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod hostile;

/// The shared interop folder (`shared/interop` beside the checkout).
pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/interop")
}

/// The `baculink` binary built for this test run (from `target/`).
pub fn baculink_bin() -> PathBuf {
    let mut p = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    p.pop();
    p.pop();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| p.join("target"));
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    target.join(profile).join("baculink")
}

/// Whether the real peers a test needs are installed. Panics when they are
/// not, unless skipping was explicitly allowed.
pub fn require_peers(what: &str) -> bool {
    let bacula = Path::new("/usr/sbin/bacula-dir").exists()
        && Path::new("/usr/sbin/bconsole").exists()
        && interop_dir().join("start-bacula.sh").exists();
    let openssl = Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let ok = match what {
        "openssl" => openssl,
        _ => bacula && openssl,
    };
    if ok {
        return true;
    }
    if std::env::var("BACULINK_ALLOW_SKIP").as_deref() == Ok("1") {
        eprintln!("SKIP: real peer '{what}' not installed");
        return false;
    }
    panic!(
        "real peer '{what}' is not installed (Bacula 9.6 packages, openssl, and the shared \
         interop folder beside the checkout); run scripts/test.sh, which installs them, \
         or set BACULINK_ALLOW_SKIP=1 to skip"
    );
}

/// A free TCP port on loopback, for a daemon to listen on a moment later.
///
/// Taken below the kernel's ephemeral range: a port the kernel hands out
/// (bind to port 0) is also what it gives the next outgoing connection as its
/// source port, and with tests running side by side a daemon then found its
/// port taken by some client's socket. Each process walks the range from its
/// own offset, so parallel test binaries rarely try the same port.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (base, span) = if low > 12_000 {
        (low - 10_000, 10_000)
    } else {
        // An unusual range: fall back to the kernel's choice.
        return TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind a loopback port");
    };
    // Each process starts at its own place, from its pid and start time, so
    // that two test processes rarely walk the same ports.
    static OFFSET: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let offset = *OFFSET.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        std::process::id().wrapping_mul(7919) ^ nanos
    });
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (base + offset.wrapping_add(n) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() && !port_listening(port) {
            return port;
        }
    }
    panic!("no free loopback port in {base}..{}", base + span)
}

/// Real Bacula 9.6 daemons started by the harness in a temporary folder.
/// Stopped (exactly the pids started) on drop.
pub struct Harness {
    /// The harness work folder (configs in `etc/`, certificates in `certs/`).
    pub dir: tempfile::TempDir,
    /// Mode passed to `start-bacula.sh`.
    pub mode: String,
    /// Ports of the real director, FD and SD.
    pub dir_port: u16,
    /// FD port.
    pub fd_port: u16,
    /// SD port.
    pub sd_port: u16,
    started: bool,
}

impl Harness {
    /// Starts the daemons in `start` (e.g. `"dir fd sd"`, `""` = configs only)
    /// in `mode`, with fresh ports, plus any extra environment (e.g. pointing
    /// the real director at one of our daemons).
    pub fn start(mode: &str, start: &str, extra_env: &[(&str, String)]) -> Harness {
        // A port checked free can still be taken before the daemon binds it
        // (another process's listener, one CI run saw it): then again with
        // fresh ports, which the script's specific message tells apart.
        let mut attempt = 1;
        loop {
            match Harness::try_start(mode, start, extra_env) {
                Ok(h) => return h,
                Err(msg) if attempt < 3 && msg.contains("is already in use") => {
                    eprintln!("harness: {msg}; retrying with other ports");
                    attempt += 1;
                }
                Err(msg) => panic!("start-bacula.sh {mode} failed:\n{msg}"),
            }
        }
    }

    fn try_start(mode: &str, start: &str, extra_env: &[(&str, String)]) -> Result<Harness, String> {
        let dir = tempfile::Builder::new()
            .prefix("baculink-interop-")
            .tempdir()
            .expect("tempdir");
        let h = Harness {
            dir,
            mode: mode.into(),
            dir_port: free_port(),
            fd_port: free_port(),
            sd_port: free_port(),
            started: !start.trim().is_empty(),
        };
        let mut cmd = Command::new("bash");
        cmd.arg(interop_dir().join("start-bacula.sh"))
            .arg(h.dir.path())
            .arg(mode)
            .env(
                "START",
                if start.trim().is_empty() {
                    "none"
                } else {
                    start
                },
            )
            .env("DIR_PORT", h.dir_port.to_string())
            .env("FD_PORT", h.fd_port.to_string())
            .env("SD_PORT", h.sd_port.to_string());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run start-bacula.sh");
        if !out.status.success() {
            let _ = h.stop();
            return Err(format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(h)
    }

    /// The work folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A generated config file, e.g. `etc("bconsole.conf")`.
    pub fn etc(&self, name: &str) -> PathBuf {
        self.path().join("etc").join(name)
    }

    /// Runs the real `bconsole` with these commands (via `bcon.sh`).
    pub fn bconsole(&self, cmds: &[&str]) -> Output {
        Command::new("bash")
            .arg(interop_dir().join("bcon.sh"))
            .arg(self.path())
            .args(cmds)
            .env("BCON_TIMEOUT", "60")
            .output()
            .expect("run bcon.sh")
    }

    /// The daemon logs, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for d in ["dir", "fd", "sd"] {
            let p = self.path().join(format!("log/bacula-{d}.out"));
            if let Ok(t) = std::fs::read_to_string(&p) {
                s.push_str(&format!("--- bacula-{d}.out\n{t}\n"));
            }
        }
        s
    }

    fn stop(&self) -> std::io::Result<Output> {
        Command::new("bash")
            .arg(interop_dir().join("stop-bacula.sh"))
            .arg(self.path())
            .output()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if self.started {
            let _ = self.stop();
        }
    }
}

/// The result of running `baculink probe`.
#[derive(Debug)]
pub struct ProbeRun {
    /// Exit status code.
    pub code: i32,
    /// The JSON object printed (when `--json` and it parsed).
    pub json: serde_json::Value,
    /// Standard error.
    pub stderr: String,
}

/// Runs `baculink probe -c CONFIG ARGS... --json`.
pub fn probe(config: &Path, args: &[&str]) -> ProbeRun {
    let out = Command::new(baculink_bin())
        .arg("probe")
        .arg("-c")
        .arg(config)
        .args(args)
        .arg("--json")
        .output()
        .expect("run baculink probe (was the binary built? scripts/test.sh builds it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    ProbeRun {
        code: out.status.code().unwrap_or(-1),
        json: serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// One of our daemons, run as a child process from a config file; killed on drop.
pub struct OurDaemon {
    child: std::process::Child,
    /// Its log (stderr) file.
    pub log: PathBuf,
}

impl OurDaemon {
    /// Starts `baculink KIND -f -c CONFIG` and waits until `port` accepts connections.
    pub fn start(kind: &str, config: &Path, port: u16, log_dir: &Path) -> OurDaemon {
        Self::start_with(kind, config, port, log_dir, &[])
    }

    /// Like [`start`](Self::start), with extra daemon arguments (e.g. `--auth-timeout 3`).
    pub fn start_with(
        kind: &str,
        config: &Path,
        port: u16,
        log_dir: &Path,
        extra: &[&str],
    ) -> OurDaemon {
        let log = log_dir.join(format!("baculink-{kind}.log"));
        let file = std::fs::File::create(&log).expect("create daemon log");
        let child = Command::new(baculink_bin())
            .arg(kind)
            .arg("-f")
            .arg("-d")
            .arg("20")
            .arg("-c")
            .arg(config)
            .args(extra)
            .stdout(file.try_clone().expect("dup log"))
            .stderr(file)
            .spawn()
            .expect("start baculink daemon");
        let mut d = OurDaemon { child, log };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if port_listening(port) {
                return d;
            }
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!("baculink {kind} exited with {status}:\n{}", d.log_text());
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "baculink {kind} did not listen on {port}:\n{}",
                    d.log_text()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (e.g. `HUP`, `TERM`) with kill(1).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{name} failed");
    }

    /// Waits up to `secs` for the daemon to exit; its exit code.
    pub fn wait_exit(&mut self, secs: u64) -> Option<i32> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st.code().unwrap_or(-1));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        None
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for OurDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether something listens on this TCP port (read from /proc, so the check
/// opens no connection the daemon would have to log as bad input).
pub fn port_listening(port: u16) -> bool {
    let hex = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|t| {
            t.lines().skip(1).any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.len() > 3 && cols[1].ends_with(&hex) && cols[3] == "0A"
            })
        })
    })
}

/// A loopback TCP proxy that forwards every connection to `target` and
/// records all bytes in both directions, to prove what crossed the network.
pub struct RecordingProxy {
    /// The port it listens on.
    pub port: u16,
    recorded: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl RecordingProxy {
    /// Starts forwarding to `127.0.0.1:target` in background threads.
    pub fn start(target: u16) -> RecordingProxy {
        use std::io::{Read, Write};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let recorded = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let rec = recorded.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (
                        client.try_clone().expect("clone"),
                        server.try_clone().expect("clone"),
                    ),
                    (server, client),
                ] {
                    let rec = rec.clone();
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    rec.lock().expect("record").extend_from_slice(&buf[..n]);
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        RecordingProxy { port, recorded }
    }

    /// Everything recorded so far, both directions interleaved.
    pub fn bytes(&self) -> Vec<u8> {
        self.recorded.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// Whether `needle` occurs in `haystack`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Writes a minimal `bacula-dir.conf` (one Director listening on loopback
/// `port`, password `pw`) and a matching `bconsole.conf` into `d`.
/// `dir_extra` and `console_extra` are directive lines added inside the
/// Director resource of each. Returns (bacula-dir.conf, bconsole.conf).
pub fn director_configs(
    d: &Path,
    port: u16,
    dir_extra: &str,
    console_extra: &str,
) -> (PathBuf, PathBuf) {
    let conf = d.join("bacula-dir.conf");
    std::fs::write(
        &conf,
        format!(
            "Director {{\n  Name = bacula-dir\n  DIRAddress = 127.0.0.1\n  DIRport = {port}\n  Password = \"pw\"\n  \
             WorkingDirectory = \"{w}\"\n  PidDirectory = \"{w}\"\n  Messages = Daemon\n{dir_extra}}}\n\
             Messages {{\n  Name = Daemon\n  console = all\n}}\n",
            w = d.display()
        ),
    )
    .expect("write bacula-dir.conf");
    let con = d.join("bconsole.conf");
    std::fs::write(
        &con,
        format!(
            "Director {{\n  Name = bacula-dir\n  Address = 127.0.0.1\n  DIRport = {port}\n  Password = \"pw\"\n{console_extra}}}\n"
        ),
    )
    .expect("write bconsole.conf");
    (conf, con)
}

/// Writes the main job's configs into `d` with `baculink demo --configs-only
/// --big-mib BIG_MIB --dir D`, plus `mode` (e.g. `--clear`, `--certs`); the
/// sample data goes to `d/data`.
pub fn demo_configs(d: &Path, mode: &[&str], big_mib: &str) {
    let out = Command::new(baculink_bin())
        .args(["demo", "--configs-only", "--big-mib", big_mib, "--dir"])
        .arg(d)
        .args(mode)
        .output()
        .expect("run baculink demo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The number in the first `Key = N` directive of a config file (e.g. the
/// `DIRport` of a generated bacula-dir.conf).
pub fn config_port(conf: &Path, key: &str) -> u16 {
    std::fs::read_to_string(conf)
        .unwrap_or_else(|e| panic!("{}: {e}", conf.display()))
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim().eq_ignore_ascii_case(key)).then(|| v.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no {key} in {}", conf.display()))
}

/// Runs `baculink console -n -c CONF` with `cmds` on its standard input.
pub fn our_console(conf: &Path, cmds: &str) -> Output {
    use std::io::Write;
    let mut c = Command::new(baculink_bin())
        .args(["console", "-n", "-c"])
        .arg(conf)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start baculink console");
    c.stdin
        .take()
        .expect("console stdin")
        .write_all(cmds.as_bytes())
        .expect("write console commands");
    c.wait_with_output().expect("wait for baculink console")
}
