//! Storage daemon -> Director messages on a job's message channel, and the
//! Director's replies (protocol-jobs.md §5.7, §6.1, §4).
//!
//! The SD (and, for `Jmsg` / `Progress`, the FD on its command channel)
//! sends one message per packet. [`parse`] turns a packet into a
//! [`DirMessage`]; every message type also has a `format` method producing
//! the exact bytes a Bacula peer sends, so the Storage daemon uses this module
//! to speak and the Director to listen (and the other way round for the
//! replies: [`MediaInfo`] is `OK_media`, plus the fixed reply strings below).
//!
//! Field sets differ between generations: 9.6.x (`Generation::V96`) and
//! 13.x (`Generation::V13`: `create=` in `FindMedia`, `MaxPoolBytes` /
//! `PoolBytes` in `UpdateMedia` and `OK_media`). Director and SD must use the
//! same generation; pick it from the peer's version with
//! [`Generation::of_sd_version`].
//!
//! Parsing follows Bacula's lenient scanner: `key=value` fields are looked up
//! by name, a missing or empty number reads as 0, extra fields are ignored.
//! Names that may contain spaces (volume, pool, job names, `ErrMsg`, the
//! `BlastAttr` file) travel "bashed" (space -> byte 0x01); the structs hold
//! them unbashed and `format` bashes them again.

use std::fmt::Write as _;

/// Which field set a peer speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generation {
    /// Bacula 9.6.x (SD version 306, Director version 103).
    V96,
    /// Bacula 13.x (SD version 30007, Director version 10002).
    V13,
}

impl Generation {
    /// The generation of a Storage daemon from its `3000 OK Hello N` version.
    pub fn of_sd_version(version: u32) -> Generation {
        if version >= 30_000 {
            Generation::V13
        } else {
            Generation::V96
        }
    }
}

/// A message this module could not understand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatReqError {
    /// Not a message of this channel (first words unknown).
    #[error("unknown message on the job message channel: {0:?}")]
    Unknown(String),
    /// Right first word, but a required field is missing or bad.
    #[error("malformed {what}: {line:?}")]
    Malformed {
        /// Which message.
        what: &'static str,
        /// The text (cut to 200 bytes).
        line: String,
    },
    /// An `UpdCat` packet shorter than its binary header or declared length.
    #[error("UpdCat packet too short: {0} bytes")]
    ShortUpdCat(usize),
}

/// Replaces spaces by byte 0x01, as Bacula does for names on the wire.
pub fn bash_spaces(s: &str) -> String {
    s.replace(' ', "\x01")
}

/// Turns byte 0x01 back into spaces.
pub fn unbash_spaces(s: &str) -> String {
    s.replace('\x01', " ")
}

/// `CatReq JobId=.. FindMedia=.. pool_name=.. media_type=.. vol_type=..`:
/// the SD wants an appendable volume (the Director finds or creates one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FindMedia {
    /// JobId.
    pub job_id: u32,
    /// `FindMedia=` index (1 for the first volume asked for).
    pub index: i32,
    /// Pool name (unbashed).
    pub pool_name: String,
    /// Media type (unbashed).
    pub media_type: String,
    /// Volume type (1 file, 2 tape, ...; 0 = any).
    pub vol_type: u32,
    /// 13.x only: `create=` (may the Director create a volume).
    pub create: Option<bool>,
}

impl FindMedia {
    /// The packet text (with its newline).
    pub fn format(&self, g: Generation) -> String {
        let mut s = format!(
            "CatReq JobId={} FindMedia={} pool_name={} media_type={} vol_type={}",
            self.job_id,
            self.index,
            bash_spaces(&self.pool_name),
            bash_spaces(&self.media_type),
            self.vol_type
        );
        if g == Generation::V13 {
            let _ = write!(s, " create={}", i32::from(self.create.unwrap_or(true)));
        }
        s.push('\n');
        s
    }
}

/// `CatReq JobId=.. GetVolInfo VolName=.. write=..`: the SD asks for a
/// volume's catalog record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetVolInfo {
    /// JobId.
    pub job_id: u32,
    /// Volume name (unbashed).
    pub vol_name: String,
    /// True when the SD wants to write the volume.
    pub write: bool,
}

impl GetVolInfo {
    /// The packet text.
    pub fn format(&self) -> String {
        format!(
            "CatReq JobId={} GetVolInfo VolName={} write={}\n",
            self.job_id,
            bash_spaces(&self.vol_name),
            i32::from(self.write)
        )
    }
}

/// `CatReq JobId=.. UpdateMedia VolName=.. ...`: new volume statistics
/// from the SD (answered with [`MediaInfo`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct UpdateMedia {
    pub job_id: u32,
    /// Volume name (unbashed).
    pub vol_name: String,
    pub vol_jobs: u32,
    pub vol_files: u32,
    pub vol_blocks: u32,
    pub vol_bytes: u64,
    pub vol_abytes: u64,
    pub vol_hole_bytes: u64,
    pub vol_holes: u32,
    pub vol_mounts: u32,
    pub vol_errors: u32,
    pub vol_writes: u64,
    pub max_vol_bytes: u64,
    /// Last write time (epoch seconds).
    pub end_time: i64,
    /// `Append`, `Full`, `Used`, `Error`, ...
    pub vol_status: String,
    pub slot: i32,
    /// True when the SD just labeled the volume (first write).
    pub relabel: bool,
    pub in_changer: bool,
    pub vol_read_time: i64,
    pub vol_write_time: i64,
    /// First write time (epoch seconds).
    pub vol_first_written: i64,
    pub vol_type: u32,
    pub vol_parts: i32,
    pub vol_cloud_parts: i32,
    pub last_part_bytes: i64,
    pub enabled: i32,
    /// 13.x only: `MaxPoolBytes` and `PoolBytes`.
    pub pool_bytes: Option<(i64, i64)>,
    pub recycle: i32,
}

