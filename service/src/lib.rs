//! Everything of the KOM-LE Clientmodul that is neither protocol logic (`komle-core`) nor an
//! async runtime (`komle-smol`, `komle-tokio`): what both daemons and an embedding service share.
//!
//! Blocking I/O (the Konnektor over ureq, the directory over ldap3) runs on the `blocking`
//! crate's thread pool, which serves any executor; sockets driven by an executor (listeners,
//! the mail service, NTP) stay in the runtimes. So a tokio service that embeds the Clientmodul
//! links neither smol nor the demo's simulator.
//!
//! - [`config`] / [`duration`]: the TOML file, one-line errors naming the key.
//! - [`cli`]: `--config FILE [--check-config] [--log-level]`, exit codes 2 (config) / 1
//!   (runtime), shared by `komle-cm` and `komle-cm-tokio`.
//! - [`tls`] / [`tls_reload`]: the rustls server and client configurations (A_2011) and what
//!   SIGHUP re-reads; mutual TLS to the mail service with the stored client certificate
//!   ([`tls::upstream_client_config`], A_2074, A_2182-01).
//! - [`key_store`]: the password-protected PKCS#12 key store (A_2065, A_18783) and
//!   `komle-cm keys import|list|remove` ([`cli::keys_main`]).
//! - [`konnektor_http`]: SOAP/GET over HTTPS to the Konnektor; [`ldap`]: the directory (VZD).
//! - [`konnektor_directory`]: `connector.sds`, read lazily and refreshed on connection problems
//!   (A_2076); [`server_cert_check`]: the Konnektor's check of mail-server certificates
//!   (A_2075-01) with its cache (A_22348).
//! - [`time_sync`]: the SNTP packet and the Konnektor-corrected [`time_sync::Clock`] (A_2230).
//! - [`logging`]: the logger, library targets capped so no log carries content.
//! - [`process_hardening`]: no core dumps (A_2005).
//! - [`contracts`]: the traits between session drivers and services ([`contracts::Protector`],
//!   [`contracts::RecipientChecker`], [`contracts::Opener`]).
//! - [`session`]: what every session of a listener shares; [`limits`]: session limits and the
//!   per-address accounting.
//! - [`services`]: the directory/Konnektor pipeline behind the contracts, built from the
//!   configuration.

#![forbid(unsafe_code)]

pub mod admin_http;
pub mod assembly;
pub mod call_limit;
pub mod cli;
pub mod config;
pub mod contracts;
pub mod cpu_pool;
pub mod doctor;
pub mod driver;
pub mod duration;
pub mod jobs;
pub mod kas_client;
pub mod kas_discovery;
pub mod kas_flow;
pub mod kas_seal_pipeline;
pub mod key_store;
pub mod konnektor_directory;
pub mod konnektor_http;
pub mod ldap;
pub mod limits;
pub mod listener;
pub mod logging;
pub mod ntp;
pub mod process_hardening;
pub mod proxy_server;
pub mod runtime;
pub mod server_cert_check;
pub mod services;
pub mod session;
pub mod stats;
#[cfg(test)]
mod test_pki;
pub mod time_sync;
pub mod tls;
pub mod tls_io;
pub mod tls_reload;
