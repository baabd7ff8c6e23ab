//! AES-GCM for TLS records, computed by AWS-LC and offered to OpenSSL as a
//! built-in provider named `baculink-gcm`.
//!
//! Why: OpenSSL before 3.2 has no AES-GCM code for CPUs with VAES and
//! AVX-512, and there AES-GCM is the largest single cost of a bulk TLS
//! stream. On such a CPU AWS-LC seals 16 KiB records two to three times as
//! fast as OpenSSL 3.0 (`baculink-bench gcm`). OpenSSL still does all of TLS
//! (handshake, record layer, alerts, PSK); only the record cipher of our own
//! SSL contexts comes from here, by the property query `propq` puts on them.
//!
//! When: OpenSSL older than 3.2, FIPS mode off (AWS-LC is not our FIPS
//! boundary; under `fips=yes` this provider is never chosen anyway), the
//! environment variable `BACULINK_OPENSSL_GCM` unset, and a known-answer
//! check against OpenSSL's own AES-GCM passed at start.
//!
//! Scope: what libssl asks of an AEAD cipher, nothing more. TLS 1.3: a key,
//! then per record a nonce, the additional data, one data update, final and
//! the tag. TLS 1.2: the fixed nonce part, the TLS additional data, then one
//! in-place record with explicit nonce and tag. A caller feeding data in
//! several updates, or asking for another nonce or tag length, gets an error,
//! never a wrong answer.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use aws_lc_sys as lc;
use openssl::cipher::Cipher;
use openssl::cipher_ctx::CipherCtx;
use openssl::error::ErrorStack;
use openssl::ssl::SslContextBuilder;
use openssl_sys::{OSSL_LIB_CTX, OSSL_PARAM};
use zeroize::Zeroize;

/// The provider's name, and the property our contexts prefer.
const NAME: &CStr = c"baculink-gcm";
const PROPERTIES: &CStr = c"provider=baculink-gcm";
const PREFER: &CStr = c"?provider=baculink-gcm";

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// TLS 1.2: 4 fixed bytes from the key block, 8 explicit bytes per record.
const TLS12_FIXED_LEN: usize = 4;
const TLS12_EXPLICIT_LEN: usize = 8;
const TLS12_AAD_LEN: usize = 13;
/// Additional data beyond this is refused (TLS uses 5 or 13 bytes).
const MAX_AAD: usize = 1024;

const EVP_CIPH_GCM_MODE: c_uint = 0x6;
const OSSL_OP_CIPHER: c_int = 2;
const OSSL_PARAM_OCTET_STRING: c_uint = 5;

/// Records sealed or opened by contexts freed since the process started.
static RECORDS: AtomicU64 = AtomicU64::new(0);

/// How many TLS records (or other AES-GCM messages) this provider has sealed
/// or opened, counted when their cipher contexts are freed (a connection's
/// when it closes): proof for tests and diagnostics that it is in use. Not
/// counted per record, which would make the two ends of a bulk stream write
/// one shared cache line for every record.
pub fn records() -> u64 {
    RECORDS.load(Ordering::Relaxed)
}

/// The property query for our SSL contexts: `Some` when this provider is
/// registered and should serve AES-GCM (see the module documentation).
pub(crate) fn propq() -> Option<&'static CStr> {
    static ON: OnceLock<bool> = OnceLock::new();
    if !*ON.get_or_init(enable) {
        return None;
    }
    // SAFETY: plain query of the default library context.
    let fips = unsafe { openssl_sys::EVP_default_properties_is_fips_enabled(ptr::null_mut()) };
    (fips != 1).then_some(PREFER)
}

/// A new TLS context builder whose record cipher prefers this provider, or
/// `None` when the provider is not active.
pub(crate) fn context_builder() -> Option<Result<SslContextBuilder, ErrorStack>> {
    let q = propq()?;
    // SAFETY: valid arguments; the new context (checked non-null) passes to
    // the builder, which frees it.
    Some(unsafe {
        let ctx = SSL_CTX_new_ex(ptr::null_mut(), q.as_ptr(), openssl_sys::TLS_method());
        if ctx.is_null() {
            Err(ErrorStack::get())
        } else {
            Ok(SslContextBuilder::from_ptr(ctx))
        }
    })
}

/// Whether this provider serves AES-GCM in this process (registers it on
/// first use).
pub fn active() -> bool {
    propq().is_some()
}

