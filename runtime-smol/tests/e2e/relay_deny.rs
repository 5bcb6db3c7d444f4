//! The default-deny relay against a real Postfix (issue 13): what an attacker who logged in
//! tries in order to get an unsigned mail or an unchecked recipient past the Clientmodul.
//!
//! Postfix skips leading whitespace before a verb and accepts TAB/VT as separators, so a proxy
//! that relays what it does not understand lets ` DATA` through as a plain DATA, and
//! ` RCPT TO:<x>` through without the directory check (KOM-LE-A_2176). The Clientmodul forwards
//! only commands it parsed and wrote itself (KOM-LE-A_2018 for everything it understands); these
//! tests prove at the real MTA that nothing unprotected or unchecked arrives.
//!
//! Shared by the smol daemon's and the tokio binary's suites like `send.rs`.

use std::time::Duration;

use crate::common::clients::{self, Step};
use crate::common::{TestBed, header_of, password, world};

/// How long "not delivered" is watched after the dialog ended: Postfix hands a queued mail to
/// Dovecot's LMTP within milliseconds on loopback.
const SETTLE: Duration = Duration::from_secs(3);
const DELIVERY: Duration = Duration::from_secs(30);

/// A plain mail whose body carries `marker`: if it ever reaches a Maildir, it went past the
/// protection step.
fn plain_mail(from: &str, to: &str, marker: &str) -> String {
    format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: Klartext {marker}\r\n\
         Message-ID: <{marker}@attack.test>\r\n\r\nUnverschluesselt {marker}\r\n"
    )
}

/// Whitespace and control-character variants of a verb that Postfix still takes for the verb.
/// (`DATA ` with a trailing space is not among them: the module reads it as DATA itself, answers
/// its own 354 and protects what follows, like any DATA.)
fn disguised(verb: &str) -> Vec<(String, String)> {
    vec![
        (format!(" {verb}"), "leading-space".to_owned()),
        (format!("\t{verb}"), "leading-tab".to_owned()),
        (format!("{verb}\t"), "trailing-tab".to_owned()),
        (format!("{verb}\x0b"), "trailing-vt".to_owned()),
        (format!("\x00{verb}"), "leading-nul".to_owned()),
        (
            verb.to_lowercase().replace('a', "\u{0430}"),
            "cyrillic-a".to_owned(),
        ),
    ]
}

#[test]
fn kom_le_a_2018_disguised_data_in_one_write_with_close_delivers_nothing_plain() {
    // The attack as found: MAIL, RCPT, a disguised DATA, the whole plain mail, the final dot and
    // QUIT in one write, then the client closes. Whatever the proxy did with the buffered lines
    // when the client went away must not have given Postfix a message.
    let bed = TestBed::start();
    let from = world().pki.sender.address.clone();
    let to = world().pki.single.address.clone();
    let auth = clients::auth_plain(&bed.login(&from), &password(&from));
    for (data, variant) in disguised("DATA") {
        let marker = format!("one-write-{variant}");
        let mut burst = format!("MAIL FROM:<{from}>\r\nRCPT TO:<{to}>\r\n{data}\r\n").into_bytes();
        burst.extend_from_slice(plain_mail(&from, &to, &marker).as_bytes());
        burst.extend_from_slice(b".\r\nQUIT\r\n");
        let run = clients::raw(
            bed.smtp_addr(),
            bed.cm_ca_path(),
            &[
                Step::Read,
                Step::Command("EHLO attacker.test"),
                Step::Command(&auth),
                Step::Send(&burst),
                Step::Close,
            ],
        );
        assert!(
            run.codes().contains(&235),
            "{variant}: login failed: {}\n{}",
            run.transcript,
            bed.log()
        );
        bed.assert_not_delivered(&to, &marker, SETTLE);
    }
}

