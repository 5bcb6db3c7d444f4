//! Object identifiers the directory logic recognises (gemSpec_OID, gemSpec_PKI).

use const_oid::ObjectIdentifier;

/// Admission extension (Common PKI / ISIS-MTT); carries the Telematik-ID as registrationNumber.
pub const ADMISSION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.36.8.3.3");
/// rsaEncryption (PKCS #1).
pub const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// id-ecPublicKey (RFC 5480).
pub const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// brainpoolP256r1 (RFC 5639): the only ECC curve of the TI.
pub const BRAINPOOL_P256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.36.3.3.2.8.1.1.7");
/// Certificate type C.HCI.ENC (institution encryption certificate, SMC-B).
pub const POLICY_C_HCI_ENC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.276.0.76.4.76");
/// Certificate type C.HP.ENC (health professional encryption certificate, HBA).
pub const POLICY_C_HP_ENC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.276.0.76.4.74");
/// Certificate type C.HCI.OSIG (institution organisational signature, SMC-B).
pub const POLICY_C_HCI_OSIG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.276.0.76.4.78");
/// gematik certificate policy `oid_policy_gem_or_cp`: says "issued under the TI's policy", not
/// which certificate type; gematik's sample ENC certificates carry it next to C.HCI.ENC.
pub const POLICY_GEM_OR_CP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.276.0.76.4.163");
/// Key usage extension (RFC 5280).
pub const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
/// Certificate policies extension (RFC 5280).
pub const CERTIFICATE_POLICIES: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.32");
/// Subject alternative name extension (RFC 5280).
pub const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
