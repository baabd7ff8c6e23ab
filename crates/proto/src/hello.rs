//! Hello lines, `starttls` and final lines of every pairing (protocol.md §4).
//!
//! Each accepting daemon has its own parser (`parse_for_director`,
//! `parse_for_fd`, `parse_for_sd`) that tries Bacula's patterns in Bacula's
//! order: the 13.x forms with the strict scanner first, then the 9.6 forms
//! with the lenient scanner. A line that only the lenient fallback accepts
//! carries no `tlspsk` (it comes from a 9.6 peer, or is treated like one).
//!
//! Names and job names travel "bashed" (space replaced by byte 0x01); the
//! [`Hello`] values hold them unbashed.

use std::fmt;

use crate::negotiate::Dialect;
use crate::scan::{c_text, Scanner};

/// Longest name or job name a Hello parser takes (`%127s`).
pub const NAME_MAX: usize = 127;

/// Director version, 9.6 (`Hello ... calling 103`, `1000 OK: 103 ...`).
pub const DIRECTOR_VERSION_V96: u32 = 103;
/// Director version, 13.x.
pub const DIRECTOR_VERSION_V13: u32 = 10002;
/// File daemon version, 9.6 (`2000 OK Hello 214`, FD→SD Hello).
pub const FD_VERSION_V96: u32 = 214;
/// File daemon version, 13.x.
pub const FD_VERSION_V13: u32 = 14;
/// Storage daemon version, 9.6 (`3000 OK Hello 306`).
pub const SD_VERSION_V96: u32 = 306;
/// Storage daemon version, 13.x.
pub const SD_VERSION_V13: u32 = 30007;
/// bconsole version, 9.6 (`Hello *UserAgent* calling 100`).
pub const CONSOLE_VERSION_V96: u32 = 100;
/// bconsole version, 13.x.
pub const CONSOLE_VERSION_V13: u32 = 200;
/// Version an FD sends when it calls a Director as a console or with `fdcallsdir`.
pub const FD_AS_CONSOLE_VERSION: u32 = 1;
/// Tray monitor version, 13.x community (9.6 sends none).
pub const TRAY_MONITOR_VERSION_V13: u32 = 100;

/// The version numbers one dialect puts on the wire (protocol.md §4.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Versions {
    /// Director version.
    pub director: u32,
    /// File daemon version.
    pub fd: u32,
    /// Storage daemon version.
    pub sd: u32,
    /// bconsole version.
    pub console: u32,
}

impl Versions {
    /// Bacula 9.6.
    pub const V96: Versions = Versions {
        director: DIRECTOR_VERSION_V96,
        fd: FD_VERSION_V96,
        sd: SD_VERSION_V96,
        console: CONSOLE_VERSION_V96,
    };
    /// Bacula 13.x.
    pub const V13: Versions = Versions {
        director: DIRECTOR_VERSION_V13,
        fd: FD_VERSION_V13,
        sd: SD_VERSION_V13,
        console: CONSOLE_VERSION_V13,
    };

    /// The versions of `dialect`.
    pub fn of(dialect: Dialect) -> Versions {
        match dialect {
            Dialect::V96 => Versions::V96,
            Dialect::V13 => Versions::V13,
        }
    }
}

/// A parsed or to-be-sent Hello line. Names are unbashed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hello {
    /// `Hello <name> calling[ <version>][ tlspsk=N]` (console, tray monitor to a
    /// Director, FD console/proxy mode; also accepted by the FD).
    Console {
        /// Console name (`*UserAgent*` for the default console).
        name: String,
        /// Sender's version (100 for 9.6 bconsole, 200 for 13.x); `None` if absent.
        version: Option<u32>,
        /// 13.x combined need, `None` when absent (9.6).
        tlspsk: Option<u32>,
    },
    /// `Hello <fd name> fdcallsdir <version>[ tlspsk=N]` (13.x FD calling its Director).
    FdCallsDir {
        /// The FD's own name (the Director looks up its Client resource).
        name: String,
        /// Always 1 in 13.x.
        version: u32,
        /// 13.x combined need.
        tlspsk: Option<u32>,
    },
    /// `Hello Director <name> calling[ <version>][ tlspsk=N]` (Director or tray monitor to an FD).
    Director {
        /// Director (or monitor) name.
        name: String,
        /// 103 (9.6) or 10002 (13.x); `None` if absent.
        version: Option<u32>,
        /// 13.x combined need.
        tlspsk: Option<u32>,
    },
    /// `Hello SD: Bacula Director <name> calling[ <version>][ tlspsk=N]` (to an SD).
    DirectorToSd {
        /// Director (or monitor) name.
        name: String,
        /// 103 (9.6) or 10002 (13.x); `None` if absent.
        version: Option<u32>,
        /// 13.x combined need.
        tlspsk: Option<u32>,
    },
    /// `Hello Bacula SD: Start Job <job> <fd version>[ <sd version>][ tlspsk=N]`
    /// (FD, or an SD acting as client, to an SD).
    FdToSd {
        /// Unique job name.
        job: String,
        /// The sender's FD version (214 / 14); 0 if a lenient parse found no digits.
        fd_version: u32,
        /// Present when an SD is the client (SD→SD copy/migration).
        sd_version: Option<u32>,
        /// 13.x combined need.
        tlspsk: Option<u32>,
    },
    /// `Hello FD: Bacula Storage calling Start Job <job> <version>` (SD Calls
    /// Client, §4.5: a preliminary line, not a login; never carries TLS needs).
    SdCallsClient {
        /// Unique job name.
        job: String,
        /// The sender's version (the SD version when the SD sends it).
        sd_version: u32,
    },
    /// `Hello Start Job <job>`: oldest client form, still accepted by the SD.
    StartJob {
        /// Unique job name.
        job: String,
    },
}

fn bash(name: &str) -> String {
    name.replace(' ', "\u{1}")
}

fn unbash(name: &str) -> String {
    name.replace('\u{1}', " ")
}

impl Hello {
    /// The name (console, Director, FD) or job name this Hello carries.
    pub fn name(&self) -> &str {
        match self {
            Hello::Console { name, .. }
            | Hello::FdCallsDir { name, .. }
            | Hello::Director { name, .. }
            | Hello::DirectorToSd { name, .. } => name,
            Hello::FdToSd { job, .. }
            | Hello::SdCallsClient { job, .. }
            | Hello::StartJob { job } => job,
        }
    }

