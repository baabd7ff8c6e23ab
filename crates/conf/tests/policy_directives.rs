//! baculink's TLS policy directives (`TLS Protocol`, `TLS Cipher List`, `TLS
//! Cipher Suites`, `TLS Certificate Revocation List`, `TLS Key Passphrase
//! File`, `FIPS Require`): parsed in every resource with TLS directives, bad
//! values refused with file:line.

use std::path::PathBuf;

use baculink_conf::tls::{TlsProtocol, TlsVersion};
use baculink_conf::{ConsoleConfig, DirectorConfig, FdConfig, SdConfig, TlsSettings};

/// Which file a resource lives in.
#[derive(Clone, Copy, Debug)]
enum File {
    Dir,
    Fd,
    Sd,
    Console,
}

/// One resource with TLS directives: its file, type, name, and the config
/// text with `@X@` where the directives under test go (always on line 2).
struct Case {
    file: File,
    label: &'static str,
    name: &'static str,
    text: &'static str,
    /// Whether `FIPS Require` belongs here (the daemon's own resource, bconsole).
    fips: bool,
}

const CASES: &[Case] = &[
    Case {
        file: File::Dir,
        label: "Director",
        name: "dir",
        text: "Director { Name = dir; Password = p\n@X@\n}\n",
        fips: true,
    },
    Case {
        file: File::Dir,
        label: "Console",
        name: "con",
        text: "Console { Name = con; Password = p\n@X@\n}\nDirector { Name = dir; Password = p }\n",
        fips: false,
    },
    Case {
        file: File::Dir,
        label: "Client",
        name: "cl",
        text: "Client { Name = cl; Address = h; Password = p\n@X@\n}\nDirector { Name = dir; Password = p }\n",
        fips: false,
    },
    Case {
        file: File::Dir,
        label: "Storage",
        name: "st",
        text: "Storage { Name = st; Address = h; Password = p; Device = d; Media Type = m\n@X@\n}\n\
               Director { Name = dir; Password = p }\n",
        fips: false,
    },
    Case {
        file: File::Fd,
        label: "FileDaemon",
        name: "fd",
        text: "FileDaemon { Name = fd\n@X@\n}\nDirector { Name = dir; Password = p }\n",
        fips: true,
    },
    Case {
        file: File::Fd,
        label: "Director",
        name: "dir",
        text: "Director { Name = dir; Password = p\n@X@\n}\nFileDaemon { Name = fd }\n",
        fips: false,
    },
    Case {
        file: File::Fd,
        label: "Console",
        name: "con",
        text: "Console { Name = con; Password = p\n@X@\n}\nFileDaemon { Name = fd }\n\
               Director { Name = dir; Password = p }\n",
        fips: false,
    },
    Case {
        file: File::Sd,
        label: "Storage",
        name: "sd",
        text: "Storage { Name = sd\n@X@\n}\nDirector { Name = dir; Password = p }\n@DEV@",
        fips: true,
    },
    Case {
        file: File::Sd,
        label: "Director",
        name: "dir",
        text: "Director { Name = dir; Password = p\n@X@\n}\nStorage { Name = sd }\n@DEV@",
        fips: false,
    },
    Case {
        file: File::Console,
        label: "Director",
        name: "dir",
        text: "Director { Name = dir; Address = h; Password = p\n@X@\n}\n",
        fips: true,
    },
    Case {
        file: File::Console,
        label: "Console",
        name: "con",
        text: "Console { Name = con; Password = p\n@X@\n}\nDirector { Name = dir; Address = h; Password = p }\n",
        fips: true,
    },
];

fn file_name(f: File) -> &'static str {
    match f {
        File::Dir => "bacula-dir.conf",
        File::Fd => "bacula-fd.conf",
        File::Sd => "bacula-sd.conf",
        File::Console => "bconsole.conf",
    }
}

/// Parses the case with `extra` as its directives; the resource's settings or
/// the error text.
fn load(c: &Case, extra: &str) -> Result<TlsSettings, String> {
    let text = c.text.replace("@X@", extra).replace(
        "@DEV@",
        "Device { Name = d; Media Type = m; Archive Device = /tmp }\n",
    );
    let name = file_name(c.file);
    let pick = |rs: Vec<&dyn baculink_conf::TlsResource>| {
        rs.into_iter()
            .find(|r| r.resource_type() == c.label && r.name() == c.name)
            .map(|r| r.tls().clone())
            .unwrap_or_else(|| panic!("{} \"{}\" not found in {name}", c.label, c.name))
    };
    let e = |e: baculink_conf::ConfigError| e.to_string();
    Ok(match c.file {
        File::Dir => pick(
            DirectorConfig::parse_str(name, &text)
                .map_err(e)?
                .0
                .tls_resources(),
        ),
        File::Fd => pick(
            FdConfig::parse_str(name, &text)
                .map_err(e)?
                .0
                .tls_resources(),
        ),
        File::Sd => pick(
            SdConfig::parse_str(name, &text)
                .map_err(e)?
                .0
                .tls_resources(),
        ),
        File::Console => pick(
            ConsoleConfig::parse_str(name, &text)
                .map_err(e)?
                .0
                .tls_resources(),
        ),
    })
}

