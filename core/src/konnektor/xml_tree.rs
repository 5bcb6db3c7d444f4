//! Hardened, namespace-resolving XML reader that turns a Konnektor response into a small tree.
//!
//! WHY a tree and not a streaming state machine per operation: responses are small apart from
//! one or two base64 payloads, and a tree lets every operation's parser be a few explicit lookups.
//! The payloads are never copied: text is kept as slices borrowed from the input (quick-xml
//! reports references such as `&#13;` as separate events since 0.38, so text slices need no
//! unescaping), and `Node::base64` decodes straight from those slices into the output buffer.
//!
//! Hostile input is bounded: a size limit checked before parsing, a nesting-depth limit, an
//! element-count limit; DOCTYPE (and with it every entity declaration) is rejected, references
//! other than the five predefined entities and character references are rejected, and any
//! declared encoding other than UTF-8 is rejected.

use std::borrow::Cow;

use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

use super::base64_codec;
use super::error::KonnektorError;

/// Bounds applied to every response before and while it is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted input in bytes.
    pub max_bytes: usize,
    /// Deepest accepted element nesting (the SOAP envelope counts as depth 1).
    pub max_depth: usize,
    /// Most elements accepted in one document.
    pub max_elements: usize,
}

impl Limits {
    /// Defaults sized for KOM-LE: a 25 MB message is about 34 MB of base64, plus the CMS
    /// overhead of signing and encryption; gematik's verification reports nest about 15 deep.
    pub const DEFAULT: Limits = Limits {
        max_bytes: 96 * 1024 * 1024,
        max_depth: 64,
        max_elements: 100_000,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// One piece of an element's character content.
#[derive(Debug)]
enum Piece<'a> {
    /// Literal text or CDATA, borrowed from the input whenever possible.
    Text(Cow<'a, [u8]>),
    /// A resolved character or predefined-entity reference.
    Char(char),
}

#[derive(Debug)]
struct Element<'a> {
    ns: Vec<u8>,
    local: Vec<u8>,
    attrs: Vec<(Vec<u8>, String)>,
    children: Vec<usize>,
    text: Vec<Piece<'a>>,
    start: usize,
    end: usize,
}

/// A parsed document: elements in document order, the root at index 0.
#[derive(Debug)]
pub(crate) struct Tree<'a> {
    input: &'a [u8],
    elems: Vec<Element<'a>>,
}

/// A handle on one element of a [`Tree`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node<'t, 'a> {
    tree: &'t Tree<'a>,
    idx: usize,
}

fn malformed(position: u64, reason: impl ToString) -> KonnektorError {
    KonnektorError::Malformed {
        position,
        reason: reason.to_string(),
    }
}

fn predefined_entity(name: &[u8]) -> Option<char> {
    match name {
        b"lt" => Some('<'),
        b"gt" => Some('>'),
        b"amp" => Some('&'),
        b"apos" => Some('\''),
        b"quot" => Some('"'),
        _ => None,
    }
}

