//! KOM-LE-A_2029: a client forwards a KOM-LE message it could not open (to itself, once the card
//! is present). The attached, still protected message is sent on as-is; the wrapper is dropped.

use mail_parser::{MessageParser, PartType};

/// When `mail` carries a `message/rfc822` part (as its body or in a multipart) that is a KOM-LE
/// S/MIME message (has `X-KOM-LE-Version`), returns that message's bytes.
pub fn forwarded_komle_message(mail: &[u8]) -> Option<Vec<u8>> {
    // Only a multipart or message/rfc822 mail can carry one; skip the full MIME parse (costly on
    // a 25 MB text mail) for everything else.
    let head = super::headers::parse(mail).ok()?;
    let ct = head.value(mail, "Content-Type").unwrap_or_default();
    let mt = super::headers::media_type(&ct);
    if !mt.starts_with("multipart/") && mt != "message/rfc822" {
        return None;
    }
    let parsed = MessageParser::default().parse(mail)?;
    for part in parsed.parts.iter() {
        if let PartType::Message(inner) = &part.body {
            let raw = inner.raw_message();
            let head = super::headers::parse(raw).ok()?;
            if head.get("X-KOM-LE-Version").is_some() {
                // mail-parser keeps the CRLF before the next boundary; RFC 2046 assigns it to the
                // boundary, so it is not part of the attached message.
                let raw = raw
                    .strip_suffix(b"\r\n")
                    .or_else(|| raw.strip_suffix(b"\n"))
                    .unwrap_or(raw);
                return Some(raw.to_vec());
            }
        }
    }
    None
}
