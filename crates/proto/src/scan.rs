//! The two text scanners Bacula parses protocol lines with (protocol.md §1.8).
//!
//! * lenient (9.6 and most 13.x parsers): a format space skips zero or more
//!   whitespace, `%d` accepts zero digits (value 0), `%s` may be empty;
//! * strict (13.x Hello parsers): a format space needs at least one
//!   whitespace, `%d` needs a digit, `%s` needs a character.
//!
//! Both ignore input after the end of the format.

/// Payload bytes as text, cut at the first NUL like Bacula's C parsers.
pub fn c_text(payload: &[u8]) -> String {
    let end = payload
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(payload.len());
    String::from_utf8_lossy(&payload[..end]).into_owned()
}

/// A cursor over one line of text.
#[derive(Clone, Debug)]
pub struct Scanner<'a> {
    rest: &'a str,
    strict: bool,
}

impl<'a> Scanner<'a> {
    /// Bacula's `bsscanf` rules.
    pub fn lenient(text: &'a str) -> Self {
        Scanner {
            rest: text,
            strict: false,
        }
    }

    /// Bacula 13's `scan_string` rules.
    pub fn strict(text: &'a str) -> Self {
        Scanner {
            rest: text,
            strict: true,
        }
    }

    /// What is left.
    pub fn rest(&self) -> &'a str {
        self.rest
    }

    /// A format space: skips whitespace; strict mode needs at least one.
    pub fn ws(&mut self) -> bool {
        let trimmed = self
            .rest
            .trim_start_matches(|c: char| c.is_ascii_whitespace());
        let skipped = trimmed.len() != self.rest.len();
        self.rest = trimmed;
        skipped || !self.strict
    }

    /// A literal; spaces in it follow the [`ws`](Self::ws) rule.
    pub fn lit(&mut self, pattern: &str) -> Option<()> {
        for (i, part) in pattern.split(' ').enumerate() {
            if i > 0 && !self.ws() {
                return None;
            }
            self.rest = self.rest.strip_prefix(part)?;
        }
        Some(())
    }

    /// `%Ns`: up to `max` non-whitespace characters (bytes, like C).
    pub fn word(&mut self, max: usize) -> Option<&'a str> {
        let mut end = self
            .rest
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(self.rest.len());
        if end > max {
            end = max;
            while !self.rest.is_char_boundary(end) {
                end -= 1;
            }
        }
        if end == 0 && self.strict {
            return None;
        }
        let (w, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(w)
    }

    /// `%d`: an optional `-` and digits; lenient mode yields 0 for no digits.
    pub fn int(&mut self) -> Option<i64> {
        let mut s = self.rest;
        let neg = if let Some(r) = s.strip_prefix('-') {
            s = r;
            true
        } else {
            false
        };
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 && self.strict {
            return None;
        }
        let mut v: i64 = 0;
        for b in s[..digits].bytes() {
            v = v.saturating_mul(10).saturating_add(i64::from(b - b'0'));
        }
        self.rest = &s[digits..];
        Some(if neg { -v } else { v })
    }

    /// `%d` as an unsigned 32-bit value (negative or huge values are refused).
    pub fn uint(&mut self) -> Option<u32> {
        self.int().and_then(|v| u32::try_from(v).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_accepts_missing_number() {
        let mut s = Scanner::lenient("Hello Bacula SD: Start Job J 214\n");
        s.lit("Hello Bacula SD: Start Job ").unwrap();
        assert_eq!(s.word(127), Some("J"));
        assert!(s.ws());
        assert_eq!(s.int(), Some(214));
        assert!(s.ws());
        assert_eq!(s.int(), Some(0), "9.6 parses a missing %d as 0");
    }

    #[test]
    fn strict_needs_digits_and_space() {
        let mut s = Scanner::strict("calling tlspsk=1");
        s.lit("calling").unwrap();
        assert!(s.ws());
        assert_eq!(s.int(), None);
        let mut s = Scanner::strict("callingX");
        assert!(s.lit("calling x").is_none());
        let mut s = Scanner::lenient("abc");
        assert_eq!(s.word(2), Some("ab"));
    }
}
