//! `baculink --version` names what serves TLS, and `BACULINK_OPENSSL_GCM`
//! turns our AES-GCM provider off (run as the binary: the choice is made once
//! per process).

use std::process::Command;

fn version(env: Option<(&str, &str)>) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_baculink"));
    cmd.arg("--version").env_remove("BACULINK_OPENSSL_GCM");
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let o = cmd.output().expect("run baculink --version");
    assert!(o.status.success(), "{o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn version_names_the_tls_engine_and_the_switch_turns_the_provider_off() {
    let openssl = baculink_tls::openssl_version();
    let plain = version(None);
    assert!(plain.contains(openssl), "{plain}");
    // The binary runs on the same OpenSSL as this test: the provider applies
    // before 3.2 (FIPS mode is never on for `--version`).
    let expected = openssl::version::number() < 0x3020_0000;
    assert_eq!(plain.contains("AES-GCM from AWS-LC"), expected, "{plain}");
    let off = version(Some(("BACULINK_OPENSSL_GCM", "1")));
    assert!(off.contains(openssl), "{off}");
    assert!(!off.contains("AWS-LC"), "{off}");
}
