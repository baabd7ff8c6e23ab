//! TLS-PSK against the real `openssl s_server` / `s_client` (protocol.md §7.5).

mod common;

use baculink_proto::negotiate::Mode;
use baculink_proto::Secret;
use baculink_tls::{accept_psk, connect_psk, SessionFacts, TlsError};
use common::{hex, read_line, tcp, within, Peer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

fn key() -> Secret {
    // The key Bacula derives from the password `console-pass-13` (protocol.md §7.2).
    Secret::from_password("console-pass-13")
}

fn wrong_key() -> Secret {
    Secret::from_password("not-the-password")
}

/// Our client against `s_server -psk -nocert -rev`; returns the session facts.
async fn client_vs_s_server(
    server_extra: &[&str],
    client_key: &Secret,
) -> Result<SessionFacts, TlsError> {
    let k = hex(key().expose());
    let mut args = vec!["-psk", k.as_str(), "-nocert", "-rev"];
    args.extend_from_slice(server_extra);
    let (peer, port) = Peer::s_server(&args).await;
    let tcp = tcp(port).await;
    let res = within("PSK connect", connect_psk(client_key, tcp)).await;
    let mut s = match res {
        Ok(s) => s,
        Err(e) => {
            drop(peer);
            return Err(e);
        }
    };
    let facts = SessionFacts::from_ssl(s.ssl(), Mode::Psk);
    s.write_all(b"hello baculink\n").await.unwrap();
    let line = read_line(&mut s).await;
    assert_eq!(
        line,
        "knilucab olleh",
        "s_server output:\n{}",
        peer.output()
    );
    Ok(facts)
}

#[tokio::test]
async fn our_client_tls13_against_s_server() {
    require_openssl!();
    let f = client_vs_s_server(&[], &key()).await.expect("handshake");
    assert_eq!(f.mode, Mode::Psk);
    assert_eq!(f.version, "TLSv1.3");
    assert!(f.cipher.ends_with("SHA256"), "{}", f.cipher);
    assert_eq!(f.cipher, "TLS_AES_128_GCM_SHA256");
    assert_eq!(f.peer_subject, None);
}

#[tokio::test]
async fn our_client_tls12_against_s_server() {
    require_openssl!();
    let f = client_vs_s_server(&["-tls1_2", "-cipher", "PSK-AES256-CBC-SHA"], &key())
        .await
        .expect("handshake");
    assert_eq!(f.version, "TLSv1.2");
    assert_eq!(f.cipher, "PSK-AES256-CBC-SHA");
}

#[tokio::test]
async fn our_client_wrong_key_tls13() {
    require_openssl!();
    let e = client_vs_s_server(&[], &wrong_key()).await.unwrap_err();
    assert!(matches!(e, TlsError::PskMismatch), "{e:?}");
    assert_eq!(
        e.to_string(),
        "TLS-PSK handshake failed: the peer's key differs (wrong password?)"
    );
}

#[tokio::test]
async fn our_client_wrong_key_tls12() {
    require_openssl!();
    let e = client_vs_s_server(&["-tls1_2", "-cipher", "PSK-AES256-CBC-SHA"], &wrong_key())
        .await
        .unwrap_err();
    assert!(matches!(e, TlsError::PskMismatch), "{e:?}");
}

/// `s_client -psk` against our server; proves data flows both ways.
async fn s_client_vs_our_server(
    client_extra: &[&str],
    client_key: &Secret,
) -> Result<SessionFacts, TlsError> {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let k = hex(client_key.expose());
    let mut args = vec!["-psk", k.as_str()];
    args.extend_from_slice(client_extra);
    let mut peer = Peer::s_client(port, &args);
    peer.send("ping from s_client\n").await;
    let (tcp, _) = within("accept", l.accept()).await.unwrap();
    let mut s = within("PSK accept", accept_psk(&key(), tcp)).await?;
    let facts = SessionFacts::from_ssl(s.ssl(), Mode::Psk);
    assert_eq!(read_line(&mut s).await, "ping from s_client");
    s.write_all(b"pong from baculink\n").await.unwrap();
    s.flush().await.unwrap();
    peer.wait_line("our reply", |l| l.contains("pong from baculink"))
        .await;
    Ok(facts)
}

#[tokio::test]
async fn s_client_tls13_against_our_server() {
    require_openssl!();
    let f = s_client_vs_our_server(&[], &key())
        .await
        .expect("handshake");
    assert_eq!(f.version, "TLSv1.3");
    // Like a Bacula server: the first SHA-256 suite in the client's order (protocol.md §7.3).
    assert_eq!(f.cipher, "TLS_CHACHA20_POLY1305_SHA256");
}

#[tokio::test]
async fn s_client_other_identity_against_our_server() {
    require_openssl!();
    // Bacula servers take any identity; so do we.
    let f = s_client_vs_our_server(&["-psk_identity", "foo"], &key())
        .await
        .expect("handshake");
    assert_eq!(f.version, "TLSv1.3");
}

#[tokio::test]
async fn s_client_tls12_against_our_server() {
    require_openssl!();
    let f = s_client_vs_our_server(&["-tls1_2", "-cipher", "PSK-AES256-CBC-SHA"], &key())
        .await
        .expect("handshake");
    assert_eq!(f.version, "TLSv1.2");
    assert_eq!(f.cipher, "PSK-AES256-CBC-SHA");
}

#[tokio::test]
async fn s_client_wrong_key_tls13() {
    require_openssl!();
    let e = s_client_vs_our_server(&[], &wrong_key()).await.unwrap_err();
    assert!(matches!(e, TlsError::PskMismatch), "{e:?}");
}

#[tokio::test]
async fn s_client_wrong_key_tls12() {
    require_openssl!();
    let e = s_client_vs_our_server(&["-tls1_2", "-cipher", "PSK-AES256-CBC-SHA"], &wrong_key())
        .await
        .unwrap_err();
    assert!(matches!(e, TlsError::PskMismatch), "{e:?}");
}

#[tokio::test]
async fn session_key_of_39_bytes() {
    require_openssl!();
    // FD <-> SD use the job session key as PSK (protocol.md §7.2).
    let sk = Secret::new(&b"EOGO-NOMD-DAIO-FMAI-CFFJ-LHBP-GJJA-HLJH"[..]);
    let k = hex(sk.expose());
    let (_peer, port) = Peer::s_server(&["-psk", &k, "-nocert", "-rev"]).await;
    let mut s = within("connect", connect_psk(&sk, tcp(port).await))
        .await
        .unwrap();
    s.write_all(b"abc\n").await.unwrap();
    assert_eq!(read_line(&mut s).await, "cba");
}
