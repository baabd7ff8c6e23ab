//! `baculink sd`: the Storage daemon. One port serves both Directors (the
//! Director resource of that name, matched case-insensitively, with its own
//! password and TLS) and file daemons opening a job's data channel (the job's
//! session key, with the Storage resource's TLS). The Hello decides which.
//!
//! Directors get `status` and `.status`; the data channel is authenticated
//! completely (session key, TLS or TLS-PSK, `3000 OK Hello 30007`) but its
//! append / read sessions are not implemented yet.
//!
//! Test hook: when `BACULINK_TEST_JOB="job:key[,job:key...]"` is set at start
//! the SD pre-registers those jobs (what the Director's job setup does
//! otherwise), so a test can log in on the data channel.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use baculink_conf::sd::Device;
use baculink_conf::tls::TlsRole;
use baculink_conf::SdConfig;
use baculink_net::{BSock, LoginError, NetError, Peer, PeerSetup, ServerSetup};
use baculink_proto::frame::{Packet, Signal};
use baculink_proto::handshake::{RefusalReason, ServerConfig, ServerKind};
use baculink_proto::hello::{self, Hello};
use baculink_proto::negotiate::Dialect;
use baculink_proto::scan::c_text;
use baculink_proto::Secret;
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

use crate::daemon::{self, bacula_time, describe_link, mode_words, CertStore, Daemon, Links};
use crate::login;

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
}

/// Who a Hello turned out to be.
enum Caller {
    Director { monitor: bool },
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
        let sd = StorageDaemon {
            conf,
            certs,
            links: Arc::new(Links::default()),
            jobs: Mutex::new(HashMap::new()),
            started: SystemTime::now(),
            auth_timeout,
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
        for (host, port) in self.conf.storage.listen() {
            match daemon::socket_addrs(host.as_deref(), port) {
                Ok(a) => out.extend(a),
                Err(e) => warn!("{e}"),
            }
        }
        out
    }

    fn pid_directory(&self) -> Option<PathBuf> {
        self.conf.storage.pid_directory.clone()
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
            Some(Caller::Director { monitor }) => self.director_session(sock, peer, monitor).await,
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
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.insert(
                job.to_string(),
                JobEntry {
                    key,
                    authenticated: false,
                    registered: SystemTime::now(),
                },
            );
        }
    }

    /// Forgets a job (its data channel can no longer log in). True if it existed.
    #[allow(dead_code)] // called by the Director's job commands (next step)
    pub fn remove_job(&self, job: &str) -> bool {
        self.jobs
            .lock()
            .map(|mut j| j.remove(job).is_some())
            .unwrap_or(false)
    }

    /// The registered jobs: name, whether a client authenticated, since when.
    pub fn jobs(&self) -> Vec<(String, bool, SystemTime)> {
        let mut v: Vec<_> = self
            .jobs
            .lock()
            .map(|j| {
                j.iter()
                    .map(|(k, e)| (k.clone(), e.authenticated, e.registered))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
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
            Hello::DirectorToSd { name, .. } => {
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
                Some((setup, Caller::Director { monitor: d.monitor }))
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

    async fn director_session(&self, mut sock: BSock, peer: Peer, monitor: bool) {
        info!(
            "{} logged in ({}, {})",
            peer.label,
            peer.established.peer_dialect,
            mode_words(peer.established.mode)
        );
        let _link = self.links.add(&peer, "Director", false);
        if let Err(e) = self.command_loop(&mut sock, monitor).await {
            debug!("{}: {e}", peer.label);
        }
        info!("{} disconnected", peer.label);
        sock.close().await;
    }

    /// Director commands until TERMINATE or EOF.
    async fn command_loop(&self, sock: &mut BSock, monitor: bool) -> Result<(), NetError> {
        loop {
            let cmd = match sock.recv().await {
                Ok(Packet::Data(d)) => c_text(&d).trim().to_string(),
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
            let mut words = cmd.split_whitespace();
            let word = words.next().unwrap_or("");
            let args: Vec<&str> = words.collect();
            debug!("Director command {word:?}");
            match word {
                "status" => {
                    for line in self.status_lines() {
                        send_line(sock, &line).await?;
                    }
                }
                ".status" => {
                    for line in self.dot_status(&args) {
                        send_line(sock, &line).await?;
                    }
                }
                _ if monitor => {
                    sock.send_text(
                        "3997 Invalid command for a Director with Monitor directive enabled.\n",
                    )
                    .await?
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

    /// The data channel after a successful login: claims the job, then keeps
    /// the socket until EOF / TERMINATE (sessions are not implemented yet).
    async fn client_session(&self, mut sock: BSock, peer: Peer, job: String) {
        let claimed = self
            .jobs
            .lock()
            .map(|mut jobs| match jobs.get_mut(&job) {
                Some(e) if !e.authenticated => {
                    e.authenticated = true;
                    true
                }
                _ => false,
            })
            .unwrap_or(false);
        if !claimed {
            warn!(
                "{}: job is gone or another client authenticated first; connection closed",
                peer.label
            );
            sock.close().await;
            return;
        }
        info!(
            "{} logged in ({}, {})",
            peer.label,
            peer.established.peer_dialect,
            mode_words(peer.established.mode)
        );
        let _link = self.links.add(&peer, "File daemon", false);
        let r: Result<(), NetError> = async {
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
                            "3903 baculink storage daemon: data channel command \"{word}\" is \
                             not supported yet (append/read sessions are not implemented)\n"
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
        .await;
        if let Err(e) = r {
            debug!("{}: {e}", peer.label);
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
        let jobs = self.jobs();
        let running = jobs.iter().filter(|j| j.1).count();
        let mut out = vec![
            "\n".to_string(),
            format!("{} Version: {} {}\n", self.name(), version_text(), uname()),
            format!(
                "Daemon started {}. Jobs: run=0, running={running}.\n",
                bacula_time(self.started)
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
        for (name, authenticated, since) in &jobs {
            let state = if *authenticated {
                "File daemon connected"
            } else {
                "waiting for its File daemon"
            };
            out.push(format!(
                "Job {name} registered {}: {state}\n",
                bacula_time(*since)
            ));
        }
        out.push("====\n".into());
        out.push("\nJobs waiting to reserve a drive:\n".into());
        out.push("====\n".into());
        out.push("\nTerminated Jobs:\n".into());
        out.push("====\n".into());
        out.push("\nDevice status:\n".into());
        for d in &self.conf.devices {
            out.push(format!(
                "\nDevice {}: \"{}\" ({}) is not open.\n",
                device_type(d),
                d.name,
                d.archive_device
            ));
            out.push("==\n".into());
        }
        out.push("====\n\n".into());
        out.push("Used Volume status:\n".into());
        out.push("====\n\n".into());
        out.extend(self.links.status_lines());
        out
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
            "current" | "last" => vec!["3000 OK .status\n".into()],
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
            "terminated" | "volumes" | "spooling" => Vec::new(),
            "" => vec!["3900 Bad .status command, missing argument.\n".into()],
            other => vec![format!(
                "3900 Unknown .status target \"{other}\": use current, last, header, running, \
                 terminated, devices, volumes or spooling\n"
            )],
        }
    }
}

/// Status lines go out like Bacula's, with a trailing NUL counted.
async fn send_line(sock: &mut BSock, line: &str) -> Result<(), NetError> {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(0);
    sock.send(&Packet::data(&bytes)).await
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
        assert!(matches!(who, Caller::Director { monitor: false }));
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
