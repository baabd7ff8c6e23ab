//! Bacula's packet framing ("bsock"): a big-endian `i32` header word, then the
//! payload. Positive = data length (bit 30: LZ4 block, bit 29: a flags word
//! follows), zero = empty data packet, negative = a signal. protocol.md §1.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Largest payload accepted on the wire (Bacula's receive limit).
pub const MAX_RECV_PAYLOAD: usize = 1_000_000;
/// Largest message Bacula will send (uncompressed length).
pub const MAX_SEND_PAYLOAD: usize = 4_000_000;
/// Largest size an LZ4 packet may expand to.
pub const MAX_DECOMPRESSED: usize = 4 * 1024 * 1024;

const BIT_COMPRESSED: u32 = 0x4000_0000;
const BIT_HDR_EXTEND: u32 = 0x2000_0000;
const FLAG_OFFSET: u32 = 0x0800_0000;

/// The signals of protocol.md §1.2 (negative header values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Signal {
    Eod,
    EodPoll,
    Status,
    Terminate,
    Poll,
    Heartbeat,
    HbResponse,
    ObsoletePrompt,
    Btime,
    Break,
    StartSelect,
    EndSelect,
    InvalidCmd,
    CmdFailed,
    CmdOk,
    CmdBegin,
    MsgsPending,
    MainPrompt,
    SelectInput,
    WarningMsg,
    ErrorMsg,
    InfoMsg,
    RunCmd,
    YesNo,
    StartRtree,
    EndRtree,
    SubPrompt,
    TextInput,
    ExtTerminate,
    FdCalled,
    IsAlive,
    /// Any other negative value (delivered, not an error).
    Other(i32),
}

const SIGNALS: [Signal; 31] = [
    Signal::Eod,
    Signal::EodPoll,
    Signal::Status,
    Signal::Terminate,
    Signal::Poll,
    Signal::Heartbeat,
    Signal::HbResponse,
    Signal::ObsoletePrompt,
    Signal::Btime,
    Signal::Break,
    Signal::StartSelect,
    Signal::EndSelect,
    Signal::InvalidCmd,
    Signal::CmdFailed,
    Signal::CmdOk,
    Signal::CmdBegin,
    Signal::MsgsPending,
    Signal::MainPrompt,
    Signal::SelectInput,
    Signal::WarningMsg,
    Signal::ErrorMsg,
    Signal::InfoMsg,
    Signal::RunCmd,
    Signal::YesNo,
    Signal::StartRtree,
    Signal::EndRtree,
    Signal::SubPrompt,
    Signal::TextInput,
    Signal::ExtTerminate,
    Signal::FdCalled,
    Signal::IsAlive,
];

impl Signal {
    /// The signal for a (negative) header value.
    pub fn from_code(code: i32) -> Signal {
        if (-31..=-1).contains(&code) {
            SIGNALS[(-code - 1) as usize]
        } else {
            Signal::Other(code)
        }
    }

    /// The (negative) header value.
    pub fn code(self) -> i32 {
        match self {
            Signal::Other(c) => c,
            s => -(SIGNALS.iter().position(|x| *x == s).unwrap_or(0) as i32) - 1,
        }
    }

    /// Bacula's name, e.g. `BNET_EOD`.
    pub fn name(self) -> String {
        const NAMES: [&str; 31] = [
            "EOD",
            "EOD_POLL",
            "STATUS",
            "TERMINATE",
            "POLL",
            "HEARTBEAT",
            "HB_RESPONSE",
            "PROMPT",
            "BTIME",
            "BREAK",
            "START_SELECT",
            "END_SELECT",
            "INVALID_CMD",
            "CMD_FAILED",
            "CMD_OK",
            "CMD_BEGIN",
            "MSGS_PENDING",
            "MAIN_PROMPT",
            "SELECT_INPUT",
            "WARNING_MSG",
            "ERROR_MSG",
            "INFO_MSG",
            "RUN_CMD",
            "YESNO",
            "START_RTREE",
            "END_RTREE",
            "SUB_PROMPT",
            "TEXT_INPUT",
            "EXT_TERMINATE",
            "FDCALLED",
            "ISALIVE",
        ];
        match self {
            Signal::Other(c) => format!("BNET_SIGNAL({c})"),
            s => format!("BNET_{}", NAMES[(-s.code() - 1) as usize]),
        }
    }
}

