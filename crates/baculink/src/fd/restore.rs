//! Restore (protocol-jobs §6.2-6.4): the `restore` command line, the read
//! session with the Storage daemon, and writing the records back to disk
//! under `where=`.
//!
//! The async task reads `rechdr` + data packets from the SD and hands them
//! to a blocking writer thread over a small bounded channel. The writer
//! never writes outside the restore location: names with `..` are refused,
//! and no existing symbolic link inside it is followed.

use std::collections::HashSet;
use std::ffi::{CString, OsString};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use baculink_net::{BSock, NetError};
use baculink_proto::frame::{Packet, Signal};
use baculink_proto::job::attr::{ft, stream, AttrRecord, RecHdr, Stat};
use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::debug;

use super::fileset::Digest;
use super::job::{JobHandle, MsgType, Reporter};

/// Records in flight between the network task and the writer thread.
const QUEUE: usize = 16;

/// Replace policy of the restore command (§6.2, §8.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replace {
    /// `a`: always.
    Always,
    /// `w`: if the backup copy is newer.
    IfNewer,
    /// `o`: if the backup copy is older.
    IfOlder,
    /// `n`: never.
    Never,
}

/// A parsed `restore [files=N ]replace=C prelinks=D where=W|regexwhere=R`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreCmd {
    /// Expected file count (FD version >= 7), if sent.
    pub files: Option<u64>,
    /// Replace policy.
    pub replace: Replace,
    /// Also prefix absolute symlink targets with `where`.
    pub prelinks: bool,
    /// Restore location (unbashed); empty or `/` means "in place".
    pub where_: String,
    /// `regexwhere` rules instead of `where`.
    pub regexwhere: Option<String>,
}

impl RestoreCmd {
    /// Parses the command; None when it does not have the expected shape.
    pub fn parse(line: &str) -> Option<RestoreCmd> {
        let mut rest = line
            .strip_prefix("restore ")?
            .trim_end_matches(['\n', '\0']);
        let mut files = None;
        if let Some(r) = rest.strip_prefix("files=") {
            let (n, r) = r.split_once(' ')?;
            files = Some(n.parse().ok()?);
            rest = r;
        }
        let r = rest.strip_prefix("replace=")?;
        let mut chars = r.chars();
        let replace = match chars.next()? {
            'a' => Replace::Always,
            'w' => Replace::IfNewer,
            'o' => Replace::IfOlder,
            'n' => Replace::Never,
            _ => return None,
        };
        let r = chars.as_str().trim_start().strip_prefix("prelinks=")?;
        let (p, r) = r.split_once(' ').unwrap_or((r, ""));
        let prelinks = p.parse::<u32>().ok()? != 0;
        let unbash = |s: &str| s.replace('\u{1}', " ");
        if let Some(w) = r.strip_prefix("where=") {
            Some(RestoreCmd {
                files,
                replace,
                prelinks,
                where_: unbash(w),
                regexwhere: None,
            })
        } else {
            let w = r.strip_prefix("regexwhere=")?;
            Some(RestoreCmd {
                files,
                replace,
                prelinks,
                where_: String::new(),
                regexwhere: Some(unbash(w)),
            })
        }
    }
}

/// One `!from!to!flags` rule of `regexwhere`.
#[derive(Clone, Debug)]
struct Rewrite {
    re: regex::Regex,
    to: String,
    global: bool,
}

