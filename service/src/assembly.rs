//! Puts the pieces together on any [`Runtime`]: TLS from the configuration, the Konnektor
//! transport, the clock with periodic time sync (A_2230), the SMTP and POP3 listeners, and the
//! [`Reloader`] for what SIGHUP re-reads. `komle-cm` (smol) and `komle-tokio`'s
//! `KomleService` are this type plus their signals and entry points.
//!
//! The directory/Konnektor pipeline behind the [contracts](crate::contracts) is supplied by
//! the caller through `build_services` (production: [`services::build`];
//! the demo and tests: their own), given the shared [`services::Runtime`] handles.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::RuntimeError;
use crate::config::Config;
use crate::konnektor_http::KonnektorHttp;
use crate::limits::ServerLimits;
use crate::proxy_server::{Proxy, ProxyServer};
use crate::runtime::{Runtime, ServerRuntime};
use crate::services::{self, Services};
use crate::session::{Pop3Context, SessionContext, pop3_session_config, smtp_session_config};
use crate::stats::Stats;
use crate::time_sync::Clock;
use crate::tls_reload::{ReloadableCertificate, ReloadableClientIdentity, ReloadableTrust};

/// How often the clock is re-synchronised with the Konnektor.
pub const TIME_SYNC_INTERVAL: Duration = Duration::from_secs(3600);
/// How long running sessions may continue after SIGTERM/SIGINT.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Time for a client's TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// NTP port on the Konnektor.
pub const NTP_PORT: u16 = 123;

/// The host of an `https://host[:port]/…` URL (brackets of IPv6 literals removed): where the
/// Konnektor's NTP service is.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split_once(']')?.0
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_owned())
}

/// What SIGHUP re-reads: the `[tls]` certificate and key the listeners present, the
/// `[upstream] ca` towards the mail service and the client certificate presented to it
/// (`[upstream] client_identity`, from the key store). All are asked at every new handshake, so a reload
/// reaches new connections only; sessions in flight keep what they negotiated (and a resumed
/// TLS session towards the mail service keeps its earlier verification). The Konnektor's and
/// the directory's TLS settings, listen addresses, limits and timeouts are fixed at start:
/// changing them needs a restart, which the log line says.
#[derive(Clone, Debug)]
pub struct Reloader {
    certificate: Arc<ReloadableCertificate>,
    trust: Arc<ReloadableTrust>,
    identity: Option<Arc<ReloadableClientIdentity>>,
}

/// What one reload did, as the one log line per SIGHUP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// Everything re-read without error.
    pub complete: bool,
    pub line: String,
}

impl Reloader {
    /// Re-reads the files (blocking file I/O, small files). A part that fails keeps its
    /// previous material and is named in the line.
    pub fn reload(&self) -> ReloadReport {
        let tls = self.certificate.reload();
        let upstream = self.trust.reload();
        let identity = self.identity.as_ref().map(|i| i.reload());
        let complete =
            tls.is_ok() && upstream.is_ok() && identity.as_ref().is_none_or(Result::is_ok);
        let part = |name: &str, r: Result<(), crate::tls::TlsError>| match r {
            Ok(()) => format!("{name} re-read"),
            Err(e) => format!("{name} NOT re-read, previous kept: {e}"),
        };
        let identity = identity
            .map(|r| format!("; {}", part("[upstream] client_identity", r)))
            .unwrap_or_default();
        let line = format!(
            "SIGHUP: {}; {}{identity}; for new connections only, sessions in flight continue; [konnektor], [directory], listen addresses, limits and timeouts need a restart",
            part("[tls] certificate/private_key", tls),
            part("[upstream] ca", upstream),
        );
        ReloadReport { complete, line }
    }
}

/// Where the listeners come from: bound by the assembly from the configuration (the daemon),
/// or handed in by an embedding service that owns its sockets.
pub struct Listeners<R: ServerRuntime> {
    pub smtp: Option<R::Listener>,
    pub pop3: Option<R::Listener>,
}

