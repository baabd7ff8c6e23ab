//! Hello lines, `starttls` and final lines of every pairing (protocol.md §4).
//! (Being written.)

/// A parsed or to-be-sent Hello line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hello {
    /// `Hello <name> calling <version>[ tlspsk=N]` (console, tray monitor, FD console mode).
    Console {
        /// Console name (`*UserAgent*` for the default console).
        name: String,
        /// Sender's version (100 for 9.6 bconsole, 200 for 13.x).
        version: Option<u32>,
        /// 13.x combined need, `None` when absent (9.6).
        tlspsk: Option<u32>,
    },
}
