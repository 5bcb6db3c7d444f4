//! The POP3 proxy session end to end (gemSpec_CM_KOMLE §3.3 / V1.16 §3.4), with exact bytes on
//! both sides.

use std::time::{Duration, Instant};

use komle_core::pop3::{
    AUTH_FAILED, MALFORMED, MECHANISM_UNSUPPORTED, NOT_RELAYED, OpenFailure, OpenJob,
    OpenedMessage, Pop3Action, Pop3Config, Pop3Event, Pop3Session, SERVER_UNAVAILABLE,
    SERVER_UNREACHABLE, TOO_BIG,
};
use komle_core::sasl::plain;
use komle_core::secret::{Password, SecretBytes};
use komle_core::upstream_allow::UpstreamAllowList;
use proptest::prelude::*;

const LOGIN: &str = "erik.mustermann@komle.de#pop.komle.de:995#1#KOM_LE#7#13";
const CAPA_REPLY: &str =
    "+OK Capability list follows\r\nTOP\r\nUSER\r\nSASL PLAIN\r\nUIDL\r\n.\r\n";

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
    connects: Vec<(String, u16)>,
    jobs: Vec<OpenJob>,
    trace: Vec<Kind>,
    /// Answer every Open at once with the message prefixed by `X-Opened: 1`.
    auto_open: bool,
}

impl H {
    fn new() -> Self {
        Self::with(Pop3Config::default())
    }

