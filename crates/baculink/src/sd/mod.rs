//! `baculink sd`: the Storage daemon. One port serves both Directors (the
//! Director resource of that name, matched case-insensitively, with its own
//! password and TLS) and file daemons opening a job's data channel (the job's
//! session key, with the Storage resource's TLS). The Hello decides which.
//!
//! Directors get `status`, `.status` and `cancel`, and set jobs up (job line,
//! device reservation, bootstrap, `run`: [`job`]); the job's File daemon then
//! logs in on the data channel with the job's session key and runs an append
//! (backup) or read (restore) session ([`session`]) against volume files of
//! a `File` device ([`volume`]), while the Director connection carries the
//! job's catalog requests and messages.
//!
//! Test hook: when `BACULINK_TEST_JOB="job:key[,job:key...]"` is set at start
//! the SD pre-registers those jobs (without any Director setup), so a test
//! can log in on the data channel; such jobs have no sessions.

mod job;
mod session;
mod volume;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use baculink_conf::sd::Device;
use baculink_conf::tls::TlsRole;
use baculink_conf::SdConfig;
use baculink_net::{BSock, LoginError, NetError, Peer, PeerSetup, ServerSetup};
use baculink_proto::frame::{Packet, Signal};
use baculink_proto::handshake::{RefusalReason, ServerConfig, ServerKind};
use baculink_proto::hello::{self, Hello};
use baculink_proto::job::catreq::Generation;
use baculink_proto::job::sdcmd::{self, Bootstrap, JobCommand, JobReply, UseStorage};
use baculink_proto::negotiate::Dialect;
use baculink_proto::scan::c_text;
use baculink_proto::Secret;
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

use crate::daemon::{self, bacula_time, describe_link, mode_words, CertStore, Daemon, Links};
use crate::login;
use job::{DirChan, Job, Outcome};

/// Longest bootstrap accepted from a Director.
const MAX_BOOTSTRAP: usize = 4 << 20;
/// How many ended jobs `status` lists.
const TERMINATED_KEPT: usize = 10;

/// Environment variable of the test hook that pre-registers jobs.
pub const TEST_JOB_ENV: &str = "BACULINK_TEST_JOB";

/// The Storage daemon.
pub struct StorageDaemon {
    conf: SdConfig,
    certs: CertStore,
    links: Arc<Links>,
    jobs: Mutex<HashMap<String, JobEntry>>,
    started: SystemTime,
    auth_timeout: Duration,
    /// VolSessionTime of every job of this run: the start time.
    sd_time: u32,
    /// Last VolSessionId handed out.
    sessions: AtomicU32,
    /// Jobs that reached `run`.
    jobs_run: AtomicU32,
    /// Ended jobs, newest last.
    terminated: Mutex<VecDeque<Terminated>>,
    /// Volumes open for appending.
    volumes: Arc<session::VolumeTable>,
}

/// An ended job, for `status`.
#[derive(Debug, Clone)]
struct Terminated {
    job_id: u32,
    job: String,
    kind: char,
    level: char,
    outcome: Outcome,
    ended: SystemTime,
}

/// A job the Director set up on this SD: its file daemon logs in on the data
/// channel with the job name and this session key.
#[derive(Debug)]
pub struct JobEntry {
    /// The raw session key (used as is for CRAM-MD5 and TLS-PSK, not hashed).
    pub key: Secret,
    /// True once a client authenticated for the job; a second one is refused.
    pub authenticated: bool,
    /// When the job was registered.
    pub registered: SystemTime,
    /// The job the Director set up (None for test-hook entries).
    job: Option<Arc<Job>>,
}

/// Who a Hello turned out to be.
enum Caller {
    Director { monitor: bool, version: Option<u32> },
    Client { job: String },
}

impl Daemon for StorageDaemon {
    const KIND: &'static str = "sd";

    fn load(path: &Path, auth_timeout: Duration) -> Result<Self, String> {
        let (conf, warnings) = SdConfig::load(path).map_err(|e| e.to_string())?;
        baculink_conf::log_warnings(&warnings);
        conf.validate_tls().map_err(|e| e.to_string())?;
        let mut specs = vec![(
            format!("Storage/{}", conf.storage.name),
            conf.storage.tls.clone(),
            TlsRole::Server,
        )];
        for d in &conf.directors {
            specs.push((
                format!("Director/{}", d.name),
                d.tls.clone(),
                TlsRole::Server,
            ));
        }
        let certs = CertStore::build(specs).map_err(|e| format!("{}: {e}", path.display()))?;
        let started = SystemTime::now();
        let sd_time = started
            .duration_since(UNIX_EPOCH)
            .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
            .unwrap_or(0);
        let sd = StorageDaemon {
            conf,
            certs,
            links: Arc::new(Links::default()),
            jobs: Mutex::new(HashMap::new()),
            started,
            auth_timeout,
            sd_time,
            sessions: AtomicU32::new(0),
            jobs_run: AtomicU32::new(0),
            terminated: Mutex::new(VecDeque::new()),
            volumes: Arc::new(session::VolumeTable::default()),
        };
        if let Ok(spec) = std::env::var(TEST_JOB_ENV) {
            for item in spec.split(',').filter(|s| !s.is_empty()) {
                let Some((job, key)) = item.split_once(':') else {
                    return Err(format!(
                        "{TEST_JOB_ENV}: expected job:key entries separated by commas"
                    ));
                };
                warn!("test hook {TEST_JOB_ENV}: job \"{job}\" pre-registered");
                sd.register_job(job, Secret::new(key.as_bytes()));
            }
        }
        Ok(sd)
    }

