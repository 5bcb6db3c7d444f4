//! The Simulator driven directly (no HTTP): SOAP requests as the Clientmodul sends them, answers
//! checked for content and validated against gematik's schemas with xmllint.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use komle_conformance::sim::decrypt::{decrypt_document, unauth_attrs_der};
use komle_conformance::sim::demo::{DemoSetup, demo_setup};
use komle_conformance::sim::samples::smime_profile_dir;
use komle_conformance::sim::xml::{self, Element};
use komle_conformance::sim::{
    Fault, Operation, PinState, ResponseAction, ServiceVersions, SimConfig, Simulator,
};

const NOW: u64 = 1_780_272_000;
const SIG75: &str = "http://ws.gematik.de/conn/SignatureService/v7.5";
const CRYPT: &str = "http://ws.gematik.de/conn/EncryptionService/v6.1";

fn demo() -> &'static DemoSetup {
    static D: OnceLock<DemoSetup> = OnceLock::new();
    D.get_or_init(|| demo_setup(NOW).unwrap())
}

fn config() -> SimConfig {
    let mut c = demo().config.clone();
    c.now_unix = Some(NOW);
    c
}

fn sim() -> Simulator {
    Simulator::new(config())
}

fn schemas() -> PathBuf {
    smime_profile_dir().unwrap().join("../../schemas/conn")
}

fn envelope(payload: &str) -> Vec<u8> {
    // Deliberately unusual prefixes: the simulator must resolve namespaces, not prefixes.
    format!(
        "<?xml version=\"1.0\"?><se:Envelope xmlns:se=\"http://schemas.xmlsoap.org/soap/envelope/\">\
<se:Header/><se:Body>{payload}</se:Body></se:Envelope>"
    )
    .into_bytes()
}

const CTX: &str = "<c:Context xmlns:c=\"http://ws.gematik.de/conn/ConnectorContext/v2.0\" \
xmlns:k=\"http://ws.gematik.de/conn/ConnectorCommon/v5.0\"><k:MandantId>m</k:MandantId>\
<k:ClientSystemId>cs</k:ClientSystemId><k:WorkplaceId>wp</k:WorkplaceId></c:Context>";

fn body_str(resp: &[u8]) -> String {
    String::from_utf8(resp.to_vec()).unwrap()
}

/// The payload element text between `<soap:Body>` and `</soap:Body>`.
fn payload_text(resp: &[u8]) -> String {
    let s = body_str(resp);
    let start = s.find("<soap:Body>").unwrap() + "<soap:Body>".len();
    let end = s.rfind("</soap:Body>").unwrap();
    s[start..end].to_string()
}

fn payload(resp: &[u8]) -> Element {
    xml::soap_payload(xml::parse(resp).unwrap()).unwrap()
}

/// Validates an XML document against a schema of the gematik set with xmllint.
fn assert_schema_valid(xml_text: &str, schema: &str) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("doc.xml");
    std::fs::write(&f, xml_text).unwrap();
    let out = Command::new("xmllint")
        .current_dir(schemas())
        .args(["--noout", "--nonet", "--schema", schema])
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{schema}: {}\n{xml_text}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn recipient_emails_attr() -> Vec<u8> {
    let cms = std::fs::read(
        smime_profile_dir()
            .unwrap()
            .join("inputEmail.txt.04.encryptedcms"),
    )
    .unwrap();
    unauth_attrs_der(&cms).unwrap().remove(0)
}

