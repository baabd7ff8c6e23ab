//! `baculink certs init`: a small CA and one certificate per component, plus
//! the TLS directives to paste into each configuration file.
//!
//! Every component gets a certificate whose commonName is its Bacula name
//! (what `TLS Allowed CN` lists) and whose subjectAltNames cover the host
//! names and addresses peers connect to (what the host-name check matches).
//! Each certificate is usable both as TLS server and TLS client, since the
//! daemons play both roles (protocol.md §6.1).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use baculink_tls::certgen::{self, Ca, KeyKind, LeafSpec};
use clap::{Args, Subcommand, ValueEnum};

/// `baculink certs` arguments.
#[derive(Debug, Args)]
pub struct CertsArgs {
    #[command(subcommand)]
    pub command: CertsCommand,
}

/// `baculink certs` subcommands.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create a CA, a certificate and key per component and a DH file, and
    /// print the TLS directives for each configuration file.
    Init(InitArgs),
}

/// Key algorithm of the generated keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KeyType {
    /// ECDSA P-256 (fast; any OpenSSL a Bacula build uses supports it).
    Ec,
    /// RSA 2048 bits.
    Rsa,
}

/// `baculink certs init` arguments.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Folder for the files (created if missing).
    pub dir: PathBuf,
    /// Component names, e.g. `dir=main-dir,fd=web1-fd,sd=main-sd,console=admin`
    /// (defaults bacula-dir, bacula-fd, bacula-sd, bconsole).
    #[arg(long, value_delimiter = ',')]
    pub names: Vec<String>,
    /// DNS subjectAltNames (default: localhost and this machine's host name).
    #[arg(long, value_delimiter = ',')]
    pub dns: Vec<String>,
    /// IP subjectAltNames (default: 127.0.0.1).
    #[arg(long, value_delimiter = ',')]
    pub ip: Vec<IpAddr>,
    /// Validity of the component certificates in days (the CA lives at least ten years).
    #[arg(long, default_value_t = 825)]
    pub days: u32,
    /// Key algorithm.
    #[arg(long = "key-type", value_enum, default_value_t = KeyType::Ec)]
    pub key_type: KeyType,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

/// The four components, in the order files and directives are listed.
const COMPONENTS: [(&str, &str); 4] = [
    ("dir", "bacula-dir"),
    ("fd", "bacula-fd"),
    ("sd", "bacula-sd"),
    ("console", "bconsole"),
];

/// Component names after `--names`.
#[derive(Debug, Clone)]
struct Names {
    dir: String,
    fd: String,
    sd: String,
    console: String,
}

impl Names {
    fn parse(items: &[String]) -> Result<Names, String> {
        let mut n = Names {
            dir: COMPONENTS[0].1.into(),
            fd: COMPONENTS[1].1.into(),
            sd: COMPONENTS[2].1.into(),
            console: COMPONENTS[3].1.into(),
        };
        for item in items {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| format!("--names: expected COMPONENT=NAME, got \"{item}\""))?;
            let v = v.trim();
            if v.is_empty() || v.len() > 127 {
                return Err(format!("--names: bad name for {k}: \"{v}\""));
            }
            let slot = match k.trim() {
                "dir" | "director" => &mut n.dir,
                "fd" | "client" => &mut n.fd,
                "sd" | "storage" => &mut n.sd,
                "console" | "bconsole" => &mut n.console,
                other => {
                    return Err(format!(
                        "--names: unknown component \"{other}\" (expected dir, fd, sd or console)"
                    ))
                }
            };
            *slot = v.to_string();
        }
        Ok(n)
    }

    fn get(&self, component: &str) -> &str {
        match component {
            "dir" => &self.dir,
            "fd" => &self.fd,
            "sd" => &self.sd,
            _ => &self.console,
        }
    }
}

/// This machine's host name, if it can be found without extra dependencies.
fn hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Paths of everything `init` writes.
struct Files {
    ca_cert: PathBuf,
    ca_key: PathBuf,
    dh: PathBuf,
}

impl Files {
    fn new(dir: &Path) -> Files {
        Files {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca.key"),
            dh: dir.join("dh2048.pem"),
        }
    }

    fn cert(dir: &Path, component: &str) -> PathBuf {
        dir.join(format!("{component}.pem"))
    }

    fn key(dir: &Path, component: &str) -> PathBuf {
        dir.join(format!("{component}.key"))
    }

    fn all(&self, dir: &Path) -> Vec<PathBuf> {
        let mut v = vec![self.ca_cert.clone(), self.ca_key.clone(), self.dh.clone()];
        for (c, _) in COMPONENTS {
            v.push(Files::cert(dir, c));
            v.push(Files::key(dir, c));
        }
        v
    }
}

/// Runs `baculink certs`: 0 on success, 1 with the reason on stderr.
pub fn main(args: CertsArgs) -> ExitCode {
    let CertsCommand::Init(init) = args.command;
    match run_init(&init) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("baculink certs init: {e}");
            ExitCode::from(1)
        }
    }
}

