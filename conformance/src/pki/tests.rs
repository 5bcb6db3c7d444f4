//! The generated PKI must satisfy the Clientmodul's own certificate checks and OpenSSL.

use std::time::SystemTime;

use komle_core::directory::{KeyAlgorithm, Selection, SkipReason, inspect, select};

use super::*;

fn pki() -> (TestPki, SystemTime) {
    let now = SystemTime::now();
    (TestPki::generate(now).expect("pki"), now)
}

fn ders(p: &Person) -> Vec<Vec<u8>> {
    p.enc.iter().map(|k| k.cert_der.clone()).collect()
}

#[test]
fn enc_certificates_carry_telematik_id_email_and_enc_policy() {
    let (pki, now) = pki();
    for p in pki.persons() {
        for k in &p.enc {
            let c = inspect(&k.cert_der).expect("our certificates parse");
            assert!(c.is_encryption_type(), "{}", p.uid);
            assert!(c.encryption_key_usage, "{}", p.uid);
            assert_eq!(c.emails, vec![p.address.clone()]);
            assert_eq!(c.key_algorithm, k.algorithm);
            assert!(c.telematik_id.is_some());
            if p.uid != "expired" {
                assert!(c.validity_at(now).is_ok(), "{}", p.uid);
            }
        }
    }
}

#[test]
fn a_2022_selection_rules_hold_for_the_generated_set() {
    let (pki, now) = pki();
    let usable = |p: &Person, ecc| match select(&ders(p), now, ecc).selection {
        Selection::Usable(c) => c.len(),
        _ => 0,
    };
    assert_eq!(usable(&pki.single, false), 1);
    assert_eq!(usable(&pki.old_and_new_card, false), 2);
    assert_eq!(usable(&pki.ecc_and_rsa, false), 1);
    assert_eq!(usable(&pki.ecc_and_rsa, true), 2);
    assert_eq!(
        select(&ders(&pki.expired), now, true).selection,
        Selection::NoValidCertificate
    );
    assert_eq!(
        select(&ders(&pki.expired), now, true).skipped[0].reason,
        SkipReason::Expired
    );
    assert!(matches!(
        select(&ders(&pki.conflicting), now, true).selection,
        Selection::ConflictingTelematikIds(ids) if ids.len() == 2
    ));
    assert!(pki.no_certificate.enc.is_empty());
}

#[test]
fn sender_has_an_osig_certificate_that_is_not_for_encryption() {
    let (pki, now) = pki();
    let osig = &pki.sender.osig[0];
    let s = select(std::slice::from_ref(&osig.cert_der), now, true);
    assert_eq!(s.selection, Selection::NoValidCertificate);
    assert_eq!(s.skipped[0].reason, SkipReason::NoEncryptionKeyUsage);
}

#[test]
fn keys_are_deterministic_and_distinct() {
    let (a, _) = pki();
    let (b, _) = pki();
    assert_eq!(
        a.single.enc[0].private_key_pkcs8_der,
        b.single.enc[0].private_key_pkcs8_der
    );
    assert_ne!(
        a.single.enc[0].private_key_pkcs8_der,
        a.sender.enc[0].private_key_pkcs8_der
    );
    let ecc = &a.ecc_and_rsa.enc[1];
    assert_eq!(ecc.algorithm, KeyAlgorithm::EccBrainpoolP256r1);
    assert_eq!(
        ecc.private_key_pkcs8_der,
        b.ecc_and_rsa.enc[1].private_key_pkcs8_der
    );
}

fn openssl(args: &[&str]) -> std::process::Output {
    std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl installed")
}

#[test]
fn openssl_verifies_chain_keys_and_crl() {
    let (pki, _) = pki();
    let dir = tempfile::tempdir().expect("tempdir");
    let w = |n: &str, s: String| {
        let p = dir.path().join(n);
        std::fs::write(&p, s).expect("write");
        p.to_string_lossy().into_owned()
    };
    let ca = w("ca.pem", pki.ca.cert_pem());
    for (n, k) in [
        ("single", &pki.single.enc[0]),
        ("tls", &pki.tls_server),
        ("ecc", &pki.ecc_and_rsa.enc[1]),
    ] {
        let cert = w(&format!("{n}.pem"), k.cert_pem());
        let out = openssl(&["verify", "-CAfile", &ca, &cert]);
        assert!(
            out.status.success(),
            "{n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The private key matches the certificate's public key.
        let key = w(&format!("{n}.key"), k.private_key_pem());
        let a = openssl(&["pkey", "-in", &key, "-pubout"]).stdout;
        let b = openssl(&["x509", "-in", &cert, "-noout", "-pubkey"]).stdout;
        assert!(!a.is_empty());
        assert_eq!(a, b, "{n}");
    }
    let crl = w("crl.pem", pem("X509 CRL", &pki.crl_der));
    let revoked = w("revoked.pem", pki.revoked.enc[0].cert_pem());
    let out = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        &ca,
        "-CRLfile",
        &crl,
        &revoked,
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("revoked")
            || String::from_utf8_lossy(&out.stderr).contains("revoked")
    );
    let single = w("single2.pem", pki.single.enc[0].cert_pem());
    let out = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        &ca,
        "-CRLfile",
        &crl,
        &single,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ldif_has_one_entry_per_person_and_base64_certificates() {
    let (pki, _) = pki();
    let l = pki.ldif(true);
    assert_eq!(
        l.matches("\ndn: uid=").count() + usize::from(l.starts_with("dn: uid=")),
        11
    );
    assert_eq!(l.matches("userCertificate;binary:: ").count(), 13);
    assert!(l.contains("mail: star*(paren)@komle.test\n"));
    assert!(l.contains("komLeData: 1.0,single@komle.test\n"));
    assert!(!pki.ldif(false).contains("komLeData"));
}
