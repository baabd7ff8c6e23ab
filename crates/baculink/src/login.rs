//! Login setups built from config resources: the same code for every
//! component and resource, so every one honours the same TLS directives.

use std::sync::Arc;
use std::time::Duration;

use baculink_conf::tls::TlsRole;
use baculink_conf::TlsSettings;
use baculink_net::{ClientSetup, LoginError, PeerSetup};
use baculink_proto::handshake::{ClientConfig, Local};
use baculink_proto::hello::Hello;
use baculink_proto::negotiate::Dialect;
use baculink_proto::Secret;
use baculink_tls::{CertContext, TlsError};

/// The certificate context of a resource, when it uses certificate TLS
/// (TLS Enable, TLS Require with certificate material, or TLS Authenticate).
pub fn cert_context(
    tls: &TlsSettings,
    role: TlsRole,
) -> Result<Option<Arc<CertContext>>, TlsError> {
    if tls.cert_enabled(role) || tls.authenticate {
        Ok(Some(Arc::new(CertContext::new(tls, role)?)))
    } else {
        Ok(None)
    }
}

/// Our side of a login from a resource's TLS settings and secret.
pub fn local(key: Secret, tls: &TlsSettings, role: TlsRole, name: &str, dialect: Dialect) -> Local {
    let policy = tls.policy(role);
    Local {
        key,
        needs: policy.needs(),
        authenticate: tls.authenticate,
        dialect,
        name: name.to_string(),
    }
}

/// A client setup for one outgoing connection.
#[allow(clippy::too_many_arguments)]
pub fn client_setup(
    hello: Hello,
    key: Secret,
    tls: &TlsSettings,
    cert: Option<Arc<CertContext>>,
    our_name: &str,
    host: &str,
    label: String,
    dialect: Dialect,
    timeout: Duration,
) -> ClientSetup {
    ClientSetup {
        config: ClientConfig {
            hello,
            local: local(key, tls, TlsRole::Client, our_name, dialect),
        },
        cert,
        psk: baculink_tls::PskContext::for_settings(tls).ok(),
        host: host.to_string(),
        allowed_cn: tls.allowed_cn.clone(),
        timeout,
        label,
    }
}

/// A server-side peer setup for one accepted connection.
pub fn peer_setup(
    key: Secret,
    tls: &TlsSettings,
    cert: Option<Arc<CertContext>>,
    our_name: &str,
    label: String,
) -> PeerSetup {
    PeerSetup {
        local: local(key, tls, TlsRole::Server, our_name, Dialect::V13),
        cert,
        psk: baculink_tls::PskContext::for_settings(tls).ok(),
        allowed_cn: if tls.verify_peer {
            tls.allowed_cn.clone()
        } else {
            Vec::new()
        },
        label,
    }
}

/// The four failure classes the tools report with distinct messages and exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureClass {
    /// CRAM-MD5 failed: the passwords differ.
    WrongPassword,
    /// The two sides' TLS requirements cannot both be met.
    Policy,
    /// The certificate chain did not verify (or none was presented).
    Certificate,
    /// The certificate does not name the host, or its CN is not allowed.
    NameMismatch,
    /// Anything else (network, malformed peer, timeout, configuration).
    Other,
}

impl FailureClass {
    /// Exit status of the tools for this class.
    pub fn exit_code(self) -> u8 {
        match self {
            FailureClass::WrongPassword => 2,
            FailureClass::Policy => 3,
            FailureClass::Certificate => 4,
            FailureClass::NameMismatch => 5,
            FailureClass::Other => 1,
        }
    }

    /// Classifies a login error.
    pub fn of(e: &LoginError) -> FailureClass {
        use baculink_proto::handshake::RefusalReason as R;
        match e {
            LoginError::Refused { refusal, .. } => match &refusal.reason {
                R::WrongPassword(_) => FailureClass::WrongPassword,
                R::Policy(_) | R::PeerIgnoredTls(_) => FailureClass::Policy,
                _ => FailureClass::Other,
            },
            LoginError::Tls { source, .. } => match source {
                TlsError::Verify { .. } | TlsError::NoPeerCertificate => FailureClass::Certificate,
                TlsError::HostMismatch { .. } | TlsError::AllowedCn { .. } => {
                    FailureClass::NameMismatch
                }
                TlsError::PskMismatch => FailureClass::WrongPassword,
                TlsError::Policy { .. } => FailureClass::Policy,
                // The server answered our ClientHello with clear-text protocol.
                TlsError::Handshake(r)
                    if r.contains("wrong version number")
                        || r.contains("packet length too long") =>
                {
                    FailureClass::Policy
                }
                _ => FailureClass::Other,
            },
            LoginError::ClosedAfterTls { .. } => FailureClass::NameMismatch,
            _ => FailureClass::Other,
        }
    }

    /// The headline printed before the detail.
    pub fn headline(self) -> &'static str {
        match self {
            FailureClass::WrongPassword => "wrong password",
            FailureClass::Policy => "TLS policy mismatch",
            FailureClass::Certificate => "certificate verification failed",
            FailureClass::NameMismatch => "host name / TLS Allowed CN mismatch",
            FailureClass::Other => "login failed",
        }
    }
}

/// Honours `FIPS Require = yes` in a config file before any TLS context is
/// built: loads OpenSSL's FIPS provider or fails with the reason. A config
/// that does not parse is left to the caller's own loading, which reports it.
pub fn require_fips(path: &std::path::Path) -> Result<(), String> {
    match baculink_conf::load_any(path) {
        Ok((conf, _)) => require_fips_for(&conf, path),
        Err(_) => Ok(()),
    }
}

/// [`require_fips`] for a config already loaded from `path`.
pub fn require_fips_for(
    conf: &baculink_conf::AnyConfig,
    path: &std::path::Path,
) -> Result<(), String> {
    baculink_tls::fips::require_for(&conf.tls_resources())
        .map(|on| {
            if on {
                tracing::info!("FIPS mode: OpenSSL's FIPS provider is loaded");
            }
        })
        .map_err(|e| format!("{}: {e}", path.display()))
}
