//! DecryptDocument: opens a CMS AuthEnvelopedData (BER or DER) with a card's C.ENC keys.
//!
//! WHY a hand walk over the BER tree: gematik's sample (and real Konnektoren) send indefinite
//! lengths and a chunked encryptedContent, which the DER-only typed decoders reject. The walk
//! re-encodes each RecipientInfo and AlgorithmIdentifier as DER for the typed decoders and
//! concatenates the content chunks itself.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use cms::enveloped_data::{KeyTransRecipientInfo, RecipientIdentifier};
use der::{Decode, Encode};
use rsa::pkcs1::RsaOaepParams;
use rsa::{Oaep, Pkcs1v15Encrypt};
use sha2::Sha256;
use spki::AlgorithmIdentifierOwned;

use super::auth_enveloped::GcmParameters;
use super::ber::{self, BerError, Node, tag};
use super::ecc;
use super::error::SimError;
use super::keys::KeyMaterial;
use super::oids;

/// The parts of an AuthEnvelopedData the decryptor needs.
struct Parsed {
    recipients: Vec<KeyTransRecipientInfo>,
    content_alg: AlgorithmIdentifierOwned,
    ciphertext: Vec<u8>,
    aad: Vec<u8>,
    mac: Vec<u8>,
}

fn oid_of(node: &Node) -> Result<const_oid::ObjectIdentifier, SimError> {
    Ok(const_oid::ObjectIdentifier::from_der(&node.to_der())?)
}

fn parse(input: &[u8]) -> Result<Parsed, SimError> {
    let root = Node::parse(input)?;
    let top = root.children();
    let (Some(ct), Some(wrapped)) = (top.first(), top.get(1)) else {
        return Err(BerError::Shape("ContentInfo").into());
    };
    if oid_of(ct)? != oids::ID_AUTH_ENVELOPED_DATA || !wrapped.is_context(0) {
        return Err(SimError::Unsupported(
            "content type is not authEnvelopedData".into(),
        ));
    }
    let aed = wrapped
        .children()
        .first()
        .ok_or(BerError::Shape("AuthEnvelopedData"))?;
    let mut fields = aed.children().iter().peekable();
    let _version = fields
        .next()
        .filter(|n| n.tag == tag::INTEGER)
        .ok_or(BerError::Shape("version"))?;
    if fields.peek().is_some_and(|n| n.is_context(0)) {
        fields.next(); // originatorInfo: not used by KOM-LE
    }
    let rinfos = fields
        .next()
        .filter(|n| n.tag == tag::SET)
        .ok_or(BerError::Shape("recipientInfos"))?;
    let mut recipients = Vec::new();
    for ri in rinfos.children() {
        // Only KeyTransRecipientInfo (untagged SEQUENCE) is used by KOM-LE; skip the others.
        if ri.tag == tag::SEQUENCE {
            recipients.push(KeyTransRecipientInfo::from_der(&ri.to_der())?);
        }
    }
    let eci = fields
        .next()
        .filter(|n| n.tag == tag::SEQUENCE)
        .ok_or(BerError::Shape("authEncryptedContentInfo"))?;
    let eci_parts = eci.children();
    let content_alg = eci_parts
        .get(1)
        .ok_or(BerError::Shape("contentEncryptionAlgorithm"))
        .map(|n| AlgorithmIdentifierOwned::from_der(&n.to_der()))??;
    let ciphertext = match eci_parts.get(2) {
        Some(n) if n.is_context(0) => n.string_bytes()?,
        _ => return Err(SimError::Unsupported("detached encrypted content".into())),
    };
    let mut aad = Vec::new();
    if fields.peek().is_some_and(|n| n.is_context(1)) {
        // RFC 5083 §2.1: the AAD is the DER of authAttrs with the SET OF tag.
        if let Some(auth) = fields.next() {
            ber::write_tlv(&mut aad, tag::SET, true, &auth.content_der());
        }
    }
    let mac = fields
        .next()
        .filter(|n| n.tag == tag::OCTET_STRING)
        .ok_or(BerError::Shape("mac"))?
        .string_bytes()?;
    Ok(Parsed {
        recipients,
        content_alg,
        ciphertext,
        aad,
        mac,
    })
}

