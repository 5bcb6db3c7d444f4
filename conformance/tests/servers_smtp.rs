//! Postfix SMTPS of the test harness, proven with real clients: curl, swaks and Python smtplib.

mod servers_support;

use std::process::Command;
use std::time::Duration;

use servers_support::*;

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn curl_auth_plain_delivers_to_two_users_in_two_domains() {
    let s = start_two_users();
    let msg = message(ALICE, &[ALICE, BOB], "curl-plain");
    let out = curl_send(&s, ALICE, ALICE_PW, ALICE, &[ALICE, BOB], &msg, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("AUTH PLAIN"),
        "curl must have used AUTH PLAIN: {}",
        text(&out)
    );
    for user in [ALICE, BOB] {
        let mails = s.wait_for_messages(user, 1, WAIT).unwrap_or_else(|e| {
            panic!("{e}\n{}", s.postfix_log_tail());
        });
        assert_eq!(mails.len(), 1, "exactly one message for {user}");
        assert!(contains(&mails[0], b"Subject: test curl-plain"));
        // the body arrives unchanged (Maildir stores LF line ends; dot-stuffing undone)
        assert_eq!(to_crlf(body_of(&mails[0])), body_of(&msg).to_vec());
        // Postfix records the envelope sender; Dovecot adds Delivered-To only for single-recipient
        // LMTP transactions, so it is not asserted here.
        assert!(contains(&mails[0], b"Return-Path: <alice@a.example>"));
    }
}

