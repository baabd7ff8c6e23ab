//! `baculink`: Bacula-compatible director, file daemon, storage daemon and
//! console over Bacula TLS, plus the `probe`, `certs`, `check` and `demo` tools.

mod certs;
mod check;
mod cli;
mod console;
mod daemon;
mod demo;
mod director;
mod fd;
mod login;
mod probe;
mod sd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    baculink_net::tune_allocator();
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
