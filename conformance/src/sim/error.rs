//! Typed failures of the simulated Konnektor operations.
//!
//! WHY: every failure maps to a gematik `tel:Error` code in the SOAP fault, so the Clientmodul
//! under test sees the same codes a real Konnektor would send (gemSpec_Kon error tables).

use std::fmt;

use super::ber::BerError;

/// What went wrong inside a crypto operation or request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimError {
    /// Malformed CMS/ASN.1 input.
    Asn1(String),
    /// A key or certificate handed to the simulator could not be used.
    Key(String),
    /// No RecipientInfo matches any key of the card (gemSpec_Kon 4253 family; we use 4255).
    NoMatchingRecipient,
    /// The GCM tag or RSA padding did not verify.
    DecryptionFailed,
    /// An algorithm we do not implement.
    Unsupported(String),
    /// A malformed SOAP request.
    BadRequest(String),
    /// Unknown card handle.
    UnknownCard(String),
    /// The PIN of the card is blocked / not verified.
    PinBlocked,
    /// A refusal with an explicit gematik code, e.g. a recipient certificate that fails the
    /// certificate check before EncryptDocument, or a VerifyDocument input in the wrong format.
    Coded { code: u32, text: String },
}

impl SimError {
    /// The gematik error code carried in the SOAP fault's `tel:Error/Trace/Code`.
    pub fn code(&self) -> u32 {
        match self {
            SimError::Asn1(_) => 4115,
            SimError::Key(_) => 4000,
            SimError::NoMatchingRecipient => 4253,
            SimError::DecryptionFailed => 4141,
            SimError::Unsupported(_) => 4111,
            SimError::BadRequest(_) => 4000,
            SimError::UnknownCard(_) => 4101,
            SimError::PinBlocked => 4063,
            SimError::Coded { code, .. } => *code,
        }
    }
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Asn1(m) => write!(f, "ASN.1 error: {m}"),
            SimError::Key(m) => write!(f, "key error: {m}"),
            SimError::NoMatchingRecipient => write!(f, "no recipient info matches the card's keys"),
            SimError::DecryptionFailed => write!(f, "decryption failed"),
            SimError::Unsupported(m) => write!(f, "unsupported: {m}"),
            SimError::BadRequest(m) => write!(f, "bad request: {m}"),
            SimError::UnknownCard(h) => write!(f, "unknown card handle {h}"),
            SimError::PinBlocked => write!(f, "PIN blocked"),
            SimError::Coded { text, .. } => f.write_str(text),
        }
    }
}

impl std::error::Error for SimError {}

impl From<BerError> for SimError {
    fn from(e: BerError) -> Self {
        SimError::Asn1(e.to_string())
    }
}

impl From<der::Error> for SimError {
    fn from(e: der::Error) -> Self {
        SimError::Asn1(e.to_string())
    }
}
