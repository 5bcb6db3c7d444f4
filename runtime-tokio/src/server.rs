//! The listener loop on tokio, shared by SMTP and POP3: TLS accept (implicit TLS), one task per
//! session, a limit on concurrent sessions (overall and per client address, with the smol
//! listener's [`AddressSlots`]), and a graceful shutdown that lets sessions finish
//! within a grace period.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use komle_service::limits::AddressSlots;
use komle_service::limits::ServerLimits;
use rustls::ServerConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::stats::Stats;

/// Accepts on `listener` until `shutdown` completes; runs `session(stream, id)` for each
/// client; clients over the limit get `refusal` and are closed. Afterwards waits up to
/// `limits.grace` for running sessions and aborts the rest; returns how many were cut off.
pub(crate) async fn serve<F, Fut>(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    limits: ServerLimits,
    stats: Arc<Stats>,
    refusal: &'static [u8],
    shutdown: impl Future<Output = ()>,
    session: F,
) -> std::io::Result<usize>
where
    F: Fn(TlsStream<TcpStream>, String) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let acceptor = TlsAcceptor::from(tls);
    let slots = Arc::new(Semaphore::new(limits.max_sessions));
    let address_slots = AddressSlots::new(limits.max_sessions_per_address);
    let mut sessions = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut next_id: u64 = 0;
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    log::warn!("accept failed: {e}");
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
        let (acceptor, stats, session) = (acceptor.clone(), stats.clone(), session.clone());
        let handshake = limits.handshake_timeout;
        // The address slot first, so a client over its own limit takes no overall slot; a
        // client over either limit is refused the same way.
        let permit = match address_slots.try_acquire(peer.ip()) {
            Some(address) => slots.clone().try_acquire_owned().map(|p| (p, address)),
            None => Err(tokio::sync::TryAcquireError::NoPermits),
        };
        sessions.spawn(async move {
            let Ok(Ok(mut stream)) = tokio::time::timeout(handshake, acceptor.accept(tcp)).await
            else {
                return;
            };
            let Ok(_permit) = permit else {
                stats.sessions_refused.fetch_add(1, Ordering::Relaxed);
                let _ = stream.write_all(refusal).await;
                let _ = stream.shutdown().await;
                return;
            };
            stats.sessions_total.fetch_add(1, Ordering::Relaxed);
            stats.sessions_active.fetch_add(1, Ordering::Relaxed);
            let started = std::time::Instant::now();
            session(stream, id.clone()).await;
            stats.sessions_active.fetch_sub(1, Ordering::Relaxed);
            log::info!(
                "session={id} ended after {} ms",
                started.elapsed().as_millis()
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
