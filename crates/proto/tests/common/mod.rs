//! In-memory harness connecting a `ClientHandshake` to a `ServerHandshake`:
//! packets are framed with `frame::encode` and decoded one byte at a time,
//! TLS is simulated by switching a per-side "layer" once both sides asked for
//! it, and every byte remembers the layer it was sent in, so a side that
//! talks clear text into TLS (or the reverse) is detected.
#![allow(dead_code)]

use std::collections::VecDeque;

use baculink_proto::frame::{self, Decoder, Packet};
use baculink_proto::handshake::{
    ClientConfig, ClientHandshake, Established, Input, Local, Nonce, Output, Refusal,
    RefusalReason, ServerConfig, ServerHandshake, ServerKind, TlsKind,
};
use baculink_proto::hello::{self, Hello};
use baculink_proto::negotiate::{Dialect, Mode, Need, Needs};
use baculink_proto::Secret;
use bytes::BytesMut;

/// Which end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    Client,
    Server,
}

impl Who {
    pub fn other(self) -> Who {
        match self {
            Who::Client => Who::Server,
            Who::Server => Who::Client,
        }
    }
}

/// The protection a byte travels in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    Clear,
    Tls(TlsKind),
}

/// One packet as sent.
#[derive(Clone, Debug)]
pub struct Record {
    pub from: Who,
    pub packet: Packet,
    pub layer: Layer,
}

/// Anything that consumes inputs and produces outputs.
pub trait Machine {
    fn feed(&mut self, input: Input);
    fn poll(&mut self) -> Option<Output>;
    fn finished(&self) -> bool;
}

impl Machine for ClientHandshake {
    fn feed(&mut self, input: Input) {
        self.input(input)
    }
    fn poll(&mut self) -> Option<Output> {
        self.poll_output()
    }
    fn finished(&self) -> bool {
        self.is_finished()
    }
}

impl Machine for ServerHandshake {
    fn feed(&mut self, input: Input) {
        self.input(input)
    }
    fn poll(&mut self) -> Option<Output> {
        self.poll_output()
    }
    fn finished(&self) -> bool {
        self.is_finished()
    }
}

/// Drains all pending outputs.
pub fn drain(m: &mut impl Machine) -> Vec<Output> {
    std::iter::from_fn(|| m.poll()).collect()
}

/// The payloads of the `Send` outputs.
pub fn sent(outs: &[Output]) -> Vec<Packet> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

/// The refusal among the outputs, if any.
pub fn refusal(outs: &[Output]) -> Option<Refusal> {
    outs.iter().find_map(|o| match o {
        Output::Failed(r) => Some(r.clone()),
        _ => None,
    })
}

/// The established facts among the outputs, if any.
pub fn established(outs: &[Output]) -> Option<Established> {
    outs.iter().find_map(|o| match o {
        Output::Done(e) => Some(e.clone()),
        _ => None,
    })
}

#[derive(Debug)]
pub struct Side {
    pub layer: Layer,
    pub pending: Option<TlsKind>,
    inbox: VecDeque<(u8, Layer)>,
    decoder: Decoder,
    pub received: usize,
    pub result: Option<Result<Established, Refusal>>,
    pub starts: Vec<TlsKind>,
    pub drops: usize,
    pub handover: Option<Hello>,
    /// Bytes arrived in a layer this side was not in (protocol desync).
    pub desync: bool,
}

impl Side {
    fn new() -> Side {
        Side {
            layer: Layer::Clear,
            pending: None,
            inbox: VecDeque::new(),
            decoder: Decoder::new(),
            received: 0,
            result: None,
            starts: Vec::new(),
            drops: 0,
            handover: None,
            desync: false,
        }
    }

    pub fn done(&self) -> Option<&Established> {
        match &self.result {
            Some(Ok(e)) => Some(e),
            _ => None,
        }
    }

    pub fn refusal(&self) -> Option<&Refusal> {
        match &self.result {
            Some(Err(r)) => Some(r),
            _ => None,
        }
    }

    pub fn idle(&self) -> bool {
        self.inbox.is_empty() && self.decoder.buffered().is_empty()
    }
}

