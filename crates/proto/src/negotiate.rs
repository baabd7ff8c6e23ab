//! TLS requirement negotiation, both dialects.
//!
//! Bacula 9.6 exchanges one certificate-TLS need per side (`ssl=N` in the
//! CRAM-MD5 challenge) and decides after CRAM. Bacula 13.x adds a PSK need and
//! sends both as `tlspsk = T + 100 * P` in the Hello and in `starttls`.
//!
//! Our decision equals Bacula 13.0.3's wherever a real Bacula peer completes a
//! connection, and is stricter in the cells where 13.0.3's own check lets a
//! side that *requires* TLS continue in clear text (protocol.md §5.4): we
//! refuse any clear-text outcome when either side requires TLS.

use std::fmt;

/// One side's need for a kind of TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Need {
    /// Cannot do it (0).
    None = 0,
    /// Can do it, not required (1).
    Ok = 1,
    /// Required (2).
    Required = 2,
}

impl Need {
    /// Decodes a wire digit; values above 2 are treated as "required", like Bacula.
    pub fn from_wire(n: u32) -> Need {
        match n {
            0 => Need::None,
            1 => Need::Ok,
            _ => Need::Required,
        }
    }

    /// The wire digit.
    pub fn wire(self) -> u32 {
        self as u32
    }

    fn word(self) -> &'static str {
        match self {
            Need::None => "none",
            Need::Ok => "optional",
            Need::Required => "required",
        }
    }
}

/// A side's needs: certificate TLS (`T`) and TLS-PSK (`P`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Needs {
    /// Certificate TLS need (`T`, also sent as `ssl=T`).
    pub cert: Need,
    /// TLS-PSK need (`P`; always `None` for a 9.6 peer).
    pub psk: Need,
}

impl Needs {
    /// No TLS of any kind.
    pub const NONE: Needs = Needs {
        cert: Need::None,
        psk: Need::None,
    };

    /// Builds needs from the two digits.
    pub fn new(cert: Need, psk: Need) -> Needs {
        Needs { cert, psk }
    }

    /// The 13.x `tlspsk` number: `T + 100 * P`.
    pub fn tlspsk(self) -> u32 {
        self.cert.wire() + 100 * self.psk.wire()
    }

    /// Decodes a 13.x `tlspsk` number (`T = n % 100`, `P = n / 100`).
    pub fn from_tlspsk(n: u32) -> Needs {
        Needs {
            cert: Need::from_wire(n % 100),
            psk: Need::from_wire(n / 100),
        }
    }

    /// True if either kind is required.
    pub fn requires_any(self) -> bool {
        self.cert == Need::Required || self.psk == Need::Required
    }
}

impl fmt::Display for Needs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "certificate TLS {}, TLS-PSK {}",
            self.cert.word(),
            self.psk.word()
        )
    }
}

/// The protocol generation a peer speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Bacula 9.6: `ssl=N` in CRAM lines, TLS after CRAM, no PSK.
    V96,
    /// Bacula 13.x: `tlspsk=N` in the Hello, early `starttls`, PSK.
    V13,
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dialect::V96 => "9.6",
            Dialect::V13 => "13.x",
        })
    }
}

/// How a connection is protected once the login succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// No TLS.
    Clear,
    /// Certificate-based TLS.
    Tls,
    /// TLS with a pre-shared key derived from the shared password.
    Psk,
}

impl Mode {
    /// `clear`, `tls` or `psk` (the names `probe --json` prints).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Clear => "clear",
            Mode::Tls => "tls",
            Mode::Psk => "psk",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which side fell short of the other's TLS requirement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// We cannot do what the peer requires.
    Local,
    /// The peer does not offer what we require.
    Remote,
    /// Each side requires something the other cannot do.
    Both,
}

/// A TLS policy mismatch: the connection must not continue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct PolicyMismatch {
    /// Who fell short.
    pub fault: Fault,
    /// What we offered / required.
    pub local: Needs,
    /// What the peer offered / required.
    pub remote: Needs,
}

impl PolicyMismatch {
    fn describe(&self) -> String {
        let what = match self.fault {
            Fault::Remote => "the peer did not offer the TLS we require",
            Fault::Local => "the peer requires TLS we do not offer",
            Fault::Both => "each side requires TLS the other does not offer",
        };
        format!(
            "TLS policy mismatch: {what} (we: {}; peer: {}); \
             change TLS Enable / TLS Require / TLS PSK Enable on one side",
            self.local, self.remote
        )
    }
}

/// The 13.x decision (also used against 9.6 peers, whose PSK need is `None`).
///
/// Certificate TLS wins when both sides can do it, then PSK, else clear text;
/// clear text is refused whenever either side requires TLS.
pub fn decide(local: Needs, remote: Needs) -> Result<Mode, PolicyMismatch> {
    let mode = if local.cert >= Need::Ok && remote.cert >= Need::Ok {
        Mode::Tls
    } else if local.psk >= Need::Ok && remote.psk >= Need::Ok {
        Mode::Psk
    } else {
        Mode::Clear
    };
    if mode == Mode::Clear {
        let fault = match (local.requires_any(), remote.requires_any()) {
            (true, true) => Some(Fault::Both),
            (true, false) => Some(Fault::Remote),
            (false, true) => Some(Fault::Local),
            (false, false) => None,
        };
        if let Some(fault) = fault {
            return Err(PolicyMismatch {
                fault,
                local,
                remote,
            });
        }
    }
    Ok(mode)
}

/// The 9.6 decision over the two `ssl=` values: TLS if both can, clear if
/// neither requires, else refused.
pub fn decide_v96(local: Need, remote: Need) -> Result<Mode, PolicyMismatch> {
    decide(
        Needs::new(local, Need::None),
        Needs::new(remote, Need::None),
    )
}

/// Whether a 13.x auth server sends `starttls` after the Hello: when the two
/// sides share a TLS capability (certificate or PSK).
pub fn wants_starttls(local: Needs, remote: Needs) -> bool {
    (local.cert >= Need::Ok && remote.cert >= Need::Ok)
        || (local.psk >= Need::Ok && remote.psk >= Need::Ok)
}

/// A side's TLS settings, as far as negotiation cares (from one config resource).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// `TLS Enable`.
    pub enable: bool,
    /// `TLS Require`.
    pub require: bool,
    /// `TLS Authenticate`: TLS only for the login, dropped afterwards.
    pub authenticate: bool,
    /// `TLS PSK Enable` (Bacula 13's default is yes).
    pub psk_enable: bool,
    /// Whether this resource has certificate material to do certificate TLS.
    pub has_cert_material: bool,
}

impl Policy {
    /// The 13.x needs (protocol.md §5.3 and §8.4): `TLS Require` means
    /// certificate TLS required when certificate material is configured, and
    /// PSK required when PSK is enabled.
    pub fn needs(&self) -> Needs {
        let enable = self.enable || (self.require && self.has_cert_material);
        let cert = match (enable, self.require) {
            (false, _) => Need::None,
            (true, false) => Need::Ok,
            (true, true) => Need::Required,
        };
        let psk = match (self.psk_enable, self.require) {
            (false, _) => Need::None,
            (true, false) => Need::Ok,
            (true, true) => Need::Required,
        };
        Needs { cert, psk }
    }

    /// The 9.6 need: Enable gives 1, Require or Authenticate gives 2 (9.6
    /// turns `TLS Require` into `TLS Enable` whenever TLS is built in).
    pub fn need_v96(&self) -> Need {
        if self.authenticate || self.require {
            Need::Required
        } else if self.enable {
            Need::Ok
        } else {
            Need::None
        }
    }
}