/// Everything built from the configuration before any socket exists: the listeners' TLS, the
/// SMTP and POP3 proxies with their limits, the services, the counters, the reloader and where
/// to sync the clock. The daemon binds listeners for it ([`Clientmodul`]); an embedding service
/// hands in its own (`komle-tokio`'s `KomleService`). Runtime-neutral and built once.
pub struct Prepared {
    pub server_tls: Arc<rustls::ServerConfig>,
    /// `[smtp]`: the proxy and its limits.
    pub smtp: Option<(Proxy, ServerLimits)>,
    /// `[pop3]`: the proxy and its limits.
    pub pop3: Option<(Proxy, ServerLimits)>,
    /// What SIGHUP re-reads (`None` when the parts were handed in).
    pub reloader: Option<Reloader>,
    pub stats: Arc<Stats>,
    /// Where and how the clock is kept in sync (`None`: not at all).
    pub time_sync: Option<TimeSync>,
}

/// The Konnektor-corrected clock and the NTP service it is synced with (A_2230).
#[derive(Clone)]
pub struct TimeSync {
    pub clock: Arc<Clock>,
    pub host: String,
    /// [`NTP_PORT`] in production.
    pub port: u16,
    pub timeout: Duration,
}

impl Prepared {
    /// Loads certificates, builds the Konnektor transport and the services. Blocking file
    /// and network I/O (the Konnektor's service directory): call it before serving. Every
    /// failure names what failed.
    pub fn from_config(
        config: &Config,
        build_services: impl FnOnce(&Config, &services::Runtime) -> Result<Services, RuntimeError>,
    ) -> Result<Prepared, RuntimeError> {
        for warning in config.warnings() {
            log::warn!("{warning}");
        }
        let certificate = ReloadableCertificate::configured(&config.tls, config.keys.as_ref())
            .map_err(|e| RuntimeError(format!("[tls]: {e}")))?;
        let server_tls = certificate
            .server_config_for_clients(config.tls.client_ca.as_deref())
            .map_err(|e| RuntimeError(format!("[tls]: {e}")))?;
        let trust = ReloadableTrust::load(config.upstream.ca.as_deref())
            .map_err(|e| RuntimeError(format!("[upstream] ca: {e}")))?;
        // Mutual TLS towards the mail service (A_2074, A_2182-01): the C.CM.TLS-CS identity
        // from the key store, when configured.
        let identity = ReloadableClientIdentity::configured(&config.upstream, config.keys.as_ref())
            .map_err(|e| RuntimeError(format!("[upstream] client_identity: {e}")))?;
        let upstream_tls = trust
            .client_config_with_reloadable_identity(identity.clone())
            .map_err(|e| RuntimeError(format!("[upstream] ca: {e}")))?;
        let konnektor = KonnektorHttp::new(&config.konnektor)
            .map_err(|e| RuntimeError(format!("[konnektor]: {e}")))?;
        let handles = services::Runtime {
            clock: Arc::new(Clock::new()),
            konnektor,
        };
        let built = build_services(config, &handles)?;
        let limits = |max_sessions, max_sessions_per_address, proxy_protocol| ServerLimits {
            max_sessions,
            max_sessions_per_address,
            handshake_timeout: config.timeouts.handshake.unwrap_or(HANDSHAKE_TIMEOUT),
            grace: config.timeouts.shutdown_grace.unwrap_or(SHUTDOWN_GRACE),
            proxy_protocol,
        };
        let smtp = config.smtp.as_ref().map(|settings| {
            let ctx = SessionContext {
                session: smtp_session_config(config),
                upstream_tls: upstream_tls.clone(),
                connect_timeout: config.timeouts.mta_response,
                checker: built.checker.clone(),
                protector: built.protector.clone(),
            };
            let limits = limits(
                settings.max_sessions,
                settings.max_sessions_per_address,
                settings.proxy_protocol,
            );
            let proxy = Proxy::from(ctx).with_server_check(built.server_check.clone());
            (proxy, limits)
        });
        let pop3 = config.pop3.as_ref().map(|settings| {
            let ctx = Pop3Context {
                session: pop3_session_config(config),
                upstream_tls: upstream_tls.clone(),
                connect_timeout: config.timeouts.mta_response,
                opener: built.opener.clone(),
            };
            let limits = limits(
                settings.max_sessions,
                settings.max_sessions_per_address,
                settings.proxy_protocol,
            );
            let proxy = Proxy::from(ctx).with_server_check(built.server_check.clone());
            (proxy, limits)
        });
        let time_sync = url_host(&config.konnektor.sds_url).map(|host| TimeSync {
            clock: handles.clock.clone(),
            host,
            port: NTP_PORT,
            timeout: config.konnektor.timeout,
        });
        Ok(Prepared {
            server_tls,
            smtp,
            pop3,
            reloader: Some(Reloader {
                certificate,
                trust,
                identity,
            }),
            stats: Arc::new(Stats::default()),
            time_sync,
        })
    }

