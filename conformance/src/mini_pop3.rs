//! A small in-process POP3S server over an in-memory maildrop, the receiving counterpart of
//! [`MiniMta`](crate::mini_mta::MiniMta).
//!
//! It stands in for the KOM-LE mail service's POP3 side where no system package may be used:
//! in `komle-cm demo`, in the POP3 fault-injection tests and in the POP3 load figures. The
//! end-to-end suites use the real Dovecot instead (see [`crate::servers`]).
//!
//! RFC 1939 with implicit TLS (one rustls `ServerConfig`), one account: CAPA, USER/PASS and
//! AUTH PLAIN (RFC 5034, with or without initial response), STAT, LIST, UIDL, RETR
//! (dot-stuffed), TOP, DELE, RSET, NOOP, QUIT. Deletions take effect only when QUIT is
//! received in the TRANSACTION state (UPDATE state), as RFC 1939 §6 requires; a connection
//! that breaks before deletes nothing.
//!
//! Unlike a real server it takes no exclusive maildrop lock: the load tool runs 200 concurrent
//! sessions of the one account. Each session numbers the messages present at its login, and
//! its deletions remove those messages (by unique id) at QUIT.
//!
//! **Fault hooks** ([`MiniPop3::set_fault`]): at command number k of a connection (counted
//! from 0, every line the client sends counts: the proxy's `CAPA`, `USER`, `PASS` come first),
//! either before answering it or in the middle of its reply, drop the connection or stall
//! (keep it open and stop answering). A fault before a command means the command has no
//! effect; a fault in its reply means it was carried out (QUIT: deletions committed) and the
//! client did not learn it. Counters report complete RETR replies and committed deletions.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use komle_core::pop3::dot_stuff;
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// A message in the maildrop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// UIDL answer; unique within the maildrop.
    pub uid: String,
    /// The message, CRLF line ends, not dot-stuffed.
    pub data: Vec<u8>,
}

/// What the server does at the fault point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// Close the TCP connection (no TLS close_notify, no reply).
    Drop,
    /// Keep the connection open, read and discard whatever comes, never answer again.
    Stall,
}

/// Where in a connection a fault strikes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pop3Fault {
    /// Command number within the connection, from 0.
    pub command: usize,
    /// `false`: before the command is carried out; `true`: after, in the middle of its reply
    /// (at least one byte of the reply is sent, never all of it).
    pub in_reply: bool,
    pub action: FaultAction,
}

