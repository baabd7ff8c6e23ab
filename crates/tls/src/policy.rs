//! baculink's TLS policy directives applied to OpenSSL contexts (README "TLS policy
//! directives"): the version range, the TLS ≤ 1.2 cipher list and TLS 1.3 suites of
//! certificate contexts (refused when the built context would offer a weak suite),
//! certificate revocation lists, and passphrase-protected keys.
//!
//! Checks look at what OpenSSL actually enabled, not at the strings: a cipher string is
//! a small language (`ALL`, `@SECLEVEL=0`, `+`, `!`), and only the resulting suites say
//! what a peer could negotiate.

use std::fmt;
use std::path::Path;

use baculink_conf::tls::{split_suites, weak_group, weak_group_reason, TlsProtocol, TlsVersion};
use baculink_conf::TlsSettings;
use foreign_types::ForeignTypeRef;
use openssl::asn1::Asn1Time;
use openssl::error::ErrorStack;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslCipherRef, SslContextBuilder, SslContextRef, SslVersion};
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::X509Crl;
use zeroize::Zeroizing;

use crate::cert::{read_file, warn_if_readable, CERT_CIPHERSUITES, CERT_CIPHER_LIST};
use crate::error::{reasons, TlsError};

mod ffi_ext {
    use openssl_sys::{X509_CRL, X509_STORE};
    extern "C" {
        pub fn X509_STORE_add_crl(store: *mut X509_STORE, crl: *mut X509_CRL) -> libc::c_int;
    }
}

/// OpenSSL's version constant for one of ours.
pub(crate) fn ssl_version(v: TlsVersion) -> SslVersion {
    match v {
        TlsVersion::Tls12 => SslVersion::TLS1_2,
        TlsVersion::Tls13 => SslVersion::TLS1_3,
    }
}

/// `TLS Protocol` (the context's minimum and maximum version) and `TLS Groups`
/// (its key exchange groups; OpenSSL's default when unset).
pub(crate) fn apply_protocol_and_groups(
    b: &mut SslContextBuilder,
    p: &TlsProtocol,
    groups: Option<&str>,
) -> Result<(), TlsError> {
    let fail = |e: ErrorStack| {
        TlsError::policy(
            "TLS Protocol",
            format!("OpenSSL refused \"{p}\": {}", reasons(&e)),
        )
    };
    b.set_min_proto_version(Some(ssl_version(p.min)))
        .map_err(fail)?;
    b.set_max_proto_version(p.max.map(ssl_version))
        .map_err(fail)?;
    if let Some(g) = groups {
        if let Some(weak) = weak_group(g) {
            return Err(TlsError::policy("TLS Groups", weak_group_reason(weak)));
        }
        b.set_groups_list(g).map_err(|e| {
            TlsError::policy(
                "TLS Groups",
                format!(
                    "OpenSSL refused \"{g}\": {} (names it knows include X25519, secp256r1, \
                     secp384r1, X448, ffdhe2048; X25519MLKEM768 from OpenSSL 3.5)",
                    reasons(&e)
                ),
            )
        })?;
    }
    Ok(())
}

/// `TLS Cipher List` (or our forward-secret default) and `TLS Cipher Suites` on a
/// certificate context. [`check_cert_context`] checks the result once it is built.
pub(crate) fn apply_cert_ciphers(
    b: &mut SslContextBuilder,
    s: &TlsSettings,
) -> Result<(), TlsError> {
    let list = s.cipher_list.as_deref().unwrap_or(CERT_CIPHER_LIST);
    b.set_cipher_list(list).map_err(|e| {
        TlsError::policy(
            "TLS Cipher List",
            format!("OpenSSL enables no suite for \"{list}\": {}", reasons(&e)),
        )
    })?;
    let suites = s.cipher_suites.as_deref().unwrap_or(CERT_CIPHERSUITES);
    b.set_ciphersuites(suites).map_err(|e| {
        TlsError::policy(
            "TLS Cipher Suites",
            format!(
                "OpenSSL enables no TLS 1.3 suite for \"{suites}\": {}",
                reasons(&e)
            ),
        )
    })?;
    Ok(())
}

