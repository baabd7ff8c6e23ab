//! Login drivers: run a `baculink-proto` handshake machine over a [`BSock`],
//! performing the TLS it asks for.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use baculink_proto::handshake::{
    ClientConfig, ClientHandshake, Established, Input, Local, Nonce, Output, Refusal,
    RefusalReason, ServerConfig, ServerHandshake, TlsKind,
};
use baculink_proto::hello::Hello;
use baculink_proto::negotiate::Mode;
use baculink_proto::Secret;
use baculink_tls::{CertContext, PskContext, SessionFacts, TlsError};
use tokio::net::TcpStream;

use crate::bsock::BSock;
use crate::error::{LoginError, NetError};
use crate::stream::Stream;

/// What the auth client needs for one connection.
#[derive(Clone, Debug)]
pub struct ClientSetup {
    /// The Hello to send and our secret, needs and dialect.
    pub config: ClientConfig,
    /// Certificate context of the resource (required for certificate TLS).
    pub cert: Option<Arc<CertContext>>,
    /// PSK context of the resource (its TLS Protocol / TLS Cipher Suites);
    /// `None` uses the shared default context.
    pub psk: Option<PskContext>,
    /// The address we connected to, for the server certificate's host check.
    pub host: String,
    /// `TLS Allowed CN` of the resource (empty = host check only).
    pub allowed_cn: Vec<String>,
    /// Limit for the whole login.
    pub timeout: Duration,
    /// How to name the peer in errors, e.g. `Director "bacula-dir" at 127.0.0.1:9101`.
    pub label: String,
}

/// What the auth server needs for one connection.
#[derive(Clone, Debug)]
pub struct ServerSetup {
    /// Our daemon kind, name and version.
    pub config: ServerConfig,
    /// Limit for the whole login.
    pub timeout: Duration,
    /// Wait the protocol's refusal delay before closing a failed login
    /// (Bacula's brute-force damping; per connection). Tests turn it off.
    pub damping: bool,
}

/// The resource found for a peer's Hello (server side).
#[derive(Clone, Debug)]
pub struct PeerSetup {
    /// Secret, needs and dialect for this peer.
    pub local: Local,
    /// Certificate context of the resource (required for certificate TLS).
    pub cert: Option<Arc<CertContext>>,
    /// PSK context of the resource; `None` uses the shared default context.
    pub psk: Option<PskContext>,
    /// `TLS Allowed CN` of the resource.
    pub allowed_cn: Vec<String>,
    /// How to name the peer, e.g. `Console "admin" at 127.0.0.1:40000`.
    pub label: String,
}

/// An authenticated peer.
#[derive(Clone, Debug)]
pub struct Peer {
    /// How we name it.
    pub label: String,
    /// Its socket address.
    pub addr: Option<SocketAddr>,
    /// What the login established (mode, dialect, versions, Hello).
    pub established: Established,
    /// TLS facts (None in clear text or after TLS Authenticate).
    pub tls: Option<SessionFacts>,
    /// TLS facts of the login itself when TLS was dropped after it.
    pub login_tls: Option<SessionFacts>,
}

impl Peer {
    /// The connection's protection now.
    pub fn mode(&self) -> Mode {
        self.established.mode
    }
}

fn nonce() -> Nonce {
    Nonce {
        random: rand::random::<u32>() & 0x7fff_ffff,
        time: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    }
}

/// Connects over TCP and logs in as auth client.
pub async fn connect(
    host: &str,
    port: u16,
    setup: &ClientSetup,
) -> Result<(BSock, Peer), LoginError> {
    let addr = format!("{host}:{port}");
    let tcp = tokio::time::timeout(setup.timeout, TcpStream::connect(&addr))
        .await
        .map_err(|_| LoginError::Connect {
            addr: addr.clone(),
            source: std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
        })?
        .map_err(|source| LoginError::Connect {
            addr: addr.clone(),
            source,
        })?;
    login(BSock::new(tcp), setup).await
}

/// Logs in on a connected socket as auth client (sends the Hello).
pub async fn login(mut sock: BSock, setup: &ClientSetup) -> Result<(BSock, Peer), LoginError> {
    sock.set_peer_name(setup.label.clone());
    let secs = setup.timeout.as_secs();
    let label = setup.label.clone();
    match tokio::time::timeout(setup.timeout, client_steps(&mut sock, setup)).await {
        Ok(Ok(peer)) => Ok((sock, peer)),
        Ok(Err(e)) => {
            sock.close().await;
            Err(e)
        }
        Err(_) => Err(LoginError::Timeout { peer: label, secs }),
    }
}

