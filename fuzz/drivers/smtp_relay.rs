//! The default-deny relay invariant of the SMTP proxy (KOM-LE-A_2018, A_2176, A_2017), over
//! arbitrary client byte streams after a successful login.
//!
//! A small harness plays the MTA (250 to every command, 354 to DATA, 221 to QUIT, sometimes a
//! refusal), the directory (random verdicts, sometimes late or never) and the Konnektor (a
//! recognisable "protected" message, sometimes with recipients dropped and a notice, A_2028,
//! A_2024). Every byte the MTA receives is checked as it arrives:
//!
//! - outside the module's own message content, it comes in CRLF lines without control
//!   characters, each parsing with the module's own parser to a command whose canonical form
//!   is byte-identical to the line;
//! - DATA reaches the MTA only when a protected message is due, and what follows the MTA's 354
//!   is exactly that message (or the module's notice), byte for byte; BDAT never;
//! - no RCPT reaches the MTA unless a `CheckRecipient` for exactly that address was answered
//!   `Usable` first (one answer, one RCPT), apart from the module's A_2028 envelope replay of
//!   recipients the Konnektor kept and the notice to the sender;
//! - nothing goes to the MTA after `CloseUpstream`, nothing to the client after `CloseClient`;
//! - KIM 1.5: the KAS data of a protected message (half of them carry a link) are asked to be
//!   deleted only for a link the Konnektor side handed out, at most once, and never after the
//!   MTA accepted that message with 250.
//!
//! Shared by the `smtp_relay` fuzz target, `core/tests/fuzz_regressions.rs` and the proptest in
//! `core/tests/smtp_relay_invariant.rs`; a broken invariant panics.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use komle_core::kas::KasLink;
use komle_core::secret::SecretBytes;
use komle_core::smtp::command::{self, CanonicalCommand, Command};
use komle_core::smtp::{
    Notice, ProtectJob, ProtectedMessage, ProtectionFailure, RecipientVerdict, SmtpAction,
    SmtpConfig, SmtpEvent, SmtpSession,
};
use komle_core::upstream_allow::UpstreamAllowList;

/// What the harness's Konnektor returns as the protected message (no line starts with a dot,
/// ends with CRLF: its stuffed form is itself plus `.` CRLF).
pub const PROTECTED: &[u8] =
    b"Content-Type: application/pkcs7-mime; smime-type=authenticated-enveloped-data\r\n\r\nR0VTQ0hVRVRaVA==\r\n";
/// The notice mail of the harness's Konnektor (A_2024).
pub const NOTICE: &[u8] = b"Subject: Hinweis\r\n\r\nnicht zustellbar\r\n";

/// `\0user#mta.example:465#M#C#W\0pw` in base64.
const LOGIN: &[u8] =
    b"EHLO client.example\r\nAUTH PLAIN AHVzZXIjbXRhLmV4YW1wbGU6NDY1I00jQyNXAHB3\r\n";

/// One step of a run.
#[derive(Clone, Debug)]
pub enum Op {
    /// Bytes from the client, in one read.
    Client(Vec<u8>),
    /// The client closes its side.
    ClientClose,
    /// Time passes (seconds) and the timers fire.
    Advance(u64),
    /// The directory and the Konnektor answer whatever is pending.
    AnswerPending,
}

/// What a run did, to show the harness is not vacuous.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Command lines the MTA received after the login.
    pub relayed_lines: usize,
    pub rcpts: usize,
    /// Protected messages the MTA received in full.
    pub messages: usize,
    /// KAS data the session asked to delete after the MTA refused their message.
    pub kas_discards: usize,
}

/// Deterministic decisions of the harness (xorshift64).
struct Choices(u64);

impl Choices {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }
}

#[derive(Debug)]
enum MtaMode {
    /// Reading command lines.
    Commands,
    /// After our 354: the next bytes must be exactly this stuffed message.
    Message { expected: Vec<u8>, pos: usize },
}

