//! `bacula-fd.conf`: the file daemon's configuration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use baculink_proto::Secret;

use crate::ast::Resource;
use crate::dir::{Named, DEFAULT_DIR_PORT, DEFAULT_FD_PORT};
use crate::error::{ConfigError, Location, Warning};
use crate::fields::{addresses, unknown_resource, Names, Reader};
use crate::messages::Messages;
use crate::tls::{validate_resource, TlsResource, TlsRole, TlsSettings};
use crate::ListenAddress;

const FILEDAEMON_KNOWN: &[&str] = &[
    "maximumunauthenticatedconnections",
    "fipsrequire",
    "fdport",
    "fdaddress",
    "fdaddresses",
    "fdsourceaddress",
    "sourceaddress",
    "workingdirectory",
    "piddirectory",
    "subsysdirectory",
    "scriptsdirectory",
    "plugindirectory",
    "pluginnames",
    "maximumconcurrentjobs",
    "messages",
    "sdconnecttimeout",
    "heartbeatinterval",
    "maximumnetworkbuffersize",
    "pkisignatures",
    "pkiencryption",
    "pkikeypair",
    "pkisigner",
    "pkimasterkey",
    "pkicipher",
    "pkidigest",
    "maximumbandwidthperjob",
    "commcompression",
    "disablecommand",
    "statisticsretention",
    "verid",
    "snapshotcommand",
];

const DIRECTOR_KNOWN: &[&str] = &[
    "password",
    "address",
    "dirport",
    "monitor",
    "remote",
    "console",
    "connecttodirector",
    "reconnectiontime",
    "schedule",
    "maximumbandwidthperjob",
    "disablecommand",
    "allowedscriptdir",
    "allowedbackupdirectories",
    "excludedbackupdirectories",
    "allowedrestoredirectories",
    "excludedrestoredirectories",
];

const CONSOLE_KNOWN: &[&str] = &["password", "address", "dirport", "director"];

/// The `FileDaemon` (alias `Client`) resource: this file daemon itself.
#[derive(Clone, Debug)]
pub struct FileDaemon {
    /// `Name`.
    pub name: String,
    /// Where the resource starts.
    pub at: Location,
    /// `FDport` (9102).
    pub port: u16,
    /// `FDAddress`.
    pub address: Option<String>,
    /// `FDAddresses = { ... }`.
    pub addresses: Vec<ListenAddress>,
    /// `WorkingDirectory`.
    pub working_directory: Option<PathBuf>,
    /// `PidDirectory`.
    pub pid_directory: Option<PathBuf>,
    /// `Plugin Directory`.
    pub plugin_directory: Option<PathBuf>,
    /// `Maximum Concurrent Jobs` (20).
    pub max_concurrent_jobs: u32,
    /// `Maximum Unauthenticated Connections` (baculink; 32): logins in
    /// progress accepted at once from one source address.
    pub max_unauthenticated: u32,
    /// `SD Connect Timeout` (30 min).
    pub sd_connect_timeout: Duration,
    /// `Heartbeat Interval` (5 min).
    pub heartbeat_interval: Duration,
    /// `CommCompression` (yes).
    pub comm_compression: bool,
    /// TLS directives (client role towards storage daemons).
    pub tls: TlsSettings,
    /// Every directive as written.
    pub resource: Resource,
}

impl FileDaemon {
    /// Where to listen: `FDAddresses` entries (port defaulting to `FDport`),
    /// else `FDAddress` (None = all addresses) and `FDport`.
    pub fn listen(&self) -> Vec<(Option<String>, u16)> {
        crate::listen(&self.addresses, &self.address, self.port)
    }

