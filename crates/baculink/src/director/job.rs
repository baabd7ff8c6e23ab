//! Running one job: the plan resolved from the config, the backup sequence
//! of protocol-jobs.md §5 (SD message channel, FD command channel, end of
//! job per §5.8), cancel, and the end-of-job report. Restores share the
//! helpers here and live in `restore.rs`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use baculink_conf::dir::{Client, FileSet, Job, Storage};
use baculink_conf::{Items, Messages};
use baculink_net::{BSock, LoginError, NetError};
use baculink_proto::frame::{Packet, Signal};
use baculink_proto::job::attr::{EndJob, JobStatus};
use baculink_proto::job::catreq::{self, DirMessage, Generation, Jmsg, MsgType};
use baculink_proto::job::sdcmd::{self, JobCommand, JobReply, UseStorage};
use baculink_proto::scan::c_text;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::catalog::{JobEndRow, PoolSpec};
use super::jobs::LiveJob;
use super::msgchan::{SdChannel, SdOutcome};
use super::report::{self, commas, now, units};
use super::restore::RestoreSpec;
use super::Director;
use crate::daemon::LinkGuard;

/// How long the SD gets to end its side after the FD failed or a cancel.
const SD_END_GRACE: Duration = Duration::from_secs(60);
/// How long the FD gets to report its end after a cancel.
const FD_CANCEL_GRACE: Duration = Duration::from_secs(30);
/// Limit for one short command exchange with the FD or SD.
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a successful job waits for the SD to finish (attribute despooling).
const SD_END_LIMIT: Duration = Duration::from_secs(3600);

/// Limit for one short command exchange (restore uses it too).
pub fn reply_timeout() -> Duration {
    REPLY_TIMEOUT
}

/// Everything a job needs, resolved from the configuration when it is queued.
#[derive(Clone, Debug)]
pub struct JobPlan {
    /// `B` backup or `R` restore.
    pub kind: char,
    /// The Job resource.
    pub job: Job,
    /// Level letter (` ` for restores).
    pub level: char,
    /// The Client.
    pub client: Client,
    /// The Storage.
    pub storage: Storage,
    /// The Pool's volume settings.
    pub pool: PoolSpec,
    /// `Pool Type`.
    pub pool_type: String,
    /// The FileSet.
    pub fileset: FileSet,
    /// The job's Messages resource.
    pub messages: Option<Messages>,
    /// Catalog resource name (for the report).
    pub catalog: String,
    /// `Spool Attributes`.
    pub spool_attributes: bool,
    /// `Priority`.
    pub priority: u32,
    /// The Job's `Maximum Concurrent Jobs`.
    pub max_jobs: u32,
    /// When it was queued.
    pub sched_time: i64,
    /// Restore details.
    pub restore: Option<RestoreSpec>,
}

/// One job's shared context.
pub struct JobCtx {
    /// The Director (config, TLS contexts, catalog, registry).
    pub dir: Arc<Director>,
    /// The job's live state.
    pub live: Arc<LiveJob>,
    /// What to do.
    pub plan: JobPlan,
}

/// Why a job stopped early.
#[derive(Debug, Clone)]
pub enum Fail {
    /// Canceled by a console.
    Canceled,
    /// A fatal error (already logged as a job message).
    Fatal(String),
}

/// What a job found out, for the final status and the report.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The FD's `2800 End Job` line.
    pub fd_end: Option<EndJob>,
    /// What the SD said.
    pub sd: SdOutcome,
    /// Early stop.
    pub fail: Option<Fail>,
    /// VolSessionId / VolSessionTime given by the SD.
    pub vol_session: (u32, u32),
    /// The FD's version text from its `2000 OK Job` reply.
    pub client_uname: String,
    /// Level actually run.
    pub level: char,
}

impl JobCtx {
    /// JobId.
    pub fn id(&self) -> u32 {
        self.live.id
    }

    /// Our own job message: `<director> JobId N: [Fatal error: |Error: |Warning: ]text`.
    pub async fn msg(&self, kind: MsgType, text: &str) {
        let prefix = match kind {
            MsgType::Fatal | MsgType::Abort => "Fatal error: ",
            MsgType::Error | MsgType::ErrorTerm => "Error: ",
            MsgType::Warning => "Warning: ",
            _ => "",
        };
        if kind == MsgType::Fatal {
            self.live.set_status('f');
        }
        let text = format!("{} JobId {}: {prefix}{text}", self.dir.name(), self.id());
        self.deliver(now(), kind, text).await;
    }

    /// A daemon's `Jmsg`, with its type read in the sender's table.
    pub async fn route(&self, j: &Jmsg, gen: Generation) {
        let kind = MsgType::from_code(j.msg_type, gen);
        if kind == MsgType::Fatal {
            self.live.set_status('f');
        }
        let t = if j.time <= 1 { now() } else { j.time };
        self.deliver(t, kind, j.text.clone()).await;
    }

    /// Sends a job message to the consoles, the catalog log and the
    /// Messages resource's `append` files.
    async fn deliver(&self, time: i64, kind: MsgType, text: String) {
        let mut line = format!("{} {}", report::msg_time(time), text);
        if !line.ends_with('\n') {
            line.push('\n');
        }
        info!("{}", line.trim_end());
        if !matches!(kind, MsgType::Debug | MsgType::Saved | MsgType::Skipped) {
            self.dir.jobs.queue_message(line.clone());
        }
        let files: Vec<String> = self
            .plan
            .messages
            .iter()
            .flat_map(|m| m.destinations.iter())
            .filter(|d| d.kind == "append")
            .filter_map(|d| d.target.clone())
            .collect();
        let id = self.id();
        let r = self
            .dir
            .catalog
            .call(move |c| {
                for f in &files {
                    use std::io::Write;
                    if let Ok(mut fh) = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(f)
                    {
                        let _ = fh.write_all(line.as_bytes());
                    }
                }
                c.log(id, time, &line)
            })
            .await;
        if let Err(e) = r {
            warn!("JobId {id}: cannot log a job message: {e}");
        }
    }

