//! `baculink fd`: the File daemon. Accepts Directors (the `Director`
//! resources of bacula-fd.conf, each with its own password and TLS
//! settings), answers the job line every Director connection starts with,
//! and serves the non-job commands (`status`, `.status`, `cancel`,
//! `setdebug`, ...) and the job commands: backup, restore, estimate and
//! cancel (a drop-in for the real Director and Storage daemon, see
//! protocol-jobs.md §5-7). [`FileDaemon::connect_to_sd`] opens the job data
//! channel to a Storage daemon with the FileDaemon resource's TLS settings.

mod backup;
mod fileset;
mod job;
mod restore;
mod run;
mod status;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use baculink_conf::fd::Director as DirectorRes;
use baculink_conf::tls::TlsRole;
use baculink_conf::FdConfig;
use baculink_net::{BSock, LoginError, NetError, Peer, PeerSetup, ServerSetup};
use baculink_proto::frame::{Packet, Signal};
use baculink_proto::handshake::{RefusalReason, ServerConfig, ServerKind};
use baculink_proto::hello::{self, Hello};
use baculink_proto::job::attr::{EndJob, JobStatus};
use baculink_proto::negotiate::Dialect;
use baculink_proto::scan::{c_text, Scanner};
use baculink_proto::Secret;
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

use crate::daemon::{self, CertStore, Daemon, LinkGuard, Links};
use crate::login;

/// Wait between attempts to reach a Storage daemon (Bacula: 10 s).
const SD_RETRY: Duration = Duration::from_secs(10);

/// The File daemon.
pub struct FileDaemon {
    conf: FdConfig,
    certs: CertStore,
    links: Arc<Links>,
    started: SystemTime,
    auth_timeout: Duration,
    /// Level last set with `setdebug` (shown by `.status header`).
    debug_level: AtomicI64,
    /// Trace flag last set with `setdebug`.
    trace: AtomicI64,
    /// Running and recently finished jobs.
    jobs: job::Jobs,
}

/// An authenticated FD -> SD data connection. Listed among the daemon's
/// live links (role `Storage daemon`) until dropped.
pub struct SdLink {
    /// The connection, LZ4-compressing what we send when the SD's final line allows it.
    pub sock: BSock,
    /// The Storage daemon as authenticated.
    #[allow(dead_code)]
    pub peer: Peer,
    /// Whether `sock` compresses what we send.
    pub compress: bool,
    _link: LinkGuard,
}

impl Daemon for FileDaemon {
    const KIND: &'static str = "fd";

    fn load(path: &Path, auth_timeout: Duration) -> Result<Self, String> {
        let (conf, warnings) = FdConfig::load(path).map_err(|e| e.to_string())?;
        baculink_conf::log_warnings(&warnings);
        FileDaemon::from_config(conf, auth_timeout)
    }

    fn listen(&self) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for (host, port) in self.conf.file_daemon.daemon.listen() {
            match daemon::socket_addrs(host.as_deref(), port) {
                Ok(a) => out.extend(a),
                Err(e) => warn!("{e}"),
            }
        }
        out
    }

    fn pid_directory(&self) -> Option<PathBuf> {
        self.conf.file_daemon.daemon.pid_directory.clone()
    }

    fn certs(&self) -> &CertStore {
        &self.certs
    }

    async fn handle(self: Arc<Self>, tcp: TcpStream, addr: SocketAddr) {
        let sock = BSock::new(tcp);
        let setup = self.server_setup();
        let mut monitor = false;
        let lookup = |h: &Hello| {
            let (setup, mon) = self.lookup(h, addr)?;
            monitor = mon;
            Some(setup)
        };
        match baculink_net::accept(sock, &setup, lookup).await {
            Ok((sock, peer)) => {
                info!(
                    "{} logged in ({}, {})",
                    peer.label, peer.established.peer_dialect, peer.established.mode
                );
                self.director_session(sock, peer, monitor).await;
            }
            Err(e) => match e.reason() {
                Some(RefusalReason::Ping) => info!("{addr}: Ping answered with \"2000 Ping OK\""),
                // Already logged by the lookup, with the name and address.
                Some(RefusalReason::UnknownPeer(_)) => debug!("login from {addr} refused: {e}"),
                _ => warn!("Director login from {addr} failed: {e}"),
            },
        }
    }
}

