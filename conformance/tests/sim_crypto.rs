//! Golden and round-trip tests of the simulator's CMS cryptography (sign, encrypt, decrypt,
//! verify) against gematik's sample chain and the OpenSSL CLI.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use komle_conformance::sim::ber::Node;
use komle_conformance::sim::cert_issuer::{CertProfile, generate_rsa_key, issue};
use komle_conformance::sim::decrypt::{decrypt_document, unauth_attrs_der};
use komle_conformance::sim::demo::ecc_leaf;
use komle_conformance::sim::ecc;
use komle_conformance::sim::encrypt::{EncryptInput, encrypt_document};
use komle_conformance::sim::keys::pem_to_der;
use komle_conformance::sim::samples::smime_profile_dir;
use komle_conformance::sim::sign::{SignInput, sign_document};
use komle_conformance::sim::verify::{ChainStatus, HighLevel, VerifyPolicy, verify_document};
use komle_conformance::sim::{KeyMaterial, SimError};

/// 2022-01-01T00:00:00Z: inside the validity window of gematik's sample certificates.
const SAMPLE_NOW: u64 = 1_640_995_200;
/// 2026-06-01: inside the validity of the generated test certificates.
const NOW: u64 = 1_780_272_000;
const YEAR: u64 = 365 * 24 * 3600;

fn samples() -> PathBuf {
    smime_profile_dir().expect("gematik samples present under shared/spec/samples")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(samples().join(name)).expect("sample file")
}

fn sample_key(dir: &str, stem: &str) -> KeyMaterial {
    let cert = std::fs::read_to_string(samples().join(dir).join(format!("{stem}.pem"))).unwrap();
    let key = std::fs::read_to_string(samples().join(dir).join(format!("{stem}.prv.pem"))).unwrap();
    KeyMaterial {
        cert_der: pem_to_der(&cert).unwrap(),
        private_key_pkcs8_der: pem_to_der(&key).unwrap(),
    }
}

fn sample_anchors() -> Vec<Vec<u8>> {
    ["GEM.KOMP-CA24-TEST-ONLY.pem", "GEM.RCA2-TEST-ONLY.pem"]
        .iter()
        .map(|f| {
            pem_to_der(&std::fs::read_to_string(samples().join("recipientA").join(f)).unwrap())
                .unwrap()
        })
        .collect()
}

/// A generated CA and three RSA-2048 end-entity keys (signer + two recipients), made once.
struct TestPki {
    ca: KeyMaterial,
    signer: KeyMaterial,
    recipients: Vec<KeyMaterial>,
}

fn pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(|| {
        let nb = NOW - YEAR;
        let na = NOW + YEAR;
        let ca = issue(
            &generate_rsa_key().unwrap(),
            "CN=Test CA,O=Sim,C=DE",
            1,
            nb,
            na,
            CertProfile::Root,
        )
        .unwrap();
        let leaf = |cn: &str, serial| {
            issue(
                &generate_rsa_key().unwrap(),
                &format!("CN={cn},O=Sim,C=DE"),
                serial,
                nb,
                na,
                CertProfile::Leaf {
                    issuer: &ca,
                    tls_server: false,
                },
            )
            .unwrap()
        };
        TestPki {
            signer: leaf("SMC-B Praxis", 10),
            recipients: vec![leaf("Empfaenger A", 11), leaf("Empfaenger B", 12)],
            ca,
        }
    })
}

/// The recipient-emails attribute exactly as gematik's sample 04 carries it.
fn sample_recipient_emails_attr() -> Vec<u8> {
    let attrs = unauth_attrs_der(&read("inputEmail.txt.04.encryptedcms")).unwrap();
    assert_eq!(attrs.len(), 1);
    attrs[0].clone()
}

fn policy<'a>(anchors: &'a [Vec<u8>], revoked: &'a [Vec<u8>], now: u64) -> VerifyPolicy<'a> {
    VerifyPolicy {
        trust_anchors: anchors,
        revoked_serials: revoked,
        now_unix: now,
    }
}

