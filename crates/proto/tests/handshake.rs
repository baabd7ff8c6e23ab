//! Client and server handshakes talking to each other through the in-memory
//! harness: the negotiation tables of protocol.md §5, TLS Authenticate,
//! wrong passwords, and byte-exact transcripts from Appendix B / §4.

mod common;

use std::time::Duration;

use baculink_proto::cram;
use baculink_proto::frame::{self, Packet, Signal};
use baculink_proto::handshake::{
    ClientConfig, Nonce, RefusalReason, ServerConfig, ServerKind, TlsKind,
};
use baculink_proto::hello::{self, Hello};
use baculink_proto::negotiate::{Dialect, Mode};
use baculink_proto::Secret;
use bytes::BytesMut;
use common::*;

/// protocol.md §5.5, first table: rows auth server (T,P), columns auth client.
const TABLE_13: [[&str; 9]; 9] = [
    //  NN        NO       NR        ON       OO       OR        RN       RO       RR
    [
        "clear", "clear", "F:both", "clear", "clear", "F:both", "F:srv", "F:srv", "F:srv",
    ], // NN
    [
        "clear", "psk", "psk", "clear", "psk", "psk", "F:srv", "psk", "psk",
    ], // NO
    [
        "F:both", "psk", "psk", "F:both", "psk", "psk", "F:srv", "psk", "psk",
    ], // NR
    [
        "clear", "clear", "F:both", "tls", "tls", "tls", "tls", "tls", "tls",
    ], // ON
    [
        "clear", "psk", "psk", "tls", "tls", "tls", "tls", "tls", "tls",
    ], // OO
    [
        "F:both", "psk", "psk", "tls", "tls", "tls", "tls", "tls", "tls",
    ], // OR
    [
        "F:cli", "F:cli", "F:cli", "tls", "tls", "tls", "tls", "tls", "tls",
    ], // RN
    [
        "F:cli", "psk", "psk", "tls", "tls", "tls", "tls", "tls", "tls",
    ], // RO
    [
        "F:cli", "psk", "psk", "tls", "tls", "tls", "tls", "tls", "tls",
    ], // RR
];

/// protocol.md §5.2: 9.6 local need (rows) vs remote need (columns).
const TABLE_96: [[&str; 3]; 3] = [
    ["clear", "clear", "F:both"],
    ["clear", "tls", "tls"],
    ["F:both", "tls", "tls"],
];

/// protocol.md §5.6: rows 13.x side (T,P), columns 9.6 side's L.
const TABLE_MIXED: [[&str; 3]; 9] = [
    ["clear", "clear", "F:both"], // NN
    ["clear", "clear", "F:both"], // NO
    ["F:13", "F:13", "F:both"],   // NR
    ["clear", "tls", "tls"],      // ON
    ["clear", "tls", "tls"],      // OO
    ["F:13", "tls", "tls"],       // OR
    ["F:96", "tls", "tls"],       // RN
    ["F:96", "tls", "tls"],       // RO
    ["F:96", "tls", "tls"],       // RR
];

fn mode_word(m: Mode) -> &'static str {
    m.as_str()
}

