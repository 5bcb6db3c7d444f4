//! TLS server certificates for VerifyCertificate tests (KOM-LE-A_2075-01): per key type a CA
//! the simulator trusts, and end-entity certificates that are valid, expired, revoked, or from
//! a CA it does not know.
//!
//! RSA: RSA-2048 CA and leaves (sha256WithRSAEncryption, [`cert_issuer`](super::cert_issuer)).
//! ECC: ECDSA P-256 CA and leaves (rcgen, what the loopback mail servers of the tests present).

use std::time::Duration;

use der::Decode;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use x509_cert::Certificate;

use super::cert_issuer::{CertProfile, generate_rsa_key, issue};
use super::error::SimError;

/// Key type of the server certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKey {
    Rsa,
    Ecc,
}

/// One set of certificates around a trusted CA.
#[derive(Debug, Clone)]
pub struct ServerCertSet {
    /// DER of the CA to put into `SimConfig::trust_anchors`.
    pub anchor: Vec<u8>,
    /// Valid from `now - 30 days` to [`Self::valid_not_after`].
    pub valid: Vec<u8>,
    /// A second valid certificate (another serial and key) from the same CA.
    pub other_valid: Vec<u8>,
    /// Ended a day before `now`.
    pub expired: Vec<u8>,
    /// Valid in time; its serial is [`Self::revoked_serial`].
    pub revoked: Vec<u8>,
    /// Serial number content bytes for `SimConfig::revoked_serials`.
    pub revoked_serial: Vec<u8>,
    /// Valid in time, issued by a CA the simulator does not trust.
    pub foreign: Vec<u8>,
    /// notAfter of `valid` and `other_valid` (Unix seconds).
    pub valid_not_after: u64,
}

const DAY: u64 = 86_400;

fn err<E: std::fmt::Display>(e: E) -> SimError {
    SimError::Key(e.to_string())
}

/// Generates a set; `now` is the simulator's time (Unix seconds).
pub fn server_cert_set(kind: ServerKey, now: u64) -> Result<ServerCertSet, SimError> {
    let valid_from = now - 30 * DAY;
    let valid_to = now + 30 * DAY;
    let expired = (now - 60 * DAY, now - DAY);
    let (anchor, leaves, foreign) = match kind {
        ServerKey::Rsa => rsa_set(now, valid_from, valid_to, expired)?,
        ServerKey::Ecc => ecc_set(valid_from, valid_to, expired)?,
    };
    let [valid, other_valid, expired, revoked] = leaves;
    let revoked_serial = Certificate::from_der(&revoked)?
        .tbs_certificate
        .serial_number
        .as_bytes()
        .to_vec();
    Ok(ServerCertSet {
        anchor,
        valid,
        other_valid,
        expired,
        revoked,
        revoked_serial,
        foreign,
        valid_not_after: valid_to,
    })
}

type Set = (Vec<u8>, [Vec<u8>; 4], Vec<u8>);

fn rsa_set(now: u64, from: u64, to: u64, expired: (u64, u64)) -> Result<Set, SimError> {
    let ca_key = generate_rsa_key()?;
    let ca = issue(
        &ca_key,
        "CN=KIM TLS-CA RSA TEST-ONLY,O=komle-conformance,C=DE",
        1,
        now - 365 * DAY,
        now + 365 * DAY,
        CertProfile::Root,
    )?;
    let foreign_key = generate_rsa_key()?;
    let foreign_ca = issue(
        &foreign_key,
        "CN=Fremde CA RSA TEST-ONLY,O=elsewhere,C=DE",
        1,
        now - 365 * DAY,
        now + 365 * DAY,
        CertProfile::Root,
    )?;
    let key = generate_rsa_key()?;
    let other_key = generate_rsa_key()?;
    let leaf = |k: &rsa::RsaPrivateKey, issuer, serial, (nb, na): (u64, u64)| {
        issue(
            k,
            "CN=mta.kim.test,O=KIM-Fachdienst,C=DE",
            serial,
            nb,
            na,
            CertProfile::Leaf {
                issuer,
                tls_server: true,
            },
        )
        .map(|m| m.cert_der)
    };
    let leaves = [
        leaf(&key, &ca, 10, (from, to))?,
        leaf(&other_key, &ca, 11, (from, to))?,
        leaf(&key, &ca, 12, expired)?,
        leaf(&key, &ca, 13, (from, to))?,
    ];
    let foreign = leaf(&key, &foreign_ca, 10, (from, to))?;
    Ok((ca.cert_der, leaves, foreign))
}

fn ecc_ca(name: &str) -> Result<(Vec<u8>, rcgen::Issuer<'static, KeyPair>), SimError> {
    let key = KeyPair::generate().map_err(err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).map_err(err)?;
    Ok((cert.der().to_vec(), rcgen::Issuer::new(params, key)))
}

fn ecc_leaf(
    issuer: &rcgen::Issuer<'static, KeyPair>,
    serial: u64,
    (nb, na): (u64, u64),
) -> Result<Vec<u8>, SimError> {
    let key = KeyPair::generate().map_err(err)?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).map_err(err)?;
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    params
        .distinguished_name
        .push(DnType::CommonName, "pop3.kim.test");
    params.serial_number = Some(rcgen::SerialNumber::from(serial));
    params.not_before = rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(nb);
    params.not_after = rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(na);
    Ok(params.signed_by(&key, issuer).map_err(err)?.der().to_vec())
}

fn ecc_set(from: u64, to: u64, expired: (u64, u64)) -> Result<Set, SimError> {
    let (anchor, ca) = ecc_ca("KIM TLS-CA ECC TEST-ONLY")?;
    let (_, foreign_ca) = ecc_ca("Fremde CA ECC TEST-ONLY")?;
    let leaves = [
        ecc_leaf(&ca, 20, (from, to))?,
        ecc_leaf(&ca, 21, (from, to))?,
        ecc_leaf(&ca, 22, expired)?,
        ecc_leaf(&ca, 23, (from, to))?,
    ];
    let foreign = ecc_leaf(&foreign_ca, 20, (from, to))?;
    Ok((anchor, leaves, foreign))
}
