//! `baculink sd`: being written.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::daemon::{CertStore, Daemon};

/// The Storage daemon.
pub struct StorageDaemon {
    certs: CertStore,
}

impl Daemon for StorageDaemon {
    const KIND: &'static str = "sd";
    fn load(_path: &Path, _auth_timeout: Duration) -> Result<Self, String> {
        Err("the storage daemon is not available yet".into())
    }
    fn listen(&self) -> Vec<SocketAddr> {
        Vec::new()
    }
    fn pid_directory(&self) -> Option<PathBuf> {
        None
    }
    fn certs(&self) -> &CertStore {
        &self.certs
    }
    async fn handle(self: Arc<Self>, _tcp: TcpStream, _addr: SocketAddr) {}
}
