//! Send-side rules beyond the sample chain: sender, removal of addresses, notice, forwarding,
//! and the SendPlan steps end to end with gematik's test certificates.

use komle_core::smime::addresses::{remove_addresses, sender_address};
use komle_core::smime::{Lookup, Prepared, SendPlan, SendStart, headers, recipient_emails};

const DIR: &str = "/work/shared/spec/samples/smime-profil";

fn pem_cert(path: &str) -> Vec<u8> {
    let pem = std::fs::read_to_string(format!("{DIR}/{path}")).expect("sample");
    let b64: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("pem")
}

#[test]
fn a_2022_sender_is_sender_header_else_from() {
    let with_sender =
        b"From: Praxis <praxis@komle.de>\r\nSender: Assistenz <mfa@komle.de>\r\n\r\nx";
    assert_eq!(sender_address(with_sender).expect("sender"), "mfa@komle.de");
    let only_from = b"From: \"Dr. A, B\" <Arzt@Komle.de>\r\n\r\nx";
    assert_eq!(sender_address(only_from).expect("from"), "arzt@komle.de");
    assert!(sender_address(b"To: a@b.de\r\n\r\nx").is_err());
}

#[test]
fn a_2028_removal_keeps_other_addresses_and_folding() {
    let mail = b"From: Karl <karl@komle.de>\r\nTo: \"Doe, Jane\" <jane@komle.de>,\r\n Bob <bob@komle.de>, carl@komle.de\r\nCc: bob@komle.de\r\nSubject: bob@komle.de stays\r\n\r\nbody bob@komle.de\r\n";
    let out = remove_addresses(mail, &["BOB@komle.de".to_owned()]).expect("remove");
    let text = String::from_utf8(out).expect("utf8");
    assert_eq!(
        text,
        "From: Karl <karl@komle.de>\r\nTo: \"Doe, Jane\" <jane@komle.de>, carl@komle.de\r\nSubject: bob@komle.de stays\r\n\r\nbody bob@komle.de\r\n"
    );
}

#[test]
fn a_2028_removal_inside_groups_keeps_the_group() {
    let mail = b"From: k@komle.de\r\nTo: Team: a@komle.de, b@komle.de;, c@komle.de\r\n\r\nx";
    let out = remove_addresses(mail, &["a@komle.de".to_owned(), "b@komle.de".to_owned()])
        .expect("remove");
    assert_eq!(
        out,
        b"From: k@komle.de\r\nTo: Team:;, c@komle.de\r\n\r\nx".to_vec()
    );
    let out = remove_addresses(mail, &["a@komle.de".to_owned()]).expect("remove");
    assert_eq!(
        out,
        b"From: k@komle.de\r\nTo: Team: b@komle.de;, c@komle.de\r\n\r\nx".to_vec()
    );
}

#[test]
fn a_2029_forwarded_komle_message_is_sent_as_is() {
    let attached = b"X-KOM-LE-Version: 1.0\r\nMIME-Version: 1.0\r\nFrom: m@komle.de\r\nTo: f@komle.de\r\nContent-Type: application/pkcs7-mime; smime-type=authenticated-enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\nMIAGCyqGSIb3DQEJEAEXoIAwgAIBADGCA7gwggHY\r\n";
    let mut mail = b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\nFrom: f@komle.de\r\nTo: f@komle.de\r\nSubject: WG\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nDer Schluessel fehlte.\r\n--b1\r\nContent-Type: message/rfc822\r\n\r\n".to_vec();
    mail.extend_from_slice(attached);
    mail.extend_from_slice(b"\r\n--b1--\r\n");
    match SendPlan::start(mail, &["f@komle.de".to_owned()]).expect("start") {
        SendStart::Forward(bytes) => assert_eq!(
            String::from_utf8_lossy(&bytes),
            String::from_utf8_lossy(&attached[..attached.len() - 2])
        ),
        SendStart::Protect(_) => panic!("must forward"),
    }
    // a plain attached mail without X-KOM-LE-Version is protected like any other
    let plain =
        b"From: f@komle.de\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@y.de\r\n\r\nhi\r\n"
            .to_vec();
    assert!(matches!(
        SendPlan::start(plain, &["a@komle.de".to_owned()]).expect("start"),
        SendStart::Protect(_)
    ));
}

fn sample_mail() -> Vec<u8> {
    let mut m = Vec::new();
    headers::push_crlf(
        &mut m,
        &std::fs::read(format!("{DIR}/inputEmail.txt")).expect("sample"),
    );
    m
}

