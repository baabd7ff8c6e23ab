//! `baculink dir`: the Director. Accepts consoles (the default `*UserAgent*`
//! console through the Director resource, named consoles through Console
//! resources) and connects to file daemons (Client resources) and storage
//! daemons (Storage resources), each with that resource's own TLS settings.
//!
//! Jobs: `run` queues a backup, `restore` a restore; each job runs in its
//! own task (`job.rs`, `restore.rs`) with the SD's message channel served
//! by `msgchan.rs`, and its records kept in the SQLite catalog
//! (`catalog.rs`). Job messages queue for the consoles ("You have
//! messages.").

mod catalog;
mod commands;
mod fileset;
mod job;
mod jobs;
mod msgchan;
mod report;
mod restore;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use baculink_conf::tls::TlsRole;
use baculink_conf::DirectorConfig;
use baculink_net::{BSock, NetError, Peer, PeerSetup, ServerSetup};
use baculink_proto::frame::{Packet, Signal};
use baculink_proto::handshake::{ServerConfig, ServerKind};
use baculink_proto::hello::{self, Hello};
use baculink_proto::negotiate::Dialect;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::daemon::{self, bacula_time, CertStore, Daemon, Links};
use crate::login;
use catalog::{Catalog, CatalogHandle, CATALOG_FILE};
use jobs::Jobs;

/// The Director.
pub struct Director {
    conf: DirectorConfig,
    certs: CertStore,
    links: Arc<Links>,
    started: SystemTime,
    auth_timeout: Duration,
    console_slots: Arc<Semaphore>,
    catalog: CatalogHandle,
    jobs: Arc<Jobs>,
}

/// Errors of one console command.
type CmdResult = Result<(), NetError>;

impl Daemon for Director {
    const KIND: &'static str = "dir";

    fn load(path: &Path, auth_timeout: Duration) -> Result<Self, String> {
        let (conf, warnings) = DirectorConfig::load(path).map_err(|e| e.to_string())?;
        baculink_conf::log_warnings(&warnings);
        conf.validate_tls().map_err(|e| e.to_string())?;
        let mut specs = vec![(
            format!("Director/{}", conf.director.name),
            conf.director.tls.clone(),
            TlsRole::Server,
        )];
        for c in &conf.consoles {
            specs.push((
                format!("Console/{}", c.name),
                c.tls.clone(),
                TlsRole::Server,
            ));
        }
        for c in &conf.clients {
            specs.push((format!("Client/{}", c.name), c.tls.clone(), TlsRole::Client));
        }
        for s in &conf.storages {
            specs.push((
                format!("Storage/{}", s.name),
                s.tls.clone(),
                TlsRole::Client,
            ));
        }
        let certs = CertStore::build(specs).map_err(|e| format!("{}: {e}", path.display()))?;
        let slots = conf.director.max_console_connections.max(1) as usize;
        let catalog = open_catalog(&conf)?;
        if let Some(w) = unscheduled_warning(&conf) {
            warn!("{w}");
        }
        let jobs = Arc::new(Jobs::new(conf.director.daemon.max_concurrent_jobs));
        Ok(Director {
            catalog,
            jobs,
            conf,
            certs,
            links: Arc::new(Links::default()),
            started: SystemTime::now(),
            auth_timeout,
            console_slots: Arc::new(Semaphore::new(slots)),
        })
    }

    fn listen(&self) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for (host, port) in self.conf.director.daemon.listen() {
            match daemon::socket_addrs(host.as_deref(), port) {
                Ok(a) => out.extend(a),
                Err(e) => warn!("{e}"),
            }
        }
        out
    }

    fn pid_directory(&self) -> Option<PathBuf> {
        self.conf.director.daemon.pid_directory.clone()
    }

    fn certs(&self) -> &CertStore {
        &self.certs
    }

    async fn handle(self: Arc<Self>, tcp: TcpStream, addr: SocketAddr) {
        let sock = BSock::new(tcp);
        let setup = self.server_setup();
        match baculink_net::accept(sock, &setup, |h| self.lookup(h, addr)).await {
            Ok((sock, peer)) => {
                info!(
                    "{} logged in ({}, {})",
                    peer.label, peer.established.peer_dialect, peer.established.mode
                );
                self.clone().console_session(sock, peer).await;
            }
            Err(e) => warn!("console login from {addr} refused: {e}"),
        }
    }
}

