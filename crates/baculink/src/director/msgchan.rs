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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use baculink_proto::job::attr::AttrRecord;
    use baculink_proto::job::catreq::{FindMedia, JobEnd, MediaInfo, UpdateMedia};

    use super::*;
    use crate::daemon::Daemon;
    use crate::director::commands::Args;
    use crate::director::job::JobCtx;
    use crate::director::Director;

    /// A Director from a minimal config whose catalog lives in `dir`.
    fn director(dir: &std::path::Path) -> Arc<Director> {
        let conf = dir.join("bacula-dir.conf");
        std::fs::write(
            &conf,
            format!(
                "Director {{ Name = d; Password = p; WorkingDirectory = \"{}\" }}\n\
                 Client {{ Name = fd; Address = 127.0.0.1; Password = p }}\n\
                 Storage {{ Name = st; Address = 127.0.0.1; Password = p; Device = dev; Media Type = File }}\n\
                 Pool {{ Name = P; Pool Type = Backup; Label Format = \"Vol-\" }}\n\
                 FileSet {{ Name = S; Include {{ File = /data }} }}\n\
                 Job {{ Name = J; Type = Backup; Client = fd; FileSet = S; Storage = st; Pool = P }}\n",
                dir.display()
            ),
        )
        .unwrap();
        Arc::new(Director::load(&conf, Duration::from_secs(5)).unwrap())
    }

    async fn recv_text(sd: &mut BSock) -> String {
        match sd.recv_timeout(Duration::from_secs(5)).await.unwrap() {
            Packet::Data(d) => String::from_utf8_lossy(&d).into_owned(),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn catalog_requests_attributes_and_end_of_job() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = director(tmp.path());
        let job = dir.conf.job("J").unwrap().clone();
        let plan = dir.plan(&job, &Args::parse("run"), 'B').unwrap();
        let live = dir.jobs.add(
            1,
            "J.2026-11-29_06.44.04_01".into(),
            "J".into(),
            'B',
            'F',
            "fd".into(),
        );
        let ctx = Arc::new(JobCtx {
            dir: dir.clone(),
            live,
            plan,
        });
        // Loopback pair: we are the Director's end, the test plays the SD.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ours = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut sd = BSock::new(listener.accept().await.unwrap().0);
        let ch = SdChannel::new(BSock::new(ours), Generation::V96, ctx.clone());
        let task = tokio::spawn(ch.run_to_end());

        let find = FindMedia {
            job_id: 1,
            index: 1,
            pool_name: "P".into(),
            media_type: "File".into(),
            vol_type: 1,
            create: None,
        };
        sd.send_text(&find.format(Generation::V96)).await.unwrap();
        let m = MediaInfo::parse(&recv_text(&mut sd).await).unwrap();
        assert_eq!(
            (m.vol_name.as_str(), m.vol_status.as_str()),
            ("Vol-0001", "Append")
        );
        let upd = UpdateMedia {
            job_id: 1,
            vol_name: "Vol-0001".into(),
            vol_jobs: 1,
            vol_bytes: 5000,
            vol_status: "Append".into(),
            relabel: true,
            ..UpdateMedia::default()
        };
        sd.send_text(&upd.format(Generation::V96)).await.unwrap();
        let m = MediaInfo::parse(&recv_text(&mut sd).await).unwrap();
        assert_eq!(m.vol_bytes, 5000);
        sd.send_text("CatReq JobId=1 GetVolInfo VolName=Nope write=1\n")
            .await
            .unwrap();
        assert_eq!(
            recv_text(&mut sd).await,
            "1997 Volume \"Nope\" not in catalog.\n"
        );

        sd.send_text(&catreq::format_create_jobmedia(1))
            .await
            .unwrap();
        sd.send_text("1 2 0 0 211 5000 1\n").await.unwrap();
        sd.signal(Signal::Eod).await.unwrap();
        assert_eq!(recv_text(&mut sd).await, catreq::OK_CREATE_JOBMEDIA);

        let attr = |fi: i32, ft: i32, name: &str| UpdCat {
            job_id: 1,
            vol_session_id: 1,
            vol_session_time: 99,
            file_index: fi,
            stream: 1,
            data: AttrRecord {
                file_index: fi,
                file_type: ft,
                fname: name.as_bytes().to_vec(),
                lstat: "P4A mSR+ IGk B A A A m BAA I BrC8mu BrC8mu BrC8mu A A C".into(),
                ..AttrRecord::default()
            }
            .encode(),
        };
        sd.send_text("BlastAttr JobId=1 File=/spool/x.attr\n")
            .await
            .unwrap();
        assert_eq!(recv_text(&mut sd).await, catreq::ERR_BLAST_ATTR);
        sd.send(&Packet::data(attr(1, 3, "/data/a b.txt").encode()))
            .await
            .unwrap();
        let digest = UpdCat {
            stream: 3,
            data: vec![0xFF; 16],
            ..attr(1, 3, "x")
        };
        sd.send(&Packet::data(digest.encode())).await.unwrap();
        sd.send(&Packet::data(attr(2, 5, "/data/").encode()))
            .await
            .unwrap();
        sd.send_text("Jmsg JobId=1 type=6 level=1795934646 sd JobId 1: hello there\n")
            .await
            .unwrap();
        sd.send_text("Status JobId=1 JobStatus=82\n").await.unwrap();
        let end = JobEnd {
            job: "J.2026-11-29_06.44.04_01".into(),
            status: b'T',
            files: 2,
            bytes: 38,
            errors: 0,
            err_msg: String::new(),
        };
        sd.send_text(&end.format()).await.unwrap();
        sd.signal(Signal::Eod).await.unwrap();

        let out = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out.end, Some(end));
        assert_eq!(out.error, None);
        assert_eq!(out.volumes, vec!["Vol-0001".to_string()]);
        let files = dir.catalog.call(|c| c.files(1)).await.unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].full_path(), "/data/a b.txt");
        assert_eq!(files[0].digest, "/////////////////////w");
        assert_eq!(files[0].digest_type, 3);
        assert_eq!(files[1].full_path(), "/data/");
        let parts = dir.catalog.call(|c| c.volume_parts(1)).await.unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].range.end_block, 5000);
        let log = dir.catalog.call(|c| c.job_log(1)).await.unwrap();
        assert!(
            log.iter().any(|l| l.contains("sd JobId 1: hello there")),
            "{log:?}"
        );
        assert!(dir
            .jobs
            .take_messages()
            .iter()
            .any(|m| m.contains("hello there")));
        assert_eq!(ctx.live.snapshot().sd_status, 'T');
        // The channel answered TERMINATE-free EOD by closing: nothing more comes.
        assert!(sd.recv_timeout(Duration::from_secs(5)).await.is_err() || sd.is_terminated());
    }
}
