//! `komle-cm` on smol: the [`Clientmodul`] assembly (TLS, Konnektor, time sync A_2230, the
//! SMTP and POP3 listeners; shared with tokio) plus what only a daemon has: shutdown on
//! SIGTERM/SIGINT and SIGHUP re-reading the listeners' certificate and the upstream CA for new
//! connections ([`Reloader`]), nothing in flight touched.

use std::future::Future;

use futures_lite::StreamExt;
use komle_service::admin_http;
use komle_service::assembly::Clientmodul;
pub use komle_service::assembly::{
    HANDSHAKE_TIMEOUT, NTP_PORT, ReloadReport, Reloader, SHUTDOWN_GRACE, TIME_SYNC_INTERVAL,
    url_host,
};
use komle_service::cli::RuntimeError;
use komle_service::config::Config;
use komle_service::services::{Runtime, Services};

use crate::runtime::SmolRuntime;

/// The Clientmodul on smol.
pub type Daemon = Clientmodul<SmolRuntime>;

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
        let daemon = Daemon::start(SmolRuntime, &config, build_services).await?;
        // `[admin]`: /health and /metrics on a thread of their own, stopped when dropped.
        let _admin = admin_http::start_configured(&config, daemon.stats(), daemon.clock())?;
        let probe = config.clone();
        smol::spawn(smol::unblock(move || {
            admin_http::warn_if_directory_unreachable(&probe)
        }))
        .detach();
        let _reloads = daemon
            .reloader()
            .map(|r| smol::spawn(reload_on_hangup(hangups, r)));
        let cut = daemon.run(shutdown).await?;
        log::info!("stopped; {cut} session(s) cut off");
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pki;
    use futures_lite::{AsyncReadExt, future};
    use komle_core::pop3::{OpenFailure, OpenJob, OpenedMessage};
    use komle_core::smtp::{ProtectJob, ProtectedMessage, ProtectionFailure, RecipientVerdict};
    use komle_service::config::ListenerIdentity;
    use komle_service::contracts::{BoxFuture, Opener, Protector, RecipientChecker};
    use komle_service::session::{pop3_session_config, smtp_session_config};
    use komle_service::tls;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

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
            server_check: None,
        })
    }

    /// Runs the daemon until the returned sender says stop.
    fn serve(
        daemon: Daemon,
    ) -> (
        smol::channel::Sender<()>,
        smol::Task<Result<usize, RuntimeError>>,
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
            let daemon = Daemon::start(SmolRuntime, &config, services).await.unwrap();
            let addr = daemon.smtp_addr().unwrap();
            let (stop, task) = serve(daemon);
            assert_eq!(greeting(&pki, addr).await, b"220 cm.test ESMTP\r\n");
            stop.send(()).await.unwrap();
            let done = future::or(async { Some(task.await) }, async {
                smol::Timer::after(Duration::from_secs(10)).await;
                None
            })
            .await;
            assert!(matches!(done, Some(Ok(0))), "daemon did not stop");
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
            let daemon = Daemon::start(SmolRuntime, &config, services).await.unwrap();
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
            assert!(matches!(done, Some(Ok(0))), "daemon did not stop");
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
        config.tls.identity = ListenerIdentity::Files {
            certificate: cert.clone(),
            private_key: key,
        };
        smol::block_on(async {
            let daemon = Daemon::start(SmolRuntime, &config, services).await.unwrap();
            let addr = daemon.smtp_addr().unwrap();
            let reloader = daemon.reloader().expect("built from a configuration");
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
        if let ListenerIdentity::Files { certificate, .. } = &mut config.tls.identity {
            *certificate = "/nonexistent/server.pem".into();
        }
        let e = smol::block_on(Daemon::start(SmolRuntime, &config, services))
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
        let e = smol::block_on(Daemon::start(SmolRuntime, &config, services))
            .err()
            .unwrap();
        assert!(e.0.contains("cannot bind"), "{e}");
    }
}
