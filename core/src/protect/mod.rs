//! Protecting an outgoing message (gemSpec_CM_KOMLE §3.2.4.1.1, Abbildung 8) as a sans-IO
//! pipeline: it turns a [`ProtectJob`](crate::smtp::ProtectJob) from the SMTP session into a
//! [`ProtectedMessage`](crate::smtp::ProtectedMessage), asking the runtime for directory
//! lookups and Konnektor calls along the way.
//!
//! ```text
//!  certificates (cache, then VZD) ─► GetCards (SM-B) ─► GetJobNumber ─► SignDocument
//!        ▲                                                                   │
//!        └── replacements, once (Konnektor rejected cached certificates) ◄── EncryptDocument
//!                                                                            │
//!                                                      outer KOM-LE message ◄┘
//! ```
//!
//! The runtime loop is: call [`Protection::step`]; do what the returned [`Step`] says; feed
//! the answer to [`Protection::directory_answer`] or [`Protection::konnektor_answer`]; repeat
//! until [`Step::Done`].

mod pipeline;
mod recipient_check;

pub use pipeline::{DirectoryUnavailable, KonnektorCall, Protection, Step};
pub use recipient_check::{check_cached, check_looked_up, verdict};
