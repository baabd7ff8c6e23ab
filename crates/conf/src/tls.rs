//! The TLS directives every resource shares (protocol.md §8.3).

use std::path::PathBuf;

use baculink_proto::negotiate::Policy;

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