impl Director {
    /// The Director's name.
    pub fn name(&self) -> &str {
        &self.conf.director.name
    }

    /// How we log in to a file daemon: the Client resource's password and TLS.
    pub fn fd_setup(&self, c: &baculink_conf::dir::Client) -> baculink_net::ClientSetup {
        login::client_setup(
            Hello::Director {
                name: self.name().to_string(),
                version: Some(hello::DIRECTOR_VERSION_V13),
                tlspsk: None,
            },
            c.password.clone(),
            &c.tls,
            self.certs.get(&format!("Client/{}", c.name)),
            self.name(),
            &c.address,
            format!("File daemon \"{}\" at {}:{}", c.name, c.address, c.port),
            Dialect::V13,
            self.auth_timeout,
        )
    }

    /// How we log in to a storage daemon: the Storage resource's password and TLS.
    pub fn sd_setup(&self, s: &baculink_conf::dir::Storage) -> baculink_net::ClientSetup {
        login::client_setup(
            Hello::DirectorToSd {
                name: self.name().to_string(),
                version: Some(hello::DIRECTOR_VERSION_V13),
                tlspsk: None,
            },
            s.password.clone(),
            &s.tls,
            self.certs.get(&format!("Storage/{}", s.name)),
            self.name(),
            &s.address,
            format!("Storage daemon \"{}\" at {}:{}", s.name, s.address, s.port),
            Dialect::V13,
            self.auth_timeout,
        )
    }