#[test]
fn sample04_opens_with_recipient_b_to_exactly_sample03() {
    let plain = decrypt_document(
        &[sample_key("recipientB", "hci-enc-3-kim-bsp")],
        &read("inputEmail.txt.04.encryptedcms"),
    )
    .unwrap();
    assert_eq!(plain, read("inputEmail.txt.03.signedwrap"));
}

#[test]
fn sample04_opens_with_recipient_a_to_exactly_sample03() {
    let plain = decrypt_document(
        &[sample_key("recipientA", "hci-enc-2-kim-bsp")],
        &read("inputEmail.txt.04.encryptedcms"),
    )
    .unwrap();
    assert_eq!(plain, read("inputEmail.txt.03.signedwrap"));
}

#[test]
fn sample04_with_a_foreign_key_has_no_matching_recipient() {
    let err = decrypt_document(&pki().recipients, &read("inputEmail.txt.04.encryptedcms"));
    assert_eq!(err, Err(SimError::NoMatchingRecipient));
}

#[test]
fn sample04_with_a_flipped_ciphertext_byte_fails_the_gcm_tag() {
    let mut cms = read("inputEmail.txt.04.encryptedcms");
    // Offset 1100 lies inside the first 1000-byte encryptedContent chunk (starts at 1029).
    cms[1100] ^= 0x01;
    let err = decrypt_document(&[sample_key("recipientB", "hci-enc-3-kim-bsp")], &cms);
    assert_eq!(err, Err(SimError::DecryptionFailed));
}

#[test]
fn sample02_verifies_with_valid_signature_but_unverifiable_chain() {
    let anchors = sample_anchors();
    let out = verify_document(
        &read("inputEmail.txt.02.signedcms"),
        &policy(&anchors, &[], SAMPLE_NOW),
    )
    .unwrap();
    // The signer's issuer GEM.SMCB-CA24 is not among the samples: the path cannot be built.
    assert!(out.signature_valid);
    match &out.chain {
        ChainStatus::Unverifiable { missing_issuer } => {
            assert!(missing_issuer.contains("GEM.SMCB-CA24"), "{missing_issuer}")
        }
        other => panic!("unexpected chain status {other:?}"),
    }
    assert_eq!(out.high_level, HighLevel::Inconclusive);
    assert_eq!(
        out.econtent.as_deref(),
        Some(read("inputEmail.txt.01.rfc822wrap").as_slice())
    );
}

#[test]
fn sample02_after_the_signer_certificate_expired_is_invalid() {
    let anchors = sample_anchors();
    let out = verify_document(
        &read("inputEmail.txt.02.signedcms"),
        &policy(&anchors, &[], NOW),
    )
    .unwrap();
    assert!(out.signature_valid);
    assert!(
        matches!(out.chain, ChainStatus::Expired { .. }),
        "{:?}",
        out.chain
    );
    assert_eq!(out.high_level, HighLevel::Invalid);
}

#[test]
fn sample02_with_altered_content_is_invalid() {
    let mut cms = read("inputEmail.txt.02.signedcms");
    // Byte 100 is inside the encapsulated mail text (eContent starts at offset 62).
    cms[100] ^= 0x20;
    let out = verify_document(&cms, &policy(&[], &[], SAMPLE_NOW)).unwrap();
    assert!(!out.signature_valid);
    assert_eq!(out.high_level, HighLevel::Invalid);
}

