//! The smol runtime of the KOM-LE Clientmodul: the I/O around `komle-core`.
//!
//! Everything protocol-related lives in `komle-core` as sans-IO state machines, everything
//! runtime-neutral (configuration, CLI, TLS configuration, Konnektor HTTPS, LDAP, the clock,
//! logging, the service contracts and their assembly) in `komle-service`; this crate only moves
//! bytes between smol sockets and those machines.
//!
//! - [`tls_stream`]: implicit-TLS connect towards the mail service, accept of mail clients.
//! - [`ntp`]: the SNTP exchange with the Konnektor (A_2230) over a smol UDP socket.
//! - [`smtp_driver`] / [`smtp_server`]: one task per client driving `SmtpSession`, the
//!   listener with session limit and graceful shutdown.
//! - [`pop3_driver`] / [`pop3_server`]: the same for `Pop3Session` (decrypting proxy).
//! - [`listener`]: the accept loop both share.
//! - [`daemon`]: assembly, signals (SIGTERM/SIGINT shutdown, SIGHUP reload); the
//!   directory/Konnektor pipeline is plugged in through
//!   [`komle_service::services::Services`].

#![forbid(unsafe_code)]

pub mod daemon;
pub mod listener;
pub mod ntp;
pub mod pop3_driver;
pub mod pop3_server;
pub mod smtp_driver;
pub mod smtp_server;
// The openssl-made PKI of komle-service's unit tests, shared (not every helper is used here).
#[cfg(test)]
#[allow(dead_code)]
#[path = "../../service/src/test_pki.rs"]
mod test_pki;
pub mod tls_stream;
