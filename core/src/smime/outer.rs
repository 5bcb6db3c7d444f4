//! The outer KOM-LE message handed to the MTA (KOM-LE-A_2019 step 4, KOM-LE-A_2193).

use super::error::SmimeError;
use super::headers;
use super::wrap::DEFAULT_DIENSTKENNUNG;
use base64::Engine;

/// Headers copied from the inner mail, in gematik's order (sample 05).
const COPIED_BEFORE: [&str; 7] = [
    "Date",
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Message-ID",
];

/// The fixed part of the outer header after the copied addressing fields, up to the
/// `X-KOM-LE-Version` value.
const FIXED_MIDDLE: &[u8] = b"Subject: KOM-LE-Nachricht\r\n\
MIME-Version: 1.0\r\n\
Content-Type: application/pkcs7-mime; \r\n\tsmime-type=authenticated-enveloped-data; name=smime.p7m\r\n\
Content-Transfer-Encoding: base64\r\n\
X-KOM-LE-Version: ";

/// What the sending module adds to the outer header beyond the KOM-LE 1.0 profile
/// (gemSpec_CM_KOMLE V1.16 §3.1: A_21388-01, A_21387-01, A_22417).
#[derive(Debug, Clone, Copy)]
pub struct OuterFields<'a> {
    /// The `X-KOM-LE-Version` value (`1.0` or `1.5`).
    pub kom_le_version: &'a str,
    /// Complete header lines (CRLF each) written after the copied `X-KIM-*` fields.
    pub extra_lines: &'a [u8],
    /// Inner `X-KIM-*` fields not copied because `extra_lines` sets them (a client must not
    /// set the module's own version headers).
    pub replaces: &'a [&'a str],
}

impl OuterFields<'_> {
    /// The KOM-LE 1.0 outer header, nothing added.
    pub const V1_0: OuterFields<'static> = OuterFields {
        kom_le_version: "1.0",
        extra_lines: b"",
        replaces: &[],
    };
}

const FIXED_END: &[u8] = b"Content-Disposition: attachment; filename=smime.p7m\r\n\r\n";

/// Characters per base64 line (RFC 2045 limit, gematik sample 05).
const LINE: usize = 76;

/// Builds the outer message: `Date`, `From`, `Sender`, `Reply-To`, `To`, `Cc`, `Message-ID` copied
/// from `inner_mail` (those present), `Subject: KOM-LE-Nachricht`, the S/MIME content headers,
/// `X-KOM-LE-Version: 1.0`, every `X-KIM-*` header of the inner mail (the default
/// `X-KIM-Dienstkennung` when it has none, as step 1 added it to the signed copy), then the base64 body of
/// `encrypted_cms` in 76-column CRLF lines without a final line end (as in sample 05).
///
/// Copied fields keep their folding; line ends become CRLF.
///
/// One full-size allocation of exactly the outer message's length plus
/// [`SMTP_TERMINATOR_ROOM`] spare bytes: the SMTP hand-over appends its `CRLF . CRLF` in place
/// (the body is base64, so no line of it starts with `.` and it needs no dot-stuffing) instead
/// of copying the message into a stuffed buffer.
pub fn build_outer(inner_mail: &[u8], encrypted_cms: &[u8]) -> Result<Vec<u8>, SmimeError> {
    build_outer_with(inner_mail, encrypted_cms, &OuterFields::V1_0)
}

/// [`build_outer`] with the version and the additional fields of `fields`.
pub fn build_outer_with(
    inner_mail: &[u8],
    encrypted_cms: &[u8],
    fields: &OuterFields<'_>,
) -> Result<Vec<u8>, SmimeError> {
    let header = outer_header(inner_mail, fields)?;
    let body_len = base64_lines_len(encrypted_cms.len());
    let mut out = Vec::with_capacity(header.len() + body_len + SMTP_TERMINATOR_ROOM);
    out.extend_from_slice(&header);
    push_base64_lines(&mut out, encrypted_cms);
    debug_assert_eq!(out.len(), header.len() + body_len);
    Ok(out)
}

/// Spare capacity [`build_outer`] leaves for the `CRLF . CRLF` that ends DATA (RFC 5321).
pub const SMTP_TERMINATOR_ROOM: usize = 5;

/// Length of [`push_base64_lines`]'s output for `len` input bytes.
fn base64_lines_len(len: usize) -> usize {
    let chars = len.div_ceil(3) * 4;
    chars + chars.div_ceil(LINE).saturating_sub(1) * 2
}

/// The outer header block (small: only the inner mail's addressing and `X-KIM-*` fields).
fn outer_header(inner_mail: &[u8], fields: &OuterFields<'_>) -> Result<Vec<u8>, SmimeError> {
    let head = headers::parse(inner_mail)?;
    if head.get("From").is_none() {
        return Err(SmimeError::MissingHeader("From"));
    }
    let mut out = Vec::with_capacity(head.end + 400 + fields.extra_lines.len());
    for name in COPIED_BEFORE {
        for f in head
            .fields
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case(name))
        {
            headers::push_crlf(&mut out, &inner_mail[f.range.clone()]);
            if !out.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(FIXED_MIDDLE);
    out.extend_from_slice(fields.kom_le_version.as_bytes());
    out.extend_from_slice(b"\r\n");
    for f in head.fields.iter().filter(|f| {
        f.name.len() > 6
            && f.name[..6].eq_ignore_ascii_case("X-KIM-")
            && !fields
                .replaces
                .iter()
                .any(|r| f.name.eq_ignore_ascii_case(r))
    }) {
        headers::push_crlf(&mut out, &inner_mail[f.range.clone()]);
        if !out.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
    }
    if head.get("X-KIM-Dienstkennung").is_none() {
        // Step 1 added it to the signed copy; the outer copy must carry it too (A_2193).
        out.extend_from_slice(DEFAULT_DIENSTKENNUNG);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(fields.extra_lines);
    out.extend_from_slice(FIXED_END);
    Ok(out)
}

/// Appends base64 of `data` in 76-character lines separated by CRLF (no trailing CRLF).
/// Every line holds only base64 characters, so none starts with `.`.
pub fn push_base64_lines(out: &mut Vec<u8>, data: &[u8]) {
    let engine = base64::engine::general_purpose::STANDARD;
    for (i, chunk) in data.chunks(LINE / 4 * 3).enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        let start = out.len();
        out.resize(start + chunk.len().div_ceil(3) * 4, 0);
        // The slice is sized exactly for this chunk, so encoding cannot run out of space.
        let _ = engine.encode_slice(chunk, &mut out[start..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_2193_outer_is_allocated_exactly_with_room_for_the_smtp_terminator() {
        let mail = b"From: <a@komle.de>\r\nTo: <b@komle.de>\r\n\r\nText\r\n";
        for len in [0, 1, 56, 57, 58, 114, 1000] {
            let cms = vec![0x5a; len];
            let outer = build_outer(mail, &cms).expect("outer");
            assert!(
                outer.capacity() >= outer.len() + SMTP_TERMINATOR_ROOM,
                "len {len}"
            );
            assert!(!outer.ends_with(b"\r\n") || len == 0, "len {len}");
        }
    }
}
