//! Compares the two runtimes on the same embedded environment: one large message, and many
//! concurrent sessions with a small message each, through the smol daemon's listener and
//! through the tokio listener (same core, same services, same Konnektor simulator and MTA).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use komle_core::sasl::plain;
use komle_core::secret::Password;
use komle_demo::embedded::{Embedded, PASSWORD};
use rustls::pki_types::ServerName;

/// Sends one message of about `size` bytes through the proxy at `addr`; returns the time to
/// the final reply and whether it was 250.
pub fn send(env: &Embedded, addr: SocketAddr, size: usize) -> Result<(Duration, bool), String> {
    let started = Instant::now();
    let sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(300)))
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(env.proxy_tls.client_config(), name)
        .map_err(|e| e.to_string())?;
    let mut io = BufReader::new(rustls::StreamOwned::new(conn, sock));
    let from = env.world.pki.sender.address.clone();
    let to = env.world.pki.single.address.clone();
    let auth = plain::encode_response(&env.login(), &Password::new(PASSWORD));
    let line = "Befund Zeile mit etwas Text, damit die Nachricht gross wird 0123456789\r\n";
    let body = line.repeat(size / line.len() + 1);
    let message = format!("From: <{from}>\r\nTo: <{to}>\r\nSubject: Last\r\n\r\n{body}.");
    let mut last = String::new();
    for cmd in [
        "EHLO compare".to_owned(),
        format!("AUTH PLAIN {auth}"),
        format!("MAIL FROM:<{from}>"),
        format!("RCPT TO:<{to}>"),
        "DATA".to_owned(),
        message,
    ] {
        reply(&mut io, &mut last)?;
        io.get_mut()
            .write_all(format!("{cmd}\r\n").as_bytes())
            .map_err(|e| e.to_string())?;
    }
    reply(&mut io, &mut last)?;
    let ok = last.starts_with("250");
    let elapsed = started.elapsed();
    let _ = io.get_mut().write_all(b"QUIT\r\n");
    Ok((elapsed, ok))
}

fn reply<R: BufRead>(io: &mut R, last: &mut String) -> Result<(), String> {
    last.clear();
    loop {
        let mut l = String::new();
        if io.read_line(&mut l).map_err(|e| e.to_string())? == 0 {
            return Err("connection closed".into());
        }
        let done = l.as_bytes().get(3) != Some(&b'-');
        last.push_str(&l);
        if done {
            return Ok(());
        }
    }
}

/// `sessions` clients at once, each sending one small message; returns total wall time and
/// how many got 250.
pub fn concurrent(env: &Arc<Embedded>, addr: SocketAddr, sessions: usize) -> (Duration, usize) {
    let started = Instant::now();
    let handles: Vec<_> = (0..sessions)
        .map(|_| {
            let env = env.clone();
            std::thread::spawn(move || matches!(send(&env, addr, 512), Ok((_, true))))
        })
        .collect();
    let ok = handles
        .into_iter()
        .map(|h| h.join().unwrap_or(false))
        .filter(|ok| *ok)
        .count();
    (started.elapsed(), ok)
}

/// The two listeners over one environment.
pub struct Both {
    pub env: Arc<Embedded>,
    pub smol: SocketAddr,
    pub tokio: SocketAddr,
    _rt: tokio::runtime::Runtime,
}

/// Starts the embedded environment (whose proxy runs on smol) and a tokio listener serving the
/// same services.
pub fn start(max_sessions: usize) -> Result<Both, String> {
    let env = Embedded::start(&komle_demo::embedded::EmbeddedOptions {
        max_sessions,
        ..Default::default()
    })
    .map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let service = komle_tokio::KomleService::from_parts(
        env.proxy_tls.server_config(),
        env.session_context.clone(),
        max_sessions,
    );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .map_err(|e| e.to_string())?;
    let tokio_addr = listener.local_addr().map_err(|e| e.to_string())?;
    rt.spawn(async move { service.serve_smtp(listener, std::future::pending()).await });
    let smol = env.proxy_addr;
    Ok(Both {
        env: Arc::new(env),
        smol,
        tokio: tokio_addr,
        _rt: rt,
    })
}
