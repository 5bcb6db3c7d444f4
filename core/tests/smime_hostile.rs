//! Hostile input on both sides: every input yields a defined result (typed error, pass-through or
//! error mail), never a panic.

use base64::Engine;
use komle_core::smime::addresses::remove_addresses;
use komle_core::smime::{
    Decrypted, DeliveryOptions, Lookup, Prepared, Retrieved, SendPlan, SendStart, Verification,
    VerifyResult, auth_enveloped, forward, on_retrieve, signed_data, wrap_for_signing,
};
use proptest::prelude::*;

const DIR: &str = "/work/shared/spec/samples/smime-profil";

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{name}")).expect("sample present")
}

fn komle_mail(cms: &[u8]) -> Vec<u8> {
    let mut m = b"From: a@komle.de\r\nTo: b@komle.de\r\nX-KOM-LE-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=authenticated-enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
    m.extend_from_slice(
        base64::engine::general_purpose::STANDARD
            .encode(cms)
            .as_bytes(),
    );
    m
}

fn verification() -> Verification {
    Verification {
        result: VerifyResult::Valid,
        signer_name: "X".into(),
        telematik_id: None,
        signing_time: None,
        error_code: None,
        error_text: None,
        signature_broken: false,
        path_invalid: false,
        no_verdict: None,
    }
}

/// Drives the whole receive path with `plaintext` as DecryptDocument's answer.
fn receive_all(mail: &[u8], plaintext: Vec<u8>) -> Vec<u8> {
    match on_retrieve(mail, 0) {
        Retrieved::PassThrough => mail.to_vec(),
        Retrieved::Deliver(m) => m,
        Retrieved::Decrypt(o) => match o.decrypted(plaintext, 0, DeliveryOptions::default()) {
            Decrypted::Deliver(m) => m,
            Decrypted::Verify(v) => v.finish(&verification(), 0, DeliveryOptions::default()),
        },
    }
}

fn mutate(mut data: Vec<u8>, flips: &[(usize, u8)], cut: usize) -> Vec<u8> {
    for &(at, x) in flips {
        if !data.is_empty() {
            let i = at % data.len();
            data[i] ^= x;
        }
    }
    data.truncate(cut.min(data.len()));
    data
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hostile_arbitrary_bytes_on_retrieve_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let out = receive_all(&data, data.clone());
        prop_assert!(!out.is_empty() || data.is_empty());
    }

    #[test]
    fn hostile_mutated_auth_enveloped_data_is_handled(flips in proptest::collection::vec((any::<usize>(), 1u8..), 0..8), cut in 0usize..6000) {
        let cms = mutate(sample("inputEmail.txt.04.encryptedcms"), &flips, cut);
        let _ = auth_enveloped::unprotected_recipient_emails(&cms);
        let out = receive_all(&komle_mail(&cms), Vec::new());
        // an empty plaintext is never a signed-data entity: either an error mail or result 03
        let text = String::from_utf8_lossy(&out);
        prop_assert!(text.contains("X-KIM-DecryptionResult: 02") || text.contains("X-KIM-IntegrityCheckResult: 03"));
    }

    #[test]
    fn hostile_mutated_signed_data_is_handled(flips in proptest::collection::vec((any::<usize>(), 1u8..), 0..8), cut in 0usize..4000) {
        let signed = mutate(sample("inputEmail.txt.02.signedcms"), &flips, cut);
        let _ = signed_data::inspect(&signed);
        let plaintext = komle_core::smime::wrap_signed(&signed);
        let out = receive_all(&sample("inputEmail.txt.05.encryptedwrap"), plaintext);
        prop_assert!(String::from_utf8_lossy(&out).contains("X-KIM-IntegrityCheckResult: "));
    }

    #[test]
    fn hostile_arbitrary_plaintext_after_decrypt_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut plaintext = b"Content-Type: application/pkcs7-mime; smime-type=signed-data\r\nContent-Transfer-Encoding: binary\r\n\r\n".to_vec();
        plaintext.extend_from_slice(&data);
        let out = receive_all(&sample("inputEmail.txt.05.encryptedwrap"), plaintext);
        prop_assert!(String::from_utf8_lossy(&out).contains("X-KIM-IntegrityCheckResult: "));
    }

    #[test]
    fn hostile_arbitrary_mail_on_send_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(SendStart::Protect(plan)) = SendPlan::start(data, &["b@komle.de".to_owned()]) {
            let lookups: Vec<(String, Lookup)> = plan.addresses_to_look_up().into_iter().map(|a| (a, Lookup::NoCertificate)).collect();
            let prepared = plan.with_certificates(&lookups, 0);
            let nothing = matches!(prepared, Ok(Prepared::NothingToSend { .. }) | Err(_));
            prop_assert!(nothing);
        }
    }

    #[test]
    fn a_2028_removing_absent_address_changes_nothing(
        names in proptest::collection::vec("[A-Za-z ,\"()<>:;@.]{0,30}", 1..5)
    ) {
        let mut mail = String::new();
        for (i, n) in names.iter().enumerate() {
            mail.push_str(&format!("{}: {n}\r\n", ["To", "Cc", "From", "Sender", "Subject"][i % 5]));
        }
        mail.push_str("\r\nbody\r\n");
        let out = remove_addresses(mail.as_bytes(), &["absent@nowhere.invalid".to_owned()]);
        prop_assert_eq!(out.ok(), Some(mail.into_bytes()));
    }

    #[test]
    fn a_2019_lf_and_crlf_input_wrap_identically(
        lines in proptest::collection::vec("[A-Za-z][A-Za-z0-9-]{0,10}: [ -~]{0,40}", 1..6),
        body in "[ -~\n]{0,200}"
    ) {
        let lf = format!("{}\n\n{body}", lines.join("\n"));
        let crlf = lf.replace('\n', "\r\n");
        let a = wrap_for_signing(lf.as_bytes());
        let b = wrap_for_signing(crlf.as_bytes());
        prop_assert_eq!(&a, &b);
        let a = a.expect("valid headers");
        prop_assert!(a.starts_with(b"Content-Type: message/rfc822\r\n\r\n"));
        prop_assert!(!a.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
    }
}

