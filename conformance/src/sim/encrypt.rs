//! EncryptDocument: CMS AuthEnvelopedData as the Konnektor produces it for KOM-LE.
//!
//! Profile (gemSMIME_KOMLE, checked against gematik's sample 04): AES-256-GCM content
//! encryption with a 12-byte nonce and a 16-byte tag, one KeyTransRecipientInfo per RSA recipient
//! certificate with RSAES-OAEP (SHA-256, MGF1-SHA-256) and rid = issuerAndSerialNumber, no
//! originatorInfo, brainpoolP256r1 recipients via TI-ECIES (`ecc.rs`) when allowed, the caller's CMSAttribute (recipient-emails) as unauthAttrs. We write DER
//! (definite lengths), gematik's sample uses indefinite lengths; both are valid BER.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use cms::cert::IssuerAndSerialNumber;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::enveloped_data::{
    EncryptedContentInfo, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo, RecipientInfos,
};
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Decode, Encode};
use rand::RngCore;
use rsa::Oaep;
use rsa::pkcs1::RsaOaepParams;
use sha2::Sha256;
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;

use super::auth_enveloped::{AuthEnvelopedData, GcmParameters};
use super::ecc;
use super::error::SimError;
use super::keys::rsa_public_key;
use super::oids;

/// What to encrypt and for whom.
pub struct EncryptInput<'a> {
    pub content: &'a [u8],
    /// Recipient certificates (DER); RSA keys get an OAEP KeyTransRecipientInfo.
    pub recipients: &'a [Vec<u8>],
    /// Unprotected attributes, each a DER `Attribute` (recipient-emails, KOM-LE-A_2190 analog).
    pub unauth_attrs: &'a [Vec<u8>],
    /// Whether brainpoolP256r1 recipients are accepted (TI-ECIES, see `ecc.rs`); a Konnektor
    /// that is not ECC capable (A_17464) rejects them.
    pub allow_ecc: bool,
}

/// RSAES-OAEP AlgorithmIdentifier with SHA-256 and MGF1-SHA-256.
pub fn oaep_alg() -> Result<AlgorithmIdentifierOwned, SimError> {
    let params = RsaOaepParams::new::<Sha256>().to_der()?;
    Ok(AlgorithmIdentifierOwned {
        oid: oids::ID_RSAES_OAEP,
        parameters: Some(Any::from_der(&params)?),
    })
}

/// Produces the DER ContentInfo(AuthEnvelopedData).
pub fn encrypt_document(input: &EncryptInput<'_>) -> Result<Vec<u8>, SimError> {
    if input.recipients.is_empty() {
        return Err(SimError::BadRequest("no recipient certificates".into()));
    }
    let mut rng = rand::thread_rng();
    let mut cek = [0u8; 32];
    rng.fill_bytes(&mut cek);
    let mut nonce = [0u8; 12];
    rng.fill_bytes(&mut nonce);

    let mut infos = Vec::new();
    for cert_der in input.recipients {
        let cert = Certificate::from_der(cert_der)?;
        let (key_enc_alg, enc_key) = if ecc::is_bp256(&cert) {
            if !input.allow_ecc {
                return Err(SimError::Unsupported(
                    "ECC recipient at a Konnektor without ECC support".into(),
                ));
            }
            let alg = AlgorithmIdentifierOwned {
                oid: ecc::ID_TI_ECIES,
                parameters: None,
            };
            (alg, ecc::encrypt_key(&cert, &cek)?)
        } else {
            let public = rsa_public_key(&cert)?;
            let enc = public
                .encrypt(&mut rng, Oaep::new::<Sha256>(), &cek)
                .map_err(|e| SimError::Key(e.to_string()))?;
            (oaep_alg()?, enc)
        };
        infos.push(RecipientInfo::Ktri(KeyTransRecipientInfo {
            version: CmsVersion::V0,
            rid: RecipientIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: cert.tbs_certificate.issuer.clone(),
                serial_number: cert.tbs_certificate.serial_number.clone(),
            }),
            key_enc_alg,
            enc_key: OctetString::new(enc_key)?,
        }));
    }

    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&cek));
    let mut sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), input.content)
        .map_err(|_| SimError::Key("AES-GCM encryption failed".into()))?;
    let tag = sealed.split_off(sealed.len().saturating_sub(16));
    let gcm_params = GcmParameters {
        nonce: OctetString::new(nonce.to_vec())?,
        icv_len: 16,
    };

    let unauth_attrs = if input.unauth_attrs.is_empty() {
        None
    } else {
        let mut attrs = Vec::new();
        for a in input.unauth_attrs {
            attrs.push(Attribute::from_der(a)?);
        }
        Some(SetOfVec::try_from(attrs)?)
    };
    let aed = AuthEnvelopedData {
        version: CmsVersion::V0,
        originator_info: None,
        recip_infos: RecipientInfos(SetOfVec::try_from(infos)?),
        auth_encrypted_content_info: EncryptedContentInfo {
            content_type: oids::ID_DATA,
            content_enc_alg: AlgorithmIdentifierOwned {
                oid: oids::ID_AES256_GCM,
                parameters: Some(Any::encode_from(&gcm_params)?),
            },
            encrypted_content: Some(OctetString::new(sealed)?),
        },
        auth_attrs: None,
        mac: OctetString::new(tag)?,
        unauth_attrs,
    };
    let ci = ContentInfo {
        content_type: oids::ID_AUTH_ENVELOPED_DATA,
        content: Any::encode_from(&aed)?,
    };
    Ok(ci.to_der()?)
}
