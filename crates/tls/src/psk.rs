//! TLS-PSK as Bacula 13 does it (protocol.md §7): certificate-less contexts whose key is
//! the CRAM-MD5 key bytes (password-derived or the job session key).
//!
//! The contexts are built once and shared; the key of each connection travels in the
//! `Ssl`'s ex_data, where the PSK callbacks read it, and is wiped when the `Ssl` is freed.

use std::pin::Pin;
use std::sync::OnceLock;

use baculink_proto::Secret;
use openssl::ex_data::Index;
use openssl::ssl::{Ssl, SslContext, SslVerifyMode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_openssl::SslStream;
use zeroize::Zeroizing;

use crate::cert::{base_builder, server_options};
use crate::error::TlsError;

/// The only TLS ≤ 1.2 suite Bacula uses for PSK (TLS_PSK_WITH_AES_256_CBC_SHA).
pub const PSK_CIPHER_LIST: &str = "PSK-AES256-CBC-SHA";

/// TLS 1.3 suites: SHA-256 ones only, AES-128-GCM first. OpenSSL's legacy PSK callbacks
/// assume SHA-256 for the external PSK, so a SHA-384 suite could never carry it.
pub const PSK_CIPHERSUITES: &str = "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256";

/// The identity our client sends; OpenSSL 3.0 fails locally in TLS 1.3 with an empty
/// one, Bacula servers accept any, and `openssl s_server` expects exactly this one.
pub const PSK_IDENTITY: &str = "Client_identity";

/// PSK_MAX_PSK_LEN in OpenSSL: longer keys cannot be handed to the library.
const MAX_PSK_LEN: usize = 256;

/// The per-connection key as stored in the `Ssl`.
struct PskKey(Zeroizing<Vec<u8>>);

fn key_index() -> Result<Index<Ssl, PskKey>, TlsError> {
    static INDEX: OnceLock<Index<Ssl, PskKey>> = OnceLock::new();
    if let Some(i) = INDEX.get() {
        return Ok(*i);
    }
    let i = Ssl::new_ex_index::<PskKey>().map_err(|e| TlsError::setup("ex_data index", e))?;
    Ok(*INDEX.get_or_init(|| i))
}

/// A pair of PSK-only contexts (client and server). Cheap to share: clone it or use
/// [`PskContext::shared`].
#[derive(Clone)]
pub struct PskContext {
    client: SslContext,
    server: SslContext,
}

impl std::fmt::Debug for PskContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PskContext")
    }
}

impl PskContext {
    /// Builds both contexts.
    pub fn new() -> Result<PskContext, TlsError> {
        let idx = key_index()?;

        let mut c = base_builder()?;
        c.set_cipher_list(PSK_CIPHER_LIST)
            .map_err(|e| TlsError::setup("PSK cipher list", e))?;
        c.set_ciphersuites(PSK_CIPHERSUITES)
            .map_err(|e| TlsError::setup("PSK TLS 1.3 suites", e))?;
        c.set_verify(SslVerifyMode::NONE);
        c.set_psk_client_callback(move |ssl, _hint, identity, psk| {
            let Some(key) = ssl.ex_data(idx) else {
                return Ok(0);
            };
            let id = PSK_IDENTITY.as_bytes();
            if identity.len() <= id.len() || psk.len() < key.0.len() {
                return Ok(0);
            }
            identity[..id.len()].copy_from_slice(id);
            identity[id.len()] = 0;
            psk[..key.0.len()].copy_from_slice(&key.0);
            Ok(key.0.len())
        });

        let mut s = base_builder()?;
        s.set_cipher_list(PSK_CIPHER_LIST)
            .map_err(|e| TlsError::setup("PSK cipher list", e))?;
        s.set_ciphersuites(PSK_CIPHERSUITES)
            .map_err(|e| TlsError::setup("PSK TLS 1.3 suites", e))?;
        s.set_verify(SslVerifyMode::NONE);
        server_options(&mut s)?;
        // Any identity is accepted (Client_identity in TLS 1.3, empty from Bacula in 1.2):
        // the key alone authenticates.
        s.set_psk_server_callback(move |ssl, _identity, psk| {
            let Some(key) = ssl.ex_data(idx) else {
                return Ok(0);
            };
            if psk.len() < key.0.len() {
                return Ok(0);
            }
            psk[..key.0.len()].copy_from_slice(&key.0);
            Ok(key.0.len())
        });

        Ok(PskContext {
            client: c.build(),
            server: s.build(),
        })
    }

