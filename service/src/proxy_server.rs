//! An SMTP or POP3 proxy listener on any [`ServerRuntime`]: the [`Listener`] accept loop plus, per
//! client, a fresh core session run by the one [`driver`]. The smol daemon,
//! the tokio embedding and the demo all serve through this type.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use komle_core::pop3::{Pop3Config, Pop3Session};
use komle_core::smtp::{SmtpConfig, SmtpSession};
use rustls::ServerConfig;

use crate::driver::{self, DriverContext, SessionSummary};
use crate::jobs::ContractJobs;
use crate::limits::{POP3_TOO_MANY_SESSIONS, SMTP_TOO_MANY_SESSIONS, ServerLimits};
use crate::listener::Listener;
use crate::runtime::ServerRuntime;
use crate::session::{Pop3Context, SessionContext};
use crate::stats::Stats;

/// Which protocol a listener speaks, with the core's settings for its sessions.
#[derive(Clone, Debug)]
pub enum Protocol {
    Smtp(SmtpConfig),
    Pop3(Pop3Config),
}

impl Protocol {
    fn name(&self) -> &'static str {
        match self {
            Protocol::Smtp(_) => "SMTP",
            Protocol::Pop3(_) => "POP3",
        }
    }

    fn refusal(&self) -> &'static [u8] {
        match self {
            Protocol::Smtp(_) => SMTP_TOO_MANY_SESSIONS,
            Protocol::Pop3(_) => POP3_TOO_MANY_SESSIONS,
        }
    }
}

/// What a proxy listener's sessions share: the protocol settings and the driver's context.
#[derive(Clone)]
pub struct Proxy {
    pub protocol: Protocol,
    pub driver: DriverContext,
}

impl Proxy {
    /// Checks the upstream server's certificate with the Konnektor after the handshake.
    pub fn with_server_check(
        mut self,
        check: Option<Arc<dyn crate::driver::ServerCertificateVerifier>>,
    ) -> Proxy {
        self.driver.server_check = check;
        self
    }
}

impl From<SessionContext> for Proxy {
    fn from(ctx: SessionContext) -> Proxy {
        let driver = DriverContext {
            upstream_tls: ctx.upstream_tls,
            connect_timeout: ctx.connect_timeout,
            client_write_timeout: ctx.session.client_idle_timeout,
            upstream_write_timeout: ctx.session.mta_response_timeout,
            jobs: Arc::new(ContractJobs {
                checker: Some(ctx.checker),
                protector: Some(ctx.protector),
                opener: None,
            }),
            upstream_name: "MTA",
            server_check: None,
        };
        Proxy {
            protocol: Protocol::Smtp(ctx.session),
            driver,
        }
    }
}

impl From<Pop3Context> for Proxy {
    fn from(ctx: Pop3Context) -> Proxy {
        let driver = DriverContext {
            upstream_tls: ctx.upstream_tls,
            connect_timeout: ctx.connect_timeout,
            client_write_timeout: ctx.session.client_idle_timeout,
            upstream_write_timeout: ctx.session.server_response_timeout,
            jobs: Arc::new(ContractJobs {
                checker: None,
                protector: None,
                opener: Some(ctx.opener),
            }),
            upstream_name: "POP3 server",
            server_check: None,
        };
        Proxy {
            protocol: Protocol::Pop3(ctx.session),
            driver,
        }
    }
}

/// A bound SMTP or POP3 proxy listener, ready to [`run`](Self::run).
pub struct ProxyServer<R: ServerRuntime> {
    runtime: R,
    listener: Listener<R>,
    proxy: Arc<Proxy>,
    stats: Arc<Stats>,
}

impl<R: ServerRuntime> ProxyServer<R> {
    /// Binds `addr` for `proxy`'s protocol.
    pub async fn bind(
        runtime: R,
        addr: SocketAddr,
        tls: Arc<ServerConfig>,
        proxy: impl Into<Proxy>,
        limits: ServerLimits,
    ) -> io::Result<Self> {
        let listener = runtime.bind(addr).await?;
        Ok(Self::from_bound(runtime, listener, tls, proxy, limits))
    }

