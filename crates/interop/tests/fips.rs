//! `FIPS Require = yes` without OpenSSL's FIPS provider (Debian 12 ships
//! none by default): every daemon refuses to start, with the reason.

use baculink_interop::{baculink_bin, require_peers};

#[test]
fn fips_require_without_provider_refuses_to_start() {
    if !require_peers("openssl") {
        return;
    }
    let provider_present =
        std::path::Path::new("/usr/lib/x86_64-linux-gnu/ossl-modules/fips.so").exists();
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().display();
    let configs = [
        ("dir", format!("Director {{\n  Name = d\n  Password = \"x\"\n  WorkingDirectory = \"{w}\"\n  Pid Directory = \"{w}\"\n  FIPS Require = yes\n  Messages = M\n}}\nMessages {{\n  Name = M\n  console = all\n}}\n")),
        ("fd", format!("FileDaemon {{\n  Name = f\n  WorkingDirectory = \"{w}\"\n  Pid Directory = \"{w}\"\n  FIPS Require = yes\n}}\nDirector {{\n  Name = d\n  Password = \"x\"\n}}\n")),
        ("sd", format!("Storage {{\n  Name = s\n  WorkingDirectory = \"{w}\"\n  Pid Directory = \"{w}\"\n  FIPS Require = yes\n}}\nDirector {{\n  Name = d\n  Password = \"x\"\n}}\nDevice {{\n  Name = D\n  Media Type = File\n  Archive Device = \"{w}\"\n}}\n")),
    ];
    // The console too, from a bconsole.conf.
    let con = dir.path().join("bconsole.conf");
    std::fs::write(&con, "Director {\n  Name = d\n  Address = 127.0.0.1\n  Password = \"x\"\n  FIPS Require = yes\n}\n").unwrap();
    let out = std::process::Command::new(baculink_bin())
        .args(["console", "-n", "-c"])
        .arg(&con)
        .output()
        .unwrap();
    if !provider_present {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "console: {err}");
        assert!(
            err.contains("FIPS provider is not available"),
            "console: {err}"
        );
    }
    for (kind, text) in configs {
        let path = dir.path().join(format!("{kind}.conf"));
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(baculink_bin())
            .arg(kind)
            .arg("-t")
            .arg("-c")
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if provider_present {
            eprintln!("a FIPS provider is installed here; {kind}: {err}");
            continue;
        }
        assert_eq!(out.status.code(), Some(1), "{kind}: {err}");
        assert!(
            err.contains("FIPS Require = yes: OpenSSL's FIPS provider is not available"),
            "{kind}: {err}"
        );
    }
}
