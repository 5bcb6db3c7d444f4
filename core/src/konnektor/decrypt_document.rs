//! EncryptionService `DecryptDocument`: decrypt a received KOM-LE message with the card of the
//! fetching user (A_2043–2045): `PrivateKeyOnCard { CardHandle, KeyReference = C.ENC }`.
//!
//! SOAPAction quirk: the WSDL binds DecryptDocument to
//! `http://ws.gematik.de/conn/crypt/EncryptionService/v6.1#DecryptDocument` (note `/crypt/`),
//! unlike EncryptDocument; Konnektors dispatch on it, so it is copied verbatim.

use super::context::CallContext;
use super::envelope::{SoapRequest, with_payload};
use super::error::KonnektorError;
use super::namespaces::{CCTX, CONN, CRYPT, DSS};
use super::status::Status;
use super::xml_writer::XmlOut;

/// SOAPAction from EncryptionService.wsdl v6.1 (with the `/crypt/` quirk).
pub const SOAP_ACTION: &str =
    "http://ws.gematik.de/conn/crypt/EncryptionService/v6.1#DecryptDocument";
/// The key reference of the encryption key on SM-B and HBA.
pub const KEY_REFERENCE_ENC: &str = "C.ENC";

/// Request parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecryptDocumentRequest<'a> {
    pub context: &'a CallContext,
    /// CardHandle of the SM-B or HBA holding the private key.
    pub card_handle: &'a str,
    /// DER of the CMS AuthEnvelopedData.
    pub document: &'a [u8],
}

/// Parsed `DecryptDocumentResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecryptDocumentResponse {
    pub status: Status,
    /// The decrypted content (the signed-data MIME entity). Message content: never log it.
    pub plaintext: Vec<u8>,
}

/// Builds the request.
pub fn build(req: &DecryptDocumentRequest<'_>) -> SoapRequest {
    let mut out = XmlOut::envelope(req.document.len());
    out.start_with(
        "CRYPT:DecryptDocument",
        &[
            ("xmlns:CRYPT", CRYPT),
            ("xmlns:CONN", CONN),
            ("xmlns:CCTX", CCTX),
            ("xmlns:dss", DSS),
        ],
    );
    req.context.write(&mut out);
    out.start("CRYPT:PrivateKeyOnCard");
    out.text_element("CONN:CardHandle", req.card_handle);
    out.text_element("CRYPT:KeyReference", KEY_REFERENCE_ENC);
    out.end("CRYPT:PrivateKeyOnCard");
    out.start("CONN:Document");
    out.base64_element("dss:Base64Data", &[], req.document);
    out.end("CONN:Document");
    out.end("CRYPT:DecryptDocument");
    SoapRequest {
        soap_action: SOAP_ACTION,
        body: out.finish(),
    }
}

/// Parses the response.
pub fn parse(input: &[u8]) -> Result<DecryptDocumentResponse, KonnektorError> {
    with_payload(
        input,
        &[CRYPT],
        "DecryptDocumentResponse",
        "CRYPT:DecryptDocumentResponse",
        |resp| {
            let status = Status::parse_child(resp)?;
            let plaintext = resp
                .require(CONN, "Document", "CONN:Document")?
                .require(DSS, "Base64Data", "dss:Base64Data")?
                .base64("dss:Base64Data")?;
            Ok(DecryptDocumentResponse { status, plaintext })
        },
    )
}
