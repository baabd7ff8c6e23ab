//! One job on the Storage daemon: what the Director set up (job line,
//! reserved device, bootstrap), its state, and the Director connection that
//! becomes the job's message channel after `run` (protocol-jobs.md §5.2,
//! §5.7, §6.1).
//!
//! The Director connection is shared: the Director task owns it until
//! `run`, then waits for the job to end while the File daemon's data session
//! sends catalog requests, attributes and job messages through it. Each
//! request takes the connection's lock for one send (and its reply), so the
//! messages of a job never interleave.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use baculink_conf::sd::Device;
use baculink_net::{BSock, NetError};
use baculink_proto::frame::{Packet, Signal};
use baculink_proto::job::attr::JobStatus;
use baculink_proto::job::catreq::{
    self, FindMedia, Generation, GetVolInfo, Jmsg, JobEnd, JobMediaRange, MediaInfo, MsgType,
    UpdCat, UpdateMedia,
};
use baculink_proto::job::sdcmd::{Bootstrap, JobCommand, UseStorage};
use baculink_proto::scan::c_text;
use tokio::sync::watch;

use super::volume::VolumeError;

/// The Director connection of a job, shared by the Director task and the
/// File daemon's data session.
pub type DirChan = Arc<tokio::sync::Mutex<BSock>>;

/// How long the SD waits for the Director's answer to a catalog request.
const REPLY_TIMEOUT: Duration = Duration::from_secs(600);

/// `VolType` of a file device (Bacula's `B_FILE_DEV`).
pub const VOL_TYPE_FILE: u32 = 1;

/// Why a job (or one of its steps) failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A connection failed.
    #[error("{0}")]
    Net(#[from] NetError),
    /// The Director answered a request with something unexpected.
    #[error("Director: {0}")]
    Director(String),
    /// A volume could not be used.
    #[error("{0}")]
    Volume(#[from] VolumeError),
    /// The File daemon broke the protocol.
    #[error("File daemon: {0}")]
    Fd(String),
    /// The job was canceled.
    #[error("job canceled")]
    Canceled,
    /// Something else (message says what).
    #[error("{0}")]
    Other(String),
}

/// How a job ended, for `3099` and the terminated-jobs list.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Final SD job status.
    pub status: JobStatus,
    /// Files written or read.
    pub files: u32,
    /// Record bytes written or read.
    pub bytes: u64,
    /// Errors counted.
    pub errors: u32,
    /// Why it failed (empty when it did not).
    pub err_msg: String,
}

/// What the job has done so far.
#[derive(Debug, Default, Clone)]
pub struct Progress {
    /// Files (last FileIndex written, or files read).
    pub files: u32,
    /// Record data bytes.
    pub bytes: u64,
    /// Volume in use.
    pub volume: Option<String>,
    /// The File daemon is connected.
    pub fd_connected: bool,
}

/// Setup received from the Director before `run`.
#[derive(Debug, Default)]
struct Setup {
    device: Option<Device>,
    storage: Option<UseStorage>,
    bootstrap: Option<Bootstrap>,
}

/// One job set up by a Director.
#[derive(Debug)]
pub struct Job {
    /// The Director's job line.
    pub cmd: JobCommand,
    /// VolSessionId of this job (the SD's counter).
    pub sd_id: u32,
    /// VolSessionTime (the SD's start time).
    pub sd_time: u32,
    /// The Director's catalog-request field set.
    pub generation: Generation,
    /// This SD's name (prefix of job messages).
    pub sd_name: String,
    setup: Mutex<Setup>,
    progress: Mutex<Progress>,
    chan: Mutex<Option<DirChan>>,
    running: watch::Sender<bool>,
    cancel: watch::Sender<bool>,
    done: watch::Sender<Option<Outcome>>,
}

