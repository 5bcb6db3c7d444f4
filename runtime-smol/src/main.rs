//! `komle-cm`: the KOM-LE Clientmodul daemon. All logic is in the library.
use std::process::ExitCode;

use komle_smol::cli::{self, RuntimeError};
use komle_smol::daemon;

fn main() -> ExitCode {
    cli::main_with(|config| {
        daemon::run(config, |_config, _runtime| {
            // The integrator plugs in the directory + Konnektor pipeline here.
            Err(RuntimeError(
                "the directory/Konnektor pipeline is not wired into this build yet".into(),
            ))
        })
    })
}
