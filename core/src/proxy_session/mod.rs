//! One input/output vocabulary for the two proxy sessions ([`SmtpSession`] and
//! [`Pop3Session`]), so a runtime driver, the transcript runner and the fuzz drivers are
//! written once over [`ProxySession`] instead of once per protocol.
//!
//! The shape follows quinn-proto and str0m: the driver feeds [`Input`]s with the current time,
//! drains [`Output`]s until there are none, and calls again with [`Input::Timeout`] at
//! [`ProxySession::poll_timeout`]. The jobs the session hands out (recipient check, protect,
//! open) are one [`Job`] enum and their answers one [`JobResult`] enum, so a driver has a
//! single "run a job" path. A session ends with exactly one [`Output::Ended`], after its last
//! close action, carrying the [`EndReason`] a driver logs and counts.
//!
//! ```text
//!   Input::ClientData / UpstreamData ─┐                        ┌─► Output::SendToClient / SendToUpstream
//!   Input::ClientClosed / Upstream* ──┼─► impl ProxySession ───┤   ConnectUpstream / Run(Job)
//!   Input::JobDone(JobResult) ────────┤                        │   CloseClient / CloseUpstream
//!   Input::Timeout (with now) ────────┘                        └─► Ended { reason } (once, last)
//! ```
//!
//! The inherent `handle_*` / `poll_action` methods of both sessions stay as they are; this
//! trait is implemented by delegating to them.
//!
//! [`SmtpSession`]: crate::smtp::SmtpSession
//! [`Pop3Session`]: crate::pop3::Pop3Session

mod end;
mod job;

use std::time::Instant;

pub use end::EndReason;
pub use job::{Job, JobResult};

/// A proxy session driven by a runtime: inputs in, outputs out, no I/O of its own.
pub trait ProxySession {
    /// Feeds one input; `now` is the current time (the session reads no clock).
    fn handle_input(&mut self, input: Input<'_>, now: Instant);

    /// The next thing the driver must do, or `None` until the next input. The last output of
    /// a session is [`Output::Ended`], given exactly once.
    fn poll_output(&mut self) -> Option<Output>;

    /// When [`Input::Timeout`] must be fed next, if ever.
    fn poll_timeout(&self) -> Option<Instant>;

    /// True once both sides are closed (or asked to be): no input changes anything any more.
    fn is_finished(&self) -> bool;
}

/// What a driver feeds a [`ProxySession`].
///
/// `Debug` shows the length of byte payloads, never the bytes: client and upstream data carry
/// passwords and message content (A_2005).
#[non_exhaustive]
pub enum Input<'a> {
    /// Bytes the client sent.
    ClientData(&'a [u8]),
    /// Bytes the upstream server (MTA or POP3 server) sent.
    UpstreamData(&'a [u8]),
    /// The client closed its side (or the connection broke).
    ClientClosed,
    /// The connection asked for with [`Output::ConnectUpstream`] is up, TLS included.
    UpstreamConnected,
    /// Connecting (TCP or TLS) upstream failed; `reason` is a short text without content
    /// (POP3 shows it to the client, A_2037).
    UpstreamFailed { reason: String },
    /// The connection came up, but the Konnektor did not accept the server's certificate
    /// (KOM-LE-A_2075-01); the driver has closed it. Typed, because the client's reply depends
    /// on why: SMTP answers a rejected call context with 501, everything else with 454
    /// (Tab_SMTP_Verbindung); POP3 shows the reason after `-ERR`.
    ServerCertificateRejected(crate::konnektor::ServerCertRejected),
    /// The upstream server closed its side (or the connection broke).
    UpstreamClosed,
    /// The answer to an [`Output::Run`] job.
    JobDone(JobResult),
    /// The time from [`ProxySession::poll_timeout`] has come (earlier calls are harmless).
    Timeout,
}

impl core::fmt::Debug for Input<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::ClientData(b) => write!(f, "ClientData(<{} bytes>)", b.len()),
            Self::UpstreamData(b) => write!(f, "UpstreamData(<{} bytes>)", b.len()),
            Self::ClientClosed => f.write_str("ClientClosed"),
            Self::UpstreamConnected => f.write_str("UpstreamConnected"),
            Self::UpstreamFailed { reason } => f
                .debug_struct("UpstreamFailed")
                .field("reason", reason)
                .finish(),
            Self::ServerCertificateRejected(r) => {
                f.debug_tuple("ServerCertificateRejected").field(r).finish()
            }
            Self::UpstreamClosed => f.write_str("UpstreamClosed"),
            Self::JobDone(r) => f.debug_tuple("JobDone").field(r).finish(),
            Self::Timeout => f.write_str("Timeout"),
        }
    }
}

/// What a [`ProxySession`] asks its driver to do.
///
/// `Debug` shows the length of byte payloads, never the bytes (they carry `AUTH`/`PASS` lines
/// and message content).
// A job is handed out once per message and moved on at once; the login it carries (with the
// KonnektorId of A_21457/A_21517) makes it larger than the byte variants, and boxing it would
// change every driver's match for no measurable gain.
#[allow(clippy::large_enum_variant)]
#[non_exhaustive]
pub enum Output {
    /// Write these bytes to the client.
    SendToClient(Vec<u8>),
    /// Write these bytes to the upstream server.
    SendToUpstream(Vec<u8>),
    /// Connect upstream with implicit TLS (certificate checked) and answer with
    /// [`Input::UpstreamConnected`] or [`Input::UpstreamFailed`].
    ConnectUpstream {
        host: String,
        port: u16,
        /// The login's Konnektor call context and KonnektorId: the server certificate is
        /// checked with that Konnektor's VerifyCertificate (A_2075-01).
        context: crate::konnektor::CallContext,
        konnektor_id: Option<crate::login_name::KonnektorId>,
    },
    /// Close the client connection once everything queued before has been written.
    CloseClient,
    /// Close the upstream connection once everything queued before has been written.
    CloseUpstream,
    /// Run this job and answer with [`Input::JobDone`] (exactly once per job).
    Run(Job),
    /// The session is over; nothing follows. Given once, after the close actions.
    Ended { reason: EndReason },
}

impl core::fmt::Debug for Output {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::SendToClient(b) => write!(f, "SendToClient(<{} bytes>)", b.len()),
            Self::SendToUpstream(b) => write!(f, "SendToUpstream(<{} bytes>)", b.len()),
            Self::ConnectUpstream { host, port, .. } => f
                .debug_struct("ConnectUpstream")
                .field("host", host)
                .field("port", port)
                .finish(),
            Self::CloseClient => f.write_str("CloseClient"),
            Self::CloseUpstream => f.write_str("CloseUpstream"),
            Self::Run(job) => f.debug_tuple("Run").field(job).finish(),
            Self::Ended { reason } => f.debug_struct("Ended").field("reason", reason).finish(),
        }
    }
}

/// Hands out [`Output::Ended`] once, after the session finished and its own actions were
/// drained; both sessions keep one.
#[derive(Debug, Default)]
pub(crate) struct EndReport {
    reason: Option<EndReason>,
    reported: bool,
}

impl EndReport {
    /// Records why the session ends; the first reason wins (a close triggers follow-up closes).
    pub(crate) fn record(&mut self, reason: EndReason) {
        self.reason.get_or_insert(reason);
    }

    /// The [`Output::Ended`] to give now that the session is finished and drained, once.
    pub(crate) fn take(&mut self) -> Option<Output> {
        if self.reported {
            return None;
        }
        self.reported = true;
        Some(Output::Ended {
            reason: self.reason.unwrap_or(EndReason::Unspecified),
        })
    }
}