/// A client and a server wired together.
pub struct Pair {
    pub client: ClientHandshake,
    pub server: ServerHandshake,
    pub c: Side,
    pub s: Side,
    /// Answer to `LookupPeer` (`None` = unknown peer).
    pub lookup: Option<Local>,
    /// Compress what the client / server sends (LZ4 where it pays off).
    pub compress: (bool, bool),
    pub transcript: Vec<Record>,
    pub lookups: Vec<Hello>,
    /// Replace the n-th packet delivered to a side by this one.
    pub tamper: Option<(Who, usize, Packet)>,
    pub tls_mismatch: bool,
}

impl Pair {
    pub fn new(
        client: ClientConfig,
        client_nonce: Nonce,
        server: ServerConfig,
        server_nonce: Nonce,
        lookup: Option<Local>,
    ) -> Pair {
        Pair {
            client: ClientHandshake::new(client, client_nonce),
            server: ServerHandshake::new(server, server_nonce),
            c: Side::new(),
            s: Side::new(),
            lookup,
            compress: (false, false),
            transcript: Vec::new(),
            lookups: Vec::new(),
            tamper: None,
            tls_mismatch: false,
        }
    }

    fn side(&mut self, who: Who) -> &mut Side {
        match who {
            Who::Client => &mut self.c,
            Who::Server => &mut self.s,
        }
    }

    fn feed(&mut self, who: Who, input: Input) {
        match who {
            Who::Client => self.client.input(input),
            Who::Server => self.server.input(input),
        }
    }

    fn drain(&mut self, who: Who) -> bool {
        let mut progress = false;
        loop {
            let o = match who {
                Who::Client => self.client.poll_output(),
                Who::Server => self.server.poll_output(),
            };
            let Some(o) = o else { break };
            progress = true;
            assert!(
                self.side(who).result.is_none(),
                "{who:?} produced {o:?} after finishing"
            );
            match o {
                Output::Send(p) => {
                    let layer = self.side(who).layer;
                    let compress = match who {
                        Who::Client => self.compress.0,
                        Who::Server => self.compress.1,
                    };
                    let mut buf = BytesMut::new();
                    frame::encode(&p, compress, &mut buf).expect("encodable");
                    self.transcript.push(Record {
                        from: who,
                        packet: p,
                        layer,
                    });
                    let inbox = &mut self.side(who.other()).inbox;
                    inbox.extend(buf.iter().map(|&b| (b, layer)));
                }
                Output::StartTls(kind) => {
                    let side = self.side(who);
                    assert!(side.pending.is_none(), "{who:?} started TLS twice at once");
                    side.pending = Some(kind);
                    side.starts.push(kind);
                }
                Output::DropTls => {
                    let side = self.side(who);
                    assert_ne!(
                        side.layer,
                        Layer::Clear,
                        "{who:?} dropped TLS it did not have"
                    );
                    side.layer = Layer::Clear;
                    side.drops += 1;
                }
                Output::LookupPeer(h) => {
                    assert_eq!(who, Who::Server, "only the server looks peers up");
                    self.lookups.push(h);
                    let input = match self.lookup.clone() {
                        Some(l) => Input::Peer(l),
                        None => Input::UnknownPeer,
                    };
                    self.server.input(input);
                }
                Output::Handover(h) => self.side(who).handover = Some(h),
                Output::Done(e) => self.side(who).result = Some(Ok(e)),
                Output::Failed(r) => self.side(who).result = Some(Err(r)),
            }
        }
        progress
    }

    fn deliver(&mut self, who: Who) -> bool {
        let tamper = self.tamper.clone();
        let side = self.side(who);
        if side.result.is_some() || side.handover.is_some() || side.desync {
            return false;
        }
        let Some(&(byte, layer)) = side.inbox.front() else {
            return false;
        };
        if side.pending.is_some() {
            // Clear-text bytes reach a side that waits for the TLS handshake:
            // its TLS engine cannot use them; the driver feeds the packet.
            if layer != Layer::Clear {
                return false;
            }
        } else if layer != side.layer {
            side.desync = true;
            return false;
        }
        side.inbox.pop_front();
        side.decoder.push(&[byte]);
        let packet = side.decoder.next_packet().expect("valid framing");
        if let Some(p) = packet {
            let n = side.received;
            side.received += 1;
            let p = match tamper {
                Some((w, k, t)) if w == who && k == n => t,
                _ => p,
            };
            self.feed(who, Input::Packet(p));
        }
        true
    }

    fn sync_tls(&mut self) -> bool {
        if let (Some(a), Some(b)) = (self.c.pending, self.s.pending) {
            self.c.pending = None;
            self.s.pending = None;
            if a != b {
                self.tls_mismatch = true;
                return false;
            }
            self.c.layer = Layer::Tls(a);
            self.s.layer = Layer::Tls(a);
            self.client.input(Input::TlsEstablished);
            self.server.input(Input::TlsEstablished);
            return true;
        }
        false
    }

