//! Load against a running `komle-demo` (a child process, so its memory is its own):
//! idle sessions and their memory, and small-message sessions with the time of every SMTP
//! command, through the proxy and straight to the demo's mail service in the same run.
//! Every loop is bounded in count and time; loopback only.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use komle_core::sasl::plain;
use komle_core::secret::Password;
use rustls::pki_types::ServerName;

/// A TLS client connection with line reading.
pub type Conn = BufReader<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>;

/// A TLS client that trusts anything: the demo's certificates are throw-away and this tool
/// measures, it does not authenticate.
pub fn insecure_client() -> Arc<rustls::ClientConfig> {
    #[derive(Debug)]
    struct AnyServer;
    impl rustls::client::danger::ServerCertVerifier for AnyServer {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServer))
                .with_no_client_auth()
        });
    Arc::new(config.unwrap_or_else(|_| unreachable!("ring supports the default versions")))
}

/// Connects, completes TLS and reads the greeting.
pub fn connect(addr: SocketAddr, tls: &Arc<rustls::ClientConfig>) -> Result<Conn, String> {
    let sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(tls.clone(), name).map_err(|e| e.to_string())?;
    let mut io = BufReader::new(rustls::StreamOwned::new(conn, sock));
    let greeting = read_reply(&mut io)?;
    if !greeting.starts_with("220") {
        return Err(greeting);
    }
    Ok(io)
}

/// Reads one (possibly multi-line) SMTP reply.
pub fn read_reply(io: &mut Conn) -> Result<String, String> {
    let mut all = String::new();
    loop {
        let mut l = String::new();
        if io.read_line(&mut l).map_err(|e| e.to_string())? == 0 {
            return Err("closed".into());
        }
        let last = l.as_bytes().get(3) != Some(&b'-');
        all.push_str(&l);
        if last {
            return Ok(all);
        }
    }
}

/// Sends `line` (CRLF added) and reads the whole reply; an error names `name` when the reply
/// does not start with `expect`.
pub fn command(io: &mut Conn, line: &str, expect: &str, name: &str) -> Result<String, String> {
    io.get_mut()
        .write_all(format!("{line}\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let r = read_reply(io)?;
    if r.starts_with(expect) {
        Ok(r)
    } else {
        Err(format!("{name}: {}", r.trim_end()))
    }
}

/// The SMTP commands timed per message.
pub const COMMANDS: [&str; 6] = ["EHLO", "AUTH", "MAIL", "RCPT", "DATA", "DOT"];

/// One small message; returns the time of each command in [`COMMANDS`] order.
pub fn timed_message(
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    login: &str,
    password: &str,
    from: &str,
    to: &str,
) -> Result<[Duration; 6], String> {
    let mut io = connect(addr, tls)?;
    let auth = plain::encode_response(login, &Password::new(password));
    let lines = [
        "EHLO load".to_owned(),
        format!("AUTH PLAIN {auth}"),
        format!("MAIL FROM:<{from}>"),
        format!("RCPT TO:<{to}>"),
        "DATA".to_owned(),
        format!("From: <{from}>\r\nTo: <{to}>\r\nSubject: Last\r\n\r\nkurze Nachricht\r\n."),
    ];
    let mut times = [Duration::ZERO; 6];
    for (i, line) in lines.iter().enumerate() {
        let t = Instant::now();
        let expect = if i == 4 { "354" } else { "2" };
        command(&mut io, line, expect, COMMANDS[i])?;
        times[i] = t.elapsed();
    }
    let _ = io.get_mut().write_all(b"QUIT\r\n");
    Ok(times)
}

/// `clients` threads each sending `per_client` messages; all command times, per command.
pub fn run_clients(
    clients: usize,
    per_client: usize,
    target: impl Fn() -> Result<[Duration; 6], String> + Send + Sync + 'static,
) -> (Vec<Vec<Duration>>, usize, Duration) {
    let target = Arc::new(target);
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let target = target.clone();
            std::thread::spawn(move || {
                (0..per_client)
                    .map(|_| target())
                    .collect::<Vec<Result<[Duration; 6], String>>>()
            })
        })
        .collect();
    let mut per_command = vec![Vec::new(); 6];
    let mut failures = 0;
    for h in handles {
        for r in h.join().unwrap_or_default() {
            match r {
                Ok(times) => {
                    for (i, t) in times.iter().enumerate() {
                        per_command[i].push(*t);
                    }
                }
                Err(_) => failures += 1,
            }
        }
    }
    (per_command, failures, started.elapsed())
}

/// The `p`-th percentile (0..=100) of `v`.
pub fn percentile(v: &mut [Duration], p: usize) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    v[((v.len() - 1) * p) / 100]
}

/// Resident memory of a process in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
