//! The `komle-demo` binary as a child process and what it printed about itself.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::binary::{Collected, Running, as_child_user};

/// `komle-demo --port 0` and what it printed about itself.
pub struct Demo {
    pub process: Running,
    pub smtp_port: u16,
    pub login: String,
    pub sender: String,
    pub recipient: String,
    pub ca_pem: PathBuf,
}

/// Starts the demo (as [`child_uid`] when `as_child` is set) and waits until it serves.
pub fn start_demo(as_child: bool) -> Demo {
    let mut command = Command::new(env!("CARGO_BIN_EXE_komle-demo"));
    command
        .args(["--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if as_child {
        as_child_user(&mut command);
    }
    let mut child = command.spawn().expect("start komle-demo");
    let stderr = Collected::start(child.stderr.take().unwrap());
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let process = Running { child, stderr };
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = line.contains("pop3s://");
                lines.push(line);
                if done {
                    break;
                }
            }
            Err(_) => panic!(
                "demo not ready; stdout:\n{}\nstderr:\n{}",
                lines.join("\n"),
                process.stderr.text()
            ),
        }
    }
    let after = |prefix: &str| {
        lines
            .iter()
            .find_map(|l| l.trim_start().strip_prefix(prefix))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| panic!("no {prefix:?} in demo output:\n{}", lines.join("\n")))
    };
    let smtp_port = after("komle-cm SMTP proxy (implicit TLS): 127.0.0.1:")
        .parse()
        .unwrap();
    let login = after("user ");
    let sending = after("1. Sending a mail from ");
    let (sender, rest) = sending.split_once(" to ").unwrap();
    let recipient = rest.split_whitespace().next().unwrap().to_owned();
    let curl = after("curl --ssl-reqd --cacert ");
    let ca_pem = PathBuf::from(curl.split_whitespace().next().unwrap());
    Demo {
        process,
        smtp_port,
        login,
        sender: sender.to_owned(),
        recipient,
        ca_pem,
    }
}
