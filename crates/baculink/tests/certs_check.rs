//! `baculink certs init` and `baculink check`, run as the binary.
//!
//! The configs of the consistent set are built from the directives that
//! `certs init` prints, so these tests also prove the printed directives
//! form a working, mutually consistent certificate-TLS setup.

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use baculink_tls::certgen::{self, Ca};
use openssl::hash::{hash, MessageDigest};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509StoreContext, X509};

const FD_PASSWORD: &str = "Fd-Pa55-word-913";
const SD_PASSWORD: &str = "Sd-Pa55-word-274";
const CON_PASSWORD: &str = "Con-Pa55-word-551";

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn baculink(args: &[&str]) -> Out {
    let o = Command::new(env!("CARGO_BIN_EXE_baculink"))
        .args(args)
        .output()
        .expect("run baculink");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// What `certs init` printed: directive lines per (file, resource).
type Directives = HashMap<(String, String), String>;

fn parse_directives(out: &str) -> Directives {
    let mut map = Directives::new();
    let mut file = String::new();
    let mut current: Option<(String, String)> = None;
    for line in out.lines() {
        if let Some(f) = line
            .strip_prefix("# ---- ")
            .and_then(|l| l.strip_suffix(" ----"))
        {
            file = f.to_string();
        } else if let Some((res, _)) = line.split_once(" {") {
            if !file.is_empty() && !res.starts_with(' ') {
                current = Some((file.clone(), res.to_string()));
                map.insert((file.clone(), res.to_string()), String::new());
            }
        } else if line == "}" {
            current = None;
        } else if let Some(k) = &current {
            let block = map.get_mut(k).unwrap();
            block.push_str(line);
            block.push('\n');
        }
    }
    map
}

/// Runs `certs init` into `<tmp>/certs`; returns the folder and the directives.
fn init(tmp: &Path) -> (PathBuf, Directives) {
    let dir = tmp.join("certs");
    let o = baculink(&["certs", "init", dir.to_str().unwrap()]);
    assert_eq!(o.code, 0, "stdout: {}\nstderr: {}", o.stdout, o.stderr);
    (dir.canonicalize().unwrap(), parse_directives(&o.stdout))
}

/// The four configuration texts of a set.
#[derive(Clone)]
struct Set {
    dir: String,
    fd: String,
    sd: String,
    con: String,
}

/// A consistent set: the same Director, FD and SD names, passwords and ports
/// on both ends of every connection, and the printed TLS directives.
fn consistent(tmp: &Path, d: &Directives) -> Set {
    let get = |f: &str, r: &str| d[&(f.to_string(), r.to_string())].clone();
    let work = tmp.display();
    Set {
        dir: format!(
            "Director {{\n  Name = bacula-dir\n  DIRport = 19101\n  DIRAddress = 127.0.0.1\n  \
             QueryFile = \"/dev/null\"\n  WorkingDirectory = \"{work}\"\n  PidDirectory = \"{work}\"\n  \
             Password = \"{CON_PASSWORD}\"\n{}}}\n\
             Client {{\n  Name = bacula-fd\n  Address = 127.0.0.1\n  FDPort = 19102\n  \
             Password = \"{FD_PASSWORD}\"\n{}}}\n\
             # The Director's name for the storage differs from the SD's own name:\n\
             # the SD is found by address and port.\n\
             Storage {{\n  Name = File1\n  Address = localhost\n  SDPort = 19103\n  \
             Password = \"{SD_PASSWORD}\"\n  Device = FileStorage\n  Media Type = File\n{}}}\n",
            get("bacula-dir.conf", "Director"),
            get("bacula-dir.conf", "Client"),
            get("bacula-dir.conf", "Storage"),
        ),
        fd: format!(
            "Director {{\n  Name = bacula-dir\n  Password = \"{FD_PASSWORD}\"\n{}}}\n\
             FileDaemon {{\n  Name = bacula-fd\n  FDport = 19102\n  FDAddress = 127.0.0.1\n  \
             WorkingDirectory = \"{work}\"\n{}}}\n",
            get("bacula-fd.conf", "Director"),
            get("bacula-fd.conf", "FileDaemon"),
        ),
        sd: format!(
            "Storage {{\n  Name = bacula-sd\n  SDPort = 19103\n  SDAddress = 127.0.0.1\n  \
             WorkingDirectory = \"{work}\"\n{}}}\n\
             Director {{\n  Name = bacula-dir\n  Password = \"{SD_PASSWORD}\"\n{}}}\n\
             Device {{\n  Name = FileStorage\n  Media Type = File\n  Archive Device = \"{work}\"\n}}\n",
            get("bacula-sd.conf", "Storage"),
            get("bacula-sd.conf", "Director"),
        ),
        con: format!(
            "Director {{\n  Name = bacula-dir\n  DIRport = 19101\n  Address = 127.0.0.1\n  \
             Password = \"{CON_PASSWORD}\"\n{}}}\n",
            get("bconsole.conf", "Director"),
        ),
    }
}

/// Writes the set into `<tmp>/etc` and runs `check` on it.
fn check(tmp: &Path, set: &Set) -> Out {
    let etc = tmp.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    let files = [
        ("bacula-dir.conf", &set.dir),
        ("bacula-fd.conf", &set.fd),
        ("bacula-sd.conf", &set.sd),
        ("bconsole.conf", &set.con),
    ];
    let mut args = vec!["check".to_string()];
    for (name, text) in files {
        let p = etc.join(name);
        std::fs::write(&p, text).unwrap();
        args.push(p.display().to_string());
    }
    let o = baculink(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_no_secrets(&o);
    o
}

/// Neither a password nor its MD5 key ever appears in the output.
fn assert_no_secrets(o: &Out) {
    for pw in [FD_PASSWORD, SD_PASSWORD, CON_PASSWORD, "Other-Pa55-word"] {
        let md5: String = hash(MessageDigest::md5(), pw.as_bytes())
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        for text in [&o.stdout, &o.stderr] {
            assert!(!text.contains(pw), "password in output:\n{text}");
            assert!(!text.contains(&md5), "password key in output:\n{text}");
        }
    }
}

/// The problem lines (not notes, warnings or the summary) containing all of `parts`.
fn lines_with<'a>(o: &'a Out, parts: &[&str]) -> Vec<&'a str> {
    o.stdout
        .lines()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .collect()
}