/// Checks a finished pair against a table cell. `policy_sides` are the sides
/// whose own check must fail; a side not named may be refused by its peer
/// (`rejected`), have finished before the peer gave up (`done`), or have
/// failed its own (stricter) check.
fn check_cell(p: &Pair, expect: &str, policy: &[Who], what: &str) {
    assert!(!p.tls_mismatch, "{what}: sides started different TLS kinds");
    if !expect.starts_with("F:") {
        let mode = expect;
        let (login, after) = p.connected().unwrap_or_else(|| {
            panic!(
                "{what}: expected {mode}, got client {} / server {}: {:?} {:?}",
                side_kind(&p.c),
                side_kind(&p.s),
                p.c.result,
                p.s.result
            )
        });
        assert_eq!(mode_word(login), mode, "{what}");
        assert_eq!(after, login, "{what}: no TLS Authenticate here");
        let kinds: Vec<TlsKind> = match login {
            Mode::Clear => vec![],
            Mode::Tls => vec![TlsKind::Certificate],
            Mode::Psk => vec![TlsKind::Psk],
        };
        assert_eq!(p.c.starts, kinds, "{what}: client StartTls");
        assert_eq!(p.s.starts, kinds, "{what}: server StartTls");
        // The final line travels in the negotiated mode.
        let last = p.transcript.last().unwrap();
        assert_eq!(last.from, Who::Server, "{what}");
        let want_layer = match login {
            Mode::Clear => Layer::Clear,
            Mode::Tls => Layer::Tls(TlsKind::Certificate),
            Mode::Psk => Layer::Tls(TlsKind::Psk),
        };
        assert_eq!(last.layer, want_layer, "{what}: final line layer");
        return;
    }
    assert!(
        p.connected().is_none(),
        "{what}: expected a failure, both sides logged in"
    );
    for (who, side) in [(Who::Client, &p.c), (Who::Server, &p.s)] {
        let kind = side_kind(side);
        if policy.contains(&who) {
            assert_eq!(
                kind, "policy",
                "{what}: {who:?} must fail its own TLS check: {:?}",
                side.result
            );
        } else {
            assert!(
                ["policy", "rejected", "done"].contains(&kind),
                "{what}: {who:?} ended {kind}: {:?}",
                side.result
            );
        }
    }
    assert!(
        p.c.refusal().is_some() || p.s.refusal().is_some(),
        "{what}: somebody must refuse"
    );
}

#[test]
fn table_13x_all_81_cells() {
    for (r, as_code) in CELLS.iter().enumerate() {
        for (c, ac_code) in CELLS.iter().enumerate() {
            let expect = TABLE_13[r][c];
            let client = local(Dialect::V13, needs(ac_code), "fd-pass", "bacula-dir");
            let server = local(Dialect::V13, needs(as_code), "fd-pass", "bacula-fd");
            let client_requires = client.needs.requires_any();
            let mut p = dir_to_fd(client, server);
            p.run();
            let what = format!("AS {as_code} x AC {ac_code}");
            let policy: Vec<Who> = match expect {
                "F:srv" => vec![Who::Server],
                "F:cli" => vec![Who::Client],
                // Without `starttls` the auth client never learns the server's
                // PSK need, so it can only fail on its own need; otherwise the
                // server's failure line tells it.
                "F:both" if client_requires => vec![Who::Server, Who::Client],
                "F:both" => vec![Who::Server],
                _ => vec![],
            };
            check_cell(&p, expect, &policy, &what);
            // 13.x peers on both sides: starttls exactly when TLS is used.
            let starttls_sent = p
                .sent_by(Who::Server)
                .iter()
                .any(|pk| pk.payload().is_some_and(|d| d.starts_with(b"starttls")));
            assert_eq!(
                starttls_sent,
                expect == "psk" || expect == "tls",
                "{what}: starttls"
            );
            if let (Some(c), Some(s)) = (p.c.done(), p.s.done()) {
                assert_eq!(c.peer_dialect, Dialect::V13, "{what}");
                assert_eq!(s.peer_dialect, Dialect::V13, "{what}");
                assert_eq!(c.peer_version, Some(14));
                assert_eq!(s.peer_version, Some(10002));
                assert_eq!(c.final_line.as_deref(), Some("2000 OK Hello 14"));
            }
        }
    }
}

#[test]
fn table_96_all_9_cells() {
    for l_as in 0..3u32 {
        for l_ac in 0..3u32 {
            let expect = TABLE_96[l_as as usize][l_ac as usize];
            let client = local(Dialect::V96, needs_v96(l_ac), "pw", "bacula-dir");
            let server = local(Dialect::V96, needs_v96(l_as), "pw", "bacula-fd");
            let mut p = dir_to_fd(client, server);
            p.run();
            let what = format!("9.6 AS L={l_as} x AC L={l_ac}");
            let policy = if expect == "F:both" {
                vec![Who::Client, Who::Server]
            } else {
                vec![]
            };
            check_cell(&p, expect, &policy, &what);
            // No 13.x traces towards or from a 9.6 side.
            let hello = &p.sent_by(Who::Client)[0];
            assert_eq!(
                hello.payload().unwrap(),
                b"Hello Director bacula-dir calling 103\n"
            );
            assert!(p
                .sent_by(Who::Server)
                .iter()
                .all(|pk| !pk.payload().is_some_and(|d| d.starts_with(b"starttls"))));
            if expect == "tls" {
                // CRAM in clear, final line inside TLS (§5.7).
                let n = p.transcript.len();
                assert!(p.transcript[..n - 1]
                    .iter()
                    .all(|r| r.layer == Layer::Clear));
                assert_eq!(p.transcript[n - 1].layer, Layer::Tls(TlsKind::Certificate));
                assert_eq!(p.c.done().unwrap().peer_dialect, Dialect::V96);
                assert_eq!(p.c.done().unwrap().peer_version, Some(214));
            }
        }
    }
}

