//! The PROXY and PROCESS states (§3.4.3, §3.4.4): commands forwarded unchanged except TOP
//! (KOM-LE-A_2040, A_2041), replies matched to them in order, RETR messages opened.

use std::time::Instant;

use zeroize::Zeroize;

use super::command::{self, Command, ReplyShape};
use super::event::{OpenFailure, OpenJob, OpenedMessage, Pop3Action};
use super::multiline::dot_stuff;
use super::replies::Stop;
use super::reply;
use super::session::{Phase, Pop3Session, SERVER_UNAVAILABLE, consume_front};

impl Pop3Session {
    /// PROXY state: forward unchanged except TOP (A_2040, A_2041) and remember the reply
    /// shape. Unparseable lines are forwarded too; the server answers them with one line.
    pub(super) fn proxy_line(&mut self, line: &[u8], now: Instant) {
        let text = reply::trim_eol(line);
        let (shape, quit, rewritten) = match command::parse(text) {
            Ok(cmd) => {
                let rewritten = match cmd {
                    Command::Top { message, lines } => command::top_with_zero_lines(message, lines),
                    _ => None,
                };
                (cmd.reply_shape(), cmd == Command::Quit, rewritten)
            }
            Err(_) => (ReplyShape::SingleLine, false, None),
        };
        let Phase::Proxy { replies, .. } = &mut self.phase else {
            return;
        };
        if replies.outstanding() == 0 {
            self.server_owes_since = Some(now);
        }
        replies.expect(shape, quit);
        self.server_idle_since = now;
        match rewritten {
            Some(bytes) => self.send_upstream(&bytes),
            None => self.send_upstream(line),
        }
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
            self.server_owes_since = (after > 0).then_some(now);
        }
        match end {
            Some(Stop::LineTooLong) => {
                self.send_client(&reply::err(SERVER_UNAVAILABLE));
                self.finish();
            }
            // QUIT answered (A_2038: the +OK is relayed, then both sides close).
            Some(_) => self.finish(),
            None => {
                if let Some(job) = job {
                    self.actions.push_back(Pop3Action::Open(job));
                } else if self.upstream_gone {
                    self.finish();
                } else if after < before {
                    // Room in the pipeline again: commands held back may go now.
                    self.process_client(now, false);
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
                let (mut body, octets) = dot_stuff(opened.message.as_slice());
                // RFC 1939 §5 RETR: `+OK` then the message; the size is that of what the
                // client actually receives, not the encrypted size the server announced.
                self.send_client(&reply::ok(&format!("{octets} octets")));
                self.send_client(&body);
                body.zeroize();
            }
            Err(failure) => self.send_client(&reply::err(&failure.reason)),
        }
        self.server_idle_since = now;
        if self.upstream_gone && self.upstream_in.is_empty() {
            self.finish();
            return;
        }
        self.process_replies(now);
        if !self.is_finished() {
            self.process_client(now, false);
        }
    }
}
