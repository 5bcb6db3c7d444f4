//! EventService GetCards, CertificateService ReadCardCertificate, CardService GetPinStatus and
//! VerifyPin: what the Clientmodul needs to find the SM-B and its certificates.

use rsa::BigUint;

use super::config::{CardKind, PinState};
use super::error::SimError;
use super::keys::KeyMaterial;
use super::simulator::{Simulator, b64_encode, required};
use super::soap_out::{
    NS_CARD, NS_CARDCMN, NS_CERT, NS_CERTCMN, NS_CONN, NS_EVT, status_ok, xs_date_time,
};
use super::xml::{Element, escape};

/// GetCards: all cards, or those of the requested `CardType`.
pub fn get_cards(sim: &Simulator, req: &Element) -> Result<String, SimError> {
    let filter = req.find_local("CardType").map(|e| e.text().to_string());
    let mut cards = String::new();
    for (slot, card) in sim.config().cards.iter().enumerate() {
        if filter.as_deref().is_some_and(|f| f != card.kind.as_str()) {
            continue;
        }
        cards.push_str(&format!(
            "<CARD:Card><CONN:CardHandle>{}</CONN:CardHandle><CARDCMN:CardType>{}</CARDCMN:CardType>\
<CARDCMN:Iccsn>{}</CARDCMN:Iccsn><CARDCMN:CtId>CT-SIM</CARDCMN:CtId><CARDCMN:SlotId>{}</CARDCMN:SlotId>\
<CARD:InsertTime>{}</CARD:InsertTime><CARD:CardHolderName>{}</CARD:CardHolderName></CARD:Card>",
            escape(&card.handle),
            card.kind.as_str(),
            escape(&card.iccsn),
            slot + 1,
            xs_date_time(sim.now_unix().saturating_sub(3600)),
            escape(&card.holder),
        ));
    }
    Ok(format!(
        "<EVT:GetCardsResponse xmlns:EVT=\"{NS_EVT}\" xmlns:CONN=\"{NS_CONN}\" xmlns:CARD=\"{NS_CARD}\" \
xmlns:CARDCMN=\"{NS_CARDCMN}\">{}<CARD:Cards>{cards}</CARD:Cards></EVT:GetCardsResponse>",
        status_ok()
    ))
}

fn x509_data_info(cert_ref: &str, key: &KeyMaterial) -> Result<String, SimError> {
    let cert = key.certificate()?;
    let serial = BigUint::from_bytes_be(cert.tbs_certificate.serial_number.as_bytes());
    Ok(format!(
        "<CERTCMN:X509DataInfo><CERTCMN:CertRef>{cert_ref}</CERTCMN:CertRef><CERTCMN:X509Data>\
<CERTCMN:X509IssuerSerial><CERTCMN:X509IssuerName>{}</CERTCMN:X509IssuerName>\
<CERTCMN:X509SerialNumber>{serial}</CERTCMN:X509SerialNumber></CERTCMN:X509IssuerSerial>\
<CERTCMN:X509SubjectName>{}</CERTCMN:X509SubjectName>\
<CERTCMN:X509Certificate>{}</CERTCMN:X509Certificate></CERTCMN:X509Data></CERTCMN:X509DataInfo>",
        escape(&cert.tbs_certificate.issuer.to_string()),
        escape(&cert.tbs_certificate.subject.to_string()),
        b64_encode(&key.cert_der),
    ))
}