#[test]
fn a_2190_signed_data_carries_recipient_emails_and_matches_the_profile() {
    let p = pki();
    let attr = sample_recipient_emails_attr();
    let content = b"Content-Type: message/rfc822\r\n\r\nSubject: hi\r\n\r\nbody\r\n";
    let cms = sign_document(
        &p.signer,
        &SignInput {
            content,
            extra_signed_attrs: std::slice::from_ref(&attr),
            signing_time_unix: NOW,
            include_econtent: true,
        },
    )
    .unwrap();
    let root = Node::parse(&cms).unwrap();
    let sd = &root.children()[1].children()[0];
    let fields = sd.children();
    // version, digestAlgorithms, encapContentInfo, [0] certificates, signerInfos: no [1] CRLs.
    assert_eq!(fields.len(), 5);
    assert!(fields[3].is_context(0));
    assert_eq!(fields[3].children().len(), 1, "only the signer certificate");
    assert_eq!(fields[3].children()[0].to_der(), p.signer.cert_der);
    let infos = fields[4].children();
    assert_eq!(infos.len(), 1, "exactly one signerInfo");
    let si = infos[0].children();
    assert_eq!(si.len(), 6, "no unsignedAttrs");
    let attrs = &si[3];
    assert!(attrs.is_context(0));
    assert_eq!(attrs.children().len(), 6);
    // The same signed attribute types as gematik's sample 02 (contentType, signingTime,
    // messageDigest, CMSAlgorithmProtection, signingCertificateV2, recipient-emails).
    let attr_oids = |set: &Node| {
        let mut v: Vec<Vec<u8>> = set
            .children()
            .iter()
            .map(|a| a.children()[0].to_der())
            .collect();
        v.sort();
        v
    };
    let sample = Node::parse(&read("inputEmail.txt.02.signedcms")).unwrap();
    let sample_si = &sample.children()[1].children()[0].children()[4].children()[0];
    assert_eq!(attr_oids(attrs), attr_oids(&sample_si.children()[3]));
    // And the same DER shape for CMSAlgorithmProtection (same algorithms, same encoding).
    let cap = |set: &Node| {
        set.children()
            .iter()
            .find(|a| a.children()[0].to_der() == [6, 9, 42, 134, 72, 134, 247, 13, 1, 9, 52])
            .unwrap()
            .to_der()
    };
    assert_eq!(cap(attrs), cap(&sample_si.children()[3]));
    assert!(
        attrs.children().iter().any(|a| a.to_der() == attr),
        "recipient-emails signed as given"
    );

    let anchors = vec![p.ca.cert_der.clone()];
    let out = verify_document(&cms, &policy(&anchors, &[], NOW)).unwrap();
    assert_eq!(out.high_level, HighLevel::Valid);
    assert_eq!(out.chain, ChainStatus::Valid);
    assert_eq!(out.econtent.as_deref(), Some(&content[..]));
    assert_eq!(out.signer_cert_der, p.signer.cert_der);
}

#[test]
fn verify_reports_revoked_signer_as_invalid_and_unknown_anchor_as_inconclusive() {
    let p = pki();
    let cms = sign_document(
        &p.signer,
        &SignInput {
            content: b"x",
            extra_signed_attrs: &[],
            signing_time_unix: NOW,
            include_econtent: true,
        },
    )
    .unwrap();
    let anchors = vec![p.ca.cert_der.clone()];
    // SerialNumber keeps the 8 big-endian bytes the issuer was given, minimally encoded (10).
    let revoked = vec![vec![10u8]];
    let out = verify_document(&cms, &policy(&anchors, &revoked, NOW)).unwrap();
    assert_eq!(out.chain, ChainStatus::Revoked);
    assert_eq!(out.high_level, HighLevel::Invalid);

    let out = verify_document(&cms, &policy(&[], &[], NOW)).unwrap();
    assert!(out.signature_valid);
    assert_eq!(out.high_level, HighLevel::Inconclusive);

    // An anchor with the right name but another key: the path signature fails.
    let impostor = issue(
        &generate_rsa_key().unwrap(),
        "CN=Test CA,O=Sim,C=DE",
        1,
        NOW - YEAR,
        NOW + YEAR,
        CertProfile::Root,
    )
    .unwrap();
    let anchors = vec![impostor.cert_der];
    let out = verify_document(&cms, &policy(&anchors, &[], NOW)).unwrap();
    assert!(matches!(out.chain, ChainStatus::BadSignature { .. }));
    assert_eq!(out.high_level, HighLevel::Invalid);
}

fn write_temp(dir: &tempfile::TempDir, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, data).unwrap();
    p
}

fn der_to_pem(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap()
}

