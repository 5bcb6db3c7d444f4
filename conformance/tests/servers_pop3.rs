//! Dovecot POP3S of the test harness, proven with real clients: Python poplib and curl.

mod servers_support;

use std::process::Command;
use std::time::Duration;

use servers_support::*;

/// Python script: log in, print STAT, then dump each message's RETR bytes (CRLF-joined lines,
/// dot-unstuffed by poplib) to files named by argv[5] + index.
const POPLIB_RETR_ALL: &str = r#"
import poplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
p = poplib.POP3_SSL("127.0.0.1", int(sys.argv[2]), context=ctx, timeout=30)
p.user(sys.argv[3]); p.pass_(sys.argv[4])
count, size = p.stat()
print("STAT", count, size)
for i in range(1, count + 1):
    resp, lines, octets = p.retr(i)
    with open(sys.argv[5] + str(i), "wb") as f:
        f.write(b"\r\n".join(lines) + b"\r\n")
p.quit()
"#;

fn ca_and_port(s: &komle_conformance::servers::MailServers) -> (String, String) {
    (
        s.ca_pem_path().to_str().expect("utf-8 path").to_string(),
        s.pop3s_addr().port().to_string(),
    )
}

#[test]
fn poplib_retrieves_directly_delivered_messages_byte_for_byte() {
    let s = start_two_users();
    let first = message(BOB, &[ALICE], "pop-one");
    // Second message: binary-ish header value, long line and a line that is just a dot.
    let mut second = message(BOB, &[ALICE], "pop-two");
    second.extend_from_slice(b"X\r\n.\r\n");
    second.extend_from_slice(&[b'a'; 1500]);
    second.extend_from_slice(b"\r\n");
    s.deliver_direct(ALICE, &first).expect("deliver first");
    s.deliver_direct(ALICE, &second).expect("deliver second");

    let out_dir = tempfile::tempdir().expect("tempdir");
    let prefix = out_dir
        .path()
        .join("m")
        .to_str()
        .expect("utf-8")
        .to_string();
    let (ca, port) = ca_and_port(&s);
    let out = python(
        POPLIB_RETR_ALL,
        &[&ca, &port, ALICE, ALICE_PW, &prefix],
        b"",
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out),
        s.dovecot_log_tail()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let expected_size = first.len() + second.len();
    assert!(
        stdout.contains(&format!("STAT 2 {expected_size}")),
        "STAT must count both messages with their CRLF sizes: {stdout}"
    );
    for (i, original) in [first, second].iter().enumerate() {
        let got = std::fs::read(format!("{prefix}{}", i + 1)).expect("retrieved file");
        assert_eq!(
            &got,
            original,
            "message {} must come back byte-for-byte",
            i + 1
        );
    }
}

#[test]
fn poplib_retrieves_mail_sent_through_postfix_as_stored_in_the_maildir() {
    let s = start_two_users();
    let msg = message(ALICE, &[BOB], "smtp-then-pop");
    let out = curl_send(&s, ALICE, ALICE_PW, ALICE, &[BOB], &msg, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let stored = s
        .wait_for_messages(BOB, 1, Duration::from_secs(20))
        .expect("delivered");

    let out_dir = tempfile::tempdir().expect("tempdir");
    let prefix = out_dir
        .path()
        .join("m")
        .to_str()
        .expect("utf-8")
        .to_string();
    let (ca, port) = ca_and_port(&s);
    let out = python(POPLIB_RETR_ALL, &[&ca, &port, BOB, BOB_PW, &prefix], b"");
    assert!(out.status.success(), "{}", text(&out));
    let got = std::fs::read(format!("{prefix}1")).expect("retrieved");
    assert_eq!(
        got,
        to_crlf(&stored[0]),
        "POP3 serves the Maildir file (CRLF line ends)"
    );
    assert!(contains(&got, b"Subject: test smtp-then-pop"));
}

#[test]
fn curl_pop3s_lists_and_retrieves() {
    let s = start_two_users();
    let msg = message(ALICE, &[BOB], "curl-pop");
    s.deliver_lmtp(BOB, &msg).expect("LMTP delivery");
    let stored = s.maildir_messages(BOB).expect("maildir");
    assert_eq!(stored.len(), 1);
    assert!(
        contains(&stored[0], b"Delivered-To: bob@b.example"),
        "LMTP adds Delivered-To"
    );

    let url = format!("pop3s://127.0.0.1:{}/", s.pop3s_addr().port());
    let curl = |path: &str| {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--ssl-reqd", "--max-time", "30", "--cacert"])
            .arg(s.ca_pem_path())
            .arg("--user")
            .arg(format!("{BOB}:{BOB_PW}"))
            .arg(format!("{url}{path}"));
        run(cmd, b"")
    };
    let list = curl("");
    assert!(list.status.success(), "{}", text(&list));
    let expected_size = to_crlf(&stored[0]).len();
    assert_eq!(
        String::from_utf8_lossy(&list.stdout).trim(),
        format!("1 {expected_size}"),
        "LIST shows one message with its CRLF size"
    );
    let retr = curl("1");
    assert!(retr.status.success(), "{}", text(&retr));
    assert_eq!(retr.stdout, to_crlf(&stored[0]), "RETR is byte-correct");
}

#[test]
fn wrong_password_gets_err_from_poplib_and_curl() {
    let s = start_two_users();
    let script = r#"
import poplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
p = poplib.POP3_SSL("127.0.0.1", int(sys.argv[2]), context=ctx, timeout=30)
p.user(sys.argv[3])
try:
    p.pass_("wrong")
    print("LOGGED-IN")
except poplib.error_proto as e:
    print("REFUSED", e)
"#;
    let (ca, port) = ca_and_port(&s);
    let out = python(script, &[&ca, &port, ALICE], b"");
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("REFUSED b'-ERR"), "{stdout}");

    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--ssl-reqd", "--max-time", "30", "--cacert"])
        .arg(s.ca_pem_path())
        .arg("--user")
        .arg(format!("{ALICE}:wrong"))
        .arg(format!("pop3s://127.0.0.1:{port}/"));
    let out = run(cmd, b"");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Login denied"),
        "{}",
        text(&out)
    );
}

