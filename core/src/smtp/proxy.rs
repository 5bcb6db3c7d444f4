//! PROXY and PROCESS states: relaying (KOM-LE-A_2018), the certificate check on RCPT
//! (A_2176), collecting the message after DATA and handing the protected message to the MTA
//! (A_2019, A_2021, A_2024, A_2025, A_2028), with `250` to the client only after the MTA's
//! `250`.
//!
//! Relay rules (default deny, details in [`command`]): only commands the module parsed go to
//! the MTA, and only in the canonical form [`CanonicalCommand`] written by
//! [`command`]'s serialiser; everything else is answered here (500/501/502/503/555) and never
//! relayed. DATA goes to the MTA only from the module itself, before the protected message.
//! When the client closes, only a canonical QUIT follows (see `SmtpSession::on_client_closed`).

use std::collections::VecDeque;
use std::time::Instant;

use super::command::{self, CanonicalCommand, Command, Mailbox, RcptParams, ReversePath};
use super::data::{self, DataOutcome, DataReader};
use super::event::{ProtectJob, ProtectedMessage, ProtectionFailure, RecipientVerdict, SmtpAction};
use super::reply::{self, Reply};
use super::session::{Phase, SmtpSession};
use crate::proxy_session::EndReason;

/// Sub-states of PROXY/PROCESS.
#[derive(Debug)]
pub(super) enum Proxy {
    /// Ready for the next client command.
    Idle,
    /// A relayed command waits for the MTA's reply.
    Relay(Relayed),
    /// RCPT waits for the directory (A_2176); its canonical form is kept for forwarding.
    CheckingRecipient {
        command: CanonicalCommand,
        address: String,
    },
    /// After our 354: reading the message.
    Collecting(DataReader),
    /// The message is with the Konnektor.
    Protecting,
    /// Commands of our own towards the MTA (hand-over of the protected message).
    Steps(VecDeque<Step>),
    /// QUIT relayed; waiting for the MTA to answer and close.
    Quitting,
}

/// What a relayed command means for the transaction once the MTA answered.
#[derive(Debug)]
pub(super) enum Relayed {
    Plain,
    /// HELO/EHLO/RSET end a transaction.
    Reset {
        ehlo: bool,
    },
    /// The reverse path and the client's `SIZE=` estimate (RFC 1870).
    Mail(String, Option<u64>),
    Rcpt(AcceptedRcpt),
    Quit,
}

/// A recipient checked with the directory and relayed: its address (for the Konnektor) and
/// the canonical RCPT (replayed as is when the envelope is rebuilt, A_2028).
#[derive(Clone, Debug)]
pub(super) struct AcceptedRcpt {
    pub address: String,
    pub command: CanonicalCommand,
}

/// One command of our own towards the MTA and what its reply means.
#[derive(Debug)]
pub(super) struct Step {
    pub payload: Payload,
    pub on_reply: OnReply,
}

/// What a [`Step`] sends: a command, or the module's own (protected or notice) message after
/// the MTA's 354.
#[derive(Debug)]
pub(super) enum Payload {
    Command(CanonicalCommand),
    /// Dot-stuffed, terminator included. Message content: never logged.
    Message(StuffedMessage),
    /// Already sent.
    Sent,
}

/// A message the module wrote (or protected) itself, dot-stuffed with its terminator; the only
/// non-command bytes the proxy sends to the MTA.
pub(super) struct StuffedMessage(Vec<u8>);

impl StuffedMessage {
    fn new(message: &[u8]) -> Self {
        Self(data::stuff(message))
    }

    fn owned(message: Vec<u8>) -> Self {
        Self(data::stuff_owned(message))
    }

    pub(super) fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl core::fmt::Debug for StuffedMessage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "StuffedMessage({} bytes)", self.0.len())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OnReply {
    /// Re-sending the envelope after recipients were dropped: must be 2xx.
    EnvelopeMustSucceed,
    /// DATA: must be 354, else the MTA's reply goes to the client.
    ExpectGoAhead,
    /// The message itself: the MTA's reply goes to the client unchanged.
    FinalForClient,
    /// The error mail to the sender: best effort, silently given up on failure.
    Notice,
    /// RSET after a failure: the reply is not the client's business.
    Ignore,
}