    /// Serves on a listener the caller bound itself (an embedding service owns its sockets).
    pub fn from_bound(
        runtime: R,
        listener: R::Listener,
        tls: Arc<ServerConfig>,
        proxy: impl Into<Proxy>,
        limits: ServerLimits,
    ) -> Self {
        let proxy = proxy.into();
        let (name, refusal) = (proxy.protocol.name(), proxy.protocol.refusal());
        let mut listener =
            Listener::from_bound(runtime.clone(), listener, tls, limits, name, refusal);
        let stats = Arc::new(Stats::default());
        listener.set_stats(stats.clone());
        Self {
            runtime,
            listener,
            proxy: Arc::new(proxy),
            stats,
        }
    }

    /// Counts into `stats` (shared between listeners, read by a metrics endpoint).
    pub fn with_stats(mut self, stats: Arc<Stats>) -> Self {
        self.listener.set_stats(stats.clone());
        self.stats = stats;
        self
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Client connections being served right now (handshakes and refusals included; see
    /// [`Listener::live_connections`]), as a shared counter that stays valid after
    /// [`run`](Self::run) took the server.
    pub fn live_connections(&self) -> Arc<AtomicUsize> {
        self.listener.live_connections()
    }

    /// Accepts until `shutdown` completes, then waits up to the grace period for running
    /// sessions. Returns how many sessions had to be cut off.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<usize> {
        let (runtime, proxy, stats) = (self.runtime, self.proxy, self.stats);
        self.listener
            .run(shutdown, move |client, peer, id| {
                let (runtime, proxy, stats) = (runtime.clone(), proxy.clone(), stats.clone());
                async move {
                    stats.sessions_total.fetch_add(1, Ordering::Relaxed);
                    stats.sessions_active.fetch_add(1, Ordering::Relaxed);
                    let started = runtime.now();
                    let summary = match &proxy.protocol {
                        Protocol::Smtp(config) => {
                            let session = SmtpSession::new(config.clone(), started);
                            driver::drive(&runtime, session, client, &proxy.driver, &id).await
                        }
                        Protocol::Pop3(config) => {
                            let session = Pop3Session::new(config.clone(), started);
                            driver::drive(&runtime, session, client, &proxy.driver, &id).await
                        }
                    };
                    stats.sessions_active.fetch_sub(1, Ordering::Relaxed);
                    count(&stats, &proxy.protocol, &summary);
                    let ms = runtime.now().saturating_duration_since(started).as_millis();
                    log_end(&id, peer, ms, &proxy.protocol, &summary);
                }
            })
            .await
    }
}

fn count(stats: &Stats, protocol: &Protocol, summary: &SessionSummary) {
    let (done, failed) = match protocol {
        Protocol::Smtp(_) => (&stats.messages_protected, &stats.protection_failures),
        Protocol::Pop3(_) => (&stats.messages_opened, &stats.open_failures),
    };
    done.fetch_add(summary.messages_done.into(), Ordering::Relaxed);
    failed.fetch_add(summary.messages_failed.into(), Ordering::Relaxed);
}

/// The one line per session: who, how long, how it ended, what it did.
fn log_end(id: &str, peer: SocketAddr, ms: u128, protocol: &Protocol, s: &SessionSummary) {
    let (done, failed) = match protocol {
        Protocol::Smtp(_) => ("protected", "failed"),
        Protocol::Pop3(_) => ("opened", "failed"),
    };
    let end = s.end.map_or("unreported", |r| r.as_str());
    log::info!(
        "session={id} peer={peer} ended after {ms} ms ({end}): {done}={} {failed}={}{}",
        s.messages_done,
        s.messages_failed,
        if s.stalled { " (stalled)" } else { "" }
    );
}
