//! The PROXY and PROCESS states (§3.4.3, §3.4.4): commands forwarded in their canonical form
//! (KOM-LE-A_2040, default deny, see [`canonical`](super::canonical)) with `TOP n N` as
//! `TOP n 0` (A_2041), replies matched to them in order, RETR messages opened.

use std::time::Instant;

use zeroize::Zeroize;

use super::canonical::CanonicalCommand;
use super::event::{OpenFailure, OpenJob, OpenedMessage, Pop3Action};
use super::multiline::dot_stuff_in_place;
use super::replies::Stop;
use super::reply;
use super::session::{Phase, Pop3Session, SERVER_UNAVAILABLE, consume_front};
use crate::proxy_session::EndReason;

impl Pop3Session {
    /// PROXY state: a command the module understands goes to the server as the module writes
    /// it (A_2040, A_2041); anything else is answered with `-ERR` here, in the order of the
    /// client's commands, and never relayed. After a QUIT nothing more is relayed.
    pub(super) fn proxy_line(&mut self, line: &[u8], now: Instant) {
        if self.quit_forwarded {
            return;
        }
        let parsed = CanonicalCommand::parse(reply::trim_eol(line));
        let Phase::Proxy { replies, .. } = &mut self.phase else {
            return;
        };
        match parsed {
            Ok(command) => self.relay(command, now),
            Err(refusal) => {
                let mut client = Vec::new();
                replies.answer_locally(reply::err(refusal.text()), &mut client);
                self.send_client(&client);
            }
        }
    }

    /// Sends a parsed command to the server and records the reply it owes.
    pub(super) fn relay(&mut self, command: CanonicalCommand, now: Instant) {
        let Phase::Proxy { replies, .. } = &mut self.phase else {
            return;
        };
        let command = command.with_zero_top_lines();
        if replies.outstanding() == 0 {
            self.server_owes_since = Some(now);
        }
        if matches!(command, CanonicalCommand::Top { .. }) {
            replies.expect_top();
        } else {
            replies.expect(command.reply_shape(), command == CanonicalCommand::Quit);
        }
        self.server_idle_since = now;
        self.forward(&command);
    }

    pub(super) fn process_replies(&mut self, now: Instant) {
        let Phase::Proxy {
            login,
            replies,
            opening,
        } = &mut self.phase
        else {
            return;
        };
        if *opening {
            return;
        }
        let before = replies.outstanding();
        let mut client = Vec::new();
        let (used, stop) = replies.feed(&self.upstream_in, &mut client);
        let after = replies.outstanding();
        let mut job = None;
        let mut end = None;
        match stop {
            Some(Stop::Message(message)) => {
                *opening = true;
                job = Some(OpenJob {
                    login: login.clone(),
                    message,
                });
            }
            Some(other) => end = Some(other),
            None => {}
        }
        consume_front(&mut self.upstream_in, used);
        self.send_client(&client);
        client.zeroize();
        if after < before {
            self.server_idle_since = now;
            self.client_seen = now;
            self.server_owes_since = (after > 0).then_some(now);
        }
        match end {
            Some(Stop::LineTooLong) => {
                self.send_client(&reply::err(SERVER_UNAVAILABLE));
                self.finish(EndReason::UpstreamProtocolError);
            }
            // QUIT answered (A_2038: the +OK is relayed, then both sides close).
            Some(_) => self.finish(EndReason::ClientQuit),
            None => {
                if let Some(job) = job {
                    self.actions.push_back(Pop3Action::Open(job));
                } else if self.upstream_gone {
                    self.server_gone();
                } else if after < before {
                    // Room in the pipeline again: commands held back may go now.
                    self.process_client(now);
                }
            }
        }
    }

    /// PROCESS → PROXY: the client gets the processed message with its true size, or `-ERR`.
    pub(super) fn opened(&mut self, result: Result<OpenedMessage, OpenFailure>, now: Instant) {
        let Phase::Proxy { opening, .. } = &mut self.phase else {
            return;
        };
        if !*opening {
            return;
        }
        *opening = false;
        match result {
            Ok(opened) => {
                // Stuffed in its own buffer and handed on as it is: a mail from the KAS can be
                // hundreds of MB, and every copy here would cost that much again (issue 17).
                let mut message = opened.message;
                let mut body = core::mem::take(message.as_mut_vec());
                let octets = dot_stuff_in_place(&mut body);
                // RFC 1939 §5 RETR: `+OK` then the message; the size is that of what the
                // client actually receives, not the encrypted size the server announced.
                self.send_client(&reply::ok(&format!("{octets} octets")));
                self.send_client_owned(body);
            }
            Err(failure) => self.send_client(&reply::err(&failure.reason)),
        }
        self.server_idle_since = now;
        self.client_seen = now;
        if self.upstream_gone && self.upstream_in.is_empty() {
            self.server_gone();
            return;
        }
        self.process_replies(now);
        if !self.is_finished() {
            self.process_client(now);
        }
    }
}
