//! The session object: public API, dispatch of inputs, timers and the closing rules
//! (KOM-LE-A_2016, A_2017). The three phases live in their own files:
//! [`connect`](super::connect) (Tab_SMTP_Ant_Init and SASL towards the client),
//! [`upstream_login`](super::upstream_login) (logging into the MTA, Tab_SMTP_Verbindung) and
//! [`proxy`](super::proxy) (relaying, RCPT check, DATA and the protected hand-over).

use std::collections::VecDeque;
use std::time::Instant;

use super::command::{CanonicalCommand, Domain};
use super::config::SmtpConfig;
use super::connect::AuthStep;
use super::event::{SmtpAction, SmtpEvent};
use super::proxy::{Envelope, Proxy, StuffedMessage};
use super::reply::{self, MalformedReply, ReplyCollector};
use super::upstream_login::{Handshake, PendingLogin, SaslLine};
use crate::line_buffer::{Line, LineBuffer};
use crate::login_name::LoginName;
use crate::proxy_session::{EndReason, EndReport};

/// How much a client may send ahead (pipelining) while the session waits for the MTA, the
/// directory or the Konnektor; more is treated as abuse.
const MAX_PIPELINED_BYTES: usize = 64 * 1024;

/// Where the session stands.
#[derive(Debug)]
pub(super) enum Phase {
    /// CONNECT: no MTA connection; the client may say HELO/EHLO/NOOP/RSET/QUIT/AUTH.
    Connect(AuthStep),
    /// CONNECT: the MTA connection is being set up.
    Connecting(PendingLogin),
    /// CONNECT: logging into the MTA on the client's behalf.
    Handshake(PendingLogin, Handshake),
    /// PROXY and PROCESS.
    Proxy(Proxy),
    /// Both sides closed or closing.
    Closed,
}

/// One SMTP proxy session: a client connection and, once the client logged in, the MTA
/// connection made on its behalf. `Debug` names the phase only: the buffers hold passwords and
/// message content.
pub struct SmtpSession {
    pub(super) config: SmtpConfig,
    pub(super) phase: Phase,
    pub(super) client_in: LineBuffer,
    pub(super) upstream_in: LineBuffer,
    pub(super) replies: ReplyCollector,
    pub(super) actions: VecDeque<SmtpAction>,
    /// Who logged in (set once the MTA accepted the credentials).
    pub(super) login: Option<LoginName>,
    /// The transaction as the MTA accepted it.
    pub(super) envelope: Envelope,
    /// KIM 1.5: the KAS mail data of the protected message on its way to the MTA, until the
    /// MTA's verdict on it (deleted again on a refusal).
    pub(super) kas_link_in_flight: Option<crate::kas::KasLink>,
    /// Domain of the client's last valid HELO/EHLO, repeated towards the MTA.
    pub(super) ehlo_domain: Option<Domain>,
    pub(super) commands_before_auth: usize,
    pub(super) failed_logins: u32,
    pub(super) client_open: bool,
    pub(super) upstream_open: bool,
    /// When the MTA must have answered by (A_2016: 421 otherwise).
    pub(super) upstream_deadline: Option<Instant>,
    /// Last time a command went to the MTA (A_2017: idle close).
    pub(super) upstream_last_command: Option<Instant>,
    /// Since when the session waits for the client: its last complete command line (or, in
    /// DATA, its last chunk of message), or the reply that ended a wait for the MTA, the
    /// directory or the Konnektor. The client's idle time runs from here (RFC 5321
    /// §4.5.3.2.7 times the wait for the next command from the server's reply), so slow work
    /// on the module's side never uses it up. Bytes of an unfinished command line do not
    /// restart it: a client dribbling a byte at a time cannot keep a session for ever.
    pub(super) client_wait_since: Instant,
    /// When the message after our 354 must be complete (`data_timeout`); chunks do not move
    /// it.
    pub(super) data_deadline: Option<Instant>,
    /// Why the session ended, for the one [`Output::Ended`](crate::proxy_session::Output).
    pub(super) end: EndReport,
}

impl core::fmt::Debug for SmtpSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let phase = match &self.phase {
            Phase::Connect(_) => "CONNECT",
            Phase::Connecting(_) => "CONNECTING",
            Phase::Handshake(..) => "LOGIN",
            Phase::Proxy(Proxy::Collecting(_) | Proxy::Protecting) => "PROCESS",
            Phase::Proxy(_) => "PROXY",
            Phase::Closed => "CLOSED",
        };
        f.debug_struct("SmtpSession")
            .field("phase", &phase)
            .field("client_open", &self.client_open)
            .field("upstream_open", &self.upstream_open)
            .field("pending_actions", &self.actions.len())
            .finish_non_exhaustive()
    }
}