    /// Parts an integrator wired itself (tests, embedded set-ups): no reload, no time sync.
    pub fn from_parts(
        server_tls: Arc<rustls::ServerConfig>,
        smtp: Option<(Proxy, ServerLimits)>,
        pop3: Option<(Proxy, ServerLimits)>,
    ) -> Prepared {
        Prepared {
            server_tls,
            smtp,
            pop3,
            reloader: None,
            stats: Arc::new(Stats::default()),
            time_sync: None,
        }
    }

    /// A listener for `[smtp]` or `[pop3]` on `listener`, counting into the shared stats.
    pub fn server<R: ServerRuntime>(
        &self,
        runtime: &R,
        listener: R::Listener,
        (proxy, limits): &(Proxy, ServerLimits),
    ) -> ProxyServer<R> {
        ProxyServer::from_bound(
            runtime.clone(),
            listener,
            self.server_tls.clone(),
            proxy.clone(),
            limits.clone(),
        )
        .with_stats(self.stats.clone())
    }

    /// The task that keeps the clock in sync with the Konnektor (A_2230), if its host is
    /// known; it runs until dropped.
    pub fn spawn_time_sync<R: ServerRuntime>(&self, runtime: &R) -> Option<R::Task> {
        let sync = self.time_sync.clone()?;
        Some(runtime.spawn(Box::pin(keep_in_sync(runtime.clone(), sync))))
    }
}

/// A configured, bound Clientmodul on runtime `R`.
pub struct Clientmodul<R: ServerRuntime> {
    runtime: R,
    prepared: Prepared,
    smtp: Option<ProxyServer<R>>,
    pop3: Option<ProxyServer<R>>,
}

impl<R: ServerRuntime> Clientmodul<R> {
    /// Loads certificates, builds the Konnektor transport and the services, binds the
    /// listeners configured in `[smtp]` and `[pop3]`. Every failure names what failed.
    pub async fn start(
        runtime: R,
        config: &Config,
        build_services: impl FnOnce(&Config, &services::Runtime) -> Result<Services, RuntimeError>,
    ) -> Result<Self, RuntimeError> {
        let prepared = Prepared::from_config(config, build_services)?;
        let mut listeners = Listeners {
            smtp: None,
            pop3: None,
        };
        if let Some(s) = &config.smtp {
            listeners.smtp = Some(bind(&runtime, s.listen, "smtp").await?);
        }
        if let Some(p) = &config.pop3 {
            listeners.pop3 = Some(bind(&runtime, p.listen, "pop3").await?);
        }
        Self::with_listeners(runtime, prepared, listeners)
    }

    /// Serves `prepared` on listeners the caller bound. A listener given for a protocol the
    /// configuration has no section for is an error.
    pub fn with_listeners(
        runtime: R,
        prepared: Prepared,
        listeners: Listeners<R>,
    ) -> Result<Self, RuntimeError> {
        let server = |listener: Option<R::Listener>,
                      proxy: &Option<(Proxy, ServerLimits)>,
                      section| match (listener, proxy) {
            (Some(l), Some(p)) => Ok(Some(prepared.server(&runtime, l, p))),
            (Some(_), None) => Err(RuntimeError(format!(
                "a listener was given but the configuration has no [{section}]"
            ))),
            (None, _) => Ok(None),
        };
        let smtp = server(listeners.smtp, &prepared.smtp, "smtp")?;
        let pop3 = server(listeners.pop3, &prepared.pop3, "pop3")?;
        Ok(Self {
            runtime,
            prepared,
            smtp,
            pop3,
        })
    }