    /// A fatal error as a [`Fail`]; the job's top level logs it once.
    pub async fn fatal(&self, text: String) -> Fail {
        Fail::Fatal(text)
    }

    /// Logs an early stop once (a fatal error after a cancel counts as the cancel).
    pub async fn settle(&self, f: Fail) -> Fail {
        match f {
            Fail::Fatal(_) if self.live.cancel.is_cancelled() => Fail::Canceled,
            Fail::Fatal(t) => {
                self.msg(MsgType::Fatal, &t).await;
                Fail::Fatal(t)
            }
            c => c,
        }
    }
}

/// Runs a queued job to its end: waits for a `Maximum Concurrent Jobs`
/// slot, runs it, stores the result and queues the report.
pub async fn run_job(ctx: Arc<JobCtx>) {
    let p = &ctx.plan;
    let jobs = &ctx.dir.jobs;
    // Job, Client, Storage, then Director limits; the status says which one waits.
    let waits = [
        ('j', jobs.limit(&format!("Job/{}", p.job.name), p.max_jobs)),
        (
            'c',
            jobs.limit(
                &format!("Client/{}", p.client.name),
                p.client.max_concurrent_jobs,
            ),
        ),
        (
            's',
            jobs.limit(
                &format!("Storage/{}", p.storage.name),
                p.storage.max_concurrent_jobs,
            ),
        ),
        ('d', jobs.slots.clone()),
    ];
    let mut permits = Vec::new();
    for (status, sem) in waits {
        let permit = match sem.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                ctx.live.update(|s| s.status = status);
                tokio::select! {
                    p = sem.acquire_owned() => p.ok(),
                    _ = ctx.live.cancel.cancelled() => None,
                }
            }
        };
        match permit {
            Some(p) => permits.push(p),
            None => {
                permits.clear();
                break;
            }
        }
    }
    let permit = (permits.len() == 4).then_some(permits);
    let start = now();
    let out = match permit {
        None => Outcome {
            fail: Some(Fail::Canceled),
            level: ctx.plan.level,
            ..Outcome::default()
        },
        Some(_) => {
            ctx.live.update(|s| {
                s.status = 'R';
                s.start = start;
            });
            if ctx.plan.kind == 'R' {
                super::restore::run(&ctx).await
            } else {
                backup(&ctx).await
            }
        }
    };
    finish(&ctx, out, start).await;
}

async fn backup(ctx: &Arc<JobCtx>) -> Outcome {
    let mut out = Outcome {
        level: ctx.plan.level,
        ..Outcome::default()
    };
    let mut sd_task = None;
    let r = backup_steps(ctx, &mut out, &mut sd_task).await;
    let failed = r.is_err();
    if let Err(f) = r {
        out.fail = Some(ctx.settle(f).await);
    }
    out.sd = end_sd(ctx, sd_task, failed).await;
    out
}

async fn backup_steps(
    ctx: &Arc<JobCtx>,
    out: &mut Outcome,
    sd_task: &mut Option<JoinHandle<SdOutcome>>,
) -> Result<(), Fail> {
    let p = &ctx.plan;
    // Incremental / Differential need a base to compare with.
    let (level, since) = since_time(ctx).await;
    out.level = level;
    ctx.live.update(|s| s.level = level);
    ctx.msg(
        MsgType::Info,
        &format!("Start Backup JobId {}, Job={}\n", ctx.id(), ctx.live.unique),
    )
    .await;

    let mut ch = connect_sd(ctx).await?;
    let key = sd_job(ctx, &mut ch, true, level).await?;
    out.vol_session = (key.sd_id, key.sd_time);
    let id = ctx.id();
    let (sid, stime) = (key.sd_id, key.sd_time);
    let _ = ctx
        .dir
        .catalog
        .call(move |c| c.start_job(id, now(), level, (sid, stime)))
        .await;
    ch.sock.send_text(sdcmd::RUN).await.map_err(sd_net)?;
    *sd_task = Some(tokio::spawn(ch.run_to_end()));

    let (mut fd, fd_gen, _link) = connect_fd(ctx, &key, out).await?;
    let r = async {
        send_level(ctx, &mut fd, fd_gen, level, since).await?;
        let packets = super::fileset::fileset_packets(&p.fileset)
            .map_err(|e| Fail::Fatal(format!("FileSet \"{}\": {e}", p.fileset.name)))?;
        for pk in &packets {
            fd.send_text(pk).await.map_err(|e| fd_net(e, "Backup"))?;
        }
        fd.signal(Signal::Eod)
            .await
            .map_err(|e| fd_net(e, "Backup"))?;
        fd_expect(
            ctx,
            &mut fd,
            fd_gen,
            "2000 OK include",
            "fileset",
            REPLY_TIMEOUT,
        )
        .await?;
        send_storage(ctx, &mut fd, fd_gen, None).await?;
        fd.send_text("backup FileIndex=0\n")
            .await
            .map_err(|e| fd_net(e, "Backup"))?;
        fd_expect(
            ctx,
            &mut fd,
            fd_gen,
            "2000 OK backup",
            "backup",
            REPLY_TIMEOUT,
        )
        .await?;
        let poller = tokio::spawn(poll_fd_progress(ctx.clone()));
        let r = fd_wait_end(ctx, &mut fd, fd_gen, out, "Backup").await;
        poller.abort();
        r
    }
    .await;
    close_fd(fd).await;
    r
}

