//! Scale out (issue 18): two `komle-cm` instances behind a real HAProxy, round-robin in TCP mode
//! with `send-proxy-v2` — the topology gematik recommends for several Clientmodule — in front
//! of the real Postfix/Dovecot, OpenLDAP and the Konnektor simulator.
//!
//! Mails go through HAProxy from two clients at once; one instance is stopped (SIGTERM) while
//! mail flows. Every mail must arrive exactly once in the recipient's Dovecot mailbox, both
//! instances must have served mail, and komle-cm's logs must name the real client (its
//! address and source port from the PROXY header), not HAProxy's connection.
//!
//! The clients behave as mail programs do: a mail whose session broke before the final reply
//! to DATA is sent again (a connection HAProxy had already handed to the stopping instance is
//! closed without greeting). A mail is never re-sent after its `250`, so a duplicate in the
//! mailbox would be the Clientmodul's or the balancer's fault.
//!
//! Requirements: root and the Debian packages of the mail-server harness plus `haproxy`.

/// The daemon under test.
const CM_BINARY: &str = env!("CARGO_BIN_EXE_komle-cm");

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{contains, login_via, password, practices, world};
use komle_conformance::loopback_tls::LoopbackTls;
use komle_conformance::servers::haproxy::Haproxy;
use komle_conformance::servers::process::free_port;
use komle_conformance::servers::{MailServers, User};
use komle_conformance::sim::server::{SimServer, TlsOptions};
use komle_conformance::sim::simulator::Simulator;
use komle_conformance::slapd::Slapd;
use rustls::pki_types::{CertificateDer, ServerName};

/// Mails sent in all, by two clients in parallel.
const MAILS: usize = 16;
/// The first instance is stopped once this many mails were accepted.
const STOP_AFTER: usize = 5;
const IO_TIMEOUT: Duration = Duration::from_secs(60);
const DELIVERY: Duration = Duration::from_secs(60);

/// One `komle-cm` process with its config and log; killed on drop.
struct Instance {
    child: Option<Child>,
    addr: SocketAddr,
    log: PathBuf,
}

impl Instance {
    /// Writes the config (PROXY protocol on) and starts komle-cm; waits until it listens.
    fn start(dir: &Path, name: &str, shared: &str) -> Instance {
        let mut last = String::new();
        for _ in 0..3 {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port().expect("free port")));
            let config = dir.join(format!("{name}.toml"));
            let log = dir.join(format!("{name}.log"));
            std::fs::write(
                &config,
                format!(
                    "[smtp]\nlisten = \"{addr}\"\nhostname = \"{name}.test\"\nproxy_protocol = true\n\n{shared}"
                ),
            )
            .expect("write config");
            let file = std::fs::File::create(&log).expect("log file");
            let mut child = Command::new(CM_BINARY)
                .arg("--config")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(file.try_clone().expect("log handle"))
                .stderr(file)
                .spawn()
                .expect("spawn komle-cm");
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                // A bare connect: the listener closes it, without a PROXY header, at once.
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Instance {
                        child: Some(child),
                        addr,
                        log,
                    };
                }
                if let Ok(Some(status)) = child.try_wait() {
                    last = format!(
                        "exited with {status}: {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{name} not listening on {addr}");
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            if !last.contains("cannot bind") {
                break;
            }
        }
        panic!("{name} did not start: {last}");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM (graceful: stop accepting, let running sessions finish) and wait for the exit.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        child.wait().expect("wait for komle-cm")
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The configuration both instances share: TLS, upstream, Konnektor, directory.
fn shared_config(
    dir: &Path,
    tls: &LoopbackTls,
    sim: &SimServer,
    servers: &MailServers,
    slapd: &Slapd,
) -> String {
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).expect("write TLS file");
        p
    };
    let cert = write("cm.pem", tls.server_cert_pem.as_bytes());
    let key = write("cm.key", tls.server_key_pem.as_bytes());
    let konnektor_ca = write("konnektor-ca.pem", sim.ca_pem.as_bytes());
    let mta_ca = write(
        "mta-ca.pem",
        &std::fs::read(servers.ca_pem_path()).expect("mail servers' CA"),
    );
    format!(
        "[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n\n\
         [upstream]\nca = \"{}\"\nsmtp = [\"{}\"]\n\n\
         [konnektor]\nsds_url = \"{}/connector.sds\"\nca = \"{}\"\n\n\
         [directory]\nurl = \"{}\"\nbase = \"{}\"\ntimeout = \"10s\"\n\n\
         [timeouts]\nshutdown_grace = \"30s\"\n\n[log]\nlevel = \"info\"\n",
        cert.display(),
        key.display(),
        mta_ca.display(),
        servers.smtps_addr(),
        sim.base_url(),
        konnektor_ca.display(),
        slapd.url(),
        slapd.base_dn(),
    )
}

