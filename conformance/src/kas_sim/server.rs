//! HTTP/1.1 over rustls on std threads: the simulated KAS (I_Attachment_Service 2.4).
//!
//! WHY std threads: a test double; a thread per connection keeps it simple and needs no
//! async runtime. Stops and joins its threads on Drop.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustls::{ServerConnection, StreamOwned};

use super::multipart;
use super::routes::{
    self, ACCOUNT_LIMIT_BASE_PATH, ADD, BASE_PATH, DELETE, GET_LIMITS, HEAD, READ, Route,
};
use super::store::{KasSimConfig, RecordedRequest, Store, Stored};
use super::tls::KasTls;

const TICK: Duration = Duration::from_millis(50);
const IDLE: Duration = Duration::from_secs(60);
const MAX_HEADER: usize = 64 * 1024;
/// Room for the form fields around the attachment part.
const FORM_OVERHEAD: u64 = 64 * 1024;

/// Why the simulator could not start.
#[derive(Debug)]
pub enum KasSimError {
    Tls(String),
    Io(io::Error),
}

impl std::fmt::Display for KasSimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tls(e) => write!(f, "KAS simulator TLS: {e}"),
            Self::Io(e) => write!(f, "KAS simulator: {e}"),
        }
    }
}

impl std::error::Error for KasSimError {}

impl From<io::Error> for KasSimError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

struct Shared {
    config: KasSimConfig,
    store: Mutex<Store>,
    origin: String,
    shutdown: AtomicBool,
    seed: u64,
}

impl Shared {
    fn store(&self) -> Option<MutexGuard<'_, Store>> {
        self.store.lock().ok()
    }
}

/// A running simulated KAS. Dropping it stops it.
pub struct KasSim {
    pub addr: SocketAddr,
    pub tls: KasTls,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl std::fmt::Debug for KasSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KasSim").field("addr", &self.addr).finish()
    }
}

impl KasSim {
    /// Starts on 127.0.0.1 with fresh TLS material.
    ///
    /// # Errors
    /// [`KasSimError`] if TLS material or the listener cannot be set up.
    pub fn start(config: KasSimConfig) -> Result<Self, KasSimError> {
        let tls = KasTls::generate().map_err(|e| KasSimError::Tls(e.to_string()))?;
        let server_config = tls
            .server_config()
            .map_err(|e| KasSimError::Tls(e.to_string()))?;
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(addr.port());
        let shared = Arc::new(Shared {
            config,
            store: Mutex::new(Store::default()),
            origin: format!("https://{addr}"),
            shutdown: AtomicBool::new(false),
            seed,
        });
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = {
            let shared = shared.clone();
            let connections = connections.clone();
            std::thread::Builder::new()
                .name("kas-sim-accept".into())
                .spawn(move || accept_loop(listener, server_config, shared, connections))?
        };
        Ok(Self {
            addr,
            tls,
            shared,
            accept: Some(accept),
            connections,
        })
    }

    /// `https://127.0.0.1:<port>/attachments/v2.4`: what DNS-SD (SRV host and port, TXT base
    /// path) yields for this KAS.
    pub fn base_url(&self) -> String {
        format!("{}{BASE_PATH}", self.shared.origin)
    }

    /// `https://127.0.0.1:<port>/AccountLimit/v1.1/limit`: getLimits of the account manager
    /// (served by the same simulator).
    pub fn limits_url(&self) -> String {
        format!(
            "{}{ACCOUNT_LIMIT_BASE_PATH}{}",
            self.shared.origin, GET_LIMITS.path
        )
    }

    /// Makes the next `add_Attachment` calls answer these statuses (fault injection).
    pub fn force_add_status(&self, statuses: &[u16]) {
        if let Some(mut s) = self.shared.store() {
            s.forced_add = statuses.iter().rev().copied().collect();
        }
    }

    /// The shapes of all requests received so far.
    pub fn recorded(&self) -> Vec<RecordedRequest> {
        self.shared
            .store()
            .map(|s| s.recorded.clone())
            .unwrap_or_default()
    }

    /// Number of stored objects.
    pub fn stored_count(&self) -> usize {
        self.shared.store().map_or(0, |s| s.objects.len())
    }

    /// A copy of a stored object (tests inspect recipients, expiry, size).
    pub fn stored(&self, id: &str) -> Option<Stored> {
        self.shared.store()?.objects.get(id).cloned()
    }

