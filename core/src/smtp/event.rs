//! What goes into and comes out of an [`SmtpSession`](super::SmtpSession).

use crate::login_name::LoginName;
use crate::secret::SecretBytes;

/// Results of actions the session asked for, and connection events.
#[derive(Debug)]
#[non_exhaustive]
pub enum SmtpEvent {
    /// The client closed its side (or the connection broke).
    ClientClosed,
    /// The connection to the MTA asked for with [`SmtpAction::ConnectUpstream`] is up, TLS
    /// included (implicit TLS, certificate checked).
    UpstreamConnected,
    /// Connecting (TCP or TLS) to the MTA failed.
    UpstreamFailed { reason: String },
    /// The MTA's certificate was not accepted by the Konnektor (A_2075-01): the client gets
    /// [`ServerCertRejected::smtp_reply`](crate::konnektor::ServerCertRejected::smtp_reply).
    ServerCertificateRejected(crate::konnektor::ServerCertRejected),
    /// The MTA closed its side (or the connection broke).
    UpstreamClosed,
    /// Answer to [`SmtpAction::CheckRecipient`].
    RecipientChecked {
        address: String,
        verdict: RecipientVerdict,
    },
    /// Answer to [`SmtpAction::Protect`].
    Protected(Result<ProtectedMessage, ProtectionFailure>),
}

/// Whether a recipient may be sent to (KOM-LE-A_2176, A_2178).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecipientVerdict {
    /// At least one valid encryption certificate exists.
    Usable,
    /// No valid encryption certificate: RCPT is refused with 550 and not forwarded.
    NoValidCertificate,
    /// Certificates with different Telematik-IDs: not sent to (A_2178), refused with 550.
    ConflictingTelematikIds,
    /// The directory could not be asked: a temporary 451, the client may retry.
    DirectoryUnavailable,
}

/// Something the runtime must do for the session.
///
/// `Debug` shows the length of byte payloads, never the bytes: `SendToUpstream` carries the
/// module's `AUTH PLAIN` line with the client's credentials and, during DATA, message content.
// A job is handed out once per message and moved on at once; the login it carries (with the
// KonnektorId of A_21457/A_21517) makes it larger than the byte variants, and boxing it would
// change every driver's match for no measurable gain.
#[allow(clippy::large_enum_variant)]
#[non_exhaustive]
pub enum SmtpAction {
    /// Write these bytes to the client.
    SendToClient(Vec<u8>),
    /// Write these bytes to the MTA. During DATA this carries message content: the runtime
    /// must not log or persist it.
    SendToUpstream(Vec<u8>),
    /// Connect to the MTA with implicit TLS (A_2011) and answer with
    /// [`SmtpEvent::UpstreamConnected`] or [`SmtpEvent::UpstreamFailed`].
    ConnectUpstream {
        host: String,
        port: u16,
        /// The login's Konnektor call context and KonnektorId: the server certificate is
        /// checked with that Konnektor's VerifyCertificate (A_2075-01).
        context: crate::konnektor::CallContext,
        konnektor_id: Option<crate::login_name::KonnektorId>,
    },
    /// Find the encryption certificates of `address` (cache, then directory) and answer with
    /// [`SmtpEvent::RecipientChecked`].
    CheckRecipient { address: String },
    /// Sign and encrypt a message (A_2019) and answer with [`SmtpEvent::Protected`].
    Protect(ProtectJob),
    /// KIM 1.5: the MTA refused the message that points to these mail data (a negative reply
    /// to the replayed envelope, to DATA or after the message): delete them from the KAS.
    /// Nothing answers; a failed deletion leaves the data to expire. Not asked for when the
    /// outcome is unknown (the MTA connection broke before its reply): the message may have
    /// been delivered, and its data must then stay.
    DiscardKasData { link: crate::kas::KasLink },
    /// Close the client connection once everything queued before has been written.
    CloseClient,
    /// Close the MTA connection once everything queued before has been written.
    CloseUpstream,
}

impl core::fmt::Debug for SmtpAction {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::SendToClient(b) => write!(f, "SendToClient(<{} bytes>)", b.len()),
            Self::SendToUpstream(b) => write!(f, "SendToUpstream(<{} bytes>)", b.len()),
            Self::ConnectUpstream { host, port, .. } => f
                .debug_struct("ConnectUpstream")
                .field("host", host)
                .field("port", port)
                .finish(),
            Self::CheckRecipient { address } => f
                .debug_struct("CheckRecipient")
                .field("address", address)
                .finish(),
            Self::DiscardKasData { link } => f
                .debug_struct("DiscardKasData")
                .field("link", link)
                .finish(),
            Self::Protect(job) => f.debug_tuple("Protect").field(job).finish(),
            Self::CloseClient => f.write_str("CloseClient"),
            Self::CloseUpstream => f.write_str("CloseUpstream"),
        }
    }
}

