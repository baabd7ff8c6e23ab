//! Login state machines: the auth client (sends the Hello, is the TLS client)
//! and the auth server (receives the Hello, is the TLS server), for both
//! dialects. See protocol.md §2-§5.
//!
//! The machines do no I/O. The driver feeds [`Input`]s and drains
//! [`Output`]s in order until [`Output::Done`] or [`Output::Failed`]:
//!
//! ```text
//! driver                         machine
//!   new(...)                -->  (client) Output::Send(Hello)
//!   Input::Packet(p)        -->  Output::Send(..) / StartTls(mode) / LookupPeer(hello) ...
//!   Input::TlsEstablished   -->  continues with CRAM inside TLS
//!   Input::Peer(cfg)        -->  (server, after LookupPeer) continues
//! ```
//!
//! Outputs must be executed in order: a `Send` before a `StartTls` goes out in
//! clear text, everything after it inside TLS. `DropTls` (TLS Authenticate)
//! means "discard TLS without close_notify and continue on the raw socket".
//! `Failed` carries the packets to send before closing (already emitted as
//! `Send`s) and the delay Bacula applies before closing (brute-force damping).

use std::time::Duration;

use crate::frame::Packet;
use crate::hello::Hello;
use crate::negotiate::{Dialect, Mode, Needs, PolicyMismatch};
use crate::Secret;

/// Which kind of TLS to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsKind {
    /// Certificate TLS with this side's certificate context.
    Certificate,
    /// TLS-PSK keyed with the connection's shared secret.
    Psk,
}

/// The kind of daemon on the accepting side; decides the final lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// A Director accepting consoles (final line `1000 OK: ...`).
    Director,
    /// A file daemon accepting a Director (`2000 OK Hello N`).
    FileDaemon,
    /// A storage daemon accepting a Director (`3000 OK Hello N`).
    StorageDirector,
    /// A storage daemon accepting a file daemon's data connection (job key).
    StorageClient,
}

/// Per-connection TLS and authentication settings of one side.
#[derive(Clone, Debug)]
pub struct Local {
    /// Shared secret: MD5-hex of the password, or the raw job session key.
    pub key: Secret,
    /// Our needs (from the resource's TLS directives).
    pub needs: Needs,
    /// `TLS Authenticate`: drop TLS after CRAM-MD5.
    pub authenticate: bool,
    /// Which dialect we speak: `V13` sends `tlspsk=` and honours `starttls`;
    /// `V96` behaves exactly like a Bacula 9.6 daemon (tests and old peers).
    pub dialect: Dialect,
    /// Our name for the host part of our CRAM challenge token (spaces are
    /// replaced, see protocol.md quirk 11.6).
    pub name: String,
}

/// Settings of the auth client.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The Hello to send (its `tlspsk` field is filled from `local.needs`
    /// when `local.dialect` is `V13`, and dropped for `V96`).
    pub hello: Hello,
    /// Our secret, needs and dialect.
    pub local: Local,
}

/// Settings of the auth server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// What kind of daemon we are (final lines and Hello acceptance).
    pub kind: ServerKind,
    /// Our daemon name (in the Director's `1000 OK:` line and in the challenge).
    pub name: String,
    /// The version number we announce in our final line.
    pub version: u32,
    /// For `ServerKind::Director`: the text after `Version: ` in the `1000 OK:` line,
    /// e.g. `13.0.3 (02 May 2023)`.
    pub version_text: String,
    /// Dialect we speak when the peer's Hello carries `tlspsk=` (V13), else we
    /// fall back to 9.6 behaviour for that peer.
    pub dialect: Dialect,
}

/// Random and clock inputs for CRAM challenge tokens (the machine has no clock).
#[derive(Clone, Copy, Debug)]
pub struct Nonce {
    /// A random 31-bit number.
    pub random: u32,
    /// Unix time in seconds.
    pub time: u64,
}

/// What the driver tells the machine.
#[derive(Debug)]
pub enum Input {
    /// A packet received from the peer.
    Packet(Packet),
    /// The TLS handshake asked for by `Output::StartTls` completed (after the
    /// driver's own certificate / Allowed CN / host checks).
    TlsEstablished,
    /// Server only, answer to `Output::LookupPeer`: the peer is known.
    Peer(Local),
    /// Server only, answer to `Output::LookupPeer`: no resource for this name
    /// (or the job is unknown); the machine emits the daemon's rejection.
    UnknownPeer,
}

/// What the machine tells the driver to do.
#[derive(Debug)]
pub enum Output {
    /// Send this packet.
    Send(Packet),
    /// Start TLS now on the raw stream: as TLS client on the auth client, as
    /// TLS server on the auth server. Then feed `Input::TlsEstablished`.
    StartTls(TlsKind),
    /// Discard TLS without close_notify; continue in clear (TLS Authenticate).
    DropTls,
    /// Server only: find the resource for this Hello and answer with
    /// `Input::Peer` or `Input::UnknownPeer`.
    LookupPeer(Hello),
    /// Login succeeded.
    Done(Established),
    /// Login failed; the connection must be closed after `delay`.
    Failed(Refusal),
}

/// Facts about a completed login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Established {
    /// How the connection is protected from now on (`Clear` after TLS Authenticate).
    pub mode: Mode,
    /// How the login itself was protected (differs from `mode` after TLS Authenticate).
    pub login_mode: Mode,
    /// The dialect the peer spoke.
    pub peer_dialect: Dialect,
    /// The peer's version number: from its Hello (server) or final line (client).
    pub peer_version: Option<u32>,
    /// The peer's Hello (server side only).
    pub peer_hello: Option<Hello>,
    /// The peer's final line, text (client side only), e.g. `1000 OK: 103 bacula-dir Version: ...`.
    pub final_line: Option<String>,
}

/// Why a login failed; variants say who is at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RefusalReason {
    /// The peer's CRAM-MD5 response did not match our key, or the peer rejected ours.
    #[error("wrong password: {0}")]
    WrongPassword(String),
    /// TLS requirements cannot be met.
    #[error(transparent)]
    Policy(#[from] PolicyMismatch),
    /// The peer ignored our TLS requirement (e.g. kept talking clear text after ssl=2).
    #[error("peer violated the TLS negotiation: {0}")]
    PeerIgnoredTls(String),
    /// A malformed or oversized Hello / challenge / reply.
    #[error("malformed message from peer: {0}")]
    Malformed(String),
    /// No resource for the name in the Hello.
    #[error("unknown peer {0:?}")]
    UnknownPeer(String),
    /// The peer closed or terminated the connection, or sent a rejection line.
    #[error("rejected by peer: {0}")]
    Rejected(String),
}

/// A failed login: the reason and how long to wait before closing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Refusal {
    /// Why.
    pub reason: RefusalReason,
    /// Delay before the driver closes the connection (Bacula's damping).
    pub delay: Duration,
}

/// The auth client state machine.
#[derive(Debug)]
pub struct ClientHandshake {
    // implementation-defined
    _private: (),
}

/// The auth server state machine.
#[derive(Debug)]
pub struct ServerHandshake {
    _private: (),
}
