//! Recognising a KOM-LE message on RETR and the error mails of the receive side
//! (gemSpec_CM_KOMLE §3.3, NOTES.md "POP3 side").

use super::date;
use super::error::SmimeError;
use super::headers;
use super::multipart::{self, Part};
use base64::Engine;

/// KOM-LE versions this Clientmodul opens (A_21391-02). A 1.5 message without KAS content has
/// the 1.0 format; one with KAS content is caught before this check (`crate::open::kas_content`).
pub const SUPPORTED_VERSIONS: [&str; 2] = ["1.0", "1.5"];

/// What RETR delivered.
#[derive(Debug)]
pub enum Incoming {
    /// No `X-KOM-LE-Version` header: pass the message through unchanged.
    NotKomLe,
    /// A KOM-LE message of a version we do not support: deliver [`unsupported_version_mail`].
    UnsupportedVersion(String),
    /// A KOM-LE message: decrypt `cms` with DecryptDocument.
    KomLe(KomLeMessage),
}

/// The parts of a received KOM-LE message that opening needs.
#[derive(Debug)]
pub struct KomLeMessage {
    /// The AuthEnvelopedData (decoded base64 body), the input of DecryptDocument.
    pub cms: Vec<u8>,
    /// The outer header block (trace fields included), CRLF.
    pub outer_header: Vec<u8>,
}

/// Classifies a retrieved message only by its outer `X-KOM-LE-Version` header and, for a
/// supported version, decodes the CMS. A message whose header block cannot be parsed is not a
/// KOM-LE message (it passes unchanged, as any other non-KIM mail).
pub fn classify(mail: &[u8]) -> Result<Incoming, SmimeError> {
    let Ok(head) = headers::parse(mail) else {
        return Ok(Incoming::NotKomLe);
    };
    let Some(version) = head.value(mail, "X-KOM-LE-Version") else {
        return Ok(Incoming::NotKomLe);
    };
    if !SUPPORTED_VERSIONS.contains(&version.as_str()) {
        return Ok(Incoming::UnsupportedVersion(version));
    }
    let ct = head.value(mail, "Content-Type").unwrap_or_default();
    let mt = headers::media_type(&ct);
    if mt != "application/pkcs7-mime" && mt != "application/x-pkcs7-mime" {
        return Err(SmimeError::WrongContentType);
    }
    let cte = head
        .value(mail, "Content-Transfer-Encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let body = &mail[head.body..];
    let cms = match cte.as_str() {
        "base64" => decode_base64(body)?,
        "binary" | "8bit" | "" => body.to_vec(),
        _ => return Err(SmimeError::WrongContentType),
    };
    let mut outer_header = Vec::with_capacity(head.end + 16);
    headers::push_crlf(&mut outer_header, &mail[..head.end]);
    Ok(Incoming::KomLe(KomLeMessage { cms, outer_header }))
}

/// Decodes a base64 body, ignoring line breaks and other white space.
///
/// Decodes through a small window instead of first compacting the whole body, so a 25 MB
/// message costs one output buffer, not an extra 33 MB copy.
pub fn decode_base64(body: &[u8]) -> Result<Vec<u8>, SmimeError> {
    const WINDOW: usize = 4096;
    let engine = base64::engine::general_purpose::STANDARD;
    let mut out = Vec::with_capacity(body.len() / 4 * 3);
    let mut window = [0u8; WINDOW];
    let mut filled = 0;
    let flush = |window: &[u8], out: &mut Vec<u8>| -> Result<(), SmimeError> {
        let start = out.len();
        out.resize(start + window.len().div_ceil(4) * 3, 0);
        let n = engine
            .decode_slice(window, &mut out[start..])
            .map_err(|_| SmimeError::BadBase64)?;
        out.truncate(start + n);
        Ok(())
    };
    // Lines are copied into the window as slices (memcpy); white space inside a line is rare
    // and handled byte by byte.
    for line in body.split(|b| *b == b'\n') {
        let line = line.trim_ascii();
        let mut rest: &[u8] = line;
        let clean = !line.iter().any(u8::is_ascii_whitespace);
        while !rest.is_empty() {
            if clean {
                let n = rest.len().min(WINDOW - filled);
                window[filled..filled + n].copy_from_slice(&rest[..n]);
                filled += n;
                rest = &rest[n..];
            } else {
                if !rest[0].is_ascii_whitespace() {
                    window[filled] = rest[0];
                    filled += 1;
                }
                rest = &rest[1..];
            }
            if filled == WINDOW {
                flush(&window, &mut out)?;
                filled = 0;
            }
        }
    }
    if filled > 0 {
        flush(&window[..filled], &mut out)?;
    }
    Ok(out)
}

/// `X-KIM-DecryptionResult` values: Tab_Fehlertext_Entschl (A_2046, A_2047-02) plus the
/// vendor codes starting with `X` that A_2047-02 requires for errors outside the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecryptionFailure {
    /// 01: no usable key of the fetching user (no card, no matching RecipientInfo, card not
    /// usable): inserting the card and forwarding the mail to oneself can help.
    KeyNotFound,
    /// 02: marked as KOM-LE but not the KOM-LE S/MIME profile (wrong format).
    WrongFormat,
    /// 03: the Konnektor could not be reached.
    KonnektorUnavailable,
    /// `X<code>`: the Konnektor refused with a gematik code the table does not assign (e.g. a
    /// ciphertext whose authentication tag does not verify).
    KonnektorCode(u32),
    /// `X01`: the Konnektor answered, but with neither a result nor a gematik code.
    UnreadableAnswer,
    /// `X02`: no card of the user could be unlocked (PIN blocked, not entered), KOM-LE-A_2063.
    CardNotUnlocked,
}