impl FileDaemon {
    /// Builds the daemon from a parsed config: checks the TLS directives and
    /// builds the context of the FileDaemon resource (TLS client towards
    /// Storage daemons) and of every Director resource (TLS server).
    pub fn from_config(conf: FdConfig, auth_timeout: Duration) -> Result<Self, String> {
        let file = conf.path.display().to_string();
        conf.validate_tls().map_err(|e| e.to_string())?;
        let mut specs = vec![(
            format!("FileDaemon/{}", conf.file_daemon.name),
            conf.file_daemon.tls.clone(),
            TlsRole::Client,
        )];
        for d in &conf.directors {
            specs.push((
                format!("Director/{}", d.name),
                d.tls.clone(),
                TlsRole::Server,
            ));
        }
        let certs = CertStore::build(specs).map_err(|e| format!("{file}: {e}"))?;
        Ok(FileDaemon {
            conf,
            certs,
            links: Arc::new(Links::default()),
            started: SystemTime::now(),
            auth_timeout,
            debug_level: AtomicI64::new(0),
            trace: AtomicI64::new(0),
            jobs: job::Jobs::default(),
        })
    }

    /// The FileDaemon resource's name.
    pub fn name(&self) -> &str {
        &self.conf.file_daemon.name
    }

    fn server_setup(&self) -> ServerSetup {
        ServerSetup {
            config: ServerConfig {
                kind: ServerKind::FileDaemon,
                name: self.name().to_string(),
                version: hello::FD_VERSION_V13,
                version_text: status::version_text(),
                dialect: Dialect::V13,
            },
            timeout: self.auth_timeout,
            damping: true,
        }
    }

    /// The Director resource named in a Hello (exact, case-sensitive name,
    /// like Bacula's FD) and whether it is a Monitor.
    fn lookup(&self, hello: &Hello, addr: SocketAddr) -> Option<(PeerSetup, bool)> {
        // Bacula's FD takes the name of both Hello forms to its Director resources.
        let (Hello::Director { name, .. } | Hello::Console { name, .. }) = hello else {
            warn!("{addr}: a \"{hello}\" Hello is not for a File daemon's Director login");
            return None;
        };
        let Some(d) = self.conf.director(name) else {
            warn!("Connection from unknown Director \"{name}\" at {addr} rejected: no Director resource of that name");
            return None;
        };
        Some((self.peer_setup(d, addr), d.monitor))
    }

    fn peer_setup(&self, d: &DirectorRes, addr: SocketAddr) -> PeerSetup {
        let class = if d.monitor { "Monitor" } else { "Director" };
        login::peer_setup(
            d.password.clone(),
            &d.tls,
            self.certs.get(&format!("Director/{}", d.name)),
            self.name(),
            format!("{class} \"{}\" at {addr}", d.name),
        )
    }

    /// Serves one authenticated Director until it (or we) end the conversation.
    async fn director_session(&self, mut sock: BSock, peer: Peer, monitor: bool) {
        let _link = self.links.add(&peer, "Director", false);
        let mut s = Session::new(
            peer.label.clone(),
            monitor,
            peer.established
                .peer_version
                .unwrap_or(hello::DIRECTOR_VERSION_V96),
        );
        let end = match self.command_loop(&mut sock, &mut s).await {
            Ok(end) => end,
            Err(e) => {
                debug!("{}: {e}", s.label);
                End::ByPeer
            }
        };
        self.end_job(&mut sock, &mut s, end).await;
        // Once the peer sent TERMINATE (or left) nothing more goes to it.
        if end == End::ByUs && !sock.is_terminated() {
            let _ = sock.signal(Signal::Terminate).await;
        }
        info!("{} disconnected", s.label);
        sock.close().await;
    }

