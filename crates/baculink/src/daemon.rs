//! What every daemon shares: Bacula's flags (`-c -f -d -t`), listening,
//! per-connection tasks with a login timeout, pid files, SIGTERM / SIGHUP,
//! TLS contexts that SIGHUP reloads, and the registry of live links whose
//! TLS facts every `status` prints.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use baculink_conf::tls::TlsRole;
use baculink_conf::TlsSettings;
use baculink_net::{BSock, NetError, Peer};
use baculink_proto::negotiate::{Dialect, Mode};
use baculink_tls::{CertContext, SessionFacts};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::cli::DaemonFlags;
use crate::login;

/// Default limit for a peer to finish its login (Bacula has 600 s for
/// daemons and none for consoles; a connection that sends nothing or half a
/// Hello is closed after this).
pub const DEFAULT_AUTH_TIMEOUT: Duration = Duration::from_secs(60);

/// A daemon `run` can drive.
pub trait Daemon: Send + Sync + Sized + 'static {
    /// `dir`, `fd` or `sd` (pid file names and logs).
    const KIND: &'static str;
    /// Loads the config, checks it and builds every TLS context. Errors
    /// name the file and line or the resource.
    fn load(path: &Path, auth_timeout: Duration) -> Result<Self, String>;
    /// Addresses to listen on.
    fn listen(&self) -> Vec<SocketAddr>;
    /// Where the pid file goes (the config's Pid Directory).
    fn pid_directory(&self) -> Option<PathBuf>;
    /// The daemon's TLS contexts (SIGHUP reloads them).
    fn certs(&self) -> &CertStore;
    /// Serves one accepted connection (login included).
    fn handle(self: Arc<Self>, tcp: TcpStream, addr: SocketAddr)
        -> impl Future<Output = ()> + Send;
}

/// Connections the kernel queues for a listener before `accept`. tokio's
/// default (1024) overflowed under the hostile-load test's churn of several
/// thousand connections a second: the kernel then drops SYNs, and a
/// legitimate client waits a second for its retransmission. The kernel caps
/// it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds a daemon's listening socket (SO_REUSEADDR, as `TcpListener::bind`).
fn bind_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Runs a daemon with Bacula's flags until SIGTERM / SIGINT.
pub async fn run<D: Daemon>(flags: DaemonFlags) -> ExitCode {
    let timeout = flags
        .auth_timeout
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_AUTH_TIMEOUT);
    // The generic view of the config: FIPS before any TLS context is built,
    // and the per-address login cap. A config that does not load is
    // reported by D::load with file:line.
    let generic = baculink_conf::load_any(&flags.config).ok().map(|(c, _)| c);
    if let Some(conf) = &generic {
        if let Err(e) = login::require_fips_for(conf, &flags.config) {
            eprintln!("baculink {}: {e}", D::KIND);
            return ExitCode::from(1);
        }
    }
    let daemon = match D::load(&flags.config, timeout) {
        Ok(d) => Arc::new(d),
        Err(e) => {
            eprintln!("baculink {}: {e}", D::KIND);
            return ExitCode::from(1);
        }
    };
    if flags.test {
        return ExitCode::SUCCESS;
    }
    let mut listeners = Vec::new();
    for addr in daemon.listen() {
        match bind_listener(addr) {
            Ok(l) => {
                info!(
                    "{} listening on {addr} ({})",
                    D::KIND,
                    baculink_tls::engine()
                );
                listeners.push(l);
            }
            Err(e) => {
                eprintln!("baculink {}: cannot listen on {addr}: {e}", D::KIND);
                return ExitCode::from(1);
            }
        }
    }
    let pid_file = daemon.pid_directory().and_then(|dir| {
        let port = daemon.listen().first().map(|a| a.port()).unwrap_or(0);
        let p = dir.join(format!("baculink-{}.{port}.pid", D::KIND));
        match std::fs::write(&p, format!("{}\n", std::process::id())) {
            Ok(()) => Some(p),
            Err(e) => {
                warn!("cannot write pid file {}: {e}", p.display());
                None
            }
        }
    });
    let limiter = Arc::new(PendingLimiter::new(max_unauthenticated(generic.as_ref())));
    let mut tasks = Vec::new();
    for l in listeners {
        let d = daemon.clone();
        let limiter = limiter.clone();
        tasks.push(tokio::spawn(serve(l, move |tcp, addr| {
            let d = d.clone();
            let slot = limiter.try_acquire(addr.ip());
            async move {
                // Too many logins in progress from this address: close at once.
                let Some(slot) = slot else { return };
                PENDING
                    .scope(RefCell::new(Some(slot)), d.handle(tcp, addr))
                    .await
            }
        })));
    }
    let code = wait_for_signals(daemon.certs()).await;
    for t in tasks {
        t.abort();
    }
    if let Some(p) = pid_file {
        let _ = std::fs::remove_file(p);
    }
    code
}

