//! Syntax and typing rules, exercised through the public loaders.

use std::path::Path;
use std::time::Duration;

use baculink_proto::Secret;

use crate::*;

const FD_BASE: &str = "FileDaemon { Name = f; WorkingDirectory = /tmp }\n";

fn fd(text: &str) -> (FdConfig, Vec<Warning>) {
    FdConfig::parse_str("bacula-fd.conf", &format!("{FD_BASE}{text}")).unwrap()
}

fn fd_err(text: &str) -> String {
    FdConfig::parse_str("bacula-fd.conf", &format!("{FD_BASE}{text}"))
        .unwrap_err()
        .to_string()
}

fn dir_of(cfg: &FdConfig) -> &fd::Director {
    &cfg.directors[0]
}

#[test]
fn quoting_and_escapes() {
    let (c, _) = fd(r#"Director { Name = "a b"; Password = "p\"q\\r" }"#);
    assert_eq!(dir_of(&c).name, "a b");
    assert_eq!(
        dir_of(&c).password.expose(),
        Secret::from_password(r#"p"q\r"#).expose()
    );
}

#[test]
fn newline_inside_quotes_is_dropped() {
    let (c, _) = fd("Director { Name = d; Password = \"ab\ncd\"\n Monitor = yes }");
    let d = dir_of(&c);
    assert_eq!(d.password.expose(), Secret::from_password("abcd").expose());
    assert!(d.monitor);
}

#[test]
fn tokens_after_a_value_are_ignored() {
    let (c, _) = fd("Director { Name = d; Password = two words }");
    assert_eq!(
        dir_of(&c).password.expose(),
        Secret::from_password("two").expose()
    );
    let (c, _) = fd("Director { Name = d; Password = p; Address = host.example extra stuff }");
    assert_eq!(dir_of(&c).address.as_deref(), Some("host.example"));
}

#[test]
fn keywords_ignore_spaces_and_case() {
    let (c, w) = fd(
        "Director {\n name = d\n PASSWORD = p\n TLS CA Certificate File = /ca\n \
         tlscertificate = /c\n Tls   Key = /k\n TLSDHFILE = /dh\n tls verify peer = NO\n}",
    );
    assert!(w.is_empty(), "{w:?}");
    let t = &dir_of(&c).tls;
    assert_eq!(t.ca_file.as_deref(), Some(Path::new("/ca")));
    assert_eq!(t.certificate.as_deref(), Some(Path::new("/c")));
    assert_eq!(t.key.as_deref(), Some(Path::new("/k")));
    assert_eq!(t.dh_file.as_deref(), Some(Path::new("/dh")));
    assert!(!t.verify_peer);
}

#[test]
fn resource_types_ignore_case() {
    let (c, _) = FdConfig::parse_str(
        "x.conf",
        "filedaemon { Name = f }\nDIRECTOR { Name = d; Password = p }\nmessages { name = M; DIRECTOR = d = all }",
    )
    .unwrap();
    assert_eq!(c.file_daemon.name, "f");
    assert_eq!(c.messages[0].destinations[0].target.as_deref(), Some("d"));
}

#[test]
fn semicolons_and_comments() {
    let (c, _) = fd("Director { Name = d; Password = \"p#q\" # a comment; Monitor = yes\n}\n# Director { Name = x }");
    assert_eq!(c.directors.len(), 1);
    let d = dir_of(&c);
    assert_eq!(d.password.expose(), Secret::from_password("p#q").expose());
    assert!(
        !d.monitor,
        "the ; inside a comment does not start a directive"
    );
}

#[test]
fn booleans() {
    for (v, want) in [
        ("yes", true),
        ("YES", true),
        ("True", true),
        ("no", false),
        ("FALSE", false),
    ] {
        let (c, _) = fd(&format!(
            "Director {{ Name = d; Password = p; Monitor = {v} }}"
        ));
        assert_eq!(dir_of(&c).monitor, want, "{v}");
    }
    assert_eq!(
        fd_err("Director {\n Name = d\n Password = p\n TLS Enable = maybe\n}"),
        "bacula-fd.conf:5: directive \"TLS Enable\": expected yes or no, got \"maybe\""
    );
}

#[test]
fn times_ports_and_counts() {
    let (c, _) = FdConfig::parse_str(
        "x.conf",
        "FileDaemon { Name = f; FDport = 19102; Maximum Concurrent Jobs = 7\n \
         Heartbeat Interval = 1 m\n SD Connect Timeout = 2 hours 3 n\n}\nDirector { Name = d; Password = p }",
    )
    .unwrap();
    let f = &c.file_daemon;
    assert_eq!(f.daemon.port, 19102);
    assert_eq!(f.daemon.max_concurrent_jobs, 7);
    assert_eq!(
        f.daemon.heartbeat_interval,
        Duration::from_secs(30 * 86_400),
        "m = months"
    );
    assert_eq!(f.sd_connect_timeout, Duration::from_secs(7200 + 180));
    let e = FdConfig::parse_str("x.conf", "FileDaemon { Name = f\n FDport = 70000 }")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "x.conf:2: directive \"FDport\": expected a port number (1-65535), got \"70000\""
    );
    let e = FdConfig::parse_str(
        "x.conf",
        "FileDaemon { Name = f\n Heartbeat Interval = soon }",
    )
    .unwrap_err();
    assert!(
        matches!(&e, ConfigError::Value { directive, .. } if directive == "Heartbeat Interval")
    );
}

#[test]
fn defaults() {
    let (c, _) = fd("Director { Name = d; Password = p }");
    let f = &c.file_daemon;
    assert_eq!(f.daemon.port, 9102);
    assert_eq!(f.daemon.max_concurrent_jobs, 20);
    assert_eq!(f.daemon.heartbeat_interval, Duration::from_secs(300));
    assert!(f.daemon.comm_compression);
    let d = dir_of(&c);
    assert_eq!(d.port, 9101);
    assert!(!d.monitor);
    assert_eq!(d.tls, TlsSettings::default());
}

#[test]
fn lists_accumulate() {
    let (c, _) = fd(
        "Director { Name = d; Password = p\n TLS Allowed CN = a, \"b c\"\n TLS Allowed CN = d\n}",
    );
    assert_eq!(dir_of(&c).tls.allowed_cn, vec!["a", "b c", "d"]);
    let (s, _) = SdConfig::parse_str(
        "sd.conf",
        "Storage { Name = s }\nDirector { Name = d; Password = p }\n\
         Device { Name = d1; Media Type = F; Archive Device = /v }\n\
         Device { Name = d2; Media Type = F; Archive Device = /v }\n\
         Device { Name = d3; Media Type = F; Archive Device = /v }\n\
         Autochanger { Name = c\n Device = d1, d2\n Device = d3\n Changer Command = \"\"\n}",
    )
    .unwrap();
    assert_eq!(s.autochangers[0].devices, vec!["d1", "d2", "d3"]);
    assert_eq!(s.autochangers[0].changer_command.as_deref(), Some(""));
}

#[test]
fn string_directives_may_not_be_redefined() {
    assert_eq!(
        fd_err("Director { Name = d; Password = p\n Address = a\n Address = b\n}"),
        "bacula-fd.conf:4: directive \"Address\": set twice in Director \"d\" (first at line 3)"
    );
    // Booleans and numbers: the last one wins, as in Bacula.
    let (c, _) = fd("Director { Name = d; Password = p; Monitor = yes; Monitor = no }");
    assert!(!dir_of(&c).monitor);
}

#[test]
fn unknown_directive_is_a_warning() {
    let (c, w) = fd("Director { Name = d; Password = p\n Frobnicate = 1\n}");
    assert_eq!(c.directors.len(), 1);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].kind, WarningKind::UnknownDirective);
    assert_eq!(w[0].directive.as_deref(), Some("Frobnicate"));
    assert_eq!(w[0].resource, "Director \"d\"");
    assert_eq!(
        w[0].to_string(),
        "bacula-fd.conf:3: unknown directive \"Frobnicate\" in Director \"d\" ignored"
    );
}

