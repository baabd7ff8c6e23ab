//! Storage daemon job lines (protocol-jobs.md §5.2, §5.5, §6.1, §6.3): what
//! the Director sends to set a job up on the SD (job line, device
//! reservation, bootstrap, `run`, `cancel`), the SD's replies, the FD <-> SD
//! session lines of the data channel, and the session key format. The
//! read session's `rechdr` and the record stream headers are in
//! [`super::attr`].
//!
//! Every line has a parser (Bacula's lenient scanner rules: a missing number
//! reads as 0, extra text after the format is ignored) and a formatter that
//! produces the exact bytes a 9.6 peer sends, so the Director side and the
//! SD side share one definition. Sans-IO: the session key generator takes
//! its 16 random bytes as an argument.
//!
//! Names that may contain spaces (job, pool, storage, device, volume names)
//! travel "bashed" (space -> byte 0x01); the typed values hold them unbashed.

// The trailing "\n" of each line is part of the wire bytes; keep it visible.
#![allow(clippy::write_with_newline)]

use std::fmt;

use crate::job::attr::JobStatus;
use crate::scan::Scanner;

/// Longest name the SD's `%127s` conversions take.
pub const NAME_MAX: usize = 127;

/// `run` (no newline): the Director's last job-setup command.
pub const RUN: &str = "run";
/// `bootstrap\n`: a bootstrap follows, one line per packet, then EOD.
pub const BOOTSTRAP: &str = "bootstrap\n";
/// SD reply to a well-formed bootstrap.
pub const OK_BOOTSTRAP: &str = "3000 OK bootstrap\n";
/// SD reply to a bootstrap it cannot use.
pub const ERROR_BOOTSTRAP: &str = "3904 Error bootstrap\n";
/// `3000 OK data\n`: the SD is ready for the record stream / sends records.
pub const OK_DATA: &str = "3000 OK data\n";
/// `3000 OK append data\n`: the SD stored the whole record stream.
pub const OK_APPEND_DATA: &str = "3000 OK append data\n";
/// `3000 OK end\n`: reply to `append end session`.
pub const OK_END: &str = "3000 OK end\n";
/// `3999 Failed append\n`: the record stream could not be stored.
pub const FAILED_APPEND: &str = "3999 Failed append\n";
/// `3901 Error session already open\n`.
pub const ERROR_SESSION_OPEN: &str = "3901 Error session already open\n";
/// `3902 Error session not opened\n`.
pub const ERROR_SESSION_NOT_OPEN: &str = "3902 Error session not opened\n";
/// `3904 Error open session, bad parameters\n` (read open session).
pub const ERROR_READ_OPEN: &str = "3904 Error open session, bad parameters\n";
/// `3000 error\n`: the SD cannot read any volume of the bootstrap.
pub const READ_DATA_ERROR: &str = "3000 error\n";

/// Replaces spaces by byte 0x01 (Bacula's `bash_spaces`).
pub fn bash(s: &str) -> String {
    s.replace(' ', "\u{1}")
}

/// Turns byte 0x01 back into spaces (Bacula's `unbash_spaces`).
pub fn unbash(s: &str) -> String {
    s.replace('\u{1}', " ")
}

/// Why a line did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The line does not have the expected shape.
    #[error("bad {what} line: {line:?}")]
    Bad {
        /// Which line was expected.
        what: &'static str,
        /// The text received (cut to 200 characters).
        line: String,
    },
    /// A bootstrap line is malformed.
    #[error("bootstrap line {line}: {reason}")]
    Bootstrap {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

fn bad(what: &'static str, line: &str) -> ParseError {
    ParseError::Bad {
        what,
        line: line.chars().take(200).collect(),
    }
}

// ---------------------------------------------------------------------------
// Session key

/// Letters of a session key: `A` + nibble.
const KEY_LETTERS: &[u8; 16] = b"ABCDEFGHIJKLMNOP";

/// The job's session key from 16 random bytes: one letter `A`..`P` per
/// nibble (high nibble first), 8 groups of four joined by `-` (39 chars).
pub fn session_key(random: &[u8; 16]) -> String {
    let mut out = String::with_capacity(39);
    for (i, b) in random.iter().enumerate() {
        if i > 0 && i % 2 == 0 {
            out.push('-');
        }
        out.push(KEY_LETTERS[usize::from(b >> 4)] as char);
        out.push(KEY_LETTERS[usize::from(b & 0xf)] as char);
    }
    out
}

/// Whether `s` has the session key shape `[A-P]{4}(-[A-P]{4}){7}`.
pub fn is_session_key(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 39
        && b.iter().enumerate().all(|(i, &c)| {
            if i % 5 == 4 {
                c == b'-'
            } else {
                (b'A'..=b'P').contains(&c)
            }
        })
}

// ---------------------------------------------------------------------------
// Job line

/// The Director's job line to the SD (§5.2, §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCommand {
    /// Numeric JobId.
    pub job_id: u32,
    /// Unique job name `<JobName>.<YYYY-MM-DD_HH.MM.SS>_<NN>`.
    pub job: String,
    /// Job resource name.
    pub job_name: String,
    /// Client resource name.
    pub client_name: String,
    /// Job type letter (`B` backup, `R` restore, ...), sent as its code.
    pub job_type: char,
    /// Job level letter (`F`, `I`, `D`, ` ` for restore), sent as its code.
    pub level: char,
    /// FileSet resource name.
    pub fileset: String,
    /// The pool does not catalog files.
    pub no_attr: bool,
    /// Job "Spool Attributes".
    pub spool_attr: bool,
    /// Catalog MD5 of the FileSet (`**Dummy**` if none).
    pub fileset_md5: String,
    /// Job "Spool Data".
    pub spool_data: bool,
    /// Job "Write Part After Job".
    pub write_part_after_job: bool,
    /// Job "Prefer Mounted Volumes".
    pub prefer_mounted_vols: bool,
    /// Spool size in bytes (0 = default).
    pub spool_size: u64,
    /// Restarting an incomplete job.
    pub rerunning: bool,
    /// VolSessionId of the job being restarted (else 0).
    pub vol_session_id: u32,
    /// VolSessionTime of the job being restarted (else 0).
    pub vol_session_time: u32,
    /// SD-to-SD copy/migration.
    pub sd_client: bool,
    /// `dummy` from a Director (the SD generates the real key).
    pub authorization: String,
}

