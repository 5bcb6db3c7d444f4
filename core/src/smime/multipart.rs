//! Writing multipart/mixed mails the Clientmodul generates (error mails, opened messages).
//!
//! Hand-written so parts are copied once and byte-exact. The boundary is derived from a hash of
//! the length, head and tail of the enclosed bytes (deterministic: sans-IO, no randomness) and
//! then checked against every line start of the content; a sender who crafts a colliding line
//! only makes us pick the next candidate. Hashing 25 MB in full cost more than this check.

use sha2::{Digest, Sha256};

/// One body part: its header lines (CRLF-terminated) and body bytes.
pub struct Part<'a> {
    /// Header lines, each ending in CRLF.
    pub headers: String,
    /// The body (already in its transfer encoding).
    pub body: &'a [u8],
}

/// A boundary that starts no line of any of `contents`.
pub fn boundary(contents: &[&[u8]]) -> String {
    let mut seed = Sha256::new();
    for c in contents {
        seed.update((c.len() as u64).to_be_bytes());
        seed.update(&c[..c.len().min(1024)]);
        seed.update(&c[c.len().saturating_sub(1024)..]);
    }
    let mut counter = 0u64;
    loop {
        let mut h = seed.clone();
        h.update(counter.to_be_bytes());
        let hex: String = h
            .finalize()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        let candidate = format!("KOMLE-{hex}");
        if !contents
            .iter()
            .any(|c| starts_a_line(c, candidate.as_bytes()))
        {
            return candidate;
        }
        counter = counter.wrapping_add(1);
    }
}

/// True when some line of `content` starts with `--` + `boundary`.
fn starts_a_line(content: &[u8], boundary: &[u8]) -> bool {
    let hit = |line: &[u8]| line.starts_with(b"--") && line[2..].starts_with(boundary);
    if hit(content) {
        return true;
    }
    let mut rest = content;
    while let Some(i) = rest.iter().position(|&b| b == b'\n') {
        rest = &rest[i + 1..];
        if hit(rest) {
            return true;
        }
    }
    false
}

/// Appends `Content-Type: multipart/mixed` header, blank line and the parts to `out`.
pub fn push_multipart(out: &mut Vec<u8>, boundary: &str, parts: &[Part<'_>]) {
    out.extend_from_slice(
        format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n").as_bytes(),
    );
    push_parts(out, boundary, parts);
}

/// The body parts and the close delimiter of a multipart whose `Content-Type` line (and
/// possibly first parts) the caller has written already.
pub fn push_parts(out: &mut Vec<u8>, boundary: &str, parts: &[Part<'_>]) {
    for p in parts {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        out.extend_from_slice(p.headers.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(p.body);
        if !p.body.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
}

/// A text/plain UTF-8 part.
pub fn text_part(text: &str) -> Part<'_> {
    Part {
        headers: "Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n"
            .into(),
        body: text.as_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary_avoids_a_crafted_colliding_line() {
        // Head, tail and length feed the seed; the middle does not. Craft a middle that holds the
        // first candidate at a line start: the next candidate must be chosen.
        let head = vec![b'h'; 2000];
        let tail = vec![b't'; 2000];
        let placeholder = vec![b'x'; 44];
        let plain = [head.clone(), placeholder, tail.clone()].concat();
        let first = boundary(&[&plain]);
        let middle = format!("\r\n--{first}\r\n").into_bytes();
        assert_eq!(middle.len(), 44);
        let crafted = [head, middle, tail].concat();
        assert!(starts_a_line(&crafted, first.as_bytes()));
        let chosen = boundary(&[&crafted]);
        assert_ne!(chosen, first);
        assert!(!starts_a_line(&crafted, chosen.as_bytes()));
    }
}
