//! Real mail clients against komle-cm (or straight against Postfix): curl, Python `smtplib`,
//! and a raw Python SMTP-over-TLS dialog for what ordinary clients never do (stop mid-DATA,
//! send an unsupported AUTH mechanism, wait for the test between two commands).
//!
//! Each returns the server's replies as seen on the wire, so tests assert on the codes the
//! user's client got rather than on exit statuses alone.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};

/// What a client run saw.
#[derive(Debug)]
pub struct Run {
    /// Exit status was success.
    pub success: bool,
    /// Every server reply line (`250-…` continuation lines included), in order.
    pub replies: Vec<String>,
    /// Everything the client printed, for assertion messages.
    pub transcript: String,
}

impl Run {
    /// The final line of each reply (no `NNN-` continuation lines).
    pub fn finals(&self) -> Vec<&str> {
        self.replies
            .iter()
            .filter(|l| l.as_bytes().get(3) != Some(&b'-'))
            .map(String::as_str)
            .collect()
    }

    /// The code of each reply, in order.
    pub fn codes(&self) -> Vec<u16> {
        self.finals()
            .iter()
            .filter_map(|l| l.get(..3).and_then(|c| c.parse().ok()))
            .collect()
    }

    /// The last reply's code.
    pub fn last_code(&self) -> Option<u16> {
        self.codes().last().copied()
    }
}

/// One SMTP submission's parameters.
pub struct Submission<'a> {
    pub server: SocketAddr,
    pub ca: &'a Path,
    pub user: &'a str,
    pub password: &'a str,
    pub from: &'a str,
    pub rcpts: &'a [&'a str],
}

/// `curl --ssl-reqd smtps://…` submitting `mail` from stdin (nothing written to disk); `extra`
/// e.g. `["--login-options", "AUTH=LOGIN"]`. Replies are read from curl's `-v` trace.
pub fn curl(s: &Submission<'_>, mail: &[u8], extra: &[&str]) -> Run {
    let mut cmd = Command::new("curl");
    // WHY the credentials go into the URL, percent-encoded, and not into `--user`: curl splits
    // `--user` at the first colon, and KOM-LE login names contain one (`host:port`).
    cmd.args(["-sS", "-v", "--ssl-reqd", "--max-time", "180", "--cacert"])
        .arg(s.ca)
        .arg("--url")
        .arg(format!(
            "smtps://{}:{}@127.0.0.1:{}",
            percent_encode(s.user),
            percent_encode(s.password),
            s.server.port()
        ))
        .arg("--mail-from")
        .arg(s.from);
    for r in s.rcpts {
        cmd.arg("--mail-rcpt").arg(r);
    }
    cmd.args(extra).args(["--upload-file", "-"]);
    let out = run(cmd, mail);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let replies = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("< "))
        .map(str::to_owned)
        .collect();
    Run {
        success: out.status.success(),
        replies,
        transcript: transcript(&out),
    }
}

/// Python `smtplib.SMTP_SSL`: login, `sendmail`; prints each step's reply. Recipients refused
/// at RCPT are reported by `sendmail` (as long as one was accepted) and printed as `550 …`;
/// `SENT` in the transcript means `sendmail` saw the final 250.
pub fn smtplib(s: &Submission<'_>, mail: &[u8]) -> Run {
    const SCRIPT: &str = r#"
import smtplib, ssl, sys
host, port, ca, user, pw, sender = sys.argv[1:7]
rcpts = sys.argv[7:]
mail = sys.stdin.buffer.read()
ctx = ssl.create_default_context(cafile=ca)
def say(code, text):
    if isinstance(text, bytes): text = text.decode('utf-8', 'replace')
    print("REPLY %d %s" % (code, text.replace('\n', ' ')), flush=True)
try:
    s = smtplib.SMTP_SSL(host, int(port), context=ctx, timeout=120)
    say(*s.ehlo())
    say(*s.login(user, pw))
    refused = s.sendmail(sender, rcpts, mail)
    for r, (code, text) in refused.items():
        say(code, text)
    print("SENT", flush=True)
    say(*s.quit())
except smtplib.SMTPRecipientsRefused as e:
    for r, (code, text) in e.recipients.items(): say(code, text)
    sys.exit(3)
except smtplib.SMTPResponseException as e:
    say(e.smtp_code, e.smtp_error)
    sys.exit(2)
"#;
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(SCRIPT)
        .arg("127.0.0.1")
        .arg(s.server.port().to_string())
        .arg(s.ca)
        .arg(s.user)
        .arg(s.password)
        .arg(s.from)
        .args(s.rcpts);
    let out = run(cmd, mail);
    python_run(&out)
}