/// One packet: data (possibly empty) or a signal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    /// A data packet; the payload is already decompressed.
    Data(Bytes),
    /// A signal.
    Signal(Signal),
}

impl Packet {
    /// A data packet holding a copy of `bytes`.
    pub fn data(bytes: impl AsRef<[u8]>) -> Packet {
        Packet::Data(Bytes::copy_from_slice(bytes.as_ref()))
    }

    /// The payload if this is a data packet.
    pub fn payload(&self) -> Option<&[u8]> {
        match self {
            Packet::Data(b) => Some(b),
            Packet::Signal(_) => None,
        }
    }

    /// The payload as text, cut at the first NUL (what Bacula's parsers see).
    pub fn text(&self) -> Option<String> {
        self.payload().map(|p| {
            let end = p.iter().position(|&b| b == 0).unwrap_or(p.len());
            String::from_utf8_lossy(&p[..end]).into_owned()
        })
    }

    /// A short description for logs (never the payload: it may hold secrets).
    pub fn describe(&self) -> String {
        match self {
            Packet::Data(b) => format!("{}-byte data packet", b.len()),
            Packet::Signal(s) => s.name(),
        }
    }
}

/// Framing errors. All of them make the connection unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Header announced more than [`MAX_RECV_PAYLOAD`] bytes.
    #[error("packet of {0} bytes exceeds the 1000000-byte limit; terminating connection")]
    TooBig(usize),
    /// An LZ4 block did not decode.
    #[error("corrupt LZ4-compressed packet: {0}")]
    Lz4(String),
    /// The payload to send exceeds [`MAX_SEND_PAYLOAD`].
    #[error("refusing to send a {0}-byte message (limit 4000000)")]
    SendTooBig(usize),
}

/// Incremental decoder: accepts the byte stream in any split.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: BytesMut,
}

impl Decoder {
    /// An empty decoder.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet consumed by a complete packet.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Takes the unconsumed bytes (e.g. the first TLS bytes that followed the
    /// last clear-text packet).
    pub fn take_buffered(&mut self) -> BytesMut {
        std::mem::take(&mut self.buf)
    }

    /// The internal buffer, for drivers that read straight into it.
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// How many more bytes complete the packet at the front of the buffer
    /// (4 while no header is buffered), so a reader can reserve once
    /// instead of growing the buffer piecemeal. Capped at the receive limit.
    pub fn bytes_wanted(&self) -> usize {
        let b = &self.buf;
        if b.len() < 4 {
            return 4 - b.len();
        }
        let h = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        if h <= 0 {
            return 0;
        }
        let word = h as u32;
        let header = if word & BIT_HDR_EXTEND != 0 { 8 } else { 4 };
        let len = ((word & !(BIT_COMPRESSED | BIT_HDR_EXTEND)) as usize).min(MAX_RECV_PAYLOAD);
        (header + len).saturating_sub(b.len())
    }

    /// Decodes the next complete packet, if the buffer holds one.
    pub fn next_packet(&mut self) -> Result<Option<Packet>, FrameError> {
        decode(&mut self.buf)
    }
}

/// Decodes one packet from the front of `buf`, consuming it; `Ok(None)` if
/// more bytes are needed. Never allocates for a header over the limit.
pub fn decode(buf: &mut BytesMut) -> Result<Option<Packet>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let h = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if h < 0 {
        buf.advance(4);
        return Ok(Some(Packet::Signal(Signal::from_code(h))));
    }
    let mut word = h as u32;
    let mut header_len = 4;
    let mut flags = 0u32;
    if word & BIT_HDR_EXTEND != 0 {
        if buf.len() < 8 {
            return Ok(None);
        }
        flags = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        header_len = 8;
        word &= !BIT_HDR_EXTEND;
    }
    let mut compressed = word & BIT_COMPRESSED != 0;
    let len = (word & !BIT_COMPRESSED) as usize;
    if len > MAX_RECV_PAYLOAD {
        return Err(FrameError::TooBig(len));
    }
    if buf.len() < header_len + len {
        buf.reserve(header_len + len - buf.len());
        return Ok(None);
    }
    buf.advance(header_len);
    let payload = buf.split_to(len).freeze();
    if flags & FLAG_OFFSET != 0 {
        // Enterprise "offset" compression: an uncompressed prefix, then LZ4.
        let offset = (flags & 0xff) as usize;
        if offset > payload.len() {
            return Err(FrameError::Lz4(format!(
                "offset {offset} beyond a {len}-byte payload"
            )));
        }
        let mut out = BytesMut::from(&payload[..offset]);
        out.extend_from_slice(&lz4_decode(&payload[offset..])?);
        return Ok(Some(Packet::Data(out.freeze())));
    }
    if compressed && len == 0 {
        compressed = false;
    }
    if compressed {
        return Ok(Some(Packet::Data(Bytes::from(lz4_decode(&payload)?))));
    }
    Ok(Some(Packet::Data(payload)))
}