/// The envelope of the current transaction, as the MTA accepted it.
#[derive(Debug, Default)]
pub(super) struct Envelope {
    /// The canonical MAIL as relayed, replayed when the envelope is rebuilt (A_2028).
    pub mail_line: Option<CanonicalCommand>,
    pub from: Option<String>,
    pub recipients: Vec<AcceptedRcpt>,
    /// The `SIZE=` of the accepted MAIL (RFC 1870): the DATA buffer is reserved from it, so a
    /// large mail is held once, without the copies of a growing buffer.
    pub declared_size: Option<u64>,
}

/// EHLO keywords of the MTA that must not reach the client: BDAT/BURL would carry a message
/// past the protection step, STARTTLS is the client's TLS to us, not to the MTA.
const HIDDEN_EHLO_KEYWORDS: [&[u8]; 4] = [b"CHUNKING", b"BINARYMIME", b"BURL", b"STARTTLS"];

impl SmtpSession {
    /// One client line in PROXY: parsed, then answered here or relayed in canonical form
    /// (see the relay rules in [`command`]); nothing the parser refused goes to the MTA.
    pub(super) fn on_proxy_line(&mut self, line: &[u8], now: Instant) {
        let cmd = match command::parse(line) {
            Ok(cmd) => cmd,
            Err(e) => {
                self.send_client(e.reply());
                return;
            }
        };
        let relayed = match &cmd {
            Command::Rcpt(to, params) => {
                self.on_rcpt(to, params);
                return;
            }
            Command::Data => {
                self.on_data(now);
                return;
            }
            Command::Auth(_) => {
                self.send_client(reply::line(503, "5.5.1 Already authenticated"));
                return;
            }
            Command::Starttls => {
                self.send_client(reply::line(503, "5.5.1 TLS already active"));
                return;
            }
            Command::NotRelayed(_) => {
                self.send_client(reply::line(502, "5.5.1 Invalid command"));
                return;
            }
            Command::Mail(from, params) => Relayed::Mail(from.address(), params.size),
            Command::Helo(_) => Relayed::Reset { ehlo: false },
            Command::Ehlo(_) => Relayed::Reset { ehlo: true },
            Command::Rset => Relayed::Reset { ehlo: false },
            Command::Quit => Relayed::Quit,
            Command::Noop => Relayed::Plain,
        };
        let Some(canonical) = cmd.canonical() else {
            return;
        };
        if let Relayed::Mail(..) = relayed {
            self.envelope.mail_line = Some(canonical.clone());
        }
        self.phase = Phase::Proxy(match relayed {
            Relayed::Quit => Proxy::Quitting,
            r => Proxy::Relay(r),
        });
        self.command_upstream(canonical, now);
    }

    /// A_2176: check the recipient's certificates before RCPT reaches the MTA.
    fn on_rcpt(&mut self, to: &Mailbox, params: &RcptParams) {
        if self.envelope.from.is_none() {
            self.send_client(reply::line(503, "5.5.1 Error: need MAIL command"));
            return;
        }
        let address = to.address();
        self.phase = Phase::Proxy(Proxy::CheckingRecipient {
            command: CanonicalCommand::rcpt(to, params),
            address: address.clone(),
        });
        self.actions
            .push_back(SmtpAction::CheckRecipient { address });
    }

    pub(super) fn on_recipient_checked(
        &mut self,
        address: &str,
        verdict: RecipientVerdict,
        now: Instant,
    ) {
        let Phase::Proxy(Proxy::CheckingRecipient { address: asked, .. }) = &self.phase else {
            return;
        };
        if asked != address {
            return;
        }
        let Phase::Proxy(Proxy::CheckingRecipient { command, address }) =
            core::mem::replace(&mut self.phase, Phase::Proxy(Proxy::Idle))
        else {
            return;
        };
        match verdict {
            RecipientVerdict::Usable => {
                self.phase = Phase::Proxy(Proxy::Relay(Relayed::Rcpt(AcceptedRcpt {
                    address,
                    command: command.clone(),
                })));
                self.command_upstream(command, now);
            }
            RecipientVerdict::NoValidCertificate => {
                self.phase = Phase::Proxy(Proxy::Idle);
                let text = format!(
                    "5.7.1 Fuer <{address}> ist kein gueltiges Verschluesselungszertifikat vorhanden"
                );
                self.send_client(reply::line(550, &text));
            }
            RecipientVerdict::ConflictingTelematikIds => {
                self.phase = Phase::Proxy(Proxy::Idle);
                let text = format!(
                    "5.7.1 Die Verschluesselungszertifikate von <{address}> tragen unterschiedliche Telematik-IDs"
                );
                self.send_client(reply::line(550, &text));
            }
            RecipientVerdict::DirectoryUnavailable => {
                self.phase = Phase::Proxy(Proxy::Idle);
                self.send_client(reply::line(
                    451,
                    "4.4.3 Verzeichnisdienst nicht erreichbar, bitte spaeter erneut versuchen",
                ));
            }
        }
    }

