//! `baculink certs`: being written.

use std::process::ExitCode;

use clap::Args;

/// `baculink certs` arguments.
#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Arguments.
    pub args: Vec<String>,
}

pub fn main(_args: CertsArgs) -> ExitCode {
    eprintln!("baculink certs: not available yet");
    ExitCode::from(1)
}
