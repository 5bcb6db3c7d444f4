//! Key material of the simulated cards.
//!
//! WHY PKCS#8: it is the interchange format with the test PKI generator (`conformance::pki`) and
//! what gematik's sample keys use, so the simulator takes cards as plain data.

use der::{Decode, Encode};
use rsa::pkcs8::DecodePrivateKey;
use rsa::{RsaPrivateKey, RsaPublicKey};
use x509_cert::Certificate;

use super::error::SimError;
use super::oids;

/// A certificate and its private key, both DER.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    pub cert_der: Vec<u8>,
    pub private_key_pkcs8_der: Vec<u8>,
}

impl std::fmt::Debug for KeyMaterial {
    /// Never print the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("cert_der_len", &self.cert_der.len())
            .finish_non_exhaustive()
    }
}

impl KeyMaterial {
    /// Parses the certificate.
    pub fn certificate(&self) -> Result<Certificate, SimError> {
        Certificate::from_der(&self.cert_der).map_err(|e| SimError::Key(e.to_string()))
    }

    /// The RSA private key, if this is RSA material.
    pub fn rsa_private_key(&self) -> Result<RsaPrivateKey, SimError> {
        RsaPrivateKey::from_pkcs8_der(&self.private_key_pkcs8_der)
            .map_err(|e| SimError::Key(e.to_string()))
    }

    /// Whether the certificate carries a brainpoolP256r1 key (ECC C.ENC).
    pub fn is_bp256(&self) -> bool {
        self.certificate()
            .map(|c| super::ecc::is_bp256(&c))
            .unwrap_or(false)
    }

    /// Whether the certificate carries an RSA key.
    pub fn is_rsa(&self) -> bool {
        self.certificate()
            .map(|c| {
                c.tbs_certificate.subject_public_key_info.algorithm.oid == oids::ID_RSA_ENCRYPTION
            })
            .unwrap_or(false)
    }
}

/// The RSA public key of a certificate.
pub fn rsa_public_key(cert: &Certificate) -> Result<RsaPublicKey, SimError> {
    let spki = &cert.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid != oids::ID_RSA_ENCRYPTION {
        return Err(SimError::Unsupported(format!(
            "public key algorithm {}",
            spki.algorithm.oid
        )));
    }
    let der = spki.to_der()?;
    use rsa::pkcs8::DecodePublicKey;
    RsaPublicKey::from_public_key_der(&der).map_err(|e| SimError::Key(e.to_string()))
}

/// Decodes a PEM block (certificate or PKCS#8 key) to DER; convenience for tests and the CLI.
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>, SimError> {
    let (_label, der) =
        der::pem::decode_vec(pem.trim().as_bytes()).map_err(|e| SimError::Key(e.to_string()))?;
    Ok(der)
}
