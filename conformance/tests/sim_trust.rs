//! The simulator checks what a real Konnektor checks before it encrypts or verifies (issue 14,
//! finding 10): recipient certificates chain to its trust anchors, are valid now and not
//! revoked (TUC_KON_037), else EncryptDocument is a SOAP fault with a gematik code; VerifyDocument
//! answers with `Status` OK and puts the reason where a real one does: INCONCLUSIVE with the
//! gematik code in the report's `ResultMessage` (unknown issuer 4206, OCSP unreachable 4264),
//! INVALID with `SigMathOK` invalid and ResultMinor IncorrectSignature for a broken signature.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use komle_conformance::sim::cert_issuer::{CertProfile, issue};
use komle_conformance::sim::demo::{DemoSetup, demo_setup};
use komle_conformance::sim::samples::smime_profile_dir;
use komle_conformance::sim::xml::{self, Element};
use komle_conformance::sim::{KeyMaterial, SimConfig, Simulator};

const NOW: u64 = 1_780_272_000;
const SIG75: &str = "http://ws.gematik.de/conn/SignatureService/v7.5";
const CRYPT: &str = "http://ws.gematik.de/conn/EncryptionService/v6.1";
const CTX: &str = "<c:Context xmlns:c=\"http://ws.gematik.de/conn/ConnectorContext/v2.0\" \
xmlns:k=\"http://ws.gematik.de/conn/ConnectorCommon/v5.0\"><k:MandantId>m</k:MandantId>\
<k:ClientSystemId>cs</k:ClientSystemId><k:WorkplaceId>wp</k:WorkplaceId></c:Context>";

fn demo() -> &'static DemoSetup {
    static D: OnceLock<DemoSetup> = OnceLock::new();
    D.get_or_init(|| demo_setup(NOW).unwrap())
}

fn config() -> SimConfig {
    let mut c = demo().config.clone();
    c.now_unix = Some(NOW);
    c
}

fn envelope(payload: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\"?><se:Envelope xmlns:se=\"http://schemas.xmlsoap.org/soap/envelope/\">\
<se:Body>{payload}</se:Body></se:Envelope>"
    )
    .into_bytes()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn encrypt(sim: &Simulator, cert: &[u8]) -> (u16, String) {
    let req = format!(
        "<x:EncryptDocument xmlns:x=\"{CRYPT}\" xmlns:k=\"http://ws.gematik.de/conn/ConnectorCommon/v5.0\" \
xmlns:d=\"urn:oasis:names:tc:dss:1.0:core:schema\">{CTX}<x:RecipientKeys><x:Certificate>{}</x:Certificate>\
</x:RecipientKeys><k:Document><d:Base64Data>{}</d:Base64Data></k:Document></x:EncryptDocument>",
        STANDARD.encode(cert),
        STANDARD.encode(b"Inhalt")
    );
    let r = sim.handle(
        "http://ws.gematik.de/conn/EncryptionService/v6.1#EncryptDocument",
        &envelope(&req),
    );
    (r.status, text(&r.body))
}

/// SignDocument with card SMCB-1 of `sim`, then VerifyDocument of the result at `verifier`.
fn sign_then_verify(signer: &Simulator, verifier: &Simulator) -> String {
    let sign = format!(
        "<s:SignDocument xmlns:s=\"{SIG75}\" xmlns:k=\"http://ws.gematik.de/conn/ConnectorCommon/v5.0\" \
xmlns:d=\"urn:oasis:names:tc:dss:1.0:core:schema\"><k:CardHandle>SMCB-1</k:CardHandle>\
<s:Crypt>RSA</s:Crypt>{CTX}<s:TvMode>NONE</s:TvMode><s:JobNumber>SIM-000</s:JobNumber>\
<s:SignRequest RequestID=\"r1\"><s:OptionalInputs><d:SignatureType>urn:ietf:rfc:5652</d:SignatureType>\
<s:IncludeEContent>true</s:IncludeEContent></s:OptionalInputs><s:Document ShortText=\"none\">\
<d:Base64Data>{}</d:Base64Data></s:Document><s:IncludeRevocationInfo>false</s:IncludeRevocationInfo>\
</s:SignRequest></s:SignDocument>",
        STANDARD.encode(b"Content-Type: text/plain\r\n\r\nBefund\r\n")
    );
    let r = signer.handle(
        "http://ws.gematik.de/conn/SignatureService/v7.5#SignDocument",
        &envelope(&sign),
    );
    assert_eq!(r.status, 200, "{}", text(&r.body));
    let payload = xml::soap_payload(xml::parse(&r.body).unwrap()).unwrap();
    let cms = b64_child(&payload, "Base64Signature");
    let verify = format!(
        "<s:VerifyDocument xmlns:s=\"{SIG75}\" xmlns:d=\"urn:oasis:names:tc:dss:1.0:core:schema\">{CTX}\
<s:TvMode>NONE</s:TvMode><d:SignatureObject><d:Base64Signature Type=\"urn:ietf:rfc:5652\">{}\
</d:Base64Signature></d:SignatureObject><s:IncludeRevocationInfo>false</s:IncludeRevocationInfo>\
</s:VerifyDocument>",
        STANDARD.encode(cms)
    );
    let r = verifier.handle(
        "http://ws.gematik.de/conn/SignatureService/v7.5#VerifyDocument",
        &envelope(&verify),
    );
    assert_eq!(r.status, 200, "{}", text(&r.body));
    let body = text(&r.body);
    let start = body.find("<soap:Body>").unwrap() + "<soap:Body>".len();
    let end = body.rfind("</soap:Body>").unwrap();
    let payload = body[start..end].to_owned();
    assert_schema_valid(&payload, "SignatureService_V7_5_6.xsd");
    payload
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

fn schemas() -> PathBuf {
    smime_profile_dir().unwrap().join("../../schemas/conn")
}

fn assert_schema_valid(xml_text: &str, schema: &str) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("doc.xml");
    std::fs::write(&f, xml_text).unwrap();
    let out = Command::new("xmllint")
        .current_dir(schemas())
        .args(["--noout", "--nonet", "--schema", schema])
        .arg(&f)
        .output()
        .expect("xmllint installed");
    assert!(
        out.status.success(),
        "{}\n{xml_text}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed certificate with the subject of the first card's C.ENC and its key.
fn self_made(subject: &str, key_of: &KeyMaterial) -> KeyMaterial {
    issue(
        &key_of.rsa_private_key().unwrap(),
        subject,
        4711,
        NOW - 86_400,
        NOW + 86_400,
        CertProfile::Root,
    )
    .unwrap()
}

fn smcb_enc() -> &'static KeyMaterial {
    &demo().config.cards[0].enc[0]
}

#[test]
fn tuc_kon_037_encrypt_document_refuses_a_self_made_certificate() {
    let sim = Simulator::new(config());
    let forged = self_made("CN=Praxis Sim ENC TEST-ONLY,O=Praxis Sim,C=DE", smcb_enc());
    let (status, body) = encrypt(&sim, &forged.cert_der);
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("<GERROR:Code>4206</GERROR:Code>"), "{body}");
    // The genuine certificate of the same practice is accepted.
    let (status, body) = encrypt(&sim, &smcb_enc().cert_der);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn tuc_kon_037_encrypt_document_refuses_expired_and_revoked_certificates() {
    let expired = issue(
        &smcb_enc().rsa_private_key().unwrap(),
        "CN=Praxis Abgelaufen TEST-ONLY,C=DE",
        4712,
        NOW - 3 * 86_400,
        NOW - 86_400,
        CertProfile::Leaf {
            issuer: &demo().ca,
            tls_server: false,
        },
    )
    .unwrap();
    let sim = Simulator::new(config());
    let (status, body) = encrypt(&sim, &expired.cert_der);
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("<GERROR:Code>4206</GERROR:Code>"), "{body}");

    let serial = x509_serial(&smcb_enc().cert_der);
    let mut c = config();
    c.revoked_serials = vec![serial];
    let (status, body) = encrypt(&Simulator::new(c), &smcb_enc().cert_der);
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("revoked"), "{body}");
}