/// The MTA's view of the connection and the invariant checks.
struct Mta {
    line: Vec<u8>,
    mode: MtaMode,
    replies: VecDeque<Vec<u8>>,
    /// Close after the queued replies (after QUIT).
    closing: bool,
    closed: bool,
    /// Messages the module may send after a DATA, in order (stuffed).
    due: VecDeque<Vec<u8>>,
    /// Directory answers `Usable` not yet used by a RCPT.
    usable: HashMap<String, u32>,
    /// RCPTs the module may send on its own in the A_2028 replay (until DATA or a refusal):
    /// the envelope's recipients the Konnektor kept, as often as they are in the envelope.
    replay: HashMap<String, u32>,
    /// The RCPT of the A_2024 notice (the sender), once.
    notice_rcpt: Option<String>,
    /// The KAS link of the protected message due, until the MTA answers its end.
    kas_due: Option<String>,
    /// Links handed out, links whose message the MTA accepted, links asked to be deleted.
    kas_handed: HashSet<String>,
    kas_delivered: HashSet<String>,
    kas_discarded: HashSet<String>,
    stats: Stats,
}

impl Mta {
    fn new() -> Self {
        Self {
            line: Vec::new(),
            mode: MtaMode::Commands,
            replies: VecDeque::new(),
            closing: false,
            closed: false,
            due: VecDeque::new(),
            usable: HashMap::new(),
            replay: HashMap::new(),
            notice_rcpt: None,
            kas_due: None,
            kas_handed: HashSet::new(),
            kas_delivered: HashSet::new(),
            kas_discarded: HashSet::new(),
            stats: Stats::default(),
        }
    }

    fn receive(&mut self, bytes: &[u8], choices: &mut Choices) {
        assert!(!self.closed, "bytes to the MTA after CloseUpstream");
        assert!(!self.closing, "bytes to the MTA after QUIT");
        for &b in bytes {
            match &mut self.mode {
                MtaMode::Message { expected, pos } => {
                    assert_eq!(
                        expected.get(*pos),
                        Some(&b),
                        "message content is not the module's own message"
                    );
                    *pos += 1;
                    if *pos == expected.len() {
                        let protected = expected.starts_with(PROTECTED);
                        if protected {
                            self.stats.messages += 1;
                        }
                        self.mode = MtaMode::Commands;
                        let accepted = self.reply(choices, b"250 2.0.0 Ok: queued\r\n");
                        if protected
                            && accepted
                            && let Some(link) = self.kas_due.take()
                        {
                            self.kas_delivered.insert(link);
                        }
                    }
                }
                MtaMode::Commands => {
                    self.line.push(b);
                    if self.line.ends_with(b"\r\n") {
                        let line = core::mem::take(&mut self.line);
                        self.command(&line, choices);
                    }
                }
            }
        }
    }

    /// A 250-type reply, sometimes a refusal instead; whether it was `ok`.
    fn reply(&mut self, choices: &mut Choices, ok: &[u8]) -> bool {
        let r: &[u8] = match choices.next() % 16 {
            0 => b"550 5.7.1 refused\r\n",
            1 => b"451 4.3.0 try later\r\n",
            _ => ok,
        };
        if r != ok {
            // A refusal ends any replay: the module gives up the envelope.
            self.replay.clear();
        }
        self.replies.push_back(r.to_vec());
        r == ok
    }

    fn command(&mut self, line: &[u8], choices: &mut Choices) {
        let cmd = check_line(line);
        self.stats.relayed_lines += 1;
        match cmd {
            Command::Rcpt(to, _) => {
                let address = to.address();
                if let Some(n) = self.replay.get_mut(&address).filter(|n| **n > 0) {
                    *n -= 1;
                } else if self.notice_rcpt.as_ref() == Some(&address) {
                    self.notice_rcpt = None;
                } else {
                    let tokens = self.usable.get_mut(&address);
                    match tokens {
                        Some(n) if *n > 0 => *n -= 1,
                        _ => panic!("RCPT without a Usable directory answer for that address"),
                    }
                }
                self.stats.rcpts += 1;
                self.reply(choices, b"250 2.1.5 Ok\r\n");
            }
            Command::Data => {
                let expected = self
                    .due
                    .pop_front()
                    .expect("DATA reached the MTA with no protected message due");
                self.replay.clear();
                if choices.one_in(12) {
                    self.due.clear();
                    self.replies
                        .push_back(b"554 5.5.1 Error: no valid recipients\r\n".to_vec());
                } else {
                    self.mode = MtaMode::Message { expected, pos: 0 };
                    self.replies
                        .push_back(b"354 End data with <CR><LF>.<CR><LF>\r\n".to_vec());
                }
            }
            Command::Quit => {
                self.replies.push_back(b"221 2.0.0 Bye\r\n".to_vec());
                self.closing = true;
            }
            Command::Ehlo(_) => self
                .replies
                .push_back(b"250-mta.example\r\n250-CHUNKING\r\n250 8BITMIME\r\n".to_vec()),
            _ => {
                self.reply(choices, b"250 2.0.0 Ok\r\n");
            }
        }
    }
}

