//! The errors of this crate: one variant per failure the user must be told apart.

use std::io;

/// What went wrong while building a TLS context or running a handshake.
///
/// The variants are distinct on purpose: the CLI maps each one to its own
/// message and advice. No variant ever carries key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A configured file could not be used (`TLS Key "x.key": no such file`).
    #[error("TLS {directive} \"{path}\": {reason}")]
    Config {
        /// The directive without its `TLS ` prefix, e.g. `Key`, `CA Certificate File`.
        directive: &'static str,
        /// The file or directory as configured.
        path: String,
        /// OpenSSL's or the system's reason.
        reason: String,
    },

    /// The configuration lacks something this role needs, or OpenSSL refused a setting.
    #[error("TLS setup: {0}")]
    Setup(String),

    /// A TLS policy directive is unusable, or would enable what we refuse (weak suites,
    /// a PSK without a SHA-256 TLS 1.3 suite, ...). `directive` is the full name,
    /// e.g. `TLS Cipher List`.
    #[error("{directive}: {reason}")]
    Policy {
        /// The directive as documented, e.g. `TLS Cipher Suites`.
        directive: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// `FIPS Require = yes`, but OpenSSL's FIPS provider cannot be used.
    #[error("FIPS Require = yes: {0}")]
    Fips(String),

    /// The peer's certificate chain did not verify (OpenSSL's reason string).
    #[error("TLS certificate verification failed: {reason}{}", describe_cert(*.depth, .subject))]
    Verify {
        /// OpenSSL's verify reason, e.g. `unable to get local issuer certificate`.
        reason: String,
        /// Depth in the chain of the offending certificate (0 = the peer's own).
        depth: Option<u32>,
        /// One-line subject of the offending certificate.
        subject: Option<String>,
    },

    /// The server certificate does not name the host we connected to.
    #[error(
        "TLS host certificate verification failed. Host name \"{host}\" did not match presented certificate (it names: {})",
        list_or_none(.names)
    )]
    HostMismatch {
        /// The host string that was checked.
        host: String,
        /// The CN and subjectAltNames the certificate carries.
        names: Vec<String>,
    },

    /// The peer certificate's CN / DNS names are not in `TLS Allowed CN`.
    #[error(
        "TLS certificate verification failed. Peer certificate (names: {}) did not match TLS Allowed CN ({})",
        list_or_none(.peer),
        .allowed.join(", ")
    )]
    AllowedCn {
        /// The peer's CN and DNS subjectAltNames.
        peer: Vec<String>,
        /// The configured list.
        allowed: Vec<String>,
    },

    /// The peer completed no certificate although one is required.
    #[error("peer failed to present a TLS certificate")]
    NoPeerCertificate,

    /// TLS-PSK handshake failed in the way a differing key makes it fail.
    #[error("TLS-PSK handshake failed: the peer's key differs (wrong password?)")]
    PskMismatch,

    /// Any other handshake failure (protocol, cipher, peer closed), with OpenSSL's reason.
    #[error("TLS handshake failed: {0}")]
    Handshake(String),

    /// TLS could not be dropped cleanly: decrypted bytes would be lost.
    #[error("cannot drop TLS: {0} unread decrypted bytes are buffered")]
    Detach(usize),

    /// Certificate or key generation failed.
    #[error("certificate generation failed: {0}")]
    Generate(String),

    /// Transport error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

fn describe_cert(depth: Option<u32>, subject: &Option<String>) -> String {
    match (depth, subject) {
        (Some(d), Some(s)) => format!(" (certificate at depth {d}: {s})"),
        (Some(d), None) => format!(" (certificate at depth {d})"),
        (None, Some(s)) => format!(" (certificate: {s})"),
        (None, None) => String::new(),
    }
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
}

impl TlsError {
    pub(crate) fn setup(what: &str, e: openssl::error::ErrorStack) -> Self {
        TlsError::Setup(format!("{what}: {}", reasons(&e)))
    }

    pub(crate) fn policy(directive: &'static str, reason: impl Into<String>) -> Self {
        TlsError::Policy {
            directive,
            reason: reason.into(),
        }
    }

    pub(crate) fn config(
        directive: &'static str,
        path: &std::path::Path,
        reason: impl Into<String>,
    ) -> Self {
        TlsError::Config {
            directive,
            path: path.display().to_string(),
            reason: reason.into(),
        }
    }
}

/// OpenSSL's reason strings of an error stack, joined; `unknown error` if it is empty.
pub(crate) fn reasons(e: &openssl::error::ErrorStack) -> String {
    let v: Vec<String> = e
        .errors()
        .iter()
        .map(|e| {
            e.reason()
                .map(str::to_string)
                .unwrap_or_else(|| e.to_string())
        })
        .collect();
    if v.is_empty() {
        "unknown error".into()
    } else {
        v.join("; ")
    }
}

/// A file-reading error in the words the CLI shows (`no such file`, `permission denied`).
pub(crate) fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}
