//! End-to-end sending through real servers: mail clients (curl, Python) → the `komle-cm`
//! binary → Postfix (SMTPS, SASL via Dovecot) → Dovecot Maildir, with OpenLDAP as the VZD and
//! the Konnektor simulator over HTTPS. What arrives is opened again with the recipient's card.
//!
//! Every test starts its own [`common::TestBed`] (the beds run in parallel); markers in the
//! Message-ID (copied to the outer KOM-LE message) tell a test's messages apart.

use std::time::{Duration, Instant};

use crate::common::clients::{self, RawDialog, Step, Submission};
use crate::common::{Options, TestBed, header_of, open_as, password, world};
use komle_conformance::servers::closed_port;
use komle_conformance::sim::config::{Fault, Operation};

/// How long "not delivered" is watched after the client got its answer.
const SETTLE: Duration = Duration::from_secs(2);
const DELIVERY: Duration = Duration::from_secs(30);

/// A small mail with `marker` in its Message-ID and body.
fn mail(from: &str, to: &[&str], marker: &str) -> Vec<u8> {
    format!(
        "From: Praxis <{from}>\r\nTo: {}\r\nSubject: Befund {marker}\r\n\
         Date: Fri, 27 Nov 2026 10:00:00 +0100\r\nMessage-ID: <{marker}@komle.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Kalium 4,1 mmol/l ({marker}).\r\n.Zeile mit Punkt\r\nEnde\r\n",
        to.iter()
            .map(|t| format!("<{t}>"))
            .collect::<Vec<_>>()
            .join(", ")
    )
    .into_bytes()
}

/// `mail` as it goes over the wire inside DATA (RFC 5321 §4.5.2 dot-stuffing): raw dialogs
/// must do what real clients do.
fn stuffed(mail: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(mail).replace("\r\n.", "\r\n..");
    text.into_bytes()
}

fn sender() -> String {
    world().pki.sender.address.clone()
}

/// A submission through komle-cm as the world's sender.
fn via_cm<'a>(
    bed: &'a TestBed,
    login: &'a str,
    pw: &'a str,
    from: &'a str,
    rcpts: &'a [&'a str],
) -> Submission<'a> {
    Submission {
        server: bed.smtp_addr(),
        ca: bed.cm_ca_path(),
        user: login,
        password: pw,
        from,
        rcpts,
    }
}

/// Asserts that `stored` is a KOM-LE message (A_2193) that opens for `recipient` to the
/// original body with both results positive.
fn assert_opens(stored: &[u8], recipient: &str, marker: &str) {
    let head = header_of(stored);
    assert!(head.contains("X-KOM-LE-Version: 1.0"), "{head}");
    assert!(
        head.contains("smime-type=authenticated-enveloped-data"),
        "{head}"
    );
    assert!(head.contains("Subject: KOM-LE-Nachricht"), "{head}");
    assert!(
        !String::from_utf8_lossy(stored).contains("Kalium"),
        "the body must not travel in clear"
    );
    let opened = open_as(recipient, stored)
        .unwrap_or_else(|e| panic!("{recipient} cannot open the message: {}", e.reason));
    assert!(
        opened.contains(&format!("Kalium 4,1 mmol/l ({marker}).")),
        "{opened}"
    );
    assert!(
        opened.contains(".Zeile mit Punkt"),
        "dot-stuffing undone once: {opened}"
    );
    assert!(
        opened.contains(&format!("Subject: Befund {marker}")),
        "{opened}"
    );
    assert!(opened.contains("X-KIM-DecryptionResult: 00"), "{opened}");
    assert!(
        opened.contains("X-KIM-IntegrityCheckResult: 01"),
        "{opened}"
    );
}

