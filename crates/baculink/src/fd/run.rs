//! The job commands of a Director connection (protocol-jobs §5.3, §5.5,
//! §5.9, §6.2, §3.4): `level`, `fileset`, `storage`, `backup`, `restore`,
//! `endrestore`, `estimate`, `accurate`, run scripts; and the end-of-job
//! line.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use baculink_net::{BSock, NetError};
use baculink_proto::frame::{Packet, Signal};
use baculink_proto::job::attr::{EndJob, JobStatus};
use baculink_proto::scan::{c_text, Scanner};
use tracing::{info, warn};

use super::backup::{self, CommBytes, StreamError, WalkParams};
use super::fileset::FileSet;
use super::job::{clock_offset, JobKind, LevelCmd, MsgType};
use super::restore::{self, ReadError, RestoreCmd, RestoreState};
use super::{End, FileDaemon, Session};

/// BTIME samples taken for the clock comparison (§5.9).
const BTIME_SAMPLES: usize = 10;

impl FileDaemon {
    /// `level = ...` (§5.3 step 2, §5.9).
    pub(super) async fn cmd_level(
        &self,
        dir: &mut BSock,
        s: &mut Session,
        cmd: &str,
    ) -> Result<End, NetError> {
        match LevelCmd::parse(cmd) {
            Some(LevelCmd::Named {
                name,
                accurate,
                mtime_only,
            }) => {
                s.level.name = name;
                s.level.accurate = accurate;
                s.level.mtime_only = mtime_only;
                s.level.since = None;
                if let Some(h) = &s.handle {
                    h.set_level(s.level.word());
                }
                if s.level.name == "base" {
                    s.report(
                        MsgType::Warning,
                        "Base jobs are not supported by this File daemon; saving everything as for a Full backup.",
                    );
                }
                // Incremental/Differential wait for the since_utime line.
                if s.level.name == "full" || s.level.name == "base" {
                    dir.send_text("2000 OK level\n").await?;
                }
                Ok(End::Continue)
            }
            Some(LevelCmd::Since { utime, mtime_only }) => {
                s.level.mtime_only |= mtime_only;
                let offset = match self.clock_sync(dir).await? {
                    Some(o) => o,
                    None => return Ok(End::ByPeer),
                };
                if offset.abs() > 600 {
                    s.report(MsgType::Warning, &clock_text(offset));
                } else if offset.abs() > 3 {
                    s.report(MsgType::Info, &clock_text(offset));
                }
                s.level.since = Some(utime + offset);
                dir.signal(Signal::Eod).await?;
                dir.send_text("2000 OK level\n").await?;
                Ok(End::Continue)
            }
            None => {
                warn!("{}: bad level command {:?}", s.label, cmd.trim_end());
                dir.send_text(&format!("2902 Bad level command: {}\n", cmd.trim_end()))
                    .await?;
                s.status = JobStatus::FATAL_ERROR;
                Ok(End::ByUs)
            }
        }
    }

    /// Asks the Director's clock ten times; FD minus Director in seconds.
    /// None when the Director left.
    async fn clock_sync(&self, dir: &mut BSock) -> Result<Option<i64>, NetError> {
        let mut samples = Vec::with_capacity(BTIME_SAMPLES);
        for _ in 0..BTIME_SAMPLES {
            let asked = now_us();
            dir.signal(Signal::Btime).await?;
            let reply = loop {
                match dir.recv().await? {
                    Packet::Data(d) => break c_text(&d),
                    Packet::Signal(Signal::Heartbeat | Signal::HbResponse) => continue,
                    Packet::Signal(Signal::Terminate) => return Ok(None),
                    Packet::Signal(_) => continue,
                }
            };
            let answered = now_us();
            let mut sc = Scanner::lenient(&reply);
            if let Some(t) = sc.lit("btime ").and_then(|_| sc.int()) {
                samples.push((asked, t, answered));
            }
        }
        Ok(Some(clock_offset(&samples)))
    }

