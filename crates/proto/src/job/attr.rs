//! File records of a job's data stream (protocol-jobs.md §5.6, §6.3, §8):
//! stream ids, file types, job status letters, the attribute record with its
//! encoded stat ("LStat"), the record stream headers of the append and read
//! sessions, and the File daemon's end-of-job line.
//!
//! Sans-IO: every item parses from and formats to the exact bytes a real 9.6 /
//! 13.x daemon sends, so the File daemon, Storage daemon and Director share
//! one definition of each format.
//!
//! Paths and link targets are kept as bytes: Unix file names need not be UTF-8
//! and must come back unchanged on restore.

use std::fmt;

use crate::base64::{decode_i64, encode_i64};

/// Stream ids (`streams.h`, protocol-jobs §8.1). The wire value may carry
/// flag bits above [`stream::MASK`]; compare [`stream::id`] of it.
pub mod stream {
    /// Low bits holding the stream type; the rest are flags.
    pub const MASK: i32 = 0x7FF;
    /// Flag: written by a plugin.
    pub const BIT_PLUGIN: i32 = 1 << 28;
    /// Flag: delta data.
    pub const BIT_DELTA: i32 = 1 << 27;
    /// Flag: data carries offsets.
    pub const BIT_OFFSETS: i32 = 1 << 26;
    /// Flag: portable data.
    pub const BIT_PORTABLE_DATA: i32 = 1 << 25;

    /// No stream.
    pub const NONE: i32 = 0;
    /// The attribute record ([`super::AttrRecord`]).
    pub const UNIX_ATTRIBUTES: i32 = 1;
    /// Plain file content, in order.
    pub const FILE_DATA: i32 = 2;
    /// Raw 16-byte MD5 digest of the file content.
    pub const MD5_DIGEST: i32 = 3;
    /// gzip-compressed file data.
    pub const GZIP_DATA: i32 = 4;
    /// Old extended attribute record (deprecated; parsed like stream 1).
    pub const UNIX_ATTRIBUTES_EX: i32 = 5;
    /// Sparse data: each packet starts with an 8-byte big-endian offset.
    pub const SPARSE_DATA: i32 = 6;
    /// Sparse gzip data.
    pub const SPARSE_GZIP_DATA: i32 = 7;
    /// Raw 20-byte SHA-1 digest.
    pub const SHA1_DIGEST: i32 = 10;
    /// Windows backup-API data.
    pub const WIN32_DATA: i32 = 11;
    /// Raw 32-byte SHA-256 digest.
    pub const SHA256_DIGEST: i32 = 17;
    /// Raw 64-byte SHA-512 digest.
    pub const SHA512_DIGEST: i32 = 18;
    /// Signed digest (data encryption).
    pub const SIGNED_DIGEST: i32 = 19;
    /// Encrypted file data.
    pub const ENCRYPTED_FILE_DATA: i32 = 20;
    /// Encryption session data.
    pub const ENCRYPTED_SESSION_DATA: i32 = 22;
    /// Plugin name record.
    pub const PLUGIN_NAME: i32 = 26;
    /// Restore object.
    pub const RESTORE_OBJECT: i32 = 28;
    /// LZO (or other) compressed data with a compression header.
    pub const COMPRESSED_DATA: i32 = 29;

    /// The stream type of a wire value (flag bits removed).
    pub fn id(stream: i32) -> i32 {
        stream & MASK
    }

    /// Whether `stream` (after [`id`]) is one of the four digest streams.
    pub fn is_digest(stream: i32) -> bool {
        digest_len(stream).is_some()
    }

    /// The digest size in bytes of a digest stream, `None` otherwise.
    pub fn digest_len(stream: i32) -> Option<usize> {
        match id(stream) {
            MD5_DIGEST => Some(16),
            SHA1_DIGEST => Some(20),
            SHA256_DIGEST => Some(32),
            SHA512_DIGEST => Some(64),
            _ => None,
        }
    }

    /// Whether `stream` holds the attribute record of a new file.
    pub fn is_attributes(stream: i32) -> bool {
        matches!(id(stream), UNIX_ATTRIBUTES | UNIX_ATTRIBUTES_EX)
    }
}

