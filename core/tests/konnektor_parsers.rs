//! Response parsers against realistic responses (fixtures written from the schemas, with the
//! prefixes a Konnektor might choose), SOAP faults carrying gematik errors, and ERROR statuses.

#[path = "konnektor_fixtures.rs"]
mod fixtures;

use fixtures::{envelope, fault};
use komle_core::konnektor::service_directory::SignatureServiceVersion;
use komle_core::konnektor::verify_document::HighLevelResult;
use komle_core::konnektor::*;

#[test]
fn get_cards_finds_smb_and_hba_with_foreign_prefixes() {
    let resp = get_cards::parse(&envelope(fixtures::GET_CARDS_PAYLOAD)).expect("parses");
    assert_eq!(resp.cards.len(), 3);
    let smb = resp.smb().expect("SM-B present");
    assert_eq!(smb.card_handle, "SMB-1");
    assert_eq!(smb.card_type, "SMC-B");
    assert_eq!(smb.iccsn.as_deref(), Some("80276883110000054321"));
    assert_eq!(
        smb.card_holder_name.as_deref(),
        Some("Praxis Dr. Müller & Partner")
    );
    assert_eq!(
        smb.certificate_expiration_date.as_deref(),
        Some("2029-01-31")
    );
    let hbas: Vec<_> = resp.hbas().map(|c| c.card_handle.as_str()).collect();
    assert_eq!(hbas, ["HBA-3"]);
    assert!(!resp.status.is_warning);
}

#[test]
fn get_cards_without_smb_yields_none() {
    let payload = fixtures::GET_CARDS_PAYLOAD.replace("SMC-B", "KVK");
    let resp = get_cards::parse(&envelope(&payload)).expect("parses");
    assert!(resp.smb().is_none());
}

#[test]
fn read_card_certificate_returns_der_of_c_enc() {
    let cert = fixtures::bytes(1200, 9);
    let resp =
        read_card_certificate::parse(&envelope(&fixtures::read_card_certificate_payload(&cert)))
            .expect("parses");
    assert_eq!(resp.certificates.len(), 1);
    let c = &resp.certificates[0];
    assert_eq!(c.cert_ref, "C.ENC");
    assert_eq!(c.certificate, cert);
    assert_eq!(c.serial_number, "1034953504625805");
    assert!(c.subject_name.starts_with("CN=Praxis Dr. Mustermann"));
}

#[test]
fn get_job_number_accepts_pattern_and_rejects_others() {
    assert_eq!(
        get_job_number::parse(&envelope(&fixtures::get_job_number_payload("KIM-042"))),
        Ok("KIM-042".to_owned())
    );
    for bad in ["kim-042", "KIM042", "KIM-0420", ""] {
        assert_eq!(
            get_job_number::parse(&envelope(&fixtures::get_job_number_payload(bad))),
            Err(KonnektorError::InvalidValue("SIG:JobNumber")),
            "{bad:?}"
        );
    }
}

#[test]
fn a_2177_sign_document_response_yields_cms_bytes_for_both_versions() {
    let signed = fixtures::bytes(10_000, 10);
    for v in [SignatureServiceVersion::V7_4, SignatureServiceVersion::V7_5] {
        let resp = sign_document::parse(&envelope(&fixtures::sign_document_payload(
            v.namespace(),
            &signed,
        )))
        .expect("parses");
        assert_eq!(resp.signed_data, signed);
        assert_eq!(resp.request_id, "KIM-1");
    }
}

#[test]
fn a_2019_sign_document_parse_after_puts_the_signature_behind_the_entity_header() {
    // The send pipeline decodes the SignedData straight behind the signed-data entity header:
    // the result must be exactly what wrapping the parsed signature gives.
    let signed = fixtures::bytes(10_000, 12);
    let response = envelope(&fixtures::sign_document_payload(
        SignatureServiceVersion::V7_5.namespace(),
        &signed,
    ));
    let header = komle_core::smime::wrap::SIGNED_ENTITY_HEADER;
    let resp = sign_document::parse_after(&response, header).expect("parses");
    assert_eq!(resp.signed_data, komle_core::smime::wrap_signed(&signed));
    assert_eq!(resp.request_id, "KIM-1");
}

