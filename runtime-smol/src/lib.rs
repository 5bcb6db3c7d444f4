//! The smol runtime of the KOM-LE Clientmodul: the I/O around `komle-core`.
//!
//! Everything protocol-related lives in `komle-core` as sans-IO state machines; this crate only
//! moves bytes between sockets and those machines, reads the configuration, sets up TLS, talks
//! HTTP to the Konnektor and keeps the clock.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod duration;
pub mod konnektor_http;
pub mod ldap;
pub mod logging;
pub mod smtp_driver;
pub mod smtp_server;
#[cfg(test)]
mod test_pki;
pub mod time_sync;
pub mod tls;
