//! Test PKI generator: a CA, the persons of the directory tests with their encryption (and
//! SM-B signature) certificates, a CRL, a TLS server certificate for ldaps, PEM and LDIF output,
//! and the Clientmodul's C.CM.TLS-CS client certificates with their PKCS#12 ([`CmTlsSet`]).
//!
//! The certificates follow the TI profile closely enough for the Clientmodul's checks: ENC
//! certificates carry the Admission extension with a Telematik-ID, key usage, the C.HCI.ENC
//! policy (next to gematik's general policy 1.2.276.0.76.4.163, like gematik's samples) and the
//! e-mail address as SAN. Keys are derived from fixed names and generated once per process, so
//! repeated [`TestPki::generate`] calls are cheap and certificates differ only in their dates.

mod cm_tls;
mod extensions;
mod issue;
mod keys;
mod ldif;
mod pem;

use std::time::{Duration, SystemTime};

use der::flagset::FlagSet;
use komle_core::directory::KeyAlgorithm;
use spki::ObjectIdentifier;
use x509_cert::ext::pkix::KeyUsages;
use x509_cert::name::Name;

pub use cm_tls::{CmTlsSet, pkcs12};
pub use keys::{TestKey, ecc_key, rsa_key};
pub use ldif::{KOM_LE_SCHEMA, VZD_BASE_DN};
pub use pem::pem;

use issue::{CertSpec, crl, issue, name};

/// Why the PKI could not be built (only on bugs in the generator; inputs are all fixed).
#[derive(Debug)]
pub enum PkiError {
    Der(der::Error),
    Key(String),
    Poisoned,
}

impl std::fmt::Display for PkiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PkiError::Der(e) => write!(f, "DER: {e}"),
            PkiError::Key(e) => write!(f, "key: {e}"),
            PkiError::Poisoned => f.write_str("key cache lock poisoned"),
        }
    }
}

impl std::error::Error for PkiError {}

impl From<der::Error> for PkiError {
    fn from(e: der::Error) -> Self {
        PkiError::Der(e)
    }
}