#[test]
fn a_2190_sign_request_carries_recipient_emails_attribute_and_document() {
    use base64::Engine;
    let ctx = CallContext {
        mandant_id: "M".into(),
        client_system_id: "C".into(),
        workplace_id: "W".into(),
        user_id: None,
    };
    let attr = fixtures::bytes(77, 11);
    let doc = b"Content-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\nbody".to_vec();
    let req = sign_document::build(&sign_document::SignDocumentRequest {
        version: SignatureServiceVersion::V7_5,
        context: &ctx,
        card_handle: "SMB-1",
        job_number: "ABC-123",
        request_id: "KIM-1",
        recipient_emails_attribute: &attr,
        document: &[&doc],
    });
    let body = String::from_utf8(req.body).expect("utf8");
    let b64 = base64::engine::general_purpose::STANDARD;
    let expected_attr = format!(
        "<dss:SignedProperties><dss:Property><dss:Identifier>RecipientEmailsAttribute</dss:Identifier>\
<dss:Value><CMSAttribute>{}</CMSAttribute></dss:Value></dss:Property></dss:SignedProperties>",
        b64.encode(&attr)
    );
    assert!(body.contains(&expected_attr), "{body}");
    assert!(body.contains(&format!(
        "<dss:Base64Data>{}</dss:Base64Data>",
        b64.encode(&doc)
    )));
    assert!(body.contains("<dss:SignatureType>urn:ietf:rfc:5652</dss:SignatureType>"));
    assert!(body.contains("<SIG:IncludeEContent>true</SIG:IncludeEContent>"));
    assert!(body.contains("<SIG:JobNumber>ABC-123</SIG:JobNumber>"));
    assert!(body.contains("<SIG:Crypt>RSA</SIG:Crypt>"));
    assert_eq!(
        req.soap_action,
        "http://ws.gematik.de/conn/SignatureService/v7.5#SignDocument"
    );
}

#[test]
fn a_2191_encrypt_request_lists_every_certificate_and_unprotected_attribute() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let ctx = CallContext {
        mandant_id: "M".into(),
        client_system_id: "C".into(),
        workplace_id: "W".into(),
        user_id: Some("U".into()),
    };
    let certs = vec![
        fixtures::bytes(300, 1),
        fixtures::bytes(310, 2),
        fixtures::bytes(320, 3),
    ];
    let attr = fixtures::bytes(90, 4);
    let req = encrypt_document::build(&encrypt_document::EncryptDocumentRequest {
        context: &ctx,
        certificates: &certs,
        recipient_emails_attribute: &attr,
        document: b"signed",
    });
    let body = String::from_utf8(req.body).expect("utf8");
    for cert in &certs {
        assert!(body.contains(&format!(
            "<CRYPT:Certificate>{}</CRYPT:Certificate>",
            b64.encode(cert)
        )));
    }
    assert!(body.contains(&format!(
        "<CRYPT:UnprotectedProperties><dss:Property><dss:Identifier>RecipientEmailsAttribute</dss:Identifier>\
<dss:Value><CMSAttribute>{}</CMSAttribute></dss:Value></dss:Property></CRYPT:UnprotectedProperties>",
        b64.encode(&attr)
    )));
    assert!(body.contains("<CRYPT:EncryptionType>urn:ietf:rfc:5652</CRYPT:EncryptionType>"));
    assert!(body.contains("<CONN:UserId>U</CONN:UserId>"));
}

