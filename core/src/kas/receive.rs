//! Receiving KAS content: the opt-in check before anything is fetched (A_23512), finding the
//! one KIM-Attachment structure in the decrypted KOM-LE message (A_19369-02), and the mails
//! handed to the client when something fails (A_19370-04, A_22412-01, A_19371-04, A_19372-03).

use super::attachment::KimAttachment;
use super::error::{KasOpenError, KasSendError};
use super::kas_parts;
use super::kom_le_body::X_KIM_KAS_SIZE;
use super::size_decision::KONNEKTOR_LIMIT;
use crate::smime::headers;
use crate::smime::receive::error_mail;

/// Subject of the A_23512 error mail, word for word.
pub const LARGE_MESSAGES_NOT_ENABLED_SUBJECT: &str = "Die KIM-Nachricht kann nicht empfangen werden, weil der Empfang großer Nachrichten nicht aktiviert wurde";
/// Subject of the A_19370-04 / A_22412-01 error mail, word for word.
pub const DOWNLOAD_FAILED_SUBJECT: &str = "Die E-Mail-Daten konnten nicht abgerufen werden";

/// `X-KIM-KAS-Size` of a received message (outer header), if present and a number.
pub fn kas_size(mail: &[u8]) -> Option<u64> {
    let head = headers::parse(mail).ok()?;
    head.value(mail, X_KIM_KAS_SIZE)?.trim().parse().ok()
}

/// Whether the recipient's `komLeData` values (`<version>,<address>` per gemSpec_VZD) carry a
/// version with `+` (e.g. `1.5+`) for `address`: the opt-in for large messages (A_19356-06,
/// A_23512). Entries without an address part count for every address.
pub fn accepts_large_messages(kom_le_data: &[String], address: &str) -> bool {
    kom_le_data.iter().any(|entry| {
        let (version, addr) = match entry.split_once(',') {
            Some((v, a)) => (v.trim(), Some(a.trim())),
            None => (entry.trim(), None),
        };
        version.ends_with('+')
            && version.len() > 1
            && addr.is_none_or(|a| a.eq_ignore_ascii_case(address))
    })
}