/// The level to run and, for Incremental/Differential, the since time and
/// prior job; upgrades to Full when there is no usable prior backup.
async fn since_time(ctx: &Arc<JobCtx>) -> (char, Option<(i64, String)>) {
    let p = &ctx.plan;
    if !matches!(p.level, 'I' | 'D') {
        return (p.level, None);
    }
    let (name, client, fs) = (
        p.job.name.clone(),
        p.client.name.clone(),
        p.fileset.name.clone(),
    );
    let levels = if p.level == 'I' { "FID" } else { "F" };
    let full = {
        let (n, c, f) = (name.clone(), client.clone(), fs.clone());
        ctx.dir
            .catalog
            .call(move |cat| cat.last_backup(&n, &c, &f, "F"))
            .await
    };
    if !matches!(full, Ok(Some(_))) {
        ctx.msg(
            MsgType::Info,
            "No prior Full backup Job record found.\nNo prior or suitable Full backup found in catalog. Doing FULL backup.\n",
        )
        .await;
        return ('F', None);
    }
    let prior = ctx
        .dir
        .catalog
        .call(move |cat| cat.last_backup(&name, &client, &fs, levels))
        .await;
    match prior {
        Ok(Some(j)) => (p.level, Some((j.start_time, j.job))),
        _ => ('F', None),
    }
}

/// The SD session the job line returned.
pub struct SdKey {
    /// VolSessionId.
    pub sd_id: u32,
    /// VolSessionTime.
    pub sd_time: u32,
    /// Session key for the FD (never logged).
    pub key: String,
}

/// Logs in to the job's Storage daemon: its message channel.
pub async fn connect_sd(ctx: &Arc<JobCtx>) -> Result<SdChannel, Fail> {
    let s = &ctx.plan.storage;
    let setup = ctx.dir.sd_setup(s);
    let (mut sock, peer) = match baculink_net::connect(&s.address, s.port, &setup).await {
        Ok(x) => x,
        Err(e) => {
            return Err(ctx
                .fatal(format!(
                    "Could not connect to Storage daemon \"{}\" at {}:{}: {e}",
                    s.name, s.address, s.port
                ))
                .await)
        }
    };
    let version = peer.established.peer_version.unwrap_or(0);
    if version < 2 {
        return Err(ctx
            .fatal(format!(
                "Older Storage daemon at \"{}:{}\" incompatible with this Director.",
                s.address, s.port
            ))
            .await);
    }
    sock.set_peer_name(format!("Storage daemon \"{}\"", s.name));
    debug!("JobId {}: SD version {version}", ctx.id());
    let mut ch = SdChannel::new(sock, Generation::of_sd_version(version), ctx.clone());
    ch.link = Some(ctx.dir.links.add(&peer, "Storage daemon", true));
    Ok(ch)
}

/// Sends the job line and reserves the device; serves catalog requests
/// that arrive meanwhile.
pub async fn sd_job(
    ctx: &Arc<JobCtx>,
    ch: &mut SdChannel,
    append: bool,
    level: char,
) -> Result<SdKey, Fail> {
    let p = &ctx.plan;
    let cmd = JobCommand {
        job_id: ctx.id(),
        job: ctx.live.unique.clone(),
        job_name: p.job.name.clone(),
        client_name: p.client.name.clone(),
        job_type: p.kind,
        level,
        fileset: p.fileset.name.clone(),
        no_attr: false,
        spool_attr: p.spool_attributes,
        fileset_md5: fileset_digest(&p.fileset),
        spool_data: false,
        write_part_after_job: true,
        prefer_mounted_vols: true,
        spool_size: 0,
        rerunning: false,
        vol_session_id: 0,
        vol_session_time: 0,
        sd_client: false,
        authorization: "dummy".into(),
    };
    let reply = sd_command(ctx, ch, &cmd.to_string()).await?;
    let key = JobReply::parse(&reply).map_err(|_| {
        Fail::Fatal(format!(
            "Storage daemon rejected the Job command: {}",
            reply.trim_end()
        ))
    })?;
    let use_storage = UseStorage {
        storage: p.storage.name.clone(),
        media_type: p.storage.media_type.clone(),
        pool_name: p.pool.name.clone(),
        pool_type: p.pool_type.clone(),
        append,
        copy: 0,
        stripe: 0,
        wait: (ch.gen == Generation::V13).then_some(0),
    };
    let send = async {
        ch.sock.send_text(&use_storage.to_string()).await?;
        for d in &p.storage.devices {
            ch.sock.send_text(&sdcmd::use_device(d)).await?;
        }
        ch.sock.signal(Signal::Eod).await?;
        ch.sock.signal(Signal::Eod).await
    };
    send.await.map_err(sd_net)?;
    let reply = sd_reply(ctx, ch).await?;
    if sdcmd::parse_ok_use_device(&reply).is_err() {
        return Err(ctx
            .fatal(format!(
                "Storage daemon didn't accept Device \"{}\" because:\n     {}",
                p.storage.devices.first().map(String::as_str).unwrap_or(""),
                reply.trim_end()
            ))
            .await);
    }
    Ok(SdKey {
        sd_id: key.sd_id,
        sd_time: key.sd_time,
        key: key.authorization,
    })
}

/// Sends one command on the SD channel and waits for its reply.
pub async fn sd_command(ctx: &Arc<JobCtx>, ch: &mut SdChannel, cmd: &str) -> Result<String, Fail> {
    if let Err(e) = ch.sock.send_text(cmd).await {
        return Err(ctx.fatal(format!("Network error with SD: {e}")).await);
    }
    sd_reply(ctx, ch).await
}

/// The SD's next reply (bounded, cancel-aware).
pub async fn sd_reply(ctx: &Arc<JobCtx>, ch: &mut SdChannel) -> Result<String, Fail> {
    let r = tokio::select! {
        r = tokio::time::timeout(REPLY_TIMEOUT, ch.next_reply()) => r,
        _ = ctx.live.cancel.cancelled() => return Err(Fail::Canceled),
    };
    match r {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(e)) => Err(ctx.fatal(format!("Network error with SD: {e}")).await),
        Err(_) => Err(ctx
            .fatal("Timed out waiting for the Storage daemon's reply".into())
            .await),
    }
}

fn sd_net(e: NetError) -> Fail {
    Fail::Fatal(format!("Network error with SD: {e}"))
}

