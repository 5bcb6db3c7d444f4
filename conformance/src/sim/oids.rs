//! Object identifiers used by the simulator's CMS code (RFC 5652, RFC 5083, RFC 4055,
//! gemSpec_OID).

use const_oid::ObjectIdentifier as Oid;

pub const ID_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
pub const ID_SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
/// id-ct-authEnvelopedData (RFC 5083).
pub const ID_AUTH_ENVELOPED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.1.23");
pub const ID_CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
pub const ID_MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");
pub const ID_SIGNING_TIME: Oid = Oid::new_unwrap("1.2.840.113549.1.9.5");
pub const ID_SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
pub const ID_RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
pub const ID_RSAES_OAEP: Oid = Oid::new_unwrap("1.2.840.113549.1.1.7");
pub const ID_RSASSA_PSS: Oid = Oid::new_unwrap("1.2.840.113549.1.1.10");
pub const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
pub const ID_AES256_GCM: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.46");
/// recipient-emails attribute (gemSpec_OID, KOM-LE).
pub const ID_RECIPIENT_EMAILS: Oid = Oid::new_unwrap("1.2.276.0.76.4.173");
/// CMSAlgorithmProtection (RFC 6211).
pub const ID_CMS_ALGORITHM_PROTECTION: Oid = Oid::new_unwrap("1.2.840.113549.1.9.52");
/// id-aa-signingCertificateV2 (RFC 5035).
pub const ID_SIGNING_CERTIFICATE_V2: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.2.47");
