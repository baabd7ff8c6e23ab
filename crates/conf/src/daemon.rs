//! What a daemon's own resource (Director, FileDaemon, Storage) says about
//! itself the same way in all three files: where it listens, its directories
//! and its limits.

use std::path::PathBuf;
use std::time::Duration;

use crate::dir::DEFAULT_MAX_UNAUTHENTICATED;
use crate::error::ConfigError;
use crate::fields::{addresses, Reader};
use crate::ListenAddress;

/// The directives the Director, FileDaemon and Storage resources share.
/// Only the listen directives' prefix (`DIR`, `FD`, `SD`) and the default
/// port differ, so one reader serves all three.
#[derive(Clone, Debug)]
pub struct Daemon {
    /// `DIRport` (9101), `FDport` (9102) or `SDPort` (9103).
    pub port: u16,
    /// `DIRAddress`, `FDAddress` or `SDAddress`.
    pub address: Option<String>,
    /// `DIRAddresses`, `FDAddresses` or `SDAddresses`
    /// `= { ip = { addr = ...; port = ... } ... }`.
    pub addresses: Vec<ListenAddress>,
    /// `WorkingDirectory`.
    pub working_directory: Option<PathBuf>,
    /// `PidDirectory`.
    pub pid_directory: Option<PathBuf>,
    /// `Maximum Concurrent Jobs` (20).
    pub max_concurrent_jobs: u32,
    /// `Maximum Unauthenticated Connections` (baculink; 32): logins in
    /// progress accepted at once from one source address.
    pub max_unauthenticated: u32,
    /// `Heartbeat Interval` (5 min).
    pub heartbeat_interval: Duration,
    /// `CommCompression` (yes).
    pub comm_compression: bool,
}

impl Daemon {
    /// Where to listen: the `*Addresses` entries (port defaulting to the
    /// `*port` directive), else the `*Address` (None = all addresses) and port.
    pub fn listen(&self) -> Vec<(Option<String>, u16)> {
        if self.addresses.is_empty() {
            return vec![(self.address.clone(), self.port)];
        }
        self.addresses
            .iter()
            .map(|a| (a.host.clone(), a.port.unwrap_or(self.port)))
            .collect()
    }

    /// Reads these directives; `prefix` is the normalized prefix of the
    /// listen directives (`dir`, `fd`, `sd`).
    pub(crate) fn read(
        r: &Reader<'_>,
        prefix: &str,
        default_port: u16,
    ) -> Result<Self, ConfigError> {
        let key = |suffix: &str| format!("{prefix}{suffix}");
        Ok(Daemon {
            port: r.port(&[&key("port")], default_port)?,
            address: r.string(&[&key("address")])?,
            addresses: addresses(r, &key("addresses"))?,
            working_directory: r.path(&["workingdirectory"])?,
            pid_directory: r.path(&["piddirectory"])?,
            max_concurrent_jobs: r.u32(&["maximumconcurrentjobs"], 20)?,
            max_unauthenticated: r.u32(
                &["maximumunauthenticatedconnections"],
                DEFAULT_MAX_UNAUTHENTICATED,
            )?,
            heartbeat_interval: r.time(&["heartbeatinterval"], Duration::from_secs(300))?,
            comm_compression: r.bool(&["commcompression"], true)?,
        })
    }
}