    /// Replaces a stored object's data (fault injection: a KAS that returns other data than
    /// it was given, A_19372-03). False when there is no such object.
    pub fn replace_data(&self, id: &str, data: Vec<u8>) -> bool {
        match self.shared.store() {
            Some(mut s) => match s.objects.get_mut(id) {
                Some(o) => {
                    o.data = data;
                    true
                }
                None => false,
            },
            None => false,
        }
    }

    /// Stops accepting and joins all connections (also done on Drop).
    pub fn stop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let handles: Vec<_> = self
            .connections
            .lock()
            .map(|mut c| c.drain(..).collect())
            .unwrap_or_default();
        for h in handles {
            let _ = h.join();
        }
    }
}

impl Drop for KasSim {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    shared: Arc<Shared>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
    while !shared.shutdown.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((tcp, _)) => {
                let shared = shared.clone();
                let config = config.clone();
                let spawned = std::thread::Builder::new()
                    .name("kas-sim-conn".into())
                    .spawn(move || {
                        if let Err(e) = serve(tcp, config, &shared) {
                            log::debug!("kas-sim connection ended: {e}");
                        }
                    });
                if let (Ok(h), Ok(mut list)) = (spawned, connections.lock()) {
                    list.retain(|h| !h.is_finished());
                    list.push(h);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(TICK),
            Err(_) => std::thread::sleep(TICK),
        }
    }
}

/// Reads with a short socket timeout so the shutdown flag is seen; gives up after [`IDLE`].
struct Patient<'a> {
    inner: StreamOwned<ServerConnection, TcpStream>,
    shared: &'a Shared,
}

impl Read for Patient<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let start = Instant::now();
        loop {
            match self.inner.read(buf) {
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if self.shared.shutdown.load(Ordering::SeqCst) || start.elapsed() > IDLE {
                        return Err(e);
                    }
                }
                other => return other,
            }
        }
    }
}

impl Write for Patient<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Response {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    /// For HEAD: the Content-Length announced without a body.
    head_length: Option<u64>,
    close: bool,
}

impl Response {
    fn json(status: u16, value: &serde_json::Value) -> Self {
        Self {
            status,
            content_type: "application/json; charset=utf-8",
            body: serde_json::to_vec(value).unwrap_or_default(),
            head_length: None,
            close: false,
        }
    }

    /// The yaml's `Error` object (CommonSchemas.yaml: errorCode, description, traceId).
    fn error(status: u16, text: &str) -> Self {
        Self::json(
            status,
            &serde_json::json!({"errorCode": status.to_string(), "description": text}),
        )
    }
}

fn serve(tcp: TcpStream, config: Arc<rustls::ServerConfig>, shared: &Shared) -> io::Result<()> {
    tcp.set_read_timeout(Some(TICK))?;
    tcp.set_nodelay(true)?;
    let conn = ServerConnection::new(config).map_err(io::Error::other)?;
    let mut stream = Patient {
        inner: StreamOwned::new(conn, tcp),
        shared,
    };
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let Some(req) = read_head(&mut stream, &mut buf)? else {
            return Ok(());
        };
        if let Some(mut s) = shared.store() {
            s.recorded.push(RecordedRequest {
                method: req.method.clone(),
                path: req.path.clone(),
                headers: req.headers.iter().map(|(n, _)| n.clone()).collect(),
                ..RecordedRequest::default()
            });
        }
        let response = match routes::route(&req.method, &req.path) {
            None => {
                drain_body(&mut stream, &mut buf, &req)?;
                Response::error(404, "no such route")
            }
            Some((route, id)) => {
                let mut r = handle(&mut stream, &mut buf, &req, route, id, shared)?;
                r.status = routes::allowed_status(route, r.status);
                r
            }
        };
        let close = response.close
            || req
                .header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        write_response(&mut stream, &req, &response, close)?;
        if close {
            stream.inner.conn.send_close_notify();
            let _ = stream.inner.flush();
            return Ok(());
        }
    }
}

fn read_head<S: Read>(stream: &mut S, buf: &mut Vec<u8>) -> io::Result<Option<Request>> {
    let end = loop {
        if let Some(p) = memchr::memmem::find(buf, b"\r\n\r\n") {
            break p;
        }
        if buf.len() > MAX_HEADER {
            return Err(io::Error::other("header too large"));
        }
        let mut chunk = [0u8; 8192];
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if buf.is_empty() && e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end + 4);
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_owned();
    let path = first.next().unwrap_or("").to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Some(Request {
        method,
        path,
        headers,
    }))
}