/// `Maximum Unauthenticated Connections` of the daemon's own resource.
fn max_unauthenticated(conf: Option<&baculink_conf::AnyConfig>) -> usize {
    use baculink_conf::AnyConfig;
    let n = match conf {
        Some(AnyConfig::Director(c)) => c.director.daemon.max_unauthenticated,
        Some(AnyConfig::FileDaemon(c)) => c.file_daemon.daemon.max_unauthenticated,
        Some(AnyConfig::Storage(c)) => c.storage.daemon.max_unauthenticated,
        _ => baculink_conf::dir::DEFAULT_MAX_UNAUTHENTICATED,
    };
    n.max(1) as usize
}

tokio::task_local! {
    /// The login slot of the connection this task serves; released when the
    /// peer authenticates ([`Links::add`]) or the connection ends.
    static PENDING: RefCell<Option<PendingSlot>>;
}

/// Per-source-address limit on logins in progress, so one address cannot
/// hold every socket of a daemon with connections that never authenticate.
/// It serialises nothing: each check is a short map update.
pub struct PendingLimiter {
    per_address: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
    refused: AtomicU64,
}

/// One login in progress; dropping it frees the slot.
pub struct PendingSlot {
    limiter: Arc<PendingLimiter>,
    ip: IpAddr,
}

impl PendingLimiter {
    /// A limiter allowing `per_address` logins in progress per address.
    pub fn new(per_address: usize) -> PendingLimiter {
        PendingLimiter {
            per_address,
            counts: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
        }
    }

    /// A slot for a new connection from `ip`, or None (logged, sparingly).
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<PendingSlot> {
        let mut counts = self.counts.lock().ok()?;
        let n = counts.entry(ip).or_insert(0);
        if *n >= self.per_address {
            let refused = self.refused.fetch_add(1, Ordering::Relaxed);
            if refused.is_multiple_of(1000) {
                warn!(
                    "{ip} already has {} logins in progress (Maximum Unauthenticated Connections); \
                     closing new connections from it ({} refused so far)",
                    self.per_address,
                    refused + 1
                );
            }
            return None;
        }
        *n += 1;
        Some(PendingSlot {
            limiter: self.clone(),
            ip,
        })
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.limiter.counts.lock() {
            if let Some(n) = counts.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&self.ip);
                }
            }
        }
    }
}

/// Marks this task's connection as authenticated: its login slot is freed.
pub fn login_done() {
    let _ = PENDING.try_with(|slot| slot.borrow_mut().take());
}

/// Accepts connections forever, one task each; a failing accept never stops the loop.
pub async fn serve<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((tcp, addr)) => {
                let _ = tcp.set_nodelay(true);
                tokio::spawn(handler(tcp, addr));
            }
            Err(e) => {
                // Out of descriptors and the like: back off, keep serving.
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn wait_for_signals(certs: &CertStore) -> ExitCode {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        error!("cannot install signal handlers");
        return ExitCode::from(1);
    };
    loop {
        tokio::select! {
            _ = term.recv() => { info!("SIGTERM: shutting down"); return ExitCode::SUCCESS; }
            _ = tokio::signal::ctrl_c() => { info!("SIGINT: shutting down"); return ExitCode::SUCCESS; }
            _ = hup.recv() => match certs.reload() {
                Ok(n) => info!("SIGHUP: reloaded {n} TLS context(s); new connections use them"),
                Err(e) => error!("SIGHUP: TLS reload failed, keeping the previous contexts: {e}"),
            },
        }
    }
}