impl UpdateMedia {
    /// The packet text in the generation's field set.
    pub fn format(&self, g: Generation) -> String {
        let mut s = format!(
            "CatReq JobId={} UpdateMedia VolName={} VolJobs={} VolFiles={} VolBlocks={} \
             VolBytes={} VolABytes={} VolHoleBytes={} VolHoles={} VolMounts={} VolErrors={} \
             VolWrites={} MaxVolBytes={} EndTime={} VolStatus={} Slot={} relabel={} \
             InChanger={} VolReadTime={} VolWriteTime={} VolFirstWritten={} VolType={} \
             VolParts={} VolCloudParts={} LastPartBytes={} Enabled={}",
            self.job_id,
            bash_spaces(&self.vol_name),
            self.vol_jobs,
            self.vol_files,
            self.vol_blocks,
            self.vol_bytes,
            self.vol_abytes,
            self.vol_hole_bytes,
            self.vol_holes,
            self.vol_mounts,
            self.vol_errors,
            self.vol_writes,
            self.max_vol_bytes,
            self.end_time,
            self.vol_status,
            self.slot,
            i32::from(self.relabel),
            i32::from(self.in_changer),
            self.vol_read_time,
            self.vol_write_time,
            self.vol_first_written,
            self.vol_type,
            self.vol_parts,
            self.vol_cloud_parts,
            self.last_part_bytes,
            self.enabled,
        );
        if g == Generation::V13 {
            let (max, now) = self.pool_bytes.unwrap_or((0, 0));
            let _ = write!(s, " MaxPoolBytes={max} PoolBytes={now}");
        }
        let _ = writeln!(s, " Recycle={}", self.recycle);
        s
    }
}

/// One `CreateJobMedia` range line: which FileIndexes of the job went to
/// which part of a volume. Start/end addresses are split into high
/// (`*_file`) and low (`*_block`) 32 bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct JobMediaRange {
    pub first_index: u32,
    pub last_index: u32,
    pub start_file: u32,
    pub end_file: u32,
    pub start_block: u32,
    pub end_block: u32,
    pub media_id: u64,
}

impl JobMediaRange {
    /// Parses `"%u %u %u %u %u %u %lld\n"`.
    pub fn parse(line: &str) -> Result<JobMediaRange, CatReqError> {
        let bad = || CatReqError::Malformed {
            what: "CreateJobMedia range",
            line: cut(line),
        };
        let v: Vec<&str> = line.split_ascii_whitespace().collect();
        if v.len() < 7 {
            return Err(bad());
        }
        let u = |i: usize| v[i].parse::<u32>().map_err(|_| bad());
        Ok(JobMediaRange {
            first_index: u(0)?,
            last_index: u(1)?,
            start_file: u(2)?,
            end_file: u(3)?,
            start_block: u(4)?,
            end_block: u(5)?,
            media_id: v[6].parse().map_err(|_| bad())?,
        })
    }

    /// The range line.
    pub fn format(&self) -> String {
        format!(
            "{} {} {} {} {} {} {}\n",
            self.first_index,
            self.last_index,
            self.start_file,
            self.end_file,
            self.start_block,
            self.end_block,
            self.media_id
        )
    }

    /// The 0/0 placeholder the SD sends when it starts a volume.
    pub fn is_placeholder(&self) -> bool {
        self.first_index == 0 && self.last_index == 0
    }

    /// Start byte address on the volume (`VolAddr` start in a bootstrap).
    pub fn start_addr(&self) -> u64 {
        (u64::from(self.start_file) << 32) | u64::from(self.start_block)
    }

    /// End byte address on the volume.
    pub fn end_addr(&self) -> u64 {
        (u64::from(self.end_file) << 32) | u64::from(self.end_block)
    }
}

/// The head of a `CreateJobMedia` request (range lines and an EOD follow).
pub fn format_create_jobmedia(job_id: u32) -> String {
    format!("CatReq JobId={job_id} CreateJobMedia\n")
}

/// Length of the binary header of an `UpdCat` packet.
pub const UPDCAT_HEADER_LEN: usize = 20;

/// `UpdCat JobId=.. FileAttributes ` + binary header + one record of the
/// job (attribute record, digest, restore object) to catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdCat {
    /// JobId.
    pub job_id: u32,
    /// VolSessionId of the backup.
    pub vol_session_id: u32,
    /// VolSessionTime of the backup.
    pub vol_session_time: u32,
    /// FileIndex of the record.
    pub file_index: i32,
    /// Full stream value (mask with 0x7FF for the stream id).
    pub stream: i32,
    /// The record data as sent by the FD.
    pub data: Vec<u8>,
}

impl UpdCat {
    /// The stream id without its flag bits.
    pub fn stream_id(&self) -> i32 {
        self.stream & 0x7FF
    }

