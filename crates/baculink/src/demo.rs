//! `baculink demo`: the end-to-end run on loopback. Writes Bacula config
//! files (real syntax, what an administrator writes), starts our Director,
//! File daemon and Storage daemon from them, logs in as a console and runs
//! `status` on every link, then prints the TLS facts of each link.
//!
//! By default no certificates are configured, so every link is TLS-PSK keyed
//! from its password; `--certs` generates a CA and certificates and requires
//! certificate TLS with Verify Peer and Allowed CN everywhere.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use baculink_tls::certgen::{self, Ca};
use clap::Args;
use tokio::net::TcpListener;

use crate::daemon::{self, Daemon};
use crate::director::Director;
use crate::fd::FileDaemon;
use crate::login;
use crate::probe;
use crate::sd::StorageDaemon;

/// `baculink demo` arguments.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Use certificate TLS (a generated CA) instead of TLS-PSK.
    #[arg(long)]
    pub certs: bool,
    /// Keep the generated files in this folder (default: a temporary folder).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Debug level.
    #[arg(short = 'd', default_value_t = 0)]
    pub debug: u32,
}

/// Ports and names of the demo's daemons.
struct Ports {
    dir: u16,
    fd: u16,
    sd: u16,
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// TLS lines for a resource: nothing in PSK mode; certificate TLS required
/// otherwise, with the peer's CN allowed when this side accepts.
fn tls(certs: Option<&Path>, own: &str, allowed_cn: Option<&str>) -> String {
    let Some(c) = certs else {
        return "  # No TLS directives: TLS-PSK keyed from the password.\n".into();
    };
    let c = c.display();
    let mut s = format!(
        "  TLS Enable = yes\n  TLS Require = yes\n  TLS CA Certificate File = \"{c}/ca.pem\"\n  \
         TLS Certificate = \"{c}/{own}.pem\"\n  TLS Key = \"{c}/{own}.key\"\n"
    );
    if let Some(cn) = allowed_cn {
        s.push_str(&format!(
            "  TLS Verify Peer = yes\n  TLS Allowed CN = \"{cn}\"\n  TLS DH File = \"{c}/dh2048.pem\"\n"
        ));
    }
    s
}

/// Writes certificates (with `--certs`) and the four config files.
fn prepare(dir: &Path, p: &Ports, with_certs: bool) -> Result<[PathBuf; 4], String> {
    let certs = dir.join("certs");
    if with_certs {
        std::fs::create_dir_all(&certs).map_err(|e| format!("{}: {e}", certs.display()))?;
        let ca = Ca::new("baculink demo CA").map_err(|e| e.to_string())?;
        certgen::write_cert_pem(&certs.join("ca.pem"), &ca.cert).map_err(|e| e.to_string())?;
        let lo: IpAddr = "127.0.0.1".parse().expect("loopback literal");
        for (file, cn) in [
            ("dir", "demo-dir"),
            ("fd", "demo-fd"),
            ("sd", "demo-sd"),
            ("console", "demo-console"),
        ] {
            let (c, k) = ca
                .issue(cn, &["localhost"], &[lo], 365)
                .map_err(|e| e.to_string())?;
            certgen::write_pem_files(&certs, file, &c, &k).map_err(|e| e.to_string())?;
        }
        certgen::write_dh_file(&certs.join("dh2048.pem")).map_err(|e| e.to_string())?;
    }
    let c = with_certs.then_some(certs.as_path());
    let w = dir.display();
    let files = [
        dir.join("bacula-dir.conf"),
        dir.join("bacula-fd.conf"),
        dir.join("bacula-sd.conf"),
        dir.join("bconsole.conf"),
    ];
    write(
        &files[0],
        &format!(
            "Director {{\n  Name = demo-dir\n  DIRAddress = 127.0.0.1\n  DIRport = {}\n  Password = \"console-secret\"\n  \
             WorkingDirectory = \"{w}\"\n  PidDirectory = \"{w}\"\n  Messages = Daemon\n{}}}\n\
             Client {{\n  Name = demo-fd\n  Address = 127.0.0.1\n  FDPort = {}\n  Password = \"fd-secret\"\n{}}}\n\
             Storage {{\n  Name = File1\n  Address = 127.0.0.1\n  SDPort = {}\n  Password = \"sd-secret\"\n  \
             Device = FileStorage\n  Media Type = File\n{}}}\n\
             Messages {{\n  Name = Daemon\n  console = all\n}}\n",
            p.dir,
            tls(c, "dir", Some("demo-console")),
            p.fd,
            tls(c, "dir", None),
            p.sd,
            tls(c, "dir", None),
        ),
    )?;
    write(
        &files[1],
        &format!(
            "Director {{\n  Name = demo-dir\n  Password = \"fd-secret\"\n{}}}\n\
             FileDaemon {{\n  Name = demo-fd\n  FDAddress = 127.0.0.1\n  FDport = {}\n  WorkingDirectory = \"{w}\"\n  \
             Pid Directory = \"{w}\"\n{}}}\n\
             Messages {{\n  Name = Standard\n  director = demo-dir = all\n}}\n",
            tls(c, "fd", Some("demo-dir")),
            p.fd,
            tls(c, "fd", None),
        ),
    )?;
    let volumes = dir.join("volumes");
    std::fs::create_dir_all(&volumes).map_err(|e| format!("{}: {e}", volumes.display()))?;
    write(
        &files[2],
        &format!(
            "Storage {{\n  Name = demo-sd\n  SDAddress = 127.0.0.1\n  SDPort = {}\n  WorkingDirectory = \"{w}\"\n  \
             Pid Directory = \"{w}\"\n{}}}\n\
             Director {{\n  Name = demo-dir\n  Password = \"sd-secret\"\n{}}}\n\
             Device {{\n  Name = FileStorage\n  Media Type = File\n  Archive Device = \"{}\"\n  LabelMedia = yes\n  \
             Random Access = yes\n  AutomaticMount = yes\n  RemovableMedia = no\n  AlwaysOpen = no\n}}\n\
             Messages {{\n  Name = Standard\n  director = demo-dir = all\n}}\n",
            p.sd,
            tls(c, "sd", Some("demo-fd")),
            tls(c, "sd", Some("demo-dir")),
            volumes.display(),
        ),
    )?;
    write(
        &files[3],
        &format!(
            "Director {{\n  Name = demo-dir\n  Address = 127.0.0.1\n  DIRport = {}\n  Password = \"console-secret\"\n{}}}\n",
            p.dir,
            tls(c, "console", None),
        ),
    )?;
    Ok(files)
}

pub async fn main(args: DemoArgs) -> ExitCode {
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baculink demo: {e}");
            ExitCode::from(1)
        }
    }
}