/// The running server; stops accepting when dropped.
pub struct MiniPop3 {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

struct Shared {
    /// Shared, so a session's snapshot at login does not copy message contents.
    maildrop: Mutex<Vec<Arc<StoredMessage>>>,
    fault: Mutex<Option<Pop3Fault>>,
    user: String,
    password: String,
    stop: AtomicBool,
    next_uid: AtomicU64,
    retrievals: AtomicUsize,
    deleted: AtomicUsize,
    connections: AtomicUsize,
}

impl MiniPop3 {
    /// Starts on `bind` (e.g. `127.0.0.1:0`) with one account and an empty maildrop.
    pub fn start(
        bind: &str,
        tls: Arc<ServerConfig>,
        user: &str,
        password: &str,
    ) -> std::io::Result<Self> {
        // Blocking accept (a polling loop let the listen backlog overflow under 200 concurrent
        // connects: 1 s SYN retries); Drop wakes it with a connection of its own.
        let listener = TcpListener::bind(bind)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            maildrop: Mutex::new(Vec::new()),
            fault: Mutex::new(None),
            user: user.to_owned(),
            password: password.to_owned(),
            stop: AtomicBool::new(false),
            next_uid: AtomicU64::new(1),
            retrievals: AtomicUsize::new(0),
            deleted: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
        });
        let sh = shared.clone();
        thread::spawn(move || {
            loop {
                match listener.accept() {
                    Ok(_) if sh.stop.load(Ordering::Relaxed) => return,
                    Ok((stream, _)) => {
                        let (tls, sh) = (tls.clone(), sh.clone());
                        thread::spawn(move || {
                            sh.connections.fetch_add(1, Ordering::Relaxed);
                            let _ = serve(stream, tls, &sh);
                            sh.connections.fetch_sub(1, Ordering::Relaxed);
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    // E.g. out of file descriptors: back off instead of spinning.
                    Err(_) if sh.stop.load(Ordering::Relaxed) => return,
                    Err(_) => thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        Ok(Self { addr, shared })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Appends a message to the maildrop and returns its unique id.
    pub fn put(&self, data: Vec<u8>) -> String {
        let uid = format!(
            "mini-{}",
            self.shared.next_uid.fetch_add(1, Ordering::Relaxed)
        );
        lock(&self.shared.maildrop).push(Arc::new(StoredMessage {
            uid: uid.clone(),
            data,
        }));
        uid
    }

    /// The maildrop as it is now (after committed deletions).
    pub fn messages(&self) -> Vec<StoredMessage> {
        lock(&self.shared.maildrop)
            .iter()
            .map(|m| StoredMessage::clone(m))
            .collect()
    }

    /// Number of messages in the maildrop.
    pub fn message_count(&self) -> usize {
        lock(&self.shared.maildrop).len()
    }

    /// Sets (or clears) the fault every new and running connection applies.
    pub fn set_fault(&self, fault: Option<Pop3Fault>) {
        *lock(&self.shared.fault) = fault;
    }

    /// RETR replies written completely (terminator included).
    pub fn retrievals(&self) -> usize {
        self.shared.retrievals.load(Ordering::Relaxed)
    }

    /// Messages removed from the maildrop by a committed QUIT.
    pub fn deleted(&self) -> usize {
        self.shared.deleted.load(Ordering::Relaxed)
    }

    /// Connections being served right now (stalled ones included).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }
}

impl Drop for MiniPop3 {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

type Io = BufReader<StreamOwned<ServerConnection, TcpStream>>;

/// Longest command line accepted (RFC 2449 §4 allows 255; AUTH PLAIN lines of long login names
/// need more).
const MAX_LINE: u64 = 4096;

enum Auth {
    /// AUTHORIZATION state; `user` after an accepted USER.
    Authorization { user: Option<String> },
    /// TRANSACTION state: the messages present at login and which are marked deleted.
    Transaction {
        messages: Vec<Arc<StoredMessage>>,
        deleted: Vec<bool>,
    },
}

/// What to do after a reply has been handled.
enum Next {
    Continue,
    Close,
}

fn serve(stream: TcpStream, tls: Arc<ServerConfig>, shared: &Shared) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    // The handshake gets a patient timeout (hundreds of concurrent handshakes under load);
    // afterwards reads wake every 200 ms to notice a stop.
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut conn = ServerConnection::new(tls).map_err(std::io::Error::other)?;
    let mut stream = stream;
    while conn.is_handshaking() {
        conn.complete_io(&mut stream)?;
    }
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut io = BufReader::new(StreamOwned::new(conn, stream));
    write(&mut io, b"+OK MiniPop3 ready\r\n")?;
    let mut state = Auth::Authorization { user: None };
    let mut plain_pending = false;
    let mut number = 0usize;
    loop {
        let Some(line) = read_line(&mut io, shared)? else {
            return Ok(());
        };
        let fault = *lock(&shared.fault);
        let fault = fault.filter(|f| f.command == number);
        number += 1;
        if let Some(f) = fault.filter(|f| !f.in_reply) {
            return strike(io, f.action, shared);
        }
        let (reply, next) = if plain_pending {
            plain_pending = false;
            (auth_plain(line.trim(), shared, &mut state), Next::Continue)
        } else {
            command(&line, shared, &mut state, &mut plain_pending)
        };
        if let Some(f) = fault {
            let cut = (reply.len() / 2).max(1).min(reply.len().saturating_sub(1));
            io.get_mut().write_all(&reply[..cut])?;
            io.get_mut().flush()?;
            return strike(io, f.action, shared);
        }
        write(&mut io, &reply)?;
        if reply.starts_with(b"+OK ") && line.to_ascii_uppercase().starts_with("RETR") {
            shared.retrievals.fetch_add(1, Ordering::Relaxed);
        }
        if let Next::Close = next {
            return Ok(());
        }
    }
}

/// One command line, CRLF stripped; `None` at EOF or when the server stops.
fn read_line(io: &mut Io, shared: &Shared) -> std::io::Result<Option<String>> {
    let mut raw = Vec::new();
    loop {
        match io.by_ref().take(MAX_LINE).read_until(b'\n', &mut raw) {
            Ok(0) if raw.is_empty() => return Ok(None),
            Ok(_) if raw.ends_with(b"\n") || raw.len() as u64 >= MAX_LINE => break,
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) if is_read_timeout(&e) => {
                if shared.stop.load(Ordering::Relaxed) {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e),
        }
    }
    let text = String::from_utf8_lossy(&raw);
    Ok(Some(text.trim_end_matches(['\r', '\n']).to_owned()))
}

/// A socket read timeout (the session's short poll to notice that the server stops).
fn is_read_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

fn write(io: &mut Io, bytes: &[u8]) -> std::io::Result<()> {
    io.get_mut().write_all(bytes)?;
    io.get_mut().flush()
}

/// Carries out a fault: drop closes at once; stall discards input until the peer closes or
/// the server stops.
fn strike(mut io: Io, action: FaultAction, shared: &Shared) -> std::io::Result<()> {
    match action {
        FaultAction::Drop => {
            let _ = io.get_mut().sock.shutdown(std::net::Shutdown::Both);
            Ok(())
        }
        FaultAction::Stall => {
            let mut sink = [0u8; 4096];
            loop {
                match io.get_mut().sock.read(&mut sink) {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(e) if is_read_timeout(&e) => {
                        if shared.stop.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                    }
                    Err(_) => return Ok(()),
                }
            }
        }
    }
}

const CAPA: &[u8] =
    b"+OK Capability list follows\r\nUSER\r\nSASL PLAIN\r\nTOP\r\nUIDL\r\nRESP-CODES\r\n.\r\n";

fn ok(text: &str) -> Vec<u8> {
    format!("+OK {text}\r\n").into_bytes()
}

fn err(text: &str) -> Vec<u8> {
    format!("-ERR {text}\r\n").into_bytes()
}

fn command(
    line: &str,
    shared: &Shared,
    state: &mut Auth,
    plain_pending: &mut bool,
) -> (Vec<u8>, Next) {
    let (verb, args) = line.split_once(' ').unwrap_or((line, ""));
    let verb = verb.to_ascii_uppercase();
    let args = args.trim();
    if verb == "CAPA" {
        return (CAPA.to_vec(), Next::Continue);
    }
    if verb == "NOOP" && matches!(state, Auth::Transaction { .. }) {
        return (ok(""), Next::Continue);
    }
    match state {
        Auth::Authorization { user } => match verb.as_str() {
            "USER" if !args.is_empty() => {
                *user = Some(args.to_owned());
                (ok(""), Next::Continue)
            }
            "PASS" => match user.take() {
                Some(u) => (login(&u, args, shared, state), Next::Continue),
                None => (err("USER first"), Next::Continue),
            },
            "AUTH" => {
                let (mechanism, initial) = args.split_once(' ').unwrap_or((args, ""));
                if !mechanism.eq_ignore_ascii_case("PLAIN") {
                    (err("Unsupported authentication mechanism."), Next::Continue)
                } else if initial.is_empty() {
                    *plain_pending = true;
                    (b"+ \r\n".to_vec(), Next::Continue)
                } else {
                    (auth_plain(initial.trim(), shared, state), Next::Continue)
                }
            }
            "QUIT" => (ok("Logging out."), Next::Close),
            _ => (err("Unknown command."), Next::Continue),
        },
        Auth::Transaction { messages, deleted } => {
            transaction(&verb, args, messages, deleted, shared)
        }
    }
}

fn auth_plain(response: &str, shared: &Shared, state: &mut Auth) -> Vec<u8> {
    if response == "*" {
        return err("Authentication cancelled.");
    }
    let decoded = STANDARD.decode(response).unwrap_or_default();
    let parts: Vec<&[u8]> = decoded.split(|b| *b == 0).collect();
    if parts.len() != 3 {
        return err("[AUTH] Authentication failed.");
    }
    let user = String::from_utf8_lossy(parts[1]).into_owned();
    let password = String::from_utf8_lossy(parts[2]).into_owned();
    login(&user, &password, shared, state)
}

fn login(user: &str, password: &str, shared: &Shared, state: &mut Auth) -> Vec<u8> {
    if user != shared.user || password != shared.password {
        return err("[AUTH] Authentication failed.");
    }
    let messages = lock(&shared.maildrop).clone();
    let deleted = vec![false; messages.len()];
    *state = Auth::Transaction { messages, deleted };
    ok("Logged in.")
}

fn transaction(
    verb: &str,
    args: &str,
    messages: &[Arc<StoredMessage>],
    deleted: &mut [bool],
    shared: &Shared,
) -> (Vec<u8>, Next) {
    let mut words = args.split_whitespace();
    let reply = match verb {
        "STAT" => {
            let (n, size) =
                live(messages, deleted).fold((0, 0), |(n, s), (_, m)| (n + 1, s + m.data.len()));
            ok(&format!("{n} {size}"))
        }
        "LIST" | "UIDL" => {
            let show = |i: usize, m: &Arc<StoredMessage>| {
                if verb == "LIST" {
                    format!("{} {}", i + 1, m.data.len())
                } else {
                    format!("{} {}", i + 1, m.uid)
                }
            };
            match words.next() {
                Some(a) => match pick(Some(a), messages, deleted) {
                    Ok(i) => ok(&show(i, &messages[i])),
                    Err(e) => e,
                },
                None => {
                    let mut out = ok("");
                    for (i, m) in live(messages, deleted) {
                        out.extend_from_slice(show(i, m).as_bytes());
                        out.extend_from_slice(b"\r\n");
                    }
                    out.extend_from_slice(b".\r\n");
                    out
                }
            }
        }
        "RETR" => match pick(words.next(), messages, deleted) {
            Ok(i) => {
                let (body, _) = dot_stuff(&messages[i].data);
                let mut out = ok(&format!("{} octets", messages[i].data.len()));
                out.extend_from_slice(&body);
                out
            }
            Err(e) => e,
        },
        "TOP" => match (
            pick(words.next(), messages, deleted),
            words.next().and_then(|l| l.parse().ok()),
        ) {
            (Ok(i), Some(lines)) => {
                let (body, _) = dot_stuff(&top(&messages[i].data, lines));
                let mut out = ok("");
                out.extend_from_slice(&body);
                out
            }
            (Err(e), _) => e,
            (Ok(_), None) => err("Invalid number of lines."),
        },
        "DELE" => match pick(words.next(), messages, deleted) {
            Ok(i) => {
                deleted[i] = true;
                ok("Marked to be deleted.")
            }
            Err(e) => e,
        },
        "RSET" => {
            deleted.iter_mut().for_each(|d| *d = false);
            ok("")
        }
        "QUIT" => {
            // UPDATE state (RFC 1939 §6): remove what this session marked, by unique id.
            let gone: Vec<&str> = marked_deleted(messages, deleted);
            if !gone.is_empty() {
                let mut maildrop = lock(&shared.maildrop);
                let before = maildrop.len();
                maildrop.retain(|m| !gone.contains(&m.uid.as_str()));
                shared
                    .deleted
                    .fetch_add(before - maildrop.len(), Ordering::Relaxed);
            }
            return (ok("Logging out."), Next::Close);
        }
        _ => err("Unknown command."),
    };
    (reply, Next::Continue)
}

/// The index of the message a number argument names, unless it is marked deleted.
fn pick(
    arg: Option<&str>,
    messages: &[Arc<StoredMessage>],
    deleted: &[bool],
) -> Result<usize, Vec<u8>> {
    let n: usize = arg
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| err("Invalid message number."))?;
    match n.checked_sub(1) {
        Some(i) if i < messages.len() && !deleted[i] => Ok(i),
        _ => Err(err("No such message.")),
    }
}

/// The messages not marked deleted, with their index.
fn live<'a>(
    messages: &'a [Arc<StoredMessage>],
    deleted: &'a [bool],
) -> impl Iterator<Item = (usize, &'a Arc<StoredMessage>)> + 'a {
    messages
        .iter()
        .enumerate()
        .filter(move |(i, _)| !deleted[*i])
}

/// Unique ids of the messages marked deleted.
fn marked_deleted<'a>(messages: &'a [Arc<StoredMessage>], deleted: &[bool]) -> Vec<&'a str> {
    messages
        .iter()
        .zip(deleted)
        .filter(|(_, d)| **d)
        .map(|(m, _)| m.uid.as_str())
        .collect()
}

/// The header, the empty line and the first `lines` lines of the body (RFC 1939 TOP).
fn top(message: &[u8], lines: usize) -> Vec<u8> {
    let split = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message.len(), |p| p + 4);
    let mut out = message[..split].to_vec();
    out.extend(
        message[split..]
            .split_inclusive(|b| *b == b'\n')
            .take(lines)
            .flatten(),
    );
    out
}
