//! The POP3 listener: accepts clients (implicit TLS, POP3S), limits concurrent sessions, runs
//! one [`pop3_driver::drive`] task per connection and shuts down
//! gracefully. Mirrors [`smtp_server`](crate::smtp_server): over the limit a client gets
//! `-ERR [SYS/TEMP] Too many sessions` after the handshake, so it shows a reason and retries.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use rustls::ServerConfig;

pub use komle_service::limits::ServerLimits;
use komle_service::session::Pop3Context;

use crate::listener::Listener;
use crate::pop3_driver;

pub use komle_service::limits::POP3_TOO_MANY_SESSIONS as TOO_MANY_SESSIONS;

/// A bound POP3 listener, ready to [`run`](Self::run).
pub struct Pop3Server {
    listener: Listener,
    ctx: Arc<Pop3Context>,
}

impl Pop3Server {
    pub async fn bind(
        addr: SocketAddr,
        tls: Arc<ServerConfig>,
        ctx: Pop3Context,
        limits: ServerLimits,
    ) -> io::Result<Self> {
        Ok(Self {
            listener: Listener::bind(addr, tls, limits, "POP3", TOO_MANY_SESSIONS).await?,
            ctx: Arc::new(ctx),
        })
    }

    /// Client connections being served right now (handshakes and refusals included; see
    /// [`Listener::live_connections`]), as a shared counter that stays valid after
    /// [`run`](Self::run) took the server.
    pub fn live_sessions(&self) -> Arc<AtomicUsize> {
        self.listener.live_connections()
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts until `shutdown` completes, then waits up to the grace period for running
    /// sessions. Returns how many sessions had to be cut off.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<usize> {
        let ctx = self.ctx;
        self.listener
            .run(shutdown, move |client, peer, id| {
                let ctx = ctx.clone();
                async move {
                    let started = Instant::now();
                    let summary = pop3_driver::drive(client, &ctx, &id).await;
                    log::info!(
                        "session={id} peer={peer} ended after {} ms: opened={} failed={}{}",
                        started.elapsed().as_millis(),
                        summary.messages_opened,
                        summary.open_failures,
                        if summary.stalled { " (stalled)" } else { "" }
                    );
                }
            })
            .await
    }
}
