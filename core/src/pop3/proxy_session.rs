//! [`Pop3Session`] as a [`ProxySession`]: the shared input/output words, translated to and
//! from the session's own [`Pop3Event`]s and [`Pop3Action`]s by delegation.

use std::time::Instant;

use super::event::{Pop3Action, Pop3Event};
use super::session::Pop3Session;
use crate::proxy_session::{Input, Job, JobResult, Output, ProxySession};

impl ProxySession for Pop3Session {
    fn handle_input(&mut self, input: Input<'_>, now: Instant) {
        let event = match input {
            Input::ClientData(b) => return self.handle_client_data(b, now),
            Input::UpstreamData(b) => return self.handle_upstream_data(b, now),
            Input::Timeout => return self.handle_timeout(now),
            Input::ClientClosed => Pop3Event::ClientClosed,
            Input::UpstreamConnected => Pop3Event::UpstreamConnected,
            Input::UpstreamFailed { reason } => Pop3Event::UpstreamFailed { reason },
            Input::ServerCertificateRejected(r) => Pop3Event::UpstreamFailed { reason: r.reason() },
            Input::UpstreamClosed => Pop3Event::UpstreamClosed,
            Input::JobDone(JobResult::Opened(result)) => Pop3Event::Opened(result),
            // No POP3 job is answered with these: nothing waits for them.
            Input::JobDone(
                JobResult::RecipientChecked { .. }
                | JobResult::Protected(_)
                | JobResult::KasDataDiscarded,
            ) => {
                return;
            }
        };
        self.handle_event(event, now);
    }

    fn poll_output(&mut self) -> Option<Output> {
        match self.poll_action() {
            Some(action) => Some(match action {
                Pop3Action::SendToClient(b) => Output::SendToClient(b),
                Pop3Action::SendToUpstream(b) => Output::SendToUpstream(b),
                Pop3Action::ConnectUpstream {
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
                Pop3Action::Open(job) => Output::Run(Job::Open(job)),
                Pop3Action::CloseClient => Output::CloseClient,
                Pop3Action::CloseUpstream => Output::CloseUpstream,
            }),
            None if Pop3Session::is_finished(self) => self.end.take(),
            None => None,
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Pop3Session::poll_timeout(self)
    }

    fn is_finished(&self) -> bool {
        Pop3Session::is_finished(self)
    }
}
