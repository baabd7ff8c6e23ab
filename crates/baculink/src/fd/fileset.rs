//! The Director's `fileset` command (protocol-jobs §5.3 step 3): the
//! `I`/`E` blocks with their `O` option blocks, pattern lines and `F` items,
//! parsed into a [`FileSet`], and the per-file decisions made from it
//! (included or not, with which options).
//!
//! Options we cannot honour (compression, sparse, ACLs, xattrs, ...) are
//! listed in [`FileSet::warnings`]; the job reports them to the Director and
//! runs without them rather than pretending.

use std::collections::BTreeSet;

use baculink_proto::job::attr::stream;

/// Which digest the Options ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Digest {
    /// No digest stream.
    #[default]
    None,
    /// `M`: MD5, stream 3.
    Md5,
    /// `S`: SHA-1, stream 10.
    Sha1,
    /// `S2`: SHA-256, stream 17.
    Sha256,
    /// `S3`: SHA-512, stream 18.
    Sha512,
}

impl Digest {
    /// The stream id carrying this digest.
    pub fn stream(self) -> Option<i32> {
        match self {
            Digest::None => None,
            Digest::Md5 => Some(stream::MD5_DIGEST),
            Digest::Sha1 => Some(stream::SHA1_DIGEST),
            Digest::Sha256 => Some(stream::SHA256_DIGEST),
            Digest::Sha512 => Some(stream::SHA512_DIGEST),
        }
    }

    /// The digest a record of `stream` holds.
    pub fn of_stream(s: i32) -> Digest {
        match stream::id(s) {
            stream::MD5_DIGEST => Digest::Md5,
            stream::SHA1_DIGEST => Digest::Sha1,
            stream::SHA256_DIGEST => Digest::Sha256,
            stream::SHA512_DIGEST => Digest::Sha512,
            _ => Digest::None,
        }
    }

    /// The OpenSSL message digest.
    pub fn md(self) -> Option<openssl::hash::MessageDigest> {
        use openssl::hash::MessageDigest;
        match self {
            Digest::None => None,
            Digest::Md5 => Some(MessageDigest::md5()),
            Digest::Sha1 => Some(MessageDigest::sha1()),
            Digest::Sha256 => Some(MessageDigest::sha256()),
            Digest::Sha512 => Some(MessageDigest::sha512()),
        }
    }
}

/// The options of one `O` line that this File daemon acts on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Digest stream to send per regular file.
    pub digest: Digest,
    /// `e`: files matching this block's patterns are excluded.
    pub exclude: bool,
    /// `h`: do not descend into directories.
    pub no_recursion: bool,
    /// `f`: descend into other filesystems (OneFS = no).
    pub cross_fs: bool,
    /// `m`: Incremental/Differential look at mtime only, not ctime.
    pub mtime_only: bool,
    /// `K`: open files with `O_NOATIME`.
    pub noatime: bool,
    /// `k`: put the access time back after reading a file.
    pub keep_atime: bool,
    /// `H`: no hard-link handling (every link saved as a file).
    pub no_hardlinks: bool,
    /// `c`: warn when a file changed while it was read.
    pub check_changes: bool,
    /// `i`: patterns ignore case.
    pub ignore_case: bool,
    /// `W`: enhanced wildcards (`*` stops at `/`).
    pub enhanced_wild: bool,
}

/// A pattern line of an Options block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// `W` wildcard on the full path (any file type).
    Wild(String),
    /// `WD` wildcard, directories only.
    WildDir(String),
    /// `WF` wildcard, non-directories only (name or full path).
    WildFile(String),
    /// `WB` wildcard on the last path component.
    WildBase(String),
    /// `R` regular expression on the full path.
    Regex(String),
    /// `RD` regular expression, directories only.
    RegexDir(String),
    /// `RF` regular expression, non-directories only.
    RegexFile(String),
}

