//! The harness serves the PKI's directory, over ldap and ldaps, checked with OpenLDAP's own
//! ldapsearch so a harness bug cannot hide behind a client bug.

use std::process::Command;
use std::time::SystemTime;

use super::*;

fn ldapsearch(url: &str, ca: Option<&str>, filter: &str) -> (bool, String) {
    let mut cmd = Command::new("ldapsearch");
    cmd.args([
        "-x",
        "-LLL",
        "-H",
        url,
        "-b",
        VZD_BASE_DN,
        filter,
        "mail",
        "komLeData",
    ]);
    if let Some(ca) = ca {
        cmd.env("LDAPTLS_CACERT", ca);
    }
    let out = cmd.output().expect("ldapsearch installed");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn serves_pki_entries_over_ldap_and_ldaps_and_stops() {
    let pki = TestPki::generate(SystemTime::now()).expect("pki");
    let mut slapd = Slapd::start_with_pki(&pki, true).expect("slapd starts");
    let (ok, out) = ldapsearch(slapd.url(), None, "(mail=single@komle.test)");
    assert!(ok);
    assert!(out.contains("mail: single@komle.test"));
    assert!(out.contains("komLeData: 1.0,single@komle.test"));

    let dir = tempfile::tempdir().expect("tmp");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pki.ca.cert_pem()).expect("write");
    let ldaps = slapd.ldaps_url().expect("ldaps").to_owned();
    let (ok, out) = ldapsearch(
        &ldaps,
        Some(&ca.to_string_lossy()),
        "(mail=oldnew@komle.test)",
    );
    assert!(ok, "ldaps search failed");
    assert!(out.contains("mail: oldnew@komle.test"));

    let url = slapd.url().to_owned();
    slapd.stop();
    let (ok, _) = ldapsearch(&url, None, "(mail=single@komle.test)");
    assert!(!ok, "server must be gone after stop");
}