/// How one SMTP attempt ended.
enum Attempt {
    /// The final `250` to DATA: the mail is the Clientmodul's now.
    Accepted,
    /// Broken or refused before that (what a mail program retries).
    Failed(String),
}

/// A mail client over implicit TLS through the balancer. Returns the local address it used
/// (what komle-cm must log as the peer) and how the attempt ended.
fn send_once(
    via: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    login: &str,
    pw: &str,
    from: &str,
    to: &str,
    mail: &[u8],
) -> (Option<SocketAddr>, Attempt) {
    let tcp = match TcpStream::connect_timeout(&via, IO_TIMEOUT) {
        Ok(t) => t,
        Err(e) => return (None, Attempt::Failed(format!("connect: {e}"))),
    };
    let local = tcp.local_addr().ok();
    let _ = tcp.set_read_timeout(Some(IO_TIMEOUT));
    let _ = tcp.set_write_timeout(Some(IO_TIMEOUT));
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    let conn = rustls::ClientConnection::new(tls.clone(), name).expect("TLS client");
    let mut s = Smtp {
        stream: rustls::StreamOwned::new(conn, tcp),
        buf: Vec::new(),
    };
    let token =
        base64::engine::general_purpose::STANDARD.encode(format!("\0{login}\0{pw}").as_bytes());
    let mut data = String::from_utf8_lossy(mail).replace("\r\n.", "\r\n..");
    data.push_str(".\r\n");
    let steps: [(Option<String>, u16); 7] = [
        (None, 220),
        (Some("EHLO client.test\r\n".into()), 250),
        (Some(format!("AUTH PLAIN {token}\r\n")), 235),
        (Some(format!("MAIL FROM:<{from}>\r\n")), 250),
        (Some(format!("RCPT TO:<{to}>\r\n")), 250),
        (Some("DATA\r\n".into()), 354),
        (Some(data), 250),
    ];
    for (i, (line, want)) in steps.iter().enumerate() {
        if let Some(line) = line
            && let Err(e) = s.stream.write_all(line.as_bytes())
        {
            return (local, Attempt::Failed(format!("step {i}: write: {e}")));
        }
        match s.reply() {
            Ok(reply) if reply.starts_with(&format!("{want} ")) => {}
            Ok(reply) => return (local, Attempt::Failed(format!("step {i}: {reply:?}"))),
            Err(e) => return (local, Attempt::Failed(format!("step {i}: {e}"))),
        }
    }
    let _ = s.stream.write_all(b"QUIT\r\n");
    let _ = s.reply();
    (local, Attempt::Accepted)
}

struct Smtp {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    buf: Vec<u8>,
}

