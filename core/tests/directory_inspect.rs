//! Certificate inspection and selection against gematik's sample certificates
//! (samples/smime-profil/recipient{A,B}), which are real TI test certificates.

use std::time::{Duration, SystemTime};

use komle_core::directory::{KeyAlgorithm, Selection, SkipReason, inspect, oids, select};

const SPEC: &str = "/work/shared/spec/samples/smime-profil";

fn pem_der(path: &str) -> Vec<u8> {
    use base64::Engine;
    let text = std::fs::read_to_string(format!("{SPEC}/{path}")).expect("sample present");
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("base64")
}

fn cert_a() -> Vec<u8> {
    pem_der("recipientA/hci-enc-2-kim-bsp.pem")
}
fn cert_b() -> Vec<u8> {
    pem_der("recipientB/hci-enc-3-kim-bsp.pem")
}

/// 2024-01-01, inside the sample certificates' validity.
fn in_2024() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_067_200)
}

#[test]
fn a_2022_sample_certificate_is_rsa_hci_enc_with_telematik_id() {
    let c = inspect(&cert_a()).expect("sample parses");
    assert_eq!(c.key_algorithm, KeyAlgorithm::Rsa);
    assert_eq!(c.telematik_id.as_deref(), Some("2-290002"));
    assert!(c.encryption_key_usage);
    assert!(c.policies.contains(&oids::POLICY_C_HCI_ENC));
    assert!(c.policies.contains(&oids::POLICY_GEM_OR_CP));
    assert!(c.is_encryption_type());
    assert_eq!(c.emails, vec!["zahnarzt@praxis.de".to_string()]);
    assert!(c.validity_at(in_2024()).is_ok());
}

#[test]
fn sample_b_carries_a_different_telematik_id() {
    let c = inspect(&cert_b()).expect("sample parses");
    assert_eq!(c.telematik_id.as_deref(), Some("2-290003"));
}

#[test]
fn a_2027_issuer_and_serial_is_a_der_sequence_with_the_issuer_name() {
    let c = inspect(&cert_a()).expect("sample parses");
    assert_eq!(c.issuer_and_serial[0], 0x30);
    let needle = b"GEM.KOMP-CA24 TEST-ONLY";
    assert!(
        c.issuer_and_serial
            .windows(needle.len())
            .any(|w| w == needle)
    );
}

#[test]
fn sample_is_expired_in_2030_and_not_yet_valid_in_2000() {
    let c = inspect(&cert_a()).expect("sample parses");
    let in_2030 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_456_000);
    assert_eq!(c.validity_at(in_2030), Err(SkipReason::Expired));
    let in_2000 = SystemTime::UNIX_EPOCH + Duration::from_secs(946_684_800);
    assert_eq!(c.validity_at(in_2000), Err(SkipReason::NotYetValid));
}

#[test]
fn ca_certificate_is_not_an_encryption_certificate() {
    let ca_der = pem_der("recipientA/GEM.KOMP-CA24-TEST-ONLY.pem");
    let ca = inspect(&ca_der).expect("parses");
    assert!(!ca.encryption_key_usage);
    assert_eq!(ca.telematik_id, None);
    let s = select(&[ca_der], in_2024(), true);
    assert_eq!(s.selection, Selection::NoValidCertificate);
    assert_eq!(s.skipped[0].reason, SkipReason::NoEncryptionKeyUsage);
}

#[test]
fn garbage_is_skipped_with_a_reason_not_a_panic() {
    let inputs: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x30],
        vec![0x30, 0x03, 1, 2, 3],
        b"hello".to_vec(),
    ];
    for i in &inputs {
        assert!(matches!(inspect(i), Err(SkipReason::Malformed(_))));
    }
    let s = select(&inputs, in_2024(), true);
    assert_eq!(s.selection, Selection::NoValidCertificate);
    assert_eq!(s.skipped.len(), inputs.len());
}

#[test]
fn truncated_sample_never_panics() {
    let a = cert_a();
    for n in 0..a.len() {
        assert!(
            inspect(&a[..n]).is_err(),
            "prefix of {n} bytes must not parse"
        );
    }
}

#[test]
fn garbage_next_to_a_good_certificate_does_not_block_it() {
    let s = select(&[b"junk".to_vec(), cert_a()], in_2024(), false);
    match s.selection {
        Selection::Usable(certs) => assert_eq!(certs[0].der, cert_a()),
        other => panic!("expected usable, got {other:?}"),
    }
    assert_eq!(s.skipped.len(), 1);
    assert_eq!(s.skipped[0].index, 0);
}

#[test]
fn a_2178_two_telematik_ids_for_one_address_conflict() {
    let s = select(&[cert_a(), cert_b()], in_2024(), true);
    assert_eq!(
        s.selection,
        Selection::ConflictingTelematikIds(vec!["2-290002".into(), "2-290003".into()])
    );
}

#[test]
fn a_2178_expired_certificates_do_not_cause_a_conflict() {
    let in_2030 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_456_000);
    let s = select(&[cert_a(), cert_b()], in_2030, true);
    assert_eq!(s.selection, Selection::NoValidCertificate);
    assert!(s.skipped.iter().all(|k| k.reason == SkipReason::Expired));
}

#[test]
fn duplicate_certificate_counts_once() {
    let s = select(&[cert_a(), cert_a()], in_2024(), true);
    match s.selection {
        Selection::Usable(certs) => assert_eq!(certs.len(), 1),
        other => panic!("expected usable, got {other:?}"),
    }
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let s = select(std::slice::from_ref(&bytes), in_2024(), true);
            prop_assert!(s.skipped.len() + usize::from(matches!(s.selection, Selection::Usable(_))) == 1);
        }

        #[test]
        fn corrupted_sample_never_panics(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
            let mut der = cert_a();
            for (i, b) in flips {
                let i = i.index(der.len());
                der[i] ^= b | 1;
            }
            // Whatever the outcome, it is data: a verdict or a skip reason.
            let _ = inspect(&der);
            let s = select(&[der, cert_a()], in_2024(), true);
            prop_assert!(!matches!(s.selection, Selection::NoValidCertificate) || !s.skipped.is_empty());
        }
    }
}