/// ReadCardCertificate: C.ENC (RSA by default, the ECC key with `Crypt=ECC`) and C.SIG (the
/// OSIG key). Unknown references yield an error like at a real Konnektor.
pub fn read_card_certificate(sim: &Simulator, req: &Element) -> Result<String, SimError> {
    let card = sim.card(required(req, "CardHandle")?.text())?;
    let want_ecc = req.find_local("Crypt").is_some_and(|c| c.text() == "ECC");
    let mut refs = Vec::new();
    req.find_all_local("CertRef", &mut refs);
    if refs.is_empty() {
        return Err(SimError::BadRequest("CertRef missing".into()));
    }
    let mut infos = String::new();
    for r in refs {
        let key = match r.text() {
            "C.ENC" => card.enc.iter().find(|k| k.is_rsa() != want_ecc),
            "C.SIG" => card.osig.as_ref(),
            other => {
                return Err(SimError::BadRequest(format!(
                    "certificate reference {other} not on card"
                )));
            }
        }
        .ok_or_else(|| SimError::Key(format!("{} not present on card", r.text())))?;
        infos.push_str(&x509_data_info(r.text(), key)?);
    }
    Ok(format!(
        "<CERT:ReadCardCertificateResponse xmlns:CERT=\"{NS_CERT}\" xmlns:CONN=\"{NS_CONN}\" \
xmlns:CERTCMN=\"{NS_CERTCMN}\">{}<CERTCMN:X509DataInfoList>{infos}</CERTCMN:X509DataInfoList>\
</CERT:ReadCardCertificateResponse>",
        status_ok()
    ))
}

fn pin_card(sim: &Simulator, req: &Element) -> Result<String, SimError> {
    let handle = required(req, "CardHandle")?.text().to_string();
    sim.card(&handle)?;
    Ok(handle)
}

/// GetPinStatus: VERIFIED by default; BLOCKED (0 tries) or VERIFIABLE (3 tries) as configured.
pub fn get_pin_status(sim: &Simulator, req: &Element) -> Result<String, SimError> {
    let handle = pin_card(sim, req)?;
    let (status, tries) = match sim.pin_state(&handle) {
        PinState::Verified => ("VERIFIED", ""),
        PinState::Verifiable | PinState::MistypedAtTerminal => {
            ("VERIFIABLE", "<CARD:LeftTries>3</CARD:LeftTries>")
        }
        PinState::Blocked => ("BLOCKED", "<CARD:LeftTries>0</CARD:LeftTries>"),
    };
    Ok(format!(
        "<CARD:GetPinStatusResponse xmlns:CARD=\"{NS_CARD}\" xmlns:CONN=\"{NS_CONN}\">{}\
<CARD:PinStatus>{status}</CARD:PinStatus>{tries}</CARD:GetPinStatusResponse>",
        status_ok()
    ))
}

/// VerifyPin: succeeds unless the PIN is blocked (then `WASBLOCKED`) or the user mistypes it
/// (`REJECTED`, 2 tries left).
pub fn verify_pin(sim: &Simulator, req: &Element) -> Result<String, SimError> {
    let handle = pin_card(sim, req)?;
    let (result, tries) = match sim.pin_state(&handle) {
        PinState::Blocked => ("WASBLOCKED", ""),
        PinState::MistypedAtTerminal => ("REJECTED", "<CARDCMN:LeftTries>2</CARDCMN:LeftTries>"),
        PinState::Verified | PinState::Verifiable => {
            sim.set_pin_state(&handle, PinState::Verified);
            ("OK", "")
        }
    };
    Ok(format!(
        "<CARD:VerifyPinResponse xmlns:CARD=\"{NS_CARD}\" xmlns:CONN=\"{NS_CONN}\" \
xmlns:CARDCMN=\"{NS_CARDCMN}\">{}<CARDCMN:PinResult>{result}</CARDCMN:PinResult>{tries}\
</CARD:VerifyPinResponse>",
        status_ok()
    ))
}

/// Used by SignDocument: the card must be an SM-B or HBA with a verified PIN.
pub fn require_signing_card<'a>(
    sim: &'a Simulator,
    handle: &str,
) -> Result<&'a super::config::Card, SimError> {
    let card = sim.card(handle)?;
    if !matches!(card.kind, CardKind::SmcB | CardKind::Hba) {
        return Err(SimError::UnknownCard(handle.to_string()));
    }
    if sim.pin_state(handle) != PinState::Verified {
        return Err(SimError::PinBlocked);
    }
    Ok(card)
}
