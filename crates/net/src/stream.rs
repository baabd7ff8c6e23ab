//! The byte stream under a [`BSock`](crate::BSock): TCP, possibly wrapped in TLS.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

/// Bytes read from the socket at a time; OpenSSL's small reads (a 5-byte
/// record header, then the record) are served from this buffer.
const READ_CHUNK: usize = 64 * 1024;
/// The staging size on a bulk TLS session where OpenSSL does not read ahead
/// itself (`baculink_tls::tune_for_bulk`): sixteen full records per system
/// call. In alternated pairs (bench/bulk.sh's connection, OpenSSL 3.0) this
/// spent a median 0.72 s of CPU per GB against 0.79 with 128 KiB.
const BULK_TLS_READ_CHUNK: usize = 256 * 1024;
/// Writes are coalesced up to this size (OpenSSL writes one record of at
/// most 16 KiB at a time; the packets a sender feeds in one go, up to
/// `bsock::FEED_LIMIT`, should still be one system call).
const WRITE_CHUNK: usize = 256 * 1024;
/// The coalescing size on a bulk TLS session. Encrypted records are copied
/// here anyway, and smaller system calls let the receiver start decrypting
/// sooner: over loopback, one TLS 1.3 connection moved 10-20 % more with
/// 64 KiB than with 256 KiB writes (bench/bulk.sh, both OpenSSL builds),
/// while clear data keeps the larger writes.
const BULK_TLS_WRITE_CHUNK: usize = 64 * 1024;

/// A TCP stream that first replays bytes already read past the last
/// clear-text packet (the start of the peer's TLS handshake), and that can
/// give the socket back when TLS is dropped without close_notify.
///
/// It reads ahead in large chunks and coalesces writes until a flush. Read
/// ahead stays safe for TLS Authenticate: unread bytes live here, not in
/// OpenSSL, and go with the socket when TLS is dropped. The read buffer is
/// released whenever the socket has nothing to read, so idle connections
/// hold no buffer.
#[derive(Debug)]
pub(crate) struct Raw {
    tcp: Option<TcpStream>,
    prefix: BytesMut,
    wbuf: Vec<u8>,
    /// Reads go straight to the socket: OpenSSL reads ahead by itself on a
    /// bulk session (`BSock::tune_for_bulk`), staging would only copy.
    direct_reads: bool,
    /// Bytes staged per system call: [`READ_CHUNK`], or
    /// [`BULK_TLS_READ_CHUNK`] under a bulk TLS session.
    read_chunk: usize,
    /// Writes are coalesced up to this size: [`WRITE_CHUNK`], or
    /// [`BULK_TLS_WRITE_CHUNK`] under a bulk TLS session.
    write_chunk: usize,
}

impl Raw {
    pub(crate) fn new(tcp: TcpStream) -> Raw {
        Raw {
            tcp: Some(tcp),
            prefix: BytesMut::new(),
            wbuf: Vec::new(),
            direct_reads: false,
            read_chunk: READ_CHUNK,
            write_chunk: WRITE_CHUNK,
        }
    }