/// Asserts `check` failed with a line naming both files (with line numbers) and the problem.
fn assert_problem(o: &Out, files: [&str; 2], parts: &[&str]) {
    assert_eq!(o.code, 1, "expected exit 1:\n{}{}", o.stdout, o.stderr);
    let found = lines_with(o, parts);
    assert!(
        found.iter().any(|l| files
            .iter()
            .all(|f| l.contains(&format!("{f}:")) && line_number_after(l, f))),
        "no line naming {files:?} and {parts:?}:\n{}",
        o.stdout
    );
    assert!(o.stdout.contains("problem"), "{}", o.stdout);
}

/// `file:N` with N a number appears in the line.
fn line_number_after(line: &str, file: &str) -> bool {
    line.match_indices(&format!("{file}:")).any(|(i, m)| {
        line[i + m.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn load_cert(p: &Path) -> X509 {
    X509::from_pem(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn certs_init_creates_ca_certificates_and_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, d) = init(tmp.path());

    let ca = load_cert(&dir.join("ca.pem"));
    assert!(ca.to_text().unwrap().windows(7).any(|w| w == b"CA:TRUE"));
    assert_eq!(mode(&dir.join("ca.key")), 0o600);
    let dh =
        openssl::dh::Dh::params_from_pem(&std::fs::read(dir.join("dh2048.pem")).unwrap()).unwrap();
    assert_eq!(dh.prime_p().num_bits(), 2048);

    let mut store = X509StoreBuilder::new().unwrap();
    store.add_cert(ca.clone()).unwrap();
    let store = store.build();
    for (file, cn) in [
        ("dir", "bacula-dir"),
        ("fd", "bacula-fd"),
        ("sd", "bacula-sd"),
        ("console", "bconsole"),
    ] {
        let cert = load_cert(&dir.join(format!("{file}.pem")));
        assert_eq!(baculink_tls::names::common_names(&cert), vec![cn]);
        assert!(baculink_tls::names::dns_names(&cert).contains(&"localhost".to_string()));
        assert_eq!(
            baculink_tls::names::ip_addresses(&cert),
            vec!["127.0.0.1".parse::<IpAddr>().unwrap()]
        );
        assert!(cert.to_text().unwrap().windows(8).any(|w| w == b"CA:FALSE"));
        let chain = openssl::stack::Stack::new().unwrap();
        let mut ctx = X509StoreContext::new().unwrap();
        assert!(ctx
            .init(&store, &cert, &chain, |c| c.verify_cert())
            .unwrap());
        assert_eq!(mode(&dir.join(format!("{file}.key"))), 0o600);
        assert_eq!(mode(&dir.join(format!("{file}.pem"))), 0o644);
        // The key belongs to the certificate.
        let key = openssl::pkey::PKey::private_key_from_pem(
            &std::fs::read(dir.join(format!("{file}.key"))).unwrap(),
        )
        .unwrap();
        assert!(cert.public_key().unwrap().public_eq(&key));
    }

    // Directives for every resource, Bacula's spelling, absolute existing paths.
    for (file, res) in [
        ("bacula-dir.conf", "Director"),
        ("bacula-dir.conf", "Client"),
        ("bacula-dir.conf", "Storage"),
        ("bacula-fd.conf", "Director"),
        ("bacula-fd.conf", "FileDaemon"),
        ("bacula-sd.conf", "Director"),
        ("bacula-sd.conf", "Storage"),
        ("bconsole.conf", "Director"),
    ] {
        let block = &d[&(file.to_string(), res.to_string())];
        assert!(block.contains("  TLS Enable = yes\n"), "{file} {res}");
        assert!(block.contains("  TLS Require = yes\n"), "{file} {res}");
        for key in ["TLS CA Certificate File", "TLS Certificate", "TLS Key"] {
            let line = block
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{key} = ")))
                .unwrap_or_else(|| panic!("{file} {res}: no {key}"));
            let path = line.split_once(" = ").unwrap().1.trim_matches('"');
            assert!(Path::new(path).is_absolute(), "{line}");
            assert!(Path::new(path).exists(), "{line}");
        }
    }
    let dir_director = &d[&("bacula-dir.conf".into(), "Director".into())];
    assert!(dir_director.contains("TLS Verify Peer = yes"));
    assert!(dir_director.contains("TLS Allowed CN = \"bconsole\""));
    assert!(dir_director.contains("TLS DH File = "));
    assert!(d[&("bacula-dir.conf".into(), "Client".into())].contains("/dir.pem\""));
    assert!(
        d[&("bacula-sd.conf".into(), "Storage".into())].contains("TLS Allowed CN = \"bacula-fd\"")
    );
    assert!(d[&("bacula-fd.conf".into(), "Director".into())]
        .contains("TLS Allowed CN = \"bacula-dir\""));
    assert!(d[&("bconsole.conf".into(), "Director".into())].contains("/console.key\""));
}

#[test]
fn certs_init_refuses_to_overwrite_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = init(tmp.path());
    let before = std::fs::read(dir.join("ca.pem")).unwrap();
    let o = baculink(&["certs", "init", dir.to_str().unwrap()]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("refusing to overwrite"), "{}", o.stderr);
    assert!(o.stderr.contains("--force"), "{}", o.stderr);
    assert_eq!(std::fs::read(dir.join("ca.pem")).unwrap(), before);

    let o = baculink(&["certs", "init", dir.to_str().unwrap(), "--force"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_ne!(std::fs::read(dir.join("ca.pem")).unwrap(), before);
    assert_eq!(mode(&dir.join("ca.key")), 0o600);
}

#[test]
fn certs_init_takes_names_and_subject_alt_names() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let o = baculink(&[
        "certs",
        "init",
        dir.to_str().unwrap(),
        "--names",
        "dir=main-dir,fd=web1-fd,sd=main-sd,console=admin",
        "--dns",
        "backup.example.com,*.example.com",
        "--ip",
        "10.0.0.5,::1",
        "--days",
        "30",
        "--key-type",
        "rsa",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let fd = load_cert(&dir.join("fd.pem"));
    assert_eq!(baculink_tls::names::common_names(&fd), vec!["web1-fd"]);
    assert_eq!(
        baculink_tls::names::dns_names(&fd),
        vec!["backup.example.com", "*.example.com"]
    );
    assert_eq!(
        baculink_tls::names::ip_addresses(&fd),
        vec![
            "10.0.0.5".parse::<IpAddr>().unwrap(),
            "::1".parse::<IpAddr>().unwrap()
        ]
    );
    assert_eq!(fd.public_key().unwrap().bits(), 2048);
    let d = parse_directives(&o.stdout);
    assert!(
        d[&("bacula-fd.conf".into(), "Director".into())].contains("TLS Allowed CN = \"main-dir\"")
    );
    assert!(
        d[&("bacula-sd.conf".into(), "Storage".into())].contains("TLS Allowed CN = \"web1-fd\"")
    );
    assert!(
        d[&("bacula-dir.conf".into(), "Director".into())].contains("TLS Allowed CN = \"admin\"")
    );

    let o = baculink(&[
        "certs",
        "init",
        tmp.path().join("x").to_str().unwrap(),
        "--names",
        "tape=x",
    ]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("unknown component"), "{}", o.stderr);
}

#[test]
fn check_passes_on_a_consistent_set() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, d) = init(tmp.path());
    let o = check(tmp.path(), &consistent(tmp.path(), &d));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(o.stdout.contains("no problems found"), "{}", o.stdout);
    assert!(o
        .stdout
        .contains("1 director, 1 file daemon, 1 storage daemon, 1 console"));
    assert!(!o.stdout.contains("note:"), "{}", o.stdout);
    assert!(!o.stdout.contains("warning:"), "{}", o.stdout);
}

#[test]
fn check_reports_a_wrong_fd_password() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, d) = init(tmp.path());
    let mut set = consistent(tmp.path(), &d);
    set.fd = set.fd.replace(FD_PASSWORD, "Other-Pa55-word");
    let o = check(tmp.path(), &set);
    assert_problem(
        &o,
        ["bacula-dir.conf", "bacula-fd.conf"],
        &[
            "Client \"bacula-fd\"",
            "Director \"bacula-dir\"",
            "passwords differ",
        ],
    );
    assert_eq!(
        lines_with(&o, &["passwords differ"]).len(),
        1,
        "{}",
        o.stdout
    );
}

#[test]
fn check_reports_a_wrong_sd_director_name_and_ignores_case() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, d) = init(tmp.path());
    let good = consistent(tmp.path(), &d);

    let mut set = good.clone();
    set.sd = set.sd.replace("Name = bacula-dir", "Name = other-dir");
    let o = check(tmp.path(), &set);
    assert_problem(
        &o,
        ["bacula-dir.conf", "bacula-sd.conf"],
        &[
            "Storage \"File1\"",
            "no Director resource named \"bacula-dir\"",
            "other-dir",
        ],
    );

    // The storage daemon looks Directors up case-insensitively.
    let mut set = good;
    set.sd = set.sd.replace("Name = bacula-dir", "Name = BACULA-Dir");
    let o = check(tmp.path(), &set);
    assert_eq!(o.code, 0, "{}", o.stdout);
}

