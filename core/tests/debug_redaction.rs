//! One stray `{:?}` must not log a password or message content (issue 15; A_2005): the
//! sessions, their actions and the line buffers print lengths and phase names, never the bytes.
//!
//! Each test drives a session through a login and a message with canary strings in the password
//! and the content, formats every action and the session at every step with `{:?}` and `{:#?}`,
//! and searches the text for the canaries, plain and base64 (the SASL PLAIN line carries the
//! password base64-encoded).

use std::time::Instant;

use base64::Engine as _;
use komle_core::line_buffer::LineBuffer;
use komle_core::pop3::{Pop3Config, Pop3Event, Pop3Session};
use komle_core::smtp::{SmtpConfig, SmtpEvent, SmtpSession};
use komle_core::upstream_allow::UpstreamAllowList;

const PASSWORD: &str = "Kennwort-CANARY-7f3a";
const CONTENT: &str = "Befund-CANARY-91c2";

/// Every form in which a canary could show up in Debug text.
fn forms(canary: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = vec![canary.to_owned()];
    // The canary inside a SASL PLAIN response at each of the three base64 alignments.
    for pad in ["", "a", "ab"] {
        let encoded = b64.encode(format!("{pad}{canary}"));
        let skip = (pad.len() * 4).div_ceil(3) + 1;
        out.push(encoded[skip..encoded.len() - 4].to_owned());
    }
    // A derived `Debug` of a `Vec<u8>` prints the bytes as numbers: `[75, 101, ...]`.
    let as_numbers: Vec<String> = out
        .iter()
        .map(|f| {
            f.bytes()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    out.extend(as_numbers);
    out
}

fn assert_clean(what: &str, text: &str) {
    for canary in [PASSWORD, CONTENT] {
        for form in forms(canary) {
            assert!(
                !text.contains(&form),
                "{what} shows {form:?} (from {canary}): {text}"
            );
        }
    }
}

#[test]
fn smtp_session_actions_and_buffers_never_show_password_or_content() {
    let now = Instant::now();
    let config = SmtpConfig {
        upstream_allow: UpstreamAllowList::parse(["mail.komle.de:465"]).unwrap(),
        ..SmtpConfig::default()
    };
    let mut s = SmtpSession::new(config, now);
    let mut seen = Vec::new();
    let drain = |s: &mut SmtpSession, seen: &mut Vec<String>| {
        while let Some(a) = s.poll_action() {
            seen.push(format!("{a:?} {a:#?}"));
        }
        seen.push(format!("{s:?} {s:#?}"));
    };
    let login = "mustermann@komle.de#mail.komle.de:465#1#KOM_LE#7";
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0{login}\0{PASSWORD}"));
    s.handle_client_data(b"EHLO client\r\n", now);
    drain(&mut s, &mut seen);
    // Half of the AUTH line first: it sits in the line buffer while Debug is taken.
    let auth = format!("AUTH PLAIN {plain}\r\n");
    let (a, b) = auth.as_bytes().split_at(auth.len() / 2);
    s.handle_client_data(a, now);
    drain(&mut s, &mut seen);
    s.handle_client_data(b, now);
    drain(&mut s, &mut seen);
    s.handle_event(SmtpEvent::UpstreamConnected, now);
    drain(&mut s, &mut seen);
    s.handle_upstream_data(b"220 mta ESMTP\r\n250-mta\r\n250 AUTH PLAIN LOGIN\r\n", now);
    drain(&mut s, &mut seen);
    assert!(
        seen.iter().any(|l| l.contains("SendToUpstream(<")),
        "the AUTH line to the MTA was among the actions: {seen:?}"
    );
    s.handle_upstream_data(b"235 2.7.0 ok\r\n", now);
    drain(&mut s, &mut seen);
    s.handle_client_data(b"MAIL FROM:<mustermann@komle.de>\r\n", now);
    drain(&mut s, &mut seen);
    s.handle_upstream_data(b"250 ok\r\n", now);
    drain(&mut s, &mut seen);
    s.handle_client_data(b"RCPT TO:<musterfrau@komle.de>\r\n", now);
    drain(&mut s, &mut seen);
    s.handle_event(
        SmtpEvent::RecipientChecked {
            address: "musterfrau@komle.de".into(),
            verdict: komle_core::smtp::RecipientVerdict::Usable,
        },
        now,
    );
    drain(&mut s, &mut seen);
    s.handle_upstream_data(b"250 ok\r\n", now);
    drain(&mut s, &mut seen);
    s.handle_client_data(b"DATA\r\n", now);
    drain(&mut s, &mut seen);
    // Content in the DATA reader, then complete: the Protect job carries it.
    s.handle_client_data(
        format!("Subject: {CONTENT}\r\n\r\n{CONTENT}\r\n").as_bytes(),
        now,
    );
    drain(&mut s, &mut seen);
    s.handle_client_data(b".\r\n", now);
    drain(&mut s, &mut seen);
    assert!(
        seen.iter().any(|l| l.starts_with("Protect(")),
        "the message reached the Protect action: {seen:?}"
    );
    for line in &seen {
        assert_clean("SMTP Debug", line);
    }
}

#[test]
fn pop3_session_and_actions_never_show_password_or_content() {
    let now = Instant::now();
    let config = Pop3Config {
        upstream_allow: UpstreamAllowList::parse(["pop.komle.de:995"]).unwrap(),
        ..Pop3Config::default()
    };
    let mut s = Pop3Session::new(config, now);
    let mut seen = Vec::new();
    let drain = |s: &mut Pop3Session, seen: &mut Vec<String>| {
        while let Some(a) = s.poll_action() {
            seen.push(format!("{a:?} {a:#?}"));
        }
        seen.push(format!("{s:?} {s:#?}"));
    };
    s.handle_client_data(b"USER erik@komle.de#pop.komle.de:995#1#KOM_LE#7\r\n", now);
    drain(&mut s, &mut seen);
    s.handle_client_data(format!("PASS {PASSWORD}\r\n").as_bytes(), now);
    drain(&mut s, &mut seen);
    s.handle_event(Pop3Event::UpstreamConnected, now);
    drain(&mut s, &mut seen);
    for reply in [
        &b"+OK ready\r\n"[..],
        b"+OK Capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\n.\r\n",
        b"+OK\r\n",
        b"+OK Maildrop ready\r\n",
    ] {
        s.handle_upstream_data(reply, now);
        drain(&mut s, &mut seen);
    }
    s.handle_client_data(b"RETR 1\r\n", now);
    drain(&mut s, &mut seen);
    s.handle_upstream_data(
        format!("+OK\r\nSubject: {CONTENT}\r\n\r\n{CONTENT}\r\n.\r\n").as_bytes(),
        now,
    );
    drain(&mut s, &mut seen);
    assert!(
        seen.iter().any(|l| l.starts_with("Open(")),
        "the message reached the Open action: {seen:?}"
    );
    for line in &seen {
        assert_clean("POP3 Debug", line);
    }
}

#[test]
fn line_buffer_shows_lengths_only() {
    let mut b = LineBuffer::new(100);
    b.push(format!("PASS {PASSWORD}").as_bytes());
    assert_clean("LineBuffer", &format!("{b:?} {b:#?}"));
    b.push(b"\r\n");
    let line = b.next_line().unwrap();
    assert_clean("Line", &format!("{line:?}"));
}

#[test]
fn the_search_finds_a_canary_when_it_is_there() {
    // The searcher itself: a Debug text that does contain the password (as plain text or inside
    // a SASL PLAIN line) must be caught, or the tests above prove nothing.
    let login = "x#y:1#a#b#c";
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0{login}\0{PASSWORD}"));
    let numbers = format!("{:?}", format!("AUTH PLAIN {plain}").into_bytes());
    for leaky in [
        format!("AUTH PLAIN {plain}"),
        format!("PASS {PASSWORD}"),
        numbers,
    ] {
        let caught = std::panic::catch_unwind(|| assert_clean("probe", &leaky));
        assert!(caught.is_err(), "{leaky} was not caught");
    }
}
