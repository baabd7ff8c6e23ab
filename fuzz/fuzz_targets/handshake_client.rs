//! The auth-client machine (every pairing's Hello) fed hostile server packets.
#![no_main]

use baculink_proto::frame::Decoder;
use baculink_proto::handshake::{ClientConfig, ClientHandshake, Input, Local, Nonce, Output};
use baculink_proto::hello::Hello;
use baculink_proto::negotiate::{Dialect, Need, Needs};
use baculink_proto::Secret;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let hello = match data[0] % 4 {
        0 => Hello::Console { name: "*UserAgent*".into(), version: Some(200), tlspsk: None },
        1 => Hello::Director { name: "fuzz-dir".into(), version: Some(10002), tlspsk: None },
        2 => Hello::DirectorToSd { name: "fuzz-dir".into(), version: Some(10002), tlspsk: None },
        _ => Hello::FdToSd { job: "Job.2026-11-29_00.00.00_01".into(), fd_version: 14, sd_version: None, tlspsk: None },
    };
    let level = |b: u8| [Need::None, Need::Ok, Need::Required][b as usize % 3];
    let mut hs = ClientHandshake::new(
        ClientConfig {
            hello,
            local: Local {
                key: Secret::from_password("fuzz"),
                needs: Needs::new(level(data[1]), level(data[1] / 3)),
                authenticate: data[1] & 0x40 != 0,
                dialect: if data[1] & 0x80 != 0 { Dialect::V96 } else { Dialect::V13 },
                name: "fuzz-client".into(),
            },
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
            Some(Output::StartTls(_)) => hs.input(Input::TlsEstablished),
            Some(Output::Done(_)) | Some(Output::Failed(_)) => {
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