fn enable() -> bool {
    if std::env::var_os("BACULINK_OPENSSL_GCM").is_some() {
        tracing::info!("BACULINK_OPENSSL_GCM is set: TLS records use OpenSSL's own AES-GCM");
        return false;
    }
    if openssl::version::number() >= 0x3020_0000 {
        return false;
    }
    openssl::init();
    // SAFETY: FFI calls with valid static arguments; the init function has
    // the provider-init signature OpenSSL expects.
    unsafe {
        if openssl_sys::EVP_default_properties_is_fips_enabled(ptr::null_mut()) == 1 {
            return false;
        }
        lc::CRYPTO_library_init();
        if OSSL_PROVIDER_add_builtin(ptr::null_mut(), NAME.as_ptr(), provider_init) != 1 {
            tracing::warn!("cannot register the AES-GCM provider; using OpenSSL's own");
            return false;
        }
        // Keep the fallbacks: loading one provider explicitly must not stop
        // OpenSSL from loading its default provider for everything else.
        let p = OSSL_PROVIDER_try_load(ptr::null_mut(), NAME.as_ptr(), 1);
        if p.is_null() {
            tracing::warn!("cannot load the AES-GCM provider; using OpenSSL's own");
            return false;
        }
        // Loaded for the life of the process: never unloaded.
    }
    match known_answer() {
        Ok(()) => {
            tracing::debug!("TLS records use AES-GCM from AWS-LC (provider baculink-gcm)");
            true
        }
        Err(e) => {
            tracing::warn!(
                error = %e,
                "the AES-GCM provider disagrees with OpenSSL; using OpenSSL's own"
            );
            false
        }
    }
}

/// Seals and opens one message through both OpenSSL's AES-GCM and ours, as
/// libssl does (key, nonce, additional data, one update, final, tag), and
/// requires the same ciphertext and tag; a flipped tag must fail to open.
fn known_answer() -> Result<(), String> {
    let key = *b"baculink-gcm-kat-key-32-bytes-ok";
    let nonce = *b"nonce-12-byt";
    let aad = *b"\x17\x03\x03\x00\x40";
    let msg: Vec<u8> = (0..48u8).collect();
    for (name, klen) in [("AES-128-GCM", 16), ("AES-256-GCM", 32)] {
        let key = &key[..klen];
        let fail = |e: ErrorStack| format!("{name}: {e}");
        let theirs = evp_seal("provider=default", name, key, &nonce, &aad, &msg).map_err(fail)?;
        let ours = evp_seal(OURS, name, key, &nonce, &aad, &msg).map_err(fail)?;
        if theirs != ours {
            return Err(format!("{name}: a different ciphertext or tag"));
        }
        let mut bad = ours.1;
        bad[0] ^= 1;
        if evp_open(OURS, name, key, &nonce, &aad, &ours.0, &bad)
            .map_err(fail)?
            .is_some()
        {
            return Err(format!("{name}: a wrong tag was accepted"));
        }
    }
    Ok(())
}

/// The property query that picks this provider alone (tests, benches).
pub const OURS: &str = "provider=baculink-gcm";

/// Seals one message with the AEAD `name` of the providers `props` selects,
/// through EVP as libssl drives it: key and nonce, additional data, one data
/// update, final, tag.
fn evp_seal(
    props: &str,
    name: &str,
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    msg: &[u8],
) -> Result<(Vec<u8>, [u8; TAG_LEN]), ErrorStack> {
    let c = Cipher::fetch(None, name, Some(props))?;
    let mut ctx = CipherCtx::new()?;
    ctx.encrypt_init(Some(&c), Some(key), Some(nonce))?;
    ctx.cipher_update(aad, None)?;
    let mut out = vec![0; msg.len()];
    let n = ctx.cipher_update(msg, Some(&mut out))?;
    ctx.cipher_final(&mut out[n..])?;
    let mut tag = [0; TAG_LEN];
    ctx.tag(&mut tag)?;
    Ok((out, tag))
}

/// Opens what [`evp_seal`] sealed: `Ok(None)` when the message does not
/// authenticate, `Err` when the cipher cannot even be set up.
fn evp_open(
    props: &str,
    name: &str,
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    ct: &[u8],
    tag: &[u8],
) -> Result<Option<Vec<u8>>, ErrorStack> {
    let c = Cipher::fetch(None, name, Some(props))?;
    let mut ctx = CipherCtx::new()?;
    ctx.decrypt_init(Some(&c), Some(key), Some(nonce))?;
    ctx.set_tag(tag)?;
    ctx.cipher_update(aad, None)?;
    let mut out = vec![0; ct.len()];
    let opened = ctx
        .cipher_update(ct, Some(&mut out))
        .and_then(|n| ctx.cipher_final(&mut out[n..]));
    Ok(opened.ok().map(|_| out))
}