/// Parses `regexwhere` (comma-separated rules, each delimited by its first
/// character; flags `i` and `g`).
fn parse_regexwhere(text: &str) -> Result<Vec<Rewrite>, String> {
    let mut out = Vec::new();
    for rule in text.split(',').filter(|r| !r.is_empty()) {
        let sep = rule.chars().next().unwrap_or('!');
        let parts: Vec<&str> = rule[sep.len_utf8()..].split(sep).collect();
        if parts.len() < 2 {
            return Err(format!("bad regexwhere rule \"{rule}\""));
        }
        let flags = parts.get(2).copied().unwrap_or("");
        let re = regex::RegexBuilder::new(parts[0])
            .case_insensitive(flags.contains('i'))
            .build()
            .map_err(|e| format!("bad regexwhere rule \"{rule}\": {e}"))?;
        // Bacula's \1..\9 back-references -> ${1}..${9}.
        let mut to = String::new();
        let mut it = parts[1].chars().peekable();
        while let Some(c) = it.next() {
            match (c, it.peek()) {
                ('\\', Some(d)) if d.is_ascii_digit() => {
                    to.push_str(&format!("${{{d}}}"));
                    it.next();
                }
                ('$', _) => to.push_str("$$"),
                _ => to.push(c),
            }
        }
        out.push(Rewrite {
            re,
            to,
            global: flags.contains('g'),
        });
    }
    Ok(out)
}

/// Where and how a job restores; persists across the read sessions of a
/// multi-storage restore.
pub struct RestoreState {
    base: PathBuf,
    in_place: bool,
    rewrites: Vec<Rewrite>,
    replace: Replace,
    prelinks: bool,
    root: bool,
    /// Directories whose attributes are set at the end (after every file).
    dirs: Vec<(PathBuf, Stat)>,
    /// Paths this job created (so replace=never does not skip them).
    created: HashSet<PathBuf>,
    /// Files restored (attribute records processed).
    pub files: u32,
    /// Bytes written.
    pub bytes: u64,
    /// Per-file errors.
    pub errors: u32,
    warned_streams: HashSet<i32>,
    /// Digest algorithm seen last (hashing while writing uses it).
    last_digest: Digest,
}

impl RestoreState {
    /// The state for a restore command; Err for bad `regexwhere` rules.
    pub fn new(cmd: &RestoreCmd) -> Result<RestoreState, String> {
        let rewrites = match &cmd.regexwhere {
            Some(r) => parse_regexwhere(r)?,
            None => Vec::new(),
        };
        let w = cmd.where_.trim_end_matches('/');
        let in_place = w.is_empty() || cmd.regexwhere.is_some();
        Ok(RestoreState {
            base: if in_place {
                PathBuf::from("/")
            } else {
                PathBuf::from(w)
            },
            in_place,
            rewrites,
            replace: cmd.replace,
            prelinks: cmd.prelinks,
            root: is_root(),
            dirs: Vec::new(),
            created: HashSet::new(),
            files: 0,
            bytes: 0,
            errors: 0,
            warned_streams: HashSet::new(),
            last_digest: Digest::None,
        })
    }

    /// Takes the settings of a later `restore` command of the same job.
    pub fn update(&mut self, cmd: &RestoreCmd) -> Result<(), String> {
        let fresh = RestoreState::new(cmd)?;
        self.base = fresh.base;
        self.in_place = fresh.in_place;
        self.rewrites = fresh.rewrites;
        self.replace = fresh.replace;
        self.prelinks = fresh.prelinks;
        Ok(())
    }

    /// The output path of a backed-up name: rewritten, joined under the
    /// restore location, `..` refused.
    fn target(&self, name: &[u8]) -> Result<PathBuf, String> {
        let mut name = OsString::from_vec(name.to_vec());
        if !self.rewrites.is_empty() {
            let mut s = name.to_string_lossy().into_owned();
            for r in &self.rewrites {
                s = if r.global {
                    r.re.replace_all(&s, r.to.as_str()).into_owned()
                } else {
                    r.re.replace(&s, r.to.as_str()).into_owned()
                };
            }
            name = OsString::from(s);
        }
        let mut out = self.base.clone();
        for c in Path::new(&name).components() {
            match c {
                Component::Normal(p) => out.push(p),
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
                Component::ParentDir => {
                    return Err(format!(
                        "refusing \"{}\": \"..\" in a restored path",
                        Path::new(&name).display()
                    ))
                }
            }
        }
        if out == self.base && !self.in_place {
            return Err("refusing an empty file name".into());
        }
        Ok(out)
    }