    /// DATA is answered by the Clientmodul itself; the MTA sees DATA only with the protected
    /// message (§3.2.5).
    fn on_data(&mut self, now: Instant) {
        if self.envelope.from.is_none() {
            self.send_client(reply::line(503, "5.5.1 Error: need MAIL command"));
        } else if self.envelope.recipients.is_empty() {
            self.send_client(reply::line(554, "5.5.1 Error: no valid recipients"));
        } else {
            self.phase = Phase::Proxy(Proxy::Collecting(DataReader::with_expected_size(
                self.config.max_message_size,
                self.envelope.declared_size,
            )));
            // The whole message must arrive within data_timeout, however it trickles in.
            self.data_deadline = Some(now + self.config.data_timeout);
            self.send_client(reply::line(354, "Start mail input; end with <CRLF>.<CRLF>"));
        }
    }

    pub(super) fn feed_data(&mut self, bytes: &[u8], _now: Instant) {
        let Phase::Proxy(Proxy::Collecting(reader)) = &mut self.phase else {
            return;
        };
        let used = reader.feed(bytes);
        if !reader.is_done() {
            return;
        }
        // What follows the final dot is the next (pipelined) command.
        self.client_in.unread(&bytes[used..]);
        self.data_deadline = None;
        let Phase::Proxy(Proxy::Collecting(reader)) =
            core::mem::replace(&mut self.phase, Phase::Proxy(Proxy::Idle))
        else {
            return;
        };
        match reader.finish() {
            DataOutcome::TooLarge => self.send_client(reply::line(
                552,
                "5.3.4 Message size exceeds fixed maximum message size",
            )),
            DataOutcome::Complete(message) => {
                let (Some(login), Some(from)) = (self.login.clone(), self.envelope.from.clone())
                else {
                    return;
                };
                self.phase = Phase::Proxy(Proxy::Protecting);
                self.actions.push_back(SmtpAction::Protect(ProtectJob {
                    login,
                    envelope_from: from,
                    recipients: self
                        .envelope
                        .recipients
                        .iter()
                        .map(|r| r.address.clone())
                        .collect(),
                    message,
                }));
            }
        }
    }

