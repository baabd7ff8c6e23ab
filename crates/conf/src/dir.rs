//! `bacula-dir.conf`: the Director's configuration.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use baculink_proto::Secret;

use crate::ast::{Block, Item, Items, Resource};
use crate::daemon::Daemon;
use crate::error::{ConfigError, Location, Warning};
use crate::fields::{check_ref, unknown_resource, Names, Reader};
use crate::messages::Messages;
use crate::tls::{TlsResource, TlsRole, TlsSettings};

/// Default of `Maximum Unauthenticated Connections` (per source address).
pub const DEFAULT_MAX_UNAUTHENTICATED: u32 = 32;

/// Default port the Director listens on.
pub const DEFAULT_DIR_PORT: u16 = 9101;
/// Default port of a file daemon.
pub const DEFAULT_FD_PORT: u16 = 9102;
/// Default port of a storage daemon.
pub const DEFAULT_SD_PORT: u16 = 9103;

const DIRECTOR_KNOWN: &[&str] = &[
    "maximumunauthenticatedconnections",
    "fipsrequire",
    "password",
    "dirport",
    "diraddress",
    "diraddresses",
    "dirsourceaddress",
    "workingdirectory",
    "piddirectory",
    "subsysdirectory",
    "scriptsdirectory",
    "plugindirectory",
    "pluginnames",
    "queryfile",
    "messages",
    "maximumconcurrentjobs",
    "maximumconsoleconnections",
    "maximumreloadrequests",
    "fdconnecttimeout",
    "sdconnecttimeout",
    "heartbeatinterval",
    "commcompression",
    "statisticsretention",
    "verid",
    "keyencryptionkey",
    "nonsslapi",
    "autoprune",
];

const CONSOLE_KNOWN: &[&str] = &[
    "password",
    "jobacl",
    "clientacl",
    "storageacl",
    "scheduleacl",
    "runacl",
    "poolacl",
    "commandacl",
    "filesetacl",
    "catalogacl",
    "whereacl",
    "pluginoptionsacl",
    "restoreclientacl",
    "backupclientacl",
    "directoryacl",
    "useridacl",
    "authenticationplugin",
];

const CLIENT_KNOWN: &[&str] = &[
    "address",
    "fdaddress",
    "fdport",
    "password",
    "fdpassword",
    "catalog",
    "fileretention",
    "jobretention",
    "autoprune",
    "maximumconcurrentjobs",
    "maximumbandwidthperjob",
    "priority",
    "heartbeatinterval",
    "sdcallsclient",
    "allowfdconnections",
    "fdstorageaddress",
    "enabled",
    "snapshotretention",
    "setip",
];

const STORAGE_KNOWN: &[&str] = &[
    "address",
    "sdaddress",
    "fdstorageaddress",
    "sdport",
    "password",
    "sdpassword",
    "device",
    "mediatype",
    "autochanger",
    "enabled",
    "allowcompression",
    "heartbeatinterval",
    "maximumconcurrentjobs",
    "maximumconcurrentreadjobs",
    "maximumbandwidthperjob",
    "sddport",
    "syncontime",
];

/// The `Director` resource: this Director itself.
#[derive(Clone, Debug)]
pub struct Director {
    /// `Name`.
    pub name: String,
    /// Where the resource starts.
    pub at: Location,
    /// `Password` the default console (bconsole) must present.
    pub password: Secret,
    /// `DIRport`, `DIRAddress(es)`, directories and limits.
    pub daemon: Daemon,
    /// `QueryFile`.
    pub query_file: Option<PathBuf>,
    /// `Messages` (name of a Messages resource).
    pub messages: Option<String>,
    /// `Maximum Console Connections` (20).
    pub max_console_connections: u32,
    /// `FD Connect Timeout` (3 min).
    pub fd_connect_timeout: Duration,
    /// `SD Connect Timeout` (30 min).
    pub sd_connect_timeout: Duration,
    /// TLS directives (server role towards consoles).
    pub tls: TlsSettings,
}

