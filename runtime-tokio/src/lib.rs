//! Embed the KOM-LE Clientmodul in an existing tokio service.
//!
//! A practice-management backend or a gateway that already runs tokio does not want a second
//! daemon: it builds a [`KomleService`] from the same configuration file `komle-cm` reads and
//! serves it on listeners it owns, next to its own endpoints, shutting down on a future it
//! controls.
//!
//! ```no_run
//! # async fn example(config: komle_service::config::Config) -> Result<(), Box<dyn std::error::Error>> {
//! let service = komle_tokio::KomleService::from_config(&config)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:2465").await?;
//! service.serve_smtp(listener, std::future::pending::<()>()).await?;
//! # Ok(()) }
//! ```
//!
//! There is no protocol logic here: the SMTP dialog is `komle-core`'s sans-IO session, the
//! directory and Konnektor work is `komle-service`'s [`services`](komle_service::services) (whose
//! blocking LDAP and HTTPS calls run on a separate thread pool, never on the tokio workers).
//! This crate only moves bytes between tokio sockets and the session.

#![forbid(unsafe_code)]

mod io;
mod pop3_driver;
mod pop3_server;
mod server;
mod service;
mod smtp_driver;
mod smtp_server;
mod stats;

pub use pop3_server::serve_pop3;
pub use service::KomleService;
pub use smtp_driver::drive;
pub use smtp_server::serve_smtp;
pub use stats::Stats;
