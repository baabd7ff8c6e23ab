//! Backup (protocol-jobs §5.4-5.6, §5.8) and estimate (§3.4): the tree
//! walk, and the record stream sent to the Storage daemon in an append
//! session.
//!
//! A blocking thread walks the FileSet and reads files in 64 KiB chunks,
//! handing ready-made packets over a small bounded channel to the async task
//! that owns the SD connection; so memory stays bounded (a few chunks) and
//! disk reads overlap network writes. Chunk buffers travel back to the
//! reader for reuse.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use baculink_net::{BSock, NetError};
use baculink_proto::frame::{Packet, Signal};
use baculink_proto::job::attr::{ft, stream, AttrRecord, Stat, StreamHeader};
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tracing::debug;

use super::fileset::{Decision, FileSet, Options};
use super::job::{JobHandle, MsgType, Reporter};
use crate::daemon::{next_or_flush, Next};

/// File data packet size: Bacula's default network buffer (§1.1).
pub const CHUNK: usize = 64 * 1024;
/// File data read at a time and handed to the network task in one piece,
/// which sends it as packets of [`CHUNK`]: one hand-over (and one wake-up
/// of the network task) per four packets instead of one per packet.
const READ_BATCH: usize = 4 * CHUNK;
/// Packets in flight between the reader thread and the network task.
const QUEUE: usize = 16;
/// Whether file data packets are LZ4-compressed towards the SD when the link
/// compresses (as Bacula's FD does): compressible data crosses the network
/// smaller. Once a packet of a stream does not shrink, the rest of that
/// stream goes plain (Bacula's BNET_NOCOMPRESS): trying LZ4 on every packet
/// of random data was 4 % of the FD's CPU for nothing. `false` would send
/// all file data plain.
const COMPRESS_FILE_DATA: bool = true;

/// What the walk needs to know.
#[derive(Clone, Debug)]
pub struct WalkParams {
    /// The FileSet.
    pub fileset: Arc<FileSet>,
    /// Incremental/Differential: save only what changed at or after this
    /// (FD clock, epoch seconds).
    pub since: Option<i64>,
    /// Level `mtime_only=1`.
    pub mtime_only: bool,
    /// Accurate mode: the files of the previous backups (§5.9).
    pub accurate: Option<Arc<Accurate>>,
}

/// One file of the Director's accurate list.
#[derive(Clone, Debug)]
struct Known {
    lstat: String,
    mtime: i64,
    ctime: i64,
    size: i64,
    seen: bool,
}

/// The accurate list: what the catalog holds for this client and FileSet.
/// A file is saved when it is new or its mtime, ctime or size differ;
/// files of the list the walk does not meet are sent as deleted.
#[derive(Debug, Default)]
pub struct Accurate {
    files: std::sync::Mutex<HashMap<Vec<u8>, Known>>,
}

impl Accurate {
    /// Adds one packet of the list: `name\0LStat\0digest\0delta-seq`.
    /// False when it does not parse.
    pub fn add(&self, packet: &[u8]) -> bool {
        let mut parts = packet.split(|&b| b == 0);
        let (Some(name), Some(lstat)) = (parts.next(), parts.next()) else {
            return false;
        };
        let Ok(text) = std::str::from_utf8(lstat) else {
            return false;
        };
        let Ok(st) = Stat::decode(text) else {
            return false;
        };
        if let Ok(mut f) = self.files.lock() {
            f.insert(
                name.to_vec(),
                Known {
                    lstat: text.to_string(),
                    mtime: st.mtime,
                    ctime: st.ctime,
                    size: st.size,
                    seen: false,
                },
            );
        }
        true
    }

    /// Files in the list.
    pub fn len(&self) -> usize {
        self.files.lock().map(|f| f.len()).unwrap_or(0)
    }

    /// Whether the list is empty.
    #[allow(dead_code)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `name` must be saved; marks it seen.
    fn changed(&self, name: &[u8], meta: &Metadata, mtime_only: bool) -> bool {
        let Ok(mut f) = self.files.lock() else {
            return true;
        };
        match f.get_mut(name) {
            None => true,
            Some(k) => {
                k.seen = true;
                k.mtime != meta.mtime()
                    || (!mtime_only && k.ctime != meta.ctime())
                    || (!meta.is_dir() && k.size != meta.size() as i64)
            }
        }
    }