#[test]
fn check_reports_tls_policies_that_cannot_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, d) = init(tmp.path());
    let mut set = consistent(tmp.path(), &d);
    // The FD's Director resource: no certificate TLS and no TLS-PSK at all,
    // while the Director's Client requires TLS.
    let block = &d[&("bacula-fd.conf".into(), "Director".into())];
    set.fd = set
        .fd
        .replace(block, "  TLS Enable = no\n  TLS PSK Enable = no\n");
    let o = check(tmp.path(), &set);
    assert_problem(
        &o,
        ["bacula-dir.conf", "bacula-fd.conf"],
        &[
            "TLS policy mismatch",
            "Client \"bacula-fd\" requires certificate TLS",
            "offers no TLS",
        ],
    );

    // The same on the console link, the other way round: the Director
    // requires TLS, bconsole has TLS and PSK disabled.
    let mut set = consistent(tmp.path(), &d);
    let block = &d[&("bconsole.conf".into(), "Director".into())];
    set.con = set.con.replace(block, "  TLS PSK Enable = no\n");
    let o = check(tmp.path(), &set);
    assert_problem(
        &o,
        ["bconsole.conf", "bacula-dir.conf"],
        &[
            "TLS policy mismatch",
            "bacula-dir.conf Director \"bacula-dir\" requires",
            "bconsole.conf Director \"bacula-dir\" offers no TLS",
        ],
    );
}

