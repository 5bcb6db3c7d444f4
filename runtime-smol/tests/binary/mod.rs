//! Starting real binaries for signal and process-hardening tests, and looking at them from
//! outside (`/proc/<pid>/…`). Shared by `komle-smol`'s tests (the daemon `komle-cm`, see
//! `daemon_bed`) and `komle-demo`'s (the demo binary), so it names no binary itself.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A blocking TLS client, line-buffered.
pub type Client = BufReader<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>;

/// The uid children run as: `nobody` when the tests run as root, because a process's
/// `/proc/<pid>` files belong to its own uid while it is dumpable and to root when it is not —
/// the outside observation of PR_SET_DUMPABLE, which only works for a non-root child.
pub fn child_uid() -> u32 {
    let me = rustix::process::getuid().as_raw();
    if me == 0 { 65534 } else { me }
}

/// Runs `command` as [`child_uid`] (and its group) when we are root.
pub fn as_child_user(command: &mut Command) -> &mut Command {
    if rustix::process::getuid().is_root() {
        command.uid(65534).gid(65534);
    }
    command
}

/// Lets children inherit a core limit above 0 (a shell's `ulimit -c 0` would otherwise make
/// "the daemon set it to 0" unobservable).
pub fn raise_own_core_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let hard = getrlimit(Resource::Core).maximum;
    let _ = setrlimit(
        Resource::Core,
        Rlimit {
            current: hard,
            maximum: hard,
        },
    );
}

/// Owner uid of `/proc/<pid>/status`.
pub fn proc_owner(pid: u32) -> u32 {
    std::fs::metadata(format!("/proc/{pid}/status"))
        .expect("process alive")
        .uid()
}

/// Real uid the process runs as (`Uid:` in `/proc/<pid>/status`).
pub fn proc_uid(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("Uid line")
}

/// Soft and hard "Max core file size" from `/proc/<pid>/limits`.
pub fn core_limit(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("core line");
    let fields: Vec<&str> = line["Max core file size".len()..]
        .split_whitespace()
        .collect();
    (fields[0].to_owned(), fields[1].to_owned())
}

/// stderr of a child, collected by a thread.
#[derive(Clone, Default)]
pub struct Collected(Arc<Mutex<String>>);

impl Collected {
    pub fn start(mut from: impl Read + Send + 'static) -> Self {
        let c = Collected::default();
        let into = c.0.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut s) = into.lock() {
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        c
    }

    pub fn text(&self) -> String {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits until `needle` appeared (at most `timeout`).
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.text().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

/// Sends `signal` (e.g. "HUP") to exactly this pid.
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// A child that is killed (by pid) when the test ends, however it ends.
pub struct Running {
    pub child: Child,
    pub stderr: Collected,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn still_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TLS client to 127.0.0.1:`port` trusting the CA in `ca_pem` (PEM file).
pub fn tls_client(port: u16, ca_pem: &Path) -> std::io::Result<Client> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca_pem)?;
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert?).map_err(std::io::Error::other)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let sock = TcpStream::connect(("127.0.0.1", port))?;
    sock.set_read_timeout(Some(Duration::from_secs(120)))?;
    let name =
        rustls::pki_types::ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    let conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
    let mut client = BufReader::new(rustls::StreamOwned::new(conn, sock));
    // Complete the handshake now, so certificate errors surface here.
    while client.get_ref().conn.is_handshaking() {
        let rustls::StreamOwned { conn, sock } = client.get_mut();
        conn.complete_io(sock)?;
    }
    Ok(client)
}

/// One SMTP reply (multi-line joined); "" when the connection ended.
pub fn reply(io: &mut Client) -> String {
    let mut all = String::new();
    loop {
        let mut l = String::new();
        match io.read_line(&mut l) {
            Ok(0) | Err(_) => return all,
            Ok(_) => {}
        }
        all.push_str(&l);
        if l.as_bytes().get(3) != Some(&b'-') {
            return all;
        }
    }
}

pub fn say(io: &mut Client, line: &str) -> String {
    io.get_mut()
        .write_all(format!("{line}\r\n").as_bytes())
        .unwrap();
    reply(io)
}

/// A_2005 observed from outside: RLIMIT_CORE 0 and not dumpable (see [`proc_owner`]).
pub fn assert_hardened(pid: u32, what: &str) {
    assert_eq!(proc_uid(pid), child_uid(), "{what} runs as the child user");
    assert_ne!(child_uid(), 0, "the observation needs a non-root child");
    assert_eq!(
        core_limit(pid),
        ("0".to_owned(), "0".to_owned()),
        "{what}: RLIMIT_CORE"
    );
    assert_eq!(
        proc_owner(pid),
        0,
        "{what}: /proc/{pid} belongs to the process's own uid: it is dumpable"
    );
}

/// The negative control: dumpable, with the inherited core limit.
pub fn assert_dumpable(pid: u32, what: &str) {
    assert_eq!(proc_owner(pid), child_uid(), "{what} should be dumpable");
    assert_ne!(
        core_limit(pid).0,
        "0",
        "{what} kept the inherited core limit"
    );
}
