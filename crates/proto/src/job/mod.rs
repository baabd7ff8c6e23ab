//! Wire formats after login, for jobs (protocol-jobs.md §5-8): sans-IO
//! parsers and formatters shared by the Director, File daemon and Storage
//! daemon.
//!
//! * [`attr`]: stream ids, file types, the attribute record and its encoded
//!   stat ("LStat"), record stream headers, the FD's end-of-job line.
//! * [`catreq`]: Storage daemon -> Director catalog requests (`CatReq`,
//!   `UpdCat`, `Jmsg`, `Status`, `3099`) and the Director's replies (`OK_media`).
//! * [`sdcmd`]: Director -> Storage daemon job commands (job line, `use
//!   storage/device`, bootstrap) and the FD <-> SD session lines.

pub mod attr;
pub mod catreq;
pub mod sdcmd;
