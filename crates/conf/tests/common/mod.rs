//! Shared helpers for the tests that read what Debian's Bacula packages installed.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Bacula packages whose files these tests read.
pub const PACKAGES: &[&str] = &[
    "bacula-common",
    "bacula-director",
    "bacula-fd",
    "bacula-sd",
    "bacula-console",
];

/// The files a Debian package installed (`dpkg -L`), or None if it is not installed.
pub fn package_files(package: &str) -> Option<Vec<PathBuf>> {
    let out = Command::new("dpkg").arg("-L").arg(package).output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(PathBuf::from)
            .collect(),
    )
}

/// Every file of the Bacula packages; None (after reporting) when one is missing.
///
/// A missing package fails the test with what to do, unless
/// `BACULINK_ALLOW_SKIP=1` is set: then it prints `SKIP` and the test returns.
pub fn bacula_files() -> Option<Vec<PathBuf>> {
    let mut all = Vec::new();
    for p in PACKAGES {
        match package_files(p) {
            Some(files) => all.extend(files),
            None => {
                skip_or_fail(&format!("Debian package {p} is not installed"));
                return None;
            }
        }
    }
    Some(all)
}

/// Panics with how to get the missing piece, or prints SKIP when allowed.
pub fn skip_or_fail(what: &str) {
    if std::env::var("BACULINK_ALLOW_SKIP").as_deref() == Ok("1") {
        eprintln!("SKIP: {what}");
        return;
    }
    panic!(
        "{what}; run scripts/test.sh, which installs Bacula's Debian packages and the \
         tools these tests need, or set BACULINK_ALLOW_SKIP=1 to skip"
    );
}

/// The shared interop folder beside the checkout.
pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/interop")
}

/// The installed file whose path ends with `suffix`.
pub fn find<'a>(files: &'a [PathBuf], suffix: &str) -> &'a Path {
    files
        .iter()
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("no installed file ends with {suffix}"))
}
