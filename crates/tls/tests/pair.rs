//! Our client against our server, both modes, including dropping TLS mid-stream.

mod common;

use baculink_conf::tls::TlsRole;
use baculink_proto::negotiate::Mode;
use baculink_proto::Secret;
use baculink_tls::{
    accept_cert, accept_psk, connect_cert, connect_cert_with, connect_psk, detach, CertContext,
    ConnectOptions, Detachable, SessionFacts, TlsError,
};
use common::{read_line, within, Fixture, Pair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
    (c.unwrap(), s.unwrap().0)
}

#[tokio::test]
async fn psk_pair_with_data() {
    let (c, s) = tcp_pair().await;
    let key = Secret::from_password("fd-pass-13");
    let (cr, sr) = within("handshake", async {
        tokio::join!(connect_psk(&key, c), accept_psk(&key, s))
    })
    .await;
    let (mut c, mut s) = (cr.unwrap(), sr.unwrap());
    let fc = SessionFacts::from_ssl(c.ssl(), Mode::Psk);
    let fs = SessionFacts::from_ssl(s.ssl(), Mode::Psk);
    assert_eq!(fc.version, "TLSv1.3");
    assert_eq!(fc.cipher, "TLS_AES_128_GCM_SHA256");
    assert_eq!(fc, fs);
    c.write_all(b"Hello *UserAgent* calling\n").await.unwrap();
    assert_eq!(read_line(&mut s).await, "Hello *UserAgent* calling");
    s.write_all(b"1000 OK auth\n").await.unwrap();
    assert_eq!(read_line(&mut c).await, "1000 OK auth");
}

#[tokio::test]
async fn psk_pair_wrong_key() {
    let (c, s) = tcp_pair().await;
    let (a, b) = (Secret::from_password("one"), Secret::from_password("two"));
    let (cr, sr) = within("handshake", async {
        tokio::join!(connect_psk(&a, c), accept_psk(&b, s))
    })
    .await;
    assert!(matches!(cr, Err(TlsError::PskMismatch)), "{cr:?}");
    assert!(matches!(sr, Err(TlsError::PskMismatch)), "{sr:?}");
}

#[tokio::test]
async fn psk_rejects_empty_key() {
    let (c, _s) = tcp_pair().await;
    let e = connect_psk(&Secret::new(Vec::new()), c).await.unwrap_err();
    assert!(matches!(e, TlsError::Setup(_)), "{e:?}");
}

async fn cert_pair(
    fx: &Fixture,
    server: &Pair,
    client: Option<&Pair>,
    host: &str,
) -> (
    Result<SessionFacts, TlsError>,
    Result<SessionFacts, TlsError>,
) {
    let sctx = CertContext::new(&fx.settings(Some(server)), TlsRole::Server).unwrap();
    let cctx = CertContext::new(&fx.settings(client), TlsRole::Client).unwrap();
    let (c, s) = tcp_pair().await;
    let (cr, sr) = within("handshake", async {
        tokio::join!(
            connect_cert(&cctx, c, host, &[]),
            accept_cert(&sctx, s, &[])
        )
    })
    .await;
    let mut cs = match cr {
        Ok(x) => x,
        Err(e) => {
            return (
                Err(e),
                sr.map(|x| SessionFacts::from_ssl(x.ssl(), Mode::Tls)),
            )
        }
    };
    let mut ss = match sr {
        Ok(x) => x,
        Err(e) => return (Ok(SessionFacts::from_ssl(cs.ssl(), Mode::Tls)), Err(e)),
    };
    cs.write_all(b"ping\n").await.unwrap();
    assert_eq!(read_line(&mut ss).await, "ping");
    ss.write_all(b"pong\n").await.unwrap();
    assert_eq!(read_line(&mut cs).await, "pong");
    (
        Ok(SessionFacts::from_ssl(cs.ssl(), Mode::Tls)),
        Ok(SessionFacts::from_ssl(ss.ssl(), Mode::Tls)),
    )
}

#[tokio::test]
async fn cert_pair_with_data() {
    let fx = Fixture::new();
    let (c, s) = cert_pair(&fx, &fx.server, Some(&fx.client), "127.0.0.1").await;
    let (c, s) = (c.unwrap(), s.unwrap());
    assert_eq!(c.version, "TLSv1.3");
    assert_eq!(c.peer_subject.as_deref(), Some("O=baculink, CN=bacula-dir"));
    assert_eq!(s.peer_subject.as_deref(), Some("O=baculink, CN=bacula-fd"));
}

