//! `FIPS Require = yes`: run every OpenSSL operation of the process through OpenSSL 3's
//! FIPS provider, or refuse to start.
//!
//! FIPS mode is a property of the whole process (OpenSSL's default library context), so
//! it is switched on once, before any TLS context is built. Algorithms that do not go
//! through OpenSSL stay outside the FIPS boundary: CRAM-MD5 (HMAC-MD5) and the
//! MD5-derived password keys, hence also the TLS-PSK keys (README "TLS policy
//! directives").

use std::sync::Mutex;

use baculink_conf::tls::{fips_required, TlsResource};
use openssl::md::Md;
use openssl::provider::Provider;

use crate::error::{reasons, TlsError};

/// The providers kept loaded while FIPS mode is on (unloaded if dropped).
static PROVIDERS: Mutex<Option<(Provider, Provider)>> = Mutex::new(None);

/// What to do when the provider is missing, for every FIPS error message.
const ADVICE: &str = "install and configure the OpenSSL 3 FIPS provider (the fips module \
                      and the fipsmodule.cnf written by `openssl fipsinstall`, included \
                      from openssl.cnf), or set FIPS Require = no";

/// Loads OpenSSL's `fips` provider (plus `base`, for PEM decoding) and makes `fips=yes`
/// the default property query, so only FIPS-validated algorithms are used from now on.
/// Idempotent. Fails with [`TlsError::Fips`] when the provider is absent (the default
/// on Debian 12) or unusable; nothing changes then.
pub fn require() -> Result<(), TlsError> {
    let mut g = PROVIDERS.lock().unwrap_or_else(|e| e.into_inner());
    if g.is_some() {
        return Ok(());
    }
    openssl::init();
    // `try_load` keeping the fallbacks: a failed attempt must leave the default provider
    // usable (a plain `load` disables it even when it fails).
    let fips = Provider::try_load(None, "fips", true).map_err(|e| {
        TlsError::Fips(format!(
            "OpenSSL's FIPS provider is not available ({}); {ADVICE}",
            short_reasons(&e)
        ))
    })?;
    // A plain `load` from here on: with the FIPS provider in place, the default
    // provider must not be auto-loaded any more.
    let base = Provider::load(None, "base").map_err(|e| {
        TlsError::Fips(format!(
            "OpenSSL's base provider (needed next to the FIPS provider) is not available ({}); \
             {ADVICE}",
            reasons(&e)
        ))
    })?;
    // SAFETY: plain call on the default library context (null).
    let ok = unsafe { openssl_sys::EVP_default_properties_enable_fips(std::ptr::null_mut(), 1) };
    if ok != 1 {
        let e = openssl::error::ErrorStack::get();
        return Err(TlsError::Fips(format!(
            "cannot make fips=yes the default property query ({}); {ADVICE}",
            reasons(&e)
        )));
    }
    // Prove the provider works: it must deliver SHA-256 under fips=yes.
    if let Err(e) = Md::fetch(None, "SHA2-256", None) {
        // SAFETY: as above; undo so the process is not left half-configured.
        unsafe { openssl_sys::EVP_default_properties_enable_fips(std::ptr::null_mut(), 0) };
        return Err(TlsError::Fips(format!(
            "the FIPS provider loaded but offers no SHA-256 ({}); {ADVICE}",
            reasons(&e)
        )));
    }
    *g = Some((fips, base));
    tracing::info!("FIPS mode on: OpenSSL FIPS provider loaded, default properties fips=yes");
    Ok(())
}

/// OpenSSL's distinct reason strings (loading a provider repeats them, and adds entries
/// without a reason that only name source lines).
fn short_reasons(e: &openssl::error::ErrorStack) -> String {
    let mut out: Vec<&str> = Vec::new();
    for r in e.errors().iter().filter_map(|x| x.reason()) {
        if !out.contains(&r) {
            out.push(r);
        }
    }
    if out.is_empty() {
        reasons(e)
    } else {
        out.join("; ")
    }
}

/// Whether FIPS mode is on (the default property query of the process says `fips=yes`).
pub fn enabled() -> bool {
    // SAFETY: read-only query on the default library context.
    unsafe { openssl_sys::EVP_default_properties_is_fips_enabled(std::ptr::null_mut()) == 1 }
}

/// Start-up helper: [`require`] when any of a configuration's resources says
/// `FIPS Require = yes`. Returns whether FIPS mode was required.
pub fn require_for(resources: &[&dyn TlsResource]) -> Result<bool, TlsError> {
    if fips_required(resources) {
        require()?;
        Ok(true)
    } else {
        Ok(false)
    }
}