/// File types (`filetypes.h`, protocol-jobs §8.3): field 2 of the attribute
/// record. Mask the wire value with [`ft::MASK`].
pub mod ft {
    /// Low bits of the type field (bit 16 is an obsolete flag).
    pub const MASK: i32 = 0xFFFF;
    /// Hard link to a file already saved (link field = first path).
    pub const LNKSAVED: i32 = 1;
    /// Regular file, empty.
    pub const REGE: i32 = 2;
    /// Regular file.
    pub const REG: i32 = 3;
    /// Symbolic link (link field = target).
    pub const LNK: i32 = 4;
    /// Directory, sent after its contents; name ends with `/`.
    pub const DIREND: i32 = 5;
    /// Special file (device, FIFO, socket).
    pub const SPEC: i32 = 6;
    /// Not accessible (not sent).
    pub const NOACCESS: i32 = 7;
    /// Cannot follow link (not sent).
    pub const NOFOLLOW: i32 = 8;
    /// Cannot stat (not sent).
    pub const NOSTAT: i32 = 9;
    /// Unchanged since the last backup (not sent).
    pub const NOCHG: i32 = 10;
    /// Directory unchanged (not sent).
    pub const DIRNOCHG: i32 = 11;
    /// The archive itself (not sent).
    pub const ISARCH: i32 = 12;
    /// Directory not recursed into; sent as a directory.
    pub const NORECURSE: i32 = 13;
    /// Directory on another filesystem; sent as a directory.
    pub const NOFSCHG: i32 = 14;
    /// Cannot open directory (not sent).
    pub const NOOPEN: i32 = 15;
    /// Raw block device read as data.
    pub const RAW: i32 = 16;
    /// FIFO read as data.
    pub const FIFO: i32 = 17;
    /// Directory seen first (internal).
    pub const DIRBEGIN: i32 = 18;
    /// Filesystem not allowed; sent as a directory.
    pub const INVALIDFS: i32 = 19;
    /// Drive type not allowed.
    pub const INVALIDDT: i32 = 20;
    /// Windows reparse point.
    pub const REPARSE: i32 = 21;
    /// Plugin-generated name.
    pub const PLUGIN: i32 = 22;
    /// Deleted file (accurate mode).
    pub const DELETED: i32 = 23;
    /// Duplicate base-job file.
    pub const BASE: i32 = 24;
    /// Restore object.
    pub const RESTORE_FIRST: i32 = 25;
    /// Windows junction.
    pub const JUNCTION: i32 = 26;
    /// Plugin configuration object.
    pub const PLUGIN_CONFIG: i32 = 27;
    /// Plugin configuration filled by the Director.
    pub const PLUGIN_CONFIG_FILLED: i32 = 28;
    /// 13.x plugin object.
    pub const PLUGIN_OBJECT: i32 = 29;

    /// Whether a record of this type names a directory (name ends with `/`).
    pub fn is_directory(file_type: i32) -> bool {
        matches!(
            file_type & MASK,
            DIREND | NORECURSE | NOFSCHG | INVALIDFS | DIRBEGIN | DIRNOCHG
        )
    }
}

/// A job status letter (protocol-jobs §8.4), sent on the wire as its decimal
/// character code (`TermCode=84`, `JobStatus=82`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct JobStatus(pub u8);