fn sign_request(job: Option<&str>, content: &[u8], attr: &[u8]) -> String {
    let job = job
        .map(|j| format!("<s:JobNumber>{j}</s:JobNumber>"))
        .unwrap_or_default();
    format!(
        "<s:SignDocument xmlns:s=\"{SIG75}\" xmlns:k=\"http://ws.gematik.de/conn/ConnectorCommon/v5.0\" \
xmlns:d=\"urn:oasis:names:tc:dss:1.0:core:schema\"><k:CardHandle>SMCB-1</k:CardHandle>\
<s:Crypt>RSA</s:Crypt>{CTX}<s:TvMode>NONE</s:TvMode>{job}<s:SignRequest RequestID=\"r1\">\
<s:OptionalInputs><d:SignatureType>urn:ietf:rfc:5652</d:SignatureType><d:Properties>\
<d:SignedProperties><d:Property><d:Identifier>RecipientEmailsAttribute</d:Identifier><d:Value>\
<CMSAttribute>{}</CMSAttribute></d:Value></d:Property></d:SignedProperties></d:Properties>\
<s:IncludeEContent>true</s:IncludeEContent></s:OptionalInputs><s:Document ShortText=\"none\">\
<d:Base64Data>{}</d:Base64Data></s:Document><s:IncludeRevocationInfo>false</s:IncludeRevocationInfo>\
</s:SignRequest></s:SignDocument>",
        STANDARD.encode(attr),
        STANDARD.encode(content)
    )
}

fn verify_request(cms: &[u8]) -> String {
    format!(
        "<s:VerifyDocument xmlns:s=\"{SIG75}\" xmlns:d=\"urn:oasis:names:tc:dss:1.0:core:schema\">{CTX}\
<s:TvMode>NONE</s:TvMode><d:SignatureObject><d:Base64Signature Type=\"urn:ietf:rfc:5652\">{}\
</d:Base64Signature></d:SignatureObject><s:IncludeRevocationInfo>true</s:IncludeRevocationInfo>\
</s:VerifyDocument>",
        STANDARD.encode(cms)
    )
}

fn encrypt_request(content: &[u8], certs: &[&[u8]], attr: &[u8]) -> String {
    let certs: String = certs
        .iter()
        .map(|c| format!("<x:Certificate>{}</x:Certificate>", STANDARD.encode(c)))
        .collect();
    format!(
        "<x:EncryptDocument xmlns:x=\"{CRYPT}\" xmlns:k=\"http://ws.gematik.de/conn/ConnectorCommon/v5.0\" \
xmlns:d=\"urn:oasis:names:tc:dss:1.0:core:schema\">{CTX}<x:RecipientKeys>{certs}</x:RecipientKeys>\
<k:Document><d:Base64Data>{}</d:Base64Data></k:Document><x:OptionalInputs>\
<x:EncryptionType>urn:ietf:rfc:5652</x:EncryptionType><x:UnprotectedProperties><d:Property>\
<d:Identifier>RecipientEmailsAttribute</d:Identifier><d:Value><CMSAttribute>{}</CMSAttribute>\
</d:Value></d:Property></x:UnprotectedProperties></x:OptionalInputs></x:EncryptDocument>",
        STANDARD.encode(content),
        STANDARD.encode(attr)
    )
}

fn decrypt_request(handle: &str, cms: &[u8]) -> String {
    format!(
        "<x:DecryptDocument xmlns:x=\"{CRYPT}\" xmlns:k=\"http://ws.gematik.de/conn/ConnectorCommon/v5.0\" \
xmlns:d=\"urn:oasis:names:tc:dss:1.0:core:schema\">{CTX}<x:PrivateKeyOnCard><k:CardHandle>{handle}\
</k:CardHandle><x:KeyReference>C.ENC</x:KeyReference></x:PrivateKeyOnCard><k:Document>\
<d:Base64Data>{}</d:Base64Data></k:Document></x:DecryptDocument>",
        STANDARD.encode(cms)
    )
}

fn b64_child(el: &Element, name: &str) -> Vec<u8> {
    let t: String = el
        .find_local(name)
        .unwrap_or_else(|| panic!("{name} in response"))
        .text
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(t).unwrap()
}

#[test]
fn test_requests_are_schema_valid() {
    let attr = recipient_emails_attr();
    assert_schema_valid(
        &sign_request(Some("SIM-000"), b"x", &attr),
        "SignatureService_V7_5_6.xsd",
    );
    assert_schema_valid(&verify_request(b"x"), "SignatureService_V7_5_6.xsd");
    let cert = demo().ca.cert_der.clone();
    assert_schema_valid(
        &encrypt_request(b"x", &[&cert], &attr),
        "EncryptionService_v6_1_2.xsd",
    );
    assert_schema_valid(
        &decrypt_request("SMCB-1", b"x"),
        "EncryptionService_v6_1_2.xsd",
    );
}

