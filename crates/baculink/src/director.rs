//! `baculink dir`: the Director. For now it accepts consoles (the default
//! `*UserAgent*` console through the Director resource, named consoles
//! through Console resources) and answers `version`, `status dir`,
//! `messages`, `help` and `quit`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use baculink_conf::tls::TlsRole;
use baculink_conf::DirectorConfig;
use baculink_net::{BSock, PeerSetup, ServerSetup};
use baculink_proto::frame::{Packet, Signal};
use baculink_proto::handshake::{ServerConfig, ServerKind};
use baculink_proto::hello::{self, Hello};
use baculink_proto::negotiate::Dialect;
use baculink_tls::{CertContext, SessionFacts};
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::cli::DaemonFlags;
use crate::login;

/// How long a console has to finish its login.
const CONSOLE_AUTH_TIMEOUT: Duration = Duration::from_secs(60);

/// A Director loaded from its config, with TLS contexts built.
pub struct Director {
    conf: DirectorConfig,
    director_cert: Option<Arc<CertContext>>,
    console_certs: Vec<Option<Arc<CertContext>>>,
    started: SystemTime,
    consoles: Mutex<Vec<Connection>>,
    next_id: Mutex<u64>,
}

/// A live console connection, for `status dir`.
#[derive(Clone, Debug)]
struct Connection {
    id: u64,
    label: String,
    addr: Option<SocketAddr>,
    dialect: Dialect,
    mode: baculink_proto::negotiate::Mode,
    facts: Option<SessionFacts>,
    since: SystemTime,
}

impl Director {
    /// Builds the TLS contexts of every resource; errors name the resource.
    pub fn new(conf: DirectorConfig) -> Result<Director, String> {
        let director_cert = login::cert_context(&conf.director.tls, TlsRole::Server)
            .map_err(|e| format!("Director \"{}\": {e}", conf.director.name))?;
        let mut console_certs = Vec::new();
        for c in &conf.consoles {
            console_certs.push(
                login::cert_context(&c.tls, TlsRole::Server)
                    .map_err(|e| format!("Console \"{}\": {e}", c.name))?,
            );
        }
        Ok(Director {
            conf,
            director_cert,
            console_certs,
            started: SystemTime::now(),
            consoles: Mutex::new(Vec::new()),
            next_id: Mutex::new(1),
        })
    }

    /// The Director's name.
    pub fn name(&self) -> &str {
        &self.conf.director.name
    }

    fn lookup(&self, hello: &Hello, addr: Option<SocketAddr>) -> Option<PeerSetup> {
        let Hello::Console { name, .. } = hello else {
            return None;
        };
        let at = addr.map(|a| a.to_string()).unwrap_or_default();
        if name == "*UserAgent*" {
            let d = &self.conf.director;
            return Some(login::peer_setup(
                d.password.clone(),
                &d.tls,
                self.director_cert.clone(),
                &d.name,
                format!("Console \"*UserAgent*\" at {at}"),
            ));
        }
        let i = self.conf.consoles.iter().position(|c| &c.name == name)?;
        let c = &self.conf.consoles[i];
        Some(login::peer_setup(
            c.password.clone(),
            &c.tls,
            self.console_certs[i].clone(),
            &self.conf.director.name,
            format!("Console \"{}\" at {at}", c.name),
        ))
    }

    fn server_setup(&self) -> ServerSetup {
        ServerSetup {
            config: ServerConfig {
                kind: ServerKind::Director,
                name: self.conf.director.name.clone(),
                version: hello::DIRECTOR_VERSION_V13,
                version_text: version_text(),
                dialect: Dialect::V13,
            },
            timeout: CONSOLE_AUTH_TIMEOUT,
            damping: true,
        }
    }

