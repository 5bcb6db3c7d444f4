//! The services behind the SMTP session: the RCPT check (KOM-LE-A_2176) and message protection
//! (A_2019). Both run core's logic ([`komle_core::protect`]); this module only performs the
//! directory lookups and Konnektor calls that logic asks for.

use std::sync::{Arc, Mutex};

use komle_core::directory::{CertificateCache, DirectoryEntry};
use komle_core::konnektor::KonnektorEndpoints;
use komle_core::protect::{self, DirectoryUnavailable, Protection, Step};
use komle_core::smtp::{ProtectJob, ProtectedMessage, ProtectionFailure, RecipientVerdict};

use crate::konnektor_http::KonnektorHttp;
use crate::smtp_driver::{BoxFuture, Protector, RecipientChecker};
use crate::time_sync::Clock;

/// Where directory entries come from: the VZD over LDAP in production, a table in the demo.
pub trait Directory: Send + Sync {
    fn lookup<'a>(
        &'a self,
        address: &'a str,
    ) -> BoxFuture<'a, Result<Vec<DirectoryEntry>, DirectoryUnavailable>>;
}

/// How Konnektor calls are made: HTTPS in production and in the demo.
pub trait Konnektor: Send + Sync {
    /// POSTs a SOAP request; `Err` carries a transport error text (no content).
    fn call<'a>(
        &'a self,
        url: &'a str,
        soap_action: &'static str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, String>>;
}

impl Konnektor for KonnektorHttp {
    fn call<'a>(
        &'a self,
        url: &'a str,
        soap_action: &'static str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, String>> {
        Box::pin(async move {
            self.post_soap(url, soap_action, body)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// Directory, Konnektor, certificate cache and clock, shared by all sessions.
pub struct Services {
    pub directory: Arc<dyn Directory>,
    pub konnektor: Arc<dyn Konnektor>,
    pub endpoints: KonnektorEndpoints,
    /// Process memory only (A_2026); a poisoned lock is recovered, the digests guard entries.
    pub cache: Arc<Mutex<CertificateCache>>,
    pub clock: Arc<Clock>,
}

impl Services {
    fn with_cache<T>(&self, f: impl FnOnce(&mut CertificateCache) -> T) -> T {
        let mut guard = match self.cache.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }
}

impl RecipientChecker for Services {
    fn check<'a>(&'a self, address: &'a str) -> BoxFuture<'a, RecipientVerdict> {
        Box::pin(async move {
            let ecc = self.endpoints.ecc_capable;
            let now = self.clock.wall();
            if let Some(v) = self.with_cache(|c| protect::check_cached(c, address, now, ecc)) {
                return v;
            }
            match self.directory.lookup(address).await {
                Ok(entries) => {
                    self.with_cache(|c| protect::check_looked_up(c, address, &entries, now, ecc))
                }
                Err(DirectoryUnavailable) => {
                    log::warn!("directory unavailable for a RCPT check");
                    RecipientVerdict::DirectoryUnavailable
                }
            }
        })
    }
}

impl Protector for Services {
    fn protect(
        &self,
        job: ProtectJob,
    ) -> BoxFuture<'_, Result<ProtectedMessage, ProtectionFailure>> {
        Box::pin(async move {
            let mut p = Protection::new(job, self.endpoints.clone(), self.clock.wall());
            loop {
                match self.with_cache(|c| p.next(c)) {
                    Step::LookUp(address) => {
                        let answer = self.directory.lookup(&address).await;
                        self.with_cache(|c| p.directory_answer(c, answer));
                    }
                    Step::Call(call) => {
                        let answer = self
                            .konnektor
                            .call(&call.url, call.request.soap_action, call.request.body)
                            .await;
                        if let Err(e) = &answer {
                            log::warn!("Konnektor call {} failed: {e}", call.request.soap_action);
                        }
                        self.with_cache(|c| p.konnektor_answer(c, answer));
                    }
                    Step::Done(result) => return result,
                }
            }
        })
    }
}

/// A directory held in memory (the demo's, and tests').
pub struct TableDirectory<F>(pub F)
where
    F: Fn(&str) -> Vec<DirectoryEntry> + Send + Sync;

impl<F> Directory for TableDirectory<F>
where
    F: Fn(&str) -> Vec<DirectoryEntry> + Send + Sync,
{
    fn lookup<'a>(
        &'a self,
        address: &'a str,
    ) -> BoxFuture<'a, Result<Vec<DirectoryEntry>, DirectoryUnavailable>> {
        let entries = (self.0)(address);
        Box::pin(async move { Ok(entries) })
    }
}