    /// The sender's version number, if the line has one.
    pub fn version(&self) -> Option<u32> {
        match self {
            Hello::Console { version, .. }
            | Hello::Director { version, .. }
            | Hello::DirectorToSd { version, .. } => *version,
            Hello::FdCallsDir { version, .. } => Some(*version),
            Hello::FdToSd { fd_version, .. } => Some(*fd_version),
            Hello::SdCallsClient { sd_version, .. } => Some(*sd_version),
            Hello::StartJob { .. } => None,
        }
    }

    /// The 13.x `tlspsk=` number, if present.
    pub fn tlspsk(&self) -> Option<u32> {
        match self {
            Hello::Console { tlspsk, .. }
            | Hello::FdCallsDir { tlspsk, .. }
            | Hello::Director { tlspsk, .. }
            | Hello::DirectorToSd { tlspsk, .. }
            | Hello::FdToSd { tlspsk, .. } => *tlspsk,
            Hello::SdCallsClient { .. } | Hello::StartJob { .. } => None,
        }
    }

    /// The same Hello with `tlspsk` replaced (no-op for forms without the field).
    pub fn with_tlspsk(mut self, value: Option<u32>) -> Hello {
        match &mut self {
            Hello::Console { tlspsk, .. }
            | Hello::FdCallsDir { tlspsk, .. }
            | Hello::Director { tlspsk, .. }
            | Hello::DirectorToSd { tlspsk, .. }
            | Hello::FdToSd { tlspsk, .. } => *tlspsk = value,
            Hello::SdCallsClient { .. } | Hello::StartJob { .. } => {}
        }
        self
    }

    /// True for the forms a storage daemon treats as a client (data channel)
    /// connection rather than a Director.
    pub fn is_storage_client(&self) -> bool {
        matches!(
            self,
            Hello::FdToSd { .. } | Hello::SdCallsClient { .. } | Hello::StartJob { .. }
        )
    }

    /// The packet payload: exact text with bashed names and a trailing `\n`.
    ///
    /// A `tlspsk` on a line whose version is `None` is sent with version 0,
    /// because the 13.x parsers only look for `tlspsk=` after a number.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.render(true).into_bytes()
    }

    fn render(&self, bashed: bool) -> String {
        let nm = |n: &str| if bashed { bash(n) } else { n.to_string() };
        let calling = |version: &Option<u32>, tlspsk: &Option<u32>| {
            let mut s = String::from(" calling");
            match (version, tlspsk) {
                (Some(v), _) => s += &format!(" {v}"),
                (None, Some(_)) => s += " 0",
                (None, None) => {}
            }
            if let Some(t) = tlspsk {
                s += &format!(" tlspsk={t}");
            }
            s
        };
        let psk = |tlspsk: &Option<u32>| tlspsk.map(|t| format!(" tlspsk={t}")).unwrap_or_default();
        match self {
            Hello::Console {
                name,
                version,
                tlspsk,
            } => format!("Hello {}{}\n", nm(name), calling(version, tlspsk)),
            Hello::FdCallsDir {
                name,
                version,
                tlspsk,
            } => format!("Hello {} fdcallsdir {version}{}\n", nm(name), psk(tlspsk)),
            Hello::Director {
                name,
                version,
                tlspsk,
            } => format!("Hello Director {}{}\n", nm(name), calling(version, tlspsk)),
            Hello::DirectorToSd {
                name,
                version,
                tlspsk,
            } => format!(
                "Hello SD: Bacula Director {}{}\n",
                nm(name),
                calling(version, tlspsk)
            ),
            Hello::FdToSd {
                job,
                fd_version,
                sd_version,
                tlspsk,
            } => {
                let sd = sd_version.map(|v| format!(" {v}")).unwrap_or_default();
                format!(
                    "Hello Bacula SD: Start Job {} {fd_version}{sd}{}\n",
                    nm(job),
                    psk(tlspsk)
                )
            }
            Hello::SdCallsClient { job, sd_version } => {
                format!(
                    "Hello FD: Bacula Storage calling Start Job {} {sd_version}\n",
                    nm(job)
                )
            }
            Hello::StartJob { job } => format!("Hello Start Job {}\n", nm(job)),
        }
    }
}

impl fmt::Display for Hello {
    /// The line as sent, with names unbashed and without the newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.render(false).trim_end_matches('\n'))
    }
}

/// Why a Hello was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// The packet is shorter than the receiving daemon accepts.
    #[error("Hello of {len} bytes is too short (at least {min} expected)")]
    TooShort {
        /// Packet length.
        len: usize,
        /// Smallest accepted length.
        min: usize,
    },
    /// The packet is longer than the receiving daemon accepts.
    #[error("Hello of {len} bytes is too long (at most {max} accepted)")]
    TooLong {
        /// Packet length.
        len: usize,
        /// Largest accepted length.
        max: usize,
    },
    /// The first packet does not even start with `Hello` (FD dispatch).
    #[error("expected a Hello, got {0:?}")]
    NotHello(String),
    /// No accepted pattern matched; holds the first 100 bytes of the line.
    #[error("Hello matches no accepted form: {0:?}")]
    NoMatch(String),
    /// A `Ping` probe sent to a file daemon (answered with `2000 Ping OK`).
    #[error("Ping probe instead of a Hello")]
    Ping,
}

/// One converted field of a scan.
enum Field<'a> {
    Str(&'a str),
    /// `None`: the lenient scanner matched `%d` against no digits (value 0).
    Num(Option<u32>),
}

/// Runs a Bacula format (`%s` = `%127s`, `%d`, literal text, spaces) over `text`.
fn scan<'a>(text: &'a str, strict: bool, format: &str) -> Option<Vec<Field<'a>>> {
    let mut s = if strict {
        Scanner::strict(text)
    } else {
        Scanner::lenient(text)
    };
    let mut fields = Vec::new();
    let mut rest = format;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("%s") {
            // The lenient scanner would take an empty name at the end of the
            // line; no resource has one, so refuse it here already.
            // Names are at most 127 bytes of printable text (bashed spaces
            // are 0x01). A longer token is refused rather than cut: a cut
            // name would parse the rest of the token as the next field.
            let word = s
                .word(usize::MAX)
                .filter(|w| !w.is_empty() && w.len() <= NAME_MAX)
                .filter(|w| {
                    !w.chars().any(|c| {
                        c == char::REPLACEMENT_CHARACTER || (c.is_control() && c != '\u{1}')
                    })
                })?;
            fields.push(Field::Str(word));
            rest = r;
        } else if let Some(r) = rest.strip_prefix("%d") {
            let before = s.rest().len();
            let v = s.int()?;
            let value = if s.rest().len() == before {
                None
            } else {
                Some(u32::try_from(v).ok()?)
            };
            fields.push(Field::Num(value));
            rest = r;
        } else if rest.starts_with(' ') {
            if !s.ws() {
                return None;
            }
            rest = rest.trim_start_matches(' ');
        } else {
            let end = rest.find([' ', '%']).unwrap_or(rest.len());
            s.lit(&rest[..end])?;
            rest = &rest[end..];
        }
    }
    Some(fields)
}

