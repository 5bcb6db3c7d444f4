//! CertificateService `ReadCardCertificate`: a card's C.ENC certificate.
//!
//! WHY: receiving finds the card that holds the fetching user's key by comparing the cards'
//! C.ENC certificates with the IDs recipient-emails names for the user (gemSpec_CM_KOMLE
//! §3.8.4, KOM-LE-A_2060); sending may read the SM-B's own C.ENC (a RecipientInfo for the
//! sender, gemSMIME_KOMLE).

use super::context::CallContext;
use super::envelope::{SoapRequest, with_payload};
use super::error::KonnektorError;
use super::namespaces::{CCTX, CERT, CERTCMN, CONN};
use super::status::Status;
use super::xml_writer::XmlOut;

/// SOAPAction from CertificateService.wsdl v6.0.
pub const SOAP_ACTION: &str =
    "http://ws.gematik.de/conn/CertificateService/v6.0#ReadCardCertificate";

/// Certificate references of CertificateServiceCommon 2.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertRef {
    Aut,
    Enc,
    Sig,
    Qes,
}

impl CertRef {
    pub fn as_str(self) -> &'static str {
        match self {
            CertRef::Aut => "C.AUT",
            CertRef::Enc => "C.ENC",
            CertRef::Sig => "C.SIG",
            CertRef::Qes => "C.QES",
        }
    }
}

/// Request parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadCardCertificateRequest<'a> {
    pub context: &'a CallContext,
    pub card_handle: &'a str,
    /// Which certificates; KOM-LE needs `[CertRef::Enc]`.
    pub cert_refs: &'a [CertRef],
}

/// One certificate read from the card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardCertificate {
    /// `CertRef` as sent (`C.ENC`, …).
    pub cert_ref: String,
    /// DER of the certificate.
    pub certificate: Vec<u8>,
    pub issuer_name: String,
    pub serial_number: String,
    pub subject_name: String,
}

/// Parsed `ReadCardCertificateResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadCardCertificateResponse {
    pub status: Status,
    /// Only entries that carry a certificate.
    pub certificates: Vec<CardCertificate>,
}

/// Builds the request.
pub fn build(req: &ReadCardCertificateRequest<'_>) -> SoapRequest {
    let mut out = XmlOut::envelope(0);
    out.start_with(
        "CERT:ReadCardCertificate",
        &[
            ("xmlns:CERT", CERT),
            ("xmlns:CCTX", CCTX),
            ("xmlns:CONN", CONN),
        ],
    );
    out.text_element("CONN:CardHandle", req.card_handle);
    req.context.write(&mut out);
    out.start("CERT:CertRefList");
    for r in req.cert_refs {
        out.text_element("CERT:CertRef", r.as_str());
    }
    out.end("CERT:CertRefList");
    out.end("CERT:ReadCardCertificate");
    SoapRequest {
        soap_action: SOAP_ACTION,
        body: out.finish(),
    }
}

/// Parses the response.
pub fn parse(input: &[u8]) -> Result<ReadCardCertificateResponse, KonnektorError> {
    with_payload(
        input,
        &[CERT],
        "ReadCardCertificateResponse",
        "CERT:ReadCardCertificateResponse",
        |resp| {
            let status = Status::parse_child(resp)?;
            let list = resp.require(CERTCMN, "X509DataInfoList", "CERTCMN:X509DataInfoList")?;
            let mut certificates = Vec::new();
            for info in list.children_named(CERTCMN, "X509DataInfo") {
                let cert_ref = info
                    .require(CERTCMN, "CertRef", "CERTCMN:CertRef")?
                    .text("CERTCMN:CertRef")?;
                let Some(data) = info.child(CERTCMN, "X509Data") else {
                    continue;
                };
                let issuer_serial =
                    data.require(CERTCMN, "X509IssuerSerial", "CERTCMN:X509IssuerSerial")?;
                certificates.push(CardCertificate {
                    cert_ref,
                    certificate: data
                        .require(CERTCMN, "X509Certificate", "CERTCMN:X509Certificate")?
                        .base64("CERTCMN:X509Certificate")?,
                    issuer_name: issuer_serial
                        .require(CERTCMN, "X509IssuerName", "CERTCMN:X509IssuerName")?
                        .text("CERTCMN:X509IssuerName")?,
                    serial_number: issuer_serial
                        .require(CERTCMN, "X509SerialNumber", "CERTCMN:X509SerialNumber")?
                        .text("CERTCMN:X509SerialNumber")?,
                    subject_name: data
                        .require(CERTCMN, "X509SubjectName", "CERTCMN:X509SubjectName")?
                        .text("CERTCMN:X509SubjectName")?,
                });
            }
            Ok(ReadCardCertificateResponse {
                status,
                certificates,
            })
        },
    )
}