fn rid_matches(rid: &RecipientIdentifier, key: &KeyMaterial) -> bool {
    let Ok(cert) = key.certificate() else {
        return false;
    };
    match rid {
        RecipientIdentifier::IssuerAndSerialNumber(ias) => {
            ias.issuer == cert.tbs_certificate.issuer
                && ias.serial_number == cert.tbs_certificate.serial_number
        }
        RecipientIdentifier::SubjectKeyIdentifier(_) => false,
    }
}

fn unwrap_cek(ri: &KeyTransRecipientInfo, key: &KeyMaterial) -> Result<Vec<u8>, SimError> {
    let enc = ri.enc_key.as_bytes();
    if ri.key_enc_alg.oid == ecc::ID_TI_ECIES {
        let secret = ecc::secret_from_pkcs8(&key.private_key_pkcs8_der)?;
        return ecc::decrypt_key(&secret, enc);
    }
    let private = key.rsa_private_key()?;
    if ri.key_enc_alg.oid == oids::ID_RSAES_OAEP {
        let params_der = match &ri.key_enc_alg.parameters {
            Some(p) => p.to_der()?,
            None => {
                return Err(SimError::Unsupported(
                    "OAEP without parameters (SHA-1)".into(),
                ));
            }
        };
        let params = RsaOaepParams::try_from(params_der.as_slice())
            .map_err(|e| SimError::Asn1(e.to_string()))?;
        if params.hash.oid != oids::ID_SHA256 {
            return Err(SimError::Unsupported(format!(
                "OAEP hash {}",
                params.hash.oid
            )));
        }
        private
            .decrypt(Oaep::new::<Sha256>(), enc)
            .map_err(|_| SimError::DecryptionFailed)
    } else if ri.key_enc_alg.oid == oids::ID_RSA_ENCRYPTION {
        private
            .decrypt(Pkcs1v15Encrypt, enc)
            .map_err(|_| SimError::DecryptionFailed)
    } else {
        Err(SimError::Unsupported(format!(
            "key encryption {}",
            ri.key_enc_alg.oid
        )))
    }
}

/// Opens `input` with the first of `keys` that a RecipientInfo addresses; verifies the GCM tag.
pub fn decrypt_document(keys: &[KeyMaterial], input: &[u8]) -> Result<Vec<u8>, SimError> {
    let parsed = parse(input)?;
    if parsed.content_alg.oid != oids::ID_AES256_GCM {
        return Err(SimError::Unsupported(format!(
            "content encryption {}",
            parsed.content_alg.oid
        )));
    }
    let params_der = parsed
        .content_alg
        .parameters
        .as_ref()
        .ok_or(SimError::Asn1("GCM parameters missing".into()))?
        .to_der()?;
    let gcm = GcmParameters::from_der(&params_der)?;
    if gcm.nonce.as_bytes().len() != 12 || gcm.icv_len != 16 || parsed.mac.len() != 16 {
        return Err(SimError::Unsupported(
            "GCM nonce must be 12 and tag 16 bytes".into(),
        ));
    }
    let mut cek = None;
    for ri in &parsed.recipients {
        if let Some(key) = keys.iter().find(|k| rid_matches(&ri.rid, k)) {
            cek = Some(unwrap_cek(ri, key)?);
            break;
        }
    }
    let cek = cek.ok_or(SimError::NoMatchingRecipient)?;
    if cek.len() != 32 {
        return Err(SimError::DecryptionFailed);
    }
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&cek));
    let mut sealed = parsed.ciphertext;
    sealed.extend_from_slice(&parsed.mac);
    cipher
        .decrypt(
            Nonce::from_slice(gcm.nonce.as_bytes()),
            Payload {
                msg: &sealed,
                aad: &parsed.aad,
            },
        )
        .map_err(|_| SimError::DecryptionFailed)
}

/// The unauthAttrs of an AuthEnvelopedData as DER `Attribute`s (each as it appears, re-encoded
/// with definite lengths); used by tests comparing the recipient-emails shape with sample 04.
pub fn unauth_attrs_der(input: &[u8]) -> Result<Vec<Vec<u8>>, SimError> {
    let root = Node::parse(input)?;
    let aed = root
        .children()
        .get(1)
        .and_then(|w| w.children().first())
        .ok_or(BerError::Shape("AuthEnvelopedData"))?;
    Ok(aed
        .children()
        .iter()
        .find(|n| n.is_context(2))
        .map(|n| n.children().iter().map(Node::to_der).collect())
        .unwrap_or_default())
}
