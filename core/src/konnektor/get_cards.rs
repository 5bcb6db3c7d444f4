//! EventService `GetCards`: find the SM-B (signing, decryption) and HBAs of the call context.
//!
//! gemSpec_CM_KOMLE §3.8: signing starts with GetCards → SM-B; decryption picks among the
//! listed SM-Bs and HBAs the card whose C.ENC certificate recipient-emails names for the
//! fetching user (§3.8.4).

use super::context::CallContext;
use super::envelope::{SoapRequest, with_payload};
use super::error::KonnektorError;
use super::namespaces::{CARD, CARDCMN, CCTX, CONN, EVT};
use super::status::Status;
use super::xml_tree::Node;
use super::xml_writer::XmlOut;

/// SOAPAction from EventService.wsdl v7.2.
pub const SOAP_ACTION: &str = "http://ws.gematik.de/conn/EventService/v7.2#GetCards";

/// Card types of CardServiceCommon 2.0 that KOM-LE asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CardType {
    /// `SMC-B`: the institution card.
    SmcB,
    /// `HSM-B`: the institution's HSM-based SM-B.
    HsmB,
    /// `HBA`: health professional card.
    Hba,
}

impl CardType {
    pub fn as_str(self) -> &'static str {
        match self {
            CardType::SmcB => "SMC-B",
            CardType::HsmB => "HSM-B",
            CardType::Hba => "HBA",
        }
    }
}

/// Request parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetCardsRequest<'a> {
    pub context: &'a CallContext,
    /// Restrict to one card type; `None` lists all cards of the context.
    pub card_type: Option<CardType>,
}

/// One `CARD:Card` of the response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Card {
    pub card_handle: String,
    /// `CARDCMN:CardType` as sent (`SMC-B`, `HSM-B`, `SM-B`, `HBA`, `HBA-qSig`, `HBAx`, `EGK`, …).
    pub card_type: String,
    pub iccsn: Option<String>,
    pub ct_id: String,
    pub slot_id: String,
    pub insert_time: String,
    pub card_holder_name: Option<String>,
    pub certificate_expiration_date: Option<String>,
}

impl Card {
    /// True for the institution's security module (SM-B in any form).
    pub fn is_smb(&self) -> bool {
        matches!(self.card_type.as_str(), "SMC-B" | "HSM-B" | "SM-B")
    }

    /// True for a health professional card.
    pub fn is_hba(&self) -> bool {
        matches!(self.card_type.as_str(), "HBA" | "HBA-qSig" | "HBAx")
    }
}

/// Parsed `GetCardsResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GetCardsResponse {
    pub status: Status,
    pub cards: Vec<Card>,
}

impl GetCardsResponse {
    /// The first SM-B, the card KOM-LE signs with (KOM-LE-A_2020) and decrypts with.
    pub fn smb(&self) -> Option<&Card> {
        self.cards.iter().find(|c| c.is_smb())
    }

    /// The HBAs visible in the context. These may belong to several users (every physician
    /// of the practice): which one holds the fetching user's key is decided by the
    /// certificates recipient-emails names (gemSpec_CM_KOMLE §3.8.4, KOM-LE-A_2045), not by
    /// this list.
    pub fn hbas(&self) -> impl Iterator<Item = &Card> {
        self.cards.iter().filter(|c| c.is_hba())
    }
}

/// Builds the request.
pub fn build(req: &GetCardsRequest<'_>) -> SoapRequest {
    let mut out = XmlOut::envelope(0);
    out.start_with(
        "EVT:GetCards",
        &[
            ("xmlns:EVT", EVT),
            ("xmlns:CCTX", CCTX),
            ("xmlns:CONN", CONN),
            ("xmlns:CARDCMN", CARDCMN),
            ("mandant-wide", "false"),
        ],
    );
    req.context.write(&mut out);
    if let Some(t) = req.card_type {
        out.text_element("CARDCMN:CardType", t.as_str());
    }
    out.end("EVT:GetCards");
    SoapRequest {
        soap_action: SOAP_ACTION,
        body: out.finish(),
    }
}

fn opt_text(
    n: Node<'_, '_>,
    ns: &str,
    local: &str,
    what: &'static str,
) -> Result<Option<String>, KonnektorError> {
    n.child(ns, local).map(|c| c.text(what)).transpose()
}

/// Parses the response.
pub fn parse(input: &[u8]) -> Result<GetCardsResponse, KonnektorError> {
    with_payload(
        input,
        &[EVT],
        "GetCardsResponse",
        "EVT:GetCardsResponse",
        |resp| {
            let status = Status::parse_child(resp)?;
            let cards_node = resp.require(CARD, "Cards", "CARD:Cards")?;
            let mut cards = Vec::new();
            for c in cards_node.children_named(CARD, "Card") {
                cards.push(Card {
                    card_handle: c
                        .require(CONN, "CardHandle", "CONN:CardHandle")?
                        .text("CONN:CardHandle")?,
                    card_type: c
                        .require(CARDCMN, "CardType", "CARDCMN:CardType")?
                        .text("CARDCMN:CardType")?,
                    iccsn: opt_text(c, CARDCMN, "Iccsn", "CARDCMN:Iccsn")?,
                    ct_id: opt_text(c, CARDCMN, "CtId", "CARDCMN:CtId")?.unwrap_or_default(),
                    slot_id: opt_text(c, CARDCMN, "SlotId", "CARDCMN:SlotId")?.unwrap_or_default(),
                    insert_time: opt_text(c, CARD, "InsertTime", "CARD:InsertTime")?
                        .unwrap_or_default(),
                    card_holder_name: opt_text(c, CARD, "CardHolderName", "CARD:CardHolderName")?,
                    certificate_expiration_date: opt_text(
                        c,
                        CARD,
                        "CertificateExpirationDate",
                        "CARD:CertificateExpirationDate",
                    )?,
                });
            }
            Ok(GetCardsResponse { status, cards })
        },
    )
}
