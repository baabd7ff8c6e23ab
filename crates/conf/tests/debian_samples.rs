//! Loads the configuration files Debian's Bacula 9.6 packages install, found
//! at test time through the package file lists (`dpkg -L`), plus the configs
//! their maintainer scripts generate in /etc/bacula.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use baculink_conf::{
    load_any, AnyConfig, ConfigError, ConfigKind, ConsoleConfig, DirectorConfig, FdConfig, Items,
    SdConfig,
};
use baculink_proto::Secret;

use common::{bacula_files, find, skip_or_fail};

/// The placeholder Debian's templates carry for the host name.
const BASENAME: &str = "@debian_basename@";

fn key(pw: &str) -> Vec<u8> {
    Secret::from_password(pw).expose().to_vec()
}

/// Copies a template into `dir` with the host-name placeholder filled in.
fn instantiate(template: &Path, dir: &Path) -> PathBuf {
    let text = fs::read_to_string(template).unwrap();
    let out = dir.join(template.file_name().unwrap());
    fs::write(&out, text.replace(BASENAME, "debian")).unwrap();
    out
}

#[test]
fn raw_templates_fail_like_bacula_on_the_placeholder() {
    let Some(files) = bacula_files() else { return };
    // `Name = @debian_basename@-dir` is an include of "debian_basename@-dir" for
    // Bacula too ("Cannot open included config file"), so the raw template is
    // refused, naming the line.
    let tpl = find(&files, "defconfig/bconsole.conf");
    let e = ConsoleConfig::load(tpl).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, ConfigError::Syntax { .. }), "{msg}");
    assert!(
        msg.contains("bconsole.conf:9: cannot open included file \"debian_basename@-dir\""),
        "{msg}"
    );
}

