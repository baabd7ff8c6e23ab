//! The File daemon's data channel of a job: the append session of a backup
//! and the read session of a restore (protocol-jobs.md §5.5, §5.6, §6.3).
//!
//! Backup: records arrive as stream header packet, data packets, EOD; each
//! data packet becomes one volume record. The socket task parses and
//! forwards attributes and digests to the Director (`UpdCat`) while a
//! blocking writer thread puts the records on the volume; a bounded channel
//! between the two keeps memory small whatever the job size.
//!
//! Restore: a blocking reader thread walks the bootstrap's volumes and hands
//! the selected records through a bounded channel to the socket task, which
//! sends each as `rechdr ...` + one data packet.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use baculink_conf::sd::Device;
use baculink_net::{BSock, NetError};
use baculink_proto::frame::{Packet, Signal};
use baculink_proto::job::attr::{stream, JobStatus, RecHdr, StreamHeader};
use baculink_proto::job::catreq::{Generation, JobMediaRange, MediaInfo, MsgType, UpdateMedia};
use baculink_proto::job::sdcmd::{self, SessionCommand};
use baculink_proto::scan::c_text;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::job::{now_epoch, Job, JobError, Outcome, VOL_TYPE_FILE};
use super::volume::{
    volume_path, Record, VolumeError, VolumeLabel, VolumeReader, VolumeWriter, EOS_LABEL, SOS_LABEL,
};
use super::StorageDaemon;
use crate::daemon::{next_or_flush, Next};

/// Records queued between the socket task and the volume thread (each at
/// most one network packet, so at most a few MiB in flight).
const QUEUE: usize = 32;

/// A volume open for appending, shared by the sessions writing to it.
pub type SharedVolume = Arc<Mutex<VolumeWriter>>;

/// The volumes open for appending, so concurrent jobs share one writer.
#[derive(Default, Debug)]
pub struct VolumeTable {
    open: Mutex<HashMap<PathBuf, Weak<Mutex<VolumeWriter>>>>,
}

/// What a writer needs to know about the volume the Director chose.
struct Choice {
    path: PathBuf,
    label: VolumeLabel,
    recycle: bool,
    may_label: bool,
    catalog_bytes: u64,
}

impl VolumeTable {
    /// The shared writer of a volume: already open, reopened from disk, or
    /// newly labeled (then `true`). Blocking.
    fn get_or_open(&self, c: &Choice) -> Result<(SharedVolume, bool), VolumeError> {
        let mut map = self.open.lock().map_err(|_| poisoned(&c.path))?;
        map.retain(|_, w| w.strong_count() > 0);
        if let Some(w) = map.get(&c.path).and_then(Weak::upgrade) {
            return Ok((w, false));
        }
        let exists = c.path.exists();
        let (writer, labeled) = if exists && c.recycle {
            std::fs::remove_file(&c.path).map_err(|source| VolumeError::Io {
                path: c.path.clone(),
                source,
            })?;
            (VolumeWriter::create(&c.path, &c.label)?, true)
        } else if exists {
            (
                VolumeWriter::open_append(&c.path, Some(&c.label.vol_name))?,
                false,
            )
        } else if c.catalog_bytes > 0 {
            return Err(VolumeError::Io {
                path: c.path.clone(),
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "the volume file is missing but the catalog says it holds {} bytes",
                        c.catalog_bytes
                    ),
                ),
            });
        } else if !c.may_label {
            return Err(VolumeError::Io {
                path: c.path.clone(),
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    "no such volume and the device has LabelMedia = no",
                ),
            });
        } else {
            (VolumeWriter::create(&c.path, &c.label)?, true)
        };
        let shared = Arc::new(Mutex::new(writer));
        map.insert(c.path.clone(), Arc::downgrade(&shared));
        Ok((shared, labeled))
    }
}

fn poisoned(path: &Path) -> VolumeError {
    VolumeError::Io {
        path: path.to_path_buf(),
        source: io::Error::other("volume writer lock poisoned"),
    }
}

/// The volume an append session writes to.
struct Mounted {
    writer: SharedVolume,
    media: MediaInfo,
    device: Device,
}

/// Work for the volume thread.
enum WriteCmd {
    /// One record (the packet keeps the received buffer, no copy).
    Rec {
        file_index: i32,
        stream: i32,
        data: Packet,
    },
    /// End of session: write the end-of-session label and sync.
    End(Vec<u8>),
}

