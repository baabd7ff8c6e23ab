//! `TLS Protocol`, `TLS Cipher List` and `TLS Cipher Suites` against the real `openssl
//! s_server` / `s_client`, for certificate TLS and TLS-PSK, and the load-time refusals.

mod common;

use baculink_conf::tls::{TlsProtocol, TlsRole, TlsVersion};
use baculink_conf::TlsSettings;
use baculink_proto::negotiate::Mode;
use baculink_proto::Secret;
use baculink_tls::{
    accept_cert, cipher_names, connect_cert, connect_cert_with, weak_suites, CertContext,
    ConnectOptions, PskContext, PskPolicy, SessionFacts, TlsError,
};
use common::{hex, read_line, s, tcp, within, Fixture, Peer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

fn proto(p: &str) -> TlsProtocol {
    TlsProtocol::parse(p).unwrap()
}

/// Our certificate client with `set` against `s_server` (the fixture's server cert).
async fn us_to_s_server(
    fx: &Fixture,
    set: &TlsSettings,
    server_extra: &[&str],
) -> Result<SessionFacts, TlsError> {
    let ctx = CertContext::new(set, TlsRole::Client)?;
    let (cert, key) = (s(&fx.server.cert), s(&fx.server.key));
    let mut args = vec!["-cert", cert.as_str(), "-key", key.as_str(), "-rev"];
    args.extend_from_slice(server_extra);
    let (peer, port) = Peer::s_server(&args).await;
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

/// `s_client -brief` with `client_extra` against our certificate server with `set`
/// (verify peer off); our facts and everything s_client printed.
async fn s_client_to_us(
    set: &TlsSettings,
    client_extra: &[&str],
) -> (Result<SessionFacts, TlsError>, String) {
    let ctx = CertContext::new(set, TlsRole::Server).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let mut args = vec!["-brief"];
    args.extend_from_slice(client_extra);
    let mut peer = Peer::s_client(port, &args);
    peer.send("ping\n").await;
    let (tcp, _) = within("accept", l.accept()).await.unwrap();
    let res = match within("accept_cert", accept_cert(&ctx, tcp, &[])).await {
        Ok(mut st) => {
            let f = SessionFacts::from_ssl(st.ssl(), Mode::Tls);
            assert_eq!(read_line(&mut st).await, "ping");
            st.write_all(b"pong\n").await.unwrap();
            peer.wait_line("our reply", |l| l.contains("pong")).await;
            Ok(f)
        }
        Err(e) => Err(e),
    };
    (res, peer.output())
}

fn server_settings(fx: &Fixture) -> TlsSettings {
    TlsSettings {
        verify_peer: false,
        ..fx.settings(Some(&fx.server))
    }
}

// ---- TLS Protocol ----

#[tokio::test]
async fn protocol_max_tls12_negotiates_tls12_with_s_server() {
    require_openssl!();
    let fx = Fixture::new();
    let mut set = fx.settings(Some(&fx.client));
    let f = us_to_s_server(&fx, &set, &[]).await.unwrap();
    assert_eq!(f.version, "TLSv1.3", "the default prefers TLS 1.3");
    set.protocol = proto("max TLSv1.2");
    let f = us_to_s_server(&fx, &set, &[]).await.unwrap();
    assert_eq!(f.version, "TLSv1.2");
    set.protocol = proto("TLSv1.2");
    let f = us_to_s_server(&fx, &set, &[]).await.unwrap();
    assert_eq!(f.version, "TLSv1.2");
    assert!(f.cipher.starts_with("ECDHE-"), "{}", f.cipher);
}

#[tokio::test]
async fn protocol_min_tls13_refuses_s_server_capped_at_tls12() {
    require_openssl!();
    let fx = Fixture::new();
    let mut set = fx.settings(Some(&fx.client));
    set.protocol = proto("TLSv1.3+");
    let e = us_to_s_server(&fx, &set, &["-tls1_2"]).await.unwrap_err();
    match &e {
        TlsError::Handshake(r) => assert!(
            r.contains("protocol version") || r.contains("unsupported protocol"),
            "{e}"
        ),
        _ => panic!("{e:?}"),
    }
    // The same client with an s_server that allows TLS 1.3.
    let f = us_to_s_server(&fx, &set, &[]).await.unwrap();
    assert_eq!(f.version, "TLSv1.3");
}

#[tokio::test]
async fn our_server_honours_protocol_range() {
    require_openssl!();
    let fx = Fixture::new();
    let mut set = server_settings(&fx);
    set.protocol = proto("max TLSv1.2");
    let (f, out) = s_client_to_us(&set, &[]).await;
    assert_eq!(f.unwrap().version, "TLSv1.2");
    assert!(out.contains("Protocol version: TLSv1.2"), "{out}");
    set.protocol = proto("min TLSv1.3");
    let (f, _) = s_client_to_us(&set, &["-tls1_2"]).await;
    assert!(f.is_err(), "a TLS 1.2-only client must be refused");
}

#[tokio::test]
async fn tls12_only_option_conflicts_with_min_tls13() {
    require_openssl!();
    let fx = Fixture::new();
    let mut set = fx.settings(Some(&fx.client));
    set.protocol = proto("TLSv1.3");
    let ctx = CertContext::new(&set, TlsRole::Client).unwrap();
    assert_eq!(ctx.protocol(), set.protocol);
    let (_peer, port) =
        Peer::s_server(&["-cert", &s(&fx.server.cert), "-key", &s(&fx.server.key)]).await;
    let e = connect_cert_with(
        &ctx,
        tcp(port).await,
        "127.0.0.1",
        &[],
        ConnectOptions { tls12_only: true },
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "TLS Protocol: \"TLSv1.3\" excludes TLS 1.2, which a 9.6 peer needs for TLS Authenticate"
    );
}

// ---- TLS Cipher List ----

#[tokio::test]
async fn cipher_list_takes_effect() {
    require_openssl!();
    let fx = Fixture::new();
    let mut set = server_settings(&fx);
    set.cipher_list = Some("ECDHE+CHACHA20".into());
    set.protocol = proto("max TLSv1.2");
    let ctx = CertContext::new(&set, TlsRole::Server).unwrap();
    let names = cipher_names(ctx.server().unwrap());
    let tls12: Vec<&String> = names.iter().filter(|n| !n.starts_with("TLS_")).collect();
    assert_eq!(
        tls12,
        [
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            "ECDHE-RSA-CHACHA20-POLY1305"
        ],
        "only ECDHE ChaCha20 suites for TLS 1.2: {names:?}"
    );
    assert!(weak_suites(ctx.server().unwrap()).is_empty());

    let (f, out) = s_client_to_us(
        &set,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"],
    )
    .await;
    assert_eq!(f.unwrap().cipher, "ECDHE-ECDSA-CHACHA20-POLY1305");
    assert!(
        out.contains("Ciphersuite: ECDHE-ECDSA-CHACHA20-POLY1305"),
        "{out}"
    );
    // A suite our default list allows but this list excludes.
    let (f, _) = s_client_to_us(
        &set,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
    )
    .await;
    let e = f.unwrap_err();
    assert!(e.to_string().contains("no shared cipher"), "{e}");
}

#[test]
fn weak_cipher_lists_are_refused_at_load() {
    let fx = Fixture::new();
    for list in [
        "ALL",
        "aNULL",
        "ADH",
        "eNULL:@SECLEVEL=0",
        "NULL-SHA256:ECDHE+AESGCM",
        "AES128-GCM-SHA256",
        "kRSA",
        "ECDHE+AESGCM:AES256-SHA",
        "PSK",
        "ECDHE-PSK-CHACHA20-POLY1305",
        "DES-CBC3-SHA",
        "RC4",
        "MD5",
        "HIGH:@SECLEVEL=0",
        "ECDHE+AESGCM:@SECLEVEL=0",
        "no-such-cipher",
    ] {
        for role in [TlsRole::Server, TlsRole::Client] {
            let mut set = fx.settings(Some(&fx.server));
            set.cipher_list = Some(list.into());
            let e = CertContext::new(&set, role).unwrap_err();
            match &e {
                TlsError::Policy { directive, reason } => {
                    assert_eq!(*directive, "TLS Cipher List", "{list}: {e}");
                    assert!(reason.contains(list), "{list}: {e}");
                }
                _ => panic!("{list}: {e:?}"),
            }
        }
    }
    // What the refusal names: the suites and why.
    let mut set = fx.settings(Some(&fx.server));
    set.cipher_list = Some("ECDHE+AESGCM:AES256-GCM-SHA384:ADH-AES256-GCM-SHA384".into());
    let e = CertContext::new(&set, TlsRole::Server)
        .unwrap_err()
        .to_string();
    assert!(e.contains("AES256-GCM-SHA384 (no forward secrecy)"), "{e}");
    assert!(e.contains("ADH-AES256-GCM-SHA384 (anonymous"), "{e}");
    // Long lists are cut short.
    set.cipher_list = Some("ALL".into());
    let e = CertContext::new(&set, TlsRole::Server)
        .unwrap_err()
        .to_string();
    assert!(e.contains(" more;"), "{e}");
    set.cipher_list = Some("ECDHE+AESGCM:@SECLEVEL=0".into());
    let e = CertContext::new(&set, TlsRole::Server)
        .unwrap_err()
        .to_string();
    assert!(e.contains("security level to 0"), "{e}");
}

#[test]
fn strong_cipher_lists_load_and_defaults_have_no_weak_suite() {
    let fx = Fixture::new();
    for list in [
        "ECDHE+AESGCM",
        "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "HIGH:!aNULL:!kRSA:!PSK:!SRP:!SHA1:!SHA256:!SHA384:!CAMELLIA:!ARIA:!AESCCM",
    ] {
        let mut set = fx.settings(Some(&fx.server));
        set.cipher_list = Some(list.into());
        let ctx = CertContext::new(&set, TlsRole::Server).unwrap_or_else(|e| panic!("{list}: {e}"));
        assert!(weak_suites(ctx.server().unwrap()).is_empty());
    }
    let ctx = CertContext::new(&fx.settings(Some(&fx.server)), TlsRole::Server).unwrap();
    assert!(weak_suites(ctx.server().unwrap()).is_empty());
    assert!(weak_suites(ctx.client().unwrap()).is_empty());
}

#[test]
fn cipher_list_leaving_no_suite_for_the_only_version_is_refused() {
    let fx = Fixture::new();
    let mut set = fx.settings(Some(&fx.server));
    // DHE needs a DH file and an RSA key to be usable, but the list is simply empty
    // of TLS 1.2 suites once the kx filter removes everything.
    set.cipher_list = Some("ECDHE+AESGCM:!ECDHE".into());
    set.protocol = proto("max TLSv1.2");
    let e = CertContext::new(&set, TlsRole::Server).unwrap_err();
    assert!(matches!(e, TlsError::Policy { .. }), "{e:?}");
}

// ---- TLS Cipher Suites (certificates) ----

#[tokio::test]
async fn cipher_suites_take_effect_for_certificates() {
    require_openssl!();
    let fx = Fixture::new();
    let mut set = server_settings(&fx);
    set.cipher_suites = Some("TLS_CHACHA20_POLY1305_SHA256".into());
    let (f, out) = s_client_to_us(&set, &[]).await;
    let f = f.unwrap();
    assert_eq!(f.version, "TLSv1.3");
    assert_eq!(f.cipher, "TLS_CHACHA20_POLY1305_SHA256");
    assert!(
        out.contains("Ciphersuite: TLS_CHACHA20_POLY1305_SHA256"),
        "{out}"
    );
    let (f, _) = s_client_to_us(&set, &["-ciphersuites", "TLS_AES_256_GCM_SHA384"]).await;
    assert!(f.is_err());
    // Our client too.
    let mut cset = fx.settings(Some(&fx.client));
    cset.cipher_suites = Some("TLS_AES_256_GCM_SHA384".into());
    let f = us_to_s_server(&fx, &cset, &[]).await.unwrap();
    assert_eq!(f.cipher, "TLS_AES_256_GCM_SHA384");
}

#[test]
fn unknown_tls13_suite_is_refused_at_load() {
    let fx = Fixture::new();
    let mut set = fx.settings(Some(&fx.server));
    set.cipher_suites = Some("TLS_AES_128_GCM_SHA256:TLS_NO_SUCH_SHA256".into());
    let e = CertContext::new(&set, TlsRole::Server).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("TLS Cipher Suites: OpenSSL does not know TLS_NO_SUCH_SHA256"),
        "{e}"
    );
}

// ---- TLS-PSK ----

fn key() -> Secret {
    Secret::from_password("console-pass-13")
}

/// Our PSK client built for `set` against `s_server -psk -nocert`.
async fn psk_to_s_server(
    set: &TlsSettings,
    server_extra: &[&str],
) -> Result<SessionFacts, TlsError> {
    let ctx = PskContext::for_settings(set)?;
    let k = hex(key().expose());
    let mut args = vec!["-psk", k.as_str(), "-nocert", "-rev"];
    args.extend_from_slice(server_extra);
    let (peer, port) = Peer::s_server(&args).await;
    let mut st = within("PSK connect", ctx.connect(&key(), tcp(port).await)).await?;
    let f = SessionFacts::from_ssl(st.ssl(), Mode::Psk);
    st.write_all(b"hello\n").await.unwrap();
    assert_eq!(read_line(&mut st).await, "olleh", "{}", peer.output());
    Ok(f)
}

#[test]
fn psk_suites_without_sha256_are_refused_at_load() {
    let set = TlsSettings {
        cipher_suites: Some("TLS_AES_256_GCM_SHA384".into()),
        ..TlsSettings::default()
    };
    let e = PskContext::for_settings(&set).unwrap_err();
    match &e {
        TlsError::Policy { directive, reason } => {
            assert_eq!(*directive, "TLS Cipher Suites");
            assert!(
                reason.contains("no SHA-256 TLS 1.3 suite for TLS-PSK"),
                "{e}"
            );
        }
        _ => panic!("{e:?}"),
    }
    // Irrelevant when TLS 1.3 is excluded.
    let set = TlsSettings {
        protocol: proto("max TLSv1.2"),
        ..set
    };
    PskContext::for_settings(&set).unwrap();
}

#[tokio::test]
async fn psk_suites_with_sha256_are_used() {
    require_openssl!();
    let set = TlsSettings {
        cipher_suites: Some("TLS_CHACHA20_POLY1305_SHA256".into()),
        ..TlsSettings::default()
    };
    let f = psk_to_s_server(&set, &[]).await.unwrap();
    assert_eq!(
        (f.version.as_str(), f.cipher.as_str()),
        ("TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256")
    );
    // SHA-384 suites are dropped for PSK; the SHA-256 one carries the key.
    let set = TlsSettings {
        cipher_suites: Some("TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256".into()),
        ..TlsSettings::default()
    };
    assert_eq!(
        PskPolicy::from_settings(&set).cipher_suites.as_deref(),
        Some("TLS_AES_128_GCM_SHA256")
    );
    let f = psk_to_s_server(&set, &[]).await.unwrap();
    assert_eq!(f.cipher, "TLS_AES_128_GCM_SHA256");
}

#[tokio::test]
async fn psk_server_with_suites_against_s_client() {
    require_openssl!();
    let set = TlsSettings {
        cipher_suites: Some("TLS_CHACHA20_POLY1305_SHA256".into()),
        ..TlsSettings::default()
    };
    let ctx = PskContext::for_settings(&set).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let k = hex(key().expose());
    let mut peer = Peer::s_client(port, &["-brief", "-psk", &k]);
    peer.send("ping\n").await;
    let (tcp, _) = within("accept", l.accept()).await.unwrap();
    let mut st = within("PSK accept", ctx.accept(&key(), tcp)).await.unwrap();
    let f = SessionFacts::from_ssl(st.ssl(), Mode::Psk);
    assert_eq!(f.cipher, "TLS_CHACHA20_POLY1305_SHA256");
    assert_eq!(read_line(&mut st).await, "ping");
    st.write_all(b"pong\n").await.unwrap();
    peer.wait_line("our reply", |l| l.contains("pong")).await;
    assert!(
        peer.output()
            .contains("Ciphersuite: TLS_CHACHA20_POLY1305_SHA256"),
        "{}",
        peer.output()
    );
}

#[tokio::test]
async fn psk_protocol_range() {
    require_openssl!();
    let set = TlsSettings {
        protocol: proto("max TLSv1.2"),
        ..TlsSettings::default()
    };
    let f = psk_to_s_server(&set, &[]).await.unwrap();
    assert_eq!(
        (f.version.as_str(), f.cipher.as_str()),
        ("TLSv1.2", "PSK-AES256-CBC-SHA")
    );
    let set = TlsSettings {
        protocol: proto("TLSv1.3"),
        ..TlsSettings::default()
    };
    let e = psk_to_s_server(&set, &["-tls1_2"]).await.unwrap_err();
    assert!(matches!(e, TlsError::Handshake(_)), "{e:?}");
}

#[test]
fn psk_contexts_are_cached_per_policy() {
    use foreign_types::ForeignTypeRef;
    let a = PskContext::for_settings(&TlsSettings::default()).unwrap();
    let shared = PskContext::shared().unwrap();
    assert_eq!(a.client().as_ptr(), shared.client().as_ptr());
    let set = TlsSettings {
        protocol: proto("TLSv1.3"),
        ..TlsSettings::default()
    };
    let b = PskContext::for_settings(&set).unwrap();
    let c = PskContext::for_settings(&set).unwrap();
    assert_eq!(b.client().as_ptr(), c.client().as_ptr());
    assert_ne!(b.client().as_ptr(), a.client().as_ptr());
    // Only the policy matters: certificate directives do not split the cache.
    let d = PskContext::for_settings(&TlsSettings {
        enable: true,
        cipher_list: Some("ECDHE+AESGCM".into()),
        ..set.clone()
    })
    .unwrap();
    assert_eq!(b.server().as_ptr(), d.server().as_ptr());
    assert_eq!(set.protocol.min, TlsVersion::Tls13);
}

// ---- TLS Groups ----

fn with_groups(set: TlsSettings, groups: &str) -> TlsSettings {
    TlsSettings {
        groups: Some(groups.into()),
        ..set
    }
}

#[tokio::test]
async fn groups_decide_the_key_exchange_with_s_client() {
    require_openssl!();
    let fx = Fixture::new();
    // s_client offers its default groups, with an X25519 key share: our server
    // limited to secp384r1 asks it for that one (HelloRetryRequest).
    let set = with_groups(server_settings(&fx), "secp384r1");
    let (res, out) = s_client_to_us(&set, &[]).await;
    let f = res.unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert_eq!(f.group.as_deref(), Some("secp384r1"), "{out}");
    assert!(
        out.contains("secp384r1"),
        "s_client saw another group:\n{out}"
    );
    // No group in common: refused, with OpenSSL's reason.
    let (res, out) = s_client_to_us(&set, &["-groups", "X25519"]).await;
    let e = res.expect_err(&out);
    assert!(matches!(e, TlsError::Handshake(_)), "{e:?}");
    assert!(e.to_string().contains("no suitable key share"), "{e}");
}

#[tokio::test]
async fn groups_decide_the_key_exchange_with_s_server() {
    require_openssl!();
    let fx = Fixture::new();
    let set = with_groups(fx.settings(None), "secp521r1:X25519");
    let f = us_to_s_server(&fx, &set, &[]).await.unwrap();
    assert_eq!(f.group.as_deref(), Some("secp521r1"));
    // The PSK contexts take the directive too (psk_dhe_ke keeps forward secrecy).
    let f = psk_to_s_server(&with_groups(TlsSettings::default(), "secp384r1"), &[])
        .await
        .unwrap();
    assert_eq!(
        (f.version.as_str(), f.group.as_deref()),
        ("TLSv1.3", Some("secp384r1"))
    );
    let e = psk_to_s_server(
        &with_groups(TlsSettings::default(), "X448"),
        &["-groups", "X25519"],
    )
    .await
    .unwrap_err();
    assert!(matches!(e, TlsError::Handshake(_)), "{e:?}");
    // Unset: the library's default, still an (EC)DHE group.
    let f = psk_to_s_server(&TlsSettings::default(), &[]).await.unwrap();
    assert!(
        f.group.as_deref().is_some_and(|g| g.contains("25519")),
        "{f:?}"
    );
}

#[test]
fn unknown_groups_are_refused_at_load() {
    let fx = Fixture::new();
    for set in [
        with_groups(server_settings(&fx), "X25519:brainpool-nope"),
        with_groups(TlsSettings::default(), "brainpool-nope"),
    ] {
        let e = if set.certificate.is_some() {
            CertContext::new(&set, TlsRole::Server).unwrap_err()
        } else {
            PskContext::for_settings(&set).unwrap_err()
        };
        match &e {
            TlsError::Policy { directive, reason } => {
                assert_eq!(*directive, "TLS Groups");
                assert!(reason.starts_with("OpenSSL refused \""), "{e}");
                assert!(reason.contains("X25519, secp256r1"), "{e}");
            }
            _ => panic!("{e:?}"),
        }
    }
    // Known to OpenSSL for TLS 1.2, but too weak: refused before OpenSSL sees it.
    let e = PskContext::for_settings(&with_groups(TlsSettings::default(), "X25519:secp192r1"))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "TLS Groups: \"secp192r1\" gives less than 112 bits of security; use X25519, \
         secp256r1 or stronger groups"
    );
}
