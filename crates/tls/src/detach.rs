//! Dropping TLS without close_notify and carrying on in clear on the same socket, as
//! Bacula's "TLS Authenticate" and the fdcallsdir hand-over require (protocol.md §5.8).
//!
//! `tokio_openssl::SslStream` has no `into_inner`, so the raw stream is wrapped in
//! [`Detachable`] before the handshake; [`detach`] takes it back out. Our contexts keep
//! OpenSSL's read-ahead off, so the TLS engine never holds bytes beyond the record it
//! was asked to read, and our servers send no TLS 1.3 session tickets. The caller must
//! drop TLS only at the protocol's quiet points (after the last TLS write was flushed,
//! and after reading the peer's last TLS packet).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_openssl::SslStream;

use crate::error::TlsError;

/// A stream that can be taken out from under a TLS session.
#[derive(Debug)]
pub struct Detachable<S> {
    inner: Option<S>,
}

impl<S> Detachable<S> {
    /// Wraps a raw stream.
    pub fn new(inner: S) -> Self {
        Detachable { inner: Some(inner) }
    }

    /// The raw stream, unless it was taken.
    pub fn get_ref(&self) -> Option<&S> {
        self.inner.as_ref()
    }

    /// Takes the raw stream out; later I/O through the wrapper fails with `NotConnected`.
    pub fn take(&mut self) -> Option<S> {
        self.inner.take()
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "stream was detached from TLS")
}

impl<S: AsyncRead + Unpin> AsyncRead for Detachable<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().inner.as_mut() {
            Some(s) => Pin::new(s).poll_read(cx, buf),
            None => Poll::Ready(Err(gone())),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Detachable<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().inner.as_mut() {
            Some(s) => Pin::new(s).poll_write(cx, buf),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().inner.as_mut() {
            Some(s) => Pin::new(s).poll_flush(cx),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().inner.as_mut() {
            Some(s) => Pin::new(s).poll_shutdown(cx),
            None => Poll::Ready(Err(gone())),
        }
    }
}

/// Abandons the TLS session (no close_notify) and returns the raw stream.
///
/// Fails if OpenSSL still buffers decrypted application data the caller has not read:
/// those bytes would otherwise be lost silently.
pub fn detach<S>(mut tls: SslStream<Detachable<S>>) -> Result<S, TlsError> {
    let pending = tls.ssl().pending();
    if pending > 0 {
        return Err(TlsError::Detach(pending));
    }
    tls.get_mut().take().ok_or_else(|| TlsError::Io(gone()))
}
