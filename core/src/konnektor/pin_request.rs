//! The request shape shared by CardService `GetPinStatus` and `VerifyPin` (context, CardHandle,
//! PinTyp), so both operation files build it the same way.
//!
//! The PIN itself is entered at the card terminal, never here. The schema set holds
//! CardService.xsd but no CardService WSDL; the SOAPActions follow the
//! `<namespace>#<operation>` convention of every other Konnektor WSDL.

use super::context::CallContext;
use super::envelope::SoapRequest;
use super::error::KonnektorError;
use super::namespaces::{CARD, CARDCMN, CCTX, CONN};
use super::xml_tree::Node;
use super::xml_writer::XmlOut;

/// PIN type of the SM-B.
pub const PIN_TYPE_SMC: &str = "PIN.SMC";
/// PIN type of a HBA (cardholder PIN).
pub const PIN_TYPE_CH: &str = "PIN.CH";

/// Request parameters of GetPinStatus and VerifyPin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinRequest<'a> {
    pub context: &'a CallContext,
    pub card_handle: &'a str,
    /// [`PIN_TYPE_SMC`] for the SM-B, [`PIN_TYPE_CH`] for a HBA.
    pub pin_type: &'a str,
}

pub(crate) fn build(req: &PinRequest<'_>, element: &str, soap_action: &'static str) -> SoapRequest {
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

/// `LeftTries` (nonNegativeInteger) in namespace `ns`, if present.
pub(crate) fn left_tries(node: Node<'_, '_>, ns: &str) -> Result<Option<u32>, KonnektorError> {
    match node.child(ns, "LeftTries") {
        Some(n) => n
            .text("LeftTries")?
            .parse()
            .map(Some)
            .map_err(|_| KonnektorError::InvalidValue("LeftTries")),
        None => Ok(None),
    }
}
