//! Bacula configuration files parsed into typed resources.
//!
//! Reads `bacula-dir.conf`, `bacula-fd.conf`, `bacula-sd.conf` and
//! `bconsole.conf` unchanged: Bacula's syntax (resources, `Name = value`,
//! quoting, comments, `;`, `@file` includes, case- and space-insensitive
//! directive names). Unknown directives in known resources are warnings with
//! file:line so real configs load; errors name file, line and directive.
#![forbid(unsafe_code)]

pub mod tls;

pub use tls::TlsSettings;