extern "C" {
    fn SSL_CTX_new_ex(
        libctx: *mut OSSL_LIB_CTX,
        propq: *const c_char,
        method: *const openssl_sys::SSL_METHOD,
    ) -> *mut openssl_sys::SSL_CTX;
    fn OSSL_PROVIDER_add_builtin(
        libctx: *mut OSSL_LIB_CTX,
        name: *const c_char,
        init: ProviderInit,
    ) -> c_int;
    fn OSSL_PROVIDER_try_load(
        libctx: *mut OSSL_LIB_CTX,
        name: *const c_char,
        retain_fallbacks: c_int,
    ) -> *mut c_void;
    fn OSSL_PARAM_set_size_t(p: *mut OSSL_PARAM, val: usize) -> c_int;
    fn OSSL_PARAM_get_size_t(p: *const OSSL_PARAM, val: *mut usize) -> c_int;
    fn OSSL_PARAM_set_uint(p: *mut OSSL_PARAM, val: c_uint) -> c_int;
    fn OSSL_PARAM_set_int(p: *mut OSSL_PARAM, val: c_int) -> c_int;
    fn OSSL_PARAM_set_octet_string(p: *mut OSSL_PARAM, val: *const c_void, len: usize) -> c_int;
}

type ProviderInit = unsafe extern "C" fn(
    handle: *const c_void,
    core: *const Dispatch,
    out: *mut *const Dispatch,
    provctx: *mut *mut c_void,
) -> c_int;

/// `OSSL_DISPATCH`: a function number and the function.
#[repr(C)]
struct Dispatch {
    id: c_int,
    f: Option<unsafe extern "C" fn()>,
}

/// `OSSL_ALGORITHM`.
#[repr(C)]
struct Algorithm {
    names: *const c_char,
    properties: *const c_char,
    implementation: *const Dispatch,
    description: *const c_char,
}

/// Static tables of raw pointers to static data, read by OpenSSL only.
#[repr(transparent)]
struct Table<T: 'static>(&'static [T]);
// SAFETY: the tables are immutable and point only to 'static immutable data.
unsafe impl<T> Sync for Table<T> {}

/// Casts one of our entry points to the untyped pointer of a dispatch table;
/// OpenSSL casts it back by the function number.
macro_rules! entry {
    ($id:expr, $f:expr => $t:ty) => {
        Dispatch {
            id: $id,
            // SAFETY: function pointers have one size; OpenSSL calls each
            // through the signature its number stands for, which is ours.
            f: Some(unsafe { std::mem::transmute::<$t, unsafe extern "C" fn()>($f) }),
        }
    };
}

const END: Dispatch = Dispatch { id: 0, f: None };

static PROVIDER: Table<Dispatch> = Table(&[
    entry!(1024, teardown => unsafe extern "C" fn(*mut c_void)), // OSSL_FUNC_PROVIDER_TEARDOWN
    entry!(
        1027, // OSSL_FUNC_PROVIDER_QUERY_OPERATION
        query => unsafe extern "C" fn(*mut c_void, c_int, *mut c_int) -> *const Algorithm
    ),
    END,
]);

macro_rules! cipher_table {
    ($key:expr) => {
        Table(&[
            entry!(
                1,
                newctx::<$key> => unsafe extern "C" fn(*mut c_void) -> *mut c_void
            ),
            entry!(2, init::<true> => InitFn),
            entry!(3, init::<false> => InitFn),
            entry!(4, update => UpdateFn),
            entry!(5, final_ => FinalFn),
            entry!(6, cipher => UpdateFn),
            entry!(7, freectx => unsafe extern "C" fn(*mut c_void)),
            entry!(
                9,
                get_params::<$key> => unsafe extern "C" fn(*mut OSSL_PARAM) -> c_int
            ),
            entry!(
                10,
                get_ctx_params => unsafe extern "C" fn(*mut c_void, *mut OSSL_PARAM) -> c_int
            ),
            entry!(
                11,
                set_ctx_params => unsafe extern "C" fn(*mut c_void, *const OSSL_PARAM) -> c_int
            ),
            entry!(
                12,
                gettable_params => unsafe extern "C" fn(*mut c_void) -> *const OSSL_PARAM
            ),
            entry!(
                13,
                gettable_ctx_params
                    => unsafe extern "C" fn(*mut c_void, *mut c_void) -> *const OSSL_PARAM
            ),
            entry!(
                14,
                settable_ctx_params
                    => unsafe extern "C" fn(*mut c_void, *mut c_void) -> *const OSSL_PARAM
            ),
            END,
        ])
    };
}

type InitFn = unsafe extern "C" fn(
    *mut c_void,
    *const u8,
    usize,
    *const u8,
    usize,
    *const OSSL_PARAM,
) -> c_int;
type UpdateFn =
    unsafe extern "C" fn(*mut c_void, *mut u8, *mut usize, usize, *const u8, usize) -> c_int;
type FinalFn = unsafe extern "C" fn(*mut c_void, *mut u8, *mut usize, usize) -> c_int;

static AES_128_GCM: Table<Dispatch> = cipher_table!(16);
static AES_256_GCM: Table<Dispatch> = cipher_table!(32);

