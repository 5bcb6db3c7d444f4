//! The listener loop shared by the SMTP and POP3 proxies on every runtime: accepts clients
//! (implicit TLS), limits concurrent sessions, runs one task per connection and shuts down
//! gracefully.
//!
//! Over the limit a client still gets a TLS handshake and then the protocol's "too many
//! sessions" reply, so its mail program shows a reason and retries later instead of reporting a
//! broken connection. Those polite refusals are bounded too (as many at a time as sessions):
//! beyond that a connection is closed at once, so a flood of connections cannot pile up tasks
//! and file descriptors waiting for handshakes (LIMITS.md). On shutdown the listener stops
//! accepting at once; running sessions may finish within a grace period, then they are cut off.
//!
//! An optional limit per client IP address ([`AddressSlots`]) keeps one host from holding all
//! sessions; a client over it is treated exactly like one over the overall limit.
//!
//! Behind a load balancer ([`ServerLimits::proxy_protocol`]) every connection starts with a
//! PROXY protocol v2 header ([`komle_core::proxy_protocol`]), read before the TLS handshake;
//! header and handshake together must complete within the handshake timeout. The header's source address is then the client's address for
//! the logs and the per-address limit. Since that address is only known after the header, the
//! per-address slot is taken in the connection's task rather than in the accept loop. Without
//! the setting no header is read, so no client can claim another's address.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_lock::Semaphore;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWriteExt, future};
use futures_rustls::TlsAcceptor;
use komle_core::proxy_protocol::{self, Parsed, ProxyHeaderError};
use rustls::ServerConfig;

use crate::limits::{AddressSlots, ServerLimits};
use crate::runtime::{Runtime, ServerRuntime, within};
use crate::stats::Stats;
use crate::tls_io::{self, ClientStream};

/// A bound listener for one protocol on runtime `R`.
pub struct Listener<R: ServerRuntime> {
    runtime: R,
    listener: R::Listener,
    acceptor: TlsAcceptor,
    limits: ServerLimits,
    /// "SMTP" or "POP3", for log lines.
    protocol: &'static str,
    /// What a client over the session limit is told before the connection is closed.
    refusal: &'static [u8],
    /// Connection tasks still running.
    live: Arc<AtomicUsize>,
    /// Where refusals are counted.
    stats: Arc<Stats>,
}

/// Counts a running connection task; the count drops with the guard, so a task that is
/// cancelled (dropped at shutdown) is uncounted as well as one that ends.
struct Live(Arc<AtomicUsize>);

