//! CRAM-MD5 as Bacula does it (protocol.md §3): a challenge line
//! `auth cram-md5 <R.T@host> ssl=N\n`, a response of Bacula-base64(HMAC-MD5)
//! plus a NUL byte, and the verdict `1000 OK auth\n`.

use hmac::{Hmac, Mac};
use md5::Md5;
use subtle::ConstantTimeEq;

use crate::base64;
use crate::negotiate::Need;
use crate::scan::Scanner;
use crate::Secret;

/// The verdict a challenger sends when the response was right.
pub const AUTH_OK: &[u8] = b"1000 OK auth\n";
/// The verdict a challenger sends when the response was wrong.
pub const AUTH_FAILED: &[u8] = b"1999 Authorization failed.\n";
/// Challenge packets this long or longer are refused unread (Bacula's limit).
pub const MAX_CHALLENGE: usize = 500;

/// A parsed challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The token including angle brackets, e.g. `<1804289383.1700000000@bacula-dir>`.
    pub token: String,
    /// The challenger's certificate-TLS need (`ssl=`), if present.
    pub ssl: Option<Need>,
    /// `auth cram-md5c`: respond with standard base64.
    pub compatible: bool,
}

/// Errors parsing a challenge.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CramError {
    /// The packet was 500 bytes or longer.
    #[error("CRAM-MD5 challenge of {0} bytes is too long")]
    TooLong(usize),
    /// The packet is not a challenge.
    #[error("not a CRAM-MD5 challenge: {0:?}")]
    NotAChallenge(String),
}

/// Builds a challenge token `<R.T@host>`; whitespace in `host` becomes `_`
/// (a real Bacula responder stops the token at a space).
pub fn token(random: u32, time: u64, host: &str) -> String {
    let host: String = host
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect();
    format!("<{}.{}@{}>", random & 0x7fff_ffff, time, host)
}

/// The challenge packet payload for `token` with our certificate-TLS need.
pub fn challenge_line(token: &str, ssl: Need) -> Vec<u8> {
    format!("auth cram-md5 {token} ssl={}\n", ssl.wire()).into_bytes()
}

/// Parses a challenge packet with Bacula's lenient scanner, in Bacula's order.
pub fn parse_challenge(payload: &[u8]) -> Result<Challenge, CramError> {
    if payload.len() >= MAX_CHALLENGE {
        return Err(CramError::TooLong(payload.len()));
    }
    let text = crate::scan::c_text(payload);
    for (prefix, compatible) in [("auth cram-md5c", true), ("auth cram-md5", false)] {
        let mut s = Scanner::lenient(&text);
        if s.lit(prefix).is_some() && s.ws() {
            if let Some(tok) = s.word(1000) {
                let mut with_ssl = s.clone();
                if with_ssl.ws() && with_ssl.lit("ssl=").is_some() {
                    if let Some(n) = with_ssl.int() {
                        return Ok(Challenge {
                            token: tok.to_string(),
                            ssl: Some(Need::from_wire(n.max(0) as u32)),
                            compatible,
                        });
                    }
                }
                if !compatible {
                    // `auth cram-md5 %s\n`: the newline in the format needs whitespace.
                    return Ok(Challenge {
                        token: tok.to_string(),
                        ssl: None,
                        compatible,
                    });
                }
            }
        }
    }
    Err(CramError::NotAChallenge(text.chars().take(100).collect()))
}

