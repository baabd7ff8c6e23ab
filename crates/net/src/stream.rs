//! The byte stream under a [`BSock`](crate::BSock): TCP, possibly wrapped in TLS.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

/// A TCP stream that first replays bytes already read past the last
/// clear-text packet (the start of the peer's TLS handshake), and that can
/// give the socket back when TLS is dropped without close_notify.
#[derive(Debug)]
pub(crate) struct Raw {
    tcp: Option<TcpStream>,
    prefix: BytesMut,
}

impl Raw {
    pub(crate) fn new(tcp: TcpStream) -> Raw {
        Raw {
            tcp: Some(tcp),
            prefix: BytesMut::new(),
        }
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

    /// Takes the socket out (leaves this wrapper closed).
    pub(crate) fn take(&mut self) -> Option<Raw> {
        self.tcp.take().map(|tcp| Raw {
            tcp: Some(tcp),
            prefix: std::mem::take(&mut self.prefix),
        })
    }

    pub(crate) fn tcp(&self) -> Option<&TcpStream> {
        self.tcp.as_ref()
    }

    /// The first byte the peer sends next, without consuming it (waits for it).
    pub(crate) async fn peek_byte(&self) -> io::Result<Option<u8>> {
        if let Some(b) = self.prefix.first() {
            return Ok(Some(*b));
        }
        let Some(tcp) = self.tcp.as_ref() else {
            return Err(Raw::gone());
        };
        let mut b = [0u8; 1];
        let n = tcp.peek(&mut b).await?;
        Ok((n == 1).then_some(b[0]))
    }

    fn gone() -> io::Error {
        io::Error::new(io::ErrorKind::NotConnected, "socket handed over")
    }
}

impl AsyncRead for Raw {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        match self.tcp.as_mut() {
            Some(t) => Pin::new(t).poll_read(cx, buf),
            None => Poll::Ready(Err(Raw::gone())),
        }
    }
}

impl AsyncWrite for Raw {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.tcp.as_mut() {
            Some(t) => Pin::new(t).poll_write(cx, buf),
            None => Poll::Ready(Err(Raw::gone())),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.tcp.as_mut() {
            Some(t) => Pin::new(t).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.tcp.as_mut() {
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
