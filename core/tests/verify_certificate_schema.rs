//! KOM-LE-A_2075-01: the VerifyCertificate request we build is valid against gematik's
//! CertificateService 6.0.1 XSD (`xmllint --schema`, offline), its SOAPAction is the WSDL's, and
//! schema-valid responses (VALID, INVALID with a reason) parse into the typed verdict. Fails —
//! never skips — when xmllint or the schemas are missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use komle_core::konnektor::context::CallContext;
use komle_core::konnektor::verify_certificate::{
    self, VerificationResult, VerifyCertificateRequest,
};

const CERT_NS: &str = "http://ws.gematik.de/conn/CertificateService/v6.0";
const CONN_NS: &str = "http://ws.gematik.de/conn/ConnectorCommon/v5.0";
const GERROR_NS: &str = "http://ws.gematik.de/tel/error/v2.0";

fn schemas_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("KOMLE_SCHEMAS") {
        return PathBuf::from(dir);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .map(|a| a.join("shared/spec/schemas"))
        .find(|c| c.join("conn").is_dir())
        .unwrap_or_else(|| panic!("gematik schemas not found above {}", manifest.display()))
}

fn validate(xml: &[u8], label: &str) {
    let out = Command::new("xmllint").arg("--version").output();
    assert!(
        out.as_ref().is_ok_and(|o| o.status.success()),
        "xmllint is required for the schema tests (apt-get install libxml2-utils): {out:?}"
    );
    let xsd = schemas_dir().join("conn/CertificateService.xsd");
    assert!(xsd.is_file(), "schema {} missing", xsd.display());
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join(format!("{label}.xml"));
    std::fs::write(&file, xml).expect("write xml");
    let out = Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(&xsd)
        .arg(&file)
        .output()
        .expect("run xmllint");
    assert!(
        out.status.success(),
        "{label} is not valid against CertificateService.xsd:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The child of `soap:Body` as a standalone document (it declares its own prefixes).
fn payload_of(body: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(body).expect("UTF-8 request");
    let start = text.find("<soap:Body>").expect("soap:Body") + "<soap:Body>".len();
    let end = text.rfind("</soap:Body>").expect("/soap:Body");
    let mut doc = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n".to_vec();
    doc.extend_from_slice(&text.as_bytes()[start..end]);
    doc
}

fn response_payload(result: &str, error: &str) -> String {
    format!(
        "<cs:VerifyCertificateResponse xmlns:cs=\"{CERT_NS}\" xmlns:cc=\"{CONN_NS}\" xmlns:ge=\"{GERROR_NS}\">\
<cc:Status><cc:Result>OK</cc:Result></cc:Status>\
<cs:VerificationStatus><cs:VerificationResult>{result}</cs:VerificationResult>{error}</cs:VerificationStatus>\
<cs:RoleList><cs:Role>1.2.276.0.76.4.176</cs:Role></cs:RoleList></cs:VerifyCertificateResponse>"
    )
}

const REVOKED: &str = "<ge:Error><ge:MessageID>m-1</ge:MessageID><ge:Timestamp>2026-12-07T10:00:00Z</ge:Timestamp>\
<ge:Trace><ge:EventID>e</ge:EventID><ge:Instance>i</ge:Instance><ge:LogReference>l</ge:LogReference>\
<ge:CompType>PKI</ge:CompType><ge:Code>1047</ge:Code><ge:Severity>Error</ge:Severity>\
<ge:ErrorType>Security</ge:ErrorType><ge:ErrorText>revoked</ge:ErrorText></ge:Trace></ge:Error>";

fn envelope(payload: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\"?><S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\"><S:Body>{payload}</S:Body></S:Envelope>"
    )
    .into_bytes()
}

#[test]
fn a_2075_01_verify_certificate_request_is_schema_valid() {
    let ctx = CallContext {
        mandant_id: "Praxis <Dr.> Müller & Partner".into(),
        client_system_id: "KIM-Clientmodul".into(),
        workplace_id: "Empfang".into(),
        user_id: None,
    };
    let der: Vec<u8> = (0..1200u32).map(|i| (i * 31 % 251) as u8).collect();
    let req = verify_certificate::build(&VerifyCertificateRequest {
        context: &ctx,
        certificate: &der,
    });
    validate(&payload_of(&req.body), "VerifyCertificate");
    // And with a UserId in the context (POP3 logins may carry one).
    let with_user = CallContext {
        user_id: Some("arzt-1".into()),
        ..ctx
    };
    let req = verify_certificate::build(&VerifyCertificateRequest {
        context: &with_user,
        certificate: &der,
    });
    validate(&payload_of(&req.body), "VerifyCertificateWithUser");
}

#[test]
fn a_2075_01_soap_action_is_the_wsdls() {
    let wsdl = std::fs::read_to_string(schemas_dir().join("conn/CertificateService.wsdl"))
        .expect("CertificateService.wsdl");
    assert!(
        wsdl.contains(&format!(
            "soapAction=\"{}\"",
            verify_certificate::SOAP_ACTION
        )),
        "{} not in the WSDL",
        verify_certificate::SOAP_ACTION
    );
}

#[test]
fn a_2075_01_schema_valid_responses_parse_into_the_verdict() {
    let valid = response_payload("VALID", "");
    let invalid = response_payload("INVALID", REVOKED);
    validate(
        format!("<?xml version=\"1.0\"?>{valid}").as_bytes(),
        "VerifyCertificateResponseValid",
    );
    validate(
        format!("<?xml version=\"1.0\"?>{invalid}").as_bytes(),
        "VerifyCertificateResponseInvalid",
    );
    let v = verify_certificate::parse(&envelope(&valid)).unwrap();
    assert_eq!(v.result, VerificationResult::Valid);
    assert_eq!(v.roles, ["1.2.276.0.76.4.176"]);
    let i = verify_certificate::parse(&envelope(&invalid)).unwrap();
    assert_eq!(i.result, VerificationResult::Invalid);
    assert_eq!(i.reason_code(), Some(1047));
}
