//! `komle-cm-tokio`: the Clientmodul's SMTP proxy served by `komle-tokio`, with exactly the
//! command line, configuration file and exit codes of `komle-cm`. It exists so the end-to-end
//! suite runs the same test code against both runtimes; an embedding service uses
//! [`komle_tokio::KomleService`] directly instead.

use std::process::ExitCode;

use komle_smol::cli::{self, RuntimeError};
use komle_tokio::KomleService;

fn main() -> ExitCode {
    cli::main_with(|config| {
        let service = KomleService::from_config(&config)?;
        let Some(listen) = config.smtp.as_ref().map(|s| s.listen) else {
            return Err(RuntimeError(
                "[smtp] listen: komle-cm-tokio serves SMTP only".into(),
            ));
        };
        let rt = tokio::runtime::Runtime::new()
            .map_err(|e| RuntimeError(format!("tokio runtime: {e}")))?;
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| RuntimeError(format!("[smtp] listen {listen}: cannot bind: {e}")))?;
            log::info!("SMTP listening on {listen} (tokio)");
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .map_err(|e| RuntimeError(format!("signals: {e}")))?;
            let shutdown = async move {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            };
            let cut = service
                .serve_smtp(listener, shutdown)
                .await
                .map_err(|e| RuntimeError(format!("SMTP listener: {e}")))?;
            log::info!("stopped; {cut} session(s) cut off");
            Ok(())
        })
    })
}