/// A stable digest of the FileSet's definition for the SD job line.
fn fileset_digest(fs: &FileSet) -> String {
    let text = super::fileset::fileset_packets(fs)
        .map(|p| p.concat())
        .unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes().chain(fs.name.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    baculink_proto::base64::encode(&h.to_be_bytes(), true)
}

/// Logs in to the job's File daemon and sends the job line with the
/// session key; the FD's Jmsg table generation.
pub async fn connect_fd(
    ctx: &Arc<JobCtx>,
    key: &SdKey,
    out: &mut Outcome,
) -> Result<(BSock, Generation, LinkGuard), Fail> {
    let c = &ctx.plan.client;
    let setup = ctx.dir.fd_setup(c);
    let deadline = tokio::time::Instant::now() + ctx.dir.conf.director.fd_connect_timeout;
    let (mut fd, peer) = loop {
        let attempt = tokio::select! {
            r = baculink_net::connect(&c.address, c.port, &setup) => r,
            _ = ctx.live.cancel.cancelled() => return Err(Fail::Canceled),
        };
        match attempt {
            Ok(x) => break x,
            Err(LoginError::Connect { addr, source })
                if tokio::time::Instant::now() + Duration::from_secs(10) < deadline =>
            {
                ctx.msg(
                    MsgType::Warning,
                    &format!("Cannot connect to File daemon at {addr}: {source}. Retrying ...\n"),
                )
                .await;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(10)) => {}
                    _ = ctx.live.cancel.cancelled() => return Err(Fail::Canceled),
                }
            }
            Err(e) => {
                return Err(ctx
                    .fatal(format!(
                        "Unable to connect to File daemon \"{}\" at {}:{}: {e}",
                        c.name, c.address, c.port
                    ))
                    .await)
            }
        }
    };
    fd.set_peer_name(format!("File daemon \"{}\"", c.name));
    let link = ctx.dir.links.add(&peer, "File daemon", true);
    let version = peer.established.peer_version.unwrap_or(0);
    // 13.x FDs say 14 (or 213 for minimal FDs) and use the 13.x message table.
    let gen = if (10..200).contains(&version) || version == 213 {
        Generation::V13
    } else {
        Generation::V96
    };
    let line = format!(
        "JobId={} Job={} SDid={} SDtime={} Authorization={}\n",
        ctx.id(),
        sdcmd::bash(&ctx.live.unique),
        key.sd_id,
        key.sd_time,
        key.key
    );
    fd.send_text(&line)
        .await
        .map_err(|e| Fail::Fatal(format!("Network error with FD: {e}")))?;
    let reply = fd_expect(ctx, &mut fd, gen, "2000 OK Job", "Job", REPLY_TIMEOUT).await?;
    let uname = reply
        .trim_end()
        .strip_prefix("2000 OK Job")
        .unwrap_or("")
        .trim_start()
        .to_string();
    out.client_uname = uname.clone();
    let id = ctx.id();
    let _ = ctx
        .dir
        .catalog
        .call(move |c| c.set_client_uname(id, &uname))
        .await;
    Ok((fd, gen, link))
}

/// What the FD channel delivered.
enum FdEvent {
    Reply(String),
    Signal(Signal),
}

/// The next reply or signal from the FD; Jmsg and Progress are handled
/// here, heartbeats skipped, POLL and BTIME answered.
async fn fd_recv(ctx: &JobCtx, fd: &mut BSock, gen: Generation) -> Result<FdEvent, NetError> {
    loop {
        match fd.recv().await? {
            Packet::Data(d) => match catreq::parse(&d) {
                Ok(DirMessage::Jmsg(j)) => ctx.route(&j, gen).await,
                Ok(DirMessage::Progress(p)) => ctx.live.update(|s| {
                    s.files = p.files;
                    s.bytes = p.bytes;
                    s.bps = p.bps;
                }),
                Ok(DirMessage::Reply(t)) => return Ok(FdEvent::Reply(t)),
                _ => {
                    let t = c_text(&d);
                    ctx.msg(
                        MsgType::Warning,
                        &format!("Unexpected Client Job message: {}", t.trim_end()),
                    )
                    .await;
                }
            },
            Packet::Signal(Signal::Heartbeat | Signal::HbResponse) => {}
            Packet::Signal(Signal::Poll | Signal::EodPoll) => fd.send_text("1000 OK\n").await?,
            Packet::Signal(Signal::Btime) => {
                let us = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_micros())
                    .unwrap_or(0);
                fd.send_text(&format!("btime {us}\n")).await?;
            }
            Packet::Signal(s) => return Ok(FdEvent::Signal(s)),
        }
    }
}

/// How often the FD is asked for a running job's files and bytes.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Keeps the job's live files/bytes/rate current while data moves: 9.6
/// FDs send `Progress` only every ~30 s, so a side connection asks the FD
/// `.status running` (key=value, API 2) every [`PROGRESS_EVERY`]. Stops on
/// its own after repeated failures; the job task aborts it at the end.
pub async fn poll_fd_progress(ctx: Arc<JobCtx>) {
    let c = &ctx.plan.client;
    let setup = ctx.dir.fd_setup(c);
    let mut failures = 0;
    let mut conn: Option<BSock> = None;
    while failures < 3 {
        tokio::time::sleep(PROGRESS_EVERY).await;
        if conn.is_none() {
            let Ok((mut fd, _)) = baculink_net::connect(&c.address, c.port, &setup).await else {
                failures += 1;
                continue;
            };
            let line = format!(
                "JobId=0 Job=-Console-.{}_{:02} SDid=0 SDtime=0 Authorization=dummy\n",
                report::job_name_time(now()),
                ctx.dir.jobs.next_seq()
            );
            let ok = fd.send_text(&line).await.is_ok()
                && matches!(fd.recv_timeout(REPLY_TIMEOUT).await,
                    Ok(Packet::Data(d)) if d.starts_with(b"2000 OK Job"));
            if !ok {
                failures += 1;
                continue;
            }
            conn = Some(fd);
        }
        let Some(fd) = conn.as_mut() else { continue };
        if fd
            .send_text(".status running api=2 api_opts=")
            .await
            .is_err()
        {
            conn = None;
            failures += 1;
            continue;
        }
        let lines = read_to_eod(fd).await;
        if lines.is_empty() {
            conn = None;
            failures += 1;
            continue;
        }
        failures = 0;
        if let Some((files, bytes, bps)) = parse_running(&lines.concat(), ctx.id()) {
            ctx.live.update(|s| {
                s.files = s.files.max(files);
                s.bytes = s.bytes.max(bytes);
                s.bps = bps;
            });
        }
    }
    if let Some(fd) = conn {
        close_fd(fd).await;
    }
}