#[test]
fn a_2027_send_plan_builds_sample_attribute_and_sign_input() {
    let a = pem_cert("recipientA/hci-enc-2-kim-bsp.pem");
    let b = pem_cert("recipientB/hci-enc-3-kim-bsp.pem");
    let SendStart::Protect(plan) =
        SendPlan::start(sample_mail(), &["musterempfaenger@komle.de".to_owned()]).expect("start")
    else {
        panic!("must protect")
    };
    assert_eq!(plan.sender(), "mustersender@komle.de");
    assert_eq!(
        plan.addresses_to_look_up(),
        ["musterempfaenger@komle.de", "mustersender@komle.de"]
    );
    let lookups = vec![
        (
            "musterempfaenger@komle.de".to_owned(),
            Lookup::Found(vec![b.clone()]),
        ),
        (
            "mustersender@komle.de".to_owned(),
            Lookup::Found(vec![a.clone()]),
        ),
    ];
    let Prepared::Protect(p) = plan.with_certificates(&lookups, 0).expect("prepared") else {
        panic!("must protect")
    };
    assert_eq!(
        p.sign_input(&plan),
        std::fs::read(format!("{DIR}/inputEmail.txt.01.rfc822wrap")).expect("01")
    );
    let enc = std::fs::read(format!("{DIR}/inputEmail.txt.04.encryptedcms")).expect("04");
    assert_eq!(p.recipient_emails, enc[4434..4434 + 368].to_vec());
    assert_eq!(p.encryption_certificates.len(), 2);
    assert!(p.sender_notice.is_none());
    let outer = p.finish(&enc).expect("outer");
    let gem = std::fs::read(format!("{DIR}/inputEmail.txt.05.encryptedwrap")).expect("05");
    let body =
        |m: &[u8]| m[m.windows(4).position(|w| w == b"\r\n\r\n").expect("blank") + 4..].to_vec();
    assert_eq!(body(&outer), body(&gem));
}

#[test]
fn a_2024_a_2028_unencryptable_recipients_are_removed_and_reported() {
    let a = pem_cert("recipientA/hci-enc-2-kim-bsp.pem");
    let b = pem_cert("recipientB/hci-enc-3-kim-bsp.pem");
    let mail = b"From: Karl <mustersender@komle.de>\r\nTo: Steffi <musterempfaenger@komle.de>, nocert@komle.de\r\nCc: Twin <twin@komle.de>\r\nSubject: Befund\r\nMessage-ID: <1@komle.de>\r\n\r\nHallo\r\n".to_vec();
    let rcpts: Vec<String> = [
        "musterempfaenger@komle.de",
        "nocert@komle.de",
        "twin@komle.de",
    ]
    .map(String::from)
    .to_vec();
    let SendStart::Protect(plan) = SendPlan::start(mail, &rcpts).expect("start") else {
        panic!("protect")
    };
    let lookups = vec![
        (
            "musterempfaenger@komle.de".to_owned(),
            Lookup::Found(vec![b]),
        ),
        ("mustersender@komle.de".to_owned(), Lookup::Found(vec![a])),
        ("nocert@komle.de".to_owned(), Lookup::NoCertificate),
        ("twin@komle.de".to_owned(), Lookup::DifferentTelematikIds),
    ];
    let Prepared::Protect(p) = plan
        .with_certificates(&lookups, 1_592_650_706)
        .expect("prepared")
    else {
        panic!("protect")
    };
    assert_eq!(p.recipients, ["musterempfaenger@komle.de"]);
    let signed = String::from_utf8(p.sign_input(&plan)).expect("utf8");
    assert!(signed.contains("To: Steffi <musterempfaenger@komle.de>\r\n"));
    assert!(!signed.contains("nocert@") && !signed.contains("twin@") && !signed.contains("Cc:"));
    let attr = recipient_emails::parse(&p.recipient_emails).expect("attr");
    let mut addrs: Vec<_> = attr.iter().map(|r| r.address.clone()).collect();
    addrs.sort();
    assert_eq!(
        addrs,
        ["musterempfaenger@komle.de", "mustersender@komle.de"]
    );
    let notice = String::from_utf8(p.sender_notice.clone().expect("notice")).expect("utf8");
    assert!(notice.contains("To: <mustersender@komle.de>\r\n"));
    assert!(notice.contains("X-KIM-Fehlermeldung: 4004\r\n"));
    assert!(notice.contains("X-KIM-Fehlermeldung: 4005\r\n"));
    assert!(notice.contains("nocert@komle.de") && notice.contains("twin@komle.de"));
    assert!(notice.contains("Date: Sat, 20 Jun 2020 10:58:26 +0000\r\n"));
    assert!(
        !notice.contains("Hallo"),
        "the notice never carries the message content"
    );
}

#[test]
fn a_2024_no_encryptable_recipient_sends_only_the_notice() {
    let mail = b"From: s@komle.de\r\nTo: x@komle.de\r\n\r\nHallo\r\n".to_vec();
    let SendStart::Protect(plan) =
        SendPlan::start(mail, &["x@komle.de".to_owned()]).expect("start")
    else {
        panic!("protect")
    };
    let lookups = vec![(
        "s@komle.de".to_owned(),
        Lookup::Found(vec![pem_cert("recipientA/hci-enc-2-kim-bsp.pem")]),
    )];
    match plan.with_certificates(&lookups, 0).expect("prepared") {
        Prepared::NothingToSend { sender_notice } => {
            let n = String::from_utf8(sender_notice).expect("utf8");
            assert!(n.contains("x@komle.de") && n.contains("4004"));
        }
        Prepared::Protect(_) => panic!("nothing to send"),
    }
}
