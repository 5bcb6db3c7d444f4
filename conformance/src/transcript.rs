//! Protocol transcripts replayed against the sans-IO SMTP session.
//!
//! A transcript is a text file, one exchange per file, so adding a case is a one-file change.
//! Each line starts with a marker:
//!
//! | marker | meaning |
//! |---|---|
//! | `C: text` | the client sends `text` CRLF |
//! | `C~ esc` | the client sends raw bytes (`\r`, `\n`, `\t`, `\\`, `\xNN` escapes, nothing appended) |
//! | `S: text` / `S~ esc` | the MTA sends |
//! | `M: text` | the module sends `text` CRLF to the client (expected) |
//! | `U: text` | the module sends `text` CRLF to the MTA (expected) |
//! | `A: action` | expected action: `connect HOST:PORT`, `check-recipient ADDR`, `protect from=<F> to=A,B`, `close-client`, `close-upstream` |
//! | `J: text` | expected line of the message handed to `protect` (unstuffed) |
//! | `E: event` | inject: `connected`, `connect-failed`, `client-closed`, `upstream-closed`, `recipient ADDR usable\|no-certificate\|conflicting-ids\|directory-unavailable`, `protect-failed REASON`, `protected keep=A,B [notice=FROM>TO]` |
//! | `P: text` | a line of the protected message the next `E: protected` returns |
//! | `N: text` | a line of the notice mail the next `E: protected` returns |
//! | `T: +Ns` | advance the clock by N seconds and fire the timers |
//! | `X: timeout +Ns` / `X: timeout none` | assert `poll_timeout` |
//! | `X: finished` | assert the session is finished |
//! | `O: key value` | a setting changed from `SmtpConfig::default` (`max_failed_logins 2`, `upstream_allow PATTERN…` or `none`, …) |
//! | `# …` | comment; blank lines are ignored |
//!
//! Everything the module emits must be matched by an expectation, in order, before the next
//! input: every byte either side sees is asserted.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use komle_core::secret::SecretBytes;
use komle_core::smtp::{
    Notice, ProtectedMessage, ProtectionFailure, RecipientVerdict, SmtpAction, SmtpConfig,
    SmtpEvent, SmtpSession,
};
use komle_core::upstream_allow::UpstreamAllowList;

/// One step of a transcript.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Client(Vec<u8>),
    Mta(Vec<u8>),
    Event(String),
    ProtectedLine(Vec<u8>),
    NoticeLine(Vec<u8>),
    Advance(Duration),
    Expect(String),
    ExpectTimeout(Option<Duration>),
    ExpectFinished,
}

/// The MTAs the transcripts name in their login names, allowed by default.
pub const TRANSCRIPT_MTAS: &[&str] = &["mail.komle.de:465", "127.0.0.1:2465", "[2001:db8::25]:465"];

/// A parsed transcript.
#[derive(Clone, Debug)]
pub struct Transcript {
    pub name: String,
    /// Settings changed from [`SmtpConfig::default`] by `O: key value` lines.
    pub options: Vec<(String, String)>,
    /// Steps with the 1-based line number they come from.
    pub steps: Vec<(usize, Step)>,
}