    async fn command_loop(&self, sock: &mut BSock, s: &mut Session) -> Result<End, NetError> {
        loop {
            // The job line comes right after the login; later commands may
            // arrive after a job ran for hours, so only the first read is bounded.
            let packet = if s.first {
                sock.recv_timeout(self.auth_timeout).await?
            } else {
                sock.recv().await?
            };
            let cmd = match packet {
                Packet::Data(d) => c_text(&d),
                Packet::Signal(Signal::Terminate) => return Ok(End::ByPeer),
                Packet::Signal(Signal::Poll) => {
                    sock.send_text("2000 OK\n").await?;
                    continue;
                }
                Packet::Signal(Signal::Heartbeat | Signal::HbResponse) => continue,
                Packet::Signal(other) => {
                    debug!("{}: ignoring signal {}", s.label, other.name());
                    continue;
                }
            };
            let first = std::mem::replace(&mut s.first, false);
            debug!("{}: command {:?}", s.label, redact(&cmd));
            let Some(command) = Command::of(&cmd) else {
                warn!(
                    "{}: invalid command {:?}; ending the conversation",
                    s.label,
                    first_word(&cmd)
                );
                sock.send_text("2999 Invalid command\n").await?;
                return Ok(End::ByUs);
            };
            if first && !s.monitor && command != Command::Job {
                warn!(
                    "{}: expected the job line first, got {:?}",
                    s.label,
                    first_word(&cmd)
                );
                sock.send_text("2901 Bad Job\n").await?;
                return Ok(End::ByUs);
            }
            if s.monitor && !command.monitor_allowed() {
                warn!(
                    "{}: a Monitor Director may only run status commands; refused {:?}",
                    s.label,
                    first_word(&cmd)
                );
                sock.send_text("2999 Invalid command\n").await?;
                sock.signal(Signal::Eod).await?;
                continue;
            }
            if self.dispatch(sock, s, command, &cmd).await? == End::ByUs {
                return Ok(End::ByUs);
            }
        }
    }

    /// The end of a job's conversation: the data channel is closed, the
    /// Director gets the `2800 End Job` line (when we end the conversation
    /// and it still listens), the job leaves the registry.
    async fn end_job(&self, dir: &mut BSock, s: &mut Session, end: End) {
        if let Some(mut link) = s.sd.take() {
            if !link.sock.is_terminated() {
                let _ = link.sock.signal(Signal::Terminate).await;
            }
            link.sock.close().await;
        }
        let Some(handle) = s.handle.take() else {
            return;
        };
        if end == End::ByPeer && s.status == JobStatus::RUNNING {
            // The Director left (or terminated) before the job finished.
            s.status = JobStatus::ERROR_TERMINATED;
        }
        if s.restore.is_some() {
            self.end_restore(dir, s).await;
        }
        if handle.is_canceled() {
            s.status = JobStatus::CANCELED;
        }
        if s.status == JobStatus::RUNNING {
            // The conversation ended before the job did.
            s.status = JobStatus::ERROR_TERMINATED;
        }
        let mut line = s.totals.unwrap_or(EndJob {
            term_code: s.status,
            job_files: handle.files.load(Ordering::Relaxed) as u32,
            read_bytes: handle.bytes.load(Ordering::Relaxed),
            job_bytes: handle.bytes.load(Ordering::Relaxed),
            errors: handle.errors.load(Ordering::Relaxed),
            vss: 0,
            encrypt: 0,
            comm_bytes: 0,
            compress_comm_bytes: 0,
        });
        line.term_code = s.status;
        if end == End::ByUs && !dir.is_terminated() {
            s.flush(dir).await;
            let _ = dir.send_text(&line.encode()).await;
        }
        info!(
            "{}: job {} ended: {} ({} files, {} bytes, {} errors)",
            s.label,
            handle.job,
            s.status.describe(),
            line.job_files,
            line.job_bytes,
            line.errors
        );
        self.jobs.finish(&handle, s.status);
    }