    /// Makes the parents of `path` (below the restore location) exist as
    /// real directories; an existing symlink among them is refused.
    fn make_parents(&mut self, path: &Path) -> Result<(), String> {
        let Some(parent) = path.parent() else {
            return Ok(());
        };
        let rel = parent.strip_prefix(&self.base).unwrap_or(parent);
        let mut cur = self.base.clone();
        if !self.in_place {
            std::fs::create_dir_all(&cur)
                .map_err(|e| format!("cannot create {}: {e}", cur.display()))?;
        }
        for c in rel.components() {
            let Component::Normal(p) = c else { continue };
            cur.push(p);
            match std::fs::symlink_metadata(&cur) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() && !self.in_place => {
                    return Err(format!(
                        "refusing to write through the symbolic link {}",
                        cur.display()
                    ))
                }
                Ok(m) if m.file_type().is_symlink() => {}
                Ok(_) => return Err(format!("{} exists and is not a directory", cur.display())),
                Err(_) => {
                    std::fs::DirBuilder::new()
                        .mode(0o700)
                        .create(&cur)
                        .or_else(|e| {
                            if e.kind() == std::io::ErrorKind::AlreadyExists {
                                Ok(())
                            } else {
                                Err(e)
                            }
                        })
                        .map_err(|e| format!("cannot create directory {}: {e}", cur.display()))?;
                    self.created.insert(cur.clone());
                }
            }
        }
        Ok(())
    }

    /// Refuses a path whose parents below the restore location include a
    /// symbolic link (the first path of a hard link must not lead outside).
    fn check_parents(&self, path: &Path) -> Result<(), String> {
        if self.in_place {
            return Ok(());
        }
        let Some(parent) = path.parent() else {
            return Ok(());
        };
        let rel = parent.strip_prefix(&self.base).unwrap_or(parent);
        let mut cur = self.base.clone();
        for c in rel.components() {
            let Component::Normal(p) = c else { continue };
            cur.push(p);
            if std::fs::symlink_metadata(&cur).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(format!(
                    "refusing to link through the symbolic link {}",
                    cur.display()
                ));
            }
        }
        Ok(())
    }

    /// Sets the deferred directory attributes (end of the job).
    pub fn finish_dirs(&mut self) -> Vec<(MsgType, String)> {
        let mut notes = Vec::new();
        let dirs = std::mem::take(&mut self.dirs);
        for (path, st) in dirs.iter().rev() {
            if let Err(e) = apply_attrs(path, st, Kind::Dir, self.root, None) {
                self.errors += 1;
                notes.push((MsgType::Error, format!("     {e}")));
            }
        }
        notes
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink,
    Special,
}

/// Owner (as root), mode (not for symlinks) and times of a restored object;
/// through `file` when it is open.
fn apply_attrs(
    path: &Path,
    st: &Stat,
    kind: Kind,
    root: bool,
    file: Option<&File>,
) -> Result<(), String> {
    let err =
        |what: &str, e: std::io::Error| format!("cannot set {what} of {}: {e}", path.display());
    if root {
        let (uid, gid) = (st.uid as u32, st.gid as u32);
        match file {
            Some(f) => std::os::unix::fs::fchown(f, Some(uid), Some(gid)),
            None => std::os::unix::fs::lchown(path, Some(uid), Some(gid)),
        }
        .map_err(|e| err("owner", e))?;
    }
    if kind != Kind::Symlink {
        let perm = std::fs::Permissions::from_mode((st.mode as u32) & 0o7777);
        match file {
            Some(f) => f.set_permissions(perm),
            None => std::fs::set_permissions(path, perm),
        }
        .map_err(|e| err("mode", e))?;
    }
    match file {
        Some(f) => {
            let t = std::fs::FileTimes::new()
                .set_accessed(epoch(st.atime))
                .set_modified(epoch(st.mtime));
            f.set_times(t).map_err(|e| err("times", e))
        }
        None => set_times(path, st.atime, 0, st.mtime, 0, kind == Kind::Symlink)
            .map_err(|e| err("times", e)),
    }
}