#[test]
fn unknown_resource_is_skipped_with_a_warning() {
    let (c, w) = fd("Director { Name = d; Password = p }\nGizmo {\n Name = g\n Stuff { x = 1 }\n}");
    assert_eq!(c.directors.len(), 1);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].kind, WarningKind::UnknownResource);
    assert_eq!(
        w[0].to_string(),
        "bacula-fd.conf:3: unknown resource type \"Gizmo\" skipped"
    );
}

#[test]
fn duplicate_resource_is_an_error() {
    assert_eq!(
        fd_err("Director { Name = d; Password = p }\nDirector { Name = d; Password = q }"),
        "bacula-fd.conf:3: Director \"d\" is defined twice (first at bacula-fd.conf:2)"
    );
    // Same name, different types: fine.
    let (c, _) = fd("Director { Name = f; Password = p }\nMessages { Name = f }");
    assert_eq!(c.directors[0].name, c.file_daemon.name);
}

#[test]
fn missing_required_directives() {
    assert_eq!(
        fd_err("Director { Name = d }"),
        "bacula-fd.conf:2: Director \"d\": required directive \"Password\" is missing"
    );
    assert_eq!(
        fd_err("Director { Password = p }"),
        "bacula-fd.conf:2: Director resource has no \"Name\" directive (it is required)"
    );
    let e = FdConfig::parse_str("x.conf", "Director { Name = d; Password = p }").unwrap_err();
    assert_eq!(
        e.to_string(),
        "x.conf:1: no FileDaemon resource defined (exactly one is required)"
    );
    let e = FdConfig::parse_str("x.conf", "FileDaemon { Name = a }\nFileDaemon { Name = b }")
        .unwrap_err();
    assert!(
        e.to_string().starts_with("x.conf:2: a second FileDaemon"),
        "{e}"
    );
}

