//! SASL PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login), the only mechanisms the
//! Clientmodul may offer (KOM-LE-A_2009, A_2031) and the ones it uses towards the mail service
//! (A_2013, A_2035). Challenge–response mechanisms hide the password, which the Clientmodul needs
//! to log in upstream on the user's behalf, so they cannot be supported.

pub mod login;
pub mod plain;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::secret::Password;

/// What a client authenticated with: the full login name and the password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub login: String,
    pub password: Password,
}

/// Why a SASL exchange failed on the server side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaslError {
    /// The client sent `*` (RFC 4954 §4).
    Cancelled,
    /// Not valid base64, not UTF-8, or not the mechanism's shape.
    Malformed,
}

/// Decodes one base64 SASL line; surrounding white space is tolerated.
pub fn decode_b64(line: &[u8]) -> Result<Vec<u8>, SaslError> {
    let trimmed = line.trim_ascii();
    if trimmed == b"*" {
        return Err(SaslError::Cancelled);
    }
    STANDARD.decode(trimmed).map_err(|_| SaslError::Malformed)
}

pub fn encode_b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}