fn lz4_decode(block: &[u8]) -> Result<Vec<u8>, FrameError> {
    // The uncompressed size is not transmitted: grow the output like Bacula,
    // up to the 4 MiB bound.
    let mut cap = (block.len() * 4).clamp(64 * 1024, MAX_DECOMPRESSED);
    loop {
        match lz4_flex::block::decompress(block, cap) {
            Ok(v) => return Ok(v),
            Err(e) if cap < MAX_DECOMPRESSED => {
                let _ = e;
                cap = (cap * 4).min(MAX_DECOMPRESSED);
            }
            Err(e) => return Err(FrameError::Lz4(e.to_string())),
        }
    }
}

/// Appends the wire form of a signal.
pub fn encode_signal(signal: Signal, out: &mut BytesMut) {
    out.put_i32(signal.code());
}

/// Appends the wire form of a data packet; with `compress`, uses an LZ4 block
/// when that saves at least 10 bytes on a payload over 20 bytes (Bacula's rule).
/// Returns whether the packet went out compressed.
pub fn encode_data(payload: &[u8], compress: bool, out: &mut BytesMut) -> Result<bool, FrameError> {
    if payload.len() > MAX_SEND_PAYLOAD {
        return Err(FrameError::SendTooBig(payload.len()));
    }
    if compress && payload.len() > 20 {
        let block = lz4_flex::block::compress(payload);
        if block.len() + 10 <= payload.len() {
            out.reserve(4 + block.len());
            out.put_u32(block.len() as u32 | BIT_COMPRESSED);
            out.extend_from_slice(&block);
            return Ok(true);
        }
    }
    out.reserve(4 + payload.len());
    encode_data_header(payload.len(), out)?;
    out.extend_from_slice(payload);
    Ok(false)
}

/// Appends only the header of an uncompressed data packet of `len` bytes;
/// the payload must follow on the wire (a sender that writes the payload
/// from its own buffer).
pub fn encode_data_header(len: usize, out: &mut BytesMut) -> Result<(), FrameError> {
    if len > MAX_RECV_PAYLOAD {
        // Bacula peers refuse more than 1000000 bytes on receive.
        return Err(FrameError::SendTooBig(len));
    }
    out.put_u32(len as u32);
    Ok(())
}

