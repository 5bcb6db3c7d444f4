//! Malformed and hostile Konnektor responses: every one is a typed error, none panics.

#[path = "konnektor_fixtures.rs"]
mod fixtures;

use fixtures::envelope;
use komle_core::konnektor::envelope::check_envelope;
use komle_core::konnektor::*;
use proptest::prelude::*;

fn all_parsers(input: &[u8]) -> Vec<Result<(), KonnektorError>> {
    vec![
        get_cards::parse(input).map(drop),
        read_card_certificate::parse(input).map(drop),
        get_job_number::parse(input).map(drop),
        sign_document::parse(input).map(drop),
        encrypt_document::parse(input).map(drop),
        decrypt_document::parse(input).map(drop),
        verify_document::parse(input).map(drop),
        pin::parse_get_pin_status(input).map(drop),
        pin::parse_verify_pin(input).map(drop),
        ServiceDirectory::parse(input).map(drop),
    ]
}

fn valid_responses() -> Vec<Vec<u8>> {
    let cert = fixtures::bytes(200, 1);
    vec![
        envelope(fixtures::GET_CARDS_PAYLOAD),
        envelope(&fixtures::read_card_certificate_payload(&cert)),
        envelope(&fixtures::sign_document_payload(
            namespaces::SIG_V7_5,
            &cert,
        )),
        envelope(&fixtures::crypt_payload("DecryptDocumentResponse", &cert)),
        envelope(&fixtures::verify_document_payload(
            "VALID",
            &cert,
            fixtures::STATUS_OK,
        )),
        fixtures::fault(4019, "x"),
        fixtures::default_sds(),
    ]
}

#[test]
fn deep_nesting_is_rejected_by_depth_limit() {
    let depth = 100_000;
    let mut xml = format!("<S:Envelope xmlns:S=\"{}\"><S:Body>", fixtures::SOAP).into_bytes();
    for _ in 0..depth {
        xml.extend_from_slice(b"<a>");
    }
    for _ in 0..depth {
        xml.extend_from_slice(b"</a>");
    }
    xml.extend_from_slice(b"</S:Body></S:Envelope>");
    for result in all_parsers(&xml) {
        assert_eq!(
            result,
            Err(KonnektorError::TooDeep {
                limit: Limits::DEFAULT.max_depth
            })
        );
    }
}

#[test]
fn oversized_input_is_rejected_before_parsing() {
    let body = envelope(fixtures::GET_CARDS_PAYLOAD);
    let limits = Limits {
        max_bytes: body.len() - 1,
        ..Limits::DEFAULT
    };
    assert_eq!(
        check_envelope(&body, &limits),
        Err(KonnektorError::TooLarge {
            limit: body.len() - 1,
            actual: body.len()
        })
    );
    let limits = Limits {
        max_bytes: body.len(),
        ..Limits::DEFAULT
    };
    assert_eq!(check_envelope(&body, &limits), Ok(()));
}

#[test]
fn element_flood_is_rejected_by_count_limit() {
    let mut payload = String::from("<x:Flood xmlns:x=\"urn:x\">");
    for _ in 0..(Limits::DEFAULT.max_elements + 1) {
        payload.push_str("<x:e/>");
    }
    payload.push_str("</x:Flood>");
    assert_eq!(
        get_cards::parse(&envelope(&payload)),
        Err(KonnektorError::TooManyElements {
            limit: Limits::DEFAULT.max_elements
        })
    );
}

#[test]
fn doctype_and_entities_are_forbidden() {
    let billion_laughs = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">\
<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">]>\
<S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\"><S:Body>&lol2;</S:Body></S:Envelope>";
    for result in all_parsers(billion_laughs.as_bytes()) {
        assert_eq!(result, Err(KonnektorError::Forbidden("DOCTYPE")));
    }
    let xxe = envelope(
        &fixtures::crypt_payload("DecryptDocumentResponse", b"x")
            .replace("</d:Base64Data>", "&xxe;</d:Base64Data>"),
    );
    assert_eq!(
        decrypt_document::parse(&xxe),
        Err(KonnektorError::Forbidden("entity reference"))
    );
}

#[test]
fn non_utf8_encoding_declaration_is_forbidden() {
    let body = String::from_utf8(envelope(fixtures::GET_CARDS_PAYLOAD))
        .expect("utf8")
        .replace("encoding=\"UTF-8\"", "encoding=\"UTF-16\"");
    assert_eq!(
        get_cards::parse(body.as_bytes()),
        Err(KonnektorError::Forbidden("non-UTF-8 encoding"))
    );
}

