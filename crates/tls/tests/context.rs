//! Context construction: cipher policy, file errors, DH strength, generator output.

mod common;

use baculink_conf::tls::TlsRole;
use baculink_conf::TlsSettings;
use baculink_tls::{cipher_names, CertContext, PskContext, TlsError};
use common::Fixture;
use openssl::bn::BigNum;
use openssl::dh::Dh;

fn config_err(e: TlsError) -> (&'static str, String, String) {
    match e {
        TlsError::Config {
            directive,
            path,
            reason,
        } => (directive, path, reason),
        other => panic!("expected a Config error, got {other:?}"),
    }
}

#[test]
fn cert_contexts_offer_no_weak_suite() {
    let fx = Fixture::new();
    let ctx = CertContext::new(&fx.settings(Some(&fx.server)), TlsRole::Server).unwrap();
    for c in [ctx.server().unwrap(), ctx.client().unwrap()] {
        let names = cipher_names(c);
        assert!(
            names.iter().any(|n| n == "TLS_AES_128_GCM_SHA256"),
            "{names:?}"
        );
        assert!(names.iter().any(|n| n.starts_with("ECDHE-")), "{names:?}");
        for n in &names {
            if n.starts_with("TLS_") {
                continue; // TLS 1.3 suites: all AEAD with (EC)DHE
            }
            assert!(
                n.starts_with("ECDHE-") || n.starts_with("DHE-"),
                "no forward secrecy: {n}"
            );
            for bad in [
                "NULL", "EXP", "RC4", "MD5", "DES", "ADH", "AECDH", "PSK", "SRP", "anon", "CBC",
                "-SHA",
            ] {
                assert!(
                    !n.contains(bad)
                        || (bad == "-SHA" && (n.contains("-SHA256") || n.contains("-SHA384"))),
                    "{n} contains {bad}"
                );
            }
        }
    }
}

#[test]
fn psk_contexts_offer_exactly_the_bacula_suites() {
    let p = PskContext::new().unwrap();
    for c in [p.client(), p.server()] {
        assert_eq!(
            cipher_names(c),
            [
                "TLS_AES_128_GCM_SHA256",
                "TLS_CHACHA20_POLY1305_SHA256",
                "PSK-AES256-CBC-SHA"
            ]
        );
    }
}

#[test]
fn missing_key_names_the_file() {
    let fx = Fixture::new();
    let mut s = fx.settings(Some(&fx.server));
    let missing = fx.dir.path().join("x.key");
    s.key = Some(missing.clone());
    let e = CertContext::new(&s, TlsRole::Server).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("TLS Key \"{}\": no such file", missing.display())
    );
}

#[test]
fn key_of_other_certificate_refused() {
    let fx = Fixture::new();
    let mut s = fx.settings(Some(&fx.server));
    s.key = fx.client.key.clone().into();
    let (dir, _, reason) = config_err(CertContext::new(&s, TlsRole::Server).unwrap_err());
    assert_eq!(dir, "Key");
    assert!(reason.starts_with("does not match certificate"), "{reason}");
}

#[test]
fn garbage_certificate_refused() {
    let fx = Fixture::new();
    let mut s = fx.settings(Some(&fx.server));
    s.certificate = Some(fx.server.key.clone());
    let (dir, _, reason) = config_err(CertContext::new(&s, TlsRole::Server).unwrap_err());
    assert_eq!(dir, "Certificate");
    assert!(reason.contains("certificate"), "{reason}");
}

#[test]
fn missing_ca_file_names_it() {
    let fx = Fixture::new();
    let mut s = fx.settings(Some(&fx.client));
    s.ca_file = Some(fx.dir.path().join("nope.pem"));
    let (dir, _, reason) = config_err(CertContext::new(&s, TlsRole::Client).unwrap_err());
    assert_eq!(dir, "CA Certificate File");
    assert_eq!(reason, "no such file");
}

#[test]
fn role_requirements() {
    let fx = Fixture::new();
    // A server without certificate.
    let e = CertContext::new(&fx.settings(None), TlsRole::Server).unwrap_err();
    assert!(matches!(e, TlsError::Setup(_)), "{e:?}");
    // A client without CA.
    let s = TlsSettings {
        certificate: Some(fx.client.cert.clone()),
        key: Some(fx.client.key.clone()),
        ..TlsSettings::default()
    };
    let e = CertContext::new(&s, TlsRole::Client).unwrap_err();
    assert!(matches!(e, TlsError::Setup(_)), "{e:?}");
    // A verifying server without CA.
    let e = CertContext::new(&s, TlsRole::Server).unwrap_err();
    assert!(matches!(e, TlsError::Setup(_)), "{e:?}");
    // A non-verifying server without CA is fine, and has no client side.
    let s = TlsSettings {
        verify_peer: false,
        ..s
    };
    let c = CertContext::new(&s, TlsRole::Server).unwrap();
    assert!(c.server().is_some() && c.client().is_none());
    // A client with a CA but no certificate has only a client side.
    let c = CertContext::new(&fx.settings(None), TlsRole::Client).unwrap();
    assert!(c.server().is_none() && c.client().is_some());
}

#[test]
fn ca_dir_only_is_accepted() {
    let fx = Fixture::new();
    let mut s = fx.settings(Some(&fx.client));
    s.ca_file = None;
    s.ca_dir = Some(fx.dir.path().to_path_buf());
    CertContext::new(&s, TlsRole::Client).unwrap();
    s.ca_dir = Some(fx.dir.path().join("missing"));
    let (dir, _, _) = config_err(CertContext::new(&s, TlsRole::Client).unwrap_err());
    assert_eq!(dir, "CA Certificate Dir");
}

#[test]
fn weak_dh_refused_strong_accepted() {
    let fx = Fixture::new();
    let weak = fx.dir.path().join("dh1024.pem");
    let p = BigNum::get_rfc2409_prime_1024().unwrap();
    let dh = Dh::from_pqg(p, None, BigNum::from_u32(2).unwrap()).unwrap();
    std::fs::write(&weak, dh.params_to_pem().unwrap()).unwrap();
    let mut s = fx.settings(Some(&fx.server));
    s.dh_file = Some(weak.clone());
    let e = CertContext::new(&s, TlsRole::Server).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("TLS DH File \"{}\"", weak.display())),
        "{msg}"
    );
    assert!(msg.contains("1024 bits") && msg.contains("2048"), "{msg}");

    let strong = fx.dir.path().join("dh.pem");
    baculink_tls::certgen::write_dh_file(&strong).unwrap();
    s.dh_file = Some(strong);
    let c = CertContext::new(&s, TlsRole::Server).unwrap();
    assert!(cipher_names(c.server().unwrap())
        .iter()
        .any(|n| n.starts_with("DHE-")));
}

#[cfg(unix)]
#[test]
fn generated_keys_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    let mode = std::fs::metadata(&fx.server.key)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let mode = std::fs::metadata(&fx.server.cert)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0o044);
}

#[test]
fn contexts_are_send_sync() {
    fn check<T: Send + Sync + Clone>() {}
    check::<CertContext>();
    check::<PskContext>();
}