#[test]
fn context_text_is_escaped() {
    let ctx = CallContext {
        mandant_id: "A<&>\"'B".into(),
        client_system_id: "C".into(),
        workplace_id: "W".into(),
        user_id: None,
    };
    let req = get_cards::build(&get_cards::GetCardsRequest {
        context: &ctx,
        card_type: None,
    });
    let body = String::from_utf8(req.body).expect("utf8");
    assert!(
        body.contains("<CONN:MandantId>A&lt;&amp;&gt;&quot;&apos;B</CONN:MandantId>"),
        "{body}"
    );
    assert!(!body.contains("UserId"));
}

#[test]
fn encrypt_and_decrypt_responses_yield_document_bytes() {
    let data = fixtures::bytes(4096, 12);
    let enc = encrypt_document::parse(&envelope(&fixtures::crypt_payload(
        "EncryptDocumentResponse",
        &data,
    )))
    .expect("parses");
    assert_eq!(enc.encrypted, data);
    let dec = decrypt_document::parse(&envelope(&fixtures::crypt_payload(
        "DecryptDocumentResponse",
        &data,
    )))
    .expect("parses");
    assert_eq!(dec.plaintext, data);
}

#[test]
fn decrypt_request_uses_private_key_on_card_with_c_enc() {
    let ctx = CallContext {
        mandant_id: "M".into(),
        client_system_id: "C".into(),
        workplace_id: "W".into(),
        user_id: None,
    };
    let req = decrypt_document::build(&decrypt_document::DecryptDocumentRequest {
        context: &ctx,
        card_handle: "HBA-3",
        document: b"cms",
    });
    let body = String::from_utf8(req.body).expect("utf8");
    assert!(body.contains(
        "<CRYPT:PrivateKeyOnCard><CONN:CardHandle>HBA-3</CONN:CardHandle><CRYPT:KeyReference>C.ENC</CRYPT:KeyReference></CRYPT:PrivateKeyOnCard>"
    ));
}

#[test]
fn a_2048_verify_document_valid_names_signer_and_time() {
    let cert = fixtures::bytes(950, 13);
    let payload = fixtures::verify_document_payload("VALID", &cert, fixtures::STATUS_OK);
    let resp = verify_document::parse(&envelope(&payload)).expect("parses");
    assert_eq!(resp.high_level_result, HighLevelResult::Valid);
    assert_eq!(resp.timestamp_type, "SYSTEM_TIMESTAMP");
    assert_eq!(resp.timestamp, "2026-11-27T10:00:00Z");
    assert_eq!(resp.signing_time(), Some("2026-11-27T09:58:00Z"));
    let report = &resp.reports[0];
    assert_eq!(report.result_major, verify_document::RESULT_MAJOR_VALID);
    assert_eq!(
        report.result_minor.as_deref(),
        Some("urn:oasis:names:tc:dss:1.0:resultminor:valid:signature:OnAllDocuments")
    );
    assert_eq!(report.format_ok.as_deref(), Some(fixtures::VALID));
    assert_eq!(report.signature_ok.as_deref(), Some(fixtures::VALID));
    assert_eq!(
        report.certificate_path_valid.as_deref(),
        Some(fixtures::VALID)
    );
    let signer = resp.signer().expect("signer");
    assert_eq!(
        signer.subject.as_deref(),
        Some("CN=Praxis Dr. Mustermann TEST-ONLY,C=DE")
    );
    assert_eq!(signer.serial_number, "1034953504625805");
    assert_eq!(signer.certificate.as_deref(), Some(cert.as_slice()));
    let raw = resp.verification_report_xml.expect("raw report kept");
    assert!(raw.starts_with(b"<vr:VerificationReport>"));
    assert!(raw.ends_with(b"</vr:VerificationReport>"));
}

#[test]
fn a_2050_verify_document_warning_keeps_gematik_code_4264() {
    let payload =
        fixtures::verify_document_payload("INCONCLUSIVE", b"c", &fixtures::status_warning(4264));
    let resp = verify_document::parse(&envelope(&payload)).expect("parses");
    assert_eq!(resp.high_level_result, HighLevelResult::Inconclusive);
    assert!(resp.status.is_warning);
    let warning = resp.status.warning.expect("warning detail");
    assert_eq!(warning.code(), Some(4264));
    assert_eq!(warning.severity(), Some("Warning"));
}

