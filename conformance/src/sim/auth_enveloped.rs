//! ASN.1 types missing from `cms` 0.2: AuthEnvelopedData (RFC 5083) and GCMParameters
//! (RFC 5084). WHY here: the `cms` 0.2 line has no AuthEnvelopedData, and the 0.3 line would pull
//! der 0.8, which must never be mixed with our der 0.7 types.

use cms::content_info::CmsVersion;
use cms::enveloped_data::{EncryptedContentInfo, OriginatorInfo, RecipientInfos};
use der::Sequence;
use der::asn1::OctetString;
use x509_cert::attr::Attributes;

/// `AuthEnvelopedData ::= SEQUENCE { version CMSVersion (0), originatorInfo [0] IMPLICIT
/// OPTIONAL, recipientInfos, authEncryptedContentInfo, authAttrs [1] IMPLICIT OPTIONAL, mac,
/// unauthAttrs [2] IMPLICIT OPTIONAL }`
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct AuthEnvelopedData {
    pub version: CmsVersion,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub originator_info: Option<OriginatorInfo>,
    pub recip_infos: RecipientInfos,
    pub auth_encrypted_content_info: EncryptedContentInfo,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub auth_attrs: Option<Attributes>,
    pub mac: OctetString,
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT", optional = "true")]
    pub unauth_attrs: Option<Attributes>,
}

/// `GCMParameters ::= SEQUENCE { aes-nonce OCTET STRING, aes-ICVlen INTEGER DEFAULT 12 }`
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct GcmParameters {
    pub nonce: OctetString,
    #[asn1(default = "default_icv_len")]
    pub icv_len: u8,
}

fn default_icv_len() -> u8 {
    12
}