    /// The files of the list the walk did not meet: (name, LStat).
    fn unseen(&self) -> Vec<(Vec<u8>, String)> {
        let Ok(f) = self.files.lock() else {
            return Vec::new();
        };
        let mut v: Vec<(Vec<u8>, String)> = f
            .iter()
            .filter(|(_, k)| !k.seen)
            .map(|(n, k)| (n.clone(), k.lstat.clone()))
            .collect();
        v.sort();
        v
    }
}

/// One file system object found by the walk.
pub struct Entry<'a> {
    /// Path on disk.
    pub path: &'a Path,
    /// Its lstat.
    pub meta: &'a Metadata,
    /// The options that apply.
    pub options: &'a Options,
}

/// What the walk tells its visitor to do next.
pub enum Visit {
    /// Go on.
    Continue,
    /// Stop the whole walk (canceled or the consumer went away).
    Stop,
}

/// Walks every root of the FileSet depth first, directories after their
/// contents; `visit` gets each object to save, `note` each message.
pub struct Walker<'a, V, N>
where
    V: FnMut(Entry<'_>) -> Visit,
    N: FnMut(MsgType, String) -> Visit,
{
    params: &'a WalkParams,
    visit: V,
    note: N,
    handle: &'a JobHandle,
}

impl<'a, V, N> Walker<'a, V, N>
where
    V: FnMut(Entry<'_>) -> Visit,
    N: FnMut(MsgType, String) -> Visit,
{
    /// A walker over `params` reporting to `visit` and `note`.
    pub fn new(params: &'a WalkParams, handle: &'a JobHandle, visit: V, note: N) -> Self {
        Walker {
            params,
            visit,
            note,
            handle,
        }
    }

    /// Runs the walk; false when it was stopped.
    pub fn run(&mut self) -> bool {
        for (inc, root) in self.params.fileset.roots() {
            let path = PathBuf::from(&root);
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    if let Visit::Stop = (self.note)(
                        MsgType::Error,
                        format!("Could not stat \"{root}\": ERR={e}"),
                    ) {
                        return false;
                    }
                    self.handle.errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            let root_dev = meta.dev();
            if !self.one(inc, &path, meta, root_dev, &root) {
                return false;
            }
        }
        true
    }

    /// Handles one object (recursing into directories); false = stop.
    fn one(&mut self, inc: usize, path: &Path, meta: Metadata, root_dev: u64, root: &str) -> bool {
        if self.handle.is_canceled() {
            return false;
        }
        let fs = &self.params.fileset;
        let is_dir = meta.is_dir();
        let text = path.to_string_lossy();
        let options = match fs.decide(inc, &text, is_dir) {
            Decision::Include(o) => o,
            Decision::Exclude => return true,
        };
        let ftype = meta.file_type();
        if ftype.is_socket() {
            return !matches!(
                (self.note)(
                    MsgType::Skipped,
                    format!("     Socket file skipped: {text}")
                ),
                Visit::Stop
            );
        }
        if is_dir {
            let ignore = fs.ignore_dir(inc);
            if ignore.iter().any(|n| path.join(n).exists()) {
                let _ = (self.note)(
                    MsgType::Skipped,
                    format!("     Directory ignored (contains an IgnoreDir file): {text}"),
                );
                return true;
            }
            let other_fs = meta.dev() != root_dev && !options.cross_fs;
            if other_fs {
                if let Visit::Stop = (self.note)(
                    MsgType::Info,
                    format!(
                        "     {text} is a different filesystem. Will not descend from {root} into it."
                    ),
                ) {
                    return false;
                }
            } else if !options.no_recursion {
                match read_dir_sorted(path) {
                    Ok(children) => {
                        for child in children {
                            let cmeta = match std::fs::symlink_metadata(&child) {
                                Ok(m) => m,
                                Err(e) => {
                                    // Vanished since the listing: not an error.
                                    if e.kind() == std::io::ErrorKind::NotFound {
                                        continue;
                                    }
                                    self.handle.errors.fetch_add(1, Ordering::Relaxed);
                                    if let Visit::Stop = (self.note)(
                                        MsgType::Error,
                                        format!(
                                            "     Could not stat \"{}\": ERR={e}",
                                            child.display()
                                        ),
                                    ) {
                                        return false;
                                    }
                                    continue;
                                }
                            };
                            if !self.one(inc, &child, cmeta, root_dev, root) {
                                return false;
                            }
                        }
                    }
                    Err(e) => {
                        self.handle.errors.fetch_add(1, Ordering::Relaxed);
                        if let Visit::Stop = (self.note)(
                            MsgType::Error,
                            format!("     Could not open directory \"{text}\": ERR={e}"),
                        ) {
                            return false;
                        }
                        return true;
                    }
                }
            }
        }
        if !self.changed(path, &meta, &options) {
            return true;
        }
        matches!(
            (self.visit)(Entry {
                path,
                meta: &meta,
                options: &options,
            }),
            Visit::Continue
        )
    }

    /// Incremental/Differential: changed since the since-time (or, in
    /// accurate mode, against the previous backups)?
    fn changed(&self, path: &Path, meta: &Metadata, o: &Options) -> bool {
        let mtime_only = o.mtime_only || self.params.mtime_only;
        if let Some(acc) = &self.params.accurate {
            return acc.changed(&record_name(path, meta.is_dir()), meta, mtime_only);
        }
        match self.params.since {
            None => true,
            Some(since) => {
                meta.mtime() >= since
                    || (!(o.mtime_only || self.params.mtime_only) && meta.ctime() >= since)
            }
        }
    }
}

/// Directory entries as full paths, sorted by name (deterministic order).
fn read_dir_sorted(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

/// The encoded stat of `meta` (all file types use data stream 2, as 9.6).
pub fn stat_of(meta: &Metadata, link_fi: i32) -> Stat {
    Stat {
        dev: meta.dev() as i64,
        ino: meta.ino() as i64,
        mode: i64::from(meta.mode()),
        nlink: meta.nlink() as i64,
        uid: i64::from(meta.uid()),
        gid: i64::from(meta.gid()),
        rdev: meta.rdev() as i64,
        size: meta.size() as i64,
        blksize: meta.blksize() as i64,
        blocks: meta.blocks() as i64,
        atime: meta.atime(),
        mtime: meta.mtime(),
        ctime: meta.ctime(),
        link_fi: i64::from(link_fi),
        flags: 0,
        data_stream: i64::from(stream::FILE_DATA),
        win_attrs: None,
    }
}

/// The attribute-record name: the path, directories with one trailing `/`.
fn record_name(path: &Path, is_dir: bool) -> Vec<u8> {
    let mut name = path.as_os_str().as_bytes().to_vec();
    if is_dir && !name.ends_with(b"/") {
        name.push(b'/');
    }
    name
}

/// What the reader thread hands the network task.
pub enum Out {
    /// A record stream header or attribute packet.
    Small(Vec<u8>),
    /// File data (never empty), sent as packets of at most [`CHUNK`].
    Data(Bytes),
    /// End of the current stream.
    Eod,
    /// A job message for the Director.
    Msg(MsgType, String),
}

/// Counters of a finished walk.
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    /// Files sent (attribute records).
    pub files: u32,
    /// Bytes read from files.
    pub read_bytes: u64,
    /// File data bytes sent.
    pub job_bytes: u64,
    /// Per-file errors.
    pub errors: u32,
}

/// The reader thread: walks, reads and produces the record stream packets
/// into `tx`, starting at FileIndex `first_index`. Returns the totals, or
/// None when it stopped early (canceled, or the receiver went away).
pub fn produce(
    params: WalkParams,
    handle: Arc<JobHandle>,
    first_index: i32,
    tx: mpsc::Sender<Out>,
    mut spare: std::sync::mpsc::Receiver<Bytes>,
) -> Option<Totals> {
    let mut totals = Totals::default();
    let mut fi = first_index;
    // (dev, ino) -> (FileIndex, name) of multiply-linked files already sent.
    let mut links: HashMap<(u64, u64), (i32, Vec<u8>)> = HashMap::new();
    let send = |tx: &mpsc::Sender<Out>, o: Out| tx.blocking_send(o).is_ok();
    let tx_note = tx.clone();
    let note = move |kind: MsgType, text: String| {
        if tx_note.blocking_send(Out::Msg(kind, text)).is_ok() {
            Visit::Continue
        } else {
            Visit::Stop
        }
    };
    let visit = |e: Entry<'_>| -> Visit {
        let ok = save_one(
            &e,
            &mut fi,
            &mut links,
            &tx,
            &mut spare,
            &handle,
            &mut totals,
            send,
        );
        if ok {
            Visit::Continue
        } else {
            Visit::Stop
        }
    };
    let done = Walker::new(&params, &handle, visit, note).run();
    if done {
        if let Some(acc) = &params.accurate {
            for (name, lstat) in acc.unseen() {
                if !send_deleted(&tx, &mut fi, name, lstat) {
                    return None;
                }
                totals.files += 1;
            }
        }
    }
    totals.errors = handle.errors.load(Ordering::Relaxed);
    done.then_some(totals)
}

/// An accurate-mode deletion: an attribute record of type FT_DELETED with
/// the name and LStat the catalog had.
fn send_deleted(tx: &mpsc::Sender<Out>, fi: &mut i32, fname: Vec<u8>, lstat: String) -> bool {
    let record = AttrRecord {
        file_index: *fi,
        file_type: ft::DELETED,
        fname,
        lstat,
        link: Vec::new(),
        attr_ex: Vec::new(),
        delta_seq: 0,
    };
    let header = StreamHeader {
        file_index: *fi,
        stream: stream::UNIX_ATTRIBUTES,
        size: 0,
    };
    *fi += 1;
    tx.blocking_send(Out::Small(header.encode().into_bytes()))
        .is_ok()
        && tx.blocking_send(Out::Small(record.encode())).is_ok()
        && tx.blocking_send(Out::Eod).is_ok()
}

/// Sends one object: attributes, data, digest. False = stop the walk.
#[allow(clippy::too_many_arguments)]
fn save_one(
    e: &Entry<'_>,
    fi: &mut i32,
    links: &mut HashMap<(u64, u64), (i32, Vec<u8>)>,
    tx: &mpsc::Sender<Out>,
    spare: &mut std::sync::mpsc::Receiver<Bytes>,
    handle: &JobHandle,
    totals: &mut Totals,
    send: impl Fn(&mpsc::Sender<Out>, Out) -> bool,
) -> bool {
    let meta = e.meta;
    let ftype = meta.file_type();
    let is_dir = ftype.is_dir();
    let name = record_name(e.path, is_dir);
    let text = e.path.to_string_lossy().into_owned();
    handle.set_current(&text);
    let mut link = Vec::new();
    let mut link_fi = 0;
    let mut file = None;
    let file_type;
    if is_dir {
        file_type = ft::DIREND;
    } else if ftype.is_symlink() {
        match std::fs::read_link(e.path) {
            Ok(t) => link = t.into_os_string().into_vec(),
            Err(err) => {
                return report(
                    tx,
                    handle,
                    format!("Could not read link \"{text}\": ERR={err}"),
                )
            }
        }
        file_type = ft::LNK;
    } else if ftype.is_file() {
        let key = (meta.dev(), meta.ino());
        if meta.nlink() > 1 && !e.options.no_hardlinks {
            if let Some((first_fi, first_name)) = links.get(&key) {
                link = first_name.clone();
                link_fi = *first_fi;
            }
        }
        if link_fi != 0 {
            file_type = ft::LNKSAVED;
        } else {
            let mut oo = std::fs::OpenOptions::new();
            oo.read(true);
            let mut flags = libc::O_NOFOLLOW | libc::O_NONBLOCK;
            if e.options.noatime {
                flags |= libc::O_NOATIME;
            }
            oo.custom_flags(flags);
            let opened = oo.open(e.path).or_else(|err| {
                // O_NOATIME needs ownership; retry without it, like Bacula.
                if e.options.noatime && err.raw_os_error() == Some(libc::EPERM) {
                    std::fs::OpenOptions::new()
                        .read(true)
                        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                        .open(e.path)
                } else {
                    Err(err)
                }
            });
            match opened {
                Ok(f) => file = Some(f),
                Err(err) => {
                    return report(tx, handle, format!("Cannot open \"{text}\": ERR={err}"))
                }
            }
            file_type = if meta.size() == 0 { ft::REGE } else { ft::REG };
            if meta.nlink() > 1 && !e.options.no_hardlinks {
                links.insert(key, (*fi, name.clone()));
            }
        }
    } else {
        // FIFOs and devices: attributes only, recreated on restore.
        file_type = ft::SPEC;
    }
    let index = *fi;
    let record = AttrRecord {
        file_index: index,
        file_type,
        fname: name,
        lstat: stat_of(meta, link_fi).encode(),
        link,
        attr_ex: Vec::new(),
        delta_seq: 0,
    };
    let header = StreamHeader {
        file_index: index,
        stream: stream::UNIX_ATTRIBUTES,
        size: 0,
    };
    if !send(tx, Out::Small(header.encode().into_bytes()))
        || !send(tx, Out::Small(record.encode()))
        || !send(tx, Out::Eod)
    {
        return false;
    }
    *fi += 1;
    totals.files += 1;
    handle.files.fetch_add(1, Ordering::Relaxed);
    let Some(mut f) = file else {
        return true;
    };
    let digest = e.options.digest;
    let mut hasher = digest
        .md()
        .and_then(|md| openssl::hash::Hasher::new(md).ok());
    let size = meta.size();
    let mut sent_header = false;
    let mut read_error = None;
    loop {
        if handle.is_canceled() {
            return false;
        }
        // A returned buffer keeps its old bytes: resize only zeroes what
        // the last (short) read did not fill, not the whole chunk.
        let mut buf = spare
            .try_recv()
            .ok()
            .and_then(|b| b.try_into_mut().ok())
            .unwrap_or_else(|| BytesMut::with_capacity(READ_BATCH));
        buf.resize(READ_BATCH, 0);
        let n = match read_full(&mut f, &mut buf) {
            Ok(n) => n,
            Err(err) => {
                read_error = Some(err);
                0
            }
        };
        if n == 0 {
            break;
        }
        buf.truncate(n);
        if let Some(h) = hasher.as_mut() {
            let _ = h.update(&buf);
        }
        if !sent_header {
            let h = StreamHeader {
                file_index: index,
                stream: stream::FILE_DATA,
                size: size as i64,
            };
            if !send(tx, Out::Small(h.encode().into_bytes())) {
                return false;
            }
            sent_header = true;
        }
        totals.read_bytes += n as u64;
        totals.job_bytes += n as u64;
        handle.bytes.fetch_add(n as u64, Ordering::Relaxed);
        if !send(tx, Out::Data(buf.freeze())) {
            return false;
        }
    }
    if sent_header && !send(tx, Out::Eod) {
        return false;
    }
    if let Some(err) = read_error {
        handle.errors.fetch_add(1, Ordering::Relaxed);
        return send(
            tx,
            Out::Msg(
                MsgType::Error,
                format!("     Read error on file {text}. ERR={err}"),
            ),
        );
    }
    let changed = e.options.check_changes
        && f.metadata()
            .is_ok_and(|now| now.mtime() != meta.mtime() || now.size() != meta.size());
    if changed
        && !send(
            tx,
            Out::Msg(
                MsgType::Warning,
                format!("     {text}: file changed during backup."),
            ),
        )
    {
        return false;
    }
    if e.options.keep_atime {
        let _ = super::restore::set_times(
            e.path,
            meta.atime(),
            meta.atime_nsec(),
            meta.mtime(),
            meta.mtime_nsec(),
            false,
        );
    }
    if let (Some(mut h), Some(stream_id)) = (hasher, digest.stream()) {
        if let Ok(d) = h.finish() {
            let hdr = StreamHeader {
                file_index: index,
                stream: stream_id,
                size: 0,
            };
            if !send(tx, Out::Small(hdr.encode().into_bytes()))
                || !send(tx, Out::Small(d.to_vec()))
                || !send(tx, Out::Eod)
            {
                return false;
            }
        }
    }
    true
}

/// A per-file failure before anything was sent: error message, file skipped.
fn report(tx: &mpsc::Sender<Out>, handle: &JobHandle, text: String) -> bool {
    handle.errors.fetch_add(1, Ordering::Relaxed);
    tx.blocking_send(Out::Msg(MsgType::Error, format!("     {text}")))
        .is_ok()
}

/// Reads until `buf` is full or EOF.
fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Why streaming to the SD stopped.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The SD or Director connection failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The job was canceled.
    #[error("job canceled")]
    Canceled,
    /// The reader thread stopped without finishing.
    #[error("file reader stopped early")]
    Reader,
}