    /// `fileset ...` then the block lines up to EOD (§5.3 step 3).
    pub(super) async fn cmd_fileset(
        &self,
        dir: &mut BSock,
        s: &mut Session,
    ) -> Result<End, NetError> {
        let mut lines = Vec::new();
        loop {
            match dir.recv().await? {
                Packet::Data(d) => lines.push(String::from_utf8_lossy(&d).into_owned()),
                Packet::Signal(Signal::Eod) => break,
                Packet::Signal(Signal::Heartbeat | Signal::HbResponse) => continue,
                Packet::Signal(Signal::Terminate) => return Ok(End::ByPeer),
                Packet::Signal(other) => {
                    warn!("{}: {} inside the fileset", s.label, other.name());
                    continue;
                }
            }
        }
        // A FileSet item cannot hold a NUL; cut like Bacula's C strings.
        let lines: Vec<String> = lines
            .into_iter()
            .map(|l| l.split('\0').next().unwrap_or("").to_string())
            .collect();
        let fs = FileSet::parse(&lines);
        for w in &fs.warnings {
            s.report(MsgType::Warning, &format!("FileSet: {w}."));
        }
        info!(
            "{}: fileset with {} include and {} exclude blocks",
            s.label,
            fs.includes.len(),
            fs.excludes.len()
        );
        s.fileset = Some(Arc::new(fs));
        dir.send_text("2000 OK include\n").await?;
        Ok(End::Continue)
    }

    /// `accurate files=N` then one packet per file up to EOD (§5.9): the
    /// files of the previous backups; no reply.
    pub(super) async fn cmd_accurate(
        &self,
        dir: &mut BSock,
        s: &mut Session,
    ) -> Result<End, NetError> {
        let acc = backup::Accurate::default();
        let mut bad = 0u64;
        loop {
            match dir.recv().await? {
                Packet::Data(d) => {
                    if !acc.add(&d) {
                        bad += 1;
                    }
                }
                Packet::Signal(Signal::Eod) => break,
                Packet::Signal(Signal::Terminate) => return Ok(End::ByPeer),
                Packet::Signal(_) => continue,
            }
        }
        if bad > 0 {
            s.report(
                MsgType::Warning,
                &format!("{bad} entries of the accurate list could not be read; those files are saved again."),
            );
        }
        info!("{}: accurate list of {} files", s.label, acc.len());
        s.accurate = Some(Arc::new(acc));
        Ok(End::Continue)
    }