impl Live {
    fn new(counter: &Arc<AtomicUsize>) -> Live {
        counter.fetch_add(1, Ordering::SeqCst);
        Live(counter.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Correlation ids for log lines: random per process start, counting per session, so ids from
/// different runs do not collide in aggregated logs.
pub fn session_id() -> String {
    static BASE: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let base = *BASE.get_or_init(rand::random::<u32>);
    format!("{base:08x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

impl<R: ServerRuntime> Listener<R> {
    /// Binds `addr`.
    pub async fn bind(
        runtime: R,
        addr: SocketAddr,
        tls: Arc<ServerConfig>,
        limits: ServerLimits,
        protocol: &'static str,
        refusal: &'static [u8],
    ) -> io::Result<Self> {
        let listener = runtime.bind(addr).await?;
        Ok(Self::from_bound(
            runtime, listener, tls, limits, protocol, refusal,
        ))
    }

    /// Takes a listener the caller bound itself (an embedding service owns its sockets).
    pub fn from_bound(
        runtime: R,
        listener: R::Listener,
        tls: Arc<ServerConfig>,
        limits: ServerLimits,
        protocol: &'static str,
        refusal: &'static [u8],
    ) -> Self {
        Self {
            runtime,
            listener,
            acceptor: TlsAcceptor::from(tls),
            limits,
            protocol,
            refusal,
            live: Arc::new(AtomicUsize::new(0)),
            stats: Arc::new(Stats::default()),
        }
    }

    /// Counts refusals into `stats` (shared with the sessions' counters).
    pub fn set_stats(&mut self, stats: Arc<Stats>) {
        self.stats = stats;
    }

    /// The number of client connections whose task is still running (TLS handshake, session
    /// or refusal), readable while the listener runs: 0 once every client is gone, which is
    /// how tests prove that no session task was left behind.
    pub fn live_connections(&self) -> Arc<AtomicUsize> {
        self.live.clone()
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        R::local_addr(&self.listener)
    }

    /// Accepts until `shutdown` completes and runs `session(stream, peer, id)` per client after
    /// the TLS handshake; then waits up to the grace period for running sessions. Returns how
    /// many sessions had to be cut off.
    pub async fn run<F, Fut>(
        self,
        shutdown: impl Future<Output = ()>,
        session: F,
    ) -> io::Result<usize>
    where
        F: Fn(ClientStream<R>, SocketAddr, String) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let protocol = self.protocol;
        let rt = self.runtime.clone();
        let slots = Arc::new(Semaphore::new(self.limits.max_sessions));
        let refusal_slots = Arc::new(Semaphore::new(self.limits.max_sessions.max(1)));
        let address_slots = AddressSlots::new(self.limits.max_sessions_per_address);
        let mut tasks: Vec<R::Task> = Vec::new();
        let mut shutdown = std::pin::pin!(shutdown);
        let local = self.local_addr()?;
        let per_address = self
            .limits
            .max_sessions_per_address
            .map_or_else(String::new, |n| format!(", max {n} per client address"));
        let proxied = self.limits.proxy_protocol;
        log::info!(
            "{protocol} listening on {local} (implicit TLS{}, max {} sessions{per_address})",
            if proxied {
                " after a PROXY v2 header"
            } else {
                ""
            },
            self.limits.max_sessions
        );
        loop {
            let accepted = future::or(async { Some(rt.accept(&self.listener).await) }, async {
                (&mut shutdown).await;
                None
            })
            .await;
            let (tcp, peer) = match accepted {
                None => break,
                Some(Ok(pair)) => pair,
                Some(Err(e)) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    log::warn!("{protocol} accept failed: {e}");
                    rt.sleep_until(rt.now() + Duration::from_millis(100)).await;
                    continue;
                }
            };
            tasks.retain(|t| !R::is_finished(t));
            let acceptor = self.acceptor.clone();
            let handshake = self.limits.handshake_timeout;
            // The address slot first: a client over its own limit must not take (and then
            // hand back) one of the overall slots. Behind a balancer the client's address is
            // known only after its header: the address slot is then taken in the task.
            let admitted = if proxied {
                match slots.try_acquire_arc() {
                    Some(permit) => Ok((permit, None)),
                    None => Err("too many sessions"),
                }
            } else {
                match address_slots.try_acquire(peer.ip()) {
                    None => Err("too many sessions from this address"),
                    Some(address) => match slots.try_acquire_arc() {
                        Some(permit) => Ok((permit, Some(address))),
                        None => Err("too many sessions"),
                    },
                }
            };
            match admitted {
                Ok((permit, address)) => {
                    let session = session.clone();
                    let live = Live::new(&self.live);
                    let task_rt = rt.clone();
                    let (address_slots, stats) = (address_slots.clone(), self.stats.clone());
                    let refusal = self.refusal;
                    tasks.push(rt.spawn(Box::pin(async move {
                        let _held = (permit, live);
                        let id = session_id();
                        let mut tcp = tcp;
                        // Header and TLS handshake together get the handshake timeout.
                        let deadline = task_rt.now() + handshake;
                        let (peer, _address) = match address {
                            Some(address) => (peer, address),
                            None => {
                                let Some(client) =
                                    proxied_client(&task_rt, &mut tcp, peer, handshake, &id).await
                                else {
                                    return;
                                };
                                let Some(address) = address_slots.try_acquire(client.ip()) else {
                                    stats.sessions_refused.fetch_add(1, Ordering::Relaxed);
                                    log::warn!(
                                        "{protocol} session from {client} refused: too many sessions from this address"
                                    );
                                    refuse(&task_rt, tcp, acceptor, handshake, refusal).await;
                                    return;
                                };
                                (client, address)
                            }
                        };
                        let left = deadline.saturating_duration_since(task_rt.now());
                        match tls_io::accept(&task_rt, &acceptor, tcp, left).await {
                            Ok(client) => session(client, peer, id).await,
                            Err(e) => log::info!("session={id} peer={peer} TLS accept failed: {e}"),
                        }
                    })));
                }
                Err(why) => {
                    self.stats.sessions_refused.fetch_add(1, Ordering::Relaxed);
                    match refusal_slots.try_acquire_arc() {
                        Some(permit) => {
                            let live = Live::new(&self.live);
                            let refusal = self.refusal;
                            let task_rt = rt.clone();
                            tasks.push(rt.spawn(Box::pin(async move {
                                let _held = (permit, live);
                                let mut tcp = tcp;
                                let mut client = peer;
                                if proxied {
                                    let id = session_id();
                                    match proxied_client(&task_rt, &mut tcp, peer, handshake, &id)
                                        .await
                                    {
                                        Some(c) => client = c,
                                        None => return,
                                    }
                                }
                                log::warn!("{protocol} session from {client} refused: {why}");
                                refuse(&task_rt, tcp, acceptor, handshake, refusal).await;
                            })));
                        }
                        None => {
                            log::debug!("{protocol} connection from {peer} closed: {why}");
                            drop(tcp);
                        }
                    }
                }
            }
        }
        drop(self.listener);
        tasks.retain(|t| !R::is_finished(t));
        log::info!(
            "{protocol} listener on {local} closed; waiting up to {:?} for {} session(s)",
            self.limits.grace,
            tasks.len()
        );
        let deadline = rt.now() + self.limits.grace;
        let mut cut = 0;
        for task in tasks {
            // A task that did not finish in time is dropped, which cancels it.
            if within(&rt, deadline, task).await.is_none() {
                cut += 1;
            }
        }
        if cut > 0 {
            log::warn!("{protocol} shutdown: {cut} session(s) cut off after the grace period");
        }
        Ok(cut)
    }
}

/// Why a connection's PROXY header was not accepted; the connection is closed.
#[derive(Debug)]
pub enum ProxyHeaderFailure {
    /// The bytes are not a PROXY v2 header (e.g. a mail client connecting directly).
    Header(ProxyHeaderError),
    /// Closed before sending a byte: the balancer's TCP health check.
    Closed,
    /// The connection failed or closed in the middle of the header.
    Io(io::Error),
    /// The header was not complete within the handshake timeout.
    Timeout,
}

impl std::fmt::Display for ProxyHeaderFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyHeaderFailure::Header(e) => e.fmt(f),
            ProxyHeaderFailure::Closed => f.write_str("closed before sending a header"),
            ProxyHeaderFailure::Io(e) => write!(f, "connection failed in the header: {e}"),
            ProxyHeaderFailure::Timeout => f.write_str("no complete header in time"),
        }
    }
}

