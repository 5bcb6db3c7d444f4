//! Examples of embedding the KOM-LE Clientmodul.
//!
//! `tokio-service` (src/bin/tokio-service.rs) is a tokio application that serves its own HTTP
//! health and metrics endpoint next to the Clientmodul's SMTP proxy. The HTTP part lives here
//! so it can be tested.

pub mod health_http;
