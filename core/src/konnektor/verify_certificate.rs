//! CertificateService `VerifyCertificate`: the Konnektor checks the TLS server certificate of
//! the MTA or POP3 server (KOM-LE-A_2075-01).
//!
//! The request carries the call context and the end-entity certificate as
//! `CERTCMN:X509Certificate` (base64 DER). `VerificationTime` is left out on purpose: the
//! Konnektor then checks at its own, TI-synchronised time, which is the time the result is
//! meant for (a TLS connection being opened now). The response's
//! `VerificationStatus/VerificationResult` is `VALID`, `INCONCLUSIVE` or `INVALID`; a
//! `GERROR:Error` beside it names why (gemSpec_Kon TUC_KON_037 codes), and `RoleList` names the
//! roles the certificate carries.

use super::context::CallContext;
use super::envelope::{SoapRequest, with_payload};
use super::error::KonnektorError;
use super::namespaces::{CCTX, CERT, CERTCMN, CONN, GERROR};
use super::status::Status;
use super::telematik_error::TelematikError;
use super::xml_writer::XmlOut;

/// SOAPAction from CertificateService.wsdl v6.0.
pub const SOAP_ACTION: &str = "http://ws.gematik.de/conn/CertificateService/v6.0#VerifyCertificate";

/// Request parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyCertificateRequest<'a> {
    pub context: &'a CallContext,
    /// DER of the certificate to check (the server's end-entity certificate).
    pub certificate: &'a [u8],
}

/// `CERT:VerificationResultType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerificationResult {
    /// Path, validity and revocation status checked and good.
    Valid,
    /// Nothing found against the certificate, but not everything could be checked (e.g. the
    /// revocation status was not obtainable).
    Inconclusive,
    /// The certificate must not be used (expired, revoked, no path to a TSL anchor, ...).
    Invalid,
}

impl VerificationResult {
    /// The value as the schema spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            VerificationResult::Valid => "VALID",
            VerificationResult::Inconclusive => "INCONCLUSIVE",
            VerificationResult::Invalid => "INVALID",
        }
    }
}

/// Parsed `VerifyCertificateResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyCertificateResponse {
    /// `OK` or `Warning` (an `ERROR` status is a [`KonnektorError::Status`]).
    pub status: Status,
    pub result: VerificationResult,
    /// Why the result is not `VALID`, when the Konnektor says so.
    pub error: Option<TelematikError>,
    /// `RoleList/Role` (e.g. the role OID of the server certificate's admission).
    pub roles: Vec<String>,
}

impl VerifyCertificateResponse {
    /// The gematik code naming the reason, if the Konnektor sent one.
    pub fn reason_code(&self) -> Option<i64> {
        self.error.as_ref().and_then(TelematikError::code)
    }
}

/// Builds the request.
pub fn build(req: &VerifyCertificateRequest<'_>) -> SoapRequest {
    let mut out = XmlOut::envelope(req.certificate.len());
    out.start_with(
        "CERT:VerifyCertificate",
        &[
            ("xmlns:CERT", CERT),
            ("xmlns:CCTX", CCTX),
            ("xmlns:CONN", CONN),
            ("xmlns:CERTCMN", CERTCMN),
        ],
    );
    req.context.write(&mut out);
    out.base64_element("CERTCMN:X509Certificate", &[], req.certificate);
    out.end("CERT:VerifyCertificate");
    SoapRequest {
        soap_action: SOAP_ACTION,
        body: out.finish(),
    }
}