impl std::error::Error for ProxyHeaderFailure {}

/// Reads a PROXY v2 header from `tcp` within `timeout`, exactly up to its end (the TLS
/// handshake follows), and returns the client address it names: its source, or `connection`
/// for a LOCAL header (the balancer's health check with `check-send-proxy`). Reads at most
/// [`proxy_protocol::FIXED_LEN`] + [`proxy_protocol::MAX_ADDRESS_BLOCK`] bytes.
pub async fn read_proxy_header<R: Runtime, S: AsyncRead + Unpin>(
    rt: &R,
    tcp: &mut S,
    connection: SocketAddr,
    timeout: Duration,
) -> Result<SocketAddr, ProxyHeaderFailure> {
    let read = async {
        let mut buf = [0u8; proxy_protocol::FIXED_LEN + proxy_protocol::MAX_ADDRESS_BLOCK];
        let mut filled = 0;
        loop {
            // Parsed after every read: a client that speaks TLS directly is refused on its
            // first bytes, and nothing past the header's end is ever read.
            match proxy_protocol::parse(&buf[..filled]).map_err(ProxyHeaderFailure::Header)? {
                Parsed::Complete { header, .. } => return Ok(header.client_address(connection)),
                Parsed::Incomplete { total } => {
                    let n = tcp
                        .read(&mut buf[filled..total])
                        .await
                        .map_err(ProxyHeaderFailure::Io)?;
                    if n == 0 {
                        return Err(if filled == 0 {
                            ProxyHeaderFailure::Closed
                        } else {
                            ProxyHeaderFailure::Io(io::ErrorKind::UnexpectedEof.into())
                        });
                    }
                    filled += n;
                }
            }
        }
    };
    within(rt, rt.now() + timeout, read)
        .await
        .unwrap_or(Err(ProxyHeaderFailure::Timeout))
}

/// The client behind the balancer at `connection`, or `None` (logged) when its header failed.
async fn proxied_client<R: ServerRuntime>(
    rt: &R,
    tcp: &mut R::Tcp,
    connection: SocketAddr,
    timeout: Duration,
    id: &str,
) -> Option<SocketAddr> {
    match read_proxy_header(rt, tcp, connection, timeout).await {
        Ok(client) => {
            log::info!("session={id} peer={client} via {connection} (PROXY protocol)");
            Some(client)
        }
        Err(ProxyHeaderFailure::Closed) => {
            // A load balancer's health check connects and closes; not worth a line each time.
            log::debug!("session={id} connection from {connection} closed before a PROXY header");
            None
        }
        Err(e) => {
            log::info!("session={id} connection from {connection} closed: PROXY header: {e}");
            None
        }
    }
}

async fn refuse<R: ServerRuntime>(
    rt: &R,
    tcp: R::Tcp,
    acceptor: TlsAcceptor,
    handshake: Duration,
    refusal: &[u8],
) {
    if let Ok(mut client) = tls_io::accept(rt, &acceptor, tcp, handshake).await {
        let _ = within(rt, rt.now() + handshake, async {
            let _ = client.write_all(refusal).await;
            let _ = client.close().await;
        })
        .await;
    }
}
