//! `komle-cm`: the KOM-LE Clientmodul daemon. All logic is in the library.
use std::process::ExitCode;

fn main() -> ExitCode {
    komle_smol::cli::main_with(|_config| {
        Err(komle_smol::cli::RuntimeError(
            "the daemon loop is not wired in yet".into(),
        ))
    })
}
