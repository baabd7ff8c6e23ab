//! Misbehaving peers (scripted by hand), malformed and oversized input,
//! signals and garbage at every step, inputs in the wrong state: every case
//! must end in `Failed` with the right reason, packets and delay, never a panic.

mod common;

use std::time::Duration;

use baculink_proto::cram::{self, AUTH_FAILED, AUTH_OK};
use baculink_proto::frame::{Packet, Signal};
use baculink_proto::handshake::{
    ClientConfig, ClientHandshake, Input, Local, Output, RefusalReason, ServerConfig,
    ServerHandshake, ServerKind, TlsKind,
};
use baculink_proto::hello::{self, Hello};
use baculink_proto::negotiate::{Dialect, Mode, Need};
use baculink_proto::Secret;
use common::*;

fn data(bytes: impl AsRef<[u8]>) -> Input {
    Input::Packet(Packet::data(bytes))
}

fn dir_hello() -> Hello {
    Hello::Director {
        name: "bacula-dir".into(),
        version: Some(10002),
        tlspsk: None,
    }
}

fn client(local: Local) -> ClientHandshake {
    let mut c = ClientHandshake::new(
        ClientConfig {
            hello: dir_hello(),
            local,
        },
        NONCE_C,
    );
    let hello = sent(&drain(&mut c));
    assert_eq!(hello.len(), 1);
    c
}

fn server_cfg(kind: ServerKind, dialect: Dialect) -> ServerConfig {
    ServerConfig {
        kind,
        name: "bacula-fd".into(),
        version: 14,
        version_text: "13.0.3 (02 May 2023)".into(),
        dialect,
    }
}

fn server(kind: ServerKind, dialect: Dialect) -> ServerHandshake {
    ServerHandshake::new(server_cfg(kind, dialect), NONCE_S)
}

/// The response a peer with `password` gives to `challenge_payload`.
fn answer(password: &str, challenge_payload: &[u8]) -> Vec<u8> {
    let ch = cram::parse_challenge(challenge_payload).expect("a challenge");
    cram::response(&Secret::from_password(password), &ch)
}

fn payload(p: &Packet) -> &[u8] {
    p.payload().expect("data packet")
}

fn reason(outs: &[Output]) -> RefusalReason {
    refusal(outs).expect("Failed output").reason
}

/// Fake 9.6-style server script against a real client, up to the client's
/// final verdict. Returns the client's outputs after that verdict.
fn fake_server_cram(c: &mut ClientHandshake, ssl: u32, password: &str) -> Vec<Output> {
    c.input(data(format!("auth cram-md5 <1.2@fake-fd> ssl={ssl}\n")));
    let outs = drain(c);
    assert_eq!(sent(&outs).len(), 1, "response");
    c.input(data(AUTH_OK));
    let outs = drain(c);
    let ch = sent(&outs);
    c.input(data(answer(password, payload(&ch[0]))));
    drain(c)
}

#[test]
fn client_detects_wrong_password() {
    let mut c = client(local(Dialect::V13, needs("NN"), "right", "bacula-dir"));
    let outs = fake_server_cram(&mut c, 0, "wrong");
    assert_eq!(sent(&outs), vec![Packet::data(AUTH_FAILED)]);
    let r = refusal(&outs).unwrap();
    assert!(matches!(r.reason, RefusalReason::WrongPassword(_)), "{r:?}");
    assert!(r.to_string().contains("file daemon"), "{r}");
    assert_eq!(r.delay, Duration::from_secs(5));
    assert!(c.is_finished());
}

#[test]
fn server_told_its_response_was_wrong() {
    let mut s = server(ServerKind::FileDaemon, Dialect::V13);
    s.input(data("Hello Director bacula-dir calling 10002 tlspsk=0\n"));
    drain(&mut s);
    s.input(Input::Peer(local(
        Dialect::V13,
        needs("NN"),
        "pw",
        "bacula-fd",
    )));
    let ch = sent(&drain(&mut s));
    s.input(data(answer("pw", payload(&ch[0]))));
    assert_eq!(sent(&drain(&mut s)), vec![Packet::data(AUTH_OK)]);
    s.input(data("auth cram-md5 <3.4@bacula-dir> ssl=0\n"));
    assert_eq!(sent(&drain(&mut s)).len(), 1);
    s.input(data(AUTH_FAILED));
    let outs = drain(&mut s);
    assert_eq!(
        sent(&outs),
        vec![
            Packet::data(hello::AUTHENTICATION_FAILED),
            Packet::Signal(Signal::Terminate)
        ]
    );
    let r = refusal(&outs).unwrap();
    assert!(matches!(r.reason, RefusalReason::WrongPassword(_)), "{r:?}");
    assert!(r.to_string().contains("1999 Authorization failed."), "{r}");
    assert_eq!(r.delay, Duration::from_secs(11));
}