#[test]
fn every_truncation_of_a_valid_response_is_an_error() {
    for full in valid_responses() {
        for len in 0..full.len() - 1 {
            let cut = &full[..len];
            for result in all_parsers(cut) {
                assert!(result.is_err(), "truncated at {len} accepted");
            }
        }
    }
}

#[test]
fn undeclared_prefix_is_malformed() {
    let body = envelope("<n:GetCardsResponse/>");
    assert!(matches!(
        get_cards::parse(&body),
        Err(KonnektorError::Malformed { .. })
    ));
}

#[test]
fn invalid_base64_is_typed() {
    let payload = fixtures::crypt_payload("EncryptDocumentResponse", b"abcdef");
    let broken = payload.replace("YWJjZGVm", "YWJj*GVm");
    assert_eq!(
        encrypt_document::parse(&envelope(&broken)),
        Err(KonnektorError::InvalidBase64("dss:Base64Data"))
    );
    let non_ascii_ref = payload.replace("YWJjZGVm", "YWJj&#252;ZGVm");
    assert_eq!(
        encrypt_document::parse(&envelope(&non_ascii_ref)),
        Err(KonnektorError::InvalidBase64("dss:Base64Data"))
    );
}

#[test]
fn base64_in_cdata_and_split_by_comments_decodes() {
    let payload = fixtures::crypt_payload("EncryptDocumentResponse", b"abcdef")
        .replace("YWJjZGVm", "<![CDATA[YWJj]]><!-- c -->ZG\n Vm");
    let resp = encrypt_document::parse(&envelope(&payload)).expect("parses");
    assert_eq!(resp.encrypted, b"abcdef");
}

#[test]
fn invalid_utf8_text_is_an_error() {
    let mut body = envelope(&fixtures::get_job_number_payload("KIM-001"));
    let pos = body.windows(7).position(|w| w == b"KIM-001").expect("job");
    body[pos + 1] = 0xff;
    assert!(get_job_number::parse(&body).is_err());
}

#[test]
fn content_after_root_and_empty_body_are_errors() {
    let mut body = envelope(fixtures::GET_PIN_STATUS_PAYLOAD);
    body.extend_from_slice(b"<extra/>");
    assert!(matches!(
        pin::parse_get_pin_status(&body),
        Err(KonnektorError::Malformed { .. })
    ));
    assert_eq!(
        pin::parse_get_pin_status(&envelope("")),
        Err(KonnektorError::MissingElement("CARD:GetPinStatusResponse"))
    );
    let no_body = format!("<S:Envelope xmlns:S=\"{}\"/>", fixtures::SOAP);
    assert_eq!(
        pin::parse_get_pin_status(no_body.as_bytes()),
        Err(KonnektorError::MissingElement("soap:Body"))
    );
}

#[test]
fn mismatched_end_tag_is_malformed() {
    let body = envelope("<a:X xmlns:a=\"urn:a\"></a:Y>");
    assert!(matches!(
        get_cards::parse(&body),
        Err(KonnektorError::Malformed { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_any_parser(input in proptest::collection::vec(any::<u8>(), 0..2048)) {
        // Random bytes cannot spell a Konnektor response; acceptance would mean a lax parser.
        let could_be_xml = input.windows(8).any(|w| w == b"Envelope" || w == b"Services");
        for result in all_parsers(&input) {
            prop_assert!(result.is_err() || could_be_xml);
        }
    }

    #[test]
    fn mutated_valid_responses_never_panic(
        which in 0usize..7,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut input = valid_responses().swap_remove(which);
        for (index, byte) in edits {
            let i = index.index(input.len());
            input[i] = byte;
        }
        // Must return (Ok or a typed error) without panicking.
        let _ = all_parsers(&input);
    }

    #[test]
    fn xml_ish_noise_never_panics(parts in proptest::collection::vec(
        prop::sample::select(vec![
            "<S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\">", "<S:Body>", "</S:Body>",
            "</S:Envelope>", "<a:X xmlns:a=\"urn:a\">", "</a:X>", "&amp;", "&#0;", "&#xFFFFFFFF;", "&x;",
            "<![CDATA[", "]]>", "<!--", "-->", "<?pi x?>", "QUJD", "=", " ", "<S:Fault>", "</S:Fault>",
            "<faultcode>", "<detail>", "<g:Error xmlns:g=\"http://ws.gematik.de/tel/error/v2.0\">",
            "<g:Trace>", "<g:Code>", "9999999999999999999999", "</g:Code>", "\u{0}", "\u{feff}",
        ]),
        0..40,
    )) {
        let input: String = parts.concat();
        let _ = all_parsers(input.as_bytes());
    }
}
