//! The demo's "try it yourself" works exactly as printed (issue 18): the curl command it prints
//! sends a mail through the SMTP proxy with nothing to create first, the mail shows up in the
//! demo's POP3 maildrop and opens through the POP3 proxy, and Ctrl-C (SIGINT) ends the demo
//! cleanly, removing the CA file it wrote.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn printed_commands_work_as_printed_and_ctrl_c_cleans_up() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_komle-demo"))
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("komle-demo starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    // Everything up to the POP3 hint is the "try it yourself" block.
    for line in lines.by_ref() {
        let line = line.expect("demo output");
        let done = line.contains("shows up here as message");
        printed.push(line);
        if done || Instant::now() > deadline {
            break;
        }
    }
    let text = printed.join("\n");
    assert!(text.contains("Ctrl-C to stop"), "{text}");

    // The SMTP command: from the `curl ... smtps://` line through the here-document's end.
    let start = printed
        .iter()
        .position(|l| l.trim_start().starts_with("curl") && l.contains("smtps://"))
        .unwrap_or_else(|| panic!("no smtps curl line in:\n{text}"));
    let end = start
        + printed[start..]
            .iter()
            .position(|l| l == "MAIL")
            .unwrap_or_else(|| panic!("no here-document end in:\n{text}"));
    let send = printed[start..=end].join("\n");
    let run = Command::new("bash").arg("-c").arg(&send).output().unwrap();
    assert!(
        run.status.success(),
        "the printed SMTP command failed: {send}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );

    // The POP3 command as printed fetches message 1 (the demo's own); the hand-sent mail is
    // message 2, as the demo says. It is handed to the maildrop within a moment.
    let fetch = printed
        .iter()
        .find(|l| l.trim_start().starts_with("curl") && l.contains("pop3s://"))
        .unwrap_or_else(|| panic!("no pop3s curl line in:\n{text}"));
    let first = Command::new("bash").arg("-c").arg(fetch).output().unwrap();
    assert!(first.status.success(), "printed POP3 command failed");
    assert!(
        String::from_utf8_lossy(&first.stdout).contains("Demo-Nachricht"),
        "message 1 is the demo's"
    );
    let second_cmd = fetch.replace("/1'", "/2'");
    let mut second = String::new();
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        let out = Command::new("bash")
            .arg("-c")
            .arg(&second_cmd)
            .output()
            .unwrap();
        second = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        second.contains("Diese Nachricht wurde mit curl gesendet."),
        "the hand-sent mail opens through the POP3 proxy: {second}"
    );
    assert!(second.contains("X-KIM-DecryptionResult: 00"), "{second}");
    assert!(
        second.contains("X-KIM-IntegrityCheckResult: 01"),
        "{second}"
    );

    // Ctrl-C: the demo says so, exits 0 and leaves no CA file behind.
    let ca = fetch
        .split_whitespace()
        .skip_while(|w| *w != "--cacert")
        .nth(1)
        .expect("--cacert path")
        .to_owned();
    assert!(std::path::Path::new(&ca).exists(), "{ca} while serving");
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit after SIGINT: {status}");
    assert!(rest.iter().any(|l| l == "Stopped."), "{rest:?}");
    assert!(!std::path::Path::new(&ca).exists(), "{ca} left behind");
}