#[test]
fn server_accepts_standard_base64_response_client_does_not() {
    let key = Secret::from_password("pw");
    let mut s = server(ServerKind::FileDaemon, Dialect::V13);
    s.input(data("Hello Director bacula-dir calling 10002 tlspsk=0\n"));
    drain(&mut s);
    s.input(Input::Peer(local(
        Dialect::V13,
        needs("NN"),
        "pw",
        "bacula-fd",
    )));
    let ch = sent(&drain(&mut s));
    let mut standard = cram::parse_challenge(payload(&ch[0])).unwrap();
    standard.compatible = true;
    s.input(data(cram::response(&key, &standard)));
    assert_eq!(sent(&drain(&mut s)), vec![Packet::data(AUTH_OK)]);

    let mut c = client(local(Dialect::V13, needs("NN"), "pw", "bacula-dir"));
    c.input(data("auth cram-md5 <1.2@fake-fd> ssl=0\n"));
    drain(&mut c);
    c.input(data(AUTH_OK));
    let ch = sent(&drain(&mut c));
    let mut standard = cram::parse_challenge(payload(&ch[0])).unwrap();
    standard.compatible = true;
    let resp = cram::response(&key, &standard);
    assert_ne!(
        resp,
        answer("pw", payload(&ch[0])),
        "this token differs in the two encodings"
    );
    c.input(data(resp));
    let outs = drain(&mut c);
    assert_eq!(sent(&outs), vec![Packet::data(AUTH_FAILED)]);
    assert!(matches!(reason(&outs), RefusalReason::WrongPassword(_)));
}

#[test]
fn cram_md5c_challenge_gets_a_standard_response() {
    let mut c = client(local(Dialect::V13, needs("NN"), "secret", "d"));
    c.input(data(
        "auth cram-md5c <1804289383.1700000000@bacula-dir> ssl=0\n",
    ));
    let outs = drain(&mut c);
    assert_eq!(sent(&outs), vec![Packet::data("QYCIMD4EFSQeonCDnc+AJA\0")]);
}

#[test]
fn client_notices_96_server_ignoring_tls() {
    // We (9.6, ssl=2) and the peer said ssl=1: TLS is agreed after CRAM, but
    // the peer sends its final line in clear.
    let mut c = client(local(Dialect::V96, needs_v96(2), "pw", "bacula-dir"));
    let outs = fake_server_cram(&mut c, 1, "pw");
    assert_eq!(sent(&outs), vec![Packet::data(AUTH_OK)]);
    assert!(matches!(
        outs.last(),
        Some(Output::StartTls(TlsKind::Certificate))
    ));
    c.input(data("2000 OK Hello 214\n"));
    let outs = drain(&mut c);
    let r = refusal(&outs).unwrap();
    assert!(
        matches!(r.reason, RefusalReason::PeerIgnoredTls(_)),
        "{r:?}"
    );
    let msg = r.to_string();
    assert!(
        msg.contains("file daemon") && msg.contains("ssl=2"),
        "{msg}"
    );
    assert!(sent(&outs).is_empty());
}

#[test]
fn client_notices_13x_server_ignoring_its_own_starttls() {
    let mut c = client(local(Dialect::V13, needs("NO"), "pw", "bacula-dir"));
    c.input(data("starttls tlspsk=100\n"));
    let outs = drain(&mut c);
    assert!(matches!(outs[..], [Output::StartTls(TlsKind::Psk)]));
    c.input(data("auth cram-md5 <1.2@fd> ssl=0\n"));
    let r = refusal(&drain(&mut c)).unwrap();
    assert!(
        matches!(r.reason, RefusalReason::PeerIgnoredTls(_)),
        "{r:?}"
    );
    assert!(r.to_string().contains("psk"), "{r}");
}

#[test]
fn client_sees_failure_line_instead_of_tls() {
    // §5.9: a 13.0.3 server whose own check failed after starttls sends its
    // failure line in clear while we wait in the TLS handshake.
    let mut c = client(local(Dialect::V13, needs("OO"), "pw", "bacula-dir"));
    c.input(data("starttls tlspsk=102\n"));
    assert!(matches!(
        drain(&mut c)[..],
        [Output::StartTls(TlsKind::Certificate)]
    ));
    c.input(data(hello::AUTHENTICATION_FAILED));
    let r = refusal(&drain(&mut c)).unwrap();
    assert!(matches!(r.reason, RefusalReason::Rejected(_)), "{r:?}");
    assert!(r.to_string().contains("2999 Authentication failed."));
}

