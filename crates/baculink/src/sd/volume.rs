//! Volume files of a `File` device: baculink's own on-disk format.
//!
//! A volume is one file named after the volume (`<Archive Device>/<VolName>`)
//! holding a sequence of records. Every record is a 28-byte big-endian
//! header followed by its data:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `BLKR` |
//! | 4 | 4 | VolSessionId (u32) |
//! | 8 | 4 | VolSessionTime (u32) |
//! | 12 | 4 | FileIndex (i32; negative for labels) |
//! | 16 | 4 | Stream (i32, the FD's full stream value) |
//! | 20 | 4 | data length (u32, at most [`MAX_RECORD`]) |
//! | 24 | 4 | CRC-32 (IEEE) of bytes 4..24 and of the data |
//!
//! The first record is the volume label (FileIndex [`VOL_LABEL`], session
//! 0/0) whose data is text: `baculink-volume 1`, then `VolName=`,
//! `MediaType=`, `PoolName=`, `LabelTime=` lines. Each append session starts
//! with a start-of-session label ([`SOS_LABEL`]) and ends with an
//! end-of-session label ([`EOS_LABEL`]), both tagged with the session and
//! holding `key=value` text; between them are the FD's records, one per data
//! packet, tagged with the session, FileIndex and stream. Sessions of
//! concurrent jobs may interleave: every record carries its session.
//!
//! A record's *address* is the byte offset of its header. The SD reports
//! the address range of a job to the Director (`CreateJobMedia`), which
//! gives it back in the bootstrap (`VolAddr=`); together with VolSessionId,
//! VolSessionTime and FileIndex ranges this selects a job's records.
//!
//! File data is stored exactly as the FD sent it: TLS protects only the
//! network, the volume holds the data in clear.
//!
//! Robustness: a reader checks the magic, the length bound and the CRC of
//! every record it returns and reports a truncated or corrupt record with
//! its address, never panics. A writer reopening a volume scans the record
//! headers to the end; a last record cut short by a crash is truncated away,
//! anything else unexpected refuses the append.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, IoSlice, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use baculink_proto::job::sdcmd::BsrEntry;

/// Magic at the start of every record header.
pub const MAGIC: [u8; 4] = *b"BLKR";
/// Size of a record header.
pub const HEADER_LEN: usize = 28;
/// Largest record data accepted (a network packet is at most 1,000,000 bytes).
pub const MAX_RECORD: u32 = 4 * 1024 * 1024;
/// FileIndex of the volume label record.
pub const VOL_LABEL: i32 = -2;
/// FileIndex of a start-of-session label.
pub const SOS_LABEL: i32 = -4;
/// FileIndex of an end-of-session label.
pub const EOS_LABEL: i32 = -5;
/// First line of the volume label text.
const LABEL_ID: &str = "baculink-volume 1";
/// Write buffer: large sequential writes.
const WRITE_BUFFER: usize = 1 << 20;
/// Records at least this large are written to the file directly.
const DIRECT_WRITE: usize = 32 * 1024;
/// Read buffer.
const READ_BUFFER: usize = 256 * 1024;

/// Why a volume could not be used.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The file system said no.
    #[error("volume {path}: {source}")]
    Io {
        /// The volume file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The file does not start with a baculink volume label.
    #[error("volume {path} is not a baculink volume (no volume label at address 0)")]
    NotAVolume {
        /// The volume file.
        path: PathBuf,
    },
    /// The label names another volume.
    #[error("volume {path} is labeled \"{found}\", expected \"{expected}\"")]
    WrongVolume {
        /// The volume file.
        path: PathBuf,
        /// The name wanted.
        expected: String,
        /// The name in the label.
        found: String,
    },
    /// A record is damaged.
    #[error("volume {path} is corrupt at address {addr}: {reason}")]
    Corrupt {
        /// The volume file.
        path: PathBuf,
        /// Address of the damaged record.
        addr: u64,
        /// What is wrong.
        reason: String,
    },
    /// The file ends inside a record.
    #[error("volume {path} is truncated: the record at address {addr} is incomplete")]
    Truncated {
        /// The volume file.
        path: PathBuf,
        /// Address of the incomplete record.
        addr: u64,
    },
    /// A volume name that cannot be a file name.
    #[error("volume name {0:?} cannot be used as a file name")]
    BadName(String),
}

/// The identity of a volume, written in its first record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeLabel {
    /// Volume name (the file name).
    pub vol_name: String,
    /// Media type of the device that labeled it.
    pub media_type: String,
    /// Pool the Director put it in.
    pub pool_name: String,
    /// When it was labeled (epoch seconds).
    pub label_time: i64,
}

