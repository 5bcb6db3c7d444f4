//! The work a proxy session hands to its driver, and the answers: one enum each for both
//! protocols, so a driver has one path for "run a job, feed its result".

use crate::pop3::{OpenFailure, OpenJob, OpenedMessage};
use crate::smtp::{ProtectJob, ProtectedMessage, ProtectionFailure, RecipientVerdict};

/// A job for the driver ([`Output::Run`](super::Output::Run)). `Debug` of the message jobs
/// shows no content ([`SecretBytes`](crate::secret::SecretBytes) is redacted).
#[non_exhaustive]
#[derive(Debug)]
pub enum Job {
    /// SMTP: find the encryption certificates of `address` (cache, then directory;
    /// KOM-LE-A_2176) and answer with [`JobResult::RecipientChecked`].
    CheckRecipient { address: String },
    /// SMTP: sign and encrypt a message (A_2019); answer with [`JobResult::Protected`].
    Protect(ProtectJob),
    /// POP3: decrypt and verify a retrieved message (§3.4.4); answer with
    /// [`JobResult::Opened`].
    Open(OpenJob),
    /// SMTP, KIM 1.5: delete mail data whose message the MTA refused; answer with
    /// [`JobResult::KasDataDiscarded`] (nothing waits for it).
    DiscardKasData { link: crate::kas::KasLink },
}

/// The answer to a [`Job`] ([`Input::JobDone`](super::Input::JobDone)). A result of the
/// other protocol's kind, or one no job is waiting for, is ignored by the session.
#[non_exhaustive]
#[derive(Debug)]
pub enum JobResult {
    /// Answer to [`Job::CheckRecipient`].
    RecipientChecked {
        address: String,
        verdict: RecipientVerdict,
    },
    /// Answer to [`Job::Protect`].
    Protected(Result<ProtectedMessage, ProtectionFailure>),
    /// Answer to [`Job::Open`].
    Opened(Result<OpenedMessage, OpenFailure>),
    /// Answer to [`Job::DiscardKasData`]: done or given up (the driver logs which).
    KasDataDiscarded,
}

impl Job {
    /// The Konnektor the login chose for this job (A_21457 SMTP, A_21517 POP3): `None` for the
    /// default Konnektor and for the recipient check, which asks only the directory.
    pub fn konnektor_id(&self) -> Option<&crate::login_name::KonnektorId> {
        match self {
            Self::CheckRecipient { .. } | Self::DiscardKasData { .. } => None,
            Self::Protect(job) => job.login.konnektor_id.as_ref(),
            Self::Open(job) => job.login.konnektor_id.as_ref(),
        }
    }
}
