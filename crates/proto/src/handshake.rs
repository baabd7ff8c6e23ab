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
//! `Failed` comes after the packets to send before closing (emitted as
//! `Send`s) and carries the delay Bacula applies before closing (brute-force
//! damping); the driver sends, waits, then closes.
//!
//! Where the driver's TLS handshake cannot start because the peer sent a
//! clear-text packet instead, the driver should feed that packet: the machine
//! then reports [`RefusalReason::PeerIgnoredTls`] (or `Rejected` for a
//! failure line) and says who offered what.
//!
//! Sequence of the auth client (13.x dialect; 9.6 skips the `starttls` check):
//! `Send(Hello)`; on `sdcaps:` (FD→SD only) `Send(fdcaps)`; on
//! `starttls tlspsk=N` decide, then `StartTls(kind)` and wait for
//! `TlsEstablished`; `Send(response)`; on `1000 OK auth` `Send(our
//! challenge)`; on a good response `Send(1000 OK auth)`, then `DropTls` (TLS
//! Authenticate after early TLS) or, if TLS was not started early, decide on
//! the `ssl=` values and `StartTls(Certificate)`; read the final line;
//! `Done`.
//!
//! Sequence of the auth server: read the Hello, `LookupPeer(hello)`; on
//! `Peer`: (13.x SD with a 13.x FD) `Send(sdcaps)` and read `fdcaps:`;
//! `Send(starttls)` and `StartTls(kind)` when both can do some TLS;
//! `Send(challenge)`, verify, `Send(verdict)`; read the peer's challenge,
//! `Send(response)`, read its verdict; then `DropTls` or late `StartTls`;
//! `Send(final line)`; `Done`.

use std::collections::VecDeque;
use std::time::Duration;

use crate::cram::{self, CramError, AUTH_FAILED, AUTH_OK};
use crate::frame::{Packet, Signal};
use crate::hello::{self, FinalLine, Hello, HelloError};
use crate::negotiate::{self, Dialect, Mode, Needs, PolicyMismatch};
use crate::scan::c_text;
use crate::Secret;

/// Which kind of TLS to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsKind {
    /// Certificate TLS with this side's certificate context.
    Certificate,
    /// TLS-PSK keyed with the connection's shared secret.
    Psk,
}

impl TlsKind {
    fn of(mode: Mode) -> Option<TlsKind> {
        match mode {
            Mode::Clear => None,
            Mode::Tls => Some(TlsKind::Certificate),
            Mode::Psk => Some(TlsKind::Psk),
        }
    }
}

/// The kind of daemon on the accepting side; decides which Hellos are
/// accepted, the final lines, and what is sent and how long to wait on failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// A Director accepting consoles, tray monitors and `fdcallsdir` FDs
    /// (final line `1000 OK: ...`).
    Director,
    /// A file daemon accepting a Director (`2000 OK Hello N`). A "SD calls
    /// client" first line yields [`Output::Handover`].
    FileDaemon,
    /// A storage daemon accepting a Director (`3000 OK Hello N`).
    StorageDirector,
    /// A storage daemon accepting a file daemon's data connection (job key).
    StorageClient,
    /// A storage daemon accepting any connection: the Hello's prefix decides
    /// between the Director and the client path, like Bacula's SD.
    Storage,
}

/// Per-connection TLS and authentication settings of one side.
#[derive(Clone, Debug)]
pub struct Local {
    /// Shared secret: MD5-hex of the password, or the raw job session key.
    pub key: Secret,
    /// Our needs (from the resource's TLS directives). With `dialect: V96`
    /// only `cert` is used, holding the 9.6 need ([`negotiate::Policy::need_v96`]).
    pub needs: Needs,
    /// `TLS Authenticate`: drop TLS after CRAM-MD5 (13.x, when TLS started
    /// early) or right after the post-CRAM handshake (9.6).
    pub authenticate: bool,
    /// Which dialect we speak: `V13` sends `tlspsk=` and honours `starttls`;
    /// `V96` behaves exactly like a Bacula 9.6 daemon (tests and old peers).
    pub dialect: Dialect,
    /// Our name for the host part of our CRAM challenge token (spaces are
    /// replaced, see protocol.md quirk 11.6). On the server an empty name
    /// means [`ServerConfig::name`].
    pub name: String,
}

/// Settings of the auth client.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The Hello to send (its `tlspsk` field is filled from `local.needs`
    /// when `local.dialect` is `V13`, and dropped for `V96`). Its form also
    /// decides which final line is expected.
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
    /// fall back to 9.6 behaviour for that peer. `V96` parses Hellos like 9.6.
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

