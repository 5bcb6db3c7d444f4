//! Inspecting a CMS SignedData returned by SignDocument / received inside a KOM-LE message.
//!
//! The Konnektor verifies the signature (VerifyDocument); the Clientmodul needs the encapsulated
//! content (the `message/rfc822` wrap, sample 01) and the facts the profile constrains
//! (gemSMIME_KOMLE: exactly one signerInfo, only the signer certificate, no CRLs, no unsigned
//! attributes, signed recipient-emails).

use super::ber::{self, Tlv};
use super::error::SmimeError;
use super::recipient_emails::{self, RECIPIENT_EMAILS_OID_DER, RecipientEmail};
use std::borrow::Cow;

/// DER of id-signedData (1.2.840.113549.1.7.2).
const SIGNED_DATA_OID: [u8; 11] = [
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
];

/// What the profile check and the unwrapping need from a SignedData.
#[derive(Debug, Clone)]
pub struct SignedDataInfo<'a> {
    /// The encapsulated content (borrowed when it is one primitive OCTET STRING).
    pub content: Cow<'a, [u8]>,
    /// Number of SignerInfo values.
    pub signer_count: usize,
    /// Number of certificates carried.
    pub certificate_count: usize,
    /// CRLs present.
    pub has_crls: bool,
    /// Any signerInfo carries unsignedAttrs.
    pub has_unsigned_attrs: bool,
    /// The signed recipient-emails of the (first) signer, when present.
    pub recipient_emails: Option<Vec<RecipientEmail>>,
}

/// A deviation from the gemSMIME_KOMLE signed-data profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProfileViolation {
    /// Not exactly one signerInfo.
    SignerCount,
    /// More than the signer certificate included.
    ExtraCertificates,
    /// CRLs included.
    Crls,
    /// unsignedAttrs present.
    UnsignedAttributes,
    /// No signed recipient-emails attribute.
    MissingRecipientEmails,
}

impl SignedDataInfo<'_> {
    /// Checks the structural profile rules (everything except the recipient comparison).
    pub fn check_profile(&self) -> Result<(), ProfileViolation> {
        if self.signer_count != 1 {
            return Err(ProfileViolation::SignerCount);
        }
        if self.certificate_count > 1 {
            return Err(ProfileViolation::ExtraCertificates);
        }
        if self.has_crls {
            return Err(ProfileViolation::Crls);
        }
        if self.has_unsigned_attrs {
            return Err(ProfileViolation::UnsignedAttributes);
        }
        if self.recipient_emails.is_none() {
            return Err(ProfileViolation::MissingRecipientEmails);
        }
        Ok(())
    }
}

/// Parses a SignedData ContentInfo (DER or BER).
pub fn inspect(content_info: &[u8]) -> Result<SignedDataInfo<'_>, SmimeError> {
    let ci = ber::expect(content_info, 0x30, "ContentInfo")?;
    let mut kids = ci.children();
    let oid = kids.next().ok_or(SmimeError::BadAsn1("contentType"))??;
    if oid.raw != SIGNED_DATA_OID {
        return Err(SmimeError::BadAsn1("not SignedData"));
    }
    let explicit = kids.next().ok_or(SmimeError::BadAsn1("content"))??;
    if explicit.tag != 0xa0 {
        return Err(SmimeError::BadAsn1("content"));
    }
    let sd = ber::expect(explicit.content, 0x30, "SignedData")?;
    let mut items = sd.children();
    let _version = next_tag(&mut items, 0x02, "version")?;
    let _digests = next_tag(&mut items, 0x31, "digestAlgorithms")?;
    let encap = next_tag(&mut items, 0x30, "encapContentInfo")?;
    let content = encapsulated_content(&encap)?;
    let mut info = SignedDataInfo {
        content,
        signer_count: 0,
        certificate_count: 0,
        has_crls: false,
        has_unsigned_attrs: false,
        recipient_emails: None,
    };
    for item in items {
        let item = item?;
        match item.tag {
            0xa0 => info.certificate_count = item.children().count(),
            0xa1 => info.has_crls = item.children().next().is_some(),
            0x31 => {
                for (i, si) in item.children().enumerate() {
                    let si = si?;
                    info.signer_count += 1;
                    for field in si.children() {
                        let field = field?;
                        if field.tag == 0xa1 {
                            info.has_unsigned_attrs = true;
                        }
                        if field.tag == 0xa0 && i == 0 {
                            info.recipient_emails = signed_recipient_emails(&field)?;
                        }
                    }
                }
            }
            _ => return Err(SmimeError::BadAsn1("SignedData field")),
        }
    }
    Ok(info)
}

fn next_tag<'a>(
    it: &mut ber::Children<'a>,
    tag: u8,
    what: &'static str,
) -> Result<Tlv<'a>, SmimeError> {
    let t = it.next().ok_or(SmimeError::BadAsn1(what))??;
    if t.tag != tag {
        return Err(SmimeError::BadAsn1(what));
    }
    Ok(t)
}

fn encapsulated_content<'a>(encap: &Tlv<'a>) -> Result<Cow<'a, [u8]>, SmimeError> {
    let mut kids = encap.children();
    let _type = next_tag(&mut kids, 0x06, "eContentType")?;
    let explicit = kids
        .next()
        .ok_or(SmimeError::BadAsn1("detached content"))??;
    if explicit.tag != 0xa0 {
        return Err(SmimeError::BadAsn1("eContent"));
    }
    let (octets, _) = ber::read(explicit.content)?;
    if octets.tag & 0x1f != 0x04 {
        return Err(SmimeError::BadAsn1("eContent"));
    }
    octets.octets()
}

fn signed_recipient_emails(attrs: &Tlv<'_>) -> Result<Option<Vec<RecipientEmail>>, SmimeError> {
    for attr in attrs.children() {
        let attr = attr?;
        let mut parts = attr.children();
        let oid = parts.next().ok_or(SmimeError::BadAsn1("attrType"))??;
        if oid.raw == RECIPIENT_EMAILS_OID_DER {
            let set = parts.next().ok_or(SmimeError::BadAsn1("attrValues"))??;
            return recipient_emails::parse_values(set.content).map(Some);
        }
    }
    Ok(None)
}