#[test]
fn kom_le_a_2019_a_2193_mail_to_two_recipients_arrives_protected_and_opens() {
    // Debug logging: the strictest level at which the log must stay free of secrets.
    let bed = TestBed::start_with(Options {
        log_level: "debug",
        ..Options::default()
    });
    let from = sender();
    let single = world().pki.single.address.clone();
    let oldnew = world().pki.old_and_new_card.address.clone();
    let marker = "two-rcpts";
    let login = bed.login(&from);
    let pw = password(&from);
    let rcpts = [single.as_str(), oldnew.as_str()];
    // AUTH LOGIN this time; other tests use PLAIN (smtplib, raw dialogs).
    let run = clients::curl(
        &via_cm(&bed, &login, &pw, &from, &rcpts),
        &mail(&from, &rcpts, marker),
        &["--login-options", "AUTH=LOGIN"],
    );
    assert!(run.success, "{}\n{}", run.transcript, bed.log());
    assert!(run.codes().contains(&235), "{:?}", run.replies);
    for to in rcpts {
        let stored = bed.wait_delivered(to, marker, 1, DELIVERY);
        assert_eq!(stored.len(), 1, "{to}: delivered once");
        assert_opens(&stored[0], to, marker);
    }
    // Tab_Konf_Param / logging rules: no password, no message content in the log.
    let log = bed.log();
    assert!(log.contains("session="), "the log is written at all: {log}");
    assert!(!log.contains(&pw), "password in the log");
    assert!(!log.contains("Kalium"), "message content in the log");
    assert!(
        !log.contains(&format!("Befund {marker}")),
        "subject in the log"
    );
}

#[test]
fn tab_smtp_verbindung_login_failures_535_454_501_504() {
    let bed = TestBed::start();
    let from = sender();
    let to = world().pki.single.address.clone();
    let rcpts = [to.as_str()];
    let pw = password(&from);
    let msg = mail(&from, &rcpts, "login-failures");

    // Wrong password: Postfix refuses, the client gets 535.
    let login = bed.login(&from);
    let run = clients::curl(&via_cm(&bed, &login, "wrong", &from, &rcpts), &msg, &[]);
    assert!(!run.success);
    assert_eq!(run.last_code(), Some(535), "{}", run.transcript);

    // The MTA in the login name does not listen: 454.
    let closed = crate::common::login_via(&from, closed_port().expect("closed port"));
    let run = clients::curl(&via_cm(&bed, &closed, &pw, &from, &rcpts), &msg, &[]);
    assert!(!run.success);
    assert_eq!(run.last_code(), Some(454), "{}", run.transcript);

    // A login name without the Konnektor context: 501.
    let incomplete = format!("{from}#{}", bed.servers.smtps_addr());
    let run = clients::curl(&via_cm(&bed, &incomplete, &pw, &from, &rcpts), &msg, &[]);
    assert!(!run.success);
    assert_eq!(run.last_code(), Some(501), "{}", run.transcript);

    // CRAM-MD5 is not offered; a client insisting on it gets 504. (curl refuses to send a
    // mechanism that is not advertised, so the dialog is raw.)
    let run = clients::raw(
        bed.smtp_addr(),
        bed.cm_ca_path(),
        &[
            Step::Read,
            Step::Command("EHLO python"),
            Step::Command("AUTH CRAM-MD5"),
        ],
    );
    assert_eq!(run.last_code(), Some(504), "{}", run.transcript);

    bed.assert_not_delivered(&to, "login-failures", Duration::from_millis(500));
}