/// A_19356-06: for a mail over 15 MiB, the recipients whose directory entry has the `+`
/// opt-in stay, the others are removed (and named in the sender's DSN, code 4001). An
/// undefined `komLeData` means 1.0, so no opt-in. Returns `(kept, removed)`.
///
/// # Errors
/// [`KasSendError::NoRecipientForLargeMessage`] when nobody is left (451 + RSET).
pub fn split_large_message_recipients<'a>(
    recipients: &[(&'a str, &[String])],
) -> Result<(Vec<&'a str>, Vec<&'a str>), KasSendError> {
    let mut kept = Vec::new();
    let mut removed = Vec::new();
    for &(address, data) in recipients {
        if accepts_large_messages(data, address) {
            kept.push(address);
        } else {
            removed.push(address);
        }
    }
    if kept.is_empty() {
        return Err(KasSendError::NoRecipientForLargeMessage);
    }
    Ok((kept, removed))
}

/// A_23512: a message announcing more than 15 MiB of KAS data may only be processed for a
/// recipient with the opt-in. Runs on the received (outer) message, before decryption and
/// before any KAS access.
///
/// # Errors
/// [`KasOpenError::LargeMessagesNotEnabled`]: deliver [`large_messages_not_enabled_mail`].
pub fn check_opt_in(
    received: &[u8],
    kom_le_data: &[String],
    address: &str,
) -> Result<(), KasOpenError> {
    match kas_size(received) {
        Some(size) if size > KONNEKTOR_LIMIT && !accepts_large_messages(kom_le_data, address) => {
            Err(KasOpenError::LargeMessagesNotEnabled)
        }
        _ => Ok(()),
    }
}

/// The A_23512 error mail: the received KOM-LE message attached as `message/rfc822`, the
/// addressing headers copied, `X-KIM-Fehlermeldung: 4018`, the exact subject, and a text that
/// says why and how to enable large messages and retry.
pub fn large_messages_not_enabled_mail(received: &[u8], user: &str, now: i64) -> Vec<u8> {
    let text = format!(
        "Es wurde eine KIM-Nachricht empfangen, die aufgrund ihrer Größe gemäß der Einstellung Ihres KIM-Kontos (KOM-LE-Version) nicht verarbeitet werden darf: der Empfang großer Nachrichten (über 15 MiB) ist nicht aktiviert.\r\n\
\r\n\
Aktivieren Sie den Empfang großer Nachrichten in der Kontoverwaltung Ihres KIM-Anbieters (Account-Manager, KOM-LE-Version 1.5+). Leiten Sie anschließend diese Nachricht an Ihre eigene E-Mail-Adresse ({user}) weiter; beim nächsten Abholen wird die angehängte Nachricht erneut verarbeitet.\r\n"
    );
    error_mail(
        received,
        LARGE_MESSAGES_NOT_ENABLED_SUBJECT,
        "X-KIM-Fehlermeldung: 4018\r\n",
        &text,
        now,
    )
}

/// The KIM-Attachment structure of a decrypted KOM-LE message: `Ok(None)` for a message
/// without KAS content (the 1.0 way), the structure when it is the message's only body.
///
/// # Errors
/// [`KasOpenError::Ambiguous`] for more than one structure, one that is not the only body,
/// or one that cannot be read (A_19369-02).
pub fn kas_content(decrypted: &[u8]) -> Result<Option<KimAttachment>, KasOpenError> {
    let parts = kas_parts::scan(decrypted);
    match (parts.count, parts.top_level) {
        (0, _) => Ok(None),
        (1, true) => {
            let head = headers::parse(decrypted).map_err(|_| KasOpenError::Ambiguous)?;
            KimAttachment::from_json(&decrypted[head.body..])
                .map(Some)
                .map_err(|_| KasOpenError::Ambiguous)
        }
        _ => Err(KasOpenError::Ambiguous),
    }
}

/// The A_19370-04 / A_22412-01 mail for a failed download: the received message attached,
/// the Tab_Fehlertext_Download text (or the 4013 text for 429), `X-KIM-Fehlermeldung`.
pub fn download_failed_mail(received: &[u8], error: KasOpenError, user: &str, now: i64) -> Vec<u8> {
    let text = if error == KasOpenError::TooManyDownloads {
        format!(
            "Verschlüsselte E-Mail-Daten konnten nicht heruntergeladen werden, da durch zu häufigen Zugriff der KOM-LE-Attachment-Service den Abruf verweigert. Bitte leiten Sie diese Nachricht nach einer angemessenen Zeit an Ihre eigene E-Mail-Adresse ({user}) weiter. Beim nächsten Abholen wird der Download wiederholt.\r\n"
        )
    } else {
        format!(
            "Die E-Mail-Daten dieser Nachricht konnten nicht heruntergeladen werden. Bitte leiten Sie diese Nachricht nach einer angemessenen Zeit an Ihre eigene E-Mail-Adresse ({user}) weiter. Beim nächsten Abholen wird der Download wiederholt.\r\n"
        )
    };
    error_mail(
        received,
        DOWNLOAD_FAILED_SUBJECT,
        &format!("X-KIM-Fehlermeldung: {}\r\n", error.code()),
        &text,
        now,
    )
}

/// The body text that replaces the mail body when the downloaded data cannot be used.
pub fn replacement_text(error: KasOpenError) -> &'static str {
    match error {
        KasOpenError::Ambiguous => {
            "Nachricht konnte aufgrund uneindeutiger Informationen nicht abgerufen werden"
        }
        KasOpenError::HashMismatch => {
            "Beim Empfang dieser KIM-Nachricht wurde eine Sicherheitsverletzung erkannt. Dies kann eine technisches Ursache haben oder auf eine missbräuchliche Nutzung des KIM-Dienstes hinweisen. Zu Ihrem Schutz wurde der Inhalt dieser Nachricht durch diesen Text ausgetauscht. Bitte antworten Sie nicht auf diese Nachricht. Sie können diese Nachricht löschen."
        }
        _ => "Abgerufene E-Mail-Daten konnten nicht entschlüsselt werden",
    }
}