impl DecryptionFailure {
    /// The header value.
    pub fn code(self) -> String {
        match self {
            Self::KeyNotFound => "01".into(),
            Self::WrongFormat => "02".into(),
            Self::KonnektorUnavailable => "03".into(),
            Self::KonnektorCode(c) => format!("X{c}"),
            Self::UnreadableAnswer => "X01".into(),
            Self::CardNotUnlocked => "X02".into(),
        }
    }

    /// The Fehlertext of Tab_Fehlertext_Entschl (A_2047-02), word for word, with the user's
    /// address for `<Email Adresse>`; for the vendor codes our own text in the same style.
    pub fn text(self, user: &str) -> String {
        let text = match self {
            Self::KeyNotFound => format!(
                "Der für die Entschlüsselung der Nachricht benötigte Schlüssel wurde nicht gefunden. Überprüfen Sie ob die entsprechende Karte gesteckt ist und leiten Sie diese Nachricht an Ihre eigene E-Mail-Adresse ({user}) weiter. Beim nächsten Abholen wird der Entschlüsselungsvorgang wiederholt."
            ),
            Self::WrongFormat => "Die Nachricht wurde als eine verschlüsselte KIM-Nachricht gekennzeichnet, konnte aber auf Grund des falschen Formats nicht entschlüsselt werden. Die Verschlüsselte Nachricht befindet sich im Anhang. Bitte kontaktieren Sie den Absender der Nachricht.".to_owned(),
            Self::KonnektorUnavailable => format!(
                "Die Entschlüsselung konnte nicht erfolgen, weil der Konnektor nicht antwortet. Stellen Sie sicher, dass der Konnektor wieder zur Verfügung steht und leiten Sie diese Nachricht an Ihre eigene E-Mail-Adresse ({user}) weiter. Beim nächsten Abholen wird der Entschlüsselungsvorgang wiederholt."
            ),
            Self::KonnektorCode(c) => format!(
                "Die Entschlüsselung wurde vom Konnektor mit dem Fehlercode {c} abgelehnt. Die verschlüsselte Nachricht befindet sich im Anhang. Bitte kontaktieren Sie den Absender der Nachricht oder Ihren Administrator."
            ),
            Self::CardNotUnlocked => format!(
                "Die für die Entschlüsselung benötigte Karte konnte nicht freigeschaltet werden (PIN gesperrt oder nicht eingegeben). Schalten Sie die Karte frei und leiten Sie diese Nachricht an Ihre eigene E-Mail-Adresse ({user}) weiter. Beim nächsten Abholen wird der Entschlüsselungsvorgang wiederholt."
            ),
            Self::UnreadableAnswer => format!(
                "Die Antwort des Konnektors auf die Entschlüsselung war nicht auswertbar. Bitte wenden Sie sich an Ihren Administrator und leiten Sie diese Nachricht an Ihre eigene E-Mail-Adresse ({user}) weiter. Beim nächsten Abholen wird der Entschlüsselungsvorgang wiederholt."
            ),
        };
        format!("{text}\r\n")
    }
}