/// One `O` block: its options and patterns.
#[derive(Clone, Debug, Default)]
pub struct OptionBlock {
    /// Parsed option letters.
    pub options: Options,
    /// Pattern lines.
    pub patterns: Vec<Pattern>,
    /// Compiled regular expressions, same order as the `R*` patterns.
    regexes: Vec<(regex::Regex, Target)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Any,
    Dir,
    File,
}

/// An `I` (include) or `E` (exclude) block.
#[derive(Clone, Debug, Default)]
pub struct Block {
    /// `O` blocks in order.
    pub option_blocks: Vec<OptionBlock>,
    /// `F` items (paths).
    pub files: Vec<String>,
    /// `Z` lines: a directory holding a file of this name is skipped.
    pub ignore_dir: Vec<String>,
    /// `P` items (plugins; not supported).
    pub plugins: Vec<String>,
}

/// The parsed `fileset` command.
#[derive(Clone, Debug, Default)]
pub struct FileSet {
    /// `I` blocks.
    pub includes: Vec<Block>,
    /// `E` blocks.
    pub excludes: Vec<Block>,
    /// Things asked for that this File daemon does not do (one line each,
    /// for job warnings).
    pub warnings: Vec<String>,
}

/// The outcome of matching one path against an include block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Save it with these options.
    Include(Options),
    /// Leave it out (and do not descend into it).
    Exclude,
}

impl FileSet {
    /// Parses the packets that followed the `fileset` line, up to (not
    /// including) the EOD.
    pub fn parse<S: AsRef<str>>(lines: &[S]) -> FileSet {
        let mut fs = FileSet::default();
        let mut unsupported = BTreeSet::new();
        // Which block we are in, and whether an O block is open.
        let mut current: Option<(bool, Block)> = None;
        let mut in_options = false;
        for raw in lines {
            let raw = raw.as_ref();
            let line = raw.strip_suffix('\n').unwrap_or(raw);
            let (code, value) = match line.split_once(' ') {
                Some((c, v)) => (c, v),
                None => (line, ""),
            };
            match code {
                "I" | "E" => {
                    if let Some((inc, b)) = current.take() {
                        fs.push(inc, b);
                    }
                    current = Some((code == "I", Block::default()));
                    in_options = false;
                }
                "O" => {
                    let block = &mut current.get_or_insert_with(|| (true, Block::default())).1;
                    block.option_blocks.push(OptionBlock {
                        options: parse_options(value, &mut unsupported),
                        ..OptionBlock::default()
                    });
                    in_options = true;
                }
                "N" => in_options = false,
                "F" => {
                    let block = &mut current.get_or_insert_with(|| (true, Block::default())).1;
                    if !value.is_empty() {
                        block.files.push(value.to_string());
                    }
                }
                "Z" => {
                    let block = &mut current.get_or_insert_with(|| (true, Block::default())).1;
                    block.ignore_dir.push(value.to_string());
                }
                "P" => {
                    let block = &mut current.get_or_insert_with(|| (true, Block::default())).1;
                    block.plugins.push(value.to_string());
                    unsupported.insert(format!("plugin \"{value}\" (plugins are not supported)"));
                }
                _ if in_options => {
                    let Some((_, block)) = current.as_mut() else {
                        continue;
                    };
                    let Some(ob) = block.option_blocks.last_mut() else {
                        continue;
                    };
                    let pattern = match code {
                        "W" => Some(Pattern::Wild(value.into())),
                        "WD" => Some(Pattern::WildDir(value.into())),
                        "WF" => Some(Pattern::WildFile(value.into())),
                        "WB" => Some(Pattern::WildBase(value.into())),
                        "R" => Some(Pattern::Regex(value.into())),
                        "RD" => Some(Pattern::RegexDir(value.into())),
                        "RF" => Some(Pattern::RegexFile(value.into())),
                        "B" => {
                            unsupported.insert("base jobs (\"B\" lines) are not supported".into());
                            None
                        }
                        "X" => {
                            unsupported.insert(format!(
                                "FsType \"{value}\" restriction is not supported; all filesystem types are saved"
                            ));
                            None
                        }
                        "XD" => {
                            unsupported.insert("DriveType restriction is not supported".into());
                            None
                        }
                        "G" => {
                            unsupported.insert("option plugins are not supported".into());
                            None
                        }
                        // Obsolete reader/writer programs.
                        "D" | "T" => {
                            unsupported.insert("Reader/Writer programs are not supported".into());
                            None
                        }
                        other => {
                            unsupported.insert(format!("unknown fileset option line \"{other}\""));
                            None
                        }
                    };
                    if let Some(p) = pattern {
                        let target = match &p {
                            Pattern::RegexDir(_) => Some(Target::Dir),
                            Pattern::RegexFile(_) => Some(Target::File),
                            Pattern::Regex(_) => Some(Target::Any),
                            _ => None,
                        };
                        if let (
                            Some(t),
                            Pattern::Regex(r) | Pattern::RegexDir(r) | Pattern::RegexFile(r),
                        ) = (target, &p)
                        {
                            match regex::RegexBuilder::new(r)
                                .case_insensitive(ob.options.ignore_case)
                                .build()
                            {
                                Ok(re) => ob.regexes.push((re, t)),
                                Err(e) => {
                                    unsupported.insert(format!(
                                        "regular expression \"{r}\" is not understood ({e}); it is ignored"
                                    ));
                                }
                            }
                        }
                        ob.patterns.push(p);
                    }
                }
                _ => {
                    unsupported.insert(format!("unknown fileset line \"{code}\""));
                }
            }
        }
        if let Some((inc, b)) = current.take() {
            fs.push(inc, b);
        }
        fs.warnings = unsupported.into_iter().collect();
        fs
    }

