//! SOAP 1.1 envelope: the request type every builder returns and the response unwrapping every
//! parser starts with (faults included).

use super::error::{KonnektorError, SoapFault};
use super::namespaces::{GERROR, SOAP_ENV};
use super::telematik_error::TelematikError;
use super::xml_tree::{Limits, Node, Tree};

/// A ready-to-send Konnektor call: POST `body` with `Content-Type: text/xml; charset=UTF-8`
/// and the `SOAPAction` header from [`SoapRequest::soap_action_header`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoapRequest {
    /// The operation's SOAPAction URI exactly as in the service's WSDL.
    pub soap_action: &'static str,
    /// The complete envelope, UTF-8.
    pub body: Vec<u8>,
}

impl SoapRequest {
    /// SOAP 1.1 requires the header value to be a quoted URI.
    pub fn soap_action_header(&self) -> String {
        format!("\"{}\"", self.soap_action)
    }

    /// The `Content-Type` of a SOAP 1.1 request.
    pub const CONTENT_TYPE: &'static str = "text/xml; charset=UTF-8";
}

/// Parses `input`, checks the envelope and returns the tree; use [`payload`] on it.
pub(crate) fn parse_envelope<'a>(
    input: &'a [u8],
    limits: &Limits,
) -> Result<Tree<'a>, KonnektorError> {
    let tree = Tree::parse(input, limits)?;
    let root = tree.root();
    if !root.is(SOAP_ENV, "Envelope") {
        return Err(KonnektorError::UnexpectedElement {
            expected: "soap:Envelope",
            found: root.qualified_name(),
        });
    }
    Ok(tree)
}

/// The single payload element of `soap:Body`, converting a `soap:Fault` into
/// [`KonnektorError::Fault`] and checking the payload is `{ns}local` for one of `accepted`.
pub(crate) fn payload<'t, 'a>(
    tree: &'t Tree<'a>,
    accepted_ns: &[&str],
    local: &str,
    expected: &'static str,
) -> Result<Node<'t, 'a>, KonnektorError> {
    let body = tree
        .root()
        .children()
        .find(|c| c.is(SOAP_ENV, "Body"))
        .ok_or(KonnektorError::MissingElement("soap:Body"))?;
    let first = body
        .children()
        .next()
        .ok_or(KonnektorError::MissingElement(expected))?;
    if first.is(SOAP_ENV, "Fault") {
        return Err(KonnektorError::Fault(Box::new(parse_fault(first)?)));
    }
    if first.local() == local.as_bytes() && accepted_ns.iter().any(|ns| first.ns() == ns.as_bytes())
    {
        Ok(first)
    } else {
        Err(KonnektorError::UnexpectedElement {
            expected,
            found: first.qualified_name(),
        })
    }
}

/// Convenience: parse with default limits and return the payload.
pub(crate) fn with_payload<T>(
    input: &[u8],
    accepted_ns: &[&str],
    local: &str,
    expected: &'static str,
    f: impl FnOnce(Node<'_, '_>) -> Result<T, KonnektorError>,
) -> Result<T, KonnektorError> {
    with_payload_limited(input, &Limits::DEFAULT, accepted_ns, local, expected, f)
}

/// As [`with_payload`] with explicit limits.
pub(crate) fn with_payload_limited<T>(
    input: &[u8],
    limits: &Limits,
    accepted_ns: &[&str],
    local: &str,
    expected: &'static str,
    f: impl FnOnce(Node<'_, '_>) -> Result<T, KonnektorError>,
) -> Result<T, KonnektorError> {
    let tree = parse_envelope(input, limits)?;
    let node = payload(&tree, accepted_ns, local, expected)?;
    f(node)
}

/// SOAP 1.1 fault children are unqualified; the gematik error sits in `detail`.
fn parse_fault(fault: Node<'_, '_>) -> Result<SoapFault, KonnektorError> {
    let text_of = |name: &str, what: &'static str| -> Result<Option<String>, KonnektorError> {
        match fault.child("", name) {
            Some(n) => n.text(what).map(Some),
            None => Ok(None),
        }
    };
    let telematik = match fault.child("", "detail") {
        Some(detail) => match detail.descendant(GERROR, "Error") {
            Some(e) => Some(TelematikError::parse(e)?),
            None => None,
        },
        None => None,
    };
    Ok(SoapFault {
        code: text_of("faultcode", "faultcode")?.unwrap_or_default(),
        string: text_of("faultstring", "faultstring")?.unwrap_or_default(),
        actor: text_of("faultactor", "faultactor")?,
        telematik,
    })
}

/// Checks that `input` is a well-formed SOAP 1.1 envelope with a body, and returns the
/// namespace and local name of the body's payload; faults become errors. Useful for tests and
/// for dispatching on unknown responses.
pub fn payload_name(input: &[u8]) -> Result<(String, String), KonnektorError> {
    let tree = parse_envelope(input, &Limits::DEFAULT)?;
    let body = tree
        .root()
        .children()
        .find(|c| c.is(SOAP_ENV, "Body"))
        .ok_or(KonnektorError::MissingElement("soap:Body"))?;
    let first = body
        .children()
        .next()
        .ok_or(KonnektorError::MissingElement("payload"))?;
    if first.is(SOAP_ENV, "Fault") {
        return Err(KonnektorError::Fault(Box::new(parse_fault(first)?)));
    }
    Ok((
        String::from_utf8_lossy(first.ns()).into_owned(),
        String::from_utf8_lossy(first.local()).into_owned(),
    ))
}

/// Checks only the envelope and limits (for callers that want to validate bytes early).
pub fn check_envelope(input: &[u8], limits: &Limits) -> Result<(), KonnektorError> {
    parse_envelope(input, limits).map(|_| ())
}
