//! The daemon `komle-cm` with a generated configuration around a Konnektor simulator in this
//! process (the directory is never asked, so no slapd is needed).

#![allow(dead_code)] // each test binary uses a different subset

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use komle_conformance::loopback_tls::LoopbackTls;
use komle_conformance::sim::config::SimConfig;
use komle_conformance::sim::server::{SimServer, TlsOptions};
use komle_conformance::sim::simulator::Simulator;

use crate::binary::{Collected, Running, as_child_user};

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
