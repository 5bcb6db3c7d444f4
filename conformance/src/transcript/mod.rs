//! Protocol transcripts replayed against the sans-IO SMTP and POP3 sessions.
//!
//! A transcript is a text file, one exchange per file, so adding a case is a one-file change.
//! The protocol is chosen by the directory the file is in: `transcripts/smtp/` or
//! `transcripts/pop3/` ([`Protocol::dir`]). Both share this grammar, the expectation matching,
//! the clock and the random-split replay; only the `A:` actions, the `E:` events and the `O:`
//! options differ. "Upstream" is the MTA for SMTP, the POP3 server for POP3.
//!
//! | marker | meaning |
//! |---|---|
//! | `C: text` | the client sends `text` CRLF |
//! | `C~ esc` | the client sends raw bytes (`\r`, `\n`, `\t`, `\\`, `\xNN` escapes, nothing appended) |
//! | `S: text` / `S~ esc` | the upstream server sends |
//! | `M: text` / `M~ esc` | the module sends `text` CRLF (or these raw bytes) to the client (expected) |
//! | `U: text` / `U~ esc` | the module sends to the upstream server (expected) |
//! | `A: action` | expected action, see below |
//! | `J: text` / `J~ esc` | expected line of the message handed to the `protect` / `open` action |
//! | `E: event` | inject an event, see below |
//! | `P: text` / `P~ esc` | a line of the message the next `E: protected` / `E: opened` returns |
//! | `N: text` / `N~ esc` | a line of the notice mail the next `E: protected` returns (SMTP) |
//! | `T: +Ns` | advance the clock by N seconds and fire the timers |
//! | `X: timeout +Ns` / `X: timeout none` | assert `poll_timeout` |
//! | `X: finished` | assert the session is finished (and gave its one `Ended` output) |
//! | `X: ended REASON` | assert the session ended with this [`EndReason`] (`client-quit`, …) |
//! | `O: key value` | a setting changed from the protocol's default configuration |
//! | `O: replay session-only` | replay against the session only, not also through the driver |
//! | `# …` | comment; blank lines are ignored |
//!
//! Actions and events of both protocols: `A: connect HOST:PORT`, `A: close-client`,
//! `A: close-upstream`; `E: connected`, `E: connect-failed [REASON]` (REASON takes escapes,
//! default `connection refused`), `E: client-closed`, `E: upstream-closed`.
//!
//! SMTP only: `A: check-recipient ADDR`, `A: protect from=<F> to=A,B [konnektor=ID]`;
//! `E: recipient ADDR usable|no-certificate|conflicting-ids|directory-unavailable`,
//! `E: protect-failed REASON`, `E: protected keep=A,B [notice=FROM>TO]`; options are the
//! [`SmtpConfig`](komle_core::smtp::SmtpConfig) fields ([`smtp::config`]).
//!
//! POP3 only: `A: open login=USER#HOST:PORT#MANDANT#CLIENTSYSTEM#WORKPLACE[#USERID|*][#KONNEKTORID]` (the login
//! the job carries, followed by its `J:` lines); `E: opened` (the `P:` lines before it are the
//! opened message), `E: open-failed REASON`; options are the
//! [`Pop3Config`](komle_core::pop3::Pop3Config) fields ([`pop3::config`]).
//!
//! Everything the module emits must be matched by an expectation, in order, before the next
//! input: every byte either side sees is asserted.

mod driven;
mod grammar;
pub mod pop3;
pub mod smtp;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use grammar::{escape, unescape};
pub use smtp::TRANSCRIPT_MTAS;

use grammar::{ConnectionEvent, parse_secs, push_lines, with_crlf};
use komle_core::proxy_session::{EndReason, Input, Job, JobResult, Output, ProxySession};

/// Which session a transcript drives; chosen by the directory the file is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Smtp,
    Pop3,
}

impl Protocol {
    /// The directory under `conformance/transcripts/` holding this protocol's transcripts.
    pub fn dir(self) -> &'static str {
        match self {
            Self::Smtp => "smtp",
            Self::Pop3 => "pop3",
        }
    }

    /// Markers only one protocol has: a POP3 transcript with a notice line is a mistake.
    fn accepts(self, marker: &str) -> bool {
        !(self == Self::Pop3 && matches!(marker, "N:" | "N~"))
    }
}

