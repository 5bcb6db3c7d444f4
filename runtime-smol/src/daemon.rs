//! Puts the pieces together: TLS from the configuration, the Konnektor transport, the clock
//! with periodic time sync (A_2230), the SMTP listener, shutdown on SIGTERM/SIGINT, and SIGHUP:
//! the listeners' certificate and the upstream CA are re-read for new connections
//! ([`Reloader`]), nothing in flight is touched.
//!
//! The directory/Konnektor pipeline behind the
//! [contracts](komle_service::contracts) is not built here; the caller supplies it through
//! `build_services`, given the shared [`Runtime`] handles, so this crate stays a thin adapter.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::StreamExt;
use komle_service::cli::RuntimeError;
use komle_service::config::Config;
use komle_service::konnektor_http::KonnektorHttp;
use komle_service::limits::ServerLimits;
use komle_service::services::{Runtime, Services};
use komle_service::session::{
    Pop3Context, SessionContext, pop3_session_config, smtp_session_config,
};
use komle_service::time_sync::Clock;
use komle_service::tls_reload::{ReloadableCertificate, ReloadableTrust};

use crate::ntp;
use crate::pop3_server::Pop3Server;
use crate::smtp_server::SmtpServer;

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

/// What SIGHUP re-reads: the `[tls]` certificate and key the listeners present and the
/// `[upstream] ca` towards the mail service. Both are asked at every new handshake, so a reload
/// reaches new connections only; sessions in flight keep what they negotiated (and a resumed
/// TLS session towards the mail service keeps its earlier verification). The Konnektor's and
/// the directory's TLS settings, listen addresses, limits and timeouts are fixed at start:
/// changing them needs a restart, which the log line says.
#[derive(Clone, Debug)]
pub struct Reloader {
    certificate: Arc<ReloadableCertificate>,
    trust: Arc<ReloadableTrust>,
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
        let complete = tls.is_ok() && upstream.is_ok();
        let part = |name: &str, r: Result<(), komle_service::tls::TlsError>| match r {
            Ok(()) => format!("{name} re-read"),
            Err(e) => format!("{name} NOT re-read, previous kept: {e}"),
        };
        let line = format!(
            "SIGHUP: {}; {}; for new connections only, sessions in flight continue; [konnektor], [directory], listen addresses, limits and timeouts need a restart",
            part("[tls] certificate/private_key", tls),
            part("[upstream] ca", upstream),
        );
        ReloadReport { complete, line }
    }
}

/// A configured, bound daemon.
pub struct Daemon {
    smtp: Option<SmtpServer>,
    pop3: Option<Pop3Server>,
    runtime: Runtime,
    reloader: Reloader,
    ntp_host: Option<String>,
    ntp_timeout: Duration,
}

impl Daemon {
    /// Loads certificates, builds the Konnektor transport and the services, binds the
    /// listeners. Every failure names what failed.
    pub async fn start(
        config: &Config,
        build_services: impl FnOnce(&Config, &Runtime) -> Result<Services, RuntimeError>,
    ) -> Result<Self, RuntimeError> {
        for warning in config.warnings() {
            log::warn!("{warning}");
        }
        let certificate =
            ReloadableCertificate::load(&config.tls.certificate, &config.tls.private_key)
                .map_err(|e| RuntimeError(format!("[tls]: {e}")))?;
        let server_tls = certificate
            .server_config()
            .map_err(|e| RuntimeError(format!("[tls]: {e}")))?;
        let trust = ReloadableTrust::load(config.upstream.ca.as_deref())
            .map_err(|e| RuntimeError(format!("[upstream] ca: {e}")))?;
        let upstream_tls = trust
            .client_config()
            .map_err(|e| RuntimeError(format!("[upstream] ca: {e}")))?;
        let konnektor = KonnektorHttp::new(&config.konnektor)
            .map_err(|e| RuntimeError(format!("[konnektor]: {e}")))?;
        let runtime = Runtime {
            clock: Arc::new(Clock::new()),
            konnektor,
        };
        let services = build_services(config, &runtime)?;
        let smtp = match &config.smtp {
            Some(settings) => {
                let ctx = SessionContext {
                    session: smtp_session_config(config),
                    upstream_tls: upstream_tls.clone(),
                    connect_timeout: config.timeouts.mta_response,
                    checker: services.checker.clone(),
                    protector: services.protector.clone(),
                    clock: runtime.clock.clone(),
                };
                let limits = ServerLimits {
                    max_sessions: settings.max_sessions,
                    max_sessions_per_address: settings.max_sessions_per_address,
                    handshake_timeout: HANDSHAKE_TIMEOUT,
                    grace: SHUTDOWN_GRACE,
                };
                let server = SmtpServer::bind(settings.listen, server_tls.clone(), ctx, limits)
                    .await
                    .map_err(|e| {
                        RuntimeError(format!(
                            "[smtp] listen {}: cannot bind: {e}",
                            settings.listen
                        ))
                    })?;
                Some(server)
            }
            None => None,
        };
        let pop3 = match &config.pop3 {
            Some(settings) => {
                let ctx = Pop3Context {
                    session: pop3_session_config(config),
                    upstream_tls,
                    connect_timeout: config.timeouts.mta_response,
                    opener: services.opener.clone(),
                    clock: runtime.clock.clone(),
                };
                let limits = ServerLimits {
                    max_sessions: settings.max_sessions,
                    max_sessions_per_address: settings.max_sessions_per_address,
                    handshake_timeout: HANDSHAKE_TIMEOUT,
                    grace: SHUTDOWN_GRACE,
                };
                let server = Pop3Server::bind(settings.listen, server_tls, ctx, limits)
                    .await
                    .map_err(|e| {
                        RuntimeError(format!(
                            "[pop3] listen {}: cannot bind: {e}",
                            settings.listen
                        ))
                    })?;
                Some(server)
            }
            None => None,
        };
        Ok(Self {
            smtp,
            pop3,
            runtime,
            reloader: Reloader { certificate, trust },
            ntp_host: url_host(&config.konnektor.sds_url),
            ntp_timeout: config.konnektor.timeout,
        })
    }