#[tokio::test]
async fn cert_pair_localhost_rule_and_mismatch() {
    let fx = Fixture::new();
    let (c, _) = cert_pair(&fx, &fx.localhost_only, Some(&fx.client), "127.0.0.1").await;
    c.unwrap();
    let (c, _) = cert_pair(&fx, &fx.localhost_only, Some(&fx.client), "127.0.0.2").await;
    assert!(matches!(c, Err(TlsError::HostMismatch { .. })), "{c:?}");
    let (c, _) = cert_pair(&fx, &fx.other_host, Some(&fx.client), "bacula-dir.example").await;
    assert!(matches!(c, Err(TlsError::HostMismatch { .. })), "{c:?}");
}

#[tokio::test]
async fn cert_pair_server_rejects_foreign_client() {
    let fx = Fixture::new();
    // TLS 1.3: the client finishes before the server judges its certificate.
    let (_, s) = cert_pair(&fx, &fx.server, Some(&fx.rogue), "127.0.0.1").await;
    assert!(matches!(s, Err(TlsError::Verify { .. })), "{s:?}");
    let (_, s) = cert_pair(&fx, &fx.server, None, "127.0.0.1").await;
    assert!(matches!(s, Err(TlsError::NoPeerCertificate)), "{s:?}");
}

/// TLS only for the login, then clear text on the same socket (protocol.md §5.8).
async fn detach_roundtrip(psk: bool, tls12_only: bool) {
    let fx = Fixture::new();
    let (c, s) = tcp_pair().await;
    let (c, s) = (Detachable::new(c), Detachable::new(s));
    let key = Secret::from_password("pw");
    let sctx = CertContext::new(&fx.settings(Some(&fx.server)), TlsRole::Server).unwrap();
    let cctx = CertContext::new(&fx.settings(Some(&fx.client)), TlsRole::Client).unwrap();
    let (mut ct, mut st) = within("handshake", async {
        if psk {
            let (a, b) = tokio::join!(connect_psk(&key, c), accept_psk(&key, s));
            (a.unwrap(), b.unwrap())
        } else {
            let opts = ConnectOptions { tls12_only };
            let (a, b) = tokio::join!(
                connect_cert_with(&cctx, c, "localhost", &[], opts),
                accept_cert(&sctx, s, &[])
            );
            (a.unwrap(), b.unwrap())
        }
    })
    .await;
    let want = if tls12_only { "TLSv1.2" } else { "TLSv1.3" };
    assert_eq!(ct.ssl().version_str(), want);
    // Challenge/response inside TLS; the verdict is the last TLS packet.
    st.write_all(b"auth cram-md5\n").await.unwrap();
    assert_eq!(read_line(&mut ct).await, "auth cram-md5");
    ct.write_all(b"1000 OK auth\n").await.unwrap();
    ct.flush().await.unwrap();
    assert_eq!(read_line(&mut st).await, "1000 OK auth");
    let mut c = detach(ct).unwrap();
    let mut s = detach(st).unwrap();
    s.write_all(b"1000 OK: 103 bacula-dir Version\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 32];
    within("clear read", c.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"1000 OK: 103 bacula-dir Version\n");
    c.write_all(b"clear").await.unwrap();
    let mut buf = [0u8; 5];
    within("clear read", s.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"clear");
}

#[tokio::test]
async fn detach_after_psk_login() {
    detach_roundtrip(true, false).await;
}

#[tokio::test]
async fn detach_after_cert_login() {
    detach_roundtrip(false, false).await;
}

#[tokio::test]
async fn detach_after_cert_login_tls12() {
    detach_roundtrip(false, true).await;
}

#[tokio::test]
async fn detach_refuses_to_lose_data() {
    let (c, s) = tcp_pair().await;
    let key = Secret::from_password("pw");
    let (ct, st) = within("handshake", async {
        tokio::join!(
            connect_psk(&key, Detachable::new(c)),
            accept_psk(&key, Detachable::new(s))
        )
    })
    .await;
    let (mut ct, mut st) = (ct.unwrap(), st.unwrap());
    ct.write_all(b"0123456789").await.unwrap();
    let mut one = [0u8; 1];
    st.read_exact(&mut one).await.unwrap();
    let e = detach(st).unwrap_err();
    assert!(matches!(e, TlsError::Detach(9)), "{e:?}");
}