async fn client_steps(sock: &mut BSock, setup: &ClientSetup) -> Result<Peer, LoginError> {
    let mut hs = ClientHandshake::new(setup.config.clone(), nonce());
    let key = setup.config.local.key.clone();
    let mut login_tls: Option<SessionFacts> = None;
    loop {
        let Some(out) = hs.poll_output() else {
            let p = match sock.recv().await {
                Ok(p) => p,
                Err(source) => {
                    return Err(match &login_tls {
                        Some(f) => LoginError::ClosedAfterTls {
                            peer: setup.label.clone(),
                            mode: f.mode,
                            source,
                        },
                        None => source.into(),
                    })
                }
            };
            hs.input(Input::Packet(p));
            continue;
        };
        match out {
            Output::Send(p) => sock.send(&p).await?,
            Output::StartTls(kind) => {
                let facts = start_tls(
                    sock,
                    kind,
                    Side::Client { host: &setup.host },
                    TlsParams {
                        cert: setup.cert.as_deref(),
                        psk: setup.psk.as_ref(),
                        allowed_cn: &setup.allowed_cn,
                        key: &key,
                        label: &setup.label,
                    },
                )
                .await?;
                login_tls = Some(facts);
                hs.input(Input::TlsEstablished);
            }
            Output::DropTls => {
                sock.drop_tls();
                sock.set_facts(None);
            }
            Output::LookupPeer(_) | Output::Handover(_) => {
                return Err(LoginError::Config(
                    "client machine asked for a server action".into(),
                ))
            }
            Output::Done(established) => {
                return Ok(Peer {
                    label: setup.label.clone(),
                    addr: sock.peer_addr(),
                    tls: sock.tls_facts().cloned(),
                    login_tls,
                    established,
                })
            }
            Output::Failed(refusal) => {
                return Err(LoginError::Refused {
                    peer: setup.label.clone(),
                    refusal,
                    tls: login_tls.as_ref().map(|f: &SessionFacts| f.mode),
                })
            }
        }
    }
}

/// Accepts a login as auth server. `lookup` finds the resource for the
/// peer's Hello. On failure the connection is closed after the delay the
/// protocol prescribes; the delay is this connection's alone.
pub async fn accept<F>(
    mut sock: BSock,
    setup: &ServerSetup,
    lookup: F,
) -> Result<(BSock, Peer), LoginError>
where
    F: FnMut(&Hello) -> Option<PeerSetup>,
{
    let secs = setup.timeout.as_secs();
    let label = sock.peer_name().to_string();
    let started = tokio::time::Instant::now();
    let result = tokio::time::timeout(setup.timeout, server_steps(&mut sock, setup, lookup)).await;
    match result {
        Ok(Ok(peer)) => Ok((sock, peer)),
        Ok(Err((e, delay))) => {
            // The damping delay never stretches a login past its timeout.
            // The connection stays open (and silent) for the delay in its own
            // task, so the caller can log and move on at once.
            let left = setup.timeout.saturating_sub(started.elapsed());
            let delay = if setup.damping {
                delay.min(left)
            } else {
                Duration::ZERO
            };
            tokio::spawn(async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                sock.close().await;
            });
            Err(e)
        }
        Err(_) => {
            sock.close().await;
            Err(LoginError::Timeout { peer: label, secs })
        }
    }
}

