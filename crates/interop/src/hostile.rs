//! A hostile load generator for one daemon, loopback only, bounded in count
//! and time: slowloris, garbage, 2 GB length headers, valid Hello then
//! silence, wrong passwords in a loop, and TLS ClientHellos where a Hello is
//! expected. Connections come from many 127.x source addresses so that a
//! per-address limit does not hide the load from the daemon.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// What each hostile connection does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// A valid Hello, one byte per second.
    Slowloris,
    /// Random bytes, a little at a time.
    Garbage,
    /// A 2 GB length header, again and again.
    HugeHeader,
    /// A valid Hello, then nothing.
    HelloThenSilence,
    /// Full logins with a wrong password, in a loop.
    WrongPassword,
    /// A TLS ClientHello where a Bacula Hello is expected, in a loop.
    TlsHello,
}

/// Runs a full login attempt on a connected stream (e.g. with a wrong password).
pub type LoginAttempt = Arc<
    dyn Fn(TcpStream) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// Counters of what the load did.
#[derive(Default, Debug)]
pub struct Stats {
    /// Connections opened.
    pub opened: AtomicU64,
    /// Connections the daemon closed on us.
    pub closed_by_daemon: AtomicU64,
    /// Connects refused or failed.
    pub connect_failed: AtomicU64,
}

/// The plan: how many connections of each behaviour.
pub fn plan(total: usize) -> Vec<Behaviour> {
    use Behaviour::*;
    let mix = [
        Slowloris,
        Garbage,
        HugeHeader,
        HelloThenSilence,
        WrongPassword,
        TlsHello,
    ];
    (0..total).map(|i| mix[i % mix.len()]).collect()
}

fn source(i: usize) -> IpAddr {
    // 127.0.1.1 .. 127.0.4.250: many sources, never 127.0.0.1.
    IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        1 + (i / 250) as u8,
        1 + (i % 250) as u8,
    ))
}

async fn connect(i: usize, target: SocketAddr, stats: &Stats) -> Option<TcpStream> {
    let sock = TcpSocket::new_v4().ok()?;
    if sock.bind(SocketAddr::new(source(i), 0)).is_err() {
        stats.connect_failed.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    match tokio::time::timeout(Duration::from_secs(2), sock.connect(target)).await {
        Ok(Ok(s)) => {
            stats.opened.fetch_add(1, Ordering::Relaxed);
            Some(s)
        }
        _ => {
            stats.connect_failed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

fn packet(text: &[u8]) -> Vec<u8> {
    let mut v = (text.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(text);
    v
}

/// Whether the daemon closed the stream (read returns 0 or an error) within `wait`.
async fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// Runs one hostile connection slot until `until`.
pub async fn run_one(
    i: usize,
    b: Behaviour,
    target: SocketAddr,
    hello: Vec<u8>,
    wrong_login: LoginAttempt,
    until: Instant,
    stats: Arc<Stats>,
) {
    while Instant::now() < until {
        let Some(mut s) = connect(i, target, &stats).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let closed = match b {
            Behaviour::Slowloris => {
                let mut closed = false;
                for byte in packet(&hello) {
                    if Instant::now() >= until || s.write_all(&[byte]).await.is_err() {
                        closed = true;
                        break;
                    }
                    if closed_within(&mut s, Duration::from_secs(1)).await {
                        closed = true;
                        break;
                    }
                }
                closed
            }
            Behaviour::Garbage => {
                let mut closed = false;
                while Instant::now() < until {
                    let junk: Vec<u8> = (0..64)
                        .map(|k| (k as u8).wrapping_mul(37).wrapping_add(i as u8))
                        .collect();
                    if s.write_all(&junk).await.is_err()
                        || closed_within(&mut s, Duration::from_millis(200)).await
                    {
                        closed = true;
                        break;
                    }
                }
                closed
            }
            Behaviour::HugeHeader => {
                let _ = s.write_all(&[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]).await;
                closed_within(&mut s, Duration::from_secs(5)).await
            }
            Behaviour::HelloThenSilence => {
                let _ = s.write_all(&packet(&hello)).await;
                closed_within(&mut s, until.saturating_duration_since(Instant::now())).await
            }
            Behaviour::WrongPassword => {
                wrong_login(s).await;
                true
            }
            Behaviour::TlsHello => {
                // The start of a TLS 1.2/1.3 ClientHello record.
                let mut hello = vec![
                    0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
                ];
                hello.extend(std::iter::repeat_n(0x42, 64));
                let _ = s.write_all(&hello).await;
                closed_within(&mut s, Duration::from_secs(5)).await
            }
        };
        if closed {
            stats.closed_by_daemon.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Raises this process's open-file limit to its hard limit (children inherit it).
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max.min(65_536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    lim.rlim_cur
}

/// Resident set size of a process in KiB (VmRSS), and its peak (VmHWM).
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Open file descriptors of a process.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}