    /// The packet bytes: text prefix, big-endian header, data.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("UpdCat JobId={} FileAttributes ", self.job_id).into_bytes();
        out.extend_from_slice(&self.vol_session_id.to_be_bytes());
        out.extend_from_slice(&self.vol_session_time.to_be_bytes());
        out.extend_from_slice(&self.file_index.to_be_bytes());
        out.extend_from_slice(&self.stream.to_be_bytes());
        let len = u32::try_from(self.data.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.data);
        out
    }

    fn decode(payload: &[u8]) -> Result<UpdCat, CatReqError> {
        const MARK: &[u8] = b" FileAttributes ";
        let head_end = payload
            .windows(MARK.len())
            .take(64)
            .position(|w| w == MARK)
            .ok_or_else(|| malformed("UpdCat", payload))?;
        let head = String::from_utf8_lossy(&payload[..head_end]);
        let job_id = Fields::new(&head)
            .num("JobId")
            .ok_or_else(|| malformed("UpdCat", payload))?;
        let bin = &payload[head_end + MARK.len()..];
        if bin.len() < UPDCAT_HEADER_LEN {
            return Err(CatReqError::ShortUpdCat(payload.len()));
        }
        let word = |i: usize| [bin[i], bin[i + 1], bin[i + 2], bin[i + 3]];
        let len = u32::from_be_bytes(word(16)) as usize;
        let data = &bin[UPDCAT_HEADER_LEN..];
        // Bacula trusts the declared length but never reads past the packet.
        let data = &data[..len.min(data.len())];
        if data.len() < len {
            return Err(CatReqError::ShortUpdCat(payload.len()));
        }
        Ok(UpdCat {
            job_id: job_id as u32,
            vol_session_id: u32::from_be_bytes(word(0)),
            vol_session_time: u32::from_be_bytes(word(4)),
            file_index: i32::from_be_bytes(word(8)),
            stream: i32::from_be_bytes(word(12)),
            data: data.to_vec(),
        })
    }
}

/// `Jmsg JobId=.. type=.. level=.. text`: a job message to route (log,
/// console, catalog).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jmsg {
    /// JobId.
    pub job_id: u32,
    /// Message type number in the *sender's* table (protocol-jobs.md §8.6).
    pub msg_type: i32,
    /// Message time, epoch seconds (0 = now, 1 = print without a date).
    pub time: i64,
    /// The text, prefixed by the sender (`bacula-sd JobId 1: ...`), usually ending in `\n`.
    pub text: String,
}

impl Jmsg {
    /// The packet text.
    pub fn format(&self) -> String {
        format!(
            "Jmsg JobId={} type={} level={} {}",
            self.job_id, self.msg_type, self.time, self.text
        )
    }
}

/// Message types of protocol-jobs.md §8.6, independent of the numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum MsgType {
    Abort,
    Debug,
    Events,
    Fatal,
    Error,
    Warning,
    Info,
    Saved,
    NotSaved,
    Skipped,
    Mount,
    ErrorTerm,
    Term,
    Restored,
    Security,
    Alert,
    VolMgmt,
    Verified,
    /// A number outside the table.
    Other(i32),
}

impl MsgType {
    /// Reads a `type=` number with the sender's table (9.6 or 13.x).
    pub fn from_code(code: i32, g: Generation) -> MsgType {
        use MsgType::*;
        const V96: [MsgType; 16] = [
            Abort, Debug, Fatal, Error, Warning, Info, Saved, NotSaved, Skipped, Mount, ErrorTerm,
            Term, Restored, Security, Alert, VolMgmt,
        ];
        const V13: [MsgType; 18] = [
            Abort, Debug, Events, Fatal, Error, Warning, Info, Saved, NotSaved, Skipped, Mount,
            ErrorTerm, Term, Restored, Security, Alert, VolMgmt, Verified,
        ];
        let table: &[MsgType] = match g {
            Generation::V96 => &V96,
            Generation::V13 => &V13,
        };
        usize::try_from(code - 1)
            .ok()
            .and_then(|i| table.get(i).copied())
            .unwrap_or(Other(code))
    }

    /// The number in a table (`Other` keeps its number; types missing from
    /// 9.6 map to `Info`'s number).
    pub fn code(self, g: Generation) -> i32 {
        use MsgType::*;
        let v13 = match self {
            Other(c) => return c,
            Abort => 1,
            Debug => 2,
            Events => 3,
            Fatal => 4,
            Error => 5,
            Warning => 6,
            Info => 7,
            Saved => 8,
            NotSaved => 9,
            Skipped => 10,
            Mount => 11,
            ErrorTerm => 12,
            Term => 13,
            Restored => 14,
            Security => 15,
            Alert => 16,
            VolMgmt => 17,
            Verified => 18,
        };
        match (g, self) {
            (Generation::V13, _) => v13,
            (Generation::V96, Events | Verified) => 6,
            (Generation::V96, Abort | Debug) => v13,
            (Generation::V96, _) => v13 - 1,
        }
    }
}

/// `Status JobId=.. JobStatus=..` (the SD's job status letter as its code).
pub fn format_status(job_id: u32, status: u8) -> String {
    format!("Status JobId={job_id} JobStatus={status}\n")
}

/// `3010 Job <job> start` (the job name bashed).
pub fn format_job_start(job: &str) -> String {
    format!("3010 Job {} start\n", bash_spaces(job))
}

/// `3099 Job .. end JobStatus=.. JobFiles=.. JobBytes=.. JobErrors=.. ErrMsg=..`:
/// the SD's end of job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobEnd {
    /// Unique job name (unbashed).
    pub job: String,
    /// SD job status letter as a byte (`b'T'` OK).
    pub status: u8,
    /// Files the SD wrote/read.
    pub files: u32,
    /// Bytes the SD wrote/read.
    pub bytes: u64,
    /// SD errors.
    pub errors: u32,
    /// Error text (unbashed; usually empty).
    pub err_msg: String,
}

impl JobEnd {
    /// The packet text.
    pub fn format(&self) -> String {
        format!(
            "3099 Job {} end JobStatus={} JobFiles={} JobBytes={} JobErrors={} ErrMsg={}\n",
            bash_spaces(&self.job),
            self.status,
            self.files,
            self.bytes,
            self.errors,
            bash_spaces(&self.err_msg)
        )
    }
}

/// `Progress JobId=.. files=.. bytes=.. bps=..` (FD -> Director, ~every 30 s).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// JobId.
    pub job_id: u32,
    /// Files so far.
    pub files: u64,
    /// Bytes so far.
    pub bytes: u64,
    /// Current rate, bytes per second.
    pub bps: u64,
}