#[test]
fn check_reports_allowed_cn_not_matching_the_peer_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, d) = init(tmp.path());
    let good = consistent(tmp.path(), &d);

    let mut set = good.clone();
    set.fd = set.fd.replace(
        "TLS Allowed CN = \"bacula-dir\"",
        "TLS Allowed CN = \"someone-else\"",
    );
    let o = check(tmp.path(), &set);
    assert_problem(
        &o,
        ["bacula-dir.conf", "bacula-fd.conf"],
        &[
            "TLS Allowed CN \"someone-else\"",
            "does not match",
            "CN=bacula-dir",
        ],
    );

    // The storage daemon's Allowed CN for file daemons vs the FD's certificate.
    let mut set = good;
    set.sd = set.sd.replace(
        "TLS Allowed CN = \"bacula-fd\"",
        "TLS Allowed CN = \"web9-fd\"",
    );
    let o = check(tmp.path(), &set);
    assert_problem(
        &o,
        ["bacula-fd.conf", "bacula-sd.conf"],
        &["FileDaemon \"bacula-fd\"", "\"web9-fd\"", "CN=bacula-fd"],
    );
}

#[test]
fn check_reports_a_certificate_about_to_expire_and_missing_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, d) = init(tmp.path());
    let ca = Ca::load(&dir.join("ca.pem"), &dir.join("ca.key")).unwrap();
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let (c, k) = ca.issue("bacula-fd", &["localhost"], &[lo], 10).unwrap();
    certgen::write_pem_files(&dir, "fd-short", &c, &k).unwrap();

    let good = consistent(tmp.path(), &d);
    let mut set = good.clone();
    set.fd = set
        .fd
        .replace("/fd.pem\"", "/fd-short.pem\"")
        .replace("/fd.key\"", "/fd-short.key\"");
    let o = check(tmp.path(), &set);
    assert_eq!(o.code, 1, "{}", o.stdout);
    let hits = lines_with(&o, &["fd-short.pem", "expires in 10 day"]);
    assert_eq!(hits.len(), 1, "{}", o.stdout);
    assert!(line_number_after(hits[0], "bacula-fd.conf"), "{}", hits[0]);
    assert!(hits[0].contains("CN=bacula-fd"), "{}", hits[0]);

    // A certificate file that does not exist.
    let mut set = good;
    set.sd = set.sd.replace("/sd.pem\"", "/missing.pem\"");
    let o = check(tmp.path(), &set);
    assert_eq!(o.code, 1, "{}", o.stdout);
    let hits = lines_with(&o, &["missing.pem", "cannot read"]);
    assert!(!hits.is_empty(), "{}", o.stdout);
    assert!(line_number_after(hits[0], "bacula-sd.conf"), "{}", hits[0]);
}