    /// Accepts consoles on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (tcp, addr) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let me = self.clone();
            tokio::spawn(async move {
                let sock = BSock::new(tcp);
                let setup = me.server_setup();
                match baculink_net::accept(sock, &setup, |h| me.lookup(h, Some(addr))).await {
                    Ok((sock, peer)) => {
                        info!(
                            "{} logged in ({}, {})",
                            peer.label, peer.established.peer_dialect, peer.established.mode
                        );
                        me.console_session(sock, peer).await;
                    }
                    Err(e) => warn!("console login from {addr} refused: {e}"),
                }
            });
        }
    }

    async fn console_session(&self, mut sock: BSock, peer: baculink_net::Peer) {
        let id = {
            let mut n = self.next_id.lock().expect("id lock");
            *n += 1;
            *n
        };
        self.consoles
            .lock()
            .expect("console list")
            .push(Connection {
                id,
                label: peer.label.clone(),
                addr: peer.addr,
                dialect: peer.established.peer_dialect,
                mode: peer.established.mode,
                facts: peer.tls.clone(),
                since: SystemTime::now(),
            });
        let result = self.command_loop(&mut sock).await;
        self.consoles
            .lock()
            .expect("console list")
            .retain(|c| c.id != id);
        if let Err(e) = result {
            info!("{}: {e}", peer.label);
        }
        sock.close().await;
    }

    async fn command_loop(&self, sock: &mut BSock) -> Result<(), baculink_net::NetError> {
        loop {
            let cmd = match sock.recv().await? {
                Packet::Data(d) => baculink_proto::scan::c_text(&d),
                Packet::Signal(Signal::Terminate) => return Ok(()),
                Packet::Signal(Signal::Poll) => {
                    sock.send_text("1000 OK\n").await?;
                    continue;
                }
                Packet::Signal(_) => continue,
            };
            let cmd = cmd.trim();
            let word = cmd.split_whitespace().next().unwrap_or("");
            match word {
                "quit" | "exit" | ".quit" | ".exit" => return Ok(()),
                "version" => {
                    sock.send_text(&format!(
                        "{} Version: {} {} {} \n",
                        self.name(),
                        version_text(),
                        std::env::consts::ARCH,
                        std::env::consts::OS
                    ))
                    .await?
                }
                "status" | ".status" => {
                    for line in self.status_dir() {
                        sock.send_text(&line).await?;
                    }
                }
                "messages" => sock.send_text("You have no messages.\n").await?,
                ".messages" | "" => {}
                "help" => {
                    sock.send_text(
                        "  Command       Description\n  =======       ===========\n  \
                         help          Print help on specific commands\n  \
                         messages      Display pending messages\n  \
                         quit          Terminate Bconsole session\n  \
                         status        Report status (status dir)\n  \
                         version       Print Director version\n",
                    )
                    .await?
                }
                other => {
                    sock.send_text(&format!("{other}: is an invalid command.\n"))
                        .await?
                }
            }
            sock.signal(Signal::Eod).await?;
        }
    }

    /// `status dir` lines, with the TLS facts of every live console.
    fn status_dir(&self) -> Vec<String> {
        let mut out = vec![
            format!(
                "{} Version: {} {} {}\n",
                self.name(),
                version_text(),
                std::env::consts::ARCH,
                std::env::consts::OS
            ),
            format!("Daemon started {}\n", since(self.started)),
            "\nRunning Jobs:\n".to_string(),
        ];
        for c in self.consoles.lock().expect("console list").iter() {
            let using = if c.mode == baculink_proto::negotiate::Mode::Clear {
                ""
            } else {
                "using TLS "
            };
            out.push(format!("Console connected {using}at {}\n", since(c.since)));
            out.push(format!(
                "    {}\n",
                describe_link(&c.label, c.addr, c.dialect, c.mode, c.facts.as_ref())
            ));
        }
        out.push("No Jobs running.\n====\n".into());
        out
    }
}

/// One line describing a live link's security, shared by every `status`.
pub fn describe_link(
    label: &str,
    addr: Option<SocketAddr>,
    dialect: Dialect,
    mode: baculink_proto::negotiate::Mode,
    facts: Option<&SessionFacts>,
) -> String {
    let _ = addr;
    let mut s = format!("{label}: dialect {dialect}, mode {mode}");
    if let Some(f) = facts {
        s.push_str(&format!(", {} {}", f.version, f.cipher));
        if let Some(sub) = &f.peer_subject {
            s.push_str(&format!(", peer {sub}"));
        }
        if let Some(d) = f.peer_days_left {
            s.push_str(&format!(", certificate expires in {d} days"));
        }
    }
    s
}

fn since(t: SystemTime) -> String {
    let secs = SystemTime::now()
        .duration_since(t)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{secs} s ago")
}

/// The text after `Version: ` in our final line and `version` output.
pub fn version_text() -> String {
    format!("{} (baculink)", env!("CARGO_PKG_VERSION"))
}

/// Loads and checks a Director config; `-t` stops here.
pub fn load(path: &std::path::Path) -> Result<Director, String> {
    let (conf, warnings) = DirectorConfig::load(path).map_err(|e| e.to_string())?;
    baculink_conf::log_warnings(&warnings);
    conf.validate_tls().map_err(|e| e.to_string())?;
    Director::new(conf)
}

pub async fn main(flags: DaemonFlags) -> ExitCode {
    let dir = match load(&flags.config) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("baculink dir: {e}");
            return ExitCode::from(1);
        }
    };
    if flags.test {
        return ExitCode::SUCCESS;
    }
    let addr = format!(
        "{}:{}",
        dir.conf.director.address.as_deref().unwrap_or("0.0.0.0"),
        dir.conf.director.port
    );
    let listener = match TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("baculink dir: cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    info!("Director \"{}\" listening on {addr}", dir.name());
    let dir = Arc::new(dir);
    tokio::select! {
        _ = dir.serve(listener) => {}
        _ = shutdown_signal() => info!("shutting down"),
    }
    ExitCode::SUCCESS
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
