//! HTTPS server for the simulator: HTTP/1.1 over rustls (ring) on std threads.
//!
//! WHY std threads: the simulator is a test double; a thread per connection keeps stall and
//! drop behaviours trivial and needs no async runtime. The server stops (and joins its
//! threads) on Drop, so tests cannot leak it.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};

use super::cert_issuer::{CertProfile, generate_rsa_key, issue};
use super::error::SimError;
use super::http::{self, ReadError};
use super::keys::KeyMaterial;
use super::simulator::{ResponseAction, Simulator};

/// Poll interval for the shutdown flag while accepting, reading or stalling.
const TICK: Duration = Duration::from_millis(50);
/// Idle keep-alive connections are closed after this.
const IDLE: Duration = Duration::from_secs(120);
const YEAR: u64 = 365 * 24 * 3600;

/// TLS and access options.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Require a client certificate issued by one of these CAs (DER).
    pub client_ca_der: Vec<Vec<u8>>,
    /// Require HTTP Basic authentication with this user and password.
    pub basic_auth: Option<(String, String)>,
    /// Use this server identity instead of a generated one (the chain's CA then is unknown to
    /// `ca_pem`, which stays the leaf's own certificate).
    pub server_identity: Option<KeyMaterial>,
    /// Bind address; default 127.0.0.1:0.
    pub bind: Option<SocketAddr>,
}

/// A running simulator server. Dropping it stops it.
pub struct SimServer {
    pub addr: SocketAddr,
    /// PEM of the CA that issued the server certificate (trust this in clients).
    pub ca_pem: String,
    /// DER of the same CA certificate.
    pub ca_der: Vec<u8>,
    shutdown: Arc<AtomicBool>,
    accept_thread: Option<JoinHandle<()>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    ctx: Arc<ConnCtx>,
}

fn err<E: std::fmt::Display>(e: E) -> SimError {
    SimError::Key(e.to_string())
}

/// Generates a CA and a TLS server certificate for 127.0.0.1/localhost.
fn generated_identity() -> Result<(KeyMaterial, KeyMaterial), SimError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(err)?
        .as_secs();
    let ca = issue(
        &generate_rsa_key()?,
        "CN=Konnektor-Simulator TLS CA,O=KOMLE TEST-ONLY,C=DE",
        1,
        now - 3600,
        now + YEAR,
        CertProfile::Root,
    )?;
    let leaf = issue(
        &generate_rsa_key()?,
        "CN=localhost,O=KOMLE TEST-ONLY,C=DE",
        2,
        now - 3600,
        now + YEAR,
        CertProfile::Leaf {
            issuer: &ca,
            tls_server: true,
        },
    )?;
    Ok((ca, leaf))
}

impl SimServer {
    /// Starts serving `sim` over HTTPS.
    pub fn start(sim: Simulator, tls: TlsOptions) -> Result<SimServer, SimError> {
        let (ca_der, leaf) = match &tls.server_identity {
            Some(id) => (id.cert_der.clone(), id.clone()),
            None => {
                let (ca, leaf) = generated_identity()?;
                (ca.cert_der, leaf)
            }
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(err)?;
        let builder = if tls.client_ca_der.is_empty() {
            builder.with_no_client_auth()
        } else {
            let mut roots = RootCertStore::empty();
            for ca in &tls.client_ca_der {
                roots.add(CertificateDer::from(ca.clone())).map_err(err)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(err)?;
            builder.with_client_cert_verifier(verifier)
        };
        let mut chain = vec![CertificateDer::from(leaf.cert_der.clone())];
        if tls.server_identity.is_none() {
            chain.push(CertificateDer::from(ca_der.clone()));
        }
        let key =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.private_key_pkcs8_der.clone()));
        let config = Arc::new(builder.with_single_cert(chain, key).map_err(err)?);

        let listener = TcpListener::bind(
            tls.bind
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
        )
        .map_err(err)?;
        listener.set_nonblocking(true).map_err(err)?;
        let addr = listener.local_addr().map_err(err)?;
        let shutdown = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::new(Mutex::new(Vec::new()));
        let ctx = Arc::new(ConnCtx {
            sim,
            config,
            basic_auth: tls
                .basic_auth
                .map(|(u, p)| format!("Basic {}", STANDARD.encode(format!("{u}:{p}")))),
            base_url: format!("https://{addr}"),
            shutdown: shutdown.clone(),
        });
        let accept_thread = {
            let shutdown = shutdown.clone();
            let connections = connections.clone();
            std::thread::Builder::new()
                .name("konnektor-sim-accept".into())
                .spawn({
                    let ctx = ctx.clone();
                    move || accept_loop(listener, ctx, shutdown, connections)
                })
                .map_err(err)?
        };
        let ca_pem = der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &ca_der)
            .map_err(err)?;
        Ok(SimServer {
            addr,
            ca_pem,
            ca_der,
            shutdown,
            accept_thread: Some(accept_thread),
            connections,
            ctx,
        })
    }

    /// `https://127.0.0.1:<port>`
    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The simulator being served (its counters: crypto operations, memo hits).
    pub fn simulator(&self) -> &Simulator {
        &self.ctx.sim
    }

    /// Stops accepting and closes all connections (also done on Drop).
    pub fn stop(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        let handles: Vec<_> = match self.connections.lock() {
            Ok(mut c) => c.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        for h in handles {
            let _ = h.join();
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.stop();
    }
}

struct ConnCtx {
    sim: Simulator,
    config: Arc<ServerConfig>,
    basic_auth: Option<String>,
    base_url: String,
    shutdown: Arc<AtomicBool>,
}

fn accept_loop(
    listener: TcpListener,
    ctx: Arc<ConnCtx>,
    shutdown: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
    while !shutdown.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let ctx = ctx.clone();
                let spawned = std::thread::Builder::new()
                    .name("konnektor-sim-conn".into())
                    .spawn(move || {
                        if let Err(e) = serve_connection(stream, &ctx) {
                            log::debug!("konnektor-sim connection ended: {e}");
                        }
                    });
                if let (Ok(h), Ok(mut list)) = (spawned, connections.lock()) {
                    list.retain(|h| !h.is_finished());
                    list.push(h);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(TICK),
            Err(e) => {
                log::warn!("konnektor-sim accept failed: {e}");
                std::thread::sleep(TICK);
            }
        }
    }
}

