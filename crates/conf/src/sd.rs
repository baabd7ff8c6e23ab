//! `bacula-sd.conf`: the storage daemon's configuration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use baculink_proto::Secret;

use crate::ast::Resource;
use crate::daemon::Daemon;
use crate::dir::{Named, DEFAULT_SD_PORT};
use crate::error::{ConfigError, Location, Warning};
use crate::fields::{check_ref, unknown_resource, Names, Reader};
use crate::messages::Messages;
use crate::tls::{TlsResource, TlsRole, TlsSettings};

const STORAGE_KNOWN: &[&str] = &[
    "maximumunauthenticatedconnections",
    "fipsrequire",
    "sdport",
    "sdaddress",
    "sdaddresses",
    "sdsourceaddress",
    "workingdirectory",
    "piddirectory",
    "subsysdirectory",
    "scriptsdirectory",
    "plugindirectory",
    "pluginnames",
    "maximumconcurrentjobs",
    "heartbeatinterval",
    "clientconnecttimeout",
    "clientconnectwait",
    "fdconnecttimeout",
    "sdconnecttimeout",
    "maximumnetworkbuffersize",
    "commcompression",
    "messages",
    "statisticsretention",
    "verid",
    "autoselect",
];

const DIRECTOR_KNOWN: &[&str] = &["password", "monitor", "maximumbandwidthperjob"];

const DEVICE_KNOWN: &[&str] = &[
    "mediatype",
    "archivedevice",
    "devicetype",
    "hardwareendofmedium",
    "hardwareendoffile",
    "forwardspacerecord",
    "forwardspacefile",
    "backwardspacerecord",
    "backwardspacefile",
    "bsfateom",
    "twoeof",
    "fastforwardspacefile",
    "usemtiocget",
    "checklabels",
    "labelmedia",
    "randomaccess",
    "automaticmount",
    "removablemedia",
    "alwaysopen",
    "autochanger",
    "closeonpoll",
    "blockpositioning",
    "changerdevice",
    "changercommand",
    "alertcommand",
    "controldevice",
    "lockcommand",
    "maximumchangerwait",
    "maximumopenwait",
    "maximumopenvolumes",
    "maximumrewindwait",
    "maximumunmountwait",
    "maximumnetworkbuffersize",
    "volumepollinterval",
    "minimumblocksize",
    "maximumblocksize",
    "maximumfilesize",
    "maximumvolumesize",
    "maximumconcurrentjobs",
    "maximumpartsize",
    "mountpoint",
    "mountcommand",
    "unmountcommand",
    "writepartcommand",
    "freespacecommand",
    "labeltype",
    "labelblocksize",
    "spooldirectory",
    "maximumspoolsize",
    "maximumjobspoolsize",
    "driveindex",
    "autoselect",
    "offlineonunmount",
    "blockchecksum",
    "norewindonclose",
    "readonly",
    "devicereservebymediatype",
    "enabled",
    "cloud",
    "syncondelete",
    "worm",
    "minimumfreespace",
    "drivetapealert",
    "requiresmount",
    "dedupengine",
    "maximumpoolwait",
];

const AUTOCHANGER_KNOWN: &[&str] = &["device", "changerdevice", "changercommand", "lockcommand"];

/// The `Storage` resource: this storage daemon itself.
#[derive(Clone, Debug)]
pub struct Storage {
    /// `Name`.
    pub name: String,
    /// Where the resource starts.
    pub at: Location,
    /// `SDPort`, `SDAddress(es)`, directories and limits.
    pub daemon: Daemon,
    /// `Plugin Directory`.
    pub plugin_directory: Option<PathBuf>,
    /// `Client Connect Timeout` (30 min; SD Calls Client).
    pub client_connect_timeout: Duration,
    /// `Client Connect Wait` (30 min): how long a job waits for its FD.
    pub client_connect_wait: Duration,
    /// TLS directives (server role towards file daemons).
    pub tls: TlsSettings,
    /// Every directive as written.
    pub resource: Resource,
}