impl Director {
    fn from_resource(res: &Resource, w: &mut Vec<Warning>) -> Result<Self, ConfigError> {
        let r = Reader::new(res, "Director");
        let d = Director {
            name: r.name()?,
            at: res.at.clone(),
            password: r.required_password(&["password"])?,
            daemon: Daemon::read(&r, "dir", DEFAULT_DIR_PORT)?,
            query_file: r.path(&["queryfile"])?,
            messages: r.name_ref(&["messages"])?,
            max_console_connections: r.u32(&["maximumconsoleconnections"], 20)?,
            fd_connect_timeout: r.time(&["fdconnecttimeout"], Duration::from_secs(180))?,
            sd_connect_timeout: r.time(&["sdconnecttimeout"], Duration::from_secs(1800))?,
            tls: r.tls()?,
        };
        r.unknown(DIRECTOR_KNOWN, true, w)?;
        Ok(d)
    }
}

/// A named `Console` resource (restricted consoles, tray monitors).
#[derive(Clone, Debug)]
pub struct Console {
    /// `Name` (what the console sends in its Hello).
    pub name: String,
    /// Where the resource starts.
    pub at: Location,
    /// `Password`.
    pub password: Secret,
    /// TLS directives (server role).
    pub tls: TlsSettings,
    /// Every directive (ACLs etc.); passwords appear only as secrets.
    pub resource: Resource,
}

impl Console {
    fn from_resource(res: &Resource, w: &mut Vec<Warning>) -> Result<Self, ConfigError> {
        let r = Reader::new(res, "Console");
        let c = Console {
            name: r.name()?,
            at: res.at.clone(),
            password: r.required_password(&["password"])?,
            tls: r.tls()?,
            resource: res.clone(),
        };
        r.unknown(CONSOLE_KNOWN, true, w)?;
        Ok(c)
    }
}

/// A `Client` resource: a file daemon this Director drives.
#[derive(Clone, Debug)]
pub struct Client {
    /// `Name`.
    pub name: String,
    /// Where the resource starts.
    pub at: Location,
    /// `Address` (host name or IP the Director connects to).
    pub address: String,
    /// `FDPort` (9102).
    pub port: u16,
    /// `Password` shared with the file daemon.
    pub password: Secret,
    /// `Catalog`.
    pub catalog: Option<String>,
    /// `Maximum Concurrent Jobs` (1).
    pub max_concurrent_jobs: u32,
    /// `Heartbeat Interval` (5 min).
    pub heartbeat_interval: Duration,
    /// `SD Calls Client` (no).
    pub sd_calls_client: bool,
    /// `Allow FD Connections` (no; 13.x).
    pub allow_fd_connections: bool,
    /// `FD Storage Address`: the SD address given to this client, if set.
    pub fd_storage_address: Option<String>,
    /// TLS directives (client role towards the FD).
    pub tls: TlsSettings,
    /// Every directive as written; passwords appear only as secrets.
    pub resource: Resource,
}

impl Client {
    fn from_resource(res: &Resource, w: &mut Vec<Warning>) -> Result<Self, ConfigError> {
        let r = Reader::new(res, "Client");
        let c = Client {
            name: r.name()?,
            at: res.at.clone(),
            address: r.required_string(&["address", "fdaddress"], "Address")?,
            port: r.port(&["fdport"], DEFAULT_FD_PORT)?,
            password: r.required_password(&["password", "fdpassword"])?,
            catalog: r.name_ref(&["catalog"])?,
            max_concurrent_jobs: r.u32(&["maximumconcurrentjobs"], 1)?,
            heartbeat_interval: r.time(&["heartbeatinterval"], Duration::from_secs(300))?,
            sd_calls_client: r.bool(&["sdcallsclient"], false)?,
            allow_fd_connections: r.bool(&["allowfdconnections"], false)?,
            fd_storage_address: r.string(&["fdstorageaddress"])?,
            tls: r.tls()?,
            resource: res.clone(),
        };
        r.unknown(CLIENT_KNOWN, true, w)?;
        Ok(c)
    }
}

