//! `komle-demo`: the Clientmodul's sending and receiving path on an embedded default, without
//! any configuration or system package (what `komle-cm demo` did before the demo left the
//! daemon). Same flags: `[--port N] [--pop3-port N] [--pop3-large MB] [--large MB] [--kas] [--once]
//! [--precomputed-konnektor]`.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use futures_lite::StreamExt;
use komle_service::process_hardening::CoreDumps;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    demo(&args)
}

/// `komle-demo [--port N] [--pop3-port N] [--pop3-large MB] [--large MB] [--kas] [--once]
/// [--precomputed-konnektor]`: the sending and receiving path on an embedded default.
/// `--kas` puts the KAS simulator behind the proxy without sending the scripted large mail
/// (`--large` implies it).
fn demo(args: &[String]) -> ExitCode {
    let mut options = komle_demo::demo::DemoOptions {
        smtp_port: 2465,
        pop3_port: 2995,
        ..komle_demo::demo::DemoOptions::default()
    };
    let mut it = args.iter();
    let mut pop3_port_given = false;
    while let Some(a) = it.next() {
        match (a.as_str(), options.once) {
            ("--once", _) => options.once = true,
            ("--precomputed-konnektor", _) => options.precomputed_konnektor = true,
            ("--floor-relay", _) => options.floor_relay = true,
            ("--kas", _) => options.kas = true,
            ("--port", _) => match it.next().and_then(|p| p.parse().ok()) {
                Some(p) => options.smtp_port = p,
                None => return usage(),
            },
            ("--pop3-port", _) => match it.next().and_then(|p| p.parse().ok()) {
                Some(p) => {
                    options.pop3_port = p;
                    pop3_port_given = true;
                }
                None => return usage(),
            },
            ("--large", _) => match it.next().and_then(|p| p.parse().ok()) {
                Some(mb) if (1..=200).contains(&mb) => options.large_mb = mb,
                _ => return usage(),
            },
            ("--pop3-large", _) => match it.next().and_then(|p| p.parse().ok()) {
                Some(mb) if mb <= 40 => options.pop3_large_mb = mb,
                _ => return usage(),
            },
            _ => return usage(),
        }
    }
    // `--port 0` (tests, load tools): any free port for POP3 too, unless named.
    if options.smtp_port == 0 && !pop3_port_given {
        options.pop3_port = 0;
    }
    komle_service::logging::init(log::LevelFilter::Warn);
    // The demo holds passwords and mails like the daemon: no core dumps (A_2005), and SIGHUP
    // must not end it (its certificates live in memory, there is nothing to re-read).
    if let Err(e) = komle_service::process_hardening::apply(CoreDumps::Forbidden) {
        eprintln!("demo failed: {e}");
        return ExitCode::from(1);
    }
    match komle_smol::daemon::hangup_signals() {
        Ok(hangups) => {
            std::thread::spawn(move || smol::block_on(log_demo_hangups(hangups)));
        }
        Err(e) => {
            eprintln!("demo failed: {e}");
            return ExitCode::from(1);
        }
    }
    match komle_demo::demo::run(&options, &mut std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// One line per SIGHUP (warning: the demo logs at warn), the demo keeps serving.
async fn log_demo_hangups(mut hangups: async_signal::Signals) {
    while let Some(Ok(_)) = hangups.next().await {
        log::warn!(
            "SIGHUP: the demo's certificates are generated in memory, nothing to re-read; still serving"
        );
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: komle-demo [--port N] [--pop3-port N] [--pop3-large MB (<= 40)] [--large MB (1..=200, KIM 1.5 via the KAS)] [--kas] [--once] [--precomputed-konnektor] [--floor-relay]"
    );
    ExitCode::from(2)
}
