//! End-to-end KIM 1.5 large messages through the real `komle-cm` binary: mail clients → komle-cm
//! → Postfix → Dovecot, the mail data on the KAS simulator (AttachmentService 2.4, mutual TLS),
//! OpenLDAP as the VZD (komLeData `1.5+` for the opted-in recipient), the Konnektor simulator.
//! The cases live in `e2e/kas.rs`.

/// The daemon under test.
const CM_BINARY: &str = env!("CARGO_BIN_EXE_komle-cm");

mod common;
#[path = "e2e/kas.rs"]
mod kas;
#[path = "e2e/kas_dnssd.rs"]
mod kas_dnssd;
