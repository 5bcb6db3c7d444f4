//! Receive side (gemSpec_CM_KOMLE §3.3) on gematik's sample chain: classify, decrypt step,
//! verify step, delivered mail, error mails, PDF report.

use base64::Engine;
use komle_core::smime::{
    Decrypted, DecryptionFailure, DeliveryOptions, Retrieved, Verification, VerifyResult,
    on_retrieve, wrap_signed,
};

const DIR: &str = "/work/shared/spec/samples/smime-profil";
const NOW: i64 = 1_600_000_000;

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{name}")).expect("sample present")
}

fn received() -> Vec<u8> {
    let mut m = b"Return-Path: <mustersender@komle.de>\r\nReceived: from mta.komle.de by pop.komle.de; Sat, 20 Jun 2020 12:58:30 +0200\r\n".to_vec();
    m.extend_from_slice(&sample("inputEmail.txt.05.encryptedwrap"));
    m
}

fn valid() -> Verification {
    Verification {
        result: VerifyResult::Valid,
        signer_name: "Asclepios Apotheke".into(),
        telematik_id: Some("3-SMC-B-Testkarte-883110000116873".into()),
        signing_time: Some("2020-12-16 13:40:07 UTC".into()),
        error_code: None,
        error_text: None,
        signature_broken: false,
        path_invalid: false,
        no_verdict: None,
    }
}

/// Runs all steps with the sample plaintext (wrap_signed(02)) and the given verification; the
/// delivered mail as text (the sample's text part is ISO-8859-1, shown lossily).
fn open(mail: &[u8], v: &Verification, opts: DeliveryOptions) -> String {
    String::from_utf8_lossy(&open_bytes(mail, v, opts)).into_owned()
}

