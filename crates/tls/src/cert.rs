//! Certificate TLS: contexts built from a resource's TLS directives, and the
//! client/server handshakes with Bacula's post-handshake checks (protocol.md §6).

use std::fs;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use baculink_conf::tls::{TlsProtocol, TlsRole, TlsVersion};
use baculink_conf::TlsSettings;
use openssl::dh::Dh;
use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslMethod, SslMode, SslOptions, SslSessionCacheMode,
    SslVerifyMode, SslVersion,
};
use openssl::x509::verify::X509CheckFlags;
use openssl::x509::{X509VerifyResult, X509};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_openssl::SslStream;

use crate::error::{io_reason, reasons, TlsError};
use crate::names;
use crate::policy;

/// TLS ≤ 1.2 suites for certificate mode: AEAD with (EC)DHE only, so every session has
/// forward secrecy; the exclusions are redundant with the positive list but make the
/// intent explicit and survive edits.
pub const CERT_CIPHER_LIST: &str = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:\
!aNULL:!eNULL:!EXPORT:!DES:!3DES:!MD5:!RC4:!LOW:!PSK:!SRP:!DSS";

/// TLS 1.3 suites for certificate mode when `TLS Cipher Suites` is not set: OpenSSL's
/// own three, with AES-128-GCM first. A backup moves gigabytes over one connection, and
/// AES-128 costs about two thirds of AES-256's CPU; both are 128-bit-secure or better.
pub const CERT_CIPHERSUITES: &str =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

/// Smallest finite-field DH prime accepted from `TLS DH File`.
pub const MIN_DH_BITS: u32 = 2048;

/// The session-id context our servers use (required once client certificates are verified).
const SESSION_ID_CONTEXT: &[u8] = b"baculink";

/// The certificate-TLS contexts of one resource.
///
/// `server` exists when the resource has a certificate and key; `client` exists when it
/// has a CA to verify servers with (client contexts always verify the server chain).
#[derive(Clone)]
pub struct CertContext {
    server: Option<SslContext>,
    client: Option<SslContext>,
    verify_peer: bool,
    protocol: TlsProtocol,
}

impl std::fmt::Debug for CertContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertContext")
            .field("server", &self.server.is_some())
            .field("client", &self.client.is_some())
            .field("verify_peer", &self.verify_peer)
            .field("protocol", &self.protocol)
            .finish()
    }
}

/// Options every context of ours gets: version-flexible method, TLS 1.2 minimum (1.3 is
/// preferred by OpenSSL), no read-ahead so TLS can be dropped without losing stream bytes
/// (the network layer reads ahead below TLS instead), and record buffers released while
/// a connection idles (thousands of idle consoles must stay small).
pub(crate) fn base_builder() -> Result<SslContextBuilder, TlsError> {
    // Our AES-GCM provider, where active, serves the record cipher.
    let mut b = crate::gcm::context_builder()
        .unwrap_or_else(|| SslContext::builder(SslMethod::tls()))
        .map_err(|e| TlsError::setup("SSL_CTX_new", e))?;
    b.set_options(SslOptions::ALL | SslOptions::NO_SSLV2 | SslOptions::NO_SSLV3);
    b.set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(|e| TlsError::setup("minimum TLS version", e))?;
    b.set_read_ahead(false);
    b.set_mode(
        SslMode::ENABLE_PARTIAL_WRITE
            | SslMode::ACCEPT_MOVING_WRITE_BUFFER
            | SslMode::RELEASE_BUFFERS,
    );
    Ok(b)
}

/// Server-side options: no session cache and no TLS 1.3 tickets (nobody resumes; and a
/// ticket sent after the handshake would be stray bytes for a peer that drops TLS, §5.8).
pub(crate) fn server_options(b: &mut SslContextBuilder) -> Result<(), TlsError> {
    b.set_session_cache_mode(SslSessionCacheMode::OFF);
    b.set_num_tickets(0)
        .map_err(|e| TlsError::setup("num_tickets", e))?;
    b.set_session_id_context(SESSION_ID_CONTEXT)
        .map_err(|e| TlsError::setup("session id context", e))?;
    Ok(())
}