#[test]
fn names_are_checked() {
    assert_eq!(
        fd_err("Director { Name = a/b; Password = p }"),
        "bacula-fd.conf:2: directive \"Name\": illegal character '/' in name \"a/b\""
    );
    assert!(fd_err("Director { Name = \"\"; Password = p }").contains("empty"));
}

#[test]
fn empty_password_is_a_password() {
    let (c, _) = fd("Director { Name = d; Password = \"\" }");
    assert_eq!(
        dir_of(&c).password.expose(),
        Secret::from_password("").expose()
    );
    assert!(fd_err("Director { Name = d; Password = }").contains("expected a value"));
}

#[test]
fn client_is_an_alias_of_filedaemon() {
    let (c, _) = FdConfig::parse_str(
        "x.conf",
        "Client { Name = f }\nDirector { Name = d; Password = p }",
    )
    .unwrap();
    assert_eq!(c.file_daemon.name, "f");
}

#[test]
fn bom_is_accepted() {
    let (c, _) = FdConfig::parse_str(
        "x.conf",
        "\u{feff}FileDaemon { Name = f }\nDirector { Name = d; Password = p }",
    )
    .unwrap();
    assert_eq!(c.file_daemon.name, "f");
}

#[test]
fn listen_addresses() {
    let (c, _) = FdConfig::parse_str(
        "x.conf",
        "FileDaemon { Name = f; FDport = 9999\n FDAddresses = {\n ip = { addr = 127.0.0.1; port = 1234 }\n \
         ipv4 = { addr = 127.0.0.2 }\n }\n}\nDirector { Name = d; Password = p }",
    )
    .unwrap();
    assert_eq!(
        c.file_daemon.daemon.listen(),
        vec![
            (Some("127.0.0.1".to_string()), 1234),
            (Some("127.0.0.2".to_string()), 9999)
        ]
    );
    let (c, _) = fd("Director { Name = d; Password = p }");
    assert_eq!(c.file_daemon.daemon.listen(), vec![(None, 9102)]);
}

mod includes {
    use super::*;
    use std::fs;