/// Epoch seconds now.
pub fn now_epoch() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Job {
    /// A job from the Director's job line.
    pub fn new(
        cmd: JobCommand,
        sd_id: u32,
        sd_time: u32,
        generation: Generation,
        sd_name: &str,
    ) -> Job {
        Job {
            cmd,
            sd_id,
            sd_time,
            generation,
            sd_name: sd_name.to_string(),
            setup: Mutex::new(Setup::default()),
            progress: Mutex::new(Progress::default()),
            chan: Mutex::new(None),
            running: watch::channel(false).0,
            cancel: watch::channel(false).0,
            done: watch::channel(None).0,
        }
    }

    /// Unique job name.
    pub fn name(&self) -> &str {
        &self.cmd.job
    }

    /// JobId.
    pub fn id(&self) -> u32 {
        self.cmd.job_id
    }

    /// Records the device reserved by `use storage` / `use device`.
    pub fn reserve(&self, device: Device, storage: UseStorage) {
        if let Ok(mut s) = self.setup.lock() {
            s.device = Some(device);
            s.storage = Some(storage);
        }
    }

    /// The reserved device and the `use storage` line it was reserved for.
    pub fn reserved(&self) -> Option<(Device, UseStorage)> {
        let s = self.setup.lock().ok()?;
        Some((s.device.clone()?, s.storage.clone()?))
    }

    /// Stores the bootstrap of a read job.
    pub fn set_bootstrap(&self, b: Bootstrap) {
        if let Ok(mut s) = self.setup.lock() {
            s.bootstrap = Some(b);
        }
    }

    /// The bootstrap, if one was sent.
    pub fn bootstrap(&self) -> Option<Bootstrap> {
        self.setup.lock().ok()?.bootstrap.clone()
    }

    /// A copy of the progress counters.
    pub fn progress(&self) -> Progress {
        self.progress.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Updates the progress counters.
    pub fn update(&self, f: impl FnOnce(&mut Progress)) {
        if let Ok(mut p) = self.progress.lock() {
            f(&mut p);
        }
    }

    /// Whether `run` was received.
    pub fn is_running(&self) -> bool {
        *self.running.borrow()
    }

    /// `run`: the Director connection becomes the message channel, gets
    /// `Status ... JobStatus=70` (waiting for the FD), and the File daemon's
    /// session may start.
    pub async fn start(&self, chan: DirChan) -> Result<(), JobError> {
        if let Ok(mut c) = self.chan.lock() {
            *c = Some(chan);
        }
        let sent = self.send_status(JobStatus::WAIT_FD).await;
        self.running.send_replace(true);
        sent
    }

    /// Forgets the message channel (after the end of the job), so the
    /// connection closes when the Director task lets it go.
    pub fn release_chan(&self) {
        if let Ok(mut c) = self.chan.lock() {
            *c = None;
        }
    }

    /// Waits until `run` (or a cancel); false when canceled or timed out.
    pub async fn wait_running(&self, limit: Duration) -> bool {
        let mut rx = self.running.subscribe();
        let mut cancel = self.cancel.subscribe();
        let wait = async {
            tokio::select! {
                r = rx.wait_for(|r| *r) => r.is_ok(),
                _ = cancel.wait_for(|c| *c) => false,
            }
        };
        tokio::time::timeout(limit, wait).await.unwrap_or(false)
    }

    /// Asks the job to stop (Director `cancel`).
    pub fn cancel(&self) {
        self.cancel.send_replace(true);
    }

    /// Whether the job was canceled.
    pub fn is_canceled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// A receiver that sees the cancel.
    pub fn cancel_watch(&self) -> watch::Receiver<bool> {
        self.cancel.subscribe()
    }

    /// The File daemon's session ended with this outcome.
    pub fn finish(&self, outcome: Outcome) {
        self.done.send_if_modified(|d| {
            if d.is_none() {
                *d = Some(outcome);
                true
            } else {
                false
            }
        });
    }

    /// Waits for [`finish`](Self::finish), a cancel before the File daemon
    /// came, or `fd_wait` without a File daemon.
    pub async fn wait_done(&self, fd_wait: Duration) -> Outcome {
        let mut done = self.done.subscribe();
        let mut cancel = self.cancel.subscribe();
        let deadline = tokio::time::Instant::now() + fd_wait;
        loop {
            if let Some(o) = done.borrow().clone() {
                return o;
            }
            let connected = self.progress().fd_connected;
            tokio::select! {
                r = done.changed() => {
                    if r.is_err() {
                        return failed(JobStatus::ERROR_TERMINATED, "job state lost");
                    }
                }
                _ = cancel.wait_for(|c| *c), if !connected => {
                    return failed(JobStatus::CANCELED, "Job canceled before the File daemon connected");
                }
                _ = tokio::time::sleep_until(deadline), if !connected => {
                    return failed(
                        JobStatus::ERROR_TERMINATED,
                        "timed out waiting for the File daemon to connect",
                    );
                }
                // Re-check the connection flag now and then.
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    fn chan(&self) -> Result<DirChan, JobError> {
        self.chan
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .ok_or_else(|| JobError::Other("the job has no message channel".into()))
    }

    /// Sends one packet on the message channel.
    pub async fn send(&self, bytes: &[u8]) -> Result<(), JobError> {
        let chan = self.chan()?;
        let mut s = chan.lock().await;
        s.send(&Packet::data(bytes)).await?;
        Ok(())
    }

    /// Sends a request and returns the Director's text reply (heartbeats
    /// skipped, POLL answered).
    pub async fn request(&self, text: &str) -> Result<String, JobError> {
        let chan = self.chan()?;
        let mut s = chan.lock().await;
        s.send_text(text).await?;
        self.reply(&mut s).await
    }

    /// The Director's reply to a request. A canceled job stops waiting (a
    /// 9.6 Director stops reading the channel once it cancels), and so does
    /// a Director silent for [`REPLY_TIMEOUT`].
    async fn reply(&self, s: &mut BSock) -> Result<String, JobError> {
        let mut cancel = self.cancel.subscribe();
        tokio::select! {
            r = tokio::time::timeout(REPLY_TIMEOUT, reply(s)) => match r {
                Ok(r) => r,
                Err(_) => Err(JobError::Director(format!(
                    "no reply to a catalog request within {} s",
                    REPLY_TIMEOUT.as_secs()
                ))),
            },
            _ = cancel.wait_for(|c| *c) => Err(JobError::Canceled),
        }
    }

    /// `Status JobId=.. JobStatus=..`.
    pub async fn send_status(&self, status: JobStatus) -> Result<(), JobError> {
        self.send(format!("Status JobId={} JobStatus={}\n", self.id(), status.code()).as_bytes())
            .await
    }

    /// `3010 Job <job> start`.
    pub async fn send_start(&self) -> Result<(), JobError> {
        self.send(format!("3010 Job {} start\n", catreq::bash_spaces(self.name())).as_bytes())
            .await
    }

    /// A job message (`Jmsg`), prefixed like Bacula's (`<sd> JobId <n>: `
    /// plus `Error: ` / `Fatal error: ` / `Warning: `).
    pub async fn jmsg(&self, kind: MsgType, text: &str) -> Result<(), JobError> {
        let severity = match kind {
            MsgType::Fatal => "Fatal error: ",
            MsgType::Error => "Error: ",
            MsgType::Warning => "Warning: ",
            _ => "",
        };
        let mut line = format!("{} JobId {}: {severity}{text}", self.sd_name, self.id());
        if !line.ends_with('\n') {
            line.push('\n');
        }
        let m = Jmsg {
            job_id: self.id(),
            msg_type: kind.code(self.generation),
            time: now_epoch(),
            text: line,
        };
        self.send(m.format().as_bytes()).await
    }

    /// `CatReq FindMedia`: the next appendable volume of the pool.
    pub async fn find_media(
        &self,
        index: i32,
        storage: &UseStorage,
    ) -> Result<MediaInfo, JobError> {
        let req = FindMedia {
            job_id: self.id(),
            index,
            pool_name: storage.pool_name.clone(),
            media_type: storage.media_type.clone(),
            vol_type: VOL_TYPE_FILE,
            create: (self.generation == Generation::V13).then_some(true),
        };
        let r = self.request(&req.format(self.generation)).await?;
        MediaInfo::parse(&r).map_err(|_| JobError::Director(r.trim_end().to_string()))
    }

    /// `CatReq GetVolInfo`.
    pub async fn get_vol_info(&self, vol: &str, write: bool) -> Result<MediaInfo, JobError> {
        let req = GetVolInfo {
            job_id: self.id(),
            vol_name: vol.to_string(),
            write,
        };
        let r = self.request(&req.format()).await?;
        MediaInfo::parse(&r).map_err(|_| JobError::Director(r.trim_end().to_string()))
    }

    /// `CatReq UpdateMedia`; the Director answers with the new record.
    pub async fn update_media(&self, u: &UpdateMedia) -> Result<MediaInfo, JobError> {
        let r = self.request(&u.format(self.generation)).await?;
        MediaInfo::parse(&r).map_err(|_| JobError::Director(r.trim_end().to_string()))
    }

    /// `CatReq CreateJobMedia` with its range lines and EOD.
    pub async fn create_jobmedia(&self, ranges: &[JobMediaRange]) -> Result<(), JobError> {
        let chan = self.chan()?;
        let mut s = chan.lock().await;
        s.send_text(&catreq::format_create_jobmedia(self.id()))
            .await?;
        for r in ranges {
            s.send_text(&r.format()).await?;
        }
        s.signal(Signal::Eod).await?;
        let r = self.reply(&mut s).await?;
        if r == catreq::OK_CREATE_JOBMEDIA {
            Ok(())
        } else {
            Err(JobError::Director(r.trim_end().to_string()))
        }
    }

    /// `UpdCat ... FileAttributes` for one record (attributes, digest,
    /// restore object). No reply.
    pub async fn upd_cat(&self, file_index: i32, stream: i32, data: &[u8]) -> Result<(), JobError> {
        let u = UpdCat {
            job_id: self.id(),
            vol_session_id: self.sd_id,
            vol_session_time: self.sd_time,
            file_index,
            stream,
            data: data.to_vec(),
        };
        self.send(&u.encode()).await
    }

    /// The end of the job on the message channel: `3099`, EOD, TERMINATE.
    pub async fn send_end(&self, o: &Outcome) -> Result<(), JobError> {
        let end = JobEnd {
            job: self.name().to_string(),
            status: o.status.0,
            files: o.files,
            bytes: o.bytes,
            errors: o.errors,
            err_msg: o.err_msg.clone(),
        };
        let chan = self.chan()?;
        let mut s = chan.lock().await;
        s.send_text(&end.format()).await?;
        s.signal(Signal::Eod).await?;
        s.signal(Signal::Terminate).await?;
        Ok(())
    }
}

/// An outcome without data.
pub fn failed(status: JobStatus, why: &str) -> Outcome {
    Outcome {
        status,
        files: 0,
        bytes: 0,
        errors: 1,
        err_msg: why.to_string(),
    }
}

/// The next text reply on the Director connection.
async fn reply(s: &mut BSock) -> Result<String, JobError> {
    loop {
        match s.recv().await? {
            Packet::Data(d) => return Ok(c_text(&d)),
            Packet::Signal(Signal::Heartbeat | Signal::HbResponse) => {}
            Packet::Signal(Signal::Poll | Signal::EodPoll) => s.send_text("3000 OK\n").await?,
            Packet::Signal(Signal::Terminate) => {
                return Err(JobError::Director("closed the message channel".into()))
            }
            Packet::Signal(sig) => {
                return Err(JobError::Director(format!(
                    "unexpected signal {sig:?} instead of a reply"
                )))
            }
        }
    }
}
