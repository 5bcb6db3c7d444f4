//! `komle-cm`: the KOM-LE Clientmodul daemon. All logic is in the library.
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("demo") {
        return demo(&args[1..]);
    }
    komle_smol::cli::main_with(|_config| {
        Err(komle_smol::cli::RuntimeError(
            "the daemon loop is not wired in yet".into(),
        ))
    })
}

/// `komle-cm demo [--port N] [--once]`: the sending path on an embedded default.
fn demo(args: &[String]) -> ExitCode {
    let mut options = komle_smol::demo::DemoOptions {
        smtp_port: 2465,
        once: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--once" => options.once = true,
            "--port" => match it.next().and_then(|p| p.parse().ok()) {
                Some(p) => options.smtp_port = p,
                None => {
                    eprintln!("usage: komle-cm demo [--port N] [--once]");
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!("usage: komle-cm demo [--port N] [--once]");
                return ExitCode::from(2);
            }
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