impl Storage {
    fn from_resource(res: &Resource, w: &mut Vec<Warning>) -> Result<Self, ConfigError> {
        let r = Reader::new(res, "Storage");
        let s = Storage {
            name: r.name()?,
            at: res.at.clone(),
            daemon: Daemon::read(&r, "sd", DEFAULT_SD_PORT)?,
            plugin_directory: r.path(&["plugindirectory"])?,
            client_connect_timeout: r.time(&["clientconnecttimeout"], Duration::from_secs(1800))?,
            client_connect_wait: r.time(&["clientconnectwait"], Duration::from_secs(1800))?,
            tls: r.tls()?,
            resource: res.clone(),
        };
        r.unknown(STORAGE_KNOWN, true, w)?;
        Ok(s)
    }
}

/// A `Director` resource: a Director allowed to use this storage daemon.
#[derive(Clone, Debug)]
pub struct Director {
    /// `Name`.
    pub name: String,
    /// Where the resource starts.
    pub at: Location,
    /// `Password` shared with that Director.
    pub password: Secret,
    /// `Monitor` (no): status only.
    pub monitor: bool,
    /// TLS directives (server role towards the Director).
    pub tls: TlsSettings,
}

impl Director {
    fn from_resource(res: &Resource, w: &mut Vec<Warning>) -> Result<Self, ConfigError> {
        let r = Reader::new(res, "Director");
        let d = Director {
            name: r.name()?,
            at: res.at.clone(),
            password: r.required_password(&["password"])?,
            monitor: r.bool(&["monitor"], false)?,
            tls: r.tls()?,
        };
        r.unknown(DIRECTOR_KNOWN, true, w)?;
        Ok(d)
    }
}

/// A `Device` resource.
#[derive(Clone, Debug)]
pub struct Device {
    /// `Name` (what the Director's Storage `Device` names).
    pub name: String,
    /// Where the resource starts.
    pub at: Location,
    /// `Media Type`.
    pub media_type: String,
    /// `Archive Device` (a directory for File devices, a tape device, ...).
    pub archive_device: String,
    /// `Device Type` (File, Tape, Fifo, ...; guessed by Bacula when unset).
    pub device_type: Option<String>,
    /// `Maximum Concurrent Jobs`, when set.
    pub max_concurrent_jobs: Option<u32>,
    /// `LabelMedia` (no).
    pub label_media: bool,
    /// `Random Access` (no).
    pub random_access: bool,
    /// `AutomaticMount` (no).
    pub automatic_mount: bool,
    /// `RemovableMedia` (yes).
    pub removable_media: bool,
    /// `AlwaysOpen` (yes).
    pub always_open: bool,
    /// `Autochanger` (no).
    pub autochanger: bool,
    /// Every directive as written.
    pub resource: Resource,
}

impl Device {
    fn from_resource(res: &Resource, w: &mut Vec<Warning>) -> Result<Self, ConfigError> {
        let r = Reader::new(res, "Device");
        let d = Device {
            name: r.name()?,
            at: res.at.clone(),
            media_type: r.required_string(&["mediatype"], "Media Type")?,
            archive_device: r.required_string(&["archivedevice"], "Archive Device")?,
            device_type: r.string(&["devicetype"])?,
            max_concurrent_jobs: r.opt_u32(&["maximumconcurrentjobs"])?,
            label_media: r.bool(&["labelmedia"], false)?,
            random_access: r.bool(&["randomaccess"], false)?,
            automatic_mount: r.bool(&["automaticmount"], false)?,
            removable_media: r.bool(&["removablemedia"], true)?,
            always_open: r.bool(&["alwaysopen"], true)?,
            autochanger: r.bool(&["autochanger"], false)?,
            resource: res.clone(),
        };
        r.unknown(DEVICE_KNOWN, false, w)?;
        Ok(d)
    }
}

/// An `Autochanger` resource: a group of devices with one changer.
#[derive(Clone, Debug)]
pub struct Autochanger {
    /// `Name`.
    pub name: String,
    /// Where the resource starts.
    pub at: Location,
    /// `Device` names (accumulated over lines and commas).
    pub devices: Vec<String>,
    /// `Changer Command`.
    pub changer_command: Option<String>,
    /// `Changer Device`.
    pub changer_device: Option<String>,
}

