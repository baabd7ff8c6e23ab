//! `baculink console`: being written.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

/// `baculink console` arguments (bconsole's).
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// bconsole.conf.
    #[arg(short = 'c', long = "config")]
    pub config: PathBuf,
    /// No line editing: read commands from stdin.
    #[arg(short = 'n')]
    pub no_conio: bool,
    /// The Director resource to use.
    #[arg(short = 'D')]
    pub director: Option<String>,
    /// Debug level.
    #[arg(short = 'd', default_value_t = 0)]
    pub debug: u32,
}

pub async fn main(_args: ConsoleArgs) -> ExitCode {
    eprintln!("baculink console: not available yet");
    ExitCode::from(1)
}
