//! `baculink check`: loads a set of configuration files (any mix of
//! `bacula-dir.conf`, `bacula-fd.conf`, `bacula-sd.conf` and `bconsole.conf`)
//! and reports what does not fit together across them: names, ports,
//! passwords, TLS policies that can never agree, `TLS Allowed CN` lists that
//! do not name the peer's certificate, certificates the peer would not trust
//! or whose names do not cover the address it is reached at, and certificate
//! files that are missing, unreadable, expired or about to expire.
//!
//! One line per problem, naming the files, lines and resources on both
//! sides; passwords are compared as hashed secrets and never printed.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use baculink_conf::{
    validate_resource, AnyConfig, ConsoleConfig, DirectorConfig, FdConfig, SdConfig, TlsResource,
    TlsSettings,
};
use baculink_proto::negotiate::{decide, Fault, Mode, Need, Needs};
use baculink_tls::names;
use clap::Args;
use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::ssl::SslFiletype;
use openssl::stack::Stack;
use openssl::x509::store::{X509Lookup, X509StoreBuilder};
use openssl::x509::{X509StoreContext, X509};

/// `baculink check` arguments.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Configuration files: any mix of bacula-dir.conf, bacula-fd.conf,
    /// bacula-sd.conf and bconsole.conf (the kind is told from the contents).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Report certificates that expire within this many days.
    #[arg(long = "expiry-days", default_value_t = 30)]
    pub expiry_days: u32,
}

/// Runs `baculink check`: prints one line per problem and a summary; 0 if none, else 1.
pub fn main(args: CheckArgs) -> ExitCode {
    let mut report = Report::default();
    let mut set = ConfigSet::default();
    for path in &args.files {
        match baculink_conf::load_any(path) {
            Ok((cfg, warnings)) => {
                for w in warnings {
                    println!("warning: {w}");
                }
                tracing::debug!("{}: {}", path.display(), cfg.kind());
                set.add(cfg);
            }
            Err(e) => report.problem(format!("cannot load: {e}")),
        }
    }
    let mut checker = Checker {
        set: &set,
        report,
        certs: Certs::default(),
        expiry_days: args.expiry_days,
    };
    checker.run();
    let Checker { report, .. } = checker;
    for note in &report.notes {
        println!("note: {note}");
    }
    for p in &report.problems {
        println!("{p}");
    }
    let n = report.problems.len();
    println!(
        "checked {} file(s) ({} director, {} file daemon, {} storage daemon, {} console): {}",
        args.files.len(),
        set.dirs.len(),
        set.fds.len(),
        set.sds.len(),
        set.consoles.len(),
        match n {
            0 => "no problems found".to_string(),
            1 => "1 problem".to_string(),
            _ => format!("{n} problems"),
        }
    );
    if n == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The loaded configurations, by kind.
#[derive(Default)]
struct ConfigSet {
    dirs: Vec<DirectorConfig>,
    fds: Vec<FdConfig>,
    sds: Vec<SdConfig>,
    consoles: Vec<ConsoleConfig>,
}

impl ConfigSet {
    fn add(&mut self, cfg: AnyConfig) {
        match cfg {
            AnyConfig::Director(c) => self.dirs.push(c),
            AnyConfig::FileDaemon(c) => self.fds.push(c),
            AnyConfig::Storage(c) => self.sds.push(c),
            AnyConfig::Console(c) => self.consoles.push(c),
        }
    }

    fn tls_resources(&self) -> Vec<&dyn TlsResource> {
        let mut v: Vec<&dyn TlsResource> = Vec::new();
        self.dirs.iter().for_each(|c| v.extend(c.tls_resources()));
        self.fds.iter().for_each(|c| v.extend(c.tls_resources()));
        self.sds.iter().for_each(|c| v.extend(c.tls_resources()));
        self.consoles
            .iter()
            .for_each(|c| v.extend(c.tls_resources()));
        v
    }
}

/// Problems (each printed once, in the order found) and notes.
#[derive(Default)]
struct Report {
    problems: Vec<String>,
    seen: HashSet<String>,
    notes: Vec<String>,
}

impl Report {
    fn problem(&mut self, p: String) {
        if self.seen.insert(p.clone()) {
            self.problems.push(p);
        }
    }

    fn note(&mut self, n: String) {
        if self.seen.insert(n.clone()) {
            self.notes.push(n);
        }
    }
}

/// `file:line: Client "name"`.
fn label(r: &dyn TlsResource) -> String {
    format!("{}: {} \"{}\"", r.location(), r.resource_type(), r.name())
}

/// `bacula-dir.conf Client "name"`, for use inside a message.
fn short(r: &dyn TlsResource) -> String {
    let file = Path::new(&*r.location().file)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| r.location().file.to_string());
    format!("{file} {} \"{}\"", r.resource_type(), r.name())
}

