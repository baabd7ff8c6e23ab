//! The packet decoder (header word, signals, flags word, LZ4) fed arbitrary
//! bytes in arbitrary splits: it must never panic, never allocate beyond the
//! 1,000,000-byte limit per packet, and must decode the same packets whatever
//! the split.
#![no_main]

use baculink_proto::frame::{Decoder, Packet};
use libfuzzer_sys::fuzz_target;

fn decode_all(chunks: &[&[u8]]) -> (Vec<Packet>, bool) {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    for c in chunks {
        d.push(c);
        loop {
            match d.next_packet() {
                Ok(Some(p)) => out.push(p),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    // The first byte picks a chunk size; the rest is the stream.
    let step = (data[0] as usize % 17) + 1;
    let stream = &data[1..];
    let whole = decode_all(&[stream]);
    let pieces: Vec<&[u8]> = stream.chunks(step).collect();
    let split = decode_all(&pieces);
    assert_eq!(whole, split, "decoding depends on how the bytes were split");
});
