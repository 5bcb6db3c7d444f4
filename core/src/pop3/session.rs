//! The POP3 proxy session (states of Abb_Status_CM_Empfang): public API, dispatch of inputs,
//! timers, logging in upstream and the closing rules (KOM-LE-A_2038, A_2039). The states live in
//! their own files: [`connect`](super::connect) (CONNECT, Tab_POP3_Ant_Init) and
//! [`proxy`](super::proxy) (PROXY and PROCESS).

use std::collections::VecDeque;
use std::time::Instant;

use zeroize::Zeroize;

use super::canonical::CanonicalCommand;
use super::config::Pop3Config;
use super::event::{Pop3Action, Pop3Event};
use super::replies::ReplyReader;
use super::reply;
use super::upstream::{LoginStep, UpstreamLogin};
use crate::login_name::LoginName;

/// Up to this size, answers for the client are joined into one write.
const JOIN_LIMIT: usize = 64 * 1024;
use crate::proxy_session::{EndReason, EndReport};
use crate::secret::Password;

/// A_2037: the server cannot be reached.
pub const SERVER_UNREACHABLE: &str = "Der POP3-Server ist nicht erreichbar";
/// A_2037: the server refused the session or does not speak POP3.
pub const SERVER_UNAVAILABLE: &str = "Der POP3-Server ist nicht verfuegbar";
/// A_2038: the server did not answer in time.
pub const TIMEOUT: &str = "timeout";

pub(super) enum Phase {
    /// CONNECT: answering the client ourselves until the credentials are complete.
    Connect {
        user: Option<LoginName>,
        /// `AUTH PLAIN` without initial response was answered with `+ `; the next line is
        /// the response.
        plain_pending: bool,
    },
    /// Waiting for the TLS connection to the server (A_2033).
    Connecting {
        login: LoginName,
        password: Password,
    },
    /// Logging in to the server on the client's behalf (A_2034, A_2035).
    LoggingIn(UpstreamLogin),
    /// PROXY (A_2040), including PROCESS while `opening` (a RETR message is with the
    /// Konnektor; later replies wait in the upstream buffer).
    Proxy {
        login: LoginName,
        replies: ReplyReader,
        opening: bool,
    },
    Finished,
}

#[derive(Clone, Copy)]
enum Deadline {
    ClientIdle,
    ServerResponse,
    ServerIdle,
}

/// One client connection of the POP3 proxy. See the [module docs](super) for the data flow.
pub struct Pop3Session {
    pub(super) config: Pop3Config,
    pub(super) phase: Phase,
    pub(super) actions: VecDeque<Pop3Action>,
    /// Client bytes not yet processed: a partial line, or lines held back while the server
    /// connection is being set up or too many commands are outstanding. May hold a password.
    pub(super) client_in: Vec<u8>,
    /// Server bytes not yet processed: a partial status line, or replies after a RETR
    /// message whose opening is pending. May hold message content.
    pub(super) upstream_in: Vec<u8>,
    /// A server connection exists or is being made (so closing must close it).
    pub(super) upstream_open: bool,
    /// The server hung up while a message was being opened; close after delivering it.
    pub(super) upstream_gone: bool,
    pub(super) commands_before_auth: usize,
    pub(super) failed_logins: u32,
    /// Since when the session waits for the client: its last complete command line, or the
    /// module's last complete answer. Bytes of an unfinished line do not count, so a client
    /// trickling one byte at a time cannot keep a session for ever.
    pub(super) client_seen: Instant,
    /// A QUIT went to the server: nothing the client sends after it is relayed.
    pub(super) quit_forwarded: bool,
    /// Since when the server owes an answer (reset on every byte it sends).
    pub(super) server_owes_since: Option<Instant>,
    /// When the server connection last carried a command or finished a reply.
    pub(super) server_idle_since: Instant,
    /// Why the session ended, for the one [`Output::Ended`](crate::proxy_session::Output).
    pub(super) end: EndReport,
}