#[test]
fn check_reports_config_errors_with_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, d) = init(tmp.path());
    let mut set = consistent(tmp.path(), &d);
    // Line 3 of bacula-fd.conf: a keyword with a non-letter is a syntax error.
    set.fd = set.fd.replacen("  Password", "  Pass_word", 1);
    let o = check(tmp.path(), &set);
    assert_eq!(o.code, 1, "{}", o.stdout);
    let hits = lines_with(&o, &["cannot load", "bacula-fd.conf:"]);
    assert_eq!(hits.len(), 1, "{}", o.stdout);
    assert!(hits[0].contains("bacula-fd.conf:3:"), "{}", hits[0]);
    assert!(o.stdout.contains("0 file daemon"), "{}", o.stdout);
}

#[test]
fn check_reports_console_mismatches() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, d) = init(tmp.path());
    let good = consistent(tmp.path(), &d);

    let mut set = good.clone();
    set.con = set.con.replace(CON_PASSWORD, "Other-Pa55-word");
    let o = check(tmp.path(), &set);
    assert_problem(
        &o,
        ["bconsole.conf", "bacula-dir.conf"],
        &["passwords differ"],
    );

    let mut set = good;
    set.con = set.con.replace("DIRport = 19101", "DIRport = 19999");
    let o = check(tmp.path(), &set);
    assert_problem(
        &o,
        ["bconsole.conf", "bacula-dir.conf"],
        &["connects to port 19999", "listens on port 19101"],
    );
}
