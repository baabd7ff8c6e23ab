//! Measurement tool behind the scripts in `bench/` (not a test):
//!
//! * `login CONF N`: N sequential console logins (connect, negotiate,
//!   CRAM-MD5, `version`, quit) against the Director of a bconsole.conf;
//!   prints p50 / p99 / mean in ms.
//! * `rate CONF SECONDS CONCURRENCY`: logins per second one Director sustains.
//! * `idle CONF N PID`: holds N authenticated idle connections to the
//!   Director (process PID) and prints its RSS growth per connection.
//! * `bulk MODE MIB`: one authenticated connection over loopback (our client
//!   and server in this process, each on its own thread as two daemons would
//!   be, MODE = psk | clear) moving MIB MiB of 64 KiB packets; prints MB/s
//!   and the CPU time both ends spent per GB.
//! * `kex N`: microseconds per key generation and per key exchange for
//!   X25519 and P-256, through OpenSSL's EVP calls as libssl makes them for
//!   a TLS 1.3 key share (each side of a login does one of each).
//! * `gcm MIB`: one core sealing MIB MiB as TLS 1.3 records of 16 KiB
//!   (nonce, additional data, data, tag, through EVP as libssl does) with
//!   OpenSSL's own AES-128-GCM and, where active, with our provider's
//!   (AWS-LC); prints GB/s for each.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baculink_conf::tls::TlsRole;
use baculink_net::{BSock, ClientSetup, PeerSetup, ServerSetup};
use baculink_proto::frame::{Packet, Signal};
use baculink_proto::handshake::{ClientConfig, Local, ServerConfig, ServerKind};
use baculink_proto::hello::Hello;
use baculink_proto::negotiate::{Dialect, Need, Needs};
use baculink_proto::Secret;

fn usage() -> ! {
    eprintln!("usage: baculink-bench login CONF N | rate CONF SECONDS CONCURRENCY | idle CONF N PID | bulk psk|clear MIB | kex N | gcm MIB");
    std::process::exit(2)
}

/// The console login setup for the first Director of a bconsole.conf.
fn console_setup(conf: &Path) -> (ClientSetup, String, u16) {
    let (c, _) = baculink_conf::ConsoleConfig::load(conf).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let d = &c.directors[0];
    let host = d.address.clone().unwrap_or_else(|| "127.0.0.1".into());
    let cert = if d.tls.cert_enabled(TlsRole::Client) {
        Some(Arc::new(
            baculink_tls::CertContext::new(&d.tls, TlsRole::Client).expect("TLS context"),
        ))
    } else {
        None
    };
    let setup = ClientSetup {
        config: ClientConfig {
            hello: Hello::Console {
                name: "*UserAgent*".into(),
                version: Some(200),
                tlspsk: None,
            },
            local: Local {
                key: d.password.clone(),
                needs: d.tls.policy(TlsRole::Client).needs(),
                authenticate: d.tls.authenticate,
                dialect: Dialect::V13,
                name: "bconsole".into(),
            },
        },
        cert,
        psk: baculink_tls::PskContext::for_settings(&d.tls).ok(),
        host: host.clone(),
        allowed_cn: d.tls.allowed_cn.clone(),
        timeout: Duration::from_secs(30),
        label: format!("Director at {host}:{}", d.port),
    };
    (setup, host, d.port)
}