fn what(c: &Case) -> String {
    format!("{} {}", file_name(c.file), c.label)
}

#[test]
fn defaults_are_unchanged_behaviour() {
    for c in CASES {
        let t = load(c, "").unwrap_or_else(|e| panic!("{}: {e}", what(c)));
        assert_eq!(t.protocol, TlsProtocol::default());
        assert_eq!(t.protocol.min, TlsVersion::Tls12);
        assert_eq!(t.protocol.max, None);
        assert_eq!(t.cipher_list, None);
        assert_eq!(t.cipher_suites, None);
        assert_eq!(t.groups, None);
        assert_eq!(t.crl_file, None);
        assert_eq!(t.key_passphrase_file, None);
        assert!(!t.fips_require);
    }
}

#[test]
fn every_directive_parses_in_every_tls_resource() {
    let all = "TLS Protocol = \"TLSv1.2-TLSv1.3\"\n\
               TLS Cipher List = \"ECDHE+AESGCM:!aNULL\"\n\
               TLS Cipher Suites = \"TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256\"\n\
               TLS Groups = \"X25519:secp384r1\"\n\
               TLS CA Certificate File = /etc/ca.pem\n\
               TLS Certificate Revocation List = /etc/ca.crl\n\
               TLS Certificate = /etc/c.pem\n\
               TLS Key = /etc/c.key\n\
               TLS Key Passphrase File = /etc/c.pass";
    for c in CASES {
        let t = load(c, all).unwrap_or_else(|e| panic!("{}: {e}", what(c)));
        assert_eq!(
            t.protocol,
            TlsProtocol {
                min: TlsVersion::Tls12,
                max: Some(TlsVersion::Tls13)
            },
            "{}",
            what(c)
        );
        assert_eq!(t.cipher_list.as_deref(), Some("ECDHE+AESGCM:!aNULL"));
        assert_eq!(
            t.cipher_suites.as_deref(),
            Some("TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256")
        );
        assert_eq!(t.groups.as_deref(), Some("X25519:secp384r1"));
        assert_eq!(t.crl_file, Some(PathBuf::from("/etc/ca.crl")));
        assert_eq!(t.key_passphrase_file, Some(PathBuf::from("/etc/c.pass")));
        // Keywords ignore case and spaces, as every Bacula keyword does.
        let t = load(c, "tlsprotocol = tlsv1.3\nTLSCIPHERLIST = HIGH").unwrap();
        assert_eq!(t.protocol.min, TlsVersion::Tls13);
        assert_eq!(t.cipher_list.as_deref(), Some("HIGH"));
    }
}

#[test]
fn fips_require_only_in_process_wide_resources() {
    for c in CASES {
        let r = load(c, "FIPS Require = yes");
        if c.fips {
            assert!(r.unwrap().fips_require, "{}", what(c));
            assert!(!load(c, "FIPS Require = no").unwrap().fips_require);
            let e = load(c, "FIPS Require = maybe").unwrap_err();
            assert_eq!(
                e,
                format!(
                    "{}:2: directive \"FIPS Require\": expected yes or no, got \"maybe\"",
                    file_name(c.file)
                )
            );
        } else {
            let e = r.unwrap_err();
            assert!(
                e.starts_with(&format!(
                    "{}:2: directive \"FIPS Require\": not accepted in {} ",
                    file_name(c.file),
                    c.label
                )),
                "{}: {e}",
                what(c)
            );
            assert!(e.contains("process-wide"), "{e}");
        }
    }
}

#[test]
fn fips_required_over_a_config() {
    let (c, _) = FdConfig::parse_str(
        "bacula-fd.conf",
        "FileDaemon { Name = fd; FIPS Require = yes }\nDirector { Name = d; Password = p }\n",
    )
    .unwrap();
    assert!(baculink_conf::tls::fips_required(&c.tls_resources()));
    let (c, _) = FdConfig::parse_str(
        "bacula-fd.conf",
        "FileDaemon { Name = fd }\nDirector { Name = d; Password = p }\n",
    )
    .unwrap();
    assert!(!baculink_conf::tls::fips_required(&c.tls_resources()));
}