    #[test]
    fn relative_includes_resolve_next_to_the_including_file() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("conf.d")).unwrap();
        fs::write(
            t.path().join("bacula-fd.conf"),
            "FileDaemon { Name = f }\n@conf.d/dirs.conf\n@\"conf.d/with space.conf\"\n",
        )
        .unwrap();
        fs::write(
            t.path().join("conf.d/dirs.conf"),
            "Director {\n Name = d\n @pw\n}\n",
        )
        .unwrap();
        // No trailing newline: the end of an included file ends the directive.
        fs::write(t.path().join("conf.d/pw"), "Password = \"included secret\"").unwrap();
        fs::write(
            t.path().join("conf.d/with space.conf"),
            "Director { Name = e; Password = x\n Bogus = 1 }\n",
        )
        .unwrap();
        let (c, w) = FdConfig::load(t.path().join("bacula-fd.conf")).unwrap();
        assert_eq!(c.directors.len(), 2);
        assert_eq!(
            c.directors[0].password.expose(),
            Secret::from_password("included secret").expose()
        );
        // Locations name the included file and its own line.
        assert_eq!(c.directors[0].at.line, 1);
        assert!(
            c.directors[0].at.file.ends_with("dirs.conf"),
            "{}",
            c.directors[0].at
        );
        assert_eq!(w.len(), 1);
        assert!(w[0].at.file.ends_with("with space.conf"));
        assert_eq!(w[0].at.line, 2);
    }

    #[test]
    fn include_loops_are_detected() {
        let t = tempfile::tempdir().unwrap();
        fs::write(
            t.path().join("a.conf"),
            "FileDaemon { Name = f }\n@b.conf\n",
        )
        .unwrap();
        fs::write(t.path().join("b.conf"), "\n@a.conf\n").unwrap();
        let e = FdConfig::load(t.path().join("a.conf"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("b.conf:2: include loop"), "{e}");
        assert!(e.contains("a.conf -> "), "{e}");

        fs::write(t.path().join("self.conf"), "@self.conf\n").unwrap();
        let e = FdConfig::load(t.path().join("self.conf"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("include loop"), "{e}");
    }

    #[test]
    fn missing_include_names_file_and_line() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("x.conf");
        fs::write(&p, "FileDaemon {\n Name = f\n @nope.conf\n}\n").unwrap();
        let e = FdConfig::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("x.conf:3: cannot open included file \"nope.conf\""),
            "{e}"
        );
    }

    #[test]
    fn pipe_includes_run_a_command() {
        let (c, _) = FdConfig::parse_str(
            "x.conf",
            "FileDaemon { Name = f }\n@|\"echo 'Director { Name = piped; Password = p }'\"\n",
        )
        .unwrap();
        assert_eq!(c.directors[0].name, "piped");
        let e = FdConfig::parse_str("x.conf", "@|false\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("x.conf:1: included command \"|false\" failed"),
            "{e}"
        );
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let e = FdConfig::load("/nonexistent/bacula-fd.conf").unwrap_err();
        assert!(matches!(e, ConfigError::Io { .. }));
        assert!(e
            .to_string()
            .starts_with("/nonexistent/bacula-fd.conf: cannot read"));
    }
}

const DIR_CONF: &str = r#"
Director {
  Name = dir1
  DIRport = 19101
  DIRAddress = 127.0.0.1
  Password = "console-secret"
  WorkingDirectory = /var/lib/bacula
  PidDirectory = /run/bacula
  QueryFile = "/etc/bacula/scripts/query.sql"
  Maximum Concurrent Jobs = 5
  Messages = Daemon
  TLS Enable = yes
  TLS Require = yes
  TLS Certificate = /c/dir.crt
  TLS Key = /c/dir.key
  TLS CA Certificate File = /c/ca.crt
  TLS Allowed CN = bconsole
}
Console { Name = mon; Password = "mon-secret"; CommandACL = status, .status }
Client {
  Name = fd1
  Address = fd.example
  Password = "fd-secret"
  Catalog = Cat
  File Retention = 30 days
}
Autochanger {
  Name = File1; Address = sd.example; SDPort = 19103; Password = "sd-secret"
  Device = Chgr; Media Type = File1; Autochanger = File1
}
Storage { Name = Tape; Address = sd.example; Password = "sd-secret"; Device = T1, T2; Media Type = LTO }
Catalog { Name = Cat; dbname = bacula; dbuser = bacula; dbpassword = "db-secret" }
JobDefs { Name = Defaults; Type = Backup; Level = Incremental; Client = fd1; FileSet = "Full Set"
  Storage = File1; Pool = P; Messages = Standard; Schedule = Weekly }