/// Which message an `P:` / `N:` line belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadKind {
    /// `P:` — the protected (SMTP) or opened (POP3) message.
    Message,
    /// `N:` — the notice mail of an SMTP `protected` result.
    Notice,
}

/// One step of a transcript.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Client(Vec<u8>),
    Upstream(Vec<u8>),
    Event(String),
    Payload(PayloadKind, Vec<u8>),
    Advance(Duration),
    Expect(String),
    ExpectTimeout(Option<Duration>),
    ExpectFinished,
    /// `X: ended REASON`: the session ended with [`EndReason`] `REASON` (its `as_str`).
    ExpectEnded(String),
}

/// A parsed transcript.
#[derive(Clone, Debug)]
pub struct Transcript {
    pub protocol: Protocol,
    pub name: String,
    /// Settings changed from the protocol's default configuration by `O: key value` lines.
    pub options: Vec<(String, String)>,
    /// `O: replay session-only`: replayed against the session alone, not also through the
    /// production driver (the `driven` module).
    pub session_only: bool,
    /// Steps with the 1-based line number they come from.
    pub steps: Vec<(usize, Step)>,
}

impl Transcript {
    pub fn parse(protocol: Protocol, name: &str, text: &str) -> Result<Self, String> {
        let mut steps = Vec::new();
        let mut options = Vec::new();
        let mut session_only = false;
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (marker, rest) = (line.get(..2).unwrap_or(""), line.get(3..).unwrap_or(""));
            if !protocol.accepts(marker) {
                return Err(format!("{name}:{n}: {marker} is no {protocol:?} marker"));
            }
            let raw = || unescape(rest).map_err(|e| format!("{name}:{n}: {e}"));
            let step = match marker {
                "C:" => Step::Client(with_crlf(rest)),
                "C~" => Step::Client(raw()?),
                "S:" => Step::Upstream(with_crlf(rest)),
                "S~" => Step::Upstream(raw()?),
                "M:" | "U:" | "A:" | "J:" | "M~" | "U~" | "J~" => {
                    Step::Expect(format!("{marker} {rest}"))
                }
                "E:" => Step::Event(rest.to_owned()),
                "O:" => {
                    let (k, v) = rest
                        .split_once(' ')
                        .ok_or(format!("{name}:{n}: O: needs key and value"))?;
                    if (k, v) == ("replay", "session-only") {
                        session_only = true;
                    } else {
                        options.push((k.to_owned(), v.to_owned()));
                    }
                    continue;
                }
                "P:" => Step::Payload(PayloadKind::Message, with_crlf(rest)),
                "P~" => Step::Payload(PayloadKind::Message, raw()?),
                "N:" => Step::Payload(PayloadKind::Notice, with_crlf(rest)),
                "N~" => Step::Payload(PayloadKind::Notice, raw()?),
                "T:" => Step::Advance(parse_secs(rest).ok_or(format!("{name}:{n}: bad time"))?),
                "X:" if rest == "finished" => Step::ExpectFinished,
                "X:" if rest == "timeout none" => Step::ExpectTimeout(None),
                "X:" if rest.starts_with("ended ") => Step::ExpectEnded(rest[6..].to_owned()),
                "X:" => {
                    let d = rest
                        .strip_prefix("timeout ")
                        .and_then(parse_secs)
                        .ok_or(format!("{name}:{n}: bad assertion"))?;
                    Step::ExpectTimeout(Some(d))
                }
                _ => return Err(format!("{name}:{n}: unknown marker in {line:?}")),
            };
            steps.push((n, step));
        }
        Ok(Self {
            protocol,
            name: name.to_owned(),
            options,
            session_only,
            steps,
        })
    }

    /// Parses every `*.txt` in `dir`, sorted by name, as transcripts of `protocol`.
    pub fn load_dir(protocol: Protocol, dir: &Path) -> Result<Vec<Self>, String> {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut files = Vec::new();
        for e in entries {
            let p = e.map_err(|e| format!("{}: {e}", dir.display()))?.path();
            if p.extension().is_some_and(|e| e == "txt") {
                files.push(p);
            }
        }
        files.sort();
        files
            .iter()
            .map(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                let text =
                    std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
                Self::parse(protocol, &name, &text)
            })
            .collect()
    }

    /// Every transcript of `protocol` in `conformance/transcripts/<dir>`.
    pub fn load(protocol: Protocol) -> Result<Vec<Self>, String> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("transcripts")
            .join(protocol.dir());
        Self::load_dir(protocol, &dir)
    }
}

