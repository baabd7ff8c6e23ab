//! Loads the configs the shared interop harness generates for the real
//! Bacula 9.6 daemons (`start-bacula.sh WORKDIR MODE` with `START=none`, which
//! only writes them), and checks the TLS settings land in the resources the
//! harness README's table names.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use baculink_conf::{
    load_any, AnyConfig, ConfigKind, ConsoleConfig, DirectorConfig, FdConfig, Items, SdConfig,
    TlsRole, TlsSettings,
};
use baculink_proto::Secret;

use common::{bacula_files, interop_dir, skip_or_fail};

/// Environment the harness reads that must not leak in from the caller.
const HARNESS_VARS: &[&str] = &[
    "BACULA_HOST",
    "DIR_NAME",
    "FD_NAME",
    "SD_NAME",
    "DIR_PASSWORD",
    "FD_PASSWORD",
    "SD_PASSWORD",
    "CLIENT_NAME",
    "CLIENT_ADDRESS",
    "CLIENT_PORT",
    "CLIENT_PASSWORD",
    "STORAGE_RES_NAME",
    "STORAGE_ADDRESS",
    "STORAGE_PORT",
    "STORAGE_PASSWORD",
    "STORAGE_DEVICE",
    "STORAGE_MEDIA_TYPE",
    "FD_DIRECTOR_NAME",
    "FD_DIRECTOR_PASSWORD",
    "SD_DIRECTOR_NAME",
    "SD_DIRECTOR_PASSWORD",
    "CONSOLE_DIR_NAME",
    "CONSOLE_DIR_ADDRESS",
    "CONSOLE_DIR_PORT",
    "CONSOLE_DIR_PASSWORD",
    "CN_DIR",
    "CN_FD",
    "CN_SD",
    "CN_CONSOLE",
    "BACKUP_SRC",
    "RESTORE_WHERE",
    "VOLUME_DIR",
    "CERTDIR",
    "COMM_COMPRESSION",
    "VOLUME_MAX_JOBS",
    "BACKUP_SIGNATURE",
    "DEBUG",
];

struct Generated {
    _dir: tempfile::TempDir,
    work: PathBuf,
}