/// A message to protect per the KOM-LE S/MIME profile.
#[derive(Debug)]
pub struct ProtectJob {
    /// Who logged in: account, MTA and the card call context (MandantId, ClientSystemId,
    /// WorkplaceId) for the Konnektor.
    pub login: LoginName,
    /// The reverse path of `MAIL FROM`, without angle brackets.
    pub envelope_from: String,
    /// The recipients the MTA accepted (RCPT answered 2xx), in order.
    pub recipients: Vec<String>,
    /// The message as the client sent it, dot-unstuffed, CRLF line ends, without the final
    /// `.` line.
    pub message: SecretBytes,
}

/// A protected message, ready for the MTA.
#[derive(Debug)]
pub struct ProtectedMessage {
    /// The outer KOM-LE message, CRLF line ends, not dot-stuffed.
    pub message: SecretBytes,
    /// The envelope recipients to deliver to: the job's recipients minus those no certificate
    /// could be used for (A_2028). When it is a strict subset, the session replays the envelope.
    pub recipients: Vec<String>,
    /// An unprotected error mail to the sender naming the addresses left out (A_2024, A_2192),
    /// sent through the same MTA session after the message.
    pub notice: Option<Notice>,
    /// KIM 1.5: where the mail data this message points to lie on the KAS (A_19359-07). If
    /// the MTA refuses the message, the session asks for them to be deleted
    /// ([`SmtpAction::DiscardKasData`]): nobody will fetch them, and they would count against
    /// the sender's quota until they expire.
    pub kas_link: Option<crate::kas::KasLink>,
}

/// An unsigned, unencrypted mail the Clientmodul sends on its own (A_2024).
#[derive(Debug)]
pub struct Notice {
    pub envelope_from: String,
    pub recipient: String,
    /// CRLF line ends, not dot-stuffed.
    pub message: SecretBytes,
}

/// Why protecting failed; the client gets `451` with this text (A_2021, A_2025).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtectionFailure {
    /// Human-readable reason, one line, no message content.
    pub reason: String,
}

impl ProtectionFailure {
    /// A failure the spec answers with its own reply instead of the usual 451 (KIM 1.5:
    /// 521 for an exhausted KAS quota, A_22419-01; 552 X.3.4 above `maxMailSize`,
    /// A_19355-01): `line` is the whole reply line (`"521 5.2.2 text\r\n"`).
    pub fn with_reply(line: &[u8]) -> Self {
        Self {
            reason: String::from_utf8_lossy(line).trim_end().to_owned(),
        }
    }

    /// The reply code and text of a [`ProtectionFailure::with_reply`] failure: a reason that
    /// starts with a 4xx/5xx code and an enhanced status code.
    pub fn reply(&self) -> Option<(u16, &str)> {
        let (code, text) = self.reason.split_once(' ')?;
        let n: u16 = code.parse().ok().filter(|n| (400..600).contains(n))?;
        let status = text.split(' ').next()?;
        let enhanced = status.split('.').count() == 3
            && status
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            && status.starts_with(code.get(..1)?);
        (code.len() == 3 && enhanced).then_some((n, text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_22419_kas_replies_are_carried_and_plain_reasons_are_not_taken_for_replies() {
        let f = ProtectionFailure::with_reply(b"521 5.2.2 Speicherplatz erschoepft\r\n");
        assert_eq!(f.reply(), Some((521, "5.2.2 Speicherplatz erschoepft")));
        let f = ProtectionFailure::with_reply(&crate::kas::KasSendError::QuotaExceeded.reply());
        assert_eq!(f.reply().map(|r| r.0), Some(521));
        for plain in [
            "Konnektor-Operation SignDocument fehlgeschlagen (Fehler 4085)",
            "451 ohne Statuscode",
            "521 4.2.2 Klasse passt nicht",
            "99 5.2.2 zu kurz",
            "",
        ] {
            let f = ProtectionFailure {
                reason: plain.into(),
            };
            assert_eq!(f.reply(), None, "{plain}");
        }
    }
}
