//! Network and login errors.

use std::net::SocketAddr;

use baculink_proto::frame::FrameError;
use baculink_proto::handshake::{Refusal, RefusalReason};
use baculink_tls::TlsError;

/// Errors on an established connection.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The peer closed the connection.
    #[error("connection closed by {0}")]
    Eof(String),
    /// Socket error.
    #[error("I/O error with {peer}: {source}")]
    Io {
        /// Who.
        peer: String,
        /// What.
        source: std::io::Error,
    },
    /// Bad framing (oversized packet, corrupt compression).
    #[error("{peer}: {source}")]
    Frame {
        /// Who.
        peer: String,
        /// What.
        source: FrameError,
    },
    /// No data within the timeout.
    #[error("timed out waiting for {0}")]
    Timeout(String),
}

/// Why a login failed. The CLI maps the variants onto four distinct messages:
/// wrong password, TLS policy mismatch, certificate failure, host/CN mismatch.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Could not connect.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// Where.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The handshake machine refused (password, policy, malformed, unknown peer).
    #[error("{peer}: {refusal}")]
    Refused {
        /// Who (class, name, address).
        peer: String,
        /// Why.
        refusal: Refusal,
        /// How the login was protected when the refusal came (`Some(Mode::Tls)`:
        /// certificate TLS had been established, so a bare rejection likely
        /// means the peer's Verify Peer / Allowed CN refused our certificate).
        tls: Option<baculink_proto::negotiate::Mode>,
    },
    /// TLS handshake or verification failed.
    #[error("{peer}: {source}")]
    Tls {
        /// Who.
        peer: String,
        /// Why.
        source: TlsError,
    },
    /// The peer closed the connection right after the TLS handshake: it
    /// refused our certificate after verifying it (its Verify Peer / Allowed CN).
    #[error("{peer} closed the connection after the {mode} handshake: it did not accept our TLS certificate or identity ({source})")]
    ClosedAfterTls {
        /// Who.
        peer: String,
        /// TLS mode that had been established.
        mode: baculink_proto::negotiate::Mode,
        /// The close or error.
        source: NetError,
    },
    /// The connection failed during login.
    #[error(transparent)]
    Net(#[from] NetError),
    /// Authentication did not finish in time.
    #[error("login with {peer} did not finish within {secs} s")]
    Timeout {
        /// Who.
        peer: String,
        /// The limit.
        secs: u64,
    },
    /// The local side is misconfigured for this connection (e.g. TLS needed but no context).
    #[error("{0}")]
    Config(String),
}

impl LoginError {
    /// The refusal reason, when the handshake machine refused.
    pub fn reason(&self) -> Option<&RefusalReason> {
        match self {
            LoginError::Refused { refusal, .. } => Some(&refusal.reason),
            _ => None,
        }
    }
}

pub(crate) fn describe(addr: Option<SocketAddr>) -> String {
    addr.map(|a| a.to_string()).unwrap_or_else(|| "peer".into())
}