/// Message bytes collected from `P:` / `N:` lines for the next event that returns a message.
#[derive(Debug, Default)]
pub(crate) struct Payload {
    message: Vec<u8>,
    notice: Vec<u8>,
}

/// What differs between the protocols; everything else (inputs, output words, matching, the
/// clock) is one loop over [`ProxySession`] in [`replay`].
pub(crate) trait Words {
    type Session: ProxySession;
    /// Starts a session with the `O:` options applied.
    fn start(options: &[(String, String)], now: Instant) -> Result<Self::Session, String>;
    /// The protocol's own `E:` words: job results. A message they return is taken from
    /// `payload`.
    fn job_result(spec: &str, payload: &mut Payload) -> Result<JobResult, String>;
    /// Shows a job the session handed out as `A:` (and `J:`) lines; a job this protocol does
    /// not have is an error.
    fn show_job(job: Job, observed: &mut VecDeque<String>) -> Result<(), String>;
}

/// How input bytes are cut into reads: given the bytes of one input step, the chunk sizes.
pub type Splitter<'a> = &'a mut dyn FnMut(usize) -> Vec<usize>;

/// Replays a transcript against the session, then (unless it is session-only) through the
/// production driver over the in-memory runtime; `split` decides how each input is cut into
/// reads.
pub fn run(t: &Transcript, split: Splitter<'_>) -> Result<(), String> {
    match t.protocol {
        Protocol::Smtp => replay::<smtp::SmtpWords>(t, split)?,
        Protocol::Pop3 => replay::<pop3::Pop3Words>(t, split)?,
    }
    if t.session_only {
        return Ok(());
    }
    match t.protocol {
        Protocol::Smtp => driven::replay_driven::<smtp::SmtpWords>(t, split),
        Protocol::Pop3 => driven::replay_driven::<pop3::Pop3Words>(t, split),
    }
}

/// The outputs of a session seen so far, as expectation lines, and how it ended.
struct Observed {
    lines: VecDeque<String>,
    /// The reason of [`Output::Ended`], once it came; nothing may follow it.
    ended: Option<EndReason>,
}

impl Observed {
    /// Moves every pending output of `session` into `lines`.
    fn drain<W: Words>(&mut self, session: &mut W::Session) -> Result<(), String> {
        while let Some(out) = session.poll_output() {
            if let Some(reason) = self.ended {
                return Err(format!("output {out:?} after Ended {{ {reason} }}"));
            }
            match out {
                Output::SendToClient(b) => push_lines(&mut self.lines, "M", &b),
                Output::SendToUpstream(b) => push_lines(&mut self.lines, "U", &b),
                Output::ConnectUpstream { host, port, .. } => {
                    self.lines.push_back(format!("A: connect {host}:{port}"))
                }
                Output::CloseClient => self.lines.push_back("A: close-client".into()),
                Output::CloseUpstream => self.lines.push_back("A: close-upstream".into()),
                Output::Run(job) => W::show_job(job, &mut self.lines)?,
                // Not a transcript line: checked by `X: finished` / `X: ended`.
                Output::Ended { reason } => {
                    if !session.is_finished() {
                        return Err(format!("Ended {{ {reason} }} before the session finished"));
                    }
                    self.ended = Some(reason);
                }
                other => return Err(format!("output the runner does not know: {other:?}")),
            }
        }
        Ok(())
    }
}

