//! The TLS directives every resource shares (protocol.md §8.3).

use std::path::PathBuf;

use baculink_proto::negotiate::Policy;

use crate::error::{ConfigError, Location};

/// Whether a resource's TLS context acts as TLS server or client; decides
/// which material start-up validation demands (protocol.md §8.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsRole {
    /// Accepts connections: needs a certificate and key, and a CA when verifying peers.
    Server,
    /// Makes connections: needs a CA to verify the server.
    Client,
}

/// The TLS directives of one resource, with Bacula's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// `TLS Enable` (default no).
    pub enable: bool,
    /// `TLS Require` (default no).
    pub require: bool,
    /// `TLS Authenticate` (default no): TLS only during the login.
    pub authenticate: bool,
    /// `TLS Verify Peer` (default yes): a TLS server demands and verifies a client certificate.
    pub verify_peer: bool,
    /// `TLS PSK Enable` (default yes, like Bacula 13).
    pub psk_enable: bool,
    /// `TLS Allowed CN`: accepted peer CNs / DNS subjectAltNames (empty = any).
    pub allowed_cn: Vec<String>,
    /// `TLS CA Certificate File`.
    pub ca_file: Option<PathBuf>,
    /// `TLS CA Certificate Dir` (OpenSSL hashed directory).
    pub ca_dir: Option<PathBuf>,
    /// `TLS Certificate` (PEM chain).
    pub certificate: Option<PathBuf>,
    /// `TLS Key` (PEM).
    pub key: Option<PathBuf>,
    /// `TLS DH File` (PEM DH parameters).
    pub dh_file: Option<PathBuf>,
    /// `TLS Protocol` (baculink only): the TLS versions this resource may
    /// negotiate, certificate and PSK alike (default: TLS 1.2 and newer).
    pub protocol: TlsProtocol,
    /// `TLS Cipher List` (baculink only): OpenSSL cipher list for TLS <= 1.2
    /// certificate sessions, replacing our forward-secret default; weak
    /// results are refused when the context is built.
    pub cipher_list: Option<String>,
    /// `TLS Cipher Suites` (baculink only): TLS 1.3 suites, `:`-separated.
    /// PSK contexts use only its SHA-256 suites (protocol.md §7).
    pub cipher_suites: Option<String>,
    /// `TLS Groups` (baculink only): the key exchange groups, in OpenSSL's
    /// groups-list syntax, for certificate and PSK sessions alike; `None` =
    /// the library's default (with OpenSSL 3.5 and newer, the post-quantum
    /// hybrid X25519MLKEM768 first).
    pub groups: Option<String>,
    /// `TLS Certificate Revocation List` (baculink only): PEM CRL file; peer
    /// certificates it revokes are refused.
    pub crl_file: Option<PathBuf>,
    /// `TLS Key Passphrase File` (baculink only): its first line decrypts an
    /// encrypted `TLS Key`.
    pub key_passphrase_file: Option<PathBuf>,
    /// `FIPS Require` (baculink only): run OpenSSL with its FIPS provider or
    /// refuse to start. Process-wide, so only the daemon's own resource
    /// (and bconsole's resources) accept it.
    pub fips_require: bool,
}

/// A TLS protocol version baculink negotiates; TLS 1.2 is the floor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl std::fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        })
    }
}

impl TlsVersion {
    /// Parses `TLSv1.2`, `TLS1.2`, `1.2` (any case; likewise 1.3). Older
    /// versions are named in the error: they are below our floor.
    pub fn parse(s: &str) -> Result<TlsVersion, String> {
        let l = s.trim().to_ascii_lowercase();
        let num = l
            .strip_prefix("tlsv")
            .or_else(|| l.strip_prefix("tls"))
            .unwrap_or(&l);
        match num {
            "1.2" => Ok(TlsVersion::Tls12),
            "1.3" => Ok(TlsVersion::Tls13),
            "1" | "1.0" | "1.1" => Err(format!(
                "\"{s}\" is below the floor: baculink negotiates TLS 1.2 or newer only"
            )),
            _ if l.starts_with("ssl") => Err(format!(
                "\"{s}\" is below the floor: baculink negotiates TLS 1.2 or newer only"
            )),
            _ => Err(format!(
                "unknown TLS version \"{s}\" (expected TLSv1.2 or TLSv1.3)"
            )),
        }
    }
}