    fn listen(&self) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for (host, port) in self.conf.storage.daemon.listen() {
            match daemon::socket_addrs(host.as_deref(), port) {
                Ok(a) => out.extend(a),
                Err(e) => warn!("{e}"),
            }
        }
        out
    }

    fn pid_directory(&self) -> Option<PathBuf> {
        self.conf.storage.daemon.pid_directory.clone()
    }

    fn certs(&self) -> &CertStore {
        &self.certs
    }

    async fn handle(self: Arc<Self>, tcp: TcpStream, addr: SocketAddr) {
        let sock = BSock::new(tcp);
        let setup = self.server_setup();
        let mut caller = None;
        let result = baculink_net::accept(sock, &setup, |h| {
            let (found, who) = self.lookup(h, addr)?;
            caller = Some(who);
            Some(found)
        })
        .await;
        let (sock, peer) = match result {
            Ok(x) => x,
            Err(e) => return self.login_failed(&e, caller.as_ref(), addr),
        };
        match caller {
            Some(Caller::Director { monitor, version }) => {
                self.director_session(sock, peer, monitor, version).await
            }
            Some(Caller::Client { job }) => self.client_session(sock, peer, job).await,
            None => sock.close().await,
        }
    }
}

impl StorageDaemon {
    /// The Storage resource's name.
    pub fn name(&self) -> &str {
        &self.conf.storage.name
    }

    /// Registers a job whose file daemon will log in with `key` (the raw
    /// session key the SD returned to the Director). Replaces an older entry.
    pub fn register_job(&self, job: &str, key: Secret) {
        self.register(job, key, None);
    }