#[test]
fn director_template() {
    let Some(files) = bacula_files() else { return };
    let t = tempfile::tempdir().unwrap();
    let path = instantiate(find(&files, "defconfig/bacula-dir.conf"), t.path());
    let (c, w) = DirectorConfig::load(&path).unwrap();
    assert!(w.is_empty(), "unexpected warnings: {w:#?}");

    let d = &c.director;
    assert_eq!(d.name, "debian-dir");
    assert_eq!(d.daemon.port, 9101);
    assert_eq!(d.daemon.address.as_deref(), Some("127.0.0.1"));
    assert_eq!(d.password.expose(), key("XXX_DIRPASSWORD_XXX"));
    assert_eq!(
        d.daemon.working_directory.as_deref(),
        Some(Path::new("/var/lib/bacula"))
    );
    assert_eq!(
        d.daemon.pid_directory.as_deref(),
        Some(Path::new("/run/bacula"))
    );
    assert_eq!(
        d.query_file.as_deref(),
        Some(Path::new("/etc/bacula/scripts/query.sql"))
    );
    assert_eq!(d.daemon.max_concurrent_jobs, 20);
    assert_eq!(d.messages.as_deref(), Some("Daemon"));
    assert!(!d.tls.enable && !d.tls.require);

    assert_eq!(c.clients.len(), 1);
    let cl = c.client("debian-fd").unwrap();
    assert_eq!((cl.address.as_str(), cl.port), ("localhost", 9102));
    assert_eq!(cl.password.expose(), key("XXX_FDPASSWORD_XXX"));
    assert_eq!(cl.catalog.as_deref(), Some("MyCatalog"));
    assert_eq!(cl.resource.value("jobretention"), Some("6"));
    assert_eq!(
        cl.resource.directive("jobretention").unwrap().raw(),
        "6 months"
    );

    let names: Vec<&str> = c.storages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["File1", "File2"]);
    for (s, n) in c.storages.iter().zip(1..) {
        assert!(s.autochanger);
        assert_eq!((s.address.as_str(), s.port), ("localhost", 9103));
        assert_eq!(s.devices, [format!("FileChgr{n}")]);
        assert_eq!(s.media_type, format!("File{n}"));
        assert_eq!(s.max_concurrent_jobs, 10);
        assert_eq!(s.password.expose(), key("XXX_SDPASSWORD_XXX"));
    }

    let names: Vec<&str> = c.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["BackupClient1", "BackupCatalog", "RestoreFiles"]);
    let j = c.job("BackupClient1").unwrap();
    assert_eq!(j.job_defs.as_deref(), Some("DefaultJob"));
    assert_eq!(j.job_type.as_deref(), Some("Backup"));
    assert_eq!(j.level.as_deref(), Some("Incremental"));
    assert_eq!(j.client.as_deref(), Some("debian-fd"));
    assert_eq!(j.fileset.as_deref(), Some("Full Set"));
    assert_eq!(j.schedule.as_deref(), Some("WeeklyCycle"));
    assert_eq!(j.storage, ["File1"]);
    assert_eq!(j.pool.as_deref(), Some("File"));
    let j = c.job("BackupCatalog").unwrap();
    assert_eq!(j.level.as_deref(), Some("Full"));
    assert_eq!(j.fileset.as_deref(), Some("Catalog"));
    assert_eq!(j.schedule.as_deref(), Some("WeeklyCycleAfterBackup"));
    assert_eq!(
        j.resource.value("runbeforejob"),
        Some("/etc/bacula/scripts/make_catalog_backup.pl MyCatalog")
    );
    let j = c.job("RestoreFiles").unwrap();
    assert_eq!(j.job_type.as_deref(), Some("Restore"));
    assert_eq!(
        j.where_.as_deref(),
        Some("/nonexistant/path/to/file/archive/dir/bacula-restores")
    );

    let fs = c.fileset("Full Set").unwrap();
    assert_eq!(fs.include.len(), 1);
    assert_eq!(fs.include[0].files, ["/usr/sbin"]);
    assert_eq!(
        fs.include[0].options,
        [vec![("signature".to_string(), "MD5".to_string())]]
    );
    assert_eq!(
        fs.exclude[0].files,
        [
            "/var/lib/bacula",
            "/nonexistant/path/to/file/archive/dir",
            "/proc",
            "/tmp",
            "/sys",
            "/.journal",
            "/.fsck"
        ]
    );
    assert_eq!(
        c.fileset("Catalog").unwrap().include[0].files,
        ["/var/lib/bacula/XXX_DBNAME_XXX.sql"]
    );

    let runs: Vec<String> = c.schedules[0]
        .resource
        .directives("run")
        .map(|d| d.raw())
        .collect();
    assert_eq!(
        runs,
        [
            "Full 1st sun at 23:05",
            "Differential 2nd-5th sun at 23:05",
            "Incremental mon-sat at 23:05"
        ]
    );
    let pools: Vec<&str> = c.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(pools, ["Default", "File", "Scratch"]);
    let cat = &c.catalogs[0];
    assert_eq!(cat.name, "MyCatalog");
    assert_eq!(cat.resource.value("dbname"), Some("XXX_DBNAME_XXX"));
    assert_eq!(cat.resource.value("dbuser"), Some("XXX_DBUSER_XXX"));
    assert!(cat
        .resource
        .directive("dbpassword")
        .unwrap()
        .secret
        .is_some());

    let m = c.messages("Standard").unwrap();
    assert!(m
        .mail_command
        .as_deref()
        .unwrap()
        .starts_with("/usr/sbin/bsmtp -h localhost -f \"(Bacula) <%r>\""));
    let kinds: Vec<&str> = m.destinations.iter().map(|d| d.kind.as_str()).collect();
    assert_eq!(kinds, ["mail", "operator", "console", "append", "catalog"]);
    assert_eq!(m.destinations[0].target.as_deref(), Some("root"));
    assert_eq!(m.destinations[0].types, ["all", "!skipped"]);
    assert_eq!(m.destinations[2].raw, "all, !skipped, !saved");
    assert_eq!(
        m.destinations[3].target.as_deref(),
        Some("/var/log/bacula/bacula.log")
    );

    let mon = c.console("debian-mon").unwrap();
    assert_eq!(mon.password.expose(), key("XXX_MONDIRPASSWORD_XXX"));
    assert_eq!(
        mon.resource.directive("commandacl").unwrap().list(),
        ["status", ".status"]
    );
    c.validate_tls().unwrap();
}

