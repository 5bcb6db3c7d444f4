//! Recognising KOM-LE 1.5 messages whose content lies on the KOM-LE Attachment Service (KAS,
//! gemSpec_CM_KOMLE V1.16 §3.2).
//!
//! A 1.5 message without KAS content is an ordinary KOM-LE message and opens like a 1.0 one
//! (A_21391-02 counts 1.5 as supported). One with KAS content carries only the reference
//! (`{link,k,hash,size}`, A_19359-07) inside; the sender puts the size into the outer header
//! `X-KIM-KAS-Size` (A_23467), which is what the receiving side checks first (A_23512's note).
//! Fetching and decrypting that content is the runtime's ([`super::Step::FetchKas`], enabled by
//! [`super::Reception::with_kas`] when `[kas]` is configured); without it such a message is
//! answered with the unsupported-version error mail (`X-KIM-Fehlermeldung: 4008`), so the user
//! gets the encrypted original to forward later instead of a bare reference.

use crate::smime::headers;

/// The outer header a KAS message carries (A_23467).
pub const KAS_SIZE_HEADER: &str = "X-KIM-KAS-Size";

/// Why a message counts as having KAS content.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KasEvidence {
    /// The outer `X-KIM-KAS-Size` header (A_23467) with the size of the stored e-mail data,
    /// `None` when its value is not a number.
    SizeHeader(Option<u64>),
    /// `Content-Disposition: x-kas` (A_19359-07) in a decrypted mail's header.
    XKasPart,
}

/// A received KOM-LE message whose content lies on the KAS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KasContent {
    /// The `X-KOM-LE-Version` the message declares.
    pub version: String,
    pub evidence: KasEvidence,
}

/// The KAS content a retrieved message announces in its outer header, if any. Messages
/// without `X-KOM-LE-Version` are not KOM-LE messages and never have KAS content here.
pub fn detect_outer(mail: &[u8]) -> Option<KasContent> {
    let head = headers::parse(mail).ok()?;
    let version = head.value(mail, "X-KOM-LE-Version")?;
    let size = head.value(mail, KAS_SIZE_HEADER)?;
    Some(KasContent {
        version,
        evidence: KasEvidence::SizeHeader(size.trim().parse().ok()),
    })
}

/// True when a (decrypted) mail's own header says `Content-Disposition: x-kas`: its body is
/// the KIM attachment reference, the single body element A_19359-07 puts in place of the
/// original body (the example there carries the field in the top-level header). Lines of the
/// body are never looked at, so a mail that merely quotes such a header is not mistaken.
pub fn has_x_kas_part(mail: &[u8]) -> bool {
    let Ok(head) = headers::parse(mail) else {
        return false;
    };
    head.value(mail, "Content-Disposition").is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|d| d.trim().eq_ignore_ascii_case("x-kas"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_23467_outer_kas_size_header_marks_kas_content() {
        let m = b"X-KOM-LE-Version: 1.5\r\nX-KIM-KAS-Size: 25525700\r\n\r\nAAAA";
        assert_eq!(
            detect_outer(m),
            Some(KasContent {
                version: "1.5".into(),
                evidence: KasEvidence::SizeHeader(Some(25_525_700)),
            })
        );
        let bad = b"X-KOM-LE-Version: 1.5\r\nX-KIM-KAS-Size: viel\r\n\r\nAAAA";
        assert_eq!(
            detect_outer(bad).map(|k| k.evidence),
            Some(KasEvidence::SizeHeader(None))
        );
    }

    #[test]
    fn a_21391_02_1_5_message_without_kas_size_and_plain_mail_have_no_kas_content() {
        assert_eq!(detect_outer(b"X-KOM-LE-Version: 1.5\r\n\r\nAAAA"), None);
        assert_eq!(detect_outer(b"X-KIM-KAS-Size: 5\r\n\r\nno KOM-LE"), None);
    }

    #[test]
    fn a_19359_07_x_kas_disposition_is_found_in_the_header_only() {
        let kas = b"Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Disposition: x-kas\r\n\r\n{\"link\":\"https://kas\"}";
        assert!(has_x_kas_part(kas));
        let folded = b"content-disposition:\r\n X-KAS ; foo=1\r\n\r\n{}";
        assert!(has_x_kas_part(folded));
        let normal = b"Content-Disposition: attachment; filename=x-kas.txt\r\n\r\nContent-Disposition: x-kas\r\n";
        assert!(!has_x_kas_part(normal));
        assert!(!has_x_kas_part(
            b"Subject: y\r\n\r\nContent-Disposition: x-kas\r\n"
        ));
    }
}
