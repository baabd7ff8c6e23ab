//! Bacula's base64 variant (no crate implements it).
//!
//! Standard alphabet, no padding. In Bacula's form (`compatible = false`, what
//! goes on the wire) each input byte is sign-extended into the accumulator and
//! the last partial group is not shifted left; `compatible = true` equals RFC
//! 4648 base64 without padding. protocol.md §3.5.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Encodes `data`; `compatible` selects the standard variant.
pub fn encode(data: &[u8], compatible: bool) -> String {
    let mut acc: u32 = 0;
    let mut have: u32 = 0;
    let mut out = String::with_capacity(data.len() * 4 / 3 + 2);
    let mut bytes = data.iter();
    let mut pending = data.len();
    while pending > 0 {
        if have < 6 {
            let b = *bytes.next().expect("pending counts remaining bytes");
            pending -= 1;
            acc <<= 8;
            acc |= if compatible || b < 0x80 {
                u32::from(b)
            } else {
                0xFFFF_FF00 | u32::from(b)
            };
            have += 8;
        }
        out.push(ALPHABET[((acc >> (have - 6)) & 0x3f) as usize] as char);
        have -= 6;
    }
    if have > 0 {
        let m = acc & ((1 << have) - 1);
        let idx = if compatible {
            (m << (6 - have)) & 0x3f
        } else {
            m
        };
        out.push(ALPHABET[idx as usize] as char);
    }
    out
}

/// Encodes a number the way Bacula writes numbers in attribute records:
/// base64 digits of the value, most significant first, `-` prefix if negative.
pub fn encode_i64(value: i64) -> String {
    let mut v = value.unsigned_abs();
    let mut digits = Vec::new();
    loop {
        digits.push(ALPHABET[(v & 0x3f) as usize]);
        v >>= 6;
        if v == 0 {
            break;
        }
    }
    let mut s = String::with_capacity(digits.len() + 1);
    if value < 0 {
        s.push('-');
    }
    s.extend(digits.iter().rev().map(|&b| b as char));
    s
}

/// Decodes a number written by [`encode_i64`]; `None` if a digit is invalid.
pub fn decode_i64(text: &str) -> Option<i64> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let mut v: i64 = 0;
    for c in digits.bytes() {
        let d = ALPHABET.iter().position(|&a| a == c)? as i64;
        v = v.checked_mul(64)?.checked_add(d)?;
    }
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn raw_vectors_of_protocol_md() {
        let cases = [
            (
                "000102030405060708090a0b0c0d0e0f",
                "AAECAwQFBgcICQoLDA0ODD",
                "AAECAwQFBgcICQoLDA0ODw",
            ),
            (
                "ffffffffffffffffffffffffffffffff",
                "/////////////////////D",
                "/////////////////////w",
            ),
            ("80007ffe", "gAB//C", "gAB//g"),
            ("fbffbf", "+/+/", "+/+/"),
            ("616263", "YWJj", "YWJj"),
            ("0102", "AQC", "AQI"),
            ("", "", ""),
        ];
        for (input, bacula, standard) in cases {
            assert_eq!(encode(&hex(input), false), bacula, "bacula {input}");
            assert_eq!(encode(&hex(input), true), standard, "standard {input}");
        }
    }

    #[test]
    fn numbers_round_trip() {
        for v in [0i64, 1, 63, 64, 4095, 1 << 40, -5, i64::MAX] {
            assert_eq!(decode_i64(&encode_i64(v)), Some(v));
        }
        assert_eq!(encode_i64(0), "A");
        assert_eq!(encode_i64(64), "BA");
        assert_eq!(decode_i64("?"), None);
    }
}
