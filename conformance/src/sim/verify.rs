//! VerifyDocument: checks a CMS SignedData the way the Konnektor does for KOM-LE.
//!
//! Checks, in order: the signer's signature over the signed attributes (RSASSA-PSS with the
//! salt length from the parameters, or PKCS#1 v1.5), the messageDigest against the
//! encapsulated content, the signer certificate's validity at `now`, the revoked-serials list,
//! and the certificate path up to a configured trust anchor (certificates signed with RSA or
//! with ECDSA on P-256/P-384).
//! The result maps to the DSS HighLevelResult: a broken signature, digest, validity, revocation
//! or path is INVALID; a good signature whose path cannot be built to an anchor is
//! INCONCLUSIVE (KOM-LE integrity result 07, "valid but status not checkable").

use cms::cert::IssuerAndSerialNumber;
use der::{Decode, Encode};
use rsa::pkcs1::RsaPssParams;
use rsa::{Pkcs1v15Sign, Pss, RsaPublicKey};
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

use super::ber::{self, BerError, Node, tag};
use super::error::SimError;
use super::keys::rsa_public_key;
use super::oids;

/// DSS HighLevelResult (SignatureService VerificationResultType).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HighLevel {
    Valid,
    Inconclusive,
    Invalid,
}

impl HighLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            HighLevel::Valid => "VALID",
            HighLevel::Inconclusive => "INCONCLUSIVE",
            HighLevel::Invalid => "INVALID",
        }
    }
}

/// Outcome of the certificate path check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainStatus {
    /// Path to a trust anchor built and all signatures verified.
    Valid,
    /// No issuer for this certificate subject among the SignedData certificates and anchors.
    Unverifiable { missing_issuer: String },
    /// A certificate is outside its validity period at `now`.
    Expired { subject: String },
    /// The signer certificate's serial is on the revoked list.
    Revoked,
    /// An issuer was found but its signature over the certificate does not verify.
    BadSignature { subject: String },
}

/// Everything VerifyDocument reports.
#[derive(Debug, Clone)]
pub struct VerifyOutcome {
    pub high_level: HighLevel,
    /// The CMS signature and messageDigest verified.
    pub signature_valid: bool,
    pub chain: ChainStatus,
    pub signer_cert_der: Vec<u8>,
    /// The encapsulated content, if embedded.
    pub econtent: Option<Vec<u8>>,
}

/// Verification policy: trust anchors, revoked serial numbers (big-endian bytes as in the
/// certificate), and the time to check validity at (seconds since the Unix epoch).
pub struct VerifyPolicy<'a> {
    pub trust_anchors: &'a [Vec<u8>],
    pub revoked_serials: &'a [Vec<u8>],
    pub now_unix: u64,
}

fn oid_of(node: &Node) -> Result<const_oid::ObjectIdentifier, SimError> {
    Ok(const_oid::ObjectIdentifier::from_der(&node.to_der())?)
}

/// Verifies `sig` over the SHA-256 `hashed` data with the algorithm `alg` and `key`.
pub fn verify_rsa(
    key: &RsaPublicKey,
    alg: &AlgorithmIdentifierOwned,
    hashed: &[u8],
    sig: &[u8],
) -> Result<bool, SimError> {
    if alg.oid == oids::ID_RSASSA_PSS {
        let params_der = match &alg.parameters {
            Some(p) => p.to_der()?,
            None => return Err(SimError::Unsupported("PSS with SHA-1 defaults".into())),
        };
        let params = RsaPssParams::try_from(params_der.as_slice())
            .map_err(|e| SimError::Asn1(e.to_string()))?;
        if params.hash.oid != oids::ID_SHA256 {
            return Err(SimError::Unsupported(format!(
                "PSS hash {}",
                params.hash.oid
            )));
        }
        Ok(key
            .verify(
                Pss::new_with_salt::<Sha256>(usize::from(params.salt_len)),
                hashed,
                sig,
            )
            .is_ok())
    } else if alg.oid == oids::ID_RSA_ENCRYPTION || alg.oid == oids::SHA256_WITH_RSA {
        Ok(key
            .verify(Pkcs1v15Sign::new::<Sha256>(), hashed, sig)
            .is_ok())
    } else {
        Err(SimError::Unsupported(format!(
            "signature algorithm {}",
            alg.oid
        )))
    }
}

fn valid_at(cert: &Certificate, now: u64) -> bool {
    let v = &cert.tbs_certificate.validity;
    let nb = v.not_before.to_unix_duration().as_secs();
    let na = v.not_after.to_unix_duration().as_secs();
    nb <= now && now <= na
}

