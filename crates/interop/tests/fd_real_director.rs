//! The real Bacula 9.6 Director (and bconsole) drive our File daemon, which
//! reads the harness's real bacula-fd.conf unchanged; bad input on the FD
//! port never stops it; `-t` checks configs like Bacula's daemons.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use baculink_interop::{baculink_bin, require_peers, Harness, OurDaemon};

fn bconsole_text(h: &Harness, cmds: &[&str], fd: &OurDaemon) -> String {
    let out = h.bconsole(cmds);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "bconsole failed: {text}\n{}\n{}",
        fd.log_text(),
        h.logs()
    );
    text
}

fn status_client(mode: &str) {
    let h = Harness::start(mode, "dir", &[]);
    let fd = OurDaemon::start("fd", &h.etc("bacula-fd.conf"), h.fd_port, h.path());
    let text = bconsole_text(
        &h,
        &[
            "status client",
            ".status client=bacula-fd running",
            "setdebug level=12 client=bacula-fd",
        ],
        &fd,
    );
    let ctx = || format!("{text}\n--- our fd log\n{}\n{}", fd.log_text(), h.logs());
    assert!(
        text.contains("bacula-fd Version: ") && text.contains("(baculink)"),
        "our FD answered status: {}",
        ctx()
    );
    // The real Director logged in as Director "bacula-dir" and we list that link.
    assert!(
        text.contains("from Director \"bacula-dir\" at 127.0.0.1:"),
        "{}",
        ctx()
    );
    assert!(text.contains("dialect 9.6"), "{}", ctx());
    assert!(text.contains("2000 OK setdebug=12"), "{}", ctx());
    if mode == "clear" {
        assert!(text.contains("Director connected at: "), "{}", ctx());
        assert!(text.contains("dialect 9.6, clear"), "{}", ctx());
        assert!(text.contains("DirTLS=0"), "{}", ctx());
    } else {
        assert!(
            text.contains("Director connected using TLS at: "),
            "{}",
            ctx()
        );
        assert!(
            text.contains("dialect 9.6, certificate TLS, TLSv1.3"),
            "{}",
            ctx()
        );
        assert!(text.contains("CN=bacula-dir"), "{}", ctx());
        assert!(text.contains("DirTLS=1"), "{}", ctx());
        assert!(text.contains("TLSVersion=TLSv1.3"), "{}", ctx());
        assert!(text.contains("PeerSubject="), "{}", ctx());
    }
}

#[test]
fn real_director_status_client_clear() {
    if require_peers("bacula") {
        status_client("clear");
    }
}

#[test]
fn real_director_status_client_tls() {
    if require_peers("bacula") {
        status_client("tls");
    }
}

/// Sends `bytes` (if any) on a fresh connection and waits until the FD
/// closes it; returns the local address and how long the close took.
fn bad_client(port: u16, bytes: Vec<u8>) -> std::thread::JoinHandle<(String, Duration)> {
    std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to our FD");
        let local = s.local_addr().expect("local addr").to_string();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let start = Instant::now();
        if !bytes.is_empty() {
            s.write_all(&bytes).expect("send bad input");
        }
        let mut buf = [0u8; 256];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                // A BNET_TERMINATE before the close is allowed (bad Hello).
                Ok(_) => continue,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    panic!("our FD kept {local} open for {:?}", start.elapsed())
                }
                Err(_) => break,
            }
        }
        (local, start.elapsed())
    })
}

fn packet(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

#[test]
fn bad_input_is_dropped_and_the_fd_keeps_serving() {
    if !require_peers("bacula") {
        return;
    }
    let h = Harness::start("clear", "dir", &[]);
    let fd = OurDaemon::start_with(
        "fd",
        &h.etc("bacula-fd.conf"),
        h.fd_port,
        h.path(),
        &["--auth-timeout", "3"],
    );
    let port = h.fd_port;
    let malformed = bad_client(port, packet(b"Hello this is no Director Hello at all\n"));
    let mut huge = vec![0x7f, 0xff, 0xff, 0xff];
    huge.extend_from_slice(b"abcd");
    let oversized = bad_client(port, huge);
    let silent = bad_client(port, Vec::new());
    let hello = packet(b"Hello Director bacula-dir calling 103\n");
    let half = bad_client(port, hello[..hello.len() / 2].to_vec());

    let results = [
        ("malformed Hello", malformed.join().expect("malformed")),
        ("2 GB header", oversized.join().expect("oversized")),
        ("silence", silent.join().expect("silent")),
        ("half a Hello", half.join().expect("half")),
    ];
    // Allow a little time for the last log lines to be written.
    std::thread::sleep(Duration::from_millis(300));
    let log = fd.log_text();
    for (what, (local, took)) in &results {
        eprintln!("{what} from {local}: closed after {took:?}");
        eprintln!(
            "{}",
            log.lines()
                .filter(|l| l.contains(local.as_str()))
                .collect::<Vec<_>>()
                .join("\n")
        );
        // Bacula's refusal delay (5-6 s) is capped by the 3 s auth timeout.
        assert!(
            *took < Duration::from_secs(5),
            "{what}: closed after {took:?}\n{log}"
        );
        let line = log
            .lines()
            .find(|l| l.contains("WARN") && l.contains(local.as_str()));
        assert!(line.is_some(), "{what}: no warning naming {local}:\n{log}");
    }
    let (_, took) = &results[1].1;
    assert!(
        *took < Duration::from_secs(2),
        "an oversized header is dropped at once: {took:?}"
    );
    for (_, took) in [&results[2].1, &results[3].1] {
        assert!(
            *took >= Duration::from_secs(2),
            "silence is cut by the auth timeout: {took:?}"
        );
    }
    let text = bconsole_text(&h, &["status client"], &fd);
    assert!(text.contains("(baculink)"), "still serving: {text}\n{log}");
    assert!(text.contains("Director connected at: "), "{text}");
}

const GOOD: &str = "Director {\n  Name = bacula-dir\n  Password = \"x\"\n}\n\
FileDaemon {\n  Name = bacula-fd\n  FDport = 19102\n}\n";

fn check(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("bacula-fd.conf");
    std::fs::write(&conf, text).expect("write config");
    let out = Command::new(baculink_bin())
        .args(["fd", "-t", "-c"])
        .arg(&conf)
        .output()
        .expect("run baculink fd -t (was the binary built?)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_test_flag() {
    let (code, err) = check(GOOD);
    assert_eq!(code, 0, "good config: {err}");
    // Line 7: a port that is no number.
    let bad = GOOD.replace("FDport = 19102", "FDport = nineteen");
    let (code, err) = check(&bad);
    assert_eq!(code, 1, "bad config: {err}");
    assert!(err.contains("bacula-fd.conf:7"), "file:line in {err:?}");
    // TLS Require without certificate material: start-up validation refuses it.
    let bad = GOOD.replace(
        "  Password = \"x\"\n",
        "  Password = \"x\"\n  TLS Enable = yes\n  TLS Require = yes\n",
    );
    let (code, err) = check(&bad);
    assert_eq!(code, 1, "TLS without certificates: {err}");
    assert!(err.contains("bacula-fd.conf:"), "file:line in {err:?}");
}
