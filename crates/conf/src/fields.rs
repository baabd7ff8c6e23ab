//! Typed reading of one resource's directives, shared by every daemon's types.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use baculink_proto::Secret;

use crate::ast::{Directive, Item, Items, Resource};
use crate::error::{ConfigError, Location, Warning, WarningKind};
use crate::messages::Messages;
use crate::tls::{
    is_sha256_suite, split_suites, TlsProtocol, TlsResource, TlsSettings, TlsVersion,
};
use crate::value;

/// Normalized keys of every TLS directive (protocol.md §8.3); accepted in
/// every resource that has TLS settings.
pub(crate) const TLS_KEYS: &[&str] = &[
    "tlsenable",
    "tlsrequire",
    "tlsauthenticate",
    "tlsverifypeer",
    "tlspskenable",
    "tlsallowedcn",
    "tlscacertificatefile",
    "tlscacertificatedir",
    "tlscertificate",
    "tlskey",
    "tlsdhfile",
    // baculink's policy directives (README "TLS policy directives").
    "tlsprotocol",
    "tlscipherlist",
    "tlsciphersuites",
    "tlsgroups",
    "tlscertificaterevocationlist",
    "tlskeypassphrasefile",
];

/// `FIPS Require`: process-wide, so accepted only where a resource's known
/// list names it (the daemon's own resource, bconsole's resources).
pub(crate) const FIPS_KEY: &str = "fipsrequire";