/// Files, bytes and rate of `job_id` in an FD's `.status running` output.
fn parse_running(text: &str, job_id: u32) -> Option<(u64, u64, u64)> {
    let want = format!("JobId={job_id}");
    for block in text.split("\n\n") {
        let lines: Vec<&str> = block.lines().map(|l| l.trim_end_matches('\0')).collect();
        if !lines.iter().any(|l| *l == want) {
            continue;
        }
        let get = |k: &str| {
            lines
                .iter()
                .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        return Some((get("JobFiles"), get("JobBytes"), get("Bytes/sec")));
    }
    None
}

/// Network failure with the FD as a fatal error text (logged by the caller).
fn fd_net(e: NetError, during: &str) -> Fail {
    Fail::Fatal(format!("Network error with FD during {during}: ERR={e}"))
}

/// Waits for the FD's reply starting with `want` (skipping EOD), bounded
/// and cancel-aware. A different reply is a fatal error.
pub async fn fd_expect(
    ctx: &JobCtx,
    fd: &mut BSock,
    gen: Generation,
    want: &str,
    what: &str,
    limit: Duration,
) -> Result<String, Fail> {
    let during = if ctx.plan.kind == 'R' {
        "Restore"
    } else {
        "Backup"
    };
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let ev = tokio::select! {
            r = tokio::time::timeout_at(deadline, fd_recv(ctx, fd, gen)) => r,
            _ = ctx.live.cancel.cancelled() => return Err(Fail::Canceled),
        };
        match ev {
            Err(_) => {
                return Err(Fail::Fatal(format!(
                    "Timed out waiting for the File daemon's reply to the {what} command"
                )))
            }
            Ok(Err(e)) => return Err(fd_net(e, during)),
            Ok(Ok(FdEvent::Reply(r))) => {
                if r.starts_with(want) {
                    return Ok(r);
                }
                return Err(Fail::Fatal(format!(
                    "Bad response to {what} command: wanted {want}, got {}",
                    r.trim_end()
                )));
            }
            Ok(Ok(FdEvent::Signal(Signal::Eod))) => {}
            Ok(Ok(FdEvent::Signal(s))) => {
                return Err(Fail::Fatal(format!(
                    "File daemon ended the conversation ({}) while waiting for the {what} reply",
                    s.name()
                )))
            }
        }
    }
}

/// `level = ...` (and for Incremental/Differential the since line, with
/// the FD's clock sync answered by `fd_recv`).
async fn send_level(
    ctx: &JobCtx,
    fd: &mut BSock,
    gen: Generation,
    level: char,
    since: Option<(i64, String)>,
) -> Result<(), Fail> {
    let word = match level {
        'I' => "incremental",
        'D' => "differential",
        'B' => "base",
        _ => "full",
    };
    let net = |e| fd_net(e, "Backup");
    debug!("JobId {}: level {word}, since {since:?}", ctx.id());
    match since {
        Some((t, prev)) => {
            fd.send_text(&format!("level = {word}  mtime_only=0 \n"))
                .await
                .map_err(net)?;
            fd.send_text(&format!(
                "level = since_utime {t} mtime_only=0 prev_job={}\n",
                sdcmd::bash(&prev)
            ))
            .await
            .map_err(net)?;
        }
        None => fd
            .send_text(&format!("level = {word}  mtime_only=0 \n"))
            .await
            .map_err(net)?,
    }
    fd_expect(ctx, fd, gen, "2000 OK level", "level", REPLY_TIMEOUT).await?;
    Ok(())
}

/// `storage address=.. port=.. ssl=..[ Authorization=..]` and the FD's
/// `2000 OK storage` once it reached the SD.
pub async fn send_storage(
    ctx: &JobCtx,
    fd: &mut BSock,
    gen: Generation,
    key: Option<&str>,
) -> Result<(), Fail> {
    let p = &ctx.plan;
    let s = &p.storage;
    let address = p
        .client
        .fd_storage_address
        .clone()
        .or_else(|| s.fd_storage_address.clone())
        .unwrap_or_else(|| s.address.clone());
    let port = s
        .resource
        .value("sddport")
        .and_then(|v| v.parse::<u16>().ok())
        .unwrap_or(s.port);
    let ssl = if s.tls.require {
        2
    } else {
        u8::from(s.tls.enable)
    };
    let mut line = format!("storage address={address} port={port} ssl={ssl}");
    if let Some(k) = key {
        line.push_str(&format!(" Authorization={k}"));
    }
    line.push('\n');
    let during = if p.kind == 'R' { "Restore" } else { "Backup" };
    fd.send_text(&line).await.map_err(|e| fd_net(e, during))?;
    let limit = ctx.dir.conf.director.sd_connect_timeout + Duration::from_secs(60);
    fd_expect(ctx, fd, gen, "2000 OK storage", "storage", limit).await?;
    Ok(())
}

