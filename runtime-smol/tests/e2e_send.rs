//! End-to-end sending through real servers: mail clients (curl, Python) → the `komle-cm`
//! binary → Postfix (SMTPS, SASL via Dovecot) → Dovecot Maildir, with OpenLDAP as the VZD and
//! the Konnektor simulator over HTTPS. What arrives is opened again with the recipient's card.
//!
//! Every test starts its own [`common::TestBed`] (the beds run in parallel); markers in the
//! Message-ID (copied to the outer KOM-LE message) tell a test's messages apart.
//!
//! The cases live in `e2e/send.rs` so that `komle-tokio`'s tests run the very same code
//! against `komle-cm-tokio`; this file picks the komle-cm binary.

/// The daemon under test.
const CM_BINARY: &str = env!("CARGO_BIN_EXE_komle-cm");

mod common;
#[path = "e2e/mail_service_tls.rs"]
mod mail_service_tls;
#[path = "e2e/relay_deny.rs"]
mod relay_deny;
#[path = "e2e/send.rs"]
mod send;
