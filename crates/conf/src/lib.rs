//! Bacula configuration files parsed into typed resources.
//!
//! Reads `bacula-dir.conf`, `bacula-fd.conf`, `bacula-sd.conf` and
//! `bconsole.conf` unchanged: Bacula's syntax (resources, `Name = value`,
//! quoting, comments, `;`, `@file` includes, case- and space-insensitive
//! directive names). Unknown directives in known resources are warnings with
//! file:line so real configs load; errors name file, line and directive.
//!
//! Each file is parsed into a generic tree ([`Resource`]) and then typed
//! ([`DirectorConfig`], [`FdConfig`], [`SdConfig`], [`ConsoleConfig`]).
//! Passwords are hashed to their [`Secret`](baculink_proto::Secret) key while
//! parsing; no clear password survives the parse and none is ever printed.
//!
//! Relative `@include` paths are looked up next to the including file first,
//! then in the current directory (Bacula itself only uses the current
//! directory of the daemon).
#![forbid(unsafe_code)]

/// Implements [`TlsResource`] and an inherent `tls_role()` for a resource type.
macro_rules! tls_resource {
    ($ty:ty, $label:expr, $role:expr) => {
        impl $crate::tls::TlsResource for $ty {
            fn resource_type(&self) -> &'static str {
                ($label)(self)
            }
            fn name(&self) -> &str {
                &self.name
            }
            fn location(&self) -> &$crate::error::Location {
                &self.at
            }
            fn tls(&self) -> &$crate::tls::TlsSettings {
                &self.tls
            }
            fn tls_role(&self) -> $crate::tls::TlsRole {
                $role
            }
        }
        impl $ty {
            /// The role of this resource's TLS context (protocol.md §6.1, §8.4).
            pub fn tls_role(&self) -> $crate::tls::TlsRole {
                $role
            }
        }
    };
}

/// Implements `load`, `parse_str` and `validate_tls` for a configuration
/// file type with `from_resources` and `tls_resources`: the same for all four.
macro_rules! config_file {
    ($ty:ty) => {
        impl $ty {
            /// Loads `path` (and its includes).
            pub fn load(
                path: impl AsRef<std::path::Path>,
            ) -> Result<(Self, Vec<$crate::Warning>), $crate::ConfigError> {
                let path = path.as_ref();
                Self::from_resources(path, $crate::parse::parse_file(path)?)
            }

            /// Parses `text` as if read from a file named `name`.
            pub fn parse_str(
                name: &str,
                text: &str,
            ) -> Result<(Self, Vec<$crate::Warning>), $crate::ConfigError> {
                Self::from_resources(
                    std::path::Path::new(name),
                    $crate::parse::parse_text(name, text)?,
                )
            }

            /// Start-up TLS validation (protocol.md §8.4); the first problem found.
            pub fn validate_tls(&self) -> Result<(), $crate::ConfigError> {
                self.tls_resources()
                    .into_iter()
                    .try_for_each($crate::tls::validate_resource)
            }
        }
    };
}

pub mod ast;
pub mod console;
pub mod daemon;
pub mod dir;
pub mod error;
pub mod fd;
mod fields;
mod lexer;
pub mod messages;
mod parse;
pub mod sd;
pub mod tls;
pub mod value;

use std::path::Path;

pub use ast::{Block, Directive, Item, Items, Resource, ValueToken};
pub use console::ConsoleConfig;
pub use daemon::Daemon;
pub use dir::DirectorConfig;
pub use error::{log_warnings, ConfigError, Location, Warning, WarningKind};
pub use fd::FdConfig;
pub use messages::{MessageDestination, Messages};
pub use sd::SdConfig;
pub use tls::{validate_resource, TlsResource, TlsRole, TlsSettings};

/// Address family of a `*Addresses` block entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressFamily {
    /// `ip = { }`: whatever the address resolves to.
    Any,
    /// `ipv4 = { }`.
    V4,
    /// `ipv6 = { }`.
    V6,
}

/// One entry of a `DirAddresses`/`FDAddresses`/`SDAddresses` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenAddress {
    /// `ip`, `ipv4` or `ipv6`.
    pub family: AddressFamily,
    /// `addr` (None = all addresses of the family).
    pub host: Option<String>,
    /// `port` (None = the resource's port directive).
    pub port: Option<u16>,
}

/// The single resource a daemon needs about itself.
fn exactly_one<T>(
    mut v: Vec<T>,
    path: &Path,
    label: &str,
    at: impl Fn(&T) -> &Location,
) -> Result<T, ConfigError> {
    match v.len() {
        1 => Ok(v.pop().expect("one element")),
        0 => Err(ConfigError::resource(
            &Location::new(path.display().to_string(), 1),
            format!("no {label} resource defined (exactly one is required)"),
        )),
        _ => Err(ConfigError::resource(
            at(&v[1]),
            format!(
                "a second {label} resource (only one is allowed; the first is at {})",
                at(&v[0])
            ),
        )),
    }
}

/// Which program a configuration file is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigKind {
    /// `bacula-dir.conf`.
    Director,
    /// `bacula-fd.conf`.
    FileDaemon,
    /// `bacula-sd.conf`.
    Storage,
    /// `bconsole.conf`.
    Console,
}

