//! Starting the real `komle-cm` binary for signal and process-hardening tests, and looking at
//! it from outside (`/proc/<pid>/…`): `komle-cm demo` (a full environment, so real mails can be
//! sent) and the daemon itself with a generated configuration around a Konnektor simulator in
//! this process (the directory is never asked, so no slapd is needed).

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use komle_conformance::loopback_tls::LoopbackTls;
use komle_conformance::sim::config::SimConfig;
use komle_conformance::sim::server::{SimServer, TlsOptions};
use komle_conformance::sim::simulator::Simulator;

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

/// `komle-cm demo --port 0` and what it printed about itself.
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
    let mut command = Command::new(env!("CARGO_BIN_EXE_komle-cm"));
    command
        .args(["demo", "--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if as_child {
        as_child_user(&mut command);
    }
    let mut child = command.spawn().expect("start komle-cm demo");
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

/// The daemon with a generated configuration: listener certificate from `first` (files the
/// test may overwrite), Konnektor simulator in this process.
pub struct DaemonBed {
    pub dir: tempfile::TempDir,
    pub sim: SimServer,
    pub first: LoopbackTls,
    pub config: PathBuf,
    pub smtp_port: u16,
}

impl DaemonBed {
    /// `extra` is appended to the configuration (e.g. a `[process]` section). Files are
    /// readable by everyone so a child running as `nobody` can read them (test material only).
    pub fn new(extra: &str) -> DaemonBed {
        let dir = tempfile::tempdir().unwrap();
        let sim = SimServer::start(Simulator::new(SimConfig::default()), TlsOptions::default())
            .expect("Konnektor simulator");
        let first = LoopbackTls::generate("komle-cm first").unwrap();
        let upstream = LoopbackTls::generate("mail service").unwrap();
        let path = |n: &str| dir.path().join(n);
        let write = |n: &str, text: &str| {
            std::fs::write(path(n), text).unwrap();
            set_mode(&path(n), 0o644);
        };
        write("server.pem", &first.server_cert_pem);
        write("server.key", &first.server_key_pem);
        write("upstream-ca.pem", &upstream.ca_pem);
        write("konnektor-ca.pem", &sim.ca_pem);
        set_mode(dir.path(), 0o755);
        let smtp_port = free_port();
        let text = format!(
            r#"
[smtp]
listen = "127.0.0.1:{smtp_port}"
hostname = "cm.test"
[tls]
certificate = "{}"
private_key = "{}"
[upstream]
ca = "{}"
[konnektor]
sds_url = "{}/connector.sds"
ca = "{}"
[directory]
url = "ldap://127.0.0.1:1"
base = "dc=data,dc=vzd"
[log]
level = "info"
{extra}
"#,
            path("server.pem").display(),
            path("server.key").display(),
            path("upstream-ca.pem").display(),
            sim.base_url(),
            path("konnektor-ca.pem").display(),
        );
        write("komle-cm.toml", &text);
        DaemonBed {
            config: path("komle-cm.toml"),
            dir,
            sim,
            first,
            smtp_port,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `pem` to a file the test client can trust.
    pub fn ca_file(&self, name: &str, pem: &str) -> PathBuf {
        std::fs::write(self.path(name), pem).unwrap();
        self.path(name)
    }

    /// Starts `komle-cm --config …` (as [`child_uid`] when `as_child`) and waits until the
    /// SMTP listener accepts connections.
    pub fn start(&self, as_child: bool) -> Running {
        let mut command = Command::new(env!("CARGO_BIN_EXE_komle-cm"));
        command
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if as_child {
            as_child_user(&mut command);
        }
        let mut child = command.spawn().expect("start komle-cm");
        let stderr = Collected::start(child.stderr.take().unwrap());
        let mut running = Running { child, stderr };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", self.smtp_port)).is_err() {
            assert!(
                running.still_running() && Instant::now() < deadline,
                "komle-cm did not start listening; stderr:\n{}",
                running.stderr.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        running
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