/// The one replay loop: feeds the transcript's inputs as [`Input`]s and matches every output.
fn replay<W: Words>(t: &Transcript, split: Splitter<'_>) -> Result<(), String> {
    let mut now = Instant::now();
    let mut session = W::start(&t.options, now).map_err(|e| format!("{}: {e}", t.name))?;
    let mut observed = Observed {
        lines: VecDeque::new(),
        ended: None,
    };
    let mut payload = Payload::default();
    observed
        .drain::<W>(&mut session)
        .map_err(|e| format!("{}: {e}", t.name))?;
    for (n, step) in &t.steps {
        let at = || format!("{}:{}", t.name, n);
        let is_input = matches!(
            step,
            Step::Client(_) | Step::Upstream(_) | Step::Event(_) | Step::Advance(_)
        );
        if is_input && !observed.lines.is_empty() {
            return Err(format!(
                "{}: module output not expected by the transcript: {:?}",
                at(),
                observed.lines
            ));
        }
        let mut feed = |session: &mut W::Session, input: Input<'_>, now: Instant| {
            session.handle_input(input, now);
            observed
                .drain::<W>(session)
                .map_err(|e| format!("{}: {e}", at()))
        };
        match step {
            Step::Client(bytes) => {
                for chunk in chunks(bytes, split) {
                    feed(&mut session, Input::ClientData(chunk), now)?;
                }
            }
            Step::Upstream(bytes) => {
                for chunk in chunks(bytes, split) {
                    feed(&mut session, Input::UpstreamData(chunk), now)?;
                }
            }
            Step::Event(e) => {
                let input = match ConnectionEvent::parse(e).map_err(|m| format!("{}: {m}", at()))? {
                    Some(common) => common.into_input(),
                    None => Input::JobDone(
                        W::job_result(e, &mut payload).map_err(|m| format!("{}: {m}", at()))?,
                    ),
                };
                feed(&mut session, input, now)?;
            }
            Step::Payload(PayloadKind::Message, l) => payload.message.extend_from_slice(l),
            Step::Payload(PayloadKind::Notice, l) => payload.notice.extend_from_slice(l),
            Step::Advance(d) => {
                now += *d;
                feed(&mut session, Input::Timeout, now)?;
            }
            Step::Expect(want) => match observed.lines.pop_front() {
                Some(got) if &got == want => {}
                Some(got) => return Err(format!("{}: expected {want:?}, got {got:?}", at())),
                None => return Err(format!("{}: expected {want:?}, got nothing", at())),
            },
            Step::ExpectTimeout(want) => {
                let got = session.poll_timeout().map(|t| t - now);
                if got != *want {
                    return Err(format!("{}: timeout {got:?}, expected {want:?}", at()));
                }
            }
            Step::ExpectFinished => {
                if !session.is_finished() {
                    return Err(format!("{}: session not finished", at()));
                }
                if observed.ended.is_none() {
                    return Err(format!("{}: session finished without Ended", at()));
                }
            }
            Step::ExpectEnded(want) => match observed.ended {
                Some(got) if got.as_str() == want => {}
                got => return Err(format!("{}: ended {got:?}, expected {want}", at())),
            },
        }
    }
    if !observed.lines.is_empty() {
        return Err(format!(
            "{}: module output after the end of the transcript: {:?}",
            t.name, observed.lines
        ));
    }
    if session.is_finished() != observed.ended.is_some() {
        return Err(format!(
            "{}: finished {} but Ended {:?}",
            t.name,
            session.is_finished(),
            observed.ended
        ));
    }
    Ok(())
}

