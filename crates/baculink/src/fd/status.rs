//! The File daemon's `status` and `.status` replies and version strings
//! (protocol-jobs.md §3.1-3.3), plus our section listing every live link
//! with its TLS facts.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use baculink_proto::negotiate::Mode;

use super::FileDaemon;
use crate::daemon::{bacula_time, Link};

/// The text after `Version: ` in `status`, e.g. `0.1.0 (baculink)`.
pub fn version_text() -> String {
    format!("{} (baculink)", env!("CARGO_PKG_VERSION"))
}

/// Host OS words, e.g. `x86_64-linux baculink rust`.
pub fn uname() -> String {
    format!(
        "{}-{} baculink rust",
        std::env::consts::ARCH,
        std::env::consts::OS
    )
}

/// The answer to the job line, without a newline like Bacula's:
/// `2000 OK Job <version> (<date>) <os>,<dist>,<distver>`.
pub fn job_reply() -> String {
    format!(
        "2000 OK Job {} (baculink) {}-{},baculink,rust",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS
    )
}

fn epoch(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn iso_time(t: SystemTime) -> String {
    let secs = epoch(t);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        (secs % 86_400) / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn directors(fd: &FileDaemon) -> Vec<Link> {
    fd.links
        .snapshot()
        .into_iter()
        .filter(|l| l.role == "Director")
        .collect()
}

/// `status`: Bacula's header, running and terminated sections, and our
/// `Connections:` section (every live link with its TLS facts). Each
/// string is one packet; the caller sends `"\n"` before and EOD after.
pub fn status_lines(fd: &FileDaemon) -> Vec<String> {
    let mut out = vec![
        format!("{} Version: {} {}\n", fd.name(), version_text(), uname()),
        format!(
            "Daemon started {}. Jobs: run={} running={}.\n",
            bacula_time(fd.started),
            fd.jobs.run.load(Ordering::Relaxed),
            fd.jobs.running().len()
        ),
        format!(
            " Sizes: debug={} trace={} maxjobs={} bwlimit=0kB/s\n",
            fd.debug_level.load(Ordering::Relaxed),
            fd.trace.load(Ordering::Relaxed),
            fd.conf.file_daemon.daemon.max_concurrent_jobs
        ),
        "\nRunning Jobs:\n".into(),
    ];
    for l in directors(fd) {
        let using = if l.mode == Mode::Clear {
            ""
        } else {
            "using TLS "
        };
        out.push(format!(
            "Director connected {using}at: {}\n",
            bacula_time(l.since)
        ));
    }
    let running = fd.jobs.running();
    if running.is_empty() {
        out.push("No Jobs running.\n".into());
    }
    for j in running {
        out.push(format!("JobId {} Job {} is running.\n", j.job_id, j.job));
        out.push(format!(
            "    {} {} Job started: {}\n",
            j.kind().word(),
            j.level(),
            bacula_time(j.started)
        ));
        out.push(format!(
            "    Files={} Bytes={} Errors={}\n",
            j.files.load(Ordering::Relaxed),
            j.bytes.load(Ordering::Relaxed),
            j.errors.load(Ordering::Relaxed)
        ));
        let cur = j.current();
        if !cur.is_empty() {
            out.push(format!("    Processing file: {cur}\n"));
        }
    }
    out.push("====\n".into());
    out.extend(fd.links.status_lines());
    let finished = fd.jobs.finished();
    if finished.is_empty() {
        out.push("\nTerminated Jobs:\nNo Terminated Jobs.\n====\n".into());
    } else {
        out.push("\nTerminated Jobs:\n".into());
        out.push(" JobId  Level    Files      Bytes   Status   Finished        Name \n".into());
        out.push("===================================================================\n".into());
        for f in finished.iter().rev() {
            out.push(format!(
                "{:6}  {:<6} {:8} {:10}  {:<7}  {:<8} {}\n",
                f.job_id,
                if f.kind == super::job::JobKind::Restore {
                    "Restore".to_string()
                } else {
                    f.level.clone()
                },
                f.files,
                f.bytes,
                f.status.describe(),
                bacula_time(f.ended),
                f.job
            ));
        }
        out.push("====\n".into());
    }
    out
}

/// `.status <what> [api=N] [api_opts=X]`; None for an unknown `<what>`.
pub fn dot_status(fd: &FileDaemon, cmd: &str) -> Option<Vec<String>> {
    let what = cmd.split_whitespace().nth(1).unwrap_or("");
    match what {
        "current" => {
            let mut v = vec!["2000 OK .status\n".to_string()];
            for j in fd.jobs.running() {
                v.push(format!(
                    "JobId={} JobStatus=R JobErrors={}\n",
                    j.job_id,
                    j.errors.load(Ordering::Relaxed)
                ));
            }
            Some(v)
        }
        "last" => {
            let mut v = vec!["2000 OK .status\n".to_string()];
            if let Some(f) = fd.jobs.finished().last() {
                v.push(format!(
                    "JobId={} JobStatus={} JobErrors={}\n",
                    f.job_id, f.status, f.errors
                ));
            }
            Some(v)
        }
        "terminated" => Some(Vec::new()),
        "header" => Some(vec![header(fd)]),
        "running" => {
            let mut v: Vec<String> = fd.jobs.running().iter().map(|j| job_block(j)).collect();
            v.extend(fd.links.snapshot().iter().map(running_block));
            Some(v)
        }
        _ => None,
    }
}

fn header(fd: &FileDaemon) -> String {
    format!(
        "header:\nname={}\nversion={}\nuname={}\nstarted_epoch={}\nstarted={}\npid={}\n\
         jobs_run={}\njobs_running={}\nwinver=\ndebug={}\ntrace={}\nbwlimit=0\nplugins=\n\n",
        fd.name(),
        version_text(),
        uname(),
        epoch(fd.started),
        iso_time(fd.started),
        std::process::id(),
        fd.jobs.run.load(Ordering::Relaxed),
        fd.jobs.running().len(),
        fd.debug_level.load(Ordering::Relaxed),
        fd.trace.load(Ordering::Relaxed),
    )
}

/// A running job as a 9.6 FD lists it in `.status running` (key=value,
/// blank line after; the Director reads JobFiles/JobBytes for progress).
fn job_block(j: &super::job::JobHandle) -> String {
    let bytes = j.bytes.load(Ordering::Relaxed);
    let secs = SystemTime::now()
        .duration_since(j.started)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .max(1);
    let (kind, level) = match j.kind() {
        super::job::JobKind::Restore => ('R', ' '),
        super::job::JobKind::Estimate => ('B', 'F'),
        _ => ('B', j.level().chars().next().unwrap_or('F')),
    };
    format!(
        "JobId={}\nJob={}\nVSS=0\nLevel={level}\nType={kind}\nStatus=R\nJobFiles={}\nJobBytes={bytes}\nBytes/sec={}\nErrors={}\n\n",
        j.job_id,
        j.job,
        j.files.load(Ordering::Relaxed),
        bytes / secs,
        j.errors.load(Ordering::Relaxed)
    )
}

/// One key=value block per live link: Bacula's `DirectorConnected` keys for
/// Directors, then the link's TLS facts.
fn running_block(l: &Link) -> String {
    let mut s = String::from("\n");
    if l.role == "Director" {
        s.push_str(&format!(
            "DirectorConnected_epoch={}\nDirectorConnected={}\nDirTLS={}\n",
            epoch(l.since),
            iso_time(l.since),
            u8::from(l.mode != Mode::Clear)
        ));
    }
    let facts = l.facts.as_ref();
    s.push_str(&format!(
        "Link={}\nRole={}\nOutgoing={}\nAddress={}\nDialect={}\nMode={}\nLoginMode={}\n\
         TLSVersion={}\nCipher={}\nPeerSubject={}\nPeerExpiresDays={}\n",
        l.label,
        l.role,
        u8::from(l.outgoing),
        l.addr.map(|a| a.to_string()).unwrap_or_default(),
        l.dialect,
        l.mode,
        l.login_mode,
        facts.map(|f| f.version.as_str()).unwrap_or(""),
        facts.map(|f| f.cipher.as_str()).unwrap_or(""),
        facts.and_then(|f| f.peer_subject.as_deref()).unwrap_or(""),
        facts
            .and_then(|f| f.peer_days_left)
            .map(|d| d.to_string())
            .unwrap_or_default(),
    ));
    s
}