    fn register(&self, name: &str, key: Secret, job: Option<Arc<Job>>) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.insert(
                name.to_string(),
                JobEntry {
                    key,
                    authenticated: false,
                    registered: SystemTime::now(),
                    job,
                },
            );
        }
    }

    /// Forgets a job (its data channel can no longer log in). True if it existed.
    pub fn remove_job(&self, job: &str) -> bool {
        self.jobs
            .lock()
            .map(|mut j| j.remove(job).is_some())
            .unwrap_or(false)
    }

    /// Forgets this very job (not a newer one registered under its name).
    fn remove_this_job(&self, job: &Arc<Job>) {
        let same = self.jobs.lock().is_ok_and(|jobs| {
            jobs.get(job.name())
                .and_then(|e| e.job.as_ref())
                .is_some_and(|j| Arc::ptr_eq(j, job))
        });
        if same {
            self.remove_job(job.name());
        }
    }

    /// The set-up job of that name.
    fn find_job(&self, name: &str) -> Option<Arc<Job>> {
        self.jobs.lock().ok()?.get(name)?.job.clone()
    }

    /// The registered jobs: name, whether a client authenticated, since when.
    pub fn jobs(&self) -> Vec<(String, bool, SystemTime)> {
        self.job_entries()
            .into_iter()
            .map(|(n, a, t, _)| (n, a, t))
            .collect()
    }

    /// The registered jobs with their setup.
    fn job_entries(&self) -> Vec<(String, bool, SystemTime, Option<Arc<Job>>)> {
        let mut v: Vec<_> = self
            .jobs
            .lock()
            .map(|j| {
                j.iter()
                    .map(|(k, e)| (k.clone(), e.authenticated, e.registered, e.job.clone()))
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn server_setup(&self) -> ServerSetup {
        ServerSetup {
            config: ServerConfig {
                kind: ServerKind::Storage,
                name: self.name().to_string(),
                version: hello::SD_VERSION_V13,
                version_text: version_text(),
                dialect: Dialect::V13,
            },
            timeout: self.auth_timeout,
            damping: true,
        }
    }

    /// The secret and TLS settings for a Hello: the Director resource of
    /// that name (case-insensitive, like Bacula's SD), or the registered job.
    fn lookup(&self, hello: &Hello, addr: SocketAddr) -> Option<(PeerSetup, Caller)> {
        match hello {
            Hello::DirectorToSd { name, version, .. } => {
                let Some(d) = self
                    .conf
                    .directors
                    .iter()
                    .find(|d| d.name.eq_ignore_ascii_case(name))
                else {
                    warn!("Connection from unknown Director {name} at {addr} rejected.");
                    return None;
                };
                let setup = login::peer_setup(
                    d.password.clone(),
                    &d.tls,
                    self.certs.get(&format!("Director/{}", d.name)),
                    self.name(),
                    format!("Director \"{}\" at {addr}", d.name),
                );
                Some((
                    setup,
                    Caller::Director {
                        monitor: d.monitor,
                        version: *version,
                    },
                ))
            }
            h if h.is_storage_client() => {
                let job = h.name();
                let key = {
                    let jobs = self.jobs.lock().ok()?;
                    match jobs.get(job) {
                        None => {
                            warn!("Client connect failed: Job name not found: {job} (from {addr})");
                            return None;
                        }
                        Some(e) if e.authenticated => {
                            warn!(
                                "Client connect failed: job \"{job}\" already has an authenticated \
                                 client; second connection from {addr} rejected"
                            );
                            return None;
                        }
                        Some(e) => e.key.clone(),
                    }
                };
                let st = &self.conf.storage;
                let setup = login::peer_setup(
                    key,
                    &st.tls,
                    self.certs.get(&format!("Storage/{}", st.name)),
                    self.name(),
                    format!("File daemon for job \"{job}\" at {addr}"),
                );
                Some((
                    setup,
                    Caller::Client {
                        job: job.to_string(),
                    },
                ))
            }
            other => {
                warn!("{addr}: a {other} Hello is not for a Storage daemon");
                None
            }
        }
    }

    /// One warning per failed login, naming the address.
    fn login_failed(&self, e: &LoginError, caller: Option<&Caller>, addr: SocketAddr) {
        let class = login::FailureClass::of(e);
        match (e.reason(), caller) {
            // The lookup already said why.
            (Some(RefusalReason::UnknownPeer(_)), _) => debug!("login from {addr} refused: {e}"),
            (_, Some(Caller::Client { job })) if class == login::FailureClass::WrongPassword => {
                warn!(
                    "Incorrect authorization key for job \"{job}\" from File daemon at {addr} \
                     rejected: {e}"
                )
            }
            _ => warn!("login from {addr} failed: {e}"),
        }
    }

    async fn director_session(&self, sock: BSock, peer: Peer, monitor: bool, version: Option<u32>) {
        info!(
            "{} logged in ({}, {})",
            peer.label,
            peer.established.peer_dialect,
            mode_words(peer.established.mode)
        );
        let _link = self.links.add(&peer, "Director", false);
        // A 13.x Director announces 10002; 9.6 announces 103.
        let generation = match version {
            Some(v) if v >= 10_000 => Generation::V13,
            _ => Generation::V96,
        };
        let chan: DirChan = Arc::new(tokio::sync::Mutex::new(sock));
        let mut setup: Option<Arc<Job>> = None;
        if let Err(e) = self
            .command_loop(&chan, monitor, generation, &mut setup)
            .await
        {
            debug!("{}: {e}", peer.label);
        }
        if let Some(job) = setup {
            // Set up but never run (or the Director went away): forget it.
            if !job.is_running() {
                job.cancel();
                self.remove_this_job(&job);
            }
        }
        info!("{} disconnected", peer.label);
        if let Ok(m) = Arc::try_unwrap(chan) {
            m.into_inner().close().await;
        }
    }

    /// Director commands until TERMINATE, EOF or the end of a job run here.
    async fn command_loop(
        &self,
        chan: &DirChan,
        monitor: bool,
        generation: Generation,
        setup: &mut Option<Arc<Job>>,
    ) -> Result<(), NetError> {
        loop {
            let mut sock = chan.lock().await;
            let packet = match sock.recv().await {
                Ok(Packet::Data(d)) => d,
                Ok(Packet::Signal(Signal::Terminate)) | Err(NetError::Eof(_)) => return Ok(()),
                Ok(Packet::Signal(Signal::Poll)) => {
                    sock.send_text("3000 OK\n").await?;
                    continue;
                }
                Ok(Packet::Signal(Signal::Status)) => {
                    sock.send_text("Status OK\n").await?;
                    sock.signal(Signal::Eod).await?;
                    continue;
                }
                Ok(Packet::Signal(_)) => continue,
                Err(e) => return Err(e),
            };
            let raw = c_text(&packet);
            let cmd = raw.trim().to_string();
            let mut words = cmd.split_whitespace();
            let word = words.next().unwrap_or("");
            let args: Vec<&str> = words.collect();
            debug!("Director command {word:?}");
            // Job setup replies carry no EOD (the Director reads one line).
            match word {
                "status" => {
                    for line in self.status_lines() {
                        send_line(&mut sock, &line).await?;
                    }
                }
                ".status" => {
                    for line in self.dot_status(&args) {
                        send_line(&mut sock, &line).await?;
                    }
                }
                _ if monitor => {
                    sock.send_text(
                        "3997 Invalid command for a Director with Monitor directive enabled.\n",
                    )
                    .await?
                }
                "cancel" => {
                    let reply = match sdcmd::parse_cancel(&cmd) {
                        Ok(name) => match self.find_job(&name) {
                            Some(job) => {
                                info!("job {name} canceled by the Director");
                                job.cancel();
                                sdcmd::canceled_reply(job.id(), &name)
                            }
                            None => sdcmd::cancel_not_found_reply(&name),
                        },
                        Err(_) => "3903 Error scanning cancel command.\n".to_string(),
                    };
                    sock.send_text(&reply).await?;
                }
                _ if cmd.starts_with("JobId=") => {
                    let reply = self.job_command(&raw, generation, setup);
                    sock.send_text(&reply).await?;
                    continue;
                }
                "use" => {
                    let reply = self.use_command(&mut sock, &raw, setup.as_ref()).await?;
                    sock.send_text(&reply).await?;
                    continue;
                }
                "bootstrap" => {
                    let reply = bootstrap_command(&mut sock, setup.as_ref()).await?;
                    sock.send_text(reply).await?;
                    continue;
                }
                "run" => {
                    let Some(job) = setup.clone().filter(|j| j.reserved().is_some()) else {
                        sock.send_text("3911 Error: run without a job and a reserved device.\n")
                            .await?;
                        continue;
                    };
                    drop(sock);
                    self.run_job(chan, &job).await;
                    return Ok(());
                }
                _ => {
                    let shown: String = word.chars().take(60).collect();
                    sock.send_text(&format!(
                        "3900 Invalid command: \"{shown}\" is not supported by this storage daemon\n"
                    ))
                    .await?
                }
            }
            sock.signal(Signal::Eod).await?;
        }
    }

    /// The job line: a new job, its session key registered for the FD.
    fn job_command(
        &self,
        line: &str,
        generation: Generation,
        setup: &mut Option<Arc<Job>>,
    ) -> String {
        let cmd = match JobCommand::parse(line) {
            Ok(c) => c,
            Err(e) => {
                warn!("{e}");
                let fields = line.split_whitespace().count();
                return sdcmd::bad_job_reply(fields, line);
            }
        };
        let mut random = [0u8; 16];
        if let Err(e) = openssl::rand::rand_bytes(&mut random) {
            warn!("no random bytes for a session key: {e}");
            return sdcmd::bad_job_reply(0, "no random source");
        }
        let key = sdcmd::session_key(&random);
        random.fill(0);
        let sd_id = self
            .sessions
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1);
        if let Some(old) = setup.take() {
            if !old.is_running() {
                self.remove_this_job(&old);
            }
        }
        let job = Arc::new(Job::new(cmd, sd_id, self.sd_time, generation, self.name()));
        info!(
            "job {} (JobId {}, {}) set up, VolSessionId={sd_id}",
            job.name(),
            job.id(),
            if job.cmd.is_backup() { "write" } else { "read" }
        );
        self.register(job.name(), Secret::new(key.as_bytes()), Some(job.clone()));
        *setup = Some(job);
        JobReply {
            sd_id,
            sd_time: self.sd_time,
            authorization: key,
        }
        .to_string()
    }

    /// `use storage=...` + `use device=...` lines + EODs: reserves the first
    /// named device of ours whose Media Type matches.
    async fn use_command(
        &self,
        sock: &mut BSock,
        first: &str,
        setup: Option<&Arc<Job>>,
    ) -> Result<String, NetError> {
        let mut current = UseStorage::parse(first).ok();
        let mut wanted: Vec<(UseStorage, Vec<String>)> = Vec::new();
        let mut bad = current.is_none().then(|| first.to_string());
        // Devices of one storage until EOD; then another storage or EOD.
        'storages: loop {
            let mut devices = Vec::new();
            loop {
                match sock.recv_data().await? {
                    Ok(d) => {
                        let line = c_text(&d);
                        match sdcmd::parse_use_device(&line) {
                            Ok(dev) => devices.push(dev),
                            Err(_) => bad = Some(line),
                        }
                    }
                    Err(Signal::Eod) => break,
                    Err(Signal::Terminate) => return Err(NetError::Eof(sock.peer_name().into())),
                    Err(_) => {}
                }
            }
            if let Some(us) = current.take() {
                wanted.push((us, devices));
            }
            loop {
                match sock.recv_data().await? {
                    Ok(d) => {
                        let line = c_text(&d);
                        match UseStorage::parse(&line) {
                            Ok(us) => current = Some(us),
                            Err(_) => bad = Some(line),
                        }
                        continue 'storages;
                    }
                    Err(Signal::Eod) => break 'storages,
                    Err(Signal::Terminate) => return Err(NetError::Eof(sock.peer_name().into())),
                    Err(_) => {}
                }
            }
        }
        if let Some(line) = bad {
            return Ok(sdcmd::bad_use_reply(&line));
        }
        let Some(job) = setup else {
            return Ok("3913 Bad use command: no job set up on this connection.\n".into());
        };
        for (us, devices) in &wanted {
            for name in devices {
                let found = self
                    .conf
                    .devices
                    .iter()
                    .find(|d| d.name == *name)
                    .or_else(|| {
                        self.conf
                            .devices
                            .iter()
                            .find(|d| d.name.eq_ignore_ascii_case(name))
                    });
                if let Some(d) = found.filter(|d| d.media_type == us.media_type) {
                    info!(
                        "job {}: device \"{}\" reserved for {}",
                        job.name(),
                        d.name,
                        if us.append { "writing" } else { "reading" }
                    );
                    job.reserve(d.clone(), us.clone());
                    return Ok(sdcmd::ok_use_device(&d.name));
                }
            }
        }
        let name = wanted
            .iter()
            .flat_map(|(_, d)| d.first())
            .next()
            .cloned()
            .unwrap_or_default();
        warn!(
            "job {}: no usable device among {:?}",
            job.name(),
            wanted.iter().map(|(_, d)| d).collect::<Vec<_>>()
        );
        Ok(sdcmd::no_device_reply(&name))
    }

    /// `run`: the job starts; this connection carries its messages until
    /// the File daemon's session ends, then `3099`, EOD, TERMINATE.
    async fn run_job(&self, chan: &DirChan, job: &Arc<Job>) {
        self.jobs_run.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = job.start(chan.clone()).await {
            warn!("job {}: {e}", job.name());
            job.cancel();
        }
        let outcome = job.wait_done(self.conf.storage.client_connect_wait).await;
        info!(
            "job {} ended: status {} files={} bytes={}{}",
            job.name(),
            outcome.status,
            outcome.files,
            outcome.bytes,
            if outcome.err_msg.is_empty() {
                String::new()
            } else {
                format!(" ({})", outcome.err_msg)
            }
        );
        if let Err(e) = job.send_end(&outcome).await {
            warn!(
                "job {}: could not report the end to the Director: {e}",
                job.name()
            );
        }
        job.release_chan();
        self.remove_this_job(job);
        if let Ok(mut t) = self.terminated.lock() {
            t.push_back(Terminated {
                job_id: job.id(),
                job: job.name().to_string(),
                kind: job.cmd.job_type,
                level: job.cmd.level,
                outcome,
                ended: SystemTime::now(),
            });
            while t.len() > TERMINATED_KEPT {
                t.pop_front();
            }
        }
    }

    /// The data channel after a successful login: claims the job, runs its
    /// sessions, and hands the outcome to the Director task.
    async fn client_session(&self, mut sock: BSock, peer: Peer, job: String) {
        let claimed = self
            .jobs
            .lock()
            .map(|mut jobs| match jobs.get_mut(&job) {
                Some(e) if !e.authenticated => {
                    e.authenticated = true;
                    Some(e.job.clone())
                }
                _ => None,
            })
            .unwrap_or(None);
        let Some(setup) = claimed else {
            warn!(
                "{}: job is gone or another client authenticated first; connection closed",
                peer.label
            );
            sock.close().await;
            return;
        };
        info!(
            "{} logged in ({}, {})",
            peer.label,
            peer.established.peer_dialect,
            mode_words(peer.established.mode)
        );
        let _link = self.links.add(&peer, "File daemon", false);
        match setup {
            Some(j) => {
                // File data in both directions, TLS kept to the end.
                sock.tune_for_bulk();
                let outcome = self.data_session(&mut sock, &j).await;
                j.finish(outcome);
            }
            None => {
                if let Err(e) = unsupported_session(&mut sock).await {
                    debug!("{}: {e}", peer.label);
                }
            }
        }
        info!("{} disconnected", peer.label);
        sock.close().await;
    }

    fn nautochgr(&self) -> usize {
        self.conf.autochangers.len()
    }

    /// `status`: Bacula's layout (protocol-jobs.md §4), then our section
    /// listing every live link with its TLS facts.
    fn status_lines(&self) -> Vec<String> {
        let jobs = self.job_entries();
        let running = jobs.iter().filter(|j| j.1).count();
        let mut out = vec![
            "\n".to_string(),
            format!("{} Version: {} {}\n", self.name(), version_text(), uname()),
            format!(
                "Daemon started {}. Jobs: run={}, running={running}.\n",
                bacula_time(self.started),
                self.jobs_run.load(Ordering::Relaxed)
            ),
            format!(
                " Res: ndevices={} nautochgr={}\n",
                self.conf.devices.len(),
                self.nautochgr()
            ),
            "\nRunning Jobs:\n".into(),
        ];
        if jobs.is_empty() {
            out.push("No Jobs running.\n".into());
        }
        for (name, authenticated, since, job) in &jobs {
            let Some(job) = job else {
                let state = if *authenticated {
                    "File daemon connected"
                } else {
                    "waiting for its File daemon"
                };
                out.push(format!(
                    "Job {name} registered {}: {state}\n",
                    bacula_time(*since)
                ));
                continue;
            };
            out.extend(running_job_lines(job));
        }
        out.push("====\n".into());
        out.push("\nJobs waiting to reserve a drive:\n".into());
        out.push("====\n".into());
        out.push("\nTerminated Jobs:\n".into());
        let ended = self.terminated_jobs();
        if !ended.is_empty() {
            out.push(" JobId  Level    Files      Bytes   Status   Finished        Name \n".into());
            out.push(
                "===================================================================\n".into(),
            );
        }
        for t in ended.iter().rev() {
            out.push(format!(
                "{:>6}  {:<6} {:>8} {:>10}   {:<8} {} {}\n",
                t.job_id,
                level_name(t.level),
                t.outcome.files,
                t.outcome.bytes,
                t.outcome.status.describe(),
                bacula_time(t.ended),
                t.job
            ));
        }
        out.push("====\n".into());
        out.push("\nDevice status:\n".into());
        let busy: Vec<(String, Option<String>)> = jobs
            .iter()
            .filter_map(|(_, _, _, j)| j.as_ref())
            .filter_map(|j| j.reserved().map(|(d, _)| (d.name, j.progress().volume)))
            .collect();
        for d in &self.conf.devices {
            let vol = busy.iter().find(|(n, _)| *n == d.name);
            match vol {
                Some((_, Some(v))) => out.push(format!(
                    "\nDevice {}: \"{}\" ({}) is mounted with:\n    Volume:      {v}\n",
                    device_type(d),
                    d.name,
                    d.archive_device
                )),
                _ => out.push(format!(
                    "\nDevice {}: \"{}\" ({}) is not open.\n",
                    device_type(d),
                    d.name,
                    d.archive_device
                )),
            }
            out.push("==\n".into());
        }
        out.push("====\n\n".into());
        out.push("Used Volume status:\n".into());
        for (d, v) in &busy {
            if let Some(v) = v {
                out.push(format!("Reserved volume: {v} on File device \"{d}\"\n"));
            }
        }
        out.push("====\n\n".into());
        out.extend(self.links.status_lines());
        out
    }

    fn terminated_jobs(&self) -> Vec<Terminated> {
        self.terminated
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// `.status <what> [api=N] [api_opts=X] [device=NAME]`.
    fn dot_status(&self, args: &[&str]) -> Vec<String> {
        let what = args
            .iter()
            .find(|a| !a.contains('='))
            .copied()
            .unwrap_or("");
        let opt = |k: &str| {
            args.iter()
                .filter_map(|a| a.split_once('='))
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|(_, v)| v)
        };
        match what.to_ascii_lowercase().as_str() {
            "current" | "last" => {
                let mut v = vec!["3000 OK .status\n".to_string()];
                let ended = self.terminated_jobs();
                let pick: Vec<&Terminated> = if what.eq_ignore_ascii_case("last") {
                    ended.last().into_iter().collect()
                } else {
                    ended.iter().collect()
                };
                for t in pick {
                    v.push(format!(
                        "JobId={} JobStatus={} JobErrors={}\n",
                        t.job_id,
                        t.outcome.status.letter(),
                        t.outcome.errors
                    ));
                }
                v
            }
            "header" => {
                let started = self
                    .started
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let links = self.links.snapshot();
                let mut s = format!(
                    "name={}\nversion={}\nuname={}\nstarted_epoch={started}\nstarted={}\npid={}\n\
                     jobs_run=0\njobs_running={}\nndevices={}\nnautochgr={}\nlinks={}\n",
                    self.name(),
                    version_text(),
                    uname(),
                    bacula_time(self.started),
                    std::process::id(),
                    self.jobs().iter().filter(|j| j.1).count(),
                    self.conf.devices.len(),
                    self.nautochgr(),
                    links.len(),
                );
                for l in &links {
                    s.push_str(&format!("link={}\n", describe_link(l)));
                }
                vec![s]
            }
            "running" => {
                let mut v = Vec::new();
                for l in self.links.snapshot() {
                    let f = l.facts.as_ref();
                    v.push(format!(
                        "Link={}\nAddress={}\nRole={}\nDialect={}\nMode={}\nLoginMode={}\n\
                         TLSVersion={}\nCipher={}\nPeerSubject={}\nPeerCertDaysLeft={}\n\n",
                        l.label,
                        l.addr.map(|a| a.to_string()).unwrap_or_default(),
                        l.role,
                        l.dialect,
                        mode_words(l.mode),
                        mode_words(l.login_mode),
                        f.map(|f| f.version.as_str()).unwrap_or(""),
                        f.map(|f| f.cipher.as_str()).unwrap_or(""),
                        f.and_then(|f| f.peer_subject.as_deref()).unwrap_or(""),
                        f.and_then(|f| f.peer_days_left)
                            .map(|d| d.to_string())
                            .unwrap_or_default(),
                    ));
                }
                for (name, authenticated, since) in self.jobs() {
                    v.push(format!(
                        "Job={name}\nRegistered={}\nClientConnected={}\n\n",
                        bacula_time(since),
                        u8::from(authenticated)
                    ));
                }
                v
            }
            "devices" => {
                let wanted = opt("device");
                self.conf
                    .devices
                    .iter()
                    .filter(|d| wanted.is_none_or(|w| w == d.name))
                    .map(|d| {
                        format!(
                            "name={}\ntype={}\nmedia_type={}\narchive_device={}\nopen=0\n\n",
                            d.name,
                            device_type(d),
                            d.media_type,
                            d.archive_device
                        )
                    })
                    .collect()
            }
            "terminated" => self
                .terminated_jobs()
                .iter()
                .map(|t| {
                    format!(
                        "JobId={}\nJob={}\nType={}\nLevel={}\nJobStatus={}\nJobFiles={}\n\
                         JobBytes={}\nJobErrors={}\nEndTime={}\n\n",
                        t.job_id,
                        t.job,
                        t.kind,
                        t.level,
                        t.outcome.status.letter(),
                        t.outcome.files,
                        t.outcome.bytes,
                        t.outcome.errors,
                        bacula_time(t.ended)
                    )
                })
                .collect(),
            "volumes" | "spooling" => Vec::new(),
            "" => vec!["3900 Bad .status command, missing argument.\n".into()],
            other => vec![format!(
                "3900 Unknown .status target \"{other}\": use current, last, header, running, \
                 terminated, devices, volumes or spooling\n"
            )],
        }
    }
}

