//! The one "run a job" path of the driver: a session's [`Job`] (recipient check, protect,
//! open) becomes a future that answers with the matching [`JobResult`]. The production runner
//! calls the [contracts](crate::contracts); a test or the transcript runner supplies its own.

use std::sync::Arc;

use komle_core::proxy_session::{Job, JobResult};

use crate::contracts::{BoxFuture, Opener, Protector, RecipientChecker};

/// Runs a session's jobs. Object-safe; the returned future owns what it needs.
pub trait JobRunner: Send + Sync {
    /// Carries out `job`; the answer goes back into the session as `Input::JobDone`.
    fn run(&self, job: Job) -> BoxFuture<'static, JobResult>;
}

/// The jobs run through the service contracts. A listener for SMTP has a checker and a
/// protector, one for POP3 an opener; a job the listener has no service for cannot come from
/// its session, and if it did it fails closed (no recipient usable, nothing protected).
#[derive(Clone, Default)]
pub struct ContractJobs {
    pub checker: Option<Arc<dyn RecipientChecker>>,
    pub protector: Option<Arc<dyn Protector>>,
    pub opener: Option<Arc<dyn Opener>>,
}

impl JobRunner for ContractJobs {
    fn run(&self, job: Job) -> BoxFuture<'static, JobResult> {
        use komle_core::pop3::OpenFailure;
        use komle_core::smtp::{ProtectionFailure, RecipientVerdict};
        match job {
            Job::CheckRecipient { address } => {
                let checker = self.checker.clone();
                Box::pin(async move {
                    let verdict = match &checker {
                        Some(c) => c.check(&address).await,
                        None => RecipientVerdict::DirectoryUnavailable,
                    };
                    JobResult::RecipientChecked { address, verdict }
                })
            }
            Job::Protect(job) => {
                let protector = self.protector.clone();
                Box::pin(async move {
                    JobResult::Protected(match &protector {
                        Some(p) => p.protect(job).await,
                        None => Err(ProtectionFailure {
                            reason: "no protector configured".into(),
                        }),
                    })
                })
            }
            Job::DiscardKasData { link } => {
                // Started here, not when the answer is polled (nothing waits for it).
                if let Some(p) = &self.protector {
                    p.discard_kas_data(link);
                }
                Box::pin(std::future::ready(JobResult::KasDataDiscarded))
            }
            Job::Open(job) => {
                let opener = self.opener.clone();
                Box::pin(async move {
                    JobResult::Opened(match &opener {
                        Some(o) => o.open(job).await,
                        None => Err(OpenFailure {
                            reason: "no opener configured".into(),
                        }),
                    })
                })
            }
            // #[non_exhaustive]: a job of a newer core; there is nothing to answer with.
            other => {
                log::error!("job not known to this service: {other:?}");
                Box::pin(std::future::pending())
            }
        }
    }
}
