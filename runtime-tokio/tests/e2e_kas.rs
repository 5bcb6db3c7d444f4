//! The daemon's end-to-end KIM 1.5 suite (runtime-smol/tests/e2e/kas.rs), the very same test
//! code, against the tokio runtime: `komle-cm-tokio` with the same configuration file, the KAS
//! simulator, real Postfix/Dovecot, slapd and the Konnektor simulator.

/// The daemon under test.
const CM_BINARY: &str = env!("CARGO_BIN_EXE_komle-cm-tokio");

#[path = "../../runtime-smol/tests/common/mod.rs"]
mod common;
#[path = "../../runtime-smol/tests/e2e/kas.rs"]
mod kas;