/// A running job in `status`, like Bacula's "Writing:/Reading:" entry.
fn running_job_lines(job: &Job) -> Vec<String> {
    let p = job.progress();
    let verb = if job.cmd.is_backup() {
        "Writing"
    } else {
        "Reading"
    };
    let kind = if job.cmd.is_backup() {
        "Backup"
    } else if job.cmd.is_restore() {
        "Restore"
    } else {
        "Job"
    };
    let mut out = vec![format!(
        "{verb}: {} {kind} job {} JobId={} Volume=\"{}\"\n",
        level_name(job.cmd.level),
        job.cmd.job_name,
        job.id(),
        p.volume.as_deref().unwrap_or("")
    )];
    if let Some((d, us)) = job.reserved() {
        out.push(format!(
            "    pool=\"{}\" device=\"{}\" ({})\n",
            us.pool_name, d.name, d.archive_device
        ));
    }
    let state = if p.fd_connected {
        "File daemon connected"
    } else if job.is_running() {
        "waiting for its File daemon"
    } else {
        "being set up"
    };
    out.push(format!("    Files={} Bytes={} {state}\n", p.files, p.bytes));
    out
}

/// Bacula's level word for a level letter.
fn level_name(level: char) -> &'static str {
    match level {
        'F' => "Full",
        'I' => "Incr",
        'D' => "Diff",
        'B' => "Base",
        'f' => "VFull",
        _ => "",
    }
}