/// Appends the wire form of any packet; returns whether it was compressed.
pub fn encode(packet: &Packet, compress: bool, out: &mut BytesMut) -> Result<bool, FrameError> {
    match packet {
        Packet::Data(p) => encode_data(p, compress, out),
        Packet::Signal(s) => {
            encode_signal(*s, out);
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(p: &Packet, compress: bool) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(p, compress, &mut out).unwrap();
        out.to_vec()
    }

    #[test]
    fn signal_codes_round_trip() {
        for code in -40..0 {
            assert_eq!(Signal::from_code(code).code(), code);
        }
        assert_eq!(Signal::from_code(-1), Signal::Eod);
        assert_eq!(Signal::from_code(-4), Signal::Terminate);
        assert_eq!(Signal::from_code(-31), Signal::IsAlive);
        assert_eq!(Signal::Eod.name(), "BNET_EOD");
        assert_eq!(Signal::IsAlive.name(), "BNET_ISALIVE");
        assert_eq!(
            wire(&Packet::Signal(Signal::Eod), false),
            [0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(
            wire(&Packet::Signal(Signal::Terminate), false),
            [0xff, 0xff, 0xff, 0xfc]
        );
        assert_eq!(
            wire(&Packet::Signal(Signal::IsAlive), false),
            [0xff, 0xff, 0xff, 0xe1]
        );
    }

    #[test]
    fn appendix_b_bytes() {
        let hello = Packet::data("Hello Director bacula-dir calling 103\n");
        let w = wire(&hello, false);
        assert_eq!(&w[..4], [0, 0, 0, 0x26]);
        let verdict = wire(&Packet::data("1000 OK auth\n"), false);
        assert_eq!(&verdict[..4], [0, 0, 0, 0x0d]);
    }

    #[test]
    fn one_byte_at_a_time() {
        let packets = vec![
            Packet::data("Hello *UserAgent* calling 200 tlspsk=100\n"),
            Packet::Signal(Signal::Eod),
            Packet::data(""),
            Packet::data(vec![b'x'; 70_000]),
            Packet::data("sdcaps: dedup=0 hash=1 dedup_block=65536 min_dedup_block=1024 max_dedup_block=66556\n".repeat(3)),
            Packet::Signal(Signal::Other(-99)),
        ];
        let mut stream = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            stream.extend(wire(p, i % 2 == 0));
        }
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for b in &stream {
            d.push(std::slice::from_ref(b));
            while let Some(p) = d.next_packet().unwrap() {
                got.push(p);
            }
        }
        assert_eq!(got, packets);
        assert!(d.buffered().is_empty());
        let mut d = Decoder::new();
        assert_eq!(d.bytes_wanted(), 4);
        d.push(&wire(&Packet::data(vec![1u8; 100]), false)[..10]);
        assert_eq!(d.bytes_wanted(), 94);
    }

    #[test]
    fn compression_rule() {
        let text = "a".repeat(200);
        let w = wire(&Packet::data(&text), true);
        let h = u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
        assert_ne!(h & BIT_COMPRESSED, 0, "compressible payload is compressed");
        let short = wire(&Packet::data("short text"), true);
        assert_eq!(short.len(), 4 + 10, "20 bytes or less stay clear");
        let mut buf = BytesMut::from(&w[..]);
        assert_eq!(decode(&mut buf).unwrap(), Some(Packet::data(&text)));
    }

    #[test]
    fn encode_tells_whether_it_compressed() {
        let mut out = BytesMut::new();
        assert_eq!(
            encode_data("a".repeat(200).as_bytes(), true, &mut out),
            Ok(true)
        );
        // Bytes with no repeats: LZ4 cannot shrink them.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        out.clear();
        assert_eq!(encode_data(&noise, true, &mut out), Ok(false));
        assert_eq!(out.len(), 4 + noise.len());
        out.clear();
        assert_eq!(
            encode_data("a".repeat(200).as_bytes(), false, &mut out),
            Ok(false)
        );
        out.clear();
        assert_eq!(
            encode(&Packet::Signal(Signal::Eod), true, &mut out),
            Ok(false)
        );
    }

    #[test]
    fn oversize_header_refused_without_allocating() {
        // 0x7fffffff: bits 29 and 30 set, so a flags word follows first.
        let mut buf = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
        assert_eq!(decode(&mut buf), Ok(None));
        buf.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(decode(&mut buf), Err(FrameError::TooBig(0x1fff_ffff)));
        let mut buf = BytesMut::from(&[0x5f, 0xff, 0xff, 0xff][..]);
        assert_eq!(decode(&mut buf), Err(FrameError::TooBig(0x1fff_ffff)));
        assert!(buf.capacity() < 1024);
        let mut buf = BytesMut::from(&1_000_001u32.to_be_bytes()[..]);
        assert_eq!(decode(&mut buf), Err(FrameError::TooBig(1_000_001)));
        let mut buf = BytesMut::from(&1_000_000u32.to_be_bytes()[..]);
        assert_eq!(decode(&mut buf), Ok(None));
    }

    #[test]
    fn extended_header_is_skipped() {
        let mut b = BytesMut::new();
        b.put_u32(5 | BIT_HDR_EXTEND);
        b.put_u32(0x1000_0000);
        b.extend_from_slice(b"hello");
        assert_eq!(decode(&mut b).unwrap(), Some(Packet::data("hello")));
    }

    #[test]
    fn corrupt_lz4_is_an_error() {
        let mut b = BytesMut::new();
        b.put_u32(3 | BIT_COMPRESSED);
        b.extend_from_slice(&[0xff, 0xff, 0xff]);
        assert!(matches!(decode(&mut b), Err(FrameError::Lz4(_))));
    }

    #[test]
    fn send_limit() {
        let big = vec![0u8; MAX_SEND_PAYLOAD + 1];
        let mut out = BytesMut::new();
        assert_eq!(
            encode_data(&big, true, &mut out),
            Err(FrameError::SendTooBig(MAX_SEND_PAYLOAD + 1))
        );
    }
}