Job { Name = Backup1; JobDefs = Defaults; Level = Full
  RunScript { RunsWhen = Before; Command = "/bin/true" }
}
Job { Name = Restore; Type = Restore; Client = fd1; FileSet = "Full Set"; Storage = Tape; Pool = P
  Messages = Standard; Where = /tmp/restores }
FileSet { Name = "Full Set"
  Include { Options { signature = MD5; compression = GZIP } File = /usr/sbin
    File = "/etc" }
  Exclude { File = /proc; File = /tmp }
}
Schedule { Name = Weekly; Run = Full 1st sun at 23:05; Run = Incremental mon-sat at 23:05 }
Pool { Name = P; Pool Type = Backup; Volume Retention = 365 days }
Messages { Name = Standard; console = all, !skipped; append = "/var/log/b.log" = all, !skipped }
Messages { Name = Daemon; mailcommand = "/usr/sbin/bsmtp -f \"\(Bacula\) \<%r\>\" %r"; mail = root = all }
"#;

#[test]
fn director_config() {
    let (c, w) = DirectorConfig::parse_str("bacula-dir.conf", DIR_CONF).unwrap();
    assert!(w.is_empty(), "{w:?}");
    let d = &c.director;
    assert_eq!((d.name.as_str(), d.daemon.port), ("dir1", 19101));
    assert_eq!(d.daemon.address.as_deref(), Some("127.0.0.1"));
    assert_eq!(d.daemon.listen(), vec![(Some("127.0.0.1".into()), 19101)]);
    assert_eq!(
        d.password.expose(),
        Secret::from_password("console-secret").expose()
    );
    assert_eq!(d.daemon.max_concurrent_jobs, 5);
    assert_eq!(d.max_console_connections, 20);
    assert_eq!(d.fd_connect_timeout, Duration::from_secs(180));
    assert_eq!(d.messages.as_deref(), Some("Daemon"));
    assert!(d.tls.enable && d.tls.require && d.tls.verify_peer);
    assert_eq!(d.tls.allowed_cn, vec!["bconsole"]);
    assert_eq!(d.tls_role(), TlsRole::Server);

    let con = c.console("mon").unwrap();
    assert_eq!(
        con.resource.directive("commandacl").unwrap().list(),
        vec!["status", ".status"]
    );

    let cl = c.client("fd1").unwrap();
    assert_eq!((cl.address.as_str(), cl.port), ("fd.example", 9102));
    assert_eq!(cl.catalog.as_deref(), Some("Cat"));
    assert_eq!(
        cl.resource.directive("fileretention").unwrap().raw(),
        "30 days"
    );
    assert_eq!(cl.tls_role(), TlsRole::Client);

    let ac = c.storage("File1").unwrap();
    assert!(ac.autochanger);
    assert_eq!(
        (ac.port, ac.devices.clone(), ac.media_type.as_str()),
        (19103, vec!["Chgr".to_string()], "File1")
    );
    let st = c.storage("Tape").unwrap();
    assert_eq!((st.port, st.devices.len()), (9103, 2));

    let b = c.job("Backup1").unwrap();
    assert_eq!(b.job_defs.as_deref(), Some("Defaults"));
    assert_eq!(b.job_type.as_deref(), Some("Backup"));
    assert_eq!(
        b.level.as_deref(),
        Some("Full"),
        "own directive wins over JobDefs"
    );
    assert_eq!(b.client.as_deref(), Some("fd1"));
    assert_eq!(b.fileset.as_deref(), Some("Full Set"));
    assert_eq!(b.storage, vec!["File1"]);
    assert_eq!(b.schedule.as_deref(), Some("Weekly"));
    assert_eq!(b.resource.blocks("runscript").count(), 1);
    let r = c.job("Restore").unwrap();
    assert_eq!(r.where_.as_deref(), Some("/tmp/restores"));
    assert_eq!(r.level, None);

    let fs = c.fileset("Full Set").unwrap();
    assert_eq!(fs.include[0].files, vec!["/usr/sbin", "/etc"]);
    assert_eq!(
        fs.include[0].options[0],
        vec![
            ("signature".to_string(), "MD5".to_string()),
            ("compression".to_string(), "GZIP".to_string())
        ]
    );
    assert_eq!(fs.exclude[0].files, vec!["/proc", "/tmp"]);

    let runs: Vec<String> = c.schedules[0]
        .resource
        .directives("run")
        .map(|d| d.raw())
        .collect();
    assert_eq!(
        runs,
        vec!["Full 1st sun at 23:05", "Incremental mon-sat at 23:05"]
    );

    let std = c.messages("Standard").unwrap();
    assert_eq!(std.destinations[0].kind, "console");
    assert_eq!(std.destinations[0].raw, "all, !skipped");
    assert_eq!(
        std.destinations[1].target.as_deref(),
        Some("/var/log/b.log")
    );
    assert_eq!(std.destinations[1].types, vec!["all", "!skipped"]);
    let daemon = c.messages("Daemon").unwrap();
    assert_eq!(
        daemon.mail_command.as_deref(),
        Some("/usr/sbin/bsmtp -f \"(Bacula) <%r>\" %r")
    );
    assert_eq!(daemon.destinations[0].target.as_deref(), Some("root"));

    c.validate_tls().unwrap();
}

