//! POP3 status lines: recognising the server's and building the Clientmodul's own.

/// The status indicator at the start of a reply line (RFC 1939 §3, RFC 5034 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `+OK`
    Ok,
    /// `-ERR`; always a single line, even for commands whose success is multi-line.
    Err,
    /// `+ ` — a SASL continuation (RFC 5034).
    Continue,
    /// Anything else: a protocol violation by the peer.
    Unknown,
}

/// Classifies a reply line (with or without its CRLF). RFC 1939 writes the indicators in upper
/// case; RFC 2449 §8 lets clients accept any case, and so do we.
pub fn status(line: &[u8]) -> Status {
    let line = trim_eol(line);
    if indicator(line, b"+OK") {
        Status::Ok
    } else if indicator(line, b"-ERR") {
        Status::Err
    } else if line == b"+" || line.starts_with(b"+ ") {
        Status::Continue
    } else {
        Status::Unknown
    }
}

fn indicator(line: &[u8], word: &[u8]) -> bool {
    line.len() >= word.len()
        && line[..word.len()].eq_ignore_ascii_case(word)
        && matches!(line.get(word.len()), None | Some(b' '))
}

/// The line without its trailing CRLF (or bare LF).
pub fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `+OK <text>` CRLF.
pub fn ok(text: &str) -> Vec<u8> {
    line("+OK", text)
}

/// `-ERR <text>` CRLF.
pub fn err(text: &str) -> Vec<u8> {
    line("-ERR", text)
}

/// A status line; CR and LF in `text` (e.g. from a transport error message) become spaces so
/// a text can never end the line early and smuggle a second reply.
fn line(indicator: &str, text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(indicator.len() + text.len() + 3);
    out.extend_from_slice(indicator.as_bytes());
    if !text.is_empty() {
        out.push(b' ');
        out.extend(
            text.bytes()
                .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1939_status_indicators() {
        assert_eq!(status(b"+OK\r\n"), Status::Ok);
        assert_eq!(status(b"+OK 2 320\r\n"), Status::Ok);
        assert_eq!(status(b"+ok maildrop\r\n"), Status::Ok);
        assert_eq!(status(b"-ERR no such message\r\n"), Status::Err);
        assert_eq!(status(b"-ERR"), Status::Err);
        assert_eq!(status(b"+ \r\n"), Status::Continue);
        assert_eq!(status(b"+\r\n"), Status::Continue);
        assert_eq!(status(b"+OKAY\r\n"), Status::Unknown);
        assert_eq!(status(b"hello\r\n"), Status::Unknown);
        assert_eq!(status(b""), Status::Unknown);
    }

    #[test]
    fn a_2037_error_text_cannot_break_the_line() {
        assert_eq!(err("a\r\n+OK b"), b"-ERR a  +OK b\r\n");
        assert_eq!(ok(""), b"+OK\r\n");
    }
}
