//! Helpers shared by the `servers_*` test binaries: running real clients (curl, swaks, Python)
//! against a [`MailServers`] instance and capturing what they did.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::Write;
use std::process::{Command, Output, Stdio};

use komle_conformance::servers::{MailServers, User};

pub const ALICE: &str = "alice@a.example";
pub const ALICE_PW: &str = "alice-secret";
pub const BOB: &str = "bob@b.example";
pub const BOB_PW: &str = "bob-secret";

/// Two users in two domains: enough to prove multi-recipient and cross-domain delivery.
pub fn start_two_users() -> MailServers {
    match MailServers::start(&[User::new(ALICE, ALICE_PW), User::new(BOB, BOB_PW)]) {
        Ok(s) => s,
        Err(e) => panic!("mail servers did not start: {e}"),
    }
}

/// Runs `cmd`, feeding `stdin`, and returns its output (never panics on a non-zero exit: tests
/// assert on the status themselves).
pub fn run(mut cmd: Command, stdin: &[u8]) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn client");
    {
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(stdin).expect("write stdin");
    }
    child.wait_with_output().expect("client output")
}

/// Both output streams as text, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A small RFC 5322 message with a unique marker in the subject.
pub fn message(from: &str, to: &[&str], marker: &str) -> Vec<u8> {
    format!(
        "From: <{from}>\r\nTo: {}\r\nSubject: test {marker}\r\nMessage-ID: <{marker}@test.invalid>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHallo {marker}\r\n.leading dot line\r\nend\r\n",
        to.iter().map(|t| format!("<{t}>")).collect::<Vec<_>>().join(", ")
    )
    .into_bytes()
}

/// `curl` sending `msg` over SMTPS with the given login; extra args e.g. `--login-options`.
pub fn curl_send(
    s: &MailServers,
    user: &str,
    password: &str,
    from: &str,
    rcpts: &[&str],
    msg: &[u8],
    extra: &[&str],
) -> Output {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-v", "--ssl-reqd", "--max-time", "60", "--cacert"])
        .arg(s.ca_pem_path())
        .arg(format!("smtps://127.0.0.1:{}", s.smtps_addr().port()))
        .arg("--user")
        .arg(format!("{user}:{password}"))
        .arg("--mail-from")
        .arg(from);
    for r in rcpts {
        cmd.arg("--mail-rcpt").arg(r);
    }
    cmd.args(extra).args(["-T", "-"]);
    run(cmd, msg)
}

/// Runs a Python 3 script given on the command line, with `argv` after it.
pub fn python(script: &str, argv: &[&str], stdin: &[u8]) -> Output {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script).args(argv);
    run(cmd, stdin)
}

/// True when `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The message body as stored by Dovecot/Postfix: bytes after the first blank line.
pub fn body_of(stored: &[u8]) -> &[u8] {
    for (sep, len) in [(&b"\r\n\r\n"[..], 4), (&b"\n\n"[..], 2)] {
        if let Some(i) = stored.windows(sep.len()).position(|w| w == sep) {
            return &stored[i + len..];
        }
    }
    stored
}

/// Bare-LF bytes as CRLF (Dovecot's Maildir stores LF; POP3 and SMTP speak CRLF).
pub fn to_crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 20);
    let mut prev = 0u8;
    for &b in bytes {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}