    /// Runs one command; `End::ByUs` when the conversation must end.
    async fn dispatch(
        &self,
        sock: &mut BSock,
        s: &mut Session,
        command: Command,
        cmd: &str,
    ) -> Result<End, NetError> {
        match command {
            Command::Job => match JobLine::parse(cmd) {
                Some(job) => {
                    debug!(
                        "{}: JobId={} Job={} SDid={} SDtime={}",
                        s.label, job.job_id, job.job, job.sd_id, job.sd_time
                    );
                    if job.job_id != "0" && s.handle.is_none() {
                        s.handle = Some(self.jobs.start(&job.job_id, &job.job));
                        s.reporter =
                            Some(job::Reporter::new(&job.job_id, self.name(), s.dir_version));
                        s.status = JobStatus::RUNNING;
                    }
                    s.job = Some(job);
                    sock.send_text(&status::job_reply()).await?;
                }
                None => {
                    warn!("{}: bad job line {:?}", s.label, redact(cmd));
                    sock.send_text("2901 Bad Job\n").await?;
                    return Ok(End::ByUs);
                }
            },
            Command::Status => {
                sock.send_text("\n").await?;
                for line in status::status_lines(self) {
                    sock.send_text(&line).await?;
                }
                sock.signal(Signal::Eod).await?;
            }
            Command::DotStatus => {
                let Some(lines) = status::dot_status(self, cmd) else {
                    sock.send_text("2900 Bad .status command, wrong argument.\n")
                        .await?;
                    sock.signal(Signal::Eod).await?;
                    return Ok(End::ByUs);
                };
                for line in lines {
                    sock.send_text(&line).await?;
                }
                sock.signal(Signal::Eod).await?;
            }
            Command::Cancel | Command::Stop => {
                let mut sc = Scanner::lenient(cmd);
                let verb = if command == Command::Cancel {
                    "cancel"
                } else {
                    "stop"
                };
                let job = sc
                    .lit(&format!("{verb} Job="))
                    .and_then(|_| sc.word(127))
                    .filter(|j| !j.is_empty());
                match job {
                    Some(j) => match self.jobs.find(&unbash(j)) {
                        Some(h) => {
                            info!("{}: {verb} of job {}", s.label, h.job);
                            h.cancel();
                            let done = if command == Command::Cancel {
                                "canceled"
                            } else {
                                "stopped"
                            };
                            sock.send_text(&format!(
                                "2001 Job \"{}\" marked to be {done}.\n",
                                h.job
                            ))
                            .await?
                        }
                        None => {
                            sock.send_text(&format!("2901 Job {} not found.\n", unbash(j)))
                                .await?
                        }
                    },
                    None => {
                        sock.send_text(&format!("2902 Error scanning {verb} command.\n"))
                            .await?
                    }
                }
                sock.signal(Signal::Eod).await?;
            }
            Command::SetDebug => match SetDebug::parse(cmd) {
                Some(d) => {
                    // A negative value (the Director's -1) leaves a setting unchanged.
                    if d.level >= 0 {
                        self.debug_level.store(d.level, Ordering::Relaxed);
                    }
                    if d.trace >= 0 {
                        self.trace.store(d.trace, Ordering::Relaxed);
                    }
                    info!("{}: setdebug level={} trace={}", s.label, d.level, d.trace);
                    sock.send_text(&d.reply()).await?;
                }
                None => {
                    sock.send_text(&format!("2991 Bad setdebug command: {}\n", cmd.trim_end()))
                        .await?
                }
            },
            Command::SetBandwidth => {
                let mut sc = Scanner::lenient(cmd);
                let limit = sc
                    .lit("setbandwidth=")
                    .and_then(|_| sc.int())
                    .and_then(|n| sc.lit(" Job=").map(|_| n));
                if let Some(n) = limit {
                    if n > 0 {
                        s.report(
                            job::MsgType::Warning,
                            &format!("Bandwidth limiting ({n} bytes/s) is not supported by this File daemon; the job runs unlimited."),
                        );
                    }
                    sock.send_text("2000 OK Bandwidth\n").await?;
                } else {
                    sock.send_text(&format!(
                        "2991 Bad setbandwidth command: {}\n",
                        cmd.trim_end()
                    ))
                    .await?;
                }
            }
            Command::Level => return self.cmd_level(sock, s, cmd).await,
            Command::Fileset => return self.cmd_fileset(sock, s).await,
            Command::Storage => return self.cmd_storage(sock, s, cmd).await,
            Command::Backup => return self.cmd_backup(sock, s, cmd).await,
            Command::Restore => return self.cmd_restore(sock, s, cmd).await,
            Command::EndRestore => {
                self.end_restore(sock, s).await;
                return Ok(End::ByUs);
            }
            Command::Estimate => return self.cmd_estimate(sock, s, cmd).await,
            Command::Accurate => return self.cmd_accurate(sock, s).await,
            Command::RunScript => return self.cmd_run_script(sock, s, cmd).await,
            Command::PluginFeatures => {
                // 13.x Directors ask before a restore; we have no plugins.
                sock.signal(Signal::Eod).await?;
            }
            Command::NotYet(name) => {
                info!(
                    "{}: command \"{name}\" is not supported yet by this File daemon",
                    s.label
                );
                sock.send_text(&format!(
                    "2999 Command \"{name}\" not supported yet by this File daemon (baculink)\n"
                ))
                .await?;
            }
        }
        Ok(End::Continue)
    }

