//! ECC recipients (brainpoolP256r1): the simulator's TI-ECIES key transport.
//!
//! gemSpec_Krypt puts ECC recipients into a KeyTransRecipientInfo with key encryption algorithm
//! TI-ECIES (OID 1.2.276.0.76.4.222, no parameters) instead of RFC 5753 key agreement. The
//! public spec text at hand does not give the byte layout, so this is exactly what the
//! simulator implements (the Clientmodul never opens these structures; only the simulator's
//! own DecryptDocument does):
//!
//! 1. ephemeral key pair (e, E = e·G) on brainpoolP256r1, E uncompressed (65 bytes);
//! 2. Z = x-coordinate of e·Q (Q = recipient public key), 32 bytes;
//! 3. K = ANSI X9.63 KDF with SHA-256: `SHA-256(Z ‖ 00 00 00 01 ‖ E)` (one block = 32 bytes);
//! 4. IV = 12 random bytes; C ‖ T = AES-256-GCM(K, IV, CEK), no AAD, 16-byte tag;
//! 5. encryptedKey = `01 ‖ E ‖ IV ‖ C ‖ T` (version byte 1).

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use bp256::BrainpoolP256r1;
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use elliptic_curve::sec1::ToSec1Point;
use rand::RngCore;
use sha2::{Digest, Sha256};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::Certificate;

use super::ber::{Node, tag};
use super::error::SimError;

type PublicKey = elliptic_curve::PublicKey<BrainpoolP256r1>;
type SecretKey = elliptic_curve::SecretKey<BrainpoolP256r1>;

pub const ID_TI_ECIES: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.276.0.76.4.222");
pub const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
pub const BRAINPOOL_P256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.36.3.3.2.8.1.1.7");

const VERSION: u8 = 1;
const POINT_LEN: usize = 65;

/// Whether the certificate carries a brainpoolP256r1 key.
pub fn is_bp256(cert: &Certificate) -> bool {
    let alg = &cert.tbs_certificate.subject_public_key_info.algorithm;
    alg.oid == ID_EC_PUBLIC_KEY
        && alg
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
            == Some(BRAINPOOL_P256R1)
}

fn random_secret() -> SecretKey {
    let mut rng = rand::thread_rng();
    loop {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        if let Ok(sk) = SecretKey::from_slice(&bytes) {
            return sk;
        }
    }
}

fn kdf(z: &[u8], shared_info: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(z);
    h.update(1u32.to_be_bytes());
    h.update(shared_info);
    h.finalize().into()
}

/// TI-ECIES-encrypts `cek` for the brainpoolP256r1 key in `cert`.
pub fn encrypt_key(cert: &Certificate, cek: &[u8]) -> Result<Vec<u8>, SimError> {
    if !is_bp256(cert) {
        return Err(SimError::Unsupported(
            "not a brainpoolP256r1 certificate".into(),
        ));
    }
    let point = cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    let recipient =
        PublicKey::from_sec1_bytes(point).map_err(|_| SimError::Key("bad EC point".into()))?;
    let eph = random_secret();
    let e_pub = eph.public_key().to_sec1_point(false);
    let e_bytes = e_pub.as_bytes();
    let z = eph.diffie_hellman(&recipient);
    let k = kdf(z.raw_secret_bytes().as_slice(), e_bytes);
    let mut iv = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut iv);
    let sealed = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&k))
        .encrypt(Nonce::from_slice(&iv), cek)
        .map_err(|_| SimError::Key("AES-GCM key wrap failed".into()))?;
    let mut out = Vec::with_capacity(1 + POINT_LEN + 12 + sealed.len());
    out.push(VERSION);
    out.extend_from_slice(e_bytes);
    out.extend_from_slice(&iv);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens a TI-ECIES encryptedKey with the recipient's 32-byte private scalar.
pub fn decrypt_key(secret: &[u8], enc: &[u8]) -> Result<Vec<u8>, SimError> {
    if enc.len() < 1 + POINT_LEN + 12 + 16 || enc[0] != VERSION {
        return Err(SimError::DecryptionFailed);
    }
    let sk = SecretKey::from_slice(secret).map_err(|_| SimError::Key("bad EC key".into()))?;
    let e_bytes = &enc[1..1 + POINT_LEN];
    let eph = PublicKey::from_sec1_bytes(e_bytes).map_err(|_| SimError::DecryptionFailed)?;
    let z = sk.diffie_hellman(&eph);
    let k = kdf(z.raw_secret_bytes().as_slice(), e_bytes);
    let iv = &enc[1 + POINT_LEN..1 + POINT_LEN + 12];
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&k))
        .decrypt(Nonce::from_slice(iv), &enc[1 + POINT_LEN + 12..])
        .map_err(|_| SimError::DecryptionFailed)
}

