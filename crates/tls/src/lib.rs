//! Bacula TLS on OpenSSL: certificate contexts and TLS-PSK contexts, async handshakes
//! with Bacula's peer checks, session facts, dropping TLS for "TLS Authenticate", and a
//! small certificate generator.
//!
//! The wire rules are in protocol.md §6 (certificates) and §7 (PSK). Our choices differ
//! from Bacula's only where that makes us stricter without breaking interoperability:
//! TLS 1.2 minimum, forward-secret AEAD suites only for certificates, DH ≥ 2048 bits,
//! no TLS 1.3 session tickets from our servers.
//!
//! Use:
//! * certificates: build a [`CertContext`] once per resource, then [`connect_cert`] /
//!   [`accept_cert`] per connection. `allowed_cn` is enforced whenever it is non-empty;
//!   the caller passes an empty list where Bacula would not enforce it (13.x servers).
//!   On the client side a non-empty list replaces the host-name check (9.6 rule).
//! * PSK: [`connect_psk`] / [`accept_psk`] with the CRAM-MD5 key and the shared default
//!   contexts, or [`PskContext::for_settings`] (cached per [`PskPolicy`]) and its
//!   `connect` / `accept` to honour a resource's `TLS Protocol` and `TLS Cipher Suites`.
//! * Policy directives (`TLS Protocol`, `TLS Cipher List`, `TLS Cipher Suites`, `TLS
//!   Certificate Revocation List`, `TLS Key Passphrase File`) are applied by
//!   [`CertContext::new`] and [`PskContext::for_settings`], which refuse weak or unusable
//!   settings ([`policy`]); `FIPS Require` is [`fips::require`], once per process.
//! * TLS only for the login: wrap the socket in [`Detachable`] before the handshake,
//!   [`detach()`] at the quiet point; as a 9.6 client use [`ConnectOptions::tls12_only`].
//! * After the handshake: [`SessionFacts::from_ssl`] for status output.
//! * Record cipher: on OpenSSL before 3.2, our contexts take AES-GCM from AWS-LC through
//!   a built-in provider ([`gcm`]); [`engine`] names what serves TLS.

pub mod bulk;
pub mod cert;
pub mod certgen;
pub mod detach;
pub mod error;
pub mod facts;
pub mod fips;
pub mod gcm;
pub mod names;
pub mod policy;
pub mod psk;

pub use bulk::tune_for_bulk;
pub use cert::{
    accept_cert, connect_cert, connect_cert_with, CertContext, ConnectOptions, CERT_CIPHERSUITES,
    CERT_CIPHER_LIST, MIN_DH_BITS,
};
pub use detach::{detach, Detachable};
pub use error::TlsError;
pub use facts::SessionFacts;
pub use policy::{weak_suites, WeakSuite};
pub use psk::{
    accept_psk, connect_psk, PskContext, PskPolicy, PSK_CIPHERSUITES, PSK_CIPHER_LIST, PSK_IDENTITY,
};
pub use tokio_openssl::SslStream;

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::Poll;

use openssl::ssl::{ErrorCode, SslCipherRef, SslContextRef};
use tokio::io::{AsyncRead, AsyncWrite};

/// The OpenSSL this process runs on, e.g. "OpenSSL 3.0.19 27 Jan 2026": the
/// system's shared library, or the static one of the `vendored-openssl`
/// feature. Speed and key exchange depend on it, so logs and benches say it.
pub fn openssl_version() -> &'static str {
    openssl::version::version()
}

/// What serves TLS in this process, for `--version`, daemon start lines and
/// benches: the OpenSSL, plus our AES-GCM provider where it serves records
/// ([`gcm`]).
pub fn engine() -> String {
    if gcm::active() {
        format!("{}; AES-GCM from AWS-LC", openssl_version())
    } else {
        openssl_version().to_string()
    }
}