static ALGORITHMS: Table<Algorithm> = Table(&[
    Algorithm {
        names: c"AES-128-GCM:id-aes128-GCM:2.16.840.1.101.3.4.1.6".as_ptr(),
        properties: PROPERTIES.as_ptr(),
        implementation: AES_128_GCM.0.as_ptr(),
        description: c"AES-128-GCM from AWS-LC".as_ptr(),
    },
    Algorithm {
        names: c"AES-256-GCM:id-aes256-GCM:2.16.840.1.101.3.4.1.46".as_ptr(),
        properties: PROPERTIES.as_ptr(),
        implementation: AES_256_GCM.0.as_ptr(),
        description: c"AES-256-GCM from AWS-LC".as_ptr(),
    },
    Algorithm {
        names: ptr::null(),
        properties: ptr::null(),
        implementation: ptr::null(),
        description: ptr::null(),
    },
]);

/// A parameter descriptor for the gettable / settable lists.
const fn describe(key: &'static CStr, data_type: c_uint) -> OSSL_PARAM {
    OSSL_PARAM {
        key: key.as_ptr(),
        data_type,
        data: ptr::null_mut(),
        data_size: 0,
        return_size: usize::MAX, // OSSL_PARAM_UNMODIFIED
    }
}
const INT: c_uint = 1;
const UINT: c_uint = 2;
const PARAM_END: OSSL_PARAM = OSSL_PARAM {
    key: ptr::null(),
    data_type: 0,
    data: ptr::null_mut(),
    data_size: 0,
    return_size: 0,
};

static GETTABLE: Table<OSSL_PARAM> = Table(&[
    describe(c"mode", UINT),
    describe(c"keylen", UINT),
    describe(c"ivlen", UINT),
    describe(c"blocksize", UINT),
    describe(c"aead", INT),
    describe(c"custom-iv", INT),
    describe(c"cts", INT),
    describe(c"tls-multi", INT),
    describe(c"has-randkey", INT),
    PARAM_END,
]);
static GETTABLE_CTX: Table<OSSL_PARAM> = Table(&[
    describe(c"keylen", UINT),
    describe(c"ivlen", UINT),
    describe(c"taglen", UINT),
    describe(c"tag", OSSL_PARAM_OCTET_STRING),
    describe(c"tlsaadpad", UINT),
    PARAM_END,
]);
static SETTABLE_CTX: Table<OSSL_PARAM> = Table(&[
    describe(c"ivlen", UINT),
    describe(c"tag", OSSL_PARAM_OCTET_STRING),
    describe(c"tlsaad", OSSL_PARAM_OCTET_STRING),
    describe(c"tlsivfixed", OSSL_PARAM_OCTET_STRING),
    PARAM_END,
]);

/// Something non-null for OpenSSL to hand back: we keep no provider state.
static PROVCTX: u8 = 0;

unsafe extern "C" fn provider_init(
    _handle: *const c_void,
    _core: *const Dispatch,
    out: *mut *const Dispatch,
    provctx: *mut *mut c_void,
) -> c_int {
    *out = PROVIDER.0.as_ptr();
    *provctx = ptr::addr_of!(PROVCTX) as *mut c_void;
    1
}

unsafe extern "C" fn teardown(_provctx: *mut c_void) {}

unsafe extern "C" fn query(
    _provctx: *mut c_void,
    operation: c_int,
    no_cache: *mut c_int,
) -> *const Algorithm {
    if !no_cache.is_null() {
        *no_cache = 0;
    }
    if operation == OSSL_OP_CIPHER {
        ALGORITHMS.0.as_ptr()
    } else {
        ptr::null()
    }
}

unsafe extern "C" fn gettable_params(_provctx: *mut c_void) -> *const OSSL_PARAM {
    GETTABLE.0.as_ptr()
}
unsafe extern "C" fn gettable_ctx_params(_c: *mut c_void, _p: *mut c_void) -> *const OSSL_PARAM {
    GETTABLE_CTX.0.as_ptr()
}
unsafe extern "C" fn settable_ctx_params(_c: *mut c_void, _p: *mut c_void) -> *const OSSL_PARAM {
    SETTABLE_CTX.0.as_ptr()
}

/// Calls `f` with each parameter's key and the parameter, in one pass
/// (libssl asks for the nonce length of every record, so no search per key);
/// false as soon as `f` is.
unsafe fn each(
    params: *const OSSL_PARAM,
    mut f: impl FnMut(&[u8], *mut OSSL_PARAM) -> bool,
) -> bool {
    let mut p = params as *mut OSSL_PARAM;
    if p.is_null() {
        return true;
    }
    while !(*p).key.is_null() {
        if !f(CStr::from_ptr((*p).key).to_bytes(), p) {
            return false;
        }
        p = p.add(1);
    }
    true
}

