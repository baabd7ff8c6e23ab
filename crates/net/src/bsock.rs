//! [`BSock`]: one Bacula connection, framed, clear or TLS, one owner.

use std::net::SocketAddr;
use std::time::Duration;

use baculink_proto::frame::{self, Decoder, Packet, Signal};
use baculink_tls::SessionFacts;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::NetError;
use crate::stream::{Raw, Stream};

/// Packets fed with [`BSock::feed`] are written out once this many bytes are queued.
pub const FEED_LIMIT: usize = 256 * 1024;

/// From this many bytes left in a packet, [`BSock::recv`] reads only up to
/// the packet's end (plus the next header).
const LARGE_PACKET: usize = 4096;

/// The plaintext of a full TLS record (OpenSSL's default fragment size).
const TLS_RECORD: usize = 16 * 1024;

/// A framed Bacula connection. Owns its stream: the only writer.
#[derive(Debug)]
pub struct BSock {
    pub(crate) stream: Stream,
    decoder: Decoder,
    wbuf: BytesMut,
    peer: String,
    peer_addr: Option<SocketAddr>,
    compress: bool,
    last_compressed: bool,
    facts: Option<SessionFacts>,
    terminated: bool,
    /// [`BSock::send`] only queues; see [`BSock::set_corked`].
    corked: bool,
}

impl BSock {
    /// Wraps a connected TCP stream (clear text), with TCP_NODELAY on.
    pub fn new(tcp: TcpStream) -> BSock {
        let _ = tcp.set_nodelay(true);
        let peer_addr = tcp.peer_addr().ok();
        BSock {
            stream: Stream::Clear(Raw::new(tcp)),
            decoder: Decoder::new(),
            wbuf: BytesMut::new(),
            peer: crate::error::describe(peer_addr),
            peer_addr,
            compress: false,
            last_compressed: false,
            facts: None,
            terminated: false,
            corked: false,
        }
    }

    /// Corks a request/response connection (the Director's console side):
    /// [`BSock::send`] and [`BSock::signal`] then only queue, and what is
    /// queued goes out when [`BSock::recv`] is next called, at
    /// [`BSock::flush`] or [`BSock::close`], or as soon as [`FEED_LIMIT`]
    /// bytes are queued. A command's output lines and its end signal thus leave in one
    /// TLS record and one system call instead of one each. `recv` on a
    /// corked socket with output queued is not cancel-safe (it writes first).
    pub fn set_corked(&mut self, on: bool) {
        self.corked = on;
    }

    /// Names the peer in errors and logs (e.g. `Director "bacula-dir" at 127.0.0.1:9101`).
    pub fn set_peer_name(&mut self, name: impl Into<String>) {
        self.peer = name.into();
    }

    /// How errors name the peer.
    pub fn peer_name(&self) -> &str {
        &self.peer
    }