fn mixed_policy(expect: &str, v13_side: Who) -> Vec<Who> {
    match expect {
        "F:13" => vec![v13_side],
        "F:96" => vec![v13_side.other()],
        "F:both" => vec![Who::Client, Who::Server],
        _ => vec![],
    }
}

#[test]
fn table_mixed_13x_client_96_server() {
    for (r, code) in CELLS.iter().enumerate() {
        for l in 0..3u32 {
            let expect = TABLE_MIXED[r][l as usize];
            let client = local(Dialect::V13, needs(code), "pw", "bacula-dir");
            let server = local(Dialect::V96, needs_v96(l), "pw", "bacula-fd");
            let mut p = dir_to_fd(client, server);
            p.run();
            let what = format!("13.x client {code} x 9.6 server L={l}");
            check_cell(&p, expect, &mixed_policy(expect, Who::Client), &what);
            // The 9.6 server ignores tlspsk and never sends starttls.
            assert_eq!(p.lookups[0].tlspsk(), None, "{what}");
            if let Some(c) = p.c.done() {
                assert_eq!(c.peer_dialect, Dialect::V96, "{what}");
            }
        }
    }
}

#[test]
fn table_mixed_96_client_13x_server() {
    for (r, code) in CELLS.iter().enumerate() {
        for l in 0..3u32 {
            let expect = TABLE_MIXED[r][l as usize];
            let client = local(Dialect::V96, needs_v96(l), "pw", "bacula-dir");
            let server = local(Dialect::V13, needs(code), "pw", "bacula-fd");
            let mut p = dir_to_fd(client, server);
            p.run();
            let what = format!("9.6 client L={l} x 13.x server {code}");
            check_cell(&p, expect, &mixed_policy(expect, Who::Server), &what);
            if let Some(s) = p.s.done() {
                assert_eq!(s.peer_dialect, Dialect::V96, "{what}");
                assert_eq!(s.peer_version, Some(103));
            }
        }
    }
}

#[test]
fn tls_authenticate_13x_psk_and_certificate() {
    for (code, kind, mode) in [
        ("NO", TlsKind::Psk, Mode::Psk),
        ("ON", TlsKind::Certificate, Mode::Tls),
        ("OO", TlsKind::Certificate, Mode::Tls),
    ] {
        let mut client = local(Dialect::V13, needs(code), "pw", "bacula-dir");
        let mut server = local(Dialect::V13, needs(code), "pw", "bacula-fd");
        client.authenticate = true;
        server.authenticate = true;
        let mut p = dir_to_fd(client, server);
        p.run();
        let (login, after) = p.connected().expect("login");
        assert_eq!((login, after), (mode, Mode::Clear), "{code}");
        assert_eq!(p.c.drops, 1);
        assert_eq!(p.s.drops, 1);
        assert_eq!(p.c.starts, vec![kind]);
        // Hello and starttls in clear, CRAM inside TLS, final line in clear.
        let layers: Vec<Layer> = p.transcript.iter().map(|r| r.layer).collect();
        let t = Layer::Tls(kind);
        assert_eq!(
            layers,
            [Layer::Clear, Layer::Clear, t, t, t, t, t, t, Layer::Clear],
            "{code}"
        );
    }
}

#[test]
fn tls_authenticate_96() {
    let mut client = local(Dialect::V96, needs_v96(2), "pw", "bacula-dir");
    let mut server = local(Dialect::V96, needs_v96(2), "pw", "bacula-fd");
    client.authenticate = true;
    server.authenticate = true;
    let mut p = dir_to_fd(client, server);
    p.run();
    assert_eq!(p.connected(), Some((Mode::Tls, Mode::Clear)));
    assert_eq!((p.c.drops, p.s.drops), (1, 1));
    assert!(p.transcript.iter().all(|r| r.layer == Layer::Clear));
    assert_eq!(
        p.transcript.last().unwrap().packet,
        Packet::data("2000 OK Hello 214\n")
    );
}

