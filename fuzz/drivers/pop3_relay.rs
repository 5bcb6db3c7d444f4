//! The POP3 relay after login (KOM-LE-A_2040, default deny) on arbitrary client bytes, cut
//! into arbitrary chunks, with the client possibly hanging up anywhere. A harness plays the
//! POP3 server and answers every command at once. Invariants:
//! - every line the server receives is printable ASCII ending in CRLF, parses with the module's
//!   own [`CanonicalCommand::parse`] and re-serialises byte for byte; `TOP` asks for 0 lines;
//! - what the server receives is exactly what an independent reference reading of RFC 1939
//!   (below) accepts from the client's complete lines, in order, up to the first QUIT — so a
//!   client close adds nothing (no QUIT of the module's own: it would commit DELEs) and an
//!   unfinished line never goes out;
//! - the client gets exactly one answer per complete line, in order: the server's reply, the
//!   opened message, or the module's own `-ERR`;
//! - nothing reaches a side after it was closed.
//!
//! Shared by the fuzz target `pop3_relay`, `core/tests/fuzz_regressions.rs` and the proptest in
//! `core/tests/pop3_relay.rs`.
use std::time::Instant;

use komle_core::pop3::{
    CanonicalCommand, MALFORMED, MAX_MESSAGE_NUMBER, NOT_RELAYED, OpenedMessage, Pop3Action,
    Pop3Config, Pop3Event, Pop3Session, ReplyShape,
};
use komle_core::secret::SecretBytes;
use komle_core::upstream_allow::UpstreamAllowList;

const LOGIN: &str = "erik@komle.de#pop.komle.de:995#1#KOM_LE#7";
/// Short, so overlong lines are in reach of the fuzzer.
pub const MAX_LINE: usize = 200;
/// What the harness's Konnektor puts in front of every opened message.
const OPENED_PREFIX: &[u8] = b"X-Opened: 1\r\n";
/// The message the harness server returns for every RETR, on the wire (dot-stuffed).
const RETR_WIRE: &[u8] = b"Subject: m\r\n\r\n..dot\r\n.\r\n";
/// The same message unstuffed.
const RETR_CONTENT: &[u8] = b"Subject: m\r\n\r\n.dot\r\n";

/// The reference reading of one client line (without its LF): the canonical line the server
/// must get, or the `-ERR` text the client must get. Written from RFC 1939 independently of
/// the module's parser.
pub fn reference(line: &[u8]) -> Result<Vec<u8>, &'static str> {
    let body = line.strip_suffix(b"\r").unwrap_or(line);
    let printable = body.iter().all(|b| (0x20..0x7f).contains(b));
    if body.is_empty() || body[0] == b' ' || !printable {
        return Err(MALFORMED);
    }
    let text = String::from_utf8(body.to_vec()).expect("printable ASCII");
    let words: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
    let keyword = words[0].to_ascii_uppercase();
    let args = &words[1..];
    let number = |a: &str, max: u64, min: u64| -> Option<u64> {
        if a.len() > 10 || !a.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        a.parse::<u64>().ok().filter(|n| (min..=max).contains(n))
    };
    let msg = |a: &str| number(a, u64::from(MAX_MESSAGE_NUMBER), 1);
    let canonical = match (keyword.as_str(), args) {
        ("STAT" | "NOOP" | "RSET" | "QUIT" | "CAPA" | "LIST" | "UIDL", []) => Some(keyword.clone()),
        ("LIST" | "UIDL" | "RETR" | "DELE", [n]) => msg(n).map(|n| format!("{keyword} {n}")),
        ("TOP", [n, lines]) => match (msg(n), number(lines, u64::from(u32::MAX), 0)) {
            (Some(n), Some(_)) => Some(format!("TOP {n} 0")),
            _ => None,
        },
        (
            "STAT" | "NOOP" | "RSET" | "QUIT" | "CAPA" | "LIST" | "UIDL" | "RETR" | "DELE" | "TOP",
            _,
        ) => return Err(MALFORMED),
        _ => return Err(NOT_RELAYED),
    };
    canonical
        .map(|c| format!("{c}\r\n").into_bytes())
        .ok_or(MALFORMED)
}

/// What the harness server answers to the `k`-th command, and what the client gets for it.
fn server_reply(command: &CanonicalCommand, k: usize) -> Vec<u8> {
    let mut out = format!("+OK s{k}\r\n").into_bytes();
    match command.reply_shape() {
        ReplyShape::SingleLine => {}
        ReplyShape::MultiLine => out.extend_from_slice(b"1 x\r\n..y\r\n.\r\n"),
        ReplyShape::Message => out.extend_from_slice(RETR_WIRE),
    }
    out
}