/// `TLS Protocol`: the range of versions a resource's contexts allow.
///
/// Syntax (case-insensitive, `TLSv1.2`, `TLS1.2` and `1.2` are the same):
/// `TLSv1.2` exactly that version; `TLSv1.2+` or `min TLSv1.2` that version
/// and newer; `max TLSv1.2` up to that version (from the TLS 1.2 floor);
/// `TLSv1.2-TLSv1.3` or `min TLSv1.2 max TLSv1.3` a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TlsProtocol {
    /// Lowest version (never below TLS 1.2).
    pub min: TlsVersion,
    /// Highest version; `None` = the newest the library supports.
    pub max: Option<TlsVersion>,
}

impl Default for TlsProtocol {
    fn default() -> Self {
        TlsProtocol {
            min: TlsVersion::Tls12,
            max: None,
        }
    }
}

impl std::fmt::Display for TlsProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.max {
            None => write!(f, "{}+", self.min),
            Some(m) if m == self.min => write!(f, "{m}"),
            Some(m) => write!(f, "{}-{m}", self.min),
        }
    }
}

impl TlsProtocol {
    /// Parses the `TLS Protocol` value (see the type's documentation).
    pub fn parse(s: &str) -> Result<TlsProtocol, String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let v = TlsVersion::parse;
        let (min, max) = match words.as_slice() {
            [] => return Err("expected a TLS version such as \"TLSv1.2+\"".into()),
            [w] if w.ends_with('+') => (v(&w[..w.len() - 1])?, None),
            [w] if w.contains('-') => {
                let (a, b) = w.split_once('-').unwrap_or_default();
                (v(a)?, Some(v(b)?))
            }
            [a, "-", b] => (v(a)?, Some(v(b)?)),
            [w] => {
                let x = v(w)?;
                (x, Some(x))
            }
            [k, x] if k.eq_ignore_ascii_case("min") => (v(x)?, None),
            [k, x] if k.eq_ignore_ascii_case("max") => (TlsVersion::Tls12, Some(v(x)?)),
            [k1, a, k2, b] if k1.eq_ignore_ascii_case("min") && k2.eq_ignore_ascii_case("max") => {
                (v(a)?, Some(v(b)?))
            }
            _ => {
                return Err(format!(
                    "cannot read \"{s}\": expected TLSv1.2, TLSv1.2+, min TLSv1.2, \
                     max TLSv1.2 or TLSv1.2-TLSv1.3"
                ))
            }
        };
        if let Some(m) = max {
            if m < min {
                return Err(format!(
                    "\"{s}\": the maximum {m} is below the minimum {min}"
                ));
            }
        }
        Ok(TlsProtocol { min, max })
    }

    /// Whether `v` is inside the range.
    pub fn allows(&self, v: TlsVersion) -> bool {
        v >= self.min && !matches!(self.max, Some(m) if v > m)
    }
}

/// The TLS 1.3 suites of a `TLS Cipher Suites` value, as OpenSSL splits it.
pub fn split_suites(s: &str) -> impl Iterator<Item = &str> {
    s.split(':').map(str::trim).filter(|x| !x.is_empty())
}

/// The first group of an OpenSSL groups list (`TLS Groups`; not one it removes
/// with `-`) under 112 bits of security: the binary and prime curves of 163 to
/// 193 bits that OpenSSL still knows for TLS 1.2. Config files are refused with
/// it at load, and the TLS crate checks settings built by hand the same way.
pub fn weak_group(list: &str) -> Option<&str> {
    const WEAK: &[&str] = &[
        "secp160", "secp192", "sect163", "sect193", "prime192", "p-192",
    ];
    list.split([':', '/'])
        .map(|g| g.trim_start_matches(['?', '*']))
        .filter(|g| !g.starts_with('-'))
        .find(|g| {
            let l = g.to_ascii_lowercase();
            WEAK.iter().any(|w| l.starts_with(w))
        })
}

/// What a weak group in `TLS Groups` is refused with.
pub fn weak_group_reason(group: &str) -> String {
    format!("\"{group}\" gives less than 112 bits of security; use X25519, secp256r1 or stronger groups")
}

/// Whether a TLS 1.3 suite uses SHA-256, the only hash TLS 1.3 external PSKs
/// can use with Bacula (protocol.md §7.1).
pub fn is_sha256_suite(name: &str) -> bool {
    name.to_ascii_uppercase().ends_with("_SHA256")
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            enable: false,
            require: false,
            authenticate: false,
            verify_peer: true,
            psk_enable: true,
            allowed_cn: Vec::new(),
            ca_file: None,
            ca_dir: None,
            certificate: None,
            key: None,
            dh_file: None,
            protocol: TlsProtocol::default(),
            cipher_list: None,
            cipher_suites: None,
            groups: None,
            crl_file: None,
            key_passphrase_file: None,
            fips_require: false,
        }
    }
}

