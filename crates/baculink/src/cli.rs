//! Command line: one binary, Bacula's flags (`-c`, `-f`, `-d`, `-t`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Bacula-compatible daemons and tools over Bacula TLS.
#[derive(Debug, Parser)]
#[command(name = "baculink", version, long_version = long_version(), about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// `--version`: ours and the OpenSSL we run on (the system's, or the one
/// built in with the `vendored-openssl` feature).
fn long_version() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| format!("{} ({})", env!("CARGO_PKG_VERSION"), baculink_tls::engine()))
}

/// Flags every daemon takes, as Bacula's daemons do.
#[derive(Debug, Args, Clone)]
pub struct DaemonFlags {
    /// Configuration file.
    #[arg(short = 'c', long = "config")]
    pub config: PathBuf,
    /// Run in the foreground.
    #[arg(short = 'f')]
    pub foreground: bool,
    /// Debug level (0 = warnings only, 10+ = debug, 100+ = trace).
    #[arg(short = 'd', default_value_t = 0)]
    pub debug: u32,
    /// Check the configuration and exit (0 = good, 1 = errors with file:line).
    #[arg(short = 't')]
    pub test: bool,
    /// Verbose.
    #[arg(short = 'v')]
    pub verbose: bool,
    /// Seconds a peer has to finish its login (default 60).
    #[arg(long = "auth-timeout")]
    pub auth_timeout: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a Director.
    Dir(DaemonFlags),
    /// Run a File daemon.
    Fd(DaemonFlags),
    /// Run a Storage daemon.
    Sd(DaemonFlags),
    /// Talk to a Director, like bconsole.
    Console(crate::console::ConsoleArgs),
    /// Create a CA and a certificate and key per component.
    Certs(crate::certs::CertsArgs),
    /// Check a set of configs for mismatches across them.
    Check(crate::check::CheckArgs),
    /// Log in to a Bacula daemon and report how the connection is secured.
    Probe(crate::probe::ProbeArgs),
    /// End-to-end demo on loopback: a Director, probed in PSK and certificate mode.
    Demo(crate::demo::DemoArgs),
}

impl Cli {
    /// The `-d` level, whichever subcommand carries it.
    pub fn debug_level(&self) -> u32 {
        match &self.command {
            Command::Dir(f) | Command::Fd(f) | Command::Sd(f) => {
                f.debug.max(if f.verbose { 10 } else { 0 })
            }
            Command::Console(c) => c.debug,
            Command::Certs(_) | Command::Check(_) => 0,
            Command::Probe(p) => p.debug,
            Command::Demo(d) => d.debug,
        }
    }
}

/// Logs go to stderr through `tracing`; `-d` picks the level, `RUST_LOG` overrides.
pub fn init_logging(level: u32) {
    use tracing_subscriber::EnvFilter;
    let default = match level {
        0 => "warn",
        1..=9 => "info",
        10..=99 => "debug",
        _ => "trace",
    };
    // rustyline logs every keystroke through `log`; keep it quiet.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default},rustyline=warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Dir(flags) => crate::daemon::run::<crate::director::Director>(flags).await,
        Command::Fd(flags) => crate::daemon::run::<crate::fd::FileDaemon>(flags).await,
        Command::Sd(flags) => crate::daemon::run::<crate::sd::StorageDaemon>(flags).await,
        Command::Console(args) => crate::console::main(args).await,
        Command::Certs(args) => crate::certs::main(args),
        Command::Check(args) => crate::check::main(args),
        Command::Probe(args) => crate::probe::main(args).await,
        Command::Demo(args) => crate::demo::main(args).await,
    }
}