#[test]
fn openssl_verifies_our_signed_data() {
    let p = pki();
    let content = b"Content-Type: message/rfc822\r\n\r\nSubject: openssl\r\n\r\nbody\r\n";
    let cms = sign_document(
        &p.signer,
        &SignInput {
            content,
            extra_signed_attrs: &[sample_recipient_emails_attr()],
            signing_time_unix: NOW,
            include_econtent: true,
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = write_temp(&dir, "signed.der", &cms);
    let out = Command::new("openssl")
        .args([
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-noverify",
            "-binary",
            "-in",
        ])
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, content);
}

#[test]
fn pkcs1_v15_signed_data_from_openssl_verifies() {
    let p = pki();
    let dir = tempfile::tempdir().unwrap();
    let cert = write_temp(
        &dir,
        "c.pem",
        der_to_pem("CERTIFICATE", &p.signer.cert_der).as_bytes(),
    );
    let key = write_temp(
        &dir,
        "k.pem",
        der_to_pem("PRIVATE KEY", &p.signer.private_key_pkcs8_der).as_bytes(),
    );
    let data = write_temp(&dir, "d.txt", b"pkcs1 v1.5 content");
    let out = Command::new("openssl")
        .args([
            "cms",
            "-sign",
            "-binary",
            "-nodetach",
            "-outform",
            "DER",
            "-md",
            "sha256",
            "-signer",
        ])
        .arg(&cert)
        .arg("-inkey")
        .arg(&key)
        .arg("-in")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let anchors = vec![p.ca.cert_der.clone()];
    let res = verify_document(&out.stdout, &policy(&anchors, &[], NOW)).unwrap();
    assert_eq!(res.high_level, HighLevel::Valid);
    assert_eq!(res.econtent.as_deref(), Some(&b"pkcs1 v1.5 content"[..]));
}

#[test]
fn openssl_decrypts_our_auth_enveloped_data_without_unauth_attrs() {
    let p = pki();
    let content = b"signed wrap bytes \x00\x01\x02 with binary";
    let recips: Vec<Vec<u8>> = p.recipients.iter().map(|r| r.cert_der.clone()).collect();
    let cms = encrypt_document(&EncryptInput {
        content,
        recipients: &recips,
        unauth_attrs: &[],
        allow_ecc: false,
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = write_temp(&dir, "enc.der", &cms);
    for (i, r) in p.recipients.iter().enumerate() {
        let cert = write_temp(
            &dir,
            &format!("c{i}.pem"),
            der_to_pem("CERTIFICATE", &r.cert_der).as_bytes(),
        );
        let key = write_temp(
            &dir,
            &format!("k{i}.pem"),
            der_to_pem("PRIVATE KEY", &r.private_key_pkcs8_der).as_bytes(),
        );
        let out = Command::new("openssl")
            .args(["cms", "-decrypt", "-binary", "-inform", "DER", "-in"])
            .arg(&input)
            .arg("-recip")
            .arg(&cert)
            .arg("-inkey")
            .arg(&key)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, content);
    }
}

#[test]
fn encrypt_round_trips_for_every_recipient_with_sample_shaped_unauth_attr() {
    let p = pki();
    let attr = sample_recipient_emails_attr();
    let content = read("inputEmail.txt.03.signedwrap");
    let recips: Vec<Vec<u8>> = p.recipients.iter().map(|r| r.cert_der.clone()).collect();
    let cms = encrypt_document(&EncryptInput {
        content: &content,
        recipients: &recips,
        unauth_attrs: std::slice::from_ref(&attr),
        allow_ecc: false,
    })
    .unwrap();
    for r in &p.recipients {
        assert_eq!(
            decrypt_document(std::slice::from_ref(r), &cms).unwrap(),
            content
        );
    }
    assert_eq!(unauth_attrs_der(&cms).unwrap(), vec![attr]);
    // The signer has no RecipientInfo.
    assert_eq!(
        decrypt_document(std::slice::from_ref(&p.signer), &cms),
        Err(SimError::NoMatchingRecipient)
    );
}

#[test]
fn encrypted_structure_matches_sample04_profile() {
    let p = pki();
    let recips = vec![p.recipients[0].cert_der.clone()];
    let cms = encrypt_document(&EncryptInput {
        content: b"abc",
        recipients: &recips,
        unauth_attrs: &[sample_recipient_emails_attr()],
        allow_ecc: false,
    })
    .unwrap();
    let ours = Node::parse(&cms).unwrap();
    let sample = Node::parse(&read("inputEmail.txt.04.encryptedcms")).unwrap();
    let aed = |n: &Node| n.children()[1].children()[0].clone();
    let (o, s) = (aed(&ours), aed(&sample));
    // Same field layout: version, recipientInfos, encryptedContentInfo, mac, [2] unauthAttrs.
    let tags = |n: &Node| n.children().iter().map(|c| c.tag).collect::<Vec<_>>();
    assert_eq!(tags(&o), tags(&s));
    // Same algorithm identifiers: key encryption (OAEP params) and content encryption OID.
    let kea = |n: &Node| n.children()[1].children()[0].children()[2].to_der();
    assert_eq!(kea(&o), kea(&s));
    let cea_oid = |n: &Node| n.children()[2].children()[1].children()[0].to_der();
    assert_eq!(cea_oid(&o), cea_oid(&s));
}

#[test]
fn ti_ecies_round_trip_for_mixed_rsa_and_brainpool_recipients() {
    let p = pki();
    let ecc_key = ecc_leaf(&p.ca, "CN=Empfaenger ECC,O=Sim,C=DE", 13, NOW).unwrap();
    assert!(ecc_key.is_bp256() && !ecc_key.is_rsa());
    let recips = vec![p.recipients[0].cert_der.clone(), ecc_key.cert_der.clone()];
    let content = b"ecc and rsa recipients";
    let cms = encrypt_document(&EncryptInput {
        content,
        recipients: &recips,
        unauth_attrs: &[],
        allow_ecc: true,
    })
    .unwrap();
    assert_eq!(
        decrypt_document(std::slice::from_ref(&ecc_key), &cms).unwrap(),
        content
    );
    assert_eq!(decrypt_document(&p.recipients[..1], &cms).unwrap(), content);
    // The ECC RecipientInfo is a KeyTransRecipientInfo with the TI-ECIES OID, no parameters.
    let root = Node::parse(&cms).unwrap();
    let rinfos = &root.children()[1].children()[0].children()[1];
    let oids: Vec<Vec<u8>> = rinfos
        .children()
        .iter()
        .map(|ri| ri.children()[2].children()[0].to_der())
        .collect();
    use der::Encode;
    assert!(oids.contains(&ecc::ID_TI_ECIES.to_der().unwrap()));
    let ecc_ri = rinfos
        .children()
        .iter()
        .find(|ri| ri.children()[2].children()[0].to_der() == ecc::ID_TI_ECIES.to_der().unwrap())
        .unwrap();
    assert_eq!(ecc_ri.children()[2].children().len(), 1, "no parameters");
    // 01 || E (65) || IV (12) || CEK (32) || tag (16)
    assert_eq!(ecc_ri.children()[3].string_bytes().unwrap().len(), 126);

    // Tampering with the wrapped key is detected by the key-wrap GCM tag.
    let mut bad = cms.clone();
    let enc = ecc_ri.children()[3].string_bytes().unwrap();
    let pos = bad
        .windows(enc.len())
        .position(|w| w == enc.as_slice())
        .unwrap();
    bad[pos + 100] ^= 1;
    assert_eq!(
        decrypt_document(std::slice::from_ref(&ecc_key), &bad),
        Err(SimError::DecryptionFailed)
    );
}

#[test]
fn a_17464_ecc_recipient_is_refused_without_ecc_support() {
    let p = pki();
    let ecc_key = ecc_leaf(&p.ca, "CN=Empfaenger ECC,O=Sim,C=DE", 14, NOW).unwrap();
    let recips = vec![ecc_key.cert_der.clone()];
    let err = encrypt_document(&EncryptInput {
        content: b"x",
        recipients: &recips,
        unauth_attrs: &[],
        allow_ecc: false,
    });
    assert!(matches!(err, Err(SimError::Unsupported(_))), "{err:?}");
}
