//! The listener loop shared by the SMTP and POP3 proxies: accepts clients (implicit TLS),
//! limits concurrent sessions, runs one task per connection and shuts down gracefully.
//!
//! Over the limit a client still gets a TLS handshake and then the protocol's "too many
//! sessions" reply, so its mail program shows a reason and retries later instead of reporting a
//! broken connection. On shutdown the listener stops accepting at once; running sessions may
//! finish within a grace period, then they are cut off.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_lite::{AsyncWriteExt, future};
use futures_rustls::TlsAcceptor;
use rustls::ServerConfig;
use smol::lock::Semaphore;
use smol::net::{TcpListener, TcpStream};

use crate::tls::{self, ClientStream};

/// Limits of a listener.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    pub max_sessions: usize,
    /// Time for a client's TLS handshake.
    pub handshake_timeout: Duration,
    /// How long running sessions may continue after shutdown was requested.
    pub grace: Duration,
}

/// A bound listener for one protocol.
pub struct Listener {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limits: ServerLimits,
    /// "SMTP" or "POP3", for log lines.
    protocol: &'static str,
    /// What a client over the session limit is told before the connection is closed.
    refusal: &'static [u8],
    /// Connection tasks still running.
    live: Arc<AtomicUsize>,
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

impl Listener {
    pub async fn bind(
        addr: SocketAddr,
        tls: Arc<ServerConfig>,
        limits: ServerLimits,
        protocol: &'static str,
        refusal: &'static [u8],
    ) -> io::Result<Self> {
        Ok(Self {
            listener: TcpListener::bind(addr).await?,
            acceptor: TlsAcceptor::from(tls),
            limits,
            protocol,
            refusal,
            live: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The number of client connections whose task is still running (TLS handshake, session
    /// or refusal), readable while the listener runs: 0 once every client is gone, which is
    /// how tests prove that no session task was left behind.
    pub fn live_connections(&self) -> Arc<AtomicUsize> {
        self.live.clone()
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
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
        F: Fn(ClientStream, SocketAddr, String) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let protocol = self.protocol;
        let slots = Arc::new(Semaphore::new(self.limits.max_sessions));
        let mut tasks: Vec<smol::Task<()>> = Vec::new();
        let mut shutdown = std::pin::pin!(shutdown);
        let local = self.listener.local_addr()?;
        log::info!(
            "{protocol} listening on {local} (implicit TLS, max {} sessions)",
            self.limits.max_sessions
        );
        loop {
            let accepted = future::or(async { Some(self.listener.accept().await) }, async {
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
                    smol::Timer::after(Duration::from_millis(100)).await;
                    continue;
                }
            };
            tasks.retain(|t| !t.is_finished());
            let _ = tcp.set_nodelay(true);
            let acceptor = self.acceptor.clone();
            let handshake = self.limits.handshake_timeout;
            match slots.try_acquire_arc() {
                Some(permit) => {
                    let session = session.clone();
                    let live = Live::new(&self.live);
                    tasks.push(smol::spawn(async move {
                        let id = session_id();
                        match tls::accept(&acceptor, tcp, handshake).await {
                            Ok(client) => session(client, peer, id).await,
                            Err(e) => log::info!("session={id} peer={peer} TLS accept failed: {e}"),
                        }
                        drop(permit);
                        drop(live);
                    }));
                }
                None => {
                    log::warn!("{protocol} session from {peer} refused: too many sessions");
                    let live = Live::new(&self.live);
                    let refusal = self.refusal;
                    tasks.push(smol::spawn(async move {
                        refuse(tcp, acceptor, handshake, refusal).await;
                        drop(live);
                    }));
                }
            }
        }
        drop(self.listener);
        tasks.retain(|t| !t.is_finished());
        log::info!(
            "{protocol} listener on {local} closed; waiting up to {:?} for {} session(s)",
            self.limits.grace,
            tasks.len()
        );
        let deadline = Instant::now() + self.limits.grace;
        let mut cut = 0;
        for task in tasks {
            let finished = future::or(
                async {
                    task.await;
                    true
                },
                async {
                    smol::Timer::at(deadline).await;
                    false
                },
            )
            .await;
            // A task that did not finish was dropped (cancelled) by `or` above.
            if !finished {
                cut += 1;
            }
        }
        if cut > 0 {
            log::warn!("{protocol} shutdown: {cut} session(s) cut off after the grace period");
        }
        Ok(cut)
    }
}

async fn refuse(tcp: TcpStream, acceptor: TlsAcceptor, handshake: Duration, refusal: &[u8]) {
    if let Ok(mut client) = tls::accept(&acceptor, tcp, handshake).await {
        let _ = future::or(
            async {
                let _ = client.write_all(refusal).await;
                let _ = client.close().await;
            },
            async {
                smol::Timer::after(handshake).await;
            },
        )
        .await;
    }
}