/// A certificate with its private key: the interchange format with the Konnektor simulator.
#[derive(Clone)]
pub struct KeyMaterial {
    pub cert_der: Vec<u8>,
    /// PKCS#8 `PrivateKeyInfo` DER (RSA, or EC on brainpoolP256r1).
    pub private_key_pkcs8_der: Vec<u8>,
    pub algorithm: KeyAlgorithm,
    pub serial: u64,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("algorithm", &self.algorithm)
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

impl KeyMaterial {
    pub fn cert_pem(&self) -> String {
        pem("CERTIFICATE", &self.cert_der)
    }
    pub fn private_key_pem(&self) -> String {
        pem("PRIVATE KEY", &self.private_key_pkcs8_der)
    }
}

/// One directory entry of the test set.
#[derive(Debug, Clone)]
pub struct Person {
    /// RDN value (`uid=<uid>,dc=data,dc=vzd`).
    pub uid: String,
    pub address: String,
    /// The Telematik-ID of the first ENC certificate ("" when there is none).
    pub telematik_id: String,
    /// Encryption certificates, as published in `userCertificate;binary`.
    pub enc: Vec<KeyMaterial>,
    /// SM-B organisational signature certificates (not published in the directory).
    pub osig: Vec<KeyMaterial>,
    /// `komLeData` value (`<version>,<address>`).
    pub kom_le_data: Option<String>,
}

/// The whole test PKI. Build with [`TestPki::generate`].
#[derive(Debug, Clone)]
pub struct TestPki {
    pub ca: KeyMaterial,
    /// Sending practice: SM-B with C.HCI.OSIG (RSA) for signing and an ENC certificate.
    pub sender: Person,
    /// One valid RSA ENC certificate.
    pub single: Person,
    /// Old and new card: two valid ENC certificates, same Telematik-ID.
    pub old_and_new_card: Person,
    /// Only an expired ENC certificate.
    pub expired: Person,
    /// An RSA and a brainpoolP256r1 ENC certificate, same Telematik-ID.
    pub ecc_and_rsa: Person,
    /// Two valid ENC certificates with different Telematik-IDs (KOM-LE-A_2178).
    pub conflicting: Person,
    /// A valid-looking ENC certificate listed in [`TestPki::crl_der`].
    pub revoked: Person,
    /// A directory entry without any certificate.
    pub no_certificate: Person,
    /// Two physicians of the `single` practice, each with a HBA (C.HP.ENC, RSA) in the same
    /// Konnektor as the practice's SM-B: decryption must use only the fetching user's card
    /// (KOM-LE-A_2045). Their UserIds are the `uid`s.
    pub hba_a: Person,
    pub hba_b: Person,
    /// An address with LDAP filter metacharacters: `star*(paren)\@komle.test`.
    pub metachar: Person,
    /// TLS server certificate for 127.0.0.1 / localhost (ldaps in tests).
    pub tls_server: KeyMaterial,
    /// CRL of the CA listing the revoked person's certificate.
    pub crl_der: Vec<u8>,
    pub revoked_serials: Vec<u64>,
}

const DAY: Duration = Duration::from_secs(86_400);
const CA_DN: &str =
    "CN=KOMLE-TEST-CA TEST-ONLY,OU=Komponenten-CA,O=komle-conformance NOT-VALID,C=DE";
const POLICY_GEM_OR_CP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.276.0.76.4.163");
const POLICY_C_HCI_ENC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.276.0.76.4.76");
const POLICY_C_HP_ENC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.276.0.76.4.74");
const POLICY_C_HCI_OSIG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.276.0.76.4.78");

struct Ca {
    name: Name,
    key: rsa::RsaPrivateKey,
    now: SystemTime,
    next_serial: u64,
}

enum Kind {
    Enc,
    /// C.HP.ENC of a HBA.
    HpEnc,
    Osig,
}

impl Ca {
    fn cert(
        &mut self,
        key_name: &str,
        algorithm: KeyAlgorithm,
        kind: Kind,
        address: &str,
        telematik_id: &str,
        valid: (SystemTime, SystemTime),
    ) -> Result<KeyMaterial, PkiError> {
        let key = match algorithm {
            KeyAlgorithm::Rsa => TestKey::Rsa(Box::new(rsa_key(key_name)?)),
            KeyAlgorithm::EccBrainpoolP256r1 => TestKey::Ecc(ecc_key(key_name)?),
        };
        let (usage, policy): (FlagSet<KeyUsages>, _) = match (&kind, algorithm) {
            (Kind::Enc, KeyAlgorithm::Rsa) => (
                KeyUsages::KeyEncipherment | KeyUsages::DataEncipherment,
                POLICY_C_HCI_ENC,
            ),
            (Kind::Enc, KeyAlgorithm::EccBrainpoolP256r1) => {
                (KeyUsages::KeyAgreement.into(), POLICY_C_HCI_ENC)
            }
            (Kind::HpEnc, KeyAlgorithm::Rsa) => (
                KeyUsages::KeyEncipherment | KeyUsages::DataEncipherment,
                POLICY_C_HP_ENC,
            ),
            (Kind::HpEnc, KeyAlgorithm::EccBrainpoolP256r1) => {
                (KeyUsages::KeyAgreement.into(), POLICY_C_HP_ENC)
            }
            (Kind::Osig, _) => (
                KeyUsages::DigitalSignature | KeyUsages::NonRepudiation,
                POLICY_C_HCI_OSIG,
            ),
        };
        self.next_serial += 1;
        let serial = self.next_serial;
        let subject = format!("CN=Praxis {key_name} TEST-ONLY,O={telematik_id} NOT-VALID,C=DE");
        let spec = CertSpec {
            serial,
            subject: &subject,
            not_before: valid.0,
            not_after: valid.1,
            extensions: vec![
                extensions::admission(telematik_id)?,
                extensions::key_usage(usage)?,
                extensions::policies(&[POLICY_GEM_OR_CP, policy])?,
                extensions::basic_constraints(false)?,
                extensions::email_san(&[address])?,
            ],
        };
        let cert_der = issue(spec, &key, &self.name, &self.key)?;
        Ok(KeyMaterial {
            cert_der,
            private_key_pkcs8_der: key.pkcs8_der()?,
            algorithm,
            serial,
        })
    }

    fn valid(&self) -> (SystemTime, SystemTime) {
        (self.now - 30 * DAY, self.now + 365 * DAY)
    }

