//! `FIPS Require = yes` where OpenSSL's FIPS provider is absent (the default on Debian
//! 12): a clear refusal, and the process stays as it was. One test per process on
//! purpose: FIPS mode is process-wide.

use baculink_conf::FdConfig;
use baculink_tls::{fips, PskContext, TlsError};

const MESSAGE: &str = "FIPS Require = yes: OpenSSL's FIPS provider is not available (";

fn assert_refused(e: &TlsError) {
    assert!(matches!(e, TlsError::Fips(_)), "{e:?}");
    let m = e.to_string();
    assert!(m.starts_with(MESSAGE), "{m}");
    assert!(
        m.contains("install and configure the OpenSSL 3 FIPS provider"),
        "{m}"
    );
    assert!(m.ends_with("or set FIPS Require = no"), "{m}");
}

#[test]
fn fips_require_without_the_provider_fails_with_the_message() {
    let (conf, _) = FdConfig::parse_str(
        "bacula-fd.conf",
        "FileDaemon { Name = fd; FIPS Require = yes }\nDirector { Name = d; Password = p }\n",
    )
    .unwrap();

    // The system's own provider search path first.
    match fips::require_for(&conf.tls_resources()) {
        Ok(required) => {
            // This machine has a configured FIPS provider: then it must really be on.
            assert!(required);
            assert!(fips::enabled());
            eprintln!("NOTE: OpenSSL's FIPS provider is installed here; absence not tested");
            return;
        }
        Err(e) => assert_refused(&e),
    }
    assert!(!fips::enabled());

    // Deterministically absent: an empty provider directory.
    let empty = tempfile::tempdir().unwrap();
    openssl::provider::Provider::set_default_search_path(None, empty.path().to_str().unwrap())
        .unwrap();
    let e = fips::require().unwrap_err();
    assert_refused(&e);
    assert!(!fips::enabled());

    // Without the directive nothing is required, and TLS still works as before.
    let (conf, _) = FdConfig::parse_str(
        "bacula-fd.conf",
        "FileDaemon { Name = fd }\nDirector { Name = d; Password = p }\n",
    )
    .unwrap();
    assert!(!fips::require_for(&conf.tls_resources()).unwrap());
    PskContext::new().expect("default provider still serves TLS");
}