/// Reads typed values out of one resource; errors name the directive.
pub(crate) struct Reader<'a> {
    pub res: &'a Resource,
    /// How messages name the resource type, e.g. `Client`.
    pub label: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(res: &'a Resource, label: &'static str) -> Self {
        Reader { res, label }
    }

    /// `Client "bacula-fd"`, for messages.
    pub fn describe(&self) -> String {
        format!("{} \"{}\"", self.label, self.res.name)
    }

    fn all(&self, keys: &[&str]) -> Vec<&'a Directive> {
        self.res
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Directive(d) if keys.contains(&d.key.as_str()) => Some(d),
                _ => None,
            })
            .collect()
    }

    /// The only directive with one of these keys; a second one is an error
    /// (Bacula refuses to redefine string, path and password directives).
    fn single(&self, keys: &[&str]) -> Result<Option<&'a Directive>, ConfigError> {
        let all = self.all(keys);
        if let [first, second, ..] = all.as_slice() {
            return Err(ConfigError::value(
                &second.at,
                &second.keyword,
                format!(
                    "set twice in {} (first at line {})",
                    self.describe(),
                    first.at.line
                ),
            ));
        }
        Ok(all.first().copied())
    }

    /// The last directive with one of these keys (for booleans and numbers).
    fn last(&self, keys: &[&str]) -> Option<&'a Directive> {
        self.all(keys).pop()
    }

    fn text_of(d: &'a Directive) -> Result<&'a str, ConfigError> {
        d.value()
            .ok_or_else(|| ConfigError::value(&d.at, &d.keyword, "expected a value"))
    }

    /// The resource's `Name`, required and checked.
    pub fn name(&self) -> Result<String, ConfigError> {
        let d = self.single(&["name"])?.ok_or_else(|| {
            ConfigError::resource(
                &self.res.at,
                format!(
                    "{} resource has no \"Name\" directive (it is required)",
                    self.label
                ),
            )
        })?;
        let n = Self::text_of(d)?;
        value::check_name(n).map_err(|m| ConfigError::value(&d.at, &d.keyword, m))?;
        Ok(n.to_string())
    }

    /// A string directive.
    pub fn string(&self, keys: &[&str]) -> Result<Option<String>, ConfigError> {
        self.single(keys)?
            .map(|d| Self::text_of(d).map(str::to_string))
            .transpose()
    }

    /// A required string directive; `shown` is how messages name it.
    pub fn required_string(&self, keys: &[&str], shown: &str) -> Result<String, ConfigError> {
        self.string(keys)?.ok_or_else(|| self.missing(shown))
    }

    /// A reference to another resource (a checked name).
    pub fn name_ref(&self, keys: &[&str]) -> Result<Option<String>, ConfigError> {
        let Some(d) = self.single(keys)? else {
            return Ok(None);
        };
        let n = Self::text_of(d)?;
        value::check_name(n).map_err(|m| ConfigError::value(&d.at, &d.keyword, m))?;
        Ok(Some(n.to_string()))
    }

    /// A path directive, shell-expanded.
    pub fn path(&self, keys: &[&str]) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self.string(keys)?.map(|s| value::expand_path(&s)))
    }

    /// A boolean (last one wins).
    pub fn bool(&self, keys: &[&str], default: bool) -> Result<bool, ConfigError> {
        let Some(d) = self.last(keys) else {
            return Ok(default);
        };
        let s = Self::text_of(d)?;
        value::parse_bool(s).ok_or_else(|| {
            ConfigError::value(
                &d.at,
                &d.keyword,
                format!("expected yes or no, got \"{s}\""),
            )
        })
    }

    /// A non-negative integer (last one wins).
    pub fn u32(&self, keys: &[&str], default: u32) -> Result<u32, ConfigError> {
        let Some(d) = self.last(keys) else {
            return Ok(default);
        };
        value::parse_u32(Self::text_of(d)?).map_err(|m| ConfigError::value(&d.at, &d.keyword, m))
    }

    /// An optional non-negative integer.
    pub fn opt_u32(&self, keys: &[&str]) -> Result<Option<u32>, ConfigError> {
        match self.last(keys) {
            None => Ok(None),
            Some(_) => self.u32(keys, 0).map(Some),
        }
    }

    /// A TCP port (last one wins).
    pub fn port(&self, keys: &[&str], default: u16) -> Result<u16, ConfigError> {
        let Some(d) = self.last(keys) else {
            return Ok(default);
        };
        value::parse_port(Self::text_of(d)?).map_err(|m| ConfigError::value(&d.at, &d.keyword, m))
    }

    /// A time; the `number unit` pairs of the value add up (`1 hour 30 min`).
    pub fn time(&self, keys: &[&str], default: Duration) -> Result<Duration, ConfigError> {
        let Some(d) = self.last(keys) else {
            return Ok(default);
        };
        let words = d.words();
        if words.is_empty() {
            return Err(ConfigError::value(&d.at, &d.keyword, "expected a value"));
        }
        value::parse_time(&words.join(" "))
            .map(Duration::from_secs)
            .map_err(|m| ConfigError::value(&d.at, &d.keyword, m))
    }

    /// A list: comma-separated on one line, and every repetition accumulates.
    pub fn list(&self, keys: &[&str]) -> Result<Vec<String>, ConfigError> {
        let mut out = Vec::new();
        for d in self.all(keys) {
            let items = d.list();
            if items.is_empty() {
                return Err(ConfigError::value(&d.at, &d.keyword, "expected a value"));
            }
            out.extend(items.into_iter().map(str::to_string));
        }
        Ok(out)
    }

    /// A password, as its `Secret` (never as text).
    pub fn password(&self, keys: &[&str]) -> Result<Option<Secret>, ConfigError> {
        let Some(d) = self.single(keys)? else {
            return Ok(None);
        };
        d.secret
            .clone()
            .map(Some)
            .ok_or_else(|| ConfigError::value(&d.at, &d.keyword, "expected a value"))
    }

    /// A required password.
    pub fn required_password(&self, keys: &[&str]) -> Result<Secret, ConfigError> {
        self.password(keys)?.ok_or_else(|| self.missing("Password"))
    }

    /// Every TLS directive (protocol.md §8.3), with Bacula's defaults.
    pub fn tls(&self) -> Result<TlsSettings, ConfigError> {
        let d = TlsSettings::default();
        Ok(TlsSettings {
            enable: self.bool(&["tlsenable"], d.enable)?,
            require: self.bool(&["tlsrequire"], d.require)?,
            authenticate: self.bool(&["tlsauthenticate"], d.authenticate)?,
            verify_peer: self.bool(&["tlsverifypeer"], d.verify_peer)?,
            psk_enable: self.bool(&["tlspskenable"], d.psk_enable)?,
            allowed_cn: self.list(&["tlsallowedcn"])?,
            ca_file: self.path(&["tlscacertificatefile"])?,
            ca_dir: self.path(&["tlscacertificatedir"])?,
            certificate: self.path(&["tlscertificate"])?,
            key: self.path(&["tlskey"])?,
            dh_file: self.path(&["tlsdhfile"])?,
            protocol: self.tls_protocol()?,
            cipher_list: self.tls_cipher_list()?,
            cipher_suites: None,
            groups: self.tls_groups()?,
            crl_file: self.path(&["tlscertificaterevocationlist"])?,
            key_passphrase_file: self.path(&["tlskeypassphrasefile"])?,
            fips_require: self.bool(&[FIPS_KEY], d.fips_require)?,
        })
        .and_then(|t| self.tls_policy_checks(t))
    }

    /// `TLS Protocol`: a version range with TLS 1.2 as the floor.
    fn tls_protocol(&self) -> Result<TlsProtocol, ConfigError> {
        let Some(d) = self.single(&["tlsprotocol"])? else {
            return Ok(TlsProtocol::default());
        };
        let words = d.words();
        if words.is_empty() {
            return Err(ConfigError::value(&d.at, &d.keyword, "expected a value"));
        }
        TlsProtocol::parse(&words.join(" ")).map_err(|m| ConfigError::value(&d.at, &d.keyword, m))
    }

    /// `TLS Cipher List`: one OpenSSL cipher string (what it enables is
    /// checked when the TLS context is built).
    fn tls_cipher_list(&self) -> Result<Option<String>, ConfigError> {
        let Some(d) = self.single(&["tlscipherlist"])? else {
            return Ok(None);
        };
        let v = Self::text_of(d)?.trim();
        if v.is_empty() {
            return Err(ConfigError::value(
                &d.at,
                &d.keyword,
                "expected an OpenSSL cipher list, e.g. \"ECDHE+AESGCM\"",
            ));
        }
        Ok(Some(v.to_string()))
    }

    /// `TLS Groups`: an OpenSSL groups list such as `X25519:secp256r1` (which
    /// names the library knows is checked when the TLS context is built).
    fn tls_groups(&self) -> Result<Option<String>, ConfigError> {
        let Some(d) = self.single(&["tlsgroups"])? else {
            return Ok(None);
        };
        // Group names have no spaces: any around the separators are dropped.
        let v: String = Self::text_of(d)?
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let bad = |m: String| Err(ConfigError::value(&d.at, &d.keyword, m));
        if v.split([':', '/']).all(str::is_empty) {
            return bad("expected key exchange groups, e.g. \"X25519:secp256r1\"".into());
        }
        // OpenSSL's syntax: names joined by ':' (and, from 3.5, '/' between
        // preference tuples), each perhaps prefixed by '?', '*' or '-'.
        if let Some(c) = v
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "_-:/*?".contains(*c)))
        {
            return bad(format!(
                "\"{v}\" has '{c}', which no group list has: give group names joined by ':', \
                 e.g. \"X25519:secp256r1\""
            ));
        }
        if let Some(weak) = crate::tls::weak_group(&v) {
            return bad(crate::tls::weak_group_reason(weak));
        }
        Ok(Some(v))
    }

    /// `TLS Cipher Suites`, and the rules that need the other directives:
    /// with TLS-PSK on and TLS 1.3 allowed, a SHA-256 suite must remain
    /// (protocol.md §7); a passphrase file needs a key; a CRL needs a CA.
    fn tls_policy_checks(&self, mut t: TlsSettings) -> Result<TlsSettings, ConfigError> {
        if let Some(d) = self.single(&["tlsciphersuites"])? {
            let v = Self::text_of(d)?.trim();
            let bad = |m: String| Err(ConfigError::value(&d.at, &d.keyword, m));
            let suites: Vec<&str> = split_suites(v).collect();
            if suites.is_empty() {
                return bad("expected TLS 1.3 suites, e.g. \"TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256\"".into());
            }
            if let Some(x) = suites.iter().find(|x| {
                !x.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("tls_"))
                    || !x.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            }) {
                return bad(format!(
                    "\"{x}\" is not a TLS 1.3 suite name (they look like TLS_AES_128_GCM_SHA256; \
                     TLS <= 1.2 suites belong in \"TLS Cipher List\")"
                ));
            }
            if t.psk_enable
                && t.protocol.allows(TlsVersion::Tls13)
                && !suites.iter().any(|x| is_sha256_suite(x))
            {
                return bad(format!(
                    "\"{v}\" has no SHA-256 suite, but TLS-PSK (TLS PSK Enable, default yes) \
                     needs one: TLS 1.3 external PSKs with Bacula are bound to SHA-256; add \
                     TLS_AES_128_GCM_SHA256 or TLS_CHACHA20_POLY1305_SHA256, or set \
                     TLS PSK Enable = no"
                ));
            }
            t.cipher_suites = Some(suites.join(":"));
        }
        if t.key_passphrase_file.is_some() && t.key.is_none() {
            let d = self.single(&["tlskeypassphrasefile"])?.expect("present");
            return Err(ConfigError::value(
                &d.at,
                &d.keyword,
                format!("set without \"TLS Key\" in {}", self.describe()),
            ));
        }
        if t.crl_file.is_some() && t.ca_file.is_none() && t.ca_dir.is_none() {
            let d = self
                .single(&["tlscertificaterevocationlist"])?
                .expect("present");
            return Err(ConfigError::value(
                &d.at,
                &d.keyword,
                format!(
                    "set without \"TLS CA Certificate File\" or \"TLS CA Certificate Dir\" \
                     in {}: a CRL is checked against the CA that verifies peers",
                    self.describe()
                ),
            ));
        }
        Ok(t)
    }

    /// The error for a missing required directive.
    pub fn missing(&self, shown: &str) -> ConfigError {
        ConfigError::resource(
            &self.res.at,
            format!(
                "{}: required directive \"{shown}\" is missing",
                self.describe()
            ),
        )
    }

    /// Warnings for directives and blocks not in `known` (nor Name,
    /// Description, nor, when `with_tls`, a TLS directive). A block written
    /// where a known directive belongs is an error.
    pub fn unknown(
        &self,
        known: &[&str],
        with_tls: bool,
        out: &mut Vec<Warning>,
    ) -> Result<(), ConfigError> {
        for item in &self.res.items {
            let (key, keyword, at) = match item {
                Item::Directive(d) => (&d.key, &d.keyword, &d.at),
                Item::Block(b) => (&b.key, &b.keyword, &b.at),
            };
            if key == FIPS_KEY && !known.contains(&FIPS_KEY) {
                return Err(ConfigError::value(
                    at,
                    keyword,
                    format!(
                        "not accepted in {}: FIPS mode is process-wide, so set it in the \
                         daemon's own resource (Director in bacula-dir.conf, FileDaemon in \
                         bacula-fd.conf, Storage in bacula-sd.conf) or in bconsole.conf",
                        self.describe()
                    ),
                ));
            }
            let ok = matches!(key.as_str(), "name" | "description")
                || known.contains(&key.as_str())
                || (with_tls && TLS_KEYS.contains(&key.as_str()));
            if ok && matches!(item, Item::Block(_)) && !key.ends_with("addresses") {
                return Err(ConfigError::value(
                    at,
                    keyword,
                    format!(
                        "expected \"=\" and a value, not a block, in {}",
                        self.describe()
                    ),
                ));
            }
            if !ok {
                out.push(Warning {
                    at: at.clone(),
                    kind: WarningKind::UnknownDirective,
                    resource: self.describe(),
                    directive: Some(keyword.clone()),
                });
            }
        }
        Ok(())
    }
}