fn run_init(args: &InitArgs) -> Result<String, String> {
    let names = Names::parse(&args.names)?;
    if args.days == 0 {
        return Err("--days must be at least 1".into());
    }
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| format!("cannot create {}: {e}", args.dir.display()))?;
    let dir = args
        .dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", args.dir.display()))?;
    let files = Files::new(&dir);
    let existing: Vec<String> = files
        .all(&dir)
        .into_iter()
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() && !args.force {
        return Err(format!(
            "refusing to overwrite existing files (use --force): {}",
            existing.join(", ")
        ));
    }

    let dns: Vec<String> = if args.dns.is_empty() {
        let mut v = vec!["localhost".to_string()];
        if let Some(h) = hostname() {
            if !h.eq_ignore_ascii_case("localhost") {
                v.push(h);
            }
        }
        v
    } else {
        args.dns.iter().map(|s| s.trim().to_string()).collect()
    };
    let ips: Vec<IpAddr> = if args.ip.is_empty() {
        vec![IpAddr::from([127, 0, 0, 1])]
    } else {
        args.ip.clone()
    };
    let kind = match args.key_type {
        KeyType::Ec => KeyKind::EcP256,
        KeyType::Rsa => KeyKind::Rsa(2048),
    };

    let e = |e: baculink_tls::TlsError| e.to_string();
    let ca = Ca::with_options("baculink CA", args.days.max(3650), kind).map_err(e)?;
    certgen::write_cert_pem(&files.ca_cert, &ca.cert).map_err(e)?;
    certgen::write_key_pem(&files.ca_key, &ca.key).map_err(e)?;
    tracing::info!("wrote {}", files.ca_cert.display());
    for (component, _) in COMPONENTS {
        let mut spec = LeafSpec::new(
            names.get(component),
            &dns.iter().map(String::as_str).collect::<Vec<_>>(),
            &ips,
            args.days,
        );
        spec.key = kind;
        let (cert, key) = ca.issue_spec(&spec).map_err(e)?;
        certgen::write_pem_files(&dir, component, &cert, &key).map_err(e)?;
        tracing::info!("wrote {component}.pem and {component}.key");
    }
    certgen::write_dh_file(&files.dh).map_err(e)?;

    let mut out = format!(
        "Created in {}:\n  ca.pem, ca.key (the CA; keep ca.key offline), dh2048.pem,\n  \
         {{dir,fd,sd,console}}.pem and .key (CN = component name; DNS: {}; IP: {}; {} days)\n\n",
        dir.display(),
        dns.join(", "),
        ips.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        args.days
    );
    out.push_str(&directives(&dir, &files, &names));
    Ok(out)
}

/// A value in Bacula's quoted-string syntax.
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

fn quote_path(p: &Path) -> String {
    quote(&p.display().to_string())
}

/// One resource's block of directives.
struct Block<'a> {
    resource: &'static str,
    comment: String,
    server: bool,
    allowed_cn: Option<&'a str>,
    component: &'static str,
}

/// The directives for every resource, as Bacula spells them (protocol.md §8.3).
fn directives(dir: &Path, files: &Files, names: &Names) -> String {
    let ca = quote_path(&files.ca_cert);
    let dh = quote_path(&files.dh);
    let sections: Vec<(&str, Vec<Block>)> = vec![
        (
            "bacula-dir.conf",
            vec![
                Block {
                    resource: "Director",
                    comment: format!(
                        "the Director \"{}\" itself: TLS server for bconsole",
                        names.dir
                    ),
                    server: true,
                    allowed_cn: Some(&names.console),
                    component: "dir",
                },
                Block {
                    resource: "Client",
                    comment: format!("Client \"{}\": TLS client to the file daemon", names.fd),
                    server: false,
                    allowed_cn: None,
                    component: "dir",
                },
                Block {
                    resource: "Storage",
                    comment: "each Storage: TLS client to the storage daemon".into(),
                    server: false,
                    allowed_cn: None,
                    component: "dir",
                },
            ],
        ),
        (
            "bacula-fd.conf",
            vec![
                Block {
                    resource: "Director",
                    comment: format!("Director \"{}\": TLS server for the Director", names.dir),
                    server: true,
                    allowed_cn: Some(&names.dir),
                    component: "fd",
                },
                Block {
                    resource: "FileDaemon",
                    comment: format!(
                        "this file daemon \"{}\": TLS client to the storage daemon",
                        names.fd
                    ),
                    server: false,
                    allowed_cn: None,
                    component: "fd",
                },
            ],
        ),
        (
            "bacula-sd.conf",
            vec![
                Block {
                    resource: "Director",
                    comment: format!("Director \"{}\": TLS server for the Director", names.dir),
                    server: true,
                    allowed_cn: Some(&names.dir),
                    component: "sd",
                },
                Block {
                    resource: "Storage",
                    comment: format!(
                        "this storage daemon \"{}\": TLS server for file daemons",
                        names.sd
                    ),
                    server: true,
                    allowed_cn: Some(&names.fd),
                    component: "sd",
                },
            ],
        ),
        (
            "bconsole.conf",
            vec![Block {
                resource: "Director",
                comment: format!("Director \"{}\": TLS client", names.dir),
                server: false,
                allowed_cn: None,
                component: "console",
            }],
        ),
    ];

    let mut out = String::from(
        "Add these directives to the resources of each configuration file\n\
         (certificate TLS, required on both ends of every connection):\n",
    );
    for (file, blocks) in sections {
        out.push_str(&format!("\n# ---- {file} ----\n"));
        for b in blocks {
            out.push_str(&format!("{} {{  # {}\n", b.resource, b.comment));
            out.push_str("  TLS Enable = yes\n  TLS Require = yes\n");
            if b.server {
                out.push_str("  TLS Verify Peer = yes\n");
            }
            if let Some(cn) = b.allowed_cn {
                out.push_str(&format!("  TLS Allowed CN = {}\n", quote(cn)));
            }
            out.push_str(&format!("  TLS CA Certificate File = {ca}\n"));
            out.push_str(&format!(
                "  TLS Certificate = {}\n",
                quote_path(&Files::cert(dir, b.component))
            ));
            out.push_str(&format!(
                "  TLS Key = {}\n",
                quote_path(&Files::key(dir, b.component))
            ));
            if b.server {
                out.push_str(&format!("  TLS DH File = {dh}\n"));
            }
            out.push_str("}\n");
        }
    }
    out
}