impl JobStatus {
    /// 'A' canceled.
    pub const CANCELED: JobStatus = JobStatus(b'A');
    /// 'B' blocked.
    pub const BLOCKED: JobStatus = JobStatus(b'B');
    /// 'C' created, not yet running.
    pub const CREATED: JobStatus = JobStatus(b'C');
    /// 'D' verify found differences.
    pub const DIFFERENCES: JobStatus = JobStatus(b'D');
    /// 'E' terminated in error.
    pub const ERROR_TERMINATED: JobStatus = JobStatus(b'E');
    /// 'F' waiting for the File daemon.
    pub const WAIT_FD: JobStatus = JobStatus(b'F');
    /// 'I' incomplete.
    pub const INCOMPLETE: JobStatus = JobStatus(b'I');
    /// 'L' committing data (last despool).
    pub const DATA_COMMITTING: JobStatus = JobStatus(b'L');
    /// 'M' waiting for a mount.
    pub const WAIT_MOUNT: JobStatus = JobStatus(b'M');
    /// 'R' running.
    pub const RUNNING: JobStatus = JobStatus(b'R');
    /// 'S' waiting for the Storage daemon.
    pub const WAIT_SD: JobStatus = JobStatus(b'S');
    /// 'T' terminated normally.
    pub const OK: JobStatus = JobStatus(b'T');
    /// 'W' terminated with warnings.
    pub const WARNINGS: JobStatus = JobStatus(b'W');
    /// 'a' SD despooling attributes.
    pub const ATTR_DESPOOLING: JobStatus = JobStatus(b'a');
    /// 'e' non-fatal error.
    pub const NON_FATAL_ERROR: JobStatus = JobStatus(b'e');
    /// 'f' fatal error.
    pub const FATAL_ERROR: JobStatus = JobStatus(b'f');
    /// 'i' batch-inserting file records.
    pub const ATTR_INSERTING: JobStatus = JobStatus(b'i');
    /// 'l' despooling data.
    pub const DATA_DESPOOLING: JobStatus = JobStatus(b'l');
    /// 'm' waiting for new media.
    pub const WAIT_MEDIA: JobStatus = JobStatus(b'm');

    /// The status for a decimal wire code; `None` outside printable ASCII.
    pub fn from_code(code: i64) -> Option<JobStatus> {
        u8::try_from(code)
            .ok()
            .filter(u8::is_ascii_graphic)
            .map(JobStatus)
    }

    /// The decimal wire code (`'T'` -> 84).
    pub fn code(self) -> i32 {
        i32::from(self.0)
    }

    /// The letter.
    pub fn letter(self) -> char {
        char::from(self.0)
    }

    /// Whether the job ended well ('T' or 'W').
    pub fn is_ok(self) -> bool {
        matches!(self.0, b'T' | b'W')
    }

    /// Precedence when statuses are merged: a new status replaces the current
    /// one only if its rank is higher or both ranks are 0 ([`Self::merge`]).
    pub fn rank(self) -> u8 {
        match self.0 {
            b'I' => 10,
            b'E' | b'f' | b'A' => 9,
            b'e' => 8,
            b'D' => 7,
            _ => 0,
        }
    }

    /// The status after `new` is reported while `self` is current (§8.4:
    /// the first error sticks).
    pub fn merge(self, new: JobStatus) -> JobStatus {
        let (cur, next) = (self.rank(), new.rank());
        if next > cur || (cur == 0 && next == 0) {
            new
        } else {
            self
        }
    }

    /// Bacula's short word for job listings ("OK", "Error", "Cancel", ...).
    pub fn describe(self) -> &'static str {
        match self.0 {
            b'T' => "OK",
            b'W' => "OK -- with warnings",
            b'A' => "Cancel",
            b'E' => "Error",
            b'f' => "Fatal Error",
            b'e' => "Non-fatal error",
            b'I' => "Incomplete",
            b'D' => "Diffs",
            b'R' => "Running",
            b'C' => "Created",
            _ => "Other",
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.letter())
    }
}

/// Errors parsing the formats of this module.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AttrError {
    /// An encoded stat with too few fields or an invalid number.
    #[error("bad encoded stat (LStat): {0}")]
    BadStat(String),
    /// An attribute record that does not have the `"%d %d %s\0..."` shape.
    #[error("bad attribute record: {0}")]
    BadRecord(&'static str),
    /// A record stream header that is not `"<FileIndex> <StreamId> <size>"`.
    #[error("bad record stream header {0:?}")]
    BadStreamHeader(String),
    /// A read-session record header that is not `"rechdr ..."`.
    #[error("bad rechdr line {0:?}")]
    BadRecHdr(String),
    /// Not an `2800 End Job` line.
    #[error("bad end-of-job line {0:?}")]
    BadEndJob(String),
}