/// Parses the response; faults and an `ERROR` status become [`KonnektorError`]s as for every
/// other operation.
pub fn parse(input: &[u8]) -> Result<VerifyCertificateResponse, KonnektorError> {
    with_payload(
        input,
        &[CERT],
        "VerifyCertificateResponse",
        "CERT:VerifyCertificateResponse",
        |resp| {
            let status = Status::parse_child(resp)?;
            let vs = resp.require(CERT, "VerificationStatus", "CERT:VerificationStatus")?;
            let result = match vs
                .require(CERT, "VerificationResult", "CERT:VerificationResult")?
                .text("CERT:VerificationResult")?
                .trim()
            {
                "VALID" => VerificationResult::Valid,
                "INCONCLUSIVE" => VerificationResult::Inconclusive,
                "INVALID" => VerificationResult::Invalid,
                _ => return Err(KonnektorError::InvalidValue("CERT:VerificationResult")),
            };
            let error = match vs.child(GERROR, "Error") {
                Some(e) => Some(TelematikError::parse(e)?),
                None => None,
            };
            let mut roles = Vec::new();
            if let Some(list) = resp.child(CERT, "RoleList") {
                for role in list.children_named(CERT, "Role") {
                    roles.push(role.text("CERT:Role")?);
                }
            }
            Ok(VerifyCertificateResponse {
                status,
                result,
                error,
                roles,
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> CallContext {
        CallContext {
            mandant_id: "m<1>".into(),
            client_system_id: "cs".into(),
            workplace_id: "wp".into(),
            user_id: None,
        }
    }

    fn envelope(payload: &str) -> Vec<u8> {
        format!(
            "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>{payload}</s:Body></s:Envelope>"
        )
        .into_bytes()
    }

    fn response(result: &str, error: &str) -> Vec<u8> {
        envelope(&format!(
            "<c:VerifyCertificateResponse xmlns:c=\"{CERT}\" xmlns:k=\"{CONN}\" xmlns:e=\"{GERROR}\">\
<k:Status><k:Result>OK</k:Result></k:Status>\
<c:VerificationStatus><c:VerificationResult>{result}</c:VerificationResult>{error}</c:VerificationStatus>\
<c:RoleList><c:Role>1.2.276.0.76.4.200</c:Role></c:RoleList></c:VerifyCertificateResponse>"
        ))
    }

    const REVOKED: &str = "<e:Error><e:MessageID>x</e:MessageID><e:Timestamp>2026-12-07T10:00:00Z</e:Timestamp>\
<e:Trace><e:EventID>1</e:EventID><e:Instance>i</e:Instance><e:LogReference>l</e:LogReference>\
<e:CompType>PKI</e:CompType><e:Code>1047</e:Code><e:Severity>Error</e:Severity>\
<e:ErrorType>Security</e:ErrorType><e:ErrorText>Zertifikat widerrufen</e:ErrorText></e:Trace></e:Error>";

    #[test]
    fn a_2075_request_carries_context_and_certificate_base64() {
        let req = build(&VerifyCertificateRequest {
            context: &ctx(),
            certificate: &[0x30, 0x82, 0x01, 0xff],
        });
        assert_eq!(req.soap_action, SOAP_ACTION);
        let body = String::from_utf8(req.body).unwrap();
        assert!(
            body.contains("<CONN:MandantId>m&lt;1&gt;</CONN:MandantId>"),
            "{body}"
        );
        assert!(
            body.contains("<CERTCMN:X509Certificate>MIIB/w==</CERTCMN:X509Certificate>"),
            "{body}"
        );
        assert!(!body.contains("VerificationTime"));
    }

    #[test]
    fn a_2075_valid_inconclusive_invalid_are_typed() {
        let valid = parse(&response("VALID", "")).unwrap();
        assert_eq!(valid.result, VerificationResult::Valid);
        assert_eq!(valid.roles, ["1.2.276.0.76.4.200"]);
        assert_eq!(valid.reason_code(), None);
        let inconclusive = parse(&response("INCONCLUSIVE", "")).unwrap();
        assert_eq!(inconclusive.result, VerificationResult::Inconclusive);
        let invalid = parse(&response("INVALID", REVOKED)).unwrap();
        assert_eq!(invalid.result, VerificationResult::Invalid);
        assert_eq!(invalid.reason_code(), Some(1047));
    }

    #[test]
    fn a_2075_unknown_result_and_missing_status_are_errors_not_valid() {
        assert_eq!(
            parse(&response("PROBABLY", "")).unwrap_err(),
            KonnektorError::InvalidValue("CERT:VerificationResult")
        );
        let no_status = envelope(&format!(
            "<c:VerifyCertificateResponse xmlns:c=\"{CERT}\"><c:VerificationStatus>\
<c:VerificationResult>VALID</c:VerificationResult></c:VerificationStatus></c:VerifyCertificateResponse>"
        ));
        assert_eq!(
            parse(&no_status).unwrap_err(),
            KonnektorError::MissingElement("CONN:Status")
        );
    }

    #[test]
    fn a_2075_soap_fault_is_typed_with_its_gematik_code() {
        let fault = envelope(&format!(
            "<s:Fault><faultcode>s:Server</faultcode><faultstring>Kontext</faultstring>\
<detail><e:Error xmlns:e=\"{GERROR}\"><e:MessageID>x</e:MessageID><e:Timestamp>t</e:Timestamp>\
<e:Trace><e:EventID>1</e:EventID><e:Instance>i</e:Instance><e:LogReference>l</e:LogReference>\
<e:CompType>K</e:CompType><e:Code>4004</e:Code><e:Severity>Error</e:Severity>\
<e:ErrorType>Technical</e:ErrorType><e:ErrorText>Ungültige Mandanten-ID</e:ErrorText></e:Trace>\
</e:Error></detail></s:Fault>"
        ));
        let e = parse(&fault).unwrap_err();
        assert!(matches!(e, KonnektorError::Fault(_)), "{e:?}");
        assert_eq!(e.gematik_code(), Some(4004));
    }
}
