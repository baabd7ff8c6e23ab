//! `bconsole.conf`: the console's configuration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use baculink_proto::Secret;

use crate::ast::Resource;
use crate::dir::DEFAULT_DIR_PORT;
use crate::error::{ConfigError, Location, Warning};
use crate::fields::{check_ref, unknown_resource, Names, Reader};
use crate::tls::{TlsResource, TlsRole, TlsSettings};

const DIRECTOR_KNOWN: &[&str] = &[
    "fipsrequire",
    "dirport",
    "address",
    "password",
    "heartbeatinterval",
    "commcompression",
    "hidden",
];

const CONSOLE_KNOWN: &[&str] = &[
    "fipsrequire",
    "password",
    "director",
    "heartbeatinterval",
    "rcfile",
    "historyfile",
    "historylength",
    "commcompression",
];

/// A `Director` resource: a Director this console can connect to.
#[derive(Clone, Debug)]
pub struct Director {
    /// `Name` (the Director's name, sent nowhere but used to pick it).
    pub name: String,
    /// Where the resource starts.
    pub at: Location,
    /// `Address` of the Director (also the name checked in its certificate).
    pub address: Option<String>,
    /// `DIRport` (9101).
    pub port: u16,
    /// `Password` of the default console.
    pub password: Secret,
    /// `Heartbeat Interval` (5 min).
    pub heartbeat_interval: Duration,
    /// TLS directives (client role).
    pub tls: TlsSettings,
}

impl Director {
    fn from_resource(res: &Resource, w: &mut Vec<Warning>) -> Result<Self, ConfigError> {
        let r = Reader::new(res, "Director");
        let d = Director {
            name: r.name()?,
            at: res.at.clone(),
            address: r.string(&["address"])?,
            port: r.port(&["dirport"], DEFAULT_DIR_PORT)?,
            password: r.required_password(&["password"])?,
            heartbeat_interval: r.time(&["heartbeatinterval"], Duration::from_secs(300))?,
            tls: r.tls()?,
        };
        r.unknown(DIRECTOR_KNOWN, true, w)?;
        Ok(d)
    }
}

/// A `Console` resource: log in as a named (restricted) console.
#[derive(Clone, Debug)]
pub struct Console {
    /// `Name` (sent in the Hello instead of `*UserAgent*`).
    pub name: String,
    /// Where the resource starts.
    pub at: Location,
    /// `Password` of that console.
    pub password: Secret,
    /// `Director`: the Director this console is for (None = any).
    pub director: Option<String>,
    /// `Heartbeat Interval` (5 min).
    pub heartbeat_interval: Duration,
    /// TLS directives (client role; used instead of the Director's).
    pub tls: TlsSettings,
}

impl Console {
    fn from_resource(res: &Resource, w: &mut Vec<Warning>) -> Result<Self, ConfigError> {
        let r = Reader::new(res, "Console");
        let c = Console {
            name: r.name()?,
            at: res.at.clone(),
            password: r.required_password(&["password"])?,
            director: r.name_ref(&["director"])?,
            heartbeat_interval: r.time(&["heartbeatinterval"], Duration::from_secs(300))?,
            tls: r.tls()?,
        };
        r.unknown(CONSOLE_KNOWN, true, w)?;
        Ok(c)
    }
}

/// A parsed `bconsole.conf`.
#[derive(Clone, Debug)]
pub struct ConsoleConfig {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// Directors (at least one).
    pub directors: Vec<Director>,
    /// Named consoles.
    pub consoles: Vec<Console>,
}

config_file!(ConsoleConfig);

impl ConsoleConfig {
    pub(crate) fn from_resources(
        path: &Path,
        resources: Vec<Resource>,
    ) -> Result<(Self, Vec<Warning>), ConfigError> {
        let mut w = Vec::new();
        let mut names = Names::default();
        let mut directors = Vec::new();
        let mut consoles = Vec::new();
        let mut console_res = Vec::new();
        for res in resources {
            match res.key.as_str() {
                "director" => names.keep(&mut directors, Director::from_resource(&res, &mut w)?)?,
                "console" => {
                    names.keep(&mut consoles, Console::from_resource(&res, &mut w)?)?;
                    console_res.push(res);
                }
                _ => w.push(unknown_resource(&res)),
            }
        }
        if directors.is_empty() {
            return Err(ConfigError::resource(
                &Location::new(path.display().to_string(), 1),
                "no Director resource defined (at least one is required)",
            ));
        }
        for res in &console_res {
            check_ref(res, "director", "Director", |n| {
                directors.iter().any(|d| d.name == n)
            })?;
        }
        Ok((
            ConsoleConfig {
                path: path.to_path_buf(),
                directors,
                consoles,
            },
            w,
        ))
    }

    /// The Director resource with this name.
    pub fn director(&self, name: &str) -> Option<&Director> {
        self.directors.iter().find(|d| d.name == name)
    }

    /// The Console resource to log in with when talking to `director`: the
    /// first one naming that Director, else the first one naming none.
    pub fn console_for(&self, director: &str) -> Option<&Console> {
        self.consoles
            .iter()
            .find(|c| c.director.as_deref() == Some(director))
            .or_else(|| self.consoles.iter().find(|c| c.director.is_none()))
    }

    /// Every resource with TLS settings.
    pub fn tls_resources(&self) -> Vec<&dyn TlsResource> {
        let mut v: Vec<&dyn TlsResource> = Vec::new();
        v.extend(self.directors.iter().map(|d| d as &dyn TlsResource));
        v.extend(self.consoles.iter().map(|c| c as &dyn TlsResource));
        v
    }
}

tls_resource!(Director, |_: &Director| "Director", TlsRole::Client);
tls_resource!(Console, |_: &Console| "Console", TlsRole::Client);