impl Pop3Session {
    /// Starts a session for a freshly accepted client and queues the greeting (§3.4.2.1).
    pub fn new(config: Pop3Config, now: Instant) -> Self {
        let greeting = reply::ok(&config.greeting);
        let mut session = Self {
            config,
            phase: Phase::Connect {
                user: None,
                plain_pending: false,
            },
            actions: VecDeque::new(),
            client_in: Vec::new(),
            upstream_in: Vec::new(),
            upstream_open: false,
            upstream_gone: false,
            commands_before_auth: 0,
            failed_logins: 0,
            client_seen: now,
            quit_forwarded: false,
            server_owes_since: None,
            server_idle_since: now,
            end: EndReport::default(),
        };
        session.send_client(&greeting);
        session
    }

    pub fn handle_client_data(&mut self, bytes: &[u8], now: Instant) {
        // After QUIT the session only waits for the server's `+OK`; nothing more is read.
        if self.is_finished() || self.quit_forwarded {
            return;
        }
        self.client_in.extend_from_slice(bytes);
        self.process_client(now);
        // Lines held back (login in progress, pipeline full, RETR pending) are bounded too.
        let held_max = self.config.max_line_length * (self.config.max_pipelined_commands + 1);
        if !self.is_finished() && self.client_in.len() > held_max {
            self.send_client(&reply::err("Zu viele Kommandos"));
            self.finish(EndReason::ClientFlood);
        }
    }

    pub fn handle_upstream_data(&mut self, bytes: &[u8], now: Instant) {
        if self.is_finished() || !self.upstream_open {
            return;
        }
        if self.server_owes_since.is_some() {
            self.server_owes_since = Some(now);
        }
        self.upstream_in.extend_from_slice(bytes);
        self.process_upstream(now);
        // While a message is being opened the server owes nothing (commands after RETR are
        // held back), so whatever it sends meanwhile must stay small.
        if !self.is_finished() && self.upstream_in.len() > self.config.max_reply_line_length {
            self.send_client(&reply::err(SERVER_UNAVAILABLE));
            self.finish(EndReason::UpstreamProtocolError);
        }
    }

    pub fn handle_event(&mut self, event: Pop3Event, now: Instant) {
        if self.is_finished() {
            return;
        }
        match event {
            Pop3Event::ClientClosed => self.client_closed(now),
            Pop3Event::UpstreamConnected => {
                if let Phase::Connecting { .. } = self.phase {
                    let Phase::Connecting { login, password } =
                        core::mem::replace(&mut self.phase, Phase::Finished)
                    else {
                        return;
                    };
                    self.phase = Phase::LoggingIn(UpstreamLogin::new(login, password));
                    self.server_owes_since = Some(now);
                    self.process_upstream(now);
                }
            }
            Pop3Event::UpstreamFailed { reason } => {
                if let Phase::Connecting { .. } = self.phase {
                    self.upstream_open = false;
                    let text = format!("{SERVER_UNREACHABLE}: {reason}");
                    self.back_to_connect(&text, now);
                }
            }
            Pop3Event::UpstreamClosed => self.upstream_closed(now),
            Pop3Event::Opened(result) => self.opened(result, now),
        }
    }