/// Reads with a short timeout so the shutdown flag is seen; gives up after `IDLE`.
struct PatientStream<'a> {
    inner: StreamOwned<ServerConnection, TcpStream>,
    shutdown: &'a AtomicBool,
}

impl io::Read for PatientStream<'_> {
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
                    if self.shutdown.load(Ordering::SeqCst) || start.elapsed() > IDLE {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "idle or shutting down",
                        ));
                    }
                }
                other => return other,
            }
        }
    }
}

impl io::Write for PatientStream<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Sleeps up to `d`, waking early on shutdown; returns false if shutting down.
fn patient_sleep(d: Duration, shutdown: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if shutdown.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(TICK.min(end.saturating_duration_since(Instant::now())));
    }
    !shutdown.load(Ordering::SeqCst)
}

fn serve_connection(tcp: TcpStream, ctx: &ConnCtx) -> io::Result<()> {
    tcp.set_nonblocking(false)?;
    tcp.set_read_timeout(Some(TICK))?;
    tcp.set_nodelay(true)?;
    let conn = ServerConnection::new(ctx.config.clone()).map_err(io::Error::other)?;
    let mut stream = PatientStream {
        inner: StreamOwned::new(conn, tcp),
        shutdown: &ctx.shutdown,
    };
    let mut buf = Vec::new();
    loop {
        let req = match http::read_request(&mut stream, &mut buf) {
            Ok(r) => r,
            Err(ReadError::Closed) => return Ok(()),
            Err(ReadError::Io(e)) => return Err(e),
            Err(ReadError::Bad(status, why)) => {
                http::write_response(&mut stream, status, "text/plain", &[], why.as_bytes(), true)?;
                return Ok(());
            }
        };
        if let Some(expected) = &ctx.basic_auth
            && req.header("authorization") != Some(expected.as_str())
        {
            http::write_response(
                &mut stream,
                401,
                "text/plain",
                &[("WWW-Authenticate", "Basic realm=\"Konnektor\"")],
                b"unauthorized",
                false,
            )?;
            continue;
        }
        let resp = match req.method.as_str() {
            "GET" => ctx.sim.handle_get(&req.path, &ctx.base_url),
            "POST" => ctx
                .sim
                .handle(req.header("soapaction").unwrap_or_default(), &req.body),
            _ => {
                http::write_response(
                    &mut stream,
                    405,
                    "text/plain",
                    &[],
                    b"method not allowed",
                    true,
                )?;
                return Ok(());
            }
        };
        if !patient_sleep(resp.delay, &ctx.shutdown) {
            return Ok(());
        }
        match resp.action {
            ResponseAction::Respond => {
                let close = req.wants_close();
                http::write_response(
                    &mut stream,
                    resp.status,
                    resp.content_type,
                    &[],
                    &resp.body,
                    close,
                )?;
                if close {
                    stream.inner.conn.send_close_notify();
                    let _ = stream.inner.flush();
                    return Ok(());
                }
            }
            ResponseAction::Stall => {
                // Hold the connection without answering until the server stops.
                while patient_sleep(Duration::from_secs(1), &ctx.shutdown) {}
                return Ok(());
            }
            ResponseAction::Drop => {
                let _ = stream.inner.sock.shutdown(std::net::Shutdown::Both);
                return Ok(());
            }
        }
    }
}