async fn bind() -> Result<(TcpListener, u16), String> {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let port = l.local_addr().map_err(|e| e.to_string())?.port();
    Ok((l, port))
}

/// Starts one daemon in this process from its config file.
fn start<D: Daemon>(
    conf: &Path,
    listener: TcpListener,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let d = Arc::new(D::load(conf, Duration::from_secs(30))?);
    Ok(tokio::spawn(daemon::serve(listener, move |tcp, addr| {
        d.clone().handle(tcp, addr)
    })))
}

async fn run(args: DemoArgs) -> Result<(), String> {
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("baculink-demo-")
                .tempdir()
                .map_err(|e| e.to_string())?;
            tmp.path().to_path_buf()
        }
    };
    let (dl, dir_port) = bind().await?;
    let (fl, fd_port) = bind().await?;
    let (sl, sd_port) = bind().await?;
    let ports = Ports {
        dir: dir_port,
        fd: fd_port,
        sd: sd_port,
    };
    let [dir_conf, fd_conf, sd_conf, con_conf] = prepare(&dir, &ports, args.certs)?;
    let kind = if args.certs {
        "certificate TLS"
    } else {
        "TLS-PSK (no certificates configured)"
    };
    println!("baculink demo ({kind}): configs in {}", dir.display());
    let tasks = [
        start::<Director>(&dir_conf, dl)?,
        start::<FileDaemon>(&fd_conf, fl)?,
        start::<StorageDaemon>(&sd_conf, sl)?,
    ];
    println!("Director on 127.0.0.1:{dir_port}, File daemon on 127.0.0.1:{fd_port}, Storage daemon on 127.0.0.1:{sd_port}");
    let result = tokio::time::timeout(Duration::from_secs(120), console_round(&con_conf))
        .await
        .map_err(|_| "the console session did not finish within 120 s".to_string())
        .and_then(|r| r);
    for t in tasks {
        t.abort();
    }
    result
}

/// Logs in as a console and runs `status` on every link.
async fn console_round(con_conf: &Path) -> Result<(), String> {
    let (conf, warnings) =
        baculink_conf::ConsoleConfig::load(con_conf).map_err(|e| e.to_string())?;
    baculink_conf::log_warnings(&warnings);
    let target = probe::console_target(&conf, None)?;
    let setup = target
        .setup(
            baculink_proto::negotiate::Dialect::V13,
            Duration::from_secs(30),
        )
        .map_err(|e| e.to_string())?;
    let (mut sock, peer) = baculink_net::connect(&target.host, target.port, &setup)
        .await
        .map_err(|e| format!("{}: {e}", login::FailureClass::of(&e).headline()))?;
    let mut facts = vec![format!(
        "{:<26}: dialect {}, {}",
        "console -> director",
        peer.established.peer_dialect,
        summary(peer.established.mode, peer.tls.as_ref())
    )];
    for (cmd, marker) in [
        ("status dir", None),
        (
            "status client=demo-fd",
            Some(("director -> file daemon", "from Director")),
        ),
        (
            "status storage=File1",
            Some(("director -> storage daemon", "from Director")),
        ),
    ] {
        println!("\n* {cmd}");
        let reply = probe::run_command(&mut sock, &target, cmd).await?;
        print!("{reply}");
        if let Some((what, needle)) = marker {
            let line = reply
                .lines()
                .find(|l| l.contains(needle) && l.contains("dialect"))
                .ok_or_else(|| format!("`{cmd}` did not show the link's TLS facts"))?;
            let facts_only = line
                .split_once(": dialect")
                .map(|x| format!("dialect{}", x.1));
            facts.push(format!(
                "{what:<26}: {}",
                facts_only.unwrap_or_else(|| line.trim().to_string())
            ));
        }
    }
    let _ = sock.signal(baculink_proto::frame::Signal::Terminate).await;
    sock.close().await;
    println!("\nTLS facts of each link:");
    for f in &facts {
        println!("  {f}");
    }
    Ok(())
}

fn summary(
    mode: baculink_proto::negotiate::Mode,
    f: Option<&baculink_tls::SessionFacts>,
) -> String {
    let mut s = daemon::mode_words(mode).to_string();
    if let Some(f) = f {
        s.push_str(&format!(", {} {}", f.version, f.cipher));
        if let Some(sub) = &f.peer_subject {
            s.push_str(&format!(", peer certificate \"{sub}\""));
        }
    }
    s
}
