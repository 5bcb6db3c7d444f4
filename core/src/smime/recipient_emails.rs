//! The recipient-emails attribute (OID 1.2.276.0.76.4.173, gemSMIME_KOMLE).
//!
//! ```text
//! Attribute      ::= SEQUENCE { attrType OBJECT IDENTIFIER, attrValues SET OF RecipientEmail }
//! RecipientEmail ::= SEQUENCE { emailAddress IA5String, rid IssuerAndSerialNumber }
//! ```
//!
//! The sender builds it from the (address, certificate) pairs actually used for encryption
//! (KOM-LE-A_2027: only addresses that could be encrypted for); the Konnektor puts it into the
//! signed attributes and into the AuthEnvelopedData's unauthAttrs. The receiver compares both
//! (KOM-LE-A_2048 step 3).

use super::ber;
use super::error::SmimeError;
use der::asn1::{Any, Ia5StringRef, ObjectIdentifier, SetOfVec};
use der::{Decode, Encode, Tag};

/// OID of the recipient-emails attribute.
pub const RECIPIENT_EMAILS_OID: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.276.0.76.4.173");

/// DER of the OID (tag, length, value), to spot the attribute while walking BER.
pub const RECIPIENT_EMAILS_OID_DER: [u8; 10] =
    [0x06, 0x08, 0x2a, 0x82, 0x14, 0x00, 0x4c, 0x04, 0x81, 0x2d];

/// One value of the attribute.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RecipientEmail {
    /// The e-mail address as written in the attribute.
    pub address: String,
    /// DER of the certificate issuer's Name.
    pub issuer: Vec<u8>,
    /// DER of the certificate serial number (INTEGER, with tag and length).
    pub serial: Vec<u8>,
}

impl RecipientEmail {
    /// Comparison key: addresses compare case-insensitively (domain and, in practice, local part).
    fn key(&self) -> (String, &[u8], &[u8]) {
        (
            self.address.to_ascii_lowercase(),
            &self.issuer,
            &self.serial,
        )
    }
}

/// True when both lists hold the same values regardless of order (KOM-LE-A_2048 step 3).
pub fn same_recipients(a: &[RecipientEmail], b: &[RecipientEmail]) -> bool {
    let mut ka: Vec<_> = a.iter().map(RecipientEmail::key).collect();
    let mut kb: Vec<_> = b.iter().map(RecipientEmail::key).collect();
    ka.sort();
    kb.sort();
    ka.dedup();
    kb.dedup();
    ka == kb
}

/// Builds the DER attribute from (address, certificate DER) pairs (KOM-LE-A_2027).
///
/// Values are sorted as DER SET OF requires, which is also gematik's order in sample 04.
pub fn build(pairs: &[(&str, &[u8])]) -> Result<Vec<u8>, SmimeError> {
    let mut values = Vec::with_capacity(pairs.len());
    for (address, cert_der) in pairs {
        let cert =
            x509_cert::Certificate::from_der(cert_der).map_err(|_| SmimeError::BadCertificate)?;
        let mut inner = Ia5StringRef::new(address)
            .map_err(|_| SmimeError::BadAddress)?
            .to_der()
            .map_err(|_| SmimeError::BadAddress)?;
        let tbs = &cert.tbs_certificate;
        let mut rid = tbs
            .issuer
            .to_der()
            .map_err(|_| SmimeError::BadCertificate)?;
        tbs.serial_number
            .encode_to_vec(&mut rid)
            .map_err(|_| SmimeError::BadCertificate)?;
        let rid = Any::new(Tag::Sequence, rid).map_err(|_| SmimeError::BadCertificate)?;
        rid.encode_to_vec(&mut inner)
            .map_err(|_| SmimeError::BadCertificate)?;
        values.push(Any::new(Tag::Sequence, inner).map_err(|_| SmimeError::BadAsn1("value"))?);
    }
    let values = SetOfVec::try_from(values).map_err(|_| SmimeError::BadAsn1("duplicate value"))?;
    let attr = x509_cert::attr::Attribute {
        oid: RECIPIENT_EMAILS_OID,
        values,
    };
    attr.to_der().map_err(|_| SmimeError::BadAsn1("attribute"))
}

/// Parses a complete attribute (SEQUENCE { OID, SET }) in DER or BER.
pub fn parse(attribute: &[u8]) -> Result<Vec<RecipientEmail>, SmimeError> {
    let seq = ber::expect(attribute, 0x30, "attribute")?;
    let mut kids = seq.children();
    let oid = kids.next().ok_or(SmimeError::BadAsn1("attribute type"))??;
    if oid.raw != RECIPIENT_EMAILS_OID_DER {
        return Err(SmimeError::BadAsn1("not recipient-emails"));
    }
    let set = kids
        .next()
        .ok_or(SmimeError::BadAsn1("attribute values"))??;
    if set.tag != 0x31 {
        return Err(SmimeError::BadAsn1("attribute values"));
    }
    parse_values(set.content)
}

/// Parses the concatenated RecipientEmail values (the content of the SET OF).
pub fn parse_values(content: &[u8]) -> Result<Vec<RecipientEmail>, SmimeError> {
    let mut out = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        let (value, next) = ber::read(rest)?;
        rest = next;
        if value.tag != 0x30 {
            return Err(SmimeError::BadAsn1("RecipientEmail"));
        }
        let mut kids = value.children();
        let email = kids.next().ok_or(SmimeError::BadAsn1("emailAddress"))??;
        if email.tag != 0x16 || !email.content.is_ascii() {
            return Err(SmimeError::BadAsn1("emailAddress"));
        }
        let rid = kids.next().ok_or(SmimeError::BadAsn1("rid"))??;
        if rid.tag != 0x30 {
            return Err(SmimeError::BadAsn1("rid"));
        }
        let mut rk = rid.children();
        let issuer = rk.next().ok_or(SmimeError::BadAsn1("issuer"))??;
        let serial = rk.next().ok_or(SmimeError::BadAsn1("serial"))??;
        if issuer.tag != 0x30 || serial.tag != 0x02 {
            return Err(SmimeError::BadAsn1("rid"));
        }
        out.push(RecipientEmail {
            address: String::from_utf8_lossy(email.content).into_owned(),
            issuer: issuer.raw.to_vec(),
            serial: serial.raw.to_vec(),
        });
    }
    Ok(out)
}
