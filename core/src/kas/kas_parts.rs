//! Finds MIME parts with `Content-Disposition: x-kas` in a mail fed as a byte stream.
//!
//! Used twice: on send, a client mail that already carries such a part is refused with 451
//! (A_22341); on receive, the decrypted KOM-LE message must carry exactly one KIM-Attachment
//! structure, as its only body (A_19359-07, A_19369-02).
//!
//! Streaming, bounded state: the scanner follows the header blocks of the top level and of
//! every multipart body part (boundaries learnt from `Content-Type` on the way), so a 500 MiB
//! client mail is checked while it passes through DATA. Lines and header fields are looked at
//! up to [`MAX_FIELD`] bytes; longer ones are cut (no header we look for is that long).
//!
//! A part counts when its disposition is `x-kas`, whatever its Content-Type: A_22341 names
//! `text/plain; charset=utf-8` *and* `x-kas`, but a client part with `x-kas` and another type
//! would be read as KAS content by some receivers, so it is refused too.

use crate::smime::headers::{media_type, parameter};

/// Longest header field (unfolded) or body line inspected.
pub const MAX_FIELD: usize = 8 * 1024;
/// Most nested multipart boundaries followed.
const MAX_BOUNDARIES: usize = 32;

/// What the scan found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KasParts {
    /// Parts (including the top level) with `Content-Disposition: x-kas`.
    pub count: u32,
    /// Whether the top-level header block itself has `Content-Disposition: x-kas`.
    pub top_level: bool,
}

/// The streaming scanner.
#[derive(Debug)]
pub struct KasPartScanner {
    boundaries: Vec<String>,
    in_header: bool,
    at_top: bool,
    /// Current (unfolded) header field.
    field: Vec<u8>,
    /// Current line (bytes since the last LF).
    line: Vec<u8>,
    line_cut: bool,
    /// The current body line cannot be a boundary line: dropped up to its LF.
    skipping_line: bool,
    part_is_kas: bool,
    part_boundary: Option<String>,
    found: KasParts,
}

impl Default for KasPartScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl KasPartScanner {
    pub fn new() -> Self {
        Self {
            boundaries: Vec::new(),
            in_header: true,
            at_top: true,
            field: Vec::new(),
            line: Vec::new(),
            line_cut: false,
            skipping_line: false,
            part_is_kas: false,
            part_boundary: None,
            found: KasParts::default(),
        }
    }

    /// Feeds the next bytes of the mail (any chunking).
    ///
    /// WHY the two shortcuts: a body line matters only if it starts with `--` and a boundary
    /// is open; a 100 MB mail is nearly all body, and copying every line took 25 ms of the
    /// send path (BENCHMARKS.md, "KIM 1.5 ... goal met"). So body lines that cannot be
    /// boundary lines are skipped to their LF without being copied, and a body with no open
    /// boundary (a single-part mail, or the epilogue of the outermost multipart) is not read
    /// at all: nothing in it can change the result. A property test holds this equal to
    /// scanning every line.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        loop {
            if !self.in_header && self.boundaries.is_empty() {
                return;
            }
            if self.skipping_line {
                let Some(i) = memchr::memchr(b'\n', bytes) else {
                    return;
                };
                bytes = &bytes[i + 1..];
                self.skipping_line = false;
                continue;
            }
            if !self.in_header
                && self.line.is_empty()
                && !self.line_cut
                && bytes.len() >= 2
                && !bytes.starts_with(b"--")
            {
                self.skipping_line = true;
                continue;
            }
            let Some(i) = memchr::memchr(b'\n', bytes) else {
                self.push_line_bytes(bytes);
                return;
            };
            self.push_line_bytes(&bytes[..i]);
            self.end_line();
            bytes = &bytes[i + 1..];
        }
    }

    /// The result once the whole mail was fed.
    pub fn finish(mut self) -> KasParts {
        if !self.line.is_empty() || self.line_cut {
            self.end_line();
        }
        if self.in_header {
            self.end_header_block();
        }
        self.found
    }

    fn push_line_bytes(&mut self, b: &[u8]) {
        let room = MAX_FIELD.saturating_sub(self.line.len());
        if b.len() > room {
            self.line_cut = true;
        }
        self.line.extend_from_slice(&b[..b.len().min(room)]);
    }

    fn end_line(&mut self) {
        let mut line = std::mem::take(&mut self.line);
        self.line_cut = false;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if self.in_header {
            if line.is_empty() {
                self.end_header_block();
            } else if line[0] == b' ' || line[0] == b'\t' {
                let room = MAX_FIELD.saturating_sub(self.field.len());
                self.field.extend_from_slice(&line[..line.len().min(room)]);
            } else {
                self.end_field();
                self.field = line;
                return;
            }
        } else if line.starts_with(b"--") {
            let text = String::from_utf8_lossy(&line[2..]);
            let text = text.trim_end();
            if self.boundaries.iter().any(|b| b == text) {
                self.in_header = true;
                self.at_top = false;
            } else if let Some(pos) = self
                .boundaries
                .iter()
                .position(|b| text.strip_suffix("--") == Some(b.as_str()))
            {
                self.boundaries.truncate(pos);
            }
        }
        line.clear();
        self.line = line;
    }

    fn end_field(&mut self) {
        let field = std::mem::take(&mut self.field);
        let text = String::from_utf8_lossy(&field);
        let Some((name, value)) = text.split_once(':') else {
            return;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("Content-Disposition") {
            let token = value.split(';').next().unwrap_or("").trim();
            if token.eq_ignore_ascii_case("x-kas") {
                self.part_is_kas = true;
            }
        } else if name.eq_ignore_ascii_case("Content-Type")
            && media_type(value).starts_with("multipart/")
        {
            self.part_boundary = parameter(value, "boundary").filter(|b| !b.is_empty());
        }
    }

    fn end_header_block(&mut self) {
        self.end_field();
        if self.part_is_kas {
            self.found.count = self.found.count.saturating_add(1);
            self.found.top_level |= self.at_top;
        }
        if let Some(b) = self.part_boundary.take()
            && self.boundaries.len() < MAX_BOUNDARIES
        {
            self.boundaries.push(b);
        }
        self.part_is_kas = false;
        self.in_header = false;
    }
}

