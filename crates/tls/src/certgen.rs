//! A small certificate authority for `baculink certs init`, tests and demos: a CA and
//! leaf certificates usable by Bacula daemons both as TLS server and TLS client.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509Builder, X509NameBuilder, X509};

use crate::error::{reasons, TlsError};

/// RFC 7919 `ffdhe2048` group as PEM DH parameters (a published standard value), for
/// `TLS DH File`.
pub const FFDHE2048_PEM: &str = "-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
";

/// Kind of key to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KeyKind {
    /// ECDSA on P-256: fast to generate, supported by every OpenSSL a Bacula uses.
    #[default]
    EcP256,
    /// RSA with this many bits.
    Rsa(u32),
}

/// What to put in a leaf certificate.
#[derive(Clone, Debug)]
pub struct LeafSpec {
    /// Subject commonName.
    pub cn: String,
    /// DNS subjectAltNames.
    pub dns: Vec<String>,
    /// IP subjectAltNames.
    pub ips: Vec<IpAddr>,
    /// notBefore, in days relative to now (negative = in the past).
    pub not_before_days: i64,
    /// notAfter, in days relative to now (negative = already expired).
    pub not_after_days: i64,
    /// Key type.
    pub key: KeyKind,
}

impl LeafSpec {
    /// A certificate valid from now for `days` days.
    pub fn new(cn: &str, dns: &[&str], ips: &[IpAddr], days: u32) -> LeafSpec {
        LeafSpec {
            cn: cn.to_string(),
            dns: dns.iter().map(|s| s.to_string()).collect(),
            ips: ips.to_vec(),
            not_before_days: 0,
            not_after_days: days as i64,
            key: KeyKind::default(),
        }
    }
}

/// A certificate authority: its certificate and private key.
pub struct Ca {
    /// The self-signed CA certificate.
    pub cert: X509,
    /// The CA's private key.
    pub key: PKey<Private>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("subject", &crate::names::one_line(self.cert.subject_name()))
            .finish_non_exhaustive()
    }
}

fn g(e: openssl::error::ErrorStack) -> TlsError {
    TlsError::Generate(reasons(&e))
}

/// Generates a private key.
pub fn generate_key(kind: KeyKind) -> Result<PKey<Private>, TlsError> {
    match kind {
        KeyKind::EcP256 => {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(g)?;
            PKey::from_ec_key(EcKey::generate(&group).map_err(g)?).map_err(g)
        }
        KeyKind::Rsa(bits) => PKey::from_rsa(Rsa::generate(bits).map_err(g)?).map_err(g),
    }
}

fn time_from_now(days: i64) -> Result<Asn1Time, TlsError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| TlsError::Generate(e.to_string()))?
        .as_secs() as i64;
    let t = now + days * 86_400;
    Asn1Time::from_unix(t as libc::time_t).map_err(g)
}

fn serial() -> Result<Asn1Integer, TlsError> {
    let mut bn = BigNum::new().map_err(g)?;
    bn.rand(127, MsbOption::MAYBE_ZERO, false).map_err(g)?;
    bn.to_asn1_integer().map_err(g)
}

fn name(cn: &str) -> Result<openssl::x509::X509Name, TlsError> {
    let mut n = X509NameBuilder::new().map_err(g)?;
    n.append_entry_by_nid(Nid::ORGANIZATIONNAME, "baculink")
        .map_err(g)?;
    n.append_entry_by_nid(Nid::COMMONNAME, cn).map_err(g)?;
    Ok(n.build())
}

impl Ca {
    /// A new CA valid for ten years with a P-256 key.
    pub fn new(cn: &str) -> Result<Ca, TlsError> {
        Ca::with_options(cn, 3650, KeyKind::default())
    }