unsafe extern "C" fn get_params<const KEY: usize>(params: *mut OSSL_PARAM) -> c_int {
    each(params, |key, p| match key {
        b"mode" => OSSL_PARAM_set_uint(p, EVP_CIPH_GCM_MODE) == 1,
        b"keylen" => OSSL_PARAM_set_size_t(p, KEY) == 1,
        b"ivlen" => OSSL_PARAM_set_size_t(p, NONCE_LEN) == 1,
        b"blocksize" => OSSL_PARAM_set_size_t(p, 1) == 1,
        b"aead" | b"custom-iv" => OSSL_PARAM_set_int(p, 1) == 1,
        b"cts" | b"tls-multi" | b"has-randkey" => OSSL_PARAM_set_int(p, 0) == 1,
        _ => true,
    }) as c_int
}

/// One cipher context: a key schedule and the message in progress.
struct Ctx {
    key_len: usize,
    /// AWS-LC's keyed context; null until a key is given.
    aead: *mut lc::EVP_AEAD_CTX,
    enc: bool,
    nonce: [u8; NONCE_LEN],
    nonce_set: bool,
    aad: Vec<u8>,
    tag: [u8; TAG_LEN],
    /// Decrypting: the expected tag was given.
    tag_set: bool,
    /// The one data update of this nonce is done (sealed / opened).
    done: bool,
    /// TLS 1.2: the additional data of the next record, its length field
    /// already corrected for the explicit nonce (and tag when opening).
    tls_aad: Option<[u8; TLS12_AAD_LEN]>,
    /// TLS 1.2: the fixed nonce part is set; the explicit part comes from
    /// the record (opening) or counts up from a random start (sealing).
    tls_fixed: bool,
    /// Messages sealed or opened, added to [`RECORDS`] when freed.
    records: u64,
}

impl Drop for Ctx {
    fn drop(&mut self) {
        if !self.aead.is_null() {
            // SAFETY: created by EVP_AEAD_CTX_new, freed once.
            unsafe { lc::EVP_AEAD_CTX_free(self.aead) };
        }
    }
}

impl Ctx {
    fn algorithm(&self) -> *const lc::EVP_AEAD {
        // SAFETY: plain accessors of static descriptions.
        unsafe {
            if self.key_len == 32 {
                lc::EVP_aead_aes_256_gcm()
            } else {
                lc::EVP_aead_aes_128_gcm()
            }
        }
    }

    /// Starts a message; `key` and `nonce` replace the current ones if given.
    unsafe fn init(
        &mut self,
        enc: bool,
        key: *const u8,
        key_len: usize,
        nonce: *const u8,
        nonce_len: usize,
    ) -> bool {
        self.enc = enc;
        self.aad.clear();
        self.tag_set = false;
        self.done = false;
        self.tls_aad = None;
        if !key.is_null() {
            if key_len != self.key_len {
                return false;
            }
            if !self.aead.is_null() {
                lc::EVP_AEAD_CTX_free(self.aead);
            }
            self.aead = lc::EVP_AEAD_CTX_new(self.algorithm(), key, key_len, TAG_LEN);
            self.tls_fixed = false;
            if self.aead.is_null() {
                return false;
            }
        }
        if !nonce.is_null() {
            if nonce_len != NONCE_LEN {
                return false;
            }
            ptr::copy_nonoverlapping(nonce, self.nonce.as_mut_ptr(), NONCE_LEN);
            self.nonce_set = true;
        }
        true
    }

    /// Seals or opens `len` bytes from `input` to `out` (the same or
    /// disjoint buffers) under the current nonce and additional data.
    unsafe fn crypt(
        &mut self,
        out: *mut u8,
        input: *const u8,
        len: usize,
        aad: *const u8,
        aad_len: usize,
        tag: *mut u8,
    ) -> bool {
        if self.aead.is_null() {
            return false;
        }
        let ok = if self.enc {
            let mut tag_len = 0;
            lc::EVP_AEAD_CTX_seal_scatter(
                self.aead,
                out,
                tag,
                &mut tag_len,
                TAG_LEN,
                self.nonce.as_ptr(),
                NONCE_LEN,
                input,
                len,
                ptr::null(),
                0,
                aad,
                aad_len,
            ) == 1
                && tag_len == TAG_LEN
        } else {
            let ok = lc::EVP_AEAD_CTX_open_gather(
                self.aead,
                out,
                self.nonce.as_ptr(),
                NONCE_LEN,
                input,
                len,
                tag,
                TAG_LEN,
                aad,
                aad_len,
            ) == 1;
            if !ok && len > 0 {
                std::slice::from_raw_parts_mut(out, len).zeroize();
            }
            ok
        };
        self.records += u64::from(ok);
        ok
    }