async fn one_login(
    setup: &ClientSetup,
    host: &str,
    port: u16,
    command: bool,
) -> Result<(), String> {
    let (mut sock, _) = baculink_net::connect(host, port, setup)
        .await
        .map_err(|e| e.to_string())?;
    if command {
        sock.send_text("version").await.map_err(|e| e.to_string())?;
        loop {
            match sock.recv().await.map_err(|e| e.to_string())? {
                Packet::Signal(Signal::Eod) => break,
                _ => continue,
            }
        }
    }
    let _ = sock.send_text("quit").await;
    sock.close().await;
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn rss_kib(pid: u32) -> u64 {
    baculink_interop::hostile::rss_kib(pid).0
}

fn main() {
    baculink_net::tune_allocator();
    let args: Vec<String> = std::env::args().skip(1).collect();
    // A load generator on one thread: the rate clients should spend the
    // shared cores on logins, not on waking each other's worker threads.
    let rt = if matches!(args.first().map(String::as_str), Some("rate" | "bulk")) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    .enable_all()
    .build()
    .expect("tokio runtime");
    rt.block_on(run(args));
}

async fn run(args: Vec<String>) {
    match args.first().map(String::as_str) {
        Some("login") if args.len() == 3 => {
            let (setup, host, port) = console_setup(Path::new(&args[1]));
            let n: usize = args[2].parse().unwrap_or_else(|_| usage());
            one_login(&setup, &host, port, true)
                .await
                .expect("warm-up login");
            let mut ms = Vec::with_capacity(n);
            for _ in 0..n {
                let t0 = Instant::now();
                one_login(&setup, &host, port, true).await.expect("login");
                ms.push(t0.elapsed().as_secs_f64() * 1000.0);
            }
            ms.sort_by(|a, b| a.total_cmp(b));
            let mean = ms.iter().sum::<f64>() / n as f64;
            println!(
                "login_ms p50={:.3} p99={:.3} mean={:.3} n={n}",
                percentile(&ms, 0.5),
                percentile(&ms, 0.99),
                mean
            );
        }
        Some("rate") if args.len() == 4 => {
            let (setup, host, port) = console_setup(Path::new(&args[1]));
            let secs: u64 = args[2].parse().unwrap_or_else(|_| usage());
            let conc: usize = args[3].parse().unwrap_or_else(|_| usage());
            let done = Arc::new(AtomicU64::new(0));
            let failed = Arc::new(AtomicU64::new(0));
            let until = Instant::now() + Duration::from_secs(secs);
            let setup = Arc::new(setup);
            let mut tasks = Vec::new();
            for _ in 0..conc {
                let (setup, host, done, failed) =
                    (setup.clone(), host.clone(), done.clone(), failed.clone());
                tasks.push(tokio::spawn(async move {
                    while Instant::now() < until {
                        match one_login(&setup, &host, port, false).await {
                            Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                            Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
            let n = done.load(Ordering::Relaxed);
            println!(
                "logins={n} failed={} seconds={secs} logins_per_s={:.0}",
                failed.load(Ordering::Relaxed),
                n as f64 / secs as f64
            );
        }
        Some("idle") if args.len() == 4 => {
            let (setup, host, port) = console_setup(Path::new(&args[1]));
            let n: usize = args[2].parse().unwrap_or_else(|_| usage());
            let pid: u32 = args[3].parse().unwrap_or_else(|_| usage());
            let before = rss_kib(pid);
            let mut held = Vec::with_capacity(n);
            for i in 0..n {
                match baculink_net::connect(&host, port, &setup).await {
                    Ok((sock, peer)) => held.push((sock, peer)),
                    Err(e) => {
                        eprintln!("connection {i}: {e}");
                        break;
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            let after = rss_kib(pid);
            let mode = held
                .first()
                .map(|(_, p)| p.mode().to_string())
                .unwrap_or_default();
            println!(
                "idle_connections={} mode={mode} rss_before_kib={before} rss_after_kib={after} kib_per_connection={:.1}",
                held.len(),
                (after.saturating_sub(before)) as f64 / held.len().max(1) as f64
            );
            drop(held);
        }
        Some("bulk") if args.len() == 3 => {
            let psk = match args[1].as_str() {
                "psk" => true,
                "clear" => false,
                _ => usage(),
            };
            let mib: usize = args[2].parse().unwrap_or_else(|_| usage());
            bulk(psk, mib).await;
        }
        Some("kex") if args.len() == 2 => {
            let n: u32 = args[1].parse().unwrap_or_else(|_| usage());
            kex(n);
        }
        Some("gcm") if args.len() == 2 => {
            let mib: usize = args[1].parse().unwrap_or_else(|_| usage());
            gcm(mib);
        }
        _ => usage(),
    }
}

async fn bulk(psk: bool, mib: usize) {
    let needs = if psk {
        Needs::new(Need::None, Need::Required)
    } else {
        Needs::NONE
    };
    let local = Local {
        key: Secret::from_password("bulk"),
        needs,
        authenticate: false,
        dialect: Dialect::V13,
        name: "bench".into(),
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let server_local = local.clone();
    let total = (mib * 1024 * 1024) as u64;
    // The receiving end runs on a thread and runtime of its own, as the
    // Storage daemon would in its own process.
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let (tcp, _) = listener.accept().await.expect("accept");
            let setup = ServerSetup {
                config: ServerConfig {
                    kind: ServerKind::FileDaemon,
                    name: "bench-fd".into(),
                    version: 14,
                    version_text: String::new(),
                    dialect: Dialect::V13,
                },
                timeout: Duration::from_secs(10),
                damping: false,
            };
            let (mut sock, _) = baculink_net::accept(BSock::new(tcp), &setup, |_| {
                Some(PeerSetup {
                    local: server_local.clone(),
                    cert: None,
                    psk: None,
                    allowed_cn: vec![],
                    label: "bench".into(),
                })
            })
            .await
            .expect("server login");
            sock.tune_for_bulk();
            let mut got = 0u64;
            while got < total {
                match sock.recv().await.expect("recv") {
                    Packet::Data(d) => got += d.len() as u64,
                    Packet::Signal(_) => break,
                }
            }
            sock.send_text("done").await.expect("ack");
            got
        })
    });
    let setup = ClientSetup {
        config: ClientConfig {
            hello: Hello::Director {
                name: "bench-dir".into(),
                version: Some(10002),
                tlspsk: None,
            },
            local,
        },
        cert: None,
        psk: None,
        host: "127.0.0.1".into(),
        allowed_cn: vec![],
        timeout: Duration::from_secs(10),
        label: "bench".into(),
    };
    let (mut sock, peer) = baculink_net::connect("127.0.0.1", port, &setup)
        .await
        .expect("client login");
    sock.tune_for_bulk();
    let facts = peer
        .tls
        .as_ref()
        .map(|f| format!("{} {}", f.version, f.cipher))
        .unwrap_or_else(|| "clear".into());
    let payload = Packet::data(vec![0x5au8; 64 * 1024]);
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let mut sent = 0u64;
    // As the File daemon sends file data: packets fed back to back.
    while sent < total {
        sock.feed(&payload).await.expect("send");
        sent += 64 * 1024;
    }
    sock.flush().await.expect("flush");
    let _ack = sock.recv().await.expect("ack");
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let got = server.join().expect("server");
    println!(
        "bulk mode={} suite=\"{facts}\" openssl=\"{}\" bytes={got} seconds={secs:.3} MB_per_s={:.0} cpu_s_per_GB={:.3}",
        peer.mode(),
        baculink_tls::engine(),
        got as f64 / secs / 1e6,
        cpu / (got as f64 / 1e9)
    );
}

/// Times key generation and exchange for the two classic TLS 1.3 groups.
fn kex(n: u32) {
    use openssl::derive::Deriver;
    use openssl::pkey::{PKey, Private};
    let x25519 = || PKey::generate_x25519().expect("X25519 key");
    let group =
        openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).expect("P-256");
    let p256 = || {
        PKey::from_ec_key(openssl::ec::EcKey::generate(&group).expect("P-256 key")).expect("key")
    };
    let mut rows = Vec::new();
    for (name, gen) in [
        ("X25519", &x25519 as &dyn Fn() -> PKey<Private>),
        ("P-256", &p256),
    ] {
        let peer = gen();
        let t = Instant::now();
        let keys: Vec<_> = (0..n).map(|_| gen()).collect();
        let keygen = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        let t = Instant::now();
        for k in &keys {
            let mut d = Deriver::new(k).expect("deriver");
            d.set_peer(&peer).expect("peer key");
            d.derive_to_vec().expect("derive");
        }
        let derive = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        rows.push(format!(
            "{name} keygen_us={keygen:.1} derive_us={derive:.1}"
        ));
    }
    println!(
        "kex openssl=\"{}\" n={n} {}",
        baculink_tls::engine(),
        rows.join(" ")
    );
}

/// Seals `mib` MiB as 16 KiB TLS 1.3 records with AES-128-GCM from each
/// provider that offers it here, the way libssl drives the cipher.
fn gcm(mib: usize) {
    use openssl::cipher::Cipher;
    use openssl::cipher_ctx::CipherCtx;
    const RECORD: usize = 16 * 1024;
    let records = mib * 1024 * 1024 / RECORD;
    let mut providers = vec![("openssl", "provider=default")];
    if baculink_tls::gcm::active() {
        providers.push(("aws-lc", baculink_tls::gcm::OURS));
    }
    let mut rows = Vec::new();
    for (name, props) in providers {
        let cipher = Cipher::fetch(None, "AES-128-GCM", Some(props)).expect("AES-128-GCM");
        let mut ctx = CipherCtx::new().expect("cipher context");
        ctx.encrypt_init(Some(&cipher), Some(&[7; 16]), None)
            .expect("key");
        let mut buf = vec![0x5au8; RECORD];
        let mut tag = [0u8; 16];
        let t = Instant::now();
        for i in 0..records {
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&(i as u64).to_be_bytes());
            ctx.encrypt_init(None, None, Some(&nonce)).expect("nonce");
            ctx.cipher_update(&[0x17, 3, 3, 0x40, 0x11], None)
                .expect("aad");
            let n = ctx.cipher_update_inplace(&mut buf, RECORD).expect("seal");
            ctx.cipher_final(&mut buf[n..]).expect("final");
            ctx.tag(&mut tag).expect("tag");
        }
        let secs = t.elapsed().as_secs_f64();
        rows.push(format!(
            "{name}_GB_per_s={:.2}",
            (records * RECORD) as f64 / secs / 1e9
        ));
    }
    println!(
        "gcm openssl=\"{}\" record=16KiB {}",
        baculink_tls::engine(),
        rows.join(" ")
    );
}

/// User + system CPU time of this process so far (both ends of the bulk
/// connection run here): a steadier measure than wall time on a shared machine.
fn cpu_seconds() -> f64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let ru = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr());
        ru.assume_init()
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}
