//! `komle-cm-tokio`: the Clientmodul's SMTP proxy served by `komle-tokio`, with exactly the
//! command line, configuration file and exit codes of `komle-cm`. It exists so the end-to-end
//! suite runs the same test code against both runtimes; an embedding service uses
//! [`komle_tokio::KomleService`] directly instead.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use komle_service::cli::{self, RuntimeError};
use komle_tokio::KomleService;

fn main() -> ExitCode {
    cli::main_with(|config| {
        let service = KomleService::from_config(&config)?;
        let smtp = config.smtp.as_ref().map(|s| s.listen);
        let pop3 = config.pop3.as_ref().map(|p| p.listen);
        let rt = tokio::runtime::Runtime::new()
            .map_err(|e| RuntimeError(format!("tokio runtime: {e}")))?;
        rt.block_on(async {
            let bind = |addr: std::net::SocketAddr, what: &'static str| async move {
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| RuntimeError(format!("[{what}] listen {addr}: cannot bind: {e}")))
            };
            let smtp = match smtp {
                Some(a) => Some(bind(a, "smtp").await?),
                None => None,
            };
            let pop3 = match pop3 {
                Some(a) => Some(bind(a, "pop3").await?),
                None => None,
            };
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .map_err(|e| RuntimeError(format!("signals: {e}")))?;
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
                let _ = stop_tx.send(true);
            });
            let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            let serve_smtp = async {
                match smtp {
                    Some(l) => service.serve_smtp(l, stopped(stop_rx.clone())).await,
                    None => Ok(0),
                }
            };
            let serve_pop3 = async {
                match pop3 {
                    Some(l) => service.serve_pop3(l, stopped(stop_rx.clone())).await,
                    None => Ok(0),
                }
            };
            log::info!("serving (tokio)");
            let (a, b) = tokio::join!(serve_smtp, serve_pop3);
            let cut = a.map_err(|e| RuntimeError(format!("SMTP listener: {e}")))?
                + b.map_err(|e| RuntimeError(format!("POP3 listener: {e}")))?;
            log::info!("stopped; {cut} session(s) cut off");
            Ok(())
        })
    })
}
