//! The POP3 proxy session (gemSpec_CM_KOMLE §3.3 / V1.16 §3.4): what a transcript cannot say
//! well. The example exchanges, with exact bytes on both sides, are transcripts in
//! `conformance/transcripts/pop3/` (replayed by `conformance/tests/pop3_transcripts.rs`, also
//! with every read split at random). Here remain the properties over generated inputs, the
//! exhaustive split of one pipelined session, a 4 MiB message, and the `Debug` output of the
//! session's types.

use std::time::{Duration, Instant};

use komle_core::pop3::{
    OpenFailure, OpenJob, OpenedMessage, Pop3Action, Pop3Config, Pop3Event, Pop3Session,
};
use komle_core::secret::SecretBytes;
use komle_core::upstream_allow::UpstreamAllowList;
use proptest::prelude::*;

const LOGIN: &str = "erik.mustermann@komle.de#pop.komle.de:995#1#KOM_LE#7#13";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Client,
    Upstream,
    Connect,
    Open,
    CloseClient,
    CloseUpstream,
}

struct H {
    s: Pop3Session,
    now: Instant,
    client: Vec<u8>,
    upstream: Vec<u8>,
    jobs: Vec<OpenJob>,
    trace: Vec<Kind>,
    /// Answer every Open at once with the message prefixed by `X-Opened: 1`.
    auto_open: bool,
}

impl H {
    fn new() -> Self {
        // The server the login name points at; the default list refuses every login (those
        // refusals are tested in pop3_upstream_allow.rs).
        let config = Pop3Config {
            upstream_allow: UpstreamAllowList::parse(["pop.komle.de:995"]).unwrap(),
            ..Pop3Config::default()
        };
        let now = Instant::now();
        let mut h = H {
            s: Pop3Session::new(config, now),
            now,
            client: Vec::new(),
            upstream: Vec::new(),
            jobs: Vec::new(),
            trace: Vec::new(),
            auto_open: false,
        };
        h.pump();
        h
    }

    fn pump(&mut self) {
        loop {
            while let Some(a) = self.s.poll_action() {
                let kind = match a {
                    Pop3Action::SendToClient(b) => {
                        self.client.extend_from_slice(&b);
                        Kind::Client
                    }
                    Pop3Action::SendToUpstream(b) => {
                        self.upstream.extend_from_slice(&b);
                        Kind::Upstream
                    }
                    Pop3Action::ConnectUpstream { .. } => Kind::Connect,
                    Pop3Action::Open(job) => {
                        self.jobs.push(job);
                        Kind::Open
                    }
                    Pop3Action::CloseClient => Kind::CloseClient,
                    Pop3Action::CloseUpstream => Kind::CloseUpstream,
                    other => panic!("an action this test does not know: {other:?}"),
                };
                self.trace.push(kind);
            }
            if !self.auto_open || self.jobs.is_empty() {
                return;
            }
            for job in std::mem::take(&mut self.jobs) {
                let mut out = b"X-Opened: 1\r\n".to_vec();
                out.extend_from_slice(job.message.as_slice());
                let result = Ok(OpenedMessage {
                    message: SecretBytes::from(out),
                });
                self.s.handle_event(Pop3Event::Opened(result), self.now);
            }
        }
    }

    fn c(&mut self, s: &str) {
        self.c_bytes(s.as_bytes());
    }

    fn c_bytes(&mut self, b: &[u8]) {
        self.s.handle_client_data(b, self.now);
        self.pump();
    }

    fn srv(&mut self, s: &str) {
        self.srv_bytes(s.as_bytes());
    }

    fn srv_bytes(&mut self, b: &[u8]) {
        self.s.handle_upstream_data(b, self.now);
        self.pump();
    }

    fn ev(&mut self, e: Pop3Event) {
        self.s.handle_event(e, self.now);
        self.pump();
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.s.handle_timeout(self.now);
        self.pump();
    }

    fn take_server(&mut self) -> String {
        String::from_utf8(std::mem::take(&mut self.upstream)).unwrap()
    }

    fn closes(&self) -> Vec<Kind> {
        self.trace
            .iter()
            .copied()
            .filter(|k| matches!(k, Kind::CloseClient | Kind::CloseUpstream))
            .collect()
    }

    /// A session in the PROXY state with both buffers cleared.
    fn logged_in() -> Self {
        let mut h = H::new();
        h.c(&format!("USER {LOGIN}\r\n"));
        h.c("PASS geheim\r\n");
        h.ev(Pop3Event::UpstreamConnected);
        h.srv("+OK POP Server Ready\r\n");
        h.srv("+OK Capability list follows\r\nTOP\r\nUSER\r\nSASL PLAIN CRAM-MD5\r\nUIDL\r\nRESP-CODES\r\n.\r\n");
        h.srv("+OK\r\n");
        h.srv("+OK Maildrop ready\r\n");
        h.client.clear();
        h.upstream.clear();
        h.trace.clear();
        h
    }
}