    /// Acts on an expired deadline; earlier calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some((at, kind)) = self.deadline() else {
            return;
        };
        if now < at {
            return;
        }
        match kind {
            Deadline::ClientIdle | Deadline::ServerResponse => {
                // A_2038: `-ERR timeout`, then close (the server side with it, A_2039); the
                // same for a silent client (LIMITS.md, client_idle), in CONNECT as after
                // the login.
                self.send_client(&reply::err(TIMEOUT));
                self.finish(match kind {
                    Deadline::ClientIdle => EndReason::ClientIdle,
                    _ => EndReason::UpstreamTimeout,
                });
            }
            // A_2039: the idle server connection is closed — without QUIT, so the server
            // does not enter UPDATE and no DELE the client sent takes effect unconfirmed.
            // A_2038 then closes the client, which cannot continue without a server.
            Deadline::ServerIdle => self.finish(EndReason::UpstreamIdle),
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline().map(|(at, _)| at)
    }

    pub fn poll_action(&mut self) -> Option<Pop3Action> {
        self.actions.pop_front()
    }

    /// Both connections are closed (or asked to be) and nothing more will happen.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Finished)
    }

    fn deadline(&self) -> Option<(Instant, Deadline)> {
        let response = |since: Option<Instant>| {
            since.map(|s| {
                (
                    s + self.config.server_response_timeout,
                    Deadline::ServerResponse,
                )
            })
        };
        match &self.phase {
            Phase::Connect { .. } => Some((
                self.client_seen + self.config.client_idle_timeout,
                Deadline::ClientIdle,
            )),
            Phase::Connecting { .. } | Phase::LoggingIn(_) => response(self.server_owes_since),
            // The Konnektor call has its own timeout in the runtime (Tab_Konf_Param).
            Phase::Proxy { opening: true, .. } => None,
            Phase::Proxy { replies, .. } if replies.outstanding() > 0 => {
                response(self.server_owes_since)
            }
            // Waiting for the client: its idle limit (with `-ERR timeout`) and the server
            // connection's (A_2039) both run; the earlier wins, the client's on a tie.
            Phase::Proxy { .. } => {
                let client = (
                    self.client_seen + self.config.client_idle_timeout,
                    Deadline::ClientIdle,
                );
                let server = (
                    self.server_idle_since + self.config.server_idle_timeout,
                    Deadline::ServerIdle,
                );
                Some(if client.0 <= server.0 { client } else { server })
            }
            Phase::Finished => None,
        }
    }

    // ---- client side -------------------------------------------------------------------

    /// Handles complete client lines as far as the state allows.
    pub(super) fn process_client(&mut self, now: Instant) {
        loop {
            if self.quit_forwarded {
                return;
            }
            let ready = match &self.phase {
                Phase::Connect { .. } => true,
                // Commands after a RETR wait until its message is opened and delivered: the
                // server's answers to them would otherwise pile up here while the Konnektor
                // works, up to a whole message per pipelined RETR.
                Phase::Proxy {
                    replies, opening, ..
                } => {
                    !*opening
                        && !replies.message_outstanding()
                        && replies.outstanding() < self.config.max_pipelined_commands
                }
                _ => false,
            };
            if !ready {
                return;
            }
            let Some(mut line) = self.take_client_line() else {
                return;
            };
            self.client_seen = now;
            if matches!(self.phase, Phase::Connect { .. }) {
                self.connect_line(&line, now);
            } else {
                self.proxy_line(&line, now);
            }
            line.zeroize();
        }
    }

    /// The next complete line with its line end, or `None`. An overlong line ends the
    /// session with `-ERR` (the limit keeps a client from filling memory).
    pub(super) fn take_client_line(&mut self) -> Option<Vec<u8>> {
        let max = self.config.max_line_length;
        match self.client_in.iter().position(|b| *b == b'\n') {
            Some(lf) if lf < max => {
                let line = self.client_in[..=lf].to_vec();
                consume_front(&mut self.client_in, lf + 1);
                Some(line)
            }
            None if self.client_in.len() <= max => None,
            _ => {
                self.client_in.zeroize();
                self.send_client(&reply::err("Zeile zu lang"));
                self.finish(EndReason::ClientFlood);
                None
            }
        }
    }

    /// The client went away. Of what it sent and the module still holds back, at most a QUIT
    /// reaches the server, and only when it is the client's next held command and no message
    /// (RETR/TOP) is still on its way to the client; then the server connection is closed.
    /// Never a QUIT of the module's own.
    ///
    /// Why (a deviation from A_2039's "forward what was not yet transferred"): QUIT makes the
    /// server enter UPDATE and commit the DELEs (RFC 1939 §6). Held-back commands are typically
    /// a `DELE n` + `QUIT` pipelined behind a `RETR n` whose message is still with the
    /// Konnektor: relaying them after the client vanished would delete a message the client
    /// never received. Without QUIT the server commits nothing and the message is fetched again
    /// next time: a duplicate at worst, never a loss. A client that sent QUIT behind commands
    /// still in flight (and hung up without waiting for `+OK`) still gets its QUIT.
    pub(super) fn client_closed(&mut self, now: Instant) {
        let settled = matches!(
            &self.phase,
            Phase::Proxy { replies, opening, .. } if !*opening && !replies.message_outstanding()
        );
        if settled && !self.quit_forwarded {
            let next = self.client_in.iter().position(|b| *b == b'\n');
            let quit = next.is_some_and(|lf| {
                CanonicalCommand::parse(reply::trim_eol(&self.client_in[..=lf]))
                    == Ok(CanonicalCommand::Quit)
            });
            if quit {
                self.relay(CanonicalCommand::Quit, now);
            }
        }
        self.client_in.zeroize();
        self.finish(EndReason::ClientClosed);
    }

    // ---- server side -------------------------------------------------------------------

    pub(super) fn process_upstream(&mut self, now: Instant) {
        match &mut self.phase {
            Phase::LoggingIn(_) => self.process_login(now),
            Phase::Proxy { .. } => self.process_replies(now),
            // Nothing is expected before the greeting or after the session: bytes that arrive
            // while connecting wait for the login.
            _ => {}
        }
    }

    pub(super) fn process_login(&mut self, now: Instant) {
        loop {
            let Phase::LoggingIn(login) = &mut self.phase else {
                return;
            };
            let Some(lf) = self.upstream_in.iter().position(|b| *b == b'\n') else {
                if self.upstream_in.len() > self.config.max_reply_line_length {
                    self.back_to_connect(SERVER_UNAVAILABLE, now);
                }
                return;
            };
            let step = login.on_line(&self.upstream_in[..=lf]);
            consume_front(&mut self.upstream_in, lf + 1);
            match step {
                LoginStep::Wait => {}
                LoginStep::Send(mut bytes) => {
                    self.server_owes_since = Some(now);
                    self.send_upstream(&bytes);
                    bytes.zeroize();
                }
                LoginStep::LoggedIn(line) => {
                    let Phase::LoggingIn(login) =
                        core::mem::replace(&mut self.phase, Phase::Finished)
                    else {
                        return;
                    };
                    self.phase = Phase::Proxy {
                        login: login.into_login(),
                        replies: ReplyReader::new(
                            self.config.max_reply_line_length,
                            self.config.max_message_size,
                        ),
                        opening: false,
                    };
                    self.server_owes_since = None;
                    self.server_idle_since = now;
                    self.client_seen = now;
                    // Tab_POP3_Verbindung: +OK — the server's own line, as in §3.4.5.
                    self.send_client(&line);
                    self.process_replies(now);
                    self.process_client(now);
                    return;
                }
                LoginStep::Rejected => {
                    // Still in AUTHORIZATION: QUIT commits nothing here (RFC 1939 §6).
                    self.send_upstream(&CanonicalCommand::Quit.to_line());
                    self.login_failed(now);
                    return;
                }
                LoginStep::Unavailable => {
                    self.back_to_connect(SERVER_UNAVAILABLE, now);
                    return;
                }
            }
        }
    }

    pub(super) fn upstream_closed(&mut self, now: Instant) {
        self.upstream_open = false;
        match &self.phase {
            Phase::Connecting { .. } | Phase::LoggingIn(_) => {
                self.back_to_connect(SERVER_UNAVAILABLE, now);
            }
            // A_2038: what the server sent is delivered first; a message with the Konnektor
            // is still delivered, then the client is closed.
            Phase::Proxy { opening: true, .. } => self.upstream_gone = true,
            Phase::Proxy { .. } => self.server_gone(),
            _ => self.finish(EndReason::UpstreamClosed),
        }
    }

    /// The server connection is gone in the PROXY state (A_2038): everything complete it
    /// sent has been relayed. If the client is still owed an answer — a reply cut off in the
    /// middle (a status line, a multi-line block, a RETR message) or commands that never
    /// reached the server — it gets `-ERR` with the text for an unavailable server
    /// (Tab_POP3_Verbindung, A_2037) instead of silence or half a message; then it is closed.
    pub(super) fn server_gone(&mut self) {
        let Phase::Proxy { replies, .. } = &self.phase else {
            self.finish(EndReason::UpstreamClosed);
            return;
        };
        let owed = replies.outstanding() > 0 || self.client_in.contains(&b'\n');
        if owed {
            self.send_client(&reply::err(SERVER_UNAVAILABLE));
        }
        self.finish(EndReason::UpstreamClosed);
    }

    // ---- state changes -----------------------------------------------------------------

    /// Answers `-ERR text`, drops the server connection and the credentials, and lets the
    /// client try again.
    pub(super) fn back_to_connect(&mut self, text: &str, now: Instant) {
        self.send_client(&reply::err(text));
        if self.upstream_open {
            self.actions.push_back(Pop3Action::CloseUpstream);
            self.upstream_open = false;
        }
        self.upstream_in.zeroize();
        self.server_owes_since = None;
        self.client_seen = now;
        self.phase = Phase::Connect {
            user: None,
            plain_pending: false,
        };
        self.process_client(now);
    }

    /// Closes what is open (A_2038/A_2039) and forgets all buffered data.
    pub(super) fn finish(&mut self, reason: EndReason) {
        if self.is_finished() {
            return;
        }
        self.end.record(reason);
        if self.upstream_open {
            self.actions.push_back(Pop3Action::CloseUpstream);
            self.upstream_open = false;
        }
        self.actions.push_back(Pop3Action::CloseClient);
        self.phase = Phase::Finished;
        self.client_in.zeroize();
        self.upstream_in.zeroize();
    }

    pub(super) fn send_client(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        // Small answers are joined into one write; a large block (an opened mail) is never
        // grown, that would copy it.
        if let Some(Pop3Action::SendToClient(last)) = self.actions.back_mut()
            && last.len() < JOIN_LIMIT
        {
            last.extend_from_slice(bytes);
        } else {
            self.actions
                .push_back(Pop3Action::SendToClient(bytes.to_vec()));
        }
    }

    /// Queues a large block for the client as it is, without copying it (the opened mail of a
    /// RETR, issue 17: the buffer was stuffed in place).
    pub(super) fn send_client_owned(&mut self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.actions.push_back(Pop3Action::SendToClient(bytes));
        }
    }

    /// Forwards a client command in the PROXY state: the only way client input reaches the
    /// server after the login is the module's own serialisation of a parsed command
    /// ([`CanonicalCommand::to_line`]).
    pub(super) fn forward(&mut self, command: &CanonicalCommand) {
        if *command == CanonicalCommand::Quit {
            self.quit_forwarded = true;
        }
        self.send_upstream(&command.to_line());
    }

    /// Raw bytes to the server: only the login steps (A_2034, A_2035) use this, which is why
    /// it is private to this file; client commands go through [`Self::forward`].
    fn send_upstream(&mut self, bytes: &[u8]) {
        if let Some(Pop3Action::SendToUpstream(last)) = self.actions.back_mut() {
            last.extend_from_slice(bytes);
        } else {
            self.actions
                .push_back(Pop3Action::SendToUpstream(bytes.to_vec()));
        }
    }
}

