//! A KOM-LE Attachment Service (KAS) for tests: I_Attachment_Service 2.4
//! (`shared/spec/kim15/openapi/AttachmentService.yaml`) over TLS with client-certificate
//! authentication, in memory.
//!
//! - `POST /attachments/v2.4/attachment/` (add_Attachment): multipart form with `messageID`,
//!   `recipients` (one per part), `expires`, `attachment` (with its own Content-Length);
//!   201 `{"sharedLink"}`, 400 malformed, 401 Basic wrong (when accounts are configured),
//!   413 over `max_mail_size`, 507 over the account's quota (A_22419-01).
//! - `GET …/attachment/{id}` (read_Attachment): `recipient` header must be one of the
//!   recipients (403), 404 unknown, 429 after `max_downloads` (A_22412-01).
//! - `HEAD …/attachment/{id}`: 200 with Content-Length for a listed recipient, else 404.
//! - `DELETE …/attachment/{id}`: the owner's Basic credentials, 200 / 401 / 404.
//! - `GET /AccountLimit/v1.1/limit` (getLimits of the account manager, A_22416): the
//!   configured limits and the account's remaining quota.
//!
//! [`routes::ROUTES`] lists every method, path and status served; `tests/kas_sim_yaml.rs`
//! checks it against the yaml.

pub mod multipart;
pub mod routes;
pub mod server;
pub mod store;
pub mod tls;

pub use server::{KasSim, KasSimError};
pub use store::{KasSimConfig, RecordedRequest, Stored};
pub use tls::KasTls;