/// Rejects a second resource of the same type and name.
#[derive(Default)]
pub(crate) struct Names {
    seen: HashMap<(&'static str, String), Location>,
}

impl Names {
    pub fn add(
        &mut self,
        label: &'static str,
        name: &str,
        at: &Location,
    ) -> Result<(), ConfigError> {
        if let Some(first) = self.seen.get(&(label, name.to_string())) {
            return Err(ConfigError::resource(
                at,
                format!("{label} \"{name}\" is defined twice (first at {first})"),
            ));
        }
        self.seen.insert((label, name.to_string()), at.clone());
        Ok(())
    }

    /// Appends `item` to `list` once its name is new for its type.
    pub fn keep<T: Typed>(&mut self, list: &mut Vec<T>, item: T) -> Result<(), ConfigError> {
        let (name, at) = item.name_at();
        self.add(item.label(), name, at)?;
        list.push(item);
        Ok(())
    }
}

/// What [`Names`] needs to know of a typed resource.
pub(crate) trait Typed {
    /// Its type as messages name it (`Director`, `Autochanger`, ...).
    fn label(&self) -> &'static str;
    /// Its name and where it starts.
    fn name_at(&self) -> (&str, &Location);
}

impl<T: TlsResource> Typed for T {
    fn label(&self) -> &'static str {
        self.resource_type()
    }
    fn name_at(&self) -> (&str, &Location) {
        (self.name(), self.location())
    }
}

