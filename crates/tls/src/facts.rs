//! What a finished handshake produced, for status output and `probe --json`.

use baculink_proto::negotiate::Mode;
use openssl::asn1::Asn1Time;
use openssl::ssl::SslRef;

use crate::names;

/// `SSL_CTRL_GET_NEGOTIATED_GROUP` in OpenSSL's ssl.h (SSL_get_negotiated_group
/// is a macro).
const SSL_CTRL_GET_NEGOTIATED_GROUP: libc::c_int = 134;

mod ffi {
    use openssl_sys::SSL;
    extern "C" {
        pub fn SSL_group_to_name(s: *mut SSL, id: libc::c_int) -> *const libc::c_char;
    }
}

/// The session's key exchange group, by OpenSSL's name for it.
fn negotiated_group(ssl: &SslRef) -> Option<String> {
    use foreign_types::ForeignTypeRef;
    let p = ssl.as_ptr();
    // SAFETY: `p` is a live SSL; the control only reads the session's group, and
    // SSL_group_to_name returns a static string or NULL.
    unsafe {
        let id = openssl_sys::SSL_ctrl(p, SSL_CTRL_GET_NEGOTIATED_GROUP, 0, std::ptr::null_mut());
        if id <= 0 {
            return None;
        }
        let name = ffi::SSL_group_to_name(p, libc::c_int::try_from(id).ok()?);
        (!name.is_null()).then(|| {
            std::ffi::CStr::from_ptr(name)
                .to_string_lossy()
                .into_owned()
        })
    }
}

/// Facts about an established TLS session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionFacts {
    /// Certificate TLS or PSK.
    pub mode: Mode,
    /// Protocol version as OpenSSL names it, e.g. `TLSv1.3`.
    pub version: String,
    /// Cipher suite as OpenSSL names it, e.g. `TLS_AES_128_GCM_SHA256`.
    pub cipher: String,
    /// Key exchange group as OpenSSL names it, e.g. `X25519` (none for a TLS
    /// 1.2 PSK session, which has no key exchange of its own).
    pub group: Option<String>,
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
            group: negotiated_group(ssl),
            peer_subject: cert.as_ref().map(|c| names::one_line(c.subject_name())),
            peer_not_after: cert.as_ref().map(|c| c.not_after().to_string()),
            peer_days_left,
        }
    }
}
