//! TLS-PSK as Bacula 13 does it (protocol.md §7): certificate-less contexts whose key is
//! the CRAM-MD5 key bytes (password-derived or the job session key).
//!
//! Contexts depend only on a resource's [`PskPolicy`] (`TLS Protocol`, the SHA-256
//! suites of `TLS Cipher Suites`); one is built per distinct policy and shared. The key
//! of each connection travels in the `Ssl`'s ex_data, where the PSK callbacks read it,
//! and is wiped when the `Ssl` is freed.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use baculink_conf::tls::{is_sha256_suite, split_suites, TlsProtocol, TlsVersion};
use baculink_conf::TlsSettings;
use baculink_proto::Secret;
use openssl::ex_data::Index;
use openssl::ssl::{Ssl, SslContext, SslVerifyMode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_openssl::SslStream;
use zeroize::Zeroizing;

use crate::cert::{base_builder, server_options};
use crate::error::TlsError;
use crate::policy;

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

/// What a PSK context depends on: the version range and the TLS 1.3 suites. The TLS ≤
/// 1.2 suite is always [`PSK_CIPHER_LIST`], the only one Bacula speaks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PskPolicy {
    /// `TLS Protocol`.
    pub protocol: TlsProtocol,
    /// TLS 1.3 suites, `:`-separated, SHA-256 ones only; `None` = [`PSK_CIPHERSUITES`].
    pub cipher_suites: Option<String>,
    /// `TLS Groups`; `None` = OpenSSL's default.
    pub groups: Option<String>,
}

impl PskPolicy {
    /// The policy of a resource: its `TLS Protocol`, and the SHA-256 suites of its `TLS
    /// Cipher Suites` in their order (TLS 1.3 external PSKs with Bacula are bound to
    /// SHA-256, protocol.md §7.1; the others could never carry the key). Suites are
    /// dropped when TLS 1.3 is excluded.
    pub fn from_settings(s: &TlsSettings) -> PskPolicy {
        let cipher_suites = s
            .cipher_suites
            .as_deref()
            .filter(|_| s.protocol.allows(TlsVersion::Tls13))
            .map(|v| {
                split_suites(v)
                    .filter(|x| is_sha256_suite(x))
                    .collect::<Vec<_>>()
                    .join(":")
            });
        PskPolicy {
            protocol: s.protocol,
            cipher_suites,
            groups: s.groups.clone(),
        }
    }

    fn suites(&self) -> &str {
        self.cipher_suites.as_deref().unwrap_or(PSK_CIPHERSUITES)
    }
}

/// TLS 1.3 suites for a PSK context, checked: with TLS 1.3 allowed, at least one must
/// remain, all known to OpenSSL.
fn psk_suites(b: &mut openssl::ssl::SslContextBuilder, p: &PskPolicy) -> Result<(), TlsError> {
    let suites = p.suites();
    if suites.is_empty() {
        if !p.protocol.allows(TlsVersion::Tls13) {
            return Ok(());
        }
        return Err(TlsError::policy(
            "TLS Cipher Suites",
            "no SHA-256 TLS 1.3 suite for TLS-PSK: TLS 1.3 external PSKs with Bacula are \
             bound to SHA-256; add TLS_AES_128_GCM_SHA256 or TLS_CHACHA20_POLY1305_SHA256",
        ));
    }
    b.set_ciphersuites(suites).map_err(|e| {
        TlsError::policy(
            "TLS Cipher Suites",
            format!(
                "OpenSSL enables no TLS 1.3 suite for \"{suites}\": {}",
                crate::error::reasons(&e)
            ),
        )
    })
}

/// After build: no requested suite silently dropped.
fn check_psk_context(ctx: &SslContext, p: &PskPolicy) -> Result<(), TlsError> {
    if !p.protocol.allows(TlsVersion::Tls13) {
        return Ok(());
    }
    let missing = policy::missing_suites(p.suites(), ctx);
    if !missing.is_empty() {
        return Err(TlsError::policy(
            "TLS Cipher Suites",
            format!("OpenSSL does not know {}", missing.join(", ")),
        ));
    }
    Ok(())
}

impl PskContext {
    /// Builds both contexts with the default policy (TLS 1.2+, [`PSK_CIPHERSUITES`]).
    pub fn new() -> Result<PskContext, TlsError> {
        Self::with_policy(&PskPolicy::default())
    }

    /// Builds both contexts for a policy (uncached; see [`PskContext::for_settings`]).
    pub fn with_policy(p: &PskPolicy) -> Result<PskContext, TlsError> {
        let idx = key_index()?;

        let mut c = base_builder()?;
        policy::apply_protocol_and_groups(&mut c, &p.protocol, p.groups.as_deref())?;
        c.set_cipher_list(PSK_CIPHER_LIST)
            .map_err(|e| TlsError::setup("PSK cipher list", e))?;
        psk_suites(&mut c, p)?;
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
        policy::apply_protocol_and_groups(&mut s, &p.protocol, p.groups.as_deref())?;
        s.set_cipher_list(PSK_CIPHER_LIST)
            .map_err(|e| TlsError::setup("PSK cipher list", e))?;
        psk_suites(&mut s, p)?;
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

        let ctx = PskContext {
            client: c.build(),
            server: s.build(),
        };
        check_psk_context(&ctx.client, p)?;
        Ok(ctx)
    }

    /// The contexts for a resource's settings: built on first use per distinct
    /// [`PskPolicy`] and cached for the life of the process (a handful at most), so
    /// calling it per connection is cheap. Default settings give [`PskContext::shared`].
    /// Call it at start-up for each resource with TLS-PSK so a bad policy stops the
    /// daemon there rather than at the first login.
    pub fn for_settings(s: &TlsSettings) -> Result<PskContext, TlsError> {
        let p = PskPolicy::from_settings(s);
        if p == PskPolicy::default() {
            return Self::shared().cloned();
        }
        static CACHE: OnceLock<Mutex<HashMap<PskPolicy, PskContext>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        if let Some(c) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&p) {
            return Ok(c.clone());
        }
        let c = Self::with_policy(&p)?;
        Ok(cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(p)
            .or_insert(c)
            .clone())
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
        crate::handshake(&mut s, crate::End::Client)
            .await
            .map_err(psk_failure)?;
        Ok(s)
    }

    /// PSK handshake as TLS server.
    pub async fn accept<S>(&self, key: &Secret, stream: S) -> Result<SslStream<S>, TlsError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let ssl = Self::ssl(&self.server, key)?;
        let mut s = SslStream::new(ssl, stream).map_err(|e| TlsError::setup("SSL stream", e))?;
        crate::handshake(&mut s, crate::End::Server)
            .await
            .map_err(psk_failure)?;
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
