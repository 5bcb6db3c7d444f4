//! Konnektor simulator: SOAP over HTTPS with real CMS cryptography.
//!
//! Layers: `ber`/`auth_enveloped`/`sign`/`encrypt`/`decrypt`/`verify` do the CMS work;
//! `xml`/`soap_out` read requests and write responses; `ops_*` implement the operations;
//! `simulator::Simulator` dispatches (independent of HTTP); `server::SimServer` serves it over
//! HTTPS.

pub mod auth_enveloped;
pub mod ber;
pub mod cert_issuer;
pub mod config;
pub mod decrypt;
pub mod demo;
pub mod ecc;
pub mod encrypt;
pub mod error;
pub mod http;
pub mod keys;
pub mod oids;
mod ops_cards;
mod ops_certificate;
mod ops_encryption;
mod ops_signature;
pub mod precomputed;
pub mod samples;
pub mod sds;
pub mod server;
pub mod server_certs;
pub mod sign;
pub mod simulator;
pub mod soap_out;
pub mod verify;
pub mod xml;

pub use config::{Card, CardKind, Fault, Operation, PinState, ServiceVersions, SimConfig};
pub use error::SimError;
pub use keys::KeyMaterial;
pub use simulator::{CallRecord, ResponseAction, SimResponse, Simulator};
