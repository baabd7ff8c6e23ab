//! `baculink demo`: an end-to-end run on loopback. Writes Bacula config files
//! (real syntax, the same files an administrator writes), starts our Director
//! from them, and logs in as a console twice: once with no certificates
//! configured (TLS-PSK from the shared password) and once with certificate
//! TLS, printing the TLS facts of each login.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use baculink_tls::certgen::{self, Ca};
use clap::Args;
use tokio::net::TcpListener;

use crate::daemon::{self, Daemon};
use crate::director::Director;
use crate::probe::{self, ProbeArgs};

/// `baculink demo` arguments.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the generated files in this folder (default: a temporary folder).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Debug level.
    #[arg(short = 'd', default_value_t = 0)]
    pub debug: u32,
}

const DIR_PASSWORD: &str = "demo-console-password";

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Writes certificates and the configs; returns (bacula-dir.conf, PSK bconsole.conf, cert bconsole.conf).
fn prepare(dir: &Path, port: u16) -> Result<(PathBuf, PathBuf, PathBuf), String> {
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).map_err(|e| format!("{}: {e}", certs.display()))?;
    let ca = Ca::new("baculink demo CA").map_err(|e| e.to_string())?;
    certgen::write_cert_pem(&certs.join("ca.pem"), &ca.cert).map_err(|e| e.to_string())?;
    let lo: IpAddr = "127.0.0.1".parse().expect("loopback literal");
    for (file, cn) in [("dir", "baculink-dir"), ("console", "bconsole")] {
        let (c, k) = ca
            .issue(cn, &["localhost"], &[lo], 365)
            .map_err(|e| e.to_string())?;
        certgen::write_pem_files(&certs, file, &c, &k).map_err(|e| e.to_string())?;
    }
    certgen::write_dh_file(&certs.join("dh2048.pem")).map_err(|e| e.to_string())?;
    let c = certs.display();
    let dir_conf = dir.join("bacula-dir.conf");
    write(
        &dir_conf,
        &format!(
            r#"# Director for the baculink demo.
Director {{
  Name = baculink-dir
  DIRAddress = 127.0.0.1
  DIRport = {port}
  Password = "{DIR_PASSWORD}"
  WorkingDirectory = "{w}"
  PidDirectory = "{w}"
  Messages = Daemon
  # Certificate TLS for consoles that enable it; the others get TLS-PSK.
  TLS Enable = yes
  TLS Verify Peer = yes
  TLS Allowed CN = bconsole
  TLS CA Certificate File = "{c}/ca.pem"
  TLS Certificate = "{c}/dir.pem"
  TLS Key = "{c}/dir.key"
  TLS DH File = "{c}/dh2048.pem"
}}
Messages {{
  Name = Daemon
  console = all
}}
"#,
            w = dir.display()
        ),
    )?;
    let psk_conf = dir.join("bconsole-psk.conf");
    write(
        &psk_conf,
        &format!(
            "# No TLS directives: TLS-PSK from the password.\nDirector {{\n  Name = baculink-dir\n  \
             Address = 127.0.0.1\n  DIRport = {port}\n  Password = \"{DIR_PASSWORD}\"\n}}\n"
        ),
    )?;
    let cert_conf = dir.join("bconsole-cert.conf");
    write(
        &cert_conf,
        &format!(
            "# Certificate TLS, required.\nDirector {{\n  Name = baculink-dir\n  Address = 127.0.0.1\n  \
             DIRport = {port}\n  Password = \"{DIR_PASSWORD}\"\n  TLS Enable = yes\n  TLS Require = yes\n  \
             TLS CA Certificate File = \"{c}/ca.pem\"\n  TLS Certificate = \"{c}/console.pem\"\n  \
             TLS Key = \"{c}/console.key\"\n}}\n"
        ),
    )?;
    Ok((dir_conf, psk_conf, cert_conf))
}

pub async fn main(args: DemoArgs) -> ExitCode {
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baculink demo: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: DemoArgs) -> Result<(), String> {
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("baculink-demo-")
                .tempdir()
                .map_err(|e| e.to_string())?;
            tmp.path().to_path_buf()
        }
    };
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let (dir_conf, psk_conf, cert_conf) = prepare(&dir, port)?;
    println!(
        "baculink demo: configs and certificates in {}",
        dir.display()
    );

    let director = Arc::new(<Director as Daemon>::load(
        &dir_conf,
        Duration::from_secs(30),
    )?);
    println!(
        "Director \"{}\" listening on 127.0.0.1:{port}",
        director.name()
    );
    let d = director.clone();
    let server = tokio::spawn(daemon::serve(listener, move |tcp, addr| {
        d.clone().handle(tcp, addr)
    }));

    for (what, conf) in [
        ("TLS-PSK (no certificates configured)", &psk_conf),
        ("certificate TLS", &cert_conf),
    ] {
        println!("\n== console login with {what}: {}", conf.display());
        let probe_args = ProbeArgs {
            config: conf.clone(),
            director: None,
            client: None,
            storage: None,
            command: Some("status dir".into()),
            json: false,
            dialect: "13".into(),
            timeout: 30,
            debug: args.debug,
        };
        let code = tokio::time::timeout(Duration::from_secs(60), probe::main(probe_args))
            .await
            .map_err(|_| format!("the {what} login did not finish"))?;
        if code != ExitCode::SUCCESS {
            server.abort();
            return Err(format!("the {what} login failed"));
        }
    }
    server.abort();
    println!("\nbaculink demo: both logins succeeded");
    Ok(())
}
