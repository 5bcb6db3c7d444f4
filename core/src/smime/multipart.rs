//! Writing multipart/mixed mails the Clientmodul generates (error mails, opened messages).
//!
//! Hand-written so parts are copied once and byte-exact. The boundary is derived from a hash of
//! the enclosed bytes: deterministic (sans-IO, no randomness) and, being a digest of the content,
//! practically impossible to collide with a line inside it.

use sha2::{Digest, Sha256};

/// One body part: its header lines (CRLF-terminated) and body bytes.
pub struct Part<'a> {
    /// Header lines, each ending in CRLF.
    pub headers: String,
    /// The body (already in its transfer encoding).
    pub body: &'a [u8],
}

/// A boundary derived from `seed` (typically the largest enclosed part).
pub fn boundary(seed: &[u8]) -> String {
    let digest = Sha256::digest(seed);
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("KOMLE-{hex}")
}

/// Appends `Content-Type: multipart/mixed` header, blank line and the parts to `out`.
pub fn push_multipart(out: &mut Vec<u8>, boundary: &str, parts: &[Part<'_>]) {
    out.extend_from_slice(
        format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n").as_bytes(),
    );
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