/// A `Storage` or `Autochanger` resource: a storage daemon device this Director uses.
#[derive(Clone, Debug)]
pub struct Storage {
    /// `Name`.
    pub name: String,
    /// Where the resource starts.
    pub at: Location,
    /// Written as an `Autochanger` resource.
    pub autochanger: bool,
    /// `Address` of the storage daemon.
    pub address: String,
    /// `SDPort` (9103).
    pub port: u16,
    /// `Password` shared with the storage daemon.
    pub password: Secret,
    /// `Device` names (the first is the default).
    pub devices: Vec<String>,
    /// `Media Type`.
    pub media_type: String,
    /// `Maximum Concurrent Jobs` (1).
    pub max_concurrent_jobs: u32,
    /// `Heartbeat Interval` (5 min).
    pub heartbeat_interval: Duration,
    /// `FD Storage Address`: the address given to file daemons, if set.
    pub fd_storage_address: Option<String>,
    /// TLS directives (client role towards the SD).
    pub tls: TlsSettings,
    /// Every directive as written; passwords appear only as secrets.
    pub resource: Resource,
}

impl Storage {
    fn from_resource(
        res: &Resource,
        autochanger: bool,
        w: &mut Vec<Warning>,
    ) -> Result<Self, ConfigError> {
        let label = if autochanger {
            "Autochanger"
        } else {
            "Storage"
        };
        let r = Reader::new(res, label);
        let devices = r.list(&["device"])?;
        if devices.is_empty() {
            return Err(r.missing("Device"));
        }
        let s = Storage {
            name: r.name()?,
            at: res.at.clone(),
            autochanger,
            address: r.required_string(&["address", "sdaddress"], "Address")?,
            port: r.port(&["sdport"], DEFAULT_SD_PORT)?,
            password: r.required_password(&["password", "sdpassword"])?,
            devices,
            media_type: r.required_string(&["mediatype"], "Media Type")?,
            max_concurrent_jobs: r.u32(&["maximumconcurrentjobs"], 1)?,
            heartbeat_interval: r.time(&["heartbeatinterval"], Duration::from_secs(300))?,
            fd_storage_address: r.string(&["fdstorageaddress"])?,
            tls: r.tls()?,
            resource: res.clone(),
        };
        r.unknown(STORAGE_KNOWN, true, w)?;
        Ok(s)
    }
}

/// A `Job` or `JobDefs` resource. The typed fields are resolved through
/// `JobDefs` (the job's own directive wins); `resource` holds its own
/// directives only.
#[derive(Clone, Debug)]
pub struct Job {
    /// `Name`.
    pub name: String,
    /// Where the resource starts.
    pub at: Location,
    /// `JobDefs` it inherits from.
    pub job_defs: Option<String>,
    /// `Type` (Backup, Restore, Verify, Admin, ...).
    pub job_type: Option<String>,
    /// `Level`.
    pub level: Option<String>,
    /// `Client`.
    pub client: Option<String>,
    /// `FileSet`.
    pub fileset: Option<String>,
    /// `Storage` (possibly several).
    pub storage: Vec<String>,
    /// `Pool`.
    pub pool: Option<String>,
    /// `Messages`.
    pub messages: Option<String>,
    /// `Schedule`.
    pub schedule: Option<String>,
    /// `Where` (restore prefix).
    pub where_: Option<String>,
    /// Its own directives and blocks (RunScript, ...).
    pub resource: Resource,
}

/// One `Include` or `Exclude` block of a FileSet.
#[derive(Clone, Debug)]
pub struct FileSetBlock {
    /// Where the block starts.
    pub at: Location,
    /// `File =` entries, in order.
    pub files: Vec<String>,
    /// `Options { }` blocks: normalized keyword and value, in order.
    pub options: Vec<Vec<(String, String)>>,
    /// The block as written (Plugin, ExcludeDirContaining, ...).
    pub block: Block,
}