/// Both sides of a connection, client first.
fn pair(a: &dyn TlsResource, b: &dyn TlsResource) -> String {
    format!("{} and {}", label(a), label(b))
}

fn quoted_list(v: &[String]) -> String {
    v.iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn yn(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn settings(t: &TlsSettings) -> String {
    format!(
        "TLS Enable = {}, TLS Require = {}, TLS PSK Enable = {}",
        yn(t.enable),
        yn(t.require),
        yn(t.psk_enable)
    )
}

/// The kinds of TLS a side requires, e.g. `certificate TLS or TLS-PSK`.
fn requires(n: Needs) -> String {
    let mut v = Vec::new();
    if n.cert == Need::Required {
        v.push("certificate TLS");
    }
    if n.psk == Need::Required {
        v.push("TLS-PSK");
    }
    v.join(" or ")
}

/// The kinds of TLS a side can do, or `no TLS`.
fn offers(n: Needs) -> String {
    let mut v = Vec::new();
    if n.cert >= Need::Ok {
        v.push("certificate TLS");
    }
    if n.psk >= Need::Ok {
        v.push("TLS-PSK");
    }
    if v.is_empty() {
        "no TLS".into()
    } else {
        v.join(" and ")
    }
}

/// Both parse as IP addresses (`localhost` counting as loopback) and differ.
fn hosts_differ(a: &str, b: &str) -> bool {
    let ip = |s: &str| -> Option<IpAddr> {
        if s.eq_ignore_ascii_case("localhost") {
            Some(IpAddr::from([127, 0, 0, 1]))
        } else {
            s.parse().ok()
        }
    };
    match (ip(a), ip(b)) {
        (Some(x), Some(y)) => x != y && !(x.is_loopback() && y.is_loopback()),
        _ => false,
    }
}

fn same_host(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || {
        let lo = |s: &str| {
            s.eq_ignore_ascii_case("localhost")
                || s.parse::<IpAddr>().is_ok_and(|i| i.is_loopback())
        };
        lo(a) && lo(b)
    }
}

/// How a peer configuration was found for a resource that connects to it.
enum Found<'a, T> {
    /// By name.
    Name(&'a T),
    /// By address and port (the names differ).
    Address(&'a T),
    /// Several configurations listen where the resource connects.
    Ambiguous(usize),
    /// None of the files given.
    None,
}

/// Finds the configuration a resource connecting to `address:port` under
/// `name` talks to: by name first, then by a listening address and port.
fn find<'a, T>(
    candidates: &'a [T],
    name_matches: impl Fn(&T) -> bool,
    listen: impl Fn(&T) -> Vec<(Option<String>, u16)>,
    address: Option<&str>,
    port: u16,
) -> Found<'a, T> {
    if let Some(c) = candidates.iter().find(|c| name_matches(c)) {
        return Found::Name(c);
    }
    let explicit: Vec<&T> = candidates
        .iter()
        .filter(|c| {
            listen(c).iter().any(|(h, p)| {
                *p == port && matches!((h, address), (Some(h), Some(a)) if same_host(h, a))
            })
        })
        .collect();
    let any: Vec<&T> = candidates
        .iter()
        .filter(|c| listen(c).iter().any(|(h, p)| *p == port && h.is_none()))
        .collect();
    match (explicit.as_slice(), any.as_slice()) {
        ([one], _) | ([], [one]) => Found::Address(one),
        ([], []) => Found::None,
        (e, a) => Found::Ambiguous(e.len().max(a.len())),
    }
}

/// Certificate files read once, by path.
#[derive(Default)]
struct Certs {
    files: HashMap<PathBuf, Result<Vec<X509>, String>>,
}

impl Certs {
    fn load(&mut self, path: &Path) -> &Result<Vec<X509>, String> {
        self.files.entry(path.to_path_buf()).or_insert_with(|| {
            let data = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
            let certs = X509::stack_from_pem(&data)
                .map_err(|e| format!("not a PEM certificate file: {e}"))?;
            if certs.is_empty() {
                return Err("contains no PEM certificate".into());
            }
            Ok(certs)
        })
    }

    /// The certificates of a file that loaded (None if it did not).
    fn get(&self, path: &Path) -> Option<&[X509]> {
        self.files.get(path)?.as_ref().ok().map(Vec::as_slice)
    }

    /// A resource's own certificate chain (leaf first), if configured and readable.
    fn chain<'s>(&'s self, tls: &'s TlsSettings) -> Option<(&'s Path, &'s [X509])> {
        let p = tls.certificate.as_deref()?;
        Some((p, self.get(p)?))
    }

    /// Whether `chain` verifies against the trust store of `tls` (CA file
    /// and/or hashed CA dir). None if no trust store could be built; expiry
    /// is not counted here (certificate files are checked on their own).
    fn verify(&self, chain: &[X509], tls: &TlsSettings) -> Option<Result<(), String>> {
        let (leaf, rest) = chain.split_first()?;
        let mut b = X509StoreBuilder::new().ok()?;
        let mut anchors = 0;
        if let Some(f) = &tls.ca_file {
            for c in self.get(f)? {
                // A CA file may repeat a certificate; duplicates are harmless.
                let _ = b.add_cert(c.clone());
                anchors += 1;
            }
        }
        if let Some(d) = &tls.ca_dir {
            let lookup = b.add_lookup(X509Lookup::hash_dir()).ok()?;
            lookup.add_dir(d.to_str()?, SslFiletype::PEM).ok()?;
            anchors += 1;
        }
        if anchors == 0 {
            return None;
        }
        let store = b.build();
        let mut untrusted = Stack::new().ok()?;
        for c in rest {
            untrusted.push(c.clone()).ok()?;
        }
        let mut ctx = X509StoreContext::new().ok()?;
        let result = ctx
            .init(&store, leaf, &untrusted, |c| {
                c.verify_cert()?;
                Ok(c.error())
            })
            .ok()?;
        // 9 = not yet valid, 10 = expired: reported by the file check.
        match result.as_raw() {
            0 | 9 | 10 => Some(Ok(())),
            _ => Some(Err(result.error_string().to_string())),
        }
    }
}