impl Typed for Messages {
    fn label(&self) -> &'static str {
        "Messages"
    }
    fn name_at(&self) -> (&str, &Location) {
        (&self.name, &self.at)
    }
}

/// The warning for a resource type the daemon does not know.
pub(crate) fn unknown_resource(res: &Resource) -> Warning {
    Warning {
        at: res.at.clone(),
        kind: WarningKind::UnknownResource,
        resource: res.kind.clone(),
        directive: None,
    }
}

/// Checks that a resource named by `directive` exists.
pub(crate) fn check_ref(
    res: &Resource,
    key: &str,
    target_label: &str,
    exists: impl Fn(&str) -> bool,
) -> Result<(), ConfigError> {
    for d in res.directives(key) {
        for name in d.list() {
            if !exists(name) {
                return Err(ConfigError::value(
                    &d.at,
                    &d.keyword,
                    format!("{target_label} resource \"{name}\" is not defined"),
                ));
            }
        }
    }
    Ok(())
}

/// Listening addresses from a `DirAddresses`/`FDAddresses`/`SDAddresses` block.
pub(crate) fn addresses(
    reader: &Reader<'_>,
    key: &str,
) -> Result<Vec<crate::ListenAddress>, ConfigError> {
    use crate::{AddressFamily, ListenAddress};
    if let Some(d) = reader.res.directive(key) {
        return Err(ConfigError::value(
            &d.at,
            &d.keyword,
            "expected a block: { ip = { addr = ...; port = ... } }",
        ));
    }
    let mut out = Vec::new();
    for block in reader.res.blocks(key) {
        for item in &block.items {
            let Item::Block(b) = item else {
                let Item::Directive(d) = item else {
                    unreachable!()
                };
                return Err(ConfigError::value(
                    &d.at,
                    &d.keyword,
                    format!(
                        "expected ip, ipv4 or ipv6 blocks inside \"{}\"",
                        block.keyword
                    ),
                ));
            };
            let family = match b.key.as_str() {
                "ip" => AddressFamily::Any,
                "ipv4" => AddressFamily::V4,
                "ipv6" => AddressFamily::V6,
                _ => {
                    return Err(ConfigError::value(
                        &b.at,
                        &b.keyword,
                        "expected ip, ipv4 or ipv6",
                    ))
                }
            };
            let mut host = None;
            let mut port = None;
            for inner in &b.items {
                let Item::Directive(d) = inner else {
                    let Item::Block(x) = inner else {
                        unreachable!()
                    };
                    return Err(ConfigError::value(&x.at, &x.keyword, "unexpected block"));
                };
                let v = Reader::text_of(d)?;
                match d.key.as_str() {
                    "addr" => host = Some(v.to_string()),
                    "port" => {
                        port = Some(
                            value::parse_port(v)
                                .map_err(|m| ConfigError::value(&d.at, &d.keyword, m))?,
                        )
                    }
                    _ => {
                        return Err(ConfigError::value(
                            &d.at,
                            &d.keyword,
                            "expected addr or port",
                        ))
                    }
                }
            }
            out.push(ListenAddress { family, host, port });
        }
    }
    Ok(out)
}