/// The encoded stat ("LStat") of an attribute record: 16 numbers in Bacula
/// base64 separated by single spaces (protocol-jobs §5.6); Windows adds a
/// 17th ([`Stat::win_attrs`]).
///
/// All fields are `i64` because the wire numbers are signed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Stat {
    pub dev: i64,
    pub ino: i64,
    /// File type and permission bits (`S_IFREG | 0644` ...).
    pub mode: i64,
    pub nlink: i64,
    pub uid: i64,
    pub gid: i64,
    pub rdev: i64,
    pub size: i64,
    pub blksize: i64,
    pub blocks: i64,
    pub atime: i64,
    pub mtime: i64,
    pub ctime: i64,
    /// FileIndex of the first copy of a hard-linked file, else 0.
    pub link_fi: i64,
    /// BSD `st_flags` (0 on Linux).
    pub flags: i64,
    /// Stream id used for this file's data (2 for plain data, also for
    /// directories and symlinks in 9.6).
    pub data_stream: i64,
    /// Windows file attributes (17th number), if present.
    pub win_attrs: Option<i64>,
}

impl Stat {
    fn fields(&self) -> [i64; 16] {
        [
            self.dev,
            self.ino,
            self.mode,
            self.nlink,
            self.uid,
            self.gid,
            self.rdev,
            self.size,
            self.blksize,
            self.blocks,
            self.atime,
            self.mtime,
            self.ctime,
            self.link_fi,
            self.flags,
            self.data_stream,
        ]
    }

    /// The wire text, e.g. `"P4A mSR+ IGk B A A A m BAA I BrC8mu BrC8mu BrC8mu A A C"`.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(96);
        for (i, v) in self.fields().iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&encode_i64(*v));
        }
        if let Some(w) = self.win_attrs {
            out.push(' ');
            out.push_str(&encode_i64(w));
        }
        out
    }

    /// Parses the wire text. The first 13 numbers (up to `ctime`) are
    /// required; `LinkFI`, `flags` and the data stream default to 0 when an
    /// old writer left them out.
    pub fn decode(text: &str) -> Result<Stat, AttrError> {
        let mut v = [0i64; 17];
        let mut n = 0;
        for word in text.split([' ', '\t']).filter(|w| !w.is_empty()) {
            if n == v.len() {
                break;
            }
            v[n] = decode_i64(word).ok_or_else(|| AttrError::BadStat(text.to_string()))?;
            n += 1;
        }
        if n < 13 {
            return Err(AttrError::BadStat(text.to_string()));
        }
        Ok(Stat {
            dev: v[0],
            ino: v[1],
            mode: v[2],
            nlink: v[3],
            uid: v[4],
            gid: v[5],
            rdev: v[6],
            size: v[7],
            blksize: v[8],
            blocks: v[9],
            atime: v[10],
            mtime: v[11],
            ctime: v[12],
            link_fi: v[13],
            flags: v[14],
            data_stream: v[15],
            win_attrs: (n == 17).then_some(v[16]),
        })
    }
}

/// The attribute record, data of stream 1:
/// `"%d %d %s\0%s\0%s\0%s\0%d\0"` = FileIndex, FileType, file name, LStat,
/// link, extended attributes, delta sequence (protocol-jobs §5.6).
///
/// The Storage daemon forwards it unchanged inside `UpdCat`; the Director
/// splits `fname` into Path and Filename and stores `lstat` as is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttrRecord {
    /// Same as in the record stream header.
    pub file_index: i32,
    /// [`ft`] code, flag bits removed.
    pub file_type: i32,
    /// Absolute path; directories end with one `/`.
    pub fname: Vec<u8>,
    /// Encoded stat text ([`Stat::encode`]); kept verbatim for the catalog.
    pub lstat: String,
    /// Symlink target (`FT_LNK`) or first path (`FT_LNKSAVED`), else empty.
    pub link: Vec<u8>,
    /// Extended attributes (empty on Unix).
    pub attr_ex: Vec<u8>,
    /// Delta sequence (0 normally).
    pub delta_seq: i32,
}