    /// The one data step of a message (TLS 1.3 and general use).
    unsafe fn data(&mut self, out: *mut u8, input: *const u8, len: usize) -> bool {
        if self.done || !self.nonce_set || (!self.enc && !self.tag_set) {
            return false;
        }
        self.done = true;
        // A nonce serves one message: the next needs a new one (as OpenSSL's
        // own GCM, which refuses to encrypt twice under one IV).
        self.nonce_set = false;
        let mut tag = self.tag;
        let ok = self.crypt(
            out,
            input,
            len,
            self.aad.as_ptr(),
            self.aad.len(),
            tag.as_mut_ptr(),
        );
        if self.enc && ok {
            self.tag = tag;
        }
        ok
    }

    /// TLS 1.2: one record in place: explicit nonce, payload, tag.
    unsafe fn tls12_record(
        &mut self,
        buf: *mut u8,
        input: *const u8,
        len: usize,
        out_len: &mut usize,
    ) -> bool {
        let Some(aad) = self.tls_aad.take() else {
            return false;
        };
        if !std::ptr::eq(buf, input) || len < TLS12_EXPLICIT_LEN + TAG_LEN || !self.tls_fixed {
            return false;
        }
        let explicit = self.nonce.as_mut_ptr().add(TLS12_FIXED_LEN);
        if self.enc {
            ptr::copy_nonoverlapping(explicit, buf, TLS12_EXPLICIT_LEN);
        } else {
            ptr::copy_nonoverlapping(buf, explicit, TLS12_EXPLICIT_LEN);
        }
        let payload = buf.add(TLS12_EXPLICIT_LEN);
        let plen = len - TLS12_EXPLICIT_LEN - TAG_LEN;
        let ok = self.crypt(
            payload,
            payload,
            plen,
            aad.as_ptr(),
            aad.len(),
            payload.add(plen),
        );
        if self.enc {
            // The invocation counter: the next record's explicit nonce.
            let counter = &mut self.nonce[TLS12_FIXED_LEN..];
            for b in counter.iter_mut().rev() {
                *b = b.wrapping_add(1);
                if *b != 0 {
                    break;
                }
            }
        }
        *out_len = if self.enc { len } else { plen };
        ok
    }
}

unsafe extern "C" fn newctx<const KEY: usize>(_provctx: *mut c_void) -> *mut c_void {
    Box::into_raw(Box::new(Ctx {
        key_len: KEY,
        aead: ptr::null_mut(),
        enc: true,
        nonce: [0; NONCE_LEN],
        nonce_set: false,
        aad: Vec::new(),
        tag: [0; TAG_LEN],
        tag_set: false,
        done: false,
        tls_aad: None,
        tls_fixed: false,
        records: 0,
    })) as *mut c_void
}

unsafe extern "C" fn freectx(ctx: *mut c_void) {
    if !ctx.is_null() {
        let mut c = Box::from_raw(ctx as *mut Ctx);
        RECORDS.fetch_add(c.records, Ordering::Relaxed);
        c.nonce.zeroize();
        drop(c);
    }
}

unsafe fn ctx<'a>(p: *mut c_void) -> Option<&'a mut Ctx> {
    (p as *mut Ctx).as_mut()
}

/// `encrypt_init` (`ENC`) and `decrypt_init`.
unsafe extern "C" fn init<const ENC: bool>(
    c: *mut c_void,
    key: *const u8,
    key_len: usize,
    nonce: *const u8,
    nonce_len: usize,
    params: *const OSSL_PARAM,
) -> c_int {
    let Some(c) = ctx(c) else { return 0 };
    (c.init(ENC, key, key_len, nonce, nonce_len) && apply(c, params)) as c_int
}

/// Whether two buffers overlap other than exactly (which AES-GCM cannot do).
fn overlap_badly(out: *const u8, input: *const u8, len: usize) -> bool {
    let (o, i) = (out as usize, input as usize);
    o != i && o < i.wrapping_add(len) && i < o.wrapping_add(len)
}

unsafe extern "C" fn update(
    c: *mut c_void,
    out: *mut u8,
    out_len: *mut usize,
    out_size: usize,
    input: *const u8,
    len: usize,
) -> c_int {
    let Some(c) = ctx(c) else { return 0 };
    if out_len.is_null() {
        return 0;
    }
    *out_len = 0;
    if c.tls_aad.is_some() {
        return (out_size >= len && c.tls12_record(out, input, len, &mut *out_len)) as c_int;
    }
    if out.is_null() {
        // Additional data, before the data itself.
        if c.done || c.aad.len() + len > MAX_AAD || (input.is_null() && len > 0) {
            return 0;
        }
        if len > 0 {
            c.aad
                .extend_from_slice(std::slice::from_raw_parts(input, len));
        }
        *out_len = len;
        return 1;
    }
    if len == 0 {
        return 1;
    }
    if input.is_null()
        || out_size < len
        || overlap_badly(out, input, len)
        || !c.data(out, input, len)
    {
        return 0;
    }
    *out_len = len;
    1
}