impl Nonce {
    /// A nonce from a random number and the current Unix time.
    pub fn new(random: u32, time: u64) -> Nonce {
        Nonce { random, time }
    }
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
    /// File daemon only: the first packet was a valid "SD calls client" line
    /// (`Hello FD: Bacula Storage calling Start Job ...`, §4.5). It starts no
    /// login on this side; the machine is finished. Park the connection for
    /// that job; the FD later runs a [`ClientHandshake`] on it.
    Handover(Hello),
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
    /// The dialect the peer spoke: on the server, V13 iff its Hello carried
    /// `tlspsk=`; on the client, V13 if it sent `starttls`, else a guess from
    /// the version in its final line.
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
    /// The first packet was a `Ping` probe (file daemon), answered with
    /// `2000 Ping OK`; there is no login on this connection.
    #[error("the peer only sent a Ping probe (answered \"2000 Ping OK\")")]
    Ping,
    /// The driver fed an input the machine was not waiting for (a bug in the
    /// driver, not the peer's fault).
    #[error("input out of order (driver bug): {0}")]
    InvalidInput(String),
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

/// Bacula's pause after any CRAM-MD5 failure (§3.6).
const CRAM_DELAY: Duration = Duration::from_secs(5);
/// The file daemon's serialised pause after a failed login (§4.2, §4.4).
const FD_DELAY: Duration = Duration::from_secs(6);
/// Director and storage daemon pause after a failed login.
const DAEMON_DELAY: Duration = Duration::from_secs(5);

/// The (non-secret) needs of our resource as printed in messages.
fn offered(local: &Local) -> String {
    match local.dialect {
        Dialect::V13 => local.needs.to_string(),
        Dialect::V96 => format!("ssl={}", local.needs.cert.wire()),
    }
}

fn decide_for(local: &Local, remote: Needs) -> Result<Mode, PolicyMismatch> {
    match local.dialect {
        Dialect::V96 => negotiate::decide_v96(local.needs.cert, remote.cert),
        Dialect::V13 => negotiate::decide(local.needs, remote),
    }
}

/// A data packet's text for messages: at most 100 bytes, cut at NUL.
fn quote(data: &[u8]) -> String {
    format!("{:?}", c_text(&data[..data.len().min(100)]))
}

/// "a clear-text 17-byte data packet" without showing its content.
fn describe(packet: &Packet) -> String {
    match packet {
        Packet::Data(d) => match hello::failure_line(d) {
            Some(line) => format!("{line:?}"),
            None => format!("a {}-byte data packet", d.len()),
        },
        Packet::Signal(s) => s.name(),
    }
}

fn signal_reason(who: &str, s: Signal, waiting: &str) -> RefusalReason {
    let what = if s == Signal::Terminate {
        "terminated the connection (BNET_TERMINATE)".to_string()
    } else {
        format!("sent the signal {}", s.name())
    };
    RefusalReason::Rejected(format!("{who} {what} while we waited for {waiting}"))
}

/// What the auth client connects to, from the Hello it sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// Console-type login: Director answers `1000 OK:` (or an FD `2000 OK Hello`).
    Director,
    /// 13.x fdcallsdir: `1000 OK: ` then `OK\n`.
    FdCallsDir,
    /// Director (or monitor) to an FD.
    FileDaemon,
    /// Director (or monitor) to an SD.
    Storage,
    /// FD (or SD as client) to an SD: job data channel.
    StorageData,
}

impl Target {
    fn of(hello: &Hello) -> Target {
        match hello {
            Hello::Console { .. } => Target::Director,
            Hello::FdCallsDir { .. } => Target::FdCallsDir,
            Hello::Director { .. } => Target::FileDaemon,
            Hello::DirectorToSd { .. } => Target::Storage,
            Hello::FdToSd { .. } | Hello::SdCallsClient { .. } | Hello::StartJob { .. } => {
                Target::StorageData
            }
        }
    }

