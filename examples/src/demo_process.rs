//! `komle-demo` as a child process for the load tools: started from the binary next to the
//! running tool, its addresses and login read from the lines it prints at start.
//!
//! WHY a child process: its memory (`/proc/PID/status`) is then the demo's own, not mixed with
//! the load generator's buffers.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// A running `komle-demo`; killed on Drop.
pub struct DemoProcess {
    pub child: Child,
    /// komle-cm's SMTP proxy (implicit TLS).
    pub proxy: SocketAddr,
    /// The demo's mail service (SMTPS): the straight baseline.
    pub mta: SocketAddr,
    /// The login name for the proxy (`address#host:port#...`).
    pub login: String,
    /// The sender's address (the login's first field).
    pub sender: String,
    /// The first recipient the demo names (has a usable certificate; with `--kas` also the
    /// large-message opt-in).
    pub rcpt: String,
    /// The protocol-floor relay, when started with `--floor-relay`.
    pub floor: Option<SocketAddr>,
}

impl Drop for DemoProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why the demo could not be started or read.
#[derive(Debug)]
pub struct DemoStartError(pub String);

impl std::fmt::Display for DemoStartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl DemoProcess {
    /// Starts `komle-demo --port 0` plus `args` from the directory of the running `tool`
    /// binary and waits for its "Try it yourself" block (at most 200 lines).
    ///
    /// # Errors
    /// The binary is missing, does not start, or does not print its addresses.
    pub fn start(tool: &str, args: &[&str]) -> Result<DemoProcess, DemoStartError> {
        let cm = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("komle-demo")))
            .filter(|p| p.exists())
            .ok_or_else(|| {
                DemoStartError(format!(
                    "komle-demo not found next to {tool}: build -p komle-demo too"
                ))
            })?;
        let mut child = Command::new(&cm)
            .args(["--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| DemoStartError(format!("cannot start {}: {e}", cm.display())))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            return Err(DemoStartError("no stdout from komle-demo".into()));
        };
        let (mut proxy, mut mta, mut login, mut rcpt, mut floor) = (None, None, None, None, None);
        for line in BufReader::new(stdout)
            .lines()
            .take(200)
            .map_while(Result::ok)
        {
            let field = |prefix: &str| {
                line.trim()
                    .strip_prefix(prefix)
                    .map(|v| v.trim().to_owned())
            };
            if let Some(v) = field("Mail service (SMTPS):") {
                mta = v.parse::<SocketAddr>().ok();
            }
            if let Some(v) = field("komle-cm SMTP proxy (implicit TLS):") {
                proxy = v.parse::<SocketAddr>().ok();
            }
            if let Some(v) = field("Protocol floor relay (benchmarks only):") {
                floor = v.parse::<SocketAddr>().ok();
            }
            if let Some(v) = field("user") {
                login = Some(v);
            }
            if let Some(v) = field("recipients") {
                rcpt = v.split(',').next().map(|s| s.trim().to_owned());
            }
            if line.contains("curl --ssl-reqd") {
                break;
            }
        }
        let (Some(proxy), Some(mta), Some(login), Some(rcpt)) = (proxy, mta, login, rcpt) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(DemoStartError("could not read the demo's addresses".into()));
        };
        let sender = login.split('#').next().unwrap_or_default().to_owned();
        Ok(DemoProcess {
            child,
            proxy,
            mta,
            login,
            sender,
            rcpt,
            floor,
        })
    }

    /// The demo's process id (for `/proc/PID/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}
