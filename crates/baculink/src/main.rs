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
    tune_allocator();
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

/// Keeps freed packet buffers in the heap instead of returning them to the
/// kernel. Every received packet is a fresh 64 KiB buffer (the previous one
/// is still queued for the volume or the file); with glibc's defaults the
/// heap top was trimmed and faulted back in on nearly every packet, which
/// cost the Storage daemon a third of its CPU on a TLS backup. Peak memory
/// is unchanged; up to 32 MiB of free heap may stay mapped after a burst.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only sets allocator parameters; it is called before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 32 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}
