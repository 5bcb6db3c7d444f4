//! gematik's error structure `GERROR:Error` (tel/error/TelematikError.xsd v2.0).
//!
//! The Konnektor puts it into SOAP fault details and into `CONN:Status`. Its `Code` decides the
//! KOM-LE reaction (e.g. 4115 integrity violated, 4206 certificate path invalid, 4253 no
//! signature in KOM-LE-A_2050), so it is parsed into a number.

use std::fmt;

use super::error::KonnektorError;
use super::namespaces::GERROR;
use super::xml_tree::Node;

/// One `GERROR:Trace` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Trace {
    pub event_id: String,
    pub instance: String,
    pub log_reference: String,
    pub comp_type: String,
    pub code: i64,
    /// `Info`, `Warning`, `Error` or `Fatal` as sent.
    pub severity: String,
    /// `Technical`, `Security` or `Infrastructure` as sent.
    pub error_type: String,
    pub error_text: String,
    pub detail: Option<String>,
}

/// A parsed `GERROR:Error`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TelematikError {
    pub message_id: String,
    pub timestamp: String,
    /// Innermost cause last, as the Konnektor sends them; at least one when parsed.
    pub traces: Vec<Trace>,
}

impl TelematikError {
    /// The code of the first trace (gematik puts the externally relevant code first).
    pub fn code(&self) -> Option<i64> {
        self.traces.first().map(|t| t.code)
    }

    /// The severity of the first trace.
    pub fn severity(&self) -> Option<&str> {
        self.traces.first().map(|t| t.severity.as_str())
    }

    /// The error text of the first trace.
    pub fn message(&self) -> Option<&str> {
        self.traces.first().map(|t| t.error_text.as_str())
    }

    /// True if any trace carries `code`.
    pub fn has_code(&self, code: i64) -> bool {
        self.traces.iter().any(|t| t.code == code)
    }

    pub(crate) fn parse(node: Node<'_, '_>) -> Result<TelematikError, KonnektorError> {
        let opt_text =
            |n: Node<'_, '_>, name: &str, what: &'static str| -> Result<String, KonnektorError> {
                match n.child(GERROR, name) {
                    Some(c) => c.text(what),
                    None => Ok(String::new()),
                }
            };
        let mut traces = Vec::new();
        for t in node.children_named(GERROR, "Trace") {
            let code_text = t
                .require(GERROR, "Code", "GERROR:Code")?
                .text("GERROR:Code")?;
            let code = code_text
                .parse::<i64>()
                .map_err(|_| KonnektorError::InvalidValue("GERROR:Code"))?;
            traces.push(Trace {
                event_id: opt_text(t, "EventID", "GERROR:EventID")?,
                instance: opt_text(t, "Instance", "GERROR:Instance")?,
                log_reference: opt_text(t, "LogReference", "GERROR:LogReference")?,
                comp_type: opt_text(t, "CompType", "GERROR:CompType")?,
                code,
                severity: opt_text(t, "Severity", "GERROR:Severity")?,
                error_type: opt_text(t, "ErrorType", "GERROR:ErrorType")?,
                error_text: opt_text(t, "ErrorText", "GERROR:ErrorText")?,
                detail: match t.child(GERROR, "Detail") {
                    Some(d) => Some(d.text("GERROR:Detail")?),
                    None => None,
                },
            });
        }
        if traces.is_empty() {
            return Err(KonnektorError::MissingElement("GERROR:Trace"));
        }
        Ok(TelematikError {
            message_id: opt_text(node, "MessageID", "GERROR:MessageID")?,
            timestamp: opt_text(node, "Timestamp", "GERROR:Timestamp")?,
            traces,
        })
    }
}

impl fmt::Display for TelematikError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.traces.first() {
            Some(t) => write!(
                f,
                "gematik error {} [{}]: {}",
                t.code, t.severity, t.error_text
            ),
            None => write!(f, "gematik error without trace"),
        }
    }
}
