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