fn client_answer(canonical_line: &[u8], k: usize) -> Vec<u8> {
    let command = CanonicalCommand::parse(&canonical_line[..canonical_line.len() - 2])
        .expect("reference line parses");
    if command.reply_shape() == ReplyShape::Message {
        let opened_len = OPENED_PREFIX.len() + RETR_CONTENT.len();
        let mut out = format!("+OK {opened_len} octets\r\n").into_bytes();
        out.extend_from_slice(OPENED_PREFIX);
        out.extend_from_slice(RETR_WIRE);
        out
    } else {
        server_reply(&command, k)
    }
}

/// What the relay did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Lines the server received after the login.
    pub upstream: Vec<Vec<u8>>,
    /// Bytes the client received after the login.
    pub client: Vec<u8>,
    pub closed_client: bool,
    pub closed_upstream: bool,
}

struct Harness {
    s: Pop3Session,
    now: Instant,
    out: Outcome,
    /// Server bytes not yet cut into lines.
    pending: Vec<u8>,
    /// Answers the harness server still has to send.
    answers: Vec<u8>,
}

impl Harness {
    fn logged_in() -> Self {
        let now = Instant::now();
        let config = Pop3Config {
            max_line_length: MAX_LINE,
            upstream_allow: UpstreamAllowList::parse(["pop.komle.de:995"]).expect("valid pattern"),
            ..Pop3Config::default()
        };
        let mut h = Harness {
            s: Pop3Session::new(config, now),
            now,
            out: Outcome::default(),
            pending: Vec::new(),
            answers: Vec::new(),
        };
        h.s.handle_client_data(format!("USER {LOGIN}\r\nPASS pw\r\n").as_bytes(), now);
        h.s.handle_event(Pop3Event::UpstreamConnected, now);
        for line in [
            &b"+OK hi\r\n"[..],
            b"+OK\r\nUSER\r\n.\r\n",
            b"+OK\r\n",
            b"+OK in\r\n",
        ] {
            h.s.handle_upstream_data(line, now);
        }
        while let Some(a) = h.s.poll_action() {
            assert!(
                !matches!(a, Pop3Action::CloseClient | Pop3Action::CloseUpstream),
                "login failed: {a:?}"
            );
        }
        assert!(!h.s.is_finished());
        h
    }

    /// Carries out actions until the session is quiet, answering like a POP3 server.
    fn pump(&mut self) {
        loop {
            while let Some(a) = self.s.poll_action() {
                match a {
                    Pop3Action::SendToClient(b) => {
                        assert!(!self.out.closed_client, "client bytes after CloseClient");
                        self.out.client.extend_from_slice(&b);
                    }
                    Pop3Action::SendToUpstream(b) => {
                        assert!(
                            !self.out.closed_upstream,
                            "server bytes after CloseUpstream"
                        );
                        self.pending.extend_from_slice(&b);
                        self.server_reads();
                    }
                    Pop3Action::Open(job) => {
                        let mut m = OPENED_PREFIX.to_vec();
                        m.extend_from_slice(job.message.as_slice());
                        let result = Ok(OpenedMessage {
                            message: SecretBytes::from(m),
                        });
                        self.s.handle_event(Pop3Event::Opened(result), self.now);
                    }
                    Pop3Action::CloseClient => self.out.closed_client = true,
                    Pop3Action::CloseUpstream => self.out.closed_upstream = true,
                    Pop3Action::ConnectUpstream { .. } => panic!("second connect"),
                    other => panic!("an action this driver does not know: {other:?}"),
                }
            }
            if self.answers.is_empty() || self.out.closed_upstream {
                return;
            }
            let answers = std::mem::take(&mut self.answers);
            self.s.handle_upstream_data(&answers, self.now);
        }
    }

    /// The server reads complete lines: each must be a canonical command.
    fn server_reads(&mut self) {
        while let Some(lf) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=lf).collect();
            assert!(line.ends_with(b"\r\n"), "line without CRLF: {line:?}");
            let body = &line[..line.len() - 2];
            assert!(
                body.iter().all(|b| (0x20..0x7f).contains(b)),
                "control or non-ASCII byte upstream: {line:?}"
            );
            let command = CanonicalCommand::parse(body).expect("upstream line parses");
            assert_eq!(command.to_line(), line, "not canonical");
            if let CanonicalCommand::Top { lines, .. } = command {
                assert_eq!(lines, 0, "A_2041");
            }
            let k = self.out.upstream.len();
            self.out.upstream.push(line);
            self.answers.extend_from_slice(&server_reply(&command, k));
        }
    }
}

