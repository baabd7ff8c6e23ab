//! Names in certificates and Bacula's matching rules (protocol.md §6.3).

use std::net::IpAddr;

use openssl::nid::Nid;
use openssl::x509::{X509NameRef, X509Ref};

/// The subject as one line, `O=Example, CN=bacula-dir` (short names, in certificate order).
pub fn one_line(name: &X509NameRef) -> String {
    name.entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let val = e.data().to_string().unwrap_or_else(|_| "?".into());
            format!("{key}={val}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// All subject commonNames, in order.
pub fn common_names(cert: &X509Ref) -> Vec<String> {
    cert.subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .filter_map(|e| e.data().to_string().ok())
        .collect()
}

/// The DNS subjectAltNames.
pub fn dns_names(cert: &X509Ref) -> Vec<String> {
    cert.subject_alt_names()
        .map(|sans| {
            sans.iter()
                .filter_map(|g| g.dnsname().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The IP-address subjectAltNames.
pub fn ip_addresses(cert: &X509Ref) -> Vec<IpAddr> {
    cert.subject_alt_names()
        .map(|sans| {
            sans.iter()
                .filter_map(|g| g.ipaddress().and_then(ip_from_bytes))
                .collect()
        })
        .unwrap_or_default()
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    }
}

/// Every name a certificate could be matched by, for error messages:
/// `CN=x`, `DNS:y`, `IP:z`.
pub fn describe_names(cert: &X509Ref) -> Vec<String> {
    let mut v: Vec<String> = common_names(cert)
        .into_iter()
        .map(|c| format!("CN={c}"))
        .collect();
    v.extend(dns_names(cert).into_iter().map(|d| format!("DNS:{d}")));
    v.extend(ip_addresses(cert).into_iter().map(|i| format!("IP:{i}")));
    v
}

/// The names `TLS Allowed CN` is checked against: the first CN, then every DNS subjectAltName.
pub fn allowed_cn_candidates(cert: &X509Ref) -> Vec<String> {
    let mut v: Vec<String> = common_names(cert).into_iter().take(1).collect();
    v.extend(dns_names(cert));
    v
}

/// Whether any candidate equals any allowed entry, ASCII case-insensitively.
pub fn allowed_cn_match(candidates: &[String], allowed: &[String]) -> bool {
    candidates
        .iter()
        .any(|c| allowed.iter().any(|a| a.trim().eq_ignore_ascii_case(c)))
}

/// One name against `host` by Bacula's rule: `*.rest` matches when everything from the
/// first dot of both is equal; anything else must equal `host`; both case-insensitively.
pub fn name_matches(pattern: &str, host: &str) -> bool {
    if pattern.len() >= 2 && pattern[..2].eq_ignore_ascii_case("*.") {
        match host.find('.') {
            Some(i) => pattern[1..].eq_ignore_ascii_case(&host[i..]),
            None => false,
        }
    } else {
        pattern.eq_ignore_ascii_case(host)
    }
}

/// Bacula's host check (protocol.md §6.3): any DNS or IP subjectAltName, else any CN,
/// matches `host`. IP entries compare as addresses when `host` is an IP literal.
pub fn bacula_host_match(cert: &X509Ref, host: &str) -> bool {
    let host_ip: Option<IpAddr> = host.parse().ok();
    if dns_names(cert).iter().any(|d| name_matches(d, host)) {
        return true;
    }
    if let Some(ip) = host_ip {
        if ip_addresses(cert).contains(&ip) {
            return true;
        }
    }
    common_names(cert).iter().any(|c| name_matches(c, host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_rule() {
        assert!(name_matches("*.example.com", "a.example.com"));
        assert!(name_matches("*.Example.COM", "A.example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(name_matches("host.example.com", "HOST.example.com"));
        assert!(!name_matches("host.example.com", "host"));
    }

    #[test]
    fn allowed_cn_is_case_insensitive() {
        let c = vec!["Bacula-Dir".to_string()];
        assert!(allowed_cn_match(&c, &["bacula-dir".into()]));
        assert!(!allowed_cn_match(&c, &["bacula-fd".into()]));
        assert!(!allowed_cn_match(&[], &["bacula-fd".into()]));
    }
}
