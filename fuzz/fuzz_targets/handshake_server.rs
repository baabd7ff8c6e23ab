//! The auth-server machines of every daemon kind fed a hostile packet stream
//! (decoded from the fuzz input): they must end in `Failed` or `Done`, never
//! panic, never emit output after finishing, and never loop forever.
#![no_main]

use baculink_proto::frame::Decoder;
use baculink_proto::handshake::{Input, Local, Nonce, Output, ServerConfig, ServerHandshake, ServerKind};
use baculink_proto::negotiate::{Dialect, Need, Needs};
use baculink_proto::Secret;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let kind = [ServerKind::Director, ServerKind::FileDaemon, ServerKind::StorageDirector, ServerKind::StorageClient, ServerKind::Storage][data[0] as usize % 5];
    let level = |b: u8| [Need::None, Need::Ok, Need::Required][b as usize % 3];
    let needs = Needs::new(level(data[1]), level(data[1] / 3));
    let mut hs = ServerHandshake::new(
        ServerConfig {
            kind,
            name: "fuzz-daemon".into(),
            version: 14,
            version_text: "0 (fuzz)".into(),
            dialect: if data[1] & 0x80 != 0 { Dialect::V96 } else { Dialect::V13 },
        },
        Nonce { random: 1, time: 2 },
    );
    let mut dec = Decoder::new();
    dec.push(&data[2..]);
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(steps < 10_000, "machine does not terminate");
        match hs.poll_output() {
            Some(Output::LookupPeer(_)) => hs.input(Input::Peer(Local {
                key: Secret::from_password("fuzz"),
                needs,
                authenticate: data[1] & 0x40 != 0,
                dialect: Dialect::V13,
                name: "fuzz-daemon".into(),
            })),
            Some(Output::StartTls(_)) => hs.input(Input::TlsEstablished),
            Some(Output::Done(_)) | Some(Output::Failed(_)) | Some(Output::Handover(_)) => {
                assert!(hs.is_finished());
                break;
            }
            Some(_) => {}
            None => match dec.next_packet() {
                Ok(Some(p)) => hs.input(Input::Packet(p)),
                _ => break,
            },
        }
    }
});