const ECDSA_WITH_SHA256: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_WITH_SHA384: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const SECP256R1: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// ring's verification algorithm for an ECDSA signature by `issuer`, if the signature is ECDSA
/// on NIST P-256/P-384 (what TLS server CAs outside the TI and rcgen's test CAs use). `None`
/// for anything else, brainpool included (ring has no brainpool curves).
fn ecdsa_algorithm(
    signature: &AlgorithmIdentifierOwned,
    issuer: &Certificate,
) -> Option<&'static ring::signature::EcdsaVerificationAlgorithm> {
    use ring::signature as rs;
    let spki = &issuer.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid != super::ecc::ID_EC_PUBLIC_KEY {
        return None;
    }
    let curve = spki
        .algorithm
        .parameters
        .as_ref()?
        .decode_as::<const_oid::ObjectIdentifier>()
        .ok()?;
    match (signature.oid, curve) {
        (ECDSA_WITH_SHA256, SECP256R1) => Some(&rs::ECDSA_P256_SHA256_ASN1),
        (ECDSA_WITH_SHA384, SECP256R1) => Some(&rs::ECDSA_P256_SHA384_ASN1),
        (ECDSA_WITH_SHA256, SECP384R1) => Some(&rs::ECDSA_P384_SHA256_ASN1),
        (ECDSA_WITH_SHA384, SECP384R1) => Some(&rs::ECDSA_P384_SHA384_ASN1),
        _ => None,
    }
}

/// Does `issuer`'s key verify `cert`'s signature? RSA (PKCS#1 v1.5, PSS) and ECDSA on
/// P-256/P-384; `None` when the algorithm is unsupported.
fn issued_by(cert: &Certificate, issuer: &Certificate) -> Option<bool> {
    if let Some(alg) = ecdsa_algorithm(&cert.signature_algorithm, issuer) {
        let tbs = cert.tbs_certificate.to_der().ok()?;
        let sig = cert.signature.as_bytes()?;
        let point = issuer
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .as_bytes()?;
        return Some(
            ring::signature::UnparsedPublicKey::new(alg, point)
                .verify(&tbs, sig)
                .is_ok(),
        );
    }
    let key = rsa_public_key(issuer).ok()?;
    let tbs = cert.tbs_certificate.to_der().ok()?;
    let hashed = Sha256::digest(&tbs);
    let sig = cert.signature.as_bytes()?;
    verify_rsa(&key, &cert.signature_algorithm, &hashed, sig).ok()
}

/// TUC_KON_037-style check of one certificate on its own (no intermediates besides the
/// anchors): validity at `now`, revocation, path to a trust anchor. EncryptDocument runs it
/// for every recipient certificate, as a real Konnektor does before it encrypts.
pub fn check_certificate(der: &[u8], policy: &VerifyPolicy<'_>) -> Result<ChainStatus, SimError> {
    let cert = Certificate::from_der(der)?;
    check_chain(&cert, &[], policy)
}

fn check_chain(
    signer: &Certificate,
    pool: &[Certificate],
    policy: &VerifyPolicy<'_>,
) -> Result<ChainStatus, SimError> {
    let serial = signer.tbs_certificate.serial_number.as_bytes();
    if policy
        .revoked_serials
        .iter()
        .any(|r| r.as_slice() == serial)
    {
        return Ok(ChainStatus::Revoked);
    }
    let anchors: Vec<Certificate> = policy
        .trust_anchors
        .iter()
        .map(|d| Certificate::from_der(d))
        .collect::<Result<_, _>>()?;
    let mut current = signer.clone();
    for _ in 0..8 {
        let subject = current.tbs_certificate.subject.to_string();
        if !valid_at(&current, policy.now_unix) {
            return Ok(ChainStatus::Expired { subject });
        }
        let issuer_name = &current.tbs_certificate.issuer;
        if let Some(anchor) = anchors
            .iter()
            .find(|a| &a.tbs_certificate.subject == issuer_name)
        {
            return Ok(match issued_by(&current, anchor) {
                Some(true) if valid_at(anchor, policy.now_unix) => ChainStatus::Valid,
                Some(true) => ChainStatus::Expired {
                    subject: anchor.tbs_certificate.subject.to_string(),
                },
                Some(false) => ChainStatus::BadSignature { subject },
                None => ChainStatus::Unverifiable {
                    missing_issuer: issuer_name.to_string(),
                },
            });
        }
        let Some(next) = pool
            .iter()
            .find(|c| &c.tbs_certificate.subject == issuer_name && *c != &current)
        else {
            return Ok(ChainStatus::Unverifiable {
                missing_issuer: issuer_name.to_string(),
            });
        };
        match issued_by(&current, next) {
            Some(true) => current = next.clone(),
            Some(false) => return Ok(ChainStatus::BadSignature { subject }),
            None => {
                return Ok(ChainStatus::Unverifiable {
                    missing_issuer: issuer_name.to_string(),
                });
            }
        }
    }
    Ok(ChainStatus::Unverifiable {
        missing_issuer: "path too long".into(),
    })
}