impl SmtpSession {
    /// Starts a session for a freshly accepted client connection and queues the greeting with
    /// `ESMTP` (KOM-LE-A_2007).
    pub fn new(config: SmtpConfig, now: Instant) -> Self {
        let mut s = Self {
            client_in: LineBuffer::new(config.max_line_length),
            upstream_in: LineBuffer::new(config.max_line_length),
            config,
            phase: Phase::Connect(AuthStep::Idle),
            replies: ReplyCollector::default(),
            actions: VecDeque::new(),
            login: None,
            envelope: Envelope::default(),
            kas_link_in_flight: None,
            ehlo_domain: None,
            commands_before_auth: 0,
            failed_logins: 0,
            client_open: true,
            upstream_open: false,
            upstream_deadline: None,
            upstream_last_command: None,
            client_wait_since: now,
            data_deadline: None,
            end: EndReport::default(),
        };
        let greeting = format!("{} ESMTP", s.config.hostname);
        s.send_client(reply::line(220, &greeting));
        s
    }

    /// Bytes the client sent.
    pub fn handle_client_data(&mut self, bytes: &[u8], now: Instant) {
        if !self.client_open || matches!(self.phase, Phase::Closed) {
            return;
        }
        if let Phase::Proxy(Proxy::Collecting(_)) = self.phase {
            self.client_wait_since = now;
            self.feed_data(bytes, now);
        } else {
            if bytes.contains(&b'\n') {
                // A line is complete: the client is active, not just dribbling.
                self.client_wait_since = now;
            }
            self.client_in.push(bytes);
        }
        self.pump(now);
        if self.client_open
            && !matches!(self.phase, Phase::Closed)
            && self.client_in.buffered() > MAX_PIPELINED_BYTES
        {
            self.send_client(reply::line(
                421,
                "4.7.0 Zu viele Daten ohne Antwort, Verbindung wird geschlossen",
            ));
            self.close_both(EndReason::ClientFlood);
        }
    }

    /// Bytes the MTA sent.
    pub fn handle_upstream_data(&mut self, bytes: &[u8], now: Instant) {
        let was_waiting = self.waiting_for_client();
        self.on_upstream_data(bytes, now);
        self.restart_client_wait(was_waiting, now);
    }

    fn on_upstream_data(&mut self, bytes: &[u8], now: Instant) {
        if !self.upstream_open || matches!(self.phase, Phase::Closed) {
            return;
        }
        self.upstream_in.push(bytes);
        while let Some(line) = self.upstream_in.next_line() {
            let collected = match line {
                Line::Complete(mut l) => {
                    l.extend_from_slice(b"\r\n");
                    self.replies.push_line(&l)
                }
                Line::TooLong => Err(MalformedReply),
            };
            match collected {
                Ok(None) => {}
                Ok(Some(r)) => {
                    self.upstream_deadline = None;
                    self.on_upstream_reply(r, now);
                }
                Err(MalformedReply) => {
                    self.upstream_protocol_error();
                    return;
                }
            }
            if !self.upstream_open || matches!(self.phase, Phase::Closed) {
                return;
            }
        }
        self.pump(now);
    }

    /// Results of actions and connection events.
    pub fn handle_event(&mut self, event: SmtpEvent, now: Instant) {
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        let was_waiting = self.waiting_for_client();
        match event {
            SmtpEvent::ClientClosed => self.on_client_closed(),
            SmtpEvent::UpstreamConnected => self.on_upstream_connected(now),
            SmtpEvent::UpstreamFailed { .. } => {
                self.on_upstream_failed(crate::konnektor::SmtpConnectReply::CANNOT_CONNECT.line())
            }
            SmtpEvent::ServerCertificateRejected(r) => {
                self.on_upstream_failed(r.smtp_reply().line())
            }
            SmtpEvent::UpstreamClosed => self.on_upstream_closed(),
            SmtpEvent::RecipientChecked { address, verdict } => {
                self.on_recipient_checked(&address, verdict, now)
            }
            SmtpEvent::Protected(result) => self.on_protected(result, now),
        }
        self.pump(now);
        self.restart_client_wait(was_waiting, now);
    }

