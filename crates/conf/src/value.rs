//! Scalar value syntax: booleans, times, integers, ports, names, paths (§8.1).

use std::path::PathBuf;

/// `yes`/`no`/`true`/`false`, any case.
pub fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("yes") || s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("no") || s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Time units in Bacula's matching order: the written unit is matched as a
/// case-insensitive prefix of each name in turn, so `m` means months and
/// `n`/`min` mean minutes.
const TIME_UNITS: &[(&str, u64)] = &[
    ("n", 60),
    ("seconds", 1),
    ("months", 30 * 86_400),
    ("minutes", 60),
    ("mins", 60),
    ("hours", 3_600),
    ("days", 86_400),
    ("weeks", 7 * 86_400),
    ("quarters", 91 * 86_400),
    ("years", 365 * 86_400),
];

/// A time in seconds: `number [unit]` pairs that add up (`1 hour 30 min`,
/// `2d`, `90`); no unit means seconds. Fractions are allowed (`1.5 hours`).
pub fn parse_time(s: &str) -> Result<u64, String> {
    let bad = || format!("expected a time like \"30 min\" or \"2 days\", got \"{s}\"");
    let b = s.as_bytes();
    let mut i = 0;
    let mut total = 0f64;
    let mut any = false;
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b',') {
            i += 1;
        }
        if i == b.len() {
            break;
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        let num: f64 = s[start..i].parse().map_err(|_| bad())?;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let ustart = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[ustart..i];
        let mult = if unit.is_empty() {
            1
        } else {
            let u = unit.to_ascii_lowercase();
            TIME_UNITS
                .iter()
                .find(|(name, _)| name.starts_with(&u))
                .map(|&(_, m)| m)
                .ok_or_else(|| format!("unknown time unit \"{unit}\" in \"{s}\""))?
        };
        total += num * mult as f64;
        any = true;
    }
    if !any || !total.is_finite() || total > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(total as u64)
}

/// A non-negative integer that fits in `u32`.
pub fn parse_u32(s: &str) -> Result<u32, String> {
    if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) {
        if let Ok(n) = s.parse() {
            return Ok(n);
        }
    }
    Err(format!("expected a non-negative integer, got \"{s}\""))
}

/// A TCP port, 1-65535.
pub fn parse_port(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 && s.bytes().all(|c| c.is_ascii_digit()) => Ok(p),
        _ => Err(format!("expected a port number (1-65535), got \"{s}\"")),
    }
}

/// Longest resource name Bacula accepts, in bytes.
pub const MAX_NAME_LEN: usize = 127;

/// Checks a resource name: 1-127 bytes of letters, digits, `: . - _` and
/// space (non-ASCII letters are let through).
pub fn check_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("the name is empty".into());
    }
    if s.len() > MAX_NAME_LEN {
        return Err(format!(
            "the name is {} bytes long (at most {MAX_NAME_LEN})",
            s.len()
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|&c| !(c.is_alphanumeric() || matches!(c, ':' | '.' | '-' | '_' | ' ')))
    {
        return Err(format!("illegal character {c:?} in name \"{s}\""));
    }
    Ok(())
}

/// Shell-like expansion of path values: a leading `~` (alone or before `/`)
/// becomes `$HOME`, `$VAR` and `${VAR}` become the variable's value (empty if
/// unset). A value starting with `|` (a command) is left alone.
pub fn expand_path(s: &str) -> PathBuf {
    if s.starts_with('|') {
        return PathBuf::from(s);
    }
    let mut out = String::new();
    let mut rest = s;
    if rest == "~" || rest.starts_with("~/") {
        out.push_str(&std::env::var("HOME").unwrap_or_default());
        rest = &rest[1..];
    }
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let after = &rest[i + 1..];
        let (name, used) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        if name.is_empty() {
            out.push('$');
            continue;
        }
        out.push_str(&std::env::var(name).unwrap_or_default());
        for _ in 0..after[..used].chars().count() {
            chars.next();
        }
    }
    PathBuf::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans() {
        for s in ["yes", "YES", "True", "true"] {
            assert_eq!(parse_bool(s), Some(true), "{s}");
        }
        for s in ["no", "No", "FALSE", "false"] {
            assert_eq!(parse_bool(s), Some(false), "{s}");
        }
        for s in ["maybe", "1", "0", "y", ""] {
            assert_eq!(parse_bool(s), None, "{s}");
        }
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("90"), Ok(90));
        assert_eq!(parse_time("5 min"), Ok(300));
        assert_eq!(parse_time("5min"), Ok(300));
        assert_eq!(parse_time("3 n"), Ok(180));
        assert_eq!(parse_time("1 m"), Ok(30 * 86_400), "m is months");
        assert_eq!(parse_time("2 months"), Ok(60 * 86_400));
        assert_eq!(parse_time("1 minutes"), Ok(60));
        assert_eq!(parse_time("1 mins"), Ok(60));
        assert_eq!(parse_time("10 s"), Ok(10));
        assert_eq!(parse_time("10 sec"), Ok(10));
        assert_eq!(parse_time("2 h"), Ok(7200));
        assert_eq!(parse_time("1 Day"), Ok(86_400));
        assert_eq!(parse_time("1 week"), Ok(604_800));
        assert_eq!(parse_time("1 q"), Ok(91 * 86_400));
        assert_eq!(parse_time("1 year"), Ok(365 * 86_400));
        assert_eq!(parse_time("1 hour 30 mins"), Ok(5400));
        assert_eq!(parse_time("1h30n"), Ok(5400));
        assert_eq!(parse_time("1.5 hours"), Ok(5400));
        assert_eq!(parse_time("60 days"), Ok(60 * 86_400));
        assert!(parse_time("").is_err());
        assert!(parse_time("soon").is_err());
        assert!(parse_time("5 fortnights")
            .unwrap_err()
            .contains("fortnights"));
        assert!(parse_time("-5").is_err());
    }

    #[test]
    fn ints_and_ports() {
        assert_eq!(parse_u32("20"), Ok(20));
        assert!(parse_u32("-1").is_err());
        assert!(parse_u32("4294967296").is_err());
        assert!(parse_u32("2x").is_err());
        assert_eq!(parse_port("9101"), Ok(9101));
        assert!(parse_port("0").is_err());
        assert!(parse_port("65536").is_err());
        assert!(parse_port("+80").is_err());
        assert!(parse_port("http").is_err());
    }

    #[test]
    fn names() {
        assert!(check_name("bacula-dir").is_ok());
        assert!(check_name("Full Set").is_ok());
        assert!(check_name("a:b.c_d").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name(&"x".repeat(128)).is_err());
        assert!(check_name(&"x".repeat(127)).is_ok());
    }

    #[test]
    fn path_expansion() {
        std::env::set_var("BACULINK_CONF_TEST_DIR", "/srv/x");
        assert_eq!(
            expand_path("$BACULINK_CONF_TEST_DIR/ca.pem"),
            PathBuf::from("/srv/x/ca.pem")
        );
        assert_eq!(
            expand_path("${BACULINK_CONF_TEST_DIR}y"),
            PathBuf::from("/srv/xy")
        );
        assert_eq!(expand_path("/a/b$"), PathBuf::from("/a/b$"));
        assert_eq!(expand_path("|cat x"), PathBuf::from("|cat x"));
        let home = std::env::var("HOME").unwrap_or_default();
        assert_eq!(
            expand_path("~/k.pem"),
            PathBuf::from(format!("{home}/k.pem"))
        );
        assert_eq!(expand_path("/plain/path"), PathBuf::from("/plain/path"));
    }
}