/// Reads the FD channel until its `2800 End Job` line and the end of the
/// conversation. A cancel tells the FD and SD and waits a little for the
/// FD's (canceled) end.
pub async fn fd_wait_end(
    ctx: &Arc<JobCtx>,
    fd: &mut BSock,
    gen: Generation,
    out: &mut Outcome,
    during: &str,
) -> Result<(), Fail> {
    let mut canceled = false;
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let ev = tokio::select! {
            r = fd_recv(ctx, fd, gen) => r,
            _ = ctx.live.cancel.cancelled(), if !canceled => {
                canceled = true;
                deadline = Some(tokio::time::Instant::now() + FD_CANCEL_GRACE);
                cancel_daemons(ctx).await;
                continue;
            }
            _ = sleep_until(deadline) => {
                return Err(Fail::Canceled);
            }
        };
        match ev {
            Ok(FdEvent::Reply(t)) if t.starts_with("2800 End Job") => match EndJob::decode(&t) {
                Ok(e) => out.fd_end = Some(e),
                Err(e) => {
                    ctx.msg(MsgType::Warning, &format!("{e}")).await;
                }
            },
            Ok(FdEvent::Reply(t)) => {
                ctx.msg(
                    MsgType::Warning,
                    &format!("Unexpected Client Job message: {}", t.trim_end()),
                )
                .await;
            }
            Ok(FdEvent::Signal(Signal::Terminate)) => break,
            Ok(FdEvent::Signal(Signal::Eod)) if out.fd_end.is_some() => break,
            Ok(FdEvent::Signal(_)) => {}
            Err(e) => {
                if out.fd_end.is_some() {
                    break;
                }
                if canceled {
                    return Err(Fail::Canceled);
                }
                return Err(fd_net(e, during));
            }
        }
    }
    if canceled {
        return Err(Fail::Canceled);
    }
    if out.fd_end.is_none() {
        return Err(Fail::Fatal("No Job status returned from FD.".into()));
    }
    Ok(())
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Ends the FD conversation.
pub async fn close_fd(mut fd: BSock) {
    if !fd.is_terminated() {
        let _ = fd.signal(Signal::Terminate).await;
    }
    fd.close().await;
}

/// Waits for the SD's side to end: long for a healthy job, briefly (after
/// telling the SD to cancel) for a failed or canceled one.
pub async fn end_sd(
    ctx: &Arc<JobCtx>,
    task: Option<JoinHandle<SdOutcome>>,
    failed: bool,
) -> SdOutcome {
    let Some(mut task) = task else {
        return SdOutcome::default();
    };
    if failed {
        cancel_sd(ctx).await;
    } else {
        tokio::select! {
            r = tokio::time::timeout(SD_END_LIMIT, &mut task) => {
                return match r {
                    Ok(Ok(o)) => o,
                    Ok(Err(e)) => SdOutcome { error: Some(format!("SD channel task: {e}")), ..SdOutcome::default() },
                    Err(_) => {
                        task.abort();
                        SdOutcome { error: Some("Timed out waiting for the Storage daemon to end the job".into()), ..SdOutcome::default() }
                    }
                };
            }
            _ = ctx.live.cancel.cancelled() => cancel_sd(ctx).await,
        }
    }
    match tokio::time::timeout(SD_END_GRACE, &mut task).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => SdOutcome {
            error: Some(format!("SD channel task: {e}")),
            ..SdOutcome::default()
        },
        Err(_) => {
            task.abort();
            SdOutcome {
                error: Some("The Storage daemon did not end the job after a cancel".into()),
                ..SdOutcome::default()
            }
        }
    }
}

/// Tells the FD and the SD to cancel this job (new connections).
pub async fn cancel_daemons(ctx: &Arc<JobCtx>) {
    cancel_fd(ctx).await;
    cancel_sd(ctx).await;
}

/// `cancel Job=...` to the SD on a new connection.
pub async fn cancel_sd(ctx: &Arc<JobCtx>) {
    let s = &ctx.plan.storage;
    let setup = ctx.dir.sd_setup(s);
    let r = async {
        let (mut sd, _) = baculink_net::connect(&s.address, s.port, &setup)
            .await
            .map_err(|e| e.to_string())?;
        sd.send_text(&sdcmd::cancel(&ctx.live.unique))
            .await
            .map_err(|e| e.to_string())?;
        let replies = read_to_eod(&mut sd).await;
        let _ = sd.signal(Signal::Terminate).await;
        sd.close().await;
        Ok::<_, String>(replies)
    };
    match tokio::time::timeout(Duration::from_secs(30), r).await {
        Ok(Ok(replies)) => debug!("JobId {}: SD cancel: {replies:?}", ctx.id()),
        Ok(Err(e)) => debug!("JobId {}: SD cancel failed: {e}", ctx.id()),
        Err(_) => debug!("JobId {}: SD cancel timed out", ctx.id()),
    }
}

/// `cancel Job=...` to the FD on a new connection (after the job line
/// every FD connection starts with).
pub async fn cancel_fd(ctx: &Arc<JobCtx>) {
    let c = &ctx.plan.client;
    let setup = ctx.dir.fd_setup(c);
    let r = async {
        let (mut fd, _) = baculink_net::connect(&c.address, c.port, &setup)
            .await
            .map_err(|e| e.to_string())?;
        let line = format!(
            "JobId=0 Job=-Console-.{}_{:02} SDid=0 SDtime=0 Authorization=dummy\n",
            report::job_name_time(now()),
            ctx.dir.jobs.next_seq()
        );
        fd.send_text(&line).await.map_err(|e| e.to_string())?;
        let _ = fd.recv_timeout(Duration::from_secs(20)).await;
        fd.send_text(&sdcmd::cancel(&ctx.live.unique))
            .await
            .map_err(|e| e.to_string())?;
        let replies = read_to_eod(&mut fd).await;
        let _ = fd.signal(Signal::Terminate).await;
        fd.close().await;
        Ok::<_, String>(replies)
    };
    match tokio::time::timeout(Duration::from_secs(30), r).await {
        Ok(Ok(replies)) => debug!("JobId {}: FD cancel: {replies:?}", ctx.id()),
        Ok(Err(e)) => debug!("JobId {}: FD cancel failed: {e}", ctx.id()),
        Err(_) => debug!("JobId {}: FD cancel timed out", ctx.id()),
    }
}

