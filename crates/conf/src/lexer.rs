//! Tokens of Bacula's configuration syntax (protocol.md §8.1), with includes.
//!
//! Works on bytes: every syntax character is ASCII, comments may hold any
//! encoding, and only tokens must be UTF-8. `@file` / `@"file"` / `@|cmd`
//! includes are expanded here, so the parser sees one token stream.
//!
//! Include paths: Bacula opens a relative include path relative to the
//! daemon's current directory. We first try the directory of the including
//! file (what a reader of the config expects) and then the current directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::error::{ConfigError, Location};

/// Deepest include nesting accepted (also bounds `@|command` recursion).
const MAX_INCLUDE_DEPTH: usize = 32;

/// One token.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tok {
    /// Unquoted text.
    Word(String),
    /// A `"..."` string after escape processing.
    Quoted(String),
    Equals,
    Comma,
    LBrace,
    RBrace,
    /// End of a directive: newline, `;`, or the end of an included file.
    Eol,
    Eof,
}

/// A token and where it starts.
#[derive(Debug)]
pub(crate) struct Token {
    pub tok: Tok,
    pub at: Location,
}

struct Source {
    name: Arc<str>,
    /// Canonical path, for include-loop detection (None for strings and pipes).
    canon: Option<PathBuf>,
    /// Directory relative includes are resolved against first.
    dir: Option<PathBuf>,
    data: Zeroizing<Vec<u8>>,
    pos: usize,
    line: u32,
}

impl Source {
    fn new(
        name: Arc<str>,
        canon: Option<PathBuf>,
        dir: Option<PathBuf>,
        data: Vec<u8>,
    ) -> Result<Self, ConfigError> {
        let mut data = Zeroizing::new(data);
        if data.starts_with(&[0xFF, 0xFE]) || data.starts_with(&[0xFE, 0xFF]) {
            return Err(ConfigError::syntax(
                &Location::new(name, 1),
                "file is UTF-16 encoded; only UTF-8 (or ASCII) is supported",
            ));
        }
        if data.starts_with(&[0xEF, 0xBB, 0xBF]) {
            data.drain(..3);
        }
        Ok(Source {
            name,
            canon,
            dir,
            data,
            pos: 0,
            line: 1,
        })
    }

    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    fn at(&self) -> Location {
        Location::new(self.name.clone(), self.line)
    }
}

/// Whitespace inside a line (newline is a token of its own).
fn is_blank(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | 0x0b | 0x0c)
}

/// Characters that end an unquoted token.
fn ends_word(c: u8) -> bool {
    is_blank(c) || matches!(c, b'\n' | b'=' | b'{' | b'}' | b';' | b',' | b'#')
}

/// The token stream of a file and everything it includes.
pub(crate) struct Lexer {
    stack: Vec<Source>,
    peeked: Option<Token>,
}

impl Lexer {
    /// Opens `path` (named in messages as given).
    pub fn open(path: &Path) -> Result<Self, ConfigError> {
        let data = std::fs::read(path).map_err(|source| ConfigError::Io {
            file: path.to_path_buf(),
            source,
        })?;
        let canon = std::fs::canonicalize(path).ok();
        let dir = path.parent().map(Path::to_path_buf);
        let name: Arc<str> = path.display().to_string().into();
        Ok(Lexer {
            stack: vec![Source::new(name, canon, dir, data)?],
            peeked: None,
        })
    }

    /// Lexes `text`, named `name` in messages; relative includes resolve
    /// against the current directory.
    pub fn from_text(name: &str, text: &str) -> Result<Self, ConfigError> {
        Ok(Lexer {
            stack: vec![Source::new(
                name.into(),
                None,
                None,
                text.as_bytes().to_vec(),
            )?],
            peeked: None,
        })
    }

    /// Puts a token back; the next [`Lexer::next`] returns it.
    pub fn unget(&mut self, t: Token) {
        debug_assert!(self.peeked.is_none());
        self.peeked = Some(t);
    }