#[test]
fn a_17464_connector_sds_lists_services_with_versions_and_is_schema_valid() {
    let r = sim().handle_get("/connector.sds", "https://127.0.0.1:4433");
    assert_eq!(r.status, 200);
    let text = body_str(&r.body);
    assert_schema_valid(&text, "ServiceDirectory.xsd");
    let root = xml::parse(&r.body).unwrap();
    let mut versions = Vec::new();
    root.find_all_local("Version", &mut versions);
    let found: Vec<(String, String)> = versions
        .iter()
        .map(|v| {
            (
                v.attr("Version").unwrap().to_string(),
                v.find_local("EndpointTLS")
                    .unwrap()
                    .attr("Location")
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert!(found.contains(&(
        "7.5.6".into(),
        "https://127.0.0.1:4433/SignatureService".into()
    )));
    assert!(
        found
            .iter()
            .any(|(v, l)| v == "6.1.2" && l.ends_with("/EncryptionService"))
    );
    assert!(found.iter().any(|(_, l)| l.ends_with("/EventService")));
    assert!(
        found
            .iter()
            .any(|(_, l)| l.ends_with("/CertificateService"))
    );

    let mut c = config();
    c.versions = ServiceVersions::rsa_only();
    let text = body_str(
        &Simulator::new(c)
            .handle_get("/connector.sds", "https://h:1")
            .body,
    );
    assert!(text.contains("Version=\"7.4.0\""));
    assert!(text.contains("TargetNamespace=\"http://ws.gematik.de/conn/SignatureService/v7.4\""));
    assert!(text.contains("Version=\"6.0.1\""));
    assert_eq!(sim().handle_get("/other", "https://h:1").status, 404);
}

#[test]
fn get_cards_filters_by_type_and_is_schema_valid() {
    let req = format!(
        "<e:GetCards xmlns:e=\"http://ws.gematik.de/conn/EventService/v7.2\" \
xmlns:cc=\"http://ws.gematik.de/conn/CardServiceCommon/v2.0\" mandant-wide=\"false\">{CTX}\
<cc:CardType>SMC-B</cc:CardType></e:GetCards>"
    );
    let r = sim().handle(
        "http://ws.gematik.de/conn/EventService/v7.2#GetCards",
        &envelope(&req),
    );
    assert_eq!(r.status, 200, "{}", body_str(&r.body));
    assert_schema_valid(&payload_text(&r.body), "EventService.xsd");
    let p = payload(&r.body);
    let mut cards = Vec::new();
    p.find_all_local("Card", &mut cards);
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0].find_local("CardHandle").unwrap().text(), "SMCB-1");
    assert_eq!(
        cards[0].find_local("Iccsn").unwrap().text(),
        "80276883110000095711"
    );
}

#[test]
fn read_card_certificate_returns_c_enc_and_c_sig() {
    let req = format!(
        "<c:ReadCardCertificate xmlns:c=\"http://ws.gematik.de/conn/CertificateService/v6.0\" \
xmlns:k=\"http://ws.gematik.de/conn/ConnectorCommon/v5.0\"><k:CardHandle>SMCB-1</k:CardHandle>{CTX}\
<c:CertRefList><c:CertRef>C.ENC</c:CertRef><c:CertRef>C.SIG</c:CertRef></c:CertRefList>\
</c:ReadCardCertificate>"
    );
    let r = sim().handle("", &envelope(&req));
    assert_eq!(r.status, 200, "{}", body_str(&r.body));
    assert_schema_valid(&payload_text(&r.body), "CertificateService.xsd");
    let p = payload(&r.body);
    let mut certs = Vec::new();
    p.find_all_local("X509Certificate", &mut certs);
    let card = &demo().config.cards[0];
    let got: Vec<Vec<u8>> = certs
        .iter()
        .map(|c| STANDARD.decode(c.text()).unwrap())
        .collect();
    assert_eq!(
        got,
        vec![
            card.enc[0].cert_der.clone(),
            card.osig.as_ref().unwrap().cert_der.clone()
        ]
    );
    assert_eq!(p.find_local("X509SerialNumber").unwrap().text(), "101");
}

#[test]
fn a_2190_sign_request_carries_recipient_emails_into_the_signed_data() {
    let s = sim();
    let job = s.handle(
        &format!("{SIG75}#GetJobNumber"),
        &envelope(&format!(
            "<s:GetJobNumber xmlns:s=\"{SIG75}\">{CTX}</s:GetJobNumber>"
        )),
    );
    assert_eq!(job.status, 200);
    assert_schema_valid(&payload_text(&job.body), "SignatureService_V7_5_6.xsd");
    let job_no = payload(&job.body)
        .find_local("JobNumber")
        .unwrap()
        .text()
        .to_string();
    assert_eq!(job_no, "SIM-000");

    let attr = recipient_emails_attr();
    let content = b"Content-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\nhello\r\n";
    let r = s.handle(
        &format!("{SIG75}#SignDocument"),
        &envelope(&sign_request(Some(&job_no), content, &attr)),
    );
    assert_eq!(r.status, 200, "{}", body_str(&r.body));
    assert_schema_valid(&payload_text(&r.body), "SignatureService_V7_5_6.xsd");
    let p = payload(&r.body);
    assert_eq!(
        p.find_local("SignResponse").unwrap().attr("RequestID"),
        Some("r1")
    );
    assert_eq!(p.find_local("Result").unwrap().text(), "OK");
    let cms = b64_child(&p, "Base64Signature");
    let root = komle_conformance::sim::ber::Node::parse(&cms).unwrap();
    let si = &root.children()[1].children()[0].children()[4].children()[0];
    assert!(
        si.children()[3]
            .children()
            .iter()
            .any(|a| a.to_der() == attr)
    );

    // VerifyDocument over the fresh signature: VALID with the demo CA as anchor, econtent back.
    let v = s.handle(
        &format!("{SIG75}#VerifyDocument"),
        &envelope(&verify_request(&cms)),
    );
    assert_eq!(v.status, 200, "{}", body_str(&v.body));
    assert_schema_valid(&payload_text(&v.body), "SignatureService_V7_5_6.xsd");
    let vp = payload(&v.body);
    assert_eq!(vp.find_local("HighLevelResult").unwrap().text(), "VALID");
    assert_eq!(b64_child(&vp, "Base64Data"), content);
    assert_eq!(
        b64_child(&vp, "CertificateValue"),
        demo().config.cards[0].osig.as_ref().unwrap().cert_der
    );
}

#[test]
fn sign_without_job_number_is_rejected_with_a_soap_fault() {
    let r = sim().handle(
        "",
        &envelope(&sign_request(None, b"x", &recipient_emails_attr())),
    );
    assert_eq!(r.status, 500);
    let text = body_str(&r.body);
    assert!(text.contains("JobNumber missing"), "{text}");
    assert!(text.contains("<faultcode>soap:Client</faultcode>"));
}

#[test]
fn sign_with_blocked_pin_fails_and_pin_status_reports_blocked() {
    let mut c = config();
    c.cards[0].pin = PinState::Blocked;
    let s = Simulator::new(c);
    let r = s.handle(
        "",
        &envelope(&sign_request(
            Some("SIM-001"),
            b"x",
            &recipient_emails_attr(),
        )),
    );
    assert_eq!(r.status, 500);
    assert!(body_str(&r.body).contains("<GERROR:Code>4063</GERROR:Code>"));
    let req = format!(
        "<c:GetPinStatus xmlns:c=\"http://ws.gematik.de/conn/CardService/v8.1\" \
xmlns:k=\"http://ws.gematik.de/conn/ConnectorCommon/v5.0\" \
xmlns:cc=\"http://ws.gematik.de/conn/CardServiceCommon/v2.0\">{CTX}<k:CardHandle>SMCB-1</k:CardHandle>\
<cc:PinTyp>PIN.SMC</cc:PinTyp></c:GetPinStatus>"
    );
    let r = s.handle("", &envelope(&req));
    assert_eq!(r.status, 200);
    assert_schema_valid(&payload_text(&r.body), "CardService.xsd");
    assert_eq!(
        payload(&r.body).find_local("PinStatus").unwrap().text(),
        "BLOCKED"
    );
    let r = s.handle("", &envelope(&req.replace("GetPinStatus", "VerifyPin")));
    assert_eq!(
        payload(&r.body).find_local("PinResult").unwrap().text(),
        "WASBLOCKED"
    );
}

#[test]
fn verify_pin_turns_a_verifiable_pin_into_verified() {
    let mut c = config();
    c.cards[0].pin = PinState::Verifiable;
    let s = Simulator::new(c);
    let req = format!(
        "<c:VerifyPin xmlns:c=\"http://ws.gematik.de/conn/CardService/v8.1\" \
xmlns:k=\"http://ws.gematik.de/conn/ConnectorCommon/v5.0\" \
xmlns:cc=\"http://ws.gematik.de/conn/CardServiceCommon/v2.0\">{CTX}<k:CardHandle>SMCB-1</k:CardHandle>\
<cc:PinTyp>PIN.SMC</cc:PinTyp></c:VerifyPin>"
    );
    let r = s.handle("", &envelope(&req));
    assert_eq!(r.status, 200, "{}", body_str(&r.body));
    assert_schema_valid(&payload_text(&r.body), "CardService.xsd");
    assert_eq!(
        payload(&r.body).find_local("PinResult").unwrap().text(),
        "OK"
    );
    let r = s.handle(
        "",
        &envelope(&sign_request(
            Some("SIM-001"),
            b"x",
            &recipient_emails_attr(),
        )),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn encrypt_then_decrypt_through_soap_for_every_card() {
    let s = sim();
    let attr = recipient_emails_attr();
    let cards = &demo().config.cards;
    let certs: Vec<&[u8]> = cards.iter().map(|c| c.enc[0].cert_der.as_slice()).collect();
    let content = b"Content-Type: application/pkcs7-mime; smime-type=signed-data\r\n\r\nxyz";
    let r = s.handle(
        "http://ws.gematik.de/conn/EncryptionService/v6.1#EncryptDocument",
        &envelope(&encrypt_request(content, &certs, &attr)),
    );
    assert_eq!(r.status, 200, "{}", body_str(&r.body));
    assert_schema_valid(&payload_text(&r.body), "EncryptionService_v6_1_2.xsd");
    let cms = b64_child(&payload(&r.body), "Base64Data");
    assert_eq!(unauth_attrs_der(&cms).unwrap(), vec![attr]);
    for card in cards {
        assert_eq!(decrypt_document(&card.enc, &cms).unwrap(), content);
        let d = s.handle(
            // The SOAPAction quirk from gemSpec_CM_KOMLE: v6.1 namespace, DecryptDocument.
            "\"http://ws.gematik.de/conn/crypt/EncryptionService/v6.1#DecryptDocument\"",
            &envelope(&decrypt_request(&card.handle, &cms)),
        );
        assert_eq!(d.status, 200, "{}", body_str(&d.body));
        assert_schema_valid(&payload_text(&d.body), "EncryptionService_v6_1_2.xsd");
        assert_eq!(b64_child(&payload(&d.body), "Base64Data"), content);
    }
}

#[test]
fn decrypting_gematik_sample04_via_soap_with_a_foreign_card_fails_with_gematik_code() {
    let cms = std::fs::read(
        smime_profile_dir()
            .unwrap()
            .join("inputEmail.txt.04.encryptedcms"),
    )
    .unwrap();
    let r = sim().handle("", &envelope(&decrypt_request("SMCB-1", &cms)));
    assert_eq!(r.status, 500);
    let text = body_str(&r.body);
    assert!(text.contains("<GERROR:Code>4253</GERROR:Code>"), "{text}");
    let detail = &text[text.find("<GERROR:Error").unwrap()..text.find("</detail>").unwrap()];
    assert_schema_valid(detail, "../tel/error/TelematikError.xsd");
}

#[test]
fn injected_faults_latency_stall_and_drop_are_reported_per_operation() {
    let mut c = config();
    c.faults.insert(
        Operation::EncryptDocument,
        Fault::SoapFault {
            code: 4011,
            text: "Konnektor nicht erreichbar".into(),
        },
    );
    c.faults.insert(Operation::DecryptDocument, Fault::Stall);
    c.faults.insert(Operation::GetJobNumber, Fault::Drop);
    c.latency
        .insert(Operation::GetCards, Duration::from_millis(250));
    let s = Simulator::new(c);
    let cert = demo().ca.cert_der.clone();
    let r = s.handle(
        "",
        &envelope(&encrypt_request(b"x", &[&cert], &recipient_emails_attr())),
    );
    assert_eq!(r.status, 500);
    assert!(body_str(&r.body).contains("<GERROR:Code>4011</GERROR:Code>"));
    let r = s.handle("", &envelope(&decrypt_request("SMCB-1", b"x")));
    assert_eq!(r.action, ResponseAction::Stall);
    let r = s.handle(
        "",
        &envelope(&format!(
            "<s:GetJobNumber xmlns:s=\"{SIG75}\">{CTX}</s:GetJobNumber>"
        )),
    );
    assert_eq!(r.action, ResponseAction::Drop);
    let r = s.handle(
        "",
        &envelope(&format!(
            "<e:GetCards xmlns:e=\"http://ws.gematik.de/conn/EventService/v7.2\">{CTX}</e:GetCards>"
        )),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.delay, Duration::from_millis(250));
    assert_eq!(r.action, ResponseAction::Respond);
}

#[test]
fn wrong_namespace_version_or_soap_action_is_a_client_fault() {
    let mut c = config();
    c.versions = ServiceVersions::rsa_only();
    let s = Simulator::new(c);
    // A 7.5 request at a Konnektor that only offers SignatureService 7.4.
    let r = s.handle("", &envelope(&sign_request(Some("SIM-000"), b"x", b"")));
    assert_eq!(r.status, 500);
    assert!(body_str(&r.body).contains("soap:Client"));
    // SOAPAction naming another operation.
    let r = sim().handle(
        &format!("{SIG75}#SignDocument"),
        &envelope(&format!(
            "<s:GetJobNumber xmlns:s=\"{SIG75}\">{CTX}</s:GetJobNumber>"
        )),
    );
    assert_eq!(r.status, 500);
    // Garbage body.
    let r = sim().handle("", b"\x00\x01 not xml <");
    assert_eq!(r.status, 500);
    assert!(body_str(&r.body).contains("soap:Client"));
}

#[test]
fn a_17464_ecc_card_certificate_encrypts_only_at_an_ecc_capable_konnektor() {
    let card = &demo().config.cards[0];
    let ecc_key = card.enc.iter().find(|k| k.is_bp256()).unwrap();
    // ReadCardCertificate with Crypt=ECC returns the brainpool C.ENC.
    let req = format!(
        "<c:ReadCardCertificate xmlns:c=\"http://ws.gematik.de/conn/CertificateService/v6.0\" \
xmlns:k=\"http://ws.gematik.de/conn/ConnectorCommon/v5.0\"><k:CardHandle>SMCB-1</k:CardHandle>{CTX}\
<c:CertRefList><c:CertRef>C.ENC</c:CertRef></c:CertRefList><c:Crypt>ECC</c:Crypt></c:ReadCardCertificate>"
    );
    let r = sim().handle("", &envelope(&req));
    assert_eq!(r.status, 200, "{}", body_str(&r.body));
    assert_schema_valid(&payload_text(&r.body), "CertificateService.xsd");
    assert_eq!(
        b64_child(&payload(&r.body), "X509Certificate"),
        ecc_key.cert_der
    );

    let content = b"for an ECC recipient";
    let req = envelope(&encrypt_request(
        content,
        &[&ecc_key.cert_der],
        &recipient_emails_attr(),
    ));
    let r = sim().handle("", &req);
    assert_eq!(r.status, 200, "{}", body_str(&r.body));
    let cms = b64_child(&payload(&r.body), "Base64Data");
    let d = sim().handle("", &envelope(&decrypt_request("SMCB-1", &cms)));
    assert_eq!(d.status, 200, "{}", body_str(&d.body));
    assert_eq!(b64_child(&payload(&d.body), "Base64Data"), content);

    let mut c = config();
    c.versions = ServiceVersions::rsa_only();
    let r = Simulator::new(c).handle("", &req);
    assert_eq!(r.status, 500);
    assert!(body_str(&r.body).contains("without ECC support"));
}

/// Benchmarks' precomputed mode (issue 9): a repeated crypto request — same document, card,
/// recipients; only the JobNumber differs — is answered byte-identically from the memo without
/// running any cryptography; a different document is computed for real.
#[test]
fn precomputed_mode_answers_a_repeated_request_without_crypto_and_byte_identically() {
    let mut cfg = config();
    cfg.precomputed_answers = true;
    let s = Simulator::new(cfg);
    let attr = recipient_emails_attr();
    let content = b"Content-Type: text/plain\r\n\r\nBefund\r\n";
    let sign = |job: &str, content: &[u8]| {
        let r = s.handle("", &envelope(&sign_request(Some(job), content, &attr)));
        assert_eq!(r.status, 200, "{}", body_str(&r.body));
        r.body
    };
    let first = sign("SIM-001", content);
    assert_eq!(s.crypto_operations(), 1);
    let again = sign("XYZ-042", content);
    assert_eq!(
        s.crypto_operations(),
        1,
        "the second identical request ran crypto"
    );
    assert_eq!(first, again);
    let other = sign(
        "SIM-002",
        b"Content-Type: text/plain\r\n\r\nanderer Befund\r\n",
    );
    assert_eq!(s.crypto_operations(), 2);
    assert_ne!(first, other);

    // Encryption uses a fresh content key each time, so equal answers can only come from the
    // memo; decryption and verification of the stored answers are memoized the same way.
    let cert = &demo().config.cards[0].enc[0].cert_der;
    let enc_req = envelope(&encrypt_request(content, &[cert], &attr));
    let e1 = s.handle("", &enc_req);
    let e2 = s.handle("", &enc_req);
    assert_eq!((e1.status, s.crypto_operations()), (200, 3));
    assert_eq!(e1.body, e2.body);
    let cms = b64_child(&payload(&e1.body), "Base64Data");
    let dec_req = envelope(&decrypt_request("SMCB-1", &cms));
    let d1 = s.handle("", &dec_req);
    let d2 = s.handle("", &dec_req);
    assert_eq!((d1.status, s.crypto_operations()), (200, 4));
    assert_eq!(d1.body, d2.body);
    assert_eq!(b64_child(&payload(&d1.body), "Base64Data"), content);
    let signed = b64_child(&payload(&first), "Base64Signature");
    let ver_req = envelope(&verify_request(&signed));
    let v1 = s.handle("", &ver_req);
    let v2 = s.handle("", &ver_req);
    assert_eq!((v1.status, s.crypto_operations()), (200, 5));
    assert_eq!(v1.body, v2.body);
    let memo = s.memo().expect("precomputed mode has a memo");
    assert_eq!(memo.hits(), 4);

    // Control: without the mode every request is computed, and RSA-PSS (random salt) and
    // AES-GCM (random key) make the answers differ.
    let plain = sim();
    let a = plain.handle("", &enc_req);
    let b = plain.handle("", &enc_req);
    assert_eq!(plain.crypto_operations(), 2);
    assert_ne!(a.body, b.body);
    assert!(plain.memo().is_none());
}