/// Scans a whole mail held in memory.
pub fn scan(mail: &[u8]) -> KasParts {
    let mut s = KasPartScanner::new();
    s.feed(mail);
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NESTED: &[u8] = b"From: a@b\r\nContent-Type: multipart/mixed;\r\n boundary=\"outer\"\r\n\r\npreamble\r\n--outer\r\nContent-Type: text/plain\r\n\r\nContent-Disposition: x-kas\r\n--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n--inner\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Disposition: X-KAS\r\n\r\n{}\r\n--inner--\r\n--outer--\r\n";

    #[test]
    fn a_22341_nested_x_kas_part_is_found_in_any_chunking_body_lines_are_not_headers() {
        let expected = KasParts {
            count: 1,
            top_level: false,
        };
        assert_eq!(scan(NESTED), expected);
        for chunk in [1usize, 2, 7, 64] {
            let mut s = KasPartScanner::new();
            for c in NESTED.chunks(chunk) {
                s.feed(c);
            }
            assert_eq!(s.finish(), expected, "chunk {chunk}");
        }
    }

    #[test]
    fn a_19369_top_level_kas_body_and_two_structures_are_told_apart() {
        let top = b"Subject: x\nContent-Type: text/plain; charset=utf-8\nContent-Disposition: x-kas\n\n{\"link\":1}\n";
        assert_eq!(
            scan(top),
            KasParts {
                count: 1,
                top_level: true
            }
        );
        let two = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Disposition: x-kas\r\n\r\n{}\r\n--b\r\nContent-Disposition: x-kas; foo=1\r\n\r\n{}\r\n--b--\r\n";
        assert_eq!(scan(two).count, 2);
        let plain =
            b"Subject: x\r\nContent-Disposition: attachment; filename=x-kas\r\n\r\nbody\r\n";
        assert_eq!(scan(plain), KasParts::default());
        assert_eq!(scan(b""), KasParts::default());
    }

    /// Pieces that make the scanner change state, in any order.
    fn piece() -> impl proptest::strategy::Strategy<Value = &'static [u8]> {
        proptest::sample::select(vec![
            &b"Content-Type: multipart/mixed; boundary=b\r\n"[..],
            b"Content-Type: multipart/alternative;\r\n boundary=\"c\"\r\n",
            b"Content-Disposition: x-kas\r\n",
            b"Content-Disposition: X-KAS; a=1\n",
            b"Subject: --b\r\n",
            b"\r\n",
            b"\n",
            b"--b\r\n",
            b"--b--\r\n",
            b"--c\n",
            b"--c--\r\n",
            b"-",
            b"--",
            b"body line\r\n",
            b"- not a boundary\r\n",
            b"x",
        ])
    }

    proptest::proptest! {
        /// Any chunking, including one byte at a time, finds what scanning every line finds.
        #[test]
        fn a_22341_shortcuts_find_what_scanning_every_line_finds(
            pieces in proptest::collection::vec(piece(), 0..40),
            chunk in 1usize..64,
        ) {
            let mail: Vec<u8> = pieces.concat();
            let want = scan_every_line(&mail);
            let mut fast = KasPartScanner::new();
            for c in mail.chunks(chunk) {
                fast.feed(c);
            }
            proptest::prop_assert_eq!(fast.finish(), want);
            let mut bytewise = KasPartScanner::new();
            for b in &mail {
                bytewise.feed(std::slice::from_ref(b));
            }
            proptest::prop_assert_eq!(bytewise.finish(), want);
        }
    }

    /// The scanner without either shortcut: every line through `end_line`.
    fn scan_every_line(mail: &[u8]) -> KasParts {
        let mut s = KasPartScanner::new();
        let mut rest = mail;
        while let Some(i) = memchr::memchr(b'\n', rest) {
            s.push_line_bytes(&rest[..i]);
            s.end_line();
            rest = &rest[i + 1..];
        }
        s.push_line_bytes(rest);
        s.finish()
    }

    #[test]
    fn over_long_lines_and_unknown_boundaries_stay_bounded() {
        let mut mail = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n".to_vec();
        mail.extend(std::iter::repeat_n(b'A', 3 * MAX_FIELD));
        mail.extend_from_slice(b"\r\n--zz\r\nContent-Disposition: x-kas\r\n\r\n--b\r\nX-Long: ");
        mail.extend(std::iter::repeat_n(b'B', 3 * MAX_FIELD));
        mail.extend_from_slice(b"\r\nContent-Disposition: x-kas\r\n\r\n--b--\r\n");
        let mut s = KasPartScanner::new();
        s.feed(&mail);
        assert!(s.line.capacity() <= 4 * MAX_FIELD);
        assert_eq!(s.finish().count, 1);
    }
}
