//! The "protocol floor" for the throughput benchmark (issue 15): the least any Clientmodul must
//! do for one small message, with nothing of komle-cm's own machinery around it.
//!
//! WHY: sending through a Clientmodul costs more than sending straight by the protocol's own
//! nature: a second TLS session (the module's login at the MTA, with its client certificate),
//! the recipient check, the signing and encryption exchanges with the Konnektor, and the
//! protected message (about 1.4x the bytes) instead of the plain one. On a 2-core machine where
//! the mail service and the Konnektor simulator run beside the proxy, that work alone makes
//! "<= 1.5x of straight" unreachable, so `komle-load` also measures this floor in the same run
//! and reports komle-cm's time against it: what komle-cm adds beyond the floor is the cost of
//! its architecture (sans-IO sessions, the one driver, the executor), which is what the
//! benchmark is meant to judge.
//!
//! What the floor does, per connection, in lock step with the client (the load client never
//! pipelines): TLS from the client (the proxy's certificate); on AUTH, TLS to the MTA named in
//! the login with the module's client certificate, EHLO and AUTH PLAIN with the real account;
//! MAIL forwarded; RCPT checked with the same [`RecipientChecker`] komle-cm uses (cache, then
//! directory) and forwarded; after DATA, the message is protected by the same [`Protector`]
//! (the real pipeline: the Konnektor exchanges over HTTPS) and sent on. What it leaves out, on
//! purpose: everything komle-cm does to be correct and safe beyond that (the session state
//! machine's checks, header processing, limits, timeouts, the Konnektor's check of the MTA's
//! certificate, logging, statistics). It is a benchmark baseline, blocking, one thread per
//! connection, and never a product path: only `komle-demo --floor-relay` starts it.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use komle_core::login_name::LoginName;
use komle_core::sasl::plain;
use komle_core::secret::SecretBytes;
use komle_core::smtp::{ProtectJob, RecipientVerdict};
use komle_service::contracts::{Protector, RecipientChecker};
use rustls::pki_types::ServerName;

/// Client side and MTA side of one relayed connection.
type Tls<C> = BufReader<rustls::StreamOwned<C, TcpStream>>;

/// What the floor needs from the embedded environment.
#[derive(Clone)]
pub struct FloorServices {
    /// TLS the clients see (the proxy's certificate).
    pub server_tls: Arc<rustls::ServerConfig>,
    /// TLS towards the MTA, with the module's client certificate.
    pub upstream_tls: Arc<rustls::ClientConfig>,
    pub checker: Arc<dyn RecipientChecker>,
    pub protector: Arc<dyn Protector>,
}

/// Listens on 127.0.0.1 (any port) and serves every connection on a thread of its own until
/// the process ends. Returns the address.
pub fn start(services: FloorServices) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let services = services.clone();
            std::thread::spawn(move || {
                // A broken connection ends its thread; the load client counts the failure.
                let _ = serve(conn, &services);
            });
        }
    });
    Ok(addr)
}

type Result<T> = std::result::Result<T, String>;

fn io_err(e: std::io::Error) -> String {
    e.to_string()
}

fn serve(conn: TcpStream, services: &FloorServices) -> Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(io_err)?;
    let tls =
        rustls::ServerConnection::new(services.server_tls.clone()).map_err(|e| e.to_string())?;
    let mut client = BufReader::new(rustls::StreamOwned::new(tls, conn));
    reply(&mut client, "220 floor ESMTP\r\n")?;
    let mut mta: Option<Tls<rustls::ClientConnection>> = None;
    let mut from = String::new();
    let mut recipients = Vec::new();
    let mut login: Option<LoginName> = None;
    loop {
        let line = read_line(&mut client)?;
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            reply(&mut client, "250-floor\r\n250 AUTH PLAIN\r\n")?;
        } else if let Some(b64) = line.strip_prefix("AUTH PLAIN ") {
            let credentials = plain::decode_response(b64.trim().as_bytes()).map_err(|_| "AUTH")?;
            let name = LoginName::parse_smtp(&credentials.login).map_err(|_| "login name")?;
            let mut up = connect_mta(&name, &services.upstream_tls)?;
            expect(&mut up, "220")?;
            command(&mut up, "EHLO floor", "250")?;
            let auth = plain::encode_response(&name.user, &credentials.password);
            command(&mut up, &format!("AUTH PLAIN {auth}"), "235")?;
            mta = Some(up);
            login = Some(name);
            reply(&mut client, "235 2.7.0 ok\r\n")?;
        } else if upper.starts_with("MAIL FROM:") {
            let up = mta.as_mut().ok_or("MAIL before AUTH")?;
            from = path(&line[10..]);
            let answer = command(up, &line, "250")?;
            reply(&mut client, &answer)?;
        } else if upper.starts_with("RCPT TO:") {
            let up = mta.as_mut().ok_or("RCPT before AUTH")?;
            let to = path(&line[8..]);
            match futures_lite::future::block_on(services.checker.check(&to)) {
                RecipientVerdict::Usable => {
                    let answer = command(up, &line, "250")?;
                    recipients.push(to);
                    reply(&mut client, &answer)?;
                }
                _ => reply(&mut client, "550 5.1.1 no certificate\r\n")?,
            }
        } else if upper == "DATA" {
            let up = mta.as_mut().ok_or("DATA before AUTH")?;
            reply(&mut client, "354 go ahead\r\n")?;
            let message = read_data(&mut client)?;
            let job = ProtectJob {
                login: login.clone().ok_or("DATA before AUTH")?,
                envelope_from: std::mem::take(&mut from),
                recipients: std::mem::take(&mut recipients),
                message,
            };
            let protected = futures_lite::future::block_on(services.protector.protect(job))
                .map_err(|_| "protection failed")?;
            command(up, "DATA", "354")?;
            write_stuffed(up.get_mut(), protected.message.as_slice())?;
            let answer = read_reply(up)?;
            reply(&mut client, &answer)?;
        } else if upper == "QUIT" {
            if let Some(up) = mta.as_mut() {
                let _ = command(up, "QUIT", "221");
            }
            reply(&mut client, "221 bye\r\n")?;
            return Ok(());
        } else {
            reply(&mut client, "502 5.5.1 not in the floor\r\n")?;
        }
    }
}

