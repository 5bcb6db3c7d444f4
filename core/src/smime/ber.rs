//! A minimal BER reader (definite and indefinite lengths).
//!
//! Why hand-written: the Konnektor returns AuthEnvelopedData with indefinite lengths (gematik's
//! sample 04), which the `der` crate refuses by design, and we only need to walk a few levels to
//! reach the recipient-emails attribute and the signed content. The reader borrows from the
//! input (no copies) and limits nesting depth so hostile input cannot exhaust the stack.

use super::error::SmimeError;

/// Deepest nesting we follow; CMS structures we read are far shallower.
const MAX_DEPTH: usize = 64;

/// One BER element, borrowed from the input.
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    /// The identifier octet (only low tag numbers < 31 occur in CMS).
    pub tag: u8,
    /// Content octets; for indefinite lengths without the end-of-contents marker.
    pub content: &'a [u8],
    /// The complete encoding (identifier, length, content, end-of-contents).
    pub raw: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// True when the constructed bit is set.
    pub fn constructed(&self) -> bool {
        self.tag & 0x20 != 0
    }

    /// Iterates the elements inside a constructed element.
    pub fn children(&self) -> Children<'a> {
        Children { rest: self.content }
    }

    /// The element's content, with constructed (BER-segmented) OCTET STRINGs concatenated.
    pub fn octets(&self) -> Result<std::borrow::Cow<'a, [u8]>, SmimeError> {
        if !self.constructed() {
            return Ok(std::borrow::Cow::Borrowed(self.content));
        }
        let mut out = Vec::new();
        collect_octets(self.content, &mut out, 0)?;
        Ok(std::borrow::Cow::Owned(out))
    }
}

fn collect_octets(mut input: &[u8], out: &mut Vec<u8>, depth: usize) -> Result<(), SmimeError> {
    if depth > MAX_DEPTH {
        return Err(SmimeError::TooDeep);
    }
    while !input.is_empty() {
        let (tlv, rest) = read(input)?;
        if tlv.constructed() {
            collect_octets(tlv.content, out, depth + 1)?;
        } else {
            out.extend_from_slice(tlv.content);
        }
        input = rest;
    }
    Ok(())
}

/// Iterator over consecutive elements.
pub struct Children<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Children<'a> {
    type Item = Result<Tlv<'a>, SmimeError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match read(self.rest) {
            Ok((tlv, rest)) => {
                self.rest = rest;
                Some(Ok(tlv))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// Reads one element from the front of `input`, returning it and the remaining bytes.
pub fn read(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), SmimeError> {
    read_depth(input, 0)
}

fn read_depth(input: &[u8], depth: usize) -> Result<(Tlv<'_>, &[u8]), SmimeError> {
    if depth > MAX_DEPTH {
        return Err(SmimeError::TooDeep);
    }
    let tag = *input.first().ok_or(SmimeError::BadAsn1("truncated"))?;
    if tag & 0x1f == 0x1f {
        return Err(SmimeError::BadAsn1("high tag number"));
    }
    let first = *input.get(1).ok_or(SmimeError::BadAsn1("truncated"))?;
    if first == 0x80 {
        // Indefinite length: only for constructed encodings; walk children up to 00 00.
        if tag & 0x20 == 0 {
            return Err(SmimeError::BadAsn1("indefinite primitive"));
        }
        let start = 2;
        let mut pos = start;
        loop {
            let rest = input.get(pos..).ok_or(SmimeError::BadAsn1("truncated"))?;
            if rest.len() >= 2 && rest[0] == 0 && rest[1] == 0 {
                let end = pos + 2;
                let tlv = Tlv {
                    tag,
                    content: &input[start..pos],
                    raw: &input[..end],
                };
                return Ok((tlv, &input[end..]));
            }
            let (child, _) = read_depth(rest, depth + 1)?;
            pos += child.raw.len();
        }
    }
    let (len, hlen) = if first & 0x80 == 0 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return Err(SmimeError::BadAsn1("length"));
        }
        let bytes = input
            .get(2..2 + n)
            .ok_or(SmimeError::BadAsn1("truncated"))?;
        let len = bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, 2 + n)
    };
    let end = hlen.checked_add(len).ok_or(SmimeError::BadAsn1("length"))?;
    if end > input.len() {
        return Err(SmimeError::BadAsn1("truncated"));
    }
    let tlv = Tlv {
        tag,
        content: &input[hlen..end],
        raw: &input[..end],
    };
    Ok((tlv, &input[end..]))
}

/// Reads exactly one element that must fill `input` and carry `tag`.
pub fn expect<'a>(input: &'a [u8], tag: u8, what: &'static str) -> Result<Tlv<'a>, SmimeError> {
    let (tlv, _rest) = read(input)?;
    if tlv.tag != tag {
        return Err(SmimeError::BadAsn1(what));
    }
    Ok(tlv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indefinite_length_sequence_is_walked_to_its_end_marker() {
        let data = [
            0x30, 0x80, 0x02, 0x01, 0x05, 0x04, 0x01, 0xaa, 0x00, 0x00, 0xff,
        ];
        let (tlv, rest) = read(&data).expect("valid");
        assert_eq!(tlv.raw.len(), 10);
        assert_eq!(rest, &[0xff]);
        let kids: Vec<_> = tlv.children().collect::<Result<_, _>>().expect("children");
        assert_eq!(kids.len(), 2);
        assert_eq!(kids[1].content, &[0xaa]);
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        assert!(read(&[0x30, 0x82, 0x01]).is_err());
        assert!(read(&[0x30, 0x05, 0x01]).is_err());
        assert!(read(&[0x30, 0x80, 0x02, 0x01]).is_err());
    }

    #[test]
    fn nesting_bomb_is_refused() {
        let mut data = Vec::new();
        for _ in 0..200 {
            data.extend_from_slice(&[0x30, 0x80]);
        }
        assert_eq!(read(&data).err(), Some(SmimeError::TooDeep));
    }

    #[test]
    fn segmented_octet_string_is_concatenated() {
        let data = [
            0x24, 0x80, 0x04, 0x01, 0x61, 0x04, 0x02, 0x62, 0x63, 0x00, 0x00,
        ];
        let (tlv, _) = read(&data).expect("valid");
        assert_eq!(&*tlv.octets().expect("octets"), b"abc");
    }
}