    fn from_resource(res: &Resource, w: &mut Vec<Warning>) -> Result<Self, ConfigError> {
        let r = Reader::new(res, "FileDaemon");
        let f = FileDaemon {
            name: r.name()?,
            at: res.at.clone(),
            port: r.port(&["fdport"], DEFAULT_FD_PORT)?,
            address: r.string(&["fdaddress"])?,
            addresses: addresses(&r, "fdaddresses")?,
            working_directory: r.path(&["workingdirectory"])?,
            pid_directory: r.path(&["piddirectory"])?,
            plugin_directory: r.path(&["plugindirectory"])?,
            max_concurrent_jobs: r.u32(&["maximumconcurrentjobs"], 20)?,
            max_unauthenticated: r.u32(
                &["maximumunauthenticatedconnections"],
                crate::dir::DEFAULT_MAX_UNAUTHENTICATED,
            )?,
            sd_connect_timeout: r.time(&["sdconnecttimeout"], Duration::from_secs(1800))?,
            heartbeat_interval: r.time(&["heartbeatinterval"], Duration::from_secs(300))?,
            comm_compression: r.bool(&["commcompression"], true)?,
            tls: r.tls()?,
            resource: res.clone(),
        };
        r.unknown(FILEDAEMON_KNOWN, true, w)?;
        Ok(f)
    }
}

/// A `Director` resource: a Director allowed to contact this file daemon.
#[derive(Clone, Debug)]
pub struct Director {
    /// `Name` (what the Director sends in its Hello).
    pub name: String,
    /// Where the resource starts.
    pub at: Location,
    /// `Password` shared with that Director.
    pub password: Secret,
    /// `Monitor` (no): status only (tray monitors).
    pub monitor: bool,
    /// `Remote` (no).
    pub remote: bool,
    /// `Address` (13.x, for `ConnectToDirector`).
    pub address: Option<String>,
    /// `DirPort` (9101, 13.x).
    pub port: u16,
    /// `ConnectToDirector` (no, 13.x).
    pub connect_to_director: bool,
    /// `ReconnectionTime` (45 min, 13.x).
    pub reconnection_time: Duration,
    /// TLS directives (server role towards the Director).
    pub tls: TlsSettings,
    /// Every directive as written; passwords appear only as secrets.
    pub resource: Resource,
}

impl Director {
    fn from_resource(res: &Resource, w: &mut Vec<Warning>) -> Result<Self, ConfigError> {
        let r = Reader::new(res, "Director");
        let d = Director {
            name: r.name()?,
            at: res.at.clone(),
            password: r.required_password(&["password"])?,
            monitor: r.bool(&["monitor"], false)?,
            remote: r.bool(&["remote"], false)?,
            address: r.string(&["address"])?,
            port: r.port(&["dirport"], DEFAULT_DIR_PORT)?,
            connect_to_director: r.bool(&["connecttodirector"], false)?,
            reconnection_time: r.time(&["reconnectiontime"], Duration::from_secs(45 * 60))?,
            tls: r.tls()?,
            resource: res.clone(),
        };
        r.unknown(DIRECTOR_KNOWN, true, w)?;
        Ok(d)
    }
}

/// A `Console` resource (13.x console/proxy mode).
#[derive(Clone, Debug)]
pub struct Console {
    /// `Name`.
    pub name: String,
    /// Where the resource starts.
    pub at: Location,
    /// `Password`.
    pub password: Secret,
    /// `Address`.
    pub address: Option<String>,
    /// `DirPort` (9101).
    pub port: u16,
    /// TLS directives.
    pub tls: TlsSettings,
}

impl Console {
    fn from_resource(res: &Resource, w: &mut Vec<Warning>) -> Result<Self, ConfigError> {
        let r = Reader::new(res, "Console");
        let c = Console {
            name: r.name()?,
            at: res.at.clone(),
            password: r.required_password(&["password"])?,
            address: r.string(&["address"])?,
            port: r.port(&["dirport"], DEFAULT_DIR_PORT)?,
            tls: r.tls()?,
        };
        r.unknown(CONSOLE_KNOWN, true, w)?;
        Ok(c)
    }
}

/// A parsed `bacula-fd.conf`.
#[derive(Clone, Debug)]
pub struct FdConfig {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// The FileDaemon resource (exactly one).
    pub file_daemon: FileDaemon,
    /// Directors allowed to connect.
    pub directors: Vec<Director>,
    /// Console resources (13.x).
    pub consoles: Vec<Console>,
    /// Messages resources.
    pub messages: Vec<Messages>,
    /// Other known resource types (Schedule, Statistics, ...), as written.
    pub other: Vec<Named>,
}