/// Status lines go out like Bacula's, with a trailing NUL counted.
async fn send_line(sock: &mut BSock, line: &str) -> Result<(), NetError> {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(0);
    sock.send(&Packet::data(&bytes)).await
}

/// `bootstrap`: lines until EOD, parsed and stored in the job.
async fn bootstrap_command(
    sock: &mut BSock,
    setup: Option<&Arc<Job>>,
) -> Result<&'static str, NetError> {
    let mut text = String::new();
    let mut too_long = false;
    loop {
        match sock.recv_data().await? {
            Ok(d) => {
                if text.len() + d.len() > MAX_BOOTSTRAP {
                    too_long = true;
                } else {
                    text.push_str(&c_text(&d));
                    if !text.ends_with('\n') {
                        text.push('\n');
                    }
                }
            }
            Err(Signal::Eod) => break,
            Err(Signal::Terminate) => return Err(NetError::Eof(sock.peer_name().into())),
            Err(_) => {}
        }
    }
    let Some(job) = setup else {
        warn!("bootstrap without a job on this connection");
        return Ok(sdcmd::ERROR_BOOTSTRAP);
    };
    if too_long {
        warn!(
            "job {}: bootstrap longer than {MAX_BOOTSTRAP} bytes",
            job.name()
        );
        return Ok(sdcmd::ERROR_BOOTSTRAP);
    }
    match Bootstrap::parse(&text) {
        Ok(b) => {
            debug!(
                "job {}: bootstrap with {} section(s), volumes {:?}",
                job.name(),
                b.entries.len(),
                b.volumes()
            );
            job.set_bootstrap(b);
            Ok(sdcmd::OK_BOOTSTRAP)
        }
        Err(e) => {
            warn!("job {}: {e}", job.name());
            Ok(sdcmd::ERROR_BOOTSTRAP)
        }
    }
}

