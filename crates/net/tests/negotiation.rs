//! Our client and our server over real loopback TCP, with real TLS
//! (certificates and PSK through OpenSSL): every cell of protocol.md's
//! negotiation tables must end in the mode or refusal the table gives.

#![allow(clippy::needless_range_loop)] // indices name table rows and columns

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use baculink_conf::tls::TlsRole;
use baculink_conf::TlsSettings;
use baculink_net::{BSock, ClientSetup, LoginError, PeerSetup, ServerSetup};
use baculink_proto::handshake::{ClientConfig, Local, ServerConfig, ServerKind};
use baculink_proto::hello::Hello;
use baculink_proto::negotiate::{Dialect, Mode, Need, Needs};
use baculink_proto::Secret;
use baculink_tls::certgen::{self, Ca};
use baculink_tls::CertContext;
use tokio::net::TcpListener;

const N: Need = Need::None;
const O: Need = Need::Ok;
const R: Need = Need::Required;
const LEVELS: [Need; 3] = [N, O, R];

/// protocol.md §5.5, rows = auth server (T,P), columns = auth client (T,P),
/// both in the order NN NO NR ON OO OR RN RO RR. C/P/T = clear/PSK/TLS on
/// both sides; S, K, B = refused by the server, the client, both.
const TABLE_13: [&str; 9] = [
    "C C B C C B S S S",
    "C P P C P P S P P",
    "B P P B P P S P P",
    "C C B T T T T T T",
    "C P P T T T T T T",
    "B P P T T T T T T",
    "K K K T T T T T T",
    "K P P T T T T T T",
    "K P P T T T T T T",
];

/// protocol.md §5.6: rows = 13.x side (T,P), columns = 9.6 side L = 0, 1, 2.
/// X = the 13.x side refuses, N = the 9.6 side refuses, B = both.
const TABLE_MIXED: [&str; 9] = [
    "C C B", "C C B", "X X B", "C T T", "C T T", "X T T", "N T T", "N T T", "N T T",
];

/// protocol.md §5.2: rows = server L, columns = client L (B = both refuse).
const TABLE_96: [&str; 3] = ["C C B", "C T T", "B T T"];

/// What a cell says: both sides end in a mode, or these sides refuse.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    Mode(Mode),
    Refused { server: bool, client: bool },
}

/// Reads a cell; `v13_is_server` maps the mixed table's X / N onto sides.
fn cell(table: &[&str], row: usize, col: usize, v13_is_server: bool) -> Expect {
    let refused = |server, client| Expect::Refused { server, client };
    match table[row].split(' ').nth(col).unwrap() {
        "C" => Expect::Mode(Mode::Clear),
        "P" => Expect::Mode(Mode::Psk),
        "T" => Expect::Mode(Mode::Tls),
        "S" => refused(true, false),
        "K" => refused(false, true),
        "B" => refused(true, true),
        "X" => refused(v13_is_server, !v13_is_server),
        "N" => refused(!v13_is_server, v13_is_server),
        other => panic!("bad table cell {other}"),
    }
}

fn needs(i: usize) -> Needs {
    Needs::new(LEVELS[i / 3], LEVELS[i % 3])
}

struct Pki {
    _dir: tempfile::TempDir,
    server: Arc<CertContext>,
    client: Arc<CertContext>,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("negotiation test CA").unwrap();
    certgen::write_cert_pem(&d.join("ca.pem"), &ca.cert).unwrap();
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    for name in ["server", "client"] {
        let (c, k) = ca.issue(name, &["localhost"], &[lo], 30).unwrap();
        certgen::write_pem_files(d, name, &c, &k).unwrap();
    }
    let settings = |name: &str, d: &Path| TlsSettings {
        enable: true,
        ca_file: Some(d.join("ca.pem")),
        certificate: Some(d.join(format!("{name}.pem"))),
        key: Some(d.join(format!("{name}.key"))),
        ..TlsSettings::default()
    };
    Pki {
        server: Arc::new(CertContext::new(&settings("server", d), TlsRole::Server).unwrap()),
        client: Arc::new(CertContext::new(&settings("client", d), TlsRole::Client).unwrap()),
        _dir: dir,
    }
}

fn local(needs: Needs, dialect: Dialect, name: &str) -> Local {
    Local {
        key: Secret::from_password("negotiation-test"),
        needs,
        authenticate: false,
        dialect,
        name: name.into(),
    }
}