impl FileSetBlock {
    fn from_block(b: &Block) -> Self {
        let files = b
            .directives("file")
            .filter_map(|d| d.value().map(str::to_string))
            .collect();
        let options = b
            .blocks("options")
            .map(|o| {
                o.items
                    .iter()
                    .filter_map(|i| match i {
                        Item::Directive(d) => Some((d.key.clone(), d.raw())),
                        Item::Block(_) => None,
                    })
                    .collect()
            })
            .collect();
        FileSetBlock {
            at: b.at.clone(),
            files,
            options,
            block: b.clone(),
        }
    }
}

/// A `FileSet` resource.
#[derive(Clone, Debug)]
pub struct FileSet {
    /// `Name`.
    pub name: String,
    /// Where the resource starts.
    pub at: Location,
    /// `Include { }` blocks.
    pub include: Vec<FileSetBlock>,
    /// `Exclude { }` blocks.
    pub exclude: Vec<FileSetBlock>,
    /// The resource as written.
    pub resource: Resource,
}

/// A resource kept as written, with its checked name (Pool, Catalog, Schedule, ...).
#[derive(Clone, Debug)]
pub struct Named {
    /// `Name`.
    pub name: String,
    /// The resource.
    pub resource: Resource,
}

impl Named {
    /// Keeps `res` once its name is checked and new for `label`.
    pub(crate) fn read(
        res: Resource,
        label: &'static str,
        names: &mut Names,
    ) -> Result<Self, ConfigError> {
        let name = Reader::new(&res, label).name()?;
        names.add(label, &name, &res.at)?;
        Ok(Named {
            name,
            resource: res,
        })
    }
}

/// A parsed `bacula-dir.conf`.
///
/// Director, Console, Client and Storage directives are checked (unknown ones
/// are warnings); Job, JobDefs, FileSet, Pool, Catalog, Schedule and other
/// resources keep their directives as written, with their names and
/// cross-references checked.
#[derive(Clone, Debug)]
pub struct DirectorConfig {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// The Director resource (exactly one).
    pub director: Director,
    /// Named consoles.
    pub consoles: Vec<Console>,
    /// File daemons.
    pub clients: Vec<Client>,
    /// Storage and Autochanger resources.
    pub storages: Vec<Storage>,
    /// Jobs, resolved through JobDefs.
    pub jobs: Vec<Job>,
    /// JobDefs.
    pub job_defs: Vec<Job>,
    /// FileSets.
    pub filesets: Vec<FileSet>,
    /// Pools.
    pub pools: Vec<Named>,
    /// Catalogs (a database password is only kept as a secret).
    pub catalogs: Vec<Named>,
    /// Schedules (`Run =` lines as written).
    pub schedules: Vec<Named>,
    /// Messages resources.
    pub messages: Vec<Messages>,
    /// Other known resource types (Counter, Statistics, ...).
    pub other: Vec<Named>,
}

const JOB_FIELDS: &[&str] = &[
    "type", "level", "client", "fileset", "storage", "pool", "messages", "schedule", "where",
];

config_file!(DirectorConfig);