impl JobCommand {
    /// Parses the job line (a trailing newline or NUL is fine).
    pub fn parse(line: &str) -> Result<JobCommand, ParseError> {
        let err = || bad("job", line);
        let mut s = Scanner::lenient(line);
        let num = |s: &mut Scanner, key: &str| -> Option<i64> {
            s.lit(key)?;
            s.int()
        };
        let job_id = num(&mut s, "JobId=").and_then(|v| u32::try_from(v).ok());
        let job_id = job_id.ok_or_else(err)?;
        let word = |s: &mut Scanner, key: &str| -> Option<String> {
            s.ws();
            s.lit(key)?;
            s.word(NAME_MAX).map(unbash)
        };
        let job = word(&mut s, "job=").ok_or_else(err)?;
        let job_name = word(&mut s, "job_name=").ok_or_else(err)?;
        let client_name = word(&mut s, "client_name=").ok_or_else(err)?;
        let n = |s: &mut Scanner, key: &str| -> Option<i64> {
            s.ws();
            s.lit(key)?;
            s.int()
        };
        let code = |v: i64| u8::try_from(v).ok().map(char::from);
        let job_type = n(&mut s, "type=").and_then(code).ok_or_else(err)?;
        let level = n(&mut s, "level=").and_then(code).ok_or_else(err)?;
        let fileset = word(&mut s, "FileSet=").ok_or_else(err)?;
        let no_attr = n(&mut s, "NoAttr=").ok_or_else(err)? != 0;
        let spool_attr = n(&mut s, "SpoolAttr=").ok_or_else(err)? != 0;
        let fileset_md5 = word(&mut s, "FileSetMD5=").ok_or_else(err)?;
        let spool_data = n(&mut s, "SpoolData=").ok_or_else(err)? != 0;
        let write_part_after_job = n(&mut s, "WritePartAfterJob=").ok_or_else(err)? != 0;
        let prefer_mounted_vols = n(&mut s, "PreferMountedVols=").ok_or_else(err)? != 0;
        let spool_size = word(&mut s, "SpoolSize=").ok_or_else(err)?;
        let spool_size = if spool_size.is_empty() {
            0
        } else {
            spool_size.parse().map_err(|_| err())?
        };
        let rerunning = n(&mut s, "rerunning=").ok_or_else(err)? != 0;
        let u32_of = |v: i64| u32::try_from(v).ok();
        let vol_session_id = n(&mut s, "VolSessionId=").and_then(u32_of);
        let vol_session_id = vol_session_id.ok_or_else(err)?;
        let vol_session_time = n(&mut s, "VolSessionTime=").and_then(u32_of);
        let vol_session_time = vol_session_time.ok_or_else(err)?;
        let sd_client = n(&mut s, "sd_client=").ok_or_else(err)? != 0;
        let authorization = word(&mut s, "Authorization=").ok_or_else(err)?;
        Ok(JobCommand {
            job_id,
            job,
            job_name,
            client_name,
            job_type,
            level,
            fileset,
            no_attr,
            spool_attr,
            fileset_md5,
            spool_data,
            write_part_after_job,
            prefer_mounted_vols,
            spool_size,
            rerunning,
            vol_session_id,
            vol_session_time,
            sd_client,
            authorization,
        })
    }

    /// Whether this is a backup job (type `B`).
    pub fn is_backup(&self) -> bool {
        self.job_type == 'B'
    }

    /// Whether this is a restore job (type `R`).
    pub fn is_restore(&self) -> bool {
        self.job_type == 'R'
    }
}