/// One step of a [`raw`] dialog.
pub enum Step<'a> {
    /// Read one reply (e.g. the greeting).
    Read,
    /// Send a command line (CRLF appended) and read its reply.
    Command(&'a str),
    /// Send bytes as they are, read nothing (part of a DATA section).
    Send(&'a [u8]),
    /// Print `WAITING` and block until the test calls [`RawDialog::resume`].
    Wait,
    /// Close the connection without QUIT.
    Close,
}

/// A raw SMTP-over-TLS dialog run by Python's `ssl` module, controllable from the test.
pub struct RawDialog {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    lines: Vec<String>,
}

const RAW_SCRIPT: &str = r#"
import socket, ssl, sys, base64
host, port, ca = sys.argv[1:4]
steps = sys.argv[4:]
ctx = ssl.create_default_context(cafile=ca)
sock = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=120), server_hostname=host)
f = sock.makefile('rb')
def reply():
    while True:
        line = f.readline()
        if not line:
            print("EOF", flush=True); return False
        print("REPLY " + line.decode('utf-8', 'replace').rstrip('\r\n'), flush=True)
        if line[3:4] != b'-': return True
for step in steps:
    kind, arg = step[0], base64.b64decode(step[1:])
    if kind == 'R':
        if not reply(): break
    elif kind == 'C':
        sock.sendall(arg + b"\r\n")
        if not reply(): break
    elif kind == 'S':
        sock.sendall(arg)
    elif kind == 'W':
        print("WAITING", flush=True)
        sys.stdin.readline()
    elif kind == 'X':
        sock.close()
        print("CLOSED", flush=True)
        break
"#;

impl RawDialog {
    /// Starts the dialog against `server` (implicit TLS, trusting `ca`).
    pub fn start(server: SocketAddr, ca: &Path, steps: &[Step<'_>]) -> RawDialog {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let args: Vec<String> = steps
            .iter()
            .map(|s| match s {
                Step::Read => "R".to_owned(),
                Step::Command(c) => format!("C{}", b64(c.as_bytes())),
                Step::Send(b) => format!("S{}", b64(b)),
                Step::Wait => "W".to_owned(),
                Step::Close => "X".to_owned(),
            })
            .collect();
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(RAW_SCRIPT)
            .arg("127.0.0.1")
            .arg(server.port().to_string())
            .arg(ca)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn python3");
        let stdin = child.stdin.take().expect("python stdin");
        let stdout = BufReader::new(child.stdout.take().expect("python stdout"));
        RawDialog {
            child,
            stdin,
            stdout,
            lines: Vec::new(),
        }
    }

    /// Reads output until the script prints `WAITING`; false when it ended instead.
    pub fn wait_for_pause(&mut self) -> bool {
        loop {
            let mut line = String::new();
            match self.stdout.read_line(&mut line) {
                Ok(0) | Err(_) => return false,
                Ok(_) => {
                    let line = line.trim_end().to_owned();
                    if line == "WAITING" {
                        return true;
                    }
                    self.lines.push(line);
                }
            }
        }
    }

    /// Lets a paused script go on.
    pub fn resume(&mut self) {
        let _ = self.stdin.write_all(b"\n");
        let _ = self.stdin.flush();
    }

    /// Runs the script to its end and returns what it saw.
    pub fn finish(mut self) -> Run {
        loop {
            let mut line = String::new();
            match self.stdout.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = line.trim_end().to_owned();
                    if line == "WAITING" {
                        self.resume();
                    } else {
                        self.lines.push(line);
                    }
                }
            }
        }
        let status = self.child.wait().expect("python3 exit");
        let text = self.lines.join("\n");
        Run {
            success: status.success(),
            replies: self
                .lines
                .iter()
                .filter_map(|l| l.strip_prefix("REPLY "))
                .map(str::to_owned)
                .collect(),
            transcript: text,
        }
    }
}

/// Runs a whole raw dialog without pauses.
pub fn raw(server: SocketAddr, ca: &Path, steps: &[Step<'_>]) -> Run {
    RawDialog::start(server, ca, steps).finish()
}

/// `AUTH PLAIN` initial response for `user`/`password`.
pub fn auth_plain(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let ir = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
    format!("AUTH PLAIN {ir}")
}

/// Percent-encodes everything but unreserved characters (RFC 3986), for URL userinfo.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn python_run(out: &Output) -> Run {
    let stdout = String::from_utf8_lossy(&out.stdout);
    Run {
        success: out.status.success(),
        replies: stdout
            .lines()
            .filter_map(|l| l.strip_prefix("REPLY "))
            .map(str::to_owned)
            .collect(),
        transcript: transcript(out),
    }
}

/// Runs `cmd` feeding `stdin` (from a thread, so a large input cannot deadlock against a full
/// output pipe); never panics on a non-zero exit.
fn run(mut cmd: Command, stdin: &[u8]) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn client");
    let mut input = child.stdin.take().expect("client stdin");
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("client output");
    let _ = feeder.join();
    out
}

fn transcript(out: &Output) -> String {
    format!(
        "status {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
