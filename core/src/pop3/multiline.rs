//! POP3 multi-line blocks (RFC 1939 §3): lines ending in CRLF, a leading `.` doubled
//! ("dot-stuffed"), the block ended by a line holding only `.`.
//!
//! Replies arrive in arbitrary TCP chunks, so the terminator `\r\n.\r\n` may be split anywhere,
//! even between the `.` and its CR. [`MultilineDecoder`] is therefore a byte-stream state machine
//! that keeps only a few bits of state between chunks and never buffers a line: a 25 MB message
//! streams through it without copies beyond the caller's output buffer.

/// Where in a line the decoder stands between two chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    /// At the beginning of a line (start of the block or just after LF).
    LineStart,
    /// A `.` began the line and was held back: it is either stuffing or the terminator.
    Dot,
    /// `.` CR began the line: LF now ends the block, anything else makes it a content line.
    DotCr,
    /// Inside a line.
    Middle,
}

/// Result of feeding one chunk to a [`MultilineDecoder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fed {
    /// How many bytes of the chunk belong to the block (terminator included). When the block
    /// ended, the bytes after `consumed` belong to the next reply.
    pub consumed: usize,
    /// Whether the terminating `.` CRLF line was seen.
    pub done: bool,
}

/// Streaming decoder of one dot-stuffed block, started just after the `+OK` status line.
///
/// The content handed to `emit` is unstuffed (the leading `.` of a stuffed line removed) and
/// excludes the terminator line; line ends pass as they came.
#[derive(Clone, Debug)]
pub struct MultilineDecoder {
    at: At,
}

impl Default for MultilineDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl MultilineDecoder {
    pub fn new() -> Self {
        Self { at: At::LineStart }
    }

    /// Consumes `input` up to the end of the block and passes the unstuffed content to `emit`
    /// (possibly in several slices).
    pub fn feed(&mut self, input: &[u8], mut emit: impl FnMut(&[u8])) -> Fed {
        let mut i = 0;
        while i < input.len() {
            match self.at {
                At::LineStart => {
                    if input[i] == b'.' {
                        self.at = At::Dot;
                        i += 1;
                    } else {
                        self.at = At::Middle;
                    }
                }
                At::Dot => {
                    if input[i] == b'\r' {
                        self.at = At::DotCr;
                        i += 1;
                    } else {
                        // A stuffed line: the held-back dot is dropped, the rest is content.
                        self.at = At::Middle;
                    }
                }
                At::DotCr => {
                    if input[i] == b'\n' {
                        self.at = At::LineStart;
                        return Fed {
                            consumed: i + 1,
                            done: true,
                        };
                    }
                    // `.` CR x: the dot was stuffing, the CR is content.
                    emit(b"\r");
                    self.at = At::Middle;
                }
                At::Middle => {
                    let rest = &input[i..];
                    match rest.iter().position(|b| *b == b'\n') {
                        Some(lf) => {
                            emit(&rest[..=lf]);
                            i += lf + 1;
                            self.at = At::LineStart;
                        }
                        None => {
                            emit(rest);
                            i = input.len();
                        }
                    }
                }
            }
        }
        Fed {
            consumed: input.len(),
            done: false,
        }
    }
}

/// The CRLF-normalised form of a message: every bare LF becomes CRLF and a missing final line
/// end is added. This is the text a client reassembles from [`dot_stuff`]'s output, so its
/// length is the octet count announced in `+OK <n> octets`.
pub fn normalize_line_ends(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 2);
    for_each_normalized_line(message, |line| out.extend_from_slice(line));
    out
}

/// Calls `f` with the pieces of every line of `message`, normalised to end in CRLF.
fn for_each_normalized_line(message: &[u8], mut f: impl FnMut(&[u8])) {
    for line in message.split_inclusive(|b| *b == b'\n') {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        f(body);
        f(b"\r\n");
    }
}

/// Dot-stuffs a message for a `RETR` answer and appends the terminator.
///
/// Returns the bytes to send after the status line and the octet count of the message as the
/// client will see it once unstuffed (line ends normalised to CRLF, see
/// [`normalize_line_ends`]), as RFC 1939 §5 shows it in the RETR `+OK` line.
pub fn dot_stuff(message: &[u8]) -> (Vec<u8>, usize) {
    let mut out = Vec::with_capacity(message.len() + message.len() / 64 + 8);
    let mut stuffed = 0;
    let mut line_start = true;
    for_each_normalized_line(message, |piece| {
        if line_start && piece.first() == Some(&b'.') {
            out.push(b'.');
            stuffed += 1;
        }
        out.extend_from_slice(piece);
        line_start = piece == b"\r\n";
    });
    let octets = out.len() - stuffed;
    out.extend_from_slice(b".\r\n");
    (out, octets)
}