/// A suite a context would offer that certificate TLS refuses, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeakSuite {
    /// OpenSSL's name of the suite.
    pub name: String,
    /// Why it is refused, e.g. `no forward secrecy`.
    pub why: &'static str,
}

impl fmt::Display for WeakSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.why)
    }
}

/// Why certificate TLS refuses this suite, if it does: no encryption, anonymous, RC4,
/// MD5, DES/3DES/RC2 or under 128 bits (export grade), PSK/SRP instead of a
/// certificate, or (TLS ≤ 1.2) a key exchange without forward secrecy.
fn weakness(c: &SslCipherRef) -> Option<&'static str> {
    let d = c.description();
    let field = |k: &str| {
        d.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .unwrap_or("")
            .to_string()
    };
    let (kx, au, enc, mac) = (field("Kx="), field("Au="), field("Enc="), field("Mac="));
    let tls13 = c.version() == "TLSv1.3";
    if enc.is_empty() || enc.starts_with("None") {
        return Some("no encryption (NULL)");
    }
    if au == "None" {
        return Some("anonymous: no authentication");
    }
    if enc.starts_with("RC4") {
        return Some("RC4");
    }
    if mac == "MD5" {
        return Some("MD5");
    }
    if ["DES", "3DES", "RC2", "IDEA"]
        .iter()
        .any(|w| enc.starts_with(&format!("{w}(")) || enc.starts_with(&format!("{w}-")))
        || c.bits().secret < 128
    {
        return Some("weak or export-grade encryption");
    }
    if tls13 {
        return None;
    }
    if au.contains("PSK") || au.contains("SRP") || kx.contains("PSK") || kx.contains("SRP") {
        return Some("PSK/SRP suite, not certificate TLS");
    }
    if kx != "ECDH" && kx != "DH" {
        return Some("no forward secrecy");
    }
    None
}

/// The suites of `ctx` that certificate TLS must not offer (see the README's "TLS
/// policy directives"): anonymous, export-grade, NULL, RC4, MD5, DES/3DES, PSK/SRP,
/// and TLS ≤ 1.2 key exchanges without forward secrecy.
pub fn weak_suites(ctx: &SslContextRef) -> Vec<WeakSuite> {
    crate::ciphers(ctx)
        .into_iter()
        .filter_map(|c| {
            weakness(c).map(|why| WeakSuite {
                name: c.name().to_string(),
                why,
            })
        })
        .collect()
}

/// Requested TLS 1.3 suites OpenSSL did not enable (it skips unknown names silently).
pub(crate) fn missing_suites(requested: &str, ctx: &SslContextRef) -> Vec<String> {
    let have: Vec<&str> = crate::ciphers(ctx)
        .into_iter()
        .filter(|c| c.version() == "TLSv1.3")
        .map(|c| c.name())
        .collect();
    split_suites(requested)
        .filter(|r| !have.iter().any(|h| h.eq_ignore_ascii_case(r)))
        .map(str::to_string)
        .collect()
}

/// Counts the enabled suites of each version: (TLS ≤ 1.2, TLS 1.3).
pub(crate) fn suite_counts(ctx: &SslContextRef) -> (usize, usize) {
    let all = crate::ciphers(ctx);
    let t13 = all.iter().filter(|c| c.version() == "TLSv1.3").count();
    (all.len() - t13, t13)
}