    pub(super) fn on_protected(
        &mut self,
        result: Result<ProtectedMessage, ProtectionFailure>,
        now: Instant,
    ) {
        if !matches!(self.phase, Phase::Proxy(Proxy::Protecting)) {
            // Nobody waits for this message any more: its KAS data go again.
            if let Ok(p) = result {
                self.discard_kas_data(p.kas_link);
            }
            return;
        }
        let mut protected = match result {
            Ok(p) if !p.recipients.is_empty() => p,
            Ok(p) => {
                self.discard_kas_data(p.kas_link);
                // A_2025: nobody could be encrypted for.
                self.abort_transaction(
                    "4.3.0 Die Nachricht konnte fuer keinen Empfaenger verschluesselt werden",
                    now,
                );
                return;
            }
            // KIM 1.5: the KAS branch's own replies (A_19363-03, A_22419-01), also with RSET.
            Err(f) if f.reply().is_some() => {
                let (code, text) = f.reply().unwrap_or((451, ""));
                let text = one_line(text);
                self.abort_transaction_with(code, &text, now);
                return;
            }
            Err(f) => {
                // A_2021 (signing failed) and A_2025: RSET to the MTA, 451 to the client.
                let text = format!("4.3.0 {}", one_line(&f.reason));
                self.abort_transaction(&text, now);
                return;
            }
        };
        self.kas_link_in_flight = protected.kas_link.take();
        let mut steps = VecDeque::new();
        let kept: Vec<&AcceptedRcpt> = self
            .envelope
            .recipients
            .iter()
            .filter(|r| protected.recipients.contains(&r.address))
            .collect();
        if kept.len() != self.envelope.recipients.len() {
            // A_2028: the MTA already holds RCPTs for addresses that could not be encrypted
            // for; start the envelope again without them.
            let rset = CanonicalCommand::rset();
            steps.push_back(command_step(rset, OnReply::EnvelopeMustSucceed));
            if let Some(mail) = &self.envelope.mail_line {
                steps.push_back(command_step(mail.clone(), OnReply::EnvelopeMustSucceed));
            }
            for r in &kept {
                let rcpt = r.command.clone();
                steps.push_back(command_step(rcpt, OnReply::EnvelopeMustSucceed));
            }
        }
        let data = CanonicalCommand::data();
        steps.push_back(command_step(data, OnReply::ExpectGoAhead));
        // The outer message needs no stuffing: the terminator goes into its own buffer.
        steps.push_back(Step {
            payload: Payload::Message(StuffedMessage::owned(core::mem::take(
                protected.message.as_mut_vec(),
            ))),
            on_reply: OnReply::FinalForClient,
        });
        drop(protected.message);
        if let Some(notice) = protected.notice {
            // A_2024: the error mail goes to the sender through the same MTA session, written
            // in canonical form like everything else; addresses that do not parse mean no
            // notice.
            let from = ReversePath::parse(&notice.envelope_from);
            let to = Mailbox::parse(&notice.recipient);
            if let (Some(from), Some(to)) = (from, to) {
                let params = Default::default();
                let mail = CanonicalCommand::mail(&from, &params);
                steps.push_back(command_step(mail, OnReply::Notice));
                let rcpt = CanonicalCommand::rcpt(&to, &Default::default());
                steps.push_back(command_step(rcpt, OnReply::Notice));
                steps.push_back(command_step(CanonicalCommand::data(), OnReply::Notice));
                steps.push_back(Step {
                    payload: Payload::Message(StuffedMessage::new(notice.message.as_slice())),
                    on_reply: OnReply::Notice,
                });
            }
        }
        self.envelope = Default::default();
        self.run_next_step(steps, now);
    }

    /// Ends the transaction with 451 to the client and RSET to the MTA.
    fn abort_transaction(&mut self, text: &str, now: Instant) {
        self.abort_transaction_with(451, text, now);
    }

    fn abort_transaction_with(&mut self, code: u16, text: &str, now: Instant) {
        self.envelope = Default::default();
        self.send_client(reply::line(code, text));
        let steps = VecDeque::from([command_step(CanonicalCommand::rset(), OnReply::Ignore)]);
        self.run_next_step(steps, now);
    }

    fn run_next_step(&mut self, mut steps: VecDeque<Step>, now: Instant) {
        match steps.front_mut() {
            Some(s) => match core::mem::replace(&mut s.payload, Payload::Sent) {
                Payload::Command(c) => {
                    self.phase = Phase::Proxy(Proxy::Steps(steps));
                    self.command_upstream(c, now);
                }
                Payload::Message(m) => {
                    self.phase = Phase::Proxy(Proxy::Steps(steps));
                    self.message_upstream(m, now);
                }
                // Not reached: a step is sent once, when it comes to the front.
                Payload::Sent => self.phase = Phase::Proxy(Proxy::Steps(steps)),
            },
            None => self.phase = Phase::Proxy(Proxy::Idle),
        }
    }

    pub(super) fn on_proxy_reply(&mut self, r: Reply, now: Instant) {
        let proxy = match core::mem::replace(&mut self.phase, Phase::Proxy(Proxy::Idle)) {
            Phase::Proxy(p) => p,
            other => {
                self.phase = other;
                return;
            }
        };
        match proxy {
            Proxy::Relay(relayed) => self.on_relay_reply(relayed, r),
            Proxy::Steps(steps) => self.on_step_reply(steps, r, now),
            Proxy::Quitting => {
                // The MTA's 221 goes to the client; the MTA closes, then we close (A_2016).
                self.phase = Phase::Proxy(Proxy::Quitting);
                self.send_client(r.to_bytes());
            }
            other => {
                // Nothing was asked of the MTA.
                self.phase = Phase::Proxy(other);
                self.send_client(reply::line(
                    421,
                    "4.4.2 Ungueltige Antwort vom MTA, Verbindung wird geschlossen",
                ));
                self.close_both(EndReason::UpstreamProtocolError);
            }
        }
    }

