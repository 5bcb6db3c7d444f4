//! The shared session vocabulary (issue 15): both sessions driven through one generic loop
//! over [`ProxySession`], the one `Ended { reason }` at the end, and inputs/outputs that never
//! show their payload in `Debug` (A_2005).

use std::time::{Duration, Instant};

use komle_core::pop3::{Pop3Config, Pop3Session};
use komle_core::proxy_session::{EndReason, Input, Job, JobResult, Output, ProxySession};
use komle_core::smtp::{RecipientVerdict, SmtpConfig, SmtpSession};
use komle_core::upstream_allow::UpstreamAllowList;

const PASSWORD: &str = "Kennwort-CANARY-7f3a";

/// Feeds `input`, drains every output, and checks `Debug` of both shows no password.
fn feed<S: ProxySession>(s: &mut S, input: Input<'_>, now: Instant) -> Vec<Output> {
    let shown = format!("{input:?} {input:#?}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    s.handle_input(input, now);
    let mut out = Vec::new();
    while let Some(o) = s.poll_output() {
        let shown = format!("{o:?} {o:#?}");
        assert!(!shown.contains(PASSWORD), "{shown}");
        out.push(o);
    }
    out
}

fn ended(out: &[Output]) -> Option<EndReason> {
    match out.last() {
        Some(Output::Ended { reason }) => Some(*reason),
        _ => None,
    }
}

fn smtp(now: Instant) -> SmtpSession {
    let config = SmtpConfig {
        upstream_allow: UpstreamAllowList::parse(["mail.komle.de:465"]).unwrap(),
        ..SmtpConfig::default()
    };
    SmtpSession::new(config, now)
}

fn pop3(now: Instant) -> Pop3Session {
    let config = Pop3Config {
        upstream_allow: UpstreamAllowList::parse(["pop.komle.de:995"]).unwrap(),
        ..Pop3Config::default()
    };
    Pop3Session::new(config, now)
}

/// A_2016 / A_2038: QUIT before any upstream connection ends both sessions with ClientQuit,
/// once, after the close action; nothing follows, whatever comes in.
#[test]
fn a_2016_a_2038_quit_ends_both_sessions_once_with_client_quit() {
    fn check<S: ProxySession>(mut s: S, now: Instant) {
        let greeting = feed(&mut s, Input::Timeout, now);
        assert!(
            matches!(greeting[..], [Output::SendToClient(_)]),
            "{greeting:?}"
        );
        let out = feed(&mut s, Input::ClientData(b"QUIT\r\n"), now);
        assert!(
            matches!(
                out[..],
                [
                    Output::SendToClient(_),
                    Output::CloseClient,
                    Output::Ended { .. }
                ]
            ),
            "{out:?}"
        );
        assert_eq!(ended(&out), Some(EndReason::ClientQuit));
        assert!(s.is_finished());
        assert!(feed(&mut s, Input::ClientData(b"NOOP\r\n"), now).is_empty());
        assert!(feed(&mut s, Input::ClientClosed, now).is_empty());
    }
    let now = Instant::now();
    check(smtp(now), now);
    check(pop3(now), now);
}

/// The client's idle limit (LIMITS.md `client_idle_timeout`) ends either session with
/// ClientIdle; a client hanging up ends it with ClientClosed.
#[test]
fn idle_and_hang_up_are_told_apart_in_the_end_reason() {
    let now = Instant::now();
    let mut s = smtp(now);
    feed(&mut s, Input::Timeout, now);
    let at = ProxySession::poll_timeout(&s).unwrap();
    assert_eq!(
        ended(&feed(&mut s, Input::Timeout, at)),
        Some(EndReason::ClientIdle)
    );
    let mut p = pop3(now);
    let at = ProxySession::poll_timeout(&p).unwrap();
    feed(&mut p, Input::Timeout, at - Duration::from_secs(1));
    assert!(!p.is_finished(), "an early timeout is harmless");
    assert_eq!(
        ended(&feed(&mut p, Input::Timeout, at)),
        Some(EndReason::ClientIdle)
    );
    let mut p = pop3(now);
    assert_eq!(
        ended(&feed(&mut p, Input::ClientClosed, now)),
        Some(EndReason::ClientClosed)
    );
}

/// KOM-LE-A_2176 through the shared words: the RCPT check is a `Run(Job::CheckRecipient)` and
/// its answer a `JobDone(RecipientChecked)`; a POP3 result fed to SMTP is ignored.
#[test]
fn a_2176_recipient_check_runs_as_a_job() {
    let now = Instant::now();
    let mut s = smtp(now);
    feed(&mut s, Input::Timeout, now);
    let login = "mustermann@komle.de#mail.komle.de:465#1#KOM_LE#7";
    let plain = base64_plain(login);
    feed(&mut s, Input::ClientData(b"EHLO c\r\n"), now);
    let out = feed(
        &mut s,
        Input::ClientData(format!("AUTH PLAIN {plain}\r\n").as_bytes()),
        now,
    );
    assert!(
        matches!(&out[..], [Output::ConnectUpstream { port: 465, .. }]),
        "{out:?}"
    );
    feed(&mut s, Input::UpstreamConnected, now);
    feed(
        &mut s,
        Input::UpstreamData(b"220 mta\r\n250-mta\r\n250 AUTH PLAIN\r\n"),
        now,
    );
    let out = feed(&mut s, Input::UpstreamData(b"235 ok\r\n"), now);
    assert!(matches!(&out[..], [Output::SendToClient(_)]), "{out:?}");
    feed(
        &mut s,
        Input::ClientData(b"MAIL FROM:<mustermann@komle.de>\r\n"),
        now,
    );
    feed(&mut s, Input::UpstreamData(b"250 ok\r\n"), now);
    let out = feed(&mut s, Input::ClientData(b"RCPT TO:<a@komle.de>\r\n"), now);
    let [Output::Run(Job::CheckRecipient { address })] = &out[..] else {
        panic!("{out:?}");
    };
    assert_eq!(address, "a@komle.de");
    let wrong = JobResult::Opened(Err(komle_core::pop3::OpenFailure { reason: "x".into() }));
    assert!(feed(&mut s, Input::JobDone(wrong), now).is_empty());
    let verdict = RecipientVerdict::NoValidCertificate;
    let answer = JobResult::RecipientChecked {
        address: "a@komle.de".into(),
        verdict,
    };
    let out = feed(&mut s, Input::JobDone(answer), now);
    let [Output::SendToClient(reply)] = &out[..] else {
        panic!("{out:?}");
    };
    assert!(
        reply.starts_with(b"550 "),
        "{}",
        String::from_utf8_lossy(reply)
    );
}

fn base64_plain(login: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{login}\0{PASSWORD}"))
}

/// The POP3 password crosses as `ClientData` and `SendToUpstream`: `Debug` shows lengths.
#[test]
fn a_2005_payloads_are_redacted_in_debug() {
    let now = Instant::now();
    let mut p = pop3(now);
    feed(
        &mut p,
        Input::ClientData(b"USER erik@komle.de#pop.komle.de:995#1#KOM_LE#7\r\n"),
        now,
    );
    let out = feed(
        &mut p,
        Input::ClientData(format!("PASS {PASSWORD}\r\n").as_bytes()),
        now,
    );
    assert!(
        matches!(&out[..], [Output::ConnectUpstream { .. }]),
        "{out:?}"
    );
    feed(&mut p, Input::UpstreamConnected, now);
    let mut sent = Vec::new();
    for reply in [
        &b"+OK ready\r\n"[..],
        b"+OK Capability list follows\r\nUSER\r\n.\r\n",
        b"+OK\r\n",
    ] {
        sent.extend(feed(&mut p, Input::UpstreamData(reply), now));
    }
    let pass = sent.iter().find_map(|o| match o {
        Output::SendToUpstream(b) if b.starts_with(b"PASS ") => Some(b.len()),
        _ => None,
    });
    let len = pass.expect("the PASS line went upstream");
    let shown: Vec<String> = sent.iter().map(|o| format!("{o:?}")).collect();
    assert!(
        shown.contains(&format!("SendToUpstream(<{len} bytes>)")),
        "{shown:?}"
    );
}

/// A_2016: the MTA does not answer (here: no greeting after the connection) — 421 to the
/// client and `Ended { UpstreamTimeout }`; A_2038: the POP3 server hangs up in PROXY —
/// `Ended { UpstreamClosed }`.
#[test]
fn a_2016_a_2038_upstream_timeout_and_hang_up_are_end_reasons() {
    let now = Instant::now();
    let mut s = smtp(now);
    feed(&mut s, Input::Timeout, now);
    let login = "mustermann@komle.de#mail.komle.de:465#1#KOM_LE#7";
    let auth = format!("AUTH PLAIN {}\r\n", base64_plain(login));
    feed(&mut s, Input::ClientData(auth.as_bytes()), now);
    feed(&mut s, Input::UpstreamConnected, now);
    let at = ProxySession::poll_timeout(&s).expect("the MTA's answer is timed");
    let out = feed(&mut s, Input::Timeout, at);
    assert_eq!(ended(&out), Some(EndReason::UpstreamTimeout), "{out:?}");

    let mut p = pop3(now);
    feed(
        &mut p,
        Input::ClientData(b"USER erik@komle.de#pop.komle.de:995#1#KOM_LE#7\r\n"),
        now,
    );
    feed(
        &mut p,
        Input::ClientData(format!("PASS {PASSWORD}\r\n").as_bytes()),
        now,
    );
    feed(&mut p, Input::UpstreamConnected, now);
    for reply in [
        &b"+OK ready\r\n"[..],
        b"+OK Capability list follows\r\nUSER\r\n.\r\n",
        b"+OK\r\n",
        b"+OK in\r\n",
    ] {
        feed(&mut p, Input::UpstreamData(reply), now);
    }
    assert!(!p.is_finished());
    let out = feed(&mut p, Input::UpstreamClosed, now);
    assert_eq!(ended(&out), Some(EndReason::UpstreamClosed), "{out:?}");
    assert_eq!(EndReason::UpstreamClosed.to_string(), "upstream-closed");
}