    fn with(mut config: Pop3Config) -> Self {
        // The servers the login names here point at; the default list refuses every login
        // (those refusals are tested in pop3_upstream_allow.rs).
        if config.upstream_allow.is_empty() {
            config.upstream_allow =
                UpstreamAllowList::parse(["pop.komle.de:995", "pop.k.de:995"]).unwrap();
        }
        let now = Instant::now();
        let mut h = H {
            s: Pop3Session::new(config, now),
            now,
            client: Vec::new(),
            upstream: Vec::new(),
            connects: Vec::new(),
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
                    Pop3Action::ConnectUpstream { host, port } => {
                        self.connects.push((host, port));
                        Kind::Connect
                    }
                    Pop3Action::Open(job) => {
                        self.jobs.push(job);
                        Kind::Open
                    }
                    Pop3Action::CloseClient => Kind::CloseClient,
                    Pop3Action::CloseUpstream => Kind::CloseUpstream,
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

    fn take_client(&mut self) -> String {
        String::from_utf8(std::mem::take(&mut self.client)).unwrap()
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

    /// USER/PASS, connect, the server's greeting and CAPA: ready for the login replies.
    fn up_to_server_login(&mut self) {
        self.c(&format!("USER {LOGIN}\r\n"));
        self.c("PASS geheim\r\n");
        self.ev(Pop3Event::UpstreamConnected);
        self.srv("+OK POP Server Ready\r\n");
        self.srv("+OK Capability list follows\r\nTOP\r\nUSER\r\nSASL PLAIN CRAM-MD5\r\nUIDL\r\nRESP-CODES\r\n.\r\n");
    }

    /// A session in the PROXY state with both buffers cleared.
    fn logged_in() -> Self {
        let mut h = H::new();
        h.up_to_server_login();
        h.srv("+OK\r\n");
        h.srv("+OK Maildrop ready\r\n");
        h.client.clear();
        h.upstream.clear();
        h.trace.clear();
        h
    }
}

// ---- CONNECT state: Tab_POP3_Ant_Init (A_2030) ---------------------------------------------

#[test]
fn a_2030_greeting_is_ok() {
    let mut h = H::new();
    assert_eq!(h.take_client(), "+OK KOM-LE Clientmodul POP3\r\n");
    assert!(!h.s.is_finished());
}

#[test]
fn a_2030_capa_lists_top_user_sasl_plain_uidl() {
    let mut h = H::new();
    h.take_client();
    h.c("CAPA\r\n");
    assert_eq!(h.take_client(), CAPA_REPLY);
    h.c("capa\r\n");
    assert_eq!(h.take_client(), CAPA_REPLY);
    assert!(h.upstream.is_empty() && h.connects.is_empty());
}

#[test]
fn a_2030_a_2038_quit_before_upstream_answers_ok_and_closes() {
    let mut h = H::new();
    h.take_client();
    h.c("QUIT\r\n");
    assert!(h.take_client().starts_with("+OK"));
    assert_eq!(h.closes(), [Kind::CloseClient]);
    assert!(h.s.is_finished());
    assert!(h.connects.is_empty());
}

#[test]
fn a_2030_other_commands_get_err() {
    let mut h = H::new();
    h.take_client();
    for cmd in [
        "STAT", "LIST", "RETR 1", "DELE 1", "NOOP", "APOP a b", "STLS", "TOP 1 0", "", "x y",
    ] {
        h.c(&format!("{cmd}\r\n"));
        let got = h.take_client();
        assert!(
            got.starts_with("-ERR ") && got.ends_with("\r\n"),
            "{cmd}: {got}"
        );
        assert_eq!(got.matches("\r\n").count(), 1, "{cmd}");
    }
    assert!(h.upstream.is_empty() && h.connects.is_empty());
    assert!(h.closes().is_empty());
}

#[test]
fn a_2031_user_pass_logs_in_as_in_the_gematik_example() {
    let mut h = H::new();
    h.take_client();
    h.c(&format!("USER {LOGIN}\r\n"));
    assert_eq!(h.take_client(), "+OK\r\n");
    assert!(h.connects.is_empty());
    h.c("PASS pass word\r\n");
    // A_2033: host and port from the login name.
    assert_eq!(h.connects, [("pop.komle.de".to_owned(), 995)]);
    assert_eq!(h.take_client(), "");
    h.ev(Pop3Event::UpstreamConnected);
    h.srv("+OK POP Server Ready\r\n");
    assert_eq!(h.take_server(), "CAPA\r\n");
    h.srv("+OK Capability list follows\r\nTOP\r\nUSER\r\nSASL PLAIN CRAM-MD5\r\nUIDL\r\nRESP-CODES\r\n.\r\n");
    // A_2034: the user part before the first '#'.
    assert_eq!(h.take_server(), "USER erik.mustermann@komle.de\r\n");
    h.srv("+OK\r\n");
    assert_eq!(h.take_server(), "PASS pass word\r\n");
    assert_eq!(h.take_client(), "");
    h.srv("+OK Maildrop ready\r\n");
    assert_eq!(h.take_client(), "+OK Maildrop ready\r\n");
    h.c("STAT\r\n");
    assert_eq!(h.take_server(), "STAT\r\n");
}

fn plain_ir(login: &str, password: &str) -> String {
    plain::encode_response(login, &Password::new(password))
}

#[test]
fn a_2031_auth_plain_with_initial_response() {
    let mut h = H::new();
    h.take_client();
    h.c(&format!("AUTH PLAIN {}\r\n", plain_ir(LOGIN, "pw")));
    assert_eq!(h.connects, [("pop.komle.de".to_owned(), 995)]);
    h.ev(Pop3Event::UpstreamConnected);
    h.srv("+OK hi\r\n");
    h.srv("-ERR no CAPA\r\n");
    h.srv("+OK\r\n");
    assert_eq!(
        h.take_server(),
        "CAPA\r\nUSER erik.mustermann@komle.de\r\nPASS pw\r\n"
    );
    h.srv("+OK logged in\r\n");
    assert_eq!(h.take_client(), "+OK logged in\r\n");
}

#[test]
fn a_2031_auth_plain_without_initial_response() {
    let mut h = H::new();
    h.take_client();
    h.c("AUTH PLAIN\r\n");
    assert_eq!(h.take_client(), "+ \r\n");
    assert!(h.connects.is_empty());
    h.c(&format!("{}\r\n", plain_ir(LOGIN, "pw")));
    assert_eq!(h.connects, [("pop.komle.de".to_owned(), 995)]);
}

#[test]
fn a_2031_auth_plain_star_cancels() {
    let mut h = H::new();
    h.take_client();
    h.c("AUTH PLAIN\r\n*\r\n");
    assert_eq!(
        h.take_client(),
        "+ \r\n-ERR Authentifizierung abgebrochen\r\n"
    );
    assert!(h.connects.is_empty());
    // Still in CONNECT: the table applies again.
    h.c("CAPA\r\n");
    assert_eq!(h.take_client(), CAPA_REPLY);
}

#[test]
fn a_2037_other_mechanism_is_refused() {
    let mut h = H::new();
    h.take_client();
    h.c("AUTH CRAM-MD5\r\n");
    assert_eq!(h.take_client(), format!("-ERR {MECHANISM_UNSUPPORTED}\r\n"));
    h.c("AUTH\r\n");
    assert_eq!(h.take_client(), format!("-ERR {MECHANISM_UNSUPPORTED}\r\n"));
    assert!(h.connects.is_empty() && h.closes().is_empty());
}

#[test]
fn a_21518_incomplete_login_name_is_refused_and_closed() {
    let mut h = H::new();
    h.take_client();
    h.c("USER mustermann@komle.de\r\n");
    assert_eq!(
        h.take_client(),
        "-ERR Benutzername muss die Adresse und die Portnummer des Servers enthalten\r\n"
    );
    assert_eq!(h.closes(), [Kind::CloseClient]);
    assert!(h.connects.is_empty());

    let mut h = H::new();
    h.take_client();
    h.c(&format!(
        "AUTH PLAIN {}\r\n",
        plain_ir("u@k.de#pop.k.de:995#1#KOM_LE", "pw")
    ));
    assert_eq!(
        h.take_client(),
        "-ERR Benutzername muss die WorkplaceId enthalten\r\n"
    );
    assert!(h.s.is_finished());
}

#[test]
fn a_2031_pass_without_user_is_refused() {
    let mut h = H::new();
    h.take_client();
    h.c("PASS x\r\n");
    assert!(h.take_client().starts_with("-ERR "));
    assert!(h.connects.is_empty() && !h.s.is_finished());
}

#[test]
fn a_2037_wrong_password_answers_err_and_stays_in_connect() {
    let mut h = H::new();
    h.take_client();
    h.up_to_server_login();
    h.srv("+OK\r\n");
    assert_eq!(h.take_client(), "+OK\r\n", "only USER was answered so far");
    h.srv("-ERR [AUTH] Authentication failed\r\n");
    assert_eq!(h.take_client(), format!("-ERR {AUTH_FAILED}\r\n"));
    assert!(h.take_server().ends_with("QUIT\r\n"));
    assert_eq!(h.closes(), [Kind::CloseUpstream]);
    // CONNECT again: a second attempt works.
    h.c("CAPA\r\n");
    assert_eq!(h.take_client(), CAPA_REPLY);
    h.up_to_server_login();
    h.srv("+OK\r\n+OK ready\r\n");
    assert_eq!(h.take_client(), "+OK\r\n+OK ready\r\n");
    assert_eq!(h.connects.len(), 2);
}

#[test]
fn a_2037_too_many_failed_logins_close_the_client() {
    let mut h = H::with(Pop3Config {
        max_failed_logins: 2,
        ..Pop3Config::default()
    });
    for round in 0..2 {
        h.take_client();
        h.up_to_server_login();
        assert_eq!(h.take_client(), "+OK\r\n");
        h.srv("-ERR no such user\r\n");
        assert_eq!(
            h.take_client(),
            format!("-ERR {AUTH_FAILED}\r\n"),
            "{round}"
        );
    }
    assert!(h.s.is_finished());
    assert_eq!(
        h.closes(),
        [Kind::CloseUpstream, Kind::CloseUpstream, Kind::CloseClient]
    );
}

#[test]
fn a_2037_malformed_plain_response_counts_as_failed_login() {
    let mut h = H::new();
    h.take_client();
    h.c("AUTH PLAIN !!!\r\n");
    assert_eq!(h.take_client(), format!("-ERR {AUTH_FAILED}\r\n"));
    assert!(h.connects.is_empty() && !h.s.is_finished());
}

#[test]
fn a_2037_unreachable_server_answers_err_with_reason() {
    let mut h = H::new();
    h.take_client();
    h.c(&format!("USER {LOGIN}\r\nPASS pw\r\n"));
    h.take_client();
    h.ev(Pop3Event::UpstreamFailed {
        reason: "connection refused\r\n+OK fake".into(),
    });
    assert_eq!(
        h.take_client(),
        format!("-ERR {SERVER_UNREACHABLE}: connection refused  +OK fake\r\n")
    );
    assert!(!h.s.is_finished());
    h.c("QUIT\r\n");
    assert!(h.take_client().starts_with("+OK"));
    assert_eq!(h.closes(), [Kind::CloseClient]);
}

#[test]
fn a_2037_server_refusing_the_session() {
    let mut h = H::new();
    h.c(&format!("USER {LOGIN}\r\nPASS pw\r\n"));
    h.ev(Pop3Event::UpstreamConnected);
    h.take_client();
    h.srv("-ERR too many connections\r\n");
    assert_eq!(h.take_client(), format!("-ERR {SERVER_UNAVAILABLE}\r\n"));
    assert_eq!(h.closes(), [Kind::CloseUpstream]);
}

#[test]
fn a_2037_server_closing_during_login() {
    let mut h = H::new();
    h.c(&format!("USER {LOGIN}\r\nPASS pw\r\n"));
    h.ev(Pop3Event::UpstreamConnected);
    h.srv("+OK hi\r\n");
    h.take_client();
    h.ev(Pop3Event::UpstreamClosed);
    assert_eq!(h.take_client(), format!("-ERR {SERVER_UNAVAILABLE}\r\n"));
    assert!(!h.s.is_finished());
}

#[test]
fn a_2030_commands_pipelined_behind_pass_wait_for_the_login() {
    let mut h = H::new();
    h.take_client();
    h.c(&format!("USER {LOGIN}\r\nPASS pw\r\nSTAT\r\n"));
    assert_eq!(h.take_client(), "+OK\r\n");
    h.ev(Pop3Event::UpstreamConnected);
    h.srv("+OK\r\n-ERR\r\n+OK\r\n");
    assert_eq!(
        h.take_server(),
        "CAPA\r\nUSER erik.mustermann@komle.de\r\nPASS pw\r\n"
    );
    h.srv("+OK in\r\n");
    assert_eq!(h.take_server(), "STAT\r\n");
    h.srv("+OK 0 0\r\n");
    assert_eq!(h.take_client(), "+OK in\r\n+OK 0 0\r\n");
}

// ---- limits ------------------------------------------------------------------------------------

#[test]
fn overlong_command_line_is_refused_and_closed() {
    let mut h = H::with(Pop3Config {
        max_line_length: 64,
        ..Pop3Config::default()
    });
    h.take_client();
    h.c_bytes(&[b'A'; 65]);
    assert_eq!(h.take_client(), "-ERR Zeile zu lang\r\n");
    assert!(h.s.is_finished());
    // After the end nothing more happens.
    h.c("CAPA\r\n");
    assert_eq!(h.take_client(), "");
}

#[test]
fn too_many_commands_before_login_close_the_client() {
    let mut h = H::with(Pop3Config {
        max_commands_before_auth: 3,
        ..Pop3Config::default()
    });
    h.take_client();
    h.c("NOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\n");
    let got = h.take_client();
    assert_eq!(got.matches("-ERR").count(), 4);
    assert!(got.ends_with("-ERR Zu viele Kommandos\r\n"));
    assert_eq!(h.closes(), [Kind::CloseClient]);
}

// ---- PROXY state (A_2040, A_2041) --------------------------------------------------------------

#[test]
fn a_2040_stat_list_uidl_dele_pass_unchanged() {
    let mut h = H::logged_in();
    let exchanges = [
        ("STAT\r\n", "+OK 2 27950\r\n"),
        ("LIST\r\n", "+OK 2 messages\r\n1 13950\r\n2 14000\r\n.\r\n"),
        ("LIST 2\r\n", "+OK 2 14000\r\n"),
        (
            "UIDL\r\n",
            "+OK\r\n1 01SDF8-1RiSd50vfv-00FGJN\r\n2 whqtswO00WBw418f9t5JxYwZ\r\n.\r\n",
        ),
        ("UIDL 1\r\n", "+OK 1 01SDF8-1RiSd50vfv-00FGJN\r\n"),
        ("DELE 1\r\n", "+OK message 1 deleted\r\n"),
        ("LIST 9\r\n", "-ERR no such message\r\n"),
        ("NOOP\r\n", "+OK\r\n"),
        ("RSET\r\n", "+OK\r\n"),
    ];
    for (cmd, answer) in exchanges {
        h.c(cmd);
        assert_eq!(h.take_server(), cmd);
        assert_eq!(h.take_client(), "");
        h.srv(answer);
        assert_eq!(h.take_client(), answer, "{cmd}");
    }
}

#[test]
fn a_2040_unknown_command_is_answered_locally_and_not_relayed() {
    let mut h = H::logged_in();
    h.c("XUNKNOWN a b\r\n");
    assert_eq!(h.take_server(), "");
    assert_eq!(h.take_client(), format!("-ERR {NOT_RELAYED}\r\n"));
    assert!(!h.s.is_finished());
}

#[test]
fn a_2040_capa_after_login_is_the_servers() {
    let mut h = H::logged_in();
    h.c("CAPA\r\n");
    assert_eq!(h.take_server(), "CAPA\r\n");
    let reply = "+OK\r\nTOP\r\nUSER\r\nPIPELINING\r\n.\r\n";
    h.srv(reply);
    assert_eq!(h.take_client(), reply);
}

#[test]
fn a_2041_top_with_lines_is_sent_with_zero() {
    let mut h = H::logged_in();
    h.c("TOP 1 10\r\n");
    assert_eq!(h.take_server(), "TOP 1 0\r\n");
    let reply =
        "+OK\r\nSubject: KOM-LE-Nachricht\r\nX-KOM-LE-Version: 1.0\r\n..leading dot\r\n\r\n.\r\n";
    h.srv(reply);
    assert_eq!(h.take_client(), reply);
    // Keywords go out upper case (canonical form, A_2040).
    h.c("top 2 0\r\n");
    assert_eq!(h.take_server(), "TOP 2 0\r\n");
    h.srv("-ERR no such message\r\n");
    assert_eq!(h.take_client(), "-ERR no such message\r\n");
}

#[test]
fn a_2040_pipelined_commands_keep_their_replies_in_order() {
    let mut h = H::logged_in();
    h.c("LIST\r\nSTAT\r\nUIDL 1\r\nTOP 1 5\r\nLIST 1\r\n");
    assert_eq!(
        h.take_server(),
        "LIST\r\nSTAT\r\nUIDL 1\r\nTOP 1 0\r\nLIST 1\r\n"
    );
    let replies = "+OK\r\n1 10\r\n.\r\n+OK 1 10\r\n-ERR x\r\n+OK\r\nA: b\r\n\r\n.\r\n+OK 1 10\r\n";
    h.srv(replies);
    assert_eq!(h.take_client(), replies);
}

#[test]
fn a_2040_pipelining_limit_holds_commands_back_until_replies_arrive() {
    let mut h = H::with(Pop3Config {
        max_pipelined_commands: 2,
        ..Pop3Config::default()
    });
    h.up_to_server_login();
    h.srv("+OK\r\n+OK in\r\n");
    h.take_client();
    h.take_server();
    h.c("NOOP\r\nSTAT\r\nLIST 1\r\n");
    assert_eq!(h.take_server(), "NOOP\r\nSTAT\r\n");
    h.srv("+OK\r\n");
    assert_eq!(h.take_server(), "LIST 1\r\n");
    h.srv("+OK 0 0\r\n+OK 1 5\r\n");
    assert_eq!(h.take_client(), "+OK\r\n+OK 0 0\r\n+OK 1 5\r\n");
}

// ---- RETR / PROCESS ----------------------------------------------------------------------------

const ENCRYPTED: &str =
    "X-KOM-LE-Version: 1.0\r\nSubject: KOM-LE-Nachricht\r\n\r\nMIAGCSqG\r\n..\r\n.x\r\n";
const ENCRYPTED_UNSTUFFED: &str =
    "X-KOM-LE-Version: 1.0\r\nSubject: KOM-LE-Nachricht\r\n\r\nMIAGCSqG\r\n.\r\nx\r\n";

#[test]
fn a_2040_retr_message_is_opened_and_delivered_with_its_true_size() {
    let mut h = H::logged_in();
    h.c("RETR 1\r\n");
    assert_eq!(h.take_server(), "RETR 1\r\n");
    h.srv(&format!("+OK 999 octets\r\n{ENCRYPTED}.\r\n"));
    assert_eq!(h.take_client(), "", "nothing before the message is opened");
    assert_eq!(h.jobs.len(), 1);
    let job = h.jobs.remove(0);
    assert_eq!(job.message.as_slice(), ENCRYPTED_UNSTUFFED.as_bytes());
    assert_eq!(job.login.user, "erik.mustermann@komle.de");
    assert_eq!(job.login.user_id.as_deref(), Some("13"));
    assert_eq!(h.s.poll_timeout(), None, "no server timeout while opening");

    let opened = "From: a@b.de\r\n\r\n.Punkt am Anfang\r\nDie Nachricht wurde entschluesselt.\r\n";
    h.ev(Pop3Event::Opened(Ok(OpenedMessage {
        message: SecretBytes::from(opened.as_bytes()),
    })));
    assert_eq!(
        h.take_client(),
        format!(
            "+OK {} octets\r\nFrom: a@b.de\r\n\r\n..Punkt am Anfang\r\nDie Nachricht wurde entschluesselt.\r\n.\r\n",
            opened.len()
        )
    );
    // Back in PROXY.
    h.c("STAT\r\n");
    assert_eq!(h.take_server(), "STAT\r\n");
}

#[test]
fn a_2040_retr_open_failure_answers_err() {
    let mut h = H::logged_in();
    h.c("RETR 2\r\n");
    h.srv(&format!("+OK\r\n{ENCRYPTED}.\r\n"));
    assert_eq!(h.jobs.len(), 1);
    h.ev(Pop3Event::Opened(Err(OpenFailure {
        reason: "Konnektor nicht erreichbar".into(),
    })));
    assert_eq!(h.take_client(), "-ERR Konnektor nicht erreichbar\r\n");
    assert!(!h.s.is_finished());
}

#[test]
fn a_2040_retr_error_from_server_passes_unchanged() {
    let mut h = H::logged_in();
    h.c("RETR 7\r\n");
    h.srv("-ERR no such message\r\n");
    assert_eq!(h.take_client(), "-ERR no such message\r\n");
    assert!(h.jobs.is_empty());
}

#[test]
fn a_2040_commands_after_retr_wait_for_the_opened_message() {
    let mut h = H::logged_in();
    h.c("RETR 1\r\nSTAT\r\n");
    // Held back so the server's answers cannot pile up while the Konnektor works.
    assert_eq!(h.take_server(), "RETR 1\r\n");
    h.srv(&format!("+OK\r\n{ENCRYPTED}.\r\n"));
    assert_eq!(h.take_client(), "");
    assert_eq!(h.take_server(), "");
    h.ev(Pop3Event::Opened(Ok(OpenedMessage {
        message: SecretBytes::from(&b"A: b\r\n\r\nc\r\n"[..]),
    })));
    assert_eq!(h.take_client(), "+OK 11 octets\r\nA: b\r\n\r\nc\r\n.\r\n");
    assert_eq!(h.take_server(), "STAT\r\n");
    h.srv("+OK 1 10\r\n");
    assert_eq!(h.take_client(), "+OK 1 10\r\n");
}

#[test]
fn server_chatter_while_opening_ends_the_session() {
    let mut h = H::with(Pop3Config {
        max_reply_line_length: 64,
        ..Pop3Config::default()
    });
    h.up_to_server_login();
    h.srv("+OK\r\n+OK in\r\n");
    h.take_client();
    h.c("RETR 1\r\n");
    h.srv(&format!("+OK\r\n{ENCRYPTED}.\r\n"));
    h.srv(&"+OK unasked\r\n".repeat(4));
    assert!(h.closes().is_empty());
    h.srv(&"+OK unasked\r\n".repeat(2));
    assert_eq!(h.take_client(), format!("-ERR {SERVER_UNAVAILABLE}\r\n"));
    assert_eq!(h.closes(), [Kind::CloseUpstream, Kind::CloseClient]);
}

#[test]
fn held_back_client_lines_are_bounded() {
    let mut h = H::with(Pop3Config {
        max_line_length: 64,
        max_pipelined_commands: 2,
        ..Pop3Config::default()
    });
    h.up_to_server_login();
    h.srv("+OK\r\n+OK in\r\n");
    h.take_client();
    h.c("RETR 1\r\n");
    // 3 × 64 bytes may wait behind the RETR.
    h.c(&"NOOP\r\n".repeat(32));
    assert!(h.closes().is_empty());
    h.c("NOOP\r\n");
    assert_eq!(h.take_client(), "-ERR Zu viele Kommandos\r\n");
    assert_eq!(h.closes(), [Kind::CloseUpstream, Kind::CloseClient]);
}

#[test]
fn retr_larger_than_the_limit_is_refused() {
    let mut h = H::with(Pop3Config {
        max_message_size: 16,
        ..Pop3Config::default()
    });
    h.up_to_server_login();
    h.srv("+OK\r\n+OK in\r\n");
    h.take_client();
    h.c("RETR 1\r\nNOOP\r\n");
    h.srv(&format!("+OK\r\n{ENCRYPTED}.\r\n+OK\r\n"));
    assert!(h.jobs.is_empty());
    assert_eq!(h.take_client(), format!("-ERR {TOO_BIG}\r\n+OK\r\n"));
}

#[test]
fn opened_without_a_job_is_ignored() {
    let mut h = H::logged_in();
    h.ev(Pop3Event::Opened(Ok(OpenedMessage {
        message: SecretBytes::from(&b"x\r\n"[..]),
    })));
    assert_eq!(h.take_client(), "");
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

// ---- closing and timeouts (A_2038, A_2039) ---------------------------------------------------

#[test]
fn a_2038_quit_in_proxy_relays_ok_then_closes_both() {
    let mut h = H::logged_in();
    h.c("QUIT\r\n");
    assert_eq!(h.take_server(), "QUIT\r\n");
    assert!(h.closes().is_empty());
    h.srv("+OK bye\r\n");
    assert_eq!(h.take_client(), "+OK bye\r\n");
    assert_eq!(h.closes(), [Kind::CloseUpstream, Kind::CloseClient]);
    assert!(h.s.is_finished());
}

#[test]
fn a_2038_server_closing_forwards_its_last_words_then_closes_the_client() {
    let mut h = H::logged_in();
    h.srv("-ERR autologout\r\n");
    h.ev(Pop3Event::UpstreamClosed);
    assert_eq!(h.take_client(), "-ERR autologout\r\n");
    assert_eq!(h.closes(), [Kind::CloseClient]);
    assert_eq!(*h.trace.last().unwrap(), Kind::CloseClient);
    assert!(h.s.is_finished());
}

#[test]
fn a_2038_server_closing_while_opening_still_delivers_the_message() {
    let mut h = H::logged_in();
    h.c("RETR 1\r\n");
    h.srv(&format!("+OK\r\n{ENCRYPTED}.\r\n"));
    h.ev(Pop3Event::UpstreamClosed);
    assert!(h.closes().is_empty());
    h.ev(Pop3Event::Opened(Ok(OpenedMessage {
        message: SecretBytes::from(&b"A: b\r\n"[..]),
    })));
    assert_eq!(h.take_client(), "+OK 6 octets\r\nA: b\r\n.\r\n");
    assert_eq!(h.closes(), [Kind::CloseClient]);
}

#[test]
fn a_2039_client_closing_forwards_no_held_command_behind_an_unanswered_one() {
    // STAT is with the server, DELE is held back: after the client is gone nothing more goes
    // upstream (a relayed DELE + later QUIT could commit a deletion the client never saw
    // confirmed), and the server connection is closed without QUIT.
    let mut g = H::with(Pop3Config {
        max_pipelined_commands: 1,
        ..Pop3Config::default()
    });
    g.up_to_server_login();
    g.srv("+OK\r\n+OK in\r\n");
    g.take_server();
    g.trace.clear();
    g.c("STAT\r\nDELE 1\r\nQUIT\r\n");
    assert_eq!(g.take_server(), "STAT\r\n");
    g.ev(Pop3Event::ClientClosed);
    assert_eq!(g.take_server(), "");
    assert_eq!(
        g.trace,
        [Kind::Upstream, Kind::CloseUpstream, Kind::CloseClient]
    );
    assert!(g.s.is_finished());
}

#[test]
fn a_2039_client_closing_in_connect_closes_the_connecting_server() {
    let mut h = H::new();
    h.c(&format!("USER {LOGIN}\r\nPASS pw\r\n"));
    h.ev(Pop3Event::ClientClosed);
    assert_eq!(h.closes(), [Kind::CloseUpstream, Kind::CloseClient]);
}

#[test]
fn a_2038_server_response_timeout_answers_err_timeout_and_closes() {
    let mut h = H::with(Pop3Config {
        server_response_timeout: Duration::from_secs(30),
        ..Pop3Config::default()
    });
    h.up_to_server_login();
    h.srv("+OK\r\n+OK in\r\n");
    h.take_client();
    h.c("RETR 1\r\n");
    let t0 = h.now;
    assert_eq!(h.s.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    h.advance(Duration::from_secs(20));
    // Progress resets the clock: a slow but moving transfer is no timeout.
    h.srv("+OK\r\nA: b\r\n");
    assert_eq!(h.s.poll_timeout(), Some(h.now + Duration::from_secs(30)));
    h.advance(Duration::from_secs(29));
    assert!(h.closes().is_empty());
    h.advance(Duration::from_secs(1));
    assert_eq!(h.take_client(), "-ERR timeout\r\n");
    assert_eq!(h.closes(), [Kind::CloseUpstream, Kind::CloseClient]);
    assert!(h.jobs.is_empty());
}

#[test]
fn a_2038_login_timeout_answers_err_timeout() {
    let mut h = H::new();
    h.c(&format!("USER {LOGIN}\r\nPASS pw\r\n"));
    h.take_client();
    h.advance(Duration::from_secs(299));
    assert!(h.closes().is_empty());
    h.advance(Duration::from_secs(1));
    assert_eq!(h.take_client(), "-ERR timeout\r\n");
    assert_eq!(h.closes(), [Kind::CloseUpstream, Kind::CloseClient]);
}

#[test]
fn a_2039_idle_server_connection_is_closed() {
    let mut h = H::with(Pop3Config {
        server_idle_timeout: Duration::from_secs(60),
        ..Pop3Config::default()
    });
    h.up_to_server_login();
    h.srv("+OK\r\n+OK in\r\n");
    h.take_client();
    h.advance(Duration::from_secs(50));
    h.c("NOOP\r\n");
    h.srv("+OK\r\n");
    assert_eq!(h.s.poll_timeout(), Some(h.now + Duration::from_secs(60)));
    h.advance(Duration::from_secs(59));
    assert!(h.closes().is_empty());
    h.advance(Duration::from_secs(1));
    assert_eq!(h.closes(), [Kind::CloseUpstream, Kind::CloseClient]);
    // Closed without QUIT, so no DELE is committed behind the client's back.
    assert!(!h.take_server().contains("QUIT"));
    assert_eq!(h.take_client(), "+OK\r\n");
}

#[test]
fn idle_client_in_connect_is_closed_with_err_timeout() {
    let mut h = H::new();
    h.take_client();
    h.advance(Duration::from_secs(200));
    h.c("CAPA\r\n");
    h.take_client();
    h.advance(Duration::from_secs(299));
    assert!(!h.s.is_finished());
    h.advance(Duration::from_secs(1));
    assert_eq!(h.take_client(), "-ERR timeout\r\n");
    assert_eq!(h.closes(), [Kind::CloseClient]);
    assert_eq!(h.s.poll_timeout(), None);
}

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

#[test]
fn connection_events_out_of_turn_are_ignored() {
    let mut h = H::new();
    h.take_client();
    h.trace.clear();
    h.ev(Pop3Event::UpstreamConnected);
    h.ev(Pop3Event::UpstreamFailed {
        reason: "late".into(),
    });
    h.srv("+OK unasked\r\n");
    assert_eq!(h.take_client(), "");
    assert!(h.trace.is_empty());
    let mut h = H::logged_in();
    h.ev(Pop3Event::UpstreamConnected);
    h.ev(Pop3Event::UpstreamFailed {
        reason: "late".into(),
    });
    assert!(h.trace.is_empty());
    h.c("NOOP\r\n");
    assert_eq!(h.take_server(), "NOOP\r\n");
}

#[test]
fn a_2031_plain_for_another_identity_is_refused() {
    let mut h = H::new();
    h.take_client();
    let foreign = komle_core::sasl::encode_b64(format!("admin\0{LOGIN}\0pw").as_bytes());
    h.c(&format!("AUTH PLAIN {foreign}\r\n"));
    assert_eq!(h.take_client(), format!("-ERR {AUTH_FAILED}\r\n"));
    assert!(h.connects.is_empty());
}

#[test]
fn a_2040_garbage_status_line_is_relayed_as_one_line() {
    let mut h = H::logged_in();
    h.c("RETR 1\r\nNOOP\r\n");
    h.srv("* what\r\n");
    assert_eq!(h.take_client(), "* what\r\n");
    assert!(h.jobs.is_empty());
    // The RETR is answered, so NOOP goes out now.
    assert_eq!(h.take_server(), "RETR 1\r\nNOOP\r\n");
}

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

// ---- default deny after the login (A_2040) -------------------------------------------------

/// Sends `line` in the PROXY state and checks that the server gets nothing and the client
/// `-ERR text`.
fn refused(line: &[u8], text: &str) {
    let mut h = H::logged_in();
    h.c_bytes(line);
    assert_eq!(h.take_server(), "", "{line:?} reached the server");
    assert_eq!(
        h.take_client(),
        format!("-ERR {text}\r\n"),
        "answer to {line:?}"
    );
    assert!(!h.s.is_finished());
    // The session goes on.
    h.c("STAT\r\n");
    assert_eq!(h.take_server(), "STAT\r\n");
}

#[test]
fn a_2040_leading_space_is_refused_locally() {
    refused(b" STAT\r\n", MALFORMED);
    refused(b" RETR 1\r\n", MALFORMED);
}

#[test]
fn a_2040_tab_vt_ff_are_refused_locally() {
    refused(b"\tSTAT\r\n", MALFORMED);
    refused(b"LIST\t1\r\n", MALFORMED);
    refused(b"LIST\x0b1\r\n", MALFORMED);
    refused(b"LIST\x0c1\r\n", MALFORMED);
    refused(b"STAT\t\r\n", MALFORMED);
}

#[test]
fn a_2040_nul_is_refused_locally() {
    refused(b"RETR 1\0\r\n", MALFORMED);
    refused(b"DE\0LE 1\r\n", MALFORMED);
}

#[test]
fn a_2040_esc_del_and_bare_cr_are_refused_locally() {
    refused(b"\x1b[2JSTAT\r\n", MALFORMED);
    refused(b"STAT\x7f\r\n", MALFORMED);
    // A bare CR could end the line early at a server and start `DELE 1` of its own.
    refused(b"STAT\rDELE 1\r\n", MALFORMED);
    refused(b"STAT\r\r\n", MALFORMED);
}

#[test]
fn a_2040_non_ascii_is_refused_locally() {
    refused("STÄT\r\n".as_bytes(), MALFORMED);
    refused(b"RETR \xff\r\n", MALFORMED);
}

#[test]
fn a_2040_malformed_arguments_are_refused_locally() {
    refused(b"RETR\r\n", MALFORMED);
    refused(b"RETR 0\r\n", MALFORMED);
    refused(b"RETR one\r\n", MALFORMED);
    refused(b"DELE 1 2\r\n", MALFORMED);
    refused(b"TOP 1\r\n", MALFORMED);
    refused(b"LIST 99999999999\r\n", MALFORMED);
    refused(b"\r\n", MALFORMED);
}

#[test]
fn a_2040_unknown_keywords_are_refused_locally() {
    refused(b"XTND XMIT\r\n", NOT_RELAYED);
    refused(b"LAST\r\n", NOT_RELAYED);
}

#[test]
fn a_2040_apop_stls_auth_user_pass_utf8_lang_after_login_are_refused_locally() {
    for line in [
        "APOP erik c4c9334bac560ecc979e58001b3e22fb\r\n",
        "STLS\r\n",
        "AUTH PLAIN AGVyaWsAcHc=\r\n",
        "USER other\r\n",
        "PASS geheim\r\n",
        "UTF8\r\n",
        "LANG de\r\n",
    ] {
        refused(line.as_bytes(), NOT_RELAYED);
    }
}

#[test]
fn a_2040_commands_go_out_in_canonical_form() {
    let mut h = H::logged_in();
    h.c("retr 007\r\n");
    assert_eq!(h.take_server(), "RETR 7\r\n");
    h.srv("-ERR no such message\r\n");
    h.c("List  2 \r\nuidl\n");
    assert_eq!(h.take_server(), "LIST 2\r\nUIDL\r\n");
}

#[test]
fn a_2040_local_answers_keep_the_order_of_pipelined_commands() {
    let mut h = H::logged_in();
    h.c("STAT\r\n STAT\r\nLIST\r\nAPOP a b\r\nNOOP\r\n");
    assert_eq!(h.take_server(), "STAT\r\nLIST\r\nNOOP\r\n");
    assert_eq!(
        h.take_client(),
        "",
        "the refusals wait for the replies before them"
    );
    h.srv("+OK 1 10\r\n+OK\r\n1 10\r\n.\r\n+OK\r\n");
    assert_eq!(
        h.take_client(),
        format!(
            "+OK 1 10\r\n-ERR {MALFORMED}\r\n+OK\r\n1 10\r\n.\r\n-ERR {NOT_RELAYED}\r\n+OK\r\n"
        )
    );
}

#[test]
fn a_2038_nothing_is_relayed_after_quit() {
    let mut h = H::logged_in();
    h.c("QUIT\r\nDELE 1\r\n");
    assert_eq!(h.take_server(), "QUIT\r\n");
    h.srv("+OK bye\r\n");
    assert_eq!(h.take_client(), "+OK bye\r\n");
    assert_eq!(h.closes(), [Kind::CloseUpstream, Kind::CloseClient]);
}

// ---- CONNECT: what reaches the server from the client (A_2034) ----------------------------

#[test]
fn a_2034_crlf_in_a_plain_password_never_reaches_the_server() {
    let mut h = H::new();
    h.take_client();
    h.c(&format!(
        "AUTH PLAIN {}\r\n",
        plain_ir(LOGIN, "pw\r\nDELE 1")
    ));
    assert_eq!(h.take_client(), format!("-ERR {AUTH_FAILED}\r\n"));
    assert!(h.connects.is_empty(), "no server is contacted");
    assert!(h.upstream.is_empty());
    assert!(
        !h.s.is_finished(),
        "a failed login, the client may try again"
    );
}

#[test]
fn a_2034_control_characters_in_user_or_pass_never_reach_the_server() {
    let mut h = H::new();
    h.take_client();
    let with_cr = LOGIN.replacen('@', "\r@", 1);
    h.c(&format!("USER {with_cr}\r\nPASS pw\r\n"));
    assert_eq!(h.take_client(), format!("+OK\r\n-ERR {AUTH_FAILED}\r\n"));
    h.c_bytes(format!("USER {LOGIN}\r\nPASS p\0w\r\n").as_bytes());
    assert_eq!(h.take_client(), format!("+OK\r\n-ERR {AUTH_FAILED}\r\n"));
    let with_nul = plain_ir(&LOGIN.replacen('@', "\0@", 1), "pw");
    h.c(&format!("AUTH PLAIN {with_nul}\r\n"));
    assert!(h.take_client().starts_with("-ERR"));
    assert!(h.connects.is_empty() && h.upstream.is_empty());
}

// ---- closing (A_2038, A_2039) ---------------------------------------------------------------

#[test]
fn a_2039_client_closing_without_quit_sends_no_quit() {
    let mut h = H::logged_in();
    h.c("DELE 1\r\n");
    assert_eq!(h.take_server(), "DELE 1\r\n");
    h.srv("+OK message 1 deleted\r\n");
    // An unfinished QUIT is not a QUIT.
    h.c("QUI");
    h.ev(Pop3Event::ClientClosed);
    assert_eq!(
        h.take_server(),
        "",
        "no QUIT: the DELE must not be committed"
    );
    assert_eq!(h.closes(), [Kind::CloseUpstream, Kind::CloseClient]);
}

#[test]
fn a_2039_client_closing_during_retr_never_relays_its_pipelined_dele_and_quit() {
    // The message of RETR 1 is still on its way (or with the Konnektor) when the client hangs
    // up: DELE 1 + QUIT would delete a message the client never received. Nothing follows.
    let mut h = H::logged_in();
    h.c("RETR 1\r\nDELE 1\r\nX\0\r\nQUIT\r\nSTAT\r\n");
    assert_eq!(h.take_server(), "RETR 1\r\n");
    h.ev(Pop3Event::ClientClosed);
    assert_eq!(h.take_server(), "");
    assert_eq!(h.closes(), [Kind::CloseUpstream, Kind::CloseClient]);
}

#[test]
fn a_2039_client_closing_relays_its_own_held_quit_when_no_message_is_on_its_way() {
    // DELE 1 is with the server (one command in flight allowed), the client's QUIT waits
    // behind it, and the client hangs up without waiting: its QUIT reaches the server.
    let mut g = H::with(Pop3Config {
        max_pipelined_commands: 1,
        ..Pop3Config::default()
    });
    g.up_to_server_login();
    g.srv("+OK\r\n+OK in\r\n");
    g.take_server();
    g.c("DELE 1\r\nQUIT\r\n");
    assert_eq!(g.take_server(), "DELE 1\r\n");
    g.ev(Pop3Event::ClientClosed);
    assert_eq!(g.take_server(), "QUIT\r\n");
    assert!(g.s.is_finished());
}

#[test]
fn a_2038_server_closing_in_the_middle_of_retr_answers_err() {
    let mut h = H::logged_in();
    h.c("RETR 1\r\n");
    h.srv("+OK 120 octets\r\nX-KOM-LE-Version: 1.0\r\nSubject: x\r\n");
    h.ev(Pop3Event::UpstreamClosed);
    assert!(h.jobs.is_empty(), "half a message is never opened");
    assert_eq!(h.take_client(), format!("-ERR {SERVER_UNAVAILABLE}\r\n"));
    assert_eq!(h.closes(), [Kind::CloseClient]);
    assert!(h.s.is_finished());
}

#[test]
fn a_2038_server_closing_in_the_middle_of_a_listing_answers_err_only() {
    let mut h = H::logged_in();
    h.c("UIDL\r\n");
    h.srv("+OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n2 01SDF8");
    assert_eq!(h.take_client(), "", "the listing is held until complete");
    h.ev(Pop3Event::UpstreamClosed);
    assert_eq!(h.take_client(), format!("-ERR {SERVER_UNAVAILABLE}\r\n"));
    assert_eq!(h.closes(), [Kind::CloseClient]);
}

#[test]
fn a_2038_server_closing_in_the_middle_of_a_status_line_answers_err() {
    let mut h = H::logged_in();
    h.c("STAT\r\n");
    h.srv("+OK 2 ");
    h.ev(Pop3Event::UpstreamClosed);
    assert_eq!(h.take_client(), format!("-ERR {SERVER_UNAVAILABLE}\r\n"));
}

#[test]
fn a_2038_server_closing_while_opening_with_held_commands_answers_err_after_the_message() {
    let mut h = H::logged_in();
    h.c("RETR 1\r\nSTAT\r\n");
    h.srv(&format!("+OK\r\n{ENCRYPTED}.\r\n"));
    h.ev(Pop3Event::UpstreamClosed);
    h.ev(Pop3Event::Opened(Ok(OpenedMessage {
        message: SecretBytes::from(&b"A: b\r\n"[..]),
    })));
    assert_eq!(
        h.take_client(),
        format!("+OK 6 octets\r\nA: b\r\n.\r\n-ERR {SERVER_UNAVAILABLE}\r\n")
    );
    assert_eq!(h.closes(), [Kind::CloseClient]);
}

// ---- timers after the login (A_2038, client_idle) ------------------------------------------

#[test]
fn a_2038_idle_client_after_login_gets_err_timeout() {
    let mut h = H::with(Pop3Config {
        client_idle_timeout: Duration::from_secs(60),
        ..Pop3Config::default()
    });
    h.up_to_server_login();
    h.srv("+OK\r\n+OK in\r\n");
    h.take_client();
    h.take_server();
    h.trace.clear();
    assert_eq!(h.s.poll_timeout(), Some(h.now + Duration::from_secs(60)));
    h.advance(Duration::from_secs(59));
    assert!(h.closes().is_empty());
    h.advance(Duration::from_secs(1));
    assert_eq!(h.take_client(), "-ERR timeout\r\n");
    assert_eq!(h.closes(), [Kind::CloseUpstream, Kind::CloseClient]);
    // Closed without QUIT (no DELE committed behind the client's back).
    assert_eq!(h.take_server(), "");
}

#[test]
fn a_2038_idle_client_after_login_with_default_timers_gets_err_timeout() {
    let mut h = H::logged_in();
    h.advance(Duration::from_secs(299));
    assert!(h.closes().is_empty());
    h.advance(Duration::from_secs(1));
    assert_eq!(h.take_client(), "-ERR timeout\r\n");
    assert_eq!(h.closes(), [Kind::CloseUpstream, Kind::CloseClient]);
}

#[test]
fn a_2038_idle_clock_counts_from_the_last_answer() {
    let mut h = H::logged_in();
    h.c("STAT\r\n");
    h.advance(Duration::from_secs(200));
    h.srv("+OK 0 0\r\n");
    // The client had no time to act while the server was slow.
    assert_eq!(h.s.poll_timeout(), Some(h.now + Duration::from_secs(300)));
}

#[test]
fn a_2038_unfinished_line_trickle_after_login_does_not_keep_the_session() {
    let mut h = H::logged_in();
    for _ in 0..29 {
        h.advance(Duration::from_secs(10));
        h.c("N");
    }
    assert!(h.closes().is_empty());
    h.advance(Duration::from_secs(10));
    assert_eq!(h.take_client(), "-ERR timeout\r\n");
    assert_eq!(h.take_server(), "", "the unfinished line is never relayed");
    assert_eq!(h.closes(), [Kind::CloseUpstream, Kind::CloseClient]);
}

#[test]
fn a_2038_unfinished_line_trickle_in_connect_does_not_keep_the_session() {
    let mut h = H::new();
    h.take_client();
    for _ in 0..29 {
        h.advance(Duration::from_secs(10));
        h.c("C");
    }
    h.advance(Duration::from_secs(10));
    assert_eq!(h.take_client(), "-ERR timeout\r\n");
    assert_eq!(h.closes(), [Kind::CloseClient]);
}

#[test]
fn a_2038_complete_line_restarts_the_idle_clock() {
    let mut h = H::logged_in();
    h.advance(Duration::from_secs(250));
    h.c("NO");
    h.advance(Duration::from_secs(10));
    h.c("OP\r\n");
    assert_eq!(h.take_server(), "NOOP\r\n");
    h.srv("+OK\r\n");
    h.advance(Duration::from_secs(299));
    assert!(h.closes().is_empty());
    h.advance(Duration::from_secs(1));
    assert_eq!(h.take_client(), "+OK\r\n-ERR timeout\r\n");
}
