//! Sans-IO core of the KOM-LE Clientmodul (gemSpec_CM_KOMLE).
//!
//! Everything that knows a protocol lives here: the SMTP and POP3 codecs, SASL, the login-name
//! grammar, the proxy state machines, the KOM-LE S/MIME profile, the Konnektor SOAP messages and
//! the directory lookups. Nothing in this crate performs I/O, reads a clock, spawns a thread or
//! draws randomness: callers feed bytes, events and `now`, and drain actions. That keeps the whole
//! protocol logic deterministic and testable by replaying transcripts (see `komle-conformance`).

// No unsafe code in the protocol core; and no clock, thread, file, socket or RNG: core/clippy.toml
// lists the std entry points that would break sans-IO, denied here for the library only (tests
// and benches may read the clock to build their inputs).
#![forbid(unsafe_code)]
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod directory;
pub mod kas;
pub mod konnektor;
pub mod line_buffer;
pub mod login_name;
pub mod open;
pub mod pop3;
pub mod protect;
pub mod proxy_protocol;
pub mod proxy_session;
pub mod sasl;
pub mod secret;
pub mod smime;
pub mod smtp;
pub mod upstream_allow;