impl FdConfig {
    /// Loads `path` (and its includes).
    pub fn load(path: impl AsRef<Path>) -> Result<(Self, Vec<Warning>), ConfigError> {
        let path = path.as_ref();
        Self::from_resources(path, crate::parse::parse_file(path)?)
    }

    /// Parses `text` as if read from a file named `name`.
    pub fn parse_str(name: &str, text: &str) -> Result<(Self, Vec<Warning>), ConfigError> {
        Self::from_resources(Path::new(name), crate::parse::parse_text(name, text)?)
    }

    pub(crate) fn from_resources(
        path: &Path,
        resources: Vec<Resource>,
    ) -> Result<(Self, Vec<Warning>), ConfigError> {
        let mut w = Vec::new();
        let mut names = Names::default();
        let mut daemons = Vec::new();
        let mut directors = Vec::new();
        let mut consoles = Vec::new();
        let mut messages = Vec::new();
        let mut other = Vec::new();
        for res in resources {
            match res.key.as_str() {
                "filedaemon" | "client" => {
                    let f = FileDaemon::from_resource(&res, &mut w)?;
                    names.add("FileDaemon", &f.name, &f.at)?;
                    daemons.push(f);
                }
                "director" => {
                    let d = Director::from_resource(&res, &mut w)?;
                    names.add("Director", &d.name, &d.at)?;
                    directors.push(d);
                }
                "console" => {
                    let c = Console::from_resource(&res, &mut w)?;
                    names.add("Console", &c.name, &c.at)?;
                    consoles.push(c);
                }
                "messages" => {
                    let m = Messages::from_resource(&res, &mut w)?;
                    names.add("Messages", &m.name, &m.at)?;
                    messages.push(m);
                }
                "schedule" | "statistics" | "collector" => {
                    let label = match res.key.as_str() {
                        "schedule" => "Schedule",
                        "statistics" => "Statistics",
                        _ => "Collector",
                    };
                    let name = Reader::new(&res, label).name()?;
                    names.add(label, &name, &res.at)?;
                    other.push(Named {
                        name,
                        resource: res,
                    });
                }
                _ => w.push(unknown_resource(&res)),
            }
        }
        let file_daemon = crate::exactly_one(daemons, path, "FileDaemon", |f| &f.at)?;
        if directors.is_empty() {
            return Err(ConfigError::resource(
                &file_daemon.at,
                "no Director resource defined: at least one Director must be allowed to connect",
            ));
        }
        let cfg = FdConfig {
            path: path.to_path_buf(),
            file_daemon,
            directors,
            consoles,
            messages,
            other,
        };
        Ok((cfg, w))
    }

    /// The Director resource with this name.
    pub fn director(&self, name: &str) -> Option<&Director> {
        self.directors.iter().find(|d| d.name == name)
    }

    /// Every resource with TLS settings.
    pub fn tls_resources(&self) -> Vec<&dyn TlsResource> {
        let mut v: Vec<&dyn TlsResource> = vec![&self.file_daemon];
        v.extend(self.directors.iter().map(|d| d as &dyn TlsResource));
        v.extend(self.consoles.iter().map(|c| c as &dyn TlsResource));
        v
    }

    /// Start-up TLS validation (protocol.md §8.4); the first problem found.
    pub fn validate_tls(&self) -> Result<(), ConfigError> {
        self.tls_resources()
            .into_iter()
            .try_for_each(validate_resource)
    }
}

tls_resource!(FileDaemon, |_: &FileDaemon| "FileDaemon", TlsRole::Client);
tls_resource!(Director, |_: &Director| "Director", TlsRole::Server);
// §6.1 calls the FD's Console context a TLS client, but start-up validation
// (§8.4) treats it like the Director resource: certificate and key required.
tls_resource!(Console, |_: &Console| "Console", TlsRole::Server);
