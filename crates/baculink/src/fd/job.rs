//! A job on the File daemon: its registry entry (for `status` and `cancel`
//! from another Director connection), its cancel signal, the job messages
//! (`Jmsg`) it owes the Director, and the level/since settings.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use baculink_proto::job::attr::JobStatus;
use tokio::sync::watch;

/// How many finished jobs `status` lists.
const KEEP_TERMINATED: usize = 10;

/// Message types of `Jmsg` lines (protocol-jobs §8.6). The number on the
/// wire depends on the Director's version: 13.x shifted the table by one
/// from 3 upward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgType {
    /// The job cannot go on.
    Fatal,
    /// A file or step failed; the job goes on.
    Error,
    /// Something the user should look at.
    Warning,
    /// Informational.
    Info,
    /// A file was skipped on purpose.
    Skipped,
}

impl MsgType {
    /// The `type=` number for a Director announcing `dir_version` in its
    /// Hello (103 = 9.6; 10002 and later = 13.x table).
    pub fn code(self, dir_version: u32) -> u32 {
        let v96 = match self {
            MsgType::Fatal => 3,
            MsgType::Error => 4,
            MsgType::Warning => 5,
            MsgType::Info => 6,
            MsgType::Skipped => 9,
        };
        if dir_version >= 10_000 {
            v96 + 1
        } else {
            v96
        }
    }

    /// The text Bacula puts after `"<daemon> JobId <n>: "`.
    fn prefix(self) -> &'static str {
        match self {
            MsgType::Fatal => "Fatal error: ",
            MsgType::Error => "Error: ",
            MsgType::Warning => "Warning: ",
            _ => "",
        }
    }
}

/// Formats a job message line:
/// `Jmsg JobId=%ld type=%d level=%lld <fd> JobId <n>: [Kind: ]text\n`.
/// `level` carries the message time (epoch seconds).
pub fn jmsg_line(
    job_id: &str,
    fd_name: &str,
    dir_version: u32,
    kind: MsgType,
    text: &str,
    now: SystemTime,
) -> String {
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(1);
    let text = text.trim_end_matches('\n');
    format!(
        "Jmsg JobId={job_id} type={} level={secs} {fd_name} JobId {job_id}: {}{text}\n",
        kind.code(dir_version),
        kind.prefix()
    )
}

/// What a job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobKind {
    /// `backup`.
    Backup,
    /// `restore`.
    Restore,
    /// `estimate`.
    Estimate,
    /// Only the job line so far.
    Unknown,
}

impl JobKind {
    /// The word shown by `status`.
    pub fn word(self) -> &'static str {
        match self {
            JobKind::Backup => "Backup",
            JobKind::Restore => "Restore",
            JobKind::Estimate => "Estimate",
            JobKind::Unknown => "Job",
        }
    }
}

/// A running job as others see it: counters for `status`, a cancel switch
/// for `cancel Job=...` arriving on another Director connection.
#[derive(Debug)]
pub struct JobHandle {
    /// Numeric JobId as sent by the Director.
    pub job_id: String,
    /// Unique job name.
    pub job: String,
    /// Started.
    pub started: SystemTime,
    /// Files saved or restored so far.
    pub files: AtomicU64,
    /// File data bytes so far.
    pub bytes: AtomicU64,
    /// Non-fatal errors so far.
    pub errors: AtomicU32,
    kind: Mutex<JobKind>,
    level: Mutex<String>,
    current: Mutex<String>,
    cancel: watch::Sender<bool>,
}

impl JobHandle {
    fn new(job_id: &str, job: &str) -> JobHandle {
        JobHandle {
            job_id: job_id.to_string(),
            job: job.to_string(),
            started: SystemTime::now(),
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            errors: AtomicU32::new(0),
            kind: Mutex::new(JobKind::Unknown),
            level: Mutex::new(String::new()),
            current: Mutex::new(String::new()),
            cancel: watch::channel(false).0,
        }
    }