/// Records received but not yet handed to the volume thread. They go over
/// in batches: when the network has nothing more to give right now, or
/// past [`BATCH_BYTES`], so a fast sender wakes the volume thread once per
/// batch instead of once per 64 KiB packet.
#[derive(Default)]
struct Batch {
    cmds: Vec<WriteCmd>,
    bytes: usize,
}

/// Batches in flight to the volume thread (at most 2 MiB of data).
const WRITE_QUEUE: usize = 8;
/// A batch is handed over once it holds this much data.
const BATCH_BYTES: usize = 256 * 1024;

impl Batch {
    /// Queues a record; hands the batch over when it is full.
    async fn push(&mut self, cmd: WriteCmd, len: usize, tx: &mpsc::Sender<Vec<WriteCmd>>) -> bool {
        self.cmds.push(cmd);
        self.bytes += len;
        self.bytes < BATCH_BYTES || self.flush(tx).await
    }

    /// Hands what is queued to the volume thread; false if it has stopped.
    async fn flush(&mut self, tx: &mpsc::Sender<Vec<WriteCmd>>) -> bool {
        self.bytes = 0;
        if self.cmds.is_empty() {
            return true;
        }
        tx.send(std::mem::take(&mut self.cmds)).await.is_ok()
    }
}

/// Where a session's records went.
#[derive(Debug, Default, Clone, Copy)]
struct Written {
    /// Address of the start-of-session label.
    start: u64,
    /// Address after the session's last record.
    end: u64,
    /// Records written (labels included).
    records: u64,
    /// Size of the volume afterwards.
    vol_bytes: u64,
}

/// What came in on the data channel.
#[derive(Debug, Default, Clone, Copy)]
struct Received {
    first_fi: i32,
    last_fi: i32,
    bytes: u64,
}

/// State of the data channel's sessions.
#[derive(Debug, Default)]
struct Session {
    /// `append open session` / `read open session` seen and not closed.
    open: Option<Kind>,
    /// An append or read data phase completed.
    done_ok: bool,
    /// A data phase failed (first error kept).
    error: Option<String>,
    files: u32,
    bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Append,
    Read,
}

fn lock(v: &SharedVolume) -> Result<std::sync::MutexGuard<'_, VolumeWriter>, VolumeError> {
    v.lock().map_err(|_| VolumeError::Io {
        path: PathBuf::new(),
        source: io::Error::other("volume writer lock poisoned"),
    })
}

/// The volume thread of one append session.
fn write_session(
    vol: SharedVolume,
    sd_id: u32,
    sd_time: u32,
    sos: Vec<u8>,
    mut rx: mpsc::Receiver<Vec<WriteCmd>>,
) -> Result<Written, VolumeError> {
    let mut out = Written::default();
    {
        let mut w = lock(&vol)?;
        out.start = w.write(sd_id, sd_time, SOS_LABEL, 0, &sos)?;
        out.end = w.position();
        out.records = 1;
    }
    while let Some(cmds) = rx.blocking_recv() {
        let mut w = lock(&vol)?;
        for cmd in cmds {
            match cmd {
                WriteCmd::Rec {
                    file_index,
                    stream,
                    data,
                } => {
                    w.write(
                        sd_id,
                        sd_time,
                        file_index,
                        stream,
                        data.payload().unwrap_or(&[]),
                    )?;
                }
                WriteCmd::End(eos) => {
                    w.write(sd_id, sd_time, EOS_LABEL, 0, &eos)?;
                    out.records += 1;
                    out.end = w.position();
                    w.sync()?;
                    out.vol_bytes = w.position();
                    return Ok(out);
                }
            }
            out.records += 1;
            out.end = w.position();
        }
    }
    // The session was abandoned: keep what is complete.
    let mut w = lock(&vol)?;
    w.sync()?;
    out.vol_bytes = w.position();
    Ok(out)
}

/// The next packet of a data session: taken at once when the network has
/// it, otherwise the batch is handed to the volume thread before waiting.
async fn next_data_packet(
    sock: &mut BSock,
    cancel: &mut watch::Receiver<bool>,
    batch: &mut Batch,
    tx: &mpsc::Sender<Vec<WriteCmd>>,
) -> Result<Packet, JobError> {
    if *cancel.borrow() {
        return Err(JobError::Canceled);
    }
    if let Some(p) = poll_once(std::pin::pin!(sock.recv())) {
        return Ok(p?);
    }
    if !batch.flush(tx).await {
        return Err(writer_gone());
    }
    recv_or_cancel(sock, cancel).await
}