fn hmac(key: &Secret, token: &str) -> [u8; 16] {
    let mut mac =
        <Hmac<Md5> as Mac>::new_from_slice(key.expose()).expect("HMAC takes any key length");
    mac.update(token.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The response packet payload: base64 of HMAC-MD5(key, token) and a NUL.
pub fn response(key: &Secret, challenge: &Challenge) -> Vec<u8> {
    let mut out = base64::encode(&hmac(key, &challenge.token), challenge.compatible).into_bytes();
    out.push(0);
    out
}

/// Verifies a response in constant time. The auth server (first challenger)
/// accepts both encodings like Bacula; the auth client accepts only Bacula's.
pub fn verify(key: &Secret, token: &str, received: &[u8], accept_standard: bool) -> bool {
    let end = received
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(received.len());
    let got = &received[..end];
    let mac = hmac(key, token);
    let bacula = base64::encode(&mac, false);
    let mut ok = got.ct_eq(bacula.as_bytes());
    if accept_standard {
        ok |= got.ct_eq(base64::encode(&mac, true).as_bytes());
    }
    ok.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chal(token: &str) -> Challenge {
        Challenge {
            token: token.into(),
            ssl: Some(Need::None),
            compatible: false,
        }
    }

    #[test]
    fn protocol_md_vectors() {
        let cases = [
            (
                "<1804289383.1700000000@bacula-dir>",
                Secret::from_password("secret"),
                "Q4+IMD4EFSQeon+Dn8+AJA",
                "QYCIMD4EFSQeonCDnc+AJA",
            ),
            (
                "<846930886.1234567890@myhost-fd>",
                Secret::from_password("xevrjURYoCHhn26RaJoWbeWXEY/a3VqGKp/37tgWiuHc"),
                "1AkDy6+X75/av4Q2oi+vKA",
                "1AkDyKeX7ZXav4Q2oiCvKA",
            ),
            (
                "<1681692777.1600000000@localhost-sd>",
                Secret::new(&b"ABCD-EFGH-IJKL-MNOP-ABCD-EFGH-IJKL-MNOP"[..]),
                "z4/Rb3/DB5wb85/2e7+5FB",
                "zYfRb3rDBZwb8pn2ebC5FQ",
            ),
            (
                "<1714636915.1700000123@bacula-dir>",
                Secret::from_password("console-pass"),
                "Yy+WQ+ADl5/e/5/HGkYkMC",
                "Yy+WQOADlZXe/JLHGkYkMg",
            ),
            (
                "<1357823160.1795934472@test13-dir>",
                Secret::from_password("console-pass-13"),
                "W6+kE9/06W+tpC+Cx5+h/A",
                "",
            ),
            (
                "<1498138207.1795934472@bconsole>",
                Secret::from_password("console-pass-13"),
                "FV4trBgIa9cXY08sRF4Q7D",
                "",
            ),
            (
                "<1817518659.1795934474@test13-fd>",
                Secret::from_password("fd-pass-13"),
                "l9sd/7Irt6Zy9A/ChX/OQD",
                "",
            ),
            (
                "<1769615143.1795934474@test13-dir>",
                Secret::from_password("fd-pass-13"),
                "zHlt65/p4h+2j8Bsv/+jyB",
                "",
            ),
        ];
        for (token, key, bacula, standard) in cases {
            let mut expect = bacula.as_bytes().to_vec();
            expect.push(0);
            assert_eq!(response(&key, &chal(token)), expect, "{token}");
            assert!(verify(&key, token, &expect, false));
            assert!(
                verify(&key, token, bacula.as_bytes(), false),
                "NUL optional"
            );
            if !standard.is_empty() {
                assert!(verify(&key, token, standard.as_bytes(), true));
                assert!(!verify(&key, token, standard.as_bytes(), false));
            }
            assert!(!verify(
                &Secret::from_password("wrong"),
                token,
                &expect,
                true
            ));
        }
    }

    #[test]
    fn trailing_newline_fails() {
        let key = Secret::from_password("secret");
        let t = "<1804289383.1700000000@bacula-dir>";
        assert!(!verify(&key, t, b"Q4+IMD4EFSQeon+Dn8+AJA\n", true));
    }

    #[test]
    fn challenge_round_trip() {
        let t = token(1804289383, 1700000000, "bacula dir");
        assert_eq!(t, "<1804289383.1700000000@bacula_dir>");
        let line = challenge_line(&t, Need::Required);
        assert_eq!(
            line,
            b"auth cram-md5 <1804289383.1700000000@bacula_dir> ssl=2\n"
        );
        let c = parse_challenge(&line).unwrap();
        assert_eq!(
            c,
            Challenge {
                token: t,
                ssl: Some(Need::Required),
                compatible: false
            }
        );
    }

    #[test]
    fn challenge_variants() {
        let c = parse_challenge(b"auth cram-md5c <1.2@x> ssl=1\n").unwrap();
        assert!(c.compatible);
        assert_eq!(c.ssl, Some(Need::Ok));
        let c = parse_challenge(b"auth cram-md5 <1.2@x>\n").unwrap();
        assert_eq!(c.ssl, None);
        assert!(parse_challenge(b"1999 You are not authorized.\n").is_err());
        assert!(parse_challenge(b"starttls tlspsk=100\n").is_err());
        assert_eq!(parse_challenge(&[b'a'; 500]), Err(CramError::TooLong(500)));
    }
}