#[test]
fn tls_authenticate_13x_with_96_peer_keeps_tls() {
    // §5.8: the 13.x side starts post-CRAM TLS and keeps it.
    let mut client = local(Dialect::V13, needs("ON"), "pw", "bacula-dir");
    client.authenticate = true;
    let server = local(Dialect::V96, needs_v96(1), "pw", "bacula-fd");
    let mut p = dir_to_fd(client, server);
    p.run();
    assert_eq!(p.connected(), Some((Mode::Tls, Mode::Tls)));
    assert_eq!(p.c.drops, 0);
}

#[test]
fn wrong_password_detected_by_server() {
    let client = local(Dialect::V13, needs("NO"), "right", "bacula-dir");
    let server = local(Dialect::V13, needs("NO"), "wrong", "bacula-fd");
    let mut p = dir_to_fd(client, server);
    p.run();
    let s = p.s.refusal().expect("server refuses");
    assert!(matches!(s.reason, RefusalReason::WrongPassword(_)), "{s:?}");
    assert_eq!(s.delay, Duration::from_secs(11), "5 s CRAM + 6 s FD");
    assert!(s.to_string().contains("Director \"bacula-dir\""), "{s}");
    let c = p.c.refusal().expect("client refuses");
    assert!(matches!(c.reason, RefusalReason::WrongPassword(_)), "{c:?}");
    assert!(c.to_string().contains("1999 Authorization failed."), "{c}");
    assert_eq!(c.delay, Duration::from_secs(5));
    // The FD sends the verdict, its failure line and TERMINATE (inside PSK).
    let sent = p.sent_by(Who::Server);
    let n = sent.len();
    assert_eq!(
        sent[n - 3..],
        [
            Packet::data(cram::AUTH_FAILED),
            Packet::data(hello::AUTHENTICATION_FAILED),
            Packet::Signal(Signal::Terminate)
        ]
    );
    for text in [
        format!("{c}"),
        format!("{s}"),
        format!("{:?}", p.client),
        format!("{:?}", p.server),
    ] {
        for secret in ["right", "wrong"] {
            let key = Secret::from_password(secret);
            assert!(
                !text.contains(std::str::from_utf8(key.expose()).unwrap()),
                "{text}"
            );
        }
    }
}

#[test]
fn wrong_password_per_daemon_kind() {
    // (kind, client hello, failure packets after the verdict, delay)
    let job = "BackupData.2026-11-29_06.41.15_05";
    let cases: Vec<(ServerKind, Hello, Vec<Packet>, u64)> = vec![
        (
            ServerKind::Director,
            Hello::Console {
                name: "*UserAgent*".into(),
                version: Some(200),
                tlspsk: None,
            },
            vec![Packet::data(hello::NOT_AUTHORIZED)],
            10,
        ),
        (
            ServerKind::StorageDirector,
            Hello::DirectorToSd {
                name: "bacula-dir".into(),
                version: Some(10002),
                tlspsk: None,
            },
            vec![
                Packet::data(hello::NO_GO),
                Packet::Signal(Signal::Terminate),
            ],
            10,
        ),
        (
            ServerKind::Storage,
            Hello::FdToSd {
                job: job.into(),
                fd_version: 14,
                sd_version: None,
                tlspsk: None,
            },
            vec![],
            10,
        ),
    ];
    for (kind, hello, tail, secs) in cases {
        let client = local(Dialect::V13, needs("NO"), "a", "client");
        let server = local(Dialect::V13, needs("NO"), "b", "server");
        let mut p = Pair::new(
            ClientConfig {
                hello: hello.clone(),
                local: client,
            },
            NONCE_C,
            ServerConfig {
                kind,
                name: "server".into(),
                version: 1,
                version_text: "x".into(),
                dialect: Dialect::V13,
            },
            NONCE_S,
            Some(server),
        );
        p.run();
        let s = p.s.refusal().expect("server refuses");
        assert!(
            matches!(s.reason, RefusalReason::WrongPassword(_)),
            "{kind:?}"
        );
        assert_eq!(s.delay, Duration::from_secs(secs), "{kind:?}");
        let sent = p.sent_by(Who::Server);
        let mut want = vec![Packet::data(cram::AUTH_FAILED)];
        want.extend(tail);
        assert_eq!(sent[sent.len() - want.len()..], want[..], "{kind:?}");
        let c = p.c.refusal().expect("client refuses");
        assert!(
            matches!(c.reason, RefusalReason::WrongPassword(_)),
            "{kind:?}"
        );
        let fd_extra = if kind == ServerKind::Storage { 6 } else { 0 };
        assert_eq!(c.delay, Duration::from_secs(5 + fd_extra), "{kind:?}");
    }
}

