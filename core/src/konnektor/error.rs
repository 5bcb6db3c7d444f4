//! The one error type of the Konnektor layer.
//!
//! WHY typed: callers map Konnektor failures onto KOM-LE reactions (451 + RSET per KOM-LE-A_2021,
//! `X-KIM-DecryptionResult`, `X-KIM-IntegrityCheckResult`), so they need the gematik error code
//! and severity, not a string. No variant carries message content: only element names, limits,
//! positions and what the Konnektor itself reported, so errors are safe to log.

use std::fmt;

use super::telematik_error::TelematikError;

/// A SOAP 1.1 fault as returned by the Konnektor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoapFault {
    /// `faultcode`, e.g. `soap:Server` (kept as written; prefixes are the peer's choice).
    pub code: String,
    /// `faultstring`: the human-readable reason.
    pub string: String,
    /// `faultactor`, when present.
    pub actor: Option<String>,
    /// The gematik `GERROR:Error` from `detail`, when present.
    pub telematik: Option<TelematikError>,
}

/// Everything that can go wrong turning Konnektor bytes into a typed response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KonnektorError {
    /// The Konnektor answered with a SOAP fault.
    Fault(Box<SoapFault>),
    /// A regular response whose `CONN:Status/CONN:Result` is `ERROR`.
    Status(Box<TelematikError>),
    /// A `Status` of `ERROR` without any `GERROR:Error` detail.
    StatusWithoutDetail,
    /// The input exceeds the configured size limit.
    TooLarge { limit: usize, actual: usize },
    /// Elements nest deeper than the configured limit.
    TooDeep { limit: usize },
    /// More elements than the configured limit.
    TooManyElements { limit: usize },
    /// A construct that is never legitimate in a Konnektor response (DOCTYPE, entity reference,
    /// non-UTF-8 encoding).
    Forbidden(&'static str),
    /// Not well-formed XML; `position` is the byte offset where the reader stopped.
    Malformed { position: u64, reason: String },
    /// An element other than the expected one (wrong name or wrong namespace).
    UnexpectedElement {
        expected: &'static str,
        found: String,
    },
    /// A mandatory element is absent.
    MissingElement(&'static str),
    /// Base64 content that does not decode.
    InvalidBase64(&'static str),
    /// Text content outside the value space of its element.
    InvalidValue(&'static str),
    /// `connector.sds` lists no endpoint this client can use for the named service.
    NoUsableEndpoint(&'static str),
}

impl KonnektorError {
    /// The gematik error code (`GERROR:Trace/Code` of the first trace), if the Konnektor sent one.
    pub fn gematik_code(&self) -> Option<i64> {
        self.telematik().and_then(|t| t.code())
    }

    /// The gematik error detail, from a fault or an `ERROR` status.
    pub fn telematik(&self) -> Option<&TelematikError> {
        match self {
            KonnektorError::Fault(f) => f.telematik.as_ref(),
            KonnektorError::Status(t) => Some(t),
            _ => None,
        }
    }

    /// True when the Konnektor itself reported the failure (as opposed to us failing to read it).
    pub fn is_reported_by_konnektor(&self) -> bool {
        matches!(
            self,
            KonnektorError::Fault(_)
                | KonnektorError::Status(_)
                | KonnektorError::StatusWithoutDetail
        )
    }
}

impl fmt::Display for KonnektorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KonnektorError::Fault(fault) => {
                write!(f, "SOAP fault {}: {}", fault.code, fault.string)?;
                if let Some(t) = &fault.telematik {
                    write!(f, " ({t})")?;
                }
                Ok(())
            }
            KonnektorError::Status(t) => write!(f, "Konnektor status ERROR ({t})"),
            KonnektorError::StatusWithoutDetail => {
                write!(f, "Konnektor status ERROR without detail")
            }
            KonnektorError::TooLarge { limit, actual } => {
                write!(
                    f,
                    "response of {actual} bytes exceeds the limit of {limit} bytes"
                )
            }
            KonnektorError::TooDeep { limit } => write!(f, "XML nesting deeper than {limit}"),
            KonnektorError::TooManyElements { limit } => {
                write!(f, "more than {limit} XML elements")
            }
            KonnektorError::Forbidden(what) => write!(f, "forbidden XML construct: {what}"),
            KonnektorError::Malformed { position, reason } => {
                write!(f, "malformed XML at byte {position}: {reason}")
            }
            KonnektorError::UnexpectedElement { expected, found } => {
                write!(f, "expected element {expected}, found {found}")
            }
            KonnektorError::MissingElement(name) => write!(f, "missing element {name}"),
            KonnektorError::InvalidBase64(name) => write!(f, "invalid base64 in {name}"),
            KonnektorError::InvalidValue(name) => write!(f, "invalid value in {name}"),
            KonnektorError::NoUsableEndpoint(service) => {
                write!(f, "connector.sds offers no usable endpoint for {service}")
            }
        }
    }
}

impl std::error::Error for KonnektorError {}
