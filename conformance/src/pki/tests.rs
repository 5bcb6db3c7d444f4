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

#[test]
fn a_2182_cm_tls_certificates_are_client_certificates_with_the_intended_issuers_and_dates() {
    use der::Decode;
    use x509_cert::Certificate;
    let (pki, now) = pki();
    let set = pki.cm_tls(now).expect("cm tls set");
    let parse = |k: &KeyMaterial| Certificate::from_der(&k.cert_der).expect("parses");
    let ca = parse(&set.ca);
    let wrong_root = parse(&set.wrong_ca_root);
    for (k, issuer, valid_now) in [
        (&set.valid, &ca, true),
        (&set.expired, &ca, false),
        (&set.wrong_ca, &wrong_root, true),
    ] {
        let c = parse(k);
        let tbs = &c.tbs_certificate;
        assert_eq!(tbs.issuer, issuer.tbs_certificate.subject);
        let v = &tbs.validity;
        let inside = v.not_before.to_system_time() <= now && now <= v.not_after.to_system_time();
        assert_eq!(inside, valid_now, "{}", tbs.subject);
        let eku = tbs
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE)
            .expect("EKU");
        let eku = x509_cert::ext::pkix::ExtendedKeyUsage::from_der(eku.extn_value.as_bytes())
            .expect("EKU parses");
        assert_eq!(eku.0, vec![const_oid::db::rfc5280::ID_KP_CLIENT_AUTH]);
    }
    assert_ne!(
        ca.tbs_certificate.subject,
        wrong_root.tbs_certificate.subject
    );
}

#[test]
fn a_18783_provider_pkcs12_opens_only_with_its_password() {
    let (pki, now) = pki();
    let set = pki.cm_tls(now).expect("cm tls set");
    let bytes = pkcs12(&set.valid, &[&set.ca], "kim", "transport").expect("pkcs12");
    let store = p12_keystore::KeyStore::from_pkcs12(&bytes, "transport").expect("opens");
    let (alias, chain) = store.private_key_chain().expect("one key");
    assert_eq!(alias, "kim");
    assert_eq!(chain.key(), set.valid.private_key_pkcs8_der.as_slice());
    let ders: Vec<&[u8]> = chain.chain().iter().map(|c| c.as_der()).collect();
    assert_eq!(ders, [&set.valid.cert_der[..], &set.ca.cert_der[..]]);
    assert!(p12_keystore::KeyStore::from_pkcs12(&bytes, "wrong").is_err());
}
