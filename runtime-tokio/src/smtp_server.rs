//! The SMTP listener on tokio.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use komle_service::limits::{SMTP_TOO_MANY_SESSIONS as TOO_MANY_SESSIONS, ServerLimits};
use komle_service::session::SessionContext;
use rustls::ServerConfig;
use tokio::net::TcpListener;

use crate::server::serve;
use crate::smtp_driver::drive;
use crate::stats::Stats;

/// Serves SMTP sessions on `listener` until `shutdown` completes (see `server::serve`).
pub async fn serve_smtp(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    ctx: Arc<SessionContext>,
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
                    .messages_protected
                    .fetch_add(summary.messages_protected.into(), Ordering::Relaxed);
                stats
                    .protection_failures
                    .fetch_add(summary.protection_failures.into(), Ordering::Relaxed);
            }
        },
    )
    .await
}
