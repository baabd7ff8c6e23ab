//! `baculink check`: being written.

use std::process::ExitCode;

use clap::Args;

/// `baculink check` arguments.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Arguments.
    pub args: Vec<String>,
}

pub fn main(_args: CheckArgs) -> ExitCode {
    eprintln!("baculink check: not available yet");
    ExitCode::from(1)
}