#[test]
fn dangling_references_are_errors() {
    let text = DIR_CONF.replace(
        "Pool = P; Messages = Standard; Schedule = Weekly",
        "Pool = Nope",
    );
    let e = DirectorConfig::parse_str("d.conf", &text)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("directive \"Pool\": Pool resource \"Nope\" is not defined"),
        "{e}"
    );
    let text = DIR_CONF.replace("JobDefs = Defaults", "JobDefs = Missing");
    let e = DirectorConfig::parse_str("d.conf", &text)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("JobDefs resource \"Missing\" is not defined"),
        "{e}"
    );
}

#[test]
fn secrets_never_printed() {
    const PW: &str = "Zq9-distinctive-pw-4471";
    let md5 = String::from_utf8(Secret::from_password(PW).expose().to_vec()).unwrap();
    let text = DIR_CONF
        .replace("console-secret", PW)
        .replace("mon-secret", PW)
        .replace("fd-secret", PW)
        .replace("sd-secret", PW)
        .replace("db-secret", PW)
        .replace(
            "File Retention = 30 days",
            "File Retention = 30 days\n  Unknown Thing = 1",
        );
    let (c, w) = DirectorConfig::parse_str("bacula-dir.conf", &text).unwrap();
    let mut printed = format!("{c:?}");
    for x in &w {
        printed += &format!("{x} {x:?}");
    }
    for d in c.tls_resources() {
        printed += &format!("{} {:?}", d.name(), d.tls());
    }
    // Errors about password directives, and errors next to them.
    for bad in [
        format!("Director {{ Name = d; Password = \"{PW}\"; Password = \"{PW}\" }}"),
        format!("Director {{ Name = d; Password = \"{PW}\"; TLS Enable = maybe }}"),
        format!("Director {{ Name = \"bad/\"; Password = {PW} }}"),
        format!("Director {{ Name = d; Password = \"{PW}\"; Password = }}"),
        format!("Director {{ Name = d; Password = \"{PW}\"\n Password {{ }}\n}}"),
        format!("Director {{ Name = d; Password = \"{PW}\" }}\nDirector {{ Name = d; Password = {PW} }}"),
    ] {
        let e = FdConfig::parse_str("x.conf", &format!("{FD_BASE}{bad}")).unwrap_err();
        printed += &format!("{e} {e:?}");
    }
    assert!(!printed.contains(&md5), "MD5 key printed");
    assert!(!printed.contains(PW), "password printed");
    assert!(printed.contains("<redacted>"));
}