#[test]
fn kom_le_a_2176_recipients_without_usable_certificate_are_refused_550() {
    let bed = TestBed::start();
    let from = sender();
    let login = bed.login(&from);
    let pw = password(&from);
    // No certificate at all, and only an expired one: both refused, nothing sent.
    for to in [
        world().pki.no_certificate.address.clone(),
        world().pki.expired.address.clone(),
    ] {
        let rcpts = [to.as_str()];
        let run = clients::curl(
            &via_cm(&bed, &login, &pw, &from, &rcpts),
            &mail(&from, &rcpts, "no-cert"),
            &[],
        );
        assert!(!run.success);
        let codes = run.codes();
        assert!(codes.contains(&550), "{to}: {}", run.transcript);
        assert!(
            !codes.contains(&354),
            "DATA never began: {}",
            run.transcript
        );
        bed.assert_not_delivered(&to, "no-cert", Duration::from_millis(300));
    }

    // One of two recipients without a certificate (smtplib): 550 for that one at RCPT, the
    // mail goes to the other, and only to the other.
    let good = world().pki.single.address.clone();
    let bad = world().pki.no_certificate.address.clone();
    let rcpts = [good.as_str(), bad.as_str()];
    let run = clients::smtplib(
        &via_cm(&bed, &login, &pw, &from, &rcpts),
        &mail(&from, &rcpts, "one-of-two"),
    );
    assert!(run.success, "{}\n{}", run.transcript, bed.log());
    assert!(run.transcript.contains("SENT"), "{}", run.transcript);
    assert!(run.codes().contains(&550), "{:?}", run.replies);
    let stored = bed.wait_delivered(&good, "one-of-two", 1, DELIVERY);
    assert_eq!(stored.len(), 1);
    assert_opens(&stored[0], &good, "one-of-two");
    bed.assert_not_delivered(&bad, "one-of-two", SETTLE);
}

#[test]
fn kom_le_a_2024_certificate_gone_at_data_time_sends_to_the_rest_and_notifies_the_sender() {
    // A short cache lifetime so DATA asks the directory again instead of reusing RCPT's answer.
    let bed = TestBed::start_with(Options {
        certificate_ttl: Some(Duration::from_millis(500)),
        ..Options::default()
    });
    let from = sender();
    let good = world().pki.single.address.clone();
    let gone = world().pki.old_and_new_card.address.clone();
    let auth = clients::auth_plain(&bed.login(&from), &password(&from));
    let mail_from = format!("MAIL FROM:<{from}>");
    let rcpt_good = format!("RCPT TO:<{good}>");
    let rcpt_gone = format!("RCPT TO:<{gone}>");
    let mut body = stuffed(&mail(&from, &[&good, &gone], "gone-at-data"));
    body.extend_from_slice(b".\r\n");
    let steps = [
        Step::Read,
        Step::Command("EHLO python"),
        Step::Command(&auth),
        Step::Command(&mail_from),
        Step::Command(&rcpt_good),
        Step::Command(&rcpt_gone),
        Step::Wait,
        Step::Command("DATA"),
        Step::Send(&body),
        Step::Read,
        Step::Command("QUIT"),
    ];
    let mut dialog = RawDialog::start(bed.smtp_addr(), bed.cm_ca_path(), &steps);
    assert!(dialog.wait_for_pause(), "the dialog ended before DATA");
    crate::common::remove_certificates(&bed.slapd, &world().pki.old_and_new_card.uid);
    std::thread::sleep(Duration::from_millis(800));
    dialog.resume();
    let run = dialog.finish();
    assert_eq!(
        run.codes(),
        [220, 250, 235, 250, 250, 250, 354, 250, 221],
        "{}\n{}",
        run.transcript,
        bed.log()
    );
    let stored = bed.wait_delivered(&good, "gone-at-data", 1, DELIVERY);
    assert_opens(&stored[0], &good, "gone-at-data");
    let notices = bed.wait_delivered(&from, "gone-at-data", 1, DELIVERY);
    let notice = String::from_utf8_lossy(&notices[0]);
    assert!(notice.contains("X-KIM-Fehlermeldung: 4004"), "{notice}");
    assert!(
        notice.contains(&gone),
        "the notice names who was left out: {notice}"
    );
    bed.assert_not_delivered(&gone, "gone-at-data", SETTLE);
}