/// Checks a built certificate context: no weak suite, no silently dropped TLS 1.3
/// suite name, at least one suite for every version `TLS Protocol` allows to be the
/// only one, and OpenSSL's security level not switched off by the cipher string.
pub(crate) fn check_cert_context(ctx: &SslContextRef, s: &TlsSettings) -> Result<(), TlsError> {
    let list = s.cipher_list.as_deref().unwrap_or(CERT_CIPHER_LIST);
    let weak = weak_suites(ctx);
    if !weak.is_empty() {
        let (d13, d12): (Vec<&WeakSuite>, Vec<&WeakSuite>) = weak.iter().partition(|w| {
            crate::ciphers(ctx)
                .iter()
                .any(|c| c.name() == w.name && c.version() == "TLSv1.3")
        });
        let (directive, value) = if d12.is_empty() && !d13.is_empty() {
            (
                "TLS Cipher Suites",
                s.cipher_suites.as_deref().unwrap_or(""),
            )
        } else {
            ("TLS Cipher List", list)
        };
        const SHOWN: usize = 6;
        let mut names: Vec<String> = weak.iter().take(SHOWN).map(ToString::to_string).collect();
        if weak.len() > SHOWN {
            names.push(format!("and {} more", weak.len() - SHOWN));
        }
        return Err(TlsError::policy(
            directive,
            format!(
                "\"{value}\" enables suites refused for certificate TLS: {}; use forward-secret \
                 AEAD suites such as \"ECDHE+AESGCM:ECDHE+CHACHA20\"",
                names.join(", ")
            ),
        ));
    }
    if ctx.security_level() == 0 {
        return Err(TlsError::policy(
            "TLS Cipher List",
            format!(
                "\"{list}\" sets OpenSSL's security level to 0, which disables its key size checks"
            ),
        ));
    }
    if let Some(req) = &s.cipher_suites {
        let missing = missing_suites(req, ctx);
        if !missing.is_empty() {
            return Err(TlsError::policy(
                "TLS Cipher Suites",
                format!(
                    "OpenSSL does not know {} (TLS 1.3 suites are TLS_AES_256_GCM_SHA384, \
                     TLS_CHACHA20_POLY1305_SHA256, TLS_AES_128_GCM_SHA256, ...)",
                    missing.join(", ")
                ),
            ));
        }
    }
    let (n12, n13) = suite_counts(ctx);
    let p = &s.protocol;
    if n12 == 0 && !p.allows(TlsVersion::Tls13) {
        return Err(TlsError::policy(
            "TLS Cipher List",
            format!("\"{list}\" leaves no TLS 1.2 suite, and TLS Protocol \"{p}\" allows no other version"),
        ));
    }
    if n13 == 0 && !p.allows(TlsVersion::Tls12) {
        return Err(TlsError::policy(
            "TLS Cipher Suites",
            format!(
                "no TLS 1.3 suite is enabled, and TLS Protocol \"{p}\" allows no other version"
            ),
        ));
    }
    Ok(())
}

/// The PEM blocks of one type in a file, in order.
fn pem_blocks<'a>(text: &'a str, label: &str) -> Vec<&'a str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(b) = rest.find(&begin) {
        let Some(e) = rest[b..].find(&end) else { break };
        let stop = b + e + end.len();
        out.push(&rest[b..stop]);
        rest = &rest[stop..];
    }
    out
}

/// `TLS Certificate Revocation List`: adds every CRL of the PEM file to the context's
/// verification store and turns on CRL checking of the peer's own certificate. A peer
/// whose issuer has no CRL in the store is refused too (OpenSSL: "unable to get
/// certificate CRL"); a CRL past its next update refuses every peer of that CA.
pub(crate) fn load_crl(b: &mut SslContextBuilder, path: &Path) -> Result<(), TlsError> {
    const D: &str = "Certificate Revocation List";
    let bytes = read_file(D, path)?;
    let text = String::from_utf8_lossy(&bytes);
    let blocks = pem_blocks(&text, "X509 CRL");
    if blocks.is_empty() {
        return Err(TlsError::config(
            D,
            path,
            "no PEM CRL (-----BEGIN X509 CRL-----) found in file",
        ));
    }
    let now = Asn1Time::days_from_now(0).map_err(|e| TlsError::setup("time", e))?;
    for block in blocks {
        let crl = X509Crl::from_pem(block.as_bytes())
            .map_err(|e| TlsError::config(D, path, format!("not a PEM CRL: {}", reasons(&e))))?;
        if let Some(next) = crl.next_update() {
            if *next < *now {
                tracing::warn!(
                    crl = %path.display(),
                    next_update = %next,
                    "TLS Certificate Revocation List has expired: peers of its CA are refused \
                     until it is renewed"
                );
            }
        }
        // SAFETY: both pointers are valid; the store takes its own reference to the CRL.
        let ok = unsafe { ffi_ext::X509_STORE_add_crl(b.cert_store_mut().as_ptr(), crl.as_ptr()) };
        if ok != 1 {
            let e = ErrorStack::get();
            return Err(TlsError::config(D, path, reasons(&e)));
        }
    }
    let flags = X509VerifyFlags::CRL_CHECK;
    b.cert_store_mut()
        .set_flags(flags)
        .map_err(|e| TlsError::setup("CRL check flags", e))?;
    b.verify_param_mut()
        .set_flags(flags)
        .map_err(|e| TlsError::setup("CRL check flags", e))?;
    Ok(())
}