#[test]
fn verify_document_rejects_unknown_high_level_result() {
    let payload = fixtures::verify_document_payload("MAYBE", b"c", fixtures::STATUS_OK);
    assert_eq!(
        verify_document::parse(&envelope(&payload)),
        Err(KonnektorError::InvalidValue("SIG:HighLevelResult"))
    );
}

#[test]
fn pin_status_and_verify_pin_parse() {
    let status =
        get_pin_status::parse(&envelope(fixtures::GET_PIN_STATUS_PAYLOAD)).expect("parses");
    assert_eq!(
        status.pin_status,
        Some(get_pin_status::PinStatus::Verifiable)
    );
    assert_eq!(status.left_tries, Some(3));
    let verify = verify_pin::parse(&envelope(fixtures::VERIFY_PIN_PAYLOAD)).expect("parses");
    assert_eq!(verify.pin_result, verify_pin::PinResult::Rejected);
    assert_eq!(verify.left_tries, Some(2));
}

#[test]
fn soap_fault_with_tel_error_becomes_typed_error() {
    let err = sign_document::parse(&fault(4019, "Kartenhandle ungültig")).expect_err("fault");
    assert_eq!(err.gematik_code(), Some(4019));
    assert!(err.is_reported_by_konnektor());
    let KonnektorError::Fault(f) = &err else {
        panic!("expected fault, got {err:?}");
    };
    assert_eq!(f.code, "S:Server");
    assert_eq!(f.string, "Kartenhandle ungültig");
    let tel = f.telematik.as_ref().expect("tel:Error");
    assert_eq!(tel.severity(), Some("Error"));
    assert_eq!(tel.message(), Some("Kartenhandle ungültig"));
    assert_eq!(tel.traces.len(), 2);
    assert!(tel.has_code(4000));
    assert_eq!(tel.traces[0].detail.as_deref(), Some("detail"));
    assert_eq!(tel.traces[0].comp_type, "KON");
    assert_eq!(tel.message_id, "0f6c8b26-2f7b-4a53-9d4e-3a3f2a1c9b11");
    assert!(err.to_string().contains("4019"));
}

#[test]
fn every_parser_turns_the_same_fault_into_the_same_code() {
    let f = fault(4085, "Zugriff verweigert");
    let codes = [
        get_cards::parse(&f).err().and_then(|e| e.gematik_code()),
        read_card_certificate::parse(&f)
            .err()
            .and_then(|e| e.gematik_code()),
        get_job_number::parse(&f)
            .err()
            .and_then(|e| e.gematik_code()),
        sign_document::parse(&f)
            .err()
            .and_then(|e| e.gematik_code()),
        encrypt_document::parse(&f)
            .err()
            .and_then(|e| e.gematik_code()),
        decrypt_document::parse(&f)
            .err()
            .and_then(|e| e.gematik_code()),
        verify_document::parse(&f)
            .err()
            .and_then(|e| e.gematik_code()),
        get_pin_status::parse(&f)
            .err()
            .and_then(|e| e.gematik_code()),
        verify_pin::parse(&f).err().and_then(|e| e.gematik_code()),
    ];
    assert!(codes.iter().all(|c| *c == Some(4085)), "{codes:?}");
}

#[test]
fn fault_without_detail_has_no_code() {
    let body = envelope(
        "<S:Fault><faultcode>S:Client</faultcode><faultstring>bad request</faultstring></S:Fault>",
    );
    let err = decrypt_document::parse(&body).expect_err("fault");
    assert_eq!(err.gematik_code(), None);
    assert!(
        matches!(&err, KonnektorError::Fault(f) if f.string == "bad request" && f.telematik.is_none())
    );
}

