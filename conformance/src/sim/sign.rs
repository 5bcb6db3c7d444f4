//! SignDocument: CMS SignedData as the Konnektor produces it for KOM-LE.
//!
//! Profile (gemSMIME_KOMLE, checked against gematik's sample 02): exactly one signerInfo,
//! RSASSA-PSS with SHA-256 / MGF1-SHA-256 / salt 32, signed attributes contentType,
//! signingTime, messageDigest, CMSAlgorithmProtection, signingCertificateV2 (the same set as in
//! the sample) and the caller's CMSAttribute (recipient-emails, KOM-LE-A_2190), encapsulated
//! content, only the signer certificate, no CRLs, no unsigned attributes.

use cms::cert::IssuerAndSerialNumber;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{OctetString, SetOfVec, UtcTime};
use der::{Any, Decode, Encode};
use rsa::Pss;
use rsa::pkcs1::RsaPssParams;
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;

use super::ber;
use super::error::SimError;
use super::keys::KeyMaterial;
use super::oids;

/// What to sign.
pub struct SignInput<'a> {
    pub content: &'a [u8],
    /// Extra signed attributes, each a DER `Attribute` (e.g. recipient-emails).
    pub extra_signed_attrs: &'a [Vec<u8>],
    /// Seconds since the Unix epoch for the signingTime attribute.
    pub signing_time_unix: u64,
    /// Whether the content is embedded (`IncludeEContent`).
    pub include_econtent: bool,
}

/// AlgorithmIdentifier sha256 with explicit NULL parameters, as in gematik's sample.
pub fn sha256_alg() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: oids::ID_SHA256,
        parameters: Some(Any::null()),
    }
}

/// RSASSA-PSS AlgorithmIdentifier with SHA-256, MGF1-SHA-256, salt length 32.
pub fn pss_alg() -> Result<AlgorithmIdentifierOwned, SimError> {
    let params = RsaPssParams::new::<Sha256>(32).to_der()?;
    Ok(AlgorithmIdentifierOwned {
        oid: oids::ID_RSASSA_PSS,
        parameters: Some(Any::from_der(&params)?),
    })
}

fn attribute(oid: const_oid::ObjectIdentifier, value: Any) -> Result<Attribute, SimError> {
    let mut values = SetOfVec::new();
    values.insert(value)?;
    Ok(Attribute { oid, values })
}

/// Produces the DER ContentInfo(SignedData) over `input.content` with the signer's RSA key.
pub fn sign_document(signer: &KeyMaterial, input: &SignInput<'_>) -> Result<Vec<u8>, SimError> {
    let cert = signer.certificate()?;
    let key = signer.rsa_private_key()?;
    let digest = Sha256::digest(input.content);

    let signing_time =
        UtcTime::from_unix_duration(std::time::Duration::from_secs(input.signing_time_unix))?;
    let mut attrs = vec![
        attribute(oids::ID_CONTENT_TYPE, Any::encode_from(&oids::ID_DATA)?)?,
        attribute(oids::ID_SIGNING_TIME, Any::encode_from(&signing_time)?)?,
        attribute(
            oids::ID_MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(digest.to_vec())?)?,
        )?,
    ];
    attrs.push(attribute(
        oids::ID_CMS_ALGORITHM_PROTECTION,
        Any::from_der(&cms_algorithm_protection()?)?,
    )?);
    attrs.push(attribute(
        oids::ID_SIGNING_CERTIFICATE_V2,
        Any::from_der(&signing_certificate_v2(&cert, &signer.cert_der)?)?,
    )?);
    for extra in input.extra_signed_attrs {
        attrs.push(Attribute::from_der(extra)?);
    }
    let signed_attrs: SetOfVec<Attribute> = SetOfVec::try_from(attrs)?;
    // The signature covers the DER of the attributes with the SET OF tag (RFC 5652 §5.4).
    let attrs_der = signed_attrs.to_der()?;
    let hashed = Sha256::digest(&attrs_der);
    let signature = key
        .sign_with_rng(&mut rand::thread_rng(), Pss::new::<Sha256>(), &hashed)
        .map_err(|e| SimError::Key(e.to_string()))?;

    let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
        issuer: cert.tbs_certificate.issuer.clone(),
        serial_number: cert.tbs_certificate.serial_number.clone(),
    });
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid,
        digest_alg: sha256_alg(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: pss_alg()?,
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    let econtent = if input.include_econtent {
        Some(Any::encode_from(&OctetString::new(input.content)?)?)
    } else {
        None
    };
    let mut certs = SetOfVec::new();
    certs.insert(cms::cert::CertificateChoices::Certificate(cert))?;
    let mut digest_algs = SetOfVec::new();
    digest_algs.insert(sha256_alg())?;
    let mut infos = SetOfVec::new();
    infos.insert(signer_info)?;
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: digest_algs,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: oids::ID_DATA,
            econtent,
        },
        certificates: Some(CertificateSet(certs)),
        crls: None,
        signer_infos: SignerInfos(infos),
    };
    let ci = ContentInfo {
        content_type: oids::ID_SIGNED_DATA,
        content: Any::encode_from(&signed_data)?,
    };
    Ok(ci.to_der()?)
}

/// `CMSAlgorithmProtection ::= SEQUENCE { digestAlgorithm, signatureAlgorithm [1] IMPLICIT }`
/// (RFC 6211) binding SHA-256 and RSASSA-PSS, as in gematik's sample.
fn cms_algorithm_protection() -> Result<Vec<u8>, SimError> {
    let mut content = sha256_alg().to_der()?;
    let pss = pss_alg()?.to_der()?;
    let node = ber::Node::parse(&pss)?;
    ber::write_tlv(
        &mut content,
        ber::tag::CONTEXT | 1,
        true,
        &node.content_der(),
    );
    let mut out = Vec::new();
    ber::write_tlv(&mut out, ber::tag::SEQUENCE, true, &content);
    Ok(out)
}

/// `SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2 }` with one
/// `ESSCertIDv2 { certHash (SHA-256, default algorithm omitted), issuerSerial { issuer
/// GeneralNames ([4] directoryName), serialNumber } }` (RFC 5035), as in gematik's sample.
fn signing_certificate_v2(
    cert: &x509_cert::Certificate,
    cert_der: &[u8],
) -> Result<Vec<u8>, SimError> {
    use ber::{tag, write_tlv};
    let mut general_names = Vec::new();
    write_tlv(
        &mut general_names,
        tag::CONTEXT | 4,
        true,
        &cert.tbs_certificate.issuer.to_der()?,
    );
    let mut issuer_serial = Vec::new();
    write_tlv(&mut issuer_serial, tag::SEQUENCE, true, &general_names);
    issuer_serial.extend_from_slice(&cert.tbs_certificate.serial_number.to_der()?);
    let mut ess = OctetString::new(Sha256::digest(cert_der).to_vec())?.to_der()?;
    write_tlv(&mut ess, tag::SEQUENCE, true, &issuer_serial);
    let mut ess_seq = Vec::new();
    write_tlv(&mut ess_seq, tag::SEQUENCE, true, &ess);
    let mut certs = Vec::new();
    write_tlv(&mut certs, tag::SEQUENCE, true, &ess_seq);
    let mut out = Vec::new();
    write_tlv(&mut out, tag::SEQUENCE, true, &certs);
    Ok(out)
}