/// Data channel of a test-hook job: no sessions, every command refused.
async fn unsupported_session(sock: &mut BSock) -> Result<(), NetError> {
    loop {
        match sock.recv().await {
            Ok(Packet::Data(d)) => {
                let text = c_text(&d);
                let word: String = text
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(40)
                    .collect();
                sock.send_text(&format!(
                    "3903 baculink storage daemon: data channel command \"{word}\" is not \
                     supported yet for this job: it was registered by the test hook, not set up \
                     by a Director\n"
                ))
                .await?;
                sock.signal(Signal::Eod).await?;
            }
            Ok(Packet::Signal(Signal::Terminate)) | Err(NetError::Eof(_)) => return Ok(()),
            Ok(Packet::Signal(Signal::Poll)) => sock.send_text("3000 OK\n").await?,
            Ok(Packet::Signal(_)) => {}
            Err(e) => return Err(e),
        }
    }
}

/// `Device Type`, else what the archive device looks like.
fn device_type(d: &Device) -> String {
    if let Some(t) = &d.device_type {
        return t.clone();
    }
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata(&d.archive_device).map(|m| m.file_type()) {
        Ok(t) if t.is_char_device() => "Tape".into(),
        Ok(t) if t.is_fifo() => "Fifo".into(),
        _ => "File".into(),
    }
}

