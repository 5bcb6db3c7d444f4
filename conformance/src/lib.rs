//! Conformance kit for the KOM-LE Clientmodul: protocol transcripts replayed against the core,
//! the Konnektor simulator with real cryptography, the test PKI, and harnesses that start real
//! servers (Postfix, Dovecot, slapd) from temp dirs for the end-to-end suites, and a TCP relay
//! that drops or stalls a connection at a chosen point for the fault-injection loops.

pub mod fault_relay;
pub mod inprocess;
pub mod kas_sim;
pub mod loopback_tls;
pub mod mini_mta;
pub mod mini_pop3;
pub mod pki;
pub mod servers;
pub mod sim;
pub mod slapd;
pub mod transcript;
pub mod world;