/// A_19369-02 / A_19371-04 / A_19372-03: the decrypted KOM-LE message's header (its body was
/// the KIM-Attachment structure) with the body replaced by the error text as `text/plain`
/// and `X-KIM-Fehlermeldung` set. The open pipeline adds its usual results and note.
pub fn replaced_body_mail(decrypted: &[u8], error: KasOpenError) -> Vec<u8> {
    let mut out = Vec::new();
    if let Ok(head) = headers::parse(decrypted) {
        for f in head.fields.iter().filter(|f| {
            let n = f.name.to_ascii_lowercase();
            !(n.starts_with("content-") || n == "mime-version" || n == "x-kim-kas-size")
        }) {
            headers::push_crlf(&mut out, &decrypted[f.range.clone()]);
            if !out.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(
        format!(
            "X-KIM-Fehlermeldung: {}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}\r\n",
            error.code(),
            replacement_text(error)
        )
        .as_bytes(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_23512_opt_in_is_a_plus_version_for_the_address() {
        let data = vec![
            "1.5+,a@x.kim.telematik".to_owned(),
            "1.5,b@x.kim.telematik".to_owned(),
        ];
        assert!(accepts_large_messages(&data, "A@x.kim.telematik"));
        assert!(!accepts_large_messages(&data, "b@x.kim.telematik"));
        assert!(accepts_large_messages(&["1.5+".to_owned()], "c@y"));
        assert!(!accepts_large_messages(&[], "a@x"));
        assert!(!accepts_large_messages(&["+,a@x".to_owned()], "a@x"));
    }

    #[test]
    fn a_19356_recipients_without_plus_are_removed_none_left_is_451() {
        let plus = ["1.5+,b@y".to_owned()];
        let old = ["1.5,c@z".to_owned()];
        let none: Vec<String> = Vec::new();
        let rcpts = [("b@y", &plus[..]), ("c@z", &old[..]), ("d@w", &none[..])];
        assert_eq!(
            split_large_message_recipients(&rcpts),
            Ok((vec!["b@y"], vec!["c@z", "d@w"]))
        );
        let err = split_large_message_recipients(&rcpts[1..]).expect_err("nobody left");
        assert!(err.reply().starts_with(b"451 ") && err.resets_upstream());
    }

    #[test]
    fn a_19369_structure_found_none_or_ambiguous() {
        let one = b"Subject: s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Disposition: x-kas\r\n\r\n{\"link\":\"https://k/a/1\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\",\"hash\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\",\"size\":3}\r\n";
        assert_eq!(kas_content(one).expect("one").map(|a| a.size), Some(3));
        assert_eq!(kas_content(b"Subject: s\r\n\r\nhello\r\n"), Ok(None));
        let garbled = b"Content-Disposition: x-kas\r\n\r\n{\"link\":\r\n";
        assert_eq!(kas_content(garbled), Err(KasOpenError::Ambiguous));
        let two = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Disposition: x-kas\r\n\r\n{}\r\n--b\r\nContent-Disposition: x-kas\r\n\r\n{}\r\n--b--\r\n";
        assert_eq!(kas_content(two), Err(KasOpenError::Ambiguous));
    }

    #[test]
    fn a_19371_a_19372_replaced_body_carries_code_and_text() {
        let dec = b"From: a@x\r\nSubject: s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Disposition: x-kas\r\nX-KIM-KAS-Size: 99\r\n\r\n{...}\r\n";
        for (err, code) in [
            (KasOpenError::Decryption, "4007"),
            (KasOpenError::HashMismatch, "4012"),
        ] {
            let m = replaced_body_mail(dec, err);
            let head = headers::parse(&m).expect("parses");
            assert_eq!(head.value(&m, "X-KIM-Fehlermeldung").as_deref(), Some(code));
            assert_eq!(head.value(&m, "Subject").as_deref(), Some("s"));
            assert!(head.get("Content-Disposition").is_none());
            assert!(head.get("X-KIM-KAS-Size").is_none());
            assert_eq!(
                std::str::from_utf8(&m[head.body..])
                    .expect("utf-8")
                    .trim_end(),
                replacement_text(err)
            );
        }
    }
}