impl Transcript {
    pub fn parse(name: &str, text: &str) -> Result<Self, String> {
        let mut steps = Vec::new();
        let mut options = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (marker, rest) = (line.get(..2).unwrap_or(""), line.get(3..).unwrap_or(""));
            let step = match marker {
                "C:" => Step::Client(with_crlf(rest)),
                "C~" => Step::Client(unescape(rest).map_err(|e| format!("{name}:{n}: {e}"))?),
                "S:" => Step::Mta(with_crlf(rest)),
                "S~" => Step::Mta(unescape(rest).map_err(|e| format!("{name}:{n}: {e}"))?),
                "M:" | "U:" | "A:" | "J:" => Step::Expect(format!("{marker} {rest}")),
                "M~" | "U~" | "J~" => Step::Expect(format!("{marker} {rest}")),
                "E:" => Step::Event(rest.to_owned()),
                "O:" => {
                    let (k, v) = rest
                        .split_once(' ')
                        .ok_or(format!("{name}:{n}: O: needs key and value"))?;
                    options.push((k.to_owned(), v.to_owned()));
                    continue;
                }
                "P:" => Step::ProtectedLine(with_crlf(rest)),
                "N:" => Step::NoticeLine(with_crlf(rest)),
                "T:" => Step::Advance(parse_secs(rest).ok_or(format!("{name}:{n}: bad time"))?),
                "X:" if rest == "finished" => Step::ExpectFinished,
                "X:" if rest == "timeout none" => Step::ExpectTimeout(None),
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
            name: name.to_owned(),
            options,
            steps,
        })
    }

    /// The default configuration with this transcript's `O:` settings applied. The MTAs the
    /// transcripts log into are allowed ([`TRANSCRIPT_MTAS`]) unless `O: upstream_allow`
    /// gives another list (space-separated patterns, or `none`).
    pub fn config(&self) -> Result<SmtpConfig, String> {
        let mut c = SmtpConfig {
            upstream_allow: UpstreamAllowList::parse(TRANSCRIPT_MTAS.iter().copied())
                .map_err(|(p, e)| format!("{p}: {e}"))?,
            ..SmtpConfig::default()
        };
        for (k, v) in &self.options {
            let bad = || format!("{}: bad value for {k}: {v}", self.name);
            let secs = || v.parse::<u64>().map(Duration::from_secs).map_err(|_| bad());
            match k.as_str() {
                "hostname" => c.hostname = v.clone(),
                "max_message_size" => c.max_message_size = v.parse().map_err(|_| bad())?,
                "max_line_length" => c.max_line_length = v.parse().map_err(|_| bad())?,
                "max_commands_before_auth" => {
                    c.max_commands_before_auth = v.parse().map_err(|_| bad())?
                }
                "max_failed_logins" => c.max_failed_logins = v.parse().map_err(|_| bad())?,
                "mta_response_timeout" => c.mta_response_timeout = secs()?,
                "mta_idle_timeout" => c.mta_idle_timeout = secs()?,
                "client_idle_timeout" => c.client_idle_timeout = secs()?,
                "upstream_allow" if v == "none" => c.upstream_allow = UpstreamAllowList::deny_all(),
                "upstream_allow" => {
                    c.upstream_allow = UpstreamAllowList::parse(v.split_whitespace())
                        .map_err(|(p, e)| format!("{}: upstream_allow {p}: {e}", self.name))?
                }
                "data_timeout" => c.data_timeout = secs()?,
                _ => return Err(format!("{}: unknown option {k}", self.name)),
            }
        }
        Ok(c)
    }
}

fn with_crlf(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.extend_from_slice(b"\r\n");
    v
}

fn parse_secs(s: &str) -> Option<Duration> {
    let n: u64 = s.strip_prefix('+')?.strip_suffix('s')?.parse().ok()?;
    Some(Duration::from_secs(n))
}

/// Decodes `\r`, `\n`, `\t`, `\\` and `\xNN`.
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex = s.get(i + 2..i + 4).ok_or("short \\x escape")?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad \\x escape")?);
                i += 2;
            }
            _ => return Err("bad escape".into()),
        }
        i += 2;
    }
    Ok(out)
}

/// Shows bytes as a transcript would write them: printable ASCII as is, the rest escaped.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

/// How input bytes are cut into reads: given the bytes of one input step, the chunk sizes.
pub type Splitter<'a> = &'a mut dyn FnMut(usize) -> Vec<usize>;