/// The line check of the invariant: CRLF-terminated, no control characters, parsed by the
/// module's own parser into a command whose canonical form is exactly this line. Panics
/// otherwise.
pub fn check_line(line: &[u8]) -> Command {
    let body = line.strip_suffix(b"\r\n").expect("line ends with CRLF");
    let text = core::str::from_utf8(body).expect("upstream line is UTF-8");
    assert!(
        !text.chars().any(char::is_control),
        "control character in an upstream line"
    );
    let cmd = command::parse(body).expect("upstream line parses with the module's parser");
    let canonical = match &cmd {
        Command::Data => CanonicalCommand::data(),
        other => other.canonical().expect("upstream line is a relayed verb"),
    };
    assert_eq!(canonical.as_bytes(), line, "upstream line is not canonical");
    cmd
}

fn stuffed(message: &[u8]) -> Vec<u8> {
    let mut m = message.to_vec();
    m.extend_from_slice(b".\r\n");
    m
}

/// A logged-in session with the harness around it.
pub struct Harness {
    session: SmtpSession,
    now: Instant,
    start: Instant,
    mta: Mta,
    choices: Choices,
    checks: VecDeque<String>,
    job: Option<ProtectJob>,
    client_closed: bool,
    checking: bool,
}

impl Harness {
    /// A session after EHLO, AUTH PLAIN and the MTA's 235; the checks start from here.
    pub fn logged_in(seed: u64) -> Self {
        let now = Instant::now();
        let config = SmtpConfig {
            max_line_length: 600,
            max_message_size: 4096,
            upstream_allow: UpstreamAllowList::parse(["mta.example:465"]).expect("valid pattern"),
            ..SmtpConfig::default()
        };
        let mut h = Self {
            session: SmtpSession::new(config, now),
            now,
            start: now,
            mta: Mta::new(),
            choices: Choices(seed | 1),
            checks: VecDeque::new(),
            job: None,
            client_closed: false,
            checking: false,
        };
        h.session.handle_client_data(LOGIN, now);
        let mut connect = false;
        let mut login_lines = Vec::new();
        while let Some(a) = h.session.poll_action() {
            connect |= matches!(a, SmtpAction::ConnectUpstream { .. });
        }
        assert!(connect, "login did not connect to the MTA");
        h.session.handle_event(SmtpEvent::UpstreamConnected, now);
        h.session
            .handle_upstream_data(b"220 mta.example ESMTP\r\n", now);
        for reply in [
            &b"250-mta.example\r\n250 AUTH PLAIN LOGIN\r\n"[..],
            b"235 2.7.0 Authentication successful\r\n",
        ] {
            while let Some(a) = h.session.poll_action() {
                if let SmtpAction::SendToUpstream(b) = a {
                    login_lines.push(b);
                }
            }
            h.session.handle_upstream_data(reply, now);
        }
        let mut logged_in = false;
        while let Some(a) = h.session.poll_action() {
            if let SmtpAction::SendToClient(b) = a {
                logged_in |= b.starts_with(b"235 ");
            }
        }
        assert!(logged_in, "login failed");
        assert_eq!(login_lines.len(), 2, "EHLO and AUTH towards the MTA");
        check_line(&login_lines[0]);
        h.checking = true;
        h
    }