    fn push(&mut self, include: bool, block: Block) {
        if include {
            self.includes.push(block);
        } else {
            self.excludes.push(block);
        }
    }

    /// The top-level paths to save, with the include block they belong to.
    pub fn roots(&self) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for (i, b) in self.includes.iter().enumerate() {
            for f in &b.files {
                out.push((i, f.clone()));
            }
        }
        out
    }

    /// The options of include block `inc` that apply to `path`, or
    /// [`Decision::Exclude`]. The first option block whose patterns match
    /// decides; without a match, the union of all blocks' options applies
    /// (a pattern-less block with `e` excludes everything). Exclude blocks
    /// are checked last.
    pub fn decide(&self, inc: usize, path: &str, is_dir: bool) -> Decision {
        let Some(block) = self.includes.get(inc) else {
            return Decision::Exclude;
        };
        let mut merged = Options::default();
        for ob in &block.option_blocks {
            merge(&mut merged, &ob.options);
        }
        for ob in &block.option_blocks {
            if ob.patterns.is_empty() {
                if ob.options.exclude {
                    return Decision::Exclude;
                }
                continue;
            }
            if ob.matches(path, is_dir) {
                if ob.options.exclude {
                    return Decision::Exclude;
                }
                return self.apply_excludes(path, is_dir, ob.options.clone());
            }
        }
        // Bacula: an include block whose option blocks all carry patterns
        // and none matched still saves the file with the merged options,
        // except when every such block only excludes.
        merged.exclude = false;
        self.apply_excludes(path, is_dir, merged)
    }

    fn apply_excludes(&self, path: &str, is_dir: bool, options: Options) -> Decision {
        for b in &self.excludes {
            for f in &b.files {
                if path == f || wild_match(f, path, false, false) {
                    return Decision::Exclude;
                }
            }
            for ob in &b.option_blocks {
                if !ob.patterns.is_empty() && ob.matches(path, is_dir) {
                    return Decision::Exclude;
                }
            }
        }
        Decision::Include(options)
    }

    /// The `Z` names of include block `inc`.
    pub fn ignore_dir(&self, inc: usize) -> &[String] {
        self.includes
            .get(inc)
            .map(|b| b.ignore_dir.as_slice())
            .unwrap_or(&[])
    }
}