impl Progress {
    /// The packet text.
    pub fn format(&self) -> String {
        format!(
            "Progress JobId={} files={} bytes={} bps={}\n",
            self.job_id, self.files, self.bytes, self.bps
        )
    }
}

/// One message arriving at the Director on a job's SD message channel (or
/// FD command channel).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirMessage {
    /// `CatReq ... FindMedia=`.
    FindMedia(FindMedia),
    /// `CatReq ... GetVolInfo`.
    GetVolInfo(GetVolInfo),
    /// `CatReq ... UpdateMedia`.
    UpdateMedia(UpdateMedia),
    /// `CatReq JobId=.. CreateJobMedia`: range packets and an EOD follow.
    CreateJobMedia {
        /// JobId.
        job_id: u32,
    },
    /// `UpdCat ... FileAttributes` + binary record.
    UpdCat(UpdCat),
    /// `BlastAttr JobId=.. File=..`: attributes are spooled in that SD file.
    BlastAttr {
        /// JobId.
        job_id: u32,
        /// Spool file path on the SD's machine (unbashed).
        file: String,
    },
    /// `Jmsg ...`.
    Jmsg(Jmsg),
    /// `Status JobId=.. JobStatus=..`: the SD's job status changed.
    Status {
        /// JobId.
        job_id: u32,
        /// Status letter as a byte (`b'R'`, `b'F'`, ...).
        status: u8,
    },
    /// `3010 Job .. start`.
    JobStart {
        /// Unique job name (unbashed).
        job: String,
    },
    /// `3099 Job .. end ...`.
    JobEnd(JobEnd),
    /// `Progress ...`.
    Progress(Progress),
    /// Any other line starting with a digit: a reply to a Director command.
    Reply(String),
}

/// Parses one packet of the message channel. The payload may end in a NUL.
pub fn parse(payload: &[u8]) -> Result<DirMessage, CatReqError> {
    if payload.starts_with(b"UpdCat ") {
        return UpdCat::decode(payload).map(DirMessage::UpdCat);
    }
    let text = crate::scan::c_text(payload);
    let f = Fields::new(&text);
    let first = f.words.first().copied().unwrap_or("");
    let job_id = || {
        f.num("JobId")
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| malformed(first_static(first), payload))
    };
    match first {
        "CatReq" => {
            let kind = f.words.get(2).copied().unwrap_or("");
            if kind.starts_with("FindMedia=") {
                Ok(DirMessage::FindMedia(FindMedia {
                    job_id: job_id()?,
                    index: f.num("FindMedia").unwrap_or(0) as i32,
                    pool_name: f.name("pool_name"),
                    media_type: f.name("media_type"),
                    vol_type: f.num("vol_type").unwrap_or(0) as u32,
                    create: f.get("create").map(|v| v.trim() != "0"),
                }))
            } else if kind == "GetVolInfo" {
                let vol = f
                    .get("VolName")
                    .ok_or_else(|| malformed("GetVolInfo", payload))?;
                Ok(DirMessage::GetVolInfo(GetVolInfo {
                    job_id: job_id()?,
                    vol_name: unbash_spaces(vol),
                    write: f.num("write").unwrap_or(0) != 0,
                }))
            } else if kind == "UpdateMedia" {
                if f.get("VolName").is_none() {
                    return Err(malformed("UpdateMedia", payload));
                }
                let n = |k: &str| f.num(k).unwrap_or(0);
                Ok(DirMessage::UpdateMedia(UpdateMedia {
                    job_id: job_id()?,
                    vol_name: f.name("VolName"),
                    vol_jobs: n("VolJobs") as u32,
                    vol_files: n("VolFiles") as u32,
                    vol_blocks: n("VolBlocks") as u32,
                    vol_bytes: n("VolBytes") as u64,
                    vol_abytes: n("VolABytes") as u64,
                    vol_hole_bytes: n("VolHoleBytes") as u64,
                    vol_holes: n("VolHoles") as u32,
                    vol_mounts: n("VolMounts") as u32,
                    vol_errors: n("VolErrors") as u32,
                    vol_writes: n("VolWrites") as u64,
                    max_vol_bytes: n("MaxVolBytes") as u64,
                    end_time: n("EndTime"),
                    vol_status: f.get("VolStatus").unwrap_or("").to_string(),
                    slot: n("Slot") as i32,
                    relabel: n("relabel") != 0,
                    in_changer: n("InChanger") != 0,
                    vol_read_time: n("VolReadTime"),
                    vol_write_time: n("VolWriteTime"),
                    vol_first_written: n("VolFirstWritten"),
                    vol_type: n("VolType") as u32,
                    vol_parts: n("VolParts") as i32,
                    vol_cloud_parts: n("VolCloudParts") as i32,
                    last_part_bytes: n("LastPartBytes"),
                    enabled: n("Enabled") as i32,
                    pool_bytes: f
                        .get("PoolBytes")
                        .map(|_| (n("MaxPoolBytes"), n("PoolBytes"))),
                    recycle: n("Recycle") as i32,
                }))
            } else if kind == "CreateJobMedia" {
                Ok(DirMessage::CreateJobMedia { job_id: job_id()? })
            } else {
                Err(CatReqError::Unknown(cut(&text)))
            }
        }
        "BlastAttr" => Ok(DirMessage::BlastAttr {
            job_id: job_id()?,
            file: f.name("File"),
        }),
        "Jmsg" => {
            let mut s = crate::scan::Scanner::lenient(&text);
            let bad = || malformed("Jmsg", payload);
            s.lit("Jmsg JobId=").ok_or_else(bad)?;
            let job_id = s.int().ok_or_else(bad)?;
            s.lit(" type=").ok_or_else(bad)?;
            let msg_type = s.int().ok_or_else(bad)?;
            s.lit(" level=").ok_or_else(bad)?;
            let time = s.int().ok_or_else(bad)?;
            let rest = s.rest();
            let text = rest.strip_prefix(' ').unwrap_or(rest);
            Ok(DirMessage::Jmsg(Jmsg {
                job_id: u32::try_from(job_id).map_err(|_| bad())?,
                msg_type: msg_type as i32,
                time,
                text: text.to_string(),
            }))
        }
        "Status" => Ok(DirMessage::Status {
            job_id: job_id()?,
            status: f.num("JobStatus").unwrap_or(0).clamp(0, 255) as u8,
        }),
        "Progress" => Ok(DirMessage::Progress(Progress {
            job_id: job_id()?,
            files: f.num("files").unwrap_or(0).max(0) as u64,
            bytes: f.num("bytes").unwrap_or(0).max(0) as u64,
            bps: f.num("bps").unwrap_or(0).max(0) as u64,
        })),
        "3010" if f.words.get(1) == Some(&"Job") => Ok(DirMessage::JobStart {
            job: unbash_spaces(f.words.get(2).copied().unwrap_or("")),
        }),
        "3099" if f.words.get(1) == Some(&"Job") && f.words.get(3) == Some(&"end") => {
            Ok(DirMessage::JobEnd(JobEnd {
                job: unbash_spaces(f.words.get(2).copied().unwrap_or("")),
                status: f.num("JobStatus").unwrap_or(0).clamp(0, 255) as u8,
                files: f.num("JobFiles").unwrap_or(0).clamp(0, u32::MAX as i64) as u32,
                bytes: f.num("JobBytes").unwrap_or(0).max(0) as u64,
                errors: f.num("JobErrors").unwrap_or(0).clamp(0, u32::MAX as i64) as u32,
                err_msg: f.name("ErrMsg"),
            }))
        }
        w if w.starts_with(|c: char| c.is_ascii_digit()) => Ok(DirMessage::Reply(text)),
        _ => Err(CatReqError::Unknown(cut(&text))),
    }
}