    /// Opens the job data channel to a Storage daemon (FD -> SD, FD = auth
    /// and TLS client): `Hello Bacula SD: Start Job <job> 14`, the
    /// FileDaemon resource's TLS settings and certificate (the SD's
    /// certificate must name `host`), CRAM-MD5 with the raw session `key`
    /// from the Director's job line. Retries refused TCP connects every 10 s
    /// up to the resource's `SD Connect Timeout`; the login itself is bounded
    /// by the auth timeout. The link is listed in `status` while it lives.
    pub async fn connect_to_sd(
        &self,
        host: &str,
        port: u16,
        job: &str,
        key: &Secret,
    ) -> Result<SdLink, LoginError> {
        let fdr = &self.conf.file_daemon;
        let setup = login::client_setup(
            Hello::FdToSd {
                job: job.to_string(),
                fd_version: hello::FD_VERSION_V13,
                sd_version: None,
                tlspsk: None,
            },
            key.clone(),
            &fdr.tls,
            self.certs.get(&format!("FileDaemon/{}", fdr.name)),
            &fdr.name,
            host,
            format!("Storage daemon at {host}:{port}"),
            Dialect::V13,
            self.auth_timeout,
        );
        let deadline = Instant::now() + fdr.sd_connect_timeout;
        loop {
            match baculink_net::connect(host, port, &setup).await {
                Ok((mut sock, peer)) => {
                    // The SD's "3000 OK Hello N" with N >= 1 allows LZ4 towards it.
                    let version = peer.established.peer_version.unwrap_or(0);
                    let compress = fdr.daemon.comm_compression && version >= 1;
                    sock.set_compression(compress);
                    // File data in both directions, TLS kept to the end.
                    sock.tune_for_bulk();
                    info!(
                        "{} authenticated for job {job} ({}, {})",
                        peer.label, peer.established.peer_dialect, peer.established.mode
                    );
                    let link = self.links.add(&peer, "Storage daemon", true);
                    return Ok(SdLink {
                        sock,
                        peer,
                        compress,
                        _link: link,
                    });
                }
                Err(e @ LoginError::Connect { .. }) if Instant::now() + SD_RETRY < deadline => {
                    info!("{e}; retrying in {} s", SD_RETRY.as_secs());
                    tokio::time::sleep(SD_RETRY).await;
                }
                Err(e) => {
                    let class = login::FailureClass::of(&e);
                    warn!("{}: {}: {e}", setup.label, class.headline());
                    return Err(e);
                }
            }
        }
    }
}