fn cert_names(c: &X509) -> String {
    let v = names::describe_names(c);
    if v.is_empty() {
        "no names".into()
    } else {
        v.join(", ")
    }
}

struct Checker<'a> {
    set: &'a ConfigSet,
    report: Report,
    certs: Certs,
    expiry_days: u32,
}

impl<'a> Checker<'a> {
    fn run(&mut self) {
        let set = self.set;
        for r in set.tls_resources() {
            if let Err(e) = validate_resource(r) {
                self.report.problem(e.to_string());
            }
        }
        self.check_files();
        let mut client_links = Vec::new();
        let mut storage_links = Vec::new();
        for d in &set.dirs {
            for c in &d.clients {
                if let Some(fd) = self.check_client(d, c) {
                    client_links.push((c, fd));
                }
            }
            for s in &d.storages {
                if let Some(sd) = self.check_storage(d, s) {
                    storage_links.push((s, sd));
                }
            }
        }
        for con in &set.consoles {
            for b in &con.directors {
                self.check_console(con, b);
            }
        }
        // Job data channel: the FD's FileDaemon (TLS client) to the SD's Storage.
        for fd in &set.fds {
            for sd in &set.sds {
                let host = client_links
                    .iter()
                    .filter(|(_, f)| std::ptr::eq(*f, fd))
                    .find_map(|(c, _)| {
                        storage_links
                            .iter()
                            .find(|(_, s)| std::ptr::eq(*s, sd))
                            .map(|(s, _)| {
                                c.fd_storage_address
                                    .clone()
                                    .or_else(|| s.fd_storage_address.clone())
                                    .unwrap_or_else(|| s.address.clone())
                            })
                    });
                self.check_link(&fd.file_daemon, &sd.storage, host.as_deref());
            }
        }
    }