// ---- robustness ------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Input {
    Client(Vec<u8>),
    Server(Vec<u8>),
    Connected,
    Failed,
    ClientClosed,
    ServerClosed,
    Opened(bool),
    Wait(u16),
}

fn input() -> impl Strategy<Value = Input> {
    let line = prop_oneof![
        Just(b"CAPA\r\n".to_vec()),
        Just(format!("USER {LOGIN}\r\n").into_bytes()),
        Just(b"PASS x\r\n".to_vec()),
        Just(b"AUTH PLAIN\r\n".to_vec()),
        Just(b"RETR 1\r\n".to_vec()),
        Just(b"TOP 1 9\r\n".to_vec()),
        Just(b"LIST\r\n".to_vec()),
        Just(b"QUIT\r\n".to_vec()),
        Just(b"+OK\r\n".to_vec()),
        Just(b"-ERR\r\n".to_vec()),
        Just(b".\r\n".to_vec()),
        Just(b"..x\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
    ];
    prop_oneof![
        line.clone().prop_map(Input::Client),
        line.prop_map(Input::Server),
        Just(Input::Connected),
        Just(Input::Failed),
        Just(Input::ClientClosed),
        Just(Input::ServerClosed),
        any::<bool>().prop_map(Input::Opened),
        (0u16..400).prop_map(Input::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// Whatever arrives in whatever order: no panic, every action is well-formed, and a
    /// finished session stays silent.
    #[test]
    fn arbitrary_inputs_never_panic_and_finished_sessions_stay_silent(
        inputs in proptest::collection::vec(input(), 0..40)
    ) {
        let mut h = H::new();
        let mut closed_client_at = None;
        for (i, inp) in inputs.into_iter().enumerate() {
            match inp {
                Input::Client(b) => h.c_bytes(&b),
                Input::Server(b) => h.srv_bytes(&b),
                Input::Connected => h.ev(Pop3Event::UpstreamConnected),
                Input::Failed => h.ev(Pop3Event::UpstreamFailed { reason: "x".into() }),
                Input::ClientClosed => h.ev(Pop3Event::ClientClosed),
                Input::ServerClosed => h.ev(Pop3Event::UpstreamClosed),
                Input::Opened(ok) => h.ev(Pop3Event::Opened(if ok {
                    Ok(OpenedMessage { message: SecretBytes::from(&b"A: b\r\n"[..]) })
                } else {
                    Err(OpenFailure { reason: "x".into() })
                })),
                Input::Wait(s) => h.advance(Duration::from_secs(u64::from(s))),
            }
            if closed_client_at.is_none() && h.trace.contains(&Kind::CloseClient) {
                closed_client_at = Some((i, h.trace.len()));
                prop_assert!(h.s.is_finished());
                prop_assert_eq!(h.s.poll_timeout(), None);
            }
        }
        if let Some((_, n)) = closed_client_at {
            prop_assert_eq!(h.trace.len(), n, "actions after CloseClient");
            prop_assert_eq!(h.trace.iter().filter(|k| **k == Kind::CloseClient).count(), 1);
        }
        let text = String::from_utf8_lossy(&h.client).into_owned();
        prop_assert!(text.starts_with("+OK KOM-LE Clientmodul POP3\r\n"));
    }
}

// ---- split invariance ----------------------------------------------------------------------

/// Commands of a session after login, pipelined in one write, and the server's replies.
const COMMANDS: &str = "STAT\r\nLIST\r\nTOP 1 3\r\nRETR 1\r\nUIDL\r\nDELE 1\r\nQUIT\r\n";
const REPLIES: [&str; 7] = [
    "+OK 1 120\r\n",
    "+OK\r\n1 120\r\n.\r\n",
    "+OK\r\nA: b\r\n..c\r\n\r\n.\r\n",
    "+OK 120 octets\r\nA: b\r\n\r\n..\r\n.\r\r\n..x\r\nend\r\n.\r\n",
    "+OK\r\n1 u1\r\n.\r\n",
    "+OK\r\n",
    "+OK bye\r\n",
];

fn server_wire() -> Vec<u8> {
    REPLIES.concat().into_bytes()
}

/// Replays the server's bytes cut at `cuts`, like a real server: never answering a command
/// before the proxy forwarded it (cuts beyond that point are delivered in pieces).
fn run_split(cuts: &[usize]) -> (Vec<u8>, Vec<u8>, Vec<Kind>) {
    let mut h = H::logged_in();
    h.auto_open = true;
    h.c(COMMANDS);
    let wire = server_wire();
    let ends: Vec<usize> = REPLIES
        .iter()
        .scan(0, |end, r| {
            *end += r.len();
            Some(*end)
        })
        .collect();
    let mut pos = 0;
    for target in cuts.iter().copied().chain([wire.len()]) {
        while pos < target {
            let forwarded = h.upstream.windows(2).filter(|w| w == b"\r\n").count();
            let allowed = if forwarded == 0 {
                0
            } else {
                ends[forwarded - 1]
            };
            let upto = target.min(allowed);
            assert!(upto > pos, "the proxy forwarded no command to answer");
            h.srv_bytes(&wire[pos..upto]);
            pos = upto;
        }
    }
    let closes = h.closes();
    (h.client, h.upstream, closes)
}

fn expected_client() -> Vec<u8> {
    // `.` CR CR LF on the wire is a stuffed line holding CR: its dot goes.
    let opened = "X-Opened: 1\r\nA: b\r\n\r\n.\r\n\r\r\n.x\r\nend\r\n";
    format!(
        "+OK 1 120\r\n+OK\r\n1 120\r\n.\r\n+OK\r\nA: b\r\n..c\r\n\r\n.\r\n\
+OK {} octets\r\nX-Opened: 1\r\nA: b\r\n\r\n..\r\n\r\r\n..x\r\nend\r\n.\r\n+OK\r\n1 u1\r\n.\r\n+OK\r\n+OK bye\r\n",
        opened.len()
    )
    .into_bytes()
}

#[test]
fn a_2040_server_bytes_split_at_every_position_give_the_same_client_bytes() {
    let whole = run_split(&[]);
    assert_eq!(
        String::from_utf8_lossy(&whole.0),
        String::from_utf8_lossy(&expected_client())
    );
    assert_eq!(
        whole.1,
        b"STAT\r\nLIST\r\nTOP 1 0\r\nRETR 1\r\nUIDL\r\nDELE 1\r\nQUIT\r\n"
    );
    assert_eq!(whole.2, [Kind::CloseUpstream, Kind::CloseClient]);
    for i in 0..=server_wire().len() {
        assert_eq!(run_split(&[i]), whole, "split at {i}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn a_2040_server_bytes_split_at_random_boundaries_give_the_same_client_bytes(
        cuts in proptest::collection::vec(0..=REPLIES.concat().len(), 0..12)
    ) {
        let mut cuts = cuts;
        cuts.sort_unstable();
        prop_assert_eq!(run_split(&cuts), run_split(&[]));
    }

    #[test]
    fn client_bytes_split_anywhere_give_the_same_server_bytes(
        cuts in proptest::collection::vec(0..=COMMANDS.len(), 0..8)
    ) {
        let mut cuts = cuts;
        cuts.sort_unstable();
        let mut h = H::logged_in();
        let wire = COMMANDS.as_bytes();
        let mut last = 0;
        for c in cuts {
            h.c_bytes(&wire[last..c]);
            last = c;
        }
        h.c_bytes(&wire[last..]);
        // Everything up to RETR goes at once; the rest waits for the opened message.
        prop_assert_eq!(h.take_server(), "STAT\r\nLIST\r\nTOP 1 0\r\nRETR 1\r\n");
    }
}

// ---- what a transcript file cannot hold ------------------------------------------------------

#[test]
fn a_2005_secrets_do_not_show_in_debug_output() {
    let mut h = H::new();
    h.c(&format!("USER {LOGIN}\r\nPASS streng-geheim\r\n"));
    let shown = format!("{:?}", h.s);
    assert!(!shown.contains("streng-geheim"), "{shown}");
    let action = Pop3Action::SendToUpstream(b"PASS streng-geheim\r\n".to_vec());
    assert_eq!(format!("{action:?}"), "SendToUpstream(<20 bytes>)");
    let job = OpenJob {
        login: komle_core::login_name::LoginName::parse(LOGIN).unwrap(),
        message: SecretBytes::from(&b"Befund"[..]),
    };
    assert!(!format!("{job:?}").contains("Befund"));
}

#[test]
fn a_2040_large_retr_in_small_chunks_arrives_intact_both_ways() {
    // 4 MiB of base64-like lines, some starting with a dot, sent in 1000-byte chunks.
    let mut message = Vec::new();
    let mut i = 0u32;
    while message.len() < 4 << 20 {
        if i.is_multiple_of(7) {
            message.push(b'.');
        }
        message.extend_from_slice(format!("TUlBR0NTcUdTSWIzRFFFSEE{i:08}\r\n").as_bytes());
        i += 1;
    }
    let (wire, octets) = komle_core::pop3::dot_stuff(&message);
    assert_eq!(octets, message.len());
    let mut h = H::logged_in();
    h.c("RETR 1\r\n");
    h.srv(&format!("+OK {octets} octets\r\n"));
    for chunk in wire.chunks(1000) {
        h.srv_bytes(chunk);
    }
    assert_eq!(h.jobs.len(), 1);
    let job = h.jobs.remove(0);
    assert!(job.message.as_slice() == message.as_slice());
    h.ev(Pop3Event::Opened(Ok(OpenedMessage {
        message: job.message,
    })));
    let mut expected = format!("+OK {octets} octets\r\n").into_bytes();
    expected.extend_from_slice(&wire);
    assert!(h.client == expected);
}
