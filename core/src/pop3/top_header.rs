//! The header `TOP n 0` returns for a KOM-LE message, adjusted for Thunderbird
//! (gemSpec_CM_KOMLE V1.16 §3.4.3, "Hinweis für Implementierung" after KOM-LE-A_2041).
//!
//! Thunderbird loads header and body separately: the header with `TOP n 0`, the body later with
//! `RETR`. For a KOM-LE message the two do not belong together — the header announces an
//! encrypted `application/pkcs7-mime` entity, `RETR` delivers the opened mail — and Thunderbird
//! fails to load the body. gematik's fix: remove `MIME-Version` from the `TOP` header, then the
//! later download works. Only KOM-LE messages (outer `X-KOM-LE-Version`, A_21390) are changed;
//! every other `TOP` answer passes unchanged (KOM-LE-A_2040).

/// The `TOP` reply block (status line, header, dot-stuffed, terminator) with the header's
/// `MIME-Version` fields (and their continuation lines) removed, when the header carries
/// `X-KOM-LE-Version`; `None` when nothing changes.
pub fn without_mime_version(block: &[u8]) -> Option<Vec<u8>> {
    let lines: Vec<&[u8]> = block.split_inclusive(|&b| b == b'\n').collect();
    // Line 0 is the status line; the header ends at the first empty line or the terminator.
    let header_end = lines
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, l)| is_blank(l) || trimmed(l) == b".")
        .map_or(lines.len(), |(i, _)| i);
    let header = lines.get(1..header_end)?;
    if !header.iter().any(|l| field_is(l, b"X-KOM-LE-Version")) {
        return None;
    }
    let mut out = Vec::with_capacity(block.len());
    out.extend_from_slice(lines.first()?);
    let mut dropping = false;
    for line in header {
        let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !continuation {
            dropping = field_is(line, b"MIME-Version");
        }
        if !dropping {
            out.extend_from_slice(line);
        }
    }
    for line in &lines[header_end..] {
        out.extend_from_slice(line);
    }
    (out.len() != block.len()).then_some(out)
}

fn trimmed(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn is_blank(line: &[u8]) -> bool {
    trimmed(line).is_empty()
}

/// Whether a header line starts the field `name` (`Name:` or `Name :`, any case).
fn field_is(line: &[u8], name: &[u8]) -> bool {
    line.len() > name.len()
        && line[..name.len()].eq_ignore_ascii_case(name)
        && line[name.len()..]
            .iter()
            .find(|b| !matches!(b, b' ' | b'\t'))
            .is_some_and(|b| *b == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_2041_hint_mime_version_is_removed_from_a_kom_le_top_header() {
        let block = b"+OK\r\nSubject: KOM-LE-Nachricht\r\nMIME-Version: 1.0\r\nX-KOM-LE-Version: 1.0\r\nContent-Type: application/pkcs7-mime;\r\n\tsmime-type=authenticated-enveloped-data\r\n\r\n.\r\n";
        let out = without_mime_version(block).expect("changed");
        assert_eq!(
            out,
            b"+OK\r\nSubject: KOM-LE-Nachricht\r\nX-KOM-LE-Version: 1.0\r\nContent-Type: application/pkcs7-mime;\r\n\tsmime-type=authenticated-enveloped-data\r\n\r\n.\r\n"
        );
    }

    #[test]
    fn a_2041_hint_folded_and_lower_case_mime_version_goes_whole() {
        let block = b"+OK 120 octets\r\nmime-version :\r\n 1.0 (generated)\r\nx-kom-le-version: 1.5\r\n.\r\n";
        assert_eq!(
            without_mime_version(block).unwrap(),
            b"+OK 120 octets\r\nx-kom-le-version: 1.5\r\n.\r\n"
        );
    }

    #[test]
    fn a_2040_other_top_answers_pass_unchanged() {
        // Not a KOM-LE message.
        let plain = b"+OK\r\nMIME-Version: 1.0\r\nSubject: x\r\n\r\n.\r\n";
        assert_eq!(without_mime_version(plain), None);
        // KOM-LE without MIME-Version: nothing to do.
        let none = b"+OK\r\nX-KOM-LE-Version: 1.0\r\n\r\n.\r\n";
        assert_eq!(without_mime_version(none), None);
        // A body line that looks like the header field is not touched (body after the blank).
        let body = b"+OK\r\nSubject: y\r\n\r\nX-KOM-LE-Version: 1.0\r\nMIME-Version: 1.0\r\n.\r\n";
        assert_eq!(without_mime_version(body), None);
        // A field whose name merely starts with MIME-Version is kept.
        let similar = b"+OK\r\nX-KOM-LE-Version: 1.0\r\nMIME-Version-X: 2\r\n\r\n.\r\n";
        assert_eq!(without_mime_version(similar), None);
    }
}