/// [`dot_stuff`] in the message's own buffer: the same bytes, but no second full-size copy.
/// Returns the octet count for `+OK <n> octets`.
///
/// WHY: a mail fetched from the KAS can be hundreds of MB (issue 17); stuffing it into a new
/// buffer held it twice. Here the buffer is widened by exactly the bytes stuffing and line-end
/// normalisation add (usually just the terminator, which the opened mail's spare capacity
/// takes) and the lines are moved back to front, so nothing is overwritten before it is read.
/// When the spare capacity is too small the buffer grows as in
/// [`crate::smime::in_place::grow`] (moved by `realloc` when large, else copied and wiped).
pub fn dot_stuff_in_place(message: &mut Vec<u8>) -> usize {
    let old_len = message.len();
    let mut added = 0usize;
    let mut stuffed = 0usize;
    for line in message.split_inclusive(|b| *b == b'\n') {
        let body_len = line_body(line);
        if line.first() == Some(&b'.') && body_len > 0 {
            stuffed += 1;
        }
        added += body_len + 2 - line.len();
    }
    let added = added + stuffed;
    let octets = old_len + added - stuffed;
    let new_len = old_len + added;
    crate::smime::in_place::grow(message, new_len + 3);
    if added > 0 {
        message.resize(new_len, 0);
        let mut read_end = old_len;
        let mut write_end = new_len;
        while read_end > 0 {
            let search_end = if message[read_end - 1] == b'\n' {
                read_end - 1
            } else {
                read_end
            };
            let start = memchr::memrchr(b'\n', &message[..search_end]).map_or(0, |i| i + 1);
            let body_len = line_body(&message[start..read_end]);
            write_end -= 2;
            message[write_end..write_end + 2].copy_from_slice(b"\r\n");
            write_end -= body_len;
            message.copy_within(start..start + body_len, write_end);
            if body_len > 0 && message[start] == b'.' {
                write_end -= 1;
                message[write_end] = b'.';
            }
            read_end = start;
        }
        debug_assert_eq!(write_end, 0);
    }
    message.extend_from_slice(b".\r\n");
    octets
}

/// The length of a line without its line end (`\n`, and one `\r` before it or at the end).
fn line_body(line: &[u8]) -> usize {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    body.strip_suffix(b"\r").unwrap_or(body).len()
}

#[cfg(test)]
mod tests {

    #[test]
    fn rfc1939_in_place_stuffing_equals_the_copying_one() {
        let cases: [&[u8]; 12] = [
            b"",
            b"a",
            b".",
            b"\r",
            b"\n",
            b".\r\n..x\r\n",
            b"Subject: x\r\n\r\nbody\r\n",
            b"lf only\nnext\n.dot\nlast",
            b"mixed\r\n.a\nb\rc\r\n\r\n.\n\r",
            b".\n.\n.\n",
            b"no end\r",
            b"\r\r\n\n\r\n.",
        ];
        for case in cases {
            let (expected, octets) = dot_stuff(case);
            for spare in [0usize, 3, 1000] {
                let mut v = Vec::with_capacity(case.len() + spare);
                v.extend_from_slice(case);
                let n = dot_stuff_in_place(&mut v);
                assert_eq!(v, expected, "{case:?} spare {spare}");
                assert_eq!(n, octets, "{case:?}");
            }
        }
    }

    #[test]
    fn in_place_stuffing_of_a_clean_mail_does_not_reallocate() {
        let mut v = Vec::with_capacity(64 * 1024);
        for _ in 0..1000 {
            v.extend_from_slice(b"line of text\r\n");
        }
        let before = v.as_ptr();
        let len = v.len();
        assert_eq!(dot_stuff_in_place(&mut v), len);
        assert_eq!(v.as_ptr(), before);
        assert!(v.ends_with(b"text\r\n.\r\n"));
    }
    use super::*;