/// Replays a transcript; `split` decides how each input is cut into reads.
pub fn run(t: &Transcript, split: Splitter<'_>) -> Result<(), String> {
    let config = t.config()?;
    let start = Instant::now();
    let mut now = start;
    let mut session = SmtpSession::new(config, now);
    let mut observed: VecDeque<String> = VecDeque::new();
    let mut protected_lines: Vec<u8> = Vec::new();
    let mut notice_lines: Vec<u8> = Vec::new();
    drain(&mut session, &mut observed);
    for (n, step) in &t.steps {
        let at = || format!("{}:{}", t.name, n);
        let is_input = matches!(
            step,
            Step::Client(_) | Step::Mta(_) | Step::Event(_) | Step::Advance(_)
        );
        if is_input && !observed.is_empty() {
            return Err(format!(
                "{}: module output not expected by the transcript: {:?}",
                at(),
                observed
            ));
        }
        match step {
            Step::Client(bytes) => {
                for chunk in chunks(bytes, split) {
                    session.handle_client_data(chunk, now);
                    drain(&mut session, &mut observed);
                }
            }
            Step::Mta(bytes) => {
                for chunk in chunks(bytes, split) {
                    session.handle_upstream_data(chunk, now);
                    drain(&mut session, &mut observed);
                }
            }
            Step::Event(e) => {
                let ev = event(e, &mut protected_lines, &mut notice_lines)
                    .map_err(|m| format!("{}: {m}", at()))?;
                session.handle_event(ev, now);
                drain(&mut session, &mut observed);
            }
            Step::ProtectedLine(l) => protected_lines.extend_from_slice(l),
            Step::NoticeLine(l) => notice_lines.extend_from_slice(l),
            Step::Advance(d) => {
                now += *d;
                session.handle_timeout(now);
                drain(&mut session, &mut observed);
            }
            Step::Expect(want) => match observed.pop_front() {
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
            }
        }
    }
    if !observed.is_empty() {
        return Err(format!(
            "{}: module output after the end of the transcript: {observed:?}",
            t.name
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

fn drain(session: &mut SmtpSession, observed: &mut VecDeque<String>) {
    while let Some(a) = session.poll_action() {
        match a {
            SmtpAction::SendToClient(b) => push_lines(observed, "M", &b),
            SmtpAction::SendToUpstream(b) => push_lines(observed, "U", &b),
            SmtpAction::ConnectUpstream { host, port } => {
                observed.push_back(format!("A: connect {host}:{port}"))
            }
            SmtpAction::CheckRecipient { address } => {
                observed.push_back(format!("A: check-recipient {address}"))
            }
            SmtpAction::Protect(job) => {
                observed.push_back(format!(
                    "A: protect from=<{}> to={}",
                    job.envelope_from,
                    job.recipients.join(",")
                ));
                push_lines(observed, "J", job.message.as_slice());
            }
            SmtpAction::CloseClient => observed.push_back("A: close-client".into()),
            SmtpAction::CloseUpstream => observed.push_back("A: close-upstream".into()),
        }
    }
}

/// Splits bytes into CRLF-terminated lines (`X: text`); anything else is shown escaped
/// (`X~ esc`).
fn push_lines(observed: &mut VecDeque<String>, marker: &str, bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        match rest.windows(2).position(|w| w == b"\r\n") {
            Some(i) if !rest[..i].contains(&b'\r') && !rest[..i].contains(&b'\n') => {
                match std::str::from_utf8(&rest[..i]) {
                    Ok(s) if !s.chars().any(|c| c.is_control()) => {
                        observed.push_back(format!("{marker}: {s}"))
                    }
                    _ => observed.push_back(format!("{marker}~ {}", escape(&rest[..i + 2]))),
                }
                rest = &rest[i + 2..];
            }
            Some(i) => {
                observed.push_back(format!("{marker}~ {}", escape(&rest[..i + 2])));
                rest = &rest[i + 2..];
            }
            None => {
                observed.push_back(format!("{marker}~ {}", escape(rest)));
                rest = &[];
            }
        }
    }
}

fn event(spec: &str, protected: &mut Vec<u8>, notice: &mut Vec<u8>) -> Result<SmtpEvent, String> {
    let mut words = spec.split(' ');
    let kind = words.next().unwrap_or_default();
    Ok(match kind {
        "connected" => SmtpEvent::UpstreamConnected,
        "connect-failed" => SmtpEvent::UpstreamFailed {
            reason: "connection refused".into(),
        },
        "client-closed" => SmtpEvent::ClientClosed,
        "upstream-closed" => SmtpEvent::UpstreamClosed,
        "recipient" => {
            let address = words.next().ok_or("recipient needs an address")?.to_owned();
            let verdict = match words.next() {
                Some("usable") => RecipientVerdict::Usable,
                Some("no-certificate") => RecipientVerdict::NoValidCertificate,
                Some("conflicting-ids") => RecipientVerdict::ConflictingTelematikIds,
                Some("directory-unavailable") => RecipientVerdict::DirectoryUnavailable,
                other => return Err(format!("unknown verdict {other:?}")),
            };
            SmtpEvent::RecipientChecked { address, verdict }
        }
        "protect-failed" => SmtpEvent::Protected(Err(ProtectionFailure {
            reason: spec["protect-failed".len()..].trim().to_owned(),
        })),
        "protected" => {
            let mut recipients = Vec::new();
            let mut notice_route = None;
            for w in words {
                if let Some(k) = w.strip_prefix("keep=") {
                    recipients = k
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect();
                } else if let Some(n) = w.strip_prefix("notice=") {
                    let (f, t) = n.split_once('>').ok_or("notice=FROM>TO")?;
                    notice_route = Some((f.to_owned(), t.to_owned()));
                } else {
                    return Err(format!("unknown word {w:?}"));
                }
            }
            let notice = notice_route.map(|(f, t)| Notice {
                envelope_from: f,
                recipient: t,
                message: SecretBytes::from(core::mem::take(notice)),
            });
            SmtpEvent::Protected(Ok(ProtectedMessage {
                message: SecretBytes::from(core::mem::take(protected)),
                recipients,
                notice,
            }))
        }
        other => return Err(format!("unknown event {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip() {
        let raw = b"a\r\n\\\x00\xff.";
        assert_eq!(unescape(&escape(raw)).unwrap(), raw);
        assert!(unescape("\\q").is_err());
    }

    #[test]
    fn a_transcript_that_expects_too_little_fails() {
        let t = Transcript::parse("t", "C: NOOP\n").unwrap();
        let err = run(&t, &mut whole).unwrap_err();
        assert!(err.contains("220"), "{err}");
    }

    #[test]
    fn a_transcript_that_expects_wrong_bytes_fails() {
        let t = Transcript::parse("t", "M: 220 KOM-LE-Clientmodul ESMTP\nC: NOOP\nM: 250 OK\n")
            .unwrap();
        let err = run(&t, &mut whole).unwrap_err();
        assert!(err.contains("t:3"), "{err}");
    }
}