/// A volume's catalog record as the Director sends it (`OK_media`): the
/// reply to `FindMedia`, `GetVolInfo` and `UpdateMedia`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct MediaInfo {
    /// Volume name (unbashed).
    pub vol_name: String,
    pub vol_jobs: u32,
    pub vol_files: u32,
    pub vol_blocks: u32,
    pub vol_bytes: u64,
    pub vol_abytes: u64,
    pub vol_hole_bytes: u64,
    pub vol_holes: u32,
    pub vol_mounts: u32,
    pub vol_errors: u32,
    pub vol_writes: u64,
    pub max_vol_bytes: u64,
    pub vol_capacity_bytes: u64,
    /// `Append`, `Full`, `Used`, `Recycle`, `Purged`, `Error`, ...
    pub vol_status: String,
    pub slot: i32,
    pub max_vol_jobs: u32,
    pub max_vol_files: u32,
    pub in_changer: i32,
    pub vol_read_time: i64,
    pub vol_write_time: i64,
    pub end_file: u32,
    pub end_block: u32,
    pub vol_type: u32,
    pub label_type: i32,
    pub media_id: u64,
    pub scratch_pool_id: u64,
    pub vol_parts: i32,
    pub vol_cloud_parts: i32,
    pub last_part_bytes: i64,
    pub enabled: i32,
    /// 13.x only: `MaxPoolBytes` and `PoolBytes`.
    pub pool_bytes: Option<(i64, i64)>,
    pub recycle: i32,
}

impl MediaInfo {
    /// The `1000 OK VolName=...` reply in the generation's field set.
    pub fn format(&self, g: Generation) -> String {
        let mut s = format!(
            "1000 OK VolName={} VolJobs={} VolFiles={} VolBlocks={} VolBytes={} VolABytes={} \
             VolHoleBytes={} VolHoles={} VolMounts={} VolErrors={} VolWrites={} MaxVolBytes={} \
             VolCapacityBytes={} VolStatus={} Slot={} MaxVolJobs={} MaxVolFiles={} InChanger={} \
             VolReadTime={} VolWriteTime={} EndFile={} EndBlock={} VolType={} LabelType={} \
             MediaId={} ScratchPoolId={} VolParts={} VolCloudParts={} LastPartBytes={} Enabled={}",
            bash_spaces(&self.vol_name),
            self.vol_jobs,
            self.vol_files,
            self.vol_blocks,
            self.vol_bytes,
            self.vol_abytes,
            self.vol_hole_bytes,
            self.vol_holes,
            self.vol_mounts,
            self.vol_errors,
            self.vol_writes,
            self.max_vol_bytes,
            self.vol_capacity_bytes,
            self.vol_status,
            self.slot,
            self.max_vol_jobs,
            self.max_vol_files,
            self.in_changer,
            self.vol_read_time,
            self.vol_write_time,
            self.end_file,
            self.end_block,
            self.vol_type,
            self.label_type,
            self.media_id,
            self.scratch_pool_id,
            self.vol_parts,
            self.vol_cloud_parts,
            self.last_part_bytes,
            self.enabled,
        );
        if g == Generation::V13 {
            let (max, now) = self.pool_bytes.unwrap_or((0, 0));
            let _ = write!(s, " MaxPoolBytes={max} PoolBytes={now}");
        }
        let _ = writeln!(s, " Recycle={}", self.recycle);
        s
    }