/// Who ends a conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// Go on reading commands.
    Continue,
    /// The peer sent TERMINATE or left.
    ByPeer,
    /// We end it (bad job line, invalid command): TERMINATE, then close.
    ByUs,
}

/// Per-connection state: the job line and, for a job, everything its
/// commands set up.
struct Session {
    label: String,
    monitor: bool,
    job: Option<JobLine>,
    /// No command read yet.
    first: bool,
    /// The Director's protocol version (Jmsg type table).
    dir_version: u32,
    /// The registered job (JobId != 0).
    handle: Option<Arc<job::JobHandle>>,
    /// Job messages to the Director.
    reporter: Option<job::Reporter>,
    /// Level and since-time.
    level: job::Level,
    /// The FileSet.
    fileset: Option<Arc<fileset::FileSet>>,
    /// Data channel to the Storage daemon.
    sd: Option<SdLink>,
    /// Restore progress (kept across read sessions).
    restore: Option<restore::RestoreState>,
    /// What the job does.
    kind: job::JobKind,
    /// Job status so far.
    status: JobStatus,
    /// Counters for the end-of-job line, once the job ran.
    totals: Option<EndJob>,
    /// Files the Director expects a restore to write.
    expected_files: u64,
    /// Accurate mode: the previous backups' files.
    accurate: Option<Arc<backup::Accurate>>,
}

impl Session {
    fn new(label: String, monitor: bool, dir_version: u32) -> Session {
        Session {
            label,
            monitor,
            job: None,
            first: true,
            dir_version,
            handle: None,
            reporter: None,
            level: job::Level::default(),
            fileset: None,
            sd: None,
            restore: None,
            kind: job::JobKind::Unknown,
            status: JobStatus::CREATED,
            totals: None,
            expected_files: 0,
            accurate: None,
        }
    }

    /// Queues a job message until the job runs (the Director reads them then).
    fn report(&self, kind: job::MsgType, text: &str) {
        match &self.reporter {
            Some(r) => r.queue(kind, text),
            None => info!("{}: {}", self.label, text),
        }
    }

    /// Sends a job message now.
    async fn report_now(&self, dir: &mut BSock, kind: job::MsgType, text: &str) {
        match &self.reporter {
            Some(r) => r.send(dir, kind, text).await,
            None => info!("{}: {}", self.label, text),
        }
    }

    /// Sends the queued job messages.
    async fn flush(&self, dir: &mut BSock) {
        if let Some(r) = &self.reporter {
            r.flush(dir).await;
        }
    }
}

/// The commands we recognise, by Bacula's prefixes (case-sensitive, first
/// match wins, protocol-jobs.md §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Command {
    Job,
    Status,
    DotStatus,
    Cancel,
    Stop,
    SetDebug,
    SetBandwidth,
    Level,
    Fileset,
    Storage,
    Backup,
    Restore,
    EndRestore,
    Estimate,
    Accurate,
    RunScript,
    PluginFeatures,
    /// A Bacula command this daemon does not implement yet.
    NotYet(&'static str),
}

/// Bacula's dispatch order.
const PREFIXES: &[(&str, Command)] = &[
    ("backup", Command::Backup),
    ("cancel", Command::Cancel),
    ("setdebug=", Command::SetDebug),
    ("setbandwidth=", Command::SetBandwidth),
    ("snapshot", Command::NotYet("snapshot")),
    ("estimate", Command::Estimate),
    ("Hello", Command::NotYet("Hello")),
    ("fileset", Command::Fileset),
    ("JobId=", Command::Job),
    ("level = ", Command::Level),
    ("restore ", Command::Restore),
    ("endrestore", Command::EndRestore),
    ("session", Command::NotYet("session")),
    ("status", Command::Status),
    (".status", Command::DotStatus),
    ("storage ", Command::Storage),
    ("verify", Command::NotYet("verify")),
    ("component", Command::NotYet("component")),
    ("RunBeforeNow", Command::RunScript),
    ("RunBeforeJob", Command::RunScript),
    ("RunAfterJob", Command::RunScript),
    ("Run", Command::RunScript),
    ("accurate", Command::Accurate),
    ("restoreobject", Command::NotYet("restoreobject")),
    ("stop", Command::Stop),
    ("PluginFeatures", Command::PluginFeatures),
];

