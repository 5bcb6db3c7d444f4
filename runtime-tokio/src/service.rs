//! [`KomleService`]: the Clientmodul for a tokio service that owns its listeners. Built from the
//! same configuration `komle-cm` reads by the same [`Prepared`] assembly, served by the same
//! listener and driver over [`TokioRuntime`].

use std::future::Future;
use std::sync::{Arc, Mutex};

use komle_service::assembly::Prepared;
use komle_service::cli::RuntimeError;
use komle_service::config::Config;
use komle_service::limits::ServerLimits;
use komle_service::proxy_server::Proxy;
use komle_service::services;
use komle_service::session::SessionContext;
use komle_service::stats::Stats;
use rustls::ServerConfig;
use tokio::net::TcpListener;

use crate::runtime::{AbortOnDrop, TokioRuntime};

/// The Clientmodul's SMTP and POP3 proxies, ready to serve on listeners the caller provides.
pub struct KomleService {
    prepared: Prepared,
    /// The Konnektor time sync (A_2230), started with the first listener served and stopped
    /// when the service is dropped.
    time_sync: Mutex<Option<AbortOnDrop>>,
}

impl KomleService {
    /// Reads TLS material, discovers the Konnektor (`connector.sds`) and connects the
    /// directory, exactly as `komle-cm` does. It blocks on that network I/O: call it before
    /// entering the runtime, or inside `tokio::task::spawn_blocking`.
    pub fn from_config(config: &Config) -> Result<KomleService, RuntimeError> {
        Ok(Self::from_prepared(Prepared::from_config(
            config,
            services::build,
        )?))
    }

    /// Serves what the caller assembled (`Prepared::from_config`, or `from_parts` with a
    /// `time_sync` of its own).
    pub fn from_prepared(prepared: Prepared) -> KomleService {
        KomleService {
            prepared,
            time_sync: Mutex::new(None),
        }
    }

    /// For callers that wire the SMTP services themselves (tests, embedded set-ups): no
    /// POP3, no time sync, 30 s handshake and grace.
    pub fn from_parts(tls: Arc<ServerConfig>, ctx: SessionContext, max_sessions: usize) -> Self {
        let limits = ServerLimits {
            max_sessions,
            max_sessions_per_address: None,
            handshake_timeout: komle_service::assembly::HANDSHAKE_TIMEOUT,
            grace: komle_service::assembly::SHUTDOWN_GRACE,
            proxy_protocol: false,
        };
        Self::from_prepared(Prepared::from_parts(
            tls,
            Some((Proxy::from(ctx), limits)),
            None,
        ))
    }

    /// Limits sessions per client IP address on both listeners, as `[smtp]`/`[pop3]
    /// max_sessions_per_address` do (`None`: no limit of its own).
    pub fn with_max_sessions_per_address(mut self, limit: Option<usize>) -> Self {
        for (_, limits) in [&mut self.prepared.smtp, &mut self.prepared.pop3]
            .into_iter()
            .flatten()
        {
            limits.max_sessions_per_address = limit;
        }
        self
    }

    /// Counters for the embedding service's health/metrics endpoint.
    pub fn stats(&self) -> Arc<Stats> {
        self.prepared.stats.clone()
    }

    /// Serves the SMTP proxy on `listener` until `shutdown` completes (sessions then get a
    /// grace period). Returns how many sessions had to be cut off.
    pub async fn serve_smtp(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<usize> {
        self.serve(listener, &self.prepared.smtp, "smtp", shutdown)
            .await
    }

    /// Serves the POP3 proxy on `listener` until `shutdown` completes; an error when the
    /// configuration has no `[pop3]`.
    pub async fn serve_pop3(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<usize> {
        self.serve(listener, &self.prepared.pop3, "pop3", shutdown)
            .await
    }

    async fn serve(
        &self,
        listener: TcpListener,
        proxy: &Option<(Proxy, ServerLimits)>,
        section: &str,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<usize> {
        let Some(proxy) = proxy else {
            return Err(std::io::Error::other(format!(
                "[{section}] is not configured"
            )));
        };
        let runtime = TokioRuntime::current();
        if let Ok(mut sync) = self.time_sync.lock()
            && sync.is_none()
        {
            *sync = self.prepared.spawn_time_sync(&runtime);
        }
        self.prepared
            .server(&runtime, listener, proxy)
            .run(shutdown)
            .await
    }
}
