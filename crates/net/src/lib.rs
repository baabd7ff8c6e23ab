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
