//! POP3 load against a running `komle-demo` (a child process, see `komle-load-pop3`): a
//! small blocking POP3S client, the timed RETR of one message, idle sessions, and concurrent
//! small-message sessions with the time of every POP3 command — through komle-cm's POP3 proxy
//! and straight from the demo's POP3 mail service in the same run. Every loop is bounded in
//! count and time; loopback only.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;

/// A POP3S connection.
pub type Conn = BufReader<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>;

/// Connects, completes TLS and reads the `+OK` greeting.
pub fn connect(addr: SocketAddr, tls: &Arc<rustls::ClientConfig>) -> Result<Conn, String> {
    let sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    let _ = sock.set_nodelay(true);
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(tls.clone(), name).map_err(|e| e.to_string())?;
    let mut io = BufReader::new(rustls::StreamOwned::new(conn, sock));
    let greeting = line(&mut io)?;
    if !greeting.starts_with("+OK") {
        return Err(greeting);
    }
    Ok(io)
}

fn line(io: &mut Conn) -> Result<String, String> {
    let mut l = String::new();
    if io.read_line(&mut l).map_err(|e| e.to_string())? == 0 {
        return Err("closed".into());
    }
    Ok(l)
}

/// Sends one command and reads its status line; `-ERR` is an error.
pub fn command(io: &mut Conn, text: &str) -> Result<String, String> {
    io.get_mut()
        .write_all(format!("{text}\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let l = line(io)?;
    if l.starts_with("+OK") {
        Ok(l)
    } else {
        Err(format!(
            "{}: {}",
            text.split(' ').next().unwrap_or(text),
            l.trim_end()
        ))
    }
}

/// Reads a dot-terminated block, unstuffed.
pub fn block(io: &mut Conn) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut l = Vec::new();
    loop {
        l.clear();
        if io.read_until(b'\n', &mut l).map_err(|e| e.to_string())? == 0 {
            return Err("closed inside a multi-line reply".into());
        }
        if l == b".\r\n" {
            return Ok(out);
        }
        out.extend_from_slice(l.strip_prefix(b".").unwrap_or(&l));
    }
}

/// Logs in with USER/PASS.
pub fn login(io: &mut Conn, user: &str, password: &str) -> Result<(), String> {
    command(io, &format!("USER {user}"))?;
    command(io, &format!("PASS {password}"))?;
    Ok(())
}

/// Logs in, then times `RETR n` until the whole message is read; returns the time and the
/// message.
pub fn timed_retr(
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    user: &str,
    password: &str,
    n: usize,
) -> Result<(Duration, Vec<u8>), String> {
    let mut io = connect(addr, tls)?;
    login(&mut io, user, password)?;
    let t = Instant::now();
    command(&mut io, &format!("RETR {n}"))?;
    let message = block(&mut io)?;
    let took = t.elapsed();
    let _ = command(&mut io, "QUIT");
    Ok((took, message))
}

/// The POP3 commands timed per session ("greeting" = TCP connect, TLS and the greeting).
pub const COMMANDS: [&str; 6] = ["greeting", "USER", "PASS", "STAT", "RETR", "QUIT"];

/// One session USER/PASS/STAT/RETR 1/QUIT; the time of each step in [`COMMANDS`] order.
pub fn timed_session(
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    user: &str,
    password: &str,
) -> Result<[Duration; 6], String> {
    let mut times = [Duration::ZERO; 6];
    let t = Instant::now();
    let mut io = connect(addr, tls)?;
    times[0] = t.elapsed();
    let steps = [
        format!("USER {user}"),
        format!("PASS {password}"),
        "STAT".to_owned(),
        "RETR 1".to_owned(),
        "QUIT".to_owned(),
    ];
    for (i, s) in steps.iter().enumerate() {
        let t = Instant::now();
        command(&mut io, s)?;
        if i == 3 {
            block(&mut io)?;
        }
        times[i + 1] = t.elapsed();
    }
    Ok(times)
}

/// What [`run_clients`] measured.
pub struct ClientRun {
    /// All step times, per step in [`COMMANDS`] order.
    pub per_step: Vec<Vec<Duration>>,
    /// Failed sessions, and the distinct reasons (at most 5).
    pub failures: usize,
    pub reasons: Vec<String>,
    pub wall: Duration,
}

/// `clients` threads each running `per_client` sessions at once.
pub fn run_clients(
    clients: usize,
    per_client: usize,
    target: impl Fn() -> Result<[Duration; 6], String> + Send + Sync + 'static,
) -> ClientRun {
    let target = Arc::new(target);
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let target = target.clone();
            std::thread::spawn(move || (0..per_client).map(|_| target()).collect::<Vec<_>>())
        })
        .collect();
    let mut per_step = vec![Vec::new(); COMMANDS.len()];
    let mut failures = 0;
    let mut reasons: Vec<String> = Vec::new();
    for h in handles {
        for r in h.join().unwrap_or_default() {
            match r {
                Ok(times) => {
                    for (i, t) in times.iter().enumerate() {
                        per_step[i].push(*t);
                    }
                }
                Err(e) => {
                    failures += 1;
                    if reasons.len() < 5 && !reasons.contains(&e) {
                        reasons.push(e);
                    }
                }
            }
        }
    }
    ClientRun {
        per_step,
        failures,
        reasons,
        wall: started.elapsed(),
    }
}

/// The median of `v` (sorted in place).
pub fn median(v: &mut [Duration]) -> Duration {
    crate::load::percentile(v, 50)
}