fn content_length(req: &Request) -> Option<u64> {
    req.header("content-length")?.parse().ok()
}

/// Reads exactly `len` body bytes (what was already buffered first).
fn read_body<S: Read>(stream: &mut S, buf: &mut Vec<u8>, len: u64) -> io::Result<Vec<u8>> {
    let len = usize::try_from(len).map_err(io::Error::other)?;
    let mut body = Vec::with_capacity(len);
    let take = len.min(buf.len());
    body.extend_from_slice(&buf[..take]);
    buf.drain(..take);
    // Straight into the body's spare capacity: no staging copy (a 100 MB upload is read once).
    let want = (len - body.len()) as u64;
    let n = (&mut *stream).take(want).read_to_end(&mut body)?;
    if (n as u64) < want {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(body)
}

fn drain_body<S: Read>(stream: &mut S, buf: &mut Vec<u8>, req: &Request) -> io::Result<()> {
    if let Some(len) = content_length(req).filter(|&l| l <= FORM_OVERHEAD) {
        read_body(stream, buf, len)?;
    }
    Ok(())
}

fn basic_user(req: &Request, shared: &Shared) -> Result<String, ()> {
    if shared.config.accounts.is_empty() {
        return Ok(String::new());
    }
    let token = req
        .header("authorization")
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|t| STANDARD.decode(t.trim()).ok())
        .and_then(|t| String::from_utf8(t).ok())
        .ok_or(())?;
    let (user, pass) = token.split_once(':').ok_or(())?;
    shared
        .config
        .accounts
        .iter()
        .any(|(u, p)| u == user && p == pass)
        .then(|| user.to_owned())
        .ok_or(())
}

fn handle<S: Read + Write>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    req: &Request,
    route: Route,
    id: Option<String>,
    shared: &Shared,
) -> io::Result<Response> {
    if route == ADD {
        return add(stream, buf, req, shared);
    }
    drain_body(stream, buf, req)?;
    let id = id.unwrap_or_default();
    let Some(mut store) = shared.store() else {
        return Ok(Response::error(500, "store unavailable"));
    };
    if route == GET_LIMITS {
        let Ok(user) = basic_user(req, shared) else {
            return Ok(Response::error(401, "authentication required"));
        };
        let c = &shared.config;
        let used = store.used.get(&user).copied().unwrap_or(0);
        return Ok(Response::json(
            200,
            &serde_json::json!({
                "dataTimeToLive": c.data_time_to_live,
                "maxMailSize": c.max_mail_size,
                "quota": c.quota,
                "remainQuota": c.quota.saturating_sub(used),
            }),
        ));
    }
    if route == DELETE {
        let Ok(user) = basic_user(req, shared) else {
            return Ok(Response::error(401, "authentication required"));
        };
        return Ok(match store.objects.get(&id) {
            Some(o) if o.owner == user => {
                let size = o.data.len() as u64;
                store.objects.remove(&id);
                if let Some(u) = store.used.get_mut(&user) {
                    *u = u.saturating_sub(size);
                }
                Response::json(200, &serde_json::json!({}))
            }
            _ => Response::error(404, "not found"),
        });
    }
    let recipient = req.header("recipient").map(str::to_ascii_lowercase);
    let listed = |o: &Stored| {
        recipient
            .as_deref()
            .is_some_and(|r| o.recipients.iter().any(|x| x.eq_ignore_ascii_case(r)))
    };
    if route == HEAD {
        return Ok(match store.objects.get(&id) {
            Some(o) if listed(o) => Response {
                status: 200,
                content_type: "application/octet-stream",
                body: Vec::new(),
                head_length: Some(o.data.len() as u64),
                close: false,
            },
            _ => Response::error(404, "not found"),
        });
    }
    debug_assert_eq!(route, READ);
    if recipient.is_none() {
        return Ok(Response::error(400, "recipient header missing"));
    }
    let max = shared.config.max_downloads;
    Ok(match store.objects.get_mut(&id) {
        None => Response::error(404, "not found"),
        Some(o) if !listed(o) => Response::error(403, "recipient not in the recipient list"),
        Some(o) if o.downloads >= max => Response::error(429, "downloaded too many times"),
        Some(o) => {
            o.downloads += 1;
            Response {
                status: 200,
                content_type: "application/octet-stream",
                body: o.data.clone(),
                head_length: None,
                close: false,
            }
        }
    })
}

