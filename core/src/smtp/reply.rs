//! SMTP replies: parsing the MTA's (possibly multi-line) replies and writing our own.

/// A complete reply from the MTA, with its raw lines (CRLF included) for verbatim relaying.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<Vec<u8>>,
}

impl Reply {
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }

    /// The raw bytes as received.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.lines.concat()
    }

    /// Text after the code and separator of each line, line end removed.
    pub fn texts(&self) -> impl Iterator<Item = &[u8]> {
        self.lines.iter().map(|l| {
            let l = l.strip_suffix(b"\n").unwrap_or(l);
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            l.get(4..).unwrap_or(&[])
        })
    }
}

/// The MTA sent something that is not an SMTP reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MalformedReply;

/// Collects reply lines until the last one (`ddd SP` or bare `ddd`).
#[derive(Debug, Default)]
pub struct ReplyCollector {
    code: Option<u16>,
    lines: Vec<Vec<u8>>,
}

/// Most lines a reply may have; an MTA sending more is treated as broken.
const MAX_REPLY_LINES: usize = 256;

impl ReplyCollector {
    /// Adds one line (with its line end); returns the reply when it is complete.
    pub fn push_line(&mut self, line: &[u8]) -> Result<Option<Reply>, MalformedReply> {
        let (code, last) = parse_line(line)?;
        if self.code.is_some_and(|c| c != code) || self.lines.len() >= MAX_REPLY_LINES {
            return Err(MalformedReply);
        }
        self.code = Some(code);
        self.lines.push(line.to_vec());
        if last {
            self.code = None;
            return Ok(Some(Reply {
                code,
                lines: core::mem::take(&mut self.lines),
            }));
        }
        Ok(None)
    }
}

fn parse_line(line: &[u8]) -> Result<(u16, bool), MalformedReply> {
    let content = line.strip_suffix(b"\n").unwrap_or(line);
    let content = content.strip_suffix(b"\r").unwrap_or(content);
    let digits = content.get(..3).ok_or(MalformedReply)?;
    if !digits.iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(&digits[0]) {
        return Err(MalformedReply);
    }
    let code = digits
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    match content.get(3) {
        None | Some(b' ') => Ok((code, true)),
        Some(b'-') => Ok((code, false)),
        Some(_) => Err(MalformedReply),
    }
}

/// Formats a single-line reply of our own.
pub fn line(code: u16, text: &str) -> Vec<u8> {
    format!("{code} {text}\r\n").into_bytes()
}

/// Formats a multi-line reply of our own.
pub fn multiline(code: u16, texts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        let sep = if i + 1 == texts.len() { ' ' } else { '-' };
        out.extend_from_slice(format!("{code}{sep}{t}\r\n").as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiline_reply_completes_on_last_line() {
        let mut c = ReplyCollector::default();
        assert_eq!(c.push_line(b"250-mta.example\r\n"), Ok(None));
        assert_eq!(c.push_line(b"250-AUTH PLAIN LOGIN\r\n"), Ok(None));
        let r = c.push_line(b"250 8BITMIME\r\n").unwrap().unwrap();
        assert_eq!(r.code, 250);
        assert_eq!(
            r.to_bytes(),
            b"250-mta.example\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n"
        );
        let texts: Vec<&[u8]> = r.texts().collect();
        assert_eq!(
            texts,
            vec![&b"mta.example"[..], b"AUTH PLAIN LOGIN", b"8BITMIME"]
        );
        assert_eq!(c.push_line(b"354\r\n").unwrap().unwrap().code, 354);
    }

    #[test]
    fn malformed_replies_are_refused() {
        let mut c = ReplyCollector::default();
        assert_eq!(c.push_line(b"hello\r\n"), Err(MalformedReply));
        assert_eq!(c.push_line(b"25\r\n"), Err(MalformedReply));
        assert_eq!(c.push_line(b"650 x\r\n"), Err(MalformedReply));
        assert_eq!(c.push_line(b"250x\r\n"), Err(MalformedReply));
        let mut c = ReplyCollector::default();
        c.push_line(b"250-a\r\n").unwrap();
        assert_eq!(c.push_line(b"251 b\r\n"), Err(MalformedReply));
    }

    #[test]
    fn own_replies() {
        assert_eq!(line(250, "OK"), b"250 OK\r\n");
        assert_eq!(multiline(250, &["a", "b"]), b"250-a\r\n250 b\r\n");
    }
}