async fn read_to_eod(sock: &mut BSock) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(p) = sock.recv_timeout(Duration::from_secs(20)).await {
        match p {
            Packet::Data(d) => out.push(c_text(&d)),
            Packet::Signal(Signal::Heartbeat) => {}
            Packet::Signal(_) => break,
        }
    }
    out
}

/// Final status per §5.8, catalog update, report, registry.
async fn finish(ctx: &Arc<JobCtx>, out: Outcome, start: i64) {
    let end = now();
    let live = ctx.live.snapshot();
    let restore = ctx.plan.kind == 'R';
    let fd_status = out.fd_end.map(|e| e.term_code.letter());
    let sd_status = out.sd.end.as_ref().map(|e| char::from(e.status));
    if let Some(e) = &out.sd.error {
        if out.fail.is_none() {
            ctx.msg(MsgType::Error, &format!("Storage daemon channel: {e}"))
                .await;
        }
    }
    let dir_status = match &out.fail {
        Some(Fail::Canceled) => 'A',
        Some(Fail::Fatal(_)) => 'f',
        None if live.status == 'R' || live.status == 'C' => 'T',
        None => live.status,
    };
    let mut status = dir_status;
    if status == 'T' {
        status = fd_status.unwrap_or('E');
    }
    if status == 'T' {
        status = match sd_status {
            Some(s) => s,
            None => {
                ctx.msg(MsgType::Error, "No Job status returned from SD.")
                    .await;
                'E'
            }
        };
    }
    if status == 'W' {
        status = 'T';
    }
    let fd_errors = out.fd_end.map(|e| e.errors).unwrap_or(0);
    let sd_errors = out.sd.end.as_ref().map(|e| e.errors).unwrap_or(0);
    let expected = ctx.plan.restore.as_ref().map(|r| r.expected_files);
    let fd_files = out.fd_end.map(|e| u64::from(e.job_files)).unwrap_or(0);
    let term = match status {
        'T' if restore => {
            if fd_errors > 0 || sd_errors > 0 {
                status = 'W';
                "Restore OK -- with errors".to_string()
            } else if expected.is_some_and(|n| n > fd_files) {
                status = 'W';
                "Restore OK -- warning file count mismatch".to_string()
            } else {
                "Restore OK".to_string()
            }
        }
        'T' => {
            if fd_errors > 0 || sd_errors > 0 {
                status = 'W';
                "Backup OK -- with warnings".to_string()
            } else {
                "Backup OK".to_string()
            }
        }
        'A' if restore => "Restore Canceled".to_string(),
        'A' => "Backup Canceled".to_string(),
        _ if restore => "*** Restore Error ***".to_string(),
        _ => "*** Backup Error ***".to_string(),
    };
    let (files, bytes, read_bytes) = match out.fd_end {
        Some(e) => (u64::from(e.job_files), e.job_bytes, e.read_bytes),
        None => (live.files, live.bytes, 0),
    };
    ctx.live.update(|s| {
        s.files = files;
        s.bytes = bytes;
    });
    let row = JobEndRow {
        status,
        end_time: end,
        files,
        bytes,
        read_bytes,
        errors: fd_errors,
        fd_status: fd_status.map(String::from).unwrap_or_default(),
        sd_status: sd_status.map(String::from).unwrap_or_default(),
        sd_files: out.sd.end.as_ref().map(|e| u64::from(e.files)).unwrap_or(0),
        sd_bytes: out.sd.end.as_ref().map(|e| e.bytes).unwrap_or(0),
        sd_errors,
        termination: term.clone(),
    };
    let id = ctx.id();
    if let Err(e) = ctx.dir.catalog.call(move |c| c.end_job(id, &row)).await {
        warn!("JobId {id}: cannot store the job's end: {e}");
    }
    if !restore && matches!(status, 'T' | 'W') {
        write_bootstrap(ctx, out.level).await;
    }
    let text = report_text(ctx, &out, start, end, status, &term, files, bytes);
    ctx.deliver(end, MsgType::Term, text).await;
    ctx.dir.jobs.finish(&ctx.live, status, end);
    info!("JobId {id} ended: {term}");
}

/// `Write Bootstrap = path` of the Job: after a good backup the bootstrap
/// that restores it is written there (`%c` client, `%n` job name, `%j`
/// unique job name, `%i` JobId, `%%`), replacing the file after a Full
/// and appending otherwise, as Bacula does; `|command` pipes it.
async fn write_bootstrap(ctx: &Arc<JobCtx>, level: char) {
    let p = &ctx.plan;
    let Some(spec) = p.job.resource.value("writebootstrap").map(str::to_string) else {
        return;
    };
    let mut path = String::new();
    let mut chars = spec.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            path.push(c);
            continue;
        }
        match chars.next() {
            Some('c') => path.push_str(&p.client.name),
            Some('n') => path.push_str(&p.job.name),
            Some('j') => path.push_str(&ctx.live.unique),
            Some('i') => path.push_str(&ctx.id().to_string()),
            Some('%') => path.push('%'),
            Some(o) => {
                path.push('%');
                path.push(o);
            }
            None => path.push('%'),
        }
    }
    let id = ctx.id();
    let storage = p.storage.name.clone();
    let device = p.storage.devices.first().cloned().unwrap_or_default();
    let r = ctx
        .dir
        .catalog
        .call(move |c| {
            let Some(job) = c.job(id)? else {
                return Ok(Err("job record missing".to_string()));
            };
            let parts = c.volume_parts(id)?;
            let (b, _) = super::restore::build_bootstrap(&job, &parts, None, &storage, &device);
            let text = b.to_lines().concat();
            let written = if let Some(cmd) = path.strip_prefix('|') {
                use std::io::Write;
                std::process::Command::new("sh")
                    .arg("-c")
                    .arg(cmd)
                    .stdin(std::process::Stdio::piped())
                    .spawn()
                    .and_then(|mut child| {
                        if let Some(mut i) = child.stdin.take() {
                            i.write_all(text.as_bytes())?;
                        }
                        child.wait().map(|_| ())
                    })
            } else {
                use std::io::Write;
                std::fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .append(level != 'F')
                    .truncate(level == 'F')
                    .open(&path)
                    .and_then(|mut f| f.write_all(text.as_bytes()))
            };
            Ok(written.map_err(|e| format!("\"{path}\": {e}")))
        })
        .await;
    let err = match r {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e,
        Err(e) => e.to_string(),
    };
    ctx.msg(
        MsgType::Error,
        &format!("Could not write the bootstrap {err}\n"),
    )
    .await;
}

