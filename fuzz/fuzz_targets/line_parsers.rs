//! Every text parser a peer can reach before or during login: Hello lines
//! for each daemon in both dialects, `starttls`, CRAM-MD5 challenges, final
//! replies. None may panic; accepted Hellos must format back to a line the
//! same parser accepts.
#![no_main]

use baculink_proto::cram;
use baculink_proto::hello;
use baculink_proto::negotiate::Dialect;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for dialect in [Dialect::V96, Dialect::V13] {
        for parse in [hello::parse_for_director_as, hello::parse_for_fd_as, hello::parse_for_sd_as] {
            if let Ok(h) = parse(data, dialect) {
                // Our own formatting of an accepted Hello must parse back to
                // the same Hello, unless it falls outside the length limits
                // (the input may have carried trailing bytes after a NUL).
                match parse(&h.to_bytes(), dialect) {
                    Ok(again) => assert_eq!(again, h, "Hello does not round-trip"),
                    Err(hello::HelloError::TooShort { .. } | hello::HelloError::TooLong { .. }) => {}
                    Err(e) => panic!("formatted Hello {h:?} does not parse back: {e}"),
                }
            }
        }
    }
    let _ = hello::parse_starttls(data);
    let _ = hello::parse_console_reply(data);
    let _ = hello::parse_fd_reply(data);
    let _ = hello::parse_sd_reply(data);
    let _ = hello::failure_line(data);
    if let Ok(c) = cram::parse_challenge(data) {
        let key = baculink_proto::Secret::from_password("fuzz");
        let r = cram::response(&key, &c);
        assert_eq!(r.last(), Some(&0));
    }
});