#[test]
fn dele_removes_only_the_chosen_message() {
    let s = start_two_users();
    for marker in ["keep-1", "delete-me", "keep-3"] {
        s.deliver_direct(ALICE, &message(BOB, &[ALICE], marker))
            .expect("deliver");
    }
    s.deliver_direct(BOB, &message(ALICE, &[BOB], "other-user"))
        .expect("deliver");
    let script = r#"
import poplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
p = poplib.POP3_SSL("127.0.0.1", int(sys.argv[2]), context=ctx, timeout=30)
p.user(sys.argv[3]); p.pass_(sys.argv[4])
for i in range(1, p.stat()[0] + 1):
    if any(b"delete-me" in l for l in p.retr(i)[1]):
        print("DELE", i, p.dele(i))
p.quit()
"#;
    let (ca, port) = ca_and_port(&s);
    let out = python(script, &[&ca, &port, ALICE, ALICE_PW], b"");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("DELE 2 b'+OK"),
        "{}",
        text(&out)
    );
    let left = s.maildir_messages(ALICE).expect("maildir");
    assert_eq!(left.len(), 2, "one of three deleted");
    assert!(contains(&left[0], b"keep-1") && contains(&left[1], b"keep-3"));
    assert_eq!(
        s.maildir_messages(BOB).expect("maildir").len(),
        1,
        "other user untouched"
    );
}

#[test]
fn plaintext_pop3_is_not_offered() {
    let s = start_two_users();
    // Speaking plain POP3 to the implicit-TLS port must not yield a POP3 greeting.
    let script = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
try:
    data = s.recv(100)
except socket.timeout:
    data = b""
print(repr(data))
"#;
    let out = python(script, &[&s.pop3s_addr().port().to_string()], b"");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("+OK"),
        "{}",
        text(&out)
    );
}

#[test]
fn sasl_auth_plain_login_works_and_bare_lf_mail_is_served_as_crlf() {
    let s = start_two_users();
    let lf_message = b"From: <bob@b.example>\nSubject: lf only\n\nline one\n.dot line\n";
    s.deliver_direct(ALICE, lf_message).expect("deliver");
    // POP3 SASL PLAIN (RFC 5034), as the Clientmodul's POP3 client may use (A_2035).
    let script = r#"
import poplib, ssl, sys, base64
ctx = ssl.create_default_context(cafile=sys.argv[1])
p = poplib.POP3_SSL("127.0.0.1", int(sys.argv[2]), context=ctx, timeout=30)
token = base64.b64encode(b"\0" + sys.argv[3].encode() + b"\0" + sys.argv[4].encode()).decode()
print("AUTH", p._shortcmd("AUTH PLAIN " + token))
resp, lines, octets = p.retr(1)
sys.stdout.flush()
sys.stdout.buffer.write(b"\r\n".join(lines) + b"\r\n")
p.quit()
"#;
    let (ca, port) = ca_and_port(&s);
    let out = python(script, &[&ca, &port, ALICE, ALICE_PW], b"");
    assert!(out.status.success(), "{}", text(&out));
    let stdout = out.stdout.clone();
    let (first, rest) = stdout.split_at(
        stdout
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| i + 1)
            .unwrap_or(0),
    );
    assert!(
        String::from_utf8_lossy(first).starts_with("AUTH b'+OK"),
        "{}",
        text(&out)
    );
    assert_eq!(
        rest,
        to_crlf(lf_message),
        "bare LF served as CRLF, dot line intact"
    );
}
