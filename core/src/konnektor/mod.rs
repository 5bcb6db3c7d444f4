//! Konnektor SOAP services: service discovery, requests and response parsing (bytes in, bytes out).
//!
//! Every operation lives in its own module with a `build(&Request) -> SoapRequest` and a
//! `parse(&[u8]) -> Result<Response, KonnektorError>`; the runtime POSTs `SoapRequest::body`
//! to the endpoint chosen from `connector.sds` ([`service_directory`]) with the `SOAPAction`
//! header, and feeds the response body to `parse`. Nothing here performs I/O.
//!
//! Sending (KOM-LE-A_2299): [`get_cards`] (SM-B) → [`get_pin_status`]/[`verify_pin`] when locked → [`get_job_number`] →
//! [`sign_document`] → [`read_card_certificate`] (own C.ENC) → [`encrypt_document`].
//! Connecting to the MTA / POP3 server (KOM-LE-A_2075-01): [`verify_certificate`] checks the
//! server's TLS certificate, [`server_cert_verdict`] says what the answer means for the
//! connection, [`server_cert_cache`] keeps `VALID` answers (A_22348).
//! Receiving: [`get_cards`] → [`read_card_certificate`] (which card holds the fetching user's
//! key, unless cached) → [`get_pin_status`]/[`verify_pin`] → [`decrypt_document`] →
//! [`verify_document`].
//!
//! Responses are read with a hardened namespace-aware reader ([`xml_tree`]): prefixes are the
//! peer's choice, DOCTYPE and entities are rejected, size/depth/element counts are bounded, and
//! base64 payloads are decoded straight from the input.

mod base64_codec;
pub mod call;
pub mod context;
pub mod decrypt_document;
pub mod encrypt_document;
pub mod envelope;
pub mod error;
pub mod get_cards;
pub mod get_job_number;
pub mod get_pin_status;
pub mod namespaces;
pub mod pin_request;
pub mod read_card_certificate;
pub mod server_cert_cache;
pub mod server_cert_verdict;
pub mod service_directory;
pub mod sign_document;
pub mod status;
pub mod telematik_error;
pub mod verify_certificate;
pub mod verify_document;
pub mod verify_pin;
pub mod xml_tree;
mod xml_writer;

pub use call::{KonnektorCall, TransportError};
pub use context::CallContext;
pub use envelope::SoapRequest;
pub use error::{KonnektorError, SoapFault};
pub use server_cert_cache::ServerCertCache;
pub use server_cert_verdict::{ServerCertAccepted, ServerCertRejected, SmtpConnectReply};
pub use service_directory::{
    KonnektorEndpoints, ServiceDirectory, ServiceVersion, SignatureServiceVersion,
};
pub use status::Status;
pub use telematik_error::{TelematikError, Trace};
pub use xml_tree::Limits;
