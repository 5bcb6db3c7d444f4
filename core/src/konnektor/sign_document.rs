//! SignatureService `SignDocument`: sign the message with the SM-B (KOM-LE-A_2177, A_2299 step 1).
//!
//! The request carries the recipient-emails attribute (KOM-LE-A_2190) DER-encoded and base64 in
//! `SignRequest/OptionalInputs/dss:Properties/dss:SignedProperties/dss:Property/dss:Value/
//! CMSAttribute` with identifier `RecipientEmailsAttribute`, asks for a CMS signature
//! (`urn:ietf:rfc:5652`) that includes the content (`IncludeEContent`), and on SignatureService
//! 7.5 sets `Crypt` to `RSA` because KOM-LE always signs with the SM-B's RSA key (KOM-LE-A_2020).
//! The response's `dss:Base64Signature` is the CMS SignedData.

use super::context::CallContext;
use super::envelope::{SoapRequest, with_payload};
use super::error::KonnektorError;
use super::namespaces::{CCTX, CONN, DSS, SIG_V7_4, SIG_V7_5};
use super::service_directory::SignatureServiceVersion;
use super::status::Status;
use super::xml_writer::XmlOut;

/// `dss:SignatureType` for CMS (RFC 5652).
pub const SIGNATURE_TYPE_CMS: &str = "urn:ietf:rfc:5652";
/// `dss:Identifier` of the recipient-emails property (KOM-LE-A_2190).
pub const RECIPIENT_EMAILS_IDENTIFIER: &str = "RecipientEmailsAttribute";

/// SOAPAction per SignatureService WSDL version.
pub fn soap_action(version: SignatureServiceVersion) -> &'static str {
    match version {
        SignatureServiceVersion::V7_4 => {
            "http://ws.gematik.de/conn/SignatureService/v7.4#SignDocument"
        }
        SignatureServiceVersion::V7_5 => {
            "http://ws.gematik.de/conn/SignatureService/v7.5#SignDocument"
        }
    }
}

/// Request parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignDocumentRequest<'a> {
    pub version: SignatureServiceVersion,
    pub context: &'a CallContext,
    /// CardHandle of the SM-B.
    pub card_handle: &'a str,
    /// From GetJobNumber (`[A-Z]{3}-[0-9]{3}`).
    pub job_number: &'a str,
    /// Echoed in the response's `SignResponse/@RequestID`.
    pub request_id: &'a str,
    /// DER of the recipient-emails `Attribute` (OID 1.2.276.0.76.4.173).
    pub recipient_emails_attribute: &'a [u8],
    /// The bytes to sign: `Content-Type: message/rfc822` CRLF CRLF + the mail, in parts that
    /// are signed as one document (the pipeline passes a small head and the mail's own bytes,
    /// so the sign input is never assembled in a buffer of its own).
    pub document: &'a [&'a [u8]],
}

/// Parsed `SignDocumentResponse` (first `SignResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignDocumentResponse {
    pub status: Status,
    pub request_id: String,
    /// DER of the CMS ContentInfo with SignedData.
    pub signed_data: Vec<u8>,
}

/// Builds the request; base64 payloads are encoded straight into the envelope buffer.
pub fn build(req: &SignDocumentRequest<'_>) -> SoapRequest {
    let document_len: usize = req.document.iter().map(|p| p.len()).sum();
    let mut out = XmlOut::envelope(document_len + req.recipient_emails_attribute.len());
    out.start_with(
        "SIG:SignDocument",
        &[
            ("xmlns:SIG", req.version.namespace()),
            ("xmlns:CONN", CONN),
            ("xmlns:CCTX", CCTX),
            ("xmlns:dss", DSS),
        ],
    );
    out.text_element("CONN:CardHandle", req.card_handle);
    if req.version == SignatureServiceVersion::V7_5 {
        // KOM-LE-A_2020: always the RSA key, recipients may not support ECC.
        out.text_element("SIG:Crypt", "RSA");
    }
    req.context.write(&mut out);
    out.text_element("SIG:TvMode", "NONE");
    out.text_element("SIG:JobNumber", req.job_number);
    out.start_with("SIG:SignRequest", &[("RequestID", req.request_id)]);
    out.start("SIG:OptionalInputs");
    out.text_element("dss:SignatureType", SIGNATURE_TYPE_CMS);
    out.start("dss:Properties");
    out.start("dss:SignedProperties");
    out.start("dss:Property");
    out.text_element("dss:Identifier", RECIPIENT_EMAILS_IDENTIFIER);
    out.start("dss:Value");
    out.base64_element("CMSAttribute", &[], req.recipient_emails_attribute);
    out.end("dss:Value");
    out.end("dss:Property");
    out.end("dss:SignedProperties");
    out.end("dss:Properties");
    out.text_element("SIG:IncludeEContent", "true");
    out.end("SIG:OptionalInputs");
    out.start("SIG:Document");
    out.base64_parts_element("dss:Base64Data", req.document);
    out.end("SIG:Document");
    out.text_element("SIG:IncludeRevocationInfo", "false");
    out.end("SIG:SignRequest");
    out.end("SIG:SignDocument");
    SoapRequest {
        soap_action: soap_action(req.version),
        body: out.finish(),
    }
}

/// Parses the response; the signature bytes are decoded straight from the input.
pub fn parse(input: &[u8]) -> Result<SignDocumentResponse, KonnektorError> {
    parse_after(input, &[])
}

/// As [`parse`], but `signed_data` is `prefix` followed by the SignedData, decoded into one
/// buffer of exactly that size. The send pipeline passes the header of the signed-data MIME
/// entity (KOM-LE-A_2019 step 2) and so gets the EncryptDocument input without a second
/// full-size copy of the signature.
pub fn parse_after(input: &[u8], prefix: &[u8]) -> Result<SignDocumentResponse, KonnektorError> {
    with_payload(
        input,
        &[SIG_V7_4, SIG_V7_5],
        "SignDocumentResponse",
        "SIG:SignDocumentResponse",
        |resp| {
            let ns = std::str::from_utf8(resp.ns()).unwrap_or_default();
            let sign = resp.require(ns, "SignResponse", "SIG:SignResponse")?;
            let status = Status::parse_child(sign)?;
            let signed_data = sign
                .require(DSS, "SignatureObject", "dss:SignatureObject")?
                .require(DSS, "Base64Signature", "dss:Base64Signature")?
                .base64_after(prefix, "dss:Base64Signature")?;
            Ok(SignDocumentResponse {
                status,
                request_id: sign.attr("RequestID").unwrap_or_default().to_owned(),
                signed_data,
            })
        },
    )
}