#[test]
fn client_refuses_starttls_it_cannot_honour() {
    // We do no TLS at all; the server requires certificate TLS.
    let mut c = client(local(Dialect::V13, needs("NN"), "pw", "bacula-dir"));
    c.input(data("starttls tlspsk=2\n"));
    let outs = drain(&mut c);
    assert!(sent(&outs).is_empty());
    match reason(&outs) {
        RefusalReason::Policy(m) => {
            assert_eq!(m.remote.cert, Need::Required);
            assert_eq!(m.fault, baculink_proto::negotiate::Fault::Local);
        }
        other => panic!("{other:?}"),
    }
    // A 9.6 client does not know starttls: it is an unparsable challenge.
    let mut c = client(local(Dialect::V96, needs_v96(0), "pw", "bacula-dir"));
    c.input(data("starttls tlspsk=100\n"));
    let outs = drain(&mut c);
    assert_eq!(sent(&outs), vec![Packet::data(AUTH_FAILED)]);
    assert!(matches!(reason(&outs), RefusalReason::Malformed(_)));
}

#[test]
fn client_requiring_tls_refuses_clear_13_0_3_weak_cell() {
    // A 13.0.3 server with no TLS continues in clear (its check passes);
    // we require certificate TLS and refuse on our side after CRAM.
    let mut c = client(local(Dialect::V13, needs("RN"), "pw", "bacula-dir"));
    let outs = fake_server_cram(&mut c, 0, "pw");
    assert_eq!(sent(&outs), vec![Packet::data(AUTH_OK)]);
    match reason(&outs) {
        RefusalReason::Policy(m) => assert_eq!(m.fault, baculink_proto::negotiate::Fault::Remote),
        other => panic!("{other:?}"),
    }
}

#[test]
fn client_challenge_errors() {
    let fresh = || client(local(Dialect::V13, needs("NN"), "pw", "bacula-dir"));
    // Refusal line where the challenge should be.
    let mut c = fresh();
    c.input(data(hello::NOT_AUTHORIZED));
    let outs = drain(&mut c);
    assert_eq!(sent(&outs), vec![Packet::data(AUTH_FAILED)]);
    assert!(matches!(reason(&outs), RefusalReason::Rejected(_)));
    // 500 bytes: refused unread, nothing sent.
    let mut c = fresh();
    let mut big = b"auth cram-md5 <1.2@".to_vec();
    big.resize(498, b'x');
    big.extend_from_slice(b">\n");
    assert_eq!(big.len(), 500);
    c.input(data(&big));
    let outs = drain(&mut c);
    assert!(sent(&outs).is_empty());
    let r = refusal(&outs).unwrap();
    assert!(matches!(r.reason, RefusalReason::Malformed(_)));
    assert_eq!(r.delay, Duration::from_secs(5));
    // 499 bytes is still a challenge.
    let mut c = fresh();
    let mut ok = b"auth cram-md5 <1.2@".to_vec();
    ok.resize(497, b'x');
    ok.extend_from_slice(b">\n");
    c.input(data(&ok));
    let outs = drain(&mut c);
    assert_eq!(sent(&outs).len(), 1);
    assert!(refusal(&outs).is_none());
    // Garbage.
    let mut c = fresh();
    c.input(data("\u{0}\u{1}garbage"));
    let outs = drain(&mut c);
    assert_eq!(sent(&outs), vec![Packet::data(AUTH_FAILED)]);
    assert!(matches!(reason(&outs), RefusalReason::Malformed(_)));
    // Signals.
    for s in [
        Signal::Terminate,
        Signal::Eod,
        Signal::Heartbeat,
        Signal::Other(-99),
    ] {
        let mut c = fresh();
        c.input(Input::Packet(Packet::Signal(s)));
        let outs = drain(&mut c);
        assert!(sent(&outs).is_empty());
        assert!(matches!(reason(&outs), RefusalReason::Rejected(_)), "{s:?}");
    }
}

#[test]
fn client_final_line_errors() {
    let cases: [(&[u8], &str); 4] = [
        (hello::AUTHENTICATION_FAILED, "rejected"),
        (b"3000 OK Hello 30007\n", "malformed"),
        (b"", "malformed"),
        (b"2000 OK Hello 14\n", "done"),
    ];
    for (line, want) in cases {
        let mut c = client(local(Dialect::V13, needs("NN"), "pw", "bacula-dir"));
        fake_server_cram(&mut c, 0, "pw");
        c.input(data(line));
        let outs = drain(&mut c);
        let got = match (refusal(&outs), established(&outs)) {
            (Some(r), _) => reason_kind(&r.reason),
            (None, Some(e)) => {
                assert_eq!(e.peer_version, Some(14));
                assert_eq!(e.peer_dialect, Dialect::V13, "guessed from FD version 14");
                "done"
            }
            _ => "nothing",
        };
        assert_eq!(got, want, "{:?}", String::from_utf8_lossy(line));
    }
}

