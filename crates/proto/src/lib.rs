//! Sans-IO core of Bacula's network protocol.
//!
//! Nothing here touches a socket, a clock, a random source or OpenSSL: callers
//! feed bytes, packets, the current time and random numbers in, and get packets
//! and actions ("send this", "start TLS as PSK", "done", "refuse because ...")
//! back. The `baculink-net` crate drives these machines over tokio and OpenSSL.
//!
//! * [`frame`]: the 4-byte packet header, signals, LZ4 comm-line compression.
//! * [`base64`]: Bacula's own base64 variant (used for CRAM-MD5 responses).
//! * [`cram`]: CRAM-MD5 challenge, response and verification; key derivation.
//! * [`hello`]: every Hello / starttls / final line of every pairing, both dialects.
//! * [`negotiate`]: TLS requirement negotiation (9.6 `ssl=N`, 13.x `tlspsk=N`).
//! * [`handshake`]: client and server login state machines.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod base64;
pub mod cram;
pub mod frame;
pub mod handshake;
pub mod hello;
pub mod job;
pub mod negotiate;
pub mod scan;
mod secret;

pub use secret::Secret;
