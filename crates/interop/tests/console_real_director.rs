//! `baculink console` (our bconsole) against the real Bacula 9.6 Director,
//! which relays `status client` to the real 9.6 File daemon: default console
//! in clear text and certificate TLS, sub-prompts, API mode, and a named
//! console (clear and TLS) including a wrong password.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use baculink_interop::{baculink_bin, require_peers, Harness};

/// What one `baculink console -n` run produced.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `baculink console -c CONFIG -n` with `input` on stdin (killed after 90 s).
fn console(h: &Harness, config: &Path, input: &str) -> Run {
    let out_path = h.path().join("console.out");
    let err_path = h.path().join("console.err");
    let mut child = Command::new(baculink_bin())
        .arg("console")
        .arg("-c")
        .arg(config)
        .arg("-n")
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&out_path).expect("console.out"))
        .stderr(std::fs::File::create(&err_path).expect("console.err"))
        .spawn()
        .expect("run baculink console (was the binary built? cargo build -p baculink)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write commands");
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for console") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "baculink console did not finish within 90 s:\n{}\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default(),
                h.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

fn assert_ok(run: &Run, h: &Harness) {
    assert_eq!(
        run.code,
        0,
        "console failed:\n{}\n{}\n{}",
        run.stdout,
        run.stderr,
        h.logs()
    );
}

fn default_console(mode: &str) {
    let h = Harness::start(mode, "dir fd sd", &[]);
    let run = console(
        &h,
        &h.etc("bconsole.conf"),
        "version\nstatus dir\nstatus client\nquit\nversion\n",
    );
    assert_ok(&run, &h);
    let out = &run.stdout;
    assert!(
        out.contains(&format!(
            "Connecting to Director 127.0.0.1:{}\n",
            h.dir_port
        )),
        "{out}"
    );
    assert!(
        out.contains("1000 OK: 103 bacula-dir Version: 9.6.7"),
        "{out}"
    );
    assert!(
        out.contains("Enter a period to cancel a command.\n"),
        "{out}"
    );
    // Commands are echoed, as bconsole -n does.
    assert!(
        out.contains("\nversion\nbacula-dir Version: 9.6.7 ("),
        "{out}"
    );
    assert!(out.contains("\nRunning Jobs:\n"), "{out}");
    assert!(out.contains("No Jobs running.\n====\n"), "{out}");
    // The real FD's status, relayed by the Director.
    assert!(out.contains("Connecting to Client bacula-fd at"), "{out}");
    assert!(out.contains("bacula-fd Version: 9.6.7"), "{out}");
    // Nothing after quit is sent.
    assert_eq!(out.matches("\nversion\n").count(), 1, "{out}");
    if mode == "clear" {
        assert!(out.contains("Connected in clear text (no TLS)\n"), "{out}");
        assert!(out.contains("Console connected at "), "{out}");
        assert!(out.contains("Director connected at: "), "{out}");
    } else {
        assert!(out.contains("Connected with TLS TLSv1.3 TLS_"), "{out}");
        assert!(out.contains("CN=bacula-dir"), "{out}");
        assert!(out.contains("Console connected using TLS at "), "{out}");
        assert!(out.contains("Director connected using TLS at: "), "{out}");
    }
}

#[test]
fn default_console_clear() {
    if require_peers("bacula") {
        default_console("clear");
    }
}

#[test]
fn default_console_tls() {
    if require_peers("bacula") {
        default_console("tls");
    }
}

/// A SUB_PROMPT answered from stdin, the same question in API mode
/// (TEXT_INPUT, no SUB_PROMPT), local `@` commands, and end of input as quit.
#[test]
fn prompts_api_mode_and_local_commands() {
    if !require_peers("bacula") {
        return;
    }
    let h = Harness::start("clear", "dir", &[]);
    let run = console(
        &h,
        &h.etc("bconsole.conf"),
        "@# a comment\nrun job=BackupData\nno\n@nosuch\n.api 1\nversion\n\
         run job=BackupData\nno\n.api 0\n@sleep 0.1\nversion\n",
    );
    assert_ok(&run, &h);
    let out = &run.stdout;
    assert!(
        out.contains("OK to run? (yes/mod/no): no\nJob not run.\n"),
        "{out}"
    );
    assert_eq!(out.matches("Job not run.\n").count(), 2, "{out}");
    assert!(
        out.contains("@nosuch\n@nosuch: is an invalid command\n"),
        "{out}"
    );
    assert_eq!(
        out.matches("\nbacula-dir Version: 9.6.7 (").count(),
        2,
        "{out}"
    );
}

