//! Certificate inspection: everything the selection rules need, read once from the DER.

use std::time::{Duration, SystemTime};

use const_oid::ObjectIdentifier;
use der::asn1::Ia5String;
use der::{Decode, Encode, Sequence};
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{CertificatePolicies, KeyUsage, SubjectAltName};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;

use super::admission;
use super::oids;

/// The public key algorithm of an encryption certificate; the Konnektor's ECC capability
/// decides whether ECC ones may be used (A_17472).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    Rsa,
    /// ECC on brainpoolP256r1, the only curve of the TI.
    EccBrainpoolP256r1,
}

/// Why a certificate from the directory was not used. Returned as data so the runtime can log
/// it (no personal data in it) while the message keeps going to the other recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// Not a DER X.509 certificate (or an extension we rely on is malformed).
    Malformed(String),
    /// ECC on a curve other than brainpoolP256r1, or neither RSA nor ECC.
    UnsupportedKeyAlgorithm(String),
    NotYetValid,
    Expired,
    /// Key usage forbids encryption (no keyEncipherment for RSA, no keyAgreement for ECC).
    NoEncryptionKeyUsage,
    /// Carries neither C.HCI.ENC nor C.HP.ENC (e.g. a signature certificate) (KOM-LE-A_2022).
    NotAnEncryptionCertificate,
    /// The Konnektor cannot use ECC certificates (A_17472).
    EccNotSupportedByKonnektor,
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::Malformed(e) => write!(f, "malformed certificate: {e}"),
            SkipReason::UnsupportedKeyAlgorithm(a) => write!(f, "unsupported key algorithm {a}"),
            SkipReason::NotYetValid => f.write_str("certificate not yet valid"),
            SkipReason::Expired => f.write_str("certificate expired"),
            SkipReason::NoEncryptionKeyUsage => f.write_str("key usage does not allow encryption"),
            SkipReason::NotAnEncryptionCertificate => {
                f.write_str("certificate policy is neither C.HCI.ENC nor C.HP.ENC")
            }
            SkipReason::EccNotSupportedByKonnektor => {
                f.write_str("ECC certificate but the Konnektor is not ECC capable")
            }
        }
    }
}

/// What the Clientmodul needs to know about one certificate found in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InspectedCertificate {
    pub der: Vec<u8>,
    pub key_algorithm: KeyAlgorithm,
    /// Unix seconds.
    pub not_before: u64,
    /// Unix seconds.
    pub not_after: u64,
    /// keyEncipherment (RSA) resp. keyAgreement (ECC) is set, or there is no key usage extension.
    pub encryption_key_usage: bool,
    /// From the Admission extension; `None` when the certificate carries none.
    pub telematik_id: Option<String>,
    pub policies: Vec<ObjectIdentifier>,
    /// rfc822Name entries of the subject alternative name.
    pub emails: Vec<String>,
    /// DER of `IssuerAndSerialNumber ::= SEQUENCE { issuer Name, serialNumber INTEGER }`, the
    /// `rid` of the recipient-emails attribute (KOM-LE-A_2027, gemSMIME_KOMLE).
    pub issuer_and_serial: Vec<u8>,
}

#[derive(Sequence)]
struct IssuerAndSerialNumber {
    issuer: Name,
    serial_number: SerialNumber,
}

impl InspectedCertificate {
    /// Whether a policy marks this certificate as C.HCI.ENC or C.HP.ENC (KOM-LE-A_2022).
    ///
    /// gematik's sample ENC certificates carry 1.2.276.0.76.4.163 (the TI's general certificate
    /// policy) in addition to C.HCI.ENC; that OID names no certificate type, so it neither
    /// qualifies nor disqualifies a certificate.
    pub fn is_encryption_type(&self) -> bool {
        self.policies
            .iter()
            .any(|p| *p == oids::POLICY_C_HCI_ENC || *p == oids::POLICY_C_HP_ENC)
    }