fn term_word(s: Option<char>, canceled: bool) -> String {
    match s {
        Some(c) => match c {
            'T' | 'W' => "OK".into(),
            'A' => "Canceled".into(),
            'E' | 'f' => "Error".into(),
            other => JobStatus(other as u8).describe().to_string(),
        },
        None if canceled => "Canceled".into(),
        None => "Error".into(),
    }
}

#[allow(clippy::too_many_arguments)]
fn report_text(
    ctx: &JobCtx,
    out: &Outcome,
    start: i64,
    end: i64,
    status: char,
    term: &str,
    files: u64,
    bytes: u64,
) -> String {
    let p = &ctx.plan;
    let d = &ctx.dir;
    let canceled = status == 'A';
    let secs = (end - start).max(0);
    let mut r = format!(
        "{} JobId {}: baculink {} {}:\n",
        d.name(),
        ctx.id(),
        d.name(),
        super::version_text()
    );
    let mut line = |k: &str, v: String| r.push_str(&format!("  {:<24}{v}\n", format!("{k}:")));
    line("Build OS", super::uname());
    line("JobId", ctx.id().to_string());
    line("Job", ctx.live.unique.clone());
    let fd_status = term_word(out.fd_end.map(|e| e.term_code.letter()), canceled);
    let sd_status = term_word(out.sd.end.as_ref().map(|e| char::from(e.status)), canceled);
    if let Some(rs) = &p.restore {
        line(
            "Restore Client",
            format!("\"{}\" {}", p.client.name, out.client_uname),
        );
        line("Where", rs.where_.clone());
        line("Replace", replace_word(rs.replace).into());
        line("Start time", report::long_time(start));
        line("End time", report::long_time(end));
        line("Elapsed time", report::elapsed(secs));
        line("Files Expected", commas(rs.expected_files));
        line("Files Restored", commas(files));
        line(
            "Bytes Restored",
            format!("{} ({})", commas(bytes), units(bytes)),
        );
        line("Rate", report::rate(bytes, secs));
        line(
            "FD Errors",
            out.fd_end.map(|e| e.errors).unwrap_or(0).to_string(),
        );
        line("FD termination status", fd_status);
        line("SD termination status", sd_status);
    } else {
        line("Backup Level", report::level_name(out.level).into());
        line(
            "Client",
            format!("\"{}\" {}", p.client.name, out.client_uname),
        );
        line("FileSet", format!("\"{}\"", p.fileset.name));
        line("Pool", format!("\"{}\"", p.pool.name));
        line("Catalog", format!("\"{}\"", p.catalog));
        line("Storage", format!("\"{}\"", p.storage.name));
        line("Scheduled time", report::long_time(p.sched_time));
        line("Start time", report::long_time(start));
        line("End time", report::long_time(end));
        line("Elapsed time", report::elapsed(secs));
        line("Priority", p.priority.to_string());
        line("FD Files Written", commas(files));
        let sd_files = out.sd.end.as_ref().map(|e| u64::from(e.files)).unwrap_or(0);
        let sd_bytes = out.sd.end.as_ref().map(|e| e.bytes).unwrap_or(0);
        line("SD Files Written", commas(sd_files));
        line(
            "FD Bytes Written",
            format!("{} ({})", commas(bytes), units(bytes)),
        );
        line(
            "SD Bytes Written",
            format!("{} ({})", commas(sd_bytes), units(sd_bytes)),
        );
        line("Rate", report::rate(bytes, secs));
        line("Volume name(s)", out.sd.volumes.join("|"));
        line("Volume Session Id", out.vol_session.0.to_string());
        line("Volume Session Time", out.vol_session.1.to_string());
        line(
            "Last Volume Bytes",
            format!(
                "{} ({})",
                commas(out.sd.last_vol_bytes),
                units(out.sd.last_vol_bytes)
            ),
        );
        line(
            "Non-fatal FD errors",
            out.fd_end.map(|e| e.errors).unwrap_or(0).to_string(),
        );
        line(
            "SD Errors",
            out.sd
                .end
                .as_ref()
                .map(|e| e.errors)
                .unwrap_or(0)
                .to_string(),
        );
        line("FD termination status", fd_status);
        line("SD termination status", sd_status);
    }
    line("Termination", term.to_string());
    r.push('\n');
    r
}

/// The Replace setting as the report prints it.
pub fn replace_word(c: char) -> &'static str {
    match c {
        'w' => "IfNewer",
        'o' => "IfOlder",
        'n' => "Never",
        _ => "Always",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_status_of_a_9_6_fd() {
        let text =
            "JobId=3\nJob=BackupData.2026-11-29_07.48.42_03\nVSS=0\nLevel=F\nType=B\nStatus=R\n\
                    JobFiles=6\nJobBytes=570780347\nBytes/sec=71347543\nErrors=0\n\n\
                    DirectorConnected_epoch=1795938530\nDirTLS=0\n";
        assert_eq!(parse_running(text, 3), Some((6, 570_780_347, 71_347_543)));
        assert_eq!(parse_running(text, 4), None);
    }
}