/// Issue 14 finding 8, Abbildung 8: the directory hands out a certificate the Konnektor
/// refuses at EncryptDocument (revoked). RCPT accepts the recipient (the directory cannot know
/// about the revocation); at DATA only that recipient is dropped: the client gets 250, the
/// other recipient gets the protected message, the revoked one nothing, and the sender a
/// notice with `X-KIM-Fehlermeldung: 4004` naming the dropped address (A_2024, A_2028).
#[test]
fn kom_le_abbildung_8_revoked_certificate_refused_at_encryption_drops_only_that_recipient() {
    let bed = TestBed::start();
    let from = sender();
    let good = world().pki.single.address.clone();
    let revoked = world().pki.revoked.address.clone();
    let marker = "revoked-at-data";
    let rcpts = [good.as_str(), revoked.as_str()];
    let auth = clients::auth_plain(&bed.login(&from), &password(&from));
    let mail_from = format!("MAIL FROM:<{from}>");
    let rcpt_good = format!("RCPT TO:<{good}>");
    let rcpt_revoked = format!("RCPT TO:<{revoked}>");
    let mut body = stuffed(&mail(&from, &rcpts, marker));
    body.extend_from_slice(b".\r\n");
    let steps = [
        Step::Read,
        Step::Command("EHLO python"),
        Step::Command(&auth),
        Step::Command(&mail_from),
        Step::Command(&rcpt_good),
        Step::Command(&rcpt_revoked),
        Step::Command("DATA"),
        Step::Send(&body),
        Step::Read,
        Step::Command("QUIT"),
    ];
    let run = RawDialog::start(bed.smtp_addr(), bed.cm_ca_path(), &steps).finish();
    assert_eq!(
        run.codes(),
        [220, 250, 235, 250, 250, 250, 354, 250, 221],
        "{}\n{}",
        run.transcript,
        bed.log()
    );
    let stored = bed.wait_delivered(&good, marker, 1, DELIVERY);
    assert_eq!(stored.len(), 1);
    assert_opens(&stored[0], &good, marker);
    let opened = open_as(&good, &stored[0]).expect("opens");
    assert!(
        !opened.contains(&revoked),
        "the protected copy no longer names the dropped address"
    );
    let notices = bed.wait_delivered(&from, marker, 1, DELIVERY);
    let notice = String::from_utf8_lossy(&notices[0]);
    assert!(notice.contains("X-KIM-Fehlermeldung: 4004"), "{notice}");
    assert!(
        notice.contains(&revoked),
        "the notice names who was left out: {notice}"
    );
    assert!(
        !notice.contains("Kalium"),
        "the notice does not carry the message: {notice}"
    );
    bed.assert_not_delivered(&revoked, marker, SETTLE);
}

#[test]
fn kom_le_a_2021_signing_fault_answers_451_and_delivers_nothing() {
    let mut sim = world().sim_config.clone();
    sim.faults.insert(
        Operation::SignDocument,
        Fault::SoapFault {
            code: 4000,
            text: "Signieren fehlgeschlagen (Test)".into(),
        },
    );
    let bed = TestBed::start_with(Options {
        sim,
        ..Options::default()
    });
    let from = sender();
    let to = world().pki.single.address.clone();
    let rcpts = [to.as_str()];
    let login = bed.login(&from);
    let pw = password(&from);
    let run = clients::curl(
        &via_cm(&bed, &login, &pw, &from, &rcpts),
        &mail(&from, &rcpts, "sign-fault"),
        &[],
    );
    assert!(!run.success, "{}", run.transcript);
    assert_eq!(run.last_code(), Some(451), "{}", run.transcript);
    bed.assert_not_delivered(&to, "sign-fault", SETTLE);
    bed.assert_not_delivered(&from, "sign-fault", Duration::ZERO);
}

/// The login dialog up to the 354 of DATA, as raw steps.
fn until_data<'a>(auth: &'a str, mail_from: &'a str, rcpt: &'a str) -> Vec<Step<'a>> {
    vec![
        Step::Read,
        Step::Command("EHLO python"),
        Step::Command(auth),
        Step::Command(mail_from),
        Step::Command(rcpt),
        Step::Command("DATA"),
    ]
}

