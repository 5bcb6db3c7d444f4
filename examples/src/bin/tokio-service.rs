//! An existing tokio service that embeds the KOM-LE Clientmodul next to its own HTTP endpoint.
//!
//! ```text
//! tokio-service --config /etc/komle-cm.toml --http 127.0.0.1:8080
//! ```
//!
//! The SMTP listener comes from `[smtp] listen` of the same configuration file `komle-cm`
//! reads; `/health` and `/metrics` are served on `--http`. Ctrl-C stops both.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use komle_service::config::Config;
use komle_tokio::KomleService;

fn main() -> ExitCode {
    // The Clientmodul's logger: RUST_LOG refines it (default: errors only), library targets stay
    // capped so no log carries mail content or SOAP bodies.
    komle_service::logging::init(log::LevelFilter::Error);
    let args: Vec<String> = std::env::args().collect();
    let (mut config_path, mut http) = (None, "127.0.0.1:8080".to_owned());
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match (a.as_str(), it.next()) {
            ("--config", Some(p)) => config_path = Some(p.clone()),
            ("--http", Some(h)) => http = h.clone(),
            _ => {
                eprintln!("usage: tokio-service --config FILE [--http ADDR]");
                return ExitCode::from(2);
            }
        }
    }
    let Some(config_path) = config_path else {
        eprintln!("usage: tokio-service --config FILE [--http ADDR]");
        return ExitCode::from(2);
    };
    let config = match Config::load(std::path::Path::new(&config_path)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    // Konnektor discovery and the directory connection block: do them before the runtime.
    let service = match KomleService::from_config(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let Some(smtp) = config.smtp.as_ref().map(|s| s.listen) else {
        eprintln!("config error: [smtp] listen: missing");
        return ExitCode::from(2);
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio: {e}");
            return ExitCode::from(1);
        }
    };
    let result: std::io::Result<()> = rt.block_on(async {
        let smtp = tokio::net::TcpListener::bind(smtp).await?;
        let http = tokio::net::TcpListener::bind(&http).await?;
        let stats = service.stats();
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let health = tokio::spawn(komle_examples::health_http::serve(
            http,
            stats,
            std::future::pending(),
        ));
        let cut = service.serve_smtp(smtp, ctrl_c).await?;
        health.abort();
        log::info!("stopped; {cut} session(s) cut off");
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
