//! Tuning an established session for bulk data (file data between the File
//! and Storage daemons).
//!
//! Our contexts keep OpenSSL's read-ahead off and release record buffers while
//! idle, so that TLS can be dropped at a quiet point and thousands of idle
//! consoles stay small. A data connection is the opposite case: it moves
//! gigabytes and is never dropped to clear text. With read-ahead on and a
//! large read buffer, OpenSSL reads many records per system call straight
//! into its own buffer, instead of one 5-byte header and one record at a time
//! through the network layer's staging buffer (one copy less per byte).
//!
//! That only pays from OpenSSL 3.2 on. The record layer of 3.0 and 3.1 moves
//! every unread byte of its read buffer to the front before each record, so an
//! eight-record buffer moves each byte about three and a half times: memmove
//! was a tenth of a bulk profile with 3.0, and the staging path used a twelfth
//! less CPU per GB in paired runs (bench/bulk.sh). With 3.6, read-ahead used a
//! tenth less than staging.

use foreign_types::ForeignTypeRef;
use tokio_openssl::SslStream;

/// OpenSSL's read buffer on a bulk session: eight full records.
pub const BULK_READ_BUFFER: usize = 8 * (16 * 1024 + 256);

/// `SSL_CTRL_CLEAR_MODE` in OpenSSL's ssl.h (SSL_clear_mode is a macro).
const SSL_CTRL_CLEAR_MODE: libc::c_int = 78;

mod ffi {
    use openssl_sys::SSL;
    extern "C" {
        pub fn SSL_set_read_ahead(s: *mut SSL, yes: libc::c_int);
        pub fn SSL_set_default_read_buffer_len(s: *mut SSL, len: libc::size_t);
    }
}

/// Whether the running OpenSSL reads ahead without shifting its read buffer
/// (3.2 and later; see the module documentation).
pub fn read_ahead_pays() -> bool {
    openssl::version::number() >= 0x3020_0000
}

/// Keeps the record buffers between reads and, where [`read_ahead_pays`],
/// turns on read-ahead with a [`BULK_READ_BUFFER`] read buffer. Returns
/// whether OpenSSL now reads ahead: if not, the caller should stage reads in
/// large chunks below TLS.
///
/// Only for a session that stays in TLS until it closes: with read-ahead,
/// bytes past the current record may sit inside OpenSSL, so TLS must never be
/// dropped after this (TLS Authenticate drops it during the login, before).
pub fn tune_for_bulk<S>(stream: &mut SslStream<S>) -> bool {
    let read_ahead = read_ahead_pays();
    let ssl = stream.ssl().as_ptr();
    // SAFETY: `ssl` is the live SSL of a stream we hold exclusively (`&mut`);
    // these calls only set per-connection parameters used by later reads.
    unsafe {
        openssl_sys::SSL_ctrl(
            ssl,
            SSL_CTRL_CLEAR_MODE,
            openssl_sys::SSL_MODE_RELEASE_BUFFERS,
            std::ptr::null_mut(),
        );
        if read_ahead {
            ffi::SSL_set_default_read_buffer_len(ssl, BULK_READ_BUFFER);
            ffi::SSL_set_read_ahead(ssl, 1);
        }
    }
    read_ahead
}
