//! Appending the notes of an opened message to its text (KOM-LE-A_2179-01, A_2050-05).
//!
//! The spec wants „Die Nachricht wurde entschlüsselt.“ and the Vermerk of Tab_Verm_Sig_Prüf
//! *appended to the message text*, in the text part's format (text/plain or text/html). So the
//! note goes into the first text part the reader sees: the entity itself when it is text, the
//! first inline text part of a multipart/mixed or related tree, and every text alternative of
//! a multipart/alternative (the reader sees only one of them).
//!
//! The part's transfer encoding is kept (7bit/8bit/binary as is, quoted-printable and base64
//! decoded and encoded again); the note is written in the part's charset (UTF-8 or the Latin-1
//! family); a US-ASCII or charset-less text/plain part is relabelled UTF-8 (ASCII is a subset),
//! HTML gets the note as ASCII with character references. A part in another charset, or a
//! mail without any text part, yields `None`: the caller then adds the note as its own part.
//! Everything outside the annotated part stays byte for byte as received.

use std::ops::Range;

use super::headers;
use super::outer::push_base64_lines;
use super::receive::decode_base64;

/// Nesting depth up to which multiparts are searched for a text part.
const MAX_DEPTH: usize = 8;
/// The separator the spec's example puts between the text and the notes.
const SEPARATOR: &str = "---------------------------------------------";

/// Appends `lines` to the text of `entity` (a MIME entity: its header block with CRLF line ends,
/// the blank line and the body). Returns the new entity, or `None` when no text part could
/// take the note.
pub fn append_to_text(entity: &[u8], lines: &[&str]) -> Option<Vec<u8>> {
    let head = headers::parse(entity).ok()?;
    let body = &entity[head.body..];
    let edits = text_edits(&entity[..head.body], body, lines)?;
    let mut out = Vec::with_capacity(edited_len(entity.len(), &edits));
    for piece in edited_pieces(&entity[..head.body], body, &edits) {
        out.extend_from_slice(piece);
    }
    Some(out)
}

/// One change to an entity: the bytes at `range` are replaced by `with` (an empty range is an
/// insertion). Offsets count in the entity as header block followed by body.
#[derive(Clone, PartialEq, Eq)]
pub struct Edit {
    pub range: Range<usize>,
    pub with: Vec<u8>,
}

impl core::fmt::Debug for Edit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The replacement is message content: its length only.
        write!(f, "Edit({:?}, <{} bytes>)", self.range, self.with.len())
    }
}

/// [`append_to_text`] as a list of edits, for an entity given as its header block `head`
/// (ending with the blank line) and its `body` in separate buffers, so that a large body is
/// never copied: the caller writes the unchanged ranges straight from the received mail
/// (issue 17, bounded memory on RETR). Only a quoted-printable or base64 text part is
/// replaced whole (it is decoded and encoded again); a 7bit/8bit text gets an insertion and,
/// when relabelled, a new header block. The edits are sorted and do not overlap.
pub fn text_edits(head: &[u8], body: &[u8], lines: &[&str]) -> Option<Vec<Edit>> {
    annotate(head, body, lines, 0)
}

/// Length of the entity after `edits`.
pub fn edited_len(len: usize, edits: &[Edit]) -> usize {
    edits
        .iter()
        .fold(len, |n, e| n - e.range.len() + e.with.len())
}

/// The edited entity as consecutive pieces: unchanged ranges of `head` or `body` and the
/// replacements, in order.
pub fn edited_pieces<'a>(head: &'a [u8], body: &'a [u8], edits: &'a [Edit]) -> Vec<&'a [u8]> {
    // Offset `o` of the joined entity lies in `head` below head.len(), else in `body`.
    let slice = |r: Range<usize>| -> [&'a [u8]; 2] {
        let h = head.len();
        let head_part = &head[r.start.min(h)..r.end.min(h)];
        let body_part = &body[r.start.max(h) - h..r.end.max(h) - h];
        [head_part, body_part]
    };
    let mut out = Vec::with_capacity(edits.len() * 4 + 2);
    let mut at = 0;
    for e in edits {
        out.extend(slice(at..e.range.start));
        out.push(&e.with[..]);
        at = e.range.end;
    }
    out.extend(slice(at..head.len() + body.len()));
    out.retain(|p| !p.is_empty());
    out
}