    fn decode_all(chunks: &[&[u8]]) -> (Vec<u8>, Option<usize>) {
        let mut d = MultilineDecoder::new();
        let mut out = Vec::new();
        let mut offset = 0;
        for c in chunks {
            let fed = d.feed(c, |s| out.extend_from_slice(s));
            if fed.done {
                return (out, Some(offset + fed.consumed));
            }
            offset += c.len();
        }
        (out, None)
    }

    #[test]
    fn rfc1939_unstuffs_and_stops_at_terminator() {
        let wire = b"Subject: x\r\n..dot\r\n.\r\nnext";
        let (out, end) = decode_all(&[wire]);
        assert_eq!(out, b"Subject: x\r\n.dot\r\n");
        assert_eq!(end, Some(wire.len() - 4));
    }

    #[test]
    fn rfc1939_empty_block_is_only_the_terminator() {
        let (out, end) = decode_all(&[b".\r\n+OK"]);
        assert_eq!(out, b"");
        assert_eq!(end, Some(3));
    }

    #[test]
    fn rfc1939_terminator_split_at_every_position() {
        let wire: &[u8] = b"a\r\n..b\r\n.c\r\n\r\n.\r\nTAIL";
        let whole = decode_all(&[wire]);
        assert_eq!(whole.0, b"a\r\n.b\r\nc\r\n\r\n");
        for i in 0..=wire.len() {
            for j in i..=wire.len() {
                let got = decode_all(&[&wire[..i], &wire[i..j], &wire[j..]]);
                assert_eq!(got, whole, "split at {i},{j}");
            }
        }
    }

    #[test]
    fn rfc1939_dot_cr_without_lf_is_content() {
        let (out, end) = decode_all(&[b".\rx\r\n.\r\n"]);
        assert_eq!(out, b"\rx\r\n");
        assert_eq!(end, Some(8));
    }

    #[test]
    fn rfc1939_dot_inside_a_line_is_not_a_terminator() {
        let (out, end) = decode_all(&[b"x\r.\r\n", b"y.\r\n"]);
        assert_eq!(out, b"x\r.\r\ny.\r\n");
        assert_eq!(end, None);
    }

    #[test]
    fn rfc1939_stuffing_adds_dots_and_counts_unstuffed_octets() {
        let (wire, octets) = dot_stuff(b"a\r\n.b\r\n..c\r\n.");
        assert_eq!(wire, b"a\r\n..b\r\n...c\r\n..\r\n.\r\n");
        assert_eq!(octets, b"a\r\n.b\r\n..c\r\n.\r\n".len());
    }

    #[test]
    fn rfc1939_stuffing_normalizes_bare_lf() {
        let (wire, octets) = dot_stuff(b"a\nb\r\n");
        assert_eq!(wire, b"a\r\nb\r\n.\r\n");
        assert_eq!(octets, 6);
        assert_eq!(dot_stuff(b""), (b".\r\n".to_vec(), 0));
        assert_eq!(dot_stuff(b"x\r"), (b"x\r\n.\r\n".to_vec(), 3));
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        fn content() -> impl Strategy<Value = Vec<u8>> {
            proptest::collection::vec(
                prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), Just(b'a')],
                0..64,
            )
        }

        proptest! {
            #[test]
            fn rfc1939_in_place_stuffing_equals_copying_for_any_content(msg in content(), spare in 0usize..8) {
                let (expected, octets) = dot_stuff(&msg);
                let mut v = Vec::with_capacity(msg.len() + spare);
                v.extend_from_slice(&msg);
                prop_assert_eq!(dot_stuff_in_place(&mut v), octets);
                prop_assert_eq!(v, expected);
            }

            #[test]
            fn rfc1939_stuff_then_decode_round_trips(msg in content(), cuts in proptest::collection::vec(0usize..80, 0..6)) {
                let (wire, octets) = dot_stuff(&msg);
                let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(wire.len())).collect();
                cuts.sort_unstable();
                let mut chunks = Vec::new();
                let mut last = 0;
                for c in cuts {
                    chunks.push(&wire[last..c]);
                    last = c;
                }
                chunks.push(&wire[last..]);
                let (out, end) = decode_all(&chunks);
                prop_assert_eq!(end, Some(wire.len()));
                prop_assert_eq!(out.len(), octets);
                prop_assert_eq!(out, normalize_line_ends(&msg));
            }
        }
    }
}