pub(crate) fn read_file(directive: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|e| TlsError::config(directive, path, io_reason(&e)))
}

/// Loads the PEM certificate chain and key (decrypted with `TLS Key Passphrase File`
/// when it is encrypted) into `b` and checks they belong together.
fn load_cert_and_key(
    b: &mut SslContextBuilder,
    cert: &Path,
    key: &Path,
    passphrase_file: Option<&Path>,
) -> Result<(), TlsError> {
    let pem = read_file("Certificate", cert)?;
    let mut chain = X509::stack_from_pem(&pem)
        .map_err(|e| {
            TlsError::config(
                "Certificate",
                cert,
                format!("not a PEM certificate: {}", reasons(&e)),
            )
        })?
        .into_iter();
    let leaf = chain
        .next()
        .ok_or_else(|| TlsError::config("Certificate", cert, "no certificate found in file"))?;
    b.set_certificate(&leaf)
        .map_err(|e| TlsError::config("Certificate", cert, reasons(&e)))?;
    for extra in chain {
        b.add_extra_chain_cert(extra)
            .map_err(|e| TlsError::config("Certificate", cert, reasons(&e)))?;
    }

    let pkey = policy::load_private_key(key, passphrase_file)?;
    let mismatch = || {
        TlsError::config(
            "Key",
            key,
            format!("does not match certificate \"{}\"", cert.display()),
        )
    };
    b.set_private_key(&pkey).map_err(|e| {
        // OpenSSL already compares the key with the certificate here.
        if reasons(&e).contains("key values mismatch") {
            mismatch()
        } else {
            TlsError::config("Key", key, reasons(&e))
        }
    })?;
    b.check_private_key().map_err(|_| mismatch())?;
    Ok(())
}

/// Warns when a secret file (`TLS Key`, `TLS Key Passphrase File`) is readable by
/// group or others.
#[cfg(unix)]
pub(crate) fn warn_if_readable(path: &Path, directive: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(md) = fs::metadata(path) {
        let mode = md.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                mode = format_args!("{:o}", mode & 0o777),
                "TLS {directive} file is readable by group or others; chmod 600 it"
            );
        }
    }
}

#[cfg(not(unix))]
pub(crate) fn warn_if_readable(_path: &Path, _directive: &str) {}

/// Loads `TLS DH File` and refuses primes below [`MIN_DH_BITS`].
fn load_dh(b: &mut SslContextBuilder, path: &Path) -> Result<(), TlsError> {
    let pem = read_file("DH File", path)?;
    let dh = Dh::params_from_pem(&pem).map_err(|e| {
        TlsError::config(
            "DH File",
            path,
            format!("not PEM DH parameters: {}", reasons(&e)),
        )
    })?;
    let bits = dh.prime_p().num_bits() as u32;
    if bits < MIN_DH_BITS {
        return Err(TlsError::config(
            "DH File",
            path,
            format!("DH parameters of {bits} bits are too weak; at least {MIN_DH_BITS} bits are required"),
        ));
    }
    b.set_tmp_dh(&dh)
        .map_err(|e| TlsError::config("DH File", path, reasons(&e)))?;
    b.set_options(SslOptions::SINGLE_DH_USE);
    Ok(())
}

/// Points the verification store at the CA file and/or hashed directory.
fn load_ca(b: &mut SslContextBuilder, s: &TlsSettings) -> Result<(), TlsError> {
    if let Some(f) = &s.ca_file {
        // Read first: OpenSSL's own error for a missing file is vague.
        read_file("CA Certificate File", f)?;
    }
    if let Some(d) = &s.ca_dir {
        if !d.is_dir() {
            return Err(TlsError::config(
                "CA Certificate Dir",
                d,
                "no such directory",
            ));
        }
    }
    b.load_verify_locations(s.ca_file.as_deref(), s.ca_dir.as_deref())
        .map_err(|e| match (&s.ca_file, &s.ca_dir) {
            (Some(f), _) => TlsError::config("CA Certificate File", f, reasons(&e)),
            (None, Some(d)) => TlsError::config("CA Certificate Dir", d, reasons(&e)),
            (None, None) => TlsError::setup("load_verify_locations", e),
        })
}