fn annotate(head_src: &[u8], body: &[u8], lines: &[&str], depth: usize) -> Option<Vec<Edit>> {
    let head = headers::parse(head_src).ok()?;
    let ct = head
        .value(head_src, "Content-Type")
        .unwrap_or_else(|| "text/plain".to_owned());
    let mt = headers::media_type(&ct);
    let disposition = head
        .value(head_src, "Content-Disposition")
        .map(|d| headers::media_type(&d));
    if disposition.as_deref() == Some("attachment") {
        return None;
    }
    if mt.starts_with("multipart/") {
        if depth >= MAX_DEPTH {
            return None;
        }
        let boundary = headers::parameter(&ct, "boundary")?;
        let parts = split_parts(body, boundary.as_bytes())?;
        let every_alternative = mt == "multipart/alternative";
        let mut edits: Vec<Edit> = Vec::new();
        for r in parts {
            let part = &body[r.clone()];
            let Ok(ph) = headers::parse(part) else {
                continue;
            };
            if let Some(sub) = annotate(part, &part[ph.body..], lines, depth + 1) {
                let shift = head.body + r.start;
                edits.extend(sub.into_iter().map(|e| Edit {
                    range: e.range.start + shift..e.range.end + shift,
                    with: e.with,
                }));
                if !every_alternative {
                    break;
                }
            }
        }
        if edits.is_empty() {
            return None;
        }
        return Some(edits);
    }
    match mt.as_str() {
        "text/plain" => leaf(head_src, body, &head, &ct, false, lines),
        "text/html" => leaf(head_src, body, &head, &ct, true, lines),
        _ => None,
    }
}