async fn server_steps<F>(
    sock: &mut BSock,
    setup: &ServerSetup,
    mut lookup: F,
) -> Result<Peer, (LoginError, Duration)>
where
    F: FnMut(&Hello) -> Option<PeerSetup>,
{
    let mut hs = ServerHandshake::new(setup.config.clone(), nonce());
    let mut peer: Option<PeerSetup> = None;
    let mut login_tls = None;
    let nodelay = |e: LoginError| (e, Duration::ZERO);
    loop {
        let Some(out) = hs.poll_output() else {
            let p = sock.recv().await.map_err(|e| nodelay(e.into()))?;
            hs.input(Input::Packet(p));
            continue;
        };
        match out {
            Output::Send(p) => sock.send(&p).await.map_err(|e| nodelay(e.into()))?,
            Output::LookupPeer(hello) => match lookup(&hello) {
                Some(found) => {
                    sock.set_peer_name(found.label.clone());
                    hs.input(Input::Peer(found.local.clone()));
                    peer = Some(found);
                }
                None => hs.input(Input::UnknownPeer),
            },
            Output::StartTls(kind) => {
                let Some(found) = peer.as_ref() else {
                    return Err(nodelay(LoginError::Config(
                        "TLS before the peer was known".into(),
                    )));
                };
                let facts = start_tls(
                    sock,
                    kind,
                    Side::Server,
                    TlsParams {
                        cert: found.cert.as_deref(),
                        psk: found.psk.as_ref(),
                        allowed_cn: &found.allowed_cn,
                        key: &found.local.key,
                        label: &found.label,
                    },
                )
                .await
                .map_err(|e| (e, Duration::from_secs(5)))?;
                login_tls = Some(facts);
                hs.input(Input::TlsEstablished);
            }
            Output::DropTls => {
                sock.drop_tls();
                sock.set_facts(None);
            }
            Output::Handover(hello) => {
                return Err(nodelay(LoginError::Config(format!(
                    "\"SD calls client\" connections are not supported yet ({hello})"
                ))))
            }
            Output::Done(established) => {
                return Ok(Peer {
                    label: sock.peer_name().to_string(),
                    addr: sock.peer_addr(),
                    tls: sock.tls_facts().cloned(),
                    login_tls,
                    established,
                })
            }
            Output::Failed(refusal) => {
                let delay = refusal.delay;
                return Err((
                    LoginError::Refused {
                        peer: sock.peer_name().to_string(),
                        refusal,
                        tls: login_tls.as_ref().map(|f: &SessionFacts| f.mode),
                    },
                    delay,
                ));
            }
        }
    }
}

enum Side<'a> {
    Client { host: &'a str },
    Server,
}

/// The TLS material of one side of one connection.
struct TlsParams<'a> {
    cert: Option<&'a CertContext>,
    psk: Option<&'a PskContext>,
    allowed_cn: &'a [String],
    key: &'a Secret,
    label: &'a str,
}

async fn start_tls(
    sock: &mut BSock,
    kind: TlsKind,
    side: Side<'_>,
    p: TlsParams<'_>,
) -> Result<SessionFacts, LoginError> {
    let TlsParams {
        cert,
        psk,
        allowed_cn,
        key,
        label,
    } = p;
    let tls_err = |source: TlsError| LoginError::Tls {
        peer: label.to_string(),
        source,
    };
    let mut raw = sock
        .take_raw()
        .ok_or_else(|| LoginError::Config("TLS requested twice on one connection".into()))?;
    if matches!(side, Side::Server) {
        // A TLS ClientHello starts with a handshake record (0x16). Anything
        // else means the peer agreed to TLS but kept talking clear text.
        match raw.peek_byte().await {
            Ok(Some(0x16)) => {}
            Ok(first) => {
                return Err(LoginError::Refused {
                    peer: label.to_string(),
                    refusal: Refusal {
                        reason: RefusalReason::PeerIgnoredTls(format!(
                            "TLS was agreed but the peer continued in clear text (first byte {})",
                            first
                                .map(|b| format!("0x{b:02x}"))
                                .unwrap_or_else(|| "none: connection closed".into())
                        )),
                        delay: Duration::from_secs(5),
                    },
                    tls: None,
                })
            }
            Err(e) => {
                return Err(NetError::Io {
                    peer: label.to_string(),
                    source: e,
                }
                .into())
            }
        }
    }
    let stream = match (kind, side) {
        (TlsKind::Psk, Side::Client { .. }) => match psk {
            Some(p) => p.connect(key, raw).await,
            None => baculink_tls::connect_psk(key, raw).await,
        },
        (TlsKind::Psk, Side::Server) => match psk {
            Some(p) => p.accept(key, raw).await,
            None => baculink_tls::accept_psk(key, raw).await,
        },
        (TlsKind::Certificate, side) => {
            let Some(ctx) = cert else {
                return Err(LoginError::Config(format!(
                    "certificate TLS agreed with {label} but this resource has no usable TLS \
                     context (check TLS Certificate / TLS Key / TLS CA Certificate File)"
                )));
            };
            match side {
                Side::Client { host } => {
                    baculink_tls::connect_cert(ctx, raw, host, allowed_cn).await
                }
                Side::Server => baculink_tls::accept_cert(ctx, raw, allowed_cn).await,
            }
        }
    }
    .map_err(tls_err)?;
    let mode = match kind {
        TlsKind::Psk => Mode::Psk,
        TlsKind::Certificate => Mode::Tls,
    };
    let facts = SessionFacts::from_ssl(stream.ssl(), mode);
    sock.set_stream(Stream::Tls(Box::new(stream)));
    sock.set_facts(Some(facts.clone()));
    Ok(facts)
}

impl From<NetError> for (LoginError, Duration) {
    fn from(e: NetError) -> Self {
        (e.into(), Duration::ZERO)
    }
}