impl<'a> Tree<'a> {
    /// Parses `input` within `limits`.
    pub(crate) fn parse(input: &'a [u8], limits: &Limits) -> Result<Tree<'a>, KonnektorError> {
        if input.len() > limits.max_bytes {
            return Err(KonnektorError::TooLarge {
                limit: limits.max_bytes,
                actual: input.len(),
            });
        }
        let mut reader = NsReader::from_reader(input);
        {
            let config = reader.config_mut();
            config.check_end_names = true;
            config.expand_empty_elements = false;
            config.allow_unmatched_ends = false;
        }
        let mut elems: Vec<Element<'a>> = Vec::new();
        let mut stack: Vec<usize> = Vec::new();
        let mut root_done = false;
        loop {
            let pos_before = reader.buffer_position();
            let (resolved, event) = reader
                .read_resolved_event()
                .map_err(|e| malformed(pos_before, e))?;
            let ns = match resolved {
                ResolveResult::Bound(ns) => Some(ns.0.to_vec()),
                ResolveResult::Unbound => Some(Vec::new()),
                ResolveResult::Unknown(_) => None,
            };
            match event {
                Event::Start(ref start) | Event::Empty(ref start) => {
                    let is_empty = matches!(event, Event::Empty(_));
                    if root_done {
                        return Err(malformed(pos_before, "content after the root element"));
                    }
                    if stack.len() >= limits.max_depth {
                        return Err(KonnektorError::TooDeep {
                            limit: limits.max_depth,
                        });
                    }
                    if elems.len() >= limits.max_elements {
                        return Err(KonnektorError::TooManyElements {
                            limit: limits.max_elements,
                        });
                    }
                    let ns = ns.ok_or_else(|| malformed(pos_before, "undeclared prefix"))?;
                    let attrs = read_attributes(&reader, start, pos_before)?;
                    let idx = elems.len();
                    elems.push(Element {
                        ns,
                        local: start.local_name().as_ref().to_vec(),
                        attrs,
                        children: Vec::new(),
                        text: Vec::new(),
                        start: usize::try_from(pos_before).unwrap_or(usize::MAX),
                        end: 0,
                    });
                    if let Some(&parent) = stack.last() {
                        elems[parent].children.push(idx);
                    }
                    if is_empty {
                        elems[idx].end =
                            usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
                        if stack.is_empty() {
                            root_done = true;
                        }
                    } else {
                        stack.push(idx);
                    }
                }
                Event::End(_) => {
                    let idx = stack
                        .pop()
                        .ok_or_else(|| malformed(pos_before, "unmatched end tag"))?;
                    elems[idx].end =
                        usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
                    if stack.is_empty() {
                        root_done = true;
                    }
                }
                Event::Text(text) => match stack.last() {
                    Some(&cur) => elems[cur].text.push(Piece::Text(text.into_inner())),
                    None => {
                        if !text.iter().all(u8::is_ascii_whitespace) {
                            return Err(malformed(pos_before, "text outside the root element"));
                        }
                    }
                },
                Event::CData(cdata) => match stack.last() {
                    Some(&cur) => elems[cur].text.push(Piece::Text(cdata.into_inner())),
                    None => return Err(malformed(pos_before, "CDATA outside the root element")),
                },
                Event::GeneralRef(reference) => {
                    let ch = if reference.is_char_ref() {
                        reference
                            .resolve_char_ref()
                            .map_err(|e| malformed(pos_before, e))?
                    } else {
                        predefined_entity(&reference)
                    };
                    let ch = ch.ok_or(KonnektorError::Forbidden("entity reference"))?;
                    match stack.last() {
                        Some(&cur) => elems[cur].text.push(Piece::Char(ch)),
                        None => return Err(malformed(pos_before, "reference outside the root")),
                    }
                }
                Event::DocType(_) => return Err(KonnektorError::Forbidden("DOCTYPE")),
                Event::Decl(decl) => {
                    if let Some(encoding) = decl.encoding() {
                        let encoding = encoding.map_err(|e| malformed(pos_before, e))?;
                        if !encoding.eq_ignore_ascii_case(b"utf-8") {
                            return Err(KonnektorError::Forbidden("non-UTF-8 encoding"));
                        }
                    }
                }
                Event::Comment(_) | Event::PI(_) => {}
                Event::Eof => break,
            }
        }
        if !stack.is_empty() {
            return Err(malformed(reader.buffer_position(), "truncated document"));
        }
        if elems.is_empty() {
            return Err(malformed(0, "no root element"));
        }
        Ok(Tree { input, elems })
    }

    /// The document element.
    pub(crate) fn root(&self) -> Node<'_, 'a> {
        Node { tree: self, idx: 0 }
    }
}

fn read_attributes(
    reader: &NsReader<&[u8]>,
    start: &BytesStart<'_>,
    position: u64,
) -> Result<Vec<(Vec<u8>, String)>, KonnektorError> {
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| malformed(position, e))?;
        let key = attr.key;
        if key.as_namespace_binding().is_some() {
            continue;
        }
        let (_, local) = reader.resolve_attribute(key);
        let value = attr.unescape_value().map_err(|e| malformed(position, e))?;
        attrs.push((local.as_ref().to_vec(), value.into_owned()));
    }
    Ok(attrs)
}

impl<'t, 'a> Node<'t, 'a> {
    fn elem(&self) -> &'t Element<'a> {
        &self.tree.elems[self.idx]
    }

