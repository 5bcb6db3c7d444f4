//! Every Konnektor request we build, and every response fixture we parse, is valid against
//! gematik's XSDs (checked with `xmllint --schema`, offline), and every SOAPAction equals the
//! one in the service's WSDL. Fails — never skips — when xmllint or the schemas are missing.

#[path = "konnektor_fixtures.rs"]
mod fixtures;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use komle_core::konnektor::context::CallContext;
use komle_core::konnektor::service_directory::SignatureServiceVersion;
use komle_core::konnektor::*;
use quick_xml::Reader;
use quick_xml::events::Event;

/// `<ancestor>/shared/spec/schemas` for the first ancestor of the crate that has it: covers
/// `<workspace>/../shared` (CI) and deeper worktree layouts alike.
fn schemas_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("KOMLE_SCHEMAS") {
        return PathBuf::from(dir);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    for ancestor in manifest.ancestors() {
        let candidate = ancestor.join("shared/spec/schemas");
        if candidate.join("conn").is_dir() {
            return candidate;
        }
    }
    panic!(
        "gematik schemas not found: expected shared/spec/schemas beside the workspace (searched upwards from {})",
        manifest.display()
    );
}

fn require_xmllint() {
    let out = Command::new("xmllint").arg("--version").output();
    assert!(
        out.as_ref().is_ok_and(|o| o.status.success()),
        "xmllint is required for the schema tests (apt-get install libxml2-utils): {out:?}"
    );
}

/// Validates `xml` against `conn/<xsd>` (or another relative path) and panics with xmllint's
/// diagnostics on failure.
fn validate(xml: &[u8], xsd: &str, label: &str) {
    if let Err(diagnostics) = try_validate(xml, xsd, label) {
        panic!("{label} is not valid against {xsd}:\n{diagnostics}");
    }
}