unsafe extern "C" fn final_(
    c: *mut c_void,
    _out: *mut u8,
    out_len: *mut usize,
    _out_size: usize,
) -> c_int {
    let Some(c) = ctx(c) else { return 0 };
    if out_len.is_null() || c.tls_aad.is_some() {
        return 0;
    }
    *out_len = 0;
    if !c.done {
        // A message without data: only the tag over the additional data.
        let mut none = [0u8; 1];
        let p = none.as_mut_ptr();
        return c.data(p, p, 0) as c_int;
    }
    1
}

unsafe extern "C" fn cipher(
    c: *mut c_void,
    out: *mut u8,
    out_len: *mut usize,
    out_size: usize,
    input: *const u8,
    len: usize,
) -> c_int {
    if input.is_null() && !out.is_null() {
        return final_(c, out, out_len, out_size);
    }
    update(c, out, out_len, out_size, input, len)
}

/// An octet-string parameter's bytes (the pointer may be null).
unsafe fn octets(p: *const OSSL_PARAM) -> Option<(*const u8, usize)> {
    let p = p.as_ref()?;
    (p.data_type == OSSL_PARAM_OCTET_STRING).then_some((p.data as *const u8, p.data_size))
}

unsafe extern "C" fn set_ctx_params(c: *mut c_void, params: *const OSSL_PARAM) -> c_int {
    let Some(c) = ctx(c) else { return 0 };
    apply(c, params) as c_int
}

unsafe fn apply(c: &mut Ctx, params: *const OSSL_PARAM) -> bool {
    each(params, |key, p| match key {
        b"ivlen" => {
            let mut n = 0;
            OSSL_PARAM_get_size_t(p, &mut n) == 1 && n == NONCE_LEN
        }
        b"tag" => set_tag(c, p),
        b"tlsaad" => set_tls_aad(c, p),
        b"tlsivfixed" => set_tls_fixed(c, p),
        _ => true,
    })
}

/// The expected tag (opening); only whole tags, and when sealing only the
/// length may be given.
unsafe fn set_tag(c: &mut Ctx, p: *const OSSL_PARAM) -> bool {
    let Some((data, len)) = octets(p) else {
        return false;
    };
    if len != TAG_LEN || (c.enc && !data.is_null()) {
        return false;
    }
    if !data.is_null() {
        ptr::copy_nonoverlapping(data, c.tag.as_mut_ptr(), TAG_LEN);
        c.tag_set = true;
    }
    true
}

/// TLS 1.2: the additional data of the next record.
unsafe fn set_tls_aad(c: &mut Ctx, p: *const OSSL_PARAM) -> bool {
    let Some((data, len)) = octets(p) else {
        return false;
    };
    if data.is_null() || len != TLS12_AAD_LEN {
        return false;
    }
    let mut aad = [0u8; TLS12_AAD_LEN];
    ptr::copy_nonoverlapping(data, aad.as_mut_ptr(), TLS12_AAD_LEN);
    // The record length in the header counts the explicit nonce (and, when
    // opening, the tag); the additional data counts the payload.
    let total = usize::from(u16::from_be_bytes([aad[11], aad[12]]));
    let overhead = TLS12_EXPLICIT_LEN + if c.enc { 0 } else { TAG_LEN };
    let Some(payload) = total.checked_sub(overhead) else {
        return false;
    };
    aad[11..].copy_from_slice(&(payload as u16).to_be_bytes());
    c.tls_aad = Some(aad);
    true
}

/// TLS 1.2: the fixed nonce part; sealing starts the explicit part at random.
unsafe fn set_tls_fixed(c: &mut Ctx, p: *const OSSL_PARAM) -> bool {
    let Some((data, len)) = octets(p) else {
        return false;
    };
    if data.is_null() || len != TLS12_FIXED_LEN {
        return false;
    }
    ptr::copy_nonoverlapping(data, c.nonce.as_mut_ptr(), TLS12_FIXED_LEN);
    if c.enc && openssl::rand::rand_bytes(&mut c.nonce[TLS12_FIXED_LEN..]).is_err() {
        return false;
    }
    c.nonce_set = true;
    c.tls_fixed = true;
    true
}

unsafe extern "C" fn get_ctx_params(c: *mut c_void, params: *mut OSSL_PARAM) -> c_int {
    let Some(c) = ctx(c) else { return 0 };
    each(params, |key, p| match key {
        b"keylen" => OSSL_PARAM_set_size_t(p, c.key_len) == 1,
        b"ivlen" => OSSL_PARAM_set_size_t(p, NONCE_LEN) == 1,
        b"taglen" | b"tlsaadpad" => OSSL_PARAM_set_size_t(p, TAG_LEN) == 1,
        // Only after sealing, and only whole.
        b"tag" => match octets(p) {
            Some((_, len)) if c.enc && c.done && len == TAG_LEN => {
                OSSL_PARAM_set_octet_string(p, c.tag.as_ptr() as *const c_void, TAG_LEN) == 1
            }
            _ => false,
        },
        _ => true,
    }) as c_int
}