fn epoch(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// utimensat(2): access and modification times of `path` (the link itself
/// when `nofollow`).
pub fn set_times(
    path: &Path,
    atime: i64,
    atime_ns: i64,
    mtime: i64,
    mtime_ns: i64,
    nofollow: bool,
) -> std::io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let times = [
        libc::timespec {
            tv_sec: atime as libc::time_t,
            tv_nsec: atime_ns as _,
        },
        libc::timespec {
            tv_sec: mtime as libc::time_t,
            tv_nsec: mtime_ns as _,
        },
    ];
    let flags = if nofollow {
        libc::AT_SYMLINK_NOFOLLOW
    } else {
        0
    };
    // SAFETY: `c` is a valid NUL-terminated path and `times` two timespecs,
    // as utimensat requires; both outlive the call.
    let r = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), flags) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// mkfifo(3) / mknod(2) for a special file.
fn make_special(path: &Path, mode: u32, rdev: u64) -> std::io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    let r = unsafe {
        if mode & libc::S_IFMT == libc::S_IFIFO {
            libc::mkfifo(c.as_ptr(), (mode & 0o7777) as libc::mode_t)
        } else {
            libc::mknod(c.as_ptr(), mode as libc::mode_t, rdev as libc::dev_t)
        }
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The file being written.
struct Current {
    path: PathBuf,
    stat: Stat,
    file: Option<File>,
    hasher: Option<(Digest, openssl::hash::Hasher)>,
    /// Written with offsets (sparse): digest by re-reading, size fixed at the end.
    sparse: bool,
    expected: Option<(Digest, Vec<u8>)>,
    failed: bool,
    name: String,
}

/// The writer thread: consumes records until the channel closes; returns
/// the state (for the next session and the end of the job).
pub fn write_records(
    mut st: RestoreState,
    mut rx: mpsc::Receiver<(RecHdr, Bytes)>,
    notes: mpsc::UnboundedSender<(MsgType, String)>,
    handle: Arc<JobHandle>,
) -> RestoreState {
    let mut cur: Option<Current> = None;
    let note = |k: MsgType, t: String| {
        let _ = notes.send((k, t));
    };
    while let Some((hdr, data)) = rx.blocking_recv() {
        if handle.is_canceled() {
            break;
        }
        let sid = stream::id(hdr.stream);
        if stream::is_attributes(sid) {
            if let Some(c) = cur.take() {
                finish_file(&mut st, c, &note);
            }
            st.files += 1;
            handle.files.fetch_add(1, Ordering::Relaxed);
            match AttrRecord::decode(&data) {
                Ok(rec) => cur = start_file(&mut st, rec, &note, &handle),
                Err(e) => {
                    st.errors += 1;
                    note(MsgType::Error, format!("     Bad attribute record: {e}"));
                }
            }
            continue;
        }
        let Some(c) = cur.as_mut() else {
            // Data of a skipped file.
            continue;
        };
        match sid {
            stream::FILE_DATA | stream::SPARSE_DATA => {
                if c.failed {
                    continue;
                }
                let Some(f) = c.file.as_mut() else { continue };
                let r = if sid == stream::SPARSE_DATA {
                    c.sparse = true;
                    if data.len() < 8 {
                        Err(std::io::Error::other(
                            "sparse record shorter than its offset",
                        ))
                    } else {
                        let mut off = [0u8; 8];
                        off.copy_from_slice(&data[..8]);
                        f.write_all_at(&data[8..], u64::from_be_bytes(off))
                            .map(|_| data.len() - 8)
                    }
                } else {
                    if let Some((_, h)) = c.hasher.as_mut() {
                        let _ = h.update(&data);
                    }
                    f.write_all(&data).map(|_| data.len())
                };
                match r {
                    Ok(n) => {
                        st.bytes += n as u64;
                        handle.bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        c.failed = true;
                        st.errors += 1;
                        note(
                            MsgType::Error,
                            format!("     Write error on {}: ERR={e}", c.path.display()),
                        );
                    }
                }
            }
            s if stream::is_digest(s) => {
                let d = Digest::of_stream(s);
                st.last_digest = d;
                c.expected = Some((d, data.to_vec()));
            }
            other => {
                // ACL / xattr streams: the file itself is fine without them.
                let acl_xattr = (1000..2000).contains(&other);
                if acl_xattr {
                    if st.warned_streams.insert(other) {
                        note(
                            MsgType::Warning,
                            format!("     ACL/xattr stream {other} is not restored by this File daemon (first seen on {})", c.path.display()),
                        );
                    }
                } else if !c.failed {
                    c.failed = true;
                    st.errors += 1;
                    note(
                        MsgType::Error,
                        format!(
                            "     Unsupported data stream {other} (compressed or encrypted data) for {}; file not restored",
                            c.path.display()
                        ),
                    );
                }
            }
        }
    }
    if let Some(c) = cur.take() {
        finish_file(&mut st, c, &note);
    }
    st
}

/// Creates the object of an attribute record; Some(current) when data or
/// a digest may follow for it.
fn start_file(
    st: &mut RestoreState,
    rec: AttrRecord,
    note: &impl Fn(MsgType, String),
    handle: &JobHandle,
) -> Option<Current> {
    let name = String::from_utf8_lossy(&rec.fname).into_owned();
    handle.set_current(&name);
    let fail = |st: &mut RestoreState, text: String| {
        st.errors += 1;
        note(MsgType::Error, format!("     {text}"));
        None
    };
    let stat = match rec.stat() {
        Ok(s) => s,
        Err(e) => return fail(st, format!("{name}: {e}")),
    };
    let path = match st.target(&rec.fname) {
        Ok(p) => p,
        Err(e) => return fail(st, e),
    };
    if let Err(e) = st.make_parents(&path) {
        return fail(st, e);
    }
    let existing = std::fs::symlink_metadata(&path).ok();
    let is_dir_rec = ft::is_directory(rec.file_type);
    if is_dir_rec {
        match &existing {
            Some(m) if m.is_dir() => {}
            Some(m) if m.file_type().is_symlink() && !st.in_place => {
                return fail(
                    st,
                    format!(
                        "refusing to restore directory {} over a symbolic link",
                        path.display()
                    ),
                )
            }
            Some(_) => {
                return fail(
                    st,
                    format!("{} exists and is not a directory", path.display()),
                )
            }
            None => {
                if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(&path) {
                    return fail(
                        st,
                        format!("cannot create directory {}: {e}", path.display()),
                    );
                }
                st.created.insert(path.clone());
            }
        }
        st.dirs.push((path, stat));
        return None;
    }
    if let Some(m) = &existing {
        if !st.created.contains(&path) {
            let skip = match st.replace {
                Replace::Always => false,
                Replace::Never => true,
                Replace::IfNewer => stat.mtime <= m.mtime(),
                Replace::IfOlder => stat.mtime >= m.mtime(),
            };
            if skip {
                let why = match st.replace {
                    Replace::Never => "Already exists",
                    Replace::IfNewer => "Not newer",
                    _ => "Not older",
                };
                note(
                    MsgType::Skipped,
                    format!("     File skipped. {why}: {}", path.display()),
                );
                return None;
            }
        }
        if m.is_dir() {
            return fail(
                st,
                format!("{} exists as a directory; not replaced", path.display()),
            );
        }
        if let Err(e) = std::fs::remove_file(&path) {
            return fail(st, format!("cannot replace {}: {e}", path.display()));
        }
    }
    match rec.file_type {
        ft::REG | ft::REGE | ft::RAW => {
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path);
            match file {
                Ok(f) => {
                    st.created.insert(path.clone());
                    let hasher = match st.last_digest.md() {
                        Some(md) => openssl::hash::Hasher::new(md)
                            .ok()
                            .map(|h| (st.last_digest, h)),
                        None => None,
                    };
                    Some(Current {
                        path,
                        stat,
                        file: Some(f),
                        hasher,
                        sparse: false,
                        expected: None,
                        failed: false,
                        name,
                    })
                }
                Err(e) => fail(st, format!("cannot create {}: {e}", path.display())),
            }
        }
        ft::LNK => {
            let mut target = OsString::from_vec(rec.link.clone());
            if st.prelinks && !st.in_place && rec.link.first() == Some(&b'/') {
                let mut t = st.base.clone().into_os_string();
                t.push(&target);
                target = t;
            }
            if let Err(e) = std::os::unix::fs::symlink(&target, &path) {
                return fail(st, format!("cannot create symlink {}: {e}", path.display()));
            }
            st.created.insert(path.clone());
            if let Err(e) = apply_attrs(&path, &stat, Kind::Symlink, st.root, None) {
                return fail(st, e);
            }
            None
        }
        ft::LNKSAVED => {
            let first = match st.target(&rec.link) {
                Ok(p) => p,
                Err(e) => return fail(st, e),
            };
            if let Err(e) = st.check_parents(&first) {
                return fail(st, e);
            }
            if let Err(e) = std::fs::hard_link(&first, &path) {
                return fail(
                    st,
                    format!("cannot link {} to {}: {e}", path.display(), first.display()),
                );
            }
            st.created.insert(path.clone());
            None
        }
        ft::SPEC | ft::FIFO => {
            let mode = stat.mode as u32;
            if mode & libc::S_IFMT == libc::S_IFSOCK {
                note(
                    MsgType::Skipped,
                    format!("     Socket not restored: {name}"),
                );
                return None;
            }
            if let Err(e) = make_special(&path, mode, stat.rdev as u64) {
                return fail(
                    st,
                    format!("cannot create special file {}: {e}", path.display()),
                );
            }
            st.created.insert(path.clone());
            if let Err(e) = apply_attrs(&path, &stat, Kind::Special, st.root, None) {
                return fail(st, e);
            }
            None
        }
        other => {
            debug!("restore: record type {other} for {name} ignored");
            None
        }
    }
}

