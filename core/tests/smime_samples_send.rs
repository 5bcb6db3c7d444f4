//! The send side against gematik's official sample chain (spec/samples/smime-profil).

use komle_core::smime::{
    auth_enveloped, build_outer, recipient_emails, signed_data, wrap_for_signing, wrap_signed,
};

const DIR: &str = "/work/shared/spec/samples/smime-profil";

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{name}")).expect("sample present")
}

fn pem_cert(path: &str) -> Vec<u8> {
    let pem = String::from_utf8(sample(path)).expect("utf8");
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

fn to_crlf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    komle_core::smime::headers::push_crlf(&mut out, b);
    out
}

#[test]
fn a_2019_wrap_for_signing_reproduces_sample_01_from_lf_input() {
    let wrapped = wrap_for_signing(&sample("inputEmail.txt")).expect("wrap");
    assert_eq!(wrapped, sample("inputEmail.txt.01.rfc822wrap"));
}

#[test]
fn a_2019_wrap_for_signing_equals_signed_content_of_sample_02() {
    let der = sample("inputEmail.txt.02.signedcms");
    let info = signed_data::inspect(&der).expect("signed data");
    assert_eq!(
        &*info.content,
        &wrap_for_signing(&sample("inputEmail.txt")).expect("wrap")[..]
    );
}

#[test]
fn a_2019_wrap_for_signing_gives_the_same_crlf_result_for_crlf_input() {
    let crlf = to_crlf(&sample("inputEmail.txt"));
    let wrapped = wrap_for_signing(&crlf).expect("wrap");
    assert_eq!(wrapped, sample("inputEmail.txt.01.rfc822wrap"));
    assert!(!wrapped.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
}

#[test]
fn a_2019_existing_dienstkennung_is_not_duplicated() {
    let mail =
        b"From: a@b.de\r\nX-KIM-Dienstkennung: Arztbrief;VHitG-Kurzbrief;V1.2\r\n\r\nx".to_vec();
    let wrapped = wrap_for_signing(&mail).expect("wrap");
    let text = String::from_utf8(wrapped).expect("utf8");
    assert_eq!(text.matches("X-KIM-Dienstkennung").count(), 1);
    assert!(text.ends_with("V1.2\r\n\r\nx"));
}

#[test]
fn a_2019_wrap_signed_header_matches_sample_03_and_body_is_the_der() {
    let signed = sample("inputEmail.txt.02.signedcms");
    let ours = wrap_signed(&signed);
    let gematik = sample("inputEmail.txt.03.signedwrap");
    let split = gematik
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("blank line")
        + 4;
    assert_eq!(&ours[..ours.len() - signed.len()], &gematik[..split]);
    assert_eq!(&ours[split..], &signed[..]);
    // gematik's tool canonicalised line ends inside the binary DER: show that this is the only
    // difference, so our untouched body is the correct one.
    let mut canon = Vec::new();
    let mut prev = 0u8;
    for (i, &b) in signed.iter().enumerate() {
        if b == b'\n' && prev != b'\r' {
            canon.push(b'\r');
        }
        canon.push(b);
        if b == b'\r' && signed.get(i + 1) != Some(&b'\n') {
            canon.push(b'\n');
        }
        prev = b;
    }
    assert_eq!(&gematik[split..], &canon[..]);
}

fn split_head(m: &[u8]) -> usize {
    m.windows(4).position(|w| w == b"\r\n\r\n").expect("blank") + 4
}

#[test]
fn a_2193_build_outer_reproduces_sample_05_header_order_and_body() {
    let outer = build_outer(
        &sample("inputEmail.txt"),
        &sample("inputEmail.txt.04.encryptedcms"),
    )
    .expect("outer");
    let gematik = sample("inputEmail.txt.05.encryptedwrap");
    let (ours_h, ours_b) = outer.split_at(split_head(&outer));
    let (gem_h, gem_b) = gematik.split_at(split_head(&gematik));
    assert_eq!(ours_b, gem_b, "body byte-exact");
    let names = |h: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(h)
            .split("\r\n")
            .filter(|l| !l.is_empty() && !l.starts_with([' ', '\t']))
            .map(|l| l.split(':').next().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(names(ours_h), names(gem_h));
    // every line except Date (gematik's sample used another Date than its input) is identical
    let lines = |h: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(h)
            .split("\r\n")
            .filter(|l| !l.starts_with("Date:"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(lines(ours_h), lines(gem_h));
}

#[test]
fn a_2027_recipient_emails_attribute_is_byte_identical_to_sample_04() {
    let a = pem_cert("recipientA/hci-enc-2-kim-bsp.pem");
    let b = pem_cert("recipientB/hci-enc-3-kim-bsp.pem");
    let built = recipient_emails::build(&[
        ("musterempfaenger@komle.de", &b),
        ("mustersender@komle.de", &a),
    ])
    .expect("build");
    let enc = sample("inputEmail.txt.04.encryptedcms");
    // offset 4434, 4 + 364 bytes per `openssl asn1parse -i` (the unauthAttrs' only Attribute)
    assert_eq!(&built[..], &enc[4434..4434 + 368]);
}

#[test]
fn a_2048_unprotected_recipient_emails_are_read_from_indefinite_length_sample_04() {
    let found =
        auth_enveloped::unprotected_recipient_emails(&sample("inputEmail.txt.04.encryptedcms"))
            .expect("parse")
            .expect("present");
    let addrs: Vec<_> = found.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(
        addrs,
        ["mustersender@komle.de", "musterempfaenger@komle.de"]
    );
    let der = sample("inputEmail.txt.02.signedcms");
    let signed = signed_data::inspect(&der).expect("signed");
    assert_eq!(signed.check_profile(), Ok(()));
    let signed_rcpts = signed.recipient_emails.expect("signed attr");
    assert!(recipient_emails::same_recipients(&signed_rcpts, &found));
    let cert = pem_cert("recipientA/hci-enc-2-kim-bsp.pem");
    let other = recipient_emails::build(&[("x@y.de", &cert)]).expect("build");
    let parsed = recipient_emails::parse(&other).expect("parse");
    assert_eq!(parsed[0].address, "x@y.de");
    assert!(!recipient_emails::same_recipients(&parsed, &found));
}