fn has_ca(s: &TlsSettings) -> bool {
    s.ca_file.is_some() || s.ca_dir.is_some()
}

impl CertContext {
    /// Builds the contexts of a resource. `role` says which side the resource mainly plays;
    /// that side's context is mandatory, the other one is built when the material allows.
    pub fn new(settings: &TlsSettings, role: TlsRole) -> Result<CertContext, TlsError> {
        let s = settings;
        let cert_key = match (&s.certificate, &s.key) {
            (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
            (Some(c), None) => {
                return Err(TlsError::config("Certificate", c, "TLS Key is not set"));
            }
            (None, Some(k)) => {
                return Err(TlsError::config("Key", k, "TLS Certificate is not set"))
            }
            (None, None) => None,
        };
        let need_verify_store =
            "either a CA certificate file or a directory must be specified as a verification store";

        let server = match cert_key {
            Some((cert, key)) => {
                let mut b = base_builder()?;
                policy::apply_protocol_and_groups(&mut b, &s.protocol, s.groups.as_deref())?;
                policy::apply_cert_ciphers(&mut b, s)?;
                server_options(&mut b)?;
                load_cert_and_key(&mut b, cert, key, s.key_passphrase_file.as_deref())?;
                if let Some(dh) = &s.dh_file {
                    load_dh(&mut b, dh)?;
                }
                if s.verify_peer {
                    if !has_ca(s) {
                        return Err(TlsError::Setup(format!(
                            "TLS Verify Peer is on: {need_verify_store}"
                        )));
                    }
                    load_ca(&mut b, s)?;
                    if let Some(crl) = &s.crl_file {
                        policy::load_crl(&mut b, crl)?;
                    }
                    b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
                } else {
                    b.set_verify(SslVerifyMode::NONE);
                }
                let ctx = b.build();
                policy::check_cert_context(&ctx, s)?;
                Some(ctx)
            }
            None if role == TlsRole::Server => {
                return Err(TlsError::Setup(
                    "a TLS server needs TLS Certificate and TLS Key".into(),
                ))
            }
            None => None,
        };

        let client = if has_ca(s) {
            let mut b = base_builder()?;
            policy::apply_protocol_and_groups(&mut b, &s.protocol, s.groups.as_deref())?;
            policy::apply_cert_ciphers(&mut b, s)?;
            load_ca(&mut b, s)?;
            if let Some(crl) = &s.crl_file {
                policy::load_crl(&mut b, crl)?;
            }
            if let Some((cert, key)) = cert_key {
                load_cert_and_key(&mut b, cert, key, s.key_passphrase_file.as_deref())?;
            }
            b.set_verify(SslVerifyMode::PEER);
            let ctx = b.build();
            policy::check_cert_context(&ctx, s)?;
            Some(ctx)
        } else if role == TlsRole::Client {
            return Err(TlsError::Setup(format!(
                "a TLS client verifies the server: {need_verify_store}"
            )));
        } else {
            None
        };

        Ok(CertContext {
            server,
            client,
            verify_peer: s.verify_peer,
            protocol: s.protocol,
        })
    }

    /// The server-side context, if the resource has a certificate and key.
    pub fn server(&self) -> Option<&SslContext> {
        self.server.as_ref()
    }

    /// The client-side context, if the resource has a CA.
    pub fn client(&self) -> Option<&SslContext> {
        self.client.as_ref()
    }

    /// Whether the server side demands and verifies client certificates.
    pub fn verify_peer(&self) -> bool {
        self.verify_peer
    }

    /// The versions the contexts allow (`TLS Protocol`).
    pub fn protocol(&self) -> TlsProtocol {
        self.protocol
    }
}

/// What the verify callback saw, for precise error messages after a failed handshake.
#[derive(Default)]
struct VerifyLog {
    /// First failure: depth, subject, reason.
    failure: Option<(u32, String, String)>,
    /// Names of the peer's own certificate (for the host-mismatch message).
    leaf_names: Vec<String>,
    /// Host check failed and no fallback matched.
    host_mismatch: bool,
}

type SharedLog = Arc<Mutex<VerifyLog>>;

/// Installs the per-connection verify callback: it records failures for the error
/// message and, when OpenSSL's host check fails, gives Bacula's own rule a second chance
/// (CN even if SANs exist, and `localhost` for `127.0.0.1`).
fn install_verify(ssl: &mut Ssl, mode: SslVerifyMode, host: Option<String>) -> SharedLog {
    let log: SharedLog = Arc::default();
    let log2 = log.clone();
    ssl.set_verify_callback(mode, move |ok, ctx| {
        let depth = ctx.error_depth();
        let mut log = log2.lock().unwrap_or_else(|p| p.into_inner());
        if depth == 0 {
            if let Some(c) = ctx.current_cert() {
                log.leaf_names = names::describe_names(c);
            }
        }
        if ok {
            return true;
        }
        let err = ctx.error();
        let raw = err.as_raw();
        let is_host = raw == openssl_sys::X509_V_ERR_HOSTNAME_MISMATCH
            || raw == openssl_sys::X509_V_ERR_IP_ADDRESS_MISMATCH;
        if is_host {
            if let (Some(h), Some(c)) = (&host, ctx.current_cert()) {
                let second = names::bacula_host_match(c, h)
                    || (h == "127.0.0.1" && names::bacula_host_match(c, "localhost"));
                if second {
                    tracing::debug!(host = %h, "host name accepted by Bacula's matching rule");
                    ctx.set_error(X509VerifyResult::OK);
                    return true;
                }
            }
            log.host_mismatch = true;
        }
        let subject = ctx
            .current_cert()
            .map(|c| names::one_line(c.subject_name()))
            .unwrap_or_default();
        tracing::debug!(depth, %subject, reason = err.error_string(), "certificate verification failed");
        if log.failure.is_none() {
            log.failure = Some((depth, subject, err.error_string().to_string()));
        }
        false
    });
    log
}

/// Turns a failed certificate handshake into the most precise error.
fn cert_failure<S>(
    e: openssl::ssl::Error,
    s: &SslStream<S>,
    log: &SharedLog,
    host: Option<&str>,
) -> TlsError {
    let log = log.lock().unwrap_or_else(|p| p.into_inner());
    if log.host_mismatch {
        if let Some(h) = host {
            return TlsError::HostMismatch {
                host: h.to_string(),
                names: log.leaf_names.clone(),
            };
        }
    }
    if let Some((depth, subject, reason)) = &log.failure {
        return TlsError::Verify {
            reason: reason.clone(),
            depth: Some(*depth),
            subject: (!subject.is_empty()).then(|| subject.clone()),
        };
    }
    let vr = s.ssl().verify_result();
    if vr != X509VerifyResult::OK {
        return TlsError::Verify {
            reason: vr.error_string().to_string(),
            depth: None,
            subject: None,
        };
    }
    crate::handshake_error(e)
}

/// Client side of certificate TLS (we connected to `host`).
///
/// The chain is always verified against the CA. Then, when `allowed_cn` is empty, the
/// certificate must name `host` (OpenSSL's check, then Bacula's rule as a second chance,
/// including `localhost` for `127.0.0.1`); when `allowed_cn` is non-empty, the CN or a
/// DNS subjectAltName must be in it **instead of** the host check — Bacula 9.6's
/// Director → FD rule; the chain still has to verify.
///
/// In TLS 1.3 a server that rejects *our* certificate does so after this returns; the
/// failure then shows on the first read.
pub async fn connect_cert<S>(
    ctx: &CertContext,
    stream: S,
    host: &str,
    allowed_cn: &[String],
) -> Result<SslStream<S>, TlsError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    connect_cert_with(ctx, stream, host, allowed_cn, ConnectOptions::default()).await
}

