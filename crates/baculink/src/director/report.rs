//! Text formats the Director prints: times, sizes with thousands
//! separators and units, job status words, and the end-of-job report.

use std::time::{SystemTime, UNIX_EPOCH};

const MON: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Seconds since the epoch now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Broken-down UTC time: (year, month 1-12, day, hour, minute, second).
pub fn civil(t: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, secs / 3600, (secs / 60) % 60, secs % 60)
}

/// `YYYY-MM-DD HH:MM:SS` (catalog listings).
pub fn iso_time(t: i64) -> String {
    if t <= 0 {
        return String::new();
    }
    let (y, m, d, h, mi, s) = civil(t);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

/// `DD-Mon-YYYY HH:MM:SS` (job reports).
pub fn long_time(t: i64) -> String {
    let (y, m, d, h, mi, s) = civil(t);
    format!(
        "{d:02}-{}-{y:04} {h:02}:{mi:02}:{s:02}",
        MON[(m - 1) as usize]
    )
}

/// `DD-Mon-YY HH:MM` (status listings).
pub fn short_time(t: i64) -> String {
    let (y, m, d, h, mi, _) = civil(t);
    format!(
        "{d:02}-{}-{:02} {h:02}:{mi:02}",
        MON[(m - 1) as usize],
        y % 100
    )
}

/// `DD-Mon HH:MM` (the prefix of job messages).
pub fn msg_time(t: i64) -> String {
    let (_, m, d, h, mi, _) = civil(t);
    format!("{d:02}-{} {h:02}:{mi:02}", MON[(m - 1) as usize])
}

/// The unique-job-name stamp `YYYY-MM-DD_HH.MM.SS`.
pub fn job_name_time(t: i64) -> String {
    let (y, m, d, h, mi, s) = civil(t);
    format!("{y:04}-{m:02}-{d:02}_{h:02}.{mi:02}.{s:02}")
}

/// `1234567` -> `1,234,567`.
pub fn commas(v: u64) -> String {
    let rev: Vec<char> = v.to_string().chars().rev().collect();
    let groups: Vec<String> = rev.chunks(3).map(|g| g.iter().rev().collect()).collect();
    groups.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// `223931` -> `223.9 KB` (decimal units, as Bacula's reports).
pub fn units(v: u64) -> String {
    const U: [&str; 7] = ["", "K", "M", "G", "T", "P", "E"];
    let mut f = v as f64;
    let mut i = 0;
    while f >= 1000.0 && i < U.len() - 1 {
        f /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{v} B")
    } else {
        format!("{f:.1} {}B", U[i])
    }
}

/// Short size for status tables: `223.9 K`.
pub fn short_units(v: u64) -> String {
    let s = units(v);
    s.strip_suffix('B').unwrap_or(&s).trim_end().to_string()
}

/// `Full`, `Incremental`, ... for a level letter.
pub fn level_name(level: char) -> &'static str {
    match level {
        'F' => "Full",
        'I' => "Incremental",
        'D' => "Differential",
        'B' => "Base",
        'f' => "VirtualFull",
        _ => "",
    }
}

/// A level word from a config or command (`full`, `Incremental`) as a letter.
pub fn level_letter(word: &str) -> Option<char> {
    match word.to_ascii_lowercase().as_str() {
        "full" | "f" => Some('F'),
        "incremental" | "incr" | "i" => Some('I'),
        "differential" | "diff" | "d" => Some('D'),
        "base" => Some('B'),
        _ => None,
    }
}

/// Short status word of status tables (`OK`, `Error`, `Cancel`, ...).
pub fn status_word(status: char) -> &'static str {
    match status {
        'T' => "OK",
        'W' => "OK -- with warnings",
        'E' | 'f' => "Error",
        'A' => "Cancel",
        'I' => "Incomplete",
        'R' => "Running",
        'C' => "Created",
        'D' => "Diffs",
        _ => "Other",
    }
}

/// What a running/queued status letter means (`status dir`, `.jobprogress`).
pub fn status_text(status: char) -> &'static str {
    match status {
        'C' => "is waiting execution",
        'R' => "is running",
        'F' => "is waiting for the File daemon",
        'S' => "is waiting for the Storage daemon",
        'm' => "is waiting for new media",
        'M' => "is waiting for a mount request",
        'd' => "is waiting on the max Director jobs",
        'j' => "is waiting on the max Job jobs",
        'c' => "is waiting on the max Client jobs",
        's' => "is waiting on the max Storage jobs",
        'a' => "SD despooling Attributes",
        'T' => "terminated normally",
        'W' => "terminated with warnings",
        'E' => "terminated in error",
        'f' => "had a fatal error",
        'A' => "has been canceled",
        _ => "is in an unknown state",
    }
}

/// Job status precedence (protocol-jobs.md §8.4): a new status replaces
/// the current one only if its rank is higher, or both ranks are 0.
pub fn status_rank(s: char) -> u8 {
    match s {
        'I' => 10,
        'E' | 'f' | 'A' => 9,
        'e' => 8,
        'D' => 7,
        _ => 0,
    }
}

/// Applies [`status_rank`] to a status update.
pub fn merge_status(current: char, new: char) -> char {
    let (a, b) = (status_rank(current), status_rank(new));
    if b > a || (a == 0 && b == 0) {
        new
    } else {
        current
    }
}

/// Seconds as `1 hour 2 mins 3 secs`.
pub fn elapsed(secs: i64) -> String {
    let secs = secs.max(0);
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let mut out = Vec::new();
    if h > 0 {
        out.push(format!("{h} hour{}", if h == 1 { "" } else { "s" }));
    }
    if m > 0 {
        out.push(format!("{m} min{}", if m == 1 { "" } else { "s" }));
    }
    if s > 0 || out.is_empty() {
        out.push(format!("{s} sec{}", if s == 1 { "" } else { "s" }));
    }
    out.join(" ")
}

/// Bytes per second as `112.0 KB/s`.
pub fn rate(bytes: u64, secs: i64) -> String {
    let r = if secs > 0 { bytes / secs as u64 } else { bytes };
    format!("{:.1} KB/s", r as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let t = 1_795_934_644; // 2026-11-29 06:44:04 UTC
        assert_eq!(iso_time(t), "2026-11-29 06:44:04");
        assert_eq!(long_time(t), "29-Nov-2026 06:44:04");
        assert_eq!(short_time(t), "29-Nov-26 06:44");
        assert_eq!(msg_time(t), "29-Nov 06:44");
        assert_eq!(job_name_time(t), "2026-11-29_06.44.04");
        assert_eq!(iso_time(0), "");
    }

    #[test]
    fn sizes_and_words() {
        assert_eq!(commas(223_931), "223,931");
        assert_eq!(commas(1), "1");
        assert_eq!(commas(1_000_000), "1,000,000");
        assert_eq!(units(223_931), "223.9 KB");
        assert_eq!(units(12), "12 B");
        assert_eq!(short_units(223_931), "223.9 K");
        assert_eq!(elapsed(3723), "1 hour 2 mins 3 secs");
        assert_eq!(elapsed(0), "0 secs");
        assert_eq!(level_letter("Full"), Some('F'));
        assert_eq!(merge_status('R', 'T'), 'T');
        assert_eq!(merge_status('E', 'T'), 'E');
        assert_eq!(merge_status('e', 'A'), 'A');
        assert_eq!(merge_status('A', 'E'), 'A');
    }
}