    fn who(self) -> &'static str {
        match self {
            Target::Director | Target::FdCallsDir => "the Director",
            Target::FileDaemon => "the file daemon",
            Target::Storage | Target::StorageData => "the storage daemon",
        }
    }

    /// Best guess of the peer's dialect from the version in its final line.
    fn dialect_of(self, version: Option<u32>) -> Dialect {
        let v13 = match (self, version) {
            (_, None) => false,
            (Target::Director | Target::FdCallsDir, Some(v)) => v >= 10000,
            (Target::FileDaemon, Some(v)) => v < 100,
            (Target::Storage | Target::StorageData, Some(v)) => v >= 30000,
        };
        if v13 {
            Dialect::V13
        } else {
            Dialect::V96
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientState {
    /// Hello sent; the next packet is `sdcaps:`, `starttls` or the challenge.
    First,
    /// `StartTls` emitted after `starttls`.
    EarlyTls,
    /// Waiting for the server's challenge (inside early TLS).
    Challenge,
    /// Response sent; waiting for `1000 OK auth`.
    Verdict,
    /// Our challenge sent; waiting for the response.
    Response,
    /// `StartTls` emitted after CRAM.
    LateTls,
    /// Waiting for the final line.
    Final,
    /// fdcallsdir: waiting for `OK\n` after `1000 OK:`.
    FdCallsDirOk,
    /// `Done` or `Failed` emitted.
    Finished,
}

impl ClientState {
    fn waiting(self) -> &'static str {
        match self {
            ClientState::First | ClientState::Challenge => "the CRAM-MD5 challenge",
            ClientState::EarlyTls | ClientState::LateTls => "the TLS handshake",
            ClientState::Verdict => "the verdict on our CRAM-MD5 response",
            ClientState::Response => "the response to our CRAM-MD5 challenge",
            ClientState::Final | ClientState::FdCallsDirOk => "the final OK line",
            ClientState::Finished => "nothing (login over)",
        }
    }
}

/// The auth client state machine: sends the Hello, answers the first
/// challenge, is the TLS client. See the module docs for the sequence.
#[derive(Debug)]
pub struct ClientHandshake {
    local: Local,
    hello: Hello,
    target: Target,
    nonce: Nonce,
    state: ClientState,
    out: VecDeque<Output>,
    /// The peer's needs: from `starttls`, `T` overwritten by `ssl=`.
    remote: Needs,
    starttls: bool,
    caps_done: bool,
    tls_early: bool,
    login_mode: Mode,
    mode: Mode,
    token: String,
    peer_version: Option<u32>,
    final_line: Option<String>,
}

impl ClientHandshake {
    /// A client that will send `cfg.hello` (first output) and log in with `cfg.local`.
    pub fn new(cfg: ClientConfig, nonce: Nonce) -> Self {
        let tlspsk = match cfg.local.dialect {
            Dialect::V13 => Some(cfg.local.needs.tlspsk()),
            Dialect::V96 => None,
        };
        let hello = cfg.hello.with_tlspsk(tlspsk);
        let mut out = VecDeque::new();
        out.push_back(Output::Send(Packet::data(hello.to_bytes())));
        ClientHandshake {
            target: Target::of(&hello),
            local: cfg.local,
            hello,
            nonce,
            state: ClientState::First,
            out,
            remote: Needs::NONE,
            starttls: false,
            caps_done: false,
            tls_early: false,
            login_mode: Mode::Clear,
            mode: Mode::Clear,
            token: String::new(),
            peer_version: None,
            final_line: None,
        }
    }

    /// The Hello as sent (with `tlspsk` filled in or dropped).
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// Feeds one input. Never panics; inputs after the machine finished are ignored.
    pub fn input(&mut self, input: Input) {
        if self.state == ClientState::Finished {
            return;
        }
        match input {
            Input::Packet(p) => self.packet(p),
            Input::TlsEstablished => self.tls_established(),
            Input::Peer(_) | Input::UnknownPeer => self.fail(
                RefusalReason::InvalidInput(
                    "peer lookup answers are only for the auth server".into(),
                ),
                false,
            ),
        }
    }

    /// The next thing to do, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// True once `Done` or `Failed` has been emitted.
    pub fn is_finished(&self) -> bool {
        self.state == ClientState::Finished
    }

    fn who(&self) -> &'static str {
        self.target.who()
    }

    fn send(&mut self, payload: &[u8]) {
        self.out.push_back(Output::Send(Packet::data(payload)));
    }

    fn fail(&mut self, reason: RefusalReason, cram: bool) {
        let mut delay = if cram { CRAM_DELAY } else { Duration::ZERO };
        if self.target == Target::StorageData {
            delay += FD_DELAY;
        }
        self.out
            .push_back(Output::Failed(Refusal { reason, delay }));
        self.state = ClientState::Finished;
    }

    fn packet(&mut self, p: Packet) {
        match self.state {
            ClientState::First => self.first(p),
            ClientState::Challenge => self.challenge(p),
            ClientState::EarlyTls | ClientState::LateTls => self.tls_not_started(p),
            ClientState::Verdict => self.verdict(p),
            ClientState::Response => self.response(p),
            ClientState::Final => self.final_line(p),
            ClientState::FdCallsDirOk => self.fdcallsdir_ok(p),
            ClientState::Finished => {}
        }
    }

    fn first(&mut self, p: Packet) {
        if let Packet::Data(d) = &p {
            if self.local.dialect == Dialect::V13 {
                if self.target == Target::StorageData && !self.caps_done && hello::is_sdcaps(d) {
                    self.caps_done = true;
                    self.send(hello::FDCAPS_COMMUNITY);
                    return;
                }
                if let Some(n) = hello::parse_starttls(d) {
                    return self.starttls(n);
                }
            }
        }
        self.challenge(p)
    }

    fn starttls(&mut self, n: u32) {
        self.starttls = true;
        self.remote = Needs::from_tlspsk(n);
        match decide_for(&self.local, self.remote) {
            Err(m) => self.fail(m.into(), false),
            Ok(mode) => match TlsKind::of(mode) {
                None => {
                    let msg = format!(
                        "{} sent \"starttls tlspsk={n}\" but we share no TLS mode (we: {}; peer: {})",
                        self.who(),
                        offered(&self.local),
                        self.remote
                    );
                    self.fail(RefusalReason::Malformed(msg), false)
                }
                Some(kind) => {
                    self.tls_early = true;
                    self.login_mode = mode;
                    self.mode = mode;
                    self.out.push_back(Output::StartTls(kind));
                    self.state = ClientState::EarlyTls;
                }
            },
        }
    }

    fn challenge(&mut self, p: Packet) {
        let d = match p {
            Packet::Signal(s) => {
                return self.fail(signal_reason(self.who(), s, "the CRAM-MD5 challenge"), true)
            }
            Packet::Data(d) => d,
        };
        match cram::parse_challenge(&d) {
            Err(CramError::TooLong(n)) => {
                let msg = format!(
                    "{}'s CRAM-MD5 challenge is {n} bytes (at most {} accepted)",
                    self.who(),
                    cram::MAX_CHALLENGE - 1
                );
                self.fail(RefusalReason::Malformed(msg), true)
            }
            Err(CramError::NotAChallenge(_)) => {
                self.send(AUTH_FAILED);
                let reason = match hello::failure_line(&d) {
                    Some(line) => RefusalReason::Rejected(format!(
                        "{} refused our Hello ({:?}) with {line:?}",
                        self.who(),
                        self.hello.to_string()
                    )),
                    None => RefusalReason::Malformed(format!(
                        "expected a CRAM-MD5 challenge from {}, got {}",
                        self.who(),
                        quote(&d)
                    )),
                };
                self.fail(reason, true)
            }
            Ok(ch) => {
                if let Some(ssl) = ch.ssl {
                    self.remote.cert = ssl;
                }
                let response = cram::response(&self.local.key, &ch);
                self.send(&response);
                self.state = ClientState::Verdict;
            }
        }
    }

    fn verdict(&mut self, p: Packet) {
        match p {
            Packet::Data(d) if d[..] == *AUTH_OK => {
                self.token = cram::token(self.nonce.random, self.nonce.time, &self.local.name);
                let line = cram::challenge_line(&self.token, self.local.needs.cert);
                self.send(&line);
                self.state = ClientState::Response;
            }
            Packet::Data(d) => {
                let msg = format!(
                    "{} refused our CRAM-MD5 response with {}: the password (or job key) differs",
                    self.who(),
                    quote(&d)
                );
                self.fail(RefusalReason::WrongPassword(msg), true)
            }
            Packet::Signal(s) => self.fail(
                signal_reason(self.who(), s, "the verdict on our CRAM-MD5 response"),
                true,
            ),
        }
    }

    fn response(&mut self, p: Packet) {
        let d = match p {
            Packet::Signal(s) => {
                return self.fail(
                    signal_reason(self.who(), s, "the response to our CRAM-MD5 challenge"),
                    true,
                )
            }
            Packet::Data(d) => d,
        };
        if d.is_empty() {
            let msg = format!("{} sent an empty CRAM-MD5 response", self.who());
            return self.fail(RefusalReason::Malformed(msg), true);
        }
        if !cram::verify(&self.local.key, &self.token, &d, false) {
            self.send(AUTH_FAILED);
            let msg = format!(
                "{}'s CRAM-MD5 response does not match our key: the password (or job key) differs",
                self.who()
            );
            return self.fail(RefusalReason::WrongPassword(msg), true);
        }
        self.send(AUTH_OK);
        if self.tls_early {
            if self.local.authenticate {
                self.out.push_back(Output::DropTls);
                self.mode = Mode::Clear;
            }
            self.state = ClientState::Final;
            return;
        }
        match decide_for(&self.local, self.remote) {
            Err(m) => self.fail(m.into(), false),
            Ok(mode) => {
                self.login_mode = mode;
                self.mode = mode;
                match TlsKind::of(mode) {
                    None => self.state = ClientState::Final,
                    Some(kind) => {
                        self.out.push_back(Output::StartTls(kind));
                        self.state = ClientState::LateTls;
                    }
                }
            }
        }
    }

    fn tls_established(&mut self) {
        match self.state {
            ClientState::EarlyTls => self.state = ClientState::Challenge,
            ClientState::LateTls => {
                if self.local.dialect == Dialect::V96 && self.local.authenticate {
                    self.out.push_back(Output::DropTls);
                    self.mode = Mode::Clear;
                }
                self.state = ClientState::Final;
            }
            other => {
                let msg = format!(
                    "TlsEstablished while no TLS handshake was asked for (waiting for {})",
                    other.waiting()
                );
                self.fail(RefusalReason::InvalidInput(msg), false)
            }
        }
    }

    fn tls_not_started(&mut self, p: Packet) {
        let reason = match &p {
            Packet::Signal(s) => signal_reason(self.who(), *s, "the TLS handshake"),
            Packet::Data(d) => match hello::failure_line(d) {
                Some(line) => RefusalReason::Rejected(format!(
                    "{} sent {line:?} instead of starting TLS",
                    self.who()
                )),
                None => RefusalReason::PeerIgnoredTls(format!(
                    "{} agreed to {} (we: {}; peer: {}) but sent {} in clear text where the TLS handshake must start",
                    self.who(),
                    self.mode,
                    offered(&self.local),
                    self.remote,
                    describe(&p)
                )),
            },
        };
        self.fail(reason, false)
    }

    fn final_line(&mut self, p: Packet) {
        let d = match p {
            Packet::Signal(s) => {
                return self.fail(signal_reason(self.who(), s, "the final OK line"), false)
            }
            Packet::Data(d) => d,
        };
        let parsed = match self.target {
            Target::Director => hello::parse_console_reply(&d),
            Target::FdCallsDir => hello::parse_fdcallsdir_reply(&d),
            Target::FileDaemon => hello::parse_fd_reply(&d),
            Target::Storage | Target::StorageData => hello::parse_sd_reply(&d),
        };
        match parsed {
            Ok(version) => {
                self.peer_version = Some(version);
                self.final_line = Some(c_text(&d).trim_end_matches('\n').to_string());
                if self.target == Target::FdCallsDir {
                    self.state = ClientState::FdCallsDirOk;
                } else {
                    self.done();
                }
            }
            Err(e) => {
                let reason = match hello::failure_line(&d) {
                    Some(line) => RefusalReason::Rejected(format!(
                        "{} refused the login after authentication with {line:?}",
                        self.who()
                    )),
                    None => RefusalReason::Malformed(format!(
                        "{} answered with an unexpected final line: {e}",
                        self.who()
                    )),
                };
                self.fail(reason, false)
            }
        }
    }

    fn fdcallsdir_ok(&mut self, p: Packet) {
        match p {
            Packet::Data(d) if d[..] == *hello::FDCALLSDIR_OK => self.done(),
            Packet::Signal(s) => self.fail(signal_reason(self.who(), s, "\"OK\\n\""), false),
            other => {
                let msg = format!(
                    "{} sent {} instead of \"OK\\n\" after its 1000 OK line",
                    self.who(),
                    describe(&other)
                );
                self.fail(RefusalReason::Malformed(msg), false)
            }
        }
    }

    fn done(&mut self) {
        let peer_dialect = if self.starttls {
            Dialect::V13
        } else {
            self.target.dialect_of(self.peer_version)
        };
        self.out.push_back(Output::Done(Established {
            mode: self.mode,
            login_mode: self.login_mode,
            peer_dialect,
            peer_version: self.peer_version,
            peer_hello: None,
            final_line: self.final_line.take(),
        }));
        self.state = ClientState::Finished;
    }
}