impl Smtp {
    /// The last line of the next complete reply.
    fn reply(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..pos + 2).collect();
                let line = String::from_utf8_lossy(&line[..pos]).into_owned();
                if line.len() < 4 || line.as_bytes()[3] == b' ' {
                    return Ok(line);
                }
                continue;
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn client_config(ca: &CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).expect("CA");
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

fn mail(from: &str, to: &str, marker: &str) -> Vec<u8> {
    format!(
        "From: Praxis <{from}>\r\nTo: <{to}>\r\nSubject: Befund {marker}\r\n\
         Date: Mon, 07 Dec 2026 10:00:00 +0100\r\nMessage-ID: <{marker}@komle.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Laborwert ({marker}).\r\n"
    )
    .into_bytes()
}

#[test]
fn haproxy_round_robin_with_proxy_v2_two_instances_one_stopped_every_mail_exactly_once() {
    let w = world();
    let users: Vec<User> = practices()
        .into_iter()
        .map(|a| User::new(a.clone(), password(&a)))
        .collect();
    let servers = MailServers::start(&users).unwrap_or_else(|e| panic!("mail servers: {e}"));
    let slapd = Slapd::start_with_pki(&w.pki, false).unwrap_or_else(|e| panic!("slapd: {e:?}"));
    // The Konnektor checks the mail servers' certificate (A_2075-01): it knows their CA.
    let mut sim_config = w.sim_config.clone();
    komle_conformance::world::trust_mail_servers(&mut sim_config, &servers)
        .unwrap_or_else(|e| panic!("mail servers' CA: {e}"));
    let sim = SimServer::start(Simulator::new(sim_config), TlsOptions::default())
        .unwrap_or_else(|e| panic!("Konnektor simulator: {e:?}"));
    let dir = tempfile::tempdir().expect("temp dir");
    let cm_tls = LoopbackTls::generate("komle-cm").expect("komle-cm TLS material");
    let shared = shared_config(dir.path(), &cm_tls, &sim, &servers, &slapd);
    let mut first = Instance::start(dir.path(), "cm1", &shared);
    let second = Instance::start(dir.path(), "cm2", &shared);
    let haproxy =
        Haproxy::start(&[first.addr, second.addr]).unwrap_or_else(|e| panic!("haproxy: {e}"));

    let from = w.pki.sender.address.clone();
    let to = w.pki.single.address.clone();
    let login = login_via(&from, servers.smtps_addr());
    let pw = password(&from);
    let tls = client_config(&cm_tls.ca_der);
    let run = format!("scale{}", std::process::id());

    let accepted = Arc::new(AtomicUsize::new(0));
    // (marker, client address of the accepted attempt, failed attempts before it)
    let results = Arc::new(Mutex::new(Vec::<(String, SocketAddr, usize)>::new()));
    let clients: Vec<_> = (0..2)
        .map(|c| {
            let (tls, login, pw, from, to, run) = (
                tls.clone(),
                login.clone(),
                pw.clone(),
                from.clone(),
                to.clone(),
                run.clone(),
            );
            let (accepted, results, via) = (accepted.clone(), results.clone(), haproxy.addr());
            std::thread::spawn(move || {
                for i in 0..MAILS / 2 {
                    let marker = format!("{run}-c{c}-m{i}");
                    let bytes = mail(&from, &to, &marker);
                    let mut failures = Vec::new();
                    loop {
                        match send_once(via, &tls, &login, &pw, &from, &to, &bytes) {
                            (Some(local), Attempt::Accepted) => {
                                accepted.fetch_add(1, Ordering::SeqCst);
                                results.lock().unwrap().push((
                                    marker.clone(),
                                    local,
                                    failures.len(),
                                ));
                                break;
                            }
                            (_, Attempt::Accepted) => unreachable!("accepted without a socket"),
                            (_, Attempt::Failed(why)) => {
                                failures.push(why);
                                assert!(
                                    failures.len() < 5,
                                    "{marker}: no mail program retries forever: {failures:?}"
                                );
                                std::thread::sleep(Duration::from_millis(200));
                            }
                        }
                    }
                }
            })
        })
        .collect();

    // Stop the first instance while mail flows.
    let deadline = Instant::now() + DELIVERY;
    while accepted.load(Ordering::SeqCst) < STOP_AFTER {
        assert!(
            Instant::now() < deadline,
            "no mail accepted\n{}",
            haproxy.log_tail()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let served_before_stop = first.log().matches(" ended after ").count();
    let status = first.terminate();
    assert!(status.success(), "cm1 exit after SIGTERM: {status}");
    for c in clients {
        c.join().expect("client thread");
    }
    let results = results.lock().unwrap().clone();
    assert_eq!(results.len(), MAILS);

    // Every mail arrives exactly once.
    let delivered = servers
        .wait_for_messages(&to, MAILS, DELIVERY)
        .unwrap_or_else(|e| panic!("{e}\n{}", servers.postfix_log_tail()));
    std::thread::sleep(Duration::from_secs(1)); // a duplicate would come late
    let delivered = servers.maildir_messages(&to).unwrap_or(delivered);
    for (marker, _, _) in &results {
        let n = delivered
            .iter()
            .filter(|m| contains(m, format!("<{marker}@komle.test>").as_bytes()))
            .count();
        assert_eq!(n, 1, "{marker} delivered {n} times");
    }
    assert_eq!(delivered.len(), MAILS, "nothing else in the mailbox");

    // Both instances served mail (round robin), and their logs name the real clients: the
    // address and source port each client connected from, which only the PROXY header carries
    // (komle-cm's own TCP peer is HAProxy).
    let logs = format!("{}{}", first.log(), second.log());
    assert!(
        served_before_stop > 0,
        "cm1 served nothing before it stopped"
    );
    assert!(
        second.log().contains(" ended after "),
        "cm2 served nothing:\n{}",
        second.log()
    );
    for (marker, client, _) in &results {
        assert!(
            logs.contains(&format!("peer={client} ")),
            "{marker}: no log line names the client {client}\n{logs}"
        );
    }
    assert!(
        logs.contains("(PROXY protocol)"),
        "the logs say the peer came through the balancer"
    );
    let retried: usize = results.iter().map(|(_, _, f)| f).sum();
    eprintln!(
        "{MAILS} mails, {retried} attempt(s) retried after cm1 stopped; cm1 served {served_before_stop} session(s) before"
    );
}