/// Sends one more mail through the same komle-cm and checks it arrives exactly once: the
/// process survived what the test did before.
fn next_session_delivers(bed: &TestBed, marker: &str) {
    let from = sender();
    let to = world().pki.single.address.clone();
    let rcpts = [to.as_str()];
    let login = bed.login(&from);
    let pw = password(&from);
    let run = clients::curl(
        &via_cm(bed, &login, &pw, &from, &rcpts),
        &mail(&from, &rcpts, marker),
        &[],
    );
    assert!(run.success, "{}\n{}", run.transcript, bed.log());
    let stored = bed.wait_delivered(&to, marker, 1, DELIVERY);
    assert_eq!(stored.len(), 1);
    assert_opens(&stored[0], &to, marker);
}

#[test]
fn kom_le_a_2019_client_disconnect_mid_data_sends_nothing_and_komle_cm_serves_on() {
    let mut bed = TestBed::start();
    let from = sender();
    let to = world().pki.single.address.clone();
    let auth = clients::auth_plain(&bed.login(&from), &password(&from));
    let mail_from = format!("MAIL FROM:<{from}>");
    let rcpt = format!("RCPT TO:<{to}>");
    let full = stuffed(&mail(&from, &[&to], "cut-off"));
    let half = &full[..full.len() / 2];
    let mut steps = until_data(&auth, &mail_from, &rcpt);
    steps.push(Step::Send(half));
    steps.push(Step::Close);
    let run = clients::raw(bed.smtp_addr(), bed.cm_ca_path(), &steps);
    assert_eq!(
        run.codes(),
        [220, 250, 235, 250, 250, 354],
        "{}",
        run.transcript
    );
    bed.assert_not_delivered(&to, "cut-off", SETTLE);
    assert!(bed.cm_running(), "{}", bed.log());
    next_session_delivers(&bed, "next-session-1");
    assert!(bed.delivered(&to, "cut-off").is_empty());
}

#[test]
fn kom_le_a_2016_mta_stopped_mid_data_is_no_success_and_nothing_twice() {
    let mut bed = TestBed::start();
    let from = sender();
    let to = world().pki.single.address.clone();
    let auth = clients::auth_plain(&bed.login(&from), &password(&from));
    let mail_from = format!("MAIL FROM:<{from}>");
    let rcpt = format!("RCPT TO:<{to}>");
    let full = stuffed(&mail(&from, &[&to], "mta-gone"));
    let (first, rest) = full.split_at(full.len() / 2);
    let mut rest = rest.to_vec();
    rest.extend_from_slice(b".\r\n");
    let mut steps = until_data(&auth, &mail_from, &rcpt);
    steps.push(Step::Send(first));
    steps.push(Step::Wait);
    steps.push(Step::Send(&rest));
    steps.push(Step::Read);
    let mut dialog = RawDialog::start(bed.smtp_addr(), bed.cm_ca_path(), &steps);
    assert!(dialog.wait_for_pause(), "the dialog ended before DATA");
    bed.servers.stop_smtp();
    dialog.resume();
    let run = dialog.finish();
    let codes = run.codes();
    assert_eq!(
        codes[..6],
        [220, 250, 235, 250, 250, 354],
        "{}",
        run.transcript
    );
    assert!(
        !codes[6..].contains(&250),
        "reported sent although the MTA was gone: {}",
        run.transcript
    );
    eprintln!(
        "MTA stopped mid-DATA, the client got: {:?}",
        &run.finals()[6..]
    );
    bed.servers.restart_smtp().expect("Postfix restarts");
    bed.assert_not_delivered(&to, "mta-gone", SETTLE);
    assert!(bed.cm_running(), "{}", bed.log());
    next_session_delivers(&bed, "next-session-2");
    assert!(bed.delivered(&to, "mta-gone").is_empty());
}

