//! Reading the unprotected recipient-emails from a CMS AuthEnvelopedData (RFC 5083).
//!
//! The Clientmodul never decrypts (the Konnektor does, DecryptDocument), but it must compare the
//! unauthenticated recipient-emails attribute with the signed one (KOM-LE-A_2048 step 3). The
//! Konnektor emits BER with indefinite lengths (gematik sample 04), so this walks with `ber`.

use super::ber;
use super::error::SmimeError;
use super::recipient_emails::{self, RECIPIENT_EMAILS_OID_DER, RecipientEmail};

/// DER of id-smime-ct-authEnvelopedData (1.2.840.113549.1.9.16.1.23).
const AUTH_ENVELOPED_OID: [u8; 13] = [
    0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x17,
];

/// The recipient-emails values in the unauthAttrs of `content_info`, or `None` when the
/// attribute (or unauthAttrs) is absent.
pub fn unprotected_recipient_emails(
    content_info: &[u8],
) -> Result<Option<Vec<RecipientEmail>>, SmimeError> {
    let ci = ber::expect(content_info, 0x30, "ContentInfo")?;
    let mut kids = ci.children();
    let oid = kids.next().ok_or(SmimeError::BadAsn1("contentType"))??;
    if oid.raw != AUTH_ENVELOPED_OID {
        return Err(SmimeError::BadAsn1("not AuthEnvelopedData"));
    }
    let explicit = kids.next().ok_or(SmimeError::BadAsn1("content"))??;
    if explicit.tag != 0xa0 {
        return Err(SmimeError::BadAsn1("content"));
    }
    let aed = ber::expect(explicit.content, 0x30, "AuthEnvelopedData")?;
    for item in aed.children() {
        let item = item?;
        // unauthAttrs [2] IMPLICIT SET OF Attribute
        if item.tag == 0xa2 {
            for attr in item.children() {
                let attr = attr?;
                let mut parts = attr.children();
                let oid = parts.next().ok_or(SmimeError::BadAsn1("attrType"))??;
                if oid.raw == RECIPIENT_EMAILS_OID_DER {
                    let set = parts.next().ok_or(SmimeError::BadAsn1("attrValues"))??;
                    return recipient_emails::parse_values(set.content).map(Some);
                }
            }
        }
    }
    Ok(None)
}
