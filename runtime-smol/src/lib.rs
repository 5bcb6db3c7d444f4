//! The smol runtime of the KOM-LE Clientmodul: the daemon `komle-cm`.
//!
//! Everything protocol-related lives in `komle-core` as sans-IO state machines; the one
//! session driver, the listener, TLS over any runtime and the assembly live in
//! `komle-service` (shared with `komle-tokio`). This crate is only:
//!
//! - [`runtime`]: [`SmolRuntime`](runtime::SmolRuntime), the
//!   [`Runtime`](komle_service::runtime::Runtime) implementation on smol.
//! - [`daemon`]: the entry point: signals (SIGTERM/SIGINT shutdown, SIGHUP reload) around
//!   [`Clientmodul`](komle_service::assembly::Clientmodul).
//! - [`smtp_server`] / [`pop3_server`] / [`tls_stream`]: the shared types named for smol, for
//!   the demo and tests.

#![forbid(unsafe_code)]

pub mod daemon;
pub mod pop3_server;
pub mod runtime;
pub mod smtp_server;
// The openssl-made PKI of komle-service's unit tests, shared (not every helper is used here).
#[cfg(test)]
#[allow(dead_code)]
#[path = "../../service/src/test_pki.rs"]
mod test_pki;
pub mod tls_stream;