#[test]
fn status_error_becomes_error_with_code() {
    let payload = format!(
        "<c:DecryptDocumentResponse xmlns:c=\"{}\" xmlns:k=\"{}\"><k:Status><k:Result>ERROR</k:Result>{}</k:Status></c:DecryptDocumentResponse>",
        namespaces::CRYPT,
        namespaces::CONN,
        fixtures::tel_error("e", 4253, "Error", "keine Signatur")
    );
    let err = decrypt_document::parse(&envelope(&payload)).expect_err("status error");
    assert!(matches!(err, KonnektorError::Status(_)));
    assert_eq!(err.gematik_code(), Some(4253));
}

#[test]
fn tel_error_with_non_numeric_code_is_invalid_value() {
    let body = envelope(&format!(
        "<S:Fault><faultcode>S:Server</faultcode><faultstring>x</faultstring><detail>{}</detail></S:Fault>",
        fixtures::tel_error("g", 1, "Error", "x")
            .replace("<g:Code>1</g:Code>", "<g:Code>eins</g:Code>")
    ));
    assert_eq!(
        get_cards::parse(&body),
        Err(KonnektorError::InvalidValue("GERROR:Code"))
    );
}

#[test]
fn wrong_response_element_is_rejected() {
    let signed = fixtures::bytes(10, 1);
    let body = envelope(&fixtures::sign_document_payload(
        namespaces::SIG_V7_5,
        &signed,
    ));
    assert!(matches!(
        encrypt_document::parse(&body),
        Err(KonnektorError::UnexpectedElement {
            expected: "CRYPT:EncryptDocumentResponse",
            ..
        })
    ));
}

#[test]
fn right_local_name_in_wrong_namespace_is_rejected() {
    let payload =
        fixtures::sign_document_payload("http://ws.gematik.de/conn/SignatureService/v7.0", b"x");
    assert!(matches!(
        sign_document::parse(&envelope(&payload)),
        Err(KonnektorError::UnexpectedElement { .. })
    ));
    // Children in a foreign namespace do not count either.
    let payload = fixtures::crypt_payload("DecryptDocumentResponse", b"abc").replace(
        "urn:oasis:names:tc:dss:1.0:core:schema",
        "urn:example:other",
    );
    assert_eq!(
        decrypt_document::parse(&envelope(&payload)),
        Err(KonnektorError::MissingElement("dss:Base64Data"))
    );
}

#[test]
fn soap_1_2_envelope_is_rejected() {
    let body = fixtures::envelope(fixtures::GET_PIN_STATUS_PAYLOAD);
    let body = String::from_utf8(body)
        .expect("utf8")
        .replace(fixtures::SOAP, "http://www.w3.org/2003/05/soap-envelope");
    assert!(matches!(
        get_pin_status::parse(body.as_bytes()),
        Err(KonnektorError::UnexpectedElement {
            expected: "soap:Envelope",
            ..
        })
    ));
}

#[test]
fn large_request_is_built_in_one_pre_sized_buffer() {
    let ctx = CallContext {
        mandant_id: "M".into(),
        client_system_id: "C".into(),
        workplace_id: "W".into(),
        user_id: None,
    };
    let doc = fixtures::bytes(3 * 1024 * 1024, 21);
    let req = sign_document::build(&sign_document::SignDocumentRequest {
        version: SignatureServiceVersion::V7_5,
        context: &ctx,
        card_handle: "SMB-1",
        job_number: "ABC-123",
        request_id: "KIM-1",
        recipient_emails_attribute: &[0x30; 64],
        document: &[&doc],
    });
    // A reallocation would have at least doubled the capacity.
    assert!(req.body.len() > doc.len() * 4 / 3);
    assert!(
        req.body.capacity() < req.body.len() + 8192,
        "buffer grew: {}",
        req.body.capacity()
    );
    // And the payload survives a round trip through a response.
    let resp = envelope(&fixtures::sign_document_payload(namespaces::SIG_V7_5, &doc));
    assert_eq!(sign_document::parse(&resp).map(|r| r.signed_data), Ok(doc));
}