#[test]
fn console_accepts_fd_style_reply_and_fdcallsdir_needs_ok() {
    let mut c = ClientHandshake::new(
        ClientConfig {
            hello: Hello::Console {
                name: "*UserAgent*".into(),
                version: Some(200),
                tlspsk: None,
            },
            local: local(Dialect::V13, needs("NN"), "pw", "bconsole"),
        },
        NONCE_C,
    );
    drain(&mut c);
    fake_server_cram(&mut c, 0, "pw");
    c.input(data("2000 OK Hello 14\n"));
    let e = established(&drain(&mut c)).expect("bconsole pointed at an FD");
    assert_eq!(e.peer_version, Some(14));

    let mut c = ClientHandshake::new(
        ClientConfig {
            hello: Hello::FdCallsDir {
                name: "fd".into(),
                version: 1,
                tlspsk: None,
            },
            local: local(Dialect::V13, needs("NN"), "pw", "fd"),
        },
        NONCE_C,
    );
    drain(&mut c);
    fake_server_cram(&mut c, 0, "pw");
    c.input(data("1000 OK: 10002 dir Version: 13.0.3\n"));
    assert!(drain(&mut c).is_empty(), "waits for OK");
    c.input(data("NOT OK\n"));
    assert!(matches!(
        reason(&drain(&mut c)),
        RefusalReason::Malformed(_)
    ));
}

/// A fake client that logs in to a real server up to (and including) its
/// own verdict. Returns the server's outputs after that verdict.
fn fake_client_cram(s: &mut ServerHandshake, password: &str, ssl: u32) -> Vec<Output> {
    let ch = sent(&drain(s));
    let challenge = ch.last().expect("challenge");
    s.input(data(answer(password, payload(challenge))));
    assert_eq!(sent(&drain(s)), vec![Packet::data(AUTH_OK)]);
    s.input(data(format!("auth cram-md5 <5.6@fake-dir> ssl={ssl}\n")));
    let resp = sent(&drain(s));
    assert_eq!(resp.len(), 1);
    s.input(data(AUTH_OK));
    drain(s)
}

#[test]
fn server_notices_96_client_ignoring_ssl_2() {
    let mut s = server(ServerKind::FileDaemon, Dialect::V96);
    s.input(data("Hello Director bacula-dir calling 103\n"));
    drain(&mut s);
    s.input(Input::Peer(local(
        Dialect::V96,
        needs_v96(2),
        "pw",
        "bacula-fd",
    )));
    let outs = fake_client_cram(&mut s, "pw", 2);
    assert!(matches!(outs[..], [Output::StartTls(TlsKind::Certificate)]));
    // The fake client goes on in clear text.
    s.input(data("JobId=0 Job=x SDid=0 SDtime=0 Authorization=dummy\n"));
    let outs = drain(&mut s);
    let r = refusal(&outs).unwrap();
    assert!(
        matches!(r.reason, RefusalReason::PeerIgnoredTls(_)),
        "{r:?}"
    );
    let msg = r.to_string();
    assert!(
        msg.contains("Director \"bacula-dir\"") && msg.contains("ssl=2"),
        "{msg}"
    );
    assert!(
        !msg.contains("Authorization=dummy"),
        "payloads are not echoed"
    );
    assert_eq!(
        sent(&outs),
        vec![
            Packet::data(hello::AUTHENTICATION_FAILED),
            Packet::Signal(Signal::Terminate)
        ],
        "failure line on the raw socket"
    );
    assert_eq!(r.delay, Duration::from_secs(6));
}

#[test]
fn server_notices_13x_client_ignoring_starttls() {
    let mut s = server(ServerKind::StorageDirector, Dialect::V13);
    s.input(data(
        "Hello SD: Bacula Director bacula-dir calling 10002 tlspsk=100\n",
    ));
    drain(&mut s);
    s.input(Input::Peer(local(
        Dialect::V13,
        needs("NO"),
        "pw",
        "bacula-sd",
    )));
    let outs = drain(&mut s);
    assert_eq!(sent(&outs), vec![Packet::data("starttls tlspsk=100\n")]);
    assert!(matches!(outs[1], Output::StartTls(TlsKind::Psk)));
    s.input(data("Q4+IMD4EFSQeon+Dn8+AJA\0"));
    let outs = drain(&mut s);
    assert!(matches!(reason(&outs), RefusalReason::PeerIgnoredTls(_)));
    assert_eq!(
        sent(&outs),
        vec![
            Packet::data(hello::NO_GO),
            Packet::Signal(Signal::Terminate)
        ]
    );
}