/// Closes a written file: digest check, size of sparse files, attributes.
fn finish_file(st: &mut RestoreState, mut c: Current, note: &impl Fn(MsgType, String)) {
    let Some(mut file) = c.file.take() else {
        return;
    };
    if c.failed {
        return;
    }
    if c.sparse {
        if let Err(e) = file.set_len(c.stat.size.max(0) as u64) {
            st.errors += 1;
            note(
                MsgType::Error,
                format!("     cannot size {}: {e}", c.path.display()),
            );
        }
    }
    if let Err(e) = file.flush() {
        st.errors += 1;
        note(
            MsgType::Error,
            format!("     Write error on {}: ERR={e}", c.path.display()),
        );
        return;
    }
    if let Some((want_kind, want)) = &c.expected {
        let got = match c.hasher.take() {
            Some((kind, mut h)) if kind == *want_kind && !c.sparse => {
                h.finish().ok().map(|d| d.to_vec())
            }
            _ => rehash(&c.path, *want_kind),
        };
        match got {
            Some(g) if &g == want => {}
            Some(_) => {
                st.errors += 1;
                note(
                    MsgType::Error,
                    format!(
                        "     {:?} digest mismatch on restored file {} (backup {}): the data differs from what was saved",
                        want_kind,
                        c.path.display(),
                        c.name
                    ),
                );
            }
            None => {
                st.errors += 1;
                note(
                    MsgType::Error,
                    format!("     cannot verify the digest of {}", c.path.display()),
                );
            }
        }
    }
    if let Err(e) = apply_attrs(&c.path, &c.stat, Kind::File, st.root, Some(&file)) {
        st.errors += 1;
        note(MsgType::Error, format!("     {e}"));
    }
}