/// The exact 9.6 line, newline included.
impl fmt::Display for JobCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "JobId={} job={} job_name={} client_name={} type={} level={} FileSet={} NoAttr={} \
             SpoolAttr={} FileSetMD5={} SpoolData={} WritePartAfterJob={} PreferMountedVols={} \
             SpoolSize={} rerunning={} VolSessionId={} VolSessionTime={} sd_client={} \
             Authorization={}\n",
            self.job_id,
            bash(&self.job),
            bash(&self.job_name),
            bash(&self.client_name),
            u32::from(self.job_type),
            u32::from(self.level),
            bash(&self.fileset),
            u8::from(self.no_attr),
            u8::from(self.spool_attr),
            self.fileset_md5,
            u8::from(self.spool_data),
            u8::from(self.write_part_after_job),
            u8::from(self.prefer_mounted_vols),
            self.spool_size,
            u8::from(self.rerunning),
            self.vol_session_id,
            self.vol_session_time,
            u8::from(self.sd_client),
            self.authorization,
        )
    }
}

/// The SD's reply to the job line: `3000 OK Job SDid=%u SDtime=%u Authorization=%s\n`.
#[derive(Clone, PartialEq, Eq)]
pub struct JobReply {
    /// The SD's VolSessionId for this job.
    pub sd_id: u32,
    /// The SD's VolSessionTime (its start time, epoch seconds).
    pub sd_time: u32,
    /// The session key the FD logs in with (see [`session_key`]).
    pub authorization: String,
}

impl fmt::Debug for JobReply {
    /// Never prints the session key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobReply")
            .field("sd_id", &self.sd_id)
            .field("sd_time", &self.sd_time)
            .field("authorization", &"<redacted>")
            .finish()
    }
}

impl JobReply {
    /// Parses `3000 OK Job SDid=.. SDtime=.. Authorization=..`.
    pub fn parse(line: &str) -> Result<JobReply, ParseError> {
        let err = || bad("3000 OK Job", line);
        let mut s = Scanner::lenient(line);
        s.lit("3000 OK Job SDid=").ok_or_else(err)?;
        let sd_id = s.uint().ok_or_else(err)?;
        s.lit(" SDtime=").ok_or_else(err)?;
        let sd_time = s.uint().ok_or_else(err)?;
        s.lit(" Authorization=").ok_or_else(err)?;
        let authorization = s.word(100).ok_or_else(err)?.to_string();
        Ok(JobReply {
            sd_id,
            sd_time,
            authorization,
        })
    }
}

/// The exact line, newline included.
impl fmt::Display for JobReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "3000 OK Job SDid={} SDtime={} Authorization={}\n",
            self.sd_id, self.sd_time, self.authorization
        )
    }
}

/// `3915 Bad Job command. stat=%d CMD: %s\n`: the job line did not parse
/// (`stat` = number of fields read; the command is echoed).
pub fn bad_job_reply(fields: usize, cmd: &str) -> String {
    format!(
        "3915 Bad Job command. stat={fields} CMD: {}\n",
        cmd.trim_end()
    )
}

// ---------------------------------------------------------------------------
// Device reservation

/// `use storage=%s media_type=%s pool_name=%s pool_type=%s append=%d copy=%d stripe=%d\n`
/// (13.x adds ` wait=%d`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseStorage {
    /// Storage resource name (Director's).
    pub storage: String,
    /// Media type the devices must have.
    pub media_type: String,
    /// Pool name.
    pub pool_name: String,
    /// Pool type (`Backup`).
    pub pool_type: String,
    /// 1 for writing (backup), 0 for reading (restore).
    pub append: bool,
    /// Copy number.
    pub copy: i32,
    /// Stripe number.
    pub stripe: i32,
    /// 13.x `wait=` (None from a 9.6 Director).
    pub wait: Option<i32>,
}

impl UseStorage {
    /// Parses the `use storage=` line.
    pub fn parse(line: &str) -> Result<UseStorage, ParseError> {
        let err = || bad("use storage", line);
        let mut s = Scanner::lenient(line);
        let word = |s: &mut Scanner, key: &str| -> Option<String> {
            s.ws();
            s.lit(key)?;
            s.word(NAME_MAX).map(unbash)
        };
        let storage = word(&mut s, "use storage=").ok_or_else(err)?;
        let media_type = word(&mut s, "media_type=").ok_or_else(err)?;
        let pool_name = word(&mut s, "pool_name=").ok_or_else(err)?;
        let pool_type = word(&mut s, "pool_type=").ok_or_else(err)?;
        let n = |s: &mut Scanner, key: &str| -> Option<i32> {
            s.ws();
            s.lit(key)?;
            s.int().and_then(|v| i32::try_from(v).ok())
        };
        let append = n(&mut s, "append=").ok_or_else(err)? != 0;
        let copy = n(&mut s, "copy=").ok_or_else(err)?;
        let stripe = n(&mut s, "stripe=").ok_or_else(err)?;
        let wait = n(&mut s, "wait=");
        Ok(UseStorage {
            storage,
            media_type,
            pool_name,
            pool_type,
            append,
            copy,
            stripe,
            wait,
        })
    }
}

/// The exact line, newline included (with ` wait=` only when set).
impl fmt::Display for UseStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "use storage={} media_type={} pool_name={} pool_type={} append={} copy={} stripe={}",
            bash(&self.storage),
            bash(&self.media_type),
            bash(&self.pool_name),
            bash(&self.pool_type),
            u8::from(self.append),
            self.copy,
            self.stripe
        )?;
        if let Some(w) = self.wait {
            write!(f, " wait={w}")?;
        }
        f.write_str("\n")
    }
}