    /// Parses an `OK_media` reply (the SD side). Needs `1000 OK VolName=`.
    pub fn parse(text: &str) -> Result<MediaInfo, CatReqError> {
        if !text.starts_with("1000 OK VolName=") {
            return Err(CatReqError::Malformed {
                what: "OK_media",
                line: cut(text),
            });
        }
        let f = Fields::new(text);
        let n = |k: &str| f.num(k).unwrap_or(0);
        Ok(MediaInfo {
            vol_name: f.name("VolName"),
            vol_jobs: n("VolJobs") as u32,
            vol_files: n("VolFiles") as u32,
            vol_blocks: n("VolBlocks") as u32,
            vol_bytes: n("VolBytes") as u64,
            vol_abytes: n("VolABytes") as u64,
            vol_hole_bytes: n("VolHoleBytes") as u64,
            vol_holes: n("VolHoles") as u32,
            vol_mounts: n("VolMounts") as u32,
            vol_errors: n("VolErrors") as u32,
            vol_writes: n("VolWrites") as u64,
            max_vol_bytes: n("MaxVolBytes") as u64,
            vol_capacity_bytes: n("VolCapacityBytes") as u64,
            vol_status: f.get("VolStatus").unwrap_or("").to_string(),
            slot: n("Slot") as i32,
            max_vol_jobs: n("MaxVolJobs") as u32,
            max_vol_files: n("MaxVolFiles") as u32,
            in_changer: n("InChanger") as i32,
            vol_read_time: n("VolReadTime"),
            vol_write_time: n("VolWriteTime"),
            end_file: n("EndFile") as u32,
            end_block: n("EndBlock") as u32,
            vol_type: n("VolType") as u32,
            label_type: n("LabelType") as i32,
            media_id: n("MediaId") as u64,
            scratch_pool_id: n("ScratchPoolId") as u64,
            vol_parts: n("VolParts") as i32,
            vol_cloud_parts: n("VolCloudParts") as i32,
            last_part_bytes: n("LastPartBytes"),
            enabled: n("Enabled") as i32,
            pool_bytes: f
                .get("PoolBytes")
                .map(|_| (n("MaxPoolBytes"), n("PoolBytes"))),
            recycle: n("Recycle") as i32,
        })
    }
}

/// Reply to `CreateJobMedia` when the rows were stored.
pub const OK_CREATE_JOBMEDIA: &str = "1000 OK CreateJobMedia\n";
/// Reply to `CreateJobMedia` when they were not.
pub const ERR_CREATE_JOBMEDIA: &str = "1992 Create JobMedia error\n";
/// Reply to `BlastAttr` when the Director read the spool file itself.
pub const OK_BLAST_ATTR: &str = "1000 OK BlastAttr\n";
/// Reply to `BlastAttr` asking the SD to send the spooled records over the socket.
pub const ERR_BLAST_ATTR: &str = "1990 ERROR BlastAttr\n";
/// Reply to `UpdateMedia` when the catalog update failed.
pub const ERR_UPDATE_MEDIA: &str = "1993 Update Media error\n";

/// `1901 No Media. <reason>`: no appendable volume for `FindMedia`.
pub fn no_media(reason: &str) -> String {
    format!("1901 No Media. {reason}\n")
}

/// `1997 Volume "<name>" not in catalog.` for `GetVolInfo`.
pub fn volume_not_in_catalog(vol: &str) -> String {
    format!("1997 Volume \"{vol}\" not in catalog.\n")
}

/// `1998 Volume "<name>" catalog status is <status>, <why>.` for `GetVolInfo`.
pub fn volume_wrong_status(vol: &str, status: &str, why: &str) -> String {
    format!("1998 Volume \"{vol}\" catalog status is {status}, {why}.\n")
}

/// The whitespace-separated words of a line and their `key=value` lookups.
struct Fields<'a> {
    words: Vec<&'a str>,
}

impl<'a> Fields<'a> {
    fn new(text: &'a str) -> Fields<'a> {
        Fields {
            words: text.split_ascii_whitespace().collect(),
        }
    }

    /// The raw value of the first `key=` word.
    fn get(&self, key: &str) -> Option<&'a str> {
        self.words
            .iter()
            .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }

    /// An unbashed name value ("" when absent).
    fn name(&self, key: &str) -> String {
        unbash_spaces(self.get(key).unwrap_or(""))
    }

    /// A number value: leading `-` and digits, as Bacula's `%d`/`%lld`
    /// read it (no digits = 0); `None` only when the key is absent.
    fn num(&self, key: &str) -> Option<i64> {
        let v = self.get(key)?;
        let mut s = crate::scan::Scanner::lenient(v);
        s.int()
    }
}