#[test]
fn unknown_peer_per_daemon_kind() {
    let cases: Vec<(ServerKind, Hello, Vec<Packet>, u64)> = vec![
        (
            ServerKind::Director,
            Hello::Console {
                name: "nobody".into(),
                version: Some(200),
                tlspsk: None,
            },
            vec![Packet::data(hello::NOT_AUTHORIZED)],
            5,
        ),
        (
            ServerKind::FileDaemon,
            Hello::Director {
                name: "stranger".into(),
                version: Some(10002),
                tlspsk: None,
            },
            vec![Packet::Signal(Signal::Terminate)],
            6,
        ),
        (
            ServerKind::Storage,
            Hello::DirectorToSd {
                name: "stranger".into(),
                version: Some(10002),
                tlspsk: None,
            },
            vec![Packet::Signal(Signal::Terminate)],
            5,
        ),
        (
            ServerKind::StorageClient,
            Hello::FdToSd {
                job: "NoSuchJob".into(),
                fd_version: 14,
                sd_version: None,
                tlspsk: None,
            },
            vec![],
            5,
        ),
    ];
    for (kind, hello, want, secs) in cases {
        let mut p = Pair::new(
            ClientConfig {
                hello,
                local: local(Dialect::V13, needs("NO"), "a", "client"),
            },
            NONCE_C,
            ServerConfig {
                kind,
                name: "server".into(),
                version: 1,
                version_text: "x".into(),
                dialect: Dialect::V13,
            },
            NONCE_S,
            None,
        );
        p.run();
        let s = p.s.refusal().expect("refused");
        assert!(
            matches!(s.reason, RefusalReason::UnknownPeer(_)),
            "{kind:?}: {s:?}"
        );
        assert_eq!(s.delay, Duration::from_secs(secs), "{kind:?}");
        assert_eq!(p.sent_by(Who::Server), want, "{kind:?}");
        if kind == ServerKind::Director {
            // A console reads the refusal as its "challenge" (§4.1).
            let c = p.c.refusal().unwrap();
            assert!(matches!(c.reason, RefusalReason::Rejected(_)), "{c:?}");
            assert!(c.to_string().contains("1999 You are not authorized."));
            assert_eq!(p.sent_by(Who::Client)[1], Packet::data(cram::AUTH_FAILED));
        }
    }
}

fn packets(p: &Pair) -> Vec<(Who, Vec<u8>, Layer)> {
    p.transcript
        .iter()
        .map(|r| {
            let bytes = match &r.packet {
                Packet::Data(d) => d.to_vec(),
                Packet::Signal(s) => format!("<{}>", s.name()).into_bytes(),
            };
            (r.from, bytes, r.layer)
        })
        .collect()
}