/// Parses `use device=%s` (the device name, unbashed).
pub fn parse_use_device(line: &str) -> Result<String, ParseError> {
    let mut s = Scanner::lenient(line);
    s.lit("use device=")
        .ok_or_else(|| bad("use device", line))?;
    let name = s.word(NAME_MAX).unwrap_or("");
    if name.is_empty() {
        return Err(bad("use device", line));
    }
    Ok(unbash(name))
}

/// `use device=%s\n`.
pub fn use_device(name: &str) -> String {
    format!("use device={}\n", bash(name))
}

/// `3000 OK use device device=%s\n`: the SD reserved this device.
pub fn ok_use_device(name: &str) -> String {
    format!("3000 OK use device device={}\n", bash(name))
}

/// Parses `3000 OK use device device=%s` (the device name).
pub fn parse_ok_use_device(line: &str) -> Result<String, ParseError> {
    let mut s = Scanner::lenient(line);
    s.lit("3000 OK use device device=")
        .ok_or_else(|| bad("3000 OK use device", line))?;
    Ok(unbash(s.word(NAME_MAX).unwrap_or("")))
}

/// `3924 Device "%s" not in SD Device resources or no matching Media Type or is disabled.\n`.
pub fn no_device_reply(name: &str) -> String {
    format!(
        "3924 Device \"{name}\" not in SD Device resources or no matching Media Type or is \
         disabled.\n"
    )
}

/// `3913 Bad use command: %s\n`.
pub fn bad_use_reply(cmd: &str) -> String {
    format!("3913 Bad use command: {}\n", cmd.trim_end())
}

// ---------------------------------------------------------------------------
// Cancel

/// Parses the Director's `cancel Job=%s` (the unique job name).
pub fn parse_cancel(line: &str) -> Result<String, ParseError> {
    let mut s = Scanner::lenient(line);
    s.lit("cancel Job=").ok_or_else(|| bad("cancel", line))?;
    let job = s.word(NAME_MAX).unwrap_or("");
    if job.is_empty() {
        return Err(bad("cancel", line));
    }
    Ok(unbash(job))
}

/// `cancel Job=%s\n`.
pub fn cancel(job: &str) -> String {
    format!("cancel Job={}\n", bash(job))
}

/// `3000 JobId=%ld Job="%s" marked to be canceled.\n`.
pub fn canceled_reply(job_id: u32, job: &str) -> String {
    format!("3000 JobId={job_id} Job=\"{job}\" marked to be canceled.\n")
}

/// `3904 Job %s not found.\n`.
pub fn cancel_not_found_reply(job: &str) -> String {
    format!("3904 Job {job} not found.\n")
}

// ---------------------------------------------------------------------------
// Bootstrap

/// An inclusive range of numbers, `a-b` or `a` on a bootstrap line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range<T> {
    /// First value.
    pub first: T,
    /// Last value (inclusive).
    pub last: T,
}

impl<T: PartialOrd + Copy> Range<T> {
    /// Whether `v` is in the range.
    pub fn contains(&self, v: T) -> bool {
        self.first <= v && v <= self.last
    }
}

impl<T: fmt::Display + PartialEq> fmt::Display for Range<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// One volume section of a bootstrap (Bacula's BSR): it selects the records
/// of `volumes` whose session matches and whose FileIndex and byte address
/// are in the listed ranges (an empty list matches everything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BsrEntry {
    /// `Storage=` (Director's Storage resource name).
    pub storage: Option<String>,
    /// `Volume=` (several names separated by `|` in the file).
    pub volumes: Vec<String>,
    /// `MediaType=`.
    pub media_type: Option<String>,
    /// `Device=`.
    pub device: Option<String>,
    /// `Slot=`.
    pub slot: Option<u32>,
    /// `VolSessionId=` ranges.
    pub vol_session_id: Vec<Range<u32>>,
    /// `VolSessionTime=` values.
    pub vol_session_time: Vec<u32>,
    /// `VolAddr=` byte address ranges.
    pub vol_addr: Vec<Range<u64>>,
    /// `FileIndex=` ranges.
    pub file_index: Vec<Range<i32>>,
    /// `Count=`: how many files to restore at most.
    pub count: Option<u32>,
    /// `FileRegex=` (kept, not interpreted here).
    pub file_regex: Option<String>,
}

impl BsrEntry {
    /// Whether the entry wants records of this volume.
    pub fn wants_volume(&self, name: &str) -> bool {
        self.volumes.iter().any(|v| v == name)
    }

    /// Whether a record of this session is selected.
    pub fn matches_session(&self, vol_session_id: u32, vol_session_time: u32) -> bool {
        (self.vol_session_id.is_empty()
            || self
                .vol_session_id
                .iter()
                .any(|r| r.contains(vol_session_id)))
            && (self.vol_session_time.is_empty()
                || self.vol_session_time.contains(&vol_session_time))
    }

    /// Whether a record with this FileIndex is selected.
    pub fn matches_file_index(&self, file_index: i32) -> bool {
        self.file_index.is_empty() || self.file_index.iter().any(|r| r.contains(file_index))
    }

