//! The POP3 listener: accepts clients (implicit TLS, POP3S), limits concurrent sessions, runs
//! one [`pop3_driver::drive`](crate::pop3_driver::drive) task per connection and shuts down
//! gracefully. Mirrors [`smtp_server`](crate::smtp_server): over the limit a client gets
//! `-ERR [SYS/TEMP] Too many sessions` after the handshake, so it shows a reason and retries.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_lite::{AsyncWriteExt, future};
use futures_rustls::TlsAcceptor;
use rustls::ServerConfig;
use smol::lock::Semaphore;
use smol::net::{TcpListener, TcpStream};

use crate::pop3_driver::{self, Pop3Context};
pub use crate::smtp_server::ServerLimits;
use crate::tls;

/// The reply to clients over the session limit (RFC 3206 response code).
pub const TOO_MANY_SESSIONS: &[u8] = b"-ERR [SYS/TEMP] Too many sessions, try again later\r\n";

/// A bound POP3 listener, ready to [`run`](Self::run).
pub struct Pop3Server {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ctx: Arc<Pop3Context>,
    limits: ServerLimits,
}

/// Correlation ids for log lines: random per process start, counting per session.
fn session_id() -> String {
    static BASE: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let base = *BASE.get_or_init(rand::random::<u32>);
    format!("pop3-{base:08x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

impl Pop3Server {
    pub async fn bind(
        addr: SocketAddr,
        tls: Arc<ServerConfig>,
        ctx: Pop3Context,
        limits: ServerLimits,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self {
            listener,
            acceptor: TlsAcceptor::from(tls),
            ctx: Arc::new(ctx),
            limits,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts until `shutdown` completes, then waits up to the grace period for running
    /// sessions. Returns how many sessions had to be cut off.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<usize> {
        let slots = Arc::new(Semaphore::new(self.limits.max_sessions));
        let mut tasks: Vec<smol::Task<()>> = Vec::new();
        let mut shutdown = std::pin::pin!(shutdown);
        let local = self.listener.local_addr()?;
        log::info!(
            "POP3 listening on {local} (implicit TLS, max {} sessions)",
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
                    log::warn!("POP3 accept failed: {e}");
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
                    let ctx = self.ctx.clone();
                    tasks.push(smol::spawn(async move {
                        serve(tcp, peer, &acceptor, handshake, &ctx).await;
                        drop(permit);
                    }));
                }
                None => {
                    log::warn!("POP3 session from {peer} refused: too many sessions");
                    tasks.push(smol::spawn(refuse(tcp, acceptor, handshake)));
                }
            }
        }
        drop(self.listener);
        tasks.retain(|t| !t.is_finished());
        log::info!(
            "POP3 listener on {local} closed; waiting up to {:?} for {} session(s)",
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
            log::warn!("POP3 shutdown: {cut} session(s) cut off after the grace period");
        }
        Ok(cut)
    }
}

async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: &TlsAcceptor,
    handshake: Duration,
    ctx: &Pop3Context,
) {
    let id = session_id();
    let started = Instant::now();
    let client = match tls::accept(acceptor, tcp, handshake).await {
        Ok(c) => c,
        Err(e) => {
            log::info!("session={id} peer={peer} TLS accept failed: {e}");
            return;
        }
    };
    let summary = pop3_driver::drive(client, ctx, &id).await;
    log::info!(
        "session={id} peer={peer} ended after {} ms: opened={} failed={}{}",
        started.elapsed().as_millis(),
        summary.messages_opened,
        summary.open_failures,
        if summary.stalled { " (stalled)" } else { "" }
    );
}

async fn refuse(tcp: TcpStream, acceptor: TlsAcceptor, handshake: Duration) {
    if let Ok(mut client) = tls::accept(&acceptor, tcp, handshake).await {
        let _ = future::or(
            async {
                let _ = client.write_all(TOO_MANY_SESSIONS).await;
                let _ = client.close().await;
            },
            async {
                smol::Timer::after(handshake).await;
            },
        )
        .await;
    }
}
