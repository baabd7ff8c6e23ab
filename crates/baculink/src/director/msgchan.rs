//! The Storage daemon's message channel of one job (protocol-jobs.md §5.7):
//! catalog requests answered from the catalog, attributes stored as file
//! records, job messages routed, SD status and the `3099` end remembered.
//!
//! During job setup the job task calls [`SdChannel::next_reply`] to wait for
//! the SD's answer to a command while serving requests; after `run` the
//! channel moves to its own task ([`SdChannel::run_to_end`]) until the SD
//! ends it (EOD / TERMINATE / connection closed).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use baculink_net::{BSock, NetError};
use baculink_proto::base64;
use baculink_proto::frame::{Packet, Signal};
use baculink_proto::job::attr::{stream, AttrRecord};
use baculink_proto::job::catreq::{
    self, DirMessage, Generation, JobEnd, JobMediaRange, MsgType, UpdCat,
};
use tracing::{debug, warn};

use super::catalog::FileRow;
use super::job::JobCtx;
use super::report;

/// File records kept in memory before they are written in one transaction.
const ATTR_BATCH: usize = 500;

/// What the SD said about the job by the end of its channel.
#[derive(Debug, Default)]
pub struct SdOutcome {
    /// The `3099 Job ... end` line, if it came.
    pub end: Option<JobEnd>,
    /// Why the channel broke, if it did not end normally.
    pub error: Option<String>,
    /// Volumes written or read, in order.
    pub volumes: Vec<String>,
    /// VolBytes of the last volume after the job.
    pub last_vol_bytes: u64,
}

/// How [`SdChannel::next_reply`] can fail.
#[derive(Debug)]
pub enum ChannelEnd {
    /// The SD ended the channel (EOD / TERMINATE) before replying.
    Closed,
    /// The connection failed.
    Net(NetError),
}

impl std::fmt::Display for ChannelEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChannelEnd::Closed => f.write_str("the Storage daemon ended the conversation"),
            ChannelEnd::Net(e) => write!(f, "{e}"),
        }
    }
}

impl From<NetError> for ChannelEnd {
    fn from(e: NetError) -> Self {
        ChannelEnd::Net(e)
    }
}

/// One job's message channel to the SD.
pub struct SdChannel {
    /// The socket.
    pub sock: BSock,
    /// Field set the SD speaks.
    pub gen: Generation,
    ctx: Arc<JobCtx>,
    /// Keeps the link listed in `status` while the channel lives.
    pub link: Option<crate::daemon::LinkGuard>,
    pending: Vec<FileRow>,
    late_digests: Vec<(i32, String, i32)>,
    outcome: SdOutcome,
}

impl SdChannel {
    /// Wraps a logged-in SD connection.
    pub fn new(sock: BSock, gen: Generation, ctx: Arc<JobCtx>) -> SdChannel {
        SdChannel {
            sock,
            gen,
            ctx,
            link: None,
            pending: Vec::new(),
            late_digests: Vec::new(),
            outcome: SdOutcome::default(),
        }
    }

    /// Waits for the SD's reply to a command (a line starting with a
    /// digit), serving catalog requests and messages in between.
    pub async fn next_reply(&mut self) -> Result<String, ChannelEnd> {
        loop {
            match self.sock.recv().await? {
                Packet::Data(d) => {
                    if let Some(reply) = self.handle(&d).await? {
                        return Ok(reply);
                    }
                }
                Packet::Signal(s) => {
                    if self.signal(s).await? {
                        return Err(ChannelEnd::Closed);
                    }
                }
            }
        }
    }

    /// Serves the channel until the SD ends it; what the SD reported.
    pub async fn run_to_end(mut self) -> SdOutcome {
        let r: Result<(), ChannelEnd> = async {
            loop {
                match self.sock.recv().await? {
                    Packet::Data(d) => {
                        if let Some(reply) = self.handle(&d).await? {
                            debug!("JobId {}: SD said {}", self.ctx.id(), reply.trim_end());
                        }
                    }
                    Packet::Signal(s) => {
                        if self.signal(s).await? {
                            return Ok(());
                        }
                    }
                }
            }
        }
        .await;
        match r {
            Ok(()) | Err(ChannelEnd::Closed) => {}
            Err(ChannelEnd::Net(e)) => {
                if self.outcome.end.is_none() {
                    self.outcome.error = Some(e.to_string());
                }
            }
        }
        self.flush_attrs().await;
        if !self.sock.is_terminated() {
            let _ = self.sock.signal(Signal::Terminate).await;
        }
        let SdChannel { sock, outcome, .. } = self;
        sock.close().await;
        outcome
    }