#[test]
fn protocol_syntax() {
    use TlsVersion::*;
    let ok = [
        ("TLSv1.2", Tls12, Some(Tls12)),
        ("\"TLSv1.3\"", Tls13, Some(Tls13)),
        ("tls1.2", Tls12, Some(Tls12)),
        ("1.3", Tls13, Some(Tls13)),
        ("TLSv1.2+", Tls12, None),
        ("TLSv1.3+", Tls13, None),
        ("\"min TLSv1.2\"", Tls12, None),
        ("min TLSv1.3", Tls13, None),
        ("\"max TLSv1.2\"", Tls12, Some(Tls12)),
        ("max TLSv1.3", Tls12, Some(Tls13)),
        ("TLSv1.2-TLSv1.3", Tls12, Some(Tls13)),
        ("\"TLSv1.2 - TLSv1.3\"", Tls12, Some(Tls13)),
        ("\"min TLSv1.2 max TLSv1.2\"", Tls12, Some(Tls12)),
    ];
    for c in CASES {
        for (v, min, max) in ok {
            let t = load(c, &format!("TLS Protocol = {v}"))
                .unwrap_or_else(|e| panic!("{}: {v}: {e}", what(c)));
            assert_eq!((t.protocol.min, t.protocol.max), (min, max), "{v}");
        }
    }
    let p = TlsProtocol::parse("max TLSv1.2").unwrap();
    assert!(p.allows(Tls12) && !p.allows(Tls13));
    assert_eq!(p.to_string(), "TLSv1.2");
    assert_eq!(TlsProtocol::default().to_string(), "TLSv1.2+");
    assert_eq!(
        TlsProtocol::parse("1.2-1.3").unwrap().to_string(),
        "TLSv1.2-TLSv1.3"
    );
}

#[test]
fn protocol_below_the_floor_or_garbled_is_an_error_with_file_and_line() {
    let bad = [
        ("TLSv1.1", "\"TLSv1.1\" is below the floor"),
        ("TLSv1.0", "\"TLSv1.0\" is below the floor"),
        ("TLSv1", "below the floor"),
        ("\"min TLSv1.1\"", "\"TLSv1.1\" is below the floor"),
        ("TLSv1.1+", "below the floor"),
        ("TLSv1.0-TLSv1.2", "below the floor"),
        ("SSLv3", "below the floor"),
        ("TLSv1.4", "unknown TLS version \"TLSv1.4\""),
        (
            "\"TLSv1.3-TLSv1.2\"",
            "the maximum TLSv1.2 is below the minimum TLSv1.3",
        ),
        ("\"sometimes TLSv1.2\"", "expected TLSv1.2, TLSv1.2+"),
        ("\"\"", "expected a TLS version"),
    ];
    for c in CASES {
        for (v, want) in bad {
            let e = load(c, &format!("TLS Protocol = {v}")).unwrap_err();
            let at = format!("{}:2: directive \"TLS Protocol\": ", file_name(c.file));
            assert!(e.starts_with(&at), "{}: {v}: {e}", what(c));
            assert!(e.contains(want), "{v}: {e}");
        }
        let e = load(c, "TLS Protocol = TLSv1.2\nTLS Protocol = TLSv1.3").unwrap_err();
        assert!(
            e.contains(":3: directive \"TLS Protocol\": set twice"),
            "{e}"
        );
    }
}

#[test]
fn cipher_list_and_suites_values() {
    for c in CASES {
        let e = load(c, "TLS Cipher List = \"\"").unwrap_err();
        assert!(
            e.starts_with(&format!(
                "{}:2: directive \"TLS Cipher List\": expected an OpenSSL cipher list",
                file_name(c.file)
            )),
            "{e}"
        );
        let e = load(
            c,
            "TLS Cipher Suites = \"TLS_AES_128_GCM_SHA256:ECDHE-RSA-AES128-GCM-SHA256\"",
        )
        .unwrap_err();
        assert!(
            e.starts_with(&format!(
                "{}:2: directive \"TLS Cipher Suites\": \"ECDHE-RSA-AES128-GCM-SHA256\" is not a TLS 1.3 suite",
                file_name(c.file)
            )),
            "{e}"
        );
        let e = load(c, "TLS Cipher Suites = \":\"").unwrap_err();
        assert!(e.contains("expected TLS 1.3 suites"), "{e}");
        // Spaces around the separators are dropped.
        let t = load(
            c,
            "TLS Cipher Suites = \" TLS_CHACHA20_POLY1305_SHA256 : TLS_AES_256_GCM_SHA384 \"",
        )
        .unwrap();
        assert_eq!(
            t.cipher_suites.as_deref(),
            Some("TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384")
        );
    }
}

