//! PROXY and PROCESS states: relaying (KOM-LE-A_2018), the certificate check on RCPT
//! (A_2176), collecting the message after DATA and handing the protected message to the MTA
//! (A_2019, A_2021, A_2024, A_2025, A_2028), with `250` to the client only after the MTA's
//! `250`.

use std::collections::VecDeque;
use std::time::Instant;

use super::command::{self, Verb};
use super::data::{self, DataOutcome, DataReader};
use super::event::{ProtectJob, ProtectedMessage, ProtectionFailure, RecipientVerdict, SmtpAction};
use super::reply::{self, Reply};
use super::session::{Phase, SmtpSession};

/// Sub-states of PROXY/PROCESS.
#[derive(Debug)]
pub(super) enum Proxy {
    /// Ready for the next client command.
    Idle,
    /// A relayed command waits for the MTA's reply.
    Relay(Relayed),
    /// RCPT waits for the directory (A_2176); the line is kept for forwarding.
    CheckingRecipient { line: Vec<u8>, address: String },
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
    Mail(String),
    Rcpt(String),
    Quit,
}

/// One command of our own towards the MTA and what its reply means.
#[derive(Debug)]
pub(super) struct Step {
    pub command: Vec<u8>,
    pub on_reply: OnReply,
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
    pub mail_line: Option<Vec<u8>>,
    pub from: Option<String>,
    pub recipients: Vec<String>,
}

/// EHLO keywords of the MTA that must not reach the client: BDAT/BURL would carry a message
/// past the protection step, STARTTLS is the client's TLS to us, not to the MTA.
const HIDDEN_EHLO_KEYWORDS: [&[u8]; 4] = [b"CHUNKING", b"BINARYMIME", b"BURL", b"STARTTLS"];

impl SmtpSession {
    pub(super) fn on_proxy_line(&mut self, mut line: Vec<u8>, now: Instant) {
        let cmd = command::parse(&line);
        let relayed = match cmd.verb {
            Verb::Rcpt => {
                self.on_rcpt(line);
                return;
            }
            Verb::Data => {
                self.on_data(cmd.args.is_empty());
                return;
            }
            Verb::Auth => {
                self.send_client(reply::line(503, "5.5.1 Already authenticated"));
                return;
            }
            Verb::Starttls => {
                self.send_client(reply::line(503, "5.5.1 TLS already active"));
                return;
            }
            Verb::Bdat => {
                self.send_client(reply::line(502, "5.5.1 Invalid command"));
                return;
            }
            Verb::Mail => match command::mail_from(cmd.args) {
                Some(from) => Relayed::Mail(from),
                None => {
                    self.send_client(reply::line(501, "5.5.4 Syntax: MAIL FROM:<address>"));
                    return;
                }
            },
            Verb::Helo => Relayed::Reset { ehlo: false },
            Verb::Ehlo => Relayed::Reset { ehlo: true },
            Verb::Rset => Relayed::Reset { ehlo: false },
            Verb::Quit => Relayed::Quit,
            Verb::Noop | Verb::Other => Relayed::Plain,
        };
        if let Relayed::Mail(_) = relayed {
            self.envelope.mail_line = Some(line.clone());
        }
        line.extend_from_slice(b"\r\n");
        self.phase = Phase::Proxy(match relayed {
            Relayed::Quit => Proxy::Quitting,
            r => Proxy::Relay(r),
        });
        self.command_upstream(line, now);
    }

