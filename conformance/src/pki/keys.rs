//! Test keys: RSA-2048 and brainpoolP256r1, derived from a name so every run gets the same
//! keys, and generated once per process (RSA key generation is the slow part of the PKI).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use der::asn1::{BitString, OctetString};
use der::{Decode, Encode, Sequence};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use rsa::RsaPrivateKey;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
use spki::{AlgorithmIdentifierOwned, ObjectIdentifier, SubjectPublicKeyInfoOwned};

use super::PkiError;

pub(crate) const EC_PUBLIC_KEY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
pub(crate) const BRAINPOOL_P256R1: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.36.3.3.2.8.1.1.7");

/// A private key of the test PKI.
#[derive(Clone)]
pub enum TestKey {
    Rsa(Box<RsaPrivateKey>),
    /// brainpoolP256r1 private scalar (32 bytes, big-endian).
    Ecc(bp256::r1::SecretKey),
}

impl std::fmt::Debug for TestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material, not even in test logs.
        match self {
            TestKey::Rsa(_) => f.write_str("TestKey::Rsa(..)"),
            TestKey::Ecc(_) => f.write_str("TestKey::Ecc(..)"),
        }
    }
}

fn seed(name: &str) -> u64 {
    // FNV-1a: stable across Rust versions, unlike DefaultHasher.
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The RSA-2048 key called `name`, the same in every run and generated once per process.
pub fn rsa_key(name: &str) -> Result<RsaPrivateKey, PkiError> {
    static KEYS: OnceLock<Mutex<HashMap<String, RsaPrivateKey>>> = OnceLock::new();
    let keys = KEYS.get_or_init(Default::default);
    if let Some(k) = keys.lock().map_err(|_| PkiError::Poisoned)?.get(name) {
        return Ok(k.clone());
    }
    // Generated outside the lock so several threads can build keys at once.
    let mut rng = StdRng::seed_from_u64(seed(name));
    let key = RsaPrivateKey::new(&mut rng, 2048).map_err(|e| PkiError::Key(e.to_string()))?;
    keys.lock()
        .map_err(|_| PkiError::Poisoned)?
        .insert(name.to_owned(), key.clone());
    Ok(key)
}

/// The brainpoolP256r1 key called `name` (deterministic, cheap).
pub fn ecc_key(name: &str) -> Result<bp256::r1::SecretKey, PkiError> {
    let mut rng = StdRng::seed_from_u64(seed(name) ^ 0xecc);
    for _ in 0..64 {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        if let Ok(k) = bp256::r1::SecretKey::from_slice(&bytes) {
            return Ok(k);
        }
    }
    Err(PkiError::Key("no valid brainpoolP256r1 scalar".into()))
}

#[derive(Sequence)]
struct EcPrivateKey {
    version: u8,
    private_key: OctetString,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    parameters: Option<ObjectIdentifier>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    public_key: Option<BitString>,
}

#[derive(Sequence)]
struct PrivateKeyInfo {
    version: u8,
    algorithm: AlgorithmIdentifierOwned,
    private_key: OctetString,
}

fn ecc_algorithm() -> Result<AlgorithmIdentifierOwned, PkiError> {
    Ok(AlgorithmIdentifierOwned {
        oid: EC_PUBLIC_KEY,
        parameters: Some(der::Any::encode_from(&BRAINPOOL_P256R1)?),
    })
}

impl TestKey {
    /// SubjectPublicKeyInfo for the certificate.
    pub fn spki(&self) -> Result<SubjectPublicKeyInfoOwned, PkiError> {
        match self {
            TestKey::Rsa(k) => {
                let doc = k
                    .to_public_key()
                    .to_public_key_der()
                    .map_err(|e| PkiError::Key(e.to_string()))?;
                Ok(SubjectPublicKeyInfoOwned::from_der(doc.as_bytes())?)
            }
            TestKey::Ecc(k) => Ok(SubjectPublicKeyInfoOwned {
                algorithm: ecc_algorithm()?,
                subject_public_key: BitString::from_bytes(&k.public_key().to_sec1_bytes())?,
            }),
        }
    }

    /// PKCS#8 DER (`PrivateKeyInfo`), the interchange format with the Konnektor simulator.
    /// ECC keys carry an RFC 5915 `ECPrivateKey` with the public key, curve in the algorithm.
    pub fn pkcs8_der(&self) -> Result<Vec<u8>, PkiError> {
        match self {
            TestKey::Rsa(k) => Ok(k
                .to_pkcs8_der()
                .map_err(|e| PkiError::Key(e.to_string()))?
                .as_bytes()
                .to_vec()),
            TestKey::Ecc(k) => {
                let inner = EcPrivateKey {
                    version: 1,
                    private_key: OctetString::new(k.to_bytes().to_vec())?,
                    parameters: None,
                    public_key: Some(BitString::from_bytes(&k.public_key().to_sec1_bytes())?),
                }
                .to_der()?;
                Ok(PrivateKeyInfo {
                    version: 0,
                    algorithm: ecc_algorithm()?,
                    private_key: OctetString::new(inner)?,
                }
                .to_der()?)
            }
        }
    }
}