    /// The next token.
    pub fn next(&mut self) -> Result<Token, ConfigError> {
        if let Some(t) = self.peeked.take() {
            return Ok(t);
        }
        loop {
            let depth = self.stack.len();
            let src = self.stack.last_mut().expect("lexer stack is never empty");
            let Some(c) = src.peek() else {
                if depth > 1 {
                    // End of an included file ends the directive in progress.
                    self.stack.pop();
                    let at = self.stack.last().expect("parent source").at();
                    return Ok(Token { tok: Tok::Eol, at });
                }
                return Ok(Token {
                    tok: Tok::Eof,
                    at: src.at(),
                });
            };
            let at = src.at();
            let single = |tok| {
                Ok(Token {
                    tok,
                    at: at.clone(),
                })
            };
            match c {
                b'\n' => {
                    src.pos += 1;
                    src.line += 1;
                    return single(Tok::Eol);
                }
                c if is_blank(c) => src.pos += 1,
                b'#' => {
                    while let Some(c) = src.peek() {
                        if c == b'\n' {
                            break;
                        }
                        src.pos += 1;
                    }
                }
                b';' => {
                    src.pos += 1;
                    return single(Tok::Eol);
                }
                b'{' => {
                    src.pos += 1;
                    return single(Tok::LBrace);
                }
                b'}' => {
                    src.pos += 1;
                    return single(Tok::RBrace);
                }
                b'=' => {
                    src.pos += 1;
                    return single(Tok::Equals);
                }
                b',' => {
                    src.pos += 1;
                    return single(Tok::Comma);
                }
                b'"' => {
                    src.pos += 1;
                    let s = read_quoted(src, &at)?;
                    return single(Tok::Quoted(s));
                }
                b'@' => {
                    src.pos += 1;
                    self.include(&at)?;
                }
                _ => {
                    let s = read_word(src, &at)?;
                    return single(Tok::Word(s));
                }
            }
        }
    }

    /// Handles `@path`, `@"path"`, `@|command` and `@|"command"` (the `@` is consumed).
    fn include(&mut self, at: &Location) -> Result<(), ConfigError> {
        let src = self.stack.last_mut().expect("lexer stack is never empty");
        let pipe = src.peek() == Some(b'|');
        if pipe {
            src.pos += 1;
        }
        let target = match src.peek() {
            Some(b'"') => {
                src.pos += 1;
                read_quoted(src, at)?
            }
            _ => {
                let start = src.pos;
                while let Some(c) = src.peek() {
                    if is_blank(c) || c == b'\n' {
                        break;
                    }
                    src.pos += 1;
                }
                token_text(&src.data[start..src.pos], at)?
            }
        };
        let (pipe, target) = match target.strip_prefix('|') {
            Some(rest) if !pipe => (true, rest.to_string()),
            _ => (pipe, target),
        };
        if target.is_empty() {
            return Err(ConfigError::syntax(at, "\"@\" include without a file name"));
        }
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            return Err(ConfigError::syntax(
                at,
                format!("includes nested deeper than {MAX_INCLUDE_DEPTH} levels at \"{target}\""),
            ));
        }
        let source = if pipe {
            run_pipe(&target, at)?
        } else {
            self.open_include(&target, at)?
        };
        self.stack.push(source);
        Ok(())
    }

    fn open_include(&self, target: &str, at: &Location) -> Result<Source, ConfigError> {
        let wanted = Path::new(target);
        let includer_dir = self.stack.last().and_then(|s| s.dir.clone());
        let mut candidates = Vec::new();
        if wanted.is_relative() {
            if let Some(d) = includer_dir.filter(|d| !d.as_os_str().is_empty()) {
                candidates.push(d.join(wanted));
            }
        }
        candidates.push(wanted.to_path_buf());
        let path = candidates
            .iter()
            .find(|p| p.exists())
            .unwrap_or(&candidates[0])
            .clone();
        let data = std::fs::read(&path).map_err(|e| {
            ConfigError::syntax(at, format!("cannot open included file \"{target}\": {e}"))
        })?;
        let canon = std::fs::canonicalize(&path).ok();
        if let Some(c) = &canon {
            if let Some(pos) = self.stack.iter().position(|s| s.canon.as_ref() == Some(c)) {
                let chain: Vec<&str> = self.stack[pos..].iter().map(|s| &*s.name).collect();
                return Err(ConfigError::syntax(
                    at,
                    format!(
                        "include loop: \"{target}\" is already being read ({} -> {})",
                        chain.join(" -> "),
                        path.display()
                    ),
                ));
            }
        }
        let dir = path.parent().map(Path::to_path_buf);
        Source::new(path.display().to_string().into(), canon, dir, data)
    }
}

/// Runs `@|command` through `sh -c` and lexes its standard output.
fn run_pipe(command: &str, at: &Location) -> Result<Source, ConfigError> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| ConfigError::syntax(at, format!("cannot run \"|{command}\": {e}")))?;
    if !out.status.success() {
        return Err(ConfigError::syntax(
            at,
            format!("included command \"|{command}\" failed: {}", out.status),
        ));
    }
    Source::new(format!("|{command}").into(), None, None, out.stdout)
}