#[test]
fn server_challenge_response_errors() {
    let start = || {
        let mut s = server(ServerKind::Director, Dialect::V13);
        s.input(data("Hello *UserAgent* calling 200 tlspsk=0\n"));
        drain(&mut s);
        s.input(Input::Peer(local(Dialect::V13, needs("NN"), "pw", "dir")));
        s
    };
    // Empty response.
    let mut s = start();
    drain(&mut s);
    s.input(data(""));
    let outs = drain(&mut s);
    assert!(matches!(reason(&outs), RefusalReason::Malformed(_)));
    assert_eq!(sent(&outs), vec![Packet::data(hello::NOT_AUTHORIZED)]);
    assert_eq!(refusal(&outs).unwrap().delay, Duration::from_secs(10));
    // Oversized challenge from the client: no verdict, but the failure line.
    let mut s = start();
    let ch = sent(&drain(&mut s));
    s.input(data(answer("pw", payload(&ch[0]))));
    drain(&mut s);
    s.input(data(vec![b'a'; 600]));
    let outs = drain(&mut s);
    assert!(matches!(reason(&outs), RefusalReason::Malformed(_)));
    assert_eq!(sent(&outs), vec![Packet::data(hello::NOT_AUTHORIZED)]);
    // Unparsable challenge: verdict and failure line.
    let mut s = start();
    let ch = sent(&drain(&mut s));
    s.input(data(answer("pw", payload(&ch[0]))));
    drain(&mut s);
    s.input(data("hello?\n"));
    let outs = drain(&mut s);
    assert_eq!(
        sent(&outs),
        vec![
            Packet::data(AUTH_FAILED),
            Packet::data(hello::NOT_AUTHORIZED)
        ]
    );
    // A challenge without ssl= is accepted (old form).
    let mut s = start();
    let outs = {
        let ch = sent(&drain(&mut s));
        s.input(data(answer("pw", payload(&ch[0]))));
        drain(&mut s);
        s.input(data("auth cram-md5 <5.6@old>\n"));
        let r = sent(&drain(&mut s));
        assert_eq!(r.len(), 1);
        s.input(data(AUTH_OK));
        drain(&mut s)
    };
    let e = established(&outs).expect("login");
    assert_eq!(e.mode, Mode::Clear);
    assert!(payload(&sent(&outs)[0]).starts_with(b"1000 OK: 14 bacula-fd Version: 13.0.3"));
    // A packet while the peer lookup is pending.
    let mut s = server(ServerKind::Director, Dialect::V13);
    s.input(data("Hello *UserAgent* calling 200 tlspsk=0\n"));
    drain(&mut s);
    s.input(data("too early"));
    assert!(matches!(
        reason(&drain(&mut s)),
        RefusalReason::Malformed(_)
    ));
}