fn chunks<'b>(bytes: &'b [u8], split: Splitter<'_>) -> Vec<&'b [u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    for size in split(bytes.len()) {
        let size = size.min(rest.len());
        if size == 0 {
            continue;
        }
        let (a, b) = rest.split_at(size);
        out.push(a);
        rest = b;
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// Feeds every input in one piece.
pub fn whole(_: usize) -> Vec<usize> {
    Vec::new()
}

/// Cuts every input into reads of the sizes in `sizes`, taken in turn and round again: the
/// random-split replay draws `sizes` and replays every transcript with them.
pub fn cycling(sizes: &[usize]) -> impl FnMut(usize) -> Vec<usize> + '_ {
    let mut i = 0;
    move |len| {
        let mut out = Vec::new();
        let mut total = 0;
        while total < len && !sizes.is_empty() {
            let s = sizes[i % sizes.len()].max(1);
            i += 1;
            out.push(s);
            total += s;
        }
        out
    }
}

/// Replays every transcript in one piece; the failures, one line each.
pub fn failures_whole(all: &[Transcript]) -> Vec<String> {
    all.iter()
        .filter_map(|t| run(t, &mut whole).err())
        .collect()
}

/// Replays every transcript with reads cut by [`cycling`]`(sizes)`; the first failure.
pub fn first_failure_split(all: &[Transcript], sizes: &[usize]) -> Result<(), String> {
    for t in all {
        let mut split = cycling(sizes);
        run(t, &mut split)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transcript_that_expects_too_little_fails() {
        let t = Transcript::parse(Protocol::Smtp, "t", "C: NOOP\n").unwrap();
        let err = run(&t, &mut whole).unwrap_err();
        assert!(err.contains("220"), "{err}");
    }

    #[test]
    fn a_transcript_that_expects_wrong_bytes_fails() {
        let t = Transcript::parse(
            Protocol::Smtp,
            "t",
            "M: 220 KOM-LE-Clientmodul ESMTP\nC: NOOP\nM: 250 OK\n",
        )
        .unwrap();
        let err = run(&t, &mut whole).unwrap_err();
        assert!(err.contains("t:3"), "{err}");
    }

    #[test]
    fn a_pop3_transcript_that_expects_wrong_bytes_fails() {
        let good = "M: +OK KOM-LE Clientmodul POP3\nC: CAPA\nM: +OK Capability list follows\n\
                    M: TOP\nM: USER\nM: SASL PLAIN\nM: UIDL\nM: .\n";
        let t = Transcript::parse(Protocol::Pop3, "p", good).unwrap();
        run(&t, &mut whole).unwrap();
        let t = Transcript::parse(Protocol::Pop3, "p", &good.replace("UIDL", "UIDM")).unwrap();
        let err = run(&t, &mut whole).unwrap_err();
        assert!(err.contains("p:7"), "{err}");
        // The same holds when every read is one byte.
        let err = run(&t, &mut cycling(&[1])).unwrap_err();
        assert!(err.contains("p:7"), "{err}");
    }

    #[test]
    fn a_pop3_transcript_that_misses_an_action_fails() {
        let t = Transcript::parse(
            Protocol::Pop3,
            "p",
            "M: +OK KOM-LE Clientmodul POP3\nC: QUIT\nM: +OK KOM-LE Clientmodul beendet die Verbindung\n",
        )
        .unwrap();
        let err = run(&t, &mut whole).unwrap_err();
        assert!(err.contains("close-client"), "{err}");
    }

    #[test]
    fn markers_and_options_of_the_other_protocol_are_refused() {
        assert!(Transcript::parse(Protocol::Pop3, "p", "N: x\n").is_err());
        let t = Transcript::parse(Protocol::Pop3, "p", "O: data_timeout 5\n").unwrap();
        assert!(run(&t, &mut whole).unwrap_err().contains("data_timeout"));
        let t = Transcript::parse(
            Protocol::Smtp,
            "s",
            "M: 220 KOM-LE-Clientmodul ESMTP\nE: opened\n",
        )
        .unwrap();
        assert!(
            run(&t, &mut whole)
                .unwrap_err()
                .contains("unknown SMTP event")
        );
    }

    /// A_2016 (QUIT before any MTA connection) and A_2038 (POP3 QUIT in CONNECT): the session
    /// ends with exactly one `Ended { ClientQuit }`, which `X: ended` checks.
    #[test]
    fn a_2016_a_2038_ended_reason_is_asserted() {
        let smtp = "M: 220 KOM-LE-Clientmodul ESMTP\nC: QUIT\nM: 221 2.0.0 OK\n\
                    A: close-client\nX: finished\nX: ended client-quit\n";
        let t = Transcript::parse(Protocol::Smtp, "s", smtp).unwrap();
        run(&t, &mut whole).unwrap();
        run(&t, &mut cycling(&[1])).unwrap();
        let t =
            Transcript::parse(Protocol::Smtp, "s", &smtp.replace("quit\n", "closed\n")).unwrap();
        let err = run(&t, &mut whole).unwrap_err();
        assert!(err.contains("s:6") && err.contains("ClientQuit"), "{err}");
        let pop3 = "M: +OK KOM-LE Clientmodul POP3\nC: QUIT\n\
                    M: +OK KOM-LE Clientmodul beendet die Verbindung\nA: close-client\n\
                    X: ended client-quit\n";
        let t = Transcript::parse(Protocol::Pop3, "p", pop3).unwrap();
        run(&t, &mut whole).unwrap();
        // Before the end there is no reason to assert.
        let t = Transcript::parse(Protocol::Pop3, "p", "X: ended client-quit\n").unwrap();
        assert!(run(&t, &mut whole).unwrap_err().contains("None"));
    }

    #[test]
    fn cycling_covers_the_input() {
        let mut s = cycling(&[3, 1]);
        assert_eq!(s(7), [3, 1, 3]);
        assert_eq!(s(1), [1]);
    }
}
