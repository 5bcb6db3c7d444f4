//! CardService `VerifyPin`: unlock the SM-B (the user enters the PIN at the card terminal).

use super::envelope::{SoapRequest, with_payload};
use super::error::KonnektorError;
use super::namespaces::{CARD, CARDCMN};
use super::pin_request::{self, PinRequest};
use super::status::Status;

/// SOAPAction (CardService 8.1; no WSDL in the schema set, see [`pin_request`]).
pub const SOAP_ACTION: &str = "http://ws.gematik.de/conn/CardService/v8.1#VerifyPin";

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

/// Parsed `VerifyPinResponse` (`CARDCMN:PinResponseType`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyPinResponse {
    pub status: Status,
    pub pin_result: PinResult,
    pub left_tries: Option<u32>,
}

/// Builds the request.
pub fn build(req: &PinRequest<'_>) -> SoapRequest {
    pin_request::build(req, "CARD:VerifyPin", SOAP_ACTION)
}

/// Parses the response.
pub fn parse(input: &[u8]) -> Result<VerifyPinResponse, KonnektorError> {
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
                left_tries: pin_request::left_tries(resp, CARDCMN)?,
            })
        },
    )
}