#[test]
fn file_daemon_template() {
    let Some(files) = bacula_files() else { return };
    let t = tempfile::tempdir().unwrap();
    let path = instantiate(find(&files, "defconfig/bacula-fd.conf"), t.path());
    let (c, w) = FdConfig::load(&path).unwrap();
    assert!(w.is_empty(), "unexpected warnings: {w:#?}");
    let f = &c.file_daemon;
    assert_eq!(f.name, "debian-fd");
    assert_eq!(f.daemon.port, 9102);
    assert_eq!(f.daemon.address.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        f.daemon.working_directory.as_deref(),
        Some(Path::new("/var/lib/bacula"))
    );
    assert_eq!(
        f.daemon.pid_directory.as_deref(),
        Some(Path::new("/run/bacula"))
    );
    assert_eq!(
        f.plugin_directory.as_deref(),
        Some(Path::new("/usr/lib/bacula"))
    );
    assert_eq!(f.daemon.max_concurrent_jobs, 20);
    let d = c.director("debian-dir").unwrap();
    assert!(!d.monitor);
    assert_eq!(d.password.expose(), key("XXX_FDPASSWORD_XXX"));
    let m = c.director("debian-mon").unwrap();
    assert!(m.monitor);
    assert_eq!(m.password.expose(), key("XXX_MONFDPASSWORD_XXX"));
    let dest = &c.messages[0].destinations[0];
    assert_eq!(dest.kind, "director");
    assert_eq!(dest.target.as_deref(), Some("debian-dir"));
    assert_eq!(dest.types, ["all", "!skipped", "!restored"]);
    c.validate_tls().unwrap();
}

#[test]
fn storage_daemon_template() {
    let Some(files) = bacula_files() else { return };
    let t = tempfile::tempdir().unwrap();
    let path = instantiate(find(&files, "defconfig/bacula-sd.conf"), t.path());
    let (c, w) = SdConfig::load(&path).unwrap();
    assert!(w.is_empty(), "unexpected warnings: {w:#?}");
    let s = &c.storage;
    assert_eq!(s.name, "debian-sd");
    assert_eq!(s.daemon.port, 9103);
    assert_eq!(s.daemon.address.as_deref(), Some("127.0.0.1"));
    assert_eq!(s.daemon.max_concurrent_jobs, 20);
    assert_eq!(
        c.director("debian-dir").unwrap().password.expose(),
        key("XXX_SDPASSWORD_XXX")
    );
    assert!(c.director("debian-mon").unwrap().monitor);
    let names: Vec<&str> = c.devices.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "FileChgr1-Dev1",
            "FileChgr1-Dev2",
            "FileChgr2-Dev1",
            "FileChgr2-Dev2"
        ]
    );
    let d = c.device("FileChgr2-Dev1").unwrap();
    assert_eq!(d.media_type, "File2");
    assert_eq!(d.archive_device, "/nonexistant/path/to/file/archive/dir");
    assert!(d.label_media && d.random_access && d.automatic_mount);
    assert!(!d.removable_media && !d.always_open);
    assert_eq!(d.max_concurrent_jobs, Some(5));
    let a = c.autochanger("FileChgr1").unwrap();
    assert_eq!(a.devices, ["FileChgr1-Dev1", "FileChgr1-Dev2"]);
    assert_eq!(a.changer_command.as_deref(), Some(""));
    assert_eq!(a.changer_device.as_deref(), Some("/dev/null"));
    c.validate_tls().unwrap();
}

#[test]
fn console_templates() {
    let Some(files) = bacula_files() else { return };
    let t = tempfile::tempdir().unwrap();
    for name in ["defconfig/bconsole.conf", "defconfig/bat.conf"] {
        let path = instantiate(find(&files, name), t.path());
        let (c, w) = ConsoleConfig::load(&path).unwrap();
        assert!(w.is_empty(), "{name}: {w:#?}");
        let d = c.director("debian-dir").unwrap();
        assert_eq!(d.port, 9101);
        assert_eq!(d.address.as_deref(), Some("localhost"));
        assert_eq!(d.password.expose(), key("XXX_DIRPASSWORD_XXX"));
        let (any, _) = load_any(&path).unwrap();
        assert_eq!(any.kind(), ConfigKind::Console);
    }
    // The upstream example (empty password).
    let (c, _) = ConsoleConfig::load(find(&files, "examples/conf/console.conf")).unwrap();
    let d = c.director("HeadMan").unwrap();
    assert_eq!(d.address.as_deref(), Some("localhost"));
    assert_eq!(d.password.expose(), key(""));
}

