//! `komle-cm`: the KOM-LE Clientmodul daemon. All logic is in the libraries.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use komle_service::{cli, services};
use komle_smol::daemon;

fn main() -> ExitCode {
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