/// Whether a PEM key file holds an encrypted key (PKCS#8 or traditional OpenSSL).
fn pem_is_encrypted(pem: &[u8]) -> bool {
    let t = String::from_utf8_lossy(pem);
    t.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") || t.contains("Proc-Type: 4,ENCRYPTED")
}

/// The first line of `TLS Key Passphrase File`, without its line end. Its content is
/// never logged nor put in an error.
fn read_passphrase(path: &Path) -> Result<Zeroizing<Vec<u8>>, TlsError> {
    const D: &str = "Key Passphrase File";
    warn_if_readable(path, D);
    let all = Zeroizing::new(read_file(D, path)?);
    let end = all.iter().position(|&b| b == b'\n').unwrap_or(all.len());
    let mut line = &all[..end];
    if let [rest @ .., b'\r'] = line {
        line = rest;
    }
    if line.is_empty() {
        return Err(TlsError::config(
            D,
            path,
            "the first line is empty; it must hold the key's passphrase",
        ));
    }
    Ok(Zeroizing::new(line.to_vec()))
}

/// Loads `TLS Key` (PEM, plain or encrypted PKCS#8 / traditional), decrypting it with
/// the first line of `TLS Key Passphrase File`. Never prompts on a terminal.
pub(crate) fn load_private_key(
    key: &Path,
    passphrase_file: Option<&Path>,
) -> Result<PKey<Private>, TlsError> {
    warn_if_readable(key, "Key");
    let pem = Zeroizing::new(read_file("Key", key)?);
    let encrypted = pem_is_encrypted(&pem);
    let pass = match passphrase_file {
        Some(p) => Some(read_passphrase(p)?),
        None if encrypted => {
            return Err(TlsError::config(
                "Key",
                key,
                "is encrypted: set \"TLS Key Passphrase File\" to a file whose first line is \
                 its passphrase",
            ))
        }
        None => None,
    };
    let mut too_long = false;
    let res = PKey::private_key_from_pem_callback(&pem, |buf| {
        // Called at most once (OpenSSL caches the answer for the whole decode).
        match &pass {
            Some(p) if p.len() <= buf.len() => {
                buf[..p.len()].copy_from_slice(p);
                Ok(p.len())
            }
            Some(_) => {
                too_long = true;
                Err(ErrorStack::get())
            }
            None => Err(ErrorStack::get()),
        }
    });
    match res {
        Ok(k) => Ok(k),
        Err(_) if too_long => Err(TlsError::config(
            "Key",
            key,
            "the passphrase in TLS Key Passphrase File is longer than OpenSSL accepts",
        )),
        Err(_) if encrypted => Err(TlsError::config(
            "Key",
            key,
            format!(
                "cannot decrypt it with the passphrase from TLS Key Passphrase File \"{}\" \
                 (wrong passphrase?)",
                passphrase_file
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ),
        )),
        Err(e) => Err(TlsError::config(
            "Key",
            key,
            format!("not a PEM private key: {}", reasons(&e)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_finds_each() {
        let t = "x\n-----BEGIN X509 CRL-----\nAA\n-----END X509 CRL-----\n\
                 -----BEGIN X509 CRL-----\nBB\n-----END X509 CRL-----\n";
        let b = pem_blocks(t, "X509 CRL");
        assert_eq!(b.len(), 2);
        assert!(b[1].contains("BB"));
        assert!(pem_blocks("-----BEGIN X509 CRL-----\nAA", "X509 CRL").is_empty());
    }
}