fn merge(into: &mut Options, o: &Options) {
    if into.digest == Digest::None {
        into.digest = o.digest;
    }
    into.exclude |= o.exclude;
    into.no_recursion |= o.no_recursion;
    into.cross_fs |= o.cross_fs;
    into.mtime_only |= o.mtime_only;
    into.noatime |= o.noatime;
    into.keep_atime |= o.keep_atime;
    into.no_hardlinks |= o.no_hardlinks;
    into.check_changes |= o.check_changes;
    into.ignore_case |= o.ignore_case;
    into.enhanced_wild |= o.enhanced_wild;
}

impl OptionBlock {
    fn matches(&self, path: &str, is_dir: bool) -> bool {
        let icase = self.options.ignore_case;
        let pathname = self.options.enhanced_wild;
        let base = path.rsplit('/').next().unwrap_or(path);
        for p in &self.patterns {
            let hit = match p {
                Pattern::Wild(w) => wild_match(w, path, icase, pathname),
                Pattern::WildDir(w) => is_dir && wild_match(w, path, icase, pathname),
                Pattern::WildFile(w) => {
                    !is_dir
                        && (wild_match(w, base, icase, pathname)
                            || wild_match(w, path, icase, pathname))
                }
                Pattern::WildBase(w) => wild_match(w, base, icase, pathname),
                Pattern::Regex(_) | Pattern::RegexDir(_) | Pattern::RegexFile(_) => false,
            };
            if hit {
                return true;
            }
        }
        self.regexes.iter().any(|(re, t)| {
            let applies = match t {
                Target::Any => true,
                Target::Dir => is_dir,
                Target::File => !is_dir,
            };
            applies && re.is_match(path)
        })
    }
}

/// Parses the letters of an `O` line; what we cannot do goes to `unsupported`.
pub fn parse_options(letters: &str, unsupported: &mut BTreeSet<String>) -> Options {
    let mut o = Options::default();
    let b = letters.as_bytes();
    let mut i = 0;
    // Skips "<...>:" groups (verify, accurate, base-job options, strip path).
    let skip_to_colon = |i: &mut usize| {
        while *i < b.len() && b[*i] != b':' {
            *i += 1;
        }
    };
    while i < b.len() {
        match b[i] {
            b'M' => o.digest = Digest::Md5,
            b'S' => {
                o.digest = match b.get(i + 1) {
                    Some(b'2') => {
                        i += 1;
                        Digest::Sha256
                    }
                    Some(b'3') => {
                        i += 1;
                        Digest::Sha512
                    }
                    _ => Digest::Sha1,
                }
            }
            b'Z' => {
                if i + 1 < b.len() {
                    i += 1;
                }
                unsupported.insert(
                    "compression (gzip/LZO) is not supported; data is sent uncompressed".into(),
                );
            }
            b'e' => o.exclude = true,
            b'h' => o.no_recursion = true,
            b'f' => o.cross_fs = true,
            b'm' => o.mtime_only = true,
            b'k' => o.keep_atime = true,
            b'K' => o.noatime = true,
            b'H' => o.no_hardlinks = true,
            b'c' => o.check_changes = true,
            b'i' => o.ignore_case = true,
            b'W' => o.enhanced_wild = true,
            // Replace policies matter for restores only; portable data is
            // what a Unix FD writes anyway; '0' is a filler.
            b'a' | b'w' | b'n' | b'o' | b'p' | b'0' => {}
            b's' => {
                unsupported.insert(
                    "sparse file support is not available; sparse files are saved in full".into(),
                );
            }
            b'A' => {
                unsupported.insert("ACL support is not available; ACLs are not saved".into());
            }
            b'X' => {
                unsupported.insert(
                    "extended attribute support is not available; xattrs are not saved".into(),
                );
            }
            b'R' => {
                unsupported.insert("HFS+ resource forks are not supported".into());
            }
            b'r' => {
                unsupported.insert(
                    "reading FIFOs (ReadFifo) is not supported; FIFOs are saved as special files"
                        .into(),
                );
            }
            b'N' => {
                unsupported
                    .insert("HonorNoDumpFlag is not supported; nodump files are saved".into());
            }
            b'E' => {
                unsupported.insert("data encryption is not supported".into());
            }
            b'd' => {
                while i + 1 < b.len() && b[i + 1].is_ascii_digit() {
                    i += 1;
                }
                unsupported.insert("deduplication is not supported".into());
            }
            // Verify, accurate and base-job option groups: used by the
            // Director's comparisons; nothing for the FD to do here.
            b'V' | b'C' | b'J' => skip_to_colon(&mut i),
            b'P' => {
                skip_to_colon(&mut i);
                unsupported.insert("StripPath is not supported; full paths are saved".into());
            }
            other => {
                unsupported.insert(format!("unknown fileset option letter '{}'", other as char));
            }
        }
        i += 1;
    }
    o
}