/// Header fields copied from the received message onto generated error mails.
const COPIED: [&str; 9] = [
    "Return-Path",
    "Received",
    "Date",
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Message-ID",
];

pub(crate) fn error_mail(
    received: &[u8],
    subject: &str,
    extra_header: &str,
    text: &str,
    now: i64,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(received.len() + 2048);
    let head = headers::parse(received).ok();
    let mut has_date = false;
    if let Some(head) = &head {
        for name in COPIED {
            for f in head
                .fields
                .iter()
                .filter(|f| f.name.eq_ignore_ascii_case(name))
            {
                has_date |= name == "Date";
                headers::push_crlf(&mut out, &received[f.range.clone()]);
                if !out.ends_with(b"\n") {
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
    }
    if !has_date {
        out.extend_from_slice(format!("Date: {}\r\n", date::rfc5322(now)).as_bytes());
    }
    out.extend_from_slice(
        format!(
            "Subject: {}\r\nMIME-Version: 1.0\r\n{extra_header}",
            date::encoded_word(subject)
        )
        .as_bytes(),
    );
    let boundary = multipart::boundary(&[received, text.as_bytes()]);
    let attached = Part {
        headers: "Content-Type: message/rfc822\r\n".into(),
        body: received,
    };
    multipart::push_multipart(&mut out, &boundary, &[multipart::text_part(text), attached]);
    out
}

/// A_2046/A_2047: the mail delivered instead of a message that could not be decrypted: a text
/// part saying why and what to do, the received message attached as `message/rfc822`,
/// addressing headers copied, `X-KIM-DecryptionResult`. `user` is the fetching user's address.
pub fn decryption_failed_mail(
    received: &[u8],
    failure: DecryptionFailure,
    user: &str,
    now: i64,
) -> Vec<u8> {
    error_mail(
        received,
        "Die Nachricht konnte nicht entschlüsselt werden",
        &format!("X-KIM-DecryptionResult: {}\r\n", failure.code()),
        &failure.text(user),
        now,
    )
}

/// The mail delivered for a KOM-LE message of an unsupported version (`X-KIM-Fehlermeldung: 4008`).
pub fn unsupported_version_mail(received: &[u8], version: &str, now: i64) -> Vec<u8> {
    let shown: String = version
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(20)
        .collect();
    error_mail(
        received,
        "Die KIM-Version der empfangenen Nachricht wird nicht unterstützt",
        "X-KIM-Fehlermeldung: 4008\r\n",
        &format!(
            "Die empfangene Nachricht hat die KOM-LE-Version {shown}, die dieses Clientmodul nicht unterstützt (unterstützt: {}). Die Nachricht ist unverändert angehängt.\r\n",
            SUPPORTED_VERSIONS.join(", ")
        ),
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windowed_base64_decoding_matches_plain_decoding_across_window_edges() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut body = Vec::new();
        super::super::outer::push_base64_lines(&mut body, &data);
        assert_eq!(decode_base64(&body).expect("valid"), data);
        body.truncate(body.len() - 1);
        assert_eq!(decode_base64(&body).err(), Some(SmimeError::BadBase64));
    }
}