fn x509_serial(der: &[u8]) -> Vec<u8> {
    use der::Decode;
    x509_cert::Certificate::from_der(der)
        .unwrap()
        .tbs_certificate
        .serial_number
        .as_bytes()
        .to_vec()
}

#[test]
fn a_2050_05_verify_unknown_issuer_is_inconclusive_with_4206_in_the_report_and_status_ok() {
    let mut forger = config();
    let osig = forger.cards[0].osig.clone().unwrap();
    let subject = {
        use der::Decode;
        x509_cert::Certificate::from_der(&osig.cert_der)
            .unwrap()
            .tbs_certificate
            .subject
            .to_string()
    };
    forger.cards[0].osig = Some(self_made(&subject, &osig));
    let payload = sign_then_verify(&Simulator::new(forger), &Simulator::new(config()));
    assert!(
        payload.contains("<CONN:Result>OK</CONN:Result>"),
        "{payload}"
    );
    assert!(
        payload.contains("INCONCLUSIVE</SIG:HighLevelResult>"),
        "{payload}"
    );
    assert!(
        payload.contains("<dss:ResultMessage xml:lang=\"de\">4206: "),
        "{payload}"
    );
}

#[test]
fn a_2050_05_verify_broken_signature_is_invalid_in_the_report_with_status_ok() {
    let mut broken = config();
    let other_key = broken.cards[1].enc[0].private_key_pkcs8_der.clone();
    let osig = broken.cards[0].osig.as_mut().unwrap();
    osig.private_key_pkcs8_der = other_key;
    let payload = sign_then_verify(&Simulator::new(broken), &Simulator::new(config()));
    assert!(
        payload.contains("<CONN:Result>OK</CONN:Result>"),
        "{payload}"
    );
    assert!(
        payload.contains("INVALID</SIG:HighLevelResult>"),
        "{payload}"
    );
    assert!(
        payload.contains(
            "<dss:ResultMinor>urn:oasis:names:tc:dss:1.0:resultminor:invalid:IncorrectSignature</dss:ResultMinor>"
        ),
        "{payload}"
    );
    assert!(
        payload.contains("<vr:SigMathOK><vr:ResultMajor>urn:oasis:names:tc:dss:1.0:detail:invalid"),
        "{payload}"
    );
}

#[test]
fn a_2050_05_verify_without_revocation_status_is_inconclusive_with_4264() {
    let mut no_ocsp = config();
    no_ocsp.revocation_status_unavailable = true;
    let payload = sign_then_verify(&Simulator::new(config()), &Simulator::new(no_ocsp));
    assert!(
        payload.contains("INCONCLUSIVE</SIG:HighLevelResult>"),
        "{payload}"
    );
    assert!(
        payload.contains("<dss:ResultMessage xml:lang=\"de\">4264: "),
        "{payload}"
    );
    // The same signature at a Konnektor with OCSP: VALID without a message.
    let payload = sign_then_verify(&Simulator::new(config()), &Simulator::new(config()));
    assert!(
        payload.contains(">VALID</SIG:HighLevelResult>"),
        "{payload}"
    );
    assert!(!payload.contains("ResultMessage"), "{payload}");
}
