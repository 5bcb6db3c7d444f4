//! CardService `GetPinStatus` and `VerifyPin` for the SM-B (`PIN.SMC`).
//!
//! gemSpec_CM_KOMLE §3.8: before signing, a locked SM-B is unlocked via GetPinStatus →
//! VerifyPin; failure leads to RSET + 451 (KOM-LE-A_2021). Both operations share one request
//! shape, so they share this file. The PIN itself is entered at the card terminal, never here.
//!
//! The schema set holds CardService.xsd but no CardService WSDL; the SOAPActions follow the
//! `<namespace>#<operation>` convention of every other Konnektor WSDL.

use super::context::CallContext;
use super::envelope::{SoapRequest, with_payload};
use super::error::KonnektorError;
use super::namespaces::{CARD, CARDCMN, CCTX, CONN};
use super::status::Status;
use super::xml_writer::XmlOut;

/// SOAPAction of GetPinStatus (CardService 8.1).
pub const GET_PIN_STATUS_SOAP_ACTION: &str =
    "http://ws.gematik.de/conn/CardService/v8.1#GetPinStatus";
/// SOAPAction of VerifyPin (CardService 8.1).
pub const VERIFY_PIN_SOAP_ACTION: &str = "http://ws.gematik.de/conn/CardService/v8.1#VerifyPin";
/// PIN type of the SM-B.
pub const PIN_TYPE_SMC: &str = "PIN.SMC";

/// Request parameters of both operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinRequest<'a> {
    pub context: &'a CallContext,
    pub card_handle: &'a str,
    /// `PIN.SMC` for the SM-B ([`PIN_TYPE_SMC`]), `PIN.CH` for a HBA.
    pub pin_type: &'a str,
}

/// `CARD:PinStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PinStatus {
    Verified,
    TransportPin,
    EmptyPin,
    Blocked,
    Verifiable,
}

/// Parsed `GetPinStatusResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetPinStatusResponse {
    pub status: Status,
    pub pin_status: Option<PinStatus>,
    pub left_tries: Option<u32>,
}

/// `CARDCMN:PinResult`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PinResult {
    Ok,
    Error,
    Rejected,
    WasBlocked,
    NowBlocked,
    TransportPin,
}

/// Parsed `VerifyPinResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyPinResponse {
    pub status: Status,
    pub pin_result: PinResult,
    pub left_tries: Option<u32>,
}

fn build(req: &PinRequest<'_>, element: &str, soap_action: &'static str) -> SoapRequest {
    let mut out = XmlOut::envelope(0);
    out.start_with(
        element,
        &[
            ("xmlns:CARD", CARD),
            ("xmlns:CARDCMN", CARDCMN),
            ("xmlns:CCTX", CCTX),
            ("xmlns:CONN", CONN),
        ],
    );
    req.context.write(&mut out);
    out.text_element("CONN:CardHandle", req.card_handle);
    out.text_element("CARDCMN:PinTyp", req.pin_type);
    out.end(element);
    SoapRequest {
        soap_action,
        body: out.finish(),
    }
}

/// Builds a GetPinStatus request.
pub fn build_get_pin_status(req: &PinRequest<'_>) -> SoapRequest {
    build(req, "CARD:GetPinStatus", GET_PIN_STATUS_SOAP_ACTION)
}

/// Builds a VerifyPin request.
pub fn build_verify_pin(req: &PinRequest<'_>) -> SoapRequest {
    build(req, "CARD:VerifyPin", VERIFY_PIN_SOAP_ACTION)
}

fn left_tries(
    node: super::xml_tree::Node<'_, '_>,
    ns: &str,
) -> Result<Option<u32>, KonnektorError> {
    match node.child(ns, "LeftTries") {
        Some(n) => n
            .text("LeftTries")?
            .parse()
            .map(Some)
            .map_err(|_| KonnektorError::InvalidValue("LeftTries")),
        None => Ok(None),
    }
}

/// Parses a GetPinStatus response.
pub fn parse_get_pin_status(input: &[u8]) -> Result<GetPinStatusResponse, KonnektorError> {
    with_payload(
        input,
        &[CARD],
        "GetPinStatusResponse",
        "CARD:GetPinStatusResponse",
        |resp| {
            let status = Status::parse_child(resp)?;
            let pin_status = match resp.child(CARD, "PinStatus") {
                Some(n) => Some(match n.text("CARD:PinStatus")?.as_str() {
                    "VERIFIED" => PinStatus::Verified,
                    "TRANSPORT_PIN" => PinStatus::TransportPin,
                    "EMPTY_PIN" => PinStatus::EmptyPin,
                    "BLOCKED" => PinStatus::Blocked,
                    "VERIFIABLE" => PinStatus::Verifiable,
                    _ => return Err(KonnektorError::InvalidValue("CARD:PinStatus")),
                }),
                None => None,
            };
            Ok(GetPinStatusResponse {
                status,
                pin_status,
                left_tries: left_tries(resp, CARD)?,
            })
        },
    )
}

/// Parses a VerifyPin response.
pub fn parse_verify_pin(input: &[u8]) -> Result<VerifyPinResponse, KonnektorError> {
    with_payload(
        input,
        &[CARD],
        "VerifyPinResponse",
        "CARD:VerifyPinResponse",
        |resp| {
            let status = Status::parse_child(resp)?;
            let pin_result = match resp
                .require(CARDCMN, "PinResult", "CARDCMN:PinResult")?
                .text("CARDCMN:PinResult")?
                .as_str()
            {
                "OK" => PinResult::Ok,
                "ERROR" => PinResult::Error,
                "REJECTED" => PinResult::Rejected,
                "WASBLOCKED" => PinResult::WasBlocked,
                "NOWBLOCKED" => PinResult::NowBlocked,
                "TRANSPORT_PIN" => PinResult::TransportPin,
                _ => return Err(KonnektorError::InvalidValue("CARDCMN:PinResult")),
            };
            Ok(VerifyPinResponse {
                status,
                pin_result,
                left_tries: left_tries(resp, CARDCMN)?,
            })
        },
    )
}