    /// `storage address=.. port=.. ssl=.. [Authorization=..]` (§5.3 step 5,
    /// §6.2 step 3): opens the data channel.
    pub(super) async fn cmd_storage(
        &self,
        dir: &mut BSock,
        s: &mut Session,
        cmd: &str,
    ) -> Result<End, NetError> {
        let mut sc = Scanner::lenient(cmd);
        let parsed = (|| {
            sc.lit("storage address=")?;
            let host = sc.word(255)?.to_string();
            sc.lit(" port=")?;
            let port = sc.int()?;
            sc.lit(" ssl=")?;
            let _ssl = sc.int()?;
            let mut key = None;
            if sc.lit(" Authorization=").is_some() {
                key = sc
                    .word(255)
                    .map(|k| baculink_proto::Secret::new(k.as_bytes()));
            }
            Some((host, port, key))
        })();
        let (Some((host, port, key)), Some(job)) = (parsed, s.job.as_ref()) else {
            dir.send_text("2902 Bad storage\n").await?;
            s.status = JobStatus::FATAL_ERROR;
            return Ok(End::ByUs);
        };
        let Some(handle) = s.handle.clone() else {
            dir.send_text("2902 Bad storage\n").await?;
            return Ok(End::ByUs);
        };
        if port <= 0 || port > i64::from(u16::MAX) {
            s.report_now(
                dir,
                MsgType::Fatal,
                "The Storage daemon would call this File daemon (SD Calls Client); not supported by this File daemon.",
            )
            .await;
            dir.send_text("2902 Bad storage\n").await?;
            s.status = JobStatus::FATAL_ERROR;
            return Ok(End::ByUs);
        }
        let key = key.unwrap_or_else(|| job.key.clone());
        let job_name = job.job.clone();
        // A previous data channel (multi-storage restore) is done.
        if let Some(mut old) = s.sd.take() {
            if !old.sock.is_terminated() {
                let _ = old.sock.signal(Signal::Terminate).await;
            }
            old.sock.close().await;
        }
        let r = tokio::select! {
            biased;
            _ = handle.canceled() => None,
            r = self.connect_to_sd(&host, port as u16, &job_name, &key) => Some(r),
        };
        match r {
            Some(Ok(link)) => {
                // Like Bacula 13's "Connected to Storage ... with TLS", with
                // the facts of the link: the data crosses the network here.
                let est = &link.peer.established;
                let mut how = format!(
                    "dialect {}, {}",
                    est.peer_dialect,
                    crate::daemon::mode_words(est.mode)
                );
                if let Some(f) = link.peer.tls.as_ref() {
                    how.push_str(&crate::daemon::tls_words(f));
                }
                s.report(
                    MsgType::Info,
                    &format!("Connected to Storage daemon at {host}:{port}: {how}"),
                );
                s.sd = Some(link);
                dir.send_text("2000 OK storage\n").await?;
                Ok(End::Continue)
            }
            Some(Err(e)) => {
                s.report_now(
                    dir,
                    MsgType::Fatal,
                    &format!("Failed to connect to Storage daemon at {host}:{port}: {e}"),
                )
                .await;
                dir.send_text("2902 Bad storage\n").await?;
                s.status = JobStatus::FATAL_ERROR;
                Ok(End::ByUs)
            }
            None => {
                dir.send_text("2902 Bad storage\n").await?;
                s.status = JobStatus::CANCELED;
                Ok(End::ByUs)
            }
        }
    }

    /// `backup FileIndex=N` (§5.3 step 7, §5.5): the append session.
    pub(super) async fn cmd_backup(
        &self,
        dir: &mut BSock,
        s: &mut Session,
        cmd: &str,
    ) -> Result<End, NetError> {
        let mut sc = Scanner::lenient(cmd);
        let fi = sc
            .lit("backup FileIndex=")
            .and_then(|_| sc.int())
            .unwrap_or(0);
        let (Some(handle), Some(fileset)) = (s.handle.clone(), s.fileset.clone()) else {
            dir.send_text("2902 Bad backup\n").await?;
            s.status = JobStatus::FATAL_ERROR;
            return Ok(End::ByUs);
        };
        let Some(mut link) = s.sd.take() else {
            dir.send_text("2902 Bad backup\n").await?;
            s.status = JobStatus::FATAL_ERROR;
            return Ok(End::ByUs);
        };
        handle.set_kind(JobKind::Backup);
        handle.set_level(s.level.word());
        s.kind = JobKind::Backup;
        dir.send_text("2000 OK backup\n").await?;
        s.flush(dir).await;
        let params = WalkParams {
            fileset,
            since: s.level.since,
            mtime_only: s.level.mtime_only,
            accurate: s.accurate.clone(),
        };
        let first = i32::try_from(fi.max(0)).unwrap_or(0) + 1;
        let mut comm = CommBytes::default();
        let r = self
            .append_session(dir, s, &mut link, params, handle.clone(), first, &mut comm)
            .await;
        if !link.sock.is_terminated() {
            let _ = link.sock.signal(Signal::Terminate).await;
        }
        link.sock.close().await;
        match r {
            Ok(t) => {
                s.status = JobStatus::OK;
                s.totals = Some(EndJob {
                    term_code: JobStatus::OK,
                    job_files: t.files,
                    read_bytes: t.read_bytes,
                    job_bytes: t.job_bytes,
                    errors: t.errors,
                    vss: 0,
                    encrypt: 0,
                    comm_bytes: comm.sent,
                    compress_comm_bytes: comm.sent,
                });
                info!(
                    "{}: backup done: {} files, {} bytes, {} errors",
                    s.label, t.files, t.job_bytes, t.errors
                );
            }
            Err(AppendError::Canceled) => {
                s.status = JobStatus::CANCELED;
                info!("{}: backup canceled", s.label);
            }
            Err(e) => {
                s.status = JobStatus::FATAL_ERROR;
                warn!("{}: backup failed: {e}", s.label);
                s.report_now(dir, MsgType::Fatal, &format!("Backup failed: {e}"))
                    .await;
            }
        }
        Ok(End::ByUs)
    }

