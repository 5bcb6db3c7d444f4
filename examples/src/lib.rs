//! Examples of embedding the KOM-LE Clientmodul.
//!
//! `tokio-service` (src/bin/tokio-service.rs) is a tokio application that serves its own HTTP
//! health and metrics endpoint next to the Clientmodul's SMTP proxy. The HTTP part lives here
//! so it can be tested. `compare-runtimes` measures the smol daemon against the tokio
//! listener on the same embedded environment (`compare.rs`). `komle-load` runs the SMTP daemon
//! benchmarks of BENCHMARKS.md section 2 (`load.rs`, `big_message.rs`, `machine.rs`),
//! `komle-load-pop3` the POP3 ones (`load_pop3.rs`), `komle-load-kas` the KIM 1.5 large-mail
//! figure (a mail over 15 MiB via the KAS vs straight). The bins start `komle-demo` as a child
//! process (`demo_process.rs`).

#![forbid(unsafe_code)]

pub mod big_message;
pub mod compare;
pub mod demo_process;
pub mod health_http;
pub mod load;
pub mod load_pop3;
pub mod machine;