#[test]
fn groups_values() {
    for c in CASES {
        for empty in ["\"\"", "\" : \""] {
            let e = load(c, &format!("TLS Groups = {empty}")).unwrap_err();
            assert_eq!(
                e,
                format!(
                    "{}:2: directive \"TLS Groups\": expected key exchange groups, e.g. \"X25519:secp256r1\"",
                    file_name(c.file)
                ),
                "{}",
                what(c)
            );
        }
        let e = load(c, "TLS Groups = \"X25519,secp256r1\"").unwrap_err();
        assert!(
            e.starts_with(&format!(
                "{}:2: directive \"TLS Groups\": \"X25519,secp256r1\" has ','",
                file_name(c.file)
            )),
            "{e}"
        );
        // Curves under 112 bits are refused at load, with the line.
        let e = load(c, "TLS Groups = \"X25519:?secp192r1\"").unwrap_err();
        assert_eq!(
            e,
            format!(
                "{}:2: directive \"TLS Groups\": \"secp192r1\" gives less than 112 bits of \
                 security; use X25519, secp256r1 or stronger groups",
                file_name(c.file)
            ),
            "{}",
            what(c)
        );
        // Spaces around the separators are dropped; OpenSSL 3.5's tuple syntax passes.
        let t = load(c, "TLS Groups = \" X25519 : secp256r1 \"").unwrap();
        assert_eq!(t.groups.as_deref(), Some("X25519:secp256r1"));
        let t = load(c, "tlsgroups = \"?*X25519MLKEM768 / *X25519:-ffdhe2048\"").unwrap();
        assert_eq!(
            t.groups.as_deref(),
            Some("?*X25519MLKEM768/*X25519:-ffdhe2048")
        );
    }
}

#[test]
fn psk_suites_need_sha256() {
    for c in CASES {
        // TLS PSK Enable defaults to yes: a SHA-384-only list cannot carry Bacula's PSK.
        let e = load(c, "TLS Cipher Suites = TLS_AES_256_GCM_SHA384").unwrap_err();
        assert!(
            e.starts_with(&format!(
                "{}:2: directive \"TLS Cipher Suites\": \"TLS_AES_256_GCM_SHA384\" has no SHA-256 suite",
                file_name(c.file)
            )),
            "{}: {e}",
            what(c)
        );
        assert!(e.contains("TLS PSK Enable"), "{e}");
        // Fine without PSK, or when TLS 1.3 is off anyway.
        let t = load(
            c,
            "TLS Cipher Suites = TLS_AES_256_GCM_SHA384\nTLS PSK Enable = no",
        )
        .unwrap();
        assert_eq!(t.cipher_suites.as_deref(), Some("TLS_AES_256_GCM_SHA384"));
        load(
            c,
            "TLS Cipher Suites = TLS_AES_256_GCM_SHA384\nTLS Protocol = \"max TLSv1.2\"",
        )
        .unwrap();
        load(c, "TLS Cipher Suites = TLS_CHACHA20_POLY1305_SHA256").unwrap();
    }
}

#[test]
fn crl_and_passphrase_need_their_partners() {
    for c in CASES {
        let e = load(c, "TLS Certificate Revocation List = /etc/ca.crl").unwrap_err();
        assert!(
            e.starts_with(&format!(
                "{}:2: directive \"TLS Certificate Revocation List\": set without \"TLS CA Certificate File\"",
                file_name(c.file)
            )),
            "{e}"
        );
        load(
            c,
            "TLS Certificate Revocation List = /etc/ca.crl\nTLS CA Certificate Dir = /etc/certs",
        )
        .unwrap();
        let e = load(c, "TLS Key Passphrase File = /etc/k.pass").unwrap_err();
        assert!(
            e.starts_with(&format!(
                "{}:2: directive \"TLS Key Passphrase File\": set without \"TLS Key\"",
                file_name(c.file)
            )),
            "{e}"
        );
        let e = load(
            c,
            "TLS Key = /k\nTLS Key Passphrase File = /a\nTLS Key Passphrase File = /b",
        )
        .unwrap_err();
        assert!(
            e.contains(":4: directive \"TLS Key Passphrase File\": set twice"),
            "{e}"
        );
    }
}

#[test]
fn no_warnings_for_the_new_directives() {
    let (_, w) = FdConfig::parse_str(
        "bacula-fd.conf",
        "FileDaemon { Name = fd; FIPS Require = yes; TLS Protocol = TLSv1.3 }\n\
         Director { Name = d; Password = p; TLS Cipher List = HIGH; \
         TLS Cipher Suites = TLS_AES_128_GCM_SHA256 }\n",
    )
    .unwrap();
    assert!(w.is_empty(), "{w:?}");
}
