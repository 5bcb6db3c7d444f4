//! SignatureService `VerifyDocument`: check the signature of a received, decrypted message
//! (A_2048 integrity check, result mapped by KOM-LE-A_2050 onto `X-KIM-IntegrityCheckResult`).
//!
//! The enveloping CMS SignedData goes into `dss:SignatureObject/dss:Base64Signature` with
//! `Type="urn:ietf:rfc:5652"` (the DSS place for signatures that carry their content); the
//! Konnektor is asked for a verification report (`vr:ReturnVerificationReport`) because the
//! seed text attaches a report naming signer and signing time. The response is typed down to
//! what KOM-LE needs; the raw `vr:VerificationReport` bytes are kept for the PDF report.

use super::context::CallContext;
use super::envelope::{SoapRequest, with_payload};
use super::error::KonnektorError;
use super::namespaces::{CCTX, CONN, DS, DSS, SIG_V7_4, SIG_V7_5, VR, XADES};
use super::service_directory::SignatureServiceVersion;
use super::status::Status;
use super::xml_tree::Node;
use super::xml_writer::XmlOut;

/// `ResultMajor` of a valid signature in the DSS verification report.
pub const RESULT_MAJOR_VALID: &str = "urn:oasis:names:tc:dss:1.0:detail:valid";
/// `ResultMajor` of an invalid signature.
pub const RESULT_MAJOR_INVALID: &str = "urn:oasis:names:tc:dss:1.0:detail:invalid";
/// `ResultMajor` when validity could not be determined.
pub const RESULT_MAJOR_INDETERMINED: &str = "urn:oasis:names:tc:dss:1.0:detail:indetermined";
/// Report detail level requested from the Konnektor.
pub const REPORT_DETAIL_ALL: &str =
    "urn:oasis:names:tc:dss:1.0:profiles:verificationreport:reportdetail:allDetails";

/// SOAPAction per SignatureService WSDL version.
pub fn soap_action(version: SignatureServiceVersion) -> &'static str {
    match version {
        SignatureServiceVersion::V7_4 => {
            "http://ws.gematik.de/conn/SignatureService/v7.4#VerifyDocument"
        }
        SignatureServiceVersion::V7_5 => {
            "http://ws.gematik.de/conn/SignatureService/v7.5#VerifyDocument"
        }
    }
}

/// Request parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyDocumentRequest<'a> {
    pub version: SignatureServiceVersion,
    pub context: &'a CallContext,
    /// DER of the CMS SignedData (content included).
    pub signed_data: &'a [u8],
    /// Ask for the DSS verification report (signer and time for the report attachment).
    pub return_report: bool,
}

/// `SIG:VerificationResult/SIG:HighLevelResult`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HighLevelResult {
    Valid,
    Inconclusive,
    Invalid,
}

/// The signer as named by the verification report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SignerIdentity {
    /// `ds:X509IssuerName` of the signer certificate.
    pub issuer_name: String,
    /// `ds:X509SerialNumber` of the signer certificate.
    pub serial_number: String,
    /// `vr:Subject` of the signer certificate, if reported.
    pub subject: Option<String>,
    /// DER of the signer certificate, if the report includes certificate values.
    pub certificate: Option<Vec<u8>>,
}

/// One `vr:IndividualReport` (one per signature).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndividualReport {
    pub result_major: String,
    pub result_minor: Option<String>,
    pub result_message: Option<String>,
    /// `XAdES:SigningTime` (xs:dateTime as sent).
    pub signing_time: Option<String>,
    /// `FormatOK/ResultMajor`.
    pub format_ok: Option<String>,
    /// `SignatureOK/SigMathOK/ResultMajor`.
    pub signature_ok: Option<String>,
    /// `CertificatePathValidity/PathValiditySummary/ResultMajor`.
    pub certificate_path_valid: Option<String>,
    pub signer: Option<SignerIdentity>,
}