impl TlsSettings {
    /// Whether certificate material is configured for this role, as Bacula 13
    /// decides whether `TLS Require` implies `TLS Enable` (protocol.md §8.4):
    /// a server needs its certificate or key, a client its CA.
    pub fn has_cert_material(&self, role: TlsRole) -> bool {
        match role {
            TlsRole::Server => self.certificate.is_some() || self.key.is_some(),
            TlsRole::Client => {
                self.ca_file.is_some()
                    || self.ca_dir.is_some()
                    || self.certificate.is_some()
                    || self.key.is_some()
            }
        }
    }

    /// Whether certificate TLS is on for this resource (Enable, or Require with material).
    pub fn cert_enabled(&self, role: TlsRole) -> bool {
        self.policy(role).needs().cert != baculink_proto::negotiate::Need::None
            || self.authenticate && self.has_cert_material(role)
    }

    /// The negotiation policy of this resource.
    pub fn policy(&self, role: TlsRole) -> Policy {
        Policy {
            enable: self.enable,
            require: self.require,
            authenticate: self.authenticate,
            psk_enable: self.psk_enable,
            has_cert_material: self.has_cert_material(role),
        }
    }
}

impl TlsSettings {
    /// Whether this resource builds a certificate TLS context at start-up
    /// (protocol.md §8.4: `TLS Enable` after the Require rule, or `TLS Authenticate`).
    pub fn needs_context(&self, role: TlsRole) -> bool {
        self.cert_enabled(role) || self.authenticate
    }

    /// Whether a CA file or directory is configured.
    pub fn has_ca(&self) -> bool {
        self.ca_file.is_some() || self.ca_dir.is_some()
    }
}

/// Whether any of these resources says `FIPS Require = yes` (FIPS mode is
/// process-wide, so one is enough).
pub fn fips_required(resources: &[&dyn TlsResource]) -> bool {
    resources.iter().any(|r| r.tls().fips_require)
}

/// A resource with TLS settings: what start-up validation and the network
/// code need to know about it.
pub trait TlsResource {
    /// The resource type as messages name it (`Director`, `Client`, ...).
    fn resource_type(&self) -> &'static str;
    /// The resource's name.
    fn name(&self) -> &str;
    /// Where the resource starts.
    fn location(&self) -> &Location;
    /// Its TLS directives.
    fn tls(&self) -> &TlsSettings;
    /// Whether its TLS context accepts (server) or makes (client) connections,
    /// as start-up validation sees it (protocol.md §6.1, §8.4).
    fn tls_role(&self) -> TlsRole;
}

/// Start-up validation of one resource (protocol.md §8.4): when it needs a
/// certificate TLS context, a server-role resource needs `TLS Certificate`,
/// `TLS Key` and, with `TLS Verify Peer`, a CA file or directory; a
/// client-role resource needs a CA file or directory.
pub fn validate_resource(r: &dyn TlsResource) -> Result<(), ConfigError> {
    let tls = r.tls();
    let role = r.tls_role();
    if !tls.needs_context(role) {
        return Ok(());
    }
    let what = format!("{} \"{}\"", r.resource_type(), r.name());
    let fail = |m: String| Err(ConfigError::resource(r.location(), m));
    match role {
        TlsRole::Server => {
            if tls.certificate.is_none() {
                return fail(format!(
                    "\"TLS Certificate\" file not defined for {what}; a resource that accepts \
                     TLS connections needs its certificate"
                ));
            }
            if tls.key.is_none() {
                return fail(format!(
                    "\"TLS Key\" file not defined for {what}; a resource that accepts \
                     TLS connections needs its private key"
                ));
            }
            if tls.verify_peer && !tls.has_ca() {
                return fail(format!(
                    "Neither \"TLS CA Certificate File\" nor \"TLS CA Certificate Dir\" is \
                     defined for {what}. At least one CA certificate store is required when \
                     using \"TLS Verify Peer\""
                ));
            }
        }
        TlsRole::Client => {
            if !tls.has_ca() {
                return fail(format!(
                    "Neither \"TLS CA Certificate File\" nor \"TLS CA Certificate Dir\" is \
                     defined for {what}. A CA certificate store is required to verify the \
                     server's certificate"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_groups_are_found() {
        assert_eq!(weak_group("X25519:secp256r1"), None);
        assert_eq!(weak_group("X25519:?*secp192r1"), Some("secp192r1"));
        assert_eq!(weak_group("P-192"), Some("P-192"));
        assert_eq!(weak_group("*X25519MLKEM768/sect163k1"), Some("sect163k1"));
        // Removing a weak group from the default is fine.
        assert_eq!(weak_group("DEFAULT:-secp160r1"), None);
    }
}