    /// Whether a record starting at byte `addr` of the volume is selected.
    pub fn matches_addr(&self, addr: u64) -> bool {
        self.vol_addr.is_empty() || self.vol_addr.iter().any(|r| r.contains(addr))
    }

    /// Whether the whole record is selected.
    pub fn matches(&self, sess_id: u32, sess_time: u32, file_index: i32, addr: u64) -> bool {
        self.matches_session(sess_id, sess_time)
            && self.matches_file_index(file_index)
            && self.matches_addr(addr)
    }
}

/// A bootstrap: the volume sections the Director sends after `bootstrap\n`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bootstrap {
    /// Sections in order; a `Storage=` or `Volume=` line after a section
    /// already has a volume starts the next one.
    pub entries: Vec<BsrEntry>,
}

impl Bootstrap {
    /// Parses bootstrap text (lines `Key=value`, values optionally quoted,
    /// keys case-insensitive, `#` comments and blank lines skipped).
    pub fn parse(text: &str) -> Result<Bootstrap, ParseError> {
        let mut entries: Vec<BsrEntry> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let lineno = i + 1;
            let e = |reason: String| ParseError::Bootstrap {
                line: lineno,
                reason,
            };
            let line = raw.trim_matches(|c: char| c.is_whitespace() || c == '\0');
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| e(format!("no '=' in {line:?}")))?;
            let key = key.trim().to_ascii_lowercase();
            let value = unquote(value.trim());
            let starts_section = matches!(key.as_str(), "storage" | "volume");
            if entries.is_empty()
                || (starts_section && entries.last().is_some_and(|b| !b.volumes.is_empty()))
            {
                entries.push(BsrEntry::default());
            }
            let Some(b) = entries.last_mut() else {
                continue;
            };
            match key.as_str() {
                "storage" => b.storage = Some(value),
                "volume" => b.volumes.extend(value.split('|').map(str::to_string)),
                "mediatype" => b.media_type = Some(value),
                "device" => b.device = Some(value),
                "slot" => b.slot = Some(parse_num(&value).map_err(e)?),
                "volsessionid" => b.vol_session_id.extend(parse_ranges(&value).map_err(e)?),
                "volsessiontime" => {
                    for v in value.split(',') {
                        b.vol_session_time.push(parse_num(v.trim()).map_err(e)?);
                    }
                }
                "voladdr" => b.vol_addr.extend(parse_ranges(&value).map_err(e)?),
                "fileindex" => b.file_index.extend(parse_ranges(&value).map_err(e)?),
                "count" => b.count = Some(parse_num(&value).map_err(e)?),
                "fileregex" => b.file_regex = Some(value),
                // Keys a plain-file restore does not need (Client, Job,
                // JobId, VolFile, VolBlock, Include, Exclude, ...) are ignored.
                _ => {}
            }
        }
        if entries.iter().any(|b| b.volumes.is_empty()) {
            return Err(ParseError::Bootstrap {
                line: text.lines().count(),
                reason: "a section has no Volume".into(),
            });
        }
        Ok(Bootstrap { entries })
    }

    /// The packets the Director sends after `bootstrap\n`, one line each,
    /// in 9.6's order (Storage, Volume, MediaType, Device, Slot,
    /// VolSessionId, VolSessionTime, VolAddr, FileIndex, Count).
    pub fn to_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let list = |v: &[Range<_>]| {
            v.iter()
                .map(|r: &Range<u64>| r.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        for b in &self.entries {
            if let Some(s) = &b.storage {
                out.push(format!("Storage=\"{s}\"\n"));
            }
            out.push(format!("Volume=\"{}\"\n", b.volumes.join("|")));
            if let Some(s) = &b.media_type {
                out.push(format!("MediaType=\"{s}\"\n"));
            }
            if let Some(s) = &b.device {
                out.push(format!("Device=\"{s}\"\n"));
            }
            if let Some(s) = b.slot {
                out.push(format!("Slot={s}\n"));
            }
            for r in &b.vol_session_id {
                out.push(format!("VolSessionId={r}\n"));
            }
            for t in &b.vol_session_time {
                out.push(format!("VolSessionTime={t}\n"));
            }
            if !b.vol_addr.is_empty() {
                out.push(format!("VolAddr={}\n", list(&b.vol_addr)));
            }
            for r in &b.file_index {
                out.push(format!("FileIndex={r}\n"));
            }
            if let Some(c) = b.count {
                out.push(format!("Count={c}\n"));
            }
            if let Some(r) = &b.file_regex {
                out.push(format!("FileRegex={r}\n"));
            }
        }
        out
    }

    /// Every volume name in order of first appearance.
    pub fn volumes(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for b in &self.entries {
            for n in &b.volumes {
                if !v.contains(n) {
                    v.push(n.clone());
                }
            }
        }
        v
    }
}

fn unquote(v: &str) -> String {
    let v = v
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(v);
    v.to_string()
}

fn parse_num<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{v:?} is not a number"))
}