    /// (f) Every file named by a TLS directive: readable; certificates parse
    /// and are neither expired nor about to expire; DH parameters are usable.
    fn check_files(&mut self) {
        let mut refs: Vec<(PathBuf, &'static str, &dyn TlsResource)> = Vec::new();
        for r in self.set.tls_resources() {
            let t = r.tls();
            for (p, what) in [
                (&t.ca_file, "TLS CA Certificate File"),
                (&t.certificate, "TLS Certificate"),
                (&t.key, "TLS Key"),
                (&t.dh_file, "TLS DH File"),
                (&t.ca_dir, "TLS CA Certificate Dir"),
            ] {
                if let Some(p) = p {
                    refs.push((p.clone(), what, r));
                }
            }
        }
        let mut done: HashSet<(PathBuf, &str)> = HashSet::new();
        for (i, (path, what, r)) in refs.iter().enumerate() {
            if !done.insert((path.clone(), what)) {
                continue;
            }
            let others = refs[i + 1..]
                .iter()
                .filter(|(p, w, _)| p == path && w == what)
                .count();
            let also = match others {
                0 => String::new(),
                1 => " (also used by 1 other resource)".into(),
                n => format!(" (also used by {n} other resources)"),
            };
            let head = format!("{}: {what} {}", label(*r), path.display());
            for issue in self.file_issues(path, what) {
                self.report.problem(format!("{head}: {issue}{also}"));
            }
        }
    }

    fn file_issues(&mut self, path: &Path, what: &str) -> Vec<String> {
        match what {
            "TLS CA Certificate Dir" => {
                if path.is_dir() {
                    vec![]
                } else {
                    vec!["is not a directory".into()]
                }
            }
            "TLS Key" => match std::fs::read(path) {
                Ok(_) => vec![],
                Err(e) => vec![format!("cannot read: {e}")],
            },
            "TLS DH File" => match std::fs::read(path) {
                Err(e) => vec![format!("cannot read: {e}")],
                Ok(pem) => match openssl::dh::Dh::params_from_pem(&pem) {
                    Err(_) => vec!["not PEM DH parameters".into()],
                    Ok(dh) if dh.prime_p().num_bits() < 2048 => vec![format!(
                        "DH parameters of {} bits; at least 2048 are required",
                        dh.prime_p().num_bits()
                    )],
                    Ok(_) => vec![],
                },
            },
            _ => {
                let days = self.expiry_days;
                match self.certs.load(path) {
                    Err(e) => vec![e.clone()],
                    Ok(certs) => certs.iter().filter_map(|c| expiry(c, days)).collect(),
                }
            }
        }
    }

    /// (a) A Director's Client against the file daemon's configuration.
    fn check_client(
        &mut self,
        d: &'a DirectorConfig,
        c: &'a baculink_conf::dir::Client,
    ) -> Option<&'a FdConfig> {
        let fd = match find(
            &self.set.fds,
            |f| f.file_daemon.name == c.name,
            |f| f.file_daemon.daemon.listen(),
            Some(&c.address),
            c.port,
        ) {
            Found::Name(f) | Found::Address(f) => f,
            Found::Ambiguous(n) => {
                self.report.note(format!(
                    "{}: {n} file daemon configurations listen on port {}; not checked",
                    label(c),
                    c.port
                ));
                return None;
            }
            Found::None => {
                if !self.set.fds.is_empty() {
                    self.report.note(format!(
                        "{}: no file daemon configuration given has this name or listens on \
                         {}:{}; not checked",
                        label(c),
                        c.address,
                        c.port
                    ));
                }
                return None;
            }
        };
        self.check_listen(
            c,
            &fd.file_daemon,
            &c.address,
            c.port,
            fd.file_daemon.daemon.listen(),
        );
        let Some(fdd) = fd.director(&d.director.name) else {
            self.report.problem(format!(
                "{}: the file daemon has no Director resource named \"{}\" (it has {}), so it \
                 refuses the Director",
                pair(c, &fd.file_daemon),
                d.director.name,
                quoted_list(
                    &fd.directors
                        .iter()
                        .map(|x| x.name.clone())
                        .collect::<Vec<_>>()
                )
            ));
            return Some(fd);
        };
        if c.password != fdd.password {
            self.report.problem(format!(
                "{}: passwords differ (the Client's Password must equal the file daemon's \
                 Director Password)",
                pair(c, fdd)
            ));
        }
        self.check_link(c, fdd, Some(&c.address));
        Some(fd)
    }