/// The body part ranges of a multipart body: from after each delimiter line to the line end
/// before the next delimiter. `None` without a closing or any delimiter.
fn split_parts(body: &[u8], boundary: &[u8]) -> Option<Vec<Range<usize>>> {
    let mut delimiters: Vec<(usize, usize, bool)> = Vec::new(); // (line start, next line, close)
    let mut pos = 0;
    while pos < body.len() {
        let end = body[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |i| pos + i + 1);
        let line = &body[pos..end];
        if let Some(rest) = line
            .strip_prefix(b"--")
            .and_then(|l| l.strip_prefix(boundary))
        {
            let close = rest.starts_with(b"--");
            let rest = if close { &rest[2..] } else { rest };
            if rest.iter().all(u8::is_ascii_whitespace) {
                delimiters.push((pos, end, close));
                if close {
                    break;
                }
            }
        }
        pos = end;
    }
    if delimiters.len() < 2 || !delimiters.last().is_some_and(|d| d.2) {
        return None;
    }
    Some(
        delimiters
            .windows(2)
            .map(|w| {
                let start = w[0].1;
                let mut end = w[1].0;
                // The line end before a delimiter belongs to the delimiter (RFC 2046).
                if end > start && body[end - 1] == b'\n' {
                    end -= 1;
                    if end > start && body[end - 1] == b'\r' {
                        end -= 1;
                    }
                }
                start..end.max(start)
            })
            .collect(),
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Charset {
    Utf8,
    Latin1,
    /// US-ASCII or none given: relabelled UTF-8 for text/plain.
    Ascii,
    /// Another ASCII-compatible charset: fine for HTML character references only.
    OtherAsciiCompatible,
}

fn charset_of(ct: &str) -> Option<Charset> {
    let cs = headers::parameter(ct, "charset").map(|c| c.to_ascii_lowercase());
    Some(match cs.as_deref() {
        None | Some("us-ascii") | Some("ascii") => Charset::Ascii,
        Some("utf-8") | Some("utf8") => Charset::Utf8,
        Some("iso-8859-1") | Some("iso-8859-15") | Some("latin1") | Some("windows-1252") => {
            Charset::Latin1
        }
        Some(c) if c.starts_with("iso-8859-") || c.starts_with("windows-125") => {
            Charset::OtherAsciiCompatible
        }
        Some(_) => return None,
    })
}

fn leaf(
    head_src: &[u8],
    body: &[u8],
    head: &headers::Head,
    ct: &str,
    html: bool,
    lines: &[&str],
) -> Option<Vec<Edit>> {
    let cte = head
        .value(head_src, "Content-Transfer-Encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let charset = charset_of(ct)?;
    let note: Vec<u8> = if html {
        html_note(lines).into_bytes()
    } else {
        let mut s = format!("\r\n{SEPARATOR}\r\n");
        for l in lines {
            s.push_str(l);
            s.push_str("\r\n");
        }
        match charset {
            Charset::Utf8 | Charset::Ascii => s.into_bytes(),
            Charset::Latin1 => latin1(&s)?,
            Charset::OtherAsciiCompatible => return None,
        }
    };
    let encoded = match cte.as_str() {
        "" | "7bit" | "8bit" | "binary" => false,
        "quoted-printable" | "base64" => true,
        _ => return None,
    };
    let relabel = !html && charset == Charset::Ascii;
    let to_8bit = matches!(cte.as_str(), "" | "7bit") && !note.is_ascii();
    let mut new_head = Vec::new();
    if relabel || to_8bit {
        let mut had_cte = false;
        for f in &head.fields {
            if relabel && f.name.eq_ignore_ascii_case("Content-Type") {
                new_head
                    .extend_from_slice(format!("Content-Type: {}\r\n", utf8_label(ct)).as_bytes());
            } else if to_8bit && f.name.eq_ignore_ascii_case("Content-Transfer-Encoding") {
                had_cte = true;
                new_head.extend_from_slice(b"Content-Transfer-Encoding: 8bit\r\n");
            } else {
                headers::push_crlf(&mut new_head, &head_src[f.range.clone()]);
                if !new_head.ends_with(b"\n") {
                    new_head.extend_from_slice(b"\r\n");
                }
            }
        }
        if relabel && head.get("Content-Type").is_none() {
            new_head.extend_from_slice(b"Content-Type: text/plain; charset=UTF-8\r\n");
        }
        if to_8bit && !had_cte {
            new_head.extend_from_slice(b"Content-Transfer-Encoding: 8bit\r\n");
        }
        new_head.extend_from_slice(b"\r\n");
    }
    let end = head.body + body.len();
    if !encoded {
        // 7bit/8bit/binary: the text is the body itself; the note is an insertion, the body
        // is not copied.
        let mut edits = Vec::with_capacity(2);
        if !new_head.is_empty() {
            edits.push(Edit {
                range: 0..head.body,
                with: new_head,
            });
        }
        let insertion = if html {
            let at = rfind_ci(body, b"</body").map_or(end, |i| head.body + i);
            Edit {
                range: at..at,
                with: note,
            }
        } else {
            let mut with = Vec::with_capacity(note.len() + 2);
            if !body.is_empty() && !body.ends_with(b"\n") {
                with.extend_from_slice(b"\r\n");
            }
            with.extend_from_slice(&note);
            Edit {
                range: end..end,
                with,
            }
        };
        edits.push(insertion);
        return Some(edits);
    }
    // Quoted-printable or base64: decoded, annotated and encoded again (this part only).
    let mut text = match cte.as_str() {
        "quoted-printable" => qp_decode(body),
        _ => decode_base64(body).ok()?,
    };
    if html {
        match rfind_ci(&text, b"</body") {
            Some(i) => {
                text.splice(i..i, note.iter().copied());
            }
            None => text.extend_from_slice(&note),
        }
    } else {
        if !text.is_empty() && !text.ends_with(b"\n") {
            text.extend_from_slice(b"\r\n");
        }
        text.extend_from_slice(&note);
    }
    let mut out = Vec::with_capacity(body.len() + note.len() * 2 + 256);
    if new_head.is_empty() {
        out.extend_from_slice(&head_src[..head.body]);
    } else {
        out.extend_from_slice(&new_head);
    }
    if cte == "quoted-printable" {
        qp_encode(&mut out, &text);
    } else {
        push_base64_lines(&mut out, &text);
        out.extend_from_slice(b"\r\n");
    }
    zeroize::Zeroize::zeroize(&mut text);
    Some(vec![Edit {
        range: 0..end,
        with: out,
    }])
}

/// `text/plain; format=flowed; charset=us-ascii` → `text/plain; format=flowed; charset=UTF-8`.
fn utf8_label(ct: &str) -> String {
    let mut parts = ct.split(';');
    let mut out = parts.next().unwrap_or("text/plain").trim().to_owned();
    for p in parts {
        let name = p.split('=').next().unwrap_or("").trim();
        if !name.eq_ignore_ascii_case("charset") && !p.trim().is_empty() {
            out.push_str("; ");
            out.push_str(p.trim());
        }
    }
    out.push_str("; charset=UTF-8");
    out
}

fn latin1(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
}

/// The note as HTML: a rule and one paragraph, non-ASCII as character references so it fits
/// any ASCII-compatible charset.
fn html_note(lines: &[&str]) -> String {
    let mut s = String::from("\r\n<hr>\r\n<p>");
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            s.push_str("<br>\r\n");
        }
        for c in l.chars() {
            match c {
                '&' => s.push_str("&amp;"),
                '<' => s.push_str("&lt;"),
                '>' => s.push_str("&gt;"),
                c if c.is_ascii() => s.push(c),
                c => s.push_str(&format!("&#{};", u32::from(c))),
            }
        }
    }
    s.push_str("</p>\r\n");
    s
}

fn rfind_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > hay.len() {
        return None;
    }
    (0..=hay.len() - needle.len())
        .rev()
        .find(|&i| hay[i..i + needle.len()].eq_ignore_ascii_case(needle))
}

