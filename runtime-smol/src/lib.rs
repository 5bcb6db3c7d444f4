//! The smol runtime of the KOM-LE Clientmodul: the I/O around `komle-core`.
//!
//! Everything protocol-related lives in `komle-core` as sans-IO state machines; this crate only
//! moves bytes between sockets and those machines, reads the configuration, sets up TLS, talks
//! HTTP to the Konnektor and keeps the clock.
//!
//! - [`config`] / [`duration`]: the TOML file, one-line errors naming the key.
//! - [`cli`]: `komle-cm --config FILE [--check-config]`, exit codes 2 (config) / 1 (runtime).
//! - [`tls`]: listener certificate, client trust towards the mail service (always verified).
//! - [`konnektor_http`]: SOAP/GET over HTTPS to the Konnektor (ureq, off the executor).
//! - [`time_sync`]: NTP against the Konnektor (A_2230) and the [`time_sync::Clock`].
//! - [`smtp_driver`] / [`smtp_server`]: one task per client driving `SmtpSession`, the
//!   listener with session limit and graceful shutdown.
//! - [`pop3_driver`] / [`pop3_server`]: the same for `Pop3Session` (decrypting proxy).
//! - [`logging`]: the logger, with library targets capped so no log carries content.
//! - [`process_hardening`]: no core dumps (A_2005); [`tls_reload`]: what SIGHUP re-reads.
//! - [`daemon`]: assembly; the directory/Konnektor pipeline is plugged in through
//!   [`daemon::Services`].

#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod demo_pop3;
pub mod duration;
pub mod embedded;
pub mod embedded_pop3;
pub mod konnektor_http;
pub mod ldap;
pub mod listener;
pub mod logging;
pub mod pop3_driver;
pub mod pop3_server;
pub mod process_hardening;
pub mod services;
pub mod smtp_driver;
pub mod smtp_server;
#[cfg(test)]
mod test_pki;
pub mod time_sync;
pub mod tls;
pub mod tls_reload;
