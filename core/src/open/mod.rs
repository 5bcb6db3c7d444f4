//! Opening a retrieved message (gemSpec_CM_KOMLE §3.3) as a sans-IO pipeline: it turns a
//! [`OpenJob`](crate::pop3::OpenJob) from the POP3 session into what the client gets, asking the
//! runtime for Konnektor calls along the way.
//!
//! ```text
//!  not KOM-LE ─────────────────────────────────────────────────► unchanged (A_2040)
//!  KOM-LE ─► GetCards ─► DecryptDocument (SM-B, else the user's HBA) ─► VerifyDocument
//!                              │ fails                                       │
//!                              ▼                                             ▼
//!                 error mail with the original (A_2046)     mail + note + PDF report (A_2048)
//! ```
//!
//! The runtime loop is the same as for [`crate::protect`]: call [`Reception::step`], perform
//! the [`Step`], feed the answer to [`Reception::konnektor_answer`], until [`Step::Done`].

mod pipeline;
mod verification;

pub use pipeline::{Reception, Step};
pub use verification::verification_from;