    pub fn smtp_addr(&self) -> Option<SocketAddr> {
        self.smtp.as_ref().and_then(|s| s.local_addr().ok())
    }

    pub fn pop3_addr(&self) -> Option<SocketAddr> {
        self.pop3.as_ref().and_then(|s| s.local_addr().ok())
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Re-reads the reloadable TLS material (what SIGHUP does).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// Serves until `shutdown` completes, keeping the clock in sync meanwhile.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), RuntimeError> {
        let _sync = self.ntp_host.clone().map(|host| {
            let clock = self.runtime.clock.clone();
            let timeout = self.ntp_timeout;
            smol::spawn(keep_in_sync(clock, host, timeout))
        });
        // Both listeners stop on the same shutdown: it is shared through a channel that closes.
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let wait = move || {
            let stopped = stopped.clone();
            async move {
                let _ = stopped.recv().await;
            }
        };
        let smtp = self.smtp.map(|s| smol::spawn(s.run(wait())));
        let pop3 = self.pop3.map(|s| smol::spawn(s.run(wait())));
        shutdown.await;
        drop(stop);
        let mut result = Ok(());
        if let Some(t) = smtp
            && let Err(e) = t.await
        {
            result = Err(RuntimeError(format!("SMTP listener: {e}")));
        }
        if let Some(t) = pop3
            && let Err(e) = t.await
        {
            result = Err(RuntimeError(format!("POP3 listener: {e}")));
        }
        result
    }
}

/// Syncs at start and every [`TIME_SYNC_INTERVAL`]; failures are logged, the last offset kept.
async fn keep_in_sync(clock: Arc<Clock>, host: String, timeout: Duration) {
    loop {
        match smol::net::resolve((host.as_str(), NTP_PORT)).await {
            Ok(addrs) => match addrs.first() {
                Some(addr) => {
                    if let Err(e) = ntp::sync(&clock, *addr, timeout).await {
                        log::warn!("time sync with {host} failed: {e}");
                    }
                }
                None => log::warn!("time sync: {host} has no address"),
            },
            Err(e) => log::warn!("time sync: cannot resolve {host}: {e}"),
        }
        smol::Timer::after(TIME_SYNC_INTERVAL).await;
    }
}

/// Completes on the first SIGTERM or SIGINT. Registers the handlers immediately, so a signal
/// arriving before the future is polled is not lost.
pub fn shutdown_signal() -> Result<impl Future<Output = ()>, RuntimeError> {
    use async_signal::{Signal, Signals};
    let mut signals = Signals::new([Signal::Term, Signal::Int])
        .map_err(|e| RuntimeError(format!("cannot install signal handlers: {e}")))?;
    Ok(async move {
        if let Some(Ok(signal)) = signals.next().await {
            log::info!("received {signal:?}, shutting down");
        }
    })
}

/// Catches SIGHUP from now on. WHY: its default action ends the process at once (exit 129),
/// cutting every mail in flight, and logrotate-style tools send it routinely.
pub fn hangup_signals() -> Result<async_signal::Signals, RuntimeError> {
    async_signal::Signals::new([async_signal::Signal::Hup])
        .map_err(|e| RuntimeError(format!("cannot install the SIGHUP handler: {e}")))
}

/// Re-reads the TLS material on every SIGHUP, one log line each (warning if a part failed).
pub async fn reload_on_hangup(mut hangups: async_signal::Signals, reloader: Reloader) {
    while let Some(Ok(_)) = hangups.next().await {
        let r = reloader.clone();
        let report = smol::unblock(move || r.reload()).await;
        if report.complete {
            log::info!("{}", report.line);
        } else {
            log::warn!("{}", report.line);
        }
    }
}

