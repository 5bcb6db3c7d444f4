//! Issuing certificates and CRLs: TBSCertificate built by hand and signed with the CA's RSA key
//! (sha256WithRSAEncryption), so every field the TI profile needs is under our control.

use std::str::FromStr;
use std::time::SystemTime;

use der::asn1::BitString;
use der::{Any, Encode};
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding, Signer};
use sha2::Sha256;
use spki::{AlgorithmIdentifierOwned, ObjectIdentifier};
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, TbsCertificate, Version};

use super::PkiError;
use super::keys::TestKey;

const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");

fn sha256_with_rsa() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: SHA256_WITH_RSA,
        parameters: Some(Any::null()),
    }
}

pub(crate) fn name(dn: &str) -> Result<Name, PkiError> {
    Ok(Name::from_str(dn)?)
}

pub(crate) fn time(t: SystemTime) -> Result<Time, PkiError> {
    Ok(Time::try_from(t)?)
}

fn sign(ca_key: &RsaPrivateKey, tbs_der: &[u8]) -> Result<BitString, PkiError> {
    let signer = SigningKey::<Sha256>::new(ca_key.clone());
    let sig = signer
        .try_sign(tbs_der)
        .map_err(|e| PkiError::Key(e.to_string()))?;
    Ok(BitString::from_bytes(&sig.to_vec())?)
}

/// What goes into one certificate besides keys and issuer.
pub(crate) struct CertSpec<'a> {
    pub serial: u64,
    pub subject: &'a str,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub extensions: Vec<Extension>,
}

pub(crate) fn issue(
    spec: CertSpec<'_>,
    subject_key: &TestKey,
    issuer: &Name,
    ca_key: &RsaPrivateKey,
) -> Result<Vec<u8>, PkiError> {
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::from(spec.serial),
        signature: sha256_with_rsa(),
        issuer: issuer.clone(),
        validity: Validity {
            not_before: time(spec.not_before)?,
            not_after: time(spec.not_after)?,
        },
        subject: name(spec.subject)?,
        subject_public_key_info: subject_key.spki()?,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(spec.extensions),
    };
    let signature = sign(ca_key, &tbs.to_der()?)?;
    Ok(Certificate {
        tbs_certificate: tbs,
        signature_algorithm: sha256_with_rsa(),
        signature,
    }
    .to_der()?)
}

/// A CRL of `issuer` listing `serials` as revoked at `now` (valid for a week).
pub(crate) fn crl(
    issuer: &Name,
    ca_key: &RsaPrivateKey,
    serials: &[u64],
    now: SystemTime,
) -> Result<Vec<u8>, PkiError> {
    let revoked = serials
        .iter()
        .map(|s| {
            Ok(RevokedCert {
                serial_number: SerialNumber::from(*s),
                revocation_date: time(now)?,
                crl_entry_extensions: None,
            })
        })
        .collect::<Result<Vec<_>, PkiError>>()?;
    let tbs = TbsCertList {
        version: Version::V2,
        signature: sha256_with_rsa(),
        issuer: issuer.clone(),
        this_update: time(now)?,
        next_update: Some(time(now + std::time::Duration::from_secs(7 * 86_400))?),
        revoked_certificates: Some(revoked),
        crl_extensions: None,
    };
    let signature = sign(ca_key, &tbs.to_der()?)?;
    Ok(CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: sha256_with_rsa(),
        signature,
    }
    .to_der()?)
}
