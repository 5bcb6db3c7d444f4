//! The SMTP listener on tokio: TLS accept (implicit TLS), one task per session, a limit on
//! concurrent sessions, and a graceful shutdown that lets sessions finish within a grace
//! period.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use komle_smol::smtp_driver::SessionContext;
use komle_smol::smtp_server::{ServerLimits, TOO_MANY_SESSIONS};
use rustls::ServerConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::smtp_driver::drive;
use crate::stats::Stats;

/// Accepts on `listener` until `shutdown` completes, then waits up to `limits.grace` for the
/// running sessions and aborts the rest. Returns how many sessions had to be cut off.
pub async fn serve_smtp(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    ctx: Arc<SessionContext>,
    limits: ServerLimits,
    stats: Arc<Stats>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<usize> {
    let acceptor = TlsAcceptor::from(tls);
    let slots = Arc::new(Semaphore::new(limits.max_sessions));
    let mut sessions = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut next_id: u64 = 0;
    loop {
        let (tcp, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    log::warn!("SMTP accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
            // Reap finished sessions so the set does not grow.
            Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
        };
        let _ = tcp.set_nodelay(true);
        next_id += 1;
        let id = format!("tokio-{next_id}");
        let (acceptor, ctx, stats) = (acceptor.clone(), ctx.clone(), stats.clone());
        let handshake = limits.handshake_timeout;
        let permit = slots.clone().try_acquire_owned();
        sessions.spawn(async move {
            let Ok(Ok(mut stream)) = tokio::time::timeout(handshake, acceptor.accept(tcp)).await
            else {
                return;
            };
            let Ok(_permit) = permit else {
                // Over the limit: say so and close.
                stats.sessions_refused.fetch_add(1, Ordering::Relaxed);
                let _ = stream.write_all(TOO_MANY_SESSIONS).await;
                let _ = stream.shutdown().await;
                return;
            };
            stats.sessions_total.fetch_add(1, Ordering::Relaxed);
            stats.sessions_active.fetch_add(1, Ordering::Relaxed);
            let started = std::time::Instant::now();
            let summary = drive(stream, &ctx, &id).await;
            stats.sessions_active.fetch_sub(1, Ordering::Relaxed);
            stats
                .messages_protected
                .fetch_add(summary.messages_protected.into(), Ordering::Relaxed);
            stats
                .protection_failures
                .fetch_add(summary.protection_failures.into(), Ordering::Relaxed);
            log::info!(
                "session={id} ended after {} ms: {} protected, {} failed",
                started.elapsed().as_millis(),
                summary.messages_protected,
                summary.protection_failures
            );
        });
    }
    drop(listener);
    let grace = tokio::time::sleep(limits.grace);
    tokio::pin!(grace);
    loop {
        tokio::select! {
            next = sessions.join_next() => if next.is_none() { return Ok(0) },
            () = &mut grace => break,
        }
    }
    let cut = sessions.len();
    sessions.shutdown().await;
    Ok(cut)
}
