//! The KAS failures with the replies and error codes gemSpec_CM_KOMLE assigns them.
//!
//! Sending: every failure before the MTA has the small KOM-LE message is answered to the
//! client and the MTA transaction is reset (A_19363-03, A_22419-01); the session pipeline
//! reads [`KasSendError::reply`] and [`KasSendError::resets_upstream`].
//! Receiving: failures become error codes in `X-KIM-Fehlermeldung` of the mail handed to the
//! client ([`KasOpenError::code`]), never a broken or half mail.

use std::fmt;

/// Why a client mail cannot go the KAS way. Carries no content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KasSendError {
    /// A_22341: the client mail already carries a part with `Content-Disposition: x-kas`.
    ClientCarriesKasPart,
    /// A_19355-01: larger than the account's `maxMailSize` (X.3.4).
    TooLarge { size: u64, max: u64 },
    /// A_19363-03: `add_Attachment` failed (transport, TLS, 4xx/5xx other than 507), or the
    /// 201 answer carried no usable `sharedLink` (A_19364-02).
    UploadFailed(UploadFailure),
    /// A_22419-01: the KAS answered 507 (quota exhausted).
    QuotaExceeded,
    /// A_19356-06: no recipient has the large-message opt-in (`1.5+`).
    NoRecipientForLargeMessage,
}

/// What went wrong with `add_Attachment`, without any body text of the KAS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadFailure {
    /// No answer in CM_KAS_TIMEOUT, connection refused or dropped, TLS failure.
    Transport,
    /// An HTTP status other than 201 and 507.
    Status(u16),
    /// 201 without a `sharedLink`, or one that is not an https URL.
    NoLink,
}

impl KasSendError {
    /// The SMTP reply to the client (one line, CRLF included).
    pub fn reply(&self) -> Vec<u8> {
        let text = match self {
            Self::ClientCarriesKasPart => {
                "451 4.6.0 Die Nachricht enthaelt bereits KAS-Inhalt (Content-Disposition: x-kas)"
                    .to_owned()
            }
            Self::TooLarge { max, .. } => {
                format!("552 5.3.4 Nachricht zu gross (hoechstens {max} Bytes fuer dieses Konto)")
            }
            Self::UploadFailed(_) => {
                "451 4.4.0 Verschluesselte E-Mail-Daten konnten nicht zum KOM-LE-Attachment-Service uebertragen werden".to_owned()
            }
            Self::QuotaExceeded => {
                "521 5.2.2 Speicherplatz am KOM-LE-Attachment-Service erschoepft".to_owned()
            }
            Self::NoRecipientForLargeMessage => {
                "451 4.3.0 Kein Empfaenger kann grosse Nachrichten (ueber 15 MiB) empfangen".to_owned()
            }
        };
        format!("{text}\r\n").into_bytes()
    }

    /// Whether the MTA transaction must be aborted with RSET (A_19363-03, A_22419-01).
    /// The size and x-kas checks run before anything reached the MTA's DATA, but a RSET is
    /// still what clears MAIL FROM / RCPT TO there, so every variant resets.
    pub fn resets_upstream(&self) -> bool {
        true
    }
}

impl fmt::Display for KasSendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClientCarriesKasPart => f.write_str("client mail carries an x-kas part"),
            Self::TooLarge { size, max } => write!(f, "mail of {size} bytes exceeds {max}"),
            Self::UploadFailed(UploadFailure::Transport) => f.write_str("KAS upload: transport"),
            Self::UploadFailed(UploadFailure::Status(s)) => write!(f, "KAS upload: HTTP {s}"),
            Self::UploadFailed(UploadFailure::NoLink) => f.write_str("KAS upload: no sharedLink"),
            Self::QuotaExceeded => f.write_str("KAS quota exceeded (507)"),
            Self::NoRecipientForLargeMessage => f.write_str("no recipient accepts large messages"),
        }
    }
}

impl std::error::Error for KasSendError {}

/// Why received KAS content could not be turned back into the client mail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KasOpenError {
    /// A_23512: over 15 MiB and the recipient has no `1.5+` opt-in (4018).
    LargeMessagesNotEnabled,
    /// A_19369-02: more than one KIM-Attachment structure, or one that cannot be read.
    Ambiguous,
    /// A_19370-04: `read_Attachment` failed (4006).
    DownloadFailed,
    /// A_22412-01: the KAS answered 429 (4013).
    TooManyDownloads,
    /// A_19371-04: GCM authentication failed (4007).
    Decryption,
    /// A_19372-03: the decrypted mail data do not match `hash` (4012).
    HashMismatch,
    /// More data than one GCM IV may cover, or than `size` announced.
    TooLarge,
}

impl KasOpenError {
    /// The `X-KIM-Fehlermeldung` code (Tab_Fehlercodes_KOMLE-Clientmodule).
    pub fn code(self) -> &'static str {
        match self {
            Self::LargeMessagesNotEnabled => "4018",
            Self::Ambiguous | Self::DownloadFailed => "4006",
            Self::TooManyDownloads => "4013",
            Self::Decryption | Self::TooLarge => "4007",
            Self::HashMismatch => "4012",
        }
    }
}

impl fmt::Display for KasOpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Self::LargeMessagesNotEnabled => "large messages not enabled for the recipient",
            Self::Ambiguous => "KIM-Attachment structure missing, unreadable or not unique",
            Self::DownloadFailed => "mail data download failed",
            Self::TooManyDownloads => "mail data downloaded too often (429)",
            Self::Decryption => "mail data decryption failed",
            Self::HashMismatch => "mail data hash mismatch",
            Self::TooLarge => "mail data larger than announced or allowed",
        };
        write!(f, "{what} ({})", self.code())
    }
}

impl std::error::Error for KasOpenError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_19363_upload_failure_is_451_and_a_22419_quota_507_is_521_both_with_rset() {
        let upload = KasSendError::UploadFailed(UploadFailure::Status(500));
        assert!(upload.reply().starts_with(b"451 "));
        assert!(upload.resets_upstream());
        let quota = KasSendError::QuotaExceeded;
        assert!(quota.reply().starts_with(b"521 "));
        assert!(quota.resets_upstream());
        assert!(
            KasSendError::ClientCarriesKasPart
                .reply()
                .starts_with(b"451 ")
        );
        let big = KasSendError::TooLarge { size: 9, max: 8 }.reply();
        assert!(big.starts_with(b"552 5.3.4 "), "A_19355-01 X.3.4");
        for r in [upload.reply(), quota.reply(), big] {
            assert!(r.is_ascii() && r.ends_with(b"\r\n") && !r[..r.len() - 2].contains(&b'\n'));
        }
    }

    #[test]
    fn receive_errors_carry_the_table_codes() {
        assert_eq!(KasOpenError::LargeMessagesNotEnabled.code(), "4018");
        assert_eq!(KasOpenError::Decryption.code(), "4007");
        assert_eq!(KasOpenError::HashMismatch.code(), "4012");
        assert_eq!(KasOpenError::TooManyDownloads.code(), "4013");
        assert_eq!(KasOpenError::DownloadFailed.code(), "4006");
    }
}