impl Drop for Pop3Session {
    fn drop(&mut self) {
        self.client_in.zeroize();
        self.upstream_in.zeroize();
    }
}

impl core::fmt::Debug for Pop3Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let phase = match &self.phase {
            Phase::Connect { .. } => "CONNECT",
            Phase::Connecting { .. } => "CONNECTING",
            Phase::LoggingIn(_) => "LOGIN",
            Phase::Proxy { opening: true, .. } => "PROCESS",
            Phase::Proxy { .. } => "PROXY",
            Phase::Finished => "FINISHED",
        };
        f.debug_struct("Pop3Session")
            .field("phase", &phase)
            .field("pending_actions", &self.actions.len())
            .finish_non_exhaustive()
    }
}

/// Removes the first `n` bytes and wipes the vacated tail, which still holds copies of
/// message content or passwords after the shift (A_2005).
pub(super) fn consume_front(buf: &mut Vec<u8>, n: usize) {
    if n == 0 {
        return;
    }
    let old_len = buf.len();
    buf.copy_within(n.., 0);
    buf[old_len - n..].zeroize();
    buf.truncate(old_len - n);
}

#[cfg(test)]
mod tests {
    use super::consume_front;

    #[test]
    fn consume_front_keeps_the_rest_in_order() {
        let mut v = b"abcdef".to_vec();
        consume_front(&mut v, 2);
        assert_eq!(v, b"cdef");
        consume_front(&mut v, 4);
        assert!(v.is_empty());
    }
}