/// The answer the client must get, and the lines the server must get, for `delivered` client
/// bytes (the reference model of the whole relay).
pub fn expected(delivered: &[u8]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut upstream = Vec::new();
    let mut client = Vec::new();
    let mut rest = delivered;
    loop {
        let Some(lf) = rest.iter().position(|b| *b == b'\n') else {
            if rest.len() > MAX_LINE {
                client.extend_from_slice(b"-ERR Zeile zu lang\r\n");
            }
            break;
        };
        if lf + 1 > MAX_LINE {
            client.extend_from_slice(b"-ERR Zeile zu lang\r\n");
            break;
        }
        let line = &rest[..lf];
        rest = &rest[lf + 1..];
        match reference(line) {
            Ok(canonical) => {
                client.extend_from_slice(&client_answer(&canonical, upstream.len()));
                let quit = canonical == b"QUIT\r\n";
                upstream.push(canonical);
                if quit {
                    break;
                }
            }
            Err(text) => client.extend_from_slice(format!("-ERR {text}\r\n").as_bytes()),
        }
    }
    (upstream, client)
}

/// Feeds `stream` to a logged-in session in pieces cut at `cuts` (offsets, any order), the
/// client hanging up after `close_at` bytes if given, and checks every invariant.
pub fn relay(stream: &[u8], cuts: &[usize], close_at: Option<usize>) -> Outcome {
    let mut h = Harness::logged_in();
    let end = close_at.map_or(stream.len(), |c| c.min(stream.len()));
    let mut cuts: Vec<usize> = cuts.iter().map(|c| (*c).min(end)).collect();
    cuts.push(end);
    cuts.sort_unstable();
    let mut last = 0;
    for c in cuts {
        h.s.handle_client_data(&stream[last..c], h.now);
        h.pump();
        last = c;
    }
    let (upstream, client) = expected(&stream[..end]);
    if close_at.is_some() {
        let before = h.out.upstream.len();
        h.s.handle_event(Pop3Event::ClientClosed, h.now);
        h.pump();
        // The harness answers at once, so nothing was held back: the close adds nothing.
        assert_eq!(
            h.out.upstream.len(),
            before,
            "the client close sent commands"
        );
        assert!(h.out.closed_upstream && h.out.closed_client);
    }
    assert_eq!(
        h.out.upstream, upstream,
        "server got other lines than the reference"
    );
    const TOO_LONG: &[u8] = b"-ERR Zeile zu lang\r\n";
    let too_long = client.ends_with(TOO_LONG);
    let finished = upstream.last().is_some_and(|l| l == b"QUIT\r\n") || too_long;
    if too_long {
        // An overlong line ends the session at once: replies the server still owed for
        // commands in the same chunk are lost, the rest is in order.
        let got = h
            .out
            .client
            .strip_suffix(TOO_LONG)
            .expect("ends with -ERR Zeile zu lang");
        assert!(
            client.starts_with(got),
            "client answers differ from the reference"
        );
    } else {
        assert_eq!(
            String::from_utf8_lossy(&h.out.client),
            String::from_utf8_lossy(&client),
            "client answers differ from the reference"
        );
        assert_eq!(h.out.client, client);
    }
    if finished {
        assert!(h.out.closed_client && h.out.closed_upstream);
    } else if close_at.is_none() {
        assert!(!h.out.closed_client && !h.s.is_finished());
    }
    h.out
}

/// One fuzz input: byte 0 picks the chunk size (0: all at once), byte 1 whether and where the
/// client hangs up; the rest is the client's byte stream.
pub fn run(data: &[u8]) {
    let [size, close, stream @ ..] = data else {
        return;
    };
    // Below what may wait behind a RETR (MAX_LINE × 65), which the reference does not model.
    let stream = &stream[..stream.len().min(8 * 1024)];
    let size = usize::from(*size % 17);
    let cuts: Vec<usize> = if size == 0 {
        Vec::new()
    } else {
        (size..stream.len()).step_by(size).collect()
    };
    let close_at = (close & 1 == 1).then(|| stream.len() * usize::from(close >> 1) / 127);
    relay(stream, &cuts, close_at);
}