/// The configs Debian's maintainer scripts generated from the templates, with
/// the host name and random passwords filled in: each loads as its kind, and
/// the passwords pair up across daemons as the packages intend.
#[test]
fn generated_etc_configs() {
    let Some(files) = bacula_files() else { return };
    // bacula-common owns the directory the maintainer scripts write into.
    let etc = files
        .iter()
        .find(|p| p.ends_with("etc/bacula"))
        .expect("bacula-common lists its configuration directory");
    let mut loaded = Vec::new();
    for (file, kind) in [
        ("bacula-dir.conf", ConfigKind::Director),
        ("bacula-fd.conf", ConfigKind::FileDaemon),
        ("bacula-sd.conf", ConfigKind::Storage),
        ("bconsole.conf", ConfigKind::Console),
    ] {
        let path = etc.join(file);
        if let Err(e) = fs::File::open(&path) {
            skip_or_fail(&format!("cannot read {} ({e})", path.display()));
            return;
        }
        let (c, w) = load_any(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(w.is_empty(), "{file}: {w:#?}");
        assert_eq!(c.kind(), kind, "{file}");
        c.validate_tls().unwrap();
        loaded.push(c);
    }
    let [AnyConfig::Director(dir), AnyConfig::FileDaemon(fd), AnyConfig::Storage(sd), AnyConfig::Console(con)] =
        &loaded[..]
    else {
        unreachable!()
    };
    let host = dir.director.name.trim_end_matches("-dir");
    assert_eq!(fd.file_daemon.name, format!("{host}-fd"));
    assert_eq!(sd.storage.name, format!("{host}-sd"));
    // console <-> director
    let cd = con.director(&dir.director.name).unwrap();
    assert_eq!(cd.password, dir.director.password);
    assert_eq!(cd.port, dir.director.daemon.port);
    // director <-> file daemon
    let client = dir.client(&fd.file_daemon.name).unwrap();
    assert_eq!(client.port, fd.file_daemon.daemon.port);
    assert_eq!(
        client.password,
        fd.director(&dir.director.name).unwrap().password
    );
    // director <-> storage daemon
    let sdd = sd.director(&dir.director.name).unwrap();
    for s in &dir.storages {
        assert_eq!(s.port, sd.storage.daemon.port);
        assert_eq!(s.password, sdd.password);
        assert!(sd.autochanger(&s.devices[0]).is_some(), "{}", s.devices[0]);
    }
    // The monitor has its own passwords.
    let fd_mon = fd.director(&format!("{host}-mon")).unwrap();
    assert!(fd_mon.monitor);
    assert_ne!(fd_mon.password, client.password);
}

/// Every example Device file, included from a minimal storage daemon config:
/// we accept exactly the ones the real `bacula-sd -t` accepts.
#[test]
fn example_devices_agree_with_bacula_sd() {
    let Some(files) = bacula_files() else { return };
    let bacula_sd = find(&files, "/sbin/bacula-sd");
    let examples: Vec<&PathBuf> = files
        .iter()
        .filter(|p| {
            p.to_string_lossy().contains("/examples/devices/")
                && p.extension().is_some_and(|e| e == "conf")
        })
        .collect();
    assert!(examples.len() >= 10, "{examples:?}");
    let t = tempfile::tempdir().unwrap();
    let work = t.path().display().to_string();
    let (mut accepted, mut refused) = (0, 0);
    for ex in examples {
        let conf = t.path().join("bacula-sd.conf");
        fs::write(
            &conf,
            format!(
                "Storage {{ Name = s; WorkingDirectory = \"{work}\"; Pid Directory = \"{work}\" }}\n\
                 Director {{ Name = d; Password = p }}\n\
                 Messages {{ Name = Standard; director = d = all }}\n\
                 @\"{}\"\n",
                ex.display()
            ),
        )
        .unwrap();
        let real = Command::new(bacula_sd)
            .arg("-t")
            .arg("-c")
            .arg(&conf)
            .output()
            .unwrap()
            .status
            .success();
        let ours = SdConfig::load(&conf);
        match (&ours, real) {
            (Ok((c, _)), true) => {
                assert!(!c.devices.is_empty());
                for d in &c.devices {
                    assert!(d
                        .at
                        .file
                        .ends_with(&*ex.file_name().unwrap().to_string_lossy()));
                    assert!(!d.archive_device.is_empty() && !d.media_type.is_empty());
                }
                accepted += 1;
            }
            (Err(e), false) => {
                // The error points into the example file.
                let loc = e.location().expect("a located error");
                assert!(Path::new(&*loc.file).file_name() == ex.file_name(), "{e}");
                refused += 1;
            }
            (ours, real) => panic!(
                "{}: bacula-sd -t {} but we {:?}",
                ex.display(),
                if real { "accepts" } else { "refuses" },
                ours.as_ref().map(|_| "accept").map_err(|e| e.to_string())
            ),
        }
    }
    assert!(
        accepted > 0 && refused > 0,
        "{accepted} accepted, {refused} refused"
    );
}