    #[allow(clippy::too_many_arguments)]
    async fn append_session(
        &self,
        dir: &mut BSock,
        s: &mut Session,
        link: &mut super::SdLink,
        params: WalkParams,
        handle: Arc<super::job::JobHandle>,
        first: i32,
        comm: &mut CommBytes,
    ) -> Result<backup::Totals, AppendError> {
        let sd = &mut link.sock;
        sd.send_text("append open session\n").await?;
        let r = sd_reply(sd, &handle).await?;
        let ticket = r
            .strip_prefix("3000 OK open ticket = ")
            .and_then(|t| t.trim().parse::<i64>().ok())
            .ok_or_else(|| AppendError::Refused(r.trim_end().to_string()))?;
        sd.send_text(&format!("append data {ticket}\n")).await?;
        let r = sd_reply(sd, &handle).await?;
        if !r.starts_with("3000 OK data") {
            return Err(AppendError::Refused(r.trim_end().to_string()));
        }
        let rep = s
            .reporter
            .as_ref()
            .ok_or(AppendError::Refused("no job".into()))?;
        let totals = backup::stream_to_sd(
            sd,
            link.compress,
            dir,
            rep,
            params,
            handle.clone(),
            first,
            comm,
        )
        .await
        .map_err(|e| match e {
            StreamError::Canceled => AppendError::Canceled,
            StreamError::Net(n) => AppendError::Net(n),
            StreamError::Reader => AppendError::Refused("the file reader stopped".into()),
        })?;
        // One more EOD: no more files.
        sd.signal(Signal::Eod).await?;
        let r = sd_reply(sd, &handle).await?;
        if !r.starts_with("3000 OK append data") {
            return Err(AppendError::Refused(r.trim_end().to_string()));
        }
        sd.send_text(&format!("append end session {ticket}\n"))
            .await?;
        let r = sd_reply(sd, &handle).await?;
        if !r.starts_with("3000 OK end") {
            return Err(AppendError::Refused(r.trim_end().to_string()));
        }
        sd.send_text(&format!("append close session {ticket}\n"))
            .await?;
        let r = sd_reply(sd, &handle).await?;
        let mut scan = Scanner::lenient(&r);
        let status = scan
            .lit("3000 OK close Status = ")
            .and_then(|_| scan.int())
            .and_then(JobStatus::from_code)
            .ok_or_else(|| AppendError::Refused(r.trim_end().to_string()))?;
        // The rest of the close reply, up to its EOD.
        loop {
            match sd.recv().await? {
                Packet::Signal(Signal::Eod | Signal::Terminate) => break,
                _ => continue,
            }
        }
        if !matches!(status.0, b'T' | b'W' | b'I') {
            return Err(AppendError::Refused(format!(
                "Storage daemon closed the session with status {status}"
            )));
        }
        Ok(totals)
    }