impl VolumeLabel {
    fn encode(&self) -> Vec<u8> {
        format!(
            "{LABEL_ID}\nVolName={}\nMediaType={}\nPoolName={}\nLabelTime={}\n",
            self.vol_name, self.media_type, self.pool_name, self.label_time
        )
        .into_bytes()
    }

    fn decode(data: &[u8]) -> Option<VolumeLabel> {
        let text = std::str::from_utf8(data).ok()?;
        let mut lines = text.lines();
        if lines.next()? != LABEL_ID {
            return None;
        }
        let mut label = VolumeLabel {
            vol_name: String::new(),
            media_type: String::new(),
            pool_name: String::new(),
            label_time: 0,
        };
        for line in lines {
            match line.split_once('=') {
                Some(("VolName", v)) => label.vol_name = v.to_string(),
                Some(("MediaType", v)) => label.media_type = v.to_string(),
                Some(("PoolName", v)) => label.pool_name = v.to_string(),
                Some(("LabelTime", v)) => label.label_time = v.parse().unwrap_or(0),
                _ => {}
            }
        }
        (!label.vol_name.is_empty()).then_some(label)
    }
}

/// One record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// VolSessionId of the job that wrote it.
    pub vol_session_id: u32,
    /// VolSessionTime of the job that wrote it.
    pub vol_session_time: u32,
    /// FileIndex (negative for labels).
    pub file_index: i32,
    /// Stream with its flag bits.
    pub stream: i32,
    /// The data.
    pub data: Vec<u8>,
}

/// The path of volume `name` in the directory `dir`. Refuses names that
/// would leave the directory or cannot be file names (they come from the
/// Director's catalog).
pub fn volume_path(dir: &Path, name: &str) -> Result<PathBuf, VolumeError> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > 255
        || name.contains(['/', '\0', '\\'])
        || name.chars().any(char::is_control);
    if bad {
        return Err(VolumeError::BadName(name.to_string()));
    }
    Ok(dir.join(name))
}

// ---------------------------------------------------------------------------
/// A running CRC-32 (IEEE 802.3); `crc32fast` uses the CPU's carry-less
/// multiply where present, so checksumming never limits a backup.
#[derive(Clone)]
struct Crc(crc32fast::Hasher);

impl Crc {
    fn new() -> Crc {
        Crc(crc32fast::Hasher::new())
    }

    fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(self) -> u32 {
        self.0.finalize()
    }
}

