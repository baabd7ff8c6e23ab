//! The config parser (lexer, resources, typed configs, TLS validation) fed
//! arbitrary text. `@` is replaced first: includes read files and `@|cmd`
//! runs commands, which a fuzzer must never do.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text: String = String::from_utf8_lossy(data).replace('@', "#");
    if let Ok((conf, _warnings)) = baculink_conf::parse_any("fuzz.conf", &text) {
        let _ = conf.validate_tls();
        let _ = format!("{conf:?}");
    }
});