impl DirectorConfig {
    pub(crate) fn from_resources(
        path: &Path,
        resources: Vec<Resource>,
    ) -> Result<(Self, Vec<Warning>), ConfigError> {
        let mut w = Vec::new();
        let mut names = Names::default();
        let mut directors = Vec::new();
        let mut consoles = Vec::new();
        let mut clients = Vec::new();
        let mut storages = Vec::new();
        let mut job_res = Vec::new();
        let mut defs_res = Vec::new();
        let mut filesets = Vec::new();
        let mut pools = Vec::new();
        let mut catalogs = Vec::new();
        let mut schedules = Vec::new();
        let mut messages = Vec::new();
        let mut other = Vec::new();
        for res in resources {
            let label: &'static str = match res.key.as_str() {
                "director" => {
                    names.keep(&mut directors, Director::from_resource(&res, &mut w)?)?;
                    continue;
                }
                "console" => {
                    names.keep(&mut consoles, Console::from_resource(&res, &mut w)?)?;
                    continue;
                }
                "client" => {
                    names.keep(&mut clients, Client::from_resource(&res, &mut w)?)?;
                    continue;
                }
                "storage" | "autochanger" => {
                    let s = Storage::from_resource(&res, res.key == "autochanger", &mut w)?;
                    names.keep(&mut storages, s)?;
                    continue;
                }
                "messages" => {
                    names.keep(&mut messages, Messages::from_resource(&res, &mut w)?)?;
                    continue;
                }
                "job" => "Job",
                "jobdefs" => "JobDefs",
                "fileset" => "FileSet",
                "pool" => "Pool",
                "catalog" => "Catalog",
                "schedule" => "Schedule",
                "counter" => "Counter",
                "statistics" => "Statistics",
                "collector" => "Collector",
                _ => {
                    w.push(unknown_resource(&res));
                    continue;
                }
            };
            let named = Named::read(res, label, &mut names)?;
            match label {
                "Job" => job_res.push(named),
                "JobDefs" => defs_res.push(named),
                "FileSet" => filesets.push(FileSet {
                    name: named.name,
                    at: named.resource.at.clone(),
                    include: named
                        .resource
                        .blocks("include")
                        .map(FileSetBlock::from_block)
                        .collect(),
                    exclude: named
                        .resource
                        .blocks("exclude")
                        .map(FileSetBlock::from_block)
                        .collect(),
                    resource: named.resource,
                }),
                "Pool" => pools.push(named),
                "Catalog" => catalogs.push(named),
                "Schedule" => schedules.push(named),
                _ => other.push(named),
            }
        }
        let director = match directors.len() {
            1 => directors.pop().expect("one director"),
            0 => {
                return Err(ConfigError::resource(
                    &Location::new(path.display().to_string(), 1),
                    "no Director resource defined (exactly one is required)",
                ))
            }
            _ => {
                return Err(ConfigError::resource(
                    &directors[1].at,
                    format!(
                        "a second Director resource \"{}\" (only one is allowed; the first is \
                         at {})",
                        directors[1].name, directors[0].at
                    ),
                ))
            }
        };

        let defs: HashMap<&str, &Resource> = defs_res
            .iter()
            .map(|n| (n.name.as_str(), &n.resource))
            .collect();
        let resolve = |n: &Named| -> Result<Job, ConfigError> { resolve_job(n, &defs) };
        let jobs = job_res.iter().map(resolve).collect::<Result<Vec<_>, _>>()?;
        let job_defs = defs_res
            .iter()
            .map(resolve)
            .collect::<Result<Vec<_>, _>>()?;