#[test]
fn validate_tls_server_and_client_roles() {
    let conf = |extra: &str| {
        FdConfig::parse_str(
            "bacula-fd.conf",
            &format!(
                "FileDaemon {{ Name = f }}\nDirector {{\n Name = d\n Password = p\n{extra}\n}}"
            ),
        )
        .unwrap()
        .0
    };
    assert!(conf("").validate_tls().is_ok());
    assert_eq!(
        conf("TLS Enable = yes")
            .validate_tls()
            .unwrap_err()
            .to_string(),
        "bacula-fd.conf:2: \"TLS Certificate\" file not defined for Director \"d\"; a resource \
         that accepts TLS connections needs its certificate"
    );
    let e = conf("TLS Enable = yes\nTLS Certificate = /c")
        .validate_tls()
        .unwrap_err();
    assert!(
        e.to_string().contains("\"TLS Key\" file not defined"),
        "{e}"
    );
    let e = conf("TLS Authenticate = yes\nTLS Certificate = /c\nTLS Key = /k")
        .validate_tls()
        .unwrap_err();
    assert!(
        e.to_string().contains("when using \"TLS Verify Peer\""),
        "{e}"
    );
    assert!(
        conf("TLS Enable = yes\nTLS Certificate = /c\nTLS Key = /k\nTLS Verify Peer = no")
            .validate_tls()
            .is_ok()
    );
    // 13.x: Require without certificate material means PSK required, no context.
    assert!(conf("TLS Require = yes").validate_tls().is_ok());

    // Client role (FileDaemon): a CA is needed, nothing else.
    let fdc = |extra: &str| {
        FdConfig::parse_str(
            "bacula-fd.conf",
            &format!(
                "FileDaemon {{\n Name = f\n{extra}\n}}\nDirector {{ Name = d; Password = p }}"
            ),
        )
        .unwrap()
        .0
    };
    assert_eq!(fdc("").file_daemon.tls_role(), TlsRole::Client);
    let e = fdc("TLS Enable = yes")
        .validate_tls()
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("bacula-fd.conf:1: Neither \"TLS CA Certificate File\""),
        "{e}"
    );
    assert!(e.contains("FileDaemon \"f\""), "{e}");
    assert!(fdc("TLS Enable = yes\nTLS CA Certificate Dir = /certs")
        .validate_tls()
        .is_ok());
}

#[test]
fn console_config() {
    let (c, w) = ConsoleConfig::parse_str(
        "bconsole.conf",
        "Director { Name = d1; DIRport = 19101; address = localhost; Password = \"x\" }\n\
         Director { Name = d2; address = other; Password = \"y\"; TLS Enable = yes; TLS CA Certificate File = /ca }\n\
         Console { Name = restricted; Password = z; Director = d2 }",
    )
    .unwrap();
    assert!(w.is_empty());
    assert_eq!(c.director("d1").unwrap().port, 19101);
    assert_eq!(c.director("d2").unwrap().port, 9101);
    assert_eq!(
        c.director("d1").unwrap().address.as_deref(),
        Some("localhost")
    );
    assert_eq!(c.console_for("d2").unwrap().name, "restricted");
    assert!(c.console_for("d1").is_none());
    c.validate_tls().unwrap();
    let e = ConsoleConfig::parse_str(
        "b.conf",
        "Director { Name = d; Password = x }\nConsole { Name = c; Password = y; Director = zz }",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("Director resource \"zz\" is not defined"), "{e}");
}

#[test]
fn load_any_detects_the_kind() {
    let kind = |t: &str| parse_any("x.conf", t).map(|(c, _)| c.kind());
    assert_eq!(kind(DIR_CONF).unwrap(), ConfigKind::Director);
    assert_eq!(
        kind("Director { Name = d; Password = p }\nFileDaemon { Name = f }").unwrap(),
        ConfigKind::FileDaemon
    );
    assert_eq!(
        kind("Client { Name = f }\nDirector { Name = d; Password = p }").unwrap(),
        ConfigKind::FileDaemon
    );
    assert_eq!(
        kind("Storage { Name = s }\nDirector { Name = d; Password = p }\nDevice { Name = x; Media Type = F; Archive Device = /v }")
            .unwrap(),
        ConfigKind::Storage
    );
    assert_eq!(
        kind("Director { Name = d; DIRport = 9101; Address = localhost; Password = p }").unwrap(),
        ConfigKind::Console
    );
    assert_eq!(
        kind("Director { Name = d; Password = p; QueryFile = /q }\nClient { Name = c; Address = a; Password = p }")
            .unwrap(),
        ConfigKind::Director
    );
    assert!(kind("Messages { Name = m }").is_err());
}
