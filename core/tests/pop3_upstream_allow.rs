//! The POP3 side of the allow-list: a login name naming a server outside `[upstream] pop3` gets
//! byte for byte the reply of an unreachable server (A_2037, Tab_POP3_Verbindung) and the session
//! never asks for a connection.

use std::time::Instant;

use komle_core::pop3::{Pop3Action, Pop3Config, Pop3Event, Pop3Session, SERVER_UNREACHABLE};
use komle_core::sasl::plain;
use komle_core::secret::Password;
use komle_core::upstream_allow::{UNREACHABLE_REASON, UpstreamAllowList};

/// What one session did: the bytes the client got, the connections it asked for, and whether
/// it closed the client.
#[derive(Debug, Default)]
struct Outcome {
    client: Vec<u8>,
    connects: Vec<(String, u16)>,
    closed_client: bool,
    sent_upstream: bool,
}

/// Feeds the client `lines` one by one; every connection the session asks for fails the way
/// the runtime reports an unreachable server.
fn run(allow: &[&str], lines: &[&str]) -> Outcome {
    let config = Pop3Config {
        upstream_allow: UpstreamAllowList::parse(allow.iter().copied()).unwrap(),
        ..Pop3Config::default()
    };
    let now = Instant::now();
    let mut s = Pop3Session::new(config, now);
    let mut out = Outcome::default();
    let drain = |s: &mut Pop3Session, out: &mut Outcome| {
        let mut failed = false;
        while let Some(a) = s.poll_action() {
            match a {
                Pop3Action::SendToClient(b) => out.client.extend_from_slice(&b),
                Pop3Action::ConnectUpstream { host, port, .. } => {
                    out.connects.push((host, port));
                    failed = true;
                }
                Pop3Action::CloseClient => out.closed_client = true,
                Pop3Action::SendToUpstream(_) | Pop3Action::CloseUpstream => {
                    out.sent_upstream = true
                }
                Pop3Action::Open(_) => panic!("no message is fetched here"),
                other => panic!("an action this test does not know: {other:?}"),
            }
        }
        failed
    };
    drain(&mut s, &mut out);
    for line in lines {
        s.handle_client_data(line.as_bytes(), now);
        while drain(&mut s, &mut out) {
            let reason = UNREACHABLE_REASON.to_owned();
            s.handle_event(Pop3Event::UpstreamFailed { reason }, now);
        }
    }
    out
}

const ALLOWED: &[&str] = &["*.kim.telematik:995", "pop.kim.example:995"];

fn user_pass(host_port: &str) -> Vec<String> {
    vec![
        format!("USER erik@komle.de#{host_port}#1#KOM_LE#7\r\n"),
        "PASS geheim\r\n".to_owned(),
    ]
}

fn refused_reply() -> String {
    format!("-ERR {SERVER_UNREACHABLE}: {UNREACHABLE_REASON}\r\n")
}

#[test]
fn a_2033_server_outside_the_allow_list_gets_the_unreachable_reply_without_a_connection() {
    for host_port in [
        "pop.komle.de:995",
        "pop.kim.example:110",
        "evil.kim.telematik.attacker.de:995",
        "kim.telematik:995",
        "127.0.0.1:995",
        "[::1]:995",
    ] {
        let mut lines = user_pass(host_port);
        lines.push("CAPA\r\n".into());
        lines.push("QUIT\r\n".into());
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let refused = run(ALLOWED, &lines);
        // The same dialog with the server allowed but unreachable.
        let unreachable = run(&[host_port], &lines);
        assert!(
            refused.connects.is_empty(),
            "{host_port}: {:?}",
            refused.connects
        );
        assert!(!refused.sent_upstream, "{host_port}");
        assert_eq!(unreachable.connects.len(), 1, "{host_port}");
        assert_eq!(
            String::from_utf8_lossy(&refused.client),
            String::from_utf8_lossy(&unreachable.client),
            "{host_port}"
        );
        let text = String::from_utf8(refused.client).unwrap();
        assert!(text.contains(&refused_reply()), "{host_port}: {text}");
        // The session stayed in CONNECT: CAPA and QUIT were answered there.
        assert!(
            text.ends_with("+OK KOM-LE Clientmodul beendet die Verbindung\r\n"),
            "{text}"
        );
        assert!(refused.closed_client);
    }
}

#[test]
fn a_2033_refusal_via_auth_plain_is_the_same_as_via_user_pass() {
    let login = "erik@komle.de#pop.other.example:995#1#KOM_LE#7";
    let ir = plain::encode_response(login, &Password::new("geheim"));
    let refused = run(ALLOWED, &[&format!("AUTH PLAIN {ir}\r\n")]);
    assert!(refused.connects.is_empty());
    let text = String::from_utf8(refused.client).unwrap();
    assert!(text.ends_with(&refused_reply()), "{text}");
    assert!(!refused.closed_client);
}

#[test]
fn a_2033_without_an_allow_list_every_login_is_refused() {
    let lines = user_pass("127.0.0.1:995");
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let out = run(&[], &lines);
    assert!(out.connects.is_empty());
    assert!(
        String::from_utf8(out.client)
            .unwrap()
            .ends_with(&refused_reply())
    );
    // Pop3Config::default() carries the same empty list.
    assert!(Pop3Config::default().upstream_allow.is_empty());
}

#[test]
fn a_2033_allowed_servers_are_connected_as_named() {
    for (host_port, host, port) in [
        ("MAIL.Kim.Telematik.:995", "MAIL.Kim.Telematik.", 995),
        ("pop.kim.example:995", "pop.kim.example", 995),
    ] {
        let lines = user_pass(host_port);
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let out = run(ALLOWED, &lines);
        assert_eq!(out.connects, [(host.to_owned(), port)], "{host_port}");
    }
}
