//! The Clientmodul's own TLS client certificates (C.CM.TLS-CS) for mutual TLS with the mail
//! service (KOM-LE-A_2074, A_2182-01), and the password-protected PKCS#12 in which a provider
//! hands one to the practice (KOM-LE-A_2301-02, A_18783).
//!
//! Besides the valid certificate from the test CA there are the two a mail server must refuse:
//! an expired one from the same CA, and a valid-looking one from another CA (same DN style,
//! different key) that no server trusts.

use std::time::SystemTime;

use der::flagset::FlagSet;
use komle_core::directory::KeyAlgorithm;
use x509_cert::ext::pkix::KeyUsages;

use super::issue::{CertSpec, issue, name};
use super::keys::{TestKey, rsa_key};
use super::{CA_DN, DAY, KeyMaterial, PkiError, TestPki, extensions};

/// DN of the CA nobody trusts (issuer of [`CmTlsSet::wrong_ca`]).
const WRONG_CA_DN: &str =
    "CN=KOMLE-WRONG-CA TEST-ONLY,OU=Komponenten-CA,O=komle-conformance NOT-VALID,C=DE";

/// Serials of this set, far from the directory certificates' (which start at 101).
const FIRST_SERIAL: u64 = 0xC3_0000;

/// C.CM.TLS-CS certificates with their keys (RSA-2048, which ring can sign with).
#[derive(Debug, Clone)]
pub struct CmTlsSet {
    /// The test CA (the one of [`TestPki::ca`]): mail servers trust it for client certificates.
    pub ca: KeyMaterial,
    /// Valid: 30 days back to a year ahead.
    pub valid: KeyMaterial,
    /// Same CA, validity ended a day ago.
    pub expired: KeyMaterial,
    /// Valid dates, but issued by [`CmTlsSet::wrong_ca_root`].
    pub wrong_ca: KeyMaterial,
    /// A self-signed CA no mail server trusts.
    pub wrong_ca_root: KeyMaterial,
}

impl TestPki {
    /// The C.CM.TLS-CS set, issued by this PKI's CA (the same `now` as [`TestPki::generate`]
    /// keeps the dates consistent).
    pub fn cm_tls(&self, now: SystemTime) -> Result<CmTlsSet, PkiError> {
        let ca_key = rsa_key("ca")?;
        let ca_name = name(CA_DN)?;
        let valid_dates = (now - 30 * DAY, now + 365 * DAY);
        let valid = client_cert("cm-tls", FIRST_SERIAL + 1, valid_dates, &ca_name, &ca_key)?;
        let expired = client_cert(
            "cm-tls-expired",
            FIRST_SERIAL + 2,
            (now - 400 * DAY, now - DAY),
            &ca_name,
            &ca_key,
        )?;

        let wrong_key = rsa_key("wrong-ca")?;
        let wrong_name = name(WRONG_CA_DN)?;
        let wrong_test_key = TestKey::Rsa(Box::new(wrong_key.clone()));
        let wrong_root_der = issue(
            CertSpec {
                serial: FIRST_SERIAL + 3,
                subject: WRONG_CA_DN,
                not_before: now - 365 * DAY,
                not_after: now + 5 * 365 * DAY,
                extensions: vec![
                    extensions::basic_constraints(true)?,
                    extensions::key_usage(KeyUsages::KeyCertSign | KeyUsages::CRLSign)?,
                ],
            },
            &wrong_test_key,
            &wrong_name,
            &wrong_key,
        )?;
        let wrong_ca_root = KeyMaterial {
            cert_der: wrong_root_der,
            private_key_pkcs8_der: wrong_test_key.pkcs8_der()?,
            algorithm: KeyAlgorithm::Rsa,
            serial: FIRST_SERIAL + 3,
        };
        let wrong_ca = client_cert(
            "cm-tls-wrong-ca",
            FIRST_SERIAL + 4,
            valid_dates,
            &wrong_name,
            &wrong_key,
        )?;
        Ok(CmTlsSet {
            ca: self.ca.clone(),
            valid,
            expired,
            wrong_ca,
            wrong_ca_root,
        })
    }
}

fn client_cert(
    key_name: &str,
    serial: u64,
    (not_before, not_after): (SystemTime, SystemTime),
    issuer: &x509_cert::name::Name,
    issuer_key: &rsa::RsaPrivateKey,
) -> Result<KeyMaterial, PkiError> {
    let key = TestKey::Rsa(Box::new(rsa_key(key_name)?));
    let subject =
        format!("CN=KOM-LE Clientmodul {key_name} TEST-ONLY,O=komle-conformance NOT-VALID,C=DE");
    let usage: FlagSet<KeyUsages> = KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment;
    let cert_der = issue(
        CertSpec {
            serial,
            subject: &subject,
            not_before,
            not_after,
            extensions: vec![
                extensions::basic_constraints(false)?,
                extensions::key_usage(usage)?,
                extensions::client_auth()?,
            ],
        },
        &key,
        issuer,
        issuer_key,
    )?;
    Ok(KeyMaterial {
        cert_der,
        private_key_pkcs8_der: key.pkcs8_der()?,
        algorithm: KeyAlgorithm::Rsa,
        serial,
    })
}

/// The provider's password-protected PKCS#12: `leaf`'s key and certificate with `chain` (CA
/// certificates), under `alias` (PBES2/AES-256 and an HMAC-SHA256 MAC, as OpenSSL 3 writes it).
pub fn pkcs12(
    leaf: &KeyMaterial,
    chain: &[&KeyMaterial],
    alias: &str,
    password: &str,
) -> Result<Vec<u8>, PkiError> {
    let p12_err = |e: p12_keystore::error::Error| PkiError::Key(format!("PKCS#12: {e}"));
    let mut certs = vec![p12_keystore::Certificate::from_der(&leaf.cert_der).map_err(p12_err)?];
    for c in chain {
        certs.push(p12_keystore::Certificate::from_der(&c.cert_der).map_err(p12_err)?);
    }
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        alias,
        p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(
            &leaf.private_key_pkcs8_der,
            leaf.serial.to_be_bytes(),
            certs,
        )),
    );
    store.writer(password).write().map_err(p12_err)
}
