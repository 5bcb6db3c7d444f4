//! Examples of embedding the KOM-LE Clientmodul.
//!
//! `tokio-service` (src/bin/tokio-service.rs) is a tokio application that serves its own HTTP
//! health and metrics endpoint next to the Clientmodul's SMTP proxy. The HTTP part lives here
//! so it can be tested. `compare-runtimes` measures the smol daemon against the tokio
//! listener on the same embedded environment (`compare.rs`). `komle-load` and
//! `komle-load-pop3` measure a running `komle-cm demo` (`load.rs`, `load_pop3.rs`).

pub mod compare;
pub mod health_http;
pub mod load;
pub mod load_pop3;
