//! A byte string that must never be printed or kept in memory after use.

use zeroize::Zeroizing;

/// Secret key material (a CRAM-MD5 / TLS-PSK key, a job session key).
///
/// `Debug` prints a placeholder, never the bytes; memory is wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps raw key bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(Zeroizing::new(bytes.into()))
    }

    /// The key Bacula derives from a configured `Password`: the 32 lowercase
    /// hexadecimal characters of MD5(password), as ASCII bytes.
    pub fn from_password(password: &str) -> Self {
        use md5::{Digest, Md5};
        let digest = Md5::digest(password.as_bytes());
        let mut hex = Vec::with_capacity(32);
        for b in digest {
            hex.push(HEX[(b >> 4) as usize]);
            hex.push(HEX[(b & 0xf) as usize]);
        }
        Secret::new(hex)
    }

    /// The key bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_key_is_md5_hex() {
        assert_eq!(
            Secret::from_password("secret").expose(),
            b"5ebe2294ecd0e0f08eab7690d2a6ee69"
        );
        assert_eq!(
            Secret::from_password("console-pass-13").expose(),
            b"36f427d88615202418101ffe7756f485"
        );
    }

    #[test]
    fn debug_redacts() {
        let s = Secret::from_password("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s:?}").contains(std::str::from_utf8(s.expose()).unwrap()));
    }
}
