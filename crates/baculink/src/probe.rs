//! `baculink probe`: log in to a Bacula daemon as a console (with a
//! bconsole.conf) or as the Director (with a bacula-dir.conf and `--client` /
//! `--storage`), and report how the connection is secured.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use baculink_conf::tls::TlsRole;
use baculink_conf::TlsSettings;
use baculink_net::{BSock, ClientSetup, Peer};
use baculink_proto::frame::{Packet, Signal};
use baculink_proto::hello::{self, Hello};
use baculink_proto::negotiate::Dialect;
use baculink_proto::Secret;
use clap::Args;
use serde_json::json;

use crate::login::{self, FailureClass};

/// `baculink probe` arguments.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// A bconsole.conf (log in as a console) or a bacula-dir.conf (log in as the Director).
    #[arg(short = 'c', long = "config")]
    pub config: PathBuf,
    /// The Director resource to use from a bconsole.conf (default: the first).
    #[arg(long, conflicts_with_all = ["client", "storage"])]
    pub director: Option<String>,
    /// With a bacula-dir.conf: the Client resource to log in to.
    #[arg(long, conflicts_with = "storage")]
    pub client: Option<String>,
    /// With a bacula-dir.conf: the Storage resource to log in to.
    #[arg(long)]
    pub storage: Option<String>,
    /// A command to run after the login (e.g. `version`, `status`); its reply is printed.
    #[arg(long)]
    pub command: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Speak the 9.6 dialect (no `tlspsk=` in the Hello) instead of 13.x.
    #[arg(long, value_parser = ["9.6", "13"], default_value = "13")]
    pub dialect: String,
    /// Login timeout in seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Debug level.
    #[arg(short = 'd', default_value_t = 0)]
    pub debug: u32,
}

/// What to connect to, resolved from the config.
pub struct Target {
    pub class: &'static str,
    pub name: String,
    pub host: String,
    pub port: u16,
    pub hello: Hello,
    pub key: Secret,
    pub tls: TlsSettings,
    pub our_name: String,
}

impl Target {
    /// The login setup for this target: its resource's TLS context, secret
    /// and needs, in `dialect`, bounded by `timeout`.
    pub fn setup(
        &self,
        dialect: Dialect,
        timeout: Duration,
    ) -> Result<ClientSetup, baculink_tls::TlsError> {
        let cert = login::cert_context(&self.tls, TlsRole::Client)?;
        if self.tls.psk_enable {
            baculink_tls::PskContext::for_settings(&self.tls)?;
        }
        Ok(login::client_setup(
            self.hello.clone(),
            self.key.clone(),
            &self.tls,
            cert,
            &self.our_name,
            &self.host,
            self.label(),
            dialect,
            timeout,
        ))
    }

    /// How errors name the peer, e.g. `Director "bacula-dir" at 127.0.0.1:9101`.
    pub fn label(&self) -> String {
        format!(
            "{} \"{}\" at {}:{}",
            self.class, self.name, self.host, self.port
        )
    }
}

pub async fn main(args: ProbeArgs) -> ExitCode {
    if let Err(e) = login::require_fips(&args.config) {
        eprintln!("baculink probe: {e}");
        return ExitCode::from(1);
    }
    let target = match resolve(&args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("baculink probe: {e}");
            return ExitCode::from(1);
        }
    };
    let dialect = if args.dialect == "9.6" {
        Dialect::V96
    } else {
        Dialect::V13
    };
    let setup = match target.setup(dialect, Duration::from_secs(args.timeout)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("baculink probe: {}: {e}", args.config.display());
            return ExitCode::from(1);
        }
    };
    let (mut sock, peer) = match baculink_net::connect(&target.host, target.port, &setup).await {
        Ok(x) => x,
        Err(e) => {
            let class = FailureClass::of(&e);
            if args.json {
                println!(
                    "{}",
                    json!({"ok": false, "error": class.headline(), "detail": e.to_string(), "peer": target.label()})
                );
            }
            eprintln!("baculink probe: {}: {e}", class.headline());
            return ExitCode::from(class.exit_code());
        }
    };
    let reply = match &args.command {
        Some(cmd) => match run_command(&mut sock, &target, cmd).await {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("baculink probe: command {cmd:?} failed: {e}");
                sock.close().await;
                return ExitCode::from(1);
            }
        },
        None => None,
    };
    let _ = sock.signal(Signal::Terminate).await;
    sock.close().await;
    report(&args, &target, &peer, reply.as_deref());
    ExitCode::SUCCESS
}

