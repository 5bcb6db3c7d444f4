//! Splits a byte stream into lines with a length limit, for the SMTP and POP3 command and reply
//! streams. A line ends at LF; a CR before it is removed. Splits of the input across reads do
//! not change the lines produced.

/// One item taken from a [`LineBuffer`]. `Debug` shows a line's length only: command lines
/// carry passwords (AUTH, PASS).
#[derive(Clone, PartialEq, Eq)]
pub enum Line {
    /// A complete line without its line end.
    Complete(Vec<u8>),
    /// A line longer than the limit; its bytes up to the next LF are dropped.
    TooLong,
}

impl core::fmt::Debug for Line {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Complete(l) => write!(f, "Complete(<{} bytes>)", l.len()),
            Self::TooLong => f.write_str("TooLong"),
        }
    }
}

/// Cuts a byte stream into lines. `Debug` shows how much is buffered, never the bytes.
pub struct LineBuffer {
    buf: Vec<u8>,
    max_line: usize,
    discarding: bool,
}

impl core::fmt::Debug for LineBuffer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LineBuffer")
            .field("buffered", &self.buf.len())
            .field("max_line", &self.max_line)
            .field("discarding", &self.discarding)
            .finish()
    }
}

impl LineBuffer {
    pub fn new(max_line: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_line,
            discarding: false,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that do not form a complete line yet, plus complete lines not taken.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    pub fn next_line(&mut self) -> Option<Line> {
        loop {
            match self.buf.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                    if self.discarding {
                        self.discarding = false;
                        continue;
                    }
                    if line.len() > self.max_line {
                        return Some(Line::TooLong);
                    }
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    return Some(Line::Complete(line));
                }
                None if self.buf.len() > self.max_line => {
                    self.buf.clear();
                    if self.discarding {
                        return None;
                    }
                    self.discarding = true;
                    return Some(Line::TooLong);
                }
                None => return None,
            }
        }
    }

    /// Everything buffered, for a switch to a byte-oriented phase (SMTP DATA).
    pub fn take_rest(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.buf)
    }

    /// Puts bytes back in front, for a switch back from a byte-oriented phase.
    pub fn unread(&mut self, bytes: &[u8]) {
        let mut v = bytes.to_vec();
        v.extend_from_slice(&self.buf);
        self.buf = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_strips_line_ends() {
        let mut b = LineBuffer::new(100);
        b.push(b"EHLO x\r\nNOOP\nQU");
        assert_eq!(b.next_line(), Some(Line::Complete(b"EHLO x".to_vec())));
        assert_eq!(b.next_line(), Some(Line::Complete(b"NOOP".to_vec())));
        assert_eq!(b.next_line(), None);
        b.push(b"IT\r\n");
        assert_eq!(b.next_line(), Some(Line::Complete(b"QUIT".to_vec())));
    }

    #[test]
    fn overlong_lines_are_reported_once_and_dropped() {
        let mut b = LineBuffer::new(8);
        b.push(b"0123456789");
        assert_eq!(b.next_line(), Some(Line::TooLong));
        b.push(b"abcdefghijk");
        assert_eq!(b.next_line(), None);
        b.push(b"xyz\r\nNOOP\r\n");
        assert_eq!(b.next_line(), Some(Line::Complete(b"NOOP".to_vec())));
        let mut b = LineBuffer::new(8);
        b.push(b"0123456789\r\nNOOP\r\n");
        assert_eq!(b.next_line(), Some(Line::TooLong));
        assert_eq!(b.next_line(), Some(Line::Complete(b"NOOP".to_vec())));
    }
}
