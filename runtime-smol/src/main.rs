//! `komle-cm`: the KOM-LE Clientmodul daemon. All logic is in the libraries.
use std::process::ExitCode;

use komle_service::{cli, services};
use komle_smol::daemon;

fn main() -> ExitCode {
    use_all_cores();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("demo") {
        // The demo (Konnektor simulator, test PKI, mail service) is not linked into the daemon.
        eprintln!(
            "komle-cm demo moved: run `komle-demo` (cargo run --release -p komle-demo) with the same flags"
        );
        return ExitCode::from(2);
    }
    if args.first().map(String::as_str) == Some("keys") {
        // The key store (import/list/remove); no configuration file, no runtime.
        return cli::keys_main(std::env::args_os().skip(2));
    }
    if args.first().map(String::as_str) == Some("doctor") {
        // Checks the dependencies of a configuration; starts nothing.
        return cli::doctor_main(std::env::args_os().skip(2));
    }
    cli::main_with(|config| daemon::run(config, services::build))
}

/// smol's global executor runs on `SMOL_THREADS` threads, one by default: with many concurrent
/// sessions that single thread was the bottleneck (BENCHMARKS.md, komle-load). Use one per
/// core unless the operator chose otherwise.
fn use_all_cores() {
    if std::env::var_os("SMOL_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        // SAFETY: first statement of main, before any other thread exists.
        unsafe { std::env::set_var("SMOL_THREADS", n.to_string()) };
    }
}