impl AttrRecord {
    /// The packet payload, final NUL included.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            self.fname.len() + self.lstat.len() + self.link.len() + self.attr_ex.len() + 32,
        );
        out.extend_from_slice(format!("{} {} ", self.file_index, self.file_type).as_bytes());
        out.extend_from_slice(&self.fname);
        out.push(0);
        out.extend_from_slice(self.lstat.as_bytes());
        out.push(0);
        out.extend_from_slice(&self.link);
        out.push(0);
        out.extend_from_slice(&self.attr_ex);
        out.push(0);
        out.extend_from_slice(self.delta_seq.to_string().as_bytes());
        out.push(0);
        out
    }

    /// Parses a record. Link, extended attributes and delta sequence may be
    /// missing (old writers); the final NUL is optional.
    pub fn decode(data: &[u8]) -> Result<AttrRecord, AttrError> {
        let (file_index, rest) = leading_int(data).ok_or(AttrError::BadRecord("FileIndex"))?;
        let rest = rest
            .strip_prefix(b" ")
            .ok_or(AttrError::BadRecord("space after FileIndex"))?;
        let (file_type, rest) = leading_int(rest).ok_or(AttrError::BadRecord("FileType"))?;
        let rest = rest
            .strip_prefix(b" ")
            .ok_or(AttrError::BadRecord("space after FileType"))?;
        let mut parts = rest.split(|&b| b == 0);
        let fname = parts.next().unwrap_or_default();
        let lstat = parts
            .next()
            .ok_or(AttrError::BadRecord("no encoded stat"))?;
        let link = parts.next().unwrap_or_default();
        let attr_ex = parts.next().unwrap_or_default();
        let delta = parts.next().unwrap_or_default();
        let delta_seq = if delta.is_empty() {
            0
        } else {
            match leading_int(delta) {
                Some((v, _)) => v,
                None => return Err(AttrError::BadRecord("delta sequence")),
            }
        };
        if fname.is_empty() {
            return Err(AttrError::BadRecord("empty file name"));
        }
        let lstat = std::str::from_utf8(lstat)
            .map_err(|_| AttrError::BadRecord("encoded stat not ASCII"))?;
        Ok(AttrRecord {
            file_index,
            file_type: file_type & ft::MASK,
            fname: fname.to_vec(),
            lstat: lstat.to_string(),
            link: link.to_vec(),
            attr_ex: attr_ex.to_vec(),
            delta_seq,
        })
    }

    /// The decoded [`Stat`] of `lstat`.
    pub fn stat(&self) -> Result<Stat, AttrError> {
        Stat::decode(&self.lstat)
    }

    /// `fname` split at its last `/` into (Path with trailing `/`, Filename),
    /// as the catalog stores it; a directory gives an empty Filename.
    pub fn split_path(&self) -> (&[u8], &[u8]) {
        match self.fname.iter().rposition(|&b| b == b'/') {
            Some(i) => self.fname.split_at(i + 1),
            None => (&[], &self.fname),
        }
    }
}

/// `%d` at the start of `data` (optional `-`, at least one digit).
fn leading_int(data: &[u8]) -> Option<(i32, &[u8])> {
    let (neg, digits) = match data.strip_prefix(b"-") {
        Some(r) => (true, r),
        None => (false, data),
    };
    let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 {
        return None;
    }
    let text = std::str::from_utf8(&digits[..n]).ok()?;
    let v: i64 = text.parse().ok()?;
    let v = i32::try_from(if neg { -v } else { v }).ok()?;
    Some((v, &digits[n..]))
}

/// The header packet of one stream in the FD -> SD record stream:
/// `"<FileIndex> <StreamId> <size>"`, no newline (protocol-jobs §5.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamHeader {
    /// FileIndex of the file (1, 2, ...; all streams of a file share it).
    pub file_index: i32,
    /// Full stream id, flag bits included.
    pub stream: i32,
    /// Expected length: `st_size` for file data, 0 for attributes/digests.
    pub size: i64,
}

impl StreamHeader {
    /// The packet text.
    pub fn encode(&self) -> String {
        format!("{} {} {}", self.file_index, self.stream, self.size)
    }

    /// Parses a header packet (trailing NUL / newline tolerated). The size is
    /// optional, as for the real SD.
    pub fn decode(data: &[u8]) -> Result<StreamHeader, AttrError> {
        let bad = || AttrError::BadStreamHeader(String::from_utf8_lossy(data).into_owned());
        let text = std::str::from_utf8(data).map_err(|_| bad())?;
        let text = text.trim_end_matches(['\0', '\n']);
        let mut words = text.split_ascii_whitespace();
        let file_index = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
        let stream = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
        let size = match words.next() {
            Some(w) => w.parse().map_err(|_| bad())?,
            None => 0,
        };
        Ok(StreamHeader {
            file_index,
            stream,
            size,
        })
    }
}