/// How the accepting daemon behaves for this connection (final line, failure
/// lines, delays).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Director,
    FileDaemon,
    SdDirector,
    SdClient,
}

impl Role {
    /// Packets sent and pause after a failure once the peer was identified
    /// (CRAM, TLS or policy failure; unknown peer): protocol.md §9.2.
    fn refusal(self) -> (Vec<Packet>, Duration) {
        match self {
            Role::Director => (vec![Packet::data(hello::NOT_AUTHORIZED)], DAEMON_DELAY),
            Role::FileDaemon => (
                vec![
                    Packet::data(hello::AUTHENTICATION_FAILED),
                    Packet::Signal(Signal::Terminate),
                ],
                FD_DELAY,
            ),
            Role::SdDirector => (
                vec![
                    Packet::data(hello::NO_GO),
                    Packet::Signal(Signal::Terminate),
                ],
                DAEMON_DELAY,
            ),
            Role::SdClient => (Vec::new(), DAEMON_DELAY),
        }
    }

    /// Packets sent and pause when the Hello names no known resource.
    fn unknown(self) -> (Vec<Packet>, Duration) {
        match self {
            Role::Director => (vec![Packet::data(hello::NOT_AUTHORIZED)], DAEMON_DELAY),
            Role::FileDaemon => (vec![Packet::Signal(Signal::Terminate)], FD_DELAY),
            Role::SdDirector => (vec![Packet::Signal(Signal::Terminate)], DAEMON_DELAY),
            Role::SdClient => (Vec::new(), DAEMON_DELAY),
        }
    }

