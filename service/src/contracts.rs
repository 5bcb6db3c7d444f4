//! The contracts between a runtime's session drivers and the services behind them: whether a
//! recipient can be encrypted for (RCPT), protecting an outgoing message and opening a
//! retrieved one. The drivers of `komle-smol` and `komle-tokio` call these traits; the
//! production implementation is [`services::Pipeline`](crate::services::Pipeline), tests and
//! the demo supply their own. Object-safe, so a listener holds them as `Arc<dyn …>`.

use std::future::Future;
use std::pin::Pin;

use komle_core::kas::KasLink;
use komle_core::pop3::{OpenFailure, OpenJob, OpenedMessage};
use komle_core::smtp::{ProtectJob, ProtectedMessage, ProtectionFailure, RecipientVerdict};

/// A boxed, sendable future: keeps the service traits object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Looks up whether a recipient has a usable encryption certificate (A_2176, A_2178): cache,
/// then directory. Supplied by the integrator.
pub trait RecipientChecker: Send + Sync {
    fn check<'a>(&'a self, address: &'a str) -> BoxFuture<'a, RecipientVerdict>;
}

/// Signs and encrypts a message through the Konnektor (A_2019). Supplied by the integrator.
pub trait Protector: Send + Sync {
    fn protect(
        &self,
        job: ProtectJob,
    ) -> BoxFuture<'_, Result<ProtectedMessage, ProtectionFailure>>;

    /// KIM 1.5: the MTA refused a message whose mail data lie on the KAS under `link`
    /// ([`ProtectedMessage::kas_link`]), or nobody waits for the message any more; delete the
    /// data, nobody will fetch them. Starts the deletion (detached) and returns at once, so a
    /// session that ends right after asking does not cancel it. The default has nothing to
    /// delete: a protector without a KAS never hands out a link.
    fn discard_kas_data(&self, link: KasLink) {
        drop(link);
    }
}

/// Decrypts and verifies a retrieved message through the Konnektor (§3.4.4). Supplied by the
/// integrator; [`services::Pipeline`](crate::services::Pipeline) in production.
pub trait Opener: Send + Sync {
    fn open(&self, job: OpenJob) -> BoxFuture<'_, Result<OpenedMessage, OpenFailure>>;
}