#[test]
fn kom_le_a_2021_konnektor_timeout_answers_451_and_komle_cm_serves_on() {
    let mut sim = world().sim_config.clone();
    sim.faults.insert(Operation::EncryptDocument, Fault::Stall);
    let bed_options = Options {
        sim,
        konnektor_timeout: Some(Duration::from_secs(2)),
        ..Options::default()
    };
    let mut bed = TestBed::start_with(bed_options);
    let from = sender();
    let to = world().pki.single.address.clone();
    let rcpts = [to.as_str()];
    let login = bed.login(&from);
    let pw = password(&from);
    for marker in ["stalled-1", "stalled-2"] {
        let began = Instant::now();
        let run = clients::curl(
            &via_cm(&bed, &login, &pw, &from, &rcpts),
            &mail(&from, &rcpts, marker),
            &[],
        );
        assert!(!run.success, "{}", run.transcript);
        assert_eq!(run.last_code(), Some(451), "{}", run.transcript);
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "the Konnektor timeout (2 s) bounds the wait: {:?}",
            began.elapsed()
        );
    }
    assert!(bed.cm_running(), "{}", bed.log());
    bed.assert_not_delivered(&to, "stalled-", SETTLE);
}

/// The 25 MB comparison: the same message straight to Postfix and through komle-cm, on the same
/// machine in the same run. Asserts correctness only; the figures are printed.
#[test]
fn large_message_25_mb_through_komle_cm_vs_straight_to_postfix() {
    let bed = TestBed::start();
    let from = sender();
    let to = world().pki.single.address.clone();
    let rcpts = [to.as_str()];
    let pw = password(&from);
    let line = "Befundzeile: Kalium 4,1 mmol/l, Natrium 140 mmol/l, Kreatinin 0,9 mg/dl ....\r\n";
    let filler = line.repeat(25 * 1024 * 1024 / line.len());

    let big = |marker: &str| {
        let mut m = mail(&from, &rcpts, marker);
        m.extend_from_slice(filler.as_bytes());
        m
    };

    // Baseline: curl straight to Postfix, with the C.CM.TLS-CS Postfix requires (A_2074).
    let direct_mail = big("large-direct");
    let direct = Submission {
        server: bed.servers.smtps_addr(),
        ca: bed.servers.ca_pem_path(),
        user: &from,
        password: &pw,
        from: &from,
        rcpts: &rcpts,
    };
    let began = Instant::now();
    let certs = &bed.client_certs;
    let (cert, key) = (
        certs.cert_pem.to_string_lossy(),
        certs.key_pem.to_string_lossy(),
    );
    let run = clients::curl(&direct, &direct_mail, &["--cert", &cert, "--key", &key]);
    let direct_accepted = began.elapsed();
    assert!(run.success, "{}", run.transcript);
    let stored = bed.wait_delivered(&to, "large-direct", 1, Duration::from_secs(120));
    let direct_delivered = began.elapsed();
    assert!(stored[0].len() >= direct_mail.len() - direct_mail.len() / 10);

    // Through komle-cm.
    let cm_mail = big("large-cm");
    let login = bed.login(&from);
    let began = Instant::now();
    let run = clients::curl(&via_cm(&bed, &login, &pw, &from, &rcpts), &cm_mail, &[]);
    let cm_accepted = began.elapsed();
    assert!(run.success, "{}\n{}", run.transcript, bed.log());
    let stored = bed.wait_delivered(&to, "large-cm", 1, Duration::from_secs(180));
    let cm_delivered = began.elapsed();
    let rss = bed.cm_peak_rss_kib();

    let head = header_of(&stored[0]);
    assert!(head.contains("X-KOM-LE-Version: 1.0"), "{head}");
    let opened = open_as(&to, &stored[0]).unwrap_or_else(|e| panic!("opens: {}", e.reason));
    assert!(opened.contains("Kalium 4,1 mmol/l (large-cm)."));
    assert!(opened.contains("X-KIM-DecryptionResult: 00"));
    assert!(opened.contains("X-KIM-IntegrityCheckResult: 01"));
    assert!(
        opened.matches(line.trim_end()).count() >= filler.len() / line.len(),
        "the whole body came through"
    );

    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    eprintln!(
        "25 MB message ({} bytes): straight to Postfix: 250 after {:.2?}, in Maildir after {:.2?}",
        direct_mail.len(),
        direct_accepted,
        direct_delivered
    );
    eprintln!(
        "25 MB message through komle-cm: 250 after {:.2?} ({:.1}x), in Maildir after {:.2?} ({:.1}x); stored {} bytes",
        cm_accepted,
        ratio(cm_accepted, direct_accepted),
        cm_delivered,
        ratio(cm_delivered, direct_delivered),
        stored[0].len()
    );
    eprintln!(
        "komle-cm peak RSS (VmHWM): {} KiB ({:.1}x the message size)",
        rss.map_or("unknown".into(), |r| r.to_string()),
        rss.map_or(0.0, |r| r as f64 * 1024.0 / cm_mail.len() as f64)
    );
}

