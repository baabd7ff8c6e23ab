//! `TLS Key Passphrase File`: keys encrypted by the `openssl` tool (PKCS#8 and the
//! traditional format) load with the right passphrase, fail clearly with a wrong or
//! missing one, and the passphrase never appears in an error.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use baculink_conf::tls::TlsRole;
use baculink_conf::TlsSettings;
use baculink_proto::negotiate::Mode;
use baculink_tls::{accept_cert, CertContext, SessionFacts, TlsError};
use common::{read_line, s, within, Fixture, Peer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

const PASS: &str = "Corr3ct-Horse battery";
const WRONG: &str = "not-the-Passphrase-42";

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

/// The fixture's server key encrypted as PKCS#8 (AES-256-CBC, PBKDF2).
fn pkcs8_encrypted(fx: &Fixture) -> PathBuf {
    let out = fx.dir.path().join("server-pkcs8.key");
    openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-in",
        &s(&fx.server.key),
        "-out",
        &s(&out),
        "-passout",
        &format!("pass:{PASS}"),
    ]);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("BEGIN ENCRYPTED PRIVATE KEY"), "{text}");
    out
}

/// The fixture's server key encrypted in OpenSSL's traditional format (Proc-Type).
fn traditional_encrypted(fx: &Fixture) -> PathBuf {
    let out = fx.dir.path().join("server-trad.key");
    openssl(&[
        "ec",
        "-in",
        &s(&fx.server.key),
        "-aes256",
        "-out",
        &s(&out),
        "-passout",
        &format!("pass:{PASS}"),
    ]);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("Proc-Type: 4,ENCRYPTED"), "{text}");
    out
}

fn pass_file(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    p
}

fn settings(fx: &Fixture, key: &Path, pass: Option<PathBuf>) -> TlsSettings {
    TlsSettings {
        enable: true,
        ca_file: Some(fx.ca.clone()),
        certificate: Some(fx.server.cert.clone()),
        key: Some(key.to_path_buf()),
        key_passphrase_file: pass,
        ..TlsSettings::default()
    }
}

/// Nothing of either passphrase in the error's text nor its debug form.
fn assert_no_passphrase(e: &TlsError) {
    for text in [e.to_string(), format!("{e:?}")] {
        for secret in [PASS, WRONG, "Corr3ct", "battery", "Passphrase-42"] {
            assert!(!text.contains(secret), "passphrase leaked: {text}");
        }
    }
}

#[tokio::test]
async fn encrypted_pkcs8_key_serves_s_client_with_the_right_passphrase() {
    require_openssl!();
    let fx = Fixture::new();
    let key = pkcs8_encrypted(&fx);
    let pass = pass_file(fx.dir.path(), "key.pass", &format!("{PASS}\n"));
    let set = TlsSettings {
        verify_peer: false,
        ..settings(&fx, &key, Some(pass))
    };
    let ctx = CertContext::new(&set, TlsRole::Server).expect("decrypted key");
    // The decrypted key really signs the handshake.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let ca = s(&fx.ca);
    let mut peer = Peer::s_client(port, &["-CAfile", &ca, "-verify_return_error"]);
    peer.send("ping\n").await;
    let (tcp, _) = within("accept", l.accept()).await.unwrap();
    let mut st = within("accept_cert", accept_cert(&ctx, tcp, &[]))
        .await
        .unwrap();
    assert_eq!(
        SessionFacts::from_ssl(st.ssl(), Mode::Tls).version,
        "TLSv1.3"
    );
    assert_eq!(read_line(&mut st).await, "ping");
    st.write_all(b"pong\n").await.unwrap();
    peer.wait_line("our reply", |l| l.contains("pong")).await;
}

#[test]
fn traditional_encrypted_key_and_line_ends() {
    if !common::need_openssl() {
        return;
    }
    let fx = Fixture::new();
    let key = traditional_encrypted(&fx);
    for (name, content) in [
        ("lf", format!("{PASS}\n")),
        ("crlf", format!("{PASS}\r\nsecond line is ignored\n")),
        ("no-newline", PASS.to_string()),
    ] {
        let pass = pass_file(fx.dir.path(), name, &content);
        CertContext::new(&settings(&fx, &key, Some(pass)), TlsRole::Server)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // A client context loads its (encrypted) certificate key the same way.
    let pass = pass_file(fx.dir.path(), "p", PASS);
    CertContext::new(&settings(&fx, &key, Some(pass)), TlsRole::Client).unwrap();
}

#[test]
fn wrong_passphrase_is_a_clear_error_naming_the_key_file() {
    if !common::need_openssl() {
        return;
    }
    let fx = Fixture::new();
    for key in [pkcs8_encrypted(&fx), traditional_encrypted(&fx)] {
        let pass = pass_file(fx.dir.path(), "wrong.pass", &format!("{WRONG}\n"));
        for role in [TlsRole::Server, TlsRole::Client] {
            let e = CertContext::new(&settings(&fx, &key, Some(pass.clone())), role).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "TLS Key \"{}\": cannot decrypt it with the passphrase from TLS Key \
                     Passphrase File \"{}\" (wrong passphrase?)",
                    key.display(),
                    pass.display()
                )
            );
            assert_no_passphrase(&e);
        }
    }
}

#[test]
fn missing_or_empty_passphrase_file() {
    if !common::need_openssl() {
        return;
    }
    let fx = Fixture::new();
    let key = pkcs8_encrypted(&fx);
    // Encrypted key, no passphrase file: said so, and no terminal prompt.
    let e = CertContext::new(&settings(&fx, &key, None), TlsRole::Server).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "TLS Key \"{}\": is encrypted: set \"TLS Key Passphrase File\" to a file whose \
             first line is its passphrase",
            key.display()
        )
    );
    let nope = fx.dir.path().join("nope.pass");
    let e =
        CertContext::new(&settings(&fx, &key, Some(nope.clone())), TlsRole::Server).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "TLS Key Passphrase File \"{}\": no such file",
            nope.display()
        )
    );
    let empty = pass_file(fx.dir.path(), "empty.pass", "\nnot this line\n");
    let e = CertContext::new(&settings(&fx, &key, Some(empty)), TlsRole::Server).unwrap_err();
    assert!(e.to_string().contains("the first line is empty"), "{e}");
    assert!(!e.to_string().contains("not this line"), "{e}");
}

#[test]
fn passphrase_file_with_a_plain_key_is_harmless() {
    let fx = Fixture::new();
    let pass = pass_file(fx.dir.path(), "unused.pass", "whatever\n");
    CertContext::new(&settings(&fx, &fx.server.key, Some(pass)), TlsRole::Server).unwrap();
}