    /// Packets sent and pause for a bad first packet.
    fn bad_hello(self, error: Option<&HelloError>) -> (Vec<Packet>, Duration) {
        match (self, error) {
            // The FD's dispatch drops bad lengths and non-Hellos silently;
            // an unparsable Director Hello is answered with TERMINATE.
            (Role::FileDaemon, Some(HelloError::NoMatch(_))) => {
                (vec![Packet::Signal(Signal::Terminate)], FD_DELAY)
            }
            (Role::SdDirector, Some(_)) => (vec![Packet::Signal(Signal::Terminate)], DAEMON_DELAY),
            _ => (Vec::new(), DAEMON_DELAY),
        }
    }
}

fn peer_desc(hello: &Hello) -> String {
    match hello {
        Hello::Console { name, .. } => format!("console {name:?}"),
        Hello::FdCallsDir { name, .. } => format!("file daemon {name:?} (fdcallsdir)"),
        Hello::Director { name, .. } | Hello::DirectorToSd { name, .. } => {
            format!("Director {name:?}")
        }
        Hello::FdToSd {
            job,
            sd_version: Some(_),
            ..
        } => format!("storage daemon client of job {job:?}"),
        Hello::FdToSd { job, .. } | Hello::SdCallsClient { job, .. } | Hello::StartJob { job } => {
            format!("file daemon of job {job:?}")
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ServerState {
    /// Waiting for the Hello.
    Hello,
    /// `LookupPeer` emitted.
    Lookup,
    /// `sdcaps:` sent; waiting for `fdcaps:`.
    Caps,
    /// `starttls` sent and `StartTls` emitted.
    EarlyTls,
    /// Challenge sent; waiting for the response.
    Response,
    /// Verdict sent; waiting for the client's challenge.
    Challenge,
    /// Response sent; waiting for the client's verdict.
    Verdict,
    /// `StartTls` emitted after CRAM.
    LateTls,
    /// `Done`, `Failed` or `Handover` emitted.
    Finished,
}

impl ServerState {
    fn waiting(self) -> &'static str {
        match self {
            ServerState::Hello => "the Hello",
            ServerState::Lookup => "the peer lookup",
            ServerState::Caps => "the fdcaps line",
            ServerState::EarlyTls | ServerState::LateTls => "the TLS handshake",
            ServerState::Response => "the response to our CRAM-MD5 challenge",
            ServerState::Challenge => "the peer's CRAM-MD5 challenge",
            ServerState::Verdict => "the verdict on our CRAM-MD5 response",
            ServerState::Finished => "nothing (login over)",
        }
    }
}

/// The auth server state machine: receives the Hello, challenges first, is
/// the TLS server. See the module docs for the sequence.
#[derive(Debug)]
pub struct ServerHandshake {
    cfg: ServerConfig,
    nonce: Nonce,
    state: ServerState,
    out: VecDeque<Output>,
    role: Role,
    hello: Option<Hello>,
    local: Option<Local>,
    /// The peer's needs: from the Hello's `tlspsk`, `T` overwritten by `ssl=`.
    remote: Needs,
    tls_early: bool,
    login_mode: Mode,
    mode: Mode,
    token: String,
}

impl ServerHandshake {
    /// A server waiting for the first packet (the Hello).
    pub fn new(cfg: ServerConfig, nonce: Nonce) -> Self {
        let role = match cfg.kind {
            ServerKind::Director => Role::Director,
            ServerKind::FileDaemon => Role::FileDaemon,
            ServerKind::StorageDirector | ServerKind::Storage => Role::SdDirector,
            ServerKind::StorageClient => Role::SdClient,
        };
        ServerHandshake {
            cfg,
            nonce,
            state: ServerState::Hello,
            out: VecDeque::new(),
            role,
            hello: None,
            local: None,
            remote: Needs::NONE,
            tls_early: false,
            login_mode: Mode::Clear,
            mode: Mode::Clear,
            token: String::new(),
        }
    }

    /// The peer's Hello, once parsed.
    pub fn peer_hello(&self) -> Option<&Hello> {
        self.hello.as_ref()
    }

    /// Feeds one input. Never panics; inputs after the machine finished are ignored.
    pub fn input(&mut self, input: Input) {
        if self.state == ServerState::Finished {
            return;
        }
        match input {
            Input::Packet(p) => self.packet(p),
            Input::TlsEstablished => self.tls_established(),
            Input::Peer(local) => self.peer(Some(local)),
            Input::UnknownPeer => self.peer(None),
        }
    }

    /// The next thing to do, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// True once `Done`, `Failed` or `Handover` has been emitted.
    pub fn is_finished(&self) -> bool {
        self.state == ServerState::Finished
    }

    fn who(&self) -> String {
        self.hello
            .as_ref()
            .map(peer_desc)
            .unwrap_or_else(|| "the peer".to_string())
    }

    fn send(&mut self, payload: &[u8]) {
        self.out.push_back(Output::Send(Packet::data(payload)));
    }

    fn finish(&mut self, packets: Vec<Packet>, reason: RefusalReason, delay: Duration) {
        self.out.extend(packets.into_iter().map(Output::Send));
        self.out
            .push_back(Output::Failed(Refusal { reason, delay }));
        self.state = ServerState::Finished;
    }

    /// Failure after the peer was identified: the daemon's failure line(s)
    /// and pause, plus Bacula's CRAM pause if CRAM failed.
    fn fail(&mut self, reason: RefusalReason, cram: bool) {
        let (packets, mut delay) = self.role.refusal();
        if cram {
            delay += CRAM_DELAY;
        }
        self.finish(packets, reason, delay);
    }

    fn packet(&mut self, p: Packet) {
        match self.state {
            ServerState::Hello => self.hello_packet(p),
            ServerState::Lookup => {
                let reason = match p {
                    Packet::Signal(s) => signal_reason(&self.who(), s, "our challenge"),
                    Packet::Data(_) => RefusalReason::Malformed(format!(
                        "{} sent {} before our challenge",
                        self.who(),
                        describe(&p)
                    )),
                };
                let (_, delay) = self.role.bad_hello(None);
                self.finish(Vec::new(), reason, delay)
            }
            ServerState::Caps => self.caps(p),
            ServerState::EarlyTls | ServerState::LateTls => self.tls_not_started(p),
            ServerState::Response => self.response(p),
            ServerState::Challenge => self.challenge(p),
            ServerState::Verdict => self.verdict(p),
            ServerState::Finished => {}
        }
    }

    fn hello_packet(&mut self, p: Packet) {
        let d = match p {
            Packet::Signal(s) => {
                let (packets, delay) = self.role.bad_hello(None);
                let reason = signal_reason("the peer", s, "its Hello");
                return self.finish(packets, reason, delay);
            }
            Packet::Data(d) => d,
        };
        if self.cfg.kind == ServerKind::Storage && hello::is_sd_client_hello(&d) {
            self.role = Role::SdClient;
        }
        let dialect = self.cfg.dialect;
        let parsed = match self.cfg.kind {
            ServerKind::Director => hello::parse_for_director_as(&d, dialect),
            ServerKind::FileDaemon => hello::parse_for_fd_as(&d, dialect),
            ServerKind::StorageDirector => hello::parse_for_sd_director_as(&d, dialect),
            ServerKind::StorageClient => hello::parse_for_sd_client_as(&d, dialect),
            ServerKind::Storage => hello::parse_for_sd_as(&d, dialect),
        };
        match parsed {
            Err(HelloError::Ping) => self.finish(
                vec![Packet::data(hello::PING_OK)],
                RefusalReason::Ping,
                Duration::ZERO,
            ),
            Err(e) => {
                let (packets, delay) = self.role.bad_hello(Some(&e));
                self.finish(
                    packets,
                    RefusalReason::Malformed(format!("bad Hello: {e}")),
                    delay,
                )
            }
            Ok(h @ Hello::SdCallsClient { .. }) if self.cfg.kind == ServerKind::FileDaemon => {
                self.out.push_back(Output::Handover(h.clone()));
                self.hello = Some(h);
                self.state = ServerState::Finished;
            }
            Ok(h) => {
                self.out.push_back(Output::LookupPeer(h.clone()));
                self.hello = Some(h);
                self.state = ServerState::Lookup;
            }
        }
    }

    fn peer(&mut self, local: Option<Local>) {
        if self.state != ServerState::Lookup {
            let msg = format!(
                "peer lookup answer while waiting for {}",
                self.state.waiting()
            );
            return self.finish(Vec::new(), RefusalReason::InvalidInput(msg), Duration::ZERO);
        }
        let hello = self.hello.clone().expect("Lookup state has a Hello");
        let Some(local) = local else {
            let (packets, delay) = self.role.unknown();
            let reason = RefusalReason::UnknownPeer(format!(
                "{}: no resource for {}",
                hello.name(),
                peer_desc(&hello)
            ));
            return self.finish(packets, reason, delay);
        };
        let v13 = self.cfg.dialect == Dialect::V13 && local.dialect == Dialect::V13;
        self.remote = match hello.tlspsk() {
            Some(n) if v13 => Needs::from_tlspsk(n),
            _ => Needs::NONE,
        };
        let peer_v13 = v13 && hello.tlspsk().is_some();
        let caps = v13
            && self.role == Role::SdClient
            && hello::sd_sends_caps(hello.version().unwrap_or(0));
        self.local = Some(local);
        if caps {
            self.send(hello::SDCAPS_COMMUNITY);
            self.state = ServerState::Caps;
            return;
        }
        self.before_cram(peer_v13);
    }

    fn caps(&mut self, p: Packet) {
        match &p {
            Packet::Data(d) if hello::parse_fdcaps(d).is_some() => {
                let peer_v13 = self.hello.as_ref().and_then(Hello::tlspsk).is_some();
                self.before_cram(peer_v13)
            }
            Packet::Signal(s) => {
                let reason = signal_reason(&self.who(), *s, "the fdcaps line");
                self.fail(reason, false)
            }
            Packet::Data(d) => {
                let msg = format!("{} sent bad caps: {}", self.who(), quote(d));
                self.fail(RefusalReason::Malformed(msg), false)
            }
        }
    }

    /// 13.x: `starttls` when both sides can do some TLS; then the challenge.
    fn before_cram(&mut self, peer_v13: bool) {
        let local = self.local.as_ref().expect("peer known");
        let needs = local.needs;
        if peer_v13 && negotiate::wants_starttls(needs, self.remote) {
            // Sent even when the check below fails, like Bacula.
            self.send(&hello::starttls_line(needs.tlspsk()));
            match negotiate::decide(needs, self.remote) {
                Err(m) => return self.fail(m.into(), false),
                Ok(mode) => {
                    if let Some(kind) = TlsKind::of(mode) {
                        self.tls_early = true;
                        self.login_mode = mode;
                        self.mode = mode;
                        self.out.push_back(Output::StartTls(kind));
                        self.state = ServerState::EarlyTls;
                        return;
                    }
                }
            }
        }
        self.send_challenge();
    }

    fn send_challenge(&mut self) {
        let local = self.local.as_ref().expect("peer known");
        let host = if local.name.is_empty() {
            &self.cfg.name
        } else {
            &local.name
        };
        self.token = cram::token(self.nonce.random, self.nonce.time, host);
        let line = cram::challenge_line(&self.token, local.needs.cert);
        self.send(&line);
        self.state = ServerState::Response;
    }

    fn response(&mut self, p: Packet) {
        let d = match p {
            Packet::Signal(s) => {
                let reason =
                    signal_reason(&self.who(), s, "the response to our CRAM-MD5 challenge");
                return self.fail(reason, true);
            }
            Packet::Data(d) => d,
        };
        if d.is_empty() {
            let msg = format!("{} sent an empty CRAM-MD5 response", self.who());
            return self.fail(RefusalReason::Malformed(msg), true);
        }
        let key = &self.local.as_ref().expect("peer known").key;
        if cram::verify(key, &self.token, &d, true) {
            self.send(AUTH_OK);
            self.state = ServerState::Challenge;
        } else {
            self.send(AUTH_FAILED);
            let msg = format!(
                "{}'s CRAM-MD5 response does not match our key: the password (or job key) differs",
                self.who()
            );
            self.fail(RefusalReason::WrongPassword(msg), true)
        }
    }

    fn challenge(&mut self, p: Packet) {
        let d = match p {
            Packet::Signal(s) => {
                let reason = signal_reason(&self.who(), s, "its CRAM-MD5 challenge");
                return self.fail(reason, true);
            }
            Packet::Data(d) => d,
        };
        match cram::parse_challenge(&d) {
            Err(CramError::TooLong(n)) => {
                let msg = format!(
                    "{}'s CRAM-MD5 challenge is {n} bytes (at most {} accepted)",
                    self.who(),
                    cram::MAX_CHALLENGE - 1
                );
                self.fail(RefusalReason::Malformed(msg), true)
            }
            Err(CramError::NotAChallenge(text)) => {
                self.send(AUTH_FAILED);
                let msg = format!(
                    "expected a CRAM-MD5 challenge from {}, got {text:?}",
                    self.who()
                );
                self.fail(RefusalReason::Malformed(msg), true)
            }
            Ok(ch) => {
                if let Some(ssl) = ch.ssl {
                    self.remote.cert = ssl;
                }
                let key = &self.local.as_ref().expect("peer known").key;
                let response = cram::response(key, &ch);
                self.send(&response);
                self.state = ServerState::Verdict;
            }
        }
    }

    fn verdict(&mut self, p: Packet) {
        let d = match p {
            Packet::Signal(s) => {
                let reason = signal_reason(&self.who(), s, "the verdict on our CRAM-MD5 response");
                return self.fail(reason, true);
            }
            Packet::Data(d) => d,
        };
        if d[..] != *AUTH_OK {
            let msg = format!(
                "{} refused our CRAM-MD5 response with {}: the password (or job key) differs",
                self.who(),
                quote(&d)
            );
            return self.fail(RefusalReason::WrongPassword(msg), true);
        }
        let local = self.local.as_ref().expect("peer known");
        if self.tls_early {
            if local.authenticate {
                self.out.push_back(Output::DropTls);
                self.mode = Mode::Clear;
            }
            return self.send_final();
        }
        match decide_for(local, self.remote) {
            Err(m) => self.fail(m.into(), false),
            Ok(mode) => {
                self.login_mode = mode;
                self.mode = mode;
                match TlsKind::of(mode) {
                    None => self.send_final(),
                    Some(kind) => {
                        self.out.push_back(Output::StartTls(kind));
                        self.state = ServerState::LateTls;
                    }
                }
            }
        }
    }

    fn tls_established(&mut self) {
        match self.state {
            ServerState::EarlyTls => self.send_challenge(),
            ServerState::LateTls => {
                let local = self.local.as_ref().expect("peer known");
                if local.dialect == Dialect::V96 && local.authenticate {
                    self.out.push_back(Output::DropTls);
                    self.mode = Mode::Clear;
                }
                self.send_final();
            }
            other => {
                let msg = format!(
                    "TlsEstablished while no TLS handshake was asked for (waiting for {})",
                    other.waiting()
                );
                self.finish(Vec::new(), RefusalReason::InvalidInput(msg), Duration::ZERO)
            }
        }
    }

    fn tls_not_started(&mut self, p: Packet) {
        let local = self.local.as_ref().expect("peer known");
        let reason = match &p {
            Packet::Signal(s) => signal_reason(&self.who(), *s, "the TLS handshake"),
            Packet::Data(d) => match hello::failure_line(d) {
                Some(line) => RefusalReason::Rejected(format!(
                    "{} sent {line:?} instead of starting TLS",
                    self.who()
                )),
                None => RefusalReason::PeerIgnoredTls(format!(
                    "{} agreed to {} (we: {}; peer: {}) but sent {} in clear text where the TLS handshake must start",
                    self.who(),
                    self.mode,
                    offered(local),
                    self.remote,
                    describe(&p)
                )),
            },
        };
        // The failure line goes out on the raw socket (§5.9).
        self.fail(reason, false)
    }

    fn send_final(&mut self) {
        let hello = self.hello.clone().expect("peer known");
        let line = match self.role {
            Role::Director => Some(FinalLine::Director {
                version: self.cfg.version,
                name: self.cfg.name.clone(),
                version_text: self.cfg.version_text.clone(),
            }),
            Role::FileDaemon => Some(FinalLine::FileDaemon {
                version: self.cfg.version,
            }),
            Role::SdDirector => Some(FinalLine::Storage {
                version: self.cfg.version,
            }),
            Role::SdClient => hello::sd_sends_final_line(hello.version().unwrap_or(0)).then_some(
                FinalLine::Storage {
                    version: self.cfg.version,
                },
            ),
        };
        if let Some(line) = line {
            self.send(&line.to_bytes());
        }
        if matches!(hello, Hello::FdCallsDir { .. }) {
            self.send(hello::FDCALLSDIR_OK);
        }
        let peer_dialect = if hello.tlspsk().is_some() {
            Dialect::V13
        } else {
            Dialect::V96
        };
        self.out.push_back(Output::Done(Established {
            mode: self.mode,
            login_mode: self.login_mode,
            peer_dialect,
            peer_version: hello.version(),
            peer_hello: Some(hello),
            final_line: None,
        }));
        self.state = ServerState::Finished;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::negotiate::Need;

    fn local(dialect: Dialect, needs: Needs, name: &str) -> Local {
        Local {
            key: Secret::from_password("pw"),
            needs,
            authenticate: false,
            dialect,
            name: name.into(),
        }
    }

    fn first_payload(hello: Hello, dialect: Dialect) -> Vec<u8> {
        let needs = Needs::new(Need::Ok, Need::Required);
        let mut c = ClientHandshake::new(
            ClientConfig {
                hello,
                local: local(dialect, needs, "d"),
            },
            Nonce::new(1, 2),
        );
        match c.poll_output() {
            Some(Output::Send(p)) => p.payload().unwrap().to_vec(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn client_hello_gets_tlspsk_for_13x_only() {
        let h = Hello::Console {
            name: "*UserAgent*".into(),
            version: Some(200),
            tlspsk: Some(7),
        };
        assert_eq!(
            first_payload(h.clone(), Dialect::V13),
            b"Hello *UserAgent* calling 200 tlspsk=201\n"
        );
        assert_eq!(
            first_payload(h, Dialect::V96),
            b"Hello *UserAgent* calling 200\n"
        );
        let sdc = Hello::SdCallsClient {
            job: "J".into(),
            sd_version: 30007,
        };
        assert_eq!(
            first_payload(sdc, Dialect::V13),
            b"Hello FD: Bacula Storage calling Start Job J 30007\n"
        );
    }

    #[test]
    fn dialect_guess_from_final_line_version() {
        assert_eq!(Target::Director.dialect_of(Some(10002)), Dialect::V13);
        assert_eq!(Target::Director.dialect_of(Some(103)), Dialect::V96);
        assert_eq!(Target::FileDaemon.dialect_of(Some(14)), Dialect::V13);
        assert_eq!(Target::FileDaemon.dialect_of(Some(214)), Dialect::V96);
        assert_eq!(Target::Storage.dialect_of(Some(30007)), Dialect::V13);
        assert_eq!(Target::StorageData.dialect_of(Some(306)), Dialect::V96);
        assert_eq!(Target::Storage.dialect_of(None), Dialect::V96);
    }

    #[test]
    fn failure_tables_follow_section_9_2() {
        let term = Packet::Signal(Signal::Terminate);
        assert_eq!(
            Role::FileDaemon.refusal(),
            (
                vec![Packet::data(hello::AUTHENTICATION_FAILED), term.clone()],
                FD_DELAY
            )
        );
        assert_eq!(Role::FileDaemon.unknown(), (vec![term.clone()], FD_DELAY));
        assert_eq!(
            Role::FileDaemon.bad_hello(Some(&HelloError::TooShort { len: 1, min: 25 })),
            (vec![], DAEMON_DELAY)
        );
        assert_eq!(
            Role::SdDirector.refusal(),
            (vec![Packet::data(hello::NO_GO), term], DAEMON_DELAY)
        );
        assert_eq!(Role::SdClient.refusal(), (vec![], DAEMON_DELAY));
        assert_eq!(
            Role::Director.unknown(),
            (vec![Packet::data(hello::NOT_AUTHORIZED)], DAEMON_DELAY)
        );
    }

    #[test]
    fn server_challenge_host_defaults_to_daemon_name() {
        let mut s = ServerHandshake::new(
            ServerConfig {
                kind: ServerKind::StorageDirector,
                name: "my sd".into(),
                version: 30007,
                version_text: String::new(),
                dialect: Dialect::V13,
            },
            Nonce::new(5, 6),
        );
        s.input(Input::Packet(Packet::data(
            "Hello SD: Bacula Director d calling 10002\n",
        )));
        assert!(matches!(s.poll_output(), Some(Output::LookupPeer(_))));
        s.input(Input::Peer(local(Dialect::V13, Needs::NONE, "")));
        match s.poll_output() {
            Some(Output::Send(p)) => {
                assert_eq!(p.payload().unwrap(), b"auth cram-md5 <5.6@my_sd> ssl=0\n")
            }
            other => panic!("{other:?}"),
        }
    }
}
