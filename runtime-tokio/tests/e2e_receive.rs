//! The daemon's end-to-end receive suite (runtime-smol/tests/e2e/receive.rs), the very same
//! test code, against the tokio runtime: `komle-cm-tokio` with `[pop3]` configured in front of
//! a real Dovecot and the Konnektor simulator.

/// The daemon under test.
const CM_BINARY: &str = env!("CARGO_BIN_EXE_komle-cm-tokio");

#[path = "../../runtime-smol/tests/e2e/receive.rs"]
mod receive;