impl Command {
    fn of(cmd: &str) -> Option<Command> {
        PREFIXES
            .iter()
            .find(|(p, _)| cmd.starts_with(p))
            .map(|(_, c)| *c)
    }

    /// What a `Monitor = yes` Director may run.
    fn monitor_allowed(self) -> bool {
        matches!(self, Command::Job | Command::Status | Command::DotStatus)
    }
}

/// `JobId=%s Job=%s SDid=%u SDtime=%u Authorization=%s` (lenient, like Bacula).
struct JobLine {
    job_id: String,
    job: String,
    sd_id: u32,
    sd_time: u32,
    /// The SD session key (`dummy` without a job); never logged.
    key: Secret,
}

impl JobLine {
    fn parse(line: &str) -> Option<JobLine> {
        let mut s = Scanner::lenient(line);
        s.lit("JobId=")?;
        let job_id = s.word(127)?.to_string();
        s.lit(" Job=")?;
        let job = unbash(s.word(127)?);
        s.lit(" SDid=")?;
        let sd_id = s.uint()?;
        s.lit(" SDtime=")?;
        let sd_time = s.uint()?;
        s.lit(" Authorization=")?;
        let key = Secret::new(s.word(255)?.as_bytes());
        if job_id.is_empty() || job.is_empty() {
            return None;
        }
        Some(JobLine {
            job_id,
            job,
            sd_id,
            sd_time,
            key,
        })
    }
}

/// `setdebug=%ld trace=%d hangup=%d blowup=%d options=%s tags=%s`, or the
/// older `setdebug=%d trace=%d hangup=%d`.
#[derive(Debug, PartialEq, Eq)]
struct SetDebug {
    level: i64,
    trace: i64,
    hangup: i64,
    blowup: i64,
    options: String,
    tags: String,
}

impl SetDebug {
    fn parse(line: &str) -> Option<SetDebug> {
        let mut s = Scanner::lenient(line);
        s.lit("setdebug=")?;
        let level = s.int()?;
        s.lit(" trace=")?;
        let trace = s.int()?;
        s.lit(" hangup=")?;
        let hangup = s.int()?;
        let mut d = SetDebug {
            level,
            trace,
            hangup,
            blowup: 0,
            options: String::new(),
            tags: String::new(),
        };
        let mut full = s.clone();
        let rest = (|| {
            full.lit(" blowup=")?;
            let blowup = full.int()?;
            full.lit(" options=")?;
            let options = full.word(55)?.to_string();
            full.lit(" tags=")?;
            let tags = full.word(511)?.to_string();
            Some((blowup, options, tags))
        })();
        if let Some((blowup, options, tags)) = rest {
            d.blowup = blowup;
            d.options = options;
            d.tags = tags;
        }
        Some(d)
    }

    fn reply(&self) -> String {
        format!(
            "2000 OK setdebug={} trace={} hangup={} blowup={} options={} tags={}\n",
            self.level, self.trace, self.hangup, self.blowup, self.options, self.tags
        )
    }
}

fn unbash(s: &str) -> String {
    s.replace('\u{1}', " ")
}

fn first_word(cmd: &str) -> &str {
    let w = cmd.split_whitespace().next().unwrap_or("");
    // Never echo a job line's key.
    w.split_once('=').map(|(k, _)| k).unwrap_or(w)
}

/// A command as it may be logged: the job line's session key removed.
fn redact(cmd: &str) -> String {
    match cmd.find("Authorization=") {
        Some(i) => format!("{}Authorization=<redacted>", &cmd[..i]),
        None => cmd.trim_end().to_string(),
    }
}

#[cfg(test)]
mod tests;
