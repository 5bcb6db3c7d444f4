//! The slapd harness serves exactly the test PKI's certificates: each published DER comes back
//! byte-identical (checked with OpenLDAP's ldapsearch, independent of our LDAP client) and the
//! core selects from it as the PKI intends. The LDAP client itself is tested against slapd in
//! `runtime-smol/tests/ldap_vzd.rs` (this crate cannot depend on the runtime).

use std::process::Command;
use std::time::SystemTime;

use base64::Engine;
use komle_conformance::pki::{TestPki, VZD_BASE_DN};
use komle_conformance::slapd::Slapd;
use komle_core::directory::{DirectoryQuery, Selection, select};

/// `userCertificate;binary` values of the entries matching the core's query for `address`.
fn certificates_via_ldapsearch(url: &str, address: &str) -> Vec<Vec<u8>> {
    let q = DirectoryQuery::for_address(VZD_BASE_DN, address);
    let out = Command::new("ldapsearch")
        .args([
            "-x",
            "-LLL",
            "-o",
            "ldif-wrap=no",
            "-H",
            url,
            "-b",
            &q.base_dn,
            &q.filter,
        ])
        .arg("userCertificate;binary")
        .output()
        .expect("ldapsearch installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("userCertificate;binary:: "))
        .map(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .expect("base64")
        })
        .collect()
}

#[test]
fn a_2023_published_certificates_round_trip_byte_identical() {
    let now = SystemTime::now();
    let pki = TestPki::generate(now).expect("pki");
    let slapd = Slapd::start_with_pki(&pki, false).expect("slapd");
    for p in pki.persons() {
        let mut got = certificates_via_ldapsearch(slapd.url(), &p.address);
        let mut want: Vec<Vec<u8>> = p.enc.iter().map(|k| k.cert_der.clone()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{}", p.uid);
    }
    let got = certificates_via_ldapsearch(slapd.url(), &pki.old_and_new_card.address);
    assert!(matches!(select(&got, now, false).selection, Selection::Usable(c) if c.len() == 2));
    // The escaped wildcard finds nobody.
    assert!(certificates_via_ldapsearch(slapd.url(), "*").is_empty());
}
