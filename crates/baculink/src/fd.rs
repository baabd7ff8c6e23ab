//! `baculink fd`: being written.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::daemon::{CertStore, Daemon};

/// The File daemon.
pub struct FileDaemon {
    certs: CertStore,
}

impl Daemon for FileDaemon {
    const KIND: &'static str = "fd";
    fn load(_path: &Path, _auth_timeout: Duration) -> Result<Self, String> {
        Err("the file daemon is not available yet".into())
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
