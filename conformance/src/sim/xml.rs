//! A namespace-resolved element tree for incoming SOAP requests.
//!
//! WHY: requests come from a client we do not control (prefixes are arbitrary), so elements are
//! matched by (namespace URI, local name) only, as resolved by quick-xml's `NsReader`. Requests
//! are small; a tree is simpler to query than a streaming state machine.

use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;

use super::error::SimError;

/// Deepest element nesting accepted (SOAP requests are shallow).
const MAX_DEPTH: usize = 64;

pub const NS_SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";

/// One element: namespace URI (empty if unbound), local name, attributes (local name, value)
/// ignoring attribute namespaces, children, and the concatenated text content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub ns: String,
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    /// First child with this namespace and local name.
    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.ns == ns && c.name == name)
    }

    /// First child with this local name in any namespace starting with `ns_prefix`.
    pub fn child_ns_prefix(&self, ns_prefix: &str, name: &str) -> Option<&Element> {
        self.children
            .iter()
            .find(|c| c.ns.starts_with(ns_prefix) && c.name == name)
    }

    /// All children with this local name in a namespace starting with `ns_prefix`.
    pub fn children_ns_prefix<'a>(
        &'a self,
        ns_prefix: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children
            .iter()
            .filter(move |c| c.ns.starts_with(ns_prefix) && c.name == name)
    }

    /// Depth-first search for the first descendant with this local name (any namespace).
    pub fn find_local(&self, name: &str) -> Option<&Element> {
        for c in &self.children {
            if c.name == name {
                return Some(c);
            }
            if let Some(found) = c.find_local(name) {
                return Some(found);
            }
        }
        None
    }

    /// All descendants with this local name (any namespace), document order.
    pub fn find_all_local<'a>(&'a self, name: &str, out: &mut Vec<&'a Element>) {
        for c in &self.children {
            if c.name == name {
                out.push(c);
            }
            c.find_all_local(name, out);
        }
    }

    /// Attribute value by local name.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Trimmed text content.
    pub fn text(&self) -> &str {
        self.text.trim()
    }
}

fn ns_of(r: &ResolveResult<'_>) -> Result<String, SimError> {
    match r {
        ResolveResult::Bound(ns) => Ok(String::from_utf8_lossy(ns.as_ref()).into_owned()),
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(p) => Err(SimError::BadRequest(format!(
            "unknown namespace prefix {}",
            String::from_utf8_lossy(p)
        ))),
    }
}

fn bad<E: std::fmt::Display>(e: E) -> SimError {
    SimError::BadRequest(format!("XML: {e}"))
}

/// Parses a whole document and returns its root element.
pub fn parse(body: &[u8]) -> Result<Element, SimError> {
    let mut reader = NsReader::from_reader(body);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let (resolved, event) = reader.read_resolved_event().map_err(bad)?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                if root.is_some() {
                    return Err(SimError::BadRequest("content after root element".into()));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(SimError::BadRequest("XML nesting too deep".into()));
                }
                let mut el = Element {
                    ns: ns_of(&resolved)?,
                    name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                    ..Element::default()
                };
                for a in e.attributes() {
                    let a = a.map_err(bad)?;
                    if a.key.as_ref().starts_with(b"xmlns") {
                        continue;
                    }
                    let (_, local) = reader.resolve_attribute(a.key);
                    el.attrs.push((
                        String::from_utf8_lossy(local.as_ref()).into_owned(),
                        a.unescape_value().map_err(bad)?.into_owned(),
                    ));
                }
                if matches!(event, Event::Empty(_)) {
                    close(&mut stack, &mut root, el);
                } else {
                    stack.push(el);
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| SimError::BadRequest("unbalanced end tag".into()))?;
                close(&mut stack, &mut root, el);
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.decode().map_err(bad)?);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.decode().map_err(bad)?);
                }
            }
            Event::GeneralRef(r) => {
                let ch = if r.is_char_ref() {
                    r.resolve_char_ref().map_err(bad)?
                } else {
                    match r.decode().map_err(bad)?.as_ref() {
                        "amp" => Some('&'),
                        "lt" => Some('<'),
                        "gt" => Some('>'),
                        "quot" => Some('"'),
                        "apos" => Some('\''),
                        _ => None,
                    }
                };
                let ch = ch.ok_or_else(|| SimError::BadRequest("unknown entity".into()))?;
                if let Some(top) = stack.last_mut() {
                    top.text.push(ch);
                }
            }
            Event::DocType(_) => {
                return Err(SimError::BadRequest("DOCTYPE not allowed".into()));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(SimError::BadRequest("unclosed element".into()));
    }
    root.ok_or_else(|| SimError::BadRequest("empty document".into()))
}

fn close(stack: &mut [Element], root: &mut Option<Element>, el: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None => *root = Some(el),
    }
}

/// The payload element of a SOAP 1.1 envelope (first child of `Body`).
pub fn soap_payload(envelope: Element) -> Result<Element, SimError> {
    if envelope.ns != NS_SOAP11 || envelope.name != "Envelope" {
        return Err(SimError::BadRequest("not a SOAP 1.1 envelope".into()));
    }
    let body = envelope
        .children
        .into_iter()
        .find(|c| c.ns == NS_SOAP11 && c.name == "Body")
        .ok_or_else(|| SimError::BadRequest("SOAP Body missing".into()))?;
    body.children
        .into_iter()
        .next()
        .ok_or_else(|| SimError::BadRequest("SOAP Body empty".into()))
}

/// Escapes text for element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_do_not_matter_only_namespaces() {
        let a = br#"<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><x:Op xmlns:x="urn:a" Id="1"><x:V>a&amp;b&#x41;</x:V></x:Op></e:Body></e:Envelope>"#;
        let b = br#"<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Body><Op xmlns="urn:a" Id="1"><V>a&amp;bA</V></Op></Body></Envelope>"#;
        let pa = soap_payload(parse(a).unwrap()).unwrap();
        let pb = soap_payload(parse(b).unwrap()).unwrap();
        assert_eq!(pa, pb);
        assert_eq!(pa.ns, "urn:a");
        assert_eq!(pa.attr("Id"), Some("1"));
        assert_eq!(pa.child("urn:a", "V").map(Element::text), Some("a&bA"));
    }

    #[test]
    fn malformed_documents_are_typed_errors() {
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"<a>").is_err());
        assert!(parse(b"").is_err());
        assert!(parse(b"<x:a/>").is_err());
        assert!(parse(b"<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>").is_err());
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert!(parse(deep.as_bytes()).is_err());
        assert!(soap_payload(parse(b"<Envelope/>").unwrap()).is_err());
    }
}