#[test]
fn bad_hellos_per_daemon() {
    struct Case {
        kind: ServerKind,
        hello: Packet,
        sent: Vec<Packet>,
        secs: u64,
        reason: &'static str,
    }
    let term = Packet::Signal(Signal::Terminate);
    let cases = vec![
        Case {
            kind: ServerKind::Director,
            hello: Packet::data("Hello x calling"),
            sent: vec![],
            secs: 5,
            reason: "malformed",
        },
        Case {
            kind: ServerKind::Director,
            hello: Packet::data("Goodbye x calling 200\n"),
            sent: vec![],
            secs: 5,
            reason: "malformed",
        },
        Case {
            kind: ServerKind::Director,
            hello: Packet::data(vec![b'H'; 143]),
            sent: vec![],
            secs: 5,
            reason: "malformed",
        },
        Case {
            kind: ServerKind::FileDaemon,
            hello: Packet::data("JobId=1 Job=a SDid=0 SDtime=0 Authorization=x\n"),
            sent: vec![],
            secs: 5,
            reason: "malformed",
        },
        Case {
            kind: ServerKind::FileDaemon,
            hello: Packet::data("Hello"),
            sent: vec![],
            secs: 5,
            reason: "malformed",
        },
        Case {
            kind: ServerKind::FileDaemon,
            hello: Packet::data("Hello Directo bacula-dir calling 103\n"),
            sent: vec![term.clone()],
            secs: 6,
            reason: "malformed",
        },
        Case {
            kind: ServerKind::FileDaemon,
            hello: Packet::data("Ping"),
            sent: vec![Packet::data(hello::PING_OK)],
            secs: 0,
            reason: "ping",
        },
        Case {
            kind: ServerKind::StorageDirector,
            hello: Packet::data("Hello SD: Bacula Dir x calling 1\n"),
            sent: vec![term.clone()],
            secs: 5,
            reason: "malformed",
        },
        Case {
            kind: ServerKind::Storage,
            hello: Packet::data("Hello Bacula SD: Start Job "),
            sent: vec![],
            secs: 5,
            reason: "malformed",
        },
        Case {
            kind: ServerKind::Storage,
            hello: Packet::data("Hello SD: Bacula Director x"),
            sent: vec![term.clone()],
            secs: 5,
            reason: "malformed",
        },
        Case {
            kind: ServerKind::StorageClient,
            hello: Packet::data("Hello SD: Bacula Director x calling 1\n"),
            sent: vec![],
            secs: 5,
            reason: "malformed",
        },
        Case {
            kind: ServerKind::Director,
            hello: Packet::Signal(Signal::Terminate),
            sent: vec![],
            secs: 5,
            reason: "rejected",
        },
        Case {
            kind: ServerKind::FileDaemon,
            hello: Packet::Signal(Signal::Eod),
            sent: vec![],
            secs: 5,
            reason: "rejected",
        },
    ];
    for c in cases {
        let mut s = server(c.kind, Dialect::V13);
        s.input(Input::Packet(c.hello.clone()));
        let outs = drain(&mut s);
        let r = refusal(&outs).unwrap_or_else(|| panic!("{:?} {:?}: {outs:?}", c.kind, c.hello));
        assert_eq!(
            reason_kind(&r.reason),
            c.reason,
            "{:?} {:?}",
            c.kind,
            c.hello
        );
        assert_eq!(
            r.delay,
            Duration::from_secs(c.secs),
            "{:?} {:?}",
            c.kind,
            c.hello
        );
        assert_eq!(sent(&outs), c.sent, "{:?} {:?}", c.kind, c.hello);
        assert!(s.is_finished());
    }
}

#[test]
fn fd_hands_over_sd_calls_client() {
    let mut s = server(ServerKind::FileDaemon, Dialect::V13);
    let line = Hello::SdCallsClient {
        job: "Job.1".into(),
        sd_version: 30007,
    };
    s.input(data(line.to_bytes()));
    let outs = drain(&mut s);
    assert!(matches!(&outs[..], [Output::Handover(h)] if *h == line));
    assert!(s.is_finished());
    s.input(data("more"));
    assert!(drain(&mut s).is_empty(), "ignored after finishing");
}

#[test]
fn bad_caps_from_client() {
    let mut s = server(ServerKind::StorageClient, Dialect::V13);
    s.input(data("Hello Bacula SD: Start Job Job.1 14 tlspsk=100\n"));
    drain(&mut s);
    s.input(Input::Peer(local(Dialect::V13, needs("NO"), "k", "sd")));
    assert_eq!(
        sent(&drain(&mut s)),
        vec![Packet::data(hello::SDCAPS_COMMUNITY)]
    );
    s.input(data("auth cram-md5 <1.2@fd> ssl=0\n"));
    let outs = drain(&mut s);
    assert!(matches!(reason(&outs), RefusalReason::Malformed(_)));
    assert!(sent(&outs).is_empty());
}

#[test]
fn wrong_state_inputs_fail_cleanly() {
    // Client.
    for input in [
        Input::TlsEstablished,
        Input::UnknownPeer,
        Input::Peer(local(Dialect::V13, needs("NN"), "pw", "x")),
    ] {
        let mut c = client(local(Dialect::V13, needs("NN"), "pw", "d"));
        c.input(input);
        let outs = drain(&mut c);
        assert!(
            matches!(reason(&outs), RefusalReason::InvalidInput(_)),
            "{outs:?}"
        );
        assert!(c.is_finished());
        c.input(Input::TlsEstablished);
        assert!(drain(&mut c).is_empty());
    }
    // Server before the Hello and in the middle of CRAM.
    for input in [
        Input::TlsEstablished,
        Input::UnknownPeer,
        Input::Peer(local(Dialect::V13, needs("NN"), "pw", "x")),
    ] {
        let mut s = server(ServerKind::FileDaemon, Dialect::V13);
        s.input(input);
        assert!(matches!(
            reason(&drain(&mut s)),
            RefusalReason::InvalidInput(_)
        ));
    }
    let mut s = server(ServerKind::FileDaemon, Dialect::V13);
    s.input(data("Hello Director bacula-dir calling 10002 tlspsk=0\n"));
    s.input(Input::Peer(local(Dialect::V13, needs("NN"), "pw", "x")));
    drain(&mut s);
    s.input(Input::UnknownPeer);
    assert!(matches!(
        reason(&drain(&mut s)),
        RefusalReason::InvalidInput(_)
    ));
}