    /// A process-wide instance, built on first use.
    pub fn shared() -> Result<&'static PskContext, TlsError> {
        static SHARED: OnceLock<PskContext> = OnceLock::new();
        if let Some(c) = SHARED.get() {
            return Ok(c);
        }
        let c = PskContext::new()?;
        Ok(SHARED.get_or_init(|| c))
    }

    /// The client-side context (keys come from the `Ssl`, see [`PskContext::connect`]).
    pub fn client(&self) -> &SslContext {
        &self.client
    }

    /// The server-side context.
    pub fn server(&self) -> &SslContext {
        &self.server
    }

    fn ssl(ctx: &SslContext, key: &Secret) -> Result<Ssl, TlsError> {
        let k = key.expose();
        if k.is_empty() || k.len() > MAX_PSK_LEN {
            return Err(TlsError::Setup(format!(
                "a TLS-PSK key must have 1 to {MAX_PSK_LEN} bytes, not {}",
                k.len()
            )));
        }
        let mut ssl = Ssl::new(ctx).map_err(|e| TlsError::setup("SSL_new", e))?;
        ssl.set_ex_data(key_index()?, PskKey(Zeroizing::new(k.to_vec())));
        Ok(ssl)
    }

    /// PSK handshake as TLS client.
    pub async fn connect<S>(&self, key: &Secret, stream: S) -> Result<SslStream<S>, TlsError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let ssl = Self::ssl(&self.client, key)?;
        let mut s = SslStream::new(ssl, stream).map_err(|e| TlsError::setup("SSL stream", e))?;
        Pin::new(&mut s).connect().await.map_err(psk_failure)?;
        Ok(s)
    }

    /// PSK handshake as TLS server.
    pub async fn accept<S>(&self, key: &Secret, stream: S) -> Result<SslStream<S>, TlsError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let ssl = Self::ssl(&self.server, key)?;
        let mut s = SslStream::new(ssl, stream).map_err(|e| TlsError::setup("SSL stream", e))?;
        Pin::new(&mut s).accept().await.map_err(psk_failure)?;
        Ok(s)
    }
}

/// OpenSSL reasons that, in PSK mode, mean the two keys differ: TLS 1.3 binder check
/// (the server's own reason, or the alert it sends), TLS 1.2 Finished decryption.
const KEY_MISMATCH_REASONS: &[&str] = &[
    "binder does not verify",
    "illegal parameter",
    "decrypt error",
    "bad record mac",
    "decryption failed",
];

fn psk_failure(e: openssl::ssl::Error) -> TlsError {
    tracing::debug!(error = %e, "TLS-PSK handshake failed");
    if let Some(stack) = e.ssl_error() {
        let hit = stack.errors().iter().any(|er| {
            er.reason()
                .map(|r| KEY_MISMATCH_REASONS.iter().any(|k| r.contains(k)))
                .unwrap_or(false)
        });
        if hit {
            return TlsError::PskMismatch;
        }
    }
    crate::handshake_error(e)
}

/// PSK handshake as client with the shared contexts.
pub async fn connect_psk<S>(key: &Secret, stream: S) -> Result<SslStream<S>, TlsError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    PskContext::shared()?.connect(key, stream).await
}

/// PSK handshake as server with the shared contexts.
pub async fn accept_psk<S>(key: &Secret, stream: S) -> Result<SslStream<S>, TlsError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    PskContext::shared()?.accept(key, stream).await
}
