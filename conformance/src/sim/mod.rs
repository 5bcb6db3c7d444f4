//! Konnektor simulator: SOAP over HTTPS with real CMS cryptography.

pub mod auth_enveloped;
pub mod cert_issuer;
pub mod ber;
pub mod decrypt;
pub mod encrypt;
pub mod error;
pub mod keys;
pub mod oids;
pub mod samples;
pub mod sign;
pub mod verify;
pub mod xml;

pub use error::SimError;
pub use keys::KeyMaterial;