    /// A_2176: check the recipient's certificates before RCPT reaches the MTA.
    fn on_rcpt(&mut self, line: Vec<u8>) {
        let Some(address) = command::rcpt_to(command::parse(&line).args) else {
            self.send_client(reply::line(501, "5.1.3 Syntax: RCPT TO:<address>"));
            return;
        };
        if self.envelope.from.is_none() {
            self.send_client(reply::line(503, "5.5.1 Error: need MAIL command"));
            return;
        }
        self.phase = Phase::Proxy(Proxy::CheckingRecipient {
            line,
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
        let Phase::Proxy(Proxy::CheckingRecipient {
            line,
            address: asked,
        }) = &mut self.phase
        else {
            return;
        };
        if asked != address {
            return;
        }
        let mut line = core::mem::take(line);
        let address = core::mem::take(asked);
        match verdict {
            RecipientVerdict::Usable => {
                line.extend_from_slice(b"\r\n");
                self.phase = Phase::Proxy(Proxy::Relay(Relayed::Rcpt(address)));
                self.command_upstream(line, now);
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
    fn on_data(&mut self, no_args: bool) {
        if !no_args {
            self.send_client(reply::line(501, "5.5.4 Syntax: DATA"));
        } else if self.envelope.from.is_none() {
            self.send_client(reply::line(503, "5.5.1 Error: need MAIL command"));
        } else if self.envelope.recipients.is_empty() {
            self.send_client(reply::line(554, "5.5.1 Error: no valid recipients"));
        } else {
            self.phase = Phase::Proxy(Proxy::Collecting(DataReader::new(
                self.config.max_message_size,
            )));
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
                    recipients: self.envelope.recipients.clone(),
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
            return;
        }
        let mut protected = match result {
            Ok(p) if !p.recipients.is_empty() => p,
            Ok(_) => {
                // A_2025: nobody could be encrypted for.
                self.abort_transaction(
                    "4.3.0 Die Nachricht konnte fuer keinen Empfaenger verschluesselt werden",
                    now,
                );
                return;
            }
            Err(f) => {
                // A_2021 (signing failed) and A_2025: RSET to the MTA, 451 to the client.
                let text = format!("4.3.0 {}", one_line(&f.reason));
                self.abort_transaction(&text, now);
                return;
            }
        };
        let mut steps = VecDeque::new();
        let kept: Vec<&String> = self
            .envelope
            .recipients
            .iter()
            .filter(|r| protected.recipients.contains(r))
            .collect();
        if kept.len() != self.envelope.recipients.len() {
            // A_2028: the MTA already holds RCPTs for addresses that could not be encrypted
            // for; start the envelope again without them.
            steps.push_back(step(b"RSET\r\n".to_vec(), OnReply::EnvelopeMustSucceed));
            if let Some(mail) = &self.envelope.mail_line {
                let mut m = mail.clone();
                m.extend_from_slice(b"\r\n");
                steps.push_back(step(m, OnReply::EnvelopeMustSucceed));
            }
            for r in &kept {
                steps.push_back(step(
                    format!("RCPT TO:<{r}>\r\n").into_bytes(),
                    OnReply::EnvelopeMustSucceed,
                ));
            }
        }
        steps.push_back(step(b"DATA\r\n".to_vec(), OnReply::ExpectGoAhead));
        // The outer message needs no stuffing: the terminator goes into its own buffer.
        steps.push_back(step(
            data::stuff_owned(core::mem::take(protected.message.as_mut_vec())),
            OnReply::FinalForClient,
        ));
        drop(protected.message);
        if let Some(notice) = protected.notice {
            // A_2024: the error mail goes to the sender through the same MTA session.
            steps.push_back(step(
                format!("MAIL FROM:<{}>\r\n", notice.envelope_from).into_bytes(),
                OnReply::Notice,
            ));
            steps.push_back(step(
                format!("RCPT TO:<{}>\r\n", notice.recipient).into_bytes(),
                OnReply::Notice,
            ));
            steps.push_back(step(b"DATA\r\n".to_vec(), OnReply::Notice));
            steps.push_back(step(
                data::stuff(notice.message.as_slice()),
                OnReply::Notice,
            ));
        }
        self.envelope = Default::default();
        self.run_next_step(steps, now);
    }

    /// Ends the transaction with 451 to the client and RSET to the MTA.
    fn abort_transaction(&mut self, text: &str, now: Instant) {
        self.envelope = Default::default();
        self.send_client(reply::line(451, text));
        let steps = VecDeque::from([step(b"RSET\r\n".to_vec(), OnReply::Ignore)]);
        self.run_next_step(steps, now);
    }

    fn run_next_step(&mut self, mut steps: VecDeque<Step>, now: Instant) {
        match steps.front_mut() {
            Some(s) => {
                let command = core::mem::take(&mut s.command);
                self.phase = Phase::Proxy(Proxy::Steps(steps));
                self.command_upstream(command, now);
            }
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
                self.close_both();
            }
        }
    }

    /// A_2018: the MTA's reply goes to the client unchanged (EHLO keywords aside, see
    /// [`HIDDEN_EHLO_KEYWORDS`]); the transaction is tracked from it.
    fn on_relay_reply(&mut self, relayed: Relayed, r: Reply) {
        let ok = r.is_positive();
        match relayed {
            Relayed::Mail(from) if ok => {
                self.envelope.from = Some(from);
                self.envelope.recipients.clear();
            }
            Relayed::Mail(_) => self.envelope.mail_line = None,
            Relayed::Rcpt(address) if ok => self.envelope.recipients.push(address),
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
                self.abort_transaction(
                    "4.3.0 Der MTA hat den Umschlag nicht erneut angenommen",
                    now,
                );
                return;
            }
            OnReply::ExpectGoAhead if r.code != 354 => {
                self.send_client(r.to_bytes());
                steps.clear();
            }
            OnReply::FinalForClient => {
                // 250 only after the MTA's 250: its reply is what the client gets.
                self.send_client(r.to_bytes());
                if !r.is_positive() {
                    steps.clear();
                }
            }
            OnReply::Notice if !(r.is_positive() || r.code == 354) => {
                steps.clear();
                steps.push_back(step(b"RSET\r\n".to_vec(), OnReply::Ignore));
            }
            _ => {}
        }
        self.run_next_step(steps, now);
    }
}

fn step(command: Vec<u8>, on_reply: OnReply) -> Step {
    Step { command, on_reply }
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