#[test]
fn kom_le_a_2018_disguised_data_is_answered_locally_and_the_body_never_becomes_a_mail() {
    // The interactive form: the client sees the module's reply to the disguised DATA (never 354)
    // and sends the body and the final dot anyway, then QUIT.
    let bed = TestBed::start();
    let from = world().pki.sender.address.clone();
    let to = world().pki.single.address.clone();
    let auth = clients::auth_plain(&bed.login(&from), &password(&from));
    let mail_from = format!("MAIL FROM:<{from}>");
    let rcpt_to = format!("RCPT TO:<{to}>");
    for (data, variant) in disguised("DATA") {
        let marker = format!("interactive-{variant}");
        let mut body = plain_mail(&from, &to, &marker).into_bytes();
        body.extend_from_slice(b".\r\n");
        let run = clients::raw(
            bed.smtp_addr(),
            bed.cm_ca_path(),
            &[
                Step::Read,
                Step::Command("EHLO attacker.test"),
                Step::Command(&auth),
                Step::Command(&mail_from),
                Step::Command(&rcpt_to),
                Step::Command(&data),
                Step::Send(&body),
                Step::Command("QUIT"),
            ],
        );
        let codes = run.codes();
        assert_eq!(
            &codes[..5],
            [220, 250, 235, 250, 250],
            "{variant}: {}\n{}",
            run.transcript,
            bed.log()
        );
        assert!(
            !codes.contains(&354),
            "{variant}: the disguised DATA must not start a message: {}",
            run.transcript
        );
        assert!(
            (500..=502).contains(&codes[5]),
            "{variant}: the disguised DATA gets a syntax/unknown-command reply: {}",
            run.transcript
        );
        bed.assert_not_delivered(&to, &marker, SETTLE);
    }
}

#[test]
fn kom_le_a_2176_disguised_rcpt_never_reaches_postfix_without_the_directory_check() {
    // The recipient has no encryption certificate. A disguised RCPT for it must be refused by the
    // module; the mail then goes through the proper path to a checked recipient, and the
    // unchecked one gets nothing — not even the protected message (Postfix would have delivered it
    // to every RCPT it accepted).
    let bed = TestBed::start();
    let from = world().pki.sender.address.clone();
    let good = world().pki.single.address.clone();
    let unchecked = world().pki.no_certificate.address.clone();
    let auth = clients::auth_plain(&bed.login(&from), &password(&from));
    let mail_from = format!("MAIL FROM:<{from}>");
    let rcpt_good = format!("RCPT TO:<{good}>");
    let variants = [
        (format!(" RCPT TO:<{unchecked}>"), "leading-space"),
        (format!("RCPT\tTO:<{unchecked}>"), "tab"),
        (format!("RCPT\x0bTO:<{unchecked}>"), "vt"),
        (format!("RCPT TO:<{unchecked}>\x00"), "trailing-nul"),
        (format!("rcpt to:<{unchecked}> \x1b[0m"), "escape"),
    ];
    for (rcpt, variant) in variants {
        let marker = format!("rcpt-{variant}");
        let mut body = format!(
            "From: <{from}>\r\nTo: <{good}>\r\nSubject: Befund {marker}\r\n\
             Message-ID: <{marker}@komle.test>\r\n\r\nBefund {marker}\r\n"
        )
        .into_bytes();
        body.extend_from_slice(b".\r\n");
        let run = clients::raw(
            bed.smtp_addr(),
            bed.cm_ca_path(),
            &[
                Step::Read,
                Step::Command("EHLO client.test"),
                Step::Command(&auth),
                Step::Command(&mail_from),
                Step::Command(&rcpt),
                Step::Command(&rcpt_good),
                Step::Command("DATA"),
                Step::Send(&body),
                Step::Read,
                Step::Command("QUIT"),
            ],
        );
        let codes = run.codes();
        assert!(
            codes.len() >= 8,
            "{variant}: {}\n{}",
            run.transcript,
            bed.log()
        );
        assert!(
            codes[4] >= 500,
            "{variant}: the disguised RCPT is refused: {}",
            run.transcript
        );
        assert_eq!(
            &codes[5..8],
            [250, 354, 250],
            "{variant}: the proper path still works: {}\n{}",
            run.transcript,
            bed.log()
        );
        let stored = bed.wait_delivered(&good, &marker, 1, DELIVERY);
        let head = header_of(&stored[0]);
        assert!(
            head.contains("smime-type=authenticated-enveloped-data"),
            "{variant}: only the protected message reaches the checked recipient: {head}"
        );
        bed.assert_not_delivered(&unchecked, &marker, SETTLE);
    }
}
