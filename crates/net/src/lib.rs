//! Bacula connections over tokio: framed packets on a TCP stream in clear
//! text or TLS, and the login drivers that run the `baculink-proto` handshake
//! machines and perform the TLS they ask for with `baculink-tls`.
//!
//! Each connection is owned by one [`BSock`] (one writer); daemons see only an
//! authenticated `BSock` and a [`Peer`] record.

mod auth;
mod bsock;
mod error;
mod stream;

pub use auth::{accept, connect, login, ClientSetup, Peer, PeerSetup, ServerSetup};
pub use bsock::BSock;
pub use error::{LoginError, NetError};

/// Keeps freed packet buffers in the heap instead of returning them to the
/// kernel; a program calls it first thing in `main`. Every received packet
/// is a fresh 64 KiB buffer (the previous one is still queued for the volume
/// or the file); with glibc's defaults the heap top was trimmed and faulted
/// back in on nearly every packet, which cost the Storage daemon a third of
/// its CPU on a TLS backup. At most 8 MiB of free heap stay mapped.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune_allocator() {
    // SAFETY: mallopt only sets allocator parameters; it is called before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
    }
}

/// Nothing to tune outside glibc.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune_allocator() {}
