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

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_lock::Semaphore;
use futures_lite::{AsyncWriteExt, future};
use futures_rustls::TlsAcceptor;
use rustls::ServerConfig;

use crate::limits::{AddressSlots, ServerLimits};
use crate::runtime::{ServerRuntime, within};
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
        log::info!(
            "{protocol} listening on {local} (implicit TLS, max {} sessions{per_address})",
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
            // hand back) one of the overall slots.
            let admitted = match address_slots.try_acquire(peer.ip()) {
                None => Err("too many sessions from this address"),
                Some(address) => match slots.try_acquire_arc() {
                    Some(permit) => Ok((permit, address)),
                    None => Err("too many sessions"),
                },
            };
            match admitted {
                Ok((permit, address)) => {
                    let session = session.clone();
                    let live = Live::new(&self.live);
                    let task_rt = rt.clone();
                    tasks.push(rt.spawn(Box::pin(async move {
                        let id = session_id();
                        match tls_io::accept(&task_rt, &acceptor, tcp, handshake).await {
                            Ok(client) => session(client, peer, id).await,
                            Err(e) => log::info!("session={id} peer={peer} TLS accept failed: {e}"),
                        }
                        drop(permit);
                        drop(address);
                        drop(live);
                    })));
                }
                Err(why) => {
                    self.stats.sessions_refused.fetch_add(1, Ordering::Relaxed);
                    match refusal_slots.try_acquire_arc() {
                        Some(permit) => {
                            log::warn!("{protocol} session from {peer} refused: {why}");
                            let live = Live::new(&self.live);
                            let refusal = self.refusal;
                            let task_rt = rt.clone();
                            tasks.push(rt.spawn(Box::pin(async move {
                                refuse(&task_rt, tcp, acceptor, handshake, refusal).await;
                                drop(permit);
                                drop(live);
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