/// Which end of a handshake [`handshake`] drives.
#[derive(Clone, Copy)]
pub(crate) enum End {
    Client,
    Server,
}

/// Runs a TLS handshake to its end.
///
/// OpenSSL flushes its write BIO inside the handshake, and the `openssl`
/// crate does not mark a flush that would block as retryable: OpenSSL then
/// reports `SSL_ERROR_SYSCALL` carrying "operation would block" instead of
/// "want write", and `tokio_openssl` ends the handshake with it. A buffering
/// stream's flush is pending whenever the socket is full or the task's
/// cooperative budget is spent, so that would fail a sound handshake at
/// random. Such a flush left the handshake resumable (OpenSSL treats it as
/// work still to do) and registered our waker, so it is waited for here.
pub(crate) async fn handshake<S>(s: &mut SslStream<S>, end: End) -> Result<(), openssl::ssl::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    poll_fn(|cx| {
        let step = match end {
            End::Client => Pin::new(&mut *s).poll_connect(cx),
            End::Server => Pin::new(&mut *s).poll_accept(cx),
        };
        match step {
            Poll::Ready(Err(e)) if flush_would_block(&e) => Poll::Pending,
            other => other,
        }
    })
    .await
}

/// A "system call" failure that is only our own stream saying "not yet".
fn flush_would_block(e: &openssl::ssl::Error) -> bool {
    e.code() == ErrorCode::SYSCALL
        && e.ssl_error().is_none()
        && e.io_error()
            .is_some_and(|io| io.kind() == io::ErrorKind::WouldBlock)
}

/// A failed handshake that is neither a verification nor a PSK-key problem.
pub(crate) fn handshake_error(e: openssl::ssl::Error) -> TlsError {
    if let Some(stack) = e.ssl_error() {
        let r = error::reasons(stack);
        if r.contains("unexpected eof") {
            return TlsError::Handshake(
                "the peer closed the connection during the handshake".into(),
            );
        }
        return TlsError::Handshake(r);
    }
    if e.code() == ErrorCode::SYSCALL || e.code() == ErrorCode::ZERO_RETURN {
        return match e.into_io_error() {
            Ok(io) => TlsError::Io(io),
            Err(_) => {
                TlsError::Handshake("the peer closed the connection during the handshake".into())
            }
        };
    }
    match e.into_io_error() {
        Ok(io) => TlsError::Io(io),
        Err(e) => TlsError::Handshake(e.to_string()),
    }
}

mod ffi_ext {
    use openssl_sys::{OPENSSL_STACK, SSL_CTX};
    extern "C" {
        pub fn SSL_CTX_get_ciphers(ctx: *const SSL_CTX) -> *mut OPENSSL_STACK;
    }
}

/// The names of every suite a context may negotiate (TLS 1.3 suites first), in order.
/// Used by tests and diagnostics to prove no weak suite is enabled.
pub fn cipher_names(ctx: &SslContextRef) -> Vec<String> {
    ciphers(ctx)
        .into_iter()
        .map(|c| c.name().to_string())
        .collect()
}

/// Every suite a context may negotiate (TLS 1.3 suites first), borrowed from it.
pub(crate) fn ciphers(ctx: &SslContextRef) -> Vec<&SslCipherRef> {
    use foreign_types::ForeignTypeRef;
    let mut out = Vec::new();
    // SAFETY: the stack belongs to the context, which outlives the returned references
    // (they borrow `ctx`); its entries are valid, immutable SSL_CIPHER pointers.
    unsafe {
        let sk = ffi_ext::SSL_CTX_get_ciphers(ctx.as_ptr());
        if sk.is_null() {
            return out;
        }
        for i in 0..openssl_sys::OPENSSL_sk_num(sk) {
            let c = openssl_sys::OPENSSL_sk_value(sk, i) as *mut openssl_sys::SSL_CIPHER;
            if !c.is_null() {
                out.push(SslCipherRef::from_ptr(c));
            }
        }
    }
    out
}