#[test]
fn appendix_b_13x_director_to_fd_psk() {
    let client = local(Dialect::V13, needs("NO"), "fd-pass-13", "test13-dir");
    let server = local(Dialect::V13, needs("NO"), "fd-pass-13", "test13-fd");
    let mut p = Pair::new(
        ClientConfig {
            hello: Hello::Director {
                name: "test13-dir".into(),
                version: Some(hello::DIRECTOR_VERSION_V13),
                tlspsk: None,
            },
            local: client,
        },
        Nonce::new(1769615143, 1795934474),
        ServerConfig {
            kind: ServerKind::FileDaemon,
            name: "test13-fd".into(),
            version: hello::FD_VERSION_V13,
            version_text: String::new(),
            dialect: Dialect::V13,
        },
        Nonce::new(1817518659, 1795934474),
        Some(server),
    );
    p.run();
    assert_eq!(p.connected(), Some((Mode::Psk, Mode::Psk)));
    let psk = Layer::Tls(TlsKind::Psk);
    let want: Vec<(Who, &[u8], Layer)> = vec![
        (
            Who::Client,
            b"Hello Director test13-dir calling 10002 tlspsk=100\n",
            Layer::Clear,
        ),
        (Who::Server, b"starttls tlspsk=100\n", Layer::Clear),
        (
            Who::Server,
            b"auth cram-md5 <1817518659.1795934474@test13-fd> ssl=0\n",
            psk,
        ),
        (Who::Client, b"l9sd/7Irt6Zy9A/ChX/OQD\0", psk),
        (Who::Server, b"1000 OK auth\n", psk),
        (
            Who::Client,
            b"auth cram-md5 <1769615143.1795934474@test13-dir> ssl=0\n",
            psk,
        ),
        (Who::Server, b"zHlt65/p4h+2j8Bsv/+jyB\0", psk),
        (Who::Client, b"1000 OK auth\n", psk),
        (Who::Server, b"2000 OK Hello 14\n", psk),
    ];
    let got = packets(&p);
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((g.0, &g.1[..], g.2), (w.0, w.1, w.2));
    }
    // Exact bytes on the wire for the first two packets.
    let mut wire = BytesMut::new();
    frame::encode(&p.transcript[0].packet, false, &mut wire).unwrap();
    assert_eq!(&wire[..8], [0, 0, 0, 0x33, b'H', b'e', b'l', b'l']);
    let mut wire = BytesMut::new();
    frame::encode(&p.transcript[1].packet, false, &mut wire).unwrap();
    assert_eq!(&wire[..4], [0, 0, 0, 0x14]);
    let mut wire = BytesMut::new();
    frame::encode(&p.transcript[3].packet, false, &mut wire).unwrap();
    assert_eq!(&wire[..4], [0, 0, 0, 0x17]);
    assert_eq!(wire[wire.len() - 1], 0);
    let s = p.s.done().unwrap();
    assert_eq!(s.peer_hello.as_ref().unwrap().name(), "test13-dir");
    assert_eq!(s.peer_version, Some(10002));
}

