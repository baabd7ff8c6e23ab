//! Replays the fuzz seeds and every input a fuzzer ever flagged
//! (`fuzz/seeds`, `fuzz/regressions`) through the parsers and machines, so a
//! fixed crash stays fixed in the ordinary test run.

use std::path::{Path, PathBuf};

use baculink_proto::frame::{Decoder, Packet};
use baculink_proto::handshake::{
    Input, Local, Nonce, Output, ServerConfig, ServerHandshake, ServerKind,
};
use baculink_proto::negotiate::{Dialect, Needs};
use baculink_proto::{cram, hello, Secret};

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut out = Vec::new();
    for kind in ["seeds", "regressions"] {
        let Ok(dir) = std::fs::read_dir(root.join(kind).join(target)) else {
            continue;
        };
        for e in dir.flatten() {
            out.push((e.path(), std::fs::read(e.path()).unwrap()));
        }
    }
    out
}

#[test]
fn frame_inputs_decode_the_same_in_any_split() {
    let all = inputs("frame_decode");
    assert!(!all.is_empty(), "no seeds found");
    for (path, data) in all {
        let stream = &data[1..];
        let decode = |step: usize| {
            let mut d = Decoder::new();
            let mut got: Vec<Packet> = Vec::new();
            for c in stream.chunks(step) {
                d.push(c);
                while let Ok(Some(p)) = d.next_packet() {
                    got.push(p);
                }
            }
            got
        };
        assert_eq!(decode(stream.len().max(1)), decode(1), "{}", path.display());
    }
}

#[test]
fn line_inputs_never_panic_and_round_trip() {
    let all = inputs("line_parsers");
    assert!(!all.is_empty(), "no seeds found");
    for (path, data) in all {
        for dialect in [Dialect::V96, Dialect::V13] {
            for parse in [
                hello::parse_for_director_as,
                hello::parse_for_fd_as,
                hello::parse_for_sd_as,
            ] {
                if let Ok(h) = parse(&data, dialect) {
                    match parse(&h.to_bytes(), dialect) {
                        Ok(again) => assert_eq!(again, h, "{}", path.display()),
                        Err(
                            hello::HelloError::TooShort { .. } | hello::HelloError::TooLong { .. },
                        ) => {}
                        Err(e) => panic!("{}: {e}", path.display()),
                    }
                }
            }
        }
        let _ = hello::parse_starttls(&data);
        let _ = cram::parse_challenge(&data);
    }
}

#[test]
fn server_machine_inputs_terminate() {
    for (path, data) in inputs("handshake_server") {
        let mut hs = ServerHandshake::new(
            ServerConfig {
                kind: [
                    ServerKind::Director,
                    ServerKind::FileDaemon,
                    ServerKind::StorageDirector,
                ][data[0] as usize % 3],
                name: "fuzz-daemon".into(),
                version: 14,
                version_text: "0".into(),
                dialect: Dialect::V13,
            },
            Nonce { random: 1, time: 2 },
        );
        let mut dec = Decoder::new();
        dec.push(&data[2..]);
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps < 10_000, "{}: no termination", path.display());
            match hs.poll_output() {
                Some(Output::LookupPeer(_)) => hs.input(Input::Peer(Local {
                    key: Secret::from_password("fuzz"),
                    needs: Needs::NONE,
                    authenticate: false,
                    dialect: Dialect::V13,
                    name: "fuzz-daemon".into(),
                })),
                Some(Output::StartTls(_)) => hs.input(Input::TlsEstablished),
                Some(Output::Done(_) | Output::Failed(_) | Output::Handover(_)) => break,
                Some(_) => {}
                None => match dec.next_packet() {
                    Ok(Some(p)) => hs.input(Input::Packet(p)),
                    _ => break,
                },
            }
        }
    }
}