#[test]
fn hostile_nested_rfc822_bomb_is_handled() {
    let mut mail = b"X-KOM-LE-Version: 1.0\r\nFrom: a@b.de\r\n\r\nx".to_vec();
    for _ in 0..5000 {
        let mut outer = b"From: a@b.de\r\nContent-Type: message/rfc822\r\n\r\n".to_vec();
        outer.extend_from_slice(&mail);
        mail = outer;
    }
    // Either the innermost KOM-LE message is found or nesting is refused: no stack overflow.
    let found = forward::forwarded_komle_message(&mail);
    assert!(found.is_none_or(|m| m.starts_with(b"X-KOM-LE-Version") || m.starts_with(b"From")));
    assert!(matches!(on_retrieve(&mail, 0), Retrieved::PassThrough));
}

#[test]
fn hostile_missing_headers_give_typed_errors() {
    assert!(matches!(
        SendPlan::start(b"Subject: no from\r\n\r\nx".to_vec(), &[]),
        Err(komle_core::smime::SmimeError::MissingHeader("From"))
    ));
    assert!(komle_core::smime::build_outer(b"To: a@b.de\r\n\r\n", b"x").is_err());
    let mail = b"X-KOM-LE-Version: 1.0\r\n\r\nno content type";
    let Retrieved::Deliver(out) = on_retrieve(mail, 0) else {
        panic!("error mail")
    };
    assert!(String::from_utf8_lossy(&out).contains("X-KIM-DecryptionResult: 02"));
}

#[test]
fn hostile_message_over_25_mb_is_handled() {
    let big = vec![0x30u8; 26 * 1024 * 1024];
    let out = receive_all(&komle_mail(&big), Vec::new());
    assert!(
        String::from_utf8_lossy(&out[..out.len().min(4096)]).contains("X-KIM-DecryptionResult: 02")
    );
    let mut plain = b"From: a@b.de\r\nTo: c@d.de\r\n\r\n".to_vec();
    plain.extend(std::iter::repeat_n(b'a', 26 * 1024 * 1024));
    assert!(matches!(on_retrieve(&plain, 0), Retrieved::PassThrough));
}
