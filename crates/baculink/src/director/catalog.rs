//! The Director's catalog: jobs, files, volumes (media) and which part of
//! which volume holds which files of a job (jobmedia), in SQLite.
//!
//! The database is our own file (`baculink-catalog.db` in the Director's
//! Working Directory), never Bacula's `bacula.db`. [`Catalog`] is the
//! synchronous store; [`CatalogHandle`] runs it on a dedicated thread so no
//! database call ever blocks the async reactor, with a bounded request queue.

use std::path::{Path, PathBuf};
use std::time::Duration;

use baculink_proto::job::catreq::{JobMediaRange, MediaInfo, UpdateMedia};
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

/// File name of our catalog inside the Working Directory.
pub const CATALOG_FILE: &str = "baculink-catalog.db";

/// Catalog failures.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// SQLite said no.
    #[error("catalog: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The catalog thread is gone (Director shutting down).
    #[error("catalog thread stopped")]
    Stopped,
    /// A record that must exist does not.
    #[error("catalog: {0}")]
    NotFound(String),
}

/// Result of catalog calls.
pub type CatResult<T> = Result<T, CatalogError>;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS Job (
  JobId INTEGER PRIMARY KEY AUTOINCREMENT,
  Job TEXT UNIQUE NOT NULL,
  Name TEXT NOT NULL,
  Type TEXT NOT NULL,
  Level TEXT NOT NULL,
  Client TEXT NOT NULL DEFAULT '',
  FileSet TEXT NOT NULL DEFAULT '',
  Pool TEXT NOT NULL DEFAULT '',
  Storage TEXT NOT NULL DEFAULT '',
  JobStatus TEXT NOT NULL DEFAULT 'C',
  SchedTime INTEGER NOT NULL DEFAULT 0,
  StartTime INTEGER NOT NULL DEFAULT 0,
  EndTime INTEGER NOT NULL DEFAULT 0,
  JobFiles INTEGER NOT NULL DEFAULT 0,
  JobBytes INTEGER NOT NULL DEFAULT 0,
  ReadBytes INTEGER NOT NULL DEFAULT 0,
  JobErrors INTEGER NOT NULL DEFAULT 0,
  VolSessionId INTEGER NOT NULL DEFAULT 0,
  VolSessionTime INTEGER NOT NULL DEFAULT 0,
  FDStatus TEXT NOT NULL DEFAULT '',
  SDStatus TEXT NOT NULL DEFAULT '',
  SDFiles INTEGER NOT NULL DEFAULT 0,
  SDBytes INTEGER NOT NULL DEFAULT 0,
  SDErrors INTEGER NOT NULL DEFAULT 0,
  PriorJobId INTEGER NOT NULL DEFAULT 0,
  ClientUname TEXT NOT NULL DEFAULT '',
  Termination TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS File (
  FileId INTEGER PRIMARY KEY,
  JobId INTEGER NOT NULL,
  FileIndex INTEGER NOT NULL,
  Path TEXT NOT NULL,
  Name TEXT NOT NULL,
  FileType INTEGER NOT NULL DEFAULT 0,
  LStat TEXT NOT NULL,
  Digest TEXT NOT NULL DEFAULT '',
  DigestType INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS File_JobId ON File (JobId, FileIndex);
CREATE TABLE IF NOT EXISTS Media (
  MediaId INTEGER PRIMARY KEY AUTOINCREMENT,
  VolumeName TEXT UNIQUE NOT NULL,
  Pool TEXT NOT NULL,
  MediaType TEXT NOT NULL,
  VolStatus TEXT NOT NULL DEFAULT 'Append',
  VolJobs INTEGER NOT NULL DEFAULT 0,
  VolFiles INTEGER NOT NULL DEFAULT 0,
  VolBlocks INTEGER NOT NULL DEFAULT 0,
  VolBytes INTEGER NOT NULL DEFAULT 0,
  VolABytes INTEGER NOT NULL DEFAULT 0,
  VolHoleBytes INTEGER NOT NULL DEFAULT 0,
  VolHoles INTEGER NOT NULL DEFAULT 0,
  VolMounts INTEGER NOT NULL DEFAULT 0,
  VolErrors INTEGER NOT NULL DEFAULT 0,
  VolWrites INTEGER NOT NULL DEFAULT 0,
  MaxVolBytes INTEGER NOT NULL DEFAULT 0,
  MaxVolJobs INTEGER NOT NULL DEFAULT 0,
  MaxVolFiles INTEGER NOT NULL DEFAULT 0,
  VolCapacityBytes INTEGER NOT NULL DEFAULT 0,
  Slot INTEGER NOT NULL DEFAULT 0,
  InChanger INTEGER NOT NULL DEFAULT 0,
  VolReadTime INTEGER NOT NULL DEFAULT 0,
  VolWriteTime INTEGER NOT NULL DEFAULT 0,
  EndFile INTEGER NOT NULL DEFAULT 0,
  EndBlock INTEGER NOT NULL DEFAULT 0,
  VolType INTEGER NOT NULL DEFAULT 0,
  LabelType INTEGER NOT NULL DEFAULT 0,
  Enabled INTEGER NOT NULL DEFAULT 1,
  Recycle INTEGER NOT NULL DEFAULT 0,
  VolParts INTEGER NOT NULL DEFAULT 0,
  VolCloudParts INTEGER NOT NULL DEFAULT 0,
  LastPartBytes INTEGER NOT NULL DEFAULT 0,
  FirstWritten INTEGER NOT NULL DEFAULT 0,
  LastWritten INTEGER NOT NULL DEFAULT 0,
  LabelDate INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS JobMedia (
  JobMediaId INTEGER PRIMARY KEY,
  JobId INTEGER NOT NULL,
  MediaId INTEGER NOT NULL,
  FirstIndex INTEGER NOT NULL,
  LastIndex INTEGER NOT NULL,
  StartFile INTEGER NOT NULL,
  EndFile INTEGER NOT NULL,
  StartBlock INTEGER NOT NULL,
  EndBlock INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS JobMedia_JobId ON JobMedia (JobId);
CREATE TABLE IF NOT EXISTS Log (
  LogId INTEGER PRIMARY KEY,
  JobId INTEGER NOT NULL,
  Time INTEGER NOT NULL,
  LogText TEXT NOT NULL
);
";

/// Job states that mean "not finished": a Director that stopped while they
/// ran leaves them behind; they are closed as errors at the next start.
const UNFINISHED: &str = "('C','R','F','S','m','M','s','j','c','d','t','p','i','a','l','L','B')";

/// A new job's catalog record.
#[derive(Clone, Debug, Default)]
pub struct NewJob {
    /// Unique job name (`Name.YYYY-MM-DD_HH.MM.SS_NN`).
    pub job: String,
    /// Job resource name.
    pub name: String,
    /// Type letter (`B`, `R`).
    pub kind: char,
    /// Level letter (`F`, `I`, `D`, ` `).
    pub level: char,
    /// Client name.
    pub client: String,
    /// FileSet name.
    pub fileset: String,
    /// Pool name.
    pub pool: String,
    /// Storage name.
    pub storage: String,
    /// When it was queued (epoch seconds).
    pub sched_time: i64,
    /// For restores: the backup job restored.
    pub prior_job_id: u32,
}

/// A job's catalog record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct JobRow {
    pub job_id: u32,
    pub job: String,
    pub name: String,
    pub kind: String,
    pub level: String,
    pub client: String,
    pub fileset: String,
    pub pool: String,
    pub storage: String,
    pub status: String,
    pub sched_time: i64,
    pub start_time: i64,
    pub end_time: i64,
    pub files: u64,
    pub bytes: u64,
    pub read_bytes: u64,
    pub errors: u32,
    pub vol_session_id: u32,
    pub vol_session_time: u32,
    pub termination: String,
}

/// The end of a job, stored in its record.
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct JobEndRow {
    pub status: char,
    pub end_time: i64,
    pub files: u64,
    pub bytes: u64,
    pub read_bytes: u64,
    pub errors: u32,
    pub fd_status: String,
    pub sd_status: String,
    pub sd_files: u64,
    pub sd_bytes: u64,
    pub sd_errors: u32,
    pub termination: String,
}

/// One file of a job.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileRow {
    /// FileIndex in the job.
    pub file_index: i32,
    /// Directory part, ending in `/`.
    pub path: String,
    /// Name part ("" for a directory).
    pub name: String,
    /// FT_* file type.
    pub file_type: i32,
    /// The encoded stat.
    pub lstat: String,
    /// Digest in base64 ("" if none).
    pub digest: String,
    /// Digest stream id (3 MD5, 10 SHA1, ...; 0 none).
    pub digest_type: i32,
}

impl FileRow {
    /// The full path (`path` + `name`).
    pub fn full_path(&self) -> String {
        format!("{}{}", self.path, self.name)
    }
}

/// Pool settings a volume gets when it is created.
#[derive(Clone, Debug, Default)]
pub struct PoolSpec {
    /// Pool name.
    pub name: String,
    /// `Label Format` (None: never create volumes).
    pub label_format: Option<String>,
    /// `Maximum Volume Bytes` (0 = no limit).
    pub max_vol_bytes: u64,
    /// `Maximum Volume Jobs` (0 = no limit).
    pub max_vol_jobs: u32,
    /// `Maximum Volume Files` (0 = no limit).
    pub max_vol_files: u32,
    /// `Recycle`.
    pub recycle: bool,
}

/// What a bootstrap needs per volume part of a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumePart {
    /// Volume name.
    pub volume: String,
    /// Its media type.
    pub media_type: String,
    /// The range on it.
    pub range: JobMediaRange,
}

/// The synchronous catalog.
pub struct Catalog {
    db: Connection,
}

impl Catalog {
    /// Opens (creating if needed) the catalog file and closes jobs a
    /// previous run left unfinished.
    pub fn open(path: &Path) -> CatResult<Catalog> {
        let db = Connection::open(path)?;
        Self::init(db)
    }

    /// An in-memory catalog (tests).
    pub fn memory() -> CatResult<Catalog> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(db: Connection) -> CatResult<Catalog> {
        db.busy_timeout(Duration::from_secs(10))?;
        db.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
            .or_else(|_| db.execute_batch("PRAGMA synchronous=NORMAL;"))?;
        db.execute_batch(SCHEMA)?;
        db.execute(
            &format!(
                "UPDATE Job SET JobStatus='E', Termination='*** Director stopped during the job ***' \
                 WHERE JobStatus IN {UNFINISHED}"
            ),
            [],
        )?;
        Ok(Catalog { db })
    }

    /// Creates a job record; its JobId.
    pub fn create_job(&mut self, j: &NewJob) -> CatResult<u32> {
        self.db.execute(
            "INSERT INTO Job (Job, Name, Type, Level, Client, FileSet, Pool, Storage, SchedTime, PriorJobId)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                j.job,
                j.name,
                j.kind.to_string(),
                j.level.to_string(),
                j.client,
                j.fileset,
                j.pool,
                j.storage,
                j.sched_time,
                j.prior_job_id
            ],
        )?;
        Ok(self.db.last_insert_rowid() as u32)
    }

    /// Marks a job running (start time, session ids, level after upgrades).
    pub fn start_job(
        &mut self,
        job_id: u32,
        start: i64,
        level: char,
        vol_session: (u32, u32),
    ) -> CatResult<()> {
        self.db.execute(
            "UPDATE Job SET JobStatus='R', StartTime=?2, Level=?3, VolSessionId=?4, VolSessionTime=?5
             WHERE JobId=?1",
            params![job_id, start, level.to_string(), vol_session.0, vol_session.1],
        )?;
        Ok(())
    }

    /// Records the client's version text (from its `2000 OK Job` reply).
    pub fn set_client_uname(&mut self, job_id: u32, uname: &str) -> CatResult<()> {
        self.db.execute(
            "UPDATE Job SET ClientUname=?2 WHERE JobId=?1",
            params![job_id, uname],
        )?;
        Ok(())
    }

    /// Stores a job's end.
    pub fn end_job(&mut self, job_id: u32, e: &JobEndRow) -> CatResult<()> {
        self.db.execute(
            "UPDATE Job SET JobStatus=?2, EndTime=?3, JobFiles=?4, JobBytes=?5, ReadBytes=?6,
               JobErrors=?7, FDStatus=?8, SDStatus=?9, SDFiles=?10, SDBytes=?11, SDErrors=?12,
               Termination=?13
             WHERE JobId=?1",
            params![
                job_id,
                e.status.to_string(),
                e.end_time,
                e.files as i64,
                e.bytes as i64,
                e.read_bytes as i64,
                e.errors,
                e.fd_status,
                e.sd_status,
                e.sd_files as i64,
                e.sd_bytes as i64,
                e.sd_errors,
                e.termination
            ],
        )?;
        Ok(())
    }

    /// One job.
    pub fn job(&self, job_id: u32) -> CatResult<Option<JobRow>> {
        Ok(self
            .db
            .query_row(
                &format!("{JOB_SELECT} WHERE JobId=?1"),
                [job_id],
                job_from_row,
            )
            .optional()?)
    }

    /// The last `limit` jobs, oldest first.
    pub fn jobs(&self, limit: u32) -> CatResult<Vec<JobRow>> {
        let mut st = self.db.prepare(&format!(
            "SELECT * FROM ({JOB_SELECT} ORDER BY JobId DESC LIMIT ?1) ORDER BY JobId"
        ))?;
        let rows = st.query_map([limit], job_from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// The last successful backup of this job name / client / fileset at one
    /// of `levels` (for Incremental / Differential since-times).
    pub fn last_backup(
        &self,
        name: &str,
        client: &str,
        fileset: &str,
        levels: &str,
    ) -> CatResult<Option<JobRow>> {
        let mut st = self.db.prepare(&format!(
            "{JOB_SELECT} WHERE Name=?1 AND Client=?2 AND FileSet=?3 AND Type='B'
               AND JobStatus IN ('T','W') ORDER BY StartTime DESC, JobId DESC"
        ))?;
        let rows = st.query_map(params![name, client, fileset], job_from_row)?;
        for r in rows {
            let r = r?;
            if levels.contains(r.level.as_str()) {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// Inserts file records (one transaction).
    pub fn add_files(&mut self, job_id: u32, files: &[FileRow]) -> CatResult<()> {
        let tx = self.db.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO File (JobId, FileIndex, Path, Name, FileType, LStat, Digest, DigestType)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for f in files {
                st.execute(params![
                    job_id,
                    f.file_index,
                    f.path,
                    f.name,
                    f.file_type,
                    f.lstat,
                    f.digest,
                    f.digest_type
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Sets the digest of files already stored.
    pub fn set_digests(&mut self, job_id: u32, digests: &[(i32, String, i32)]) -> CatResult<()> {
        let tx = self.db.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "UPDATE File SET Digest=?3, DigestType=?4 WHERE JobId=?1 AND FileIndex=?2",
            )?;
            for (fi, d, t) in digests {
                st.execute(params![job_id, fi, d, t])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// A job's files in FileIndex order.
    pub fn files(&self, job_id: u32) -> CatResult<Vec<FileRow>> {
        let mut st = self.db.prepare(
            "SELECT FileIndex, Path, Name, FileType, LStat, Digest, DigestType FROM File
             WHERE JobId=?1 ORDER BY FileIndex",
        )?;
        let rows = st.query_map([job_id], |r| {
            Ok(FileRow {
                file_index: r.get(0)?,
                path: r.get(1)?,
                name: r.get(2)?,
                file_type: r.get(3)?,
                lstat: r.get(4)?,
                digest: r.get(5)?,
                digest_type: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Appends a job log line.
    pub fn log(&mut self, job_id: u32, time: i64, text: &str) -> CatResult<()> {
        self.db.execute(
            "INSERT INTO Log (JobId, Time, LogText) VALUES (?1, ?2, ?3)",
            params![job_id, time, text],
        )?;
        Ok(())
    }

    /// A job's log lines.
    pub fn job_log(&self, job_id: u32) -> CatResult<Vec<String>> {
        let mut st = self
            .db
            .prepare("SELECT LogText FROM Log WHERE JobId=?1 ORDER BY LogId")?;
        let rows = st.query_map([job_id], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// `FindMedia`: an appendable, enabled volume of this pool and media
    /// type with room left; else a new one named from the pool's Label
    /// Format; None when neither is possible.
    pub fn find_media(
        &mut self,
        pool: &PoolSpec,
        media_type: &str,
        vol_type: u32,
        now: i64,
    ) -> CatResult<Option<MediaInfo>> {
        let candidates: Vec<(u64, u32, u64, u32, u32)> = {
            let mut st = self.db.prepare(
                "SELECT MediaId, VolJobs, VolBytes, MaxVolJobs, VolFiles FROM Media
                 WHERE Pool=?1 AND MediaType=?2 AND VolStatus IN ('Append','Recycle','Purged')
                   AND Enabled=1 ORDER BY LastWritten DESC, MediaId",
            )?;
            let rows = st.query_map(params![pool.name, media_type], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get(1)?,
                    r.get::<_, i64>(2)? as u64,
                    r.get(3)?,
                    r.get(4)?,
                ))
            })?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        for (id, jobs, bytes, max_jobs, files) in candidates {
            let full_jobs = max_jobs > 0 && jobs >= max_jobs;
            let full_bytes = pool.max_vol_bytes > 0 && bytes >= pool.max_vol_bytes;
            let full_files = pool.max_vol_files > 0 && files >= pool.max_vol_files;
            if full_jobs || full_bytes || full_files {
                let status = if full_jobs { "Used" } else { "Full" };
                self.db.execute(
                    "UPDATE Media SET VolStatus=?2 WHERE MediaId=?1",
                    params![id as i64, status],
                )?;
                continue;
            }
            return self.media_by_id(id);
        }
        let Some(format) = &pool.label_format else {
            return Ok(None);
        };
        let next: i64 =
            self.db
                .query_row("SELECT COALESCE(MAX(MediaId), 0) + 1 FROM Media", [], |r| {
                    r.get(0)
                })?;
        let mut n = next;
        let name = loop {
            let candidate = format!("{format}{n:04}");
            let exists: bool = self.db.query_row(
                "SELECT COUNT(*) > 0 FROM Media WHERE VolumeName=?1",
                [&candidate],
                |r| r.get(0),
            )?;
            if !exists {
                break candidate;
            }
            n += 1;
        };
        self.db.execute(
            "INSERT INTO Media (VolumeName, Pool, MediaType, VolStatus, MaxVolBytes, MaxVolJobs,
               MaxVolFiles, VolType, Recycle, LabelDate)
             VALUES (?1, ?2, ?3, 'Append', ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                name,
                pool.name,
                media_type,
                pool.max_vol_bytes as i64,
                pool.max_vol_jobs,
                pool.max_vol_files,
                vol_type,
                i32::from(pool.recycle),
                now
            ],
        )?;
        let id = self.db.last_insert_rowid() as u64;
        self.media_by_id(id)
    }

    /// A volume by name.
    pub fn media_by_name(&self, name: &str) -> CatResult<Option<MediaInfo>> {
        Ok(self
            .db
            .query_row(
                &format!("{MEDIA_SELECT} WHERE VolumeName=?1"),
                [name],
                media_from_row,
            )
            .optional()?)
    }

    fn media_by_id(&self, id: u64) -> CatResult<Option<MediaInfo>> {
        Ok(self
            .db
            .query_row(
                &format!("{MEDIA_SELECT} WHERE MediaId=?1"),
                [id as i64],
                media_from_row,
            )
            .optional()?)
    }

    /// Every volume, by MediaId.
    pub fn media(&self) -> CatResult<Vec<(MediaInfo, String)>> {
        let mut st = self
            .db
            .prepare(&format!("{MEDIA_SELECT} ORDER BY MediaId"))?;
        let rows = st.query_map([], |r| Ok((media_from_row(r)?, r.get::<_, String>(31)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// `UpdateMedia`: stores the SD's statistics; the volume becomes Used
    /// or Full when it reached its limits. Returns the new record.
    pub fn update_media(&mut self, u: &UpdateMedia, now: i64) -> CatResult<MediaInfo> {
        let Some(old) = self.media_by_name(&u.vol_name)? else {
            return Err(CatalogError::NotFound(format!(
                "Volume \"{}\" not in catalog",
                u.vol_name
            )));
        };
        let mut status = if u.vol_status.is_empty() {
            old.vol_status.clone()
        } else {
            u.vol_status.clone()
        };
        if status == "Append" {
            if old.max_vol_jobs > 0 && u.vol_jobs >= old.max_vol_jobs {
                status = "Used".into();
            } else if old.max_vol_bytes > 0 && u.vol_bytes >= old.max_vol_bytes {
                status = "Full".into();
            }
        }
        let first = if u.vol_first_written > 0 {
            u.vol_first_written
        } else {
            now
        };
        self.db.execute(
            "UPDATE Media SET VolJobs=?2, VolFiles=?3, VolBlocks=?4, VolBytes=?5, VolABytes=?6,
               VolHoleBytes=?7, VolHoles=?8, VolMounts=?9, VolErrors=?10, VolWrites=?11,
               VolStatus=?12, Slot=?13, InChanger=?14, VolReadTime=?15, VolWriteTime=?16,
               VolParts=?17, VolCloudParts=?18, LastPartBytes=?19, LastWritten=?20,
               FirstWritten=CASE WHEN FirstWritten=0 THEN ?21 ELSE FirstWritten END,
               LabelDate=CASE WHEN ?22 THEN ?20 ELSE LabelDate END,
               VolType=CASE WHEN ?23 > 0 THEN ?23 ELSE VolType END
             WHERE VolumeName=?1",
            params![
                u.vol_name,
                u.vol_jobs,
                u.vol_files,
                u.vol_blocks,
                u.vol_bytes as i64,
                u.vol_abytes as i64,
                u.vol_hole_bytes as i64,
                u.vol_holes,
                u.vol_mounts,
                u.vol_errors,
                u.vol_writes as i64,
                status,
                u.slot,
                i32::from(u.in_changer),
                u.vol_read_time,
                u.vol_write_time,
                u.vol_parts,
                u.vol_cloud_parts,
                u.last_part_bytes,
                if u.end_time > 0 { u.end_time } else { now },
                first,
                u.relabel,
                u.vol_type,
            ],
        )?;
        self.media_by_name(&u.vol_name)?
            .ok_or_else(|| CatalogError::NotFound(u.vol_name.clone()))
    }

    /// `CreateJobMedia`: stores the ranges (placeholders included, as
    /// Bacula does; bootstraps skip them).
    pub fn add_jobmedia(&mut self, job_id: u32, ranges: &[JobMediaRange]) -> CatResult<()> {
        let tx = self.db.transaction()?;
        for r in ranges {
            tx.execute(
                "INSERT INTO JobMedia (JobId, MediaId, FirstIndex, LastIndex, StartFile, EndFile,
                   StartBlock, EndBlock) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    job_id,
                    r.media_id as i64,
                    r.first_index,
                    r.last_index,
                    r.start_file,
                    r.end_file,
                    r.start_block,
                    r.end_block
                ],
            )?;
            tx.execute(
                "UPDATE Media SET EndFile=?2, EndBlock=?3 WHERE MediaId=?1",
                params![r.media_id as i64, r.end_file, r.end_block],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The volume parts holding a job's files, placeholders left out, in order.
    pub fn volume_parts(&self, job_id: u32) -> CatResult<Vec<VolumePart>> {
        let mut st = self.db.prepare(
            "SELECT m.VolumeName, m.MediaType, j.FirstIndex, j.LastIndex, j.StartFile, j.EndFile,
                    j.StartBlock, j.EndBlock, j.MediaId
             FROM JobMedia j JOIN Media m ON m.MediaId = j.MediaId
             WHERE j.JobId=?1 AND NOT (j.FirstIndex=0 AND j.LastIndex=0)
             ORDER BY j.JobMediaId",
        )?;
        let rows = st.query_map([job_id], |r| {
            Ok(VolumePart {
                volume: r.get(0)?,
                media_type: r.get(1)?,
                range: JobMediaRange {
                    first_index: r.get(2)?,
                    last_index: r.get(3)?,
                    start_file: r.get(4)?,
                    end_file: r.get(5)?,
                    start_block: r.get(6)?,
                    end_block: r.get(7)?,
                    media_id: r.get::<_, i64>(8)? as u64,
                },
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

const JOB_SELECT: &str = "SELECT JobId, Job, Name, Type, Level, Client, FileSet, Pool, Storage,
  JobStatus, SchedTime, StartTime, EndTime, JobFiles, JobBytes, ReadBytes, JobErrors,
  VolSessionId, VolSessionTime, Termination FROM Job";

fn job_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
    Ok(JobRow {
        job_id: r.get(0)?,
        job: r.get(1)?,
        name: r.get(2)?,
        kind: r.get(3)?,
        level: r.get(4)?,
        client: r.get(5)?,
        fileset: r.get(6)?,
        pool: r.get(7)?,
        storage: r.get(8)?,
        status: r.get(9)?,
        sched_time: r.get(10)?,
        start_time: r.get(11)?,
        end_time: r.get(12)?,
        files: r.get::<_, i64>(13)? as u64,
        bytes: r.get::<_, i64>(14)? as u64,
        read_bytes: r.get::<_, i64>(15)? as u64,
        errors: r.get(16)?,
        vol_session_id: r.get(17)?,
        vol_session_time: r.get(18)?,
        termination: r.get(19)?,
    })
}

const MEDIA_SELECT: &str = "SELECT VolumeName, VolJobs, VolFiles, VolBlocks, VolBytes, VolABytes,
  VolHoleBytes, VolHoles, VolMounts, VolErrors, VolWrites, MaxVolBytes, VolCapacityBytes,
  VolStatus, Slot, MaxVolJobs, MaxVolFiles, InChanger, VolReadTime, VolWriteTime, EndFile,
  EndBlock, VolType, LabelType, MediaId, VolParts, VolCloudParts, LastPartBytes, Enabled,
  Recycle, MediaType, Pool FROM Media";

fn media_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MediaInfo> {
    Ok(MediaInfo {
        vol_name: r.get(0)?,
        vol_jobs: r.get(1)?,
        vol_files: r.get(2)?,
        vol_blocks: r.get(3)?,
        vol_bytes: r.get::<_, i64>(4)? as u64,
        vol_abytes: r.get::<_, i64>(5)? as u64,
        vol_hole_bytes: r.get::<_, i64>(6)? as u64,
        vol_holes: r.get(7)?,
        vol_mounts: r.get(8)?,
        vol_errors: r.get(9)?,
        vol_writes: r.get::<_, i64>(10)? as u64,
        max_vol_bytes: r.get::<_, i64>(11)? as u64,
        vol_capacity_bytes: r.get::<_, i64>(12)? as u64,
        vol_status: r.get(13)?,
        slot: r.get(14)?,
        max_vol_jobs: r.get(15)?,
        max_vol_files: r.get(16)?,
        in_changer: r.get(17)?,
        vol_read_time: r.get(18)?,
        vol_write_time: r.get(19)?,
        end_file: r.get(20)?,
        end_block: r.get(21)?,
        vol_type: r.get(22)?,
        label_type: r.get(23)?,
        media_id: r.get::<_, i64>(24)? as u64,
        scratch_pool_id: 0,
        vol_parts: r.get(25)?,
        vol_cloud_parts: r.get(26)?,
        last_part_bytes: r.get(27)?,
        enabled: r.get(28)?,
        pool_bytes: None,
        recycle: r.get(29)?,
    })
}

type Request = Box<dyn FnOnce(&mut Catalog) + Send>;

/// The catalog on its own thread: every call is queued (at most
/// [`QUEUE`] waiting) and runs off the async reactor.
#[derive(Clone)]
pub struct CatalogHandle {
    tx: mpsc::Sender<Request>,
    /// Where the database file is.
    pub path: PathBuf,
}

/// How many catalog requests may wait before callers are held back.
pub const QUEUE: usize = 256;

impl CatalogHandle {
    /// Opens the catalog file and starts its thread.
    pub fn open(path: &Path) -> CatResult<CatalogHandle> {
        let cat = Catalog::open(path)?;
        Ok(Self::spawn(cat, path.to_path_buf()))
    }

    /// Runs an already opened catalog on its own thread.
    pub fn spawn(mut cat: Catalog, path: PathBuf) -> CatalogHandle {
        let (tx, mut rx) = mpsc::channel::<Request>(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("catalog".into())
            .spawn(move || {
                while let Some(req) = rx.blocking_recv() {
                    req(&mut cat);
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start the catalog thread: {e}");
        }
        CatalogHandle { tx, path }
    }

    /// Runs `f` on the catalog thread and returns its result.
    pub async fn call<R, F>(&self, f: F) -> CatResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Catalog) -> CatResult<R> + Send + 'static,
    {
        let (otx, orx) = oneshot::channel();
        let req: Request = Box::new(move |c| {
            let _ = otx.send(f(c));
        });
        self.tx.send(req).await.map_err(|_| CatalogError::Stopped)?;
        orx.await.map_err(|_| CatalogError::Stopped)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> PoolSpec {
        PoolSpec {
            name: "File".into(),
            label_format: Some("Vol-".into()),
            max_vol_bytes: 1000,
            max_vol_jobs: 0,
            max_vol_files: 0,
            recycle: true,
        }
    }

    #[test]
    fn jobs_files_and_listing() {
        let mut c = Catalog::memory().unwrap();
        let id = c
            .create_job(&NewJob {
                job: "BackupData.2026-11-29_06.44.04_01".into(),
                name: "BackupData".into(),
                kind: 'B',
                level: 'F',
                client: "fd".into(),
                fileset: "Set".into(),
                ..NewJob::default()
            })
            .unwrap();
        assert_eq!(id, 1);
        c.start_job(id, 100, 'F', (1, 1_795_934_639)).unwrap();
        c.add_files(
            id,
            &[
                FileRow {
                    file_index: 1,
                    path: "/data/".into(),
                    name: "a.txt".into(),
                    file_type: 3,
                    lstat: "P4A".into(),
                    ..FileRow::default()
                },
                FileRow {
                    file_index: 2,
                    path: "/data/".into(),
                    name: "".into(),
                    file_type: 5,
                    lstat: "P4B".into(),
                    ..FileRow::default()
                },
            ],
        )
        .unwrap();
        c.set_digests(id, &[(1, "abc".into(), 3)]).unwrap();
        let files = c.files(id).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].full_path(), "/data/a.txt");
        assert_eq!(files[0].digest, "abc");
        assert_eq!(files[1].full_path(), "/data/");
        c.end_job(
            id,
            &JobEndRow {
                status: 'T',
                end_time: 110,
                files: 2,
                bytes: 38,
                termination: "Backup OK".into(),
                ..JobEndRow::default()
            },
        )
        .unwrap();
        let j = c.job(id).unwrap().unwrap();
        assert_eq!((j.status.as_str(), j.files, j.bytes), ("T", 2, 38));
        assert_eq!(j.vol_session_time, 1_795_934_639);
        assert_eq!(c.jobs(10).unwrap().len(), 1);
        assert!(c
            .last_backup("BackupData", "fd", "Set", "F")
            .unwrap()
            .is_some());
        assert!(c
            .last_backup("BackupData", "fd", "Other", "F")
            .unwrap()
            .is_none());
        c.log(id, 5, "hello").unwrap();
        assert_eq!(c.job_log(id).unwrap(), vec!["hello".to_string()]);
    }

    #[test]
    fn volumes_are_created_reused_and_filled() {
        let mut c = Catalog::memory().unwrap();
        let p = pool();
        let v1 = c.find_media(&p, "File", 1, 10).unwrap().unwrap();
        assert_eq!(v1.vol_name, "Vol-0001");
        assert_eq!(v1.vol_status, "Append");
        assert_eq!(v1.max_vol_bytes, 1000);
        assert_eq!(v1.recycle, 1);
        // Reused while appendable.
        assert_eq!(
            c.find_media(&p, "File", 1, 11).unwrap().unwrap().media_id,
            v1.media_id
        );
        // Statistics: over the byte limit the volume becomes Full.
        let u = UpdateMedia {
            job_id: 1,
            vol_name: "Vol-0001".into(),
            vol_jobs: 1,
            vol_bytes: 2000,
            vol_status: "Append".into(),
            relabel: true,
            ..UpdateMedia::default()
        };
        let m = c.update_media(&u, 12).unwrap();
        assert_eq!(m.vol_status, "Full");
        assert_eq!(m.vol_bytes, 2000);
        let v2 = c.find_media(&p, "File", 1, 13).unwrap().unwrap();
        assert_eq!(v2.vol_name, "Vol-0002");
        // No label format: no new volume.
        let none = PoolSpec {
            name: "Other".into(),
            ..PoolSpec::default()
        };
        assert!(c.find_media(&none, "File", 1, 14).unwrap().is_none());
        assert!(c
            .update_media(
                &UpdateMedia {
                    vol_name: "nope".into(),
                    ..UpdateMedia::default()
                },
                1
            )
            .is_err());
        assert_eq!(c.media().unwrap().len(), 2);
    }

    #[test]
    fn jobmedia_parts_skip_placeholders() {
        let mut c = Catalog::memory().unwrap();
        let v = c.find_media(&pool(), "File", 1, 1).unwrap().unwrap();
        let placeholder = JobMediaRange {
            media_id: v.media_id,
            ..JobMediaRange::default()
        };
        let real = JobMediaRange {
            first_index: 1,
            last_index: 6,
            start_block: 211,
            end_block: 225_428,
            media_id: v.media_id,
            ..JobMediaRange::default()
        };
        c.add_jobmedia(7, &[placeholder]).unwrap();
        c.add_jobmedia(7, &[real]).unwrap();
        let parts = c.volume_parts(7).unwrap();
        assert_eq!(
            parts,
            vec![VolumePart {
                volume: "Vol-0001".into(),
                media_type: "File".into(),
                range: real
            }]
        );
    }

    #[test]
    fn unfinished_jobs_are_closed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CATALOG_FILE);
        {
            let mut c = Catalog::open(&path).unwrap();
            let id = c
                .create_job(&NewJob {
                    job: "x.1".into(),
                    name: "x".into(),
                    kind: 'B',
                    level: 'F',
                    ..NewJob::default()
                })
                .unwrap();
            c.start_job(id, 1, 'F', (0, 0)).unwrap();
        }
        let c = Catalog::open(&path).unwrap();
        assert_eq!(c.job(1).unwrap().unwrap().status, "E");
    }

    #[tokio::test]
    async fn handle_runs_off_the_reactor() {
        let h = CatalogHandle::spawn(Catalog::memory().unwrap(), PathBuf::from(":memory:"));
        let id = h
            .call(|c| {
                c.create_job(&NewJob {
                    job: "j.1".into(),
                    name: "j".into(),
                    kind: 'B',
                    level: 'F',
                    ..NewJob::default()
                })
            })
            .await
            .unwrap();
        assert_eq!(id, 1);
        let row = h.call(move |c| c.job(id)).await.unwrap().unwrap();
        assert_eq!(row.name, "j");
    }
}
