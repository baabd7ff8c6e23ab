//! What a finished handshake produced, for status output and `probe --json`.

use baculink_proto::negotiate::Mode;
use openssl::asn1::Asn1Time;
use openssl::ssl::SslRef;

use crate::names;

/// Facts about an established TLS session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionFacts {
    /// Certificate TLS or PSK.
    pub mode: Mode,
    /// Protocol version as OpenSSL names it, e.g. `TLSv1.3`.
    pub version: String,
    /// Cipher suite as OpenSSL names it, e.g. `TLS_AES_128_GCM_SHA256`.
    pub cipher: String,
    /// One-line subject of the peer certificate, e.g. `O=Example, CN=bacula-dir`.
    pub peer_subject: Option<String>,
    /// The peer certificate's notAfter, as OpenSSL prints it.
    pub peer_not_after: Option<String>,
    /// Whole days until the peer certificate expires (negative once expired).
    pub peer_days_left: Option<i64>,
}

impl SessionFacts {
    /// Reads the facts from a connected `Ssl`.
    pub fn from_ssl(ssl: &SslRef, mode: Mode) -> SessionFacts {
        let cert = ssl.peer_certificate();
        let peer_days_left = cert.as_ref().and_then(|c| {
            let now = Asn1Time::days_from_now(0).ok()?;
            let d = now.diff(c.not_after()).ok()?;
            Some(d.days as i64)
        });
        SessionFacts {
            mode,
            version: ssl.version_str().to_string(),
            cipher: ssl
                .current_cipher()
                .map(|c| c.name().to_string())
                .unwrap_or_default(),
            peer_subject: cert.as_ref().map(|c| names::one_line(c.subject_name())),
            peer_not_after: cert.as_ref().map(|c| c.not_after().to_string()),
            peer_days_left,
        }
    }
}
