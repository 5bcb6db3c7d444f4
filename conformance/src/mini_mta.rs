//! A small in-process SMTPS server that keeps what it receives in memory.
//!
//! It stands in for the KOM-LE mail service where no system package may be used: in the demo
//! (`komle-cm demo`) and in tests of the runtimes that must not depend on Postfix. The
//! end-to-end suites use the real Postfix instead (see [`crate::servers`]).
//! It speaks implicit TLS, EHLO, AUTH PLAIN/LOGIN against one account, MAIL, RCPT, DATA, RSET,
//! NOOP and QUIT; the DATA phase reuses the core's dot-unstuffing reader.
//!
//! A message counts as received ([`MiniMta::received`]) only if the 250 after its final dot
//! was written (it is recorded just before the write, so a client that read the 250 always
//! finds it, and taken out again when the write fails): a real MTA commits the message to its
//! queue and then says 250, and the
//! fault-injection loops check "client told 250 <=> message delivered once" against this
//! record. A peer that stalls cannot hold a session thread for longer than the read/write
//! timeout ([`MiniMta::start_with_timeout`]).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use komle_core::smtp::data::{DataOutcome, DataReader};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// A message as the MTA received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub from: String,
    pub recipients: Vec<String>,
    /// Unstuffed message bytes.
    pub data: Vec<u8>,
    /// Taken just before the 250 for the final dot was written: whoever saw that 250 saw it
    /// after this instant.
    pub acknowledged_at: Instant,
}

/// The running server; stops accepting when dropped.
pub struct MiniMta {
    addr: SocketAddr,
    mailbox: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    sessions: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct Account {
    user: String,
    password: String,
}

/// Read and write timeout of a session unless [`MiniMta::start_with_timeout`] says otherwise
/// (RFC 5321 §4.5.3.2 asks servers for 5 minutes).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Largest message accepted (`552 5.3.4` beyond): as much as gematik's reference KAS takes
/// (500 MiB), so the KIM 1.5 timing tool (`komle-load-kas`) can send its 100 MB mail straight
/// too. The message is held in memory while it arrives, like any mail of the test beds.
pub const MAX_MESSAGE: usize = 500 * 1024 * 1024;

impl MiniMta {
    /// Starts on `127.0.0.1:0` (or the given address) with one account.
    pub fn start(
        bind: &str,
        tls: Arc<ServerConfig>,
        user: &str,
        password: &str,
    ) -> std::io::Result<Self> {
        Self::start_with_timeout(bind, tls, user, password, DEFAULT_TIMEOUT)
    }

