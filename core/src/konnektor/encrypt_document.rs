//! EncryptionService `EncryptDocument`: hybrid-encrypt the signed message for all recipients and
//! the sender (KOM-LE-A_2177, A_2299 step 3).
//!
//! `RecipientKeys` lists every encryption certificate (RSA always, ECC only when the Konnektor is
//! ECC capable, A_17464 — the caller filters). The recipient-emails attribute goes unprotected in
//! `OptionalInputs/UnprotectedProperties/dss:Property/dss:Value/CMSAttribute` (KOM-LE-A_2191) and
//! `EncryptionType` asks for CMS (`urn:ietf:rfc:5652`). The response's `CONN:Document` holds the
//! CMS AuthEnvelopedData.

use super::context::CallContext;
use super::envelope::{SoapRequest, with_payload};
use super::error::KonnektorError;
use super::namespaces::{CCTX, CONN, CRYPT, DSS};
use super::sign_document::RECIPIENT_EMAILS_IDENTIFIER;
use super::status::Status;
use super::xml_writer::XmlOut;

/// SOAPAction from EncryptionService.wsdl v6.1.
pub const SOAP_ACTION: &str = "http://ws.gematik.de/conn/EncryptionService/v6.1#EncryptDocument";
/// `CRYPT:EncryptionType` for CMS.
pub const ENCRYPTION_TYPE_CMS: &str = "urn:ietf:rfc:5652";

/// Request parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptDocumentRequest<'a> {
    pub context: &'a CallContext,
    /// DER of every encryption certificate (recipients and sender).
    pub certificates: &'a [Vec<u8>],
    /// DER of the recipient-emails `Attribute`.
    pub recipient_emails_attribute: &'a [u8],
    /// The CMS SignedData (the `smime.p7m` MIME entity of the signed message).
    pub document: &'a [u8],
}

/// Parsed `EncryptDocumentResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptDocumentResponse {
    pub status: Status,
    /// DER of the CMS ContentInfo with AuthEnvelopedData.
    pub encrypted: Vec<u8>,
}

/// Builds the request.
pub fn build(req: &EncryptDocumentRequest<'_>) -> SoapRequest {
    let certs: usize = req.certificates.iter().map(Vec::len).sum();
    let mut out =
        XmlOut::envelope(req.document.len() + req.recipient_emails_attribute.len() + certs);
    out.start_with(
        "CRYPT:EncryptDocument",
        &[
            ("xmlns:CRYPT", CRYPT),
            ("xmlns:CONN", CONN),
            ("xmlns:CCTX", CCTX),
            ("xmlns:dss", DSS),
        ],
    );
    req.context.write(&mut out);
    out.start("CRYPT:RecipientKeys");
    for cert in req.certificates {
        out.base64_element("CRYPT:Certificate", &[], cert);
    }
    out.end("CRYPT:RecipientKeys");
    out.start("CONN:Document");
    out.base64_element("dss:Base64Data", &[], req.document);
    out.end("CONN:Document");
    out.start("CRYPT:OptionalInputs");
    out.text_element("CRYPT:EncryptionType", ENCRYPTION_TYPE_CMS);
    out.start("CRYPT:UnprotectedProperties");
    out.start("dss:Property");
    out.text_element("dss:Identifier", RECIPIENT_EMAILS_IDENTIFIER);
    out.start("dss:Value");
    out.base64_element("CMSAttribute", &[], req.recipient_emails_attribute);
    out.end("dss:Value");
    out.end("dss:Property");
    out.end("CRYPT:UnprotectedProperties");
    out.end("CRYPT:OptionalInputs");
    out.end("CRYPT:EncryptDocument");
    SoapRequest {
        soap_action: SOAP_ACTION,
        body: out.finish(),
    }
}

/// Parses the response.
pub fn parse(input: &[u8]) -> Result<EncryptDocumentResponse, KonnektorError> {
    with_payload(
        input,
        &[CRYPT],
        "EncryptDocumentResponse",
        "CRYPT:EncryptDocumentResponse",
        |resp| {
            let status = Status::parse_child(resp)?;
            let encrypted = resp
                .require(CONN, "Document", "CONN:Document")?
                .require(DSS, "Base64Data", "dss:Base64Data")?
                .base64("dss:Base64Data")?;
            Ok(EncryptDocumentResponse { status, encrypted })
        },
    )
}