/// Shell wildcard match (`*`, `?`, `[...]` with `!`/`^` negation and ranges,
/// `\` escapes), like fnmatch(3). `pathname`: `*`/`?` do not match `/`.
pub fn wild_match(pattern: &str, text: &str, icase: bool, pathname: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let eq = |a: char, b: char| {
        if icase {
            a.to_lowercase().eq(b.to_lowercase())
        } else {
            a == b
        }
    };
    // Iterative matcher with backtracking to the last '*'.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let mut advanced = false;
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                '?' if !(pathname && t[ti] == '/') => {
                    pi += 1;
                    ti += 1;
                    advanced = true;
                }
                '[' => {
                    if let Some((hit, next)) = class_match(&p, pi, t[ti], icase) {
                        if hit && !(pathname && t[ti] == '/') {
                            pi = next;
                            ti += 1;
                            advanced = true;
                        }
                    } else if eq('[', t[ti]) {
                        pi += 1;
                        ti += 1;
                        advanced = true;
                    }
                }
                '\\' if pi + 1 < p.len() => {
                    if eq(p[pi + 1], t[ti]) {
                        pi += 2;
                        ti += 1;
                        advanced = true;
                    }
                }
                c => {
                    if c != '?' && eq(c, t[ti]) {
                        pi += 1;
                        ti += 1;
                        advanced = true;
                    }
                }
            }
        }
        if advanced {
            continue;
        }
        match star {
            Some((sp, st)) if !(pathname && t[st] == '/') => {
                star = Some((sp, st + 1));
                pi = sp + 1;
                ti = st + 1;
            }
            _ => return false,
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// A `[...]` class at `p[start]`: (matches, index after the class), or None
/// when the bracket is not closed (then it is a literal `[`).
fn class_match(p: &[char], start: usize, c: char, icase: bool) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let fold = |x: char| if icase { x.to_ascii_lowercase() } else { x };
    let c = fold(c);
    let mut hit = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((hit != negate, i + 1));
        }
        first = false;
        let lo = fold(p[i]);
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            let hi = fold(p[i + 2]);
            if lo <= c && c <= hi {
                hit = true;
            }
            i += 3;
        } else {
            if lo == c {
                hit = true;
            }
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_fileset_with_md5() {
        let fs = FileSet::parse(&["I\n", "O M\n", "N\n", "F /data", "N\n"]);
        assert_eq!(fs.includes.len(), 1);
        assert_eq!(fs.includes[0].files, ["/data"]);
        assert_eq!(fs.includes[0].option_blocks[0].options.digest, Digest::Md5);
        assert!(fs.warnings.is_empty());
        match fs.decide(0, "/data/x", false) {
            Decision::Include(o) => assert_eq!(o.digest, Digest::Md5),
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn no_options_block_and_excludes() {
        let fs = FileSet::parse(&[
            "I\n", "F /a", "N\n", "F /b\n", "N\n", "E\n", "F /a/tmp", "N\n", "O e\n", "W *.o\n",
            "N\n", "N\n",
        ]);
        assert_eq!(fs.includes[0].files, ["/a", "/b"]);
        assert_eq!(fs.excludes[0].files, ["/a/tmp"]);
        assert_eq!(fs.decide(0, "/a/tmp", true), Decision::Exclude);
        assert_eq!(fs.decide(0, "/a/x.o", false), Decision::Exclude);
        assert!(matches!(
            fs.decide(0, "/a/x.c", false),
            Decision::Include(_)
        ));
    }

    #[test]
    fn option_blocks_with_patterns() {
        let fs = FileSet::parse(&[
            "I\n",
            "O S2i\n",
            "WF *.TXT\n",
            "N\n",
            "O e\n",
            "RD /cache$\n",
            "N\n",
            "O M\n",
            "N\n",
            "F /d",
            "N\n",
        ]);
        match fs.decide(0, "/d/readme.txt", false) {
            Decision::Include(o) => assert_eq!(o.digest, Digest::Sha256),
            d => panic!("{d:?}"),
        }
        assert_eq!(fs.decide(0, "/d/x/cache", true), Decision::Exclude);
        assert!(matches!(
            fs.decide(0, "/d/x/cache", false),
            Decision::Include(_)
        ));
        match fs.decide(0, "/d/other", false) {
            // No pattern matched: the union of the blocks (first digest wins).
            Decision::Include(o) => assert_eq!(o.digest, Digest::Sha256),
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn unsupported_options_are_reported_once() {
        let fs = FileSet::parse(&["I\n", "O Z6sAXMVpins5:Cmcs:\n", "N\n", "F /x", "N\n"]);
        let o = &fs.includes[0].option_blocks[0].options;
        assert_eq!(o.digest, Digest::Md5);
        assert!(!o.mtime_only, "letters inside V...: are not options");
        let w = fs.warnings.join("|");
        for needle in ["compression", "sparse", "ACL", "extended attribute"] {
            assert!(w.contains(needle), "{needle} in {w}");
        }
        assert_eq!(fs.warnings.len(), 4, "{w}");
    }

    #[test]
    fn option_letters() {
        let mut u = BTreeSet::new();
        let o = parse_options("hfemkKHcSW", &mut u);
        assert!(o.no_recursion && o.cross_fs && o.exclude && o.mtime_only);
        assert!(o.keep_atime && o.noatime && o.no_hardlinks && o.check_changes);
        assert!(o.enhanced_wild);
        assert_eq!(o.digest, Digest::Sha1);
        assert!(u.is_empty());
        assert_eq!(parse_options("S3", &mut u).digest, Digest::Sha512);
        parse_options("q", &mut u);
        assert_eq!(u.len(), 1);
    }

    #[test]
    fn wildcards() {
        assert!(wild_match("*.txt", "/a/b.txt", false, false));
        assert!(!wild_match("*.txt", "/a/b.txt", false, true));
        assert!(wild_match("/a/*.txt", "/a/b.txt", false, true));
        assert!(wild_match("a?c", "abc", false, false));
        assert!(wild_match("[a-c]x", "bx", false, false));
        assert!(!wild_match("[!a-c]x", "bx", false, false));
        assert!(wild_match("*.TXT", "x.txt", true, false));
        assert!(!wild_match("*.TXT", "x.txt", false, false));
        assert!(wild_match("\\*", "*", false, false));
        assert!(wild_match("*", "", false, false));
        assert!(wild_match("a*b*c", "aXXbYYc", false, false));
        assert!(!wild_match("a*b*c", "aXXbYY", false, false));
        assert!(wild_match("[", "[", false, false));
    }
}