    /// The peer's socket address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer_addr
    }

    /// Turns LZ4 comm-line compression of what we send on or off.
    pub fn set_compression(&mut self, on: bool) {
        self.compress = on;
    }

    /// Whether the last packet sent went out LZ4-compressed (a sender can
    /// stop trying on data that does not compress).
    pub fn last_send_compressed(&self) -> bool {
        self.last_compressed
    }

    /// TLS facts of the session (None in clear text).
    pub fn tls_facts(&self) -> Option<&SessionFacts> {
        self.facts.as_ref()
    }

    pub(crate) fn set_facts(&mut self, facts: Option<SessionFacts>) {
        self.facts = facts;
    }

    /// Whether the connection is inside TLS now.
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// Prepares a logged-in connection for bulk data (file data between the
    /// File and Storage daemons): under TLS, many records are read per
    /// system call, by OpenSSL itself or by the staging buffer below it (see
    /// [`baculink_tls::tune_for_bulk`]). The connection must stay in TLS
    /// until it closes, as data connections do.
    pub fn tune_for_bulk(&mut self) {
        if let Stream::Tls(s) = &mut self.stream {
            let read_ahead = baculink_tls::tune_for_bulk(s);
            s.get_mut().set_bulk_tls(read_ahead);
        }
    }

    /// Whether the peer sent `BNET_TERMINATE`.
    pub fn is_terminated(&self) -> bool {
        self.terminated
    }

    fn io(&self, e: std::io::Error) -> NetError {
        NetError::Io {
            peer: self.peer.clone(),
            source: e,
        }
    }

    /// Receives the next packet (signals included). On a corked socket,
    /// queued output is written first.
    pub async fn recv(&mut self) -> Result<Packet, NetError> {
        if self.corked {
            // Queued output may sit here or, already encrypted, in the
            // stream's buffers below: flush both (nothing is written when
            // nothing is queued).
            self.flush().await?;
        }
        loop {
            match self.decoder.next_packet() {
                Ok(Some(p)) => {
                    if p == Packet::Signal(Signal::Terminate) {
                        self.terminated = true;
                    }
                    return Ok(p);
                }
                Ok(None) => {}
                Err(e) => {
                    self.terminated = true;
                    return Err(NetError::Frame {
                        peer: self.peer.clone(),
                        source: e,
                    });
                }
            }
            // Room for the rest of the current packet in one go (a 64 KiB
            // data packet should not grow the buffer piecemeal).
            // An idle connection waiting for a header holds only 4 KiB.
            let rest = self.decoder.bytes_wanted();
            // Inside a large packet, read no further than its end and the
            // next header: bytes past that would be copied again when the
            // buffer grows for the next packet. Small packets are read as
            // many at a time as have arrived.
            let limit = if rest >= LARGE_PACKET {
                rest + 4
            } else {
                usize::MAX
            };
            let wanted = rest.max(4096).min(limit);
            let buf = self.decoder.buffer_mut();
            if buf.capacity() - buf.len() < wanted {
                buf.reserve(wanted);
            }
            let n = match (&mut self.stream).take(limit as u64).read_buf(buf).await {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                Err(e) => return Err(self.io(e)),
            };
            if n == 0 {
                return Err(NetError::Eof(self.peer.clone()));
            }
        }
    }

    /// Receives with a time limit.
    pub async fn recv_timeout(&mut self, limit: Duration) -> Result<Packet, NetError> {
        match tokio::time::timeout(limit, self.recv()).await {
            Ok(r) => r,
            Err(_) => Err(NetError::Timeout(self.peer.clone())),
        }
    }

    /// Receives the next data packet, skipping heartbeats; a signal other
    /// than a heartbeat is returned as `Ok(None)` along with nothing else.
    pub async fn recv_data(&mut self) -> Result<Result<bytes::Bytes, Signal>, NetError> {
        loop {
            match self.recv().await? {
                Packet::Data(d) => return Ok(Ok(d)),
                Packet::Signal(Signal::Heartbeat | Signal::HbResponse) => continue,
                Packet::Signal(s) => return Ok(Err(s)),
            }
        }
    }

    /// Sends one packet in a single write (one TLS record for the header),
    /// or queues it on a corked socket.
    pub async fn send(&mut self, packet: &Packet) -> Result<(), NetError> {
        self.feed(packet).await?;
        if self.corked {
            return Ok(());
        }
        self.flush().await
    }

    /// Queues one packet without flushing: packets fed back to back go out
    /// in writes of up to [`FEED_LIMIT`] bytes (fewer system calls and
    /// fewer wake-ups of the peer on a bulk stream). [`BSock::flush`] (or
    /// [`BSock::send`]) must follow before waiting for the peer.
    pub async fn feed(&mut self, packet: &Packet) -> Result<(), NetError> {
        if let Packet::Data(p) = packet {
            if !self.compress && p.len() >= 2 * TLS_RECORD && self.is_tls() {
                return self.feed_large_tls(p).await;
            }
        }
        self.last_compressed =
            frame::encode(packet, self.compress, &mut self.wbuf).map_err(|e| NetError::Frame {
                peer: self.peer.clone(),
                source: e,
            })?;
        if self.wbuf.len() >= FEED_LIMIT {
            self.write_pending().await?;
        }
        Ok(())
    }

    /// Feeds a large uncompressed data packet under TLS. OpenSSL copies
    /// what it encrypts into its own record buffer, so whole records go to
    /// it straight from the payload; only the bytes that complete the
    /// record in progress, and the tail that starts the next one, are
    /// copied into our buffer (about a quarter of a 64 KiB packet, instead
    /// of all of it).
    async fn feed_large_tls(&mut self, p: &[u8]) -> Result<(), NetError> {
        frame::encode_data_header(p.len(), &mut self.wbuf).map_err(|e| NetError::Frame {
            peer: self.peer.clone(),
            source: e,
        })?;
        self.last_compressed = false;
        let head = ((TLS_RECORD - self.wbuf.len() % TLS_RECORD) % TLS_RECORD).min(p.len());
        self.wbuf.extend_from_slice(&p[..head]);
        let rest = &p[head..];
        let whole = rest.len() / TLS_RECORD * TLS_RECORD;
        if whole > 0 {
            // Our buffer now ends on a record boundary.
            self.write_pending().await?;
            if let Err(e) = self.stream.write_all(&rest[..whole]).await {
                return Err(self.io(e));
            }
        }
        self.wbuf.extend_from_slice(&rest[whole..]);
        if self.wbuf.len() >= FEED_LIMIT {
            self.write_pending().await?;
        }
        Ok(())
    }

    /// Writes out every packet fed so far.
    pub async fn flush(&mut self) -> Result<(), NetError> {
        self.write_pending().await?;
        self.stream.flush().await.map_err(|e| self.io(e))
    }

    async fn write_pending(&mut self) -> Result<(), NetError> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let r = self.stream.write_all(&self.wbuf).await;
        self.wbuf.clear();
        if self.wbuf.capacity() > 2 * FEED_LIMIT {
            self.wbuf = BytesMut::with_capacity(8 * 1024);
        }
        r.map_err(|e| self.io(e))
    }

    /// Sends a text packet (exactly these bytes, no NUL added).
    pub async fn send_text(&mut self, text: &str) -> Result<(), NetError> {
        self.send(&Packet::data(text.as_bytes())).await
    }

    /// Sends a signal.
    pub async fn signal(&mut self, signal: Signal) -> Result<(), NetError> {
        self.send(&Packet::Signal(signal)).await
    }

    /// Closes cleanly: queued output, TLS close_notify if in TLS, then TCP
    /// shutdown.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let _ = self.write_pending().await;
            self.stream.shutdown().await
        })
        .await;
    }

    /// Takes the clear-text stream for a TLS handshake, with any bytes
    /// already buffered past the last packet put back in front.
    pub(crate) fn take_raw(&mut self) -> Option<Raw> {
        match std::mem::replace(&mut self.stream, Stream::Closed) {
            Stream::Clear(raw) => Some(raw.with_prefix(self.decoder.take_buffered())),
            other => {
                self.stream = other;
                None
            }
        }
    }

    /// Drops TLS without close_notify (TLS Authenticate) and continues on
    /// the raw socket.
    pub(crate) fn drop_tls(&mut self) -> bool {
        match std::mem::replace(&mut self.stream, Stream::Closed) {
            Stream::Tls(mut tls) => match tls.get_mut().take() {
                Some(raw) => {
                    drop(tls);
                    self.stream = Stream::Clear(raw);
                    true
                }
                None => false,
            },
            other => {
                self.stream = other;
                false
            }
        }
    }

    pub(crate) fn set_stream(&mut self, stream: Stream) {
        self.stream = stream;
    }

    /// The TCP socket (for socket options).
    pub fn tcp(&self) -> Option<&TcpStream> {
        self.stream.tcp()
    }
}
