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
//! There is no protocol logic and no session loop here: the SMTP and POP3 dialogs are
//! `komle-core`'s sans-IO sessions, the one driver, the listener and the assembly are
//! `komle-service`'s (shared with the smol daemon), whose blocking LDAP and HTTPS calls run on
//! a separate thread pool, never on the tokio workers. This crate is [`TokioRuntime`] (the
//! [`Runtime`](komle_service::runtime::Runtime) implementation) and [`KomleService`].

#![forbid(unsafe_code)]

mod runtime;
mod service;

pub use komle_service::stats::Stats;
pub use runtime::{AbortOnDrop, TokioRuntime};
pub use service::KomleService;
