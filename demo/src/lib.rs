//! The KOM-LE Clientmodul's demo and its embedded environments: the daemon's real SMTP and POP3
//! proxies (`komle-smol`) with everything around them in-process on 127.0.0.1 — the Konnektor
//! simulator, the test PKI and cards, a directory made of the PKI and a small mail service
//! (`komle-conformance`).
//!
//! A crate of its own so the daemon `komle-cm` and an embedding tokio service link no
//! simulator, no test PKI and no `rsa`: only the `komle-demo` binary, the tests that drive the
//! embedded environments and the load tools (`komle-examples`) depend on this.
//!
//! - [`demo`] / [`demo_pop3`]: `komle-demo`, the sending and receiving path shown end to end.
//! - [`embedded`] / [`embedded_pop3`]: the environments the demo, the fault-injection tests
//!   and the benchmarks start.
//! - [`floor_relay`]: the "protocol floor" baseline of the throughput benchmark (issue 15).
//! - [`mail_service_tls`]: mutual TLS and the Konnektor's server-certificate check between
//!   the proxies and the embedded mail service, as towards a KIM provider.

#![forbid(unsafe_code)]

pub mod demo;
pub mod demo_pop3;
pub mod embedded;
pub mod embedded_pop3;
pub mod floor_relay;
pub mod mail_service_tls;
