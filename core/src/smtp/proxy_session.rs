//! [`SmtpSession`] as a [`ProxySession`]: the shared input/output words, translated to and
//! from the session's own [`SmtpEvent`]s and [`SmtpAction`]s by delegation.

use std::time::Instant;

use super::event::{SmtpAction, SmtpEvent};
use super::session::SmtpSession;
use crate::proxy_session::{Input, Job, JobResult, Output, ProxySession};

impl ProxySession for SmtpSession {
    fn handle_input(&mut self, input: Input<'_>, now: Instant) {
        let event = match input {
            Input::ClientData(b) => return self.handle_client_data(b, now),
            Input::UpstreamData(b) => return self.handle_upstream_data(b, now),
            Input::Timeout => return self.handle_timeout(now),
            Input::ClientClosed => SmtpEvent::ClientClosed,
            Input::UpstreamConnected => SmtpEvent::UpstreamConnected,
            Input::UpstreamFailed { reason } => SmtpEvent::UpstreamFailed { reason },
            Input::ServerCertificateRejected(r) => SmtpEvent::ServerCertificateRejected(r),
            Input::UpstreamClosed => SmtpEvent::UpstreamClosed,
            Input::JobDone(JobResult::RecipientChecked { address, verdict }) => {
                SmtpEvent::RecipientChecked { address, verdict }
            }
            Input::JobDone(JobResult::Protected(result)) => SmtpEvent::Protected(result),
            // No SMTP job is answered with the first; nothing waits for the second.
            Input::JobDone(JobResult::Opened(_) | JobResult::KasDataDiscarded) => return,
        };
        self.handle_event(event, now);
    }

    fn poll_output(&mut self) -> Option<Output> {
        match self.poll_action() {
            Some(action) => Some(match action {
                SmtpAction::SendToClient(b) => Output::SendToClient(b),
                SmtpAction::SendToUpstream(b) => Output::SendToUpstream(b),
                SmtpAction::ConnectUpstream {
                    host,
                    port,
                    context,
                    konnektor_id,
                } => Output::ConnectUpstream {
                    host,
                    port,
                    context,
                    konnektor_id,
                },
                SmtpAction::CheckRecipient { address } => {
                    Output::Run(Job::CheckRecipient { address })
                }
                SmtpAction::Protect(job) => Output::Run(Job::Protect(job)),
                SmtpAction::DiscardKasData { link } => Output::Run(Job::DiscardKasData { link }),
                SmtpAction::CloseClient => Output::CloseClient,
                SmtpAction::CloseUpstream => Output::CloseUpstream,
            }),
            None if SmtpSession::is_finished(self) => self.end.take(),
            None => None,
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        SmtpSession::poll_timeout(self)
    }

    fn is_finished(&self) -> bool {
        SmtpSession::is_finished(self)
    }
}
