//! HAProxy for the scale-out test: round-robin TCP load balancing with `send-proxy-v2` in
//! front of several Clientmodule, the topology gematik recommends (README.md, "Scale out").
//!
//! WHY a complete config of our own (`haproxy -db -f FILE`): nothing from `/etc/haproxy` is
//! read, HAProxy stays in the foreground in its own process group (stopped with the group, never
//! by name) and logs to stdout, which goes to a file in its temp dir. The temp dir carries the
//! harness prefix and a record file, so an instance whose test died is reaped by the next start
//! like Postfix and Dovecot ([`super::stale`]).
//!
//! What the configuration does and why:
//! - `balance roundrobin` over every backend, each with `send-proxy-v2` (the client's address
//!   reaches komle-cm's logs, `[smtp] proxy_protocol = true`);
//! - `check inter 300ms fall 1`: a plain TCP connect check marks an instance that stopped
//!   listening down within a fraction of a second;
//! - `retries 3` with `option redispatch 1`: a connection to an instance that refuses (stopped,
//!   not yet marked down) is retried on another one, so clients see no error;
//! - a second frontend on [`Haproxy::ready_addr`] that rejects every connection: HAProxy binds
//!   all listeners at once, so the harness probes readiness there without creating a
//!   connection to any backend.
//!
//! Requirement: the Debian package `haproxy`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::error::{Result, ServerError, log_tail};
use super::process::{ServerProcess, free_port, tcp_accepts};
use super::stale;

/// How long HAProxy may take to bind its listeners.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// How often a start is retried when a chosen port was taken in between.
const START_ATTEMPTS: usize = 3;

/// A running HAProxy in its own temp dir; dropping it stops its process group and removes the
/// directory.
#[derive(Debug)]
pub struct Haproxy {
    // Field order is drop order: the process first, the temp dir last.
    process: ServerProcess,
    frontend: SocketAddr,
    ready: SocketAddr,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl Haproxy {
    /// Starts HAProxy balancing round-robin over `backends` with PROXY protocol v2; returns once
    /// it listens on [`Haproxy::addr`].
    pub fn start(backends: &[SocketAddr]) -> Result<Haproxy> {
        if backends.is_empty() {
            return Err(ServerError::InvalidInput("at least one backend".into()));
        }
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            match Self::start_once(backends) {
                Ok(h) => return Ok(h),
                Err(e) if port_clash(&e) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| ServerError::InvalidInput("no start attempt made".into())))
    }

    fn start_once(backends: &[SocketAddr]) -> Result<Haproxy> {
        stale::reap_stale();
        let dir = tempfile::Builder::new()
            .prefix(stale::DIR_PREFIX)
            .tempdir()
            .map_err(ServerError::io("creating temp dir"))?;
        let frontend = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        let mut ready = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        while ready == frontend {
            ready = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        }
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, config(frontend, ready, backends))
            .map_err(ServerError::io_path("writing", &cfg))?;
        let log = dir.path().join("haproxy.log");
        let mut cmd = Command::new("haproxy");
        cmd.arg("-db").arg("-f").arg(&cfg);
        stale::record(dir.path(), &[])?;
        let mut process = ServerProcess::spawn("haproxy", cmd, &log, Vec::new())?;
        stale::record(dir.path(), &[process.pgid()])?;
        process.wait_until("listeners", READY_TIMEOUT, || tcp_accepts(ready))?;
        Ok(Haproxy {
            process,
            frontend,
            ready,
            log,
            dir,
        })
    }

    /// Where clients connect (round-robin to the backends).
    pub fn addr(&self) -> SocketAddr {
        self.frontend
    }

    /// The probe listener that rejects every connection (readiness only).
    pub fn ready_addr(&self) -> SocketAddr {
        self.ready
    }

    /// HAProxy's log so far (one `tcplog` line per connection: client, backend, bytes).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the log, for assertion messages.
    pub fn log_tail(&self) -> String {
        log_tail(std::slice::from_ref(&self.log), 40)
    }

    /// The temp dir holding the configuration and the log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// HAProxy's process group (for leak checks).
    pub fn pgid(&self) -> i32 {
        self.process.pgid()
    }

    /// Stops HAProxy (the whole process group). Idempotent; also done on drop.
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

/// The complete `haproxy.cfg`.
pub fn config(frontend: SocketAddr, ready: SocketAddr, backends: &[SocketAddr]) -> String {
    let mut text = format!(
        "# generated by komle-conformance::servers::haproxy: one instance per test
global
    log stdout format raw local0 info
    maxconn 512

defaults
    mode tcp
    log global
    option tcplog
    timeout connect 2s
    timeout client 2m
    timeout server 2m
    retries 3
    option redispatch 1

frontend ready
    bind {ready}
    tcp-request connection reject

frontend clients
    bind {frontend}
    default_backend clientmodule

backend clientmodule
    balance roundrobin
"
    );
    for (i, b) in backends.iter().enumerate() {
        text.push_str(&format!(
            "    server cm{} {b} send-proxy-v2 check inter 300ms fall 1 rise 2\n",
            i + 1
        ));
    }
    text
}

fn port_clash(e: &ServerError) -> bool {
    match e {
        ServerError::NotReady {
            reason, log_tail, ..
        } => {
            let text = format!("{reason}\n{log_tail}");
            text.contains("in use") || text.contains("cannot bind")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_balances_round_robin_with_proxy_v2_to_every_backend() {
        let a: SocketAddr = "127.0.0.1:4001".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:4002".parse().unwrap();
        let text = config(
            "127.0.0.1:5000".parse().unwrap(),
            "127.0.0.1:5001".parse().unwrap(),
            &[a, b],
        );
        assert!(text.contains("balance roundrobin"));
        assert!(text.contains("server cm1 127.0.0.1:4001 send-proxy-v2 check"));
        assert!(text.contains("server cm2 127.0.0.1:4002 send-proxy-v2 check"));
        assert!(text.contains("bind 127.0.0.1:5000"));
        assert!(text.contains("option redispatch"));
    }
}
