//! Building the Clientmodul from the daemon's configuration.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use komle_service::cli::RuntimeError;
use komle_service::config::Config;
use komle_service::konnektor_http::KonnektorHttp;
use komle_service::limits::ServerLimits;
use komle_service::services::{self, Runtime};
use komle_service::session::{
    Pop3Context, SessionContext, pop3_session_config, smtp_session_config,
};
use komle_service::time_sync::Clock;
use komle_service::tls;
use rustls::ServerConfig;
use tokio::net::TcpListener;

use crate::smtp_server::serve_smtp;
use crate::stats::Stats;

/// The Clientmodul's SMTP and POP3 proxies, ready to serve on listeners the caller provides.
pub struct KomleService {
    tls: Arc<ServerConfig>,
    ctx: Arc<SessionContext>,
    pop3: Option<Arc<Pop3Context>>,
    limits: ServerLimits,
    /// The POP3 listener's own limits (`[pop3] max_sessions`, `max_sessions_per_address`).
    pop3_limits: ServerLimits,
    stats: Arc<Stats>,
}

impl KomleService {
    /// Reads TLS material, discovers the Konnektor (`connector.sds`) and connects the
    /// directory, exactly as `komle-cm` does. It blocks on that network I/O: call it before
    /// entering the runtime, or inside `tokio::task::spawn_blocking`.
    pub fn from_config(config: &Config) -> Result<KomleService, RuntimeError> {
        // As komle-cm at start: e.g. no [upstream] allow-list means every login is refused.
        for warning in config.warnings() {
            log::warn!("{warning}");
        }
        let server_tls = tls::server_config(&config.tls.certificate, &config.tls.private_key)
            .map_err(|e| RuntimeError(format!("[tls]: {e}")))?;
        let upstream_tls = tls::client_config(config.upstream.ca.as_deref())
            .map_err(|e| RuntimeError(format!("[upstream] ca: {e}")))?;
        let konnektor = KonnektorHttp::new(&config.konnektor)
            .map_err(|e| RuntimeError(format!("[konnektor]: {e}")))?;
        let runtime = Runtime {
            clock: Arc::new(Clock::new()),
            konnektor,
        };
        let built = services::build(config, &runtime)?;
        let max_sessions = config.smtp.as_ref().map_or(100, |s| s.max_sessions);
        let pop3 = config.pop3.as_ref().map(|_| Pop3Context {
            session: pop3_session_config(config),
            upstream_tls: upstream_tls.clone(),
            connect_timeout: config.timeouts.mta_response,
            opener: built.opener.clone(),
            clock: runtime.clock.clone(),
        });
        let ctx = SessionContext {
            session: smtp_session_config(config),
            upstream_tls,
            connect_timeout: config.timeouts.mta_response,
            checker: built.checker,
            protector: built.protector,
            clock: runtime.clock,
        };
        let mut service = Self::from_parts(server_tls, ctx, max_sessions);
        service.limits.max_sessions_per_address = config
            .smtp
            .as_ref()
            .and_then(|s| s.max_sessions_per_address);
        if let Some(p) = &config.pop3 {
            service.pop3_limits.max_sessions = p.max_sessions;
            service.pop3_limits.max_sessions_per_address = p.max_sessions_per_address;
        }
        service.pop3 = pop3.map(Arc::new);
        Ok(service)
    }

    /// For callers that wire the services themselves (tests, embedded set-ups).
    pub fn from_parts(tls: Arc<ServerConfig>, ctx: SessionContext, max_sessions: usize) -> Self {
        let limits = ServerLimits {
            max_sessions,
            max_sessions_per_address: None,
            handshake_timeout: Duration::from_secs(30),
            grace: Duration::from_secs(30),
        };
        KomleService {
            tls,
            ctx: Arc::new(ctx),
            pop3: None,
            pop3_limits: limits.clone(),
            limits,
            stats: Arc::new(Stats::default()),
        }
    }

    /// Limits sessions per client IP address on both listeners, as `[smtp]`/`[pop3]
    /// max_sessions_per_address` do (`None`: no limit of its own).
    pub fn with_max_sessions_per_address(mut self, limit: Option<usize>) -> Self {
        self.limits.max_sessions_per_address = limit;
        self.pop3_limits.max_sessions_per_address = limit;
        self
    }

    /// Counters for the embedding service's health/metrics endpoint.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Serves the SMTP proxy on `listener` until `shutdown` completes (sessions then get a
    /// grace period). Returns how many sessions had to be cut off.
    pub async fn serve_smtp(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<usize> {
        serve_smtp(
            listener,
            self.tls.clone(),
            self.ctx.clone(),
            self.limits.clone(),
            self.stats.clone(),
            shutdown,
        )
        .await
    }
}

impl KomleService {
    /// Serves the POP3 proxy on `listener` until `shutdown` completes; an error when the
    /// configuration has no `[pop3]`.
    pub async fn serve_pop3(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<usize> {
        let Some(ctx) = self.pop3.clone() else {
            return Err(std::io::Error::other("[pop3] is not configured"));
        };
        crate::pop3_server::serve_pop3(
            listener,
            self.tls.clone(),
            ctx,
            self.pop3_limits.clone(),
            self.stats.clone(),
            shutdown,
        )
        .await
    }
}