    /// Writes out the coalesced bytes.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(tcp) = self.tcp.as_mut() else {
            return Poll::Ready(Err(Raw::gone()));
        };
        let mut done = 0;
        while done < self.wbuf.len() {
            match Pin::new(&mut *tcp).poll_write(cx, &self.wbuf[done..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "socket closed",
                    )))
                }
                Poll::Ready(Ok(n)) => done += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.wbuf.drain(..done);
                    return Poll::Pending;
                }
            }
        }
        self.wbuf.clear();
        if self.wbuf.capacity() > 2 * self.write_chunk {
            self.wbuf = Vec::new();
        }
        Poll::Ready(Ok(()))
    }

    pub(crate) fn with_prefix(mut self, prefix: BytesMut) -> Raw {
        if self.prefix.is_empty() {
            self.prefix = prefix;
        } else {
            let mut p = prefix;
            p.extend_from_slice(&self.prefix);
            self.prefix = p;
        }
        self
    }

    /// Takes the socket out (leaves this wrapper closed), with the bytes
    /// read ahead but not yet consumed. Unflushed writes are dropped: the
    /// protocol only drops TLS at quiet points, after a flush.
    pub(crate) fn take(&mut self) -> Option<Raw> {
        self.tcp.take().map(|tcp| Raw {
            prefix: std::mem::take(&mut self.prefix),
            wbuf: std::mem::take(&mut self.wbuf),
            ..Raw::new(tcp)
        })
    }

    pub(crate) fn tcp(&self) -> Option<&TcpStream> {
        self.tcp.as_ref()
    }

    /// Under a bulk TLS session: stops staging reads if OpenSSL reads ahead
    /// (see `direct_reads`), stages [`BULK_TLS_READ_CHUNK`]s otherwise, and
    /// writes in [`BULK_TLS_WRITE_CHUNK`]s.
    pub(crate) fn set_bulk_tls(&mut self, openssl_reads_ahead: bool) {
        self.direct_reads = openssl_reads_ahead;
        self.read_chunk = BULK_TLS_READ_CHUNK;
        self.write_chunk = BULK_TLS_WRITE_CHUNK;
    }

    /// The first byte the peer sends next, without consuming it (waits for it).
    /// It is read into the staging buffer with what follows (one system call,
    /// which the TLS handshake would make anyway), not peeked.
    pub(crate) async fn peek_byte(&mut self) -> io::Result<Option<u8>> {
        if self.prefix.is_empty() {
            let Some(tcp) = self.tcp.as_mut() else {
                return Err(Raw::gone());
            };
            self.prefix.reserve(self.read_chunk);
            tcp.read_buf(&mut self.prefix).await?;
        }
        Ok(self.prefix.first().copied())
    }

    fn gone() -> io::Error {
        io::Error::new(io::ErrorKind::NotConnected, "socket handed over")
    }
}

impl AsyncRead for Raw {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if me.prefix.is_empty() {
            let Some(tcp) = me.tcp.as_mut() else {
                return Poll::Ready(Err(Raw::gone()));
            };
            if me.direct_reads || buf.remaining() >= me.read_chunk {
                // A large read needs no staging.
                return Pin::new(tcp).poll_read(cx, buf);
            }
            me.prefix.reserve(me.read_chunk);
            match tokio_util::io::poll_read_buf(Pin::new(tcp), cx, &mut me.prefix) {
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    // Idle: hold no buffer while waiting.
                    me.prefix = BytesMut::new();
                    return Poll::Pending;
                }
            }
        }
        let n = me.prefix.len().min(buf.remaining());
        buf.put_slice(&me.prefix[..n]);
        me.prefix.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Raw {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        if me.tcp.is_none() {
            return Poll::Ready(Err(Raw::gone()));
        }
        let chunk = me.write_chunk;
        if me.wbuf.len() >= chunk {
            match me.poll_drain(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other.map(|r| r.map(|_| 0)),
            }
        }
        if me.wbuf.is_empty() && buf.len() >= chunk {
            // Nothing pending and a large write: straight to the socket.
            if let Some(t) = me.tcp.as_mut() {
                return Pin::new(t).poll_write(cx, buf);
            }
        }
        let n = buf.len().min(chunk.saturating_sub(me.wbuf.len()).max(1));
        me.wbuf.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if me.tcp.is_none() {
            return Poll::Ready(Ok(()));
        }
        match me.poll_drain(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        match me.tcp.as_mut() {
            Some(t) => Pin::new(t).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if me.tcp.is_none() {
            return Poll::Ready(Ok(()));
        }
        match me.poll_drain(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        match me.tcp.as_mut() {
            Some(t) => Pin::new(t).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

/// Clear or TLS.
#[derive(Debug)]
pub(crate) enum Stream {
    Clear(Raw),
    Tls(Box<SslStream<Raw>>),
    /// Transient state while switching.
    Closed,
}

impl Stream {
    pub(crate) fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Clear(r) => r.tcp(),
            Stream::Tls(s) => s.get_ref().tcp(),
            Stream::Closed => None,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Clear(r) => Pin::new(r).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Closed => Poll::Ready(Err(Raw::gone())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Clear(r) => Pin::new(r).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Closed => Poll::Ready(Err(Raw::gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Clear(r) => Pin::new(r).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Closed => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Clear(r) => Pin::new(r).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Closed => Poll::Ready(Ok(())),
        }
    }
}