/// A fresh brainpoolP256r1 key: (SubjectPublicKeyInfo, PKCS#8 DER).
pub fn generate_bp256() -> Result<(SubjectPublicKeyInfoOwned, Vec<u8>), SimError> {
    let sk = random_secret();
    let point = sk.public_key().to_sec1_point(false);
    let alg = AlgorithmIdentifierOwned {
        oid: ID_EC_PUBLIC_KEY,
        parameters: Some(der::Any::encode_from(&BRAINPOOL_P256R1)?),
    };
    let spki = SubjectPublicKeyInfoOwned {
        algorithm: alg.clone(),
        subject_public_key: der::asn1::BitString::from_bytes(point.as_bytes())?,
    };
    // ECPrivateKey ::= SEQUENCE { version 1, privateKey OCTET STRING, [1] publicKey BIT STRING }
    let mut ec = Vec::new();
    ec.extend_from_slice(&1u8.to_der()?);
    ec.extend_from_slice(&OctetString::new(sk.to_bytes().as_slice())?.to_der()?);
    let mut bits = vec![0u8];
    bits.extend_from_slice(point.as_bytes());
    let mut pk_field = Vec::new();
    super::ber::write_tlv(&mut pk_field, 0x03, false, &bits);
    super::ber::write_tlv(&mut ec, tag::CONTEXT | 1, true, &pk_field);
    let mut ec_der = Vec::new();
    super::ber::write_tlv(&mut ec_der, tag::SEQUENCE, true, &ec);
    // PrivateKeyInfo ::= SEQUENCE { version 0, algorithm, privateKey OCTET STRING }
    let mut pki = Vec::new();
    pki.extend_from_slice(&0u8.to_der()?);
    pki.extend_from_slice(&alg.to_der()?);
    pki.extend_from_slice(&OctetString::new(ec_der)?.to_der()?);
    let mut out = Vec::new();
    super::ber::write_tlv(&mut out, tag::SEQUENCE, true, &pki);
    Ok((spki, out))
}

/// The 32-byte private scalar from a PKCS#8 brainpoolP256r1 key.
pub fn secret_from_pkcs8(der: &[u8]) -> Result<Vec<u8>, SimError> {
    let root = Node::parse(der)?;
    let alg = root
        .children()
        .get(1)
        .ok_or(SimError::Key("PKCS#8 algorithm missing".into()))?;
    let alg = AlgorithmIdentifierOwned::from_der(&alg.to_der())?;
    if alg.oid != ID_EC_PUBLIC_KEY {
        return Err(SimError::Key("not an EC key".into()));
    }
    let inner = root
        .children()
        .get(2)
        .filter(|n| n.tag == tag::OCTET_STRING)
        .ok_or(SimError::Key("PKCS#8 privateKey missing".into()))?
        .string_bytes()?;
    let ec = Node::parse(&inner)?;
    let scalar = ec
        .children()
        .get(1)
        .filter(|n| n.tag == tag::OCTET_STRING)
        .ok_or(SimError::Key("ECPrivateKey privateKey missing".into()))?
        .string_bytes()?;
    if scalar.len() != 32 {
        return Err(SimError::Key("EC private key must be 32 bytes".into()));
    }
    Ok(scalar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs8_round_trip_keeps_the_scalar_and_matches_the_public_key() {
        let (spki, pkcs8) = generate_bp256().unwrap();
        let scalar = secret_from_pkcs8(&pkcs8).unwrap();
        let sk = SecretKey::from_slice(&scalar).unwrap();
        assert_eq!(
            sk.public_key().to_sec1_point(false).as_bytes(),
            spki.subject_public_key.raw_bytes()
        );
        // OpenSSL-readable: the same structure openssl pkey -inform DER accepts (tested in
        // sim_crypto via the CLI would need brainpool support; checked structurally here).
        let root = Node::parse(&pkcs8).unwrap();
        assert_eq!(root.children().len(), 3);
    }

    #[test]
    fn kdf_is_x963_single_block() {
        let z = [7u8; 32];
        let info = [1u8, 2, 3];
        let mut expect = Sha256::new();
        expect.update([7u8; 32]);
        expect.update([0, 0, 0, 1]);
        expect.update([1u8, 2, 3]);
        assert_eq!(kdf(&z, &info), <[u8; 32]>::from(expect.finalize()));
    }
}