/// Verifies a ContentInfo(SignedData) in BER or DER.
pub fn verify_document(input: &[u8], policy: &VerifyPolicy<'_>) -> Result<VerifyOutcome, SimError> {
    let root = Node::parse(input)?;
    let top = root.children();
    let (Some(ct), Some(wrapped)) = (top.first(), top.get(1)) else {
        return Err(BerError::Shape("ContentInfo").into());
    };
    if oid_of(ct)? != oids::ID_SIGNED_DATA || !wrapped.is_context(0) {
        return Err(SimError::Unsupported(
            "content type is not signedData".into(),
        ));
    }
    let sd = wrapped
        .children()
        .first()
        .ok_or(BerError::Shape("SignedData"))?;
    let fields = sd.children();
    let encap = fields
        .get(2)
        .filter(|n| n.tag == tag::SEQUENCE)
        .ok_or(BerError::Shape("encapContentInfo"))?;
    let econtent = match encap.children().get(1) {
        Some(explicit) if explicit.is_context(0) => Some(
            explicit
                .children()
                .first()
                .ok_or(BerError::Shape("eContent"))?
                .string_bytes()?,
        ),
        _ => None,
    };
    let mut certs = Vec::new();
    if let Some(set) = fields.iter().find(|n| n.is_context(0)) {
        for c in set.children() {
            if c.tag == tag::SEQUENCE {
                certs.push(Certificate::from_der(&c.to_der())?);
            }
        }
    }
    let signer_infos = fields
        .iter()
        .rev()
        .find(|n| n.tag == tag::SET)
        .ok_or(BerError::Shape("signerInfos"))?;
    let si = match signer_infos.children() {
        [one] => one,
        [] => return Err(SimError::Asn1("no signerInfo".into())),
        _ => return Err(SimError::Asn1("more than one signerInfo".into())),
    };
    let si_fields = si.children();
    let sid = si_fields.get(1).ok_or(BerError::Shape("sid"))?;
    if sid.tag != tag::SEQUENCE {
        return Err(SimError::Unsupported("sid subjectKeyIdentifier".into()));
    }
    let ias = IssuerAndSerialNumber::from_der(&sid.to_der())?;
    let signer = certs
        .iter()
        .find(|c| {
            c.tbs_certificate.issuer == ias.issuer
                && c.tbs_certificate.serial_number == ias.serial_number
        })
        .cloned()
        .ok_or(SimError::Asn1(
            "signer certificate not in SignedData".into(),
        ))?;
    let digest_alg = AlgorithmIdentifierOwned::from_der(
        &si_fields
            .get(2)
            .ok_or(BerError::Shape("digestAlgorithm"))?
            .to_der(),
    )?;
    if digest_alg.oid != oids::ID_SHA256 {
        return Err(SimError::Unsupported(format!("digest {}", digest_alg.oid)));
    }
    let mut idx = 3;
    let signed_attrs = si_fields.get(3).filter(|n| n.is_context(0));
    if signed_attrs.is_some() {
        idx += 1;
    }
    let sig_alg = AlgorithmIdentifierOwned::from_der(
        &si_fields
            .get(idx)
            .ok_or(BerError::Shape("signatureAlgorithm"))?
            .to_der(),
    )?;
    let signature = si_fields
        .get(idx + 1)
        .filter(|n| n.tag == tag::OCTET_STRING)
        .ok_or(BerError::Shape("signature"))?
        .string_bytes()?;
    let content_digest = econtent.as_deref().map(|c| Sha256::digest(c).to_vec());

    let (signed_bytes, digest_ok) = match signed_attrs {
        Some(attrs) => {
            let mut der = Vec::new();
            ber::write_tlv(&mut der, tag::SET, true, &attrs.content_der());
            let mut md = None;
            for a in attrs.children() {
                if let (Some(oid), Some(vals)) = (a.children().first(), a.children().get(1))
                    && oid_of(oid)? == oids::ID_MESSAGE_DIGEST
                {
                    md = vals
                        .children()
                        .first()
                        .map(Node::string_bytes)
                        .transpose()?;
                }
            }
            let ok = match (&md, &content_digest) {
                (Some(m), Some(c)) => m == c,
                _ => false,
            };
            (der, ok)
        }
        None => (econtent.clone().unwrap_or_default(), econtent.is_some()),
    };
    let key = rsa_public_key(&signer)?;
    let hashed = Sha256::digest(&signed_bytes);
    let sig_ok = verify_rsa(&key, &sig_alg, &hashed, &signature)?;
    let signature_valid = sig_ok && digest_ok;
    let chain = check_chain(&signer, &certs, policy)?;
    let high_level = match (&chain, signature_valid) {
        (_, false) => HighLevel::Invalid,
        (ChainStatus::Valid, true) => HighLevel::Valid,
        (ChainStatus::Unverifiable { .. }, true) => HighLevel::Inconclusive,
        (_, true) => HighLevel::Invalid,
    };
    Ok(VerifyOutcome {
        high_level,
        signature_valid,
        chain,
        signer_cert_der: signer.to_der()?,
        econtent,
    })
}