    pub fn step(&mut self, op: &Op) {
        match op {
            Op::Client(bytes) => {
                if !self.client_closed {
                    self.session.handle_client_data(bytes, self.now);
                }
            }
            Op::ClientClose => {
                if !self.client_closed {
                    self.client_closed = true;
                    self.session.handle_event(SmtpEvent::ClientClosed, self.now);
                }
            }
            Op::Advance(secs) => {
                self.now += Duration::from_secs(*secs);
                self.session.handle_timeout(self.now);
            }
            Op::AnswerPending => {
                while let Some(address) = self.checks.pop_front() {
                    self.answer_check(address);
                    self.drain();
                }
                if let Some(job) = self.job.take() {
                    self.answer_protect(job);
                }
            }
        }
        self.settle();
    }

    pub fn stats(&self) -> Stats {
        self.mta.stats.clone()
    }

    /// Takes the session's actions and plays the other parties until nothing moves.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            self.drain();
            if let Some(r) = self.mta.replies.pop_front() {
                if !self.mta.closed {
                    self.session.handle_upstream_data(&r, self.now);
                }
                continue;
            }
            if self.mta.closing && !self.mta.closed {
                self.mta.closed = true;
                self.session
                    .handle_event(SmtpEvent::UpstreamClosed, self.now);
                continue;
            }
            // The directory and the Konnektor answer now, or later, or never.
            if !self.checks.is_empty() && !self.choices.one_in(4) {
                let address = self.checks.pop_front().expect("pending check");
                self.answer_check(address);
                continue;
            }
            if self.job.is_some() && !self.choices.one_in(4) {
                let job = self.job.take().expect("pending job");
                self.answer_protect(job);
                continue;
            }
            return;
        }
        panic!("session does not settle");
    }

    fn drain(&mut self) {
        while let Some(a) = self.session.poll_action() {
            match a {
                SmtpAction::SendToUpstream(b) => self.mta.receive(&b, &mut self.choices),
                SmtpAction::SendToClient(_) => {}
                SmtpAction::CheckRecipient { address } => self.checks.push_back(address),
                SmtpAction::Protect(job) => {
                    assert!(self.job.is_none(), "second Protect while one is pending");
                    self.job = Some(job);
                }
                SmtpAction::CloseUpstream => {
                    self.mta.closed = true;
                    self.mta.replies.clear();
                }
                SmtpAction::CloseClient => self.client_closed = true,
                SmtpAction::DiscardKasData { link } => {
                    let link = link.expose().to_owned();
                    assert!(
                        self.mta.kas_handed.contains(&link),
                        "KAS data discarded that no protected message carried"
                    );
                    assert!(
                        !self.mta.kas_delivered.contains(&link),
                        "KAS data of a message the MTA accepted discarded"
                    );
                    assert!(
                        self.mta.kas_discarded.insert(link),
                        "KAS data discarded twice"
                    );
                    self.mta.stats.kas_discards += 1;
                }
                SmtpAction::ConnectUpstream { .. } => panic!("second MTA connection"),
                other => panic!("an action this driver does not know: {other:?}"),
            }
        }
        if let Some(t) = self.session.poll_timeout() {
            assert!(t >= self.start, "timeout before the start");
        }
    }

    fn answer_check(&mut self, address: String) {
        let verdict = match self.choices.next() % 5 {
            0 => RecipientVerdict::NoValidCertificate,
            1 => RecipientVerdict::ConflictingTelematikIds,
            2 => RecipientVerdict::DirectoryUnavailable,
            _ => RecipientVerdict::Usable,
        };
        if verdict == RecipientVerdict::Usable {
            *self.mta.usable.entry(address.clone()).or_default() += 1;
        }
        let event = SmtpEvent::RecipientChecked { address, verdict };
        self.session.handle_event(event, self.now);
    }

    fn answer_protect(&mut self, job: ProtectJob) {
        self.mta.due.clear();
        self.mta.replay.clear();
        if self.choices.one_in(8) {
            let failure = ProtectionFailure {
                reason: "Signatur fehlgeschlagen".into(),
            };
            self.session
                .handle_event(SmtpEvent::Protected(Err(failure)), self.now);
            return;
        }
        let drop_some = job.recipients.len() > 1 && self.choices.one_in(3);
        let recipients: Vec<String> = if drop_some {
            job.recipients[1..].to_vec()
        } else {
            job.recipients.clone()
        };
        let notice = (drop_some && self.choices.one_in(2)).then(|| Notice {
            envelope_from: job.envelope_from.clone(),
            recipient: job.envelope_from.clone(),
            message: SecretBytes::from(NOTICE),
        });
        if drop_some {
            for r in job.recipients.iter().filter(|r| recipients.contains(r)) {
                *self.mta.replay.entry(r.clone()).or_default() += 1;
            }
        }
        let mut kas_link = None;
        self.mta.kas_due = None;
        if !recipients.is_empty() {
            self.mta.due.push_back(stuffed(PROTECTED));
            if self.choices.one_in(2) {
                let link = format!(
                    "https://kas.example/attachment/{}",
                    self.mta.kas_handed.len()
                );
                self.mta.kas_handed.insert(link.clone());
                self.mta.kas_due = Some(link.clone());
                kas_link = Some(KasLink::new(link));
            }
        }
        self.mta.notice_rcpt = None;
        if notice.is_some() {
            self.mta.notice_rcpt = Some(job.envelope_from.clone());
            self.mta.due.push_back(stuffed(NOTICE));
        }
        let protected = ProtectedMessage {
            message: SecretBytes::from(PROTECTED),
            recipients,
            notice,
            kas_link,
        };
        self.session
            .handle_event(SmtpEvent::Protected(Ok(protected)), self.now);
    }
}