/// Configurations the tamper test runs through.
fn scenarios() -> Vec<(&'static str, Pair)> {
    let mut v = Vec::new();
    v.push((
        "13.x PSK",
        dir_to_fd(
            local(Dialect::V13, needs("NO"), "pw", "dir"),
            local(Dialect::V13, needs("NO"), "pw", "fd"),
        ),
    ));
    v.push((
        "9.6 TLS",
        dir_to_fd(
            local(Dialect::V96, needs_v96(1), "pw", "dir"),
            local(Dialect::V96, needs_v96(1), "pw", "fd"),
        ),
    ));
    let mut a = local(Dialect::V13, needs("OO"), "pw", "dir");
    a.authenticate = true;
    let mut b = local(Dialect::V13, needs("OO"), "pw", "fd");
    b.authenticate = true;
    v.push(("13.x TLS Authenticate", dir_to_fd(a, b)));
    v.push((
        "13.x client, 9.6 server, TLS",
        dir_to_fd(
            local(Dialect::V13, needs("OO"), "pw", "dir"),
            local(Dialect::V96, needs_v96(1), "pw", "fd"),
        ),
    ));
    let sd = |kind, hello: Hello| {
        Pair::new(
            ClientConfig {
                hello,
                local: local(Dialect::V13, needs("NO"), "k", "c"),
            },
            NONCE_C,
            ServerConfig {
                kind,
                name: "srv".into(),
                version: 30007,
                version_text: "v".into(),
                dialect: Dialect::V13,
            },
            NONCE_S,
            Some(local(Dialect::V13, needs("NO"), "k", "s")),
        )
    };
    v.push((
        "FD to SD with caps",
        sd(
            ServerKind::Storage,
            Hello::FdToSd {
                job: "J.1".into(),
                fd_version: 14,
                sd_version: None,
                tlspsk: None,
            },
        ),
    ));
    v.push((
        "fdcallsdir",
        sd(
            ServerKind::Director,
            Hello::FdCallsDir {
                name: "fd".into(),
                version: 1,
                tlspsk: None,
            },
        ),
    ));
    v.push((
        "console",
        sd(
            ServerKind::Director,
            Hello::Console {
                name: "*UserAgent*".into(),
                version: Some(200),
                tlspsk: None,
            },
        ),
    ));
    v
}

#[test]
fn tampering_with_any_packet_fails_the_receiver() {
    let replacements = [
        Packet::Signal(Signal::Terminate),
        Packet::Signal(Signal::Eod),
        Packet::Signal(Signal::Heartbeat),
        Packet::Signal(Signal::Other(-1000)),
        Packet::data(""),
        Packet::data("\u{0}garbage\u{1}\u{2}"),
        Packet::data(vec![b'z'; 600]),
        Packet::data(hello::NOT_AUTHORIZED),
    ];
    for (name, clean) in scenarios() {
        let mut clean = clean;
        clean.run();
        assert!(clean.connected().is_some(), "{name}: clean run logs in");
        let counts = [
            (Who::Client, clean.c.received),
            (Who::Server, clean.s.received),
        ];
        for (who, count) in counts {
            for k in 0..count {
                for r in &replacements {
                    let (_, mut p) = scenarios().into_iter().find(|(n, _)| *n == name).unwrap();
                    p.tamper = Some((who, k, r.clone()));
                    p.run();
                    let side = match who {
                        Who::Client => &p.c,
                        Who::Server => &p.s,
                    };
                    assert!(
                        side.refusal().is_some(),
                        "{name}: {who:?} packet #{k} replaced by {r:?} ended {}",
                        side_kind(side)
                    );
                    if let Packet::Signal(_) = r {
                        assert_eq!(side_kind(side), "rejected", "{name}: {who:?} #{k} {r:?}");
                    }
                }
            }
        }
    }
}

/// A tiny deterministic generator (no external crates, reproducible).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() as usize) % items.len()]
    }
}