    /// A signal; true when it ends the channel.
    async fn signal(&mut self, s: Signal) -> Result<bool, ChannelEnd> {
        match s {
            Signal::Eod | Signal::Terminate => return Ok(true),
            Signal::EodPoll | Signal::Poll => self.sock.send_text("1000 OK\n").await?,
            Signal::Status => {
                self.sock.send_text("Status OK\n").await?;
                self.sock.signal(Signal::Eod).await?;
            }
            Signal::Btime => {
                let us = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_micros())
                    .unwrap_or(0);
                self.sock.send_text(&format!("btime {us}\n")).await?;
            }
            _ => {}
        }
        Ok(false)
    }

    /// One data packet: a request is answered here; a reply is returned.
    async fn handle(&mut self, d: &[u8]) -> Result<Option<String>, ChannelEnd> {
        let msg = match catreq::parse(d) {
            Ok(m) => m,
            Err(e) => {
                warn!("JobId {}: {e}", self.ctx.id());
                self.ctx
                    .msg(
                        MsgType::Warning,
                        &format!("Unexpected message from the Storage daemon: {e}"),
                    )
                    .await;
                return Ok(None);
            }
        };
        match msg {
            DirMessage::Reply(r) => return Ok(Some(r)),
            DirMessage::Jmsg(j) => self.ctx.route(&j, self.gen).await,
            DirMessage::Status { status, .. } => {
                let c = char::from(status);
                self.ctx.live.update(|s| s.sd_status = c);
            }
            DirMessage::JobStart { .. } => {}
            DirMessage::JobEnd(e) => {
                self.ctx.live.update(|s| s.sd_status = char::from(e.status));
                self.outcome.end = Some(e);
            }
            DirMessage::Progress(p) => self.ctx.live.update(|s| {
                s.files = p.files;
                s.bytes = p.bytes;
                s.bps = p.bps;
            }),
            DirMessage::FindMedia(f) => {
                let reply = self.find_media(&f).await;
                self.sock.send_text(&reply).await?;
            }
            DirMessage::GetVolInfo(g) => {
                let reply = self.get_vol_info(&g.vol_name, g.write).await;
                self.sock.send_text(&reply).await?;
            }
            DirMessage::UpdateMedia(u) => {
                let name = u.vol_name.clone();
                let r = self
                    .ctx
                    .dir
                    .catalog
                    .call(move |c| c.update_media(&u, report::now()))
                    .await;
                let reply = match r {
                    Ok(m) => {
                        if !self.outcome.volumes.contains(&name) {
                            self.outcome.volumes.push(name);
                        }
                        self.outcome.last_vol_bytes = m.vol_bytes;
                        m.format(self.gen)
                    }
                    Err(e) => {
                        warn!("JobId {}: UpdateMedia {name}: {e}", self.ctx.id());
                        catreq::ERR_UPDATE_MEDIA.to_string()
                    }
                };
                self.sock.send_text(&reply).await?;
            }
            DirMessage::CreateJobMedia { .. } => {
                let reply = self.create_jobmedia().await?;
                self.sock.send_text(reply).await?;
            }
            DirMessage::UpdCat(u) => self.attribute(u).await,
            DirMessage::BlastAttr { file, .. } => {
                // The spool file is on the SD's machine: have it sent here.
                debug!(
                    "JobId {}: BlastAttr {file}: asking for the records",
                    self.ctx.id()
                );
                self.sock.send_text(catreq::ERR_BLAST_ATTR).await?;
            }
        }
        Ok(None)
    }

    async fn find_media(&mut self, f: &catreq::FindMedia) -> String {
        let pool = self.ctx.plan.pool.clone();
        if f.pool_name != pool.name {
            return catreq::no_media(&format!(
                "Pool \"{}\" is not this job's pool \"{}\".",
                f.pool_name, pool.name
            ));
        }
        let (media_type, vol_type) = (f.media_type.clone(), f.vol_type);
        let r = self
            .ctx
            .dir
            .catalog
            .call(move |c| c.find_media(&pool, &media_type, vol_type, report::now()))
            .await;
        match r {
            Ok(Some(m)) => {
                if !self.outcome.volumes.contains(&m.vol_name) {
                    self.outcome.volumes.push(m.vol_name.clone());
                }
                m.format(self.gen)
            }
            Ok(None) => catreq::no_media(&format!(
                "No appendable Volume in Pool \"{}\" and the Pool has no Label Format.",
                f.pool_name
            )),
            Err(e) => catreq::no_media(&e.to_string()),
        }
    }

    async fn get_vol_info(&mut self, name: &str, write: bool) -> String {
        let n = name.to_string();
        match self
            .ctx
            .dir
            .catalog
            .call(move |c| c.media_by_name(&n))
            .await
        {
            Ok(Some(m)) => {
                let usable = if write {
                    matches!(m.vol_status.as_str(), "Append" | "Recycle" | "Purged")
                } else {
                    !matches!(m.vol_status.as_str(), "Error" | "Purged")
                };
                if !usable {
                    return catreq::volume_wrong_status(
                        name,
                        &m.vol_status,
                        if write {
                            "not Append, Purged or Recycle"
                        } else {
                            "not readable"
                        },
                    );
                }
                m.format(self.gen)
            }
            Ok(None) => catreq::volume_not_in_catalog(name),
            Err(e) => {
                warn!("JobId {}: GetVolInfo {name}: {e}", self.ctx.id());
                catreq::volume_not_in_catalog(name)
            }
        }
    }

    /// Reads the range packets up to EOD and stores them.
    async fn create_jobmedia(&mut self) -> Result<&'static str, ChannelEnd> {
        let mut ranges = Vec::new();
        let mut ok = true;
        loop {
            match self.sock.recv().await? {
                Packet::Data(d) => match JobMediaRange::parse(&baculink_proto::scan::c_text(&d)) {
                    Ok(r) => ranges.push(r),
                    Err(e) => {
                        warn!("JobId {}: {e}", self.ctx.id());
                        ok = false;
                    }
                },
                Packet::Signal(Signal::Eod) => break,
                Packet::Signal(Signal::Terminate) => return Err(ChannelEnd::Closed),
                Packet::Signal(_) => {}
            }
        }
        let id = self.ctx.id();
        let r = self
            .ctx
            .dir
            .catalog
            .call(move |c| c.add_jobmedia(id, &ranges))
            .await;
        if let Err(e) = &r {
            warn!("JobId {id}: CreateJobMedia: {e}");
        }
        Ok(if ok && r.is_ok() {
            catreq::OK_CREATE_JOBMEDIA
        } else {
            catreq::ERR_CREATE_JOBMEDIA
        })
    }

    /// Catalogs one record: an attribute record becomes a file row, a
    /// digest is attached to its file.
    async fn attribute(&mut self, u: UpdCat) {
        let id = u.stream_id();
        if stream::is_attributes(id) {
            match AttrRecord::decode(&u.data) {
                Ok(rec) => {
                    let (path, name) = rec.split_path();
                    self.pending.push(FileRow {
                        file_index: rec.file_index,
                        path: String::from_utf8_lossy(path).into_owned(),
                        name: String::from_utf8_lossy(name).into_owned(),
                        file_type: rec.file_type,
                        lstat: rec.lstat,
                        digest: String::new(),
                        digest_type: 0,
                    });
                    if self.ctx.live.kind == 'B' {
                        let n = self.pending.len() as u64;
                        self.ctx.live.update(|s| s.files = s.files.max(n));
                    }
                    if self.pending.len() >= ATTR_BATCH {
                        self.flush_attrs().await;
                    }
                }
                Err(e) => {
                    warn!("JobId {}: bad attribute record: {e}", self.ctx.id());
                }
            }
        } else if stream::is_digest(id) {
            let digest = base64::encode(&u.data, true);
            match self
                .pending
                .iter_mut()
                .rev()
                .find(|f| f.file_index == u.file_index)
            {
                Some(f) => {
                    f.digest = digest;
                    f.digest_type = id;
                }
                None => self.late_digests.push((u.file_index, digest, id)),
            }
        }
    }

    /// Writes the buffered file rows and late digests.
    async fn flush_attrs(&mut self) {
        if self.pending.is_empty() && self.late_digests.is_empty() {
            return;
        }
        let files = std::mem::take(&mut self.pending);
        let digests = std::mem::take(&mut self.late_digests);
        let id = self.ctx.id();
        let r = self
            .ctx
            .dir
            .catalog
            .call(move |c| {
                c.add_files(id, &files)?;
                c.set_digests(id, &digests)
            })
            .await;
        if let Err(e) = r {
            self.ctx
                .msg(
                    MsgType::Error,
                    &format!("Catalog error storing file attributes: {e}"),
                )
                .await;
        }
    }
}