    /// The same with `timeout` for every read and write of a session: a silent or stalled
    /// peer is dropped after it.
    pub fn start_with_timeout(
        bind: &str,
        tls: Arc<ServerConfig>,
        user: &str,
        password: &str,
        timeout: Duration,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(bind)?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let mailbox = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let sessions = Arc::new(AtomicUsize::new(0));
        let account = Account {
            user: user.to_owned(),
            password: password.to_owned(),
        };
        let (mb, st, se) = (mailbox.clone(), stop.clone(), sessions.clone());
        thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (tls, mb, account) = (tls.clone(), mb.clone(), account.clone());
                        se.fetch_add(1, Ordering::SeqCst);
                        let se = se.clone();
                        thread::spawn(move || {
                            let _ = serve(stream, tls, &mb, &account, timeout);
                            se.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(20))
                    }
                    Err(_) => return,
                }
            }
        });
        Ok(Self {
            addr,
            mailbox,
            stop,
            sessions,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.mailbox.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// How many messages were received so far.
    pub fn received_count(&self) -> usize {
        self.mailbox.lock().map(|m| m.len()).unwrap_or_default()
    }

    /// Sessions (connections) still being served.
    pub fn open_sessions(&self) -> usize {
        self.sessions.load(Ordering::SeqCst)
    }
}

impl Drop for MiniMta {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(
    stream: TcpStream,
    tls: Arc<ServerConfig>,
    mailbox: &Mutex<Vec<Received>>,
    account: &Account,
    timeout: Duration,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let conn = ServerConnection::new(tls).map_err(std::io::Error::other)?;
    let mut io = BufReader::new(StreamOwned::new(conn, stream));
    let say = |io: &mut BufReader<StreamOwned<ServerConnection, TcpStream>>, s: &str| {
        io.get_mut().write_all(s.as_bytes())?;
        io.get_mut().flush()
    };
    say(&mut io, "220 demo-mta ESMTP\r\n")?;
    let mut authed = false;
    let mut from: Option<String> = None;
    let mut rcpts: Vec<String> = Vec::new();
    loop {
        let mut line = String::new();
        if io.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            say(
                &mut io,
                "250-demo-mta\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n",
            )?;
        } else if upper.starts_with("HELO") {
            say(&mut io, "250 demo-mta\r\n")?;
        } else if upper.starts_with("AUTH PLAIN ") {
            let ok = STANDARD
                .decode(line[11..].trim())
                .map(|raw| {
                    let parts: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
                    parts.len() == 3
                        && parts[1] == account.user.as_bytes()
                        && parts[2] == account.password.as_bytes()
                })
                .unwrap_or(false);
            authed = ok;
            say(
                &mut io,
                if ok {
                    "235 2.7.0 Authentication successful\r\n"
                } else {
                    "535 5.7.8 Authentication failed\r\n"
                },
            )?;
        } else if upper == "AUTH LOGIN" {
            say(&mut io, "334 VXNlcm5hbWU6\r\n")?;
            let user = read_b64(&mut io)?;
            say(&mut io, "334 UGFzc3dvcmQ6\r\n")?;
            let pass = read_b64(&mut io)?;
            authed = user == account.user.as_bytes() && pass == account.password.as_bytes();
            say(
                &mut io,
                if authed {
                    "235 2.7.0 Authentication successful\r\n"
                } else {
                    "535 5.7.8 Authentication failed\r\n"
                },
            )?;
        } else if upper.starts_with("MAIL FROM:") {
            if !authed {
                say(&mut io, "530 5.7.0 Authentication required\r\n")?;
                continue;
            }
            from = Some(path(&line[10..]));
            rcpts.clear();
            say(&mut io, "250 2.1.0 Ok\r\n")?;
        } else if upper.starts_with("RCPT TO:") {
            if from.is_none() {
                say(&mut io, "503 5.5.1 Error: need MAIL command\r\n")?;
                continue;
            }
            rcpts.push(path(&line[8..]));
            say(&mut io, "250 2.1.5 Ok\r\n")?;
        } else if upper == "DATA" {
            if rcpts.is_empty() {
                say(&mut io, "554 5.5.1 Error: no valid recipients\r\n")?;
                continue;
            }
            say(&mut io, "354 End data with <CR><LF>.<CR><LF>\r\n")?;
            let mut reader = DataReader::new(MAX_MESSAGE);
            while !reader.is_done() {
                let buf = io.fill_buf()?;
                if buf.is_empty() {
                    return Ok(());
                }
                let used = reader.feed(buf);
                io.consume(used);
            }
            match reader.finish() {
                DataOutcome::Complete(m) => {
                    let message = Received {
                        from: from.take().unwrap_or_default(),
                        recipients: core::mem::take(&mut rcpts),
                        data: m.as_slice().to_vec(),
                        acknowledged_at: Instant::now(),
                    };
                    // Delivered only once the 250 is out (see the module doc): a connection
                    // that broke before it leaves nothing behind. The message goes into the
                    // mailbox just before the 250 is written, so whoever reads the 250 also
                    // finds the message (no race with the client); a failed write takes it
                    // out again.
                    let (stamp, len) = (message.acknowledged_at, message.data.len());
                    if let Ok(mut mb) = mailbox.lock() {
                        mb.push(message);
                    }
                    if let Err(e) = say(&mut io, "250 2.0.0 Ok: queued\r\n") {
                        if let Ok(mut mb) = mailbox.lock()
                            && let Some(i) = mb
                                .iter()
                                .rposition(|r| r.acknowledged_at == stamp && r.data.len() == len)
                        {
                            mb.remove(i);
                        }
                        return Err(e);
                    }
                }
                DataOutcome::TooLarge => say(&mut io, "552 5.3.4 Message too big\r\n")?,
            }
        } else if upper == "RSET" {
            from = None;
            rcpts.clear();
            say(&mut io, "250 2.0.0 Ok\r\n")?;
        } else if upper == "NOOP" {
            say(&mut io, "250 2.0.0 Ok\r\n")?;
        } else if upper == "QUIT" {
            say(&mut io, "221 2.0.0 Bye\r\n")?;
            return Ok(());
        } else {
            say(&mut io, "502 5.5.2 Error: command not recognized\r\n")?;
        }
    }
}

fn read_b64<R: BufRead>(io: &mut R) -> std::io::Result<Vec<u8>> {
    let mut l = String::new();
    io.read_line(&mut l)?;
    Ok(STANDARD.decode(l.trim()).unwrap_or_default())
}

/// `<a@b.de> PARAMS` → `a@b.de`.
fn path(s: &str) -> String {
    let s = s.trim().trim_start_matches('<');
    s.split('>').next().unwrap_or_default().to_owned()
}