/// The daemon's main loop: start, serve until SIGTERM/SIGINT (re-reading TLS material on
/// SIGHUP meanwhile), drain.
pub fn run(
    config: Config,
    build_services: impl FnOnce(&Config, &Runtime) -> Result<Services, RuntimeError>,
) -> Result<(), RuntimeError> {
    smol::block_on(async {
        // Before anything slow: a HUP during start-up must not end the process either.
        let hangups = hangup_signals()?;
        let shutdown = shutdown_signal()?;
        let daemon = Daemon::start(&config, build_services).await?;
        let _reloads = smol::spawn(reload_on_hangup(hangups, daemon.reloader()));
        daemon.run(shutdown).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pki;
    use futures_lite::{AsyncReadExt, future};
    use komle_core::pop3::{OpenFailure, OpenJob, OpenedMessage};
    use komle_core::smtp::{ProtectJob, ProtectedMessage, ProtectionFailure, RecipientVerdict};
    use komle_service::contracts::{BoxFuture, Opener, Protector, RecipientChecker};
    use komle_service::tls;

    struct Refuse;
    impl RecipientChecker for Refuse {
        fn check<'a>(&'a self, _: &'a str) -> BoxFuture<'a, RecipientVerdict> {
            Box::pin(async { RecipientVerdict::DirectoryUnavailable })
        }
    }
    impl Protector for Refuse {
        fn protect(
            &self,
            _: ProtectJob,
        ) -> BoxFuture<'_, Result<ProtectedMessage, ProtectionFailure>> {
            Box::pin(async {
                Err(ProtectionFailure {
                    reason: "test".into(),
                })
            })
        }
    }

    impl Opener for Refuse {
        fn open(&self, _: OpenJob) -> BoxFuture<'_, Result<OpenedMessage, OpenFailure>> {
            Box::pin(async {
                Err(OpenFailure {
                    reason: "test".into(),
                })
            })
        }
    }

    fn services(_: &Config, _: &Runtime) -> Result<Services, RuntimeError> {
        Ok(Services {
            checker: Arc::new(Refuse),
            protector: Arc::new(Refuse),
            opener: Arc::new(Refuse),
        })
    }

    /// Runs the daemon until the returned sender says stop.
    fn serve(
        daemon: Daemon,
    ) -> (
        smol::channel::Sender<()>,
        smol::Task<Result<(), RuntimeError>>,
    ) {
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let task = smol::spawn(daemon.run(async move {
            let _ = stopped.recv().await;
        }));
        (stop, task)
    }

    /// The first bytes a TLS client trusting the test CA reads from `addr`.
    async fn greeting(pki: &test_pki::TestPki, addr: SocketAddr) -> Vec<u8> {
        let client = tls::client_config(Some(&pki.ca())).unwrap();
        let mut c =
            crate::tls_stream::connect(client, "127.0.0.1", addr.port(), Duration::from_secs(5))
                .await
                .unwrap();
        let mut buf = [0u8; 64];
        let n = c.read(&mut buf).await.unwrap();
        buf[..n].to_vec()
    }

    fn config(pki: &test_pki::TestPki, extra: &str) -> Config {
        let text = format!(
            r#"
[smtp]
listen = "127.0.0.1:0"
hostname = "cm.test"
[tls]
certificate = "{}"
private_key = "{}"
[upstream]
ca = "{}"
[konnektor]
sds_url = "https://127.0.0.1:1/connector.sds"
ca = "{}"
[directory]
url = "ldap://127.0.0.1:1"
base = "dc=data,dc=vzd"
[timeouts]
client_idle = "7s"
{extra}
"#,
            pki.server_cert().display(),
            pki.server_key().display(),
            pki.ca().display(),
            pki.ca().display(),
        );
        Config::parse(&text).unwrap()
    }

    #[test]
    fn sigterm_completes_the_shutdown_future() {
        let shutdown = shutdown_signal().unwrap();
        // The handler is installed: SIGTERM to ourselves no longer kills the test process.
        let status = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let fired = smol::block_on(future::or(
            async {
                shutdown.await;
                true
            },
            async {
                smol::Timer::after(Duration::from_secs(5)).await;
                false
            },
        ));
        assert!(fired, "SIGTERM did not reach the shutdown future");
    }

    #[test]
    fn url_host_handles_ports_ipv6_and_userinfo() {
        assert_eq!(
            url_host("https://konnektor.local/connector.sds").as_deref(),
            Some("konnektor.local")
        );
        assert_eq!(
            url_host("https://10.0.0.1:443/sds").as_deref(),
            Some("10.0.0.1")
        );
        assert_eq!(
            url_host("https://[fd00::1]:8443/sds").as_deref(),
            Some("fd00::1")
        );
        assert_eq!(url_host("https://u:p@k.local/").as_deref(), Some("k.local"));
        assert_eq!(url_host("nonsense"), None);
        assert_eq!(url_host("https:///x"), None);
    }

    #[test]
    fn session_config_takes_timeouts_and_hostname() {
        let pki = test_pki::make("CA");
        let s = smtp_session_config(&config(&pki, ""));
        assert_eq!(s.client_idle_timeout, Duration::from_secs(7));
        assert_eq!(s.mta_response_timeout, Duration::from_secs(300));
        assert_eq!(s.hostname, "cm.test");
    }

    #[test]
    fn daemon_serves_smtp_greeting_and_stops_on_shutdown() {
        let pki = test_pki::make("CA");
        let config = config(&pki, "");
        smol::block_on(async {
            let daemon = Daemon::start(&config, services).await.unwrap();
            let addr = daemon.smtp_addr().unwrap();
            let (stop, task) = serve(daemon);
            assert_eq!(greeting(&pki, addr).await, b"220 cm.test ESMTP\r\n");
            stop.send(()).await.unwrap();
            let done = future::or(async { Some(task.await) }, async {
                smol::Timer::after(Duration::from_secs(10)).await;
                None
            })
            .await;
            assert!(matches!(done, Some(Ok(()))), "daemon did not stop");
        });
    }

    #[test]
    fn daemon_with_pop3_serves_the_pop3_greeting_with_client_timeout() {
        let pki = test_pki::make("CA");
        let config = config(&pki, "[pop3]\nlisten = \"127.0.0.1:0\"\n");
        assert_eq!(
            pop3_session_config(&config).client_idle_timeout,
            Duration::from_secs(7)
        );
        smol::block_on(async {
            let daemon = Daemon::start(&config, services).await.unwrap();
            let addr = daemon.pop3_addr().expect("POP3 listener bound");
            let (stop, task) = serve(daemon);
            assert_eq!(
                greeting(&pki, addr).await,
                b"+OK KOM-LE Clientmodul POP3\r\n"
            );
            stop.send(()).await.unwrap();
            let done = future::or(async { Some(task.await) }, async {
                smol::Timer::after(Duration::from_secs(10)).await;
                None
            })
            .await;
            assert!(matches!(done, Some(Ok(()))), "daemon did not stop");
        });
    }

    #[test]
    fn reload_reports_one_line_and_keeps_serving_when_a_file_is_gone() {
        let pki = test_pki::make("CA");
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::copy(pki.server_cert(), &cert).unwrap();
        std::fs::copy(pki.server_key(), &key).unwrap();
        let mut config = config(&pki, "");
        config.tls.certificate = cert.clone();
        config.tls.private_key = key;
        smol::block_on(async {
            let daemon = Daemon::start(&config, services).await.unwrap();
            let addr = daemon.smtp_addr().unwrap();
            let reloader = daemon.reloader();
            let ok = reloader.reload();
            assert!(ok.complete, "{}", ok.line);
            assert!(!ok.line.contains('\n'));
            assert!(
                ok.line.starts_with(
                    "SIGHUP: [tls] certificate/private_key re-read; [upstream] ca re-read;"
                ),
                "{}",
                ok.line
            );
            std::fs::remove_file(&cert).unwrap();
            let failed = reloader.reload();
            assert!(!failed.complete);
            assert!(
                failed
                    .line
                    .contains("[tls] certificate/private_key NOT re-read, previous kept:"),
                "{}",
                failed.line
            );
            assert!(failed.line.contains("need a restart"), "{}", failed.line);
            // The previous certificate still serves new clients.
            let (stop, task) = serve(daemon);
            assert_eq!(greeting(&pki, addr).await, b"220 cm.test ESMTP\r\n");
            stop.send(()).await.unwrap();
            assert!(task.await.is_ok());
        });
    }

    #[test]
    fn missing_certificate_is_a_runtime_error_naming_the_file() {
        let pki = test_pki::make("CA");
        let mut config = config(&pki, "");
        config.tls.certificate = "/nonexistent/server.pem".into();
        let e = smol::block_on(Daemon::start(&config, services))
            .err()
            .unwrap();
        assert!(
            e.0.starts_with("[tls]: /nonexistent/server.pem: cannot open"),
            "{e}"
        );
    }

    #[test]
    fn busy_listen_address_is_a_runtime_error() {
        let pki = test_pki::make("CA");
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut config = config(&pki, "");
        if let Some(smtp) = config.smtp.as_mut() {
            smtp.listen = taken.local_addr().unwrap();
        }
        let e = smol::block_on(Daemon::start(&config, services))
            .err()
            .unwrap();
        assert!(e.0.contains("cannot bind"), "{e}");
    }
}