/// The certificate contexts of a daemon's resources, keyed like
/// `Director/bacula-dir`; rebuilt all-or-nothing on SIGHUP.
#[derive(Default)]
pub struct CertStore {
    specs: Vec<(String, TlsSettings, TlsRole)>,
    contexts: RwLock<HashMap<String, Option<Arc<CertContext>>>>,
}

impl CertStore {
    /// Builds every context; the error names the resource and the file.
    pub fn build(specs: Vec<(String, TlsSettings, TlsRole)>) -> Result<CertStore, String> {
        let contexts = Self::make(&specs)?;
        Ok(CertStore {
            specs,
            contexts: RwLock::new(contexts),
        })
    }

    fn make(
        specs: &[(String, TlsSettings, TlsRole)],
    ) -> Result<HashMap<String, Option<Arc<CertContext>>>, String> {
        let mut out = HashMap::new();
        for (key, tls, role) in specs {
            if tls.psk_enable {
                // Builds (and caches) the resource's PSK context: its TLS
                // Protocol / Cipher Suites are checked at start, not at login.
                baculink_tls::PskContext::for_settings(tls).map_err(|e| format!("{key}: {e}"))?;
            }
            let ctx = login::cert_context(tls, *role).map_err(|e| format!("{key}: {e}"))?;
            out.insert(key.clone(), ctx);
        }
        Ok(out)
    }

    /// The context of a resource (None: no certificate TLS configured).
    pub fn get(&self, key: &str) -> Option<Arc<CertContext>> {
        self.contexts.read().ok()?.get(key).cloned().flatten()
    }

    /// Re-reads every certificate, key, CA and DH file; keeps the old
    /// contexts if any fails. Returns how many contexts were built.
    pub fn reload(&self) -> Result<usize, String> {
        let fresh = Self::make(&self.specs)?;
        let n = fresh.values().filter(|c| c.is_some()).count();
        if let Ok(mut c) = self.contexts.write() {
            *c = fresh;
        }
        Ok(n)
    }
}

/// One live connection, for `status`.
#[derive(Clone, Debug)]
pub struct Link {
    id: u64,
    /// What the peer is: `Console`, `Director`, `File daemon`, `Storage daemon`.
    pub role: &'static str,
    /// How we name it (class, name, address).
    pub label: String,
    /// Its address.
    pub addr: Option<SocketAddr>,
    /// The dialect it spoke.
    pub dialect: Dialect,
    /// Protection now.
    pub mode: Mode,
    /// Protection of the login (differs after TLS Authenticate).
    pub login_mode: Mode,
    /// TLS facts.
    pub facts: Option<SessionFacts>,
    /// When it logged in.
    pub since: SystemTime,
    /// True when we connected out.
    pub outgoing: bool,
}

/// The live links of a daemon.
#[derive(Default)]
pub struct Links {
    list: Mutex<Vec<Link>>,
    next: AtomicU64,
}

/// Removes its link from the registry when dropped.
pub struct LinkGuard {
    links: Arc<Links>,
    id: u64,
}

impl Drop for LinkGuard {
    fn drop(&mut self) {
        if let Ok(mut l) = self.links.list.lock() {
            l.retain(|x| x.id != self.id);
        }
    }
}