fn release_of(final_line: Option<&str>) -> Option<String> {
    let line = final_line?;
    let i = line.find("Version: ")?;
    Some(line[i + 9..].trim_end().to_string())
}

fn report(args: &ProbeArgs, target: &Target, peer: &Peer, reply: Option<&str>) {
    let est = &peer.established;
    let facts = peer.tls.as_ref().or(peer.login_tls.as_ref());
    let release = release_of(est.final_line.as_deref());
    if args.json {
        let v = json!({
            "ok": true,
            "peer": target.label(),
            "peer_class": target.class,
            "peer_name": target.name,
            "mode": est.mode.as_str(),
            "login_mode": est.login_mode.as_str(),
            "dialect": est.peer_dialect.to_string(),
            "peer_version": est.peer_version,
            "peer_release": release,
            "final_line": est.final_line.as_deref().map(str::trim_end),
            "tls_version": facts.map(|f| f.version.clone()),
            "cipher": facts.map(|f| f.cipher.clone()),
            "group": facts.and_then(|f| f.group.clone()),
            "peer_subject": facts.and_then(|f| f.peer_subject.clone()),
            "peer_not_after": facts.and_then(|f| f.peer_not_after.clone()),
            "peer_days_left": facts.and_then(|f| f.peer_days_left),
            "reply": reply,
        });
        println!("{v}");
        return;
    }
    println!("Logged in to {}", target.label());
    if let Some(l) = &est.final_line {
        println!("  answered:    {}", l.trim_end());
    }
    println!("  dialect:     {}", est.peer_dialect);
    println!("  mode:        {}", est.mode);
    if est.login_mode != est.mode {
        println!(
            "  login mode:  {} (TLS Authenticate: TLS dropped after login)",
            est.login_mode
        );
    }
    if let Some(f) = facts {
        println!("  TLS:         {} {}", f.version, f.cipher);
        if let Some(g) = &f.group {
            println!("  key group:   {g}");
        }
        if let Some(s) = &f.peer_subject {
            println!("  peer cert:   {s}");
        }
        if let (Some(na), Some(d)) = (&f.peer_not_after, f.peer_days_left) {
            println!("  expires:     {na} ({d} days)");
        }
    }
    if let Some(r) = reply {
        println!("  reply:");
        for line in r.lines() {
            println!("    {line}");
        }
    }
}

/// Runs one command and collects the reply up to the end of its output.
pub async fn run_command(sock: &mut BSock, target: &Target, cmd: &str) -> Result<String, String> {
    let limit = Duration::from_secs(60);
    if matches!(target.hello, Hello::Director { .. }) {
        // Every Director -> FD connection starts with a job line (protocol-jobs.md §3.1).
        let job = format!(
            "JobId=0 Job=-Console-.{} SDid=0 SDtime=0 Authorization=dummy\n",
            chrono_like_now()
        );
        sock.send_text(&job).await.map_err(|e| e.to_string())?;
        let ok = sock.recv_timeout(limit).await.map_err(|e| e.to_string())?;
        let text = ok.text().unwrap_or_default();
        if !text.starts_with("2000 OK Job") {
            return Err(format!(
                "the file daemon refused the job line: {}",
                text.trim_end()
            ));
        }
    }
    sock.send_text(cmd).await.map_err(|e| e.to_string())?;
    let mut out = String::new();
    loop {
        match sock.recv_timeout(limit).await.map_err(|e| e.to_string())? {
            Packet::Data(d) => {
                let end = d.iter().position(|&b| b == 0).unwrap_or(d.len());
                out.push_str(&String::from_utf8_lossy(&d[..end]));
            }
            Packet::Signal(
                Signal::Eod | Signal::MainPrompt | Signal::CmdOk | Signal::CmdFailed,
            ) => break,
            Packet::Signal(Signal::SubPrompt) => {
                // A prompt: the probe answers nothing and cancels it.
                sock.send_text(".").await.map_err(|e| e.to_string())?;
            }
            Packet::Signal(Signal::Terminate) => break,
            Packet::Signal(_) => {}
        }
    }
    Ok(out)
}