    /// (b) A Director's Storage against the storage daemon's configuration.
    fn check_storage(
        &mut self,
        d: &'a DirectorConfig,
        s: &'a baculink_conf::dir::Storage,
    ) -> Option<&'a SdConfig> {
        let sd = match find(
            &self.set.sds,
            |x| x.storage.name.eq_ignore_ascii_case(&s.name),
            |x| x.storage.daemon.listen(),
            Some(&s.address),
            s.port,
        ) {
            Found::Name(x) | Found::Address(x) => x,
            Found::Ambiguous(n) => {
                self.report.note(format!(
                    "{}: {n} storage daemon configurations listen on port {}; not checked",
                    label(s),
                    s.port
                ));
                return None;
            }
            Found::None => {
                if !self.set.sds.is_empty() {
                    self.report.note(format!(
                        "{}: no storage daemon configuration given has this name or listens on \
                         {}:{}; not checked",
                        label(s),
                        s.address,
                        s.port
                    ));
                }
                return None;
            }
        };
        self.check_listen(
            s,
            &sd.storage,
            &s.address,
            s.port,
            sd.storage.daemon.listen(),
        );
        // The storage daemon looks the Director up case-insensitively.
        let sdd = sd
            .directors
            .iter()
            .find(|x| x.name.eq_ignore_ascii_case(&d.director.name));
        let Some(sdd) = sdd else {
            self.report.problem(format!(
                "{}: the storage daemon has no Director resource named \"{}\" (it has {}), so it \
                 refuses the Director",
                pair(s, &sd.storage),
                d.director.name,
                quoted_list(
                    &sd.directors
                        .iter()
                        .map(|x| x.name.clone())
                        .collect::<Vec<_>>()
                )
            ));
            return Some(sd);
        };
        if s.password != sdd.password {
            self.report.problem(format!(
                "{}: passwords differ (the Storage's Password must equal the storage daemon's \
                 Director Password)",
                pair(s, sdd)
            ));
        }
        for dev in &s.devices {
            let media = if let Some(x) = sd.device(dev) {
                Some(x.media_type.clone())
            } else if let Some(a) = sd.autochanger(dev) {
                a.devices
                    .first()
                    .and_then(|n| sd.device(n))
                    .map(|x| x.media_type.clone())
            } else {
                self.report.problem(format!(
                    "{}: Device \"{dev}\" is not defined in the storage daemon's configuration",
                    pair(s, &sd.storage)
                ));
                continue;
            };
            if let Some(m) = media {
                if m != s.media_type {
                    self.report.problem(format!(
                        "{}: Media Type \"{}\" differs from Device \"{dev}\"'s Media Type \"{m}\"",
                        pair(s, &sd.storage),
                        s.media_type
                    ));
                }
            }
        }
        self.check_link(s, sdd, Some(&s.address));
        Some(sd)
    }

    /// (c) A bconsole Director resource against the Director's configuration.
    fn check_console(&mut self, con: &'a ConsoleConfig, b: &'a baculink_conf::console::Director) {
        let d = match find(
            &self.set.dirs,
            |d| d.director.name == b.name,
            |d| d.director.daemon.listen(),
            b.address.as_deref(),
            b.port,
        ) {
            Found::Name(d) => d,
            Found::Address(d) => {
                self.report.problem(format!(
                    "{}: the console's Director Name differs from the Director's Name \"{}\"",
                    pair(b, &d.director),
                    d.director.name
                ));
                d
            }
            Found::Ambiguous(n) => {
                self.report.note(format!(
                    "{}: {n} Director configurations listen on port {}; not checked",
                    label(b),
                    b.port
                ));
                return;
            }
            Found::None => {
                if !self.set.dirs.is_empty() {
                    self.report.note(format!(
                        "{}: no Director configuration given has this name or listens on port \
                         {}; not checked",
                        label(b),
                        b.port
                    ));
                }
                return;
            }
        };
        let address = b.address.clone().unwrap_or_else(|| "localhost".into());
        self.check_listen(b, &d.director, &address, b.port, d.director.daemon.listen());
        // bconsole logs in with a Console resource for this Director if it has one.
        let mut named: Vec<&baculink_conf::console::Console> = con
            .consoles
            .iter()
            .filter(|c| c.director.as_deref() == Some(b.name.as_str()))
            .collect();
        if named.is_empty() {
            named.extend(con.console_for(&b.name));
        }
        if named.is_empty() {
            if b.password != d.director.password {
                self.report.problem(format!(
                    "{}: passwords differ (the console's Director Password must equal the \
                     Director's Password)",
                    pair(b, &d.director)
                ));
            }
            self.check_link(b, &d.director, b.address.as_deref());
            return;
        }
        for cc in named {
            let Some(dc) = d.console(&cc.name) else {
                self.report.problem(format!(
                    "{}: the Director has no Console resource named \"{}\", so it refuses this \
                     console",
                    pair(cc, &d.director),
                    cc.name
                ));
                continue;
            };
            if cc.password != dc.password {
                self.report.problem(format!(
                    "{}: passwords differ (the console's Console Password must equal the \
                     Director's Console Password)",
                    pair(cc, dc)
                ));
            }
            self.check_link(cc, dc, b.address.as_deref());
        }
    }

    /// The port (and, when both are IP addresses, the address) a client
    /// connects to must be one the server listens on.
    fn check_listen(
        &mut self,
        client: &dyn TlsResource,
        server: &dyn TlsResource,
        address: &str,
        port: u16,
        listen: Vec<(Option<String>, u16)>,
    ) {
        let ports: Vec<u16> = listen.iter().map(|(_, p)| *p).collect();
        if !ports.contains(&port) {
            self.report.problem(format!(
                "{}: connects to port {port}, but {} listens on port {}",
                pair(client, server),
                short(server),
                ports
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            return;
        }
        let on_port: Vec<&Option<String>> = listen
            .iter()
            .filter(|(_, p)| *p == port)
            .map(|(h, _)| h)
            .collect();
        let all_differ = on_port
            .iter()
            .all(|h| h.as_deref().is_some_and(|h| hosts_differ(h, address)));
        if all_differ {
            self.report.problem(format!(
                "{}: connects to {address}:{port}, but {} listens only on {}",
                pair(client, server),
                short(server),
                on_port
                    .iter()
                    .filter_map(|h| h.as_deref())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }

    /// (d), (e) One connection: `client` connects to `server` at `host`.
    fn check_link(
        &mut self,
        client: &dyn TlsResource,
        server: &dyn TlsResource,
        host: Option<&str>,
    ) {
        let (ct, st) = (client.tls(), server.tls());
        let local = ct.policy(client.tls_role()).needs();
        let remote = st.policy(server.tls_role()).needs();
        let mode = match decide(local, remote) {
            Ok(m) => m,
            Err(m) => {
                let c_req = format!(
                    "{} requires {}, {} offers {} ({})",
                    short(client),
                    requires(local),
                    short(server),
                    offers(remote),
                    settings(st)
                );
                let s_req = format!(
                    "{} requires {}, {} offers {} ({})",
                    short(server),
                    requires(remote),
                    short(client),
                    offers(local),
                    settings(ct)
                );
                let what = match m.fault {
                    Fault::Remote => c_req,
                    Fault::Local => s_req,
                    Fault::Both => format!("{c_req}; {s_req}"),
                };
                self.report.problem(format!(
                    "{}: TLS policy mismatch: {what}",
                    pair(client, server)
                ));
                return;
            }
        };
        if mode != Mode::Tls {
            return;
        }
        let both = pair(client, server);
        // The client verifies the server's certificate: chain and names.
        if let Some((path, chain)) = self.certs.chain(st) {
            let leaf = &chain[0];
            if let Some(Err(e)) = self.certs.verify(chain, ct) {
                self.report.problem(format!(
                    "{both}: the certificate of {} ({}) does not verify against the CA of {}: {e}",
                    short(server),
                    path.display(),
                    short(client)
                ));
            }
            if let Some(h) = host {
                let ok = names::bacula_host_match(leaf, h)
                    || (h == "127.0.0.1" && names::bacula_host_match(leaf, "localhost"));
                if !ok {
                    self.report.problem(format!(
                        "{both}: the certificate of {} ({}: {}) does not match the address \
                         \"{h}\" {} connects to",
                        short(server),
                        path.display(),
                        cert_names(leaf),
                        short(client)
                    ));
                }
            }
            if !ct.allowed_cn.is_empty()
                && !names::allowed_cn_match(&names::allowed_cn_candidates(leaf), &ct.allowed_cn)
            {
                self.report.problem(format!(
                    "{both}: TLS Allowed CN {} of {} does not match the certificate of {} ({}: {})",
                    quoted_list(&ct.allowed_cn),
                    short(client),
                    short(server),
                    path.display(),
                    cert_names(leaf)
                ));
            }
        }
        // A server with TLS Verify Peer demands a client certificate it trusts.
        if !st.verify_peer {
            return;
        }
        if ct.certificate.is_none() {
            self.report.problem(format!(
                "{both}: {} verifies client certificates (TLS Verify Peer = yes) but {} has no \
                 TLS Certificate",
                short(server),
                short(client)
            ));
            return;
        }
        let Some((path, chain)) = self.certs.chain(ct) else {
            return;
        };
        let leaf = &chain[0];
        if let Some(Err(e)) = self.certs.verify(chain, st) {
            self.report.problem(format!(
                "{both}: the certificate of {} ({}) does not verify against the CA of {}: {e}",
                short(client),
                path.display(),
                short(server)
            ));
        }
        if !st.allowed_cn.is_empty()
            && !names::allowed_cn_match(&names::allowed_cn_candidates(leaf), &st.allowed_cn)
        {
            self.report.problem(format!(
                "{both}: TLS Allowed CN {} of {} does not match the certificate of {} ({}: {})",
                quoted_list(&st.allowed_cn),
                short(server),
                short(client),
                path.display(),
                cert_names(leaf)
            ));
        }
    }
}

/// Whether a certificate is expired, not yet valid or expires within `days`.
fn expiry(c: &X509, days: u32) -> Option<String> {
    let now = Asn1Time::days_from_now(0).ok()?;
    let subject = names::one_line(c.subject_name());
    let left = now.diff(c.not_after()).ok()?;
    let secs = i64::from(left.days) * 86_400 + i64::from(left.secs);
    if secs <= 0 {
        return Some(format!(
            "certificate \"{subject}\" expired on {}",
            c.not_after()
        ));
    }
    if secs < i64::from(days) * 86_400 {
        return Some(format!(
            "certificate \"{subject}\" expires in {} day(s), on {}",
            (secs + 86_399) / 86_400,
            c.not_after()
        ));
    }
    if before(&now, c.not_before()) {
        return Some(format!(
            "certificate \"{subject}\" is not valid before {}",
            c.not_before()
        ));
    }
    None
}

fn before(now: &Asn1TimeRef, t: &Asn1TimeRef) -> bool {
    now.compare(t)
        .map(|o| o == std::cmp::Ordering::Less)
        .unwrap_or(false)
}