    fn lookup(&self, hello: &Hello, addr: SocketAddr) -> Option<PeerSetup> {
        let Hello::Console { name, .. } = hello else {
            warn!("{addr}: a {hello} Hello is not for a Director");
            return None;
        };
        if name == "*UserAgent*" {
            let d = &self.conf.director;
            return Some(login::peer_setup(
                d.password.clone(),
                &d.tls,
                self.certs.get(&format!("Director/{}", d.name)),
                &d.name,
                format!("Console \"*UserAgent*\" at {addr}"),
            ));
        }
        let Some(c) = self.conf.consoles.iter().find(|c| &c.name == name) else {
            warn!("Unable to authenticate console \"{name}\" at {addr}: no Console resource of that name");
            return None;
        };
        Some(login::peer_setup(
            c.password.clone(),
            &c.tls,
            self.certs.get(&format!("Console/{}", c.name)),
            &self.conf.director.name,
            format!("Console \"{}\" at {addr}", c.name),
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
            timeout: self.auth_timeout,
            damping: true,
        }
    }

    async fn console_session(self: Arc<Self>, mut sock: BSock, peer: Peer) {
        // Maximum Console Connections: extra consoles wait for a slot.
        let Ok(_slot) = self.console_slots.clone().acquire_owned().await else {
            return;
        };
        let _link = self.links.add(&peer, "Console", false);
        let mut session = Session { api: 0 };
        if let Err(e) = self.command_loop(&mut sock, &mut session).await {
            debug!("{}: {e}", peer.label);
        }
        info!("{} disconnected", peer.label);
        sock.close().await;
    }

    async fn command_loop(self: &Arc<Self>, sock: &mut BSock, s: &mut Session) -> CmdResult {
        // A command's output goes out when the console is next awaited.
        sock.set_corked(true);
        loop {
            if s.api > 0 {
                sock.signal(Signal::MainPrompt).await?;
            }
            let cmd = match sock.recv().await? {
                Packet::Data(d) => baculink_proto::scan::c_text(&d),
                Packet::Signal(Signal::Terminate) => return Ok(()),
                Packet::Signal(Signal::Poll) => {
                    sock.send_text("1000 OK\n").await?;
                    continue;
                }
                Packet::Signal(_) => continue,
            };
            let cmd = cmd.trim().to_string();
            let word = cmd.split_whitespace().next().unwrap_or("").to_string();
            if matches!(word.as_str(), "quit" | "exit" | ".quit" | ".exit") {
                return Ok(());
            }
            let api_before = s.api;
            if api_before > 0 {
                sock.signal(Signal::CmdBegin).await?;
            }
            let ok = self.dispatch(sock, s, &word, &cmd).await?;
            if word != "messages" && self.jobs.has_messages() {
                if s.api > 0 {
                    sock.signal(Signal::MsgsPending).await?;
                } else {
                    sock.send_text("You have messages.\n").await?;
                }
            }
            if api_before > 0 {
                sock.signal(if ok { Signal::CmdOk } else { Signal::CmdFailed })
                    .await?;
            } else {
                sock.signal(Signal::Eod).await?;
            }
        }
    }

    /// Runs one command; false when it failed.
    async fn dispatch(
        self: &Arc<Self>,
        sock: &mut BSock,
        s: &mut Session,
        word: &str,
        cmd: &str,
    ) -> Result<bool, NetError> {
        let args: Vec<&str> = cmd.split_whitespace().skip(1).collect();
        match word {
            "version" => {
                sock.send_text(&format!(
                    "{} Version: {} {} \n",
                    self.name(),
                    version_text(),
                    uname()
                ))
                .await?;
            }
            "status" | ".status" => return self.status(sock, word == ".status", &args).await,
            "messages" => return self.cmd_messages(sock).await,
            "run" => return self.cmd_run(sock, cmd).await,
            "restore" => return self.cmd_restore(sock, cmd).await,
            "list" | "llist" => return self.cmd_list(sock, cmd).await,
            "cancel" => return self.cmd_cancel(sock, cmd).await,
            "wait" => return self.cmd_wait(sock, cmd).await,
            ".jobprogress" => return self.cmd_jobprogress(sock, cmd).await,
            ".jobs" => {
                for j in &self.conf.jobs {
                    sock.send_text(&format!("{}\n", j.name)).await?;
                }
            }
            ".messages" | ".msgs" | "" => {}
            ".api" => {
                s.api = args.first().and_then(|a| a.parse().ok()).unwrap_or(1);
            }
            ".clients" => {
                for c in &self.conf.clients {
                    sock.send_text(&format!("{}\n", c.name)).await?;
                }
            }
            ".storage" => {
                for c in &self.conf.storages {
                    sock.send_text(&format!("{}\n", c.name)).await?;
                }
            }
            ".consoles" => {
                for c in &self.conf.consoles {
                    sock.send_text(&format!("{}\n", c.name)).await?;
                }
            }
            "help" | ".help" => sock.send_text(HELP).await?,
            other => {
                sock.send_text(&format!("{other}: is an invalid command.\n"))
                    .await?;
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// `status [dir|client[=NAME]|storage[=NAME]]` and `.status ...`.
    async fn status(&self, sock: &mut BSock, dot: bool, args: &[&str]) -> Result<bool, NetError> {
        let first = args.first().copied().unwrap_or("dir");
        let (what, name) = match first.split_once('=') {
            Some((w, n)) => (w, Some(n)),
            None => (first, None),
        };
        let rest: Vec<&str> = args.iter().skip(1).copied().collect();
        match what.to_ascii_lowercase().as_str() {
            "dir" | "director" => {
                if dot {
                    let what = rest.first().copied().unwrap_or("header");
                    for line in self.dot_status_dir(what) {
                        sock.send_text(&line).await?;
                    }
                } else {
                    for line in self.status_dir() {
                        sock.send_text(&line).await?;
                    }
                }
                Ok(true)
            }
            "client" => {
                let Some(client) = self.pick(&self.conf.clients, name, |c| &c.name) else {
                    sock.send_text(&format!("Client \"{}\" not found.\n", name.unwrap_or("")))
                        .await?;
                    return Ok(false);
                };
                if name.is_none() {
                    sock.send_text(&format!("Automatically selected Client: {}\n", client.name))
                        .await?;
                }
                let cmd = if dot {
                    format!(".status {}", rest.join(" "))
                } else {
                    "status".into()
                };
                self.relay_client(sock, client, &cmd).await
            }
            "storage" => {
                let Some(st) = self.pick(&self.conf.storages, name, |s| &s.name) else {
                    sock.send_text(&format!("Storage \"{}\" not found.\n", name.unwrap_or("")))
                        .await?;
                    return Ok(false);
                };
                if name.is_none() {
                    sock.send_text(&format!("Automatically selected Storage: {}\n", st.name))
                        .await?;
                }
                let cmd = if dot {
                    format!(".status {}", rest.join(" "))
                } else {
                    "status".into()
                };
                self.relay_storage(sock, st, &cmd).await
            }
            other => {
                sock.send_text(&format!(
                    "Unknown status target \"{other}\": use dir, client=NAME or storage=NAME.\n"
                ))
                .await?;
                Ok(false)
            }
        }
    }

    fn pick<'a, T>(
        &self,
        list: &'a [T],
        name: Option<&str>,
        get: impl Fn(&T) -> &String,
    ) -> Option<&'a T> {
        match name {
            Some(n) => list.iter().find(|x| get(x) == n),
            None => list.first(),
        }
    }

    /// Logs in to a file daemon as this Director (the Client resource's
    /// password and TLS), sends the job line every FD connection starts with,
    /// runs `cmd` and relays the reply to the console.
    async fn relay_client(
        &self,
        con: &mut BSock,
        c: &baculink_conf::dir::Client,
        cmd: &str,
    ) -> Result<bool, NetError> {
        con.send_text(&format!(
            "Connecting to Client {} at {}:{}\n",
            c.name, c.address, c.port
        ))
        .await?;
        let setup = self.fd_setup(c);
        let (mut fd, peer) = match baculink_net::connect(&c.address, c.port, &setup).await {
            Ok(x) => x,
            Err(e) => {
                let class = login::FailureClass::of(&e);
                warn!("{}: {e}", setup.label);
                con.send_text(&format!(
                    "Failed to connect to Client {}: {}: {e}\n",
                    c.name,
                    class.headline()
                ))
                .await?;
                return Ok(false);
            }
        };
        let _link = self.links.add(&peer, "File daemon", true);
        let job = format!(
            "JobId=0 Job=-Console-.{} SDid=0 SDtime=0 Authorization=dummy\n",
            job_stamp()
        );
        let ok = async {
            fd.send_text(&job).await?;
            let reply = fd.recv_timeout(self.auth_timeout).await?;
            let text = reply.text().unwrap_or_default();
            if !text.starts_with("2000 OK Job") {
                return Ok::<_, NetError>(Err(text));
            }
            fd.send_text(cmd).await?;
            relay(&mut fd, con).await?;
            Ok(Ok(()))
        }
        .await;
        let _ = fd.signal(Signal::Terminate).await;
        fd.close().await;
        match ok {
            Ok(Ok(())) => Ok(true),
            Ok(Err(text)) => {
                con.send_text(&format!(
                    "File daemon {} rejected the job line: {}\n",
                    c.name,
                    text.trim_end()
                ))
                .await?;
                Ok(false)
            }
            Err(e) => {
                con.send_text(&format!("Connection to Client {} failed: {e}\n", c.name))
                    .await?;
                Ok(false)
            }
        }
    }

    /// Logs in to a storage daemon (the Storage resource's password and
    /// TLS), runs `cmd` and relays the reply.
    async fn relay_storage(
        &self,
        con: &mut BSock,
        s: &baculink_conf::dir::Storage,
        cmd: &str,
    ) -> Result<bool, NetError> {
        con.send_text(&format!(
            "Connecting to Storage daemon {} at {}:{}\n",
            s.name, s.address, s.port
        ))
        .await?;
        let setup = self.sd_setup(s);
        let (mut sd, peer) = match baculink_net::connect(&s.address, s.port, &setup).await {
            Ok(x) => x,
            Err(e) => {
                let class = login::FailureClass::of(&e);
                warn!("{}: {e}", setup.label);
                con.send_text(&format!(
                    "Failed to connect to Storage daemon {}: {}: {e}\n",
                    s.name,
                    class.headline()
                ))
                .await?;
                return Ok(false);
            }
        };
        if peer.established.peer_version.unwrap_or(0) < 2 {
            con.send_text(&format!(
                "Older Storage daemon at \"{}:{}\" incompatible with this Director.\n",
                s.address, s.port
            ))
            .await?;
            sd.close().await;
            return Ok(false);
        }
        let _link = self.links.add(&peer, "Storage daemon", true);
        let r = async {
            sd.send_text(cmd).await?;
            relay(&mut sd, con).await
        }
        .await;
        let _ = sd.signal(Signal::Terminate).await;
        sd.close().await;
        match r {
            Ok(()) => Ok(true),
            Err(e) => {
                con.send_text(&format!(
                    "Connection to Storage daemon {} failed: {e}\n",
                    s.name
                ))
                .await?;
                Ok(false)
            }
        }
    }

    /// `status dir` lines: Bacula's header, then every live link with its TLS facts.
    fn status_dir(&self) -> Vec<String> {
        let mut out = vec![
            format!("{} Version: {} {}\n", self.name(), version_text(), uname()),
            format!("Daemon started {}\n", bacula_time(self.started)),
            format!(
                " Jobs: run={}, running={} max=%{} consoles={}/{}\n",
                self.jobs.run_count(),
                self.jobs.running().len(),
                self.conf.director.daemon.max_concurrent_jobs,
                self.links.count("Console"),
                self.conf.director.max_console_connections
            )
            .replace("max=%", "max="),
            format!(
                " Res: njobs={} nclients={} nstores={} npools={} ncats={} nfsets={} nscheds={}\n",
                self.conf.jobs.len(),
                self.conf.clients.len(),
                self.conf.storages.len(),
                self.conf.pools.len(),
                self.conf.catalogs.len(),
                self.conf.filesets.len(),
                self.conf.schedules.len()
            ),
            "\nScheduled Jobs:\nNo Scheduled Jobs.\n====\n".into(),
            "\nRunning Jobs:\n".into(),
        ];
        for l in self.links.snapshot().iter().filter(|l| l.role == "Console") {
            let using = if l.mode == baculink_proto::negotiate::Mode::Clear {
                ""
            } else {
                "using TLS "
            };
            out.push(format!(
                "Console connected {using}at {}\n",
                bacula_time(l.since)
            ));
        }
        out.extend(self.running_lines());
        out.push("====\n".into());
        out.extend(self.links.status_lines());
        out.push(format!("\nCatalog: {}\n", self.catalog.path.display()));
        out.extend(self.terminated_lines());
        out
    }

    /// `.status dir <what>` for tools.
    fn dot_status_dir(&self, what: &str) -> Vec<String> {
        match what {
            "current" | "last" => self.dot_status_jobs(what == "last"),
            "running" => {
                let mut v = self.running_blocks();
                for l in self.links.snapshot() {
                    v.push(format!(
                        "\nLink={}\nAddress={}\nRole={}\nDialect={}\nMode={}\nTLSVersion={}\nCipher={}\nPeerSubject={}\n",
                        l.label,
                        l.addr.map(|a| a.to_string()).unwrap_or_default(),
                        l.role,
                        l.dialect,
                        l.mode,
                        l.facts.as_ref().map(|f| f.version.as_str()).unwrap_or(""),
                        l.facts.as_ref().map(|f| f.cipher.as_str()).unwrap_or(""),
                        l.facts.as_ref().and_then(|f| f.peer_subject.as_deref()).unwrap_or(""),
                    ));
                }
                v
            }
            _ => {
                let started = self
                    .started
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                vec![format!(
                    "header:\nname={}\nversion={}\nuname={}\nstarted_epoch={started}\npid={}\njobs_run={}\njobs_running={}\nnclients={}\nnstores={}\n\n",
                    self.name(),
                    version_text(),
                    uname(),
                    std::process::id(),
                    self.jobs.run_count(),
                    self.jobs.running().len(),
                    self.conf.clients.len(),
                    self.conf.storages.len()
                )]
            }
        }
    }
}

/// Per-console state.
struct Session {
    api: u32,
}

/// Relays a daemon's reply packets to the console until its EOD.
async fn relay(from: &mut BSock, to: &mut BSock) -> Result<(), NetError> {
    loop {
        match from.recv_timeout(Duration::from_secs(300)).await? {
            Packet::Data(d) => {
                let end = d.iter().position(|&b| b == 0).unwrap_or(d.len());
                to.send(&Packet::data(&d[..end])).await?;
            }
            Packet::Signal(Signal::Eod | Signal::Terminate) => return Ok(()),
            Packet::Signal(_) => {}
        }
    }
}

const HELP: &str = "  Command       Description\n  =======       ===========\n  \
cancel        Cancel a job: cancel jobid=N\n  \
help          Print help on specific commands\n  \
list          List catalog records: list jobs | list jobid=N | list files jobid=N | list joblog jobid=N | list volumes\n  \
messages      Display pending messages\n  \
restore       Restore backups: restore jobid=N[,M...]|current [where=DIR] [client=NAME] [replace=always|ifnewer|ifolder|never] [file=PATH ...] all done yes\n  \
run           Run a job: run job=NAME [level=Full|Incremental|Differential] [client=C] [storage=S] [pool=P] [yes]\n  \
wait          Wait until jobs end: wait [jobid=N] [timeout=SECS]\n  \
quit          Terminate Bconsole session\n  \
status        Report status: status dir | client=NAME | storage=NAME\n  \
version       Print Director version\n  \
.api          Switch the API level (0, 1, 2)\n  \
.jobprogress  Key=value progress of running jobs: .jobprogress [jobid=N]\n  \
.status       Machine-readable status: .status dir|client=NAME|storage=NAME header|running|current\n";

/// A job name suffix `YYYY-MM-DD_HH.MM.SS_NN`-like, unique per connection.
pub fn job_stamp() -> String {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{}_{:03}", now / 1000, now % 1000)
}

/// `HOST_OS DISTNAME DISTVER` in Bacula's `version` line.
pub fn uname() -> String {
    format!(
        "{}-{} baculink rust",
        std::env::consts::ARCH,
        std::env::consts::OS
    )
}

/// The text after `Version: ` in our final line and `version` output.
pub fn version_text() -> String {
    format!("{} (baculink)", env!("CARGO_PKG_VERSION"))
}

/// Schedules are read (and `status dir` counts them) but this Director
/// runs no job on them yet: said once at start, rather than letting
/// scheduled backups silently never happen.
fn unscheduled_warning(conf: &DirectorConfig) -> Option<String> {
    let jobs: Vec<String> = conf
        .jobs
        .iter()
        .filter(|j| j.schedule.is_some())
        .map(|j| format!("\"{}\"", j.name))
        .collect();
    (!jobs.is_empty()).then(|| {
        format!(
            "Job {} names a Schedule, but baculink's Director does not start jobs on \
             schedules yet: start them with `run job=NAME yes` (from cron, for example)",
            jobs.join(", ")
        )
    })
}

/// Opens `baculink-catalog.db` in the Working Directory; without a usable
/// Working Directory an in-memory catalog keeps the Director serving
/// (jobs are then forgotten at exit).
fn open_catalog(conf: &DirectorConfig) -> Result<CatalogHandle, String> {
    if let Some(dir) = &conf.director.daemon.working_directory {
        let path = dir.join(CATALOG_FILE);
        match CatalogHandle::open(&path) {
            Ok(h) => return Ok(h),
            Err(e) => warn!(
                "cannot open the catalog {}: {e}; using an in-memory catalog",
                path.display()
            ),
        }
    } else {
        warn!("no Working Directory: using an in-memory catalog (jobs are not kept)");
    }
    Catalog::memory()
        .map(|c| CatalogHandle::spawn(c, PathBuf::from(":memory:")))
        .map_err(|e| format!("cannot create an in-memory catalog: {e}"))
}

#[cfg(test)]
mod schedule_tests {
    use super::*;

    fn conf(jobs: &str) -> DirectorConfig {
        let text = format!(
            "Director {{ Name = d; Password = p }}\n\
             Schedule {{ Name = Nightly; Run = Full sun at 23:05 }}\n\
             Client {{ Name = c; Address = 127.0.0.1; Password = p }}\n\
             FileSet {{ Name = f; Include {{ File = /data }} }}\n{jobs}"
        );
        DirectorConfig::parse_str("t.conf", &text).unwrap().0
    }

    #[test]
    fn jobs_on_a_schedule_are_named_in_a_warning() {
        let c = conf(
            "Job { Name = A; Type = Backup; Client = c; FileSet = f; Schedule = Nightly }\n\
             Job { Name = B; Type = Backup; Client = c; FileSet = f }\n",
        );
        let w = unscheduled_warning(&c).expect("a warning");
        assert!(w.starts_with("Job \"A\" names a Schedule"), "{w}");
        assert!(!w.contains("\"B\""), "{w}");
        assert!(unscheduled_warning(&conf("")).is_none());
    }
}
