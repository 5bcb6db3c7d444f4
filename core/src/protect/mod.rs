//! Protecting an outgoing message (gemSpec_CM_KOMLE §3.2.4.1.1, Abbildung 8) as a sans-IO
//! pipeline: it turns a [`ProtectJob`](crate::smtp::ProtectJob) from the SMTP session into a
//! [`ProtectedMessage`](crate::smtp::ProtectedMessage), asking the runtime for directory
//! lookups and Konnektor calls along the way.
//!
//! ```text
//!  certificates (cache, then VZD) ─► GetCards (SM-B) ─► GetPinStatus [─► VerifyPin] ─►
//!        ▲                          GetJobNumber ─► SignDocument ─► EncryptDocument ─► outer
//!        │                                                               │ refused
//!        │                                      each certificate alone ◄─┘ (probe)
//!        └── cached and refused: the VZD once more; otherwise refused: address dropped,
//!            named in the notice (A_2024, A_2028); then sign and encrypt again
//! ```
//!
//! Abbildung 8 (gemSpec_CM_KOMLE V1.0; Abbildung 9 in V1.16) as implemented:
//! - only certificates taken from the cache earn another directory lookup; one from the
//!   directory that the Konnektor refuses (revoked, no path to a TI trust anchor) drops its
//!   address (the certificate alone when the address has another usable one);
//! - the directory is asked again once per address, and a refused certificate it returns
//!   again is no replacement;
//! - the Konnektor's fault does not say which certificate it refused, so after a refusal
//!   every certificate of the attempt is offered alone with a small fixed document (no
//!   message content); when it accepts each one alone the refusal stands (451);
//! - the sender is handled like a recipient (A_2028: removed from From/Sender, named in the
//!   notice); only when no recipient is left the client gets 451 (A_2025);
//! - §3.8.1, KOM-LE-A_2058: the SM-B's PIN.SMC status is read before signing, VerifyPin asks
//!   for the PIN at the terminal when it is verifiable, and a blocked PIN or a failed entry
//!   ends the send with a 451 that says so.
//!
//! The runtime loop is: call [`Protection::step`]; do what the returned [`Step`] says; feed
//! the answer to [`Protection::directory_answer`], or the Konnektor's to
//! [`Protection::konnektor_answer`] (a body) or [`Protection::transport_failed`] (a typed
//! [`TransportError`](crate::konnektor::TransportError)); repeat until [`Step::Done`]. The
//! words are those of [`crate::konnektor::call`], shared with [`crate::open`]; a second
//! `step()` before the answer, or an answer nobody asked for, ends the attempt with a failure.

pub mod kim_headers;
pub mod outdated_notice;
mod pipeline;
mod recipient_check;

pub use kim_headers::{KimHeaderError, KimSendInfo};
pub use pipeline::{DirectoryUnavailable, Protection, Step};
pub use recipient_check::{check_cached, check_looked_up, verdict};