/// Header fields as stored.
#[derive(Debug, Clone, Copy)]
struct Header {
    vol_session_id: u32,
    vol_session_time: u32,
    file_index: i32,
    stream: i32,
    len: u32,
    crc: u32,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(&MAGIC);
        h[4..8].copy_from_slice(&self.vol_session_id.to_be_bytes());
        h[8..12].copy_from_slice(&self.vol_session_time.to_be_bytes());
        h[12..16].copy_from_slice(&self.file_index.to_be_bytes());
        h[16..20].copy_from_slice(&self.stream.to_be_bytes());
        h[20..24].copy_from_slice(&self.len.to_be_bytes());
        h[24..28].copy_from_slice(&self.crc.to_be_bytes());
        h
    }

    /// Parses a header; `None` if the magic is wrong.
    fn decode(h: &[u8; HEADER_LEN]) -> Option<Header> {
        if h[0..4] != MAGIC {
            return None;
        }
        let w = |i: usize| [h[i], h[i + 1], h[i + 2], h[i + 3]];
        Some(Header {
            vol_session_id: u32::from_be_bytes(w(4)),
            vol_session_time: u32::from_be_bytes(w(8)),
            file_index: i32::from_be_bytes(w(12)),
            stream: i32::from_be_bytes(w(16)),
            len: u32::from_be_bytes(w(20)),
            crc: u32::from_be_bytes(w(24)),
        })
    }

    fn crc_of(&self, data: &[u8]) -> u32 {
        let h = self.encode();
        let mut c = Crc::new();
        c.update(&h[4..24]);
        c.update(data);
        c.finish()
    }
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` on EOF before the first
/// byte, `UnexpectedEof` inside.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

// ---------------------------------------------------------------------------
// Writing

/// Appends records to one volume file through a large buffer.
pub struct VolumeWriter {
    file: File,
    /// Records not yet written (small ones gather here).
    buf: Vec<u8>,
    path: PathBuf,
    pos: u64,
}

impl std::fmt::Debug for VolumeWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeWriter")
            .field("path", &self.path)
            .field("pos", &self.pos)
            .finish()
    }
}

impl VolumeWriter {
    /// Creates a new volume file (it must not exist) and writes its label.
    pub fn create(path: &Path, label: &VolumeLabel) -> Result<VolumeWriter, VolumeError> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io_err(path))?;
        let mut w = VolumeWriter {
            file,
            buf: Vec::with_capacity(WRITE_BUFFER),
            path: path.to_path_buf(),
            pos: 0,
        };
        w.write(0, 0, VOL_LABEL, 0, &label.encode())?;
        w.sync()?;
        Ok(w)
    }

    /// Opens an existing volume for appending: checks the label (and its
    /// name when given), walks the record headers to the end, and cuts off
    /// a last record left incomplete by a crash.
    pub fn open_append(path: &Path, expected: Option<&str>) -> Result<VolumeWriter, VolumeError> {
        let mut reader = VolumeReader::open(path, expected)?;
        let end = reader.scan_to_end()?;
        drop(reader);
        let mut file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        if len > end {
            tracing::warn!(
                "volume {}: cutting {} bytes of an incomplete last record at address {end}",
                path.display(),
                len - end
            );
            file.set_len(end).map_err(io_err(path))?;
        }
        file.seek(SeekFrom::Start(end)).map_err(io_err(path))?;
        Ok(VolumeWriter {
            file,
            buf: Vec::with_capacity(WRITE_BUFFER),
            path: path.to_path_buf(),
            pos: end,
        })
    }

    /// Address of the next record = bytes on the volume.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Appends one record; returns its address.
    pub fn write(
        &mut self,
        vol_session_id: u32,
        vol_session_time: u32,
        file_index: i32,
        stream: i32,
        data: &[u8],
    ) -> Result<u64, VolumeError> {
        let len = u32::try_from(data.len())
            .ok()
            .filter(|&l| l <= MAX_RECORD)
            .ok_or_else(|| VolumeError::Corrupt {
                path: self.path.clone(),
                addr: self.pos,
                reason: format!("record of {} bytes is too large", data.len()),
            })?;
        let mut h = Header {
            vol_session_id,
            vol_session_time,
            file_index,
            stream,
            len,
            crc: 0,
        };
        h.crc = h.crc_of(data);
        let addr = self.pos;
        self.buf.extend_from_slice(&h.encode());
        if data.len() < DIRECT_WRITE {
            self.buf.extend_from_slice(data);
            if self.buf.len() >= WRITE_BUFFER {
                self.write_buffer()?;
            }
        } else {
            // A large record goes out with what is buffered (its header at
            // least) in one vectored write, without copying it into the
            // buffer (a copy `perf` showed on big backups) and without a
            // separate small write for the header.
            let mut parts = [IoSlice::new(&self.buf), IoSlice::new(data)];
            write_all_vectored(&mut self.file, &mut parts).map_err(io_err(&self.path))?;
            self.buf.clear();
        }
        self.pos += (HEADER_LEN + data.len()) as u64;
        Ok(addr)
    }

    fn write_buffer(&mut self) -> Result<(), VolumeError> {
        self.file.write_all(&self.buf).map_err(io_err(&self.path))?;
        self.buf.clear();
        Ok(())
    }

    /// Flushes the buffer and makes the data durable (fdatasync).
    pub fn sync(&mut self) -> Result<(), VolumeError> {
        self.write_buffer()?;
        self.file.sync_data().map_err(io_err(&self.path))
    }
}

impl Drop for VolumeWriter {
    /// Buffered records still reach the file (without fdatasync).
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            if let Err(e) = self.write_buffer() {
                tracing::warn!("{e}");
            }
        }
    }
}

/// `write_all` for several slices (std's is not stable yet).
fn write_all_vectored(f: &mut File, mut parts: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut parts, 0);
    while !parts.is_empty() {
        match f.write_vectored(parts) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => IoSlice::advance_slices(&mut parts, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Reading

/// Reads the records of one volume file in order.
pub struct VolumeReader {
    file: BufReader<File>,
    path: PathBuf,
    label: VolumeLabel,
    pos: u64,
}

impl VolumeReader {
    /// Opens a volume and checks its label (and its name when given).
    pub fn open(path: &Path, expected: Option<&str>) -> Result<VolumeReader, VolumeError> {
        let file = File::open(path).map_err(io_err(path))?;
        let mut r = VolumeReader {
            file: BufReader::with_capacity(READ_BUFFER, file),
            path: path.to_path_buf(),
            label: VolumeLabel {
                vol_name: String::new(),
                media_type: String::new(),
                pool_name: String::new(),
                label_time: 0,
            },
            pos: 0,
        };
        let not_volume = || VolumeError::NotAVolume {
            path: path.to_path_buf(),
        };
        let first = match r.next_record() {
            Ok(Some((_, rec))) => rec,
            Ok(None) | Err(VolumeError::Corrupt { .. }) => return Err(not_volume()),
            Err(e) => return Err(e),
        };
        if first.file_index != VOL_LABEL {
            return Err(not_volume());
        }
        r.label = VolumeLabel::decode(&first.data).ok_or_else(not_volume)?;
        if let Some(want) = expected {
            if r.label.vol_name != want {
                return Err(VolumeError::WrongVolume {
                    path: path.to_path_buf(),
                    expected: want.to_string(),
                    found: r.label.vol_name.clone(),
                });
            }
        }
        Ok(r)
    }

    /// The volume's label.
    pub fn label(&self) -> &VolumeLabel {
        &self.label
    }

    /// Continues reading at `addr` (a record address from a bootstrap).
    pub fn seek(&mut self, addr: u64) -> Result<(), VolumeError> {
        self.file
            .seek(SeekFrom::Start(addr))
            .map_err(io_err(&self.path))?;
        self.pos = addr;
        Ok(())
    }

    fn corrupt(&self, addr: u64, reason: impl Into<String>) -> VolumeError {
        VolumeError::Corrupt {
            path: self.path.clone(),
            addr,
            reason: reason.into(),
        }
    }

    /// The next header, or `None` at a clean end of the volume.
    fn next_header(&mut self) -> Result<Option<(u64, Header)>, VolumeError> {
        let addr = self.pos;
        let mut h = [0u8; HEADER_LEN];
        match read_full(&mut self.file, &mut h) {
            Ok(false) => return Ok(None),
            Ok(true) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(VolumeError::Truncated {
                    path: self.path.clone(),
                    addr,
                })
            }
            Err(e) => return Err(io_err(&self.path)(e)),
        }
        let h = Header::decode(&h).ok_or_else(|| self.corrupt(addr, "no record header here"))?;
        if h.len > MAX_RECORD {
            return Err(self.corrupt(addr, format!("record length {} is impossible", h.len)));
        }
        self.pos += HEADER_LEN as u64;
        Ok(Some((addr, h)))
    }

    /// Reads the data of the record whose header was just read.
    fn read_data(&mut self, addr: u64, h: &Header) -> Result<Vec<u8>, VolumeError> {
        let mut data = vec![0u8; h.len as usize];
        match read_full(&mut self.file, &mut data) {
            Ok(true) => {}
            Ok(false) if data.is_empty() => {}
            Ok(false) => {
                return Err(VolumeError::Truncated {
                    path: self.path.clone(),
                    addr,
                })
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(VolumeError::Truncated {
                    path: self.path.clone(),
                    addr,
                })
            }
            Err(e) => return Err(io_err(&self.path)(e)),
        }
        self.pos += u64::from(h.len);
        if h.crc_of(&data) != h.crc {
            return Err(self.corrupt(addr, "checksum mismatch"));
        }
        Ok(data)
    }

    /// Skips the data of the record whose header was just read.
    fn skip_data(&mut self, h: &Header) -> Result<(), VolumeError> {
        self.file
            .seek_relative(i64::from(h.len))
            .map_err(io_err(&self.path))?;
        self.pos += u64::from(h.len);
        Ok(())
    }

    /// The next record and its address; `None` at a clean end of the volume.
    pub fn next_record(&mut self) -> Result<Option<(u64, Record)>, VolumeError> {
        let Some((addr, h)) = self.next_header()? else {
            return Ok(None);
        };
        let data = self.read_data(addr, &h)?;
        Ok(Some((
            addr,
            Record {
                vol_session_id: h.vol_session_id,
                vol_session_time: h.vol_session_time,
                file_index: h.file_index,
                stream: h.stream,
                data,
            },
        )))
    }

    /// Walks the headers from here to the end; returns the address after the
    /// last complete record. A last record cut short is not counted (and
    /// reported only through the returned address); a bad header is an error.
    fn scan_to_end(&mut self) -> Result<u64, VolumeError> {
        let len = self
            .file
            .get_ref()
            .metadata()
            .map_err(io_err(&self.path))?
            .len();
        loop {
            let addr = self.pos;
            match self.next_header() {
                Ok(None) | Err(VolumeError::Truncated { .. }) => return Ok(addr),
                Ok(Some((_, h))) => {
                    if addr + HEADER_LEN as u64 + u64::from(h.len) > len {
                        return Ok(addr);
                    }
                    self.skip_data(&h)?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads the records one bootstrap section selects: from the lowest
    /// `VolAddr` start (or the beginning) to the highest end, the records of
    /// its sessions whose FileIndex and address match, labels excluded,
    /// stopping after `Count` files. `emit` returns false to stop early.
    /// Records of other sessions are skipped without reading their data.
    pub fn read_selected(
        &mut self,
        entry: &BsrEntry,
        mut emit: impl FnMut(u64, Record) -> Result<bool, VolumeError>,
    ) -> Result<(), VolumeError> {
        let start = entry.vol_addr.iter().map(|r| r.first).min();
        let end = entry.vol_addr.iter().map(|r| r.last).max();
        if let Some(s) = start {
            self.seek(s)?;
        }
        let mut files = 0u32;
        let mut last_fi = None;
        while let Some((addr, h)) = self.next_header()? {
            if end.is_some_and(|e| addr > e) {
                break;
            }
            let wanted = h.file_index > 0
                && entry.matches(h.vol_session_id, h.vol_session_time, h.file_index, addr);
            if !wanted {
                self.skip_data(&h)?;
                continue;
            }
            if last_fi != Some(h.file_index) {
                if entry.count.is_some_and(|c| files >= c) {
                    break;
                }
                files += 1;
                last_fi = Some(h.file_index);
            }
            let data = self.read_data(addr, &h)?;
            let rec = Record {
                vol_session_id: h.vol_session_id,
                vol_session_time: h.vol_session_time,
                file_index: h.file_index,
                stream: h.stream,
                data,
            };
            if !emit(addr, rec)? {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn record_crc_is_standard_crc32() {
        // The CRC-32 check value: volumes written before and after the switch
        // to crc32fast carry the same checksums.
        let mut c = Crc::new();
        c.update(b"1234");
        c.update(b"56789");
        assert_eq!(c.finish(), 0xCBF4_3926);
    }

    use super::*;
    use baculink_proto::job::sdcmd::Bootstrap;

    fn label(name: &str) -> VolumeLabel {
        VolumeLabel {
            vol_name: name.into(),
            media_type: "File".into(),
            pool_name: "File".into(),
            label_time: 1_795_934_639,
        }
    }

    /// Writes two interleaved sessions; returns (path, session-1 range).
    fn two_sessions(dir: &Path) -> (PathBuf, u64, u64) {
        let p = dir.join("Vol-0001");
        let mut w = VolumeWriter::create(&p, &label("Vol-0001")).unwrap();
        let start = w.write(1, 100, SOS_LABEL, 0, b"JobId=1\n").unwrap();
        for fi in 1..=3 {
            w.write(1, 100, fi, 1, format!("attr {fi}").as_bytes())
                .unwrap();
            w.write(2, 100, fi, 1, b"other job").unwrap();
            w.write(1, 100, fi, 2, &vec![fi as u8; 70_000]).unwrap();
        }
        w.write(1, 100, EOS_LABEL, 0, b"Files=3\n").unwrap();
        let end = w.position();
        w.sync().unwrap();
        (p, start, end)
    }

    #[test]
    fn crc_matches_reference() {
        let mut c = Crc::new();
        c.update(b"123456789");
        assert_eq!(c.finish(), 0xCBF4_3926);
        let mut a = Crc::new();
        a.update(b"12345");
        a.update(b"6789");
        assert_eq!(a.finish(), 0xCBF4_3926);
    }

    #[test]
    fn write_then_select_by_bootstrap() {
        let dir = tempfile::tempdir().unwrap();
        let (p, start, end) = two_sessions(dir.path());
        let bsr = Bootstrap::parse(&format!(
            "Volume=\"Vol-0001\"\nVolSessionId=1\nVolSessionTime=100\nVolAddr={start}-{end}\n\
             FileIndex=2-3\n"
        ))
        .unwrap();
        let mut r = VolumeReader::open(&p, Some("Vol-0001")).unwrap();
        assert_eq!(r.label(), &label("Vol-0001"));
        let mut got = Vec::new();
        r.read_selected(&bsr.entries[0], |_, rec| {
            got.push(rec);
            Ok(true)
        })
        .unwrap();
        let summary: Vec<(u32, i32, i32, usize)> = got
            .iter()
            .map(|r| (r.vol_session_id, r.file_index, r.stream, r.data.len()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (1, 2, 1, 6),
                (1, 2, 2, 70_000),
                (1, 3, 1, 6),
                (1, 3, 2, 70_000)
            ]
        );
        assert!(got[1].data.iter().all(|&b| b == 2));

        // Count limits the files; no VolAddr reads from the start.
        let bsr = Bootstrap::parse("Volume=Vol-0001\nVolSessionId=2\nCount=2\n").unwrap();
        let mut r = VolumeReader::open(&p, None).unwrap();
        let mut n = Vec::new();
        r.read_selected(&bsr.entries[0], |_, rec| {
            n.push(rec.file_index);
            Ok(true)
        })
        .unwrap();
        assert_eq!(n, vec![1, 2]);
    }

    #[test]
    fn append_reopens_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let (p, _, end) = two_sessions(dir.path());
        let mut w = VolumeWriter::open_append(&p, Some("Vol-0001")).unwrap();
        assert_eq!(w.position(), end);
        let a = w.write(3, 100, 1, 2, b"more").unwrap();
        assert_eq!(a, end);
        w.sync().unwrap();
        drop(w);
        let mut r = VolumeReader::open(&p, None).unwrap();
        let mut last = None;
        while let Some((addr, rec)) = r.next_record().unwrap() {
            last = Some((addr, rec.vol_session_id));
        }
        assert_eq!(last, Some((end, 3)));
        assert!(matches!(
            VolumeWriter::open_append(&p, Some("Vol-0002")),
            Err(VolumeError::WrongVolume { .. })
        ));
        assert!(matches!(
            VolumeWriter::create(&p, &label("Vol-0001")),
            Err(VolumeError::Io { .. })
        ));
    }

    #[test]
    fn truncated_and_corrupt_volumes_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (p, _, end) = two_sessions(dir.path());
        // Cut inside the last data record of session 1.
        let cut = end - 200;
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(cut).unwrap();
        drop(f);
        let mut r = VolumeReader::open(&p, None).unwrap();
        let err = loop {
            match r.next_record() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("truncation not seen"),
                Err(e) => break e,
            }
        };
        assert!(matches!(err, VolumeError::Truncated { .. }), "{err}");
        assert!(err.to_string().contains("truncated"));
        // Appending cuts the partial record away and continues after the last good one.
        let w = VolumeWriter::open_append(&p, None).unwrap();
        assert!(w.position() < cut);
        let good_end = w.position();
        drop(w);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), good_end);

        // A flipped data byte fails the checksum.
        let mut bytes = std::fs::read(&p).unwrap();
        let n = bytes.len();
        bytes[n - 10] ^= 0xff;
        std::fs::write(&p, &bytes).unwrap();
        let mut r = VolumeReader::open(&p, None).unwrap();
        let err = loop {
            match r.next_record() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("corruption not seen"),
                Err(e) => break e,
            }
        };
        assert!(matches!(err, VolumeError::Corrupt { .. }), "{err}");

        // Garbage and empty files are not volumes.
        let g = dir.path().join("garbage");
        std::fs::write(&g, b"hello world, this is not a volume at all").unwrap();
        assert!(matches!(
            VolumeReader::open(&g, None),
            Err(VolumeError::NotAVolume { .. })
        ));
        std::fs::write(&g, b"").unwrap();
        assert!(matches!(
            VolumeReader::open(&g, None),
            Err(VolumeError::NotAVolume { .. })
        ));
        // A header claiming a huge length is corrupt, not an allocation.
        let mut h = Header {
            vol_session_id: 0,
            vol_session_time: 0,
            file_index: VOL_LABEL,
            stream: 0,
            len: u32::MAX,
            crc: 0,
        }
        .encode()
        .to_vec();
        h.extend_from_slice(b"xx");
        std::fs::write(&g, &h).unwrap();
        assert!(VolumeReader::open(&g, None).is_err());
    }

    #[test]
    fn volume_names_stay_in_the_directory() {
        let d = Path::new("/vols");
        assert_eq!(volume_path(d, "Vol-0001").unwrap(), d.join("Vol-0001"));
        for bad in ["", ".", "..", "a/b", "../x", "a\0b", "a\nb"] {
            assert!(volume_path(d, bad).is_err(), "{bad:?}");
        }
    }
}