    /// Whether the certificate is inside its validity period at `now`.
    pub fn validity_at(&self, now: SystemTime) -> Result<(), SkipReason> {
        let now = unix_seconds(now);
        if now < self.not_before {
            Err(SkipReason::NotYetValid)
        } else if now > self.not_after {
            Err(SkipReason::Expired)
        } else {
            Ok(())
        }
    }

    /// Every check that does not depend on the Konnektor: validity at `now`, key usage, and
    /// certificate type.
    pub fn usable_for_encryption_at(&self, now: SystemTime) -> Result<(), SkipReason> {
        self.validity_at(now)?;
        if !self.encryption_key_usage {
            return Err(SkipReason::NoEncryptionKeyUsage);
        }
        if !self.is_encryption_type() {
            return Err(SkipReason::NotAnEncryptionCertificate);
        }
        Ok(())
    }
}

/// Seconds since the Unix epoch; times before 1970 count as 0.
pub(crate) fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Inspects one DER certificate. A certificate that cannot be read is reported, not fatal.
pub fn inspect(der: &[u8]) -> Result<InspectedCertificate, SkipReason> {
    let malformed = |e: der::Error| SkipReason::Malformed(e.to_string());
    let cert = Certificate::from_der(der).map_err(malformed)?;
    let tbs = &cert.tbs_certificate;
    let spki = &tbs.subject_public_key_info;
    let key_algorithm = match spki.algorithm.oid {
        oids::RSA_ENCRYPTION => KeyAlgorithm::Rsa,
        oids::EC_PUBLIC_KEY => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .map(|p| p.decode_as::<ObjectIdentifier>())
                .transpose()
                .map_err(malformed)?;
            match curve {
                Some(oids::BRAINPOOL_P256R1) => KeyAlgorithm::EccBrainpoolP256r1,
                Some(other) => {
                    return Err(SkipReason::UnsupportedKeyAlgorithm(format!("EC {other}")));
                }
                None => {
                    return Err(SkipReason::UnsupportedKeyAlgorithm(
                        "EC without curve".into(),
                    ));
                }
            }
        }
        other => return Err(SkipReason::UnsupportedKeyAlgorithm(other.to_string())),
    };

    let mut encryption_key_usage = true;
    let mut telematik_id = None;
    let mut policies = Vec::new();
    let mut emails = Vec::new();
    for ext in tbs.extensions.iter().flatten() {
        let value = ext.extn_value.as_bytes();
        match ext.extn_id {
            oids::KEY_USAGE => {
                let ku = KeyUsage::from_der(value).map_err(malformed)?;
                encryption_key_usage = match key_algorithm {
                    KeyAlgorithm::Rsa => ku.key_encipherment(),
                    KeyAlgorithm::EccBrainpoolP256r1 => ku.key_agreement(),
                };
            }
            oids::CERTIFICATE_POLICIES => {
                let cp = CertificatePolicies::from_der(value).map_err(malformed)?;
                policies.extend(cp.0.into_iter().map(|p| p.policy_identifier));
            }
            oids::SUBJECT_ALT_NAME => {
                let san = SubjectAltName::from_der(value).map_err(malformed)?;
                emails.extend(san.0.into_iter().filter_map(|n| match n {
                    GeneralName::Rfc822Name(m) => Some(ia5(&m)),
                    _ => None,
                }));
            }
            oids::ADMISSION => {
                telematik_id = admission::telematik_id(value).map_err(malformed)?;
            }
            _ => {}
        }
    }

    let issuer_and_serial = IssuerAndSerialNumber {
        issuer: tbs.issuer.clone(),
        serial_number: tbs.serial_number.clone(),
    }
    .to_der()
    .map_err(malformed)?;

    Ok(InspectedCertificate {
        der: der.to_vec(),
        key_algorithm,
        not_before: secs(tbs.validity.not_before.to_unix_duration()),
        not_after: secs(tbs.validity.not_after.to_unix_duration()),
        encryption_key_usage,
        telematik_id,
        policies,
        emails,
        issuer_and_serial,
    })
}

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

fn ia5(s: &Ia5String) -> String {
    s.as_str().to_owned()
}
