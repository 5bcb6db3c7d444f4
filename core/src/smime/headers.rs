//! Raw RFC 5322 header scanning with byte offsets.
//!
//! Why not re-serialise a parsed message: S/MIME is about exact bytes. We cut header fields out of
//! the input as they are (folding, spacing, line ends preserved) and only rewrite what the profile
//! says to rewrite. Parsing of structured values (addresses) lives in `addresses`.

use super::error::SmimeError;
use std::ops::Range;

/// The line-end convention of a message, decided by its first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eol {
    /// `\n` (files written by tools, gematik's samples).
    Lf,
    /// `\r\n` (SMTP/POP3 wire format).
    CrLf,
}

impl Eol {
    /// The bytes of this line end.
    pub fn bytes(self) -> &'static [u8] {
        match self {
            Eol::Lf => b"\n",
            Eol::CrLf => b"\r\n",
        }
    }
}

/// One header field with its exact position in the message.
#[derive(Debug, Clone)]
pub struct Field {
    /// Field name as written.
    pub name: String,
    /// The whole field including its final line end.
    pub range: Range<usize>,
    /// The raw (possibly folded) value after the colon, without the final line end.
    pub value: Range<usize>,
}

/// The header block of a message.
#[derive(Debug, Clone)]
pub struct Head {
    /// Fields in order.
    pub fields: Vec<Field>,
    /// Offset just after the last field (where a new field may be inserted).
    pub end: usize,
    /// Offset of the first body byte (after the blank line), or the message length.
    pub body: usize,
    /// Line-end convention of the message.
    pub eol: Eol,
}

impl Head {
    /// First field named `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// Unfolded, trimmed value of the first field named `name`.
    pub fn value(&self, msg: &[u8], name: &str) -> Option<String> {
        self.get(name).map(|f| unfold(&msg[f.value.clone()]))
    }
}

/// Splits `msg` into header fields and body offset.
pub fn parse(msg: &[u8]) -> Result<Head, SmimeError> {
    let eol = match msg.iter().position(|&b| b == b'\n') {
        Some(i) if i > 0 && msg[i - 1] == b'\r' => Eol::CrLf,
        _ => Eol::Lf,
    };
    let mut fields: Vec<Field> = Vec::new();
    let mut pos = 0;
    while pos < msg.len() {
        let line_end = match msg[pos..].iter().position(|&b| b == b'\n') {
            Some(i) => pos + i + 1,
            None => msg.len(),
        };
        let line = &msg[pos..line_end];
        let content = trim_eol(line);
        if content.is_empty() {
            return Ok(Head {
                fields,
                end: pos,
                body: line_end,
                eol,
            });
        }
        if content[0] == b' ' || content[0] == b'\t' {
            let last = fields.last_mut().ok_or(SmimeError::MalformedHeader)?;
            last.range.end = line_end;
            last.value.end = pos + content.len();
        } else {
            let colon = content
                .iter()
                .position(|&b| b == b':')
                .ok_or(SmimeError::MalformedHeader)?;
            let name = &content[..colon];
            if name.is_empty() || !name.iter().all(|b| b.is_ascii_graphic()) {
                return Err(SmimeError::MalformedHeader);
            }
            fields.push(Field {
                name: String::from_utf8_lossy(name).into_owned(),
                range: pos..line_end,
                value: pos + colon + 1..pos + content.len(),
            });
        }
        pos = line_end;
    }
    // No blank line: the message is all header (a body-less mail).
    Ok(Head {
        fields,
        end: msg.len(),
        body: msg.len(),
        eol,
    })
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Removes folding line ends and surrounding white space from a raw header value.
pub fn unfold(raw: &[u8]) -> String {
    let bytes: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    String::from_utf8_lossy(&bytes).trim().to_owned()
}

/// Appends `bytes` to `out` converting bare LF line ends to CRLF (CRLF stays CRLF).
pub fn push_crlf(out: &mut Vec<u8>, bytes: &[u8]) {
    // Copy runs between line ends as slices: CRLF input is a plain memcpy.
    let mut rest = bytes;
    let mut prev_cr = out.last() == Some(&b'\r');
    while let Some(i) = rest.iter().position(|&b| b == b'\n') {
        let (run, tail) = rest.split_at(i);
        out.extend_from_slice(run);
        let before = run.last().map_or(prev_cr, |&b| b == b'\r');
        if !before {
            out.push(b'\r');
        }
        out.push(b'\n');
        prev_cr = false;
        rest = &tail[1..];
    }
    out.extend_from_slice(rest);
}

/// The parameter `param` of a structured header value such as Content-Type (lower-cased name).
pub fn parameter(value: &str, param: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if k.trim().eq_ignore_ascii_case(param) {
            Some(v.trim().trim_matches('"').to_owned())
        } else {
            None
        }
    })
}

/// The media type of a Content-Type value, lower-cased, without parameters.
pub fn media_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_field_spans_continuation_lines() {
        let msg = b"To: a@b.de,\r\n c@d.de\r\nSubject: x\r\n\r\nbody";
        let head = parse(msg).expect("valid");
        assert_eq!(head.eol, Eol::CrLf);
        assert_eq!(head.fields.len(), 2);
        assert_eq!(head.value(msg, "to").as_deref(), Some("a@b.de, c@d.de"));
        assert_eq!(&msg[head.body..], b"body");
        assert_eq!(
            &msg[head.fields[0].range.clone()],
            b"To: a@b.de,\r\n c@d.de\r\n"
        );
    }

    #[test]
    fn push_crlf_converts_only_bare_line_feeds() {
        let mut out = Vec::new();
        push_crlf(&mut out, b"a\nb\r\nc\n\nd\r");
        assert_eq!(out, b"a\r\nb\r\nc\r\n\r\nd\r");
        push_crlf(&mut out, b"\nx");
        assert_eq!(out, b"a\r\nb\r\nc\r\n\r\nd\r\nx");
    }

    #[test]
    fn line_without_colon_is_malformed() {
        assert_eq!(
            parse(b"garbage line\n\nx").err(),
            Some(SmimeError::MalformedHeader)
        );
        assert_eq!(
            parse(b" leading continuation\n\nx").err(),
            Some(SmimeError::MalformedHeader)
        );
    }
}