/// Digest of a file on disk.
fn rehash(path: &Path, d: Digest) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut h = openssl::hash::Hasher::new(d.md()?).ok()?;
    let mut f = File::open(path).ok()?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]).ok()?;
    }
    h.finish().ok().map(|d| d.to_vec())
}

/// Why a read session failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Network failure on the SD or Director link.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The SD refused or sent something unexpected.
    #[error("{0}")]
    Protocol(String),
    /// Canceled.
    #[error("job canceled")]
    Canceled,
}

/// Reads one text reply from the SD, skipping heartbeats.
async fn sd_reply(sd: &mut BSock, handle: &JobHandle) -> Result<String, ReadError> {
    let r = tokio::select! {
        biased;
        _ = handle.canceled() => return Err(ReadError::Canceled),
        r = sd.recv_data() => r?,
    };
    match r {
        Ok(d) => Ok(baculink_proto::scan::c_text(&d)),
        Err(s) => Err(ReadError::Protocol(format!(
            "Storage daemon sent {} instead of a reply",
            s.name()
        ))),
    }
}

/// Runs one read session (§6.3) and writes what it yields. `state` is
/// taken and given back (also on errors, so directories still get their
/// attributes).
#[allow(clippy::too_many_arguments)]
pub async fn read_session(
    sd: &mut BSock,
    dir: &mut BSock,
    rep: &Reporter,
    handle: Arc<JobHandle>,
    sd_id: u32,
    sd_time: u32,
    state: RestoreState,
) -> (RestoreState, Result<(), ReadError>) {
    let (tx, rx) = mpsc::channel::<(RecHdr, Bytes)>(QUEUE);
    let (ntx, mut nrx) = mpsc::unbounded_channel();
    let h = handle.clone();
    let writer = tokio::task::spawn_blocking(move || write_records(state, rx, ntx, h));
    let result = async {
        sd.send_text(&format!(
            "read open session = DummyVolume {sd_id} {sd_time} 0 0 0 0\n"
        ))
        .await?;
        let r = sd_reply(sd, &handle).await?;
        let ticket = r
            .strip_prefix("3000 OK open ticket = ")
            .and_then(|t| t.trim().parse::<i64>().ok())
            .ok_or_else(|| {
                ReadError::Protocol(format!("read open session refused: {}", r.trim_end()))
            })?;
        sd.send_text(&format!("read data {ticket}\n")).await?;
        let r = sd_reply(sd, &handle).await?;
        if !r.starts_with("3000 OK data") {
            return Err(ReadError::Protocol(format!(
                "Storage daemon could not read the data: {}",
                r.trim_end()
            )));
        }
        loop {
            let p = tokio::select! {
                biased;
                _ = handle.canceled() => return Err(ReadError::Canceled),
                p = sd.recv() => p?,
            };
            let hdr = match p {
                Packet::Data(d) => {
                    RecHdr::decode(&d).map_err(|e| ReadError::Protocol(e.to_string()))?
                }
                Packet::Signal(Signal::Eod) => break,
                Packet::Signal(Signal::Heartbeat | Signal::HbResponse) => continue,
                Packet::Signal(s) => {
                    return Err(ReadError::Protocol(format!(
                        "Storage daemon sent {} in the middle of the data",
                        s.name()
                    )))
                }
            };
            let data = loop {
                match sd.recv().await? {
                    Packet::Data(d) => break d,
                    Packet::Signal(Signal::Heartbeat | Signal::HbResponse) => continue,
                    Packet::Signal(s) => {
                        return Err(ReadError::Protocol(format!(
                            "Storage daemon sent {} instead of record data",
                            s.name()
                        )))
                    }
                }
            };
            if data.len() != hdr.data_len as usize {
                return Err(ReadError::Protocol(format!(
                    "record of {} bytes where the header announced {}",
                    data.len(),
                    hdr.data_len
                )));
            }
            while let Ok((k, t)) = nrx.try_recv() {
                rep.send(dir, k, &t).await;
            }
            if tx.send((hdr, data)).await.is_err() {
                return Err(ReadError::Protocol("restore writer stopped".into()));
            }
        }
        sd.send_text(&format!("read close session {ticket}\n"))
            .await?;
        let r = sd_reply(sd, &handle).await?;
        if !r.starts_with("3000 OK close") {
            return Err(ReadError::Protocol(format!(
                "read close session refused: {}",
                r.trim_end()
            )));
        }
        // Up to the EOD that ends the close reply.
        loop {
            match sd.recv().await? {
                Packet::Signal(Signal::Eod) => break,
                Packet::Signal(Signal::Terminate) => break,
                _ => continue,
            }
        }
        Ok(())
    }
    .await;
    drop(tx);
    let state = match writer.await {
        Ok(s) => s,
        Err(e) => {
            let text = format!("restore writer failed: {e}");
            rep.send(dir, MsgType::Fatal, &text).await;
            return (lost_state(), Err(ReadError::Protocol(text)));
        }
    };
    while let Ok((k, t)) = nrx.try_recv() {
        rep.send(dir, k, &t).await;
    }
    (state, result)
}