#[cfg(test)]
mod tests {
    use super::*;

    const THEIRS: &str = "provider=default";

    fn seal(
        props: &str,
        name: &str,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        msg: &[u8],
    ) -> (Vec<u8>, [u8; 16]) {
        evp_seal(props, name, key, nonce, aad, msg).unwrap()
    }

    /// `None` when the message does not authenticate; set-up must work.
    fn open(
        props: &str,
        name: &str,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        ct: &[u8],
        tag: &[u8],
    ) -> Option<Vec<u8>> {
        evp_open(props, name, key, nonce, aad, ct, tag).unwrap()
    }

    fn skip() -> bool {
        if active() {
            return false;
        }
        eprintln!("SKIPPED: the AES-GCM provider is not active with this OpenSSL");
        true
    }

    #[test]
    fn seals_and_opens_like_openssl() {
        if skip() {
            return;
        }
        let mut rng = 0x1234_5678_u32;
        let mut bytes = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 17;
                    rng ^= rng << 5;
                    rng as u8
                })
                .collect()
        };
        for (name, klen) in [("AES-128-GCM", 16), ("AES-256-GCM", 32)] {
            for len in [0, 1, 15, 16, 17, 255, 16384 + 17] {
                let (key, nonce, aad, msg) = (bytes(klen), bytes(12), bytes(len % 23), bytes(len));
                let ours = seal(OURS, name, &key, &nonce, &aad, &msg);
                let theirs = seal(THEIRS, name, &key, &nonce, &aad, &msg);
                assert_eq!(ours, theirs, "{name}, {len} bytes");
                // Each opens the other's message; tampering fails.
                assert_eq!(
                    open(OURS, name, &key, &nonce, &aad, &theirs.0, &theirs.1).as_deref(),
                    Some(&msg[..])
                );
                assert_eq!(
                    open(THEIRS, name, &key, &nonce, &aad, &ours.0, &ours.1).as_deref(),
                    Some(&msg[..])
                );
                let mut tag = ours.1;
                tag[15] ^= 0x80;
                assert_eq!(open(OURS, name, &key, &nonce, &aad, &ours.0, &tag), None);
                if len > 0 {
                    let mut ct = ours.0.clone();
                    ct[len / 2] ^= 1;
                    assert_eq!(open(OURS, name, &key, &nonce, &aad, &ct, &ours.1), None);
                }
                let mut aad2 = aad.clone();
                aad2.push(0);
                assert_eq!(
                    open(OURS, name, &key, &nonce, &aad2, &ours.0, &ours.1),
                    None
                );
            }
        }
    }

    #[test]
    fn refuses_what_it_cannot_do_right() {
        if skip() {
            return;
        }
        let c = Cipher::fetch(None, "AES-128-GCM", Some(OURS)).unwrap();
        // Data in two updates under one nonce.
        let mut ctx = CipherCtx::new().unwrap();
        ctx.encrypt_init(Some(&c), Some(&[1; 16]), Some(&[2; 12]))
            .unwrap();
        let mut out = [0; 8];
        ctx.cipher_update(&[3; 4], Some(&mut out)).unwrap();
        assert!(ctx.cipher_update(&[3; 4], Some(&mut out[4..])).is_err());
        // Another nonce length.
        let mut ctx = CipherCtx::new().unwrap();
        ctx.encrypt_init(Some(&c), None, None).unwrap();
        assert!(ctx.set_iv_length(16).is_err());
        // Opening without the expected tag.
        let mut ctx = CipherCtx::new().unwrap();
        ctx.decrypt_init(Some(&c), Some(&[1; 16]), Some(&[2; 12]))
            .unwrap();
        assert!(ctx.cipher_update(&[3; 4], Some(&mut out)).is_err());
        // A second message under the same nonce.
        let mut ctx = CipherCtx::new().unwrap();
        ctx.encrypt_init(Some(&c), Some(&[1; 16]), Some(&[2; 12]))
            .unwrap();
        let n = ctx.cipher_update(&[3; 4], Some(&mut out)).unwrap();
        ctx.cipher_final(&mut out[n..]).unwrap();
        ctx.encrypt_init(None, None, None).unwrap();
        assert!(ctx.cipher_update(&[3; 4], Some(&mut out)).is_err());
        // A short tag.
        let mut ctx = CipherCtx::new().unwrap();
        ctx.decrypt_init(Some(&c), Some(&[1; 16]), Some(&[2; 12]))
            .unwrap();
        assert!(ctx.set_tag(&[0; 12]).is_err());
    }
}