    /// `restore ...` (§6.2 step 5): the read session, then
    /// `2000 OK storage end`.
    pub(super) async fn cmd_restore(
        &self,
        dir: &mut BSock,
        s: &mut Session,
        cmd: &str,
    ) -> Result<End, NetError> {
        let parsed = RestoreCmd::parse(cmd);
        let (Some(rc), Some(handle), Some(job)) = (parsed, s.handle.clone(), s.job.as_ref()) else {
            warn!("{}: bad restore command {:?}", s.label, cmd.trim_end());
            dir.send_text(&format!("2905 Bad restore command: {}\n", cmd.trim_end()))
                .await?;
            s.status = JobStatus::FATAL_ERROR;
            return Ok(End::ByUs);
        };
        let (sd_id, sd_time) = (job.sd_id, job.sd_time);
        let state = match s.restore.take() {
            Some(mut st) => st.update(&rc).map(|_| st),
            None => RestoreState::new(&rc),
        };
        let state = match state {
            Ok(st) => st,
            Err(e) => {
                s.report_now(dir, MsgType::Fatal, &e).await;
                dir.send_text(&format!("2905 Bad restore command: {e}\n"))
                    .await?;
                s.status = JobStatus::FATAL_ERROR;
                return Ok(End::ByUs);
            }
        };
        let Some(mut link) = s.sd.take() else {
            dir.send_text("2902 Bad storage\n").await?;
            s.status = JobStatus::FATAL_ERROR;
            return Ok(End::ByUs);
        };
        handle.set_kind(JobKind::Restore);
        s.kind = JobKind::Restore;
        if let Some(n) = rc.files {
            s.expected_files = s.expected_files.saturating_add(n);
        }
        dir.send_text("2000 OK restore\n").await?;
        s.flush(dir).await;
        let Some(rep) = s.reporter.as_ref() else {
            return Ok(End::ByUs);
        };
        let (state, r) = restore::read_session(
            &mut link.sock,
            dir,
            rep,
            handle.clone(),
            sd_id,
            sd_time,
            state,
        )
        .await;
        s.restore = Some(state);
        if !link.sock.is_terminated() {
            let _ = link.sock.signal(Signal::Terminate).await;
        }
        link.sock.close().await;
        match r {
            Ok(()) => {
                dir.send_text("2000 OK storage end\n").await?;
                Ok(End::Continue)
            }
            Err(ReadError::Canceled) => {
                s.status = JobStatus::CANCELED;
                self.end_restore(dir, s).await;
                Ok(End::ByUs)
            }
            Err(e) => {
                warn!("{}: restore failed: {e}", s.label);
                s.report_now(dir, MsgType::Fatal, &format!("Restore failed: {e}"))
                    .await;
                s.status = JobStatus::FATAL_ERROR;
                self.end_restore(dir, s).await;
                Ok(End::ByUs)
            }
        }
    }

    /// `endrestore` (§6.2 step 7), or the end of a failed restore: directory
    /// attributes, then the totals for the end-of-job line.
    pub(super) async fn end_restore(&self, dir: &mut BSock, s: &mut Session) {
        let Some(mut st) = s.restore.take() else {
            if s.status == JobStatus::RUNNING {
                s.status = JobStatus::OK;
            }
            return;
        };
        let notes = tokio::task::spawn_blocking(move || {
            let n = st.finish_dirs();
            (st, n)
        })
        .await;
        let Ok((st, notes)) = notes else { return };
        for (k, t) in notes {
            s.report_now(dir, k, &t).await;
        }
        if s.status == JobStatus::RUNNING {
            s.status = JobStatus::OK;
        }
        if s.expected_files > u64::from(st.files) && s.status == JobStatus::OK {
            info!(
                "{}: restored {} of {} expected files",
                s.label, st.files, s.expected_files
            );
        }
        s.totals = Some(EndJob {
            term_code: s.status,
            job_files: st.files,
            read_bytes: st.bytes,
            job_bytes: st.bytes,
            errors: st.errors,
            vss: 0,
            encrypt: 0,
            comm_bytes: 0,
            compress_comm_bytes: 0,
        });
        if let Some(h) = &s.handle {
            h.errors.store(st.errors, Ordering::Relaxed);
        }
    }