    /// Runs until nothing moves any more.
    pub fn run(&mut self) -> &mut Self {
        for _ in 0..1_000_000 {
            let mut progress = self.drain(Who::Client);
            progress |= self.drain(Who::Server);
            progress |= self.sync_tls();
            progress |= self.deliver(Who::Client);
            progress |= self.deliver(Who::Server);
            if !progress {
                return self;
            }
        }
        panic!("handshake did not settle");
    }

    /// Both ends `Done`: the common mode (and checks both agree and nothing is left over).
    pub fn connected(&self) -> Option<(Mode, Mode)> {
        let (c, s) = (self.c.done()?, self.s.done()?);
        assert_eq!(c.mode, s.mode, "sides disagree on the mode");
        assert_eq!(
            c.login_mode, s.login_mode,
            "sides disagree on the login mode"
        );
        assert!(self.c.idle() && self.s.idle(), "unread bytes after login");
        assert!(!self.c.desync && !self.s.desync, "layer desync");
        Some((c.login_mode, c.mode))
    }

    /// Payloads sent by `who`, in order.
    pub fn sent_by(&self, who: Who) -> Vec<Packet> {
        self.transcript
            .iter()
            .filter(|r| r.from == who)
            .map(|r| r.packet.clone())
            .collect()
    }
}

pub fn need(c: char) -> Need {
    match c {
        'N' => Need::None,
        'O' => Need::Ok,
        'R' => Need::Required,
        _ => panic!("need letter {c}"),
    }
}

/// `"RO"` = certificate required, PSK ok.
pub fn needs(code: &str) -> Needs {
    let mut it = code.chars();
    Needs::new(need(it.next().unwrap()), need(it.next().unwrap()))
}

pub const CELLS: [&str; 9] = ["NN", "NO", "NR", "ON", "OO", "OR", "RN", "RO", "RR"];

pub fn local(dialect: Dialect, needs: Needs, password: &str, name: &str) -> Local {
    Local {
        key: Secret::from_password(password),
        needs,
        authenticate: false,
        dialect,
        name: name.into(),
    }
}

/// For 9.6 sides: the 9.6 need `L` in `cert`.
pub fn needs_v96(l: u32) -> Needs {
    Needs::new(Need::from_wire(l), Need::None)
}

pub fn versions(d: Dialect) -> hello::Versions {
    hello::Versions::of(d)
}

pub const NONCE_C: Nonce = Nonce {
    random: 1769615143,
    time: 1795934474,
};
pub const NONCE_S: Nonce = Nonce {
    random: 1817518659,
    time: 1795934474,
};

/// A Director (client) → file daemon (server) pair.
pub fn dir_to_fd(client: Local, server: Local) -> Pair {
    let cv = versions(client.dialect);
    let sv = versions(server.dialect);
    let server_dialect = server.dialect;
    Pair::new(
        ClientConfig {
            hello: Hello::Director {
                name: "bacula-dir".into(),
                version: Some(cv.director),
                tlspsk: None,
            },
            local: client,
        },
        NONCE_C,
        ServerConfig {
            kind: ServerKind::FileDaemon,
            name: "bacula-fd".into(),
            version: sv.fd,
            version_text: String::new(),
            dialect: server_dialect,
        },
        NONCE_S,
        Some(server),
    )
}

/// The reason kind as a short word, for table assertions.
pub fn reason_kind(r: &RefusalReason) -> &'static str {
    match r {
        RefusalReason::WrongPassword(_) => "password",
        RefusalReason::Policy(_) => "policy",
        RefusalReason::PeerIgnoredTls(_) => "ignored-tls",
        RefusalReason::Malformed(_) => "malformed",
        RefusalReason::UnknownPeer(_) => "unknown",
        RefusalReason::Rejected(_) => "rejected",
        RefusalReason::Ping => "ping",
        RefusalReason::InvalidInput(_) => "invalid-input",
    }
}

/// What happened to one side: `done`, a refusal kind, or `waiting`.
pub fn side_kind(s: &Side) -> &'static str {
    match &s.result {
        Some(Ok(_)) => "done",
        Some(Err(r)) => reason_kind(&r.reason),
        None => "waiting",
    }
}