#[test]
fn appendix_b_96_director_to_fd_certificate() {
    let client = local(Dialect::V96, needs_v96(1), "pw96", "bacula-dir");
    let server = local(Dialect::V96, needs_v96(1), "pw96", "bacula-fd");
    let mut p = dir_to_fd(client, server);
    p.run();
    assert_eq!(p.connected(), Some((Mode::Tls, Mode::Tls)));
    let got = packets(&p);
    let texts: Vec<String> = got
        .iter()
        .map(|(_, b, _)| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert_eq!(texts[0], "Hello Director bacula-dir calling 103\n");
    assert_eq!(
        texts[1],
        "auth cram-md5 <1817518659.1795934474@bacula-fd> ssl=1\n"
    );
    assert_eq!(texts[2].len(), 23);
    assert!(texts[2].ends_with('\0'));
    assert_eq!(texts[3], "1000 OK auth\n");
    assert_eq!(
        texts[4],
        "auth cram-md5 <1769615143.1795934474@bacula-dir> ssl=1\n"
    );
    assert_eq!(texts[6], "1000 OK auth\n");
    assert_eq!(got[6].0, Who::Client);
    assert_eq!(texts[7], "2000 OK Hello 214\n");
    assert_eq!(got[7].2, Layer::Tls(TlsKind::Certificate));
    assert_eq!(texts.len(), 8);
}

#[test]
fn console_to_director_13x_capture() {
    let mut p = Pair::new(
        ClientConfig {
            hello: Hello::Console {
                name: "*UserAgent*".into(),
                version: Some(hello::CONSOLE_VERSION_V13),
                tlspsk: None,
            },
            local: local(Dialect::V13, needs("NO"), "console-pass-13", "bconsole"),
        },
        Nonce::new(1498138207, 1795934472),
        ServerConfig {
            kind: ServerKind::Director,
            name: "test13-dir".into(),
            version: hello::DIRECTOR_VERSION_V13,
            version_text: "13.0.3 (02 May 2023)".into(),
            dialect: Dialect::V13,
        },
        Nonce::new(1357823160, 1795934472),
        Some(local(
            Dialect::V13,
            needs("NO"),
            "console-pass-13",
            "test13-dir",
        )),
    );
    p.run();
    assert_eq!(p.connected(), Some((Mode::Psk, Mode::Psk)));
    let texts: Vec<Vec<u8>> = packets(&p).into_iter().map(|t| t.1).collect();
    assert_eq!(texts[0], b"Hello *UserAgent* calling 200 tlspsk=100\n");
    assert_eq!(texts[1], b"starttls tlspsk=100\n");
    assert_eq!(
        texts[2],
        b"auth cram-md5 <1357823160.1795934472@test13-dir> ssl=0\n"
    );
    assert_eq!(texts[3], b"W6+kE9/06W+tpC+Cx5+h/A\0");
    assert_eq!(
        texts[5],
        b"auth cram-md5 <1498138207.1795934472@bconsole> ssl=0\n"
    );
    assert_eq!(texts[6], b"FV4trBgIa9cXY08sRF4Q7D\0");
    assert_eq!(
        texts[8],
        b"1000 OK: 10002 test13-dir Version: 13.0.3 (02 May 2023)\n"
    );
    let c = p.c.done().unwrap();
    assert_eq!(c.peer_version, Some(10002));
    assert_eq!(
        c.final_line.as_deref(),
        Some("1000 OK: 10002 test13-dir Version: 13.0.3 (02 May 2023)")
    );
    assert_eq!(c.peer_dialect, Dialect::V13);
}

#[test]
fn fd_to_sd_13x_with_caps_compressed() {
    let job = "BackupData.2026-11-29_06.41.15_05";
    let key = "EOGO-NOMD-DAIO-FMAI-CFFJ-LHBP-GJJA-HLJH";
    let session = |name: &str| baculink_proto::handshake::Local {
        key: Secret::new(key.as_bytes().to_vec()),
        needs: needs("NO"),
        authenticate: false,
        dialect: Dialect::V13,
        name: name.into(),
    };
    let mut p = Pair::new(
        ClientConfig {
            hello: Hello::FdToSd {
                job: job.into(),
                fd_version: hello::FD_VERSION_V13,
                sd_version: None,
                tlspsk: None,
            },
            local: session("test13-fd"),
        },
        Nonce::new(272617540, 1795934477),
        ServerConfig {
            kind: ServerKind::Storage,
            name: "test13-sd".into(),
            version: hello::SD_VERSION_V13,
            version_text: String::new(),
            dialect: Dialect::V13,
        },
        Nonce::new(272617540, 1795934477),
        Some(session("test13-sd")),
    );
    p.compress = (true, true);
    p.run();
    assert_eq!(p.connected(), Some((Mode::Psk, Mode::Psk)));
    let got = packets(&p);
    let psk = Layer::Tls(TlsKind::Psk);
    let hello_line = format!("Hello Bacula SD: Start Job {job} 14 tlspsk=100\n");
    assert_eq!(got[0], (Who::Client, hello_line.into_bytes(), Layer::Clear));
    assert_eq!(
        got[1],
        (Who::Server, hello::SDCAPS_COMMUNITY.to_vec(), Layer::Clear)
    );
    assert_eq!(
        got[2],
        (Who::Client, hello::FDCAPS_COMMUNITY.to_vec(), Layer::Clear)
    );
    assert_eq!(
        got[3],
        (Who::Server, b"starttls tlspsk=100\n".to_vec(), Layer::Clear)
    );
    assert_eq!(
        got[4],
        (
            Who::Server,
            b"auth cram-md5 <272617540.1795934477@test13-sd> ssl=0\n".to_vec(),
            psk
        )
    );
    assert_eq!(
        got[7],
        (
            Who::Client,
            b"auth cram-md5 <272617540.1795934477@test13-fd> ssl=0\n".to_vec(),
            psk
        )
    );
    assert_eq!(
        got[10],
        (Who::Server, b"3000 OK Hello 30007\n".to_vec(), psk)
    );
    assert_eq!(got.len(), 11);
    let c = p.c.done().unwrap();
    assert_eq!(c.peer_version, Some(30007));
    // The sdcaps line really went out LZ4-compressed.
    let mut wire = BytesMut::new();
    frame::encode(&Packet::data(hello::SDCAPS_COMMUNITY), true, &mut wire).unwrap();
    assert_eq!(wire[0] & 0x40, 0x40);
}

#[test]
fn fd_to_sd_96_no_caps_and_final_line() {
    let job = "J";
    let mut p = Pair::new(
        ClientConfig {
            hello: Hello::FdToSd {
                job: job.into(),
                fd_version: 214,
                sd_version: None,
                tlspsk: None,
            },
            local: local(Dialect::V96, needs_v96(0), "k", "fd"),
        },
        NONCE_C,
        ServerConfig {
            kind: ServerKind::StorageClient,
            name: "sd".into(),
            version: 306,
            version_text: String::new(),
            dialect: Dialect::V13,
        },
        NONCE_S,
        Some(local(Dialect::V13, needs("NO"), "k", "sd")),
    );
    p.run();
    assert_eq!(p.connected(), Some((Mode::Clear, Mode::Clear)));
    let texts: Vec<Vec<u8>> = packets(&p).into_iter().map(|t| t.1).collect();
    assert_eq!(texts[0], b"Hello Bacula SD: Start Job J 214\n");
    assert!(
        texts[1].starts_with(b"auth cram-md5 "),
        "no sdcaps for FD 214"
    );
    assert_eq!(texts.last().unwrap(), b"3000 OK Hello 306\n");
}

#[test]
fn fdcallsdir_login() {
    let mut p = Pair::new(
        ClientConfig {
            hello: Hello::FdCallsDir {
                name: "my-fd".into(),
                version: 1,
                tlspsk: None,
            },
            local: local(Dialect::V13, needs("NO"), "client-pw", "my-fd"),
        },
        NONCE_C,
        ServerConfig {
            kind: ServerKind::Director,
            name: "bacula-dir".into(),
            version: 10002,
            version_text: "13.0.3 (02 May 2023)".into(),
            dialect: Dialect::V13,
        },
        NONCE_S,
        Some(local(Dialect::V13, needs("NO"), "client-pw", "bacula-dir")),
    );
    p.run();
    assert_eq!(p.connected(), Some((Mode::Psk, Mode::Psk)));
    let texts: Vec<Vec<u8>> = packets(&p).into_iter().map(|t| t.1).collect();
    assert_eq!(texts[0], b"Hello my-fd fdcallsdir 1 tlspsk=100\n");
    assert_eq!(texts[texts.len() - 1], b"OK\n");
    assert!(texts[texts.len() - 2].starts_with(b"1000 OK: 10002 bacula-dir"));
    assert!(matches!(p.lookups[0], Hello::FdCallsDir { .. }));
}

#[test]
fn starttls_is_sent_with_our_needs_before_tls() {
    use baculink_proto::handshake::{Input, Output, ServerHandshake};
    let mut server = ServerHandshake::new(
        ServerConfig {
            kind: ServerKind::FileDaemon,
            name: "fd".into(),
            version: 14,
            version_text: String::new(),
            dialect: Dialect::V13,
        },
        NONCE_S,
    );
    server.input(Input::Packet(Packet::data(
        "Hello Director d calling 10002 tlspsk=2\n",
    )));
    let outs = drain(&mut server);
    assert!(matches!(
        &outs[..],
        [Output::LookupPeer(Hello::Director {
            tlspsk: Some(2),
            ..
        })]
    ));
    // Local OR (certificate ok, PSK required) vs remote RN: certificate TLS.
    server.input(Input::Peer(local(Dialect::V13, needs("OR"), "pw", "fd")));
    let outs = drain(&mut server);
    assert_eq!(sent(&outs), vec![Packet::data("starttls tlspsk=201\n")]);
    assert!(matches!(outs[1], Output::StartTls(TlsKind::Certificate)));
    assert_eq!(outs.len(), 2, "the challenge waits for TLS");
    server.input(Input::TlsEstablished);
    let outs = drain(&mut server);
    assert_eq!(
        sent(&outs),
        vec![Packet::data(
            "auth cram-md5 <1817518659.1795934474@fd> ssl=1\n"
        )]
    );
}