    /// The namespace URI (empty when the element is in no namespace).
    pub(crate) fn ns(&self) -> &'t [u8] {
        &self.elem().ns
    }

    /// The local name.
    pub(crate) fn local(&self) -> &'t [u8] {
        &self.elem().local
    }

    /// True if this element has the given namespace and local name.
    pub(crate) fn is(&self, ns: &str, local: &str) -> bool {
        self.ns() == ns.as_bytes() && self.local() == local.as_bytes()
    }

    /// `{namespace}local`, for error messages.
    pub(crate) fn qualified_name(&self) -> String {
        format!(
            "{{{}}}{}",
            String::from_utf8_lossy(self.ns()),
            String::from_utf8_lossy(self.local())
        )
    }

    /// Child elements in document order.
    pub(crate) fn children(self) -> impl Iterator<Item = Node<'t, 'a>> + 't {
        let tree = self.tree;
        self.elem()
            .children
            .iter()
            .map(move |&idx| Node { tree, idx })
    }

    /// First child with the given name.
    pub(crate) fn child(&self, ns: &str, local: &str) -> Option<Node<'t, 'a>> {
        self.children().find(|c| c.is(ns, local))
    }

    /// All children with the given name.
    pub(crate) fn children_named<'s>(
        self,
        ns: &'s str,
        local: &'s str,
    ) -> impl Iterator<Item = Node<'t, 'a>> + use<'t, 'a, 's> {
        self.children().filter(move |c| c.is(ns, local))
    }

    /// First child with the given name, or [`KonnektorError::MissingElement`] naming `what`.
    pub(crate) fn require(
        &self,
        ns: &str,
        local: &str,
        what: &'static str,
    ) -> Result<Node<'t, 'a>, KonnektorError> {
        self.child(ns, local)
            .ok_or(KonnektorError::MissingElement(what))
    }

    /// First descendant (depth-first, document order) with the given name.
    pub(crate) fn descendant(&self, ns: &str, local: &str) -> Option<Node<'t, 'a>> {
        let mut todo: Vec<Node<'t, 'a>> = self.children().collect();
        todo.reverse();
        while let Some(n) = todo.pop() {
            if n.is(ns, local) {
                return Some(n);
            }
            let mut kids: Vec<Node<'t, 'a>> = n.children().collect();
            kids.reverse();
            todo.extend(kids);
        }
        None
    }

    /// An attribute value by local name (attributes of Konnektor schemas are unqualified).
    pub(crate) fn attr(&self, local: &str) -> Option<&'t str> {
        self.elem()
            .attrs
            .iter()
            .find(|(k, _)| k.as_slice() == local.as_bytes())
            .map(|(_, v)| v.as_str())
    }

    /// The character content, trimmed; an error names `what` if it is not UTF-8.
    pub(crate) fn text(&self, what: &'static str) -> Result<String, KonnektorError> {
        let mut out = String::new();
        for piece in &self.elem().text {
            match piece {
                Piece::Text(bytes) => out.push_str(
                    std::str::from_utf8(bytes).map_err(|_| KonnektorError::InvalidValue(what))?,
                ),
                Piece::Char(c) => out.push(*c),
            }
        }
        let trimmed = out.trim();
        if trimmed.len() == out.len() {
            Ok(out)
        } else {
            Ok(trimmed.to_owned())
        }
    }

    /// Decodes the base64 character content straight from the input slices (whitespace and
    /// whitespace character references such as `&#13;` are skipped).
    pub(crate) fn base64(&self, what: &'static str) -> Result<Vec<u8>, KonnektorError> {
        self.base64_after(&[], what)
    }

    /// As [`Node::base64`], the decoded bytes written after `prefix` in the same buffer.
    pub(crate) fn base64_after(
        &self,
        prefix: &[u8],
        what: &'static str,
    ) -> Result<Vec<u8>, KonnektorError> {
        let pieces = &self.elem().text;
        let total: usize = pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.len(),
                Piece::Char(_) => 1,
            })
            .sum();
        let mut decoder = base64_codec::Decoder::after(prefix, total);
        for piece in pieces {
            match piece {
                Piece::Text(t) => decoder.push(t),
                Piece::Char(c) if c.is_ascii_whitespace() => Ok(()),
                Piece::Char(c) if c.is_ascii() => {
                    let mut buf = [0u8; 4];
                    decoder.push(c.encode_utf8(&mut buf).as_bytes())
                }
                Piece::Char(_) => Err(()),
            }
            .map_err(|()| KonnektorError::InvalidBase64(what))?;
        }
        decoder
            .finish()
            .map_err(|()| KonnektorError::InvalidBase64(what))
    }

    /// The exact bytes of this element in the input, start tag to end tag. Namespace prefixes
    /// used inside may be declared on an ancestor.
    pub(crate) fn raw(&self) -> &'a [u8] {
        let e = self.elem();
        self.tree.input.get(e.start..e.end).unwrap_or(&[])
    }
}