/// The header the SD sends before each record of a read session:
/// `"rechdr %ld %ld %ld %ld %ld"` = VolSessionId, VolSessionTime, FileIndex,
/// Stream, DataLen (protocol-jobs §6.3). The ids are the **backup** job's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecHdr {
    /// VolSessionId of the backup job.
    pub vol_session_id: u32,
    /// VolSessionTime of the backup job.
    pub vol_session_time: u32,
    /// FileIndex of the record.
    pub file_index: i32,
    /// Full stored stream value (mask with [`stream::id`]).
    pub stream: i32,
    /// Exact length of the data packet that follows.
    pub data_len: u32,
}

impl RecHdr {
    /// The packet text.
    pub fn encode(&self) -> String {
        format!(
            "rechdr {} {} {} {} {}",
            self.vol_session_id, self.vol_session_time, self.file_index, self.stream, self.data_len
        )
    }

    /// Parses a `rechdr` line.
    pub fn decode(data: &[u8]) -> Result<RecHdr, AttrError> {
        let bad = || AttrError::BadRecHdr(String::from_utf8_lossy(data).into_owned());
        let text = std::str::from_utf8(data).map_err(|_| bad())?;
        let mut words = text
            .trim_end_matches(['\0', '\n'])
            .strip_prefix("rechdr ")
            .ok_or_else(bad)?
            .split_ascii_whitespace();
        let mut next = || words.next().and_then(|w| w.parse::<i64>().ok());
        let (a, b, c, d, e) = (next(), next(), next(), next(), next());
        let (Some(a), Some(b), Some(c), Some(d), Some(e)) = (a, b, c, d, e) else {
            return Err(bad());
        };
        Ok(RecHdr {
            vol_session_id: u32::try_from(a).map_err(|_| bad())?,
            vol_session_time: u32::try_from(b).map_err(|_| bad())?,
            file_index: i32::try_from(c).map_err(|_| bad())?,
            stream: i32::try_from(d).map_err(|_| bad())?,
            data_len: u32::try_from(e).map_err(|_| bad())?,
        })
    }
}

/// The File daemon's last message of a job to the Director (§5.8, §6.2):
/// `"2800 End Job TermCode=%d JobFiles=%d ReadBytes=%lld JobBytes=%lld
/// Errors=%d VSS=%d Encrypt=%d CommBytes=%lld CompressCommBytes=%lld\n"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndJob {
    /// FD job status ('T' OK, 'E', 'f', 'A', 'I').
    pub term_code: JobStatus,
    /// Files sent (backup) or restored.
    pub job_files: u32,
    /// Bytes read from files (backup) or from the SD (restore).
    pub read_bytes: u64,
    /// File data bytes sent (backup) or written (restore).
    pub job_bytes: u64,
    /// Non-fatal errors (files that failed).
    pub errors: u32,
    /// 1 if a snapshot was used.
    pub vss: u32,
    /// 1 if data was encrypted.
    pub encrypt: u32,
    /// Bytes sent to the SD before comm-line compression.
    pub comm_bytes: u64,
    /// Bytes sent to the SD after comm-line compression.
    pub compress_comm_bytes: u64,
}

impl EndJob {
    /// The packet text, newline included.
    pub fn encode(&self) -> String {
        format!(
            "2800 End Job TermCode={} JobFiles={} ReadBytes={} JobBytes={} Errors={} VSS={} Encrypt={} CommBytes={} CompressCommBytes={}\n",
            self.term_code.code(),
            self.job_files,
            self.read_bytes,
            self.job_bytes,
            self.errors,
            self.vss,
            self.encrypt,
            self.comm_bytes,
            self.compress_comm_bytes
        )
    }

