//! What goes into and comes out of a [`Pop3Session`](super::Pop3Session).

use crate::login_name::LoginName;
use crate::secret::SecretBytes;

/// Results of actions the session asked for, and connection events.
#[derive(Debug)]
#[non_exhaustive]
pub enum Pop3Event {
    /// The client closed its side (or the connection broke).
    ClientClosed,
    /// The connection asked for with [`Pop3Action::ConnectUpstream`] is up, TLS included
    /// (implicit TLS, certificate checked).
    UpstreamConnected,
    /// Connecting (TCP or TLS) to the POP3 server failed.
    UpstreamFailed { reason: String },
    /// The POP3 server closed its side (or the connection broke).
    UpstreamClosed,
    /// Answer to [`Pop3Action::Open`].
    Opened(Result<OpenedMessage, OpenFailure>),
}

/// Something the runtime must do for the session. Its `Debug` output shows only the sizes of
/// the byte payloads, which carry passwords and message content (A_2005).
#[non_exhaustive]
pub enum Pop3Action {
    /// Write these bytes to the client. A `RETR` answer carries message content: the runtime
    /// must not log or persist it.
    SendToClient(Vec<u8>),
    /// Write these bytes to the POP3 server. The login step carries the password (`PASS`,
    /// `AUTH PLAIN`): the runtime must not log it.
    SendToUpstream(Vec<u8>),
    /// Connect to the POP3 server with implicit TLS and answer with
    /// [`Pop3Event::UpstreamConnected`] or [`Pop3Event::UpstreamFailed`].
    ConnectUpstream {
        host: String,
        port: u16,
        /// The login's Konnektor call context and KonnektorId: the server certificate is
        /// checked with that Konnektor's VerifyCertificate (A_2075-01).
        context: crate::konnektor::CallContext,
        konnektor_id: Option<crate::login_name::KonnektorId>,
    },
    /// Decrypt and verify a retrieved message (§3.4.4) and answer with [`Pop3Event::Opened`].
    /// At most one job is outstanding per session.
    Open(OpenJob),
    /// Close the client connection once everything queued before has been written.
    CloseClient,
    /// Close the POP3 server connection once everything queued before has been written.
    CloseUpstream,
}

impl core::fmt::Debug for Pop3Action {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::SendToClient(b) => write!(f, "SendToClient(<{} bytes>)", b.len()),
            Self::SendToUpstream(b) => write!(f, "SendToUpstream(<{} bytes>)", b.len()),
            Self::ConnectUpstream { host, port, .. } => f
                .debug_struct("ConnectUpstream")
                .field("host", host)
                .field("port", port)
                .finish(),
            Self::Open(job) => f.debug_tuple("Open").field(job).finish(),
            Self::CloseClient => f.write_str("CloseClient"),
            Self::CloseUpstream => f.write_str("CloseUpstream"),
        }
    }
}

/// A message fetched with `RETR`, to be turned into what the client gets.
#[derive(Debug)]
pub struct OpenJob {
    /// Who fetches: the account (its address selects the decryption keys, A_2043–2045) and
    /// the card call context for the Konnektor.
    pub login: LoginName,
    /// The message as the server sent it, dot-unstuffed, without the final `.` line.
    pub message: SecretBytes,
}

/// The processed message: decrypted and verified, an error mail, or the unchanged input for a
/// non-KOM-LE message (A_21390).
#[derive(Debug)]
pub struct OpenedMessage {
    /// What the client gets, not dot-stuffed; CRLF line ends (bare LF is normalised).
    pub message: SecretBytes,
}

/// Why no message can be delivered at all; the client gets `-ERR` with this text. (Failures
/// the user should read about arrive as an error mail in [`OpenedMessage`] instead, A_2046.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenFailure {
    /// Human-readable reason, one line, no message content.
    pub reason: String,
}