/// Runs ops on a logged-in session; panics when the invariant breaks.
pub fn run_ops(seed: u64, ops: &[Op]) -> Stats {
    let mut h = Harness::logged_in(seed);
    for op in ops {
        h.step(op);
    }
    h.stats()
}

/// Lines worth trying, for the fuzzer's dictionary op: the attacks and the valid commands
/// that lead up to them.
pub const LINES: &[&[u8]] = &[
    b"MAIL FROM:<a@b.de>\r\n",
    b"RCPT TO:<x@y.de>\r\n",
    b"RCPT TO:<z@y.de> NOTIFY=SUCCESS\r\n",
    b"DATA\r\n",
    b" DATA\r\n",
    b"DATA\t\r\n",
    b" RCPT TO:<x@y.de>\r\n",
    b"RCPT\tTO:<x@y.de>\r\n",
    b"RCPT\x0bTO:<x@y.de>\r\n",
    b"Subject: x\r\n\r\nbody\r\n.\r\n",
    b"QUIT\r\n",
    b"RSET\r\n",
    b"NOOP\x00\r\n",
    b"BDAT 5 LAST\r\nhello",
    b"mail from:<> size=10 body=8bitmime\r\n",
];

/// One fuzz input: 8 bytes of seed for the harness's choices, then ops: `0..=4` client bytes
/// (length byte, bytes), `5` client close, `6` time (byte × 10 s), `7` pending answers, else a
/// dictionary line.
pub fn run(data: &[u8]) {
    let (seed, mut rest) = data.split_at(data.len().min(8));
    let seed = seed.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b));
    let mut ops = Vec::new();
    while let Some((&op, tail)) = rest.split_first() {
        let arg = tail.first().copied().unwrap_or(0);
        rest = tail;
        match op % 16 {
            0..=4 => {
                let len = (arg as usize).min(tail.len().saturating_sub(1));
                ops.push(Op::Client(tail.get(1..1 + len).unwrap_or(&[]).to_vec()));
                rest = tail.get(1 + len..).unwrap_or(&[]);
            }
            5 => ops.push(Op::ClientClose),
            6 => {
                ops.push(Op::Advance(u64::from(arg) * 10));
                rest = tail.get(1..).unwrap_or(&[]);
            }
            7 => ops.push(Op::AnswerPending),
            _ => {
                ops.push(Op::Client(LINES[arg as usize % LINES.len()].to_vec()));
                rest = tail.get(1..).unwrap_or(&[]);
            }
        }
    }
    run_ops(seed, &ops);
}