/// Parsed `VerifyDocumentResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyDocumentResponse {
    /// `OK` or `Warning`; the warning's gematik code (e.g. 4264 status not checkable) matters
    /// for KOM-LE-A_2050.
    pub status: Status,
    pub high_level_result: HighLevelResult,
    /// `TimestampType` as sent (`SYSTEM_TIMESTAMP`, …).
    pub timestamp_type: String,
    /// `Timestamp`: the time the verification refers to.
    pub timestamp: String,
    pub reports: Vec<IndividualReport>,
    /// The exact bytes of `vr:VerificationReport` from the response; prefixes used inside may be
    /// declared on an ancestor element.
    pub verification_report_xml: Option<Vec<u8>>,
}

impl VerifyDocumentResponse {
    /// The signer of the (first) signature, if reported.
    pub fn signer(&self) -> Option<&SignerIdentity> {
        self.reports.iter().find_map(|r| r.signer.as_ref())
    }

    /// The signing time of the (first) signature, if reported.
    pub fn signing_time(&self) -> Option<&str> {
        self.reports.iter().find_map(|r| r.signing_time.as_deref())
    }
}

/// Builds the request.
pub fn build(req: &VerifyDocumentRequest<'_>) -> SoapRequest {
    let mut out = XmlOut::envelope(req.signed_data.len());
    out.start_with(
        "SIG:VerifyDocument",
        &[
            ("xmlns:SIG", req.version.namespace()),
            ("xmlns:CONN", CONN),
            ("xmlns:CCTX", CCTX),
            ("xmlns:dss", DSS),
            ("xmlns:vr", VR),
        ],
    );
    req.context.write(&mut out);
    out.text_element("SIG:TvMode", "NONE");
    if req.return_report {
        out.start("SIG:OptionalInputs");
        out.start("vr:ReturnVerificationReport");
        out.text_element("vr:IncludeVerifier", "false");
        out.text_element("vr:IncludeCertificateValues", "true");
        out.text_element("vr:ReportDetailLevel", REPORT_DETAIL_ALL);
        out.end("vr:ReturnVerificationReport");
        out.end("SIG:OptionalInputs");
    }
    out.start("dss:SignatureObject");
    out.base64_element(
        "dss:Base64Signature",
        &[("Type", "urn:ietf:rfc:5652")],
        req.signed_data,
    );
    out.end("dss:SignatureObject");
    out.text_element("SIG:IncludeRevocationInfo", "false");
    out.end("SIG:VerifyDocument");
    SoapRequest {
        soap_action: soap_action(req.version),
        body: out.finish(),
    }
}

fn path_text(
    node: Node<'_, '_>,
    path: &[(&str, &str)],
    what: &'static str,
) -> Result<Option<String>, KonnektorError> {
    let mut cur = node;
    for (ns, local) in path {
        match cur.child(ns, local) {
            Some(n) => cur = n,
            None => return Ok(None),
        }
    }
    cur.text(what).map(Some)
}

fn parse_signer(detailed: Node<'_, '_>) -> Result<Option<SignerIdentity>, KonnektorError> {
    let Some(path) = detailed.child(VR, "CertificatePathValidity") else {
        return Ok(None);
    };
    let Some(id) = path.child(VR, "CertificateIdentifier") else {
        return Ok(None);
    };
    let issuer_name =
        path_text(id, &[(DS, "X509IssuerName")], "ds:X509IssuerName")?.unwrap_or_default();
    let serial_number =
        path_text(id, &[(DS, "X509SerialNumber")], "ds:X509SerialNumber")?.unwrap_or_default();
    let mut signer = SignerIdentity {
        issuer_name,
        serial_number,
        subject: None,
        certificate: None,
    };
    if let Some(detail) = path.child(VR, "PathValidityDetail") {
        let mut candidates = detail.children_named(VR, "CertificateValidity");
        let first = detail.child(VR, "CertificateValidity");
        // The signer's entry is the one whose identifier matches; gematik puts it first.
        let matching = candidates.find(|cv| {
            cv.child(VR, "CertificateIdentifier").is_some_and(|cid| {
                path_text(cid, &[(DS, "X509SerialNumber")], "ds:X509SerialNumber")
                    .ok()
                    .flatten()
                    .is_some_and(|s| s == signer.serial_number)
            })
        });
        if let Some(cv) = matching.or(first) {
            signer.subject = path_text(cv, &[(VR, "Subject")], "vr:Subject")?;
            signer.certificate = match cv.child(VR, "CertificateValue") {
                Some(v) => Some(v.base64("vr:CertificateValue")?),
                None => None,
            };
        }
    }
    Ok(Some(signer))
}