fn cut(text: &str) -> String {
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

fn malformed(what: &'static str, payload: &[u8]) -> CatReqError {
    CatReqError::Malformed {
        what,
        line: cut(&String::from_utf8_lossy(&payload[..payload.len().min(200)])),
    }
}

fn first_static(word: &str) -> &'static str {
    match word {
        "CatReq" => "CatReq",
        "BlastAttr" => "BlastAttr",
        "Status" => "Status",
        "Progress" => "Progress",
        _ => "message",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_media_round_trip_and_generations() {
        let line = "CatReq JobId=1 FindMedia=1 pool_name=File media_type=File vol_type=1\n";
        let DirMessage::FindMedia(m) = parse(line.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(m.job_id, 1);
        assert_eq!(m.index, 1);
        assert_eq!(m.pool_name, "File");
        assert_eq!(m.media_type, "File");
        assert_eq!(m.vol_type, 1);
        assert_eq!(m.create, None);
        assert_eq!(m.format(Generation::V96), line);
        let v13 = m.format(Generation::V13);
        assert!(v13.ends_with("vol_type=1 create=1\n"), "{v13}");
        let DirMessage::FindMedia(m13) = parse(v13.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(m13.create, Some(true));
        // Bashed names.
        let m = FindMedia {
            pool_name: "My Pool".into(),
            ..m
        };
        let t = m.format(Generation::V96);
        assert!(t.contains("pool_name=My\x01Pool "));
        assert_eq!(parse(t.as_bytes()).unwrap(), DirMessage::FindMedia(m));
    }

    #[test]
    fn get_vol_info() {
        let line = "CatReq JobId=2 GetVolInfo VolName=Vol-0001 write=0\n";
        let m = parse(line.as_bytes()).unwrap();
        assert_eq!(
            m,
            DirMessage::GetVolInfo(GetVolInfo {
                job_id: 2,
                vol_name: "Vol-0001".into(),
                write: false
            })
        );
        let DirMessage::GetVolInfo(g) = m else {
            panic!()
        };
        assert_eq!(g.format(), line);
    }

    #[test]
    fn update_media_96_round_trip() {
        let line = "CatReq JobId=1 UpdateMedia VolName=Vol-0001 VolJobs=1 VolFiles=0 \
                    VolBlocks=4 VolBytes=225428 VolABytes=0 VolHoleBytes=0 VolHoles=0 \
                    VolMounts=1 VolErrors=0 VolWrites=5 MaxVolBytes=53687091200 \
                    EndTime=1795934646 VolStatus=Append Slot=0 relabel=0 InChanger=0 \
                    VolReadTime=0 VolWriteTime=1234 VolFirstWritten=1795934645 VolType=1 \
                    VolParts=0 VolCloudParts=0 LastPartBytes=0 Enabled=1 Recycle=1\n";
        let DirMessage::UpdateMedia(u) = parse(line.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(u.vol_name, "Vol-0001");
        assert_eq!(u.vol_bytes, 225_428);
        assert_eq!(u.max_vol_bytes, 53_687_091_200);
        assert_eq!(u.vol_status, "Append");
        assert_eq!(u.vol_first_written, 1_795_934_645);
        assert_eq!(u.recycle, 1);
        assert_eq!(u.pool_bytes, None);
        assert_eq!(u.format(Generation::V96), line);
        let v13 = u.format(Generation::V13);
        assert!(v13.contains("Enabled=1 MaxPoolBytes=0 PoolBytes=0 Recycle=1\n"));
        let DirMessage::UpdateMedia(u13) = parse(v13.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(u13.pool_bytes, Some((0, 0)));
    }

    #[test]
    fn create_jobmedia_and_ranges() {
        assert_eq!(
            parse(b"CatReq JobId=1 CreateJobMedia\n").unwrap(),
            DirMessage::CreateJobMedia { job_id: 1 }
        );
        assert_eq!(format_create_jobmedia(1), "CatReq JobId=1 CreateJobMedia\n");
        let r = JobMediaRange::parse("1 6 0 0 211 225428 1\n").unwrap();
        assert_eq!(
            r,
            JobMediaRange {
                first_index: 1,
                last_index: 6,
                start_file: 0,
                end_file: 0,
                start_block: 211,
                end_block: 225_428,
                media_id: 1
            }
        );
        assert_eq!(r.format(), "1 6 0 0 211 225428 1\n");
        assert_eq!((r.start_addr(), r.end_addr()), (211, 225_428));
        assert!(!r.is_placeholder());
        assert!(JobMediaRange::parse("0 0 0 0 0 0 1\n")
            .unwrap()
            .is_placeholder());
        let big = JobMediaRange {
            start_file: 1,
            start_block: 5,
            ..r
        };
        assert_eq!(big.start_addr(), (1u64 << 32) + 5);
        assert!(JobMediaRange::parse("1 2 3").is_err());
        assert!(JobMediaRange::parse("a 2 3 4 5 6 7").is_err());
    }

    #[test]
    fn updcat_binary_round_trip() {
        let rec = b"1 3 /data/hello.txt\0P4A mSR+ IGk B A A A m BAA I BrC8mu BrC8mu BrC8mu A A C\0\0\x000\0";
        let u = UpdCat {
            job_id: 1,
            vol_session_id: 1,
            vol_session_time: 1_795_934_639,
            file_index: 1,
            stream: 1,
            data: rec.to_vec(),
        };
        let bytes = u.encode();
        assert!(bytes.starts_with(b"UpdCat JobId=1 FileAttributes \0\0\0\x01"));
        let head = b"UpdCat JobId=1 FileAttributes ".len();
        assert_eq!(&bytes[head + 4..head + 8], &1_795_934_639u32.to_be_bytes());
        assert_eq!(
            &bytes[head + 16..head + 20],
            &(rec.len() as u32).to_be_bytes()
        );
        assert_eq!(parse(&bytes).unwrap(), DirMessage::UpdCat(u.clone()));
        // Digest with flag bits in the stream value.
        let d = UpdCat {
            stream: 3 | (1 << 25),
            data: vec![0xAB; 16],
            ..u
        };
        let DirMessage::UpdCat(back) = parse(&d.encode()).unwrap() else {
            panic!()
        };
        assert_eq!(back.stream_id(), 3);
        // Truncated packets are refused, not read past.
        let mut short = d.encode();
        short.truncate(short.len() - 1);
        assert!(matches!(parse(&short), Err(CatReqError::ShortUpdCat(_))));
        assert!(parse(b"UpdCat JobId=1 FileAttributes \0\0").is_err());
        assert!(parse(b"UpdCat garbage").is_err());
    }

    #[test]
    fn jmsg_keeps_the_text() {
        let line = "Jmsg JobId=1 type=6 level=1795934646 bacula-sd JobId 1: Labeled new Volume \"Vol-0001\" on File device \"FileStorage\" (/v).\n";
        let DirMessage::Jmsg(j) = parse(line.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(j.job_id, 1);
        assert_eq!(j.msg_type, 6);
        assert_eq!(j.time, 1_795_934_646);
        assert!(j.text.starts_with("bacula-sd JobId 1: Labeled new Volume"));
        assert!(j.text.ends_with(".\n"));
        assert_eq!(j.format(), line);
        assert_eq!(MsgType::from_code(6, Generation::V96), MsgType::Info);
        assert_eq!(MsgType::from_code(7, Generation::V13), MsgType::Info);
        assert_eq!(MsgType::from_code(3, Generation::V96), MsgType::Fatal);
        assert_eq!(MsgType::from_code(99, Generation::V96), MsgType::Other(99));
        for t in [
            MsgType::Fatal,
            MsgType::Error,
            MsgType::Warning,
            MsgType::Term,
        ] {
            for g in [Generation::V96, Generation::V13] {
                assert_eq!(MsgType::from_code(t.code(g), g), t);
            }
        }
        assert!(parse(b"Jmsg JobId=x").is_err());
    }

    #[test]
    fn status_start_end_progress() {
        assert_eq!(
            parse(b"Status JobId=1 JobStatus=70\n").unwrap(),
            DirMessage::Status {
                job_id: 1,
                status: b'F'
            }
        );
        assert_eq!(format_status(1, b'R'), "Status JobId=1 JobStatus=82\n");
        assert_eq!(
            parse(format_job_start("A B.1").as_bytes()).unwrap(),
            DirMessage::JobStart {
                job: "A B.1".into()
            }
        );
        assert_eq!(
            parse(b"3010 Job BackupData.2026-11-29_06.44.04_05 start\n").unwrap(),
            DirMessage::JobStart {
                job: "BackupData.2026-11-29_06.44.04_05".into()
            }
        );
        let end = "3099 Job BackupData.2026-11-29_06.44.04_05 end JobStatus=84 JobFiles=6 JobBytes=224544 JobErrors=0 ErrMsg=\n";
        let DirMessage::JobEnd(e) = parse(end.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(
            (e.status, e.files, e.bytes, e.errors, e.err_msg.as_str()),
            (b'T', 6, 224_544, 0, "")
        );
        assert_eq!(e.format(), end);
        let e2 = JobEnd {
            err_msg: "disk full".into(),
            ..e
        };
        let DirMessage::JobEnd(back) = parse(e2.format().as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(back.err_msg, "disk full");
        let p = "Progress JobId=3 files=10 bytes=12345 bps=999\n";
        let DirMessage::Progress(pr) = parse(p.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(
            (pr.job_id, pr.files, pr.bytes, pr.bps),
            (3, 10, 12_345, 999)
        );
        assert_eq!(pr.format(), p);
        assert_eq!(
            parse(b"3000 OK use device device=FileStorage\n").unwrap(),
            DirMessage::Reply("3000 OK use device device=FileStorage\n".into())
        );
        assert_eq!(
            parse(b"BlastAttr JobId=1 File=/var/lib/bacula/x\x01y.spool\n").unwrap(),
            DirMessage::BlastAttr {
                job_id: 1,
                file: "/var/lib/bacula/x y.spool".into()
            }
        );
        assert!(matches!(
            parse(b"Hello there"),
            Err(CatReqError::Unknown(_))
        ));
        assert!(matches!(
            parse(b"CatReq JobId=1 Frobnicate\n"),
            Err(CatReqError::Unknown(_))
        ));
        assert!(parse(b"Status JobStatus=70\n").is_err());
    }

    #[test]
    fn ok_media_96_and_13() {
        let m = MediaInfo {
            vol_name: "Vol-0001".into(),
            vol_jobs: 1,
            vol_bytes: 225_428,
            max_vol_bytes: 53_687_091_200,
            vol_status: "Append".into(),
            vol_type: 1,
            media_id: 1,
            enabled: 1,
            recycle: 1,
            ..MediaInfo::default()
        };
        let t = m.format(Generation::V96);
        assert_eq!(
            t,
            "1000 OK VolName=Vol-0001 VolJobs=1 VolFiles=0 VolBlocks=0 VolBytes=225428 \
             VolABytes=0 VolHoleBytes=0 VolHoles=0 VolMounts=0 VolErrors=0 VolWrites=0 \
             MaxVolBytes=53687091200 VolCapacityBytes=0 VolStatus=Append Slot=0 MaxVolJobs=0 \
             MaxVolFiles=0 InChanger=0 VolReadTime=0 VolWriteTime=0 EndFile=0 EndBlock=0 \
             VolType=1 LabelType=0 MediaId=1 ScratchPoolId=0 VolParts=0 VolCloudParts=0 \
             LastPartBytes=0 Enabled=1 Recycle=1\n"
        );
        assert_eq!(MediaInfo::parse(&t).unwrap(), m);
        let t13 = m.format(Generation::V13);
        assert!(t13.ends_with("Enabled=1 MaxPoolBytes=0 PoolBytes=0 Recycle=1\n"));
        assert_eq!(MediaInfo::parse(&t13).unwrap().pool_bytes, Some((0, 0)));
        assert!(MediaInfo::parse("1901 No Media.\n").is_err());
        assert_eq!(no_media("x"), "1901 No Media. x\n");
        assert_eq!(Generation::of_sd_version(306), Generation::V96);
        assert_eq!(Generation::of_sd_version(30007), Generation::V13);
    }

    #[test]
    fn lenient_numbers() {
        // `%d` with no digits reads 0; trailing NUL is ignored.
        let DirMessage::Status { status, .. } = parse(b"Status JobId=1 JobStatus=\0").unwrap()
        else {
            panic!()
        };
        assert_eq!(status, 0);
    }
}
