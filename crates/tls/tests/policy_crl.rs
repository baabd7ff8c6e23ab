//! `TLS Certificate Revocation List` against the real `openssl` tool: the CRL is made
//! by `openssl ca -revoke` / `-gencrl`; our server refuses an `s_client` presenting the
//! revoked certificate, our client refuses an `s_server` presenting it.

mod common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use baculink_conf::tls::TlsRole;
use baculink_conf::TlsSettings;
use baculink_proto::negotiate::Mode;
use baculink_tls::certgen::{write_cert_pem, write_key_pem, write_pem_files, Ca, LeafSpec};
use baculink_tls::{accept_cert, connect_cert, CertContext, SessionFacts, TlsError};
use common::{read_line, s, tcp, within, Pair, Peer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// A CA with an `openssl ca` database, a revoked and a good leaf, and the CRL.
struct Pki {
    dir: tempfile::TempDir,
    ca: PathBuf,
    revoked: Pair,
    good: Pair,
    crl: PathBuf,
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A minimal `openssl ca` configuration over `d`.
fn ca_config(d: &Path) -> PathBuf {
    let cfg = d.join("ca.cnf");
    std::fs::write(
        &cfg,
        format!(
            "[ ca ]\ndefault_ca = test_ca\n[ test_ca ]\ndatabase = {db}\ncrlnumber = {num}\n\
             certificate = {cert}\nprivate_key = {key}\ndefault_md = sha256\n\
             default_crl_days = 30\n",
            db = d.join("index.txt").display(),
            num = d.join("crlnumber").display(),
            cert = d.join("ca.pem").display(),
            key = d.join("ca.key").display(),
        ),
    )
    .unwrap();
    std::fs::write(d.join("index.txt"), "").unwrap();
    std::fs::write(d.join("crlnumber"), "01\n").unwrap();
    cfg
}

impl Pki {
    fn new() -> Pki {
        Pki::named("baculink CRL test CA")
    }

    fn named(ca_cn: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ca = Ca::new(ca_cn).unwrap();
        write_cert_pem(&d.join("ca.pem"), &ca.cert).unwrap();
        write_key_pem(&d.join("ca.key"), &ca.key).unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let leaf = |name: &str, cn: &str| {
            let (c, k) = ca
                .issue_spec(&LeafSpec::new(cn, &["localhost"], &[lo], 30))
                .unwrap();
            let (cert, key) = write_pem_files(d, name, &c, &k).unwrap();
            Pair { cert, key }
        };
        let revoked = leaf("revoked", "bacula-fd");
        let good = leaf("good", "bacula-dir");
        let cfg = ca_config(d);
        let cfg = s(&cfg);
        openssl(&[
            "ca",
            "-config",
            &cfg,
            "-batch",
            "-revoke",
            &s(&revoked.cert),
        ]);
        let crl = d.join("ca.crl");
        openssl(&["ca", "-config", &cfg, "-batch", "-gencrl", "-out", &s(&crl)]);
        Pki {
            ca: d.join("ca.pem"),
            dir,
            revoked,
            good,
            crl,
        }
    }

    fn settings(&self, pair: &Pair) -> TlsSettings {
        TlsSettings {
            enable: true,
            ca_file: Some(self.ca.clone()),
            crl_file: Some(self.crl.clone()),
            certificate: Some(pair.cert.clone()),
            key: Some(pair.key.clone()),
            ..TlsSettings::default()
        }
    }
}

/// `s_client` presenting `client` against our server (CA + CRL, verify peer on).
async fn s_client_to_us(pki: &Pki, client: &Pair) -> Result<SessionFacts, TlsError> {
    let ctx = CertContext::new(&pki.settings(&pki.good), TlsRole::Server).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (ca, cert, key) = (s(&pki.ca), s(&client.cert), s(&client.key));
    let mut peer = Peer::s_client(
        port,
        &[
            "-CAfile",
            &ca,
            "-cert",
            &cert,
            "-key",
            &key,
            "-verify_return_error",
        ],
    );
    peer.send("ping\n").await;
    let (tcp, _) = within("accept", l.accept()).await.unwrap();
    let mut st = within("accept_cert", accept_cert(&ctx, tcp, &[])).await?;
    let f = SessionFacts::from_ssl(st.ssl(), Mode::Tls);
    assert_eq!(read_line(&mut st).await, "ping");
    st.write_all(b"pong\n").await.unwrap();
    peer.wait_line("our reply", |l| l.contains("pong")).await;
    Ok(f)
}

/// Our client (CA + CRL, presenting the good leaf) against `s_server` presenting `server`.
async fn us_to_s_server(pki: &Pki, server: &Pair) -> Result<SessionFacts, TlsError> {
    let ctx = CertContext::new(&pki.settings(&pki.good), TlsRole::Client).unwrap();
    let (cert, key) = (s(&server.cert), s(&server.key));
    let (peer, port) = Peer::s_server(&["-cert", &cert, "-key", &key, "-rev"]).await;
    let mut st = within(
        "connect",
        connect_cert(&ctx, tcp(port).await, "127.0.0.1", &[]),
    )
    .await?;
    let f = SessionFacts::from_ssl(st.ssl(), Mode::Tls);
    st.write_all(b"hello\n").await.unwrap();
    assert_eq!(read_line(&mut st).await, "olleh", "{}", peer.output());
    Ok(f)
}

fn assert_revoked(e: TlsError) {
    match &e {
        TlsError::Verify { reason, depth, .. } => {
            assert!(reason.contains("certificate revoked"), "{e}");
            assert_eq!(*depth, Some(0), "{e}");
        }
        _ => panic!("expected a revoked-certificate refusal, got {e:?}"),
    }
}

#[tokio::test]
async fn our_server_refuses_revoked_client_certificate() {
    require_openssl!();
    let pki = Pki::new();
    let e = s_client_to_us(&pki, &pki.revoked).await.unwrap_err();
    assert_revoked(e);
    // The same CA's unrevoked certificate passes the same CRL check.
    let f = s_client_to_us(&pki, &pki.good).await.expect("good client");
    assert_eq!(f.peer_subject.as_deref(), Some("O=baculink, CN=bacula-dir"));
}

#[tokio::test]
async fn our_client_refuses_revoked_server_certificate() {
    require_openssl!();
    let pki = Pki::new();
    let e = us_to_s_server(&pki, &pki.revoked).await.unwrap_err();
    assert_revoked(e);
    us_to_s_server(&pki, &pki.good).await.expect("good server");
}

#[tokio::test]
async fn without_the_directive_the_revoked_certificate_still_verifies() {
    require_openssl!();
    // Proves the refusal above comes from the CRL, not from the certificate itself.
    let pki = Pki::new();
    let mut set = pki.settings(&pki.good);
    set.crl_file = None;
    let ctx = CertContext::new(&set, TlsRole::Client).unwrap();
    let (cert, key) = (s(&pki.revoked.cert), s(&pki.revoked.key));
    let (_peer, port) = Peer::s_server(&["-cert", &cert, "-key", &key, "-rev"]).await;
    within(
        "connect",
        connect_cert(&ctx, tcp(port).await, "127.0.0.1", &[]),
    )
    .await
    .expect("no CRL configured");
}

#[tokio::test]
async fn crl_of_another_ca_refuses_peers_it_cannot_vouch_for() {
    require_openssl!();
    // Only a CRL from another CA: OpenSSL cannot tell whether our peer is revoked, and
    // refuses it rather than guessing.
    let pki = Pki::new();
    let other = Pki::named("another CA");
    let mut set = pki.settings(&pki.good);
    set.crl_file = Some(other.crl.clone());
    let ctx = CertContext::new(&set, TlsRole::Client).unwrap();
    let (cert, key) = (s(&pki.good.cert), s(&pki.good.key));
    let (_peer, port) = Peer::s_server(&["-cert", &cert, "-key", &key, "-rev"]).await;
    let e = within(
        "connect",
        connect_cert(&ctx, tcp(port).await, "127.0.0.1", &[]),
    )
    .await
    .unwrap_err();
    match &e {
        TlsError::Verify { reason, .. } => {
            assert!(reason.contains("unable to get certificate CRL"), "{e}")
        }
        _ => panic!("{e:?}"),
    }
}

#[test]
fn unreadable_or_garbled_crl_is_a_load_error() {
    if !common::need_openssl() {
        return;
    }
    let pki = Pki::new();
    let mut set = pki.settings(&pki.good);
    let missing = pki.dir.path().join("nope.crl");
    set.crl_file = Some(missing.clone());
    let e = CertContext::new(&set, TlsRole::Server).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "TLS Certificate Revocation List \"{}\": no such file",
            missing.display()
        )
    );
    // A certificate is not a CRL.
    set.crl_file = Some(pki.ca.clone());
    let e = CertContext::new(&set, TlsRole::Client).unwrap_err();
    assert!(
        e.to_string()
            .contains("no PEM CRL (-----BEGIN X509 CRL-----) found"),
        "{e}"
    );
    let bad = pki.dir.path().join("bad.crl");
    std::fs::write(
        &bad,
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    )
    .unwrap();
    set.crl_file = Some(bad);
    let e = CertContext::new(&set, TlsRole::Client).unwrap_err();
    assert!(e.to_string().contains("not a PEM CRL"), "{e}");
}