fn try_validate(xml: &[u8], xsd: &str, label: &str) -> Result<(), String> {
    require_xmllint();
    let schemas = schemas_dir();
    let xsd_path = schemas.join(xsd);
    assert!(xsd_path.is_file(), "schema {} missing", xsd_path.display());
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join(format!("{label}.xml"));
    std::fs::write(&file, xml).expect("write xml");
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--nonet")
        .arg("--schema")
        .arg(&xsd_path)
        .arg(&file)
        .output()
        .expect("run xmllint");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn well_formed(xml: &[u8], label: &str) {
    require_xmllint();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join(format!("{label}-envelope.xml"));
    std::fs::write(&file, xml).expect("write xml");
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--nonet")
        .arg(&file)
        .output()
        .expect("run xmllint");
    assert!(
        out.status.success(),
        "{label} envelope not well-formed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The child of `soap:Body`, as a standalone document (it declares its own prefixes).
fn payload_of(body: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(body).expect("UTF-8 request");
    let start = text.find("<soap:Body>").expect("soap:Body") + "<soap:Body>".len();
    let end = text.rfind("</soap:Body>").expect("/soap:Body");
    let mut doc = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n".to_vec();
    doc.extend_from_slice(&text.as_bytes()[start..end]);
    doc
}

/// operation name → soapAction from a WSDL's binding.
fn wsdl_actions(wsdl: &str) -> HashMap<String, String> {
    let path = schemas_dir().join("conn").join(wsdl);
    let xml = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = Reader::from_reader(xml.as_slice());
    let mut in_binding = false;
    let mut current_op: Option<String> = None;
    let mut actions = HashMap::new();
    loop {
        match reader.read_event().expect("WSDL parses") {
            Event::Start(e) | Event::Empty(e) => {
                let local = e.local_name().as_ref().to_vec();
                let attr = |name: &[u8]| {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == name)
                        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
                };
                match local.as_slice() {
                    b"binding" if e.name().as_ref() == b"binding" => in_binding = true,
                    b"operation" if in_binding && e.name().as_ref() == b"operation" => {
                        current_op = attr(b"name")
                    }
                    b"operation" if in_binding => {
                        if let (Some(op), Some(action)) = (&current_op, attr(b"soapAction")) {
                            actions.insert(op.clone(), action);
                        }
                    }
                    _ => {}
                }
            }
            Event::End(e) if e.name().as_ref() == b"binding" => in_binding = false,
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(!actions.is_empty(), "no soapActions found in {wsdl}");
    actions
}

fn ctx(user: Option<&str>) -> CallContext {
    CallContext {
        mandant_id: "Praxis <Dr.> Müller & Partner".into(),
        client_system_id: "KIM-Clientmodul".into(),
        workplace_id: "Empfang".into(),
        user_id: user.map(str::to_owned),
    }
}

const SIG_XSD: [(SignatureServiceVersion, &str); 2] = [
    (SignatureServiceVersion::V7_4, "conn/SignatureService.xsd"),
    (
        SignatureServiceVersion::V7_5,
        "conn/SignatureService_V7_5_6.xsd",
    ),
];

#[test]
fn a_2190_a_2020_sign_document_request_is_schema_valid_for_7_4_and_7_5() {
    let c = ctx(None);
    let attr = fixtures::bytes(120, 1);
    let doc = fixtures::bytes(3000, 2);
    for (version, xsd) in SIG_XSD {
        let req = sign_document::build(&sign_document::SignDocumentRequest {
            version,
            context: &c,
            card_handle: "SMB-1",
            job_number: "ABC-123",
            request_id: "KIM-1",
            recipient_emails_attribute: &attr,
            document: &[&doc],
        });
        well_formed(&req.body, "SignDocument");
        validate(
            &payload_of(&req.body),
            xsd,
            &format!("SignDocument-{version:?}"),
        );
        assert_eq!(
            envelope::payload_name(&req.body).expect("own request parses"),
            (version.namespace().to_owned(), "SignDocument".to_owned())
        );
    }
}

/// Guards the guard: the 7.5 request (with `Crypt`) must be rejected by the 7.4 schema, so a
/// passing validation above really means something.
#[test]
fn a_2020_crypt_is_only_sent_to_7_5_and_the_validator_notices() {
    let c = ctx(None);
    let build = |version| {
        sign_document::build(&sign_document::SignDocumentRequest {
            version,
            context: &c,
            card_handle: "SMB-1",
            job_number: "ABC-123",
            request_id: "KIM-1",
            recipient_emails_attribute: b"attr",
            document: &[b"doc"],
        })
    };
    let v75 = build(SignatureServiceVersion::V7_5);
    let v74 = build(SignatureServiceVersion::V7_4);
    let body75 = String::from_utf8(v75.body.clone()).expect("utf8");
    assert!(body75.contains("<SIG:Crypt>RSA</SIG:Crypt>"));
    assert!(!String::from_utf8(v74.body).expect("utf8").contains("Crypt"));
    let mislabelled = body75.replace(namespaces::SIG_V7_5, namespaces::SIG_V7_4);
    let result = try_validate(
        &payload_of(mislabelled.as_bytes()),
        "conn/SignatureService.xsd",
        "neg",
    );
    assert!(result.is_err(), "7.4 schema must reject Crypt");
}

#[test]
fn get_job_number_and_verify_document_requests_are_schema_valid() {
    let c = ctx(Some("user-1"));
    let signed = fixtures::bytes(500, 3);
    for (version, xsd) in SIG_XSD {
        let req = get_job_number::build(&get_job_number::GetJobNumberRequest {
            version,
            context: &c,
        });
        well_formed(&req.body, "GetJobNumber");
        validate(
            &payload_of(&req.body),
            xsd,
            &format!("GetJobNumber-{version:?}"),
        );
        for return_report in [false, true] {
            let req = verify_document::build(&verify_document::VerifyDocumentRequest {
                version,
                context: &c,
                signed_data: &signed,
                return_report,
            });
            well_formed(&req.body, "VerifyDocument");
            validate(
                &payload_of(&req.body),
                xsd,
                &format!("VerifyDocument-{version:?}-{return_report}"),
            );
        }
    }
}

#[test]
fn a_2191_encrypt_and_decrypt_requests_are_schema_valid_for_6_1_1_and_6_1_2() {
    let c = ctx(None);
    let certs = vec![fixtures::bytes(900, 4), fixtures::bytes(700, 5)];
    let attr = fixtures::bytes(200, 6);
    let doc = fixtures::bytes(5000, 7);
    let enc = encrypt_document::build(&encrypt_document::EncryptDocumentRequest {
        context: &c,
        certificates: &certs,
        recipient_emails_attribute: &attr,
        document: &doc,
    });
    let dec = decrypt_document::build(&decrypt_document::DecryptDocumentRequest {
        context: &c,
        card_handle: "SMB-1",
        document: &doc,
    });
    for (req, label) in [(&enc, "EncryptDocument"), (&dec, "DecryptDocument")] {
        well_formed(&req.body, label);
        for xsd in [
            "conn/EncryptionService.xsd",
            "conn/EncryptionService_v6_1_2.xsd",
        ] {
            validate(&payload_of(&req.body), xsd, label);
        }
    }
}

#[test]
fn card_certificate_and_event_requests_are_schema_valid() {
    let c = ctx(Some("user-1"));
    let read = read_card_certificate::build(&read_card_certificate::ReadCardCertificateRequest {
        context: &c,
        card_handle: "SMB-1",
        cert_refs: &[read_card_certificate::CertRef::Enc],
    });
    well_formed(&read.body, "ReadCardCertificate");
    validate(
        &payload_of(&read.body),
        "conn/CertificateService.xsd",
        "ReadCardCertificate",
    );
    for card_type in [
        None,
        Some(get_cards::CardType::SmcB),
        Some(get_cards::CardType::Hba),
    ] {
        let req = get_cards::build(&get_cards::GetCardsRequest {
            context: &c,
            card_type,
        });
        well_formed(&req.body, "GetCards");
        validate(&payload_of(&req.body), "conn/EventService.xsd", "GetCards");
    }
    let pin_req = pin_request::PinRequest {
        context: &c,
        card_handle: "SMB-1",
        pin_type: pin_request::PIN_TYPE_SMC,
    };
    for req in [get_pin_status::build(&pin_req), verify_pin::build(&pin_req)] {
        well_formed(&req.body, "Pin");
        validate(&payload_of(&req.body), "conn/CardService.xsd", "Pin");
    }
}

#[test]
fn response_fixtures_are_schema_valid() {
    let cert = fixtures::bytes(800, 8);
    let cases: Vec<(String, &str, &str)> = vec![
        (
            fixtures::GET_CARDS_PAYLOAD.to_owned(),
            "conn/EventService.xsd",
            "GetCardsResponse",
        ),
        (
            fixtures::read_card_certificate_payload(&cert),
            "conn/CertificateService.xsd",
            "ReadCardCertificateResponse",
        ),
        (
            fixtures::get_job_number_payload("KIM-042"),
            "conn/SignatureService_V7_5_6.xsd",
            "GetJobNumberResponse",
        ),
        (
            fixtures::sign_document_payload(SignatureServiceVersion::V7_5.namespace(), &cert),
            "conn/SignatureService_V7_5_6.xsd",
            "SignDocumentResponse",
        ),
        (
            fixtures::sign_document_payload(SignatureServiceVersion::V7_4.namespace(), &cert),
            "conn/SignatureService.xsd",
            "SignDocumentResponse74",
        ),
        (
            fixtures::crypt_payload("EncryptDocumentResponse", &cert),
            "conn/EncryptionService_v6_1_2.xsd",
            "EncryptDocumentResponse",
        ),
        (
            fixtures::crypt_payload("DecryptDocumentResponse", &cert),
            "conn/EncryptionService_v6_1_2.xsd",
            "DecryptDocumentResponse",
        ),
        (
            fixtures::verify_document_payload("VALID", &cert, fixtures::STATUS_OK),
            "conn/SignatureService_V7_5_6.xsd",
            "VerifyDocumentResponse",
        ),
        (
            fixtures::verify_document_payload(
                "INCONCLUSIVE",
                &cert,
                &fixtures::status_warning(4264),
            ),
            "conn/SignatureService_V7_5_6.xsd",
            "VerifyDocumentResponseWarning",
        ),
        (
            fixtures::GET_PIN_STATUS_PAYLOAD.to_owned(),
            "conn/CardService.xsd",
            "GetPinStatusResponse",
        ),
        (
            fixtures::VERIFY_PIN_PAYLOAD.to_owned(),
            "conn/CardService.xsd",
            "VerifyPinResponse",
        ),
        (
            fixtures::tel_error("GERROR", 4019, "Error", "Kartenhandle ungültig"),
            "tel/error/TelematikError.xsd",
            "TelematikError",
        ),
    ];
    for (xml, xsd, label) in cases {
        validate(xml.as_bytes(), xsd, label);
    }
    validate(
        &fixtures::default_sds(),
        "conn/ServiceDirectory.xsd",
        "connector-sds",
    );
}

#[test]
fn soap_actions_match_the_wsdls() {
    let sig74 = wsdl_actions("SignatureService.wsdl");
    let sig75 = wsdl_actions("SignatureService_V7_5_6.wsdl");
    for (version, actions) in [
        (SignatureServiceVersion::V7_4, &sig74),
        (SignatureServiceVersion::V7_5, &sig75),
    ] {
        assert_eq!(actions["SignDocument"], sign_document::soap_action(version));
        assert_eq!(
            actions["VerifyDocument"],
            verify_document::soap_action(version)
        );
        assert_eq!(
            actions["GetJobNumber"],
            get_job_number::soap_action(version)
        );
    }
    for wsdl in ["EncryptionService.wsdl", "EncryptionService_v6_1_1.wsdl"] {
        let enc = wsdl_actions(wsdl);
        assert_eq!(enc["EncryptDocument"], encrypt_document::SOAP_ACTION);
        // The /crypt/ quirk (NOTES.md) is what the WSDL says; we must send exactly that.
        assert_eq!(enc["DecryptDocument"], decrypt_document::SOAP_ACTION);
        assert!(decrypt_document::SOAP_ACTION.contains("/conn/crypt/EncryptionService/"));
    }
    assert_eq!(
        wsdl_actions("EventService.wsdl")["GetCards"],
        get_cards::SOAP_ACTION
    );
    assert_eq!(
        wsdl_actions("CertificateService.wsdl")["ReadCardCertificate"],
        read_card_certificate::SOAP_ACTION
    );
    // No CardService WSDL in the schema set: every other WSDL uses `<targetNamespace>#<op>`.
    assert_eq!(
        get_pin_status::SOAP_ACTION,
        format!("{}#GetPinStatus", namespaces::CARD)
    );
    assert_eq!(
        verify_pin::SOAP_ACTION,
        format!("{}#VerifyPin", namespaces::CARD)
    );
}

#[test]
fn builders_set_the_action_on_the_request() {
    let c = ctx(None);
    let req = decrypt_document::build(&decrypt_document::DecryptDocumentRequest {
        context: &c,
        card_handle: "SMB-1",
        document: b"x",
    });
    assert_eq!(req.soap_action, decrypt_document::SOAP_ACTION);
    assert_eq!(
        req.soap_action_header(),
        "\"http://ws.gematik.de/conn/crypt/EncryptionService/v6.1#DecryptDocument\""
    );
}