/// `a-b,c,d-e` into ranges (each `first <= last`).
fn parse_ranges<T: std::str::FromStr + PartialOrd + Copy>(
    v: &str,
) -> Result<Vec<Range<T>>, String> {
    let mut out = Vec::new();
    for part in v.split(',') {
        let part = part.trim();
        // A leading '-' would be a negative number, not a range separator.
        let split = part
            .char_indices()
            .skip(1)
            .find(|&(_, c)| c == '-')
            .map(|(i, _)| i);
        let (a, b) = match split {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, part),
        };
        let first: T = parse_num(a)?;
        let last: T = parse_num(b)?;
        if last < first {
            return Err(format!("range {part:?} ends before it starts"));
        }
        out.push(Range { first, last });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// FD <-> SD session lines

/// A command the FD sends on the data channel (§5.5, §6.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionCommand {
    /// `append open session\n`.
    AppendOpen,
    /// `append data %d\n` (ticket).
    AppendData(u32),
    /// `append end session %d\n`.
    AppendEnd(u32),
    /// `append close session %d\n`.
    AppendClose(u32),
    /// `read open session = %s %ld %ld %ld %ld %ld %ld\n`.
    ReadOpen(ReadOpen),
    /// `read data %d\n`.
    ReadData(u32),
    /// `read close session %d\n`.
    ReadClose(u32),
}

/// Arguments of `read open session` (9.6 sends a placeholder volume name,
/// the SD's SDid/SDtime and zero positions: the bootstrap drives the read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOpen {
    /// Volume name (`DummyVolume` from 9.6).
    pub volume: String,
    /// VolSessionId (the restore job's SDid).
    pub vol_session_id: i64,
    /// VolSessionTime (the restore job's SDtime).
    pub vol_session_time: i64,
    /// Start file.
    pub start_file: i64,
    /// End file.
    pub end_file: i64,
    /// Start block.
    pub start_block: i64,
    /// End block.
    pub end_block: i64,
}

impl SessionCommand {
    /// Parses one data channel command.
    pub fn parse(line: &str) -> Result<SessionCommand, ParseError> {
        let err = || bad("session command", line);
        let ticket = |prefix: &str| -> Option<u32> {
            let mut s = Scanner::lenient(line);
            s.lit(prefix)?;
            s.uint()
        };
        if line.starts_with("append open session") {
            return Ok(SessionCommand::AppendOpen);
        }
        if let Some(t) = ticket("append data ") {
            return Ok(SessionCommand::AppendData(t));
        }
        if let Some(t) = ticket("append end session ") {
            return Ok(SessionCommand::AppendEnd(t));
        }
        if let Some(t) = ticket("append close session ") {
            return Ok(SessionCommand::AppendClose(t));
        }
        if let Some(t) = ticket("read data ") {
            return Ok(SessionCommand::ReadData(t));
        }
        if let Some(t) = ticket("read close session ") {
            return Ok(SessionCommand::ReadClose(t));
        }
        let mut s = Scanner::lenient(line);
        if s.lit("read open session = ").is_some() {
            let volume = s.word(NAME_MAX).ok_or_else(err)?;
            if volume.is_empty() {
                return Err(err());
            }
            let volume = unbash(volume);
            let mut n = || -> Option<i64> {
                s.ws();
                if s.rest().is_empty() {
                    return None;
                }
                s.int()
            };
            let (a, b, c, d, e, f) = (n(), n(), n(), n(), n(), n());
            let (
                Some(vol_session_id),
                Some(vol_session_time),
                Some(start_file),
                Some(end_file),
                Some(start_block),
                Some(end_block),
            ) = (a, b, c, d, e, f)
            else {
                return Err(err());
            };
            return Ok(SessionCommand::ReadOpen(ReadOpen {
                volume,
                vol_session_id,
                vol_session_time,
                start_file,
                end_file,
                start_block,
                end_block,
            }));
        }
        Err(err())
    }
}

/// The exact line, newline included.
impl fmt::Display for SessionCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionCommand::AppendOpen => f.write_str("append open session\n"),
            SessionCommand::AppendData(t) => write!(f, "append data {t}\n"),
            SessionCommand::AppendEnd(t) => write!(f, "append end session {t}\n"),
            SessionCommand::AppendClose(t) => write!(f, "append close session {t}\n"),
            SessionCommand::ReadOpen(r) => write!(
                f,
                "read open session = {} {} {} {} {} {} {}\n",
                bash(&r.volume),
                r.vol_session_id,
                r.vol_session_time,
                r.start_file,
                r.end_file,
                r.start_block,
                r.end_block
            ),
            SessionCommand::ReadData(t) => write!(f, "read data {t}\n"),
            SessionCommand::ReadClose(t) => write!(f, "read close session {t}\n"),
        }
    }
}

/// `3000 OK open ticket = %d\n` (ticket = the job's VolSessionId).
pub fn open_ticket(ticket: u32) -> String {
    format!("3000 OK open ticket = {ticket}\n")
}

/// Parses `3000 OK open ticket = %d` (the ticket).
pub fn parse_open_ticket(line: &str) -> Result<u32, ParseError> {
    let mut s = Scanner::lenient(line);
    s.lit("3000 OK open ticket = ")
        .and_then(|_| s.uint())
        .ok_or_else(|| bad("3000 OK open ticket", line))
}

/// `3903 Error append data: %s\n`.
pub fn append_data_error(why: &str) -> String {
    format!("3903 Error append data: {why}\n")
}