/// Runs the harness for `mode` with distinctive ports; None when skipped.
fn generate(mode: &str) -> Option<Generated> {
    bacula_files()?;
    let script = interop_dir().join("start-bacula.sh");
    if !script.exists() {
        skip_or_fail(&format!(
            "the shared interop harness is missing ({} not found)",
            script.display()
        ));
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let work = std::fs::canonicalize(dir.path()).unwrap();
    let mut cmd = Command::new("bash");
    cmd.arg(&script).arg(&work).arg(mode);
    for v in HARNESS_VARS {
        cmd.env_remove(v);
    }
    let out = cmd
        .env("START", "none")
        .env("DIR_PORT", "19101")
        .env("FD_PORT", "19102")
        .env("SD_PORT", "19103")
        .output()
        .expect("run start-bacula.sh");
    assert!(
        out.status.success(),
        "start-bacula.sh {mode} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(Generated { _dir: dir, work })
}

fn key(pw: &str) -> Secret {
    Secret::from_password(pw)
}

struct All {
    dir: DirectorConfig,
    fd: FdConfig,
    sd: SdConfig,
    con: ConsoleConfig,
}

/// Loads the four configs, each through its own loader and through `load_any`.
fn load(g: &Generated) -> All {
    let etc = g.work.join("etc");
    for (file, kind) in [
        ("bacula-dir.conf", ConfigKind::Director),
        ("bacula-fd.conf", ConfigKind::FileDaemon),
        ("bacula-sd.conf", ConfigKind::Storage),
        ("bconsole.conf", ConfigKind::Console),
    ] {
        let (c, w) = load_any(etc.join(file)).unwrap_or_else(|e| panic!("{e}"));
        assert!(w.is_empty(), "{file}: {w:#?}");
        assert_eq!(c.kind(), kind);
        c.validate_tls().unwrap_or_else(|e| panic!("{e}"));
        if let AnyConfig::Director(d) = &c {
            assert_eq!(d.director.name, "bacula-dir");
        }
    }
    let ok = |w: Vec<baculink_conf::Warning>| assert!(w.is_empty(), "{w:#?}");
    let (dir, w) = DirectorConfig::load(etc.join("bacula-dir.conf")).unwrap();
    ok(w);
    let (fd, w) = FdConfig::load(etc.join("bacula-fd.conf")).unwrap();
    ok(w);
    let (sd, w) = SdConfig::load(etc.join("bacula-sd.conf")).unwrap();
    ok(w);
    let (con, w) = ConsoleConfig::load(etc.join("bconsole.conf")).unwrap();
    ok(w);
    All { dir, fd, sd, con }
}

/// Names, ports, passwords and jobs: the same in every mode.
fn check_common(a: &All, work: &Path) {
    let d = &a.dir.director;
    assert_eq!((d.name.as_str(), d.daemon.port), ("bacula-dir", 19101));
    assert_eq!(d.daemon.address.as_deref(), Some("127.0.0.1"));
    assert_eq!(d.password, key("console-dir-password"));
    assert_eq!(
        d.daemon.working_directory.as_deref(),
        Some(&*work.join("working/dir"))
    );
    assert_eq!(d.daemon.pid_directory.as_deref(), Some(&*work.join("pid")));
    assert_eq!(d.daemon.max_concurrent_jobs, 20);
    assert_eq!(d.messages.as_deref(), Some("Daemon"));

    let cl = a.dir.client("bacula-fd").unwrap();
    assert_eq!((cl.address.as_str(), cl.port), ("127.0.0.1", 19102));
    assert_eq!(cl.password, key("dir-fd-password"));
    assert_eq!(cl.catalog.as_deref(), Some("MyCatalog"));

    let st = a.dir.storage("File1").unwrap();
    assert!(!st.autochanger);
    assert_eq!((st.address.as_str(), st.port), ("127.0.0.1", 19103));
    assert_eq!(st.password, key("dir-sd-password"));
    assert_eq!(st.devices, ["FileStorage"]);
    assert_eq!(st.media_type, "File");
    assert_eq!(st.max_concurrent_jobs, 10);

    let j = a.dir.job("BackupData").unwrap();
    assert_eq!(j.job_type.as_deref(), Some("Backup"));
    assert_eq!(j.level.as_deref(), Some("Full"));
    assert_eq!(j.client.as_deref(), Some("bacula-fd"));
    assert_eq!(j.fileset.as_deref(), Some("DataSet"));
    assert_eq!(j.storage, ["File1"]);
    assert_eq!(j.pool.as_deref(), Some("File"));
    let r = a.dir.job("RestoreData").unwrap();
    assert_eq!(r.job_type.as_deref(), Some("Restore"));
    let restore = work.join("restore").display().to_string();
    assert_eq!(r.where_.as_deref(), Some(restore.as_str()));
    let fs = a.dir.fileset("DataSet").unwrap();
    assert_eq!(
        fs.include[0].files,
        [work.join("data").display().to_string()]
    );
    assert_eq!(
        fs.include[0].options,
        [vec![("signature".to_string(), "MD5".to_string())]]
    );
    let cat = &a.dir.catalogs[0];
    assert_eq!(cat.resource.value("dbname"), Some("bacula"));
    let log = work.join("log/bacula.log").display().to_string();
    let std = a.dir.messages("Standard").unwrap();
    assert_eq!(std.destinations[1].target.as_deref(), Some(log.as_str()));

    let f = &a.fd.file_daemon;
    assert_eq!((f.name.as_str(), f.daemon.port), ("bacula-fd", 19102));
    assert_eq!(f.daemon.address.as_deref(), Some("127.0.0.1"));
    assert_eq!(f.daemon.listen(), [(Some("127.0.0.1".to_string()), 19102)]);
    assert_eq!(
        f.daemon.working_directory.as_deref(),
        Some(&*work.join("working/fd"))
    );
    let fdd = a.fd.director("bacula-dir").unwrap();
    assert_eq!(fdd.password, cl.password);
    assert!(!fdd.monitor);

    let s = &a.sd.storage;
    assert_eq!((s.name.as_str(), s.daemon.port), ("bacula-sd", 19103));
    assert_eq!(s.daemon.address.as_deref(), Some("127.0.0.1"));
    let sdd = a.sd.director("bacula-dir").unwrap();
    assert_eq!(sdd.password, st.password);
    let dev = a.sd.device("FileStorage").unwrap();
    assert_eq!(dev.media_type, "File");
    assert_eq!(
        dev.archive_device,
        work.join("volumes").display().to_string()
    );
    assert!(dev.label_media && dev.random_access && !dev.removable_media);

    let cd = a.con.director("bacula-dir").unwrap();
    assert_eq!(cd.address.as_deref(), Some("127.0.0.1"));
    assert_eq!(cd.port, 19101);
    assert_eq!(cd.password, d.password);
}

#[test]
fn clear_mode() {
    let Some(g) = generate("clear") else { return };
    let a = load(&g);
    check_common(&a, &g.work);
    let off = TlsSettings::default();
    for t in [
        &a.dir.director.tls,
        &a.dir.client("bacula-fd").unwrap().tls,
        &a.dir.storage("File1").unwrap().tls,
        &a.fd.file_daemon.tls,
        &a.fd.directors[0].tls,
        &a.sd.storage.tls,
        &a.sd.directors[0].tls,
        &a.con.directors[0].tls,
    ] {
        assert_eq!(t, &off);
    }
}

#[test]
fn tls_mode() {
    let Some(g) = generate("tls") else { return };
    let a = load(&g);
    check_common(&a, &g.work);
    let certs = g.work.join("certs");
    let p = |f: &str| Some(certs.join(f));

    // Accepting sides: Enable, Require, Verify Peer, CA, own cert/key, DH, Allowed CN.
    let server = |t: &TlsSettings, who: &str, cn: &str| {
        assert!(t.enable && t.require && t.verify_peer, "{who}");
        assert_eq!(t.ca_file, p("ca.crt"), "{who}");
        assert_eq!(t.ca_dir, None, "{who}");
        assert_eq!(t.certificate, p(&format!("{who}.crt")));
        assert_eq!(t.key, p(&format!("{who}.key")));
        assert_eq!(t.dh_file, p("dh2048.pem"), "{who}");
        assert_eq!(t.allowed_cn, [cn], "{who}");
        assert!(t.needs_context(TlsRole::Server));
    };
    // Connecting sides: Enable, Require, CA, own cert/key; no DH, no Allowed CN.
    let client = |t: &TlsSettings, who: &str| {
        assert!(t.enable && t.require, "{who}");
        assert_eq!(t.ca_file, p("ca.crt"), "{who}");
        assert_eq!(t.certificate, p(&format!("{who}.crt")));
        assert_eq!(t.key, p(&format!("{who}.key")));
        assert_eq!(t.dh_file, None, "{who}");
        assert!(t.allowed_cn.is_empty(), "{who}");
        assert!(t.needs_context(TlsRole::Client));
    };

    // bconsole -> dir
    let cd = &a.con.directors[0];
    assert_eq!(cd.tls_role(), TlsRole::Client);
    client(&cd.tls, "console");
    assert_eq!(a.dir.director.tls_role(), TlsRole::Server);
    server(&a.dir.director.tls, "dir", "bconsole");
    // dir -> fd
    let cl = a.dir.client("bacula-fd").unwrap();
    assert_eq!(cl.tls_role(), TlsRole::Client);
    client(&cl.tls, "dir");
    assert_eq!(a.fd.directors[0].tls_role(), TlsRole::Server);
    server(&a.fd.directors[0].tls, "fd", "bacula-dir");
    // dir -> sd
    let st = a.dir.storage("File1").unwrap();
    assert_eq!(st.tls_role(), TlsRole::Client);
    client(&st.tls, "dir");
    assert_eq!(a.sd.directors[0].tls_role(), TlsRole::Server);
    server(&a.sd.directors[0].tls, "sd", "bacula-dir");
    // fd -> sd
    assert_eq!(a.fd.file_daemon.tls_role(), TlsRole::Client);
    client(&a.fd.file_daemon.tls, "fd");
    assert_eq!(a.sd.storage.tls_role(), TlsRole::Server);
    server(&a.sd.storage.tls, "sd", "bacula-fd");

    // The paths the configs name are the harness's real files.
    for f in [
        "ca.crt",
        "dh2048.pem",
        "dir.crt",
        "dir.key",
        "console.crt",
        "sd.key",
    ] {
        assert!(certs.join(f).is_file(), "{f}");
    }
}
