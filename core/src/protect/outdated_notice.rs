//! KOM-LE-A_21387-01: the directory says the sender uses a newer KOM-LE version than this
//! Clientmodul implements, so the Clientmodul in use is outdated; the sender is told by a
//! plain (unsigned, unencrypted) mail with `X-KIM-Fehlermeldung: 4017`
//! (Tab_Fehlercodes_KOMLE-Clientmodule: „Die KIM-Version des Clientmoduls ist kleiner als die im
//! Verzeichnisdienst zu seinem Eintrag hinterlegte Version“). The message itself is still sent.

use crate::directory::KomLeVersion;
use crate::smime::date;

/// The version this Clientmodul implements.
pub const OWN_VERSION: KomLeVersion = KomLeVersion::V1_5;

/// The error code of A_21387-01's notice.
pub const CODE: &str = "4017";

/// Whether the directory's version for the sender is newer than [`OWN_VERSION`] (the `+` of
/// `1.5+` only says large messages are accepted; it is no newer version).
pub fn is_outdated(sender_version: KomLeVersion) -> bool {
    (sender_version.major, sender_version.minor) > (OWN_VERSION.major, OWN_VERSION.minor)
}

fn text(sender_version: KomLeVersion) -> String {
    format!(
        "Das verwendete KOM-LE-Clientmodul ist veraltet: es unterstützt die KOM-LE-Version {}, \
         im Verzeichnisdienst ist für Ihre Adresse die Version {} eingetragen. Bitte \
         aktualisieren Sie das Clientmodul (Fehler {CODE}).\r\n",
        OWN_VERSION, sender_version
    )
}

/// The notice mail to `sender` (CRLF); `now` is Unix seconds.
pub fn notice(sender: &str, sender_version: KomLeVersion, now: i64) -> Vec<u8> {
    let mut m = String::new();
    m.push_str(&format!("Date: {}\r\n", date::rfc5322(now)));
    m.push_str(&format!("From: <{sender}>\r\nTo: <{sender}>\r\n"));
    m.push_str(&format!(
        "Subject: {}\r\n",
        date::encoded_word("KOM-LE: Die verwendete Clientmodul-Version ist veraltet")
    ));
    m.push_str(
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n",
    );
    m.push_str(&format!("X-KIM-Fehlermeldung: {CODE}\r\n\r\n"));
    m.push_str(&text(sender_version));
    m.into_bytes()
}

/// Adds A_21387-01's code and text to a notice the sender gets anyway (the session sends one
/// notice per message): the code as another `X-KIM-Fehlermeldung` field (A_20650-05 allows
/// several), the text as a last paragraph.
pub fn append_to(notice: &mut Vec<u8>, sender_version: KomLeVersion) {
    if let Some(end) = notice.windows(4).position(|w| w == b"\r\n\r\n") {
        let field = format!("\r\nX-KIM-Fehlermeldung: {CODE}");
        notice.splice(end..end, field.into_bytes());
    }
    if !notice.ends_with(b"\r\n") {
        notice.extend_from_slice(b"\r\n");
    }
    notice.extend_from_slice(b"\r\n");
    notice.extend_from_slice(text(sender_version).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_21387_01_only_a_newer_major_or_minor_is_outdated() {
        assert!(!is_outdated(KomLeVersion::V1_0));
        assert!(!is_outdated(KomLeVersion::V1_5));
        assert!(!is_outdated(KomLeVersion::parse("1.5+").unwrap()));
        assert!(is_outdated(KomLeVersion::parse("1.6").unwrap()));
        assert!(is_outdated(KomLeVersion::parse("2.0").unwrap()));
    }

    #[test]
    fn a_21387_01_notice_carries_4017_and_names_both_versions() {
        let n = String::from_utf8(notice("s@kim.test", KomLeVersion::parse("1.6").unwrap(), 0))
            .unwrap();
        assert!(n.starts_with(
            "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\nFrom: <s@kim.test>\r\nTo: <s@kim.test>\r\n"
        ));
        assert!(n.contains("\r\nX-KIM-Fehlermeldung: 4017\r\n\r\n"), "{n}");
        assert!(
            n.contains("KOM-LE-Version 1.5, im Verzeichnisdienst"),
            "{n}"
        );
        assert!(n.contains("die Version 1.6 eingetragen"), "{n}");
    }

    #[test]
    fn a_21387_01_appended_to_another_notice_keeps_its_codes() {
        let mut n = b"From: <s@x>\r\nX-KIM-Fehlermeldung: 4004\r\n\r\nText\r\n".to_vec();
        append_to(&mut n, KomLeVersion::parse("2.0").unwrap());
        let n = String::from_utf8(n).unwrap();
        assert!(
            n.starts_with("From: <s@x>\r\nX-KIM-Fehlermeldung: 4004\r\nX-KIM-Fehlermeldung: 4017\r\n\r\nText\r\n\r\nDas verwendete"),
            "{n}"
        );
    }
}