/// Runs one login over loopback; returns what each side ended with.
async fn run(
    pki: &Pki,
    server_local: Local,
    client_local: Local,
) -> (Result<Mode, String>, Result<Mode, String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server_cert = pki.server.clone();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let setup = ServerSetup {
            config: ServerConfig {
                kind: ServerKind::FileDaemon,
                name: "test-fd".into(),
                version: 14,
                version_text: String::new(),
                dialect: Dialect::V13,
            },
            timeout: Duration::from_secs(20),
            damping: false,
        };
        let r = baculink_net::accept(BSock::new(tcp), &setup, |_h: &Hello| {
            Some(PeerSetup {
                local: server_local.clone(),
                cert: Some(server_cert.clone()),
                psk: None,
                allowed_cn: vec!["client".into()],
                label: "test director".into(),
            })
        })
        .await;
        r.map(|(_, p)| p.mode())
            .map_err(|e: LoginError| e.to_string())
    });
    let setup = ClientSetup {
        config: ClientConfig {
            hello: Hello::Director {
                name: "test-dir".into(),
                version: Some(10002),
                tlspsk: None,
            },
            local: client_local,
        },
        cert: Some(pki.client.clone()),
        psk: None,
        host: "127.0.0.1".into(),
        allowed_cn: vec![],
        timeout: Duration::from_secs(20),
        label: "test fd".into(),
    };
    let client = baculink_net::connect("127.0.0.1", port, &setup)
        .await
        .map(|(_, p)| p.mode())
        .map_err(|e| e.to_string());
    (server.await.unwrap(), client)
}

fn check(
    what: &str,
    expected: Expect,
    got: (Result<Mode, String>, Result<Mode, String>),
) -> Option<String> {
    let ok = match expected {
        Expect::Mode(m) => got.0.as_ref().ok() == Some(&m) && got.1.as_ref().ok() == Some(&m),
        // The side(s) the table names must refuse; the other may only have
        // finished in a mode the refusing side then closes (a 9.6 server
        // cannot learn a 13.x client's PSK requirement).
        Expect::Refused { server, client } => {
            (!server || got.0.is_err())
                && (!client || got.1.is_err())
                && (got.0.is_err() || got.1.is_err())
        }
    };
    (!ok).then(|| {
        format!(
            "{what}: expected {expected:?}, server {:?}, client {:?}",
            got.0, got.1
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_13x_cell_over_loopback() {
    let pki = pki();
    let mut failures = Vec::new();
    for s in 0..9 {
        for c in 0..9 {
            let got = run(
                &pki,
                local(needs(s), Dialect::V13, "test-fd"),
                local(needs(c), Dialect::V13, "test-dir"),
            )
            .await;
            if let Some(f) = check(
                &format!("13.x AS {:?} x AC {:?}", needs(s), needs(c)),
                cell(&TABLE_13, s, c, true),
                got,
            ) {
                failures.push(f);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_96_cell_over_loopback() {
    let pki = pki();
    let mut failures = Vec::new();
    for s in 0..3 {
        for c in 0..3 {
            let sn = Needs::new(LEVELS[s], N);
            let cn = Needs::new(LEVELS[c], N);
            let got = run(
                &pki,
                local(sn, Dialect::V96, "test-fd"),
                local(cn, Dialect::V96, "test-dir"),
            )
            .await;
            if let Some(f) = check(
                &format!("9.6 AS {s} x AC {c}"),
                cell(&TABLE_96, s, c, true),
                got,
            ) {
                failures.push(f);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mixed_cell_over_loopback_both_directions() {
    let pki = pki();
    let mut failures = Vec::new();
    for m in 0..9 {
        for l in 0..3 {
            let v96 = Needs::new(LEVELS[l], N);
            // 13.x server, 9.6 client.
            let got = run(
                &pki,
                local(needs(m), Dialect::V13, "test-fd"),
                local(v96, Dialect::V96, "test-dir"),
            )
            .await;
            let expected = cell(&TABLE_MIXED, m, l, true);
            if let Some(f) = check(
                &format!("13.x AS {:?} x 9.6 AC {l}", needs(m)),
                expected,
                got,
            ) {
                failures.push(f);
            }
            // 9.6 server, 13.x client.
            let got = run(
                &pki,
                local(v96, Dialect::V96, "test-fd"),
                local(needs(m), Dialect::V13, "test-dir"),
            )
            .await;
            let expected = cell(&TABLE_MIXED, m, l, false);
            if let Some(f) = check(
                &format!("9.6 AS {l} x 13.x AC {:?}", needs(m)),
                expected,
                got,
            ) {
                failures.push(f);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