fn parse_individual(report: Node<'_, '_>) -> Result<IndividualReport, KonnektorError> {
    let result = report.require(DSS, "Result", "dss:Result")?;
    let mut out = IndividualReport {
        result_major: result
            .require(DSS, "ResultMajor", "dss:ResultMajor")?
            .text("dss:ResultMajor")?,
        result_minor: path_text(result, &[(DSS, "ResultMinor")], "dss:ResultMinor")?,
        result_message: path_text(result, &[(DSS, "ResultMessage")], "dss:ResultMessage")?,
        ..IndividualReport::default()
    };
    let signing_time_path = [
        (VR, "SignedProperties"),
        (VR, "SignedSignatureProperties"),
        (XADES, "SigningTime"),
    ];
    if let Some(soi) = report.child(VR, "SignedObjectIdentifier") {
        out.signing_time = path_text(soi, &signing_time_path, "XAdES:SigningTime")?;
    }
    let detailed = report
        .child(VR, "Details")
        .and_then(|d| d.child(VR, "DetailedSignatureReport"));
    if let Some(detailed) = detailed {
        out.format_ok = path_text(
            detailed,
            &[(VR, "FormatOK"), (VR, "ResultMajor")],
            "vr:ResultMajor",
        )?;
        out.signature_ok = path_text(
            detailed,
            &[(VR, "SignatureOK"), (VR, "SigMathOK"), (VR, "ResultMajor")],
            "vr:ResultMajor",
        )?;
        out.certificate_path_valid = path_text(
            detailed,
            &[
                (VR, "CertificatePathValidity"),
                (VR, "PathValiditySummary"),
                (VR, "ResultMajor"),
            ],
            "vr:ResultMajor",
        )?;
        if out.signing_time.is_none()
            && let Some(props) = detailed.child(VR, "Properties")
        {
            out.signing_time = path_text(props, &signing_time_path, "XAdES:SigningTime")?;
        }
        out.signer = parse_signer(detailed)?;
    }
    Ok(out)
}

/// Parses the response.
pub fn parse(input: &[u8]) -> Result<VerifyDocumentResponse, KonnektorError> {
    with_payload(
        input,
        &[SIG_V7_4, SIG_V7_5],
        "VerifyDocumentResponse",
        "SIG:VerifyDocumentResponse",
        |resp| {
            let ns = std::str::from_utf8(resp.ns()).unwrap_or_default();
            let status = Status::parse_child(resp)?;
            let vr = resp.require(ns, "VerificationResult", "SIG:VerificationResult")?;
            let high_level_result = match vr
                .require(ns, "HighLevelResult", "SIG:HighLevelResult")?
                .text("SIG:HighLevelResult")?
                .as_str()
            {
                "VALID" => HighLevelResult::Valid,
                "INCONCLUSIVE" => HighLevelResult::Inconclusive,
                "INVALID" => HighLevelResult::Invalid,
                _ => return Err(KonnektorError::InvalidValue("SIG:HighLevelResult")),
            };
            let timestamp_type =
                path_text(vr, &[(ns, "TimestampType")], "SIG:TimestampType")?.unwrap_or_default();
            let timestamp =
                path_text(vr, &[(ns, "Timestamp")], "SIG:Timestamp")?.unwrap_or_default();
            let report = resp
                .child(ns, "OptionalOutputs")
                .and_then(|o| o.child(VR, "VerificationReport"));
            let mut reports = Vec::new();
            if let Some(report) = report {
                for ir in report.children_named(VR, "IndividualReport") {
                    reports.push(parse_individual(ir)?);
                }
            }
            Ok(VerifyDocumentResponse {
                status,
                high_level_result,
                timestamp_type,
                timestamp,
                reports,
                verification_report_xml: report.map(|r| r.raw().to_vec()),
            })
        },
    )
}
