//! A small BER reader and DER re-encoder.
//!
//! WHY: gematik's sample AuthEnvelopedData (and real Konnektoren) use indefinite lengths and
//! constructed (chunked) OCTET STRINGs, while `der` 0.7 only reads DER. This module parses BER
//! into a tree so the CMS code can walk it by hand and re-encode sub-structures as DER for the
//! typed `cms`/`x509-cert` decoders. It does NOT sort SET OF members (the input order is kept),
//! which is what signature checks over received bytes need anyway.

use std::fmt;

/// Nesting limit: CMS structures are shallow; this guards the recursion against hostile input.
const MAX_DEPTH: usize = 64;

/// Why BER input was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BerError {
    /// The input ended inside an element.
    Truncated,
    /// A tag number ≥ 31 (multi-byte identifier); CMS does not use them.
    HighTagNumber,
    /// A length field longer than 8 bytes or otherwise unusable.
    BadLength,
    /// Indefinite length on a primitive element (forbidden by X.690).
    IndefinitePrimitive,
    /// Nesting deeper than `MAX_DEPTH` (64).
    TooDeep,
    /// Bytes left over after the outermost element.
    TrailingData,
    /// The structure does not have the expected shape (message says where).
    Shape(&'static str),
}

impl fmt::Display for BerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BerError::Truncated => write!(f, "BER input truncated"),
            BerError::HighTagNumber => write!(f, "BER high tag numbers are not supported"),
            BerError::BadLength => write!(f, "BER length field invalid"),
            BerError::IndefinitePrimitive => write!(f, "indefinite length on a primitive"),
            BerError::TooDeep => write!(f, "BER nesting too deep"),
            BerError::TrailingData => write!(f, "trailing data after BER element"),
            BerError::Shape(s) => write!(f, "unexpected ASN.1 structure: {s}"),
        }
    }
}

impl std::error::Error for BerError {}

/// One BER element. `tag` is the identifier octet with the constructed bit cleared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub tag: u8,
    pub value: Value,
}

/// Primitive bytes or constructed children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Primitive(Vec<u8>),
    Constructed(Vec<Node>),
}

/// Universal tag numbers used by the CMS walkers.
pub mod tag {
    pub const INTEGER: u8 = 0x02;
    pub const OCTET_STRING: u8 = 0x04;
    pub const OID: u8 = 0x06;
    pub const SEQUENCE: u8 = 0x10;
    pub const SET: u8 = 0x11;
    /// Context-specific class bits.
    pub const CONTEXT: u8 = 0x80;
}

impl Node {
    /// Parses exactly one element covering all of `input`.
    pub fn parse(input: &[u8]) -> Result<Node, BerError> {
        let (node, used) = parse_one(input, 0)?;
        if used != input.len() {
            return Err(BerError::TrailingData);
        }
        Ok(node)
    }

    /// Children of a constructed element (empty for primitives).
    pub fn children(&self) -> &[Node] {
        match &self.value {
            Value::Constructed(c) => c,
            Value::Primitive(_) => &[],
        }
    }

    /// Is this a context-specific element `[n]`?
    pub fn is_context(&self, n: u8) -> bool {
        self.tag == (tag::CONTEXT | n)
    }

    /// Content octets of a string type: primitive bytes, or the concatenation of the chunks of a
    /// constructed string (BER allows both for OCTET STRING and for IMPLICIT-tagged strings).
    pub fn string_bytes(&self) -> Result<Vec<u8>, BerError> {
        match &self.value {
            Value::Primitive(b) => Ok(b.clone()),
            Value::Constructed(chunks) => {
                let mut out = Vec::new();
                for c in chunks {
                    out.extend_from_slice(&c.string_bytes()?);
                }
                Ok(out)
            }
        }
    }

    /// DER-style encoding: definite lengths everywhere, constructed universal OCTET STRINGs
    /// flattened to primitive. Context-tagged elements keep their form (the tree cannot know
    /// whether `[n]` is IMPLICIT string or EXPLICIT wrapper), so callers flatten those themselves.
    pub fn to_der(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_der(&mut out);
        out
    }

    fn write_der(&self, out: &mut Vec<u8>) {
        match &self.value {
            Value::Primitive(b) => write_tlv(out, self.tag, false, b),
            Value::Constructed(children) if self.tag == tag::OCTET_STRING => {
                let flat = self.string_bytes().unwrap_or_default();
                let _ = children;
                write_tlv(out, self.tag, false, &flat)
            }
            Value::Constructed(children) => {
                let mut content = Vec::new();
                for c in children {
                    c.write_der(&mut content);
                }
                write_tlv(out, self.tag, true, &content)
            }
        }
    }

    /// DER encoding of the content only (used to re-tag `[0] IMPLICIT SET` signed attributes).
    pub fn content_der(&self) -> Vec<u8> {
        match &self.value {
            Value::Primitive(b) => b.clone(),
            Value::Constructed(children) => {
                let mut content = Vec::new();
                for c in children {
                    c.write_der(&mut content);
                }
                content
            }
        }
    }
}

/// Re-encodes BER as DER (see [`Node::to_der`] for what is normalised).
pub fn ber_to_der(input: &[u8]) -> Result<Vec<u8>, BerError> {
    Ok(Node::parse(input)?.to_der())
}

