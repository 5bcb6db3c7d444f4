//! One error type for the whole S/MIME profile, so callers map every failure to a defined
//! reaction (error mail, `X-KIM-*` result code) instead of a panic.

use std::fmt;

/// Why a message (or a Konnektor answer) could not be processed under the KOM-LE profile.
///
/// Variants never carry message content: they are safe to log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SmimeError {
    /// The header block is not RFC 5322 (line without a colon, empty field name, ...).
    MalformedHeader,
    /// A header the profile needs is missing (e.g. `From`).
    MissingHeader(&'static str),
    /// The content type is not the one the profile requires at this point.
    WrongContentType,
    /// The base64 body could not be decoded.
    BadBase64,
    /// BER/DER structure is malformed or truncated.
    BadAsn1(&'static str),
    /// A certificate handed in could not be decoded.
    BadCertificate,
    /// An e-mail address is not representable as IA5String.
    BadAddress,
    /// Nesting deeper than the limit (ASN.1 or MIME): refuses "bombs".
    TooDeep,
}

impl fmt::Display for SmimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SmimeError::MalformedHeader => f.write_str("malformed header block"),
            SmimeError::MissingHeader(h) => write!(f, "missing header {h}"),
            SmimeError::WrongContentType => f.write_str("unexpected content type"),
            SmimeError::BadBase64 => f.write_str("invalid base64 body"),
            SmimeError::BadAsn1(what) => write!(f, "malformed ASN.1: {what}"),
            SmimeError::BadCertificate => f.write_str("undecodable certificate"),
            SmimeError::BadAddress => f.write_str("address not representable as IA5String"),
            SmimeError::TooDeep => f.write_str("nesting too deep"),
        }
    }
}

impl std::error::Error for SmimeError {}