/// The delivered mail's bytes.
fn open_bytes(mail: &[u8], v: &Verification, opts: DeliveryOptions) -> Vec<u8> {
    let Retrieved::Decrypt(opening) = on_retrieve(mail, NOW) else {
        panic!("must decrypt")
    };
    let plaintext = wrap_signed(&sample("inputEmail.txt.02.signedcms"));
    let Decrypted::Verify(verifying) = opening.decrypted(plaintext, NOW, opts) else {
        panic!("must verify")
    };
    verifying.finish(v, NOW, opts)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn header_block(mail: &str) -> &str {
    &mail[..mail.find("\r\n\r\n").expect("blank line")]
}

#[test]
fn a_2043_sample_05_yields_the_cms_of_04_and_the_users_certificate_entry() {
    let Retrieved::Decrypt(opening) = on_retrieve(&received(), NOW) else {
        panic!("must decrypt")
    };
    assert_eq!(opening.cms, sample("inputEmail.txt.04.encryptedcms"));
    let mine = opening.entries_for("MusterEmpfaenger@komle.de");
    assert_eq!(mine.len(), 1);
    // serial 9F52A80078E4 of recipientB's certificate (hci-enc-3-kim-bsp), DER INTEGER
    assert_eq!(
        mine[0].serial,
        [0x02, 0x07, 0x00, 0x9f, 0x52, 0xa8, 0x00, 0x78, 0xe4]
    );
    assert!(opening.entries_for("nobody@komle.de").is_empty());
    let plaintext = wrap_signed(&sample("inputEmail.txt.02.signedcms"));
    let Decrypted::Verify(v) = opening.decrypted(plaintext, NOW, DeliveryOptions::default()) else {
        panic!("must verify")
    };
    assert_eq!(v.verify_input(), &sample("inputEmail.txt.02.signedcms")[..]);
}

#[test]
fn a_2179_01_a_2050_05_valid_message_gets_the_notes_appended_to_its_latin1_text() {
    let bytes = open_bytes(&received(), &valid(), DeliveryOptions::default());
    let out = String::from_utf8_lossy(&bytes);
    let head = header_block(&out);
    assert!(head.starts_with("Return-Path: <mustersender@komle.de>\r\nReceived: from mta"));
    assert!(head.contains("\r\nSubject: Saying Hello\r\n"));
    assert!(head.contains("\r\nX-KIM-DecryptionResult: 00\r\n"));
    assert!(head.contains("\r\nX-KIM-IntegrityCheckResult: 01\r\n"));
    assert!(head.contains("Content-Type: multipart/mixed; boundary="));
    assert!(!head.contains("KOM-LE-Nachricht"));
    // A_2179-01 and the Vermerk of Tab_Verm_Sig_Prüf appended to the text part, in its charset
    // (ISO-8859-1: ü is 0xFC), the part relabelled 8bit; no separate note part.
    assert!(contains(
        &bytes,
        b"Content-Type: text/plain; charset=ISO-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\nThis is a message just to say hello.\r\n"
    ));
    assert!(contains(
        &bytes,
        b"\r\n---------------------------------------------\r\nDie Nachricht wurde entschl\xfcsselt.\r\nDie Signatur wurde erfolgreich gepr\xfcft.\r\n--KOMLE-"
    ));
    assert_eq!(out.matches("Content-Type: text/plain").count(), 1, "{out}");
    assert!(out.contains("Content-Type: application/pdf"));
}

fn pdf_of(mail: &str) -> Vec<u8> {
    let start = mail
        .find("filename=\"Pruefbericht.pdf\"\r\n\r\n")
        .expect("pdf part")
        + "filename=\"Pruefbericht.pdf\"\r\n\r\n".len();
    let end = start + mail[start..].find("\r\n--").expect("boundary");
    let b64: String = mail[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64 pdf")
}

#[test]
fn seed_pdf_report_parses_and_names_signer_and_result() {
    let out = open(&received(), &valid(), DeliveryOptions::default());
    let pdf = pdf_of(&out);
    assert!(pdf.starts_with(b"%PDF-"));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("report.pdf");
    std::fs::write(&path, &pdf).expect("write pdf");
    let run = std::process::Command::new("pdftotext")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext installed");
    assert!(run.status.success(), "pdftotext failed: {run:?}");
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(text.contains("Asclepios Apotheke"), "{text}");
    assert!(text.contains("VALID"), "{text}");
    assert!(
        text.contains("Telematik-ID: 3-SMC-B-Testkarte-883110000116873"),
        "{text}"
    );
    assert!(
        text.contains("Die Signatur der Nachricht wurde erfolgreich geprüft."),
        "{text}"
    );
}

#[test]
fn a_23165_failed_check_replaces_the_content_unless_configured_to_deliver_it() {
    let v = Verification {
        result: VerifyResult::Invalid,
        error_code: Some(4115),
        ..valid()
    };
    let out = open(&received(), &v, DeliveryOptions::default());
    assert!(header_block(&out).contains("X-KIM-IntegrityCheckResult: 02\r\n"));
    assert!(
        !out.contains("This is a message just to say hello."),
        "{out}"
    );
    assert!(out.contains(
        "Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nBeim Empfang dieser KIM-Nachricht wurde eine Sicherheitsverletzung erkannt. Dies kann eine technisches Ursache haben oder auf eine missbräuchliche Nutzung des KIM-Dienstes hinweisen. Zu Ihrem Schutz wurde der Inhalt dieser Nachricht durch diesen Text ausgetauscht. Bitte kontaktieren Sie den Absender und/oder Ihren Administrator.\r\n"
    ), "{out}");
    assert!(!out.contains("Die Signatur wurde erfolgreich"), "{out}");
    let delivered = open_bytes(
        &received(),
        &v,
        DeliveryOptions {
            deliver_original_on_failure: true,
        },
    );
    let text = String::from_utf8_lossy(&delivered);
    assert!(header_block(&text).contains("X-KIM-IntegrityCheckResult: 02\r\n"));
    assert!(!text.contains("Sicherheitsverletzung"), "{text}");
    assert!(
        text.contains("This is a message just to say hello."),
        "{text}"
    );
    // The failure is appended to the original text (ISO-8859-1), not a Vermerk of success.
    assert!(contains(
        &delivered,
        b"\r\n---------------------------------------------\r\nDie Nachricht wurde entschl\xfcsselt.\r\nDie Integrit\xe4t der Nachricht wurde verletzt.\r\n--KOMLE-"
    ));
    assert!(!text.contains("Die Signatur wurde erfolgreich"), "{text}");
}

#[test]
fn a_2050_05_a_23165_konnektor_verdicts_map_to_tab_verm_sig_pruef() {
    use komle_core::smime::integrity::NoVerdict;
    let v = |result, error_code| Verification {
        result,
        error_code,
        ..valid()
    };
    let cases: [(Verification, &str); 12] = [
        (v(VerifyResult::Invalid, Some(4115)), "02"),
        (
            Verification {
                signature_broken: true,
                ..v(VerifyResult::Invalid, None)
            },
            "02",
        ),
        (v(VerifyResult::Invalid, Some(4253)), "03"),
        (v(VerifyResult::Invalid, Some(4112)), "04"),
        (v(VerifyResult::Invalid, Some(4206)), "05"),
        (v(VerifyResult::Inconclusive, Some(4206)), "05"),
        (
            Verification {
                path_invalid: true,
                ..v(VerifyResult::Invalid, None)
            },
            "05",
        ),
        (v(VerifyResult::Invalid, Some(9999)), "06"),
        // INCONCLUSIVE is 07 only with 4264; without a code it is no verdict the table places.
        (v(VerifyResult::Inconclusive, None), "06"),
        (v(VerifyResult::Inconclusive, Some(4264)), "07"),
        (
            Verification {
                no_verdict: Some(NoVerdict::Unreachable),
                ..valid()
            },
            "X01",
        ),
        (
            Verification {
                no_verdict: Some(NoVerdict::Unreadable),
                ..valid()
            },
            "X02",
        ),
    ];
    for (v, expect) in cases {
        let out = open(&received(), &v, DeliveryOptions::default());
        assert!(
            header_block(&out).contains(&format!("X-KIM-IntegrityCheckResult: {expect}\r\n")),
            "{v:?} -> {expect}"
        );
        let ok = expect == "07";
        assert_eq!(
            out.contains("This is a message just to say hello."),
            ok,
            "{v:?}"
        );
        assert_eq!(
            out.contains("Die Signatur wurde erfolgreich gepr"),
            ok,
            "{v:?}"
        );
    }
}

#[test]
fn a_2048_outer_header_differing_from_signed_inner_gives_08() {
    let tampered = String::from_utf8(received()).expect("ascii").replacen(
        "To: Steffi Musterempfaenger <musterempfaenger@komle.de>",
        "To: Steffi Musterempfaenger <musterempfaenger@komle.de>, spy@evil.de",
        1,
    );
    let out = open(tampered.as_bytes(), &valid(), DeliveryOptions::default());
    assert!(header_block(&out).contains("X-KIM-IntegrityCheckResult: 08\r\n"));
    assert!(out.contains("Abweichende Kopfzeilen: To"));
}

#[test]
fn a_2048_unprotected_recipient_emails_differing_from_signed_gives_09() {
    let mut cms = sample("inputEmail.txt.04.encryptedcms");
    let at = cms
        .windows(25)
        .rposition(|w| w == b"musterempfaenger@komle.de")
        .expect("address in unauthAttrs");
    cms[at] = b'X';
    let mut mail = b"From: Karl Mustersender <mustersender@komle.de>\r\nReply-To: Karl Mustersender <mustersender@komle.de>\r\nTo: Steffi Musterempfaenger <musterempfaenger@komle.de>\r\nX-KOM-LE-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=authenticated-enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
    mail.extend_from_slice(
        base64::engine::general_purpose::STANDARD
            .encode(&cms)
            .as_bytes(),
    );
    let out = open(&mail, &valid(), DeliveryOptions::default());
    assert!(header_block(&out).contains("X-KIM-IntegrityCheckResult: 09\r\n"));
}

#[test]
fn a_2040_non_komle_message_passes_unchanged() {
    assert!(matches!(
        on_retrieve(b"From: a@b.de\r\nSubject: hi\r\n\r\nplain\r\n", NOW),
        Retrieved::PassThrough
    ));
}

#[test]
fn unsupported_version_yields_error_mail_4008() {
    let mail = String::from_utf8(received())
        .expect("ascii")
        .replace("X-KOM-LE-Version: 1.0", "X-KOM-LE-Version: 9.9");
    let Retrieved::Deliver(out) = on_retrieve(mail.as_bytes(), NOW) else {
        panic!("must deliver an error mail")
    };
    let out = String::from_utf8(out).expect("utf8");
    let head = header_block(&out);
    assert!(head.contains("X-KIM-Fehlermeldung: 4008\r\n"));
    assert!(head.contains("Return-Path: <mustersender@komle.de>"));
    let subject = "Die KIM-Version der empfangenen Nachricht wird nicht unterstützt";
    let encoded = base64::engine::general_purpose::STANDARD.encode(subject);
    assert!(head.contains(&format!("Subject: =?UTF-8?B?{encoded}?=")));
    assert!(out.contains("Content-Type: message/rfc822\r\n\r\nReturn-Path:"));
}

#[test]
fn a_2046_a_2047_undecryptable_message_yields_error_mail_with_original() {
    let mail = received();
    let Retrieved::Decrypt(opening) = on_retrieve(&mail, NOW) else {
        panic!("must decrypt")
    };
    let out = opening.failed(
        &mail,
        DecryptionFailure::KeyNotFound,
        "musterempfaenger@komle.de",
        NOW,
    );
    let text = String::from_utf8(out).expect("utf8");
    let head = header_block(&text);
    assert!(head.contains("X-KIM-DecryptionResult: 01\r\n"));
    assert!(head.contains("To: Steffi Musterempfaenger <musterempfaenger@komle.de>\r\n"));
    assert!(head.contains("Content-Type: multipart/mixed"));
    let subject = "Die Nachricht konnte nicht entschlüsselt werden";
    let encoded = base64::engine::general_purpose::STANDARD.encode(subject);
    assert!(head.contains(&format!("Subject: =?UTF-8?B?{encoded}?=")));
    assert!(text.contains("an Ihre eigene E-Mail-Adresse (musterempfaenger@komle.de) weiter"));
    // the attachment is the received message byte-exact
    let original = String::from_utf8(mail).expect("ascii");
    assert!(text.contains(&format!(
        "Content-Type: message/rfc822\r\n\r\n{original}\r\n--KOMLE-"
    )));
}

#[test]
fn a_2046_truncated_cms_or_base64_yields_wrong_format_mail() {
    let full = String::from_utf8(received()).expect("ascii");
    let truncated = &full[..full.len() - 300];
    let Retrieved::Deliver(out) = on_retrieve(truncated.as_bytes(), NOW) else {
        panic!("must deliver an error mail")
    };
    assert!(
        String::from_utf8_lossy(&out).contains("X-KIM-DecryptionResult: 02\r\n"),
        "truncated CMS"
    );
    let bad_b64 = format!("{}!!!!", &full[..full.len() - 4]);
    let Retrieved::Deliver(out) = on_retrieve(bad_b64.as_bytes(), NOW) else {
        panic!("must deliver an error mail")
    };
    assert!(String::from_utf8_lossy(&out).contains("X-KIM-DecryptionResult: 02\r\n"));
}

#[test]
fn a_2048_plaintext_without_signed_data_gives_03() {
    let Retrieved::Decrypt(opening) = on_retrieve(&received(), NOW) else {
        panic!("must decrypt")
    };
    let out = match opening.decrypted(
        b"Content-Type: text/plain\r\n\r\nunsigned".to_vec(),
        NOW,
        DeliveryOptions::default(),
    ) {
        Decrypted::Deliver(out) => String::from_utf8(out).expect("utf8"),
        Decrypted::Verify(_) => panic!("nothing to verify"),
    };
    assert!(header_block(&out).contains("X-KIM-IntegrityCheckResult: 03\r\n"));
}