        let cfg = DirectorConfig {
            path: path.to_path_buf(),
            director,
            consoles,
            clients,
            storages,
            jobs,
            job_defs,
            filesets,
            pools,
            catalogs,
            schedules,
            messages,
            other,
        };
        cfg.check_references()?;
        Ok((cfg, w))
    }

    /// Bacula refuses references to resources that do not exist.
    fn check_references(&self) -> Result<(), ConfigError> {
        let has = |list: &[Named], n: &str| list.iter().any(|x| x.name == n);
        let messages = |n: &str| self.messages.iter().any(|m| m.name == n);
        if let Some(m) = &self.director.messages {
            if !messages(m) {
                return Err(ConfigError::resource(
                    &self.director.at,
                    format!(
                        "Director \"{}\": Messages resource \"{m}\" is not defined",
                        self.director.name
                    ),
                ));
            }
        }
        for c in &self.clients {
            check_ref(&c.resource, "catalog", "Catalog", |n| {
                has(&self.catalogs, n)
            })?;
        }
        for j in self.jobs.iter().chain(&self.job_defs) {
            let r = &j.resource;
            check_ref(r, "jobdefs", "JobDefs", |n| {
                self.job_defs.iter().any(|x| x.name == n)
            })?;
            check_ref(r, "client", "Client", |n| self.client(n).is_some())?;
            check_ref(r, "fileset", "FileSet", |n| self.fileset(n).is_some())?;
            check_ref(r, "storage", "Storage", |n| self.storage(n).is_some())?;
            check_ref(r, "pool", "Pool", |n| has(&self.pools, n))?;
            check_ref(r, "messages", "Messages", messages)?;
            check_ref(r, "schedule", "Schedule", |n| has(&self.schedules, n))?;
        }
        Ok(())
    }

    /// The Client resource with this name.
    pub fn client(&self, name: &str) -> Option<&Client> {
        self.clients.iter().find(|c| c.name == name)
    }

    /// The Storage or Autochanger resource with this name.
    pub fn storage(&self, name: &str) -> Option<&Storage> {
        self.storages.iter().find(|s| s.name == name)
    }

    /// The named Console resource with this name.
    pub fn console(&self, name: &str) -> Option<&Console> {
        self.consoles.iter().find(|c| c.name == name)
    }

    /// The Job with this name.
    pub fn job(&self, name: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.name == name)
    }

    /// The FileSet with this name.
    pub fn fileset(&self, name: &str) -> Option<&FileSet> {
        self.filesets.iter().find(|f| f.name == name)
    }

    /// The Messages resource with this name.
    pub fn messages(&self, name: &str) -> Option<&Messages> {
        self.messages.iter().find(|m| m.name == name)
    }

    /// Every resource with TLS settings: the Director, Consoles, Clients, Storages.
    pub fn tls_resources(&self) -> Vec<&dyn TlsResource> {
        let mut v: Vec<&dyn TlsResource> = vec![&self.director];
        v.extend(self.consoles.iter().map(|c| c as &dyn TlsResource));
        v.extend(self.clients.iter().map(|c| c as &dyn TlsResource));
        v.extend(self.storages.iter().map(|c| c as &dyn TlsResource));
        v
    }
}

/// Resolves a Job's fields through its JobDefs chain.
fn resolve_job(n: &Named, defs: &HashMap<&str, &Resource>) -> Result<Job, ConfigError> {
    let own = &n.resource;
    let mut chain: Vec<&Resource> = vec![own];
    let mut cur = own;
    while let Some(d) = cur.directive("jobdefs") {
        let Some(target) = d.value() else { break };
        let Some(next) = defs.get(target) else {
            return Err(ConfigError::value(
                &d.at,
                &d.keyword,
                format!("JobDefs resource \"{target}\" is not defined"),
            ));
        };
        if chain.iter().any(|r| std::ptr::eq(*r, *next)) {
            return Err(ConfigError::value(
                &d.at,
                &d.keyword,
                format!("JobDefs \"{target}\" inherits from itself"),
            ));
        }
        chain.push(next);
        cur = next;
    }
    let mut found: HashMap<&str, Vec<String>> = HashMap::new();
    for key in JOB_FIELDS {
        for r in &chain {
            let vals: Vec<String> = r
                .directives(key)
                .flat_map(|d| d.list().into_iter().map(str::to_string))
                .collect();
            if !vals.is_empty() {
                found.insert(key, vals);
                break;
            }
        }
    }
    let one = |k: &str| found.get(k).and_then(|v| v.first().cloned());
    Ok(Job {
        name: n.name.clone(),
        at: own.at.clone(),
        job_defs: own.value("jobdefs").map(str::to_string),
        job_type: one("type"),
        level: one("level"),
        client: one("client"),
        fileset: one("fileset"),
        storage: found.get("storage").cloned().unwrap_or_default(),
        pool: one("pool"),
        messages: one("messages"),
        schedule: one("schedule"),
        where_: one("where"),
        resource: own.clone(),
    })
}

tls_resource!(Director, |_: &Director| "Director", TlsRole::Server);
tls_resource!(Console, |_: &Console| "Console", TlsRole::Server);
tls_resource!(Client, |_: &Client| "Client", TlsRole::Client);
tls_resource!(
    Storage,
    |s: &Storage| if s.autochanger {
        "Autochanger"
    } else {
        "Storage"
    },
    TlsRole::Client
);
