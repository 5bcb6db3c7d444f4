//! Request writer: quick-xml for markup and escaping, base64 appended in place.
//!
//! WHY a thin wrapper: every request is built in one pre-sized `Vec<u8>`; writes into a `Vec`
//! cannot fail, so the wrapper absorbs quick-xml's `io::Result` instead of threading an error
//! that can never happen through every builder.

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use super::base64_codec;
use super::namespaces;

/// Bytes of markup a request needs besides its base64 payloads (generous; only a capacity hint).
const MARKUP_RESERVE: usize = 4096;

pub(crate) struct XmlOut {
    writer: Writer<Vec<u8>>,
}

impl XmlOut {
    /// Starts a SOAP 1.1 envelope; `payload_bytes` is the total size of all binary payloads
    /// that will be written as base64, so the buffer never reallocates.
    pub(crate) fn envelope(payload_bytes: usize) -> XmlOut {
        let capacity = base64_codec::encoded_len(payload_bytes).saturating_add(MARKUP_RESERVE);
        let mut out = XmlOut {
            writer: Writer::new(Vec::with_capacity(capacity)),
        };
        out.event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
        out.start_with("soap:Envelope", &[("xmlns:soap", namespaces::SOAP_ENV)]);
        out.start("soap:Body");
        out
    }

    /// Closes body and envelope and returns the bytes.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.end("soap:Body");
        self.end("soap:Envelope");
        self.writer.into_inner()
    }

    fn event(&mut self, event: Event<'_>) {
        // Writing into a Vec<u8> cannot fail.
        let _ = self.writer.write_event(event);
    }

    pub(crate) fn start(&mut self, name: &str) {
        self.event(Event::Start(BytesStart::new(name)));
    }

    pub(crate) fn start_with(&mut self, name: &str, attrs: &[(&str, &str)]) {
        let mut start = BytesStart::new(name);
        for &(k, v) in attrs {
            start.push_attribute((k, v));
        }
        self.event(Event::Start(start));
    }

    pub(crate) fn end(&mut self, name: &str) {
        self.event(Event::End(BytesEnd::new(name)));
    }

    /// `<name>text</name>` with the text escaped.
    pub(crate) fn text_element(&mut self, name: &str, text: &str) {
        self.start(name);
        self.event(Event::Text(BytesText::new(text)));
        self.end(name);
    }

    /// `<name>base64(parts joined)</name>`, encoded straight into the output buffer without
    /// joining the parts.
    pub(crate) fn base64_parts_element(&mut self, name: &str, parts: &[&[u8]]) {
        self.start(name);
        base64_codec::append_encoded_parts(self.writer.get_mut(), parts);
        self.end(name);
    }

    /// `<name attrs>base64(data)</name>`, encoded straight into the output buffer.
    pub(crate) fn base64_element(&mut self, name: &str, attrs: &[(&str, &str)], data: &[u8]) {
        self.start_with(name, attrs);
        base64_codec::append_encoded(self.writer.get_mut(), data);
        self.end(name);
    }
}