/// `HOST_OS DISTNAME DISTVER` in the version line.
fn uname() -> String {
    format!(
        "{}-{} baculink rust",
        std::env::consts::ARCH,
        std::env::consts::OS
    )
}

/// The text after `Version: ` in `status`.
fn version_text() -> String {
    format!("{} (baculink)", env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = r#"
Storage {
  Name = test-sd
  SDAddress = 127.0.0.1
  SDPort = 19103
  WorkingDirectory = "/tmp"
}
Director {
  Name = Bacula-Dir
  Password = "pw"
}
Device {
  Name = FileStorage
  Media Type = File
  Archive Device = "/tmp"
}
"#;

    fn sd() -> StorageDaemon {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bacula-sd.conf");
        std::fs::write(&p, CONF).unwrap();
        StorageDaemon::load(&p, Duration::from_secs(5)).unwrap()
    }

    fn addr() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    #[test]
    fn director_lookup_ignores_case() {
        let sd = sd();
        let h = Hello::DirectorToSd {
            name: "bacula-dir".into(),
            version: Some(103),
            tlspsk: None,
        };
        let (setup, who) = sd.lookup(&h, addr()).expect("found");
        assert_eq!(setup.label, "Director \"Bacula-Dir\" at 127.0.0.1:40000");
        assert!(matches!(
            who,
            Caller::Director {
                monitor: false,
                version: Some(103)
            }
        ));
        let h = Hello::DirectorToSd {
            name: "other".into(),
            version: Some(103),
            tlspsk: None,
        };
        assert!(sd.lookup(&h, addr()).is_none());
    }

    #[test]
    fn job_registry() {
        let sd = sd();
        let h = Hello::FdToSd {
            job: "J.1".into(),
            fd_version: 14,
            sd_version: None,
            tlspsk: Some(100),
        };
        assert!(sd.lookup(&h, addr()).is_none(), "unknown job");
        sd.register_job("J.1", Secret::new(b"KEY".to_vec()));
        let (setup, _) = sd.lookup(&h, addr()).expect("registered");
        assert_eq!(setup.local.key.expose(), b"KEY");
        assert_eq!(
            setup.label,
            "File daemon for job \"J.1\" at 127.0.0.1:40000"
        );
        sd.jobs
            .lock()
            .unwrap()
            .get_mut("J.1")
            .unwrap()
            .authenticated = true;
        assert!(sd.lookup(&h, addr()).is_none(), "second client");
        assert!(sd.remove_job("J.1"));
        assert!(!sd.remove_job("J.1"));
    }

    #[test]
    fn job_line_registers_a_fresh_session_key() {
        let sd = sd();
        let line = "JobId=3 job=Back.2026-01-01_00.00.00_01 job_name=Back client_name=c \
                    type=66 level=70 FileSet=S NoAttr=0 SpoolAttr=1 FileSetMD5=x SpoolData=0 \
                    WritePartAfterJob=1 PreferMountedVols=1 SpoolSize=0 rerunning=0 \
                    VolSessionId=0 VolSessionTime=0 sd_client=0 Authorization=dummy\n";
        let mut setup = None;
        let reply = sd.job_command(line, Generation::V96, &mut setup);
        let r = JobReply::parse(&reply).unwrap();
        assert_eq!((r.sd_id, r.sd_time), (1, sd.sd_time));
        assert!(sdcmd::is_session_key(&r.authorization), "{reply}");
        let job = setup.expect("job set up");
        assert_eq!(job.id(), 3);
        let h = Hello::FdToSd {
            job: "Back.2026-01-01_00.00.00_01".into(),
            fd_version: 214,
            sd_version: None,
            tlspsk: None,
        };
        let (peer, _) = sd.lookup(&h, addr()).expect("registered");
        assert_eq!(peer.local.key.expose(), r.authorization.as_bytes());
        // A second job line gets the next VolSessionId and another key.
        let mut setup2 = None;
        let r2 = JobReply::parse(&sd.job_command(
            &line.replace("Back.2026", "Other.2026"),
            Generation::V96,
            &mut setup2,
        ))
        .unwrap();
        assert_eq!(r2.sd_id, 2);
        assert_ne!(r2.authorization, r.authorization);
        assert!(sd
            .job_command("JobId=x", Generation::V96, &mut None)
            .starts_with("3915 Bad Job command."));
        assert_eq!(level_name('F'), "Full");
        assert!(running_job_lines(&job)[0].starts_with("Writing: Full Backup job Back JobId=3"));
    }

    #[test]
    fn status_layout() {
        let sd = sd();
        let text = sd.status_lines().concat();
        assert!(text.starts_with("\ntest-sd Version: "), "{text}");
        assert!(text.contains("(baculink)"));
        assert!(text.contains(". Jobs: run=0, running=0.\n"));
        assert!(text.contains(" Res: ndevices=1 nautochgr=0\n"));
        assert!(text.contains("\nRunning Jobs:\nNo Jobs running.\n====\n"));
        assert!(text.contains("\nDevice File: \"FileStorage\" (/tmp) is not open.\n"));
        assert!(text.contains("\nConnections:\nNo connections.\n====\n"));
        assert_eq!(
            sd.dot_status(&["current", "api=2"]),
            vec!["3000 OK .status\n"]
        );
        assert!(sd.dot_status(&["bogus"])[0].starts_with("3900 "));
        assert!(sd.dot_status(&["header"])[0].contains("name=test-sd\n"));
        assert_eq!(sd.dot_status(&["devices", "device=nope"]).len(), 0);
    }
}
