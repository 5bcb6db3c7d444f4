//! Minimal RSA certificate issuance for the simulator's own TLS identity and for tests.
//!
//! WHY here and not `conformance::pki`: the simulator must not depend on the PKI generator
//! (it takes cards as data), but it still needs a TLS server certificate made in code, and its
//! tests need card keys. Keys are RSA-2048 (rcgen with ring cannot generate RSA and is not a
//! dependency of the workspace).

use std::str::FromStr;
use std::time::Duration;

use der::Encode;
use der::asn1::{Ia5String, OctetString};
use rsa::RsaPrivateKey;
use rsa::pkcs8::EncodePrivateKey;
use sha2::Sha256;
use spki::{EncodePublicKey, SubjectPublicKeyInfoOwned};
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use super::error::SimError;
use super::keys::KeyMaterial;

/// What kind of certificate to issue.
pub enum CertProfile<'a> {
    /// Self-signed CA.
    Root,
    /// End-entity certificate signed by `issuer`; `tls_server` adds SANs 127.0.0.1/localhost.
    Leaf {
        issuer: &'a KeyMaterial,
        tls_server: bool,
    },
}

fn err<E: std::fmt::Display>(e: E) -> SimError {
    SimError::Key(e.to_string())
}

/// Generates a fresh RSA-2048 key.
pub fn generate_rsa_key() -> Result<RsaPrivateKey, SimError> {
    RsaPrivateKey::new(&mut rand::thread_rng(), 2048).map_err(err)
}

/// Issues a certificate for `key` with subject `subject` (RFC 4514 string, e.g.
/// `CN=Praxis,O=Test,C=DE`), valid from `not_before` to `not_after` (Unix seconds).
pub fn issue(
    key: &RsaPrivateKey,
    subject: &str,
    serial: u64,
    not_before: u64,
    not_after: u64,
    profile: CertProfile<'_>,
) -> Result<KeyMaterial, SimError> {
    let spki_der = key.to_public_key().to_public_key_der().map_err(err)?;
    let spki = SubjectPublicKeyInfoOwned::try_from(spki_der.as_bytes()).map_err(err)?;
    let pkcs8 = key.to_pkcs8_der().map_err(err)?.as_bytes().to_vec();
    issue_for_spki(spki, pkcs8, subject, serial, not_before, not_after, profile)
}

/// Issues a certificate for an arbitrary public key (e.g. brainpoolP256r1 from
/// `ecc::generate_bp256`); a `Root` profile needs an RSA key, so ECC keys must use `Leaf`.
pub fn issue_for_spki(
    spki: SubjectPublicKeyInfoOwned,
    private_key_pkcs8_der: Vec<u8>,
    subject: &str,
    serial: u64,
    not_before: u64,
    not_after: u64,
    profile: CertProfile<'_>,
) -> Result<KeyMaterial, SimError> {
    let subject_name = Name::from_str(subject).map_err(err)?;
    let validity = Validity {
        not_before: Time::try_from(std::time::UNIX_EPOCH + Duration::from_secs(not_before))
            .map_err(err)?,
        not_after: Time::try_from(std::time::UNIX_EPOCH + Duration::from_secs(not_after))
            .map_err(err)?,
    };
    let serial = SerialNumber::new(&serial.to_be_bytes()).map_err(err)?;
    let (signing_key, builder_profile, tls) = match profile {
        CertProfile::Root => (
            KeyMaterial {
                cert_der: Vec::new(),
                private_key_pkcs8_der: private_key_pkcs8_der.clone(),
            }
            .rsa_private_key()?,
            Profile::Root,
            false,
        ),
        CertProfile::Leaf { issuer, tls_server } => (
            issuer.rsa_private_key()?,
            Profile::Leaf {
                issuer: issuer.certificate()?.tbs_certificate.subject,
                enable_key_agreement: false,
                enable_key_encipherment: true,
            },
            tls_server,
        ),
    };
    let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(signing_key);
    let mut builder = CertificateBuilder::new(
        builder_profile,
        serial,
        validity,
        subject_name,
        spki,
        &signer,
    )
    .map_err(err)?;
    if tls {
        let san = SubjectAltName(vec![
            GeneralName::IpAddress(OctetString::new(vec![127, 0, 0, 1]).map_err(err)?),
            GeneralName::DnsName(Ia5String::new("localhost").map_err(err)?),
        ]);
        builder.add_extension(&san).map_err(err)?;
    }
    let cert = builder.build::<rsa::pkcs1v15::Signature>().map_err(err)?;
    Ok(KeyMaterial {
        cert_der: cert.to_der()?,
        private_key_pkcs8_der,
    })
}