#[test]
fn random_inputs_never_panic() {
    let pool: Vec<Packet> = vec![
        Packet::data("Hello Director bacula-dir calling 10002 tlspsk=100\n"),
        Packet::data("Hello *UserAgent* calling 200 tlspsk=202\n"),
        Packet::data("Hello Bacula SD: Start Job J 14 tlspsk=1\n"),
        Packet::data("Hello FD: Bacula Storage calling Start Job J 30007\n"),
        Packet::data("starttls tlspsk=100\n"),
        Packet::data("starttls tlspsk=4294967295\n"),
        Packet::data("auth cram-md5 <1.2@x> ssl=2\n"),
        Packet::data("auth cram-md5c <1.2@x> ssl=99999999999\n"),
        Packet::data(AUTH_OK),
        Packet::data(AUTH_FAILED),
        Packet::data(hello::SDCAPS_COMMUNITY),
        Packet::data(hello::FDCAPS_COMMUNITY),
        Packet::data("2000 OK Hello 14\n"),
        Packet::data("3000 OK Hello\n"),
        Packet::data("1000 OK: 1 d Version: x\n"),
        Packet::data("OK\n"),
        Packet::data("Ping"),
        Packet::data(""),
        Packet::data(vec![0xff; 700]),
        Packet::data("\u{0}"),
        Packet::Signal(Signal::Terminate),
        Packet::Signal(Signal::Other(i32::MIN)),
    ];
    let kinds = [
        ServerKind::Director,
        ServerKind::FileDaemon,
        ServerKind::StorageDirector,
        ServerKind::StorageClient,
        ServerKind::Storage,
    ];
    let hellos = [
        dir_hello(),
        Hello::Console {
            name: "c".into(),
            version: None,
            tlspsk: Some(5),
        },
        Hello::FdCallsDir {
            name: "f".into(),
            version: 1,
            tlspsk: None,
        },
        Hello::FdToSd {
            job: "J".into(),
            fd_version: 14,
            sd_version: Some(1),
            tlspsk: None,
        },
        Hello::SdCallsClient {
            job: "J".into(),
            sd_version: 1,
        },
        Hello::StartJob { job: "J".into() },
    ];
    let mut rng = Lcg(42);
    for round in 0..3000 {
        let dialect = *rng.pick(&[Dialect::V13, Dialect::V96]);
        let code = *rng.pick(&CELLS);
        let mut l = local(dialect, needs(code), "pw", "me");
        l.authenticate = rng.next() & 1 == 0;
        let mut c = ClientHandshake::new(
            ClientConfig {
                hello: rng.pick(&hellos).clone(),
                local: l.clone(),
            },
            NONCE_C,
        );
        let mut s = server(*rng.pick(&kinds), dialect);
        let (mut c_terminal, mut s_terminal) = (0, 0);
        for _ in 0..14 {
            for (m, terminal) in [
                (&mut c as &mut dyn MachineDyn, &mut c_terminal),
                (&mut s as &mut dyn MachineDyn, &mut s_terminal),
            ] {
                let choice = rng.next() % 10;
                let inp = match choice {
                    0 => Input::TlsEstablished,
                    1 => Input::Peer(l.clone()),
                    2 => Input::UnknownPeer,
                    _ => Input::Packet(rng.pick(&pool).clone()),
                };
                m.feed_dyn(inp);
                while let Some(o) = m.poll_dyn() {
                    assert_eq!(*terminal, 0, "round {round}: output {o:?} after the end");
                    if matches!(o, Output::Done(_) | Output::Failed(_) | Output::Handover(_)) {
                        *terminal += 1;
                    }
                    // Nothing printable may reveal the key.
                    let text = format!("{o:?}");
                    assert!(!text.contains(KEY_HEX), "{text}");
                }
            }
        }
    }
}

/// MD5-hex of "pw" (the key the fuzz machines use).
const KEY_HEX: &str = "8fe4c11451281c094a6578e6ddbf5eed";

trait MachineDyn {
    fn feed_dyn(&mut self, input: Input);
    fn poll_dyn(&mut self) -> Option<Output>;
}

impl<T: Machine> MachineDyn for T {
    fn feed_dyn(&mut self, input: Input) {
        self.feed(input)
    }
    fn poll_dyn(&mut self) -> Option<Output> {
        self.poll()
    }
}

#[test]
fn key_constant_matches() {
    assert_eq!(Secret::from_password("pw").expose(), KEY_HEX.as_bytes());
    let l = local(Dialect::V13, needs("NO"), "pw", "me");
    assert!(!format!("{l:?}").contains(KEY_HEX));
    let c = client(l.clone());
    assert!(!format!("{c:?}").contains(KEY_HEX));
    assert!(!format!("{:?}", Input::Peer(l)).contains(KEY_HEX));
}
