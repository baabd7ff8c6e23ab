//! Faults: peers that close or reset at every step of the login and in the
//! middle of a session, TLS closed without close_notify, and a daemon
//! restart under a connected console. Nothing may hang past the login or
//! I/O timeout, and no descriptor may leak (counted in /proc).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use baculink_interop::hostile::fd_count;
use baculink_interop::{
    baculink_bin, config_port, demo_configs, free_port, require_peers, OurDaemon,
};
use baculink_net::BSock;
use baculink_proto::cram;
use baculink_proto::frame::{self, Decoder, Packet, Signal};
use baculink_proto::Secret;

fn write_configs(d: &Path, port: u16, tls: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    baculink_interop::director_configs(d, port, tls, tls)
}

fn send(tcp: &mut TcpStream, p: &Packet) {
    let mut out = bytes::BytesMut::new();
    frame::encode(p, false, &mut out).unwrap();
    let _ = tcp.write_all(&out);
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

/// Ends the connection abruptly: an RST (SO_LINGER 0) or a plain FIN.
fn hang_up(tcp: TcpStream, reset: bool) {
    if reset {
        let _ = socket2_linger_zero(&tcp);
    }
    drop(tcp);
}

fn socket2_linger_zero(tcp: &TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a valid socket with a correctly sized struct.
    let r = unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Waits until the daemon's descriptor count is back to `idle`.
fn settles(pid: u32, idle: usize, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let n = fd_count(pid);
        if n <= idle || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A 9.6-style console login in clear text, cut after `step` of its packets,
/// with a FIN or an RST; then once more completed, to prove the daemon still serves.
#[test]
fn peer_hangs_up_at_every_login_step() {
    if !require_peers("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (conf, _) = write_configs(dir.path(), port, "  TLS PSK Enable = no\n");
    let daemon = OurDaemon::start_with("dir", &conf, port, dir.path(), &["--auth-timeout", "5"]);
    hang_up_at_every_step(
        &daemon,
        port,
        "Hello *UserAgent* calling 100\n",
        &Secret::from_password("pw"),
    );
}

/// The same against our File daemon and Storage daemon (a 9.6-style
/// Director in clear text), from the main job's configs.
#[test]
fn fd_and_sd_survive_hang_ups_at_every_login_step() {
    if !require_peers("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    demo_configs(d, &["--clear"], "0");
    let (fc, sc) = (d.join("bacula-fd.conf"), d.join("bacula-sd.conf"));
    let (fp, sp) = (config_port(&fc, "FDport"), config_port(&sc, "SDPort"));
    let fd = OurDaemon::start_with("fd", &fc, fp, d, &["--auth-timeout", "5"]);
    hang_up_at_every_step(
        &fd,
        fp,
        "Hello Director demo-dir calling 103\n",
        &Secret::from_password("fd-secret"),
    );
    let sd = OurDaemon::start_with("sd", &sc, sp, d, &["--auth-timeout", "5"]);
    hang_up_at_every_step(
        &sd,
        sp,
        "Hello SD: Bacula Director demo-dir calling 103\n",
        &Secret::from_password("sd-secret"),
    );
}

/// Runs a clear-text 9.6-style login cut after each of its packets, with a
/// FIN and with an RST; after each, the daemon's descriptors return to idle.
fn hang_up_at_every_step(daemon: &OurDaemon, port: u16, hello: &str, key: &Secret) {
    std::thread::sleep(Duration::from_millis(200));
    let idle = fd_count(daemon.pid());
    for reset in [false, true] {
        for step in 0..=4 {
            let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut dec = Decoder::new();
            let mut sent = 0;
            let mut go = |tcp: &mut TcpStream, p: Packet| -> bool {
                if sent == step {
                    return false;
                }
                send(tcp, &p);
                sent += 1;
                true
            };
            'script: {
                if !go(&mut tcp, Packet::data(hello)) {
                    break 'script;
                }
                let Some(ch) = recv(&mut tcp, &mut dec) else {
                    break 'script;
                };
                let Ok(ch) = cram::parse_challenge(ch.payload().unwrap_or_default()) else {
                    panic!(
                        "no challenge after {hello:?}: {ch:?}\n{}",
                        daemon.log_text()
                    );
                };
                if !go(&mut tcp, Packet::data(cram::response(key, &ch))) {
                    break 'script;
                }
                let _ok = recv(&mut tcp, &mut dec);
                let token = cram::token(7, 8, "fault-peer");
                if !go(
                    &mut tcp,
                    Packet::data(cram::challenge_line(
                        &token,
                        baculink_proto::negotiate::Need::None,
                    )),
                ) {
                    break 'script;
                }
                let _resp = recv(&mut tcp, &mut dec);
                if !go(&mut tcp, Packet::data(cram::AUTH_OK)) {
                    break 'script;
                }
                let _final = recv(&mut tcp, &mut dec);
            }
            hang_up(tcp, reset);
            let n = settles(daemon.pid(), idle, Duration::from_secs(15));
            assert!(
                n <= idle,
                "{hello:?} step {step} (reset {reset}): {n} descriptors, idle {idle}\n{}",
                daemon.log_text()
            );
        }
    }
    assert!(!daemon.log_text().contains("panicked"));
}

/// Mid-session: a PSK console that vanishes without close_notify (RST and
/// FIN), and one that sends half a packet and goes silent.
#[test]
fn tls_session_dropped_without_close_notify() {
    if !require_peers("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (conf, con) = write_configs(dir.path(), port, "");
    let daemon = OurDaemon::start_with("dir", &conf, port, dir.path(), &["--auth-timeout", "5"]);
    std::thread::sleep(Duration::from_millis(200));
    let idle = fd_count(daemon.pid());
    let rt = tokio::runtime::Runtime::new().unwrap();
    for how in 0..3 {
        let (conf, _) = baculink_conf::ConsoleConfig::load(&con).unwrap();
        let d = &conf.directors[0];
        let setup = baculink_net::ClientSetup {
            config: baculink_proto::handshake::ClientConfig {
                hello: baculink_proto::hello::Hello::Console {
                    name: "*UserAgent*".into(),
                    version: Some(200),
                    tlspsk: None,
                },
                local: baculink_proto::handshake::Local {
                    key: d.password.clone(),
                    needs: d.tls.policy(baculink_conf::tls::TlsRole::Client).needs(),
                    authenticate: false,
                    dialect: baculink_proto::negotiate::Dialect::V13,
                    name: "bconsole".into(),
                },
            },
            cert: None,
            psk: None,
            host: "127.0.0.1".into(),
            allowed_cn: vec![],
            timeout: Duration::from_secs(10),
            label: "fault console".into(),
        };
        rt.block_on(async {
            let (mut sock, peer): (BSock, _) = baculink_net::connect("127.0.0.1", port, &setup)
                .await
                .unwrap();
            assert_eq!(peer.mode(), baculink_proto::negotiate::Mode::Psk);
            sock.send_text("status dir").await.unwrap();
            loop {
                if let Packet::Signal(Signal::Eod) = sock.recv().await.unwrap() {
                    break;
                }
            }
            // Take the socket away from TLS: no close_notify is ever sent.
            let fd = {
                use std::os::fd::AsRawFd;
                sock.tcp().unwrap().as_raw_fd()
            };
            match how {
                0 => unsafe_reset(fd),
                1 => unsafe_shutdown(fd),
                _ => {
                    // Half a TLS record, then silence until the I/O side gives up on us.
                    let _ = nix_write(fd, &[0x17, 0x03, 0x03, 0x00]);
                    unsafe_shutdown(fd);
                }
            }
            std::mem::forget(sock);
        });
        let n = settles(daemon.pid(), idle, Duration::from_secs(15));
        assert!(
            n <= idle,
            "case {how}: {n} descriptors, idle {idle}\n{}",
            daemon.log_text()
        );
    }
    // Still serving.
    let ok = baculink_interop::probe(&con, &["--command", "version"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
}

fn unsafe_reset(fd: i32) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid socket descriptor, correctly sized option.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
        libc::close(fd);
    }
}

fn unsafe_shutdown(fd: i32) {
    // SAFETY: valid descriptor owned by the leaked socket.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
        libc::close(fd);
    }
}

fn nix_write(fd: i32, b: &[u8]) -> isize {
    // SAFETY: writes from a valid slice to a valid descriptor.
    unsafe { libc::write(fd, b.as_ptr() as *const libc::c_void, b.len()) }
}

/// Our console stays connected while the director restarts: its next
/// command fails with a clear message and a non-zero exit, no hang; a new
/// console works against the restarted director.
#[test]
fn director_restart_under_a_connected_console() {
    if !require_peers("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (conf, con) = write_configs(dir.path(), port, "");
    let mut daemon = OurDaemon::start("dir", &conf, port, dir.path());
    let mut console = std::process::Command::new(baculink_bin())
        .args(["console", "-n", "-c"])
        .arg(&con)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = console.stdin.take().unwrap();
    stdin.write_all(b"version\n").unwrap();
    std::thread::sleep(Duration::from_millis(700));
    daemon.signal("TERM");
    assert_eq!(
        daemon.wait_exit(10),
        Some(0),
        "director did not stop: {}",
        daemon.log_text()
    );
    let _ = stdin.write_all(b"status dir\n");
    drop(stdin);
    let t0 = Instant::now();
    let out = console.wait_with_output().unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "console hung after the director went away"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "console must report the lost director"
    );
    assert!(!err.is_empty(), "console must say why it ended");
    drop(daemon);
    let _restarted = OurDaemon::start("dir", &conf, port, dir.path());
    let ok = baculink_interop::probe(&con, &["--command", "version"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
}
