//! Certificate TLS against the real `openssl s_server` / `s_client` (protocol.md §6).

mod common;

use baculink_conf::tls::TlsRole;
use baculink_proto::negotiate::Mode;
use baculink_tls::{accept_cert, connect_cert, CertContext, SessionFacts, TlsError};
use common::{read_line, s, tcp, within, Fixture, Pair, Peer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// `s_server` presenting `pair`, demanding a client certificate from our CA.
async fn s_server_with(fx: &Fixture, pair: &Pair) -> (Peer, u16) {
    let (cert, key, ca) = (s(&pair.cert), s(&pair.key), s(&fx.ca));
    Peer::s_server(&[
        "-cert", &cert, "-key", &key, "-CAfile", &ca, "-Verify", "1", "-rev",
    ])
    .await
}

/// Our client (certificate `bacula-fd`) to `s_server` presenting `pair`.
async fn connect_to(
    fx: &Fixture,
    pair: &Pair,
    host: &str,
    allowed: &[String],
) -> Result<SessionFacts, TlsError> {
    let ctx = CertContext::new(&fx.settings(Some(&fx.client)), TlsRole::Client).unwrap();
    let (peer, port) = s_server_with(fx, pair).await;
    let mut st = within(
        "connect",
        connect_cert(&ctx, tcp(port).await, host, allowed),
    )
    .await?;
    let facts = SessionFacts::from_ssl(st.ssl(), Mode::Tls);
    st.write_all(b"hello\n").await.unwrap();
    assert_eq!(
        read_line(&mut st).await,
        "olleh",
        "s_server output:\n{}",
        peer.output()
    );
    Ok(facts)
}

#[tokio::test]
async fn our_client_against_s_server() {
    require_openssl!();
    let fx = Fixture::new();
    let f = connect_to(&fx, &fx.server, "127.0.0.1", &[])
        .await
        .expect("handshake");
    assert_eq!(f.mode, Mode::Tls);
    assert_eq!(f.version, "TLSv1.3");
    assert!(!f.cipher.is_empty());
    assert_eq!(f.peer_subject.as_deref(), Some("O=baculink, CN=bacula-dir"));
    assert!(f.peer_not_after.is_some());
    let days = f.peer_days_left.unwrap();
    assert!((29..=30).contains(&days), "{days}");
}

#[tokio::test]
async fn our_client_by_dns_name() {
    require_openssl!();
    let fx = Fixture::new();
    connect_to(&fx, &fx.server, "localhost", &[])
        .await
        .expect("handshake");
    connect_to(&fx, &fx.server, "BACULA-DIR.example", &[])
        .await
        .expect("case-insensitive");
}

#[tokio::test]
async fn loopback_ip_accepts_localhost_certificate() {
    require_openssl!();
    let fx = Fixture::new();
    // No IP SAN, only DNS:localhost: Bacula's 127.0.0.1 -> localhost second chance.
    connect_to(&fx, &fx.localhost_only, "127.0.0.1", &[])
        .await
        .expect("handshake");
}

#[tokio::test]
async fn our_client_rejects_unknown_ca() {
    require_openssl!();
    let fx = Fixture::new();
    let e = connect_to(&fx, &fx.rogue, "127.0.0.1", &[])
        .await
        .unwrap_err();
    match &e {
        TlsError::Verify { reason, .. } => {
            assert!(
                reason.contains("unable to get local issuer certificate"),
                "{e}"
            )
        }
        _ => panic!("{e:?}"),
    }
}

#[tokio::test]
async fn our_client_rejects_expired() {
    require_openssl!();
    let fx = Fixture::new();
    let e = connect_to(&fx, &fx.expired, "127.0.0.1", &[])
        .await
        .unwrap_err();
    match &e {
        TlsError::Verify { reason, .. } => {
            assert!(reason.contains("certificate has expired"), "{e}")
        }
        _ => panic!("{e:?}"),
    }
}

#[tokio::test]
async fn our_client_host_mismatch() {
    require_openssl!();
    let fx = Fixture::new();
    for host in ["127.0.0.1", "localhost"] {
        let e = connect_to(&fx, &fx.other_host, host, &[])
            .await
            .unwrap_err();
        match &e {
            TlsError::HostMismatch { host: h, names } => {
                assert_eq!(h, host);
                assert!(
                    names.contains(&"DNS:other.example".to_string()),
                    "{names:?}"
                );
                assert!(names.contains(&"CN=other.example".to_string()), "{names:?}");
            }
            _ => panic!("{e:?}"),
        }
    }
}

#[tokio::test]
async fn our_client_allowed_cn_replaces_host_check() {
    require_openssl!();
    let fx = Fixture::new();
    // Host does not match, but the Allowed CN list does: accepted (Bacula 9.6 Director -> FD).
    connect_to(&fx, &fx.other_host, "127.0.0.1", &["OTHER.example".into()])
        .await
        .expect("allowed CN");
    let e = connect_to(&fx, &fx.server, "127.0.0.1", &["bacula-sd".into()])
        .await
        .unwrap_err();
    match &e {
        TlsError::AllowedCn { peer, allowed } => {
            assert!(peer.contains(&"bacula-dir".to_string()), "{peer:?}");
            assert_eq!(allowed, &vec!["bacula-sd".to_string()]);
        }
        _ => panic!("{e:?}"),
    }
}

/// `s_client` with `client_pair` against our server; data both ways.
async fn s_client_to_us(
    fx: &Fixture,
    client_pair: Option<&Pair>,
    allowed: &[String],
) -> Result<SessionFacts, TlsError> {
    let ctx = CertContext::new(&fx.settings(Some(&fx.server)), TlsRole::Server).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let ca = s(&fx.ca);
    let mut args: Vec<String> = vec!["-CAfile".into(), ca, "-verify_return_error".into()];
    if let Some(p) = client_pair {
        args.extend(["-cert".into(), s(&p.cert), "-key".into(), s(&p.key)]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut peer = Peer::s_client(port, &args);
    peer.send("ping\n").await;
    let (tcp, _) = within("accept", l.accept()).await.unwrap();
    let mut st = within("accept_cert", accept_cert(&ctx, tcp, allowed)).await?;
    let facts = SessionFacts::from_ssl(st.ssl(), Mode::Tls);
    assert_eq!(read_line(&mut st).await, "ping");
    st.write_all(b"pong\n").await.unwrap();
    peer.wait_line("our reply", |l| l.contains("pong")).await;
    Ok(facts)
}

#[tokio::test]
async fn s_client_against_our_server() {
    require_openssl!();
    let fx = Fixture::new();
    let f = s_client_to_us(&fx, Some(&fx.client), &[])
        .await
        .expect("handshake");
    assert_eq!(f.version, "TLSv1.3");
    assert_eq!(f.peer_subject.as_deref(), Some("O=baculink, CN=bacula-fd"));
}

#[tokio::test]
async fn our_server_allowed_cn() {
    require_openssl!();
    let fx = Fixture::new();
    s_client_to_us(&fx, Some(&fx.client), &["Bacula-FD".into()])
        .await
        .expect("allowed");
    let e = s_client_to_us(
        &fx,
        Some(&fx.client),
        &["bacula-dir".into(), "bacula-sd".into()],
    )
    .await
    .unwrap_err();
    match &e {
        TlsError::AllowedCn { peer, allowed } => {
            assert_eq!(peer, &vec!["bacula-fd".to_string()]);
            assert_eq!(allowed.len(), 2);
        }
        _ => panic!("{e:?}"),
    }
}

#[tokio::test]
async fn our_server_rejects_client_from_other_ca() {
    require_openssl!();
    let fx = Fixture::new();
    let e = s_client_to_us(&fx, Some(&fx.rogue), &[]).await.unwrap_err();
    match &e {
        TlsError::Verify { reason, .. } => {
            assert!(
                reason.contains("unable to get local issuer certificate"),
                "{e}"
            )
        }
        _ => panic!("{e:?}"),
    }
}

#[tokio::test]
async fn our_server_requires_client_certificate() {
    require_openssl!();
    let fx = Fixture::new();
    let e = s_client_to_us(&fx, None, &[]).await.unwrap_err();
    assert!(matches!(e, TlsError::NoPeerCertificate), "{e:?}");
}

#[tokio::test]
async fn dsaparam_1024_dh_file_refused() {
    require_openssl!();
    let fx = Fixture::new();
    let dh = fx.dir.path().join("dh1024.pem");
    let st = std::process::Command::new("openssl")
        .args(["dhparam", "-dsaparam", "-out", &s(&dh), "1024"])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let mut set = fx.settings(Some(&fx.server));
    set.dh_file = Some(dh.clone());
    let e = CertContext::new(&set, TlsRole::Server).unwrap_err();
    match &e {
        TlsError::Config {
            directive,
            path,
            reason,
        } => {
            assert_eq!(*directive, "DH File");
            assert_eq!(path, &dh.display().to_string());
            assert!(reason.contains("1024 bits"), "{e}");
        }
        _ => panic!("{e:?}"),
    }
}

#[tokio::test]
async fn tls12_dhe_with_dh_file_against_s_client() {
    require_openssl!();
    // With the ffdhe2048 file a finite-field DHE suite works in TLS 1.2 (needs an RSA key).
    use baculink_tls::certgen::{
        write_cert_pem, write_dh_file, write_pem_files, Ca, KeyKind, LeafSpec,
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("rsa test CA").unwrap();
    let ca_path = dir.path().join("ca.pem");
    write_cert_pem(&ca_path, &ca.cert).unwrap();
    let mut spec = LeafSpec::new("bacula-sd", &["localhost"], &[], 5);
    spec.key = KeyKind::Rsa(2048);
    let (c, k) = ca.issue_spec(&spec).unwrap();
    let (cert, key) = write_pem_files(dir.path(), "sd", &c, &k).unwrap();
    let dh = dir.path().join("dh.pem");
    write_dh_file(&dh).unwrap();
    let set = baculink_conf::TlsSettings {
        enable: true,
        verify_peer: false,
        certificate: Some(cert),
        key: Some(key),
        dh_file: Some(dh),
        ..Default::default()
    };
    let ctx = CertContext::new(&set, TlsRole::Server).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let ca_s = s(&ca_path);
    let mut peer = Peer::s_client(
        port,
        &[
            "-tls1_2",
            "-cipher",
            "DHE-RSA-AES128-GCM-SHA256",
            "-CAfile",
            &ca_s,
            "-verify_return_error",
        ],
    );
    peer.send("ping\n").await;
    let (tcp, _) = within("accept", l.accept()).await.unwrap();
    let mut st = within("accept_cert", accept_cert(&ctx, tcp, &[]))
        .await
        .unwrap();
    let f = SessionFacts::from_ssl(st.ssl(), Mode::Tls);
    assert_eq!(f.version, "TLSv1.2");
    assert_eq!(f.cipher, "DHE-RSA-AES128-GCM-SHA256");
    assert_eq!(f.peer_subject, None);
    assert_eq!(read_line(&mut st).await, "ping");
}
