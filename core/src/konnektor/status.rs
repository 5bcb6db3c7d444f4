//! `CONN:Status`: the per-operation outcome inside regular responses.
//!
//! `OK` and `Warning` are successes (a warning keeps its `GERROR:Error` for the log); `ERROR`
//! (allowed by ConnectorCommon's `ResultEnum`) becomes [`KonnektorError::Status`] so callers see
//! every Konnektor-reported failure through the same error type as SOAP faults.

use super::error::KonnektorError;
use super::namespaces::{CONN, GERROR};
use super::telematik_error::TelematikError;
use super::xml_tree::Node;

/// A successful `CONN:Status`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// Present when the Konnektor returned `Warning`.
    pub warning: Option<TelematikError>,
    /// True for `Warning`, false for `OK`.
    pub is_warning: bool,
}

impl Status {
    /// Parses the `CONN:Status` child of `parent`.
    pub(crate) fn parse_child(parent: Node<'_, '_>) -> Result<Status, KonnektorError> {
        let status = parent.require(CONN, "Status", "CONN:Status")?;
        let result = status
            .require(CONN, "Result", "CONN:Result")?
            .text("CONN:Result")?;
        let error = match status.child(GERROR, "Error") {
            Some(e) => Some(TelematikError::parse(e)?),
            None => None,
        };
        match result.as_str() {
            "OK" => Ok(Status {
                warning: error,
                is_warning: false,
            }),
            "Warning" | "WARNING" => Ok(Status {
                warning: error,
                is_warning: true,
            }),
            "ERROR" | "Error" => Err(match error {
                Some(e) => KonnektorError::Status(Box::new(e)),
                None => KonnektorError::StatusWithoutDetail,
            }),
            _ => Err(KonnektorError::InvalidValue("CONN:Result")),
        }
    }
}
