//! EncryptionService: EncryptDocument (AuthEnvelopedData for all recipient certificates) and
//! DecryptDocument (with the card's C.ENC keys).

use super::config::PinState;
use super::decrypt::decrypt_document as cms_decrypt;
use super::encrypt::{EncryptInput, encrypt_document as cms_encrypt};
use super::error::SimError;
use super::simulator::{Simulator, b64, b64_encode, required};
use super::soap_out::{NS_CONN, NS_CRYPT_PREFIX, NS_DSS, status_ok};
use super::verify::{ChainStatus, VerifyPolicy, check_certificate};
use super::xml::Element;

fn crypt_ns() -> String {
    format!("{NS_CRYPT_PREFIX}1")
}

fn document_content(req: &Element) -> Result<Vec<u8>, SimError> {
    let doc = req
        .child(NS_CONN, "Document")
        .ok_or_else(|| SimError::BadRequest("CONN:Document missing".into()))?;
    b64(required(doc, "Base64Data")?)
}

/// The gematik code of a recipient certificate that fails the certificate check. Our spec copy
/// has no gemSpec_Kon TUC_KON_037 table, so the simulator uses the code KOM-LE's
/// Tab_Verm_Sig_Prüf names for a certificate path that cannot be validated.
pub const CERTIFICATE_PATH_INVALID: u32 = 4206;

/// What a real Konnektor does before it encrypts (TUC_KON_037 for every recipient
/// certificate): validity now, not revoked, issued under a trust anchor. A failure is a SOAP
/// fault; nothing is encrypted to a self-made certificate a directory returned.
fn check_recipient(sim: &Simulator, der: &[u8]) -> Result<(), SimError> {
    let cfg = sim.config();
    let status = check_certificate(
        der,
        &VerifyPolicy {
            trust_anchors: &cfg.trust_anchors,
            revoked_serials: &cfg.revoked_serials,
            now_unix: sim.now_unix(),
        },
    )?;
    let why = match status {
        ChainStatus::Valid => return Ok(()),
        ChainStatus::Unverifiable { missing_issuer } => {
            format!("issuer {missing_issuer} is not under a trust anchor")
        }
        ChainStatus::Expired { subject } => format!("{subject} is outside its validity period"),
        ChainStatus::Revoked => "the certificate is revoked".to_owned(),
        ChainStatus::BadSignature { subject } => {
            format!("the issuer's signature over {subject} does not verify")
        }
    };
    Err(SimError::Coded {
        code: CERTIFICATE_PATH_INVALID,
        text: format!("recipient certificate check failed: {why}"),
    })
}

/// EncryptDocument: recipients from `RecipientKeys/Certificate` (each checked first, see
/// [`check_recipient`]) and `CertificateOnCard` (the card's RSA C.ENC), unauthAttrs from
/// `OptionalInputs/UnprotectedProperties/…/CMSAttribute`.
pub fn encrypt_document(sim: &Simulator, req: &Element) -> Result<String, SimError> {
    let ns = crypt_ns();
    let keys = req
        .child(&ns, "RecipientKeys")
        .ok_or_else(|| SimError::BadRequest("RecipientKeys missing".into()))?;
    let mut recipients = Vec::new();
    for c in keys
        .children
        .iter()
        .filter(|c| c.ns == ns && c.name == "Certificate")
    {
        let der = b64(c)?;
        check_recipient(sim, &der)?;
        recipients.push(der);
    }
    if let Some(on_card) = keys.child(&ns, "CertificateOnCard") {
        let card = sim.card(required(on_card, "CardHandle")?.text())?;
        let key = card
            .enc
            .iter()
            .find(|k| k.is_rsa())
            .ok_or_else(|| SimError::Key("card has no RSA C.ENC".into()))?;
        recipients.push(key.cert_der.clone());
    }
    let mut attrs = Vec::new();
    if let Some(up) = req
        .child(&ns, "OptionalInputs")
        .and_then(|o| o.child(&ns, "UnprotectedProperties"))
    {
        let mut found = Vec::new();
        up.find_all_local("CMSAttribute", &mut found);
        for a in found {
            attrs.push(b64(a)?);
        }
    }
    let content = document_content(req)?;
    let cms = cms_encrypt(&EncryptInput {
        content: &content,
        recipients: &recipients,
        unauth_attrs: &attrs,
        allow_ecc: sim.config().versions.ecc_capable(),
    })?;
    Ok(format!(
        "<CRYPT:EncryptDocumentResponse xmlns:CRYPT=\"{ns}\" xmlns:CONN=\"{NS_CONN}\" xmlns:dss=\"{NS_DSS}\">\
{}<CONN:Document><dss:Base64Data MimeType=\"application/pkcs7-mime\">{}</dss:Base64Data></CONN:Document>\
</CRYPT:EncryptDocumentResponse>",
        status_ok(),
        b64_encode(&cms)
    ))
}

/// DecryptDocument: `PrivateKeyOnCard{CardHandle, KeyReference=C.ENC}` and the CMS document.
pub fn decrypt_document(sim: &Simulator, req: &Element) -> Result<String, SimError> {
    let ns = crypt_ns();
    let pk = req
        .child(&ns, "PrivateKeyOnCard")
        .ok_or_else(|| SimError::BadRequest("PrivateKeyOnCard missing".into()))?;
    if let Some(r) = pk.child(&ns, "KeyReference")
        && r.text() != "C.ENC"
    {
        return Err(SimError::BadRequest(format!("KeyReference {}", r.text())));
    }
    let handle = required(pk, "CardHandle")?.text();
    let card = sim.card(handle)?;
    // The C.ENC key is usable only after the card's PIN was verified, as at a real Konnektor.
    if sim.pin_state(handle) != PinState::Verified {
        return Err(SimError::PinBlocked);
    }
    let content = document_content(req)?;
    let plain = cms_decrypt(&card.enc, &content)?;
    Ok(format!(
        "<CRYPT:DecryptDocumentResponse xmlns:CRYPT=\"{ns}\" xmlns:CONN=\"{NS_CONN}\" xmlns:dss=\"{NS_DSS}\">\
{}<CONN:Document><dss:Base64Data>{}</dss:Base64Data></CONN:Document></CRYPT:DecryptDocumentResponse>",
        status_ok(),
        b64_encode(&plain)
    ))
}