/// Quoted-printable decoding (RFC 2045 §6.7); malformed escapes are kept as they are.
fn qp_decode(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if b != b'=' {
            out.push(b);
            i += 1;
            continue;
        }
        let rest = &body[i + 1..];
        if rest.starts_with(b"\r\n") {
            i += 3;
        } else if rest.starts_with(b"\n") {
            i += 2;
        } else if let (Some(h), Some(l)) = (
            rest.first().and_then(|c| (*c as char).to_digit(16)),
            rest.get(1).and_then(|c| (*c as char).to_digit(16)),
        ) {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    out
}

/// Quoted-printable encoding with CRLF line ends and soft breaks before 76 characters.
fn qp_encode(out: &mut Vec<u8>, text: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut lines = text.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut width = 0;
        for (i, &b) in line.iter().enumerate() {
            let last = i + 1 == line.len();
            let literal =
                (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            let len = if literal { 1 } else { 3 };
            if width + len > 75 {
                out.extend_from_slice(b"=\r\n");
                width = 0;
            }
            if literal {
                out.push(b);
            } else {
                out.extend_from_slice(&[b'=', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            }
            width += len;
        }
        if lines.peek().is_some() {
            out.extend_from_slice(b"\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTE: [&str; 2] = [
        "Die Nachricht wurde entschlüsselt.",
        "Die Signatur wurde erfolgreich geprüft.",
    ];

    fn s(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    #[test]
    fn a_2179_01_plain_utf8_text_gets_the_note_at_its_end() {
        let e = b"Content-Type: text/plain; charset=utf-8\r\n\r\nHallo\r\n";
        let out = s(&append_to_text(e, &NOTE).unwrap());
        assert!(
            out.ends_with("Hallo\r\n\r\n---------------------------------------------\r\nDie Nachricht wurde entschlüsselt.\r\nDie Signatur wurde erfolgreich geprüft.\r\n"),
            "{out}"
        );
    }

    #[test]
    fn a_2179_01_ascii_text_is_relabelled_utf8_and_8bit() {
        let e = b"Content-Type: text/plain; format=flowed\r\nContent-Transfer-Encoding: 7bit\r\n\r\nHallo";
        let out = s(&append_to_text(e, &NOTE).unwrap());
        assert!(
            out.starts_with("Content-Type: text/plain; format=flowed; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nHallo\r\n"),
            "{out}"
        );
    }

    #[test]
    fn a_2050_05_latin1_quoted_printable_text_keeps_its_encoding() {
        let e = b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe\r\n";
        let out = append_to_text(e, &NOTE).unwrap();
        let text = s(&out);
        assert!(text.contains("Gr=FC=DFe\r\n"), "{text}");
        assert!(
            text.contains("Die Nachricht wurde entschl=FCsselt."),
            "{text}"
        );
        assert!(text.contains("erfolgreich gepr=FCft."), "{text}");
    }

    #[test]
    fn a_2050_05_html_gets_the_note_before_the_body_end_as_character_references() {
        let e = b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nPGh0bWw+PGJvZHk+SGFsbG88L2JvZHk+PC9odG1sPg==\r\n";
        let out = append_to_text(e, &NOTE).unwrap();
        let head = headers::parse(&out).unwrap();
        let html = s(&decode_base64(&out[head.body..]).unwrap());
        assert!(
            html.starts_with(
                "<html><body>Hallo\r\n<hr>\r\n<p>Die Nachricht wurde entschl&#252;sselt.<br>"
            ),
            "{html}"
        );
        assert!(html.ends_with("</p>\r\n</body></html>"), "{html}");
    }

    #[test]
    fn a_2050_05_alternatives_both_get_the_note_and_attachments_stay_untouched() {
        let e = b"Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n--m\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nText\r\n--a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Text</p>\r\n--a--\r\n--m\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Disposition: attachment; filename=x.txt\r\n\r\nAnhang\r\n--m--\r\n";
        let out = s(&append_to_text(e, &NOTE).unwrap());
        assert_eq!(
            out.matches("Die Nachricht wurde entschl").count(),
            2,
            "{out}"
        );
        assert!(out.contains("<p>Text</p>\r\n<hr>"), "{out}");
        assert!(
            out.contains("filename=x.txt\r\n\r\nAnhang\r\n--m--\r\n"),
            "{out}"
        );
    }

    #[test]
    fn no_text_part_or_an_unknown_charset_yields_none() {
        let pdf = b"Content-Type: application/pdf\r\n\r\n%PDF";
        assert!(append_to_text(pdf, &NOTE).is_none());
        let sjis = b"Content-Type: text/plain; charset=shift_jis\r\n\r\nx";
        assert!(append_to_text(sjis, &NOTE).is_none());
        let broken = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n";
        assert!(append_to_text(broken, &NOTE).is_none());
    }

    #[test]
    fn quoted_printable_round_trips_long_lines_and_trailing_space() {
        let text = format!("{} \r\nü=\r\n", "a".repeat(200));
        let mut enc = Vec::new();
        qp_encode(&mut enc, text.as_bytes());
        assert!(enc.split(|&b| b == b'\n').all(|l| l.len() <= 77));
        assert_eq!(qp_decode(&enc), text.as_bytes());
    }
}