fn text_of(f: &Field<'_>) -> String {
    match f {
        Field::Str(s) => unbash(s),
        Field::Num(_) => String::new(),
    }
}

fn num_of(f: Option<&Field<'_>>) -> Option<u32> {
    match f {
        Some(Field::Num(n)) => *n,
        _ => None,
    }
}

/// A pattern: its format, whether it uses the strict scanner, and how to
/// build the Hello from the fields.
type Builder = fn(&[Field<'_>]) -> Hello;

fn try_patterns(text: &str, patterns: &[(&str, bool, Builder)]) -> Option<Hello> {
    patterns
        .iter()
        .find_map(|(format, strict, build)| scan(text, *strict, format).map(|f| build(&f)))
}

fn console(f: &[Field<'_>]) -> Hello {
    Hello::Console {
        name: text_of(&f[0]),
        version: num_of(f.get(1)),
        tlspsk: num_of(f.get(2)),
    }
}

fn fdcallsdir(f: &[Field<'_>]) -> Hello {
    Hello::FdCallsDir {
        name: text_of(&f[0]),
        version: num_of(f.get(1)).unwrap_or(0),
        tlspsk: num_of(f.get(2)),
    }
}

fn director(f: &[Field<'_>]) -> Hello {
    Hello::Director {
        name: text_of(&f[0]),
        version: num_of(f.get(1)),
        tlspsk: num_of(f.get(2)),
    }
}

fn director_to_sd(f: &[Field<'_>]) -> Hello {
    Hello::DirectorToSd {
        name: text_of(&f[0]),
        version: num_of(f.get(1)),
        tlspsk: num_of(f.get(2)),
    }
}

fn fd_to_sd_two(f: &[Field<'_>]) -> Hello {
    Hello::FdToSd {
        job: text_of(&f[0]),
        fd_version: num_of(f.get(1)).unwrap_or(0),
        sd_version: num_of(f.get(2)),
        tlspsk: num_of(f.get(3)),
    }
}

fn fd_to_sd_one(f: &[Field<'_>]) -> Hello {
    Hello::FdToSd {
        job: text_of(&f[0]),
        fd_version: num_of(f.get(1)).unwrap_or(0),
        sd_version: None,
        tlspsk: num_of(f.get(2)),
    }
}

fn sd_calls_client(f: &[Field<'_>]) -> Hello {
    Hello::SdCallsClient {
        job: text_of(&f[0]),
        sd_version: num_of(f.get(1)).unwrap_or(0),
    }
}

fn start_job(f: &[Field<'_>]) -> Hello {
    Hello::StartJob {
        job: text_of(&f[0]),
    }
}

const STRICT: bool = true;
const LENIENT: bool = false;

fn first_100(payload: &[u8]) -> String {
    c_text(&payload[..payload.len().min(100)])
}

fn check_len(payload: &[u8], min: usize, max: usize) -> Result<(), HelloError> {
    let len = payload.len();
    if len < min {
        Err(HelloError::TooShort { len, min })
    } else if len > max {
        Err(HelloError::TooLong { len, max })
    } else {
        Ok(())
    }
}

/// Selects the patterns of `dialect`: 13.x tries its strict list, then the
/// 9.6 lenient list as a fallback; 9.6 uses only the lenient list (and so
/// never sees `tlspsk`).
fn run(
    payload: &[u8],
    dialect: Dialect,
    v13: &[(&str, bool, Builder)],
    v96: &[(&str, bool, Builder)],
) -> Result<Hello, HelloError> {
    let text = c_text(payload);
    let found = match dialect {
        Dialect::V13 => try_patterns(&text, v13).or_else(|| try_patterns(&text, v96)),
        Dialect::V96 => try_patterns(&text, v96).map(|h| h.with_tlspsk(None)),
    };
    found.ok_or_else(|| HelloError::NoMatch(first_100(payload)))
}

/// A Director's parser for console-type Hellos (console, tray monitor, FD
/// console mode, 13.x `fdcallsdir`), as 13.x does with a 9.6 fallback.
/// Accepted lengths: 16 <= len < 143.
pub fn parse_for_director(payload: &[u8]) -> Result<Hello, HelloError> {
    parse_for_director_as(payload, Dialect::V13)
}

/// [`parse_for_director`] as a Director of `dialect` does it.
pub fn parse_for_director_as(payload: &[u8], dialect: Dialect) -> Result<Hello, HelloError> {
    check_len(payload, 16, 142)?;
    run(
        payload,
        dialect,
        &[
            ("Hello %s fdcallsdir %d tlspsk=%d", STRICT, fdcallsdir),
            ("Hello %s fdcallsdir %d", STRICT, fdcallsdir),
            ("Hello %s calling %d tlspsk=%d", STRICT, console),
            ("Hello %s calling %d", STRICT, console),
            ("Hello %s calling", STRICT, console),
        ],
        &[
            ("Hello %s calling %d", LENIENT, console),
            ("Hello %s calling", LENIENT, console),
        ],
    )
}

/// Prefix by which a file daemon recognises "SD calls client" (first 20 bytes).
const SD_CALLS_CLIENT_PREFIX: &[u8] = b"Hello FD: Bacula Sto";

/// A file daemon's first-packet dispatch and Director Hello parser (§4.2):
/// `Ping` probes, SD-calls-client lines, then the Director forms.
/// Accepted lengths: 25..=500.
pub fn parse_for_fd(payload: &[u8]) -> Result<Hello, HelloError> {
    parse_for_fd_as(payload, Dialect::V13)
}

/// [`parse_for_fd`] as a file daemon of `dialect` does it.
pub fn parse_for_fd_as(payload: &[u8], dialect: Dialect) -> Result<Hello, HelloError> {
    if payload.starts_with(b"Ping") {
        return Err(HelloError::Ping);
    }
    check_len(payload, 25, 500)?;
    if payload.starts_with(SD_CALLS_CLIENT_PREFIX) {
        let text = c_text(payload);
        return try_patterns(
            &text,
            &[(
                "Hello FD: Bacula Storage calling Start Job %s %d",
                LENIENT,
                sd_calls_client,
            )],
        )
        .ok_or_else(|| HelloError::NoMatch(first_100(payload)));
    }
    if !payload.starts_with(b"Hello") {
        return Err(HelloError::NotHello(first_100(payload)));
    }
    run(
        payload,
        dialect,
        &[
            ("Hello Director %s calling %d tlspsk=%d", STRICT, director),
            ("Hello Director %s calling %d", STRICT, director),
            ("Hello Director %s calling", STRICT, director),
            ("Hello %s calling %d tlspsk=%d", STRICT, console),
            ("Hello %s calling %d", STRICT, console),
        ],
        &[
            ("Hello Director %s calling %d", LENIENT, director),
            ("Hello Director %s calling", LENIENT, director),
            ("Hello %s calling %d", LENIENT, console),
        ],
    )
}

/// True if a storage daemon would take this first packet as a client (data
/// channel) Hello rather than a Director's (§4.3 step 2).
pub fn is_sd_client_hello(payload: &[u8]) -> bool {
    [
        &b"Hello Bacula SD: Start Job "[..],
        b"Hello FD: Bacula Storage calling Start Job ",
        b"Hello Start Job ",
    ]
    .iter()
    .any(|p| payload.starts_with(p))
}

/// A storage daemon's first-packet parser: client Hellos (§4.4) or Director
/// Hellos (§4.3), chosen by prefix like Bacula. Accepted lengths: 25..=500.
pub fn parse_for_sd(payload: &[u8]) -> Result<Hello, HelloError> {
    parse_for_sd_as(payload, Dialect::V13)
}

/// [`parse_for_sd`] as a storage daemon of `dialect` does it.
pub fn parse_for_sd_as(payload: &[u8], dialect: Dialect) -> Result<Hello, HelloError> {
    if is_sd_client_hello(payload) {
        parse_for_sd_client_as(payload, dialect)
    } else {
        parse_for_sd_director_as(payload, dialect)
    }
}

/// A storage daemon's parser for Director (and tray monitor) Hellos.
pub fn parse_for_sd_director_as(payload: &[u8], dialect: Dialect) -> Result<Hello, HelloError> {
    check_len(payload, 25, 500)?;
    run(
        payload,
        dialect,
        &[
            (
                "Hello SD: Bacula Director %s calling %d tlspsk=%d",
                STRICT,
                director_to_sd,
            ),
            (
                "Hello SD: Bacula Director %s calling %d",
                STRICT,
                director_to_sd,
            ),
            (
                "Hello SD: Bacula Director %s calling",
                STRICT,
                director_to_sd,
            ),
        ],
        &[
            (
                "Hello SD: Bacula Director %s calling %d",
                LENIENT,
                director_to_sd,
            ),
            (
                "Hello SD: Bacula Director %s calling",
                LENIENT,
                director_to_sd,
            ),
        ],
    )
}

/// A storage daemon's parser for client (FD or SD-as-client) Hellos.
pub fn parse_for_sd_client_as(payload: &[u8], dialect: Dialect) -> Result<Hello, HelloError> {
    check_len(payload, 25, 500)?;
    run(
        payload,
        dialect,
        &[
            (
                "Hello Bacula SD: Start Job %s %d %d tlspsk=%d",
                STRICT,
                fd_to_sd_two,
            ),
            ("Hello Bacula SD: Start Job %s %d %d", STRICT, fd_to_sd_two),
            (
                "Hello Bacula SD: Start Job %s %d tlspsk=%d",
                STRICT,
                fd_to_sd_one,
            ),
            ("Hello Bacula SD: Start Job %s %d", STRICT, fd_to_sd_one),
            (
                "Hello FD: Bacula Storage calling Start Job %s %d",
                STRICT,
                sd_calls_client,
            ),
            ("Hello Start Job %s", STRICT, start_job),
        ],
        &[
            ("Hello Bacula SD: Start Job %s %d %d", LENIENT, fd_to_sd_two),
            (
                "Hello FD: Bacula Storage calling Start Job %s %d",
                LENIENT,
                sd_calls_client,
            ),
            ("Hello Start Job %s", LENIENT, start_job),
        ],
    )
}

/// The `starttls tlspsk=N\n` line a 13.x auth server sends after the Hello.
pub fn starttls_line(tlspsk: u32) -> Vec<u8> {
    format!("starttls tlspsk={tlspsk}\n").into_bytes()
}

/// Parses `starttls tlspsk=%d` with the strict scanner; the number if it matches.
pub fn parse_starttls(payload: &[u8]) -> Option<u32> {
    let text = c_text(payload);
    match scan(&text, STRICT, "starttls tlspsk=%d")?.first() {
        Some(Field::Num(n)) => *n,
        _ => None,
    }
}

/// A Director's refusal of a console (also sent for failed logins).
pub const NOT_AUTHORIZED: &[u8] = b"1999 You are not authorized.\n";
/// A file daemon's refusal after a failed login.
pub const AUTHENTICATION_FAILED: &[u8] = b"2999 Authentication failed.\n";
/// A storage daemon's refusal of a Director after a failed login.
pub const NO_GO: &[u8] = b"3999 No go\n";
/// A file daemon's answer to a `Ping` probe.
pub const PING_OK: &[u8] = b"2000 Ping OK\n";
/// The second success packet a Director sends to an `fdcallsdir` FD.
pub const FDCALLSDIR_OK: &[u8] = b"OK\n";
/// The capabilities line of a community 13.x SD (sent to FDs of version >= 12, not 213/214).
pub const SDCAPS_COMMUNITY: &[u8] =
    b"sdcaps: dedup=0 hash=1 dedup_block=65536 min_dedup_block=1024 max_dedup_block=66556\n";
/// The capabilities answer of a community 13.x FD.
pub const FDCAPS_COMMUNITY: &[u8] = b"fdcaps: dedup=0 rehydration=0 proxy=0\n";

/// True if the packet is an SD's `sdcaps:` line.
pub fn is_sdcaps(payload: &[u8]) -> bool {
    payload.starts_with(b"sdcaps:")
}

/// Parses an FD's caps line like the SD (lenient `fdcaps: dedup=%ld rehydration=%ld`).
pub fn parse_fdcaps(payload: &[u8]) -> Option<(u32, u32)> {
    let text = c_text(payload);
    let f = scan(&text, LENIENT, "fdcaps: dedup=%d rehydration=%d")?;
    Some((
        num_of(f.first()).unwrap_or(0),
        num_of(f.get(1)).unwrap_or(0),
    ))
}

/// Whether a 13.x SD exchanges caps with a client of this FD version.
pub fn sd_sends_caps(fd_version: u32) -> bool {
    fd_version >= 12 && fd_version != 213 && fd_version != 214
}

/// Whether an SD sends its final line to a client of this FD version.
pub fn sd_sends_final_line(fd_version: u32) -> bool {
    fd_version >= 9 || fd_version == 5
}

/// Which failure line (or CRAM verdict) this is, if it is one.
pub fn failure_line(payload: &[u8]) -> Option<&'static str> {
    let lines: [(&[u8], &str); 4] = [
        (NOT_AUTHORIZED, "1999 You are not authorized."),
        (AUTHENTICATION_FAILED, "2999 Authentication failed."),
        (NO_GO, "3999 No go"),
        (crate::cram::AUTH_FAILED, "1999 Authorization failed."),
    ];
    let text = c_text(payload);
    let text = text.trim_end();
    lines.iter().find(|(_, t)| text == *t).map(|(_, t)| *t)
}

/// A success line an auth server sends at the end of the login (§2.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FinalLine {
    /// `1000 OK: <version> <name> Version: <text>\n` (Director).
    Director {
        /// Director version (103 / 10002).
        version: u32,
        /// Director name (sent as is).
        name: String,
        /// e.g. `13.0.3 (02 May 2023)`.
        version_text: String,
    },
    /// `2000 OK Hello <version>\n` (file daemon).
    FileDaemon {
        /// FD version (214 / 14).
        version: u32,
    },
    /// `3000 OK Hello <version>\n` (storage daemon).
    Storage {
        /// SD version (306 / 30007).
        version: u32,
    },
}

impl FinalLine {
    /// The packet payload.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            FinalLine::Director {
                version,
                name,
                version_text,
            } => format!("1000 OK: {version} {name} Version: {version_text}\n"),
            FinalLine::FileDaemon { version } => format!("2000 OK Hello {version}\n"),
            FinalLine::Storage { version } => format!("3000 OK Hello {version}\n"),
        }
        .into_bytes()
    }
}

/// A final line the auth client does not accept.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unexpected reply {0:?}")]
pub struct ReplyError(pub String);

fn reply_error(payload: &[u8]) -> ReplyError {
    ReplyError(first_100(payload))
}

fn lenient_number(payload: &[u8], format: &str) -> Option<u32> {
    let text = c_text(payload);
    scan(&text, LENIENT, format).map(|f| num_of(f.first()).unwrap_or(0))
}

/// A console's check of the Director's reply: the first 8 bytes are
/// `1000 OK:` (version from `1000 OK: %d`), or an FD-style `2000 OK Hello %d`.
/// Returns the version (0 when absent).
pub fn parse_console_reply(payload: &[u8]) -> Result<u32, ReplyError> {
    if payload.starts_with(b"1000 OK:") {
        return Ok(lenient_number(payload, "1000 OK: %d").unwrap_or(0));
    }
    lenient_number(payload, "2000 OK Hello %d").ok_or_else(|| reply_error(payload))
}

/// An `fdcallsdir` FD's check of the Director's first reply: the first 9
/// bytes are `1000 OK: ` (a second packet `OK\n` must follow).
pub fn parse_fdcallsdir_reply(payload: &[u8]) -> Result<u32, ReplyError> {
    if payload.starts_with(b"1000 OK: ") {
        Ok(lenient_number(payload, "1000 OK: %d").unwrap_or(0))
    } else {
        Err(reply_error(payload))
    }
}

/// A Director's check of an FD's reply: `2000 OK Hello` or (lenient)
/// `2000 OK Hello %d`. Returns the version (0 when absent).
pub fn parse_fd_reply(payload: &[u8]) -> Result<u32, ReplyError> {
    lenient_number(payload, "2000 OK Hello %d").ok_or_else(|| reply_error(payload))
}

/// A Director's (or client's) check of an SD's reply: `3000 OK Hello` or
/// (lenient) `3000 OK Hello %d`. Returns the version (0 when absent).
pub fn parse_sd_reply(payload: &[u8]) -> Result<u32, ReplyError> {
    lenient_number(payload, "3000 OK Hello %d").ok_or_else(|| reply_error(payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn console(name: &str, version: Option<u32>, tlspsk: Option<u32>) -> Hello {
        Hello::Console {
            name: name.into(),
            version,
            tlspsk,
        }
    }

    #[test]
    fn appendix_b_hellos() {
        let h = Hello::Director {
            name: "bacula-dir".into(),
            version: Some(DIRECTOR_VERSION_V13),
            tlspsk: Some(100),
        };
        let b = h.to_bytes();
        assert_eq!(b, b"Hello Director bacula-dir calling 10002 tlspsk=100\n");
        assert_eq!(b.len(), 0x33);
        assert_eq!(parse_for_fd(&b), Ok(h.clone()));
        assert_eq!(
            parse_for_fd_as(&b, Dialect::V96),
            Ok(h.clone().with_tlspsk(None)),
            "9.6 ignores the tlspsk suffix"
        );

        let h = console("*UserAgent*", Some(CONSOLE_VERSION_V13), Some(100));
        let b = h.to_bytes();
        assert_eq!(b, b"Hello *UserAgent* calling 200 tlspsk=100\n");
        assert_eq!(b.len(), 0x29);
        assert_eq!(parse_for_director(&b), Ok(h));

        let h = Hello::Director {
            name: "bacula-dir".into(),
            version: Some(DIRECTOR_VERSION_V96),
            tlspsk: None,
        };
        let b = h.to_bytes();
        assert_eq!(b, b"Hello Director bacula-dir calling 103\n");
        assert_eq!(b.len(), 0x26);
        assert_eq!(parse_for_fd(&b), Ok(h.clone()));
        assert_eq!(parse_for_fd_as(&b, Dialect::V96), Ok(h));

        assert_eq!(starttls_line(100), b"starttls tlspsk=100\n");
        assert_eq!(starttls_line(100).len(), 0x14);
        assert_eq!(parse_starttls(b"starttls tlspsk=100\n"), Some(100));
        assert_eq!(
            parse_starttls(b"starttls tlspsk=\n"),
            None,
            "strict: digits needed"
        );
        assert_eq!(
            parse_starttls(b"starttlstlspsk=1\n"),
            None,
            "strict: space needed"
        );
        assert_eq!(parse_starttls(b"auth cram-md5 <1.2@x> ssl=0\n"), None);
    }

    #[test]
    fn appendix_b_final_lines() {
        let cases: [(FinalLine, &[u8], usize); 5] = [
            (
                FinalLine::FileDaemon { version: 14 },
                b"2000 OK Hello 14\n",
                0x11,
            ),
            (
                FinalLine::FileDaemon { version: 214 },
                b"2000 OK Hello 214\n",
                0x12,
            ),
            (
                FinalLine::Storage { version: 30007 },
                b"3000 OK Hello 30007\n",
                0x14,
            ),
            (
                FinalLine::Storage { version: 306 },
                b"3000 OK Hello 306\n",
                0x12,
            ),
            (
                FinalLine::Director {
                    version: 10002,
                    name: "bacula-dir".into(),
                    version_text: "13.0.3 (02 May 2023)".into(),
                },
                b"1000 OK: 10002 bacula-dir Version: 13.0.3 (02 May 2023)\n",
                0x38,
            ),
        ];
        for (line, bytes, len) in cases {
            assert_eq!(line.to_bytes(), bytes);
            assert_eq!(bytes.len(), len);
        }
        assert_eq!(NOT_AUTHORIZED.len(), 0x1d);
        assert_eq!(AUTHENTICATION_FAILED.len(), 0x1c);
        assert_eq!(NO_GO.len(), 0x0b);
        assert_eq!(crate::cram::AUTH_FAILED.len(), 0x1b);

        assert_eq!(parse_fd_reply(b"2000 OK Hello 14\n"), Ok(14));
        assert_eq!(parse_fd_reply(b"2000 OK Hello 214\n"), Ok(214));
        assert_eq!(parse_fd_reply(b"2000 OK Hello"), Ok(0));
        assert_eq!(
            parse_fd_reply(b"2000 OK Hello\n"),
            Ok(0),
            "lenient: version 0"
        );
        assert!(parse_fd_reply(b"2999 Authentication failed.\n").is_err());
        assert_eq!(parse_sd_reply(b"3000 OK Hello 30007\n"), Ok(30007));
        assert_eq!(parse_sd_reply(b"3000 OK Hello"), Ok(0));
        assert!(parse_sd_reply(b"3999 No go\n").is_err());
        assert_eq!(
            parse_console_reply(b"1000 OK: 10002 bacula-dir Version: 13.0.3 (02 May 2023)\n"),
            Ok(10002)
        );
        assert_eq!(
            parse_console_reply(b"1000 OK: 103 bacula-dir Version: 9.6.7 (10 December 2020)\n"),
            Ok(103)
        );
        assert_eq!(
            parse_console_reply(b"1000 OK:x"),
            Ok(0),
            "only 8 bytes are checked"
        );
        assert_eq!(
            parse_console_reply(b"2000 OK Hello 14\n"),
            Ok(14),
            "bconsole at an FD"
        );
        assert!(parse_console_reply(NOT_AUTHORIZED).is_err());
        assert!(parse_console_reply(b"1000 OK").is_err());
        assert_eq!(
            parse_fdcallsdir_reply(b"1000 OK: 10002 d Version: x\n"),
            Ok(10002)
        );
        assert!(
            parse_fdcallsdir_reply(b"1000 OK:10002").is_err(),
            "9 bytes checked"
        );

        assert_eq!(
            failure_line(NOT_AUTHORIZED),
            Some("1999 You are not authorized.")
        );
        assert_eq!(failure_line(NO_GO), Some("3999 No go"));
        assert_eq!(
            failure_line(AUTHENTICATION_FAILED),
            Some("2999 Authentication failed.")
        );
        assert_eq!(
            failure_line(crate::cram::AUTH_FAILED),
            Some("1999 Authorization failed.")
        );
        assert_eq!(failure_line(b"1000 OK auth\n"), None);
    }

    #[test]
    fn console_hellos_both_dialects() {
        let cases = [
            (
                console("*UserAgent*", Some(100), None),
                &b"Hello *UserAgent* calling 100\n"[..],
            ),
            (
                console("admin", Some(200), Some(102)),
                b"Hello admin calling 200 tlspsk=102\n",
            ),
            (console("tray-mon", None, None), b"Hello tray-mon calling\n"),
            (
                console("tray-mon", Some(100), Some(100)),
                b"Hello tray-mon calling 100 tlspsk=100\n",
            ),
            (
                console("fd-proxy", Some(1), None),
                b"Hello fd-proxy calling 1\n",
            ),
            (
                console("fd-proxy", Some(1), Some(1)),
                b"Hello fd-proxy calling 1 tlspsk=1\n",
            ),
        ];
        for (hello, wire) in cases {
            assert_eq!(hello.to_bytes(), wire, "{hello}");
            assert_eq!(parse_for_director(wire), Ok(hello.clone()), "{hello}");
            assert_eq!(
                parse_for_director_as(wire, Dialect::V96),
                Ok(hello.clone().with_tlspsk(None)),
                "{hello}"
            );
        }
        let fdc = Hello::FdCallsDir {
            name: "my fd".into(),
            version: 1,
            tlspsk: Some(100),
        };
        assert_eq!(fdc.to_bytes(), b"Hello my\x01fd fdcallsdir 1 tlspsk=100\n");
        assert_eq!(parse_for_director(&fdc.to_bytes()), Ok(fdc.clone()));
        let no_psk = b"Hello my-fd fdcallsdir 1\n";
        assert_eq!(
            parse_for_director(no_psk),
            Ok(Hello::FdCallsDir {
                name: "my-fd".into(),
                version: 1,
                tlspsk: None
            })
        );
        assert!(
            parse_for_director_as(&fdc.to_bytes(), Dialect::V96).is_err(),
            "9.6 has no fdcallsdir"
        );
        // A tlspsk without a version is sent with version 0 so 13.x can see it.
        assert_eq!(
            console("m", None, Some(100)).to_bytes(),
            b"Hello m calling 0 tlspsk=100\n"
        );
    }

    #[test]
    fn director_length_limits() {
        assert_eq!(
            parse_for_director(b"Hello a calling"),
            Err(HelloError::TooShort { len: 15, min: 16 })
        );
        assert!(parse_for_director(b"Hello a calling\n").is_ok());
        let name = "n".repeat(143 - "Hello  calling 200 tlspsk=1\n".len());
        let line = format!("Hello {name} calling 200 tlspsk=1\n");
        assert_eq!(line.len(), 143);
        assert_eq!(
            parse_for_director(line.as_bytes()),
            Err(HelloError::TooLong { len: 143, max: 142 })
        );
        let line = format!("Hello {name} calling 200 tlspsk=\n");
        assert_eq!(line.len(), 142);
        assert!(parse_for_director(line.as_bytes()).is_ok());
        match parse_for_director(b"Goodbye you calling 1\n") {
            Err(HelloError::NoMatch(t)) => assert_eq!(t, "Goodbye you calling 1\n"),
            other => panic!("{other:?}"),
        }
        let long_garbage = vec![b'x'; 140];
        match parse_for_director(&long_garbage) {
            Err(HelloError::NoMatch(t)) => assert_eq!(t.len(), 100, "first 100 bytes"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn name_limit_is_127() {
        let ok = format!(
            "Hello Director {} calling 10002 tlspsk=100\n",
            "n".repeat(127)
        );
        assert_eq!(parse_for_fd(ok.as_bytes()).unwrap().name().len(), 127);
        let bad = format!(
            "Hello Director {} calling 10002 tlspsk=100\n",
            "n".repeat(128)
        );
        assert!(matches!(
            parse_for_fd(bad.as_bytes()),
            Err(HelloError::NoMatch(_))
        ));
        let bad = format!("Hello SD: Bacula Director {} calling 1\n", "n".repeat(128));
        assert!(matches!(
            parse_for_sd(bad.as_bytes()),
            Err(HelloError::NoMatch(_))
        ));
    }

    #[test]
    fn fd_dispatch() {
        assert_eq!(parse_for_fd(b"Ping"), Err(HelloError::Ping));
        assert_eq!(
            parse_for_fd(b"Hello Director d calling"),
            Err(HelloError::TooShort { len: 24, min: 25 })
        );
        assert_eq!(
            parse_for_fd(&vec![b'H'; 501]),
            Err(HelloError::TooLong { len: 501, max: 500 })
        );
        assert!(matches!(
            parse_for_fd(b"JobId=1 Job=x SDid=0 SDtime=0 Authorization=dummy\n"),
            Err(HelloError::NotHello(_))
        ));
        // 9.6 tray monitor form, both dialects; lenient %d with no digits.
        let mon = b"Hello Director tray-mon calling\n";
        let want = Hello::Director {
            name: "tray-mon".into(),
            version: None,
            tlspsk: None,
        };
        assert_eq!(parse_for_fd(mon), Ok(want.clone()));
        assert_eq!(parse_for_fd_as(mon, Dialect::V96), Ok(want));
        // Console-style Hello accepted by the FD (13.x strict and 9.6 lenient).
        assert_eq!(
            parse_for_fd(b"Hello remote-console calling 200 tlspsk=100\n"),
            Ok(console("remote-console", Some(200), Some(100)))
        );
        assert_eq!(
            parse_for_fd_as(b"Hello remote-console calling 100\n", Dialect::V96),
            Ok(console("remote-console", Some(100), None))
        );
        let sdc = Hello::SdCallsClient {
            job: "Backup job.2026-11-29_06.41.15_05".into(),
            sd_version: SD_VERSION_V13,
        };
        assert_eq!(
            sdc.to_bytes(),
            b"Hello FD: Bacula Storage calling Start Job Backup\x01job.2026-11-29_06.41.15_05 30007\n"
        );
        assert_eq!(parse_for_fd(&sdc.to_bytes()), Ok(sdc.clone()));
        assert_eq!(parse_for_fd_as(&sdc.to_bytes(), Dialect::V96), Ok(sdc));
    }

    #[test]
    fn sd_director_hellos() {
        let h = Hello::DirectorToSd {
            name: "bacula dir".into(),
            version: Some(10002),
            tlspsk: Some(100),
        };
        assert_eq!(
            h.to_bytes(),
            b"Hello SD: Bacula Director bacula\x01dir calling 10002 tlspsk=100\n"
        );
        assert_eq!(parse_for_sd(&h.to_bytes()), Ok(h.clone()));
        assert_eq!(
            parse_for_sd_as(&h.to_bytes(), Dialect::V96),
            Ok(h.with_tlspsk(None))
        );
        let v96 = b"Hello SD: Bacula Director bacula-dir calling 103\n";
        assert_eq!(
            parse_for_sd(v96),
            Ok(Hello::DirectorToSd {
                name: "bacula-dir".into(),
                version: Some(103),
                tlspsk: None
            })
        );
        let mon = b"Hello SD: Bacula Director mon calling\n";
        assert_eq!(
            parse_for_sd_as(mon, Dialect::V96),
            Ok(Hello::DirectorToSd {
                name: "mon".into(),
                version: None,
                tlspsk: None
            })
        );
        assert!(matches!(
            parse_for_sd(b"Hello SD: Bacula Dir x calling 1\n"),
            Err(HelloError::NoMatch(_))
        ));
        // The lenient fallback lets the name touch the keyword, like 9.6.
        assert_eq!(
            parse_for_sd_as(b"Hello SD: Bacula Directorx calling 1\n", Dialect::V96)
                .map(|h| h.name().to_string()),
            Ok("x".to_string())
        );
        assert!(matches!(
            parse_for_sd(b"Hello"),
            Err(HelloError::TooShort { len: 5, .. })
        ));
    }

    #[test]
    fn sd_client_hellos() {
        let job = "BackupData.2026-11-29_06.41.15_05";
        let fd13 = Hello::FdToSd {
            job: job.into(),
            fd_version: 14,
            sd_version: None,
            tlspsk: Some(100),
        };
        assert_eq!(
            fd13.to_bytes(),
            format!("Hello Bacula SD: Start Job {job} 14 tlspsk=100\n").as_bytes()
        );
        assert_eq!(parse_for_sd(&fd13.to_bytes()), Ok(fd13.clone()));
        // 9.6 SD: a 13.x FD Hello matches "%127s %d %d" with sd_version 0.
        assert_eq!(
            parse_for_sd_as(&fd13.to_bytes(), Dialect::V96),
            Ok(Hello::FdToSd {
                job: job.into(),
                fd_version: 14,
                sd_version: None,
                tlspsk: None
            })
        );
        let fd96 = Hello::FdToSd {
            job: job.into(),
            fd_version: 214,
            sd_version: None,
            tlspsk: None,
        };
        assert_eq!(
            fd96.to_bytes(),
            format!("Hello Bacula SD: Start Job {job} 214\n").as_bytes()
        );
        assert_eq!(parse_for_sd(&fd96.to_bytes()), Ok(fd96.clone()));
        assert_eq!(parse_for_sd_as(&fd96.to_bytes(), Dialect::V96), Ok(fd96));
        let sd13 = Hello::FdToSd {
            job: job.into(),
            fd_version: 14,
            sd_version: Some(30007),
            tlspsk: Some(2),
        };
        assert_eq!(
            sd13.to_bytes(),
            format!("Hello Bacula SD: Start Job {job} 14 30007 tlspsk=2\n").as_bytes()
        );
        assert_eq!(parse_for_sd(&sd13.to_bytes()), Ok(sd13.clone()));
        let sd96 = format!("Hello Bacula SD: Start Job {job} 214 306\n");
        assert_eq!(
            parse_for_sd_as(sd96.as_bytes(), Dialect::V96),
            Ok(Hello::FdToSd {
                job: job.into(),
                fd_version: 214,
                sd_version: Some(306),
                tlspsk: None
            })
        );
        let old = Hello::StartJob { job: job.into() };
        assert_eq!(
            old.to_bytes(),
            format!("Hello Start Job {job}\n").as_bytes()
        );
        assert_eq!(parse_for_sd(&old.to_bytes()), Ok(old.clone()));
        assert_eq!(parse_for_sd_as(&old.to_bytes(), Dialect::V96), Ok(old));
        let sdc = Hello::SdCallsClient {
            job: job.into(),
            sd_version: 30007,
        };
        assert_eq!(parse_for_sd(&sdc.to_bytes()), Ok(sdc.clone()));
        assert_eq!(
            parse_for_sd(format!("Hello Bacula SD: Start Job {job} x\n").as_bytes()),
            Ok(Hello::FdToSd {
                job: job.into(),
                fd_version: 0,
                sd_version: None,
                tlspsk: None
            }),
            "only the lenient fallback accepts a missing number"
        );
    }

    #[test]
    fn lenient_accepts_two_field_start_job() {
        let line = b"Hello Bacula SD: Start Job J 214";
        let want = Hello::FdToSd {
            job: "J".into(),
            fd_version: 214,
            sd_version: None,
            tlspsk: None,
        };
        assert_eq!(parse_for_sd_client_as(line, Dialect::V96), Ok(want.clone()));
        assert_eq!(parse_for_sd_client_as(line, Dialect::V13), Ok(want));
    }

    #[test]
    fn strict_spacing_falls_back_to_lenient() {
        // Two spaces are fine for both; no space before the version only for 9.6.
        let h = parse_for_fd(b"Hello Director  d  calling  10002  tlspsk=100\n").unwrap();
        assert_eq!(h.tlspsk(), Some(100));
        // Strict scanning ignores trailing input: `calling` alone matches.
        let h = parse_for_fd(b"Hello Director d calling10002 tlspsk=100\n").unwrap();
        assert_eq!((h.version(), h.tlspsk()), (None, None));
        // Only the lenient fallback takes a name glued to `calling`'s number.
        let h = parse_for_fd(b"Hello Director d calling 10002tlspsk=100\n").unwrap();
        assert_eq!((h.version(), h.tlspsk()), (Some(10002), None));
        let h = parse_for_sd(b"Hello Bacula SD: Start Job J 14tlspsk=100\n").unwrap();
        assert_eq!((h.version(), h.tlspsk()), (Some(14), None), "9.6 fallback");
        // A negative version does not count; `calling` alone still matches.
        let h = parse_for_fd(b"Hello Director d calling -5 tlspsk=1\n").unwrap();
        assert_eq!((h.version(), h.tlspsk()), (None, None));
    }

    #[test]
    fn names_are_bashed_and_nul_cuts() {
        let h = console("my console", Some(200), Some(100));
        let b = h.to_bytes();
        assert!(b.contains(&1));
        assert_eq!(parse_for_director(&b).unwrap().name(), "my console");
        assert_eq!(h.to_string(), "Hello my console calling 200 tlspsk=100");
        let mut with_nul = b"Hello x calling 200\0 tlspsk=100\n".to_vec();
        assert_eq!(
            parse_for_director(&with_nul),
            Ok(console("x", Some(200), None)),
            "a NUL ends the text"
        );
        with_nul.truncate(5);
        assert!(parse_for_director(&with_nul).is_err());
    }

    #[test]
    fn caps() {
        assert!(is_sdcaps(SDCAPS_COMMUNITY));
        assert_eq!(parse_fdcaps(FDCAPS_COMMUNITY), Some((0, 0)));
        assert_eq!(
            parse_fdcaps(b"fdcaps: dedup=1 rehydration=1\n"),
            Some((1, 1))
        );
        assert_eq!(parse_fdcaps(b"auth cram-md5 <1.2@x> ssl=0\n"), None);
        assert!(
            sd_sends_caps(14) && !sd_sends_caps(214) && !sd_sends_caps(213) && !sd_sends_caps(11)
        );
        assert!(sd_sends_final_line(14) && sd_sends_final_line(5) && !sd_sends_final_line(0));
    }

    #[test]
    fn garbage_never_panics() {
        let inputs: [&[u8]; 7] = [
            b"",
            b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
            b"Hello \xff\xfe\xfd calling 1 tlspsk=99999999999999999999\n",
            b"Hello Bacula SD: Start Job \xc3 1 2 tlspsk=3",
            b"Hello FD: Bacula Storage calling Start Job",
            b"Hello %s calling %d tlspsk=%d and more padding",
            b"Hello\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01",
        ];
        for i in inputs {
            let _ = parse_for_director(i);
            let _ = parse_for_fd(i);
            let _ = parse_for_sd(i);
            let _ = parse_for_sd_as(i, Dialect::V96);
            let _ = parse_starttls(i);
            let _ = parse_console_reply(i);
        }
    }
}
