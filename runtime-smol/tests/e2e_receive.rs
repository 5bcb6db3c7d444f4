//! The POP3 proxy end to end: a real Dovecot (POP3S, Maildir), the Konnektor simulator over
//! HTTPS and the `komle-cm` binary with `[pop3]` configured; clients are a raw POP3S client
//! (byte-exact checks) and `curl pop3s://`.
//!
//! The cases live in `e2e/receive.rs` so that `komle-tokio`'s tests run the very same code
//! against `komle-cm-tokio`; this file picks the komle-cm binary.

/// The daemon under test.
const CM_BINARY: &str = env!("CARGO_BIN_EXE_komle-cm");

#[path = "e2e/receive.rs"]
mod receive;