    pub fn smtp_addr(&self) -> Option<SocketAddr> {
        self.smtp.as_ref().and_then(|s| s.local_addr().ok())
    }

    pub fn pop3_addr(&self) -> Option<SocketAddr> {
        self.pop3.as_ref().and_then(|s| s.local_addr().ok())
    }

    /// Session and message counters of both listeners (for health/metrics endpoints).
    pub fn stats(&self) -> Arc<Stats> {
        self.prepared.stats.clone()
    }

    /// The Konnektor-synced clock (A_2230), `None` without time sync: the admin endpoint's
    /// health check reads whether it is synced.
    pub fn clock(&self) -> Option<Arc<Clock>> {
        self.prepared.time_sync.as_ref().map(|t| t.clock.clone())
    }

    /// Re-reads the reloadable TLS material (what SIGHUP does).
    pub fn reloader(&self) -> Option<Reloader> {
        self.prepared.reloader.clone()
    }

    /// Serves until `shutdown` completes, keeping the clock in sync meanwhile; then lets the
    /// sessions finish within the grace period. Returns how many sessions were cut off.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<usize, RuntimeError> {
        let rt = self.runtime;
        let _sync = self.prepared.spawn_time_sync(&rt);
        // Both listeners stop on the same shutdown: it is shared through a channel that closes.
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let (done_tx, done_rx) = async_channel::bounded(2);
        let mut tasks = Vec::new();
        for (name, server) in [("SMTP", self.smtp), ("POP3", self.pop3)] {
            let Some(server) = server else { continue };
            let (done, stopped) = (done_tx.clone(), stopped.clone());
            tasks.push(rt.spawn(Box::pin(async move {
                let wait = async move {
                    let _ = stopped.recv().await;
                };
                let _ = done.send((name, server.run(wait).await)).await;
            })));
        }
        shutdown.await;
        drop(stop);
        let mut result = Ok(0);
        for _ in 0..tasks.len() {
            match done_rx.recv().await {
                Ok((_, Ok(cut))) => {
                    if let Ok(total) = &mut result {
                        *total += cut;
                    }
                }
                Ok((name, Err(e))) => result = Err(RuntimeError(format!("{name} listener: {e}"))),
                Err(_) => break,
            }
        }
        result
    }
}

async fn bind<R: ServerRuntime>(
    runtime: &R,
    addr: SocketAddr,
    section: &str,
) -> Result<R::Listener, RuntimeError> {
    runtime.bind(addr).await.map_err(|e| {
        RuntimeError(format!(
            "[{section}] listen {addr}: cannot bind: {e} (another process has the port, or binding it needs privileges)"
        ))
    })
}

/// Syncs at start and every [`TIME_SYNC_INTERVAL`]; failures are logged, the last offset kept.
async fn keep_in_sync<R: Runtime>(rt: R, sync: TimeSync) {
    let TimeSync {
        clock,
        host,
        port,
        timeout,
    } = sync;
    loop {
        let target = (host.clone(), port);
        let resolved = blocking::unblock(move || {
            std::net::ToSocketAddrs::to_socket_addrs(&target).map(|a| a.collect::<Vec<_>>())
        })
        .await;
        match resolved {
            Ok(addrs) => match addrs.first() {
                Some(addr) => {
                    if let Err(e) = crate::ntp::sync(&clock, *addr, timeout).await {
                        log::warn!("time sync with {host} failed: {e}");
                    }
                }
                None => log::warn!("time sync: {host} has no address"),
            },
            Err(e) => log::warn!("time sync: cannot resolve {host}: {e}"),
        }
        rt.sleep_until(rt.now() + TIME_SYNC_INTERVAL).await;
    }
}