/// `3000 OK close Status = %d\n` (job status letter as its code).
pub fn close_status(status: JobStatus) -> String {
    format!("3000 OK close Status = {}\n", status.code())
}

/// Parses `3000 OK close Status = %d` (the job status).
pub fn parse_close_status(line: &str) -> Result<JobStatus, ParseError> {
    let mut s = Scanner::lenient(line);
    s.lit("3000 OK close Status = ")
        .and_then(|_| s.int())
        .and_then(JobStatus::from_code)
        .ok_or_else(|| bad("3000 OK close Status", line))
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB: &str = "JobId=1 job=BackupData.2026-11-29_06.44.04_05 job_name=BackupData \
        client_name=bacula-fd type=66 level=70 FileSet=DataSet NoAttr=0 SpoolAttr=1 \
        FileSetMD5=d7hgy6/IRV/ci8+Vd4+SqD SpoolData=0 WritePartAfterJob=1 PreferMountedVols=1 \
        SpoolSize=0 rerunning=0 VolSessionId=0 VolSessionTime=0 sd_client=0 \
        Authorization=dummy\n";

    #[test]
    fn job_line_round_trip() {
        let j = JobCommand::parse(JOB).unwrap();
        assert_eq!(j.job_id, 1);
        assert_eq!(j.job, "BackupData.2026-11-29_06.44.04_05");
        assert_eq!(j.client_name, "bacula-fd");
        assert_eq!(j.job_type, 'B');
        assert_eq!(j.level, 'F');
        assert!(j.is_backup());
        assert!(j.spool_attr && !j.no_attr && j.write_part_after_job);
        assert_eq!(j.fileset_md5, "d7hgy6/IRV/ci8+Vd4+SqD");
        assert_eq!(j.authorization, "dummy");
        assert_eq!(j.to_string(), JOB);
    }

    #[test]
    fn restore_job_line_and_names_with_spaces() {
        let line = JOB
            .replace("type=66 level=70", "type=82 level=32")
            .replace("job_name=BackupData", "job_name=My\u{1}Job");
        let j = JobCommand::parse(&line).unwrap();
        assert!(j.is_restore());
        assert_eq!(j.level, ' ');
        assert_eq!(j.job_name, "My Job");
        assert_eq!(j.to_string(), line);
        assert!(JobCommand::parse("JobId=1 job=x").is_err());
        assert!(JobCommand::parse("status").is_err());
    }

    #[test]
    fn job_reply() {
        let line = "3000 OK Job SDid=1 SDtime=1795934639 \
                    Authorization=HODC-KIOJ-JDMC-NKNL-ALKL-LHDL-EKMC-AEBF\n";
        let r = JobReply::parse(line).unwrap();
        assert_eq!((r.sd_id, r.sd_time), (1, 1795934639));
        assert!(is_session_key(&r.authorization));
        assert_eq!(r.to_string(), line);
        assert!(!format!("{r:?}").contains("HODC"));
        assert!(bad_job_reply(3, "JobId=1 x\n").starts_with("3915 Bad Job command. stat=3 CMD: "));
    }

    #[test]
    fn session_key_format() {
        let k = session_key(&[0u8; 16]);
        assert_eq!(k, "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA");
        // The spec's example key, decoded back to its bytes, formats identically.
        let spec = "HODC-KIOJ-JDMC-NKNL-ALKL-LHDL-EKMC-AEBF";
        let nibbles: Vec<u8> = spec
            .bytes()
            .filter(|&c| c != b'-')
            .map(|c| c - b'A')
            .collect();
        let mut bytes = [0u8; 16];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (nibbles[2 * i] << 4) | nibbles[2 * i + 1];
        }
        let k = session_key(&bytes);
        assert_eq!(k, "HODC-KIOJ-JDMC-NKNL-ALKL-LHDL-EKMC-AEBF");
        assert!(is_session_key(&k));
        assert!(is_session_key("NHIO-IIMI-NALE-DICI-KIKC-LDCG-MNBK-KDKI"));
        assert!(!is_session_key("dummy"));
        assert!(!is_session_key("QAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA"));
        assert!(!is_session_key("AAAAA-AAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA"));
    }

    #[test]
    fn use_storage_and_device() {
        let line = "use storage=File1 media_type=File pool_name=File pool_type=Backup append=1 \
                    copy=0 stripe=0\n";
        let u = UseStorage::parse(line).unwrap();
        assert_eq!(u.storage, "File1");
        assert_eq!(u.media_type, "File");
        assert!(u.append);
        assert_eq!(u.wait, None);
        assert_eq!(u.to_string(), line);
        let l13 = line.replace("stripe=0\n", "stripe=0 wait=1\n");
        let u13 = UseStorage::parse(&l13).unwrap();
        assert_eq!(u13.wait, Some(1));
        assert_eq!(u13.to_string(), l13);
        assert_eq!(
            parse_use_device("use device=FileStorage\n").unwrap(),
            "FileStorage"
        );
        assert_eq!(use_device("My Dev"), "use device=My\u{1}Dev\n");
        assert_eq!(parse_use_device(&use_device("My Dev")).unwrap(), "My Dev");
        assert!(parse_use_device("use device=").is_err());
        assert_eq!(
            ok_use_device("FileStorage"),
            "3000 OK use device device=FileStorage\n"
        );
        assert_eq!(
            parse_ok_use_device("3000 OK use device device=FileStorage\n").unwrap(),
            "FileStorage"
        );
        assert!(no_device_reply("X").starts_with("3924 Device \"X\" not in SD Device"));
    }

    #[test]
    fn cancel_lines() {
        assert_eq!(parse_cancel("cancel Job=J.1\n").unwrap(), "J.1");
        assert_eq!(cancel("J.1"), "cancel Job=J.1\n");
        assert!(parse_cancel("cancel").is_err());
        assert_eq!(
            canceled_reply(3, "J.1"),
            "3000 JobId=3 Job=\"J.1\" marked to be canceled.\n"
        );
    }

    const BSR: [&str; 9] = [
        "Storage=\"File1\"\n",
        "Volume=\"Vol-0001\"\n",
        "MediaType=\"File\"\n",
        "Device=\"FileStorage\"\n",
        "VolSessionId=1\n",
        "VolSessionTime=1795934639\n",
        "VolAddr=211-225428\n",
        "FileIndex=1-6\n",
        "Count=6\n",
    ];

    #[test]
    fn bootstrap_from_spec() {
        let b = Bootstrap::parse(&BSR.concat()).unwrap();
        assert_eq!(b.entries.len(), 1);
        let e = &b.entries[0];
        assert_eq!(e.storage.as_deref(), Some("File1"));
        assert_eq!(e.volumes, vec!["Vol-0001"]);
        assert_eq!(e.device.as_deref(), Some("FileStorage"));
        assert_eq!(e.vol_session_id, vec![Range { first: 1, last: 1 }]);
        assert_eq!(e.vol_session_time, vec![1795934639]);
        assert_eq!(
            e.vol_addr,
            vec![Range {
                first: 211,
                last: 225428
            }]
        );
        assert_eq!(e.count, Some(6));
        assert!(e.matches(1, 1795934639, 6, 211));
        assert!(!e.matches(1, 1795934639, 7, 211));
        assert!(!e.matches(2, 1795934639, 1, 211));
        assert!(!e.matches(1, 1, 1, 211));
        assert!(!e.matches(1, 1795934639, 1, 225429));
        assert!(e.wants_volume("Vol-0001"));
        assert_eq!(b.to_lines(), BSR);
    }

    #[test]
    fn bootstrap_sections_and_errors() {
        let mut text = BSR.concat();
        text.push_str("# second job\n\nStorage=\"File1\"\nVolume=\"Vol-0002|Vol-0003\"\n");
        text.push_str("VolSessionId=2-3\nFileIndex=1,4-5\n");
        let b = Bootstrap::parse(&text).unwrap();
        assert_eq!(b.entries.len(), 2);
        assert_eq!(b.volumes(), vec!["Vol-0001", "Vol-0002", "Vol-0003"]);
        let e = &b.entries[1];
        assert!(e.matches_session(3, 12345), "no VolSessionTime: any");
        assert!(e.matches_file_index(4) && !e.matches_file_index(2));
        assert!(Bootstrap::parse("VolSessionId=1\n").is_err(), "no volume");
        assert!(Bootstrap::parse("Volume=a\nFileIndex=5-1\n").is_err());
        assert!(Bootstrap::parse("Volume=a\nFileIndex=x\n").is_err());
        assert!(Bootstrap::parse("Volume=a\ngarbage\n").is_err());
    }

    #[test]
    fn session_commands() {
        for (line, cmd) in [
            ("append open session\n", SessionCommand::AppendOpen),
            ("append data 1\n", SessionCommand::AppendData(1)),
            ("append end session 1\n", SessionCommand::AppendEnd(1)),
            ("append close session 1\n", SessionCommand::AppendClose(1)),
            ("read data 2\n", SessionCommand::ReadData(2)),
            ("read close session 2\n", SessionCommand::ReadClose(2)),
            (
                "read open session = DummyVolume 2 1795934639 0 0 0 0\n",
                SessionCommand::ReadOpen(ReadOpen {
                    volume: "DummyVolume".into(),
                    vol_session_id: 2,
                    vol_session_time: 1795934639,
                    start_file: 0,
                    end_file: 0,
                    start_block: 0,
                    end_block: 0,
                }),
            ),
        ] {
            assert_eq!(SessionCommand::parse(line).unwrap(), cmd, "{line}");
            assert_eq!(cmd.to_string(), line);
        }
        assert!(SessionCommand::parse("read open session = \n").is_err());
        assert!(SessionCommand::parse("read open session = V 1 2\n").is_err());
        assert!(SessionCommand::parse("bogus\n").is_err());
        assert_eq!(open_ticket(1), "3000 OK open ticket = 1\n");
        assert_eq!(parse_open_ticket("3000 OK open ticket = 1\n").unwrap(), 1);
        assert_eq!(close_status(JobStatus::OK), "3000 OK close Status = 84\n");
        assert_eq!(
            parse_close_status("3000 OK close Status = 82\n").unwrap(),
            JobStatus::RUNNING
        );
        assert_eq!(append_data_error("x"), "3903 Error append data: x\n");
    }
}
