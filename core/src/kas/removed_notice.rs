//! A_19356-06: the sender learns which recipients were removed from a large mail because their
//! directory entry has no large-message opt-in (`1.5+`). The notice is a Delivery Status
//! Notification (RFC 3461–3464: `multipart/report; report-type=delivery-status`), neither
//! signed nor encrypted, with `X-KIM-Fehlermeldung: 4001`; it carries no content of the mail,
//! only its subject and Message-ID so the user recognises it.

use crate::smime::date;

/// The `X-KIM-Fehlermeldung` code of the notice.
pub const REMOVED_CODE: &str = "4001";

/// The notice to `sender` naming every address in `removed`. `now` is Unix seconds (TI time);
/// `reporting_mta` names the Clientmodul in the delivery-status part.
pub fn removed_recipients_notice(
    sender: &str,
    subject: &str,
    message_id: &str,
    removed: &[&str],
    reporting_mta: &str,
    now: i64,
) -> Vec<u8> {
    let boundary = format!("komle-dsn-{now:x}-{}", removed.len());
    let mut m = String::new();
    m.push_str(&format!("Date: {}\r\n", date::rfc5322(now)));
    m.push_str(&format!("From: <{sender}>\r\nTo: <{sender}>\r\n"));
    m.push_str(&format!(
        "Subject: {}\r\n",
        date::encoded_word("KOM-LE: Empfänger ohne Freigabe für große Nachrichten entfernt")
    ));
    m.push_str(&format!("X-KIM-Fehlermeldung: {REMOVED_CODE}\r\n"));
    m.push_str(&format!(
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;\r\n boundary=\"{boundary}\"\r\n\r\n"
    ));
    m.push_str(&format!(
        "--{boundary}\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    ));
    m.push_str("Ihre Nachricht");
    if !subject.is_empty() {
        m.push_str(&format!(" „{subject}“"));
    }
    if !message_id.is_empty() {
        m.push_str(&format!(" ({message_id})"));
    }
    m.push_str(
        " ist größer als 15 MiB und wurde an die folgenden Empfänger nicht gesendet, weil für sie im Verzeichnisdienst keine Freigabe zum Empfang großer Nachrichten (KOM-LE-Version mit „+“) eingetragen ist:\r\n\r\n",
    );
    for r in removed {
        m.push_str(&format!("  {r}\r\n"));
    }
    m.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; {reporting_mta}\r\n"
    ));
    for r in removed {
        m.push_str(&format!(
            "\r\nFinal-Recipient: rfc822; {r}\r\nAction: failed\r\nStatus: 5.3.4\r\n"
        ));
    }
    m.push_str(&format!("\r\n--{boundary}--\r\n"));
    m.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smime::headers;

    #[test]
    fn a_19356_notice_names_every_removed_recipient_as_a_dsn_with_4001() {
        let n = removed_recipients_notice(
            "a@x.kim.telematik",
            "Röntgen",
            "<m1@x>",
            &["b@y.kim.telematik", "c@z.kim.telematik"],
            "komle-cm.test",
            1_700_000_000,
        );
        let head = headers::parse(&n).expect("parses");
        assert_eq!(
            head.value(&n, "X-KIM-Fehlermeldung").as_deref(),
            Some("4001")
        );
        assert!(
            head.value(&n, "Content-Type")
                .is_some_and(|v| v.contains("report-type=delivery-status"))
        );
        let text = String::from_utf8(n).expect("UTF-8");
        for r in ["b@y.kim.telematik", "c@z.kim.telematik"] {
            assert!(text.contains(&format!("Final-Recipient: rfc822; {r}\r\n")));
            assert!(text.contains(&format!("  {r}\r\n")));
        }
        assert_eq!(text.matches("Action: failed").count(), 2);
        assert!(text.contains("„Röntgen“ (<m1@x>)"));
    }
}