/// Counters of bytes handed to the SD connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct CommBytes {
    /// Payload bytes sent to the SD.
    pub sent: u64,
}

/// Network side of a backup: runs [`produce`] on a thread and sends what it
/// yields to the SD (`sd`, which compresses when `compress`) and the job
/// messages to the Director (`dir`, via `rep`), until the reader is done.
/// Does not send the final EOD.
#[allow(clippy::too_many_arguments)]
pub async fn stream_to_sd(
    sd: &mut BSock,
    compress: bool,
    dir: &mut BSock,
    rep: &Reporter,
    params: WalkParams,
    handle: Arc<JobHandle>,
    first_index: i32,
    comm: &mut CommBytes,
) -> Result<Totals, StreamError> {
    let (tx, mut rx) = mpsc::channel::<Out>(QUEUE);
    let (spare_tx, spare_rx) = std::sync::mpsc::channel::<Bytes>();
    let h = handle.clone();
    let reader = std::thread::Builder::new()
        .name("fd-backup-reader".into())
        .stack_size(16 << 20)
        .spawn(move || produce(params, h, first_index, tx, spare_rx))
        .map_err(|_| StreamError::Reader)?;
    let result = async {
        // Set when a data packet of the current stream did not compress.
        let mut incompressible = false;
        loop {
            if handle.is_canceled() {
                return Err(StreamError::Canceled);
            }
            // Packets are fed back to back and written in large pieces.
            let item = match next_or_flush(&mut rx, sd, handle.canceled()).await? {
                Next::Item(item) => item,
                Next::Closed => break,
                Next::Canceled => return Err(StreamError::Canceled),
            };
            match item {
                Out::Small(v) => {
                    // A stream header or record: the next data is new.
                    incompressible = false;
                    comm.sent += v.len() as u64;
                    sd.feed(&Packet::Data(Bytes::from(v))).await?;
                }
                Out::Data(b) => {
                    comm.sent += b.len() as u64;
                    for start in (0..b.len()).step_by(CHUNK) {
                        let packet = Packet::Data(b.slice(start..b.len().min(start + CHUNK)));
                        if compress && (incompressible || !COMPRESS_FILE_DATA) {
                            sd.set_compression(false);
                            let r = sd.feed(&packet).await;
                            sd.set_compression(true);
                            r?;
                        } else {
                            sd.feed(&packet).await?;
                            incompressible = compress && !sd.last_send_compressed();
                        }
                    }
                    let _ = spare_tx.send(b);
                }
                Out::Eod => sd.feed(&Packet::Signal(Signal::Eod)).await?,
                Out::Msg(kind, text) => rep.send(dir, kind, &text).await,
            }
        }
        sd.flush().await?;
        Ok(())
    }
    .await;
    // Closing the channel makes a still running reader stop at its next send.
    drop(rx);
    let totals = tokio::task::spawn_blocking(move || reader.join().ok().flatten())
        .await
        .ok()
        .flatten();
    result?;
    if handle.is_canceled() {
        return Err(StreamError::Canceled);
    }
    totals.ok_or(StreamError::Reader)
}

