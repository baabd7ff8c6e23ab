//! TLS records through our AES-GCM provider against the real `openssl`
//! tool: TLS 1.3 with PSK and certificates, TLS 1.2 with certificates, both
//! key sizes. Counts the records the provider handled, so a session that
//! silently used OpenSSL's own AES-GCM fails.

mod common;

use baculink_conf::tls::TlsRole;
use baculink_proto::negotiate::Mode;
use baculink_proto::Secret;
use baculink_tls::{connect_cert, connect_psk, gcm, CertContext, SessionFacts};
use common::{hex, read_line, s, tcp, within, Fixture, Peer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

const LINES: usize = 40;

/// Sends lines to `s_server -rev`, checks each comes back reversed.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, peer: &Peer) {
    for i in 0..LINES {
        let line = format!("{i:04} {}", "baculink ".repeat(100));
        s.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        let back: String = line.chars().rev().collect();
        assert_eq!(
            read_line(s).await,
            back,
            "s_server output:\n{}",
            peer.output()
        );
    }
}

/// Runs `session`, and requires the provider to have handled at least one
/// record per line each way.
async fn through_provider<F: std::future::Future<Output = SessionFacts>>(
    session: F,
) -> SessionFacts {
    let before = gcm::records();
    let facts = session.await;
    let handled = gcm::records() - before;
    assert!(
        handled >= 2 * LINES as u64,
        "{} / {}: only {handled} records through the provider",
        facts.version,
        facts.cipher
    );
    facts
}

#[tokio::test]
async fn sessions_against_openssl_use_the_provider() {
    require_openssl!();
    if !gcm::active() {
        eprintln!("SKIPPED: the AES-GCM provider is not active with this OpenSSL");
        return;
    }
    // TLS 1.3 PSK, AES-128-GCM: the bulk path between Bacula 13 peers.
    let key = Secret::from_password("console-pass-13");
    let f = through_provider(async {
        let k = hex(key.expose());
        let (peer, port) = Peer::s_server(&["-psk", &k, "-nocert", "-rev"]).await;
        let mut st = within("PSK connect", connect_psk(&key, tcp(port).await))
            .await
            .unwrap();
        exchange(&mut st, &peer).await;
        SessionFacts::from_ssl(st.ssl(), Mode::Psk)
    })
    .await;
    assert_eq!(
        (f.version.as_str(), f.cipher.as_str()),
        ("TLSv1.3", "TLS_AES_128_GCM_SHA256")
    );

    // Certificates: TLS 1.3 with AES-256-GCM, TLS 1.2 with both key sizes.
    let fx = Fixture::new();
    let ctx = CertContext::new(&fx.settings(Some(&fx.client)), TlsRole::Client).unwrap();
    for (extra, version, cipher) in [
        (
            &["-ciphersuites", "TLS_AES_256_GCM_SHA384"][..],
            "TLSv1.3",
            "TLS_AES_256_GCM_SHA384",
        ),
        (
            &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"][..],
            "TLSv1.2",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
        ),
        (
            &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"][..],
            "TLSv1.2",
            "ECDHE-ECDSA-AES256-GCM-SHA384",
        ),
    ] {
        let f = through_provider(async {
            let (cert, k, ca) = (s(&fx.server.cert), s(&fx.server.key), s(&fx.ca));
            let mut args = vec![
                "-cert", &cert, "-key", &k, "-CAfile", &ca, "-Verify", "1", "-rev",
            ];
            args.extend_from_slice(extra);
            let (peer, port) = Peer::s_server(&args).await;
            let mut st = within(
                "certificate connect",
                connect_cert(&ctx, tcp(port).await, "127.0.0.1", &[]),
            )
            .await
            .unwrap();
            exchange(&mut st, &peer).await;
            SessionFacts::from_ssl(st.ssl(), Mode::Tls)
        })
        .await;
        assert_eq!((f.version.as_str(), f.cipher.as_str()), (version, cipher));
    }
}