/// A stand-in after the writer thread died (its state is lost).
fn lost_state() -> RestoreState {
    RestoreState {
        base: PathBuf::from("/nonexistent"),
        in_place: false,
        rewrites: Vec::new(),
        replace: Replace::Never,
        prelinks: false,
        root: false,
        dirs: Vec::new(),
        created: HashSet::new(),
        files: 0,
        bytes: 0,
        errors: 1,
        warned_streams: HashSet::new(),
        last_digest: Digest::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_command_lines() {
        let c =
            RestoreCmd::parse("restore files=6 replace=a prelinks=0 where=/srv/restore\n").unwrap();
        assert_eq!(c.files, Some(6));
        assert_eq!(c.replace, Replace::Always);
        assert!(!c.prelinks);
        assert_eq!(c.where_, "/srv/restore");
        let c = RestoreCmd::parse("restore replace=n prelinks=1 where=\n").unwrap();
        assert_eq!(
            (c.files, c.replace, c.prelinks, c.where_.as_str()),
            (None, Replace::Never, true, "")
        );
        let c = RestoreCmd::parse("restore files=1 replace=w prelinks=0 where=/a\u{1}b\n").unwrap();
        assert_eq!(c.where_, "/a b");
        let c = RestoreCmd::parse("restore files=1 replace=o prelinks=0 regexwhere=!/data!/x!\n")
            .unwrap();
        assert_eq!(c.regexwhere.as_deref(), Some("!/data!/x!"));
        assert!(RestoreCmd::parse("restore replace=q prelinks=0 where=/\n").is_none());
        assert!(RestoreCmd::parse("restorex").is_none());
    }

    #[test]
    fn targets_stay_under_where() {
        let cmd = RestoreCmd::parse("restore files=1 replace=a prelinks=0 where=/r\n").unwrap();
        let st = RestoreState::new(&cmd).unwrap();
        assert_eq!(st.target(b"/data/a").unwrap(), PathBuf::from("/r/data/a"));
        assert_eq!(
            st.target(b"/data/dir/").unwrap(),
            PathBuf::from("/r/data/dir")
        );
        assert!(st.target(b"/data/../../etc/passwd").is_err());
        assert!(st.target(b"/").is_err());
        let cmd = RestoreCmd::parse("restore files=1 replace=a prelinks=0 where=/\n").unwrap();
        let st = RestoreState::new(&cmd).unwrap();
        assert_eq!(st.target(b"/data/a").unwrap(), PathBuf::from("/data/a"));
        let cmd = RestoreCmd::parse(
            "restore files=1 replace=a prelinks=0 regexwhere=!^/data!/tmp/x!,!\\.txt$!.bak!\n",
        )
        .unwrap();
        let st = RestoreState::new(&cmd).unwrap();
        assert_eq!(
            st.target(b"/data/a.txt").unwrap(),
            PathBuf::from("/tmp/x/a.bak")
        );
    }

    #[test]
    fn symlinks_inside_where_are_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let where_ = tmp.path().join("r");
        std::fs::create_dir_all(where_.join("data")).unwrap();
        std::os::unix::fs::symlink(outside.path(), where_.join("data/evil")).unwrap();
        let cmd = RestoreCmd {
            files: None,
            replace: Replace::Always,
            prelinks: false,
            where_: where_.display().to_string(),
            regexwhere: None,
        };
        let mut st = RestoreState::new(&cmd).unwrap();
        let p = st.target(b"/data/evil/x").unwrap();
        assert!(st.make_parents(&p).is_err());
        assert!(st.check_parents(&p).is_err());
        let ok = st.target(b"/data/fine").unwrap();
        assert!(st.check_parents(&ok).is_ok());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }
}
