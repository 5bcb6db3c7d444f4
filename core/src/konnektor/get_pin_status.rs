//! CardService `GetPinStatus`: is the SM-B unlocked? (gemSpec_CM_KOMLE §3.8: GetCards → SM-B →
//! GetPinStatus/VerifyPin when needed → SignDocument; failure → RSET + 451, KOM-LE-A_2021.)

use super::envelope::{SoapRequest, with_payload};
use super::error::KonnektorError;
use super::namespaces::CARD;
use super::pin_request::{self, PinRequest};
use super::status::Status;

/// SOAPAction (CardService 8.1; no WSDL in the schema set, see [`pin_request`]).
pub const SOAP_ACTION: &str = "http://ws.gematik.de/conn/CardService/v8.1#GetPinStatus";

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

/// Builds the request.
pub fn build(req: &PinRequest<'_>) -> SoapRequest {
    pin_request::build(req, "CARD:GetPinStatus", SOAP_ACTION)
}

/// Parses the response.
pub fn parse(input: &[u8]) -> Result<GetPinStatusResponse, KonnektorError> {
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
                left_tries: pin_request::left_tries(resp, CARD)?,
            })
        },
    )
}
