//! `baculink`: Bacula-compatible director, file daemon, storage daemon and
//! console over Bacula TLS, plus the `probe`, `certs`, `check` and `demo` tools.

mod cli;
mod demo;
mod director;
mod login;
mod probe;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    cli::init_logging(cli.debug_level());
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("baculink: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(cli::run(cli))
}
