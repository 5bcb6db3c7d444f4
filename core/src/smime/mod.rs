//! The KOM-LE S/MIME profile (gemSMIME_KOMLE): protecting outgoing and opening incoming mail.
//!
//! Sans-IO: every function takes bytes (and Konnektor answers as bytes/structs) and returns bytes.
//! The Konnektor does all cryptography (SignDocument, EncryptDocument, DecryptDocument,
//! VerifyDocument); this module builds and takes apart the MIME and CMS structures around it.

pub mod addresses;
pub mod auth_enveloped;
pub mod ber;
pub mod date;
pub mod error;
pub mod forward;
pub mod headers;
pub mod in_place;
pub mod integrity;
pub mod multipart;
pub mod open_plan;
pub mod opened_mail;
pub mod outer;
pub mod receive;
pub mod recipient_emails;
pub mod report_pdf;
pub mod send_plan;
pub mod sender_notice;
pub mod signed_data;
pub mod signed_entity;
pub mod text_note;
pub mod wrap;

pub use error::SmimeError;
pub use integrity::{IntegrityCheckResult, Verification, VerifyResult};
pub use open_plan::{Decrypted, Opening, Retrieved, Verifying, on_retrieve};
pub use opened_mail::DeliveryOptions;
pub use outer::build_outer;
pub use receive::DecryptionFailure;
pub use recipient_emails::RecipientEmail;
pub use send_plan::{Lookup, Prepared, Protect, SendPlan, SendStart};
pub use wrap::{SignInput, SignRest, sign_input, wrap_for_signing, wrap_signed};