/// Adds a named console to the running real Director (`reload` through the
/// default console) and writes a bconsole.conf for it with `password`.
fn named_console_setup(h: &Harness, password: &str) -> std::path::PathBuf {
    let certs = h.path().join("certs");
    let tls = h.mode != "clear";
    let dir_tls = if tls {
        format!(
            "  TLS Enable = yes\n  TLS Require = yes\n  TLS Verify Peer = yes\n\
             \x20 TLS CA Certificate File = \"{c}/ca.crt\"\n\
             \x20 TLS Certificate = \"{c}/dir.crt\"\n  TLS Key = \"{c}/dir.key\"\n\
             \x20 TLS DH File = \"{c}/dh2048.pem\"\n  TLS Allowed CN = \"bconsole\"\n",
            c = certs.display()
        )
    } else {
        String::new()
    };
    let acls = [
        "CommandACL",
        "JobACL",
        "ClientACL",
        "StorageACL",
        "ScheduleACL",
        "PoolACL",
        "FileSetACL",
        "CatalogACL",
        "WhereACL",
    ]
    .iter()
    .map(|a| format!("  {a} = *all*\n"))
    .collect::<String>();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(h.etc("bacula-dir.conf"))
        .expect("open bacula-dir.conf");
    write!(
        f,
        "\nConsole {{\n  Name = \"admin\"\n  Password = \"admin-pass\"\n{acls}{dir_tls}}}\n"
    )
    .expect("append Console");
    drop(f);
    let reload = console(h, &h.etc("bconsole.conf"), "reload\n");
    assert_ok(&reload, h);

    let console_tls = if tls {
        format!(
            "  TLS Enable = yes\n  TLS Require = yes\n\
             \x20 TLS CA Certificate File = \"{c}/ca.crt\"\n\
             \x20 TLS Certificate = \"{c}/console.crt\"\n  TLS Key = \"{c}/console.key\"\n",
            c = certs.display()
        )
    } else {
        String::new()
    };
    let conf = h.etc(&format!("named-{password}.conf"));
    std::fs::write(
        &conf,
        format!(
            "Director {{\n  Name = bacula-dir\n  DIRport = {port}\n  Address = 127.0.0.1\n\
             \x20 Password = \"not-the-default-console\"\n{console_tls}}}\n\
             Console {{\n  Name = admin\n  Password = \"{password}\"\n  Director = bacula-dir\n\
             {console_tls}}}\n",
            port = h.dir_port
        ),
    )
    .expect("write named bconsole.conf");
    conf
}

fn named_console(mode: &str) {
    let h = Harness::start(mode, "dir", &[]);
    let conf = named_console_setup(&h, "admin-pass");
    let run = console(&h, &conf, "version\nstatus dir\nquit\n");
    assert_ok(&run, &h);
    assert!(
        run.stdout
            .contains("\nversion\nbacula-dir Version: 9.6.7 ("),
        "{}",
        run.stdout
    );
    let connected = if mode == "clear" {
        "Console connected at "
    } else {
        "Console connected using TLS at "
    };
    assert!(run.stdout.contains(connected), "{}", run.stdout);

    let bad = named_console_setup_bad(&h, &conf);
    let run = console(&h, &bad, "version\n");
    assert_eq!(
        run.code, 2,
        "a wrong named-console password must exit 2:\n{}\n{}",
        run.stdout, run.stderr
    );
    assert!(run.stderr.contains("wrong password"), "{}", run.stderr);
    assert!(!run.stdout.contains("Version: 9.6.7 ("), "{}", run.stdout);
    assert!(!run.stderr.contains("admin-pass"), "{}", run.stderr);
}

/// The named console's bconsole.conf with a wrong password.
fn named_console_setup_bad(h: &Harness, good: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(good).expect("read named conf");
    let bad = h.etc("named-bad.conf");
    std::fs::write(&bad, text.replace("\"admin-pass\"", "\"wrong-pass\"")).expect("write");
    bad
}

#[test]
fn named_console_clear() {
    if require_peers("bacula") {
        named_console("clear");
    }
}

#[test]
fn named_console_tls() {
    if require_peers("bacula") {
        named_console("tls");
    }
}