fn connect_mta(
    login: &LoginName,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<Tls<rustls::ClientConnection>> {
    let sock = TcpStream::connect((login.host.as_str(), login.port)).map_err(io_err)?;
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(io_err)?;
    let name = ServerName::try_from(login.host.clone()).map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(tls.clone(), name).map_err(|e| e.to_string())?;
    Ok(BufReader::new(rustls::StreamOwned::new(conn, sock)))
}

/// The address inside `<…>` (parameters after it ignored).
fn path(rest: &str) -> String {
    let rest = rest.trim();
    let inner = rest.strip_prefix('<').unwrap_or(rest);
    inner.split('>').next().unwrap_or_default().to_owned()
}

fn read_line<S: std::io::Read>(io: &mut BufReader<S>) -> Result<String> {
    let mut line = String::new();
    if io.read_line(&mut line).map_err(io_err)? == 0 {
        return Err("closed".into());
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Until the `.` line, dot-unstuffed, CRLF line ends.
fn read_data<S: std::io::Read>(io: &mut BufReader<S>) -> Result<SecretBytes> {
    let mut message = Vec::new();
    loop {
        let mut line = Vec::new();
        if io.read_until(b'\n', &mut line).map_err(io_err)? == 0 {
            return Err("closed in DATA".into());
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(SecretBytes::from(message));
        }
        let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
        message.extend_from_slice(unstuffed);
    }
}

fn write_stuffed(out: &mut impl Write, message: &[u8]) -> Result<()> {
    let mut stuffed = Vec::with_capacity(message.len() + message.len() / 64 + 5);
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            stuffed.push(b'.');
        }
        stuffed.extend_from_slice(line);
    }
    if !stuffed.ends_with(b"\r\n") {
        stuffed.extend_from_slice(b"\r\n");
    }
    stuffed.extend_from_slice(b".\r\n");
    out.write_all(&stuffed).map_err(io_err)?;
    out.flush().map_err(io_err)
}

fn read_reply<S: std::io::Read>(io: &mut BufReader<S>) -> Result<String> {
    let mut all = String::new();
    loop {
        let mut l = String::new();
        if io.read_line(&mut l).map_err(io_err)? == 0 {
            return Err("closed".into());
        }
        let last = l.as_bytes().get(3) != Some(&b'-');
        all.push_str(&l);
        if last {
            return Ok(all);
        }
    }
}

fn expect<S: std::io::Read>(io: &mut BufReader<S>, code: &str) -> Result<String> {
    let answer = read_reply(io)?;
    if answer.starts_with(code) {
        Ok(answer)
    } else {
        Err(format!("expected {code}"))
    }
}

fn command<S: std::io::Read + Write>(
    io: &mut BufReader<S>,
    line: &str,
    code: &str,
) -> Result<String> {
    io.get_mut()
        .write_all(format!("{line}\r\n").as_bytes())
        .map_err(io_err)?;
    io.get_mut().flush().map_err(io_err)?;
    expect(io, code)
}

fn reply<S: std::io::Read + Write>(io: &mut BufReader<S>, text: &str) -> Result<()> {
    io.get_mut().write_all(text.as_bytes()).map_err(io_err)?;
    io.get_mut().flush().map_err(io_err)
}