    /// Parses the line. The older forms without `VSS`/`Encrypt` or without
    /// the two comm byte counts are accepted (missing values are 0), like the
    /// Director does.
    pub fn decode(text: &str) -> Result<EndJob, AttrError> {
        let bad = || AttrError::BadEndJob(text.to_string());
        let rest = text
            .trim_end_matches(['\0', '\n'])
            .strip_prefix("2800 End Job ")
            .ok_or_else(bad)?;
        let mut e = EndJob {
            term_code: JobStatus::OK,
            job_files: 0,
            read_bytes: 0,
            job_bytes: 0,
            errors: 0,
            vss: 0,
            encrypt: 0,
            comm_bytes: 0,
            compress_comm_bytes: 0,
        };
        const KEYS: [&str; 9] = [
            "TermCode",
            "JobFiles",
            "ReadBytes",
            "JobBytes",
            "Errors",
            "VSS",
            "Encrypt",
            "CommBytes",
            "CompressCommBytes",
        ];
        let mut seen = 0;
        for (i, word) in rest.split_ascii_whitespace().enumerate() {
            let Some(key) = KEYS.get(i) else { break };
            let value = word
                .strip_prefix(key)
                .and_then(|w| w.strip_prefix('='))
                .ok_or_else(bad)?;
            let n: u64 = value.parse().map_err(|_| bad())?;
            let small = || u32::try_from(n).map_err(|_| bad());
            match i {
                0 => e.term_code = JobStatus::from_code(n as i64).ok_or_else(bad)?,
                1 => e.job_files = small()?,
                2 => e.read_bytes = n,
                3 => e.job_bytes = n,
                4 => e.errors = small()?,
                5 => e.vss = small()?,
                6 => e.encrypt = small()?,
                7 => e.comm_bytes = n,
                _ => e.compress_comm_bytes = n,
            }
            seen = i + 1;
        }
        // TermCode through Errors are in every version of the line.
        if seen < 5 {
            return Err(bad());
        }
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &[u8] =
        b"1 3 /data/hello.txt\0P4A mSR+ IGk B A A A m BAA I BrC8mu BrC8mu BrC8mu A A C\0\0\x000\0";
    const DIR: &[u8] =
        b"3 5 /data/sub/dir/\0P4A mSSB EHt C A A A BAA BAA I BrC8m0 BrC8mu BrC8mu A A C\0\0\x000\0";
    const LINK: &[u8] =
        b"1 4 /data/link\0P4A mST/ KH/ B A A A J BAA A BrC8nY BrC8nY BrC8nY A A C\0hello.txt\0\x000\0";

    #[test]
    fn captured_regular_file_record() {
        let r = AttrRecord::decode(HELLO).unwrap();
        assert_eq!(r.file_index, 1);
        assert_eq!(r.file_type, ft::REG);
        assert_eq!(r.fname, b"/data/hello.txt");
        assert!(r.link.is_empty() && r.attr_ex.is_empty());
        assert_eq!(r.delta_seq, 0);
        let s = r.stat().unwrap();
        assert_eq!(
            s,
            Stat {
                dev: 65024,
                ino: 10036350,
                mode: 0o100644,
                nlink: 1,
                uid: 0,
                gid: 0,
                rdev: 0,
                size: 38,
                blksize: 4096,
                blocks: 8,
                atime: 1795934638,
                mtime: 1795934638,
                ctime: 1795934638,
                link_fi: 0,
                flags: 0,
                data_stream: 2,
                win_attrs: None,
            }
        );
        assert_eq!(s.encode(), r.lstat);
        assert_eq!(r.encode(), HELLO, "re-encodes byte for byte");
        assert_eq!(
            r.split_path(),
            (&b"/data/"[..], &b"hello.txt"[..]),
            "catalog split"
        );
    }

    #[test]
    fn captured_directory_and_symlink_records() {
        let d = AttrRecord::decode(DIR).unwrap();
        assert_eq!(d.file_type, ft::DIREND);
        assert!(ft::is_directory(d.file_type));
        assert_eq!(d.stat().unwrap().mode, 0o40755);
        assert_eq!(d.split_path().1, b"");
        assert_eq!(d.encode(), DIR);

        let l = AttrRecord::decode(LINK).unwrap();
        assert_eq!(l.file_type, ft::LNK);
        assert_eq!(l.link, b"hello.txt");
        assert_eq!(l.stat().unwrap().mode, 0o120777);
        assert_eq!(l.encode(), LINK);
    }

    #[test]
    fn records_tolerate_old_forms_and_refuse_garbage() {
        let r = AttrRecord::decode(b"7 65539 /x y\0A A A A A A A A A A A A A").unwrap();
        assert_eq!(r.file_type, ft::REG, "bit 16 flag is masked");
        assert_eq!(r.fname, b"/x y", "names may hold spaces");
        assert_eq!(r.stat().unwrap().data_stream, 0);
        assert!(AttrRecord::decode(b"x 3 /a\0A").is_err());
        assert!(AttrRecord::decode(b"1 3 /a").is_err());
        assert!(AttrRecord::decode(b"1 3 \0A").is_err());
        assert!(Stat::decode("A A").is_err());
        assert!(Stat::decode("A A A A A A A A A A A A ?").is_err());
    }

    #[test]
    fn stat_negative_and_windows_fields() {
        let s = Stat {
            mtime: -5,
            win_attrs: Some(32),
            ..Stat::default()
        };
        let text = s.encode();
        assert_eq!(text, "A A A A A A A A A A A -F A A A A g");
        assert_eq!(Stat::decode(&text).unwrap(), s);
    }

    #[test]
    fn stream_headers() {
        let h = StreamHeader {
            file_index: 5,
            stream: stream::FILE_DATA,
            size: 223931,
        };
        assert_eq!(h.encode(), "5 2 223931");
        assert_eq!(StreamHeader::decode(b"5 2 223931").unwrap(), h);
        assert_eq!(StreamHeader::decode(b"1 1 0\0").unwrap().stream, 1);
        assert!(StreamHeader::decode(b"5 x 1").is_err());
        assert!(StreamHeader::decode(b"").is_err());

        let r = RecHdr::decode(b"rechdr 1 1795934639 5 2 65536").unwrap();
        assert_eq!(
            r,
            RecHdr {
                vol_session_id: 1,
                vol_session_time: 1795934639,
                file_index: 5,
                stream: 2,
                data_len: 65536
            }
        );
        assert_eq!(r.encode(), "rechdr 1 1795934639 5 2 65536");
        assert!(RecHdr::decode(b"rechdr 1 2 3 4").is_err());
        assert!(RecHdr::decode(b"rechdr 1 2 3 4 -1").is_err());
    }

    #[test]
    fn stream_ids() {
        assert_eq!(stream::id(stream::BIT_PLUGIN | 2), 2);
        assert_eq!(stream::digest_len(stream::MD5_DIGEST), Some(16));
        assert_eq!(stream::digest_len(stream::SHA512_DIGEST), Some(64));
        assert!(!stream::is_digest(stream::FILE_DATA));
        assert!(stream::is_attributes(5));
    }

    #[test]
    fn end_job_line() {
        let text = "2800 End Job TermCode=84 JobFiles=6 ReadBytes=223931 JobBytes=223931 Errors=0 VSS=0 Encrypt=0 CommBytes=224830 CompressCommBytes=224830\n";
        let e = EndJob::decode(text).unwrap();
        assert_eq!(e.term_code, JobStatus::OK);
        assert_eq!(e.job_files, 6);
        assert_eq!(e.read_bytes, 223931);
        assert_eq!(e.compress_comm_bytes, 224830);
        assert_eq!(e.encode(), text);
        let old =
            EndJob::decode("2800 End Job TermCode=65 JobFiles=1 ReadBytes=2 JobBytes=3 Errors=4\n")
                .unwrap();
        assert_eq!(old.term_code, JobStatus::CANCELED);
        assert_eq!((old.errors, old.vss, old.comm_bytes), (4, 0, 0));
        assert!(EndJob::decode("2800 End Job TermCode=84").is_err());
        assert!(EndJob::decode("2000 OK").is_err());
    }

    #[test]
    fn job_status_codes_and_merge() {
        assert_eq!(JobStatus::OK.code(), 84);
        assert_eq!(JobStatus::from_code(65), Some(JobStatus::CANCELED));
        assert_eq!(JobStatus::from_code(0), None);
        assert!(JobStatus::WARNINGS.is_ok());
        let s = JobStatus::RUNNING.merge(JobStatus::ERROR_TERMINATED);
        assert_eq!(s, JobStatus::ERROR_TERMINATED);
        assert_eq!(
            s.merge(JobStatus::OK),
            JobStatus::ERROR_TERMINATED,
            "first error sticks"
        );
        assert_eq!(s.merge(JobStatus::INCOMPLETE), JobStatus::INCOMPLETE);
        assert_eq!(JobStatus::RUNNING.merge(JobStatus::OK), JobStatus::OK);
    }
}
