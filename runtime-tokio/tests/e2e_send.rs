//! The daemon's end-to-end send suite (runtime-smol/tests/e2e/send.rs), the very same test
//! code, against the tokio runtime: `komle-cm-tokio` with the same configuration file, in front
//! of real Postfix/Dovecot, slapd and the Konnektor simulator.

/// The daemon under test.
const CM_BINARY: &str = env!("CARGO_BIN_EXE_komle-cm-tokio");

#[path = "../../runtime-smol/tests/common/mod.rs"]
mod common;
#[path = "../../runtime-smol/tests/e2e/mail_service_tls.rs"]
mod mail_service_tls;
#[path = "../../runtime-smol/tests/e2e/relay_deny.rs"]
mod relay_deny;
#[path = "../../runtime-smol/tests/e2e/send.rs"]
mod send;
