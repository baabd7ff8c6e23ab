//! `bacula-fd.conf`: the file daemon's configuration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use baculink_proto::Secret;

use crate::ast::Resource;
use crate::daemon::Daemon;
use crate::dir::{Named, DEFAULT_DIR_PORT, DEFAULT_FD_PORT};
use crate::error::{ConfigError, Location, Warning};
use crate::fields::{unknown_resource, Names, Reader};
use crate::messages::Messages;
use crate::tls::{TlsResource, TlsRole, TlsSettings};

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
    /// `FDport`, `FDAddress(es)`, directories and limits.
    pub daemon: Daemon,
    /// `Plugin Directory`.
    pub plugin_directory: Option<PathBuf>,
    /// `SD Connect Timeout` (30 min).
    pub sd_connect_timeout: Duration,
    /// TLS directives (client role towards storage daemons).
    pub tls: TlsSettings,
    /// Every directive as written.
    pub resource: Resource,
}

impl FileDaemon {
    fn from_resource(res: &Resource, w: &mut Vec<Warning>) -> Result<Self, ConfigError> {
        let r = Reader::new(res, "FileDaemon");
        let f = FileDaemon {
            name: r.name()?,
            at: res.at.clone(),
            daemon: Daemon::read(&r, "fd", DEFAULT_FD_PORT)?,
            plugin_directory: r.path(&["plugindirectory"])?,
            sd_connect_timeout: r.time(&["sdconnecttimeout"], Duration::from_secs(1800))?,
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

config_file!(FdConfig);

impl FdConfig {
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
                    names.keep(&mut daemons, FileDaemon::from_resource(&res, &mut w)?)?
                }
                "director" => names.keep(&mut directors, Director::from_resource(&res, &mut w)?)?,
                "console" => names.keep(&mut consoles, Console::from_resource(&res, &mut w)?)?,
                "messages" => names.keep(&mut messages, Messages::from_resource(&res, &mut w)?)?,
                "schedule" | "statistics" | "collector" => {
                    let label = match res.key.as_str() {
                        "schedule" => "Schedule",
                        "statistics" => "Statistics",
                        _ => "Collector",
                    };
                    other.push(Named::read(res, label, &mut names)?);
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
}

tls_resource!(FileDaemon, |_: &FileDaemon| "FileDaemon", TlsRole::Client);
tls_resource!(Director, |_: &Director| "Director", TlsRole::Server);
// §6.1 calls the FD's Console context a TLS client, but start-up validation
// (§8.4) treats it like the Director resource: certificate and key required.
tls_resource!(Console, |_: &Console| "Console", TlsRole::Server);
