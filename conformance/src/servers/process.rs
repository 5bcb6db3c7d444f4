//! A server process started in its own process group and killed with the whole group on drop.
//!
//! WHY process groups: Postfix's `master` and Dovecot's `dovecot` fork many helpers (smtpd, qmgr,
//! lmtp, auth, …). Killing only the parent can leave helpers holding ports and sockets, which
//! breaks the next test and leaks processes on CI. Each server is spawned with
//! `process_group(0)`, so its pid is also its group id, and `kill(-pgid, …)` reaches every helper.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::error::{Result, ServerError, log_tail};

/// How long a group gets to exit after SIGTERM before it is SIGKILLed.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// A running server: the group leader, its name for messages, and its log files for diagnostics.
#[derive(Debug)]
pub struct ServerProcess {
    name: &'static str,
    child: Option<Child>,
    pgid: i32,
    logs: Vec<PathBuf>,
}

impl ServerProcess {
    /// Spawns `cmd` as the leader of a new process group; stdout/stderr go to `console_log`.
    /// `logs` are the files whose tails are shown when the server fails (console log included).
    pub fn spawn(
        name: &'static str,
        mut cmd: Command,
        console_log: &Path,
        mut logs: Vec<PathBuf>,
    ) -> Result<ServerProcess> {
        let out =
            File::create(console_log).map_err(ServerError::io_path("creating", console_log))?;
        let err = out
            .try_clone()
            .map_err(ServerError::io_path("duplicating", console_log))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(ServerError::io(format!("spawning {name}")))?;
        let pgid = i32::try_from(child.id()).map_err(|_| ServerError::NotReady {
            server: name,
            reason: "pid out of range".into(),
            log_tail: String::new(),
        })?;
        logs.insert(0, console_log.to_path_buf());
        Ok(ServerProcess {
            name,
            child: Some(child),
            pgid,
            logs,
        })
    }

    /// The process group id (= pid of the leader); lets tests check with `pgrep -g` that nothing
    /// is left after [`ServerProcess::stop`].
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// The tails of this server's logs, for error messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.logs, 40)
    }

    /// An error saying this server is not ready, with its log tail attached.
    pub fn not_ready(&self, reason: impl Into<String>) -> ServerError {
        ServerError::NotReady {
            server: self.name,
            reason: reason.into(),
            log_tail: self.log_tail(),
        }
    }

    /// Polls `probe` every 20 ms until it returns true, the leader exits, or `timeout` elapses.
    /// WHY polling: a fixed sleep is either too long (slow suites) or too short (flaky suites).
    pub fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut() -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if probe() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(self.not_ready(format!("exited with {status} before {what}")));
            }
            if Instant::now() >= deadline {
                return Err(self.not_ready(format!("no {what} within {timeout:?}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the whole group: SIGTERM, wait up to 5 s for the leader, then SIGKILL the group and
    /// wait until no member is left. Idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal_group(self.pgid, libc::SIGTERM);
        let deadline = Instant::now() + TERM_GRACE;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Helpers that outlive the leader (or a leader ignoring SIGTERM) are killed for sure.
        signal_group(self.pgid, libc::SIGKILL);
        let _ = child.wait();
        let deadline = Instant::now() + TERM_GRACE;
        while group_alive(self.pgid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal_group(pgid: i32, sig: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) with a negative pid only sends a signal; no memory is touched.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// True while any process (zombies included) is still in the group.
pub fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence/permission.
    pgid > 1 && unsafe { libc::kill(-pgid, 0) } == 0
}

/// A currently free TCP port on 127.0.0.1. The port is released before returning, so another
/// process may grab it: callers retry the whole start on "address in use".
pub fn free_port() -> Result<u16> {
    let l = bind_outside_ephemeral_range().map_err(ServerError::io("binding a free port"))?;
    let port = l
        .local_addr()
        .map_err(ServerError::io("reading a bound port"))?
        .port();
    Ok(port)
}

/// Ports handed to test servers come from below the kernel's ephemeral range (Linux default
/// 32768-60999).
///
/// WHY: a port found by binding port 0 is an *ephemeral* port; between releasing it and the
/// server binding it, any outgoing connection of a parallel test (curl, the proxy's MTA or LDAP
/// connection) may be given the same port as its local end, and the server then fails to bind
/// ("connection refused" in the test). Ports below the range are never given to outgoing
/// connections, so only another test's server could take one; the pick is spread by pid and a
/// counter so parallel test binaries rarely try the same one, and a port in use is skipped.
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;

fn bind_outside_ephemeral_range() -> std::io::Result<TcpListener> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = u32::from(TEST_PORTS.end - TEST_PORTS.start);
    let seed = std::process::id().wrapping_mul(7919);
    let mut last_err = None;
    for _ in 0..200 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let offset = seed.wrapping_add(n.wrapping_mul(104_729)) % span;
        let port = TEST_PORTS.start + offset as u16;
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => return Ok(l),
            Err(e) => last_err = Some(e),
        }
    }
    // Everything tried was taken: fall back to the kernel's choice rather than fail the test.
    TcpListener::bind("127.0.0.1:0").map_err(|e| last_err.unwrap_or(e))
}

/// True when something accepts TCP connections on `addr`.
pub fn tcp_accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// True when something accepts connections on the unix socket at `path`.
pub fn unix_accepts(path: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(path).is_ok()
}