    /// Marks the job canceled and wakes whatever it waits on.
    pub fn cancel(&self) {
        self.cancel.send_replace(true);
    }

    /// Whether the job was canceled.
    pub fn is_canceled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Resolves when the job is canceled.
    pub async fn canceled(&self) {
        let mut rx = self.cancel.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Sets what the job does.
    pub fn set_kind(&self, kind: JobKind) {
        if let Ok(mut k) = self.kind.lock() {
            *k = kind;
        }
    }

    /// What the job does.
    pub fn kind(&self) -> JobKind {
        self.kind.lock().map(|k| *k).unwrap_or(JobKind::Unknown)
    }

    /// Sets the level word (`Full`, `Incremental`, ...).
    pub fn set_level(&self, level: &str) {
        if let Ok(mut l) = self.level.lock() {
            *l = level.to_string();
        }
    }

    /// The level word.
    pub fn level(&self) -> String {
        self.level.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Records the file being processed (for `status`).
    pub fn set_current(&self, path: &str) {
        if let Ok(mut c) = self.current.lock() {
            c.clear();
            c.push_str(path);
        }
    }

    /// The file being processed.
    pub fn current(&self) -> String {
        self.current.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// A finished job, for `status` and `.status last`.
#[derive(Clone, Debug)]
pub struct Finished {
    /// Numeric JobId.
    pub job_id: String,
    /// Unique job name.
    pub job: String,
    /// Backup / Restore / ...
    pub kind: JobKind,
    /// Level word.
    pub level: String,
    /// Files.
    pub files: u64,
    /// Bytes.
    pub bytes: u64,
    /// Errors.
    pub errors: u32,
    /// Final status.
    pub status: JobStatus,
    /// When it ended.
    pub ended: SystemTime,
}

/// The daemon's running and recently finished jobs.
#[derive(Debug, Default)]
pub struct Jobs {
    running: Mutex<Vec<Arc<JobHandle>>>,
    finished: Mutex<VecDeque<Finished>>,
    /// Jobs run since start.
    pub run: AtomicU64,
}

impl Jobs {
    /// Registers a job (on its job line); the caller removes it with
    /// [`Jobs::finish`].
    pub fn start(&self, job_id: &str, job: &str) -> Arc<JobHandle> {
        let h = Arc::new(JobHandle::new(job_id, job));
        if let Ok(mut r) = self.running.lock() {
            r.push(h.clone());
        }
        self.run.fetch_add(1, Ordering::Relaxed);
        h
    }

    /// Unregisters a job and remembers how it ended.
    pub fn finish(&self, h: &Arc<JobHandle>, status: JobStatus) {
        if let Ok(mut r) = self.running.lock() {
            r.retain(|x| !Arc::ptr_eq(x, h));
        }
        let kind = h.kind();
        if kind == JobKind::Unknown {
            return;
        }
        if let Ok(mut f) = self.finished.lock() {
            f.push_back(Finished {
                job_id: h.job_id.clone(),
                job: h.job.clone(),
                kind,
                level: h.level(),
                files: h.files.load(Ordering::Relaxed),
                bytes: h.bytes.load(Ordering::Relaxed),
                errors: h.errors.load(Ordering::Relaxed),
                status,
                ended: SystemTime::now(),
            });
            while f.len() > KEEP_TERMINATED {
                f.pop_front();
            }
        }
    }

    /// A handle not listed among the running jobs (estimates of JobId 0).
    pub fn detached(&self, job_id: &str, job: &str) -> JobHandle {
        JobHandle::new(job_id, job)
    }

    /// The running job with this unique name.
    pub fn find(&self, job: &str) -> Option<Arc<JobHandle>> {
        self.running
            .lock()
            .ok()?
            .iter()
            .find(|h| h.job == job)
            .cloned()
    }

    /// Running jobs.
    pub fn running(&self) -> Vec<Arc<JobHandle>> {
        self.running.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Finished jobs, oldest first.
    pub fn finished(&self) -> Vec<Finished> {
        self.finished
            .lock()
            .map(|f| f.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// The job level as the Director set it (§5.3 step 2, §5.9).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Level {
    /// `full`, `base`, `incremental`, `differential` (without `accurate_`).
    pub name: String,
    /// `accurate_` prefix.
    pub accurate: bool,
    /// Save only files changed at or after this time (FD clock), if set.
    pub since: Option<i64>,
    /// `mtime_only=1`: ignore ctime.
    pub mtime_only: bool,
}

impl Level {
    /// The word for `status` and messages.
    pub fn word(&self) -> &'static str {
        match self.name.as_str() {
            "incremental" => "Incremental",
            "differential" => "Differential",
            "base" => "Base",
            _ => "Full",
        }
    }
}

/// A parsed `level = ...` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LevelCmd {
    /// `level = full|base|incremental|differential [...] mtime_only=N`.
    Named {
        /// Level name without `accurate_`.
        name: String,
        /// Had the `accurate_` prefix.
        accurate: bool,
        /// `mtime_only=` value.
        mtime_only: bool,
    },
    /// `level = since_utime N mtime_only=M prev_job=J`.
    Since {
        /// Director-clock seconds.
        utime: i64,
        /// `mtime_only=` value.
        mtime_only: bool,
    },
}

impl LevelCmd {
    /// Parses `level = <word> ...`.
    pub fn parse(line: &str) -> Option<LevelCmd> {
        let rest = line.strip_prefix("level = ")?;
        let mut words = rest.split_ascii_whitespace();
        let word = words.next()?;
        let mtime_only = rest.split_ascii_whitespace().any(|w| {
            w.strip_prefix("mtime_only=")
                .is_some_and(|v| v.trim() == "1")
        });
        if word == "since_utime" {
            let utime = words.next()?.parse().ok()?;
            return Some(LevelCmd::Since { utime, mtime_only });
        }
        let (accurate, name) = match word.strip_prefix("accurate_") {
            Some(n) => (true, n),
            None => (false, word),
        };
        match name {
            "full" | "base" | "incremental" | "differential" => Some(LevelCmd::Named {
                name: name.to_string(),
                accurate,
                mtime_only,
            }),
            _ => None,
        }
    }
}

/// The Director-minus-FD clock offset from BTIME samples (§5.9): each sample
/// is (FD time when asking, Director time, FD time when answered), in
/// microseconds. The first two are warm-up and ignored. Returns FD - Director
/// in seconds (add it to a Director time to get FD time).
pub fn clock_offset(samples: &[(i64, i64, i64)]) -> i64 {
    let used: Vec<i64> = samples
        .iter()
        .skip(2)
        .map(|&(asked, dir, answered)| asked + (answered - asked) / 2 - dir)
        .collect();
    if used.is_empty() {
        return 0;
    }
    let avg = used.iter().sum::<i64>() / used.len() as i64;
    avg / 1_000_000
}

/// Formats and sends a job's messages to its Director. Messages produced
/// before the Director listens for them (while it still sends setup
/// commands) are queued and flushed once the job runs.
#[derive(Debug)]
pub struct Reporter {
    /// JobId.
    pub job_id: String,
    /// Our FileDaemon name (message prefix).
    pub fd_name: String,
    /// The Director's protocol version (selects the type table).
    pub dir_version: u32,
    queued: Mutex<Vec<String>>,
}

impl Reporter {
    /// A reporter for job `job_id` of a Director speaking `dir_version`.
    pub fn new(job_id: &str, fd_name: &str, dir_version: u32) -> Reporter {
        Reporter {
            job_id: job_id.to_string(),
            fd_name: fd_name.to_string(),
            dir_version,
            queued: Mutex::new(Vec::new()),
        }
    }

    /// The `Jmsg` line for a message now.
    pub fn line(&self, kind: MsgType, text: &str) -> String {
        jmsg_line(
            &self.job_id,
            &self.fd_name,
            self.dir_version,
            kind,
            text,
            SystemTime::now(),
        )
    }

    /// Keeps a message for [`Reporter::flush`].
    pub fn queue(&self, kind: MsgType, text: &str) {
        let line = self.line(kind, text);
        if let Ok(mut q) = self.queued.lock() {
            q.push(line);
        }
    }

    /// Sends a message now (queued ones first). A Director that went away
    /// is noticed by the job's next exchange, so send errors are ignored.
    pub async fn send(&self, dir: &mut baculink_net::BSock, kind: MsgType, text: &str) {
        self.flush(dir).await;
        tracing::debug!("job {} message: {}", self.job_id, text.trim_end());
        if !dir.is_terminated() {
            let _ = dir.send_text(&self.line(kind, text)).await;
        }
    }

    /// Sends the queued messages.
    pub async fn flush(&self, dir: &mut baculink_net::BSock) {
        let lines = self
            .queued
            .lock()
            .map(|mut q| std::mem::take(&mut *q))
            .unwrap_or_default();
        for l in lines {
            if !dir.is_terminated() {
                let _ = dir.send_text(&l).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jmsg_tables_follow_the_director_version() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1795934646);
        assert_eq!(
            jmsg_line("1", "bacula-fd", 103, MsgType::Warning, "x\n", t),
            "Jmsg JobId=1 type=5 level=1795934646 bacula-fd JobId 1: Warning: x\n"
        );
        assert_eq!(MsgType::Info.code(103), 6);
        assert_eq!(MsgType::Info.code(10002), 7);
        assert_eq!(MsgType::Fatal.code(10002), 4);
        assert_eq!(MsgType::Error.code(103), 4);
    }

    #[test]
    fn level_lines() {
        assert_eq!(
            LevelCmd::parse("level = full  mtime_only=0 \n"),
            Some(LevelCmd::Named {
                name: "full".into(),
                accurate: false,
                mtime_only: false
            })
        );
        assert_eq!(
            LevelCmd::parse("level = accurate_incremental  mtime_only=1 \n"),
            Some(LevelCmd::Named {
                name: "incremental".into(),
                accurate: true,
                mtime_only: true
            })
        );
        assert_eq!(
            LevelCmd::parse(
                "level = since_utime 1795934679 mtime_only=0 prev_job=BackupData.2026-11-29_06.44.36_03\n"
            ),
            Some(LevelCmd::Since {
                utime: 1795934679,
                mtime_only: false
            })
        );
        assert_eq!(
            LevelCmd::parse("level = full rerunning  mtime_only=0 \n").map(|_| ()),
            Some(())
        );
        assert_eq!(LevelCmd::parse("level = verify"), None);
    }

    #[test]
    fn clock_offsets() {
        // FD 5 s ahead, 2 ms round trip.
        let s: Vec<_> = (0..10)
            .map(|i| {
                let t = 1_000_000_000 + i * 10_000;
                (t, t + 1_000 - 5_000_000, t + 2_000)
            })
            .collect();
        assert_eq!(clock_offset(&s), 5);
        assert_eq!(clock_offset(&[]), 0);
    }

    #[tokio::test]
    async fn cancel_wakes_waiters_and_registry_finds_jobs() {
        let jobs = Jobs::default();
        let h = jobs.start("3", "J.1");
        assert!(jobs.find("J.1").is_some());
        let h2 = h.clone();
        let waiter = tokio::spawn(async move { h2.canceled().await });
        jobs.find("J.1").unwrap().cancel();
        waiter.await.unwrap();
        assert!(h.is_canceled());
        h.set_kind(JobKind::Backup);
        jobs.finish(&h, JobStatus::CANCELED);
        assert!(jobs.find("J.1").is_none());
        assert_eq!(jobs.finished()[0].status, JobStatus::CANCELED);
    }
}