    /// A_2018: the MTA's reply goes to the client unchanged (EHLO keywords aside, see
    /// [`HIDDEN_EHLO_KEYWORDS`]); the transaction is tracked from it.
    fn on_relay_reply(&mut self, relayed: Relayed, r: Reply) {
        let ok = r.is_positive();
        match relayed {
            Relayed::Mail(from, size) if ok => {
                self.envelope.from = Some(from);
                self.envelope.declared_size = size;
                self.envelope.recipients.clear();
            }
            Relayed::Mail(..) => self.envelope.mail_line = None,
            Relayed::Rcpt(accepted) if ok => self.envelope.recipients.push(accepted),
            Relayed::Reset { ehlo } => {
                if ok {
                    self.envelope = Default::default();
                }
                if ehlo && ok {
                    self.send_client(filter_ehlo(&r));
                    return;
                }
            }
            Relayed::Quit => {}
            _ => {}
        }
        self.send_client(r.to_bytes());
    }

    fn on_step_reply(&mut self, mut steps: VecDeque<Step>, r: Reply, now: Instant) {
        let Some(done) = steps.pop_front() else {
            return;
        };
        match done.on_reply {
            OnReply::EnvelopeMustSucceed if !r.is_positive() => {
                self.settle_kas_data(false);
                self.abort_transaction(
                    "4.3.0 Der MTA hat den Umschlag nicht erneut angenommen",
                    now,
                );
                return;
            }
            OnReply::ExpectGoAhead if r.code != 354 => {
                self.settle_kas_data(false);
                self.send_client(r.to_bytes());
                steps.clear();
            }
            OnReply::FinalForClient => {
                self.settle_kas_data(r.is_positive());
                // 250 only after the MTA's 250: its reply is what the client gets.
                self.send_client(r.to_bytes());
                if !r.is_positive() {
                    steps.clear();
                }
            }
            OnReply::Notice if !(r.is_positive() || r.code == 354) => {
                steps.clear();
                steps.push_back(command_step(CanonicalCommand::rset(), OnReply::Ignore));
            }
            _ => {}
        }
        self.run_next_step(steps, now);
    }

    /// The MTA's verdict on the message in flight: a refused message's KAS mail data are
    /// deleted again, an accepted one's stay for the recipients.
    fn settle_kas_data(&mut self, delivered: bool) {
        let link = self.kas_link_in_flight.take();
        if !delivered {
            self.discard_kas_data(link);
        }
    }

    fn discard_kas_data(&mut self, link: Option<crate::kas::KasLink>) {
        if let Some(link) = link {
            self.actions.push_back(SmtpAction::DiscardKasData { link });
        }
    }
}

fn command_step(command: CanonicalCommand, on_reply: OnReply) -> Step {
    Step {
        payload: Payload::Command(command),
        on_reply,
    }
}

/// Text of our own replies must stay on one line.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The MTA's EHLO reply without the keywords the client must not use through the proxy.
fn filter_ehlo(r: &Reply) -> Vec<u8> {
    let kept: Vec<&[u8]> = r
        .texts()
        .enumerate()
        .filter(|(i, t)| {
            let keyword = t.split(|b| *b == b' ').next().unwrap_or_default();
            *i == 0
                || !HIDDEN_EHLO_KEYWORDS
                    .iter()
                    .any(|h| keyword.eq_ignore_ascii_case(h))
        })
        .map(|(_, t)| t)
        .collect();
    let mut out = Vec::new();
    for (i, t) in kept.iter().enumerate() {
        out.extend_from_slice(format!("{}", r.code).as_bytes());
        out.push(if i + 1 == kept.len() { b' ' } else { b'-' });
        out.extend_from_slice(t);
        out.extend_from_slice(b"\r\n");
    }
    out
}
