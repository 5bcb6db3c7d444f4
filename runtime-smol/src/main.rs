//! `komle-cm`: the KOM-LE Clientmodul daemon. All logic is in the library.
use std::process::ExitCode;

use komle_smol::cli;
use komle_smol::{daemon, services};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("demo") {
        return demo(&args[1..]);
    }
    cli::main_with(|config| daemon::run(config, services::build))
}

/// `komle-cm demo [--port N] [--once]`: the sending path on an embedded default.
fn demo(args: &[String]) -> ExitCode {
    let mut options = komle_smol::demo::DemoOptions {
        smtp_port: 2465,
        once: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), options.once) {
            ("--once", _) => options.once = true,
            ("--port", _) => match it.next().and_then(|p| p.parse().ok()) {
                Some(p) => options.smtp_port = p,
                None => return usage(),
            },
            _ => return usage(),
        }
    }
    komle_smol::logging::init(log::LevelFilter::Warn);
    match komle_smol::demo::run(&options, &mut std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::from(1)
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: komle-cm demo [--port N] [--once]");
    ExitCode::from(2)
}