    /// A new CA with the given validity and key type.
    pub fn with_options(cn: &str, days: u32, kind: KeyKind) -> Result<Ca, TlsError> {
        let key = generate_key(kind)?;
        let subject = name(cn)?;
        let mut b = X509Builder::new().map_err(g)?;
        b.set_version(2).map_err(g)?;
        b.set_serial_number(serial()?.as_ref()).map_err(g)?;
        b.set_subject_name(&subject).map_err(g)?;
        b.set_issuer_name(&subject).map_err(g)?;
        b.set_pubkey(&key).map_err(g)?;
        b.set_not_before(time_from_now(-1)?.as_ref()).map_err(g)?;
        b.set_not_after(time_from_now(days as i64)?.as_ref())
            .map_err(g)?;
        b.append_extension(BasicConstraints::new().critical().ca().build().map_err(g)?)
            .map_err(g)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .map_err(g)?,
        )
        .map_err(g)?;
        let ski = SubjectKeyIdentifier::new()
            .build(&b.x509v3_context(None, None))
            .map_err(g)?;
        b.append_extension(ski).map_err(g)?;
        b.sign(&key, MessageDigest::sha256()).map_err(g)?;
        Ok(Ca {
            cert: b.build(),
            key,
        })
    }

    /// Loads an existing CA from PEM files.
    pub fn load(cert: &Path, key: &Path) -> Result<Ca, TlsError> {
        let c = fs::read(cert).map_err(|e| {
            TlsError::config("CA Certificate File", cert, crate::error::io_reason(&e))
        })?;
        let k =
            fs::read(key).map_err(|e| TlsError::config("Key", key, crate::error::io_reason(&e)))?;
        Ok(Ca {
            cert: X509::from_pem(&c)
                .map_err(|e| TlsError::config("CA Certificate File", cert, reasons(&e)))?,
            key: PKey::private_key_from_pem(&k)
                .map_err(|e| TlsError::config("Key", key, reasons(&e)))?,
        })
    }

    /// Issues a leaf certificate for `cn` with DNS and IP subjectAltNames, valid for `days`.
    pub fn issue(
        &self,
        cn: &str,
        dns: &[&str],
        ips: &[IpAddr],
        days: u32,
    ) -> Result<(X509, PKey<Private>), TlsError> {
        self.issue_spec(&LeafSpec::new(cn, dns, ips, days))
    }

    /// Issues a leaf certificate (serverAuth and clientAuth, since Bacula daemons play both).
    pub fn issue_spec(&self, spec: &LeafSpec) -> Result<(X509, PKey<Private>), TlsError> {
        let key = generate_key(spec.key)?;
        let mut b = X509Builder::new().map_err(g)?;
        b.set_version(2).map_err(g)?;
        b.set_serial_number(serial()?.as_ref()).map_err(g)?;
        b.set_subject_name(name(&spec.cn)?.as_ref()).map_err(g)?;
        b.set_issuer_name(self.cert.subject_name()).map_err(g)?;
        b.set_pubkey(&key).map_err(g)?;
        b.set_not_before(time_from_now(spec.not_before_days)?.as_ref())
            .map_err(g)?;
        b.set_not_after(time_from_now(spec.not_after_days)?.as_ref())
            .map_err(g)?;
        b.append_extension(BasicConstraints::new().build().map_err(g)?)
            .map_err(g)?;
        let mut ku = KeyUsage::new();
        ku.critical().digital_signature();
        if matches!(spec.key, KeyKind::Rsa(_)) {
            ku.key_encipherment();
        }
        b.append_extension(ku.build().map_err(g)?).map_err(g)?;
        b.append_extension(
            ExtendedKeyUsage::new()
                .server_auth()
                .client_auth()
                .build()
                .map_err(g)?,
        )
        .map_err(g)?;
        if !spec.dns.is_empty() || !spec.ips.is_empty() {
            let mut san = SubjectAlternativeName::new();
            for d in &spec.dns {
                san.dns(d);
            }
            for ip in &spec.ips {
                san.ip(&ip.to_string());
            }
            let ext = san
                .build(&b.x509v3_context(Some(&self.cert), None))
                .map_err(g)?;
            b.append_extension(ext).map_err(g)?;
        }
        let ski = SubjectKeyIdentifier::new()
            .build(&b.x509v3_context(Some(&self.cert), None))
            .map_err(g)?;
        b.append_extension(ski).map_err(g)?;
        let aki = AuthorityKeyIdentifier::new()
            .keyid(false)
            .build(&b.x509v3_context(Some(&self.cert), None))
            .map_err(g)?;
        b.append_extension(aki).map_err(g)?;
        b.sign(&self.key, MessageDigest::sha256()).map_err(g)?;
        Ok((b.build(), key))
    }
}

/// Writes a file; `private` files get mode 0600 from creation on.
fn write_file(path: &Path, data: &[u8], private: bool) -> Result<(), TlsError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    if private {
        // An existing file keeps its old mode through open(); tighten it.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(data)?;
    Ok(())
}

/// Writes a certificate as PEM (mode 0644).
pub fn write_cert_pem(path: &Path, cert: &X509) -> Result<(), TlsError> {
    write_file(path, &cert.to_pem().map_err(g)?, false)
}

/// Writes a private key as unencrypted PKCS#8 PEM (mode 0600).
pub fn write_key_pem(path: &Path, key: &PKey<Private>) -> Result<(), TlsError> {
    let pem = zeroize::Zeroizing::new(key.private_key_to_pem_pkcs8().map_err(g)?);
    write_file(path, &pem, true)
}

/// Writes `<dir>/<name>.pem` and `<dir>/<name>.key`; returns their paths.
pub fn write_pem_files(
    dir: &Path,
    name: &str,
    cert: &X509,
    key: &PKey<Private>,
) -> Result<(PathBuf, PathBuf), TlsError> {
    let c = dir.join(format!("{name}.pem"));
    let k = dir.join(format!("{name}.key"));
    write_cert_pem(&c, cert)?;
    write_key_pem(&k, key)?;
    Ok((c, k))
}

/// Writes the RFC 7919 ffdhe2048 parameters as a `TLS DH File`.
pub fn write_dh_file(path: &Path) -> Result<(), TlsError> {
    write_file(path, FFDHE2048_PEM.as_bytes(), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ffdhe2048_is_2048_bits_generator_2() {
        let dh = openssl::dh::Dh::params_from_pem(FFDHE2048_PEM.as_bytes()).unwrap();
        assert_eq!(dh.prime_p().num_bits(), 2048);
        assert_eq!(dh.generator().to_dec_str().unwrap().to_string(), "2");
        let hex = dh.prime_p().to_hex_str().unwrap().to_string();
        assert!(hex.starts_with("FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1"));
        assert!(hex.ends_with("886B423861285C97FFFFFFFFFFFFFFFF"));
    }

    #[test]
    fn leaf_verifies_against_ca() {
        let ca = Ca::new("Test CA").unwrap();
        let (leaf, _key) = ca
            .issue(
                "bacula-dir",
                &["dir.example"],
                &["127.0.0.1".parse().unwrap()],
                30,
            )
            .unwrap();
        assert!(leaf.verify(&ca.cert.public_key().unwrap()).unwrap());
        assert_eq!(
            crate::names::common_names(&leaf),
            vec!["bacula-dir".to_string()]
        );
        assert_eq!(
            crate::names::dns_names(&leaf),
            vec!["dir.example".to_string()]
        );
        assert!(crate::names::bacula_host_match(&leaf, "127.0.0.1"));
        assert!(crate::names::bacula_host_match(&leaf, "bacula-dir"));
        assert!(!crate::names::bacula_host_match(&leaf, "other"));
    }
}
