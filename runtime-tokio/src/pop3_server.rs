//! The POP3 listener on tokio.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use komle_service::limits::POP3_TOO_MANY_SESSIONS as TOO_MANY_SESSIONS;
use komle_service::limits::ServerLimits;
use komle_service::session::Pop3Context;
use rustls::ServerConfig;
use tokio::net::TcpListener;

use crate::pop3_driver::drive;
use crate::server::serve;
use crate::stats::Stats;

/// Serves POP3 sessions on `listener` until `shutdown` completes.
pub async fn serve_pop3(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    ctx: Arc<Pop3Context>,
    limits: ServerLimits,
    stats: Arc<Stats>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<usize> {
    let counters = stats.clone();
    serve(
        listener,
        tls,
        limits,
        stats,
        TOO_MANY_SESSIONS,
        shutdown,
        move |stream, id| {
            let (ctx, stats) = (ctx.clone(), counters.clone());
            async move {
                let summary = drive(stream, &ctx, &id).await;
                stats
                    .messages_opened
                    .fetch_add(summary.messages_opened.into(), Ordering::Relaxed);
                stats
                    .open_failures
                    .fetch_add(summary.open_failures.into(), Ordering::Relaxed);
            }
        },
    )
    .await
}