#[test]
fn curl_auth_login_is_accepted() {
    let s = start_two_users();
    let msg = message(BOB, &[ALICE], "curl-login");
    let out = curl_send(
        &s,
        BOB,
        BOB_PW,
        BOB,
        &[ALICE],
        &msg,
        &["--login-options", "AUTH=LOGIN"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("AUTH LOGIN"),
        "curl must have used AUTH LOGIN: {log}"
    );
    assert!(log.contains("235"), "authentication must succeed: {log}");
    let mails = s.wait_for_messages(ALICE, 1, WAIT).expect("delivered");
    assert!(contains(&mails[0], b"Subject: test curl-login"));
}

#[test]
fn wrong_password_is_refused_with_535_and_nothing_is_delivered() {
    let s = start_two_users();
    let msg = message(ALICE, &[BOB], "wrong-pw");
    let out = curl_send(&s, ALICE, "not-the-password", ALICE, &[BOB], &msg, &[]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("< 535"),
        "expected 535: {}",
        text(&out)
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.maildir_messages(BOB).expect("read maildir").len(), 0);
}

#[test]
fn relay_to_foreign_domain_without_auth_is_refused() {
    let s = start_two_users();
    let script = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
with smtplib.SMTP_SSL("127.0.0.1", int(sys.argv[2]), context=ctx, timeout=30) as c:
    c.ehlo("client.test")
    print("MAIL", c.mail("someone@outside.example"))
    print("RCPT", c.rcpt("victim@elsewhere.example"))
"#;
    let port = s.smtps_addr().port().to_string();
    let ca = s.ca_pem_path().to_str().expect("utf-8 path").to_string();
    let out = python(script, &[&ca, &port], b"");
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rcpt = stdout.lines().find(|l| l.starts_with("RCPT")).unwrap_or("");
    assert!(
        rcpt.contains("(554") || rcpt.contains("(454"),
        "relay must be refused: {stdout}"
    );
    assert!(rcpt.contains("Relay access denied"), "{stdout}");
}

#[test]
fn authenticated_user_may_not_send_to_unknown_local_mailbox() {
    let s = start_two_users();
    let msg = message(ALICE, &["nobody@b.example"], "unknown-user");
    let out = curl_send(&s, ALICE, ALICE_PW, ALICE, &["nobody@b.example"], &msg, &[]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("< 550"),
        "{}",
        text(&out)
    );
}

/// True when swaks can do TLS itself (it needs Perl's Net::SSLeay, Debian `libnet-ssleay-perl`).
fn swaks_has_tls() -> bool {
    Command::new("perl")
        .args(["-MNet::SSLeay", "-e1"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn swaks_implicit_tls_delivers() {
    let s = start_two_users();
    let port = s.smtps_addr().port().to_string();
    let mut cmd = Command::new("swaks");
    if swaks_has_tls() {
        cmd.args(["--server", "127.0.0.1", "--port", &port])
            .args(["--tls-on-connect", "--tls-verify", "--tls-ca-path"])
            .arg(s.ca_pem_path());
    } else {
        // Without Net::SSLeay swaks cannot speak TLS itself; it then talks SMTP through an
        // `openssl s_client` pipe that does the implicit TLS and verifies the test CA.
        let ca = s.ca_pem_path().to_str().expect("utf-8 path");
        cmd.arg("--pipe").arg(format!(
            "openssl s_client -quiet -verify_return_error -verify_hostname localhost \
             -CAfile {ca} -connect 127.0.0.1:{port}"
        ));
    }
    cmd.args([
        "--auth",
        "PLAIN",
        "--auth-user",
        BOB,
        "--auth-password",
        BOB_PW,
    ])
    .args(["--from", BOB, "--to", ALICE])
    .args([
        "--header",
        "Subject: test swaks",
        "--body",
        "hello from swaks",
    ])
    .args(["--timeout", "30"]);
    let out = run(cmd, b"");
    assert!(out.status.success(), "{}", text(&out));
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(
        transcript.contains("235 "),
        "AUTH must succeed: {transcript}"
    );
    let mails = s.wait_for_messages(ALICE, 1, WAIT).expect("delivered");
    assert!(contains(&mails[0], b"Subject: test swaks"));
    assert!(contains(&mails[0], b"hello from swaks"));
}

#[test]
fn python_smtplib_smtp_ssl_verifies_the_ca_and_delivers() {
    let s = start_two_users();
    let script = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
msg = sys.stdin.buffer.read()
with smtplib.SMTP_SSL("127.0.0.1", int(sys.argv[2]), context=ctx, timeout=30) as c:
    c.login(sys.argv[3], sys.argv[4])
    refused = c.sendmail(sys.argv[3], sys.argv[5:], msg)
    print("refused", refused)
"#;
    let port = s.smtps_addr().port().to_string();
    let ca = s.ca_pem_path().to_str().expect("utf-8 path").to_string();
    let msg = message(ALICE, &[ALICE, BOB], "smtplib");
    let out = python(script, &[&ca, &port, ALICE, ALICE_PW, ALICE, BOB], &msg);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out),
        s.dovecot_log_tail()
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("refused {}"),
        "{}",
        text(&out)
    );
    for user in [ALICE, BOB] {
        let mails = s.wait_for_messages(user, 1, WAIT).expect("delivered");
        assert_eq!(to_crlf(body_of(&mails[0])), body_of(&msg).to_vec());
    }
}

#[test]
fn client_without_the_test_ca_rejects_the_certificate() {
    let s = start_two_users();
    // curl's default trust store does not contain the per-instance test CA.
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--ssl-reqd", "--max-time", "20"])
        .arg(format!("smtps://127.0.0.1:{}", s.smtps_addr().port()));
    let out = run(cmd, b"");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("certificate"),
        "{}",
        text(&out)
    );
}

#[test]
fn ehlo_advertises_auth_only_with_plain_and_login_and_a_size_above_40_mb() {
    let s = start_two_users();
    let script = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
with smtplib.SMTP_SSL("localhost", int(sys.argv[2]), context=ctx, timeout=30) as c:
    c.ehlo("client.test")
    print("AUTH=" + c.esmtp_features.get("auth", ""))
    print("SIZE=" + c.esmtp_features.get("size", ""))
"#;
    let port = s.smtps_addr().port().to_string();
    let ca = s.ca_pem_path().to_str().expect("utf-8 path").to_string();
    let out = python(script, &[&ca, &port], b"");
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let auth = stdout
        .lines()
        .find_map(|l| l.strip_prefix("AUTH="))
        .unwrap_or("");
    let mut mechs: Vec<&str> = auth.split_whitespace().collect();
    mechs.sort_unstable();
    assert_eq!(mechs, vec!["LOGIN", "PLAIN"], "{stdout}");
    let size: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("SIZE="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        size >= 40 * 1000 * 1000 * 4 / 3,
        "SIZE {size} too small for 40 MB S/MIME"
    );
}

#[test]
fn authenticated_mail_to_an_outside_domain_is_refused_at_rcpt_not_relayed() {
    let s = start_two_users();
    let msg = message(ALICE, &["someone@outside.example"], "outside");
    let out = curl_send(
        &s,
        ALICE,
        ALICE_PW,
        ALICE,
        &["someone@outside.example"],
        &msg,
        &[],
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("< 235"), "AUTH succeeded: {log}");
    // Relaying is permitted after AUTH, but the harness has no outside world: the `error`
    // transport makes Postfix refuse such recipients at once (no DNS, no queued retries).
    assert!(!out.status.success(), "{}", text(&out));
    assert!(log.contains("< 550"), "{log}");
    assert!(
        log.contains("external delivery is disabled in tests"),
        "{log}"
    );
    assert!(!log.contains("Relay access denied"), "{log}");
}