/// Writes one TLV with a definite length.
pub fn write_tlv(out: &mut Vec<u8>, tag: u8, constructed: bool, content: &[u8]) {
    out.push(if constructed { tag | 0x20 } else { tag });
    write_len(out, content.len());
    out.extend_from_slice(content);
}

fn write_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Parses one element at the start of `input`; returns it and the bytes consumed.
fn parse_one(input: &[u8], depth: usize) -> Result<(Node, usize), BerError> {
    if depth > MAX_DEPTH {
        return Err(BerError::TooDeep);
    }
    let id = *input.first().ok_or(BerError::Truncated)?;
    if id & 0x1f == 0x1f {
        return Err(BerError::HighTagNumber);
    }
    let constructed = id & 0x20 != 0;
    let tag = id & !0x20;
    let first_len = *input.get(1).ok_or(BerError::Truncated)?;
    let mut pos = 2;
    let len: Option<usize> = if first_len < 0x80 {
        Some(first_len as usize)
    } else if first_len == 0x80 {
        None
    } else {
        let n = (first_len & 0x7f) as usize;
        if n > 8 {
            return Err(BerError::BadLength);
        }
        let bytes = input.get(pos..pos + n).ok_or(BerError::Truncated)?;
        pos += n;
        let mut l: u64 = 0;
        for b in bytes {
            l = (l << 8) | u64::from(*b);
        }
        Some(usize::try_from(l).map_err(|_| BerError::BadLength)?)
    };
    match (len, constructed) {
        (Some(len), false) => {
            let end = pos.checked_add(len).ok_or(BerError::BadLength)?;
            let content = input.get(pos..end).ok_or(BerError::Truncated)?;
            Ok((
                Node {
                    tag,
                    value: Value::Primitive(content.to_vec()),
                },
                end,
            ))
        }
        (Some(len), true) => {
            let end = pos.checked_add(len).ok_or(BerError::BadLength)?;
            let mut content = input.get(pos..end).ok_or(BerError::Truncated)?;
            let mut children = Vec::new();
            while !content.is_empty() {
                let (child, used) = parse_one(content, depth + 1)?;
                children.push(child);
                content = &content[used..];
            }
            Ok((
                Node {
                    tag,
                    value: Value::Constructed(children),
                },
                end,
            ))
        }
        (None, false) => Err(BerError::IndefinitePrimitive),
        (None, true) => {
            let mut children = Vec::new();
            loop {
                let rest = input.get(pos..).ok_or(BerError::Truncated)?;
                if rest.len() >= 2 && rest[0] == 0 && rest[1] == 0 {
                    pos += 2;
                    break;
                }
                if rest.is_empty() {
                    return Err(BerError::Truncated);
                }
                let (child, used) = parse_one(rest, depth + 1)?;
                children.push(child);
                pos += used;
            }
            Ok((
                Node {
                    tag,
                    value: Value::Constructed(children),
                },
                pos,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definite_der_round_trips_unchanged() {
        // SEQUENCE { INTEGER 5, OCTET STRING "ab" }
        let der = [0x30, 0x07, 0x02, 0x01, 0x05, 0x04, 0x02, b'a', b'b'];
        assert_eq!(ber_to_der(&der).unwrap(), der);
    }

    #[test]
    fn indefinite_lengths_and_chunked_octets_become_der() {
        // SEQUENCE(indef) { OCTET STRING(constructed, indef) { "ab", "c" } EOC } EOC
        let ber = [
            0x30, 0x80, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c', 0x00, 0x00, 0x00,
            0x00,
        ];
        assert_eq!(
            ber_to_der(&ber).unwrap(),
            [0x30, 0x05, 0x04, 0x03, b'a', b'b', b'c']
        );
    }

    #[test]
    fn long_lengths_are_encoded_minimally() {
        let content = vec![7u8; 300];
        let mut ber = vec![0x04, 0x84, 0, 0, 0x01, 0x2c];
        ber.extend_from_slice(&content);
        let der = ber_to_der(&ber).unwrap();
        assert_eq!(&der[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(der.len(), 304);
    }

    #[test]
    fn context_tagged_chunks_are_concatenated_on_request() {
        let ber = [0xa0, 0x80, 0x04, 0x01, b'x', 0x04, 0x01, b'y', 0x00, 0x00];
        let node = Node::parse(&ber).unwrap();
        assert!(node.is_context(0));
        assert_eq!(node.string_bytes().unwrap(), b"xy");
    }

    #[test]
    fn malformed_input_is_a_typed_error() {
        assert_eq!(Node::parse(&[0x30]), Err(BerError::Truncated));
        assert_eq!(Node::parse(&[0x30, 0x05, 0x02]), Err(BerError::Truncated));
        assert_eq!(
            Node::parse(&[0x04, 0x80]),
            Err(BerError::IndefinitePrimitive)
        );
        assert_eq!(
            Node::parse(&[0x1f, 0x01, 0x00]),
            Err(BerError::HighTagNumber)
        );
        assert_eq!(
            Node::parse(&[0x05, 0x00, 0x00]),
            Err(BerError::TrailingData)
        );
        assert_eq!(
            Node::parse(&[0x30, 0x80, 0x05, 0x00]),
            Err(BerError::Truncated)
        );
        let mut deep = [0x30, 0x80].repeat(100);
        deep.extend_from_slice(&[0u8; 200]);
        assert_eq!(Node::parse(&deep), Err(BerError::TooDeep));
    }
}