impl Links {
    /// Registers an authenticated peer until the guard drops.
    pub fn add(self: &Arc<Self>, peer: &Peer, role: &'static str, outgoing: bool) -> LinkGuard {
        if !outgoing {
            login_done();
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let link = Link {
            id,
            role,
            label: peer.label.clone(),
            addr: peer.addr,
            dialect: peer.established.peer_dialect,
            mode: peer.established.mode,
            login_mode: peer.established.login_mode,
            facts: peer.tls.clone().or_else(|| peer.login_tls.clone()),
            since: SystemTime::now(),
            outgoing,
        };
        if let Ok(mut l) = self.list.lock() {
            l.push(link);
        }
        LinkGuard {
            links: self.clone(),
            id,
        }
    }

    /// The links now.
    pub fn snapshot(&self) -> Vec<Link> {
        self.list.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The links with this role.
    pub fn count(&self, role: &str) -> usize {
        self.snapshot().iter().filter(|l| l.role == role).count()
    }

    /// The `status` section that lists every live link with its TLS facts.
    pub fn status_lines(&self) -> Vec<String> {
        let links = self.snapshot();
        let mut out = vec!["\nConnections:\n".to_string()];
        if links.is_empty() {
            out.push("No connections.\n".into());
        }
        for l in &links {
            out.push(format!(" {}\n", describe_link(l)));
        }
        out.push("====\n".into());
        out
    }
}

/// What [`next_or_flush`] got.
pub enum Next<T> {
    /// An item the worker queued.
    Item(T),
    /// The worker is done (the channel is closed and empty).
    Closed,
    /// The job was canceled while nothing was queued.
    Canceled,
}

/// The next item a worker thread queued for a data connection that is fed
/// with [`BSock::feed`]. When nothing is queued, what was fed goes out
/// first: the peer must not wait on our buffer while we wait on the worker.
/// `canceled` resolves when the job is canceled.
pub async fn next_or_flush<T>(
    rx: &mut mpsc::Receiver<T>,
    sock: &mut BSock,
    canceled: impl Future,
) -> Result<Next<T>, NetError> {
    match rx.try_recv() {
        Ok(item) => return Ok(Next::Item(item)),
        Err(mpsc::error::TryRecvError::Disconnected) => return Ok(Next::Closed),
        Err(mpsc::error::TryRecvError::Empty) => {}
    }
    sock.flush().await?;
    tokio::select! {
        biased;
        _ = canceled => Ok(Next::Canceled),
        item = rx.recv() => Ok(item.map_or(Next::Closed, Next::Item)),
    }
}

/// One line describing a live link's security, the same in every `status`:
/// peer, address, dialect, mode, TLS version and suite, certificate subject
/// and days until it expires.
pub fn describe_link(l: &Link) -> String {
    let dir = if l.outgoing { "to" } else { "from" };
    let mode = match l.mode {
        Mode::Clear if l.login_mode != Mode::Clear => {
            format!("clear (login in {})", mode_words(l.login_mode))
        }
        m => mode_words(m).to_string(),
    };
    let mut s = format!("{dir} {}: dialect {}, {mode}", l.label, l.dialect);
    if let Some(f) = &l.facts {
        s.push_str(&tls_words(f));
        if let Some(d) = f.peer_days_left {
            s.push_str(&format!(", expires in {d} days"));
        }
    }
    s
}

/// `, TLSv1.3 TLS_AES_128_GCM_SHA256[, peer certificate "SUBJECT"]`: the
/// facts of a TLS session as every status line and job message shows them.
pub fn tls_words(f: &SessionFacts) -> String {
    let mut s = format!(", {} {}", f.version, f.cipher);
    if let Some(sub) = &f.peer_subject {
        s.push_str(&format!(", peer certificate \"{sub}\""));
    }
    s
}

/// `clear`, `certificate TLS` or `TLS-PSK`.
pub fn mode_words(m: Mode) -> &'static str {
    match m {
        Mode::Clear => "clear",
        Mode::Tls => "certificate TLS",
        Mode::Psk => "TLS-PSK",
    }
}

/// `dd-Mon-yy HH:MM` in UTC, Bacula's short time format.
pub fn bacula_time(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let (y, m, d) = civil_from_days(days);
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{d:02}-{}-{:02} {:02}:{:02}",
        MON[(m - 1) as usize],
        y % 100,
        (secs % 86_400) / 3600,
        (secs % 3600) / 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Resolves a config address (`127.0.0.1`, `localhost`, empty = any) and port.
pub fn socket_addrs(address: Option<&str>, port: u16) -> Result<Vec<SocketAddr>, String> {
    use std::net::ToSocketAddrs;
    let host = address.unwrap_or("0.0.0.0");
    (host, port)
        .to_socket_addrs()
        .map(|a| a.take(1).collect())
        .map_err(|e| format!("cannot resolve {host}:{port}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bacula_time_format() {
        // 2026-11-29 06:43 UTC
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_934_580);
        assert_eq!(bacula_time(t), "29-Nov-26 06:43");
        assert_eq!(bacula_time(SystemTime::UNIX_EPOCH), "01-Jan-70 00:00");
    }
}
