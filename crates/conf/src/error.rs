//! Errors and warnings, each naming the file and line they come from.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// A place in a configuration file: the file as it was named and a 1-based line.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    /// The file as given to the loader (or resolved for an include, `|cmd` for a pipe).
    pub file: Arc<str>,
    /// 1-based line number.
    pub line: u32,
}

impl Location {
    /// A location in `file` at `line`.
    pub fn new(file: impl Into<Arc<str>>, line: u32) -> Self {
        Location {
            file: file.into(),
            line,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Why a configuration could not be loaded. Every variant says where.
///
/// No variant ever carries a password: password values are hashed while they
/// are parsed and never quoted in messages.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file (or an included file) could not be read.
    #[error("{file}: cannot read: {source}")]
    Io {
        /// The file as named.
        file: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Bad syntax: stray tokens, unterminated strings or blocks, include problems.
    #[error("{at}: {message}")]
    Syntax {
        /// Where.
        at: Location,
        /// What is wrong.
        message: String,
    },
    /// A directive's value is invalid (bad boolean, number, time, name, ...).
    #[error("{at}: directive \"{directive}\": {message}")]
    Value {
        /// Where the directive is.
        at: Location,
        /// The directive as written (e.g. `TLS Enable`).
        directive: String,
        /// What is wrong.
        message: String,
    },
    /// A resource is wrong as a whole: duplicate, missing required directive,
    /// dangling reference, or inconsistent TLS settings (start-up validation).
    #[error("{at}: {message}")]
    Resource {
        /// Where the resource (or the offending directive) starts.
        at: Location,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// The file and line the error is about, if it has one.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Io { .. } => None,
            ConfigError::Syntax { at, .. }
            | ConfigError::Value { at, .. }
            | ConfigError::Resource { at, .. } => Some(at),
        }
    }

    pub(crate) fn syntax(at: &Location, message: impl Into<String>) -> Self {
        ConfigError::Syntax {
            at: at.clone(),
            message: message.into(),
        }
    }

    pub(crate) fn value(at: &Location, directive: &str, message: impl Into<String>) -> Self {
        ConfigError::Value {
            at: at.clone(),
            directive: directive.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn resource(at: &Location, message: impl Into<String>) -> Self {
        ConfigError::Resource {
            at: at.clone(),
            message: message.into(),
        }
    }
}

/// What kind of thing a [`Warning`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WarningKind {
    /// A directive (or nested block) this resource does not know; ignored.
    UnknownDirective,
    /// A resource type this daemon does not know; the whole resource is skipped.
    UnknownResource,
}

/// Something the loader ignored. Returned next to the configuration so the
/// caller can log it (the parser itself never logs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// Where.
    pub at: Location,
    /// What kind of thing was ignored.
    pub kind: WarningKind,
    /// The resource concerned, e.g. `Client "bacula-fd"` or the unknown type name.
    pub resource: String,
    /// The directive as written, for [`WarningKind::UnknownDirective`].
    pub directive: Option<String>,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            WarningKind::UnknownDirective => write!(
                f,
                "{}: unknown directive \"{}\" in {} ignored",
                self.at,
                self.directive.as_deref().unwrap_or(""),
                self.resource
            ),
            WarningKind::UnknownResource => write!(
                f,
                "{}: unknown resource type \"{}\" skipped",
                self.at, self.resource
            ),
        }
    }
}

/// Logs each warning with `tracing::warn!`; for callers that have no better place.
pub fn log_warnings(warnings: &[Warning]) {
    for w in warnings {
        tracing::warn!("{w}");
    }
}
