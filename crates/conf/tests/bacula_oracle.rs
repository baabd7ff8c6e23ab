//! The real `bacula-fd -t` as an oracle for syntax rules: for each snippet we
//! accept (parse plus start-up TLS validation) exactly when Bacula 9.6 does.
//!
//! Deliberate differences are not in this table: unknown directives and
//! resource types are warnings for us, and `TLS Require` without certificate
//! material means "PSK required" (13.x) instead of a start-up error (9.6).

mod common;

use std::fs;
use std::process::Command;

use baculink_conf::FdConfig;

use common::{bacula_files, find};

const FD: &str = "FileDaemon { Name = f; WorkingDirectory = @W@; Pid Directory = @W@ }";
const DIR: &str = "Director { Name = d; Password = p }";
const MSG: &str = "Messages { Name = Standard; director = d = all }";

/// (case, config text with `@W@` for the work directory, Bacula accepts it).
fn cases() -> Vec<(&'static str, String, bool)> {
    let with = |body: &str| format!("{FD}\n{body}\n{MSG}\n");
    let fd_with = |extra: &str| {
        format!("FileDaemon {{ Name = f; WorkingDirectory = @W@; Pid Directory = @W@\n{extra}\n}}\n{DIR}\n{MSG}\n")
    };
    vec![
        ("base", with(DIR), true),
        ("bom", format!("\u{feff}{}", with(DIR)), true),
        ("lower-case types and keywords", "filedaemon { name = f; workingdirectory = @W@; piddirectory = @W@ }\ndirector { NAME = d; PASSWORD = p }\nmessages { name = Standard; DIRECTOR = d = all }\n".to_string(), true),
        ("type on its own line", with("  Director\n  {\n Name = d; Password = p }"), true),
        ("spaced keyword redefines a string", fd_with("fd   port = 9999\n WORKING directory = @W@"), false),
        ("spaces inside keywords, once", fd_with("fd   port = 9999\n Heartbeat Interval = 1 m 3 n"), true),
        ("two words: the first counts", with("Director { Name = \"dir one\"; Password = two words }"), true),
        ("newline inside quotes", with("Director { Name = d; Password = \"p\n q\" }"), true),
        ("escaped quote in a name", with("Director { Name = \"a\\\"b\"; Password = p }"), false),
        ("space in a name", with("Director { Name = \"a b\"; Password = p }"), true),
        ("slash in a name", with("Director { Name = a/b; Password = p }"), false),
        ("empty name", with("Director { Name = \"\"; Password = p }"), false),
        ("no name", with("Director { Password = p }"), false),
        ("no password", with("Director { Name = d }"), false),
        ("password twice", with("Director { Name = d; Password = p; Password = q }"), false),
        ("string twice", format!("FileDaemon {{ Name = f; WorkingDirectory = @W@; WorkingDirectory = /var; Pid Directory = @W@ }}\n{DIR}\n{MSG}\n"), false),
        ("integer twice", fd_with("Maximum Concurrent Jobs = 2; Maximum Concurrent Jobs = 3"), true),
        ("boolean twice", with("Director { Name = d; Password = p; Monitor = yes; Monitor = no }"), true),
        ("boolean upper case", with("Director { Name = d; Password = p; Monitor = YES }"), true),
        ("boolean quoted", with("Director { Name = d; Password = p; Monitor = \"yes\" }"), true),
        ("boolean 1", with("Director { Name = d; Password = p; Monitor = 1 }"), false),
        ("boolean maybe", with("Director { Name = d; Password = p; TLS Enable = maybe }"), false),
        ("integer with trailing words", fd_with("Maximum Concurrent Jobs = 5 apples"), true),
        ("integer quoted", fd_with("Maximum Concurrent Jobs = \"5\""), true),
        ("negative integer", fd_with("Maximum Concurrent Jobs = -1"), false),
        ("port 0", fd_with("FDport = 0"), false),
        ("port 70000", fd_with("FDport = 70000"), false),
        ("time with fraction", fd_with("Heartbeat Interval = 1.5 hours"), true),
        ("time with comma", fd_with("Heartbeat Interval = 1 hour, 5 min"), true),
        ("time compact", fd_with("Heartbeat Interval = 1h30n"), true),
        ("time seconds", fd_with("Heartbeat Interval = 5 sec"), true),
        ("time bad unit", fd_with("Heartbeat Interval = 1 fortnight"), false),
        ("addresses block", format!("FileDaemon {{ Name = f; WorkingDirectory = @W@; Pid Directory = @W@\n FDAddresses = {{ ip = {{ addr = 127.0.0.1; port = 9999 }} ipv4 = {{ addr = 127.0.0.2 }} }}\n}}\n{DIR}\n{MSG}\n"), true),
        ("allowed CN lists", with("Director { Name = d; Password = p\n TLS Allowed CN = a, \"b c\"\n TLS Allowed CN = c\n}"), true),
        ("keyword with a digit", with("Director { Name = d; Password = p; Foo2 = 1 }"), false),
        ("unterminated quote", with("Director { Name = d; Password = \"p }"), false),
        ("missing closing brace", format!("{FD}\nDirector {{\n Name = d\n Password = p\n{MSG}\n"), false),
        ("no Director", format!("{FD}\n{MSG}\n"), false),
        ("no FileDaemon", format!("{DIR}\n{MSG}\n"), false),
        ("two FileDaemons", format!("{FD}\n{}\n{DIR}\n{MSG}\n", FD.replace("Name = f", "Name = g")), false),
        ("two Directors, same name", with(&format!("{DIR}\n{DIR}")), false),
        ("two Messages, same name", with(&format!("{DIR}\n{MSG}")), false),
        ("Client alias", format!("Client {{ Name = f; WorkingDirectory = @W@; Pid Directory = @W@ }}\n{DIR}\n{MSG}\n"), true),
        ("TLS without certificate", with("Director { Name = d; Password = p; TLS Enable = yes }"), false),
        ("TLS client without CA", format!("FileDaemon {{ Name = f; WorkingDirectory = @W@; Pid Directory = @W@; TLS Enable = yes }}\n{DIR}\n{MSG}\n"), false),
        ("comment hides a directive", with("Director { Name = d; Password = p # ; Monitor = maybe\n}"), true),
    ]
}

#[test]
fn syntax_agrees_with_bacula_fd() {
    let Some(files) = bacula_files() else { return };
    let bacula_fd = find(&files, "/sbin/bacula-fd");
    let t = tempfile::tempdir().unwrap();
    let work = t.path().display().to_string();
    let conf = t.path().join("bacula-fd.conf");
    let mut disagree = Vec::new();
    for (case, text, expected) in cases() {
        fs::write(&conf, text.replace("@W@", &format!("\"{work}\""))).unwrap();
        let real = Command::new(bacula_fd)
            .arg("-t")
            .arg("-c")
            .arg(&conf)
            .output()
            .unwrap()
            .status
            .success();
        assert_eq!(real, expected, "{case}: the table is wrong about Bacula");
        let ours = FdConfig::load(&conf).and_then(|(c, _)| c.validate_tls());
        if ours.is_ok() != real {
            disagree.push(format!("{case}: Bacula {real}, ours {ours:?}"));
        }
    }
    assert!(disagree.is_empty(), "{disagree:#?}");
}