    fn person(
        &self,
        uid: &str,
        address: &str,
        enc: Vec<KeyMaterial>,
        osig: Vec<KeyMaterial>,
        tid: &str,
    ) -> Person {
        Person {
            uid: uid.to_owned(),
            address: address.to_owned(),
            telematik_id: tid.to_owned(),
            enc,
            osig,
            kom_le_data: Some(format!("1.0,{address}")),
        }
    }
}

impl TestPki {
    /// A forger's signature certificate imitating `victim`'s: the victim's subject (the
    /// practice's name), Telematik-ID and address, but the forger's key and an issuer no trust
    /// anchor knows (a self-made CA named like a TI CA). A Konnektor's VerifyDocument cannot
    /// build its path (unknown issuer); EncryptDocument must refuse it as a recipient.
    pub fn forged_osig(&self, victim: &Person) -> Result<KeyMaterial, PkiError> {
        use der::Decode;
        let model = victim
            .osig
            .first()
            .or(victim.enc.first())
            .ok_or_else(|| PkiError::Key("victim has no certificate to imitate".into()))?;
        let cert = x509_cert::Certificate::from_der(&model.cert_der)?;
        let validity = cert.tbs_certificate.validity;
        let forger = rsa_key("forger")?;
        let key = TestKey::Rsa(Box::new(forger.clone()));
        let subject = cert.tbs_certificate.subject.to_string();
        let serial = 0xF0_0000 + model.serial;
        let cert_der = issue(
            CertSpec {
                serial,
                subject: &subject,
                not_before: validity.not_before.to_system_time(),
                not_after: validity.not_after.to_system_time(),
                extensions: vec![
                    extensions::admission(&victim.telematik_id)?,
                    extensions::key_usage(KeyUsages::DigitalSignature | KeyUsages::NonRepudiation)?,
                    extensions::policies(&[POLICY_GEM_OR_CP, POLICY_C_HCI_OSIG])?,
                    extensions::basic_constraints(false)?,
                    extensions::email_san(&[&victim.address])?,
                ],
            },
            &key,
            &name("CN=GEM.SMCB-CA24 TEST-ONLY,O=selbst erstellt NOT-VALID,C=DE")?,
            &forger,
        )?;
        Ok(KeyMaterial {
            cert_der,
            private_key_pkcs8_der: key.pkcs8_der()?,
            algorithm: KeyAlgorithm::Rsa,
            serial,
        })
    }