impl Autochanger {
    fn from_resource(res: &Resource, w: &mut Vec<Warning>) -> Result<Self, ConfigError> {
        let r = Reader::new(res, "Autochanger");
        let devices = r.list(&["device"])?;
        if devices.is_empty() {
            return Err(r.missing("Device"));
        }
        let a = Autochanger {
            name: r.name()?,
            at: res.at.clone(),
            devices,
            changer_command: r.string(&["changercommand"])?,
            changer_device: r.string(&["changerdevice"])?,
        };
        r.unknown(AUTOCHANGER_KNOWN, false, w)?;
        Ok(a)
    }
}

/// A parsed `bacula-sd.conf`.
#[derive(Clone, Debug)]
pub struct SdConfig {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// The Storage resource (exactly one).
    pub storage: Storage,
    /// Directors allowed to connect.
    pub directors: Vec<Director>,
    /// Devices.
    pub devices: Vec<Device>,
    /// Autochangers.
    pub autochangers: Vec<Autochanger>,
    /// Messages resources.
    pub messages: Vec<Messages>,
    /// Other known resource types (Cloud, Statistics, ...), as written.
    pub other: Vec<Named>,
}

config_file!(SdConfig);

impl SdConfig {
    pub(crate) fn from_resources(
        path: &Path,
        resources: Vec<Resource>,
    ) -> Result<(Self, Vec<Warning>), ConfigError> {
        let mut w = Vec::new();
        let mut names = Names::default();
        let mut stores = Vec::new();
        let mut directors = Vec::new();
        let mut devices = Vec::new();
        let mut changers: Vec<(Autochanger, Resource)> = Vec::new();
        let mut messages = Vec::new();
        let mut other = Vec::new();
        for res in resources {
            match res.key.as_str() {
                "storage" => names.keep(&mut stores, Storage::from_resource(&res, &mut w)?)?,
                "director" => names.keep(&mut directors, Director::from_resource(&res, &mut w)?)?,
                "device" => {
                    let d = Device::from_resource(&res, &mut w)?;
                    names.add("Device", &d.name, &d.at)?;
                    devices.push(d);
                }
                "autochanger" => {
                    let a = Autochanger::from_resource(&res, &mut w)?;
                    names.add("Autochanger", &a.name, &a.at)?;
                    changers.push((a, res));
                }
                "messages" => names.keep(&mut messages, Messages::from_resource(&res, &mut w)?)?,
                "cloud" | "statistics" | "collector" => {
                    let label = match res.key.as_str() {
                        "cloud" => "Cloud",
                        "statistics" => "Statistics",
                        _ => "Collector",
                    };
                    other.push(Named::read(res, label, &mut names)?);
                }
                _ => w.push(unknown_resource(&res)),
            }
        }
        let storage = crate::exactly_one(stores, path, "Storage", |s| &s.at)?;
        if directors.is_empty() {
            return Err(ConfigError::resource(
                &storage.at,
                "no Director resource defined: at least one Director must be allowed to connect",
            ));
        }
        if devices.is_empty() {
            return Err(ConfigError::resource(
                &storage.at,
                "no Device resource defined (at least one is required)",
            ));
        }
        for (_, res) in &changers {
            check_ref(res, "device", "Device", |n| {
                devices.iter().any(|d| d.name == n)
            })?;
        }
        let cfg = SdConfig {
            path: path.to_path_buf(),
            storage,
            directors,
            devices,
            autochangers: changers.into_iter().map(|(a, _)| a).collect(),
            messages,
            other,
        };
        Ok((cfg, w))
    }

    /// The Director resource with this name.
    pub fn director(&self, name: &str) -> Option<&Director> {
        self.directors.iter().find(|d| d.name == name)
    }

    /// The Device with this name.
    pub fn device(&self, name: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.name == name)
    }

    /// The Autochanger with this name.
    pub fn autochanger(&self, name: &str) -> Option<&Autochanger> {
        self.autochangers.iter().find(|a| a.name == name)
    }

    /// Every resource with TLS settings.
    pub fn tls_resources(&self) -> Vec<&dyn TlsResource> {
        let mut v: Vec<&dyn TlsResource> = vec![&self.storage];
        v.extend(self.directors.iter().map(|d| d as &dyn TlsResource));
        v
    }
}

tls_resource!(Storage, |_: &Storage| "Storage", TlsRole::Server);
tls_resource!(Director, |_: &Director| "Director", TlsRole::Server);