/// Polls a future once without a real waker: its result if ready now. Only
/// for futures that may be dropped while pending (`BSock::recv` may).
fn poll_once<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> Option<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

fn writer_gone() -> JobError {
    JobError::Other("the volume writer stopped".into())
}

/// The next packet, or the cancel.
async fn recv_or_cancel(
    sock: &mut BSock,
    cancel: &mut watch::Receiver<bool>,
) -> Result<Packet, JobError> {
    if *cancel.borrow() {
        return Err(JobError::Canceled);
    }
    tokio::select! {
        p = sock.recv() => Ok(p?),
        _ = cancel.wait_for(|c| *c) => Err(JobError::Canceled),
    }
}

fn hms(secs: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// `1.2 M` style rate like Bacula's job report.
fn rate(bytes: u64, secs: f64) -> String {
    let r = bytes as f64 / secs.max(0.001);
    if r >= 1e9 {
        format!("{:.1} G", r / 1e9)
    } else if r >= 1e6 {
        format!("{:.1} M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} K", r / 1e3)
    } else {
        format!("{r:.1}")
    }
}

impl StorageDaemon {
    /// Runs the data channel of `job` until the File daemon leaves (or the
    /// job is canceled); the outcome goes to the Director in `3099`.
    pub(super) async fn data_session(&self, sock: &mut BSock, job: &Arc<Job>) -> Outcome {
        let wait = self.conf.storage.client_connect_wait;
        if !job.wait_running(wait).await {
            let o = if job.is_canceled() {
                super::job::failed(JobStatus::CANCELED, "Job canceled")
            } else {
                super::job::failed(
                    JobStatus::ERROR_TERMINATED,
                    "the Director never sent run for this job",
                )
            };
            return o;
        }
        job.update(|p| p.fd_connected = true);
        let mut st = Session::default();
        let r = self.session_loop(sock, job, &mut st).await;
        let (status, err) = match r {
            Err(JobError::Canceled) => (JobStatus::CANCELED, "Job canceled".to_string()),
            Err(e) => (JobStatus::ERROR_TERMINATED, e.to_string()),
            Ok(()) if st.error.is_some() => (
                JobStatus::ERROR_TERMINATED,
                st.error.clone().unwrap_or_default(),
            ),
            Ok(()) if st.open == Some(Kind::Append) => (
                JobStatus::ERROR_TERMINATED,
                "the File daemon left before closing the append session".to_string(),
            ),
            Ok(()) if !st.done_ok => (
                JobStatus::ERROR_TERMINATED,
                "the File daemon sent no data session".to_string(),
            ),
            Ok(()) => (JobStatus::OK, String::new()),
        };
        if status != JobStatus::OK {
            warn!("job {}: {err}", job.name());
            let kind = if status == JobStatus::CANCELED {
                MsgType::Info
            } else {
                MsgType::Fatal
            };
            let _ = job.jmsg(kind, &format!("{err}\n")).await;
        }
        Outcome {
            status,
            files: st.files,
            bytes: st.bytes,
            errors: u32::from(status != JobStatus::OK && status != JobStatus::CANCELED),
            err_msg: err,
        }
    }

    async fn session_loop(
        &self,
        sock: &mut BSock,
        job: &Arc<Job>,
        st: &mut Session,
    ) -> Result<(), JobError> {
        job.send_start().await?;
        job.send_status(JobStatus::RUNNING).await?;
        let mut cancel = job.cancel_watch();
        loop {
            let pkt = match recv_or_cancel(sock, &mut cancel).await {
                Ok(p) => p,
                Err(JobError::Net(NetError::Eof(_))) => return Ok(()),
                Err(e) => return Err(e),
            };
            let text = match pkt {
                Packet::Data(d) => c_text(&d),
                Packet::Signal(Signal::Terminate) => return Ok(()),
                Packet::Signal(Signal::Poll | Signal::EodPoll) => {
                    sock.send_text("2000 OK\n").await?;
                    continue;
                }
                Packet::Signal(_) => continue,
            };
            let cmd = match SessionCommand::parse(&text) {
                Ok(c) => c,
                Err(_) => {
                    let shown: String = text.chars().take(60).collect();
                    warn!("job {}: unknown data channel command {shown:?}", job.name());
                    sock.send_text(&format!("3905 Unknown command: \"{}\"\n", shown.trim_end()))
                        .await?;
                    continue;
                }
            };
            debug!("job {}: {}", job.name(), cmd.to_string().trim_end());
            match cmd {
                SessionCommand::AppendOpen => {
                    if st.open.is_some() {
                        sock.send_text(sdcmd::ERROR_SESSION_OPEN).await?;
                    } else if !job.cmd.is_backup() {
                        sock.send_text("3901 Error append open: this job does not write\n")
                            .await?;
                    } else {
                        st.open = Some(Kind::Append);
                        sock.send_text(&sdcmd::open_ticket(job.sd_id)).await?;
                    }
                }
                SessionCommand::AppendData(t) => {
                    if st.open != Some(Kind::Append) || t != job.sd_id {
                        sock.send_text(sdcmd::ERROR_SESSION_NOT_OPEN).await?;
                        continue;
                    }
                    self.append_data(sock, job, st).await?;
                    st.done_ok = true;
                }
                SessionCommand::AppendEnd(_) => sock.send_text(sdcmd::OK_END).await?,
                SessionCommand::AppendClose(_) => {
                    let status = if st.done_ok && st.error.is_none() {
                        JobStatus::OK
                    } else {
                        JobStatus::ERROR_TERMINATED
                    };
                    st.open = None;
                    sock.send_text(&sdcmd::close_status(status)).await?;
                    sock.signal(Signal::Eod).await?;
                }
                SessionCommand::ReadOpen(_) => {
                    if st.open.is_some() {
                        sock.send_text(sdcmd::ERROR_SESSION_OPEN).await?;
                    } else if job.cmd.is_backup() || job.bootstrap().is_none() {
                        sock.send_text(sdcmd::ERROR_READ_OPEN).await?;
                    } else {
                        st.open = Some(Kind::Read);
                        sock.send_text(&sdcmd::open_ticket(job.sd_id)).await?;
                    }
                }
                SessionCommand::ReadData(t) => {
                    if st.open != Some(Kind::Read) || t != job.sd_id {
                        sock.send_text(sdcmd::ERROR_SESSION_NOT_OPEN).await?;
                        continue;
                    }
                    match self.read_data(sock, job, st).await {
                        Ok(()) => st.done_ok = true,
                        Err(e @ (JobError::Net(_) | JobError::Canceled)) => return Err(e),
                        // The FD got its EOD: let it close the session.
                        Err(e) => {
                            warn!("job {}: {e}", job.name());
                            st.error.get_or_insert(e.to_string());
                        }
                    }
                }
                SessionCommand::ReadClose(_) => {
                    st.open = None;
                    // 9.6 answers with the job still running ('R').
                    sock.send_text(&sdcmd::close_status(JobStatus::RUNNING))
                        .await?;
                    sock.signal(Signal::Eod).await?;
                }
            }
        }
    }

    // -----------------------------------------------------------------------
    // Append

    /// `append data`: mount a volume, take the record stream, catalog it.
    async fn append_data(
        &self,
        sock: &mut BSock,
        job: &Arc<Job>,
        st: &mut Session,
    ) -> Result<(), JobError> {
        let mounted = match self.mount_for_append(job).await {
            Ok(m) => m,
            Err(e) => {
                sock.send_text(&sdcmd::append_data_error(&e.to_string()))
                    .await?;
                return Err(e);
            }
        };
        sock.send_text(sdcmd::OK_DATA).await?;
        let started = Instant::now();
        let sos = format!(
            "JobId={}\nJob={}\nClient={}\nFileSet={}\nStartTime={}\n",
            job.id(),
            job.name(),
            job.cmd.client_name,
            job.cmd.fileset,
            now_epoch()
        )
        .into_bytes();
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let vol = mounted.writer.clone();
        let (sd_id, sd_time) = (job.sd_id, job.sd_time);
        let writer =
            tokio::task::spawn_blocking(move || write_session(vol, sd_id, sd_time, sos, rx));
        let mut batch = Batch::default();
        let mut received = self.receive_records(sock, job, &mut batch, &tx).await;
        let got = match &received {
            Ok(r) | Err((r, _)) => *r,
        };
        // What was received is written even when the session failed.
        if !batch.flush(&tx).await && received.is_ok() {
            received = Err((got, writer_gone()));
        }
        let eos = format!(
            "JobId={}\nJob={}\nFiles={}\nBytes={}\nStatus={}\nEndTime={}\n",
            job.id(),
            job.name(),
            got.last_fi.max(0),
            got.bytes,
            if received.is_ok() { 'T' } else { 'E' },
            now_epoch()
        );
        let _ = tx.send(vec![WriteCmd::End(eos.into_bytes())]).await;
        drop(tx);
        let written = match writer.await {
            Ok(w) => w,
            Err(e) => Err(VolumeError::Io {
                path: PathBuf::new(),
                source: io::Error::other(format!("volume thread failed: {e}")),
            }),
        };
        st.files = u32::try_from(got.last_fi.max(0)).unwrap_or(0);
        st.bytes = got.bytes;
        // A canceled job skips the catalog: the Director no longer listens.
        let catalog = match &written {
            Ok(w) if !job.is_canceled() => {
                self.catalog_append(job, &mounted, got, *w, started).await
            }
            _ => Ok(()),
        };
        let err = match (received, written, catalog) {
            (Err((_, e)), _, _) => Some(e),
            (Ok(_), Err(e), _) => Some(JobError::Volume(e)),
            (Ok(_), Ok(_), Err(e)) => Some(e),
            (Ok(_), Ok(_), Ok(())) => None,
        };
        match err {
            None => {
                sock.send_text(sdcmd::OK_APPEND_DATA).await?;
                Ok(())
            }
            Some(e) => {
                if !matches!(e, JobError::Net(_) | JobError::Canceled) {
                    let _ = sock.send_text(sdcmd::FAILED_APPEND).await;
                }
                Err(e)
            }
        }
    }

    /// Reads stream headers and data packets until the empty header; checks
    /// FileIndex order, forwards catalog records, queues volume records.
    async fn receive_records(
        &self,
        sock: &mut BSock,
        job: &Arc<Job>,
        batch: &mut Batch,
        tx: &mpsc::Sender<Vec<WriteCmd>>,
    ) -> Result<Received, (Received, JobError)> {
        let mut got = Received::default();
        let mut cancel = job.cancel_watch();
        loop {
            let pkt = match next_data_packet(sock, &mut cancel, batch, tx).await {
                Ok(p) => p,
                Err(e) => return Err((got, e)),
            };
            let hdr = match pkt {
                Packet::Data(d) if d.is_empty() => return Ok(got),
                Packet::Data(d) => match StreamHeader::decode(&d) {
                    Ok(h) => h,
                    Err(e) => return Err((got, JobError::Fd(e.to_string()))),
                },
                Packet::Signal(Signal::Eod) => return Ok(got),
                Packet::Signal(Signal::Terminate) => {
                    return Err((
                        got,
                        JobError::Fd("terminated the connection in the middle of the data".into()),
                    ))
                }
                Packet::Signal(Signal::Poll | Signal::EodPoll) => {
                    if let Err(e) = sock.send_text("2000 OK\n").await {
                        return Err((got, e.into()));
                    }
                    continue;
                }
                Packet::Signal(_) => continue,
            };
            let fi = hdr.file_index;
            if fi <= 0 || (got.last_fi != 0 && fi != got.last_fi && fi != got.last_fi + 1) {
                return Err((
                    got,
                    JobError::Fd(format!(
                        "FI={fi} from FD not positive or last_FI={}",
                        got.last_fi
                    )),
                ));
            }
            if got.first_fi == 0 {
                got.first_fi = fi;
            }
            got.last_fi = fi;
            let catalog = stream::is_attributes(hdr.stream)
                || stream::is_digest(hdr.stream)
                || stream::id(hdr.stream) == stream::RESTORE_OBJECT;
            loop {
                let pkt = match next_data_packet(sock, &mut cancel, batch, tx).await {
                    Ok(p) => p,
                    Err(e) => return Err((got, e)),
                };
                match pkt {
                    // A zero-length packet ends the stream, as for Bacula.
                    Packet::Data(d) if d.is_empty() => break,
                    Packet::Data(d) => {
                        let len = d.len();
                        got.bytes += len as u64;
                        if catalog {
                            if let Err(e) = job.upd_cat(fi, hdr.stream, &d).await {
                                return Err((got, e));
                            }
                        }
                        let cmd = WriteCmd::Rec {
                            file_index: fi,
                            stream: hdr.stream,
                            data: Packet::Data(d),
                        };
                        if !batch.push(cmd, len, tx).await {
                            return Err((got, writer_gone()));
                        }
                    }
                    Packet::Signal(Signal::Eod) => break,
                    Packet::Signal(Signal::Terminate) => {
                        return Err((
                            got,
                            JobError::Fd(
                                "terminated the connection in the middle of the data".into(),
                            ),
                        ))
                    }
                    Packet::Signal(Signal::Poll | Signal::EodPoll) => {
                        if let Err(e) = sock.send_text("2000 OK\n").await {
                            return Err((got, e.into()));
                        }
                    }
                    Packet::Signal(_) => {}
                }
            }
            job.update(|p| {
                p.files = u32::try_from(fi).unwrap_or(0);
                p.bytes = got.bytes;
            });
        }
    }

    /// Asks the Director for a volume and opens (or labels) it.
    async fn mount_for_append(&self, job: &Arc<Job>) -> Result<Mounted, JobError> {
        let (device, storage) = job
            .reserved()
            .ok_or_else(|| JobError::Other("no device was reserved for this job".into()))?;
        let dir = PathBuf::from(&device.archive_device);
        let mut last_err: Option<JobError> = None;
        let mut seen: Vec<String> = Vec::new();
        for index in 1..=3 {
            let media = job.find_media(index, &storage).await?;
            if seen.contains(&media.vol_name) {
                break;
            }
            seen.push(media.vol_name.clone());
            let recycle = media.vol_status == "Recycle" || media.vol_status == "Purged";
            if !recycle && media.vol_status != "Append" {
                last_err = Some(JobError::Director(format!(
                    "volume \"{}\" has status {}",
                    media.vol_name, media.vol_status
                )));
                continue;
            }
            let path = volume_path(&dir, &media.vol_name)?;
            let choice = Choice {
                path: path.clone(),
                label: VolumeLabel {
                    vol_name: media.vol_name.clone(),
                    media_type: device.media_type.clone(),
                    pool_name: storage.pool_name.clone(),
                    label_time: now_epoch(),
                },
                recycle,
                may_label: device.label_media,
                catalog_bytes: if recycle { 0 } else { media.vol_bytes },
            };
            let table = self.volumes.clone();
            let opened = tokio::task::spawn_blocking(move || table.get_or_open(&choice))
                .await
                .map_err(|e| JobError::Other(format!("volume thread failed: {e}")))?;
            let (writer, labeled) = match opened {
                Ok(x) => x,
                Err(e) => {
                    warn!("job {}: {e}", job.name());
                    let _ = job.jmsg(MsgType::Warning, &format!("{e}\n")).await;
                    last_err = Some(e.into());
                    continue;
                }
            };
            let mut media = media;
            if labeled {
                let pos = writer.lock().map(|w| w.position()).unwrap_or(0);
                let u = update_media(job, &media, pos, 0, 0, true);
                media = job.update_media(&u).await?;
                info!(
                    "job {}: labeled new volume \"{}\" at {}",
                    job.name(),
                    media.vol_name,
                    path.display()
                );
                job.jmsg(
                    MsgType::Info,
                    &format!(
                        "Labeled new Volume \"{}\" on File device \"{}\" ({}).\n",
                        media.vol_name, device.name, device.archive_device
                    ),
                )
                .await?;
            }
            job.update(|p| p.volume = Some(media.vol_name.clone()));
            return Ok(Mounted {
                writer,
                media,
                device,
            });
        }
        Err(last_err
            .unwrap_or_else(|| JobError::Director("no appendable volume for this job".into())))
    }

    /// After the data: JobMedia range, volume statistics, a summary message.
    async fn catalog_append(
        &self,
        job: &Arc<Job>,
        m: &Mounted,
        got: Received,
        w: Written,
        started: Instant,
    ) -> Result<(), JobError> {
        if got.last_fi > 0 {
            let range = JobMediaRange {
                first_index: u32::try_from(got.first_fi).unwrap_or(0),
                last_index: u32::try_from(got.last_fi).unwrap_or(0),
                start_file: (w.start >> 32) as u32,
                end_file: (w.end >> 32) as u32,
                start_block: w.start as u32,
                end_block: w.end as u32,
                media_id: m.media.media_id,
            };
            job.create_jobmedia(&[range]).await?;
        }
        let elapsed = started.elapsed();
        // Fresh counters: another job may have written to this volume meanwhile.
        let media = match job.get_vol_info(&m.media.vol_name, false).await {
            Ok(fresh) if fresh.media_id == m.media.media_id => fresh,
            Ok(_) | Err(JobError::Director(_)) => m.media.clone(),
            Err(e) => return Err(e),
        };
        let u = update_media(
            job,
            &media,
            w.vol_bytes,
            w.records,
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            false,
        );
        job.update_media(&u).await?;
        job.jmsg(
            MsgType::Info,
            &format!(
                "Elapsed time={}, Transfer rate={} Bytes/second\n",
                hms(elapsed.as_secs()),
                rate(got.bytes, elapsed.as_secs_f64())
            ),
        )
        .await?;
        debug!(
            "job {}: {} records on \"{}\" ({}), addresses {}-{}",
            job.name(),
            w.records,
            m.media.vol_name,
            m.device.name,
            w.start,
            w.end
        );
        Ok(())
    }

    // -----------------------------------------------------------------------
    // Read

    /// `read data`: sends the records the bootstrap selects, then EOD.
    async fn read_data(
        &self,
        sock: &mut BSock,
        job: &Arc<Job>,
        st: &mut Session,
    ) -> Result<(), JobError> {
        let bsr = job
            .bootstrap()
            .ok_or_else(|| JobError::Other("no bootstrap".into()))?;
        let device = job.reserved().map(|(d, _)| d);
        // Every volume must be found before any data moves.
        let mut plan: Vec<(PathBuf, String, usize)> = Vec::new();
        for (i, e) in bsr.entries.iter().enumerate() {
            for v in &e.volumes {
                match self.find_volume(device.as_ref(), v) {
                    Ok(p) => plan.push((p, v.clone(), i)),
                    Err(why) => {
                        sock.send_text(sdcmd::READ_DATA_ERROR).await?;
                        return Err(JobError::Other(why));
                    }
                }
            }
        }
        // Like Bacula: the catalog's view of each volume (MediaId, status).
        let mut asked: Vec<&str> = Vec::new();
        for (_, v, _) in &plan {
            if !asked.contains(&v.as_str()) {
                asked.push(v);
                if let Err(e) = job.get_vol_info(v, false).await {
                    debug!("job {}: GetVolInfo {v}: {e}", job.name());
                }
            }
        }
        sock.send_text(sdcmd::OK_DATA).await?;
        let started = Instant::now();
        if let (Some(d), Some((_, v, _))) = (&device, plan.first()) {
            job.jmsg(
                MsgType::Info,
                &format!(
                    "Ready to read from volume \"{v}\" on File device \"{}\" ({}).\n",
                    d.name, d.archive_device
                ),
            )
            .await?;
            job.update(|p| p.volume = Some(v.clone()));
        }
        let (tx, mut rx) = mpsc::channel::<Result<Record, VolumeError>>(QUEUE);
        let entries = bsr.entries.clone();
        let reader = tokio::task::spawn_blocking(move || {
            for (path, name, i) in plan {
                let r = VolumeReader::open(&path, Some(&name)).and_then(|mut r| {
                    let l = r.label();
                    debug!(
                        "reading volume {} (media type {}, pool {}, labeled {})",
                        l.vol_name, l.media_type, l.pool_name, l.label_time
                    );
                    r.read_selected(&entries[i], |_, rec| Ok(tx.blocking_send(Ok(rec)).is_ok()))
                });
                if let Err(e) = r {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        });
        let mut cancel = job.cancel_watch();
        let mut last_attr_fi = None;
        let result: Result<(), JobError> = loop {
            if *cancel.borrow() {
                break Err(JobError::Canceled);
            }
            // Records are fed back to back and go out in large writes.
            let rec = match next_or_flush(&mut rx, sock, cancel.wait_for(|c| *c)).await {
                Ok(Next::Item(Ok(r))) => r,
                Ok(Next::Item(Err(e))) => break Err(e.into()),
                Ok(Next::Closed) => break Ok(()),
                Ok(Next::Canceled) => break Err(JobError::Canceled),
                Err(e) => break Err(e.into()),
            };
            let hdr = RecHdr {
                vol_session_id: rec.vol_session_id,
                vol_session_time: rec.vol_session_time,
                file_index: rec.file_index,
                stream: rec.stream,
                data_len: u32::try_from(rec.data.len()).unwrap_or(u32::MAX),
            };
            if stream::is_attributes(rec.stream) && last_attr_fi != Some(rec.file_index) {
                last_attr_fi = Some(rec.file_index);
                st.files += 1;
            }
            st.bytes += rec.data.len() as u64;
            if let Err(e) = sock
                .feed(&Packet::Data(hdr.encode().into_bytes().into()))
                .await
            {
                break Err(e.into());
            }
            if let Err(e) = sock.feed(&Packet::Data(rec.data.into())).await {
                break Err(e.into());
            }
            let (files, bytes) = (st.files, st.bytes);
            job.update(|p| {
                p.files = files;
                p.bytes = bytes;
            });
        };
        drop(rx);
        let _ = reader.await;
        match result {
            Ok(()) => {
                sock.signal(Signal::Eod).await?;
                let elapsed = started.elapsed();
                job.jmsg(
                    MsgType::Info,
                    &format!(
                        "Elapsed time={}, Transfer rate={} Bytes/second\n",
                        hms(elapsed.as_secs()),
                        rate(st.bytes, elapsed.as_secs_f64())
                    ),
                )
                .await?;
                Ok(())
            }
            Err(e) => {
                // End the data so the FD is not left waiting, when it still listens.
                if !matches!(e, JobError::Net(_)) {
                    let _ = sock.signal(Signal::Eod).await;
                }
                Err(e)
            }
        }
    }

    /// The file of volume `name`: in the reserved device's directory, else
    /// in another device of the same media type.
    fn find_volume(&self, device: Option<&Device>, name: &str) -> Result<PathBuf, String> {
        let mut dirs: Vec<&Device> = Vec::new();
        if let Some(d) = device {
            dirs.push(d);
        }
        for d in &self.conf.devices {
            let same_type = device.is_none_or(|r| r.media_type == d.media_type);
            if same_type && !dirs.iter().any(|x| x.name == d.name) {
                dirs.push(d);
            }
        }
        for d in dirs {
            let p = volume_path(Path::new(&d.archive_device), name).map_err(|e| e.to_string())?;
            if p.is_file() {
                return Ok(p);
            }
        }
        Err(format!("volume \"{name}\" not found on any device"))
    }
}

/// `UpdateMedia` for `media` after writing: `records` more blocks, the
/// volume now `vol_bytes` long, `write_us` more write time; `relabel` when
/// the volume was just labeled (no job counted then).
fn update_media(
    job: &Job,
    media: &MediaInfo,
    vol_bytes: u64,
    records: u64,
    write_us: u64,
    relabel: bool,
) -> UpdateMedia {
    let full = media.max_vol_bytes > 0 && vol_bytes >= media.max_vol_bytes;
    UpdateMedia {
        job_id: job.id(),
        vol_name: media.vol_name.clone(),
        vol_jobs: media.vol_jobs + u32::from(!relabel),
        vol_files: (vol_bytes >> 32) as u32,
        vol_blocks: media
            .vol_blocks
            .saturating_add(u32::try_from(records).unwrap_or(u32::MAX)),
        vol_bytes,
        vol_abytes: 0,
        vol_hole_bytes: 0,
        vol_holes: 0,
        vol_mounts: media.vol_mounts + u32::from(relabel),
        vol_errors: media.vol_errors,
        vol_writes: media.vol_writes.saturating_add(records),
        max_vol_bytes: media.max_vol_bytes,
        end_time: now_epoch(),
        vol_status: if full { "Full" } else { "Append" }.to_string(),
        slot: media.slot,
        relabel,
        in_changer: media.in_changer != 0,
        vol_read_time: media.vol_read_time,
        vol_write_time: media
            .vol_write_time
            .saturating_add(i64::try_from(write_us).unwrap_or(i64::MAX)),
        vol_first_written: 0,
        vol_type: VOL_TYPE_FILE,
        vol_parts: 0,
        vol_cloud_parts: 0,
        last_part_bytes: 0,
        enabled: media.enabled,
        pool_bytes: (job.generation == Generation::V13)
            .then_some(media.pool_bytes.unwrap_or((0, 0))),
        recycle: media.recycle,
    }
}