    /// Builds the PKI with validity periods around `now` (valid certificates: 30 days back to a
    /// year ahead; the expired one ended a day before `now`).
    pub fn generate(now: SystemTime) -> Result<TestPki, PkiError> {
        let ca_key = rsa_key("ca")?;
        let ca_name = name(CA_DN)?;
        let ca_test_key = TestKey::Rsa(Box::new(ca_key.clone()));
        let ca_cert = issue(
            CertSpec {
                serial: 1,
                subject: CA_DN,
                not_before: now - 365 * DAY,
                not_after: now + 5 * 365 * DAY,
                extensions: vec![
                    extensions::basic_constraints(true)?,
                    extensions::key_usage(KeyUsages::KeyCertSign | KeyUsages::CRLSign)?,
                ],
            },
            &ca_test_key,
            &ca_name,
            &ca_key,
        )?;
        let ca_material = KeyMaterial {
            cert_der: ca_cert,
            private_key_pkcs8_der: ca_test_key.pkcs8_der()?,
            algorithm: KeyAlgorithm::Rsa,
            serial: 1,
        };
        let mut ca = Ca {
            name: ca_name,
            key: ca_key,
            now,
            next_serial: 100,
        };
        let valid = ca.valid();
        let rsa = KeyAlgorithm::Rsa;
        let ecc = KeyAlgorithm::EccBrainpoolP256r1;

        let a = "sender@komle.test";
        let sender_enc = ca.cert("sender-enc", rsa, Kind::Enc, a, "1-SENDER-0001", valid)?;
        let sender_osig = ca.cert("sender-osig", rsa, Kind::Osig, a, "1-SENDER-0001", valid)?;
        let sender = ca.person(
            "sender",
            a,
            vec![sender_enc],
            vec![sender_osig],
            "1-SENDER-0001",
        );

        let a = "single@komle.test";
        let single = vec![ca.cert("single", rsa, Kind::Enc, a, "1-SINGLE-0002", valid)?];
        let single = ca.person("single", a, single, vec![], "1-SINGLE-0002");

        let a = "oldnew@komle.test";
        let old = ca.cert(
            "oldnew-old",
            rsa,
            Kind::Enc,
            a,
            "1-OLDNEW-0003",
            (now - 400 * DAY, now + 30 * DAY),
        )?;
        let new = ca.cert("oldnew-new", rsa, Kind::Enc, a, "1-OLDNEW-0003", valid)?;
        let old_and_new_card = ca.person("oldnew", a, vec![old, new], vec![], "1-OLDNEW-0003");

        let a = "expired@komle.test";
        let exp = ca.cert(
            "expired",
            rsa,
            Kind::Enc,
            a,
            "1-EXPIRED-0004",
            (now - 800 * DAY, now - DAY),
        )?;
        let expired = ca.person("expired", a, vec![exp], vec![], "1-EXPIRED-0004");

        let a = "eccrsa@komle.test";
        let r = ca.cert("eccrsa-rsa", rsa, Kind::Enc, a, "1-ECCRSA-0005", valid)?;
        let e = ca.cert("eccrsa-ecc", ecc, Kind::Enc, a, "1-ECCRSA-0005", valid)?;
        let ecc_and_rsa = ca.person("eccrsa", a, vec![r, e], vec![], "1-ECCRSA-0005");

        let a = "conflict@komle.test";
        let c1 = ca.cert("conflict-1", rsa, Kind::Enc, a, "1-CONFLICT-0006", valid)?;
        let c2 = ca.cert("conflict-2", rsa, Kind::Enc, a, "1-CONFLICT-0007", valid)?;
        let conflicting = ca.person("conflict", a, vec![c1, c2], vec![], "1-CONFLICT-0006");

        let a = "revoked@komle.test";
        let rv = ca.cert("revoked", rsa, Kind::Enc, a, "1-REVOKED-0008", valid)?;
        let revoked_serials = vec![rv.serial];
        let revoked = ca.person("revoked", a, vec![rv], vec![], "1-REVOKED-0008");

        let no_certificate = Person {
            kom_le_data: None,
            ..ca.person("nocert", "nocert@komle.test", vec![], vec![], "")
        };

        let a = "star*(paren)@komle.test";
        let m = ca.cert("metachar", rsa, Kind::Enc, a, "1-META-0009", valid)?;
        let metachar = ca.person("metachar", a, vec![m], vec![], "1-META-0009");

        let tls_key = TestKey::Rsa(Box::new(rsa_key("tls-server")?));
        ca.next_serial += 1;
        let tls_cert = issue(
            CertSpec {
                serial: ca.next_serial,
                subject: "CN=localhost,O=komle-conformance NOT-VALID,C=DE",
                not_before: valid.0,
                not_after: valid.1,
                extensions: vec![
                    extensions::basic_constraints(false)?,
                    extensions::key_usage(
                        KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment,
                    )?,
                    extensions::server_auth()?,
                    extensions::server_san("localhost", [127, 0, 0, 1])?,
                ],
            },
            &tls_key,
            &ca.name,
            &ca.key,
        )?;
        let tls_server = KeyMaterial {
            cert_der: tls_cert,
            private_key_pkcs8_der: tls_key.pkcs8_der()?,
            algorithm: rsa,
            serial: ca.next_serial,
        };
        let crl_der = crl(&ca.name, &ca.key, &revoked_serials, now)?;

        // Issued last so the serials of the certificates above stay as they were.
        let a = "arzt-a@komle.test";
        let hba = ca.cert("hba-a", rsa, Kind::HpEnc, a, "1-HBA-A-0010", valid)?;
        let hba_a = ca.person("arzt-a", a, vec![hba], vec![], "1-HBA-A-0010");
        let a = "arzt-b@komle.test";
        let hba = ca.cert("hba-b", rsa, Kind::HpEnc, a, "1-HBA-B-0011", valid)?;
        let hba_b = ca.person("arzt-b", a, vec![hba], vec![], "1-HBA-B-0011");

        Ok(TestPki {
            ca: ca_material,
            sender,
            single,
            old_and_new_card,
            expired,
            ecc_and_rsa,
            conflicting,
            revoked,
            no_certificate,
            metachar,
            hba_a,
            hba_b,
            tls_server,
            crl_der,
            revoked_serials,
        })
    }

    /// Every person of the set, in a fixed order.
    pub fn persons(&self) -> Vec<&Person> {
        vec![
            &self.sender,
            &self.single,
            &self.old_and_new_card,
            &self.expired,
            &self.ecc_and_rsa,
            &self.conflicting,
            &self.revoked,
            &self.no_certificate,
            &self.metachar,
            &self.hba_a,
            &self.hba_b,
        ]
    }

    /// LDIF for slapd below [`VZD_BASE_DN`]: the base entry and one inetOrgPerson per person.
    /// `with_kom_le_data` adds the `komLeData` attribute, which needs [`KOM_LE_SCHEMA`] loaded.
    pub fn ldif(&self, with_kom_le_data: bool) -> String {
        ldif::ldif(&self.persons(), with_kom_le_data)
    }
}

#[cfg(test)]
mod tests;