    /// `estimate listing=N` (§3.4).
    pub(super) async fn cmd_estimate(
        &self,
        dir: &mut BSock,
        s: &mut Session,
        cmd: &str,
    ) -> Result<End, NetError> {
        let mut sc = Scanner::lenient(cmd);
        let listing = sc
            .lit("estimate listing=")
            .and_then(|_| sc.int())
            .unwrap_or(0)
            != 0;
        let Some(fileset) = s.fileset.clone() else {
            dir.send_text("2992 Bad estimate command.\n").await?;
            dir.signal(Signal::Eod).await?;
            return Ok(End::Continue);
        };
        let handle = match &s.handle {
            Some(h) => h.clone(),
            None => Arc::new(self.jobs.detached("0", "estimate")),
        };
        handle.set_kind(JobKind::Estimate);
        let params = WalkParams {
            fileset,
            since: s.level.since,
            mtime_only: s.level.mtime_only,
            accurate: None,
        };
        let h = handle.clone();
        let r = tokio::task::spawn_blocking(move || backup::estimate(&params, &h, listing)).await;
        let Ok((files, bytes, lines, notes)) = r else {
            dir.send_text("2992 Bad estimate command.\n").await?;
            dir.signal(Signal::Eod).await?;
            return Ok(End::Continue);
        };
        for (k, t) in notes {
            info!("{}: estimate: {:?} {}", s.label, k, t.trim());
        }
        for l in lines {
            dir.send_text(&l).await?;
        }
        dir.send_text(&format!(
            "2000 OK estimate files={} bytes={}\n",
            grouped(files),
            grouped(bytes)
        ))
        .await?;
        dir.signal(Signal::Eod).await?;
        Ok(End::Continue)
    }

    /// Client run scripts (§5.3 step 6): not run; each one is reported as a
    /// warning and acknowledged so the job goes on.
    pub(super) async fn cmd_run_script(
        &self,
        dir: &mut BSock,
        s: &mut Session,
        cmd: &str,
    ) -> Result<End, NetError> {
        let reply = if cmd.starts_with("RunBeforeNow") {
            "2000 OK RunBeforeNow\n"
        } else if cmd.starts_with("RunBeforeJob") {
            "2000 OK RunBefore\n"
        } else if cmd.starts_with("RunAfterJob") {
            "2000 OK RunAfter\n"
        } else {
            "2000 OK RunScript\n"
        };
        if !cmd.starts_with("RunBeforeNow") {
            let what = cmd
                .split_once("Command=")
                .map(|(_, c)| c)
                .or_else(|| cmd.split_once(' ').map(|(_, c)| c))
                .unwrap_or("")
                .trim_end()
                .replace('\u{1}', " ");
            s.report(
                MsgType::Warning,
                &format!(
                    "RunScript on the client is not supported by this File daemon; not run: {what}"
                ),
            );
        }
        dir.send_text(reply).await?;
        Ok(End::Continue)
    }
}

/// Why an append session failed.
#[derive(Debug, thiserror::Error)]
enum AppendError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("Storage daemon refused: {0}")]
    Refused(String),
    #[error("job canceled")]
    Canceled,
}

impl From<ReadError> for AppendError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Net(n) => AppendError::Net(n),
            ReadError::Protocol(p) => AppendError::Refused(p),
            ReadError::Canceled => AppendError::Canceled,
        }
    }
}

/// One text reply of the SD (heartbeats skipped), or canceled.
async fn sd_reply(sd: &mut BSock, handle: &super::job::JobHandle) -> Result<String, AppendError> {
    let r = tokio::select! {
        biased;
        _ = handle.canceled() => return Err(AppendError::Canceled),
        r = sd.recv_data() => r?,
    };
    match r {
        Ok(d) => Ok(c_text(&d)),
        Err(sig) => Err(AppendError::Refused(format!(
            "{} instead of a reply",
            sig.name()
        ))),
    }
}

fn clock_text(offset: i64) -> String {
    format!("DIR and FD clocks differ by {offset} seconds, FD automatically compensating.")
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// `1234567` -> `1,234,567`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let head = digits.len() % 3;
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    out.push_str(&digits[..head]);
    for (i, group) in digits.as_bytes()[head..].chunks(3).enumerate() {
        if i > 0 || head > 0 {
            out.push(',');
        }
        out.push_str(std::str::from_utf8(group).unwrap_or(""));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn grouping() {
        assert_eq!(super::grouped(0), "0");
        assert_eq!(super::grouped(223941), "223,941");
        assert_eq!(super::grouped(1234567), "1,234,567");
    }
}