/// One line of an `estimate listing`: ls-like (§3.4).
pub fn listing_line(path: &Path, meta: &Metadata) -> String {
    let mode = mode_string(meta.mode());
    let (user, group) = (meta.uid().to_string(), meta.gid().to_string());
    let ctime = std::time::UNIX_EPOCH + std::time::Duration::from_secs(meta.ctime().max(0) as u64);
    let time = super::status::iso_time(ctime);
    let mut line = format!(
        "{mode}  {:2} {:<8.8} {:<8.8} {:>18.18} {time}  {}",
        meta.nlink(),
        user,
        group,
        meta.size(),
        path.display()
    );
    if meta.file_type().is_symlink() {
        if let Ok(t) = std::fs::read_link(path) {
            line.push_str(" -> ");
            line.push_str(&t.to_string_lossy());
        }
    }
    line.push('\n');
    line
}

/// `drwxr-xr-x`-style mode text.
pub fn mode_string(mode: u32) -> String {
    let kind = match mode & libc::S_IFMT {
        libc::S_IFDIR => 'd',
        libc::S_IFLNK => 'l',
        libc::S_IFCHR => 'c',
        libc::S_IFBLK => 'b',
        libc::S_IFIFO => 'p',
        libc::S_IFSOCK => 's',
        _ => '-',
    };
    let mut s = String::with_capacity(10);
    s.push(kind);
    let bits = [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ];
    for (bit, c) in bits {
        s.push(if mode & bit != 0 { c } else { '-' });
    }
    s
}

/// Runs an estimate on a blocking thread: (files, bytes, listing lines).
pub fn estimate(
    params: &WalkParams,
    handle: &JobHandle,
    listing: bool,
) -> (u64, u64, Vec<String>, Vec<(MsgType, String)>) {
    let mut files = 0u64;
    let mut bytes = 0u64;
    let mut lines = Vec::new();
    let mut notes = Vec::new();
    let visit = |e: Entry<'_>| {
        files += 1;
        if e.meta.is_file() {
            bytes += e.meta.size();
        }
        if listing {
            lines.push(listing_line(e.path, e.meta));
        }
        Visit::Continue
    };
    let note = |k: MsgType, t: String| {
        notes.push((k, t));
        Visit::Continue
    };
    Walker::new(params, handle, visit, note).run();
    debug!("estimate: {files} files, {bytes} bytes");
    (files, bytes, lines, notes)
}
