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
    #[arg(long, conflicts_with = "clear")]
    pub certs: bool,
    /// Use no TLS at all (for comparison).
    #[arg(long)]
    pub clear: bool,
    /// Keep the generated files in this folder (default: a temporary folder).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Back up this folder instead of a generated sample tree.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Size in MiB of the large file in the generated sample tree.
    #[arg(long, default_value_t = 64)]
    pub big_mib: u64,
    /// Only write the configs (and certificates), start nothing.
    #[arg(long)]
    pub configs_only: bool,
    /// Debug level.
    #[arg(short = 'd', default_value_t = 0)]
    pub debug: u32,
}

/// How the demo's links are secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Security {
    Psk,
    Certs,
    Clear,
}

/// Ports of the demo's daemons.
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
fn tls(sec: Security, certs: &Path, own: &str, allowed_cn: Option<&str>) -> String {
    match sec {
        Security::Psk => return "  # No TLS directives: TLS-PSK keyed from the password.\n".into(),
        Security::Clear => return "  TLS Enable = no\n  TLS PSK Enable = no\n".into(),
        Security::Certs => {}
    }
    let c = certs;
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
fn prepare(dir: &Path, p: &Ports, sec: Security, data: &Path) -> Result<[PathBuf; 4], String> {
    let certs = dir.join("certs");
    if sec == Security::Certs {
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
    let c = sec;
    let certs = certs.as_path();
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
             Client {{\n  Name = demo-fd\n  Address = 127.0.0.1\n  FDPort = {}\n  Password = \"fd-secret\"\n  \
             Catalog = MyCatalog\n{}}}\n\
             Storage {{\n  Name = File1\n  Address = 127.0.0.1\n  SDPort = {}\n  Password = \"sd-secret\"\n  \
             Device = FileStorage\n  Media Type = File\n{}}}\n\
             Catalog {{\n  Name = MyCatalog\n  dbname = \"bacula\"; dbuser = \"\"; dbpassword = \"\"\n}}\n\
             FileSet {{\n  Name = DataSet\n  Include {{\n    Options {{\n      signature = MD5\n    }}\n    \
             File = \"{data}\"\n  }}\n}}\n\
             Pool {{\n  Name = Default\n  Pool Type = Backup\n}}\n\
             Pool {{\n  Name = File\n  Pool Type = Backup\n  Label Format = \"Vol-\"\n  Maximum Volume Jobs = 1\n}}\n\
             Job {{\n  Name = BackupData\n  Type = Backup\n  Level = Full\n  Client = demo-fd\n  FileSet = DataSet\n  \
             Storage = File1\n  Pool = File\n  Messages = Standard\n}}\n\
             Job {{\n  Name = RestoreData\n  Type = Restore\n  Client = demo-fd\n  FileSet = DataSet\n  \
             Storage = File1\n  Pool = File\n  Messages = Standard\n  Where = \"{w}/restore\"\n}}\n\
             Messages {{\n  Name = Standard\n  console = all, !skipped, !saved\n  catalog = all\n}}\n\
             Messages {{\n  Name = Daemon\n  console = all\n}}\n",
            p.dir,
            tls(c, certs, "dir", Some("demo-console")),
            p.fd,
            tls(c, certs, "dir", None),
            p.sd,
            tls(c, certs, "dir", None),
            data = data.display(),
        ),
    )?;
    write(
        &files[1],
        &format!(
            "Director {{\n  Name = demo-dir\n  Password = \"fd-secret\"\n{}}}\n\
             FileDaemon {{\n  Name = demo-fd\n  FDAddress = 127.0.0.1\n  FDport = {}\n  WorkingDirectory = \"{w}\"\n  \
             Pid Directory = \"{w}\"\n{}}}\n\
             Messages {{\n  Name = Standard\n  director = demo-dir = all\n}}\n",
            tls(c, certs, "fd", Some("demo-dir")),
            p.fd,
            tls(c, certs, "fd", None),
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
            tls(c, certs, "sd", Some("demo-fd")),
            tls(c, certs, "sd", Some("demo-dir")),
            volumes.display(),
        ),
    )?;
    write(
        &files[3],
        &format!(
            "Director {{\n  Name = demo-dir\n  Address = 127.0.0.1\n  DIRport = {}\n  Password = \"console-secret\"\n{}}}\n",
            p.dir,
            tls(c, certs, "console", None),
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
            std::fs::canonicalize(d).map_err(|e| format!("{}: {e}", d.display()))?
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("baculink-demo-")
                .tempdir()
                .map_err(|e| e.to_string())?;
            tmp.path().to_path_buf()
        }
    };
    let sec = if args.certs {
        Security::Certs
    } else if args.clear {
        Security::Clear
    } else {
        Security::Psk
    };
    let data = match &args.data {
        Some(d) => std::fs::canonicalize(d).map_err(|e| format!("{}: {e}", d.display()))?,
        None => {
            let d = dir.join("data");
            sample_tree(&d, args.big_mib)?;
            d
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
    let [dir_conf, fd_conf, sd_conf, con_conf] = prepare(&dir, &ports, sec, &data)?;
    let kind = match sec {
        Security::Psk => "TLS-PSK (no certificates configured)",
        Security::Certs => "certificate TLS",
        Security::Clear => "clear text (no TLS)",
    };
    println!("baculink demo ({kind}): configs in {}", dir.display());
    if args.configs_only {
        return Ok(());
    }
    let tasks = [
        start::<Director>(&dir_conf, dl)?,
        start::<FileDaemon>(&fd_conf, fl)?,
        start::<StorageDaemon>(&sd_conf, sl)?,
    ];
    println!(
        "Director on 127.0.0.1:{dir_port}, File daemon on 127.0.0.1:{fd_port}, Storage daemon on 127.0.0.1:{sd_port}"
    );
    let result = tokio::time::timeout(
        Duration::from_secs(1800),
        console_round(&con_conf, &data, &dir.join("restore")),
    )
    .await
    .map_err(|_| "the demo did not finish within 30 minutes".to_string())
    .and_then(|r| r);
    for t in tasks {
        t.abort();
    }
    result
}

/// A sample tree: text files, an empty file, nested folders, a symlink and
/// one large random file of `big_mib` MiB.
fn sample_tree(d: &Path, big_mib: u64) -> Result<(), String> {
    use std::io::Write;
    let e = |e: std::io::Error| format!("{}: {e}", d.display());
    if d.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(d.join("docs/notes")).map_err(e)?;
    std::fs::write(
        d.join("README.txt"),
        "baculink demo data: backed up over TLS, stored in clear.\n",
    )
    .map_err(e)?;
    std::fs::write(d.join("empty.txt"), "").map_err(e)?;
    for i in 0..50 {
        std::fs::write(
            d.join(format!("docs/notes/note-{i:02}.txt")),
            format!("note {i}\n").repeat(100 + i),
        )
        .map_err(e)?;
    }
    std::os::unix::fs::symlink("README.txt", d.join("link-to-readme")).map_err(e)?;
    let mut f = std::fs::File::create(d.join("big.bin")).map_err(e)?;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..big_mib {
        openssl::rand::rand_bytes(&mut block).map_err(|err| err.to_string())?;
        f.write_all(&block).map_err(e)?;
    }
    Ok(())
}

/// One console session: status on every link, a backup, a restore, the
/// comparison, then the TLS facts of each link and the throughput.
async fn console_round(con_conf: &Path, data: &Path, restore_where: &Path) -> Result<(), String> {
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
    for (cmd, what) in [
        ("status client=demo-fd", "director -> file daemon"),
        ("status storage=File1", "director -> storage"),
    ] {
        let reply = probe::run_command(&mut sock, &target, cmd).await?;
        let line = reply
            .lines()
            .find(|l| l.contains("from Director") && l.contains("dialect"))
            .ok_or_else(|| format!("`{cmd}` did not show the link's TLS facts:\n{reply}"))?;
        let only = line
            .split_once(": dialect")
            .map(|x| format!("dialect{}", x.1));
        facts.push(format!(
            "{what:<26}: {}",
            only.unwrap_or_else(|| line.trim().to_string())
        ));
    }

    println!("\n* run job=BackupData yes");
    let t0 = std::time::Instant::now();
    let backup = run_job(&mut sock, &target, "run job=BackupData yes").await?;
    let backup_secs = t0.elapsed().as_secs_f64();
    print!("{}", backup.report);
    if !backup.report.contains("Backup OK") {
        return Err("the backup did not end \"Backup OK\"".into());
    }
    if let Some(l) = backup
        .report
        .lines()
        .find(|l| l.contains("Connected to Storage"))
    {
        let only = l.split_once(": dialect").map(|x| format!("dialect{}", x.1));
        facts.push(format!(
            "{:<26}: {}",
            "file daemon -> storage",
            only.unwrap_or_else(|| l.trim().to_string())
        ));
    }

    println!(
        "\n* restore jobid={} where={} all done yes",
        backup.id,
        restore_where.display()
    );
    let t1 = std::time::Instant::now();
    let restore = run_job(
        &mut sock,
        &target,
        &format!(
            "restore jobid={} where={} all done yes",
            backup.id,
            restore_where.display()
        ),
    )
    .await?;
    let restore_secs = t1.elapsed().as_secs_f64();
    print!("{}", restore.report);
    if !restore.report.contains("Restore OK") {
        return Err("the restore did not end \"Restore OK\"".into());
    }
    let _ = sock.signal(baculink_proto::frame::Signal::Terminate).await;
    sock.close().await;

    let restored = restore_where.join(data.strip_prefix("/").unwrap_or(data));
    let (files, bytes) = compare_trees(data, &restored)?;
    println!(
        "\nCompared {} with {}: {files} entries, {bytes} bytes, identical (contents, modes, mtimes, symlinks)",
        data.display(),
        restored.display()
    );
    println!("\nTLS facts of each link:");
    for f in &facts {
        println!("  {f}");
    }
    let mb = bytes as f64 / 1e6;
    println!(
        "\nThroughput: backup {mb:.1} MB in {backup_secs:.2} s = {:.1} MB/s; restore {:.2} s = {:.1} MB/s (wall time from `run` to the job report)",
        mb / backup_secs,
        restore_secs,
        mb / restore_secs
    );
    Ok(())
}

/// A finished job: its id and report.
struct JobDone {
    id: u64,
    report: String,
}

/// Starts a job, waits for it and collects its messages.
async fn run_job(
    sock: &mut baculink_net::BSock,
    target: &probe::Target,
    cmd: &str,
) -> Result<JobDone, String> {
    let queued = probe::run_command(sock, target, cmd).await?;
    let id: u64 = queued
        .lines()
        .find_map(|l| l.trim().strip_prefix("Job queued. JobId="))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("`{cmd}` did not queue a job:\n{queued}"))?;
    probe::run_command(sock, target, &format!("wait jobid={id}")).await?;
    let report = probe::run_command(sock, target, "messages").await?;
    Ok(JobDone { id, report })
}

/// Compares two trees: same entries, contents, modes, mtimes and symlink
/// targets. Returns (entries, file bytes).
fn compare_trees(a: &Path, b: &Path) -> Result<(u64, u64), String> {
    use std::os::unix::fs::MetadataExt;
    let mut entries = 0;
    let mut bytes = 0;
    let mut stack = vec![std::path::PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let (pa, pb) = (a.join(&rel), b.join(&rel));
        let (ma, mb) = (
            std::fs::symlink_metadata(&pa).map_err(|e| format!("{}: {e}", pa.display()))?,
            std::fs::symlink_metadata(&pb)
                .map_err(|e| format!("restored {}: {e}", pb.display()))?,
        );
        entries += 1;
        if ma.mode() != mb.mode() {
            return Err(format!(
                "{}: mode {:o} restored as {:o}",
                pa.display(),
                ma.mode(),
                mb.mode()
            ));
        }
        if ma.file_type().is_symlink() {
            let (ta, tb) = (std::fs::read_link(&pa), std::fs::read_link(&pb));
            if ta.ok() != tb.ok() {
                return Err(format!("{}: symlink target differs", pa.display()));
            }
            continue;
        }
        if ma.mtime() != mb.mtime() {
            return Err(format!(
                "{}: mtime {} restored as {}",
                pa.display(),
                ma.mtime(),
                mb.mtime()
            ));
        }
        if ma.is_dir() {
            let mut names: Vec<_> = std::fs::read_dir(&pa)
                .map_err(|e| e.to_string())?
                .flatten()
                .map(|e| e.file_name())
                .collect();
            let count_b = std::fs::read_dir(&pb).map_err(|e| e.to_string())?.count();
            if names.len() != count_b {
                return Err(format!(
                    "{}: {} entries, restored {count_b}",
                    pa.display(),
                    names.len()
                ));
            }
            names.sort();
            stack.extend(names.into_iter().map(|n| rel.join(n)));
        } else {
            let (da, db) = (
                std::fs::read(&pa).map_err(|e| e.to_string())?,
                std::fs::read(&pb).map_err(|e| e.to_string())?,
            );
            if da != db {
                return Err(format!("{}: contents differ", pa.display()));
            }
            bytes += da.len() as u64;
        }
    }
    Ok((entries, bytes))
}

fn summary(
    mode: baculink_proto::negotiate::Mode,
    f: Option<&baculink_tls::SessionFacts>,
) -> String {
    let mut s = daemon::mode_words(mode).to_string();
    if let Some(f) = f {
        s.push_str(&daemon::tls_words(f));
    }
    s
}