/// Per-connection client options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Offer TLS 1.2 at most. For 9.6 "TLS Authenticate" as client: a TLS 1.3 server
    /// sends session tickets after the handshake, which would land in the clear stream
    /// once TLS is dropped (protocol.md §5.8).
    pub tls12_only: bool,
}

/// [`connect_cert`] with options.
pub async fn connect_cert_with<S>(
    ctx: &CertContext,
    stream: S,
    host: &str,
    allowed_cn: &[String],
    opts: ConnectOptions,
) -> Result<SslStream<S>, TlsError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let cctx = ctx
        .client
        .as_ref()
        .ok_or_else(|| TlsError::Setup("no CA configured to verify the server with".into()))?;
    let mut ssl = Ssl::new(cctx).map_err(|e| TlsError::setup("SSL_new", e))?;
    if opts.tls12_only {
        if !ctx.protocol.allows(TlsVersion::Tls12) {
            return Err(TlsError::policy(
                "TLS Protocol",
                format!(
                    "\"{}\" excludes TLS 1.2, which a 9.6 peer needs for TLS Authenticate",
                    ctx.protocol
                ),
            ));
        }
        ssl.set_max_proto_version(Some(SslVersion::TLS1_2))
            .map_err(|e| TlsError::setup("maximum TLS version", e))?;
    }
    let check_host = allowed_cn.is_empty();
    if check_host {
        let p = ssl.param_mut();
        p.set_hostflags(X509CheckFlags::NO_PARTIAL_WILDCARDS);
        match host.parse::<IpAddr>() {
            Ok(ip) => p.set_ip(ip),
            Err(_) => p.set_host(host),
        }
        .map_err(|e| TlsError::setup("host name check", e))?;
    }
    if host.parse::<IpAddr>().is_err() && !host.is_empty() {
        // SNI: harmless for Bacula peers, useful for anything in between.
        let _ = ssl.set_hostname(host);
    }
    let log = install_verify(
        &mut ssl,
        SslVerifyMode::PEER,
        check_host.then(|| host.to_string()),
    );
    let mut s = SslStream::new(ssl, stream).map_err(|e| TlsError::setup("SSL stream", e))?;
    if let Err(e) = crate::handshake(&mut s, crate::End::Client).await {
        return Err(cert_failure(e, &s, &log, check_host.then_some(host)));
    }
    if !allowed_cn.is_empty() {
        check_allowed_cn(&s, allowed_cn)?;
    }
    Ok(s)
}