impl std::fmt::Display for ConfigKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConfigKind::Director => "director (bacula-dir.conf)",
            ConfigKind::FileDaemon => "file daemon (bacula-fd.conf)",
            ConfigKind::Storage => "storage daemon (bacula-sd.conf)",
            ConfigKind::Console => "console (bconsole.conf)",
        })
    }
}

/// A configuration of any of the four kinds.
#[derive(Clone, Debug)]
pub enum AnyConfig {
    /// `bacula-dir.conf`.
    Director(DirectorConfig),
    /// `bacula-fd.conf`.
    FileDaemon(FdConfig),
    /// `bacula-sd.conf`.
    Storage(SdConfig),
    /// `bconsole.conf`.
    Console(ConsoleConfig),
}

impl AnyConfig {
    /// Which kind it is.
    pub fn kind(&self) -> ConfigKind {
        match self {
            AnyConfig::Director(_) => ConfigKind::Director,
            AnyConfig::FileDaemon(_) => ConfigKind::FileDaemon,
            AnyConfig::Storage(_) => ConfigKind::Storage,
            AnyConfig::Console(_) => ConfigKind::Console,
        }
    }

    /// Every resource with TLS settings.
    pub fn tls_resources(&self) -> Vec<&dyn TlsResource> {
        match self {
            AnyConfig::Director(c) => c.tls_resources(),
            AnyConfig::FileDaemon(c) => c.tls_resources(),
            AnyConfig::Storage(c) => c.tls_resources(),
            AnyConfig::Console(c) => c.tls_resources(),
        }
    }

    /// Start-up TLS validation (protocol.md §8.4).
    pub fn validate_tls(&self) -> Result<(), ConfigError> {
        self.tls_resources()
            .into_iter()
            .try_for_each(validate_resource)
    }
}

/// Parses a file (and its includes) into untyped resources, for tools that
/// want to look at any configuration as written.
pub fn parse_file(path: impl AsRef<Path>) -> Result<Vec<Resource>, ConfigError> {
    parse::parse_file(path.as_ref())
}

/// Like [`parse_file`] for text named `name` (includes resolve against the
/// current directory).
pub fn parse_text(name: &str, text: &str) -> Result<Vec<Resource>, ConfigError> {
    parse::parse_text(name, text)
}

/// Loads a configuration file of any kind, telling the kind from its resources.
pub fn load_any(path: impl AsRef<Path>) -> Result<(AnyConfig, Vec<Warning>), ConfigError> {
    let path = path.as_ref();
    from_any(path, parse::parse_file(path)?)
}

/// Like [`load_any`] for text named `name`.
pub fn parse_any(name: &str, text: &str) -> Result<(AnyConfig, Vec<Warning>), ConfigError> {
    from_any(Path::new(name), parse::parse_text(name, text)?)
}

fn from_any(path: &Path, res: Vec<Resource>) -> Result<(AnyConfig, Vec<Warning>), ConfigError> {
    Ok(match detect(&res) {
        Some(ConfigKind::Director) => {
            let (c, w) = DirectorConfig::from_resources(path, res)?;
            (AnyConfig::Director(c), w)
        }
        Some(ConfigKind::FileDaemon) => {
            let (c, w) = FdConfig::from_resources(path, res)?;
            (AnyConfig::FileDaemon(c), w)
        }
        Some(ConfigKind::Storage) => {
            let (c, w) = SdConfig::from_resources(path, res)?;
            (AnyConfig::Storage(c), w)
        }
        Some(ConfigKind::Console) => {
            let (c, w) = ConsoleConfig::from_resources(path, res)?;
            (AnyConfig::Console(c), w)
        }
        None => {
            return Err(ConfigError::resource(
                &Location::new(path.display().to_string(), 1),
                "cannot tell which program this configuration is for (expected a Director \
                 with Clients or Jobs, a FileDaemon, a Storage with Devices, or a console's \
                 Director with an Address)",
            ))
        }
    })
}

/// Tells the kind of a configuration from its resource types.
pub fn detect(resources: &[Resource]) -> Option<ConfigKind> {
    let has = |k: &str| resources.iter().any(|r| r.key == k);
    let any_with = |k: &str, d: &str| {
        resources
            .iter()
            .any(|r| r.key == k && r.directive(d).is_some())
    };
    if has("filedaemon") {
        return Some(ConfigKind::FileDaemon);
    }
    if has("device") {
        return Some(ConfigKind::Storage);
    }
    if ["job", "jobdefs", "pool", "catalog", "fileset", "counter"]
        .iter()
        .any(|k| has(k))
    {
        return Some(ConfigKind::Director);
    }
    if has("client") {
        // bacula-fd.conf may call its FileDaemon resource "Client"; the
        // Director's Clients carry a Password.
        return Some(if any_with("client", "password") {
            ConfigKind::Director
        } else {
            ConfigKind::FileDaemon
        });
    }
    if has("storage") {
        return Some(if any_with("storage", "password") {
            ConfigKind::Director
        } else {
            ConfigKind::Storage
        });
    }
    if has("director") {
        if any_with("director", "address") {
            return Some(ConfigKind::Console);
        }
        if [
            "queryfile",
            "workingdirectory",
            "diraddress",
            "diraddresses",
            "piddirectory",
        ]
        .iter()
        .any(|d| any_with("director", d))
        {
            return Some(ConfigKind::Director);
        }
        return Some(ConfigKind::Console);
    }
    None
}

#[cfg(test)]
mod tests;