/// §3.2 + §3.3 round trip through both proxies: a mail sent through komle-cm's SMTP side comes
/// back out of its POP3 side as what the client sent, with the verification note, the result
/// headers and the PDF report (KOM-LE-A_2019, A_2048, A_2050, A_2179).
#[test]
fn kom_le_a_2019_a_2179_sent_through_smtp_comes_back_through_pop3() {
    let bed = TestBed::start_with(Options {
        pop3: true,
        ..Options::default()
    });
    let from = sender();
    let to = world().pki.single.address.clone();
    let marker = "round-trip";
    let run = clients::curl(
        &via_cm(&bed, &bed.login(&from), &password(&from), &from, &[&to]),
        &mail(&from, &[&to], marker),
        &[],
    );
    assert!(run.success, "{}\n{}", run.transcript, bed.log());
    bed.wait_delivered(&to, marker, 1, DELIVERY);
    let pop3 = bed.pop3_addr().expect("POP3 listener");
    let url = format!(
        "pop3s://{}:{}@127.0.0.1:{}/1",
        clients::percent_encode(&bed.pop3_login(&to)),
        clients::percent_encode(&password(&to)),
        pop3.port()
    );
    let out = std::process::Command::new("curl")
        .args(["-sS", "--ssl-reqd", "--max-time", "60", "--cacert"])
        .arg(bed.cm_ca_path())
        .arg("--url")
        .arg(&url)
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = String::from_utf8_lossy(&out.stdout);
    assert!(
        got.contains(&format!("Kalium 4,1 mmol/l ({marker}).")),
        "{got}"
    );
    assert!(got.contains(".Zeile mit Punkt"), "dot line intact: {got}");
    assert!(got.contains(&format!("Subject: Befund {marker}")), "{got}");
    assert!(got.contains("X-KIM-DecryptionResult: 00"), "{got}");
    assert!(got.contains("X-KIM-IntegrityCheckResult: 01"), "{got}");
    assert!(got.contains("Die Nachricht wurde entschl"), "{got}");
    assert!(got.contains("application/pdf"), "{got}");
    // And with Python's poplib, as a desktop client would (USER/PASS, RETR, QUIT).
    let script = r#"
import poplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
ctx.check_hostname = False
p = poplib.POP3_SSL("127.0.0.1", int(sys.argv[2]), context=ctx, timeout=60)
p.user(sys.argv[3]); p.pass_(sys.argv[4])
count, _ = p.stat()
resp, lines, octets = p.retr(1)
sys.stdout.buffer.write(b"\r\n".join(lines))
sys.stdout.buffer.write(b"\r\nCOUNT %d OCTETS %d\r\n" % (count, octets))
p.quit()
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(bed.cm_ca_path())
        .arg(pop3.port().to_string())
        .arg(bed.pop3_login(&to))
        .arg(password(&to))
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = String::from_utf8_lossy(&out.stdout);
    assert!(
        got.contains(&format!("Kalium 4,1 mmol/l ({marker}).")),
        "{got}"
    );
    assert!(got.contains("X-KIM-IntegrityCheckResult: 01"), "{got}");
    assert!(got.contains("COUNT 1 OCTETS"), "{got}");
}