/// Server side of certificate TLS. With verify peer on, the client certificate must
/// chain to the CA; when `allowed_cn` is non-empty, its first CN or one of its DNS
/// subjectAltNames must be in the list (case-insensitive). A non-empty list with verify
/// peer off always fails: there is no client certificate to check.
pub async fn accept_cert<S>(
    ctx: &CertContext,
    stream: S,
    allowed_cn: &[String],
) -> Result<SslStream<S>, TlsError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let sctx = ctx
        .server
        .as_ref()
        .ok_or_else(|| TlsError::Setup("a TLS server needs TLS Certificate and TLS Key".into()))?;
    let mut ssl = Ssl::new(sctx).map_err(|e| TlsError::setup("SSL_new", e))?;
    let mode = if ctx.verify_peer {
        SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT
    } else {
        SslVerifyMode::NONE
    };
    let log = install_verify(&mut ssl, mode, None);
    let mut s = SslStream::new(ssl, stream).map_err(|e| TlsError::setup("SSL stream", e))?;
    if let Err(e) = crate::handshake(&mut s, crate::End::Server).await {
        let err = cert_failure(e, &s, &log, None);
        if let TlsError::Handshake(r) = &err {
            if r.contains("peer did not return a certificate") {
                return Err(TlsError::NoPeerCertificate);
            }
        }
        return Err(err);
    }
    if !allowed_cn.is_empty() {
        check_allowed_cn(&s, allowed_cn)?;
    }
    Ok(s)
}

fn check_allowed_cn<S>(s: &SslStream<S>, allowed_cn: &[String]) -> Result<(), TlsError> {
    let cert = s
        .ssl()
        .peer_certificate()
        .ok_or(TlsError::NoPeerCertificate)?;
    let cands = names::allowed_cn_candidates(&cert);
    if names::allowed_cn_match(&cands, allowed_cn) {
        Ok(())
    } else {
        Err(TlsError::AllowedCn {
            peer: cands,
            allowed: allowed_cn.to_vec(),
        })
    }
}