/// Reads a quoted string after its opening `"`: a backslash takes the next
/// byte literally, a newline inside the quotes is dropped.
fn read_quoted(src: &mut Source, at: &Location) -> Result<String, ConfigError> {
    let mut buf = Zeroizing::new(Vec::new());
    loop {
        let Some(c) = src.peek() else {
            return Err(ConfigError::syntax(
                at,
                "quoted string is not terminated (missing closing \")",
            ));
        };
        src.pos += 1;
        match c {
            b'"' => break,
            b'\n' => src.line += 1,
            b'\\' => match src.peek() {
                Some(b'\n') => {
                    src.pos += 1;
                    src.line += 1;
                }
                Some(n) => {
                    src.pos += 1;
                    buf.push(n);
                }
                None => {}
            },
            c => buf.push(c),
        }
    }
    token_text(&buf, at)
}

/// Reads an unquoted token: up to whitespace, `= { } ; , #` or end of line.
fn read_word(src: &mut Source, at: &Location) -> Result<String, ConfigError> {
    let start = src.pos;
    while let Some(c) = src.peek() {
        if ends_word(c) {
            break;
        }
        src.pos += 1;
    }
    token_text(&src.data[start..src.pos], at)
}

fn token_text(bytes: &[u8], at: &Location) -> Result<String, ConfigError> {
    std::str::from_utf8(bytes)
        .map(str::to_string)
        .map_err(|_| ConfigError::syntax(at, "token is not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok> {
        let mut lx = Lexer::from_text("t.conf", text).unwrap();
        let mut v = Vec::new();
        loop {
            let t = lx.next().unwrap();
            if t.tok == Tok::Eof {
                return v;
            }
            v.push(t.tok);
        }
    }

    fn w(s: &str) -> Tok {
        Tok::Word(s.into())
    }
    fn q(s: &str) -> Tok {
        Tok::Quoted(s.into())
    }

    #[test]
    fn words_and_punctuation() {
        assert_eq!(
            toks("Name=x;a = b,c{}"),
            vec![
                w("Name"),
                Tok::Equals,
                w("x"),
                Tok::Eol,
                w("a"),
                Tok::Equals,
                w("b"),
                Tok::Comma,
                w("c"),
                Tok::LBrace,
                Tok::RBrace
            ]
        );
    }

    #[test]
    fn comments_end_words_but_not_quotes() {
        assert_eq!(
            toks("a#c\n\"x#y\" # z\n"),
            vec![w("a"), Tok::Eol, q("x#y"), Tok::Eol]
        );
    }

    #[test]
    fn quoted_escapes_and_newlines() {
        assert_eq!(toks(r#""a\"b\\c\(d""#), vec![q(r#"a"b\c(d"#)]);
        // A newline inside quotes is dropped and the line count advances.
        let mut lx = Lexer::from_text("t.conf", "\"ab\ncd\" x").unwrap();
        assert_eq!(lx.next().unwrap().tok, q("abcd"));
        let t = lx.next().unwrap();
        assert_eq!((t.tok, t.at.line), (w("x"), 2));
    }

    #[test]
    fn unterminated_quote_is_an_error_at_its_start() {
        let mut lx = Lexer::from_text("t.conf", "\n a = \"abc\n").unwrap();
        lx.next().unwrap();
        lx.next().unwrap();
        lx.next().unwrap();
        let e = lx.next().unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.conf:2: quoted string is not terminated (missing closing \")"
        );
    }

    #[test]
    fn bom_is_skipped_and_utf16_refused() {
        assert_eq!(toks("\u{feff}Name"), vec![w("Name")]);
        let e = Source::new("u.conf".into(), None, None, vec![0xFF, 0xFE, b'a', 0])
            .err()
            .unwrap();
        assert!(e.to_string().contains("UTF-16"), "{e}");
    }

    #[test]
    fn non_utf8_comments_are_fine() {
        let mut data = b"# caf\xe9\nName".to_vec();
        data.push(b'\n');
        let src = Source::new("l.conf".into(), None, None, data).unwrap();
        let mut lx = Lexer {
            stack: vec![src],
            peeked: None,
        };
        assert_eq!(lx.next().unwrap().tok, Tok::Eol);
        assert_eq!(lx.next().unwrap().tok, w("Name"));
    }

    #[test]
    fn line_numbers_count_newlines() {
        let mut lx = Lexer::from_text("t.conf", "a\n\n  b # c\nd").unwrap();
        let mut lines = Vec::new();
        loop {
            let t = lx.next().unwrap();
            if t.tok == Tok::Eof {
                break;
            }
            if let Tok::Word(s) = t.tok {
                lines.push((s, t.at.line));
            }
        }
        assert_eq!(
            lines,
            vec![("a".into(), 1), ("b".into(), 3), ("d".into(), 4)]
        );
    }
}