fn add<S: Read + Write>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    req: &Request,
    shared: &Shared,
) -> io::Result<Response> {
    let refuse = |status: u16, text: &str| -> io::Result<Response> {
        // The body was not read: close after answering.
        let mut r = Response::error(status, text);
        r.close = true;
        Ok(r)
    };
    // A_22427-01: Content-Length of the whole body is mandatory.
    let Some(len) = content_length(req) else {
        return refuse(400, "Content-Length missing");
    };
    if len > shared.config.max_mail_size + FORM_OVERHEAD {
        return refuse(413, "payload too large");
    }
    if req
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        stream.flush()?;
    }
    let body = read_body(stream, buf, len)?;
    // Checked after reading the body, so the client sees the 401 rather than a broken pipe.
    let Ok(user) = basic_user(req, shared) else {
        return Ok(Response::error(401, "authentication required"));
    };
    let forced = shared.store().and_then(|mut s| s.forced_add.pop());
    if let Some(status) = forced {
        return Ok(Response::error(status, "forced by the test"));
    }
    let Some(boundary) = req.header("content-type").and_then(multipart::boundary) else {
        return Ok(Response::error(400, "not multipart/form-data"));
    };
    let Ok(parts) = multipart::parse(&body, &boundary) else {
        return Ok(Response::error(400, "malformed multipart body"));
    };
    if let Some(last) = shared.store().as_mut().and_then(|s| s.recorded.last_mut()) {
        last.form_fields = parts.iter().map(|p| p.name.clone()).collect();
        last.attachment_headers = parts
            .iter()
            .find(|p| p.name == "attachment")
            .map(|p| p.headers.iter().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default();
        // The body was read to Content-Length and parsed to its closing delimiter.
        last.content_length_exact = body.ends_with(format!("--{boundary}--\r\n").as_bytes());
    }
    let text = |name: &str| {
        parts
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| std::str::from_utf8(&body[p.data.clone()]).ok())
            .map(str::to_owned)
    };
    let recipients: Vec<String> = parts
        .iter()
        .filter(|p| p.name == "recipients")
        .filter_map(|p| std::str::from_utf8(&body[p.data.clone()]).ok())
        .map(|r| r.trim().to_owned())
        .collect();
    let (Some(message_id), Some(expires)) = (text("messageID"), text("expires")) else {
        return Ok(Response::error(400, "messageID or expires missing"));
    };
    if recipients.is_empty() || recipients.iter().any(|r| !r.contains('@')) {
        return Ok(Response::error(
            400,
            "recipients missing or not e-mail addresses",
        ));
    }
    let Some(attachment) = parts.iter().find(|p| p.name == "attachment") else {
        return Ok(Response::error(400, "attachment missing"));
    };
    let size = attachment.data.len() as u64;
    // The part's own Content-Length is required (yaml `encoding`) and must be right.
    if attachment
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok())
        != Some(size)
    {
        return Ok(Response::error(
            400,
            "attachment Content-Length missing or wrong",
        ));
    }
    if size > shared.config.max_mail_size {
        return Ok(Response::error(413, "payload too large"));
    }
    let Some(mut store) = shared.store() else {
        return Ok(Response::error(500, "store unavailable"));
    };
    let used = store.used.get(&user).copied().unwrap_or(0);
    if used + size > shared.config.quota {
        return Ok(Response::error(507, "quota exceeded"));
    }
    let id = store.new_id(shared.seed);
    // The object is the body minus the form around it: cut in place, not copied.
    let range = attachment.data.clone();
    let mut data = body;
    data.truncate(range.end);
    data.drain(..range.start);
    store.used.insert(user.clone(), used + size);
    store.objects.insert(
        id.clone(),
        Stored {
            data,
            recipients,
            message_id,
            expires,
            owner: user,
            downloads: 0,
        },
    );
    Ok(Response::json(
        201,
        &serde_json::json!({"sharedLink": format!("{}{BASE_PATH}/attachment/{id}", shared.origin)}),
    ))
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        507 => "Insufficient Storage",
        _ => "Internal Server Error",
    }
}

fn write_response<S: Write>(
    stream: &mut S,
    req: &Request,
    r: &Response,
    close: bool,
) -> io::Result<()> {
    let length = r.head_length.unwrap_or(r.body.len() as u64);
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {length}\r\nConnection: {}\r\n\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        if close { "close" } else { "keep-alive" }
    );
    stream.write_all(head.as_bytes())?;
    if req.method != "HEAD" {
        stream.write_all(&r.body)?;
    }
    stream.flush()
}