    /// Starts the client's idle time afresh when the session has just begun waiting for the
    /// client again (see `client_wait_since`).
    fn restart_client_wait(&mut self, was_waiting: bool, now: Instant) {
        if !was_waiting && self.waiting_for_client() {
            self.client_wait_since = now;
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if matches!(self.phase, Phase::Closed) {
            return None;
        }
        if let Some(d) = self.upstream_deadline {
            return Some(d);
        }
        let client = self
            .waiting_for_client()
            .then(|| self.client_wait_since + self.config.client_idle_timeout);
        let mta_idle = match (&self.phase, self.upstream_last_command) {
            (Phase::Proxy(Proxy::Idle), Some(last)) => Some(last + self.config.mta_idle_timeout),
            _ => None,
        };
        [self.data_deadline, client, mta_idle]
            .into_iter()
            .flatten()
            .min()
    }

    /// Acts on expired timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        if self.upstream_deadline.is_some_and(|d| now >= d) {
            // A_2016: the MTA did not answer in time.
            self.upstream_deadline = None;
            self.send_client(reply::line(
                421,
                "4.4.2 Der MTA antwortet nicht, Verbindung wird geschlossen",
            ));
            self.close_both(EndReason::UpstreamTimeout);
            return;
        }
        if let (Phase::Proxy(Proxy::Idle), Some(last)) = (&self.phase, self.upstream_last_command)
            && now >= last + self.config.mta_idle_timeout
        {
            // A_2017: no command for the MTA within the idle timeout; A_2016: the client
            // connection ends with it.
            self.quit_upstream();
            self.send_client(reply::line(
                421,
                "4.4.2 Zeitueberschreitung, Verbindung wird geschlossen",
            ));
            self.close_both(EndReason::UpstreamIdle);
            return;
        }
        if self.data_deadline.is_some_and(|d| now >= d) {
            // The message took longer than data_timeout: nothing of it goes anywhere, and the
            // MTA never saw a DATA for it.
            self.data_deadline = None;
            self.send_client(reply::line(
                421,
                "4.4.2 Zeitueberschreitung bei der Nachrichtenuebertragung, Verbindung wird geschlossen",
            ));
            self.close_both(EndReason::DataTimeout);
            return;
        }
        if self.waiting_for_client()
            && now >= self.client_wait_since + self.config.client_idle_timeout
        {
            if self.upstream_open {
                self.quit_upstream();
            }
            self.send_client(reply::line(
                421,
                "4.4.2 Zeitueberschreitung, Verbindung wird geschlossen",
            ));
            self.close_both(EndReason::ClientIdle);
        }
    }

    /// The next thing the runtime must do.
    pub fn poll_action(&mut self) -> Option<SmtpAction> {
        self.actions.pop_front()
    }

    /// True once both sides are closed and every action was taken.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Closed) && self.actions.is_empty()
    }

    /// Whether the session is waiting for the client to say something (for the idle timer).
    fn waiting_for_client(&self) -> bool {
        match &self.phase {
            Phase::Connect(_) => true,
            Phase::Proxy(p) => matches!(p, Proxy::Idle | Proxy::Collecting(_)),
            _ => false,
        }
    }

    /// Processes buffered client lines while the session is free to act on them; commands are
    /// handled strictly one after another, so pipelined input is safe.
    pub(super) fn pump(&mut self, now: Instant) {
        loop {
            if !self.client_open {
                return;
            }
            let ready = match &self.phase {
                Phase::Connect(_) => true,
                Phase::Proxy(Proxy::Idle) => true,
                Phase::Proxy(Proxy::Collecting(_)) => {
                    let rest = self.client_in.take_rest();
                    if rest.is_empty() {
                        return;
                    }
                    self.feed_data(&rest, now);
                    continue;
                }
                _ => false,
            };
            if !ready {
                return;
            }
            let Some(line) = self.client_in.next_line() else {
                return;
            };
            match line {
                Line::TooLong => self.send_client(reply::line(500, "5.5.2 Zeile zu lang")),
                Line::Complete(l) => match self.phase {
                    Phase::Connect(_) => self.on_connect_line(&l, now),
                    _ => self.on_proxy_line(&l, now),
                },
            }
        }
    }

    fn on_upstream_reply(&mut self, r: reply::Reply, now: Instant) {
        match &self.phase {
            Phase::Handshake(..) => self.on_handshake_reply(r, now),
            Phase::Proxy(_) => self.on_proxy_reply(r, now),
            // Nothing was asked: the MTA talks out of turn.
            _ => self.upstream_protocol_error(),
        }
    }

    fn upstream_protocol_error(&mut self) {
        self.send_client(reply::line(
            421,
            "4.4.2 Ungueltige Antwort vom MTA, Verbindung wird geschlossen",
        ));
        self.close_both(EndReason::UpstreamProtocolError);
    }

    /// A_2017: the client went away; the MTA side is closed.
    ///
    /// Deviation from A_2017 ("forward what the client sent and the MTA has not seen yet"):
    /// nothing the client left behind is forwarded, only a canonical `QUIT` of the module's
    /// own, and only while the MTA is in command mode (PROXY idle, a relayed command or an
    /// RCPT waiting for the directory). Forwarding the rest could start or complete a
    /// transaction nobody confirmed: an RCPT still waiting for its directory verdict would
    /// skip the A_2176 check, and pipelined lines after the close were how an unprotected
    /// message got queued (` DATA`, body, `.`, close). QUIT makes the MTA drop whatever
    /// envelope is open. While the module hands over the protected message (the MTA may be
    /// reading message content) nothing is sent: a QUIT there would become message text.
    fn on_client_closed(&mut self) {
        // `client_open` stays set so `close_both` asks the driver to close our side too (as
        // the POP3 session does): the client's EOF is its half of the close, not ours.
        if let Phase::Proxy(Proxy::Idle | Proxy::Relay(_) | Proxy::CheckingRecipient { .. }) =
            self.phase
        {
            self.quit_upstream();
        }
        self.close_both(EndReason::ClientClosed);
    }

    /// A_2016: the MTA went away. Replies already received were forwarded when they came;
    /// a command still waiting for its reply gets 421; then the client side is closed.
    fn on_upstream_closed(&mut self) {
        if !self.upstream_open {
            return;
        }
        self.upstream_open = false;
        self.upstream_deadline = None;
        match &self.phase {
            Phase::Handshake(..) | Phase::Connecting(_) => {
                self.failed_login_attempt(reply::line(
                    454,
                    "4.7.0 Temporary authentication failure",
                ));
            }
            Phase::Proxy(Proxy::Quitting) => self.close_both(EndReason::ClientQuit),
            Phase::Proxy(_) => {
                self.send_client(reply::line(
                    421,
                    "4.4.2 Die Verbindung zum MTA wurde beendet",
                ));
                self.close_both(EndReason::UpstreamClosed);
            }
            _ => {}
        }
    }

    pub(super) fn send_client(&mut self, bytes: Vec<u8>) {
        if self.client_open {
            self.actions.push_back(SmtpAction::SendToClient(bytes));
        }
    }

    /// The one place bytes leave for the MTA. Private: callers go through the typed senders
    /// below, so only canonical commands, the module's own SASL lines and the module's own
    /// (protected) messages reach it.
    fn push_upstream(&mut self, bytes: Vec<u8>) {
        if self.upstream_open {
            self.actions.push_back(SmtpAction::SendToUpstream(bytes));
        }
    }

    /// QUIT without waiting for the reply (the connection is closed right after).
    pub(super) fn quit_upstream(&mut self) {
        self.push_upstream(CanonicalCommand::quit().into_bytes());
    }

    /// Sends a command that expects a reply and arms the A_2016 response timer.
    pub(super) fn command_upstream(&mut self, command: CanonicalCommand, now: Instant) {
        self.arm_upstream(now);
        self.push_upstream(command.into_bytes());
    }

    /// Sends a line of the module's own MTA login (A_2011 to A_2013).
    pub(super) fn sasl_upstream(&mut self, line: SaslLine, now: Instant) {
        self.arm_upstream(now);
        self.push_upstream(line.into_bytes());
    }

    /// Sends a message of the module's own after the MTA's 354; the MTA's answer to the final
    /// dot is what the response timer waits for.
    pub(super) fn message_upstream(&mut self, message: StuffedMessage, now: Instant) {
        self.arm_upstream(now);
        self.push_upstream(message.into_bytes());
    }

    fn arm_upstream(&mut self, now: Instant) {
        self.upstream_deadline = Some(now + self.config.mta_response_timeout);
        self.upstream_last_command = Some(now);
    }

    pub(super) fn close_upstream(&mut self) {
        if self.upstream_open {
            self.upstream_open = false;
            self.actions.push_back(SmtpAction::CloseUpstream);
        }
        self.upstream_deadline = None;
        self.upstream_last_command = None;
        self.data_deadline = None;
        self.upstream_in = LineBuffer::new(self.config.max_line_length);
        self.replies = ReplyCollector::default();
    }

    /// Closes both sides; `reason` is what [`Output::Ended`](crate::proxy_session::Output)
    /// will say (the first reason recorded wins).
    pub(super) fn close_both(&mut self, reason: EndReason) {
        self.end.record(reason);
        self.close_upstream();
        if self.client_open {
            self.client_open = false;
            self.actions.push_back(SmtpAction::CloseClient);
        }
        self.phase = Phase::Closed;
    }
}
