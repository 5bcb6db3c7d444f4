//! The small KOM-LE message that replaces a large client mail (A_19359-07, A_23467): the
//! processed client mail's header, its body replaced by the KIM-Attachment structure as the
//! only body part with `Content-Type: text/plain; charset=utf-8` and
//! `Content-Disposition: x-kas`, plus `X-KIM-KAS-Size`. This message is then signed and
//! encrypted the 1.0 way (A_19365-02).

use super::attachment::{AttachmentError, KimAttachment};
use crate::smime::SmimeError;
use crate::smime::headers;

/// Name of the header that announces the KAS data size (A_23467). Besides the inner message
/// built here it belongs into the *outer* header too: the receiver checks it before fetching
/// anything (A_23512 note); see [`x_kim_kas_size_field`].
pub const X_KIM_KAS_SIZE: &str = "X-KIM-KAS-Size";

/// `X-KIM-KAS-Size: <size>\r\n`, for the outer header the protect pipeline writes.
pub fn x_kim_kas_size_field(size: u64) -> String {
    format!("{X_KIM_KAS_SIZE}: {size}\r\n")
}

/// Why the KOM-LE body could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KomLeBodyError {
    /// The processed client header is not a header block.
    Header(SmimeError),
    Attachment(AttachmentError),
}

impl std::fmt::Display for KomLeBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Header(e) => write!(f, "client header: {e}"),
            Self::Attachment(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for KomLeBodyError {}

/// Whether a header field of the client mail describes the content that is replaced (and so
/// must not survive into the KOM-LE message) or is ours to set.
fn replaced(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("content-") || lower == "x-kim-kas-size" || lower == "mime-version"
}

/// Builds the KOM-LE message from the processed client mail's header block (`processed`:
/// the header, optionally followed by the body, which is ignored) and the upload's structure.
///
/// # Errors
/// [`KomLeBodyError`] if the header cannot be parsed or the link is unusable.
pub fn kas_message(
    processed: &[u8],
    attachment: &KimAttachment,
) -> Result<Vec<u8>, KomLeBodyError> {
    let json = attachment.to_json().map_err(KomLeBodyError::Attachment)?;
    let head = headers::parse(processed).map_err(KomLeBodyError::Header)?;
    let mut out = Vec::with_capacity(head.end + json.len() + 256);
    for f in head.fields.iter().filter(|f| !replaced(&f.name)) {
        headers::push_crlf(&mut out, &processed[f.range.clone()]);
        if !out.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    out.extend_from_slice(x_kim_kas_size_field(attachment.size).as_bytes());
    out.extend_from_slice(
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\nContent-Disposition: x-kas\r\n\r\n",
    );
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kas::{KasKey, kas_parts};

    #[test]
    fn a_19359_body_is_replaced_header_kept_and_a_23467_size_announced() {
        let client = b"From: a@x.kim.telematik\r\nTo: b@y.kim.telematik\r\nSubject: gross\r\nMIME-Version: 1.0\r\nX-KIM-Dienstkennung: KIM-Mail;Default;V1.0\r\nContent-Type: multipart/mixed;\r\n boundary=zz\r\nContent-Transfer-Encoding: 7bit\r\n\r\n--zz\r\n...\r\n--zz--\r\n";
        let att = KimAttachment::new(
            "https://kas.x/attachments/v2.4/attachment/42".into(),
            KasKey::from_bytes([5; 32]),
            [6; 32],
            20_000_000,
        );
        let msg = kas_message(client, &att).expect("builds");
        let text = std::str::from_utf8(&msg).expect("ASCII");
        let head = headers::parse(&msg).expect("parses");
        assert_eq!(head.value(&msg, "Subject").as_deref(), Some("gross"));
        assert_eq!(
            head.value(&msg, "X-KIM-Dienstkennung").as_deref(),
            Some("KIM-Mail;Default;V1.0")
        );
        assert_eq!(
            head.value(&msg, "Content-Type").as_deref(),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(
            head.value(&msg, "Content-Disposition").as_deref(),
            Some("x-kas")
        );
        assert_eq!(
            head.value(&msg, "X-KIM-KAS-Size").as_deref(),
            Some("20000000")
        );
        for once in ["Content-Type", "MIME-Version", "Content-Transfer-Encoding"] {
            assert_eq!(
                head.fields
                    .iter()
                    .filter(|f| f.name.eq_ignore_ascii_case(once))
                    .count(),
                1,
                "{once}"
            );
        }
        assert!(!text.contains("--zz"), "client body gone");
        assert_eq!(
            KimAttachment::from_json(&msg[head.body..]).expect("body is the structure"),
            att
        );
        let parts = kas_parts::scan(&msg);
        assert_eq!((parts.count, parts.top_level), (1, true));
    }

    #[test]
    fn unusable_link_or_header_is_an_error_not_a_message() {
        let att = KimAttachment::new("ftp://x".into(), KasKey::from_bytes([0; 32]), [0; 32], 1);
        assert_eq!(
            kas_message(b"Subject: x\r\n\r\n", &att),
            Err(KomLeBodyError::Attachment(AttachmentError::Link))
        );
    }
}