/// A unique-enough job name suffix without a date crate: seconds since the epoch.
fn chrono_like_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("probe_{secs}")
}

/// Finds the peer to log in to from the config and the arguments.
pub fn resolve(args: &ProbeArgs) -> Result<Target, String> {
    use baculink_conf::AnyConfig;
    let (conf, warnings) = baculink_conf::load_any(&args.config).map_err(|e| e.to_string())?;
    baculink_conf::log_warnings(&warnings);
    match conf {
        AnyConfig::Console(c) => console_target(&c, args.director.as_deref()),
        AnyConfig::Director(d) => {
            let our = d.director.name.clone();
            if let Some(n) = &args.client {
                let c = d.clients.iter().find(|c| &c.name == n).ok_or_else(|| {
                    format!("{}: no Client resource named {n:?}", args.config.display())
                })?;
                Ok(Target {
                    class: "File daemon",
                    name: c.name.clone(),
                    host: c.address.clone(),
                    port: c.port,
                    hello: Hello::Director {
                        name: our.clone(),
                        version: Some(hello::DIRECTOR_VERSION_V13),
                        tlspsk: None,
                    },
                    key: c.password.clone(),
                    tls: c.tls.clone(),
                    our_name: our,
                })
            } else if let Some(n) = &args.storage {
                let s = d.storages.iter().find(|s| &s.name == n).ok_or_else(|| {
                    format!("{}: no Storage resource named {n:?}", args.config.display())
                })?;
                Ok(Target {
                    class: "Storage daemon",
                    name: s.name.clone(),
                    host: s.address.clone(),
                    port: s.port,
                    hello: Hello::DirectorToSd {
                        name: our.clone(),
                        version: Some(hello::DIRECTOR_VERSION_V13),
                        tlspsk: None,
                    },
                    key: s.password.clone(),
                    tls: s.tls.clone(),
                    our_name: our,
                })
            } else {
                Err(format!(
                    "{} is a Director configuration: name the peer with --client NAME or --storage NAME",
                    args.config.display()
                ))
            }
        }
        _ => Err(format!(
            "{}: probe needs a bconsole.conf or a bacula-dir.conf",
            args.config.display()
        )),
    }
}

/// The Director a console logs in to, from a bconsole.conf: the named
/// Director resource (or the first), as a named console when a Console
/// resource is bound to it, else as the default console.
pub fn console_target(
    c: &baculink_conf::ConsoleConfig,
    director: Option<&str>,
) -> Result<Target, String> {
    let path = c.path.display();
    let dir = match director {
        Some(n) => c
            .directors
            .iter()
            .find(|d| d.name == n)
            .ok_or_else(|| format!("{path}: no Director resource named {n:?}"))?,
        None => c
            .directors
            .first()
            .ok_or_else(|| format!("{path}: no Director resource"))?,
    };
    // A Console resource bound to this Director makes a named console.
    let named = c.consoles.iter().find(|k| {
        k.director
            .as_deref()
            .map_or(c.directors.len() == 1, |d| d == dir.name)
    });
    let (name, key, tls) = match named {
        Some(k) => (k.name.clone(), k.password.clone(), k.tls.clone()),
        None => (
            "*UserAgent*".to_string(),
            dir.password.clone(),
            dir.tls.clone(),
        ),
    };
    Ok(Target {
        class: "Director",
        name: dir.name.clone(),
        host: dir.address.clone().unwrap_or_else(|| "localhost".into()),
        port: dir.port,
        hello: Hello::Console {
            name,
            version: Some(hello::CONSOLE_VERSION_V13),
            tlspsk: None,
        },
        key,
        tls,
        our_name: "bconsole".into(),
    })
}
