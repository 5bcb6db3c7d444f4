//! The Konnektor's check of a mail server's TLS certificate (KOM-LE-A_2075-01), with the
//! cache A_22348 allows.
//!
//! Where it runs: in the connect path of both proxies, after the TLS handshake with the
//! configured CA has succeeded and before the session is told the connection is up. The driver
//! takes the server's end-entity certificate ([`end_entity`]) and calls
//! [`ServerCertificateCheck::check`] with the session's call context:
//! - `Ok(())` → feed `Input::UpstreamConnected` as before;
//! - `Err(r)` → close the upstream connection and feed [`ServerCertRejected::to_input`]
//!   (SMTP 454 4.7.0, POP3 `-ERR`; [`ServerCertRejected::smtp_reply`] names the 501 of a
//!   rejected call context).
//!
//! The Konnektor work runs through [`KonnektorDirectory::call`] (blocking pool, A_2076 refresh
//! and one retry), so the future is runtime-neutral. What the verdicts mean is decided in
//! core ([`komle_core::konnektor::server_cert_verdict`]); this type only adds the I/O, the
//! cache and the log lines. Nothing logged names the certificate's content or the server.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use komle_core::konnektor::server_cert_verdict::{self, NoVerdict};
use komle_core::konnektor::verify_certificate::{self, VerifyCertificateRequest};
use std::collections::BTreeMap;

use komle_core::konnektor::{
    CallContext, KonnektorError, ServerCertAccepted, ServerCertCache, ServerCertRejected,
};
use komle_core::login_name::KonnektorId;

use crate::konnektor_directory::{DirectoryError, KonnektorDirectory};
use crate::services::Konnektor;
use crate::time_sync::Clock;

/// The server's end-entity certificate of an established TLS connection (the first of
/// `peer_certificates`), what [`ServerCertificateCheck::check`] takes. Works for
/// futures-rustls and tokio-rustls alike (`stream.get_ref().1` derefs to `CommonState`).
/// `None` only before the handshake finished.
pub fn end_entity(tls: &rustls::CommonState) -> Option<&[u8]> {
    tls.peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c| c.as_ref())
}

/// The rejection when a connection has no server certificate to check (never after a
/// completed handshake with certificate verification; typed so a driver need not panic).
pub const NO_CERTIFICATE: ServerCertRejected =
    ServerCertRejected::NotChecked(NoVerdict::NoServerCertificate);

/// Certificates kept at most (mail servers are few; the bound keeps a hostile peer from
/// growing the map).
pub const CACHE_CAPACITY: usize = 1024;

/// Checks mail-server certificates with the Konnektor; shared by all sessions (`Arc`).
///
/// A login that names a KonnektorId (A_21457, A_21517) is checked by that Konnektor, like its
/// signing and decrypting: its call context (Mandant, client system, workplace) is that
/// Konnektor's. One cache serves all of them: a `VALID` verdict is about the certificate in the
/// TI's PKI, which every Konnektor judges alike.
pub struct ServerCertificateCheck {
    konnektor: Arc<dyn Konnektor>,
    directory: Arc<KonnektorDirectory>,
    /// `[konnektor.<id>]`: transport and service directory per KonnektorId.
    konnektoren: BTreeMap<KonnektorId, (Arc<dyn Konnektor>, Arc<KonnektorDirectory>)>,
    clock: Arc<Clock>,
    /// Process memory only (A_22348 "manipulationssicher"); a poisoned lock is recovered, the
    /// digests guard the entries.
    cache: Mutex<ServerCertCache>,
}

impl std::fmt::Debug for ServerCertificateCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCertificateCheck")
            .field("cached", &self.cached())
            .finish_non_exhaustive()
    }
}

impl ServerCertificateCheck {
    /// `ttl` bounds how long a `VALID` verdict is reused besides notAfter (`[cache]
    /// certificate_ttl`, Tab_Konf_Param `TTL_ENC_CERT`: "gecachte ... Prüfergebnisse").
    pub fn new(
        konnektor: Arc<dyn Konnektor>,
        directory: Arc<KonnektorDirectory>,
        clock: Arc<Clock>,
        ttl: Duration,
    ) -> Self {
        let capacity = NonZeroUsize::new(CACHE_CAPACITY).unwrap_or(NonZeroUsize::MIN);
        ServerCertificateCheck {
            konnektor,
            directory,
            konnektoren: BTreeMap::new(),
            clock,
            cache: Mutex::new(ServerCertCache::new(ttl, capacity)),
        }
    }

    /// The Konnektoren a login may name besides the default one (`[konnektor.<id>]`).
    pub fn with_konnektoren(
        mut self,
        konnektoren: BTreeMap<KonnektorId, (Arc<dyn Konnektor>, Arc<KonnektorDirectory>)>,
    ) -> Self {
        self.konnektoren = konnektoren;
        self
    }

    fn with_cache<T>(&self, f: impl FnOnce(&mut ServerCertCache) -> T) -> T {
        let mut guard = match self.cache.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Verdicts held in the cache.
    pub fn cached(&self) -> usize {
        self.with_cache(|c| c.len())
    }

    /// KOM-LE-A_2075-01 at the Konnektor-corrected time (A_2230), by the default Konnektor.
    pub async fn check(
        &self,
        end_entity_der: &[u8],
        ctx: &CallContext,
    ) -> Result<(), ServerCertRejected> {
        self.check_at(end_entity_der, ctx, None, self.clock.wall())
            .await
    }

    /// As [`Self::check`] by the Konnektor the login named (`None`: the default one), with an
    /// explicit `now` (tests drive the cache's expiry with it). A KonnektorId without a
    /// `[konnektor.<id>]` table has no Konnektor to ask: not checked, so not used.
    pub async fn check_at(
        &self,
        end_entity_der: &[u8],
        ctx: &CallContext,
        konnektor_id: Option<&KonnektorId>,
        now: SystemTime,
    ) -> Result<(), ServerCertRejected> {
        if self.with_cache(|c| c.is_valid(end_entity_der, now)) {
            return Ok(());
        }
        let (konnektor, directory) = match konnektor_id {
            None => (&self.konnektor, &self.directory),
            Some(id) => match self.konnektoren.get(id) {
                Some((k, d)) => (k, d),
                None => {
                    let r = ServerCertRejected::NotChecked(NoVerdict::NoEndpoint);
                    log::warn!("mail server certificate not checked: unknown KonnektorId: {r}");
                    return Err(r);
                }
            },
        };
        let endpoints = directory.endpoints().await.map_err(|e| {
            let r = match e {
                DirectoryError::Unreachable(kind) => {
                    ServerCertRejected::NotChecked(NoVerdict::Transport(kind))
                }
                DirectoryError::Unusable(KonnektorError::NoUsableEndpoint(_)) => {
                    ServerCertRejected::NotChecked(NoVerdict::NoEndpoint)
                }
                DirectoryError::Unusable(_) => {
                    ServerCertRejected::NotChecked(NoVerdict::UnreadableAnswer)
                }
            };
            log::warn!("mail server certificate not checked: {r}");
            r
        })?;
        let request = verify_certificate::build(&VerifyCertificateRequest {
            context: ctx,
            certificate: end_entity_der,
        });
        let answer = directory
            .call(
                &**konnektor,
                &endpoints,
                &endpoints.certificate_service,
                request.soap_action,
                request.body,
            )
            .await;
        let verdict = match answer {
            Ok(body) => server_cert_verdict::judge(verify_certificate::parse(&body)),
            Err(e) => Err(ServerCertRejected::NotChecked(NoVerdict::Transport(
                e.kind(),
            ))),
        };
        match verdict {
            Ok(ServerCertAccepted::Valid) => {
                if let Err(why) = self.with_cache(|c| c.store_valid(end_entity_der, now)) {
                    log::debug!("VALID server certificate verdict not cached: {why:?}");
                }
                Ok(())
            }
            Ok(ServerCertAccepted::Inconclusive { code }) => {
                // A_2075-01 aborts only on INVALID; not cached, asked again next time.
                log::warn!(
                    "mail server certificate INCONCLUSIVE at the Konnektor (code {}); connection used",
                    code.map_or_else(|| "-".to_owned(), |c| c.to_string())
                );
                Ok(())
            }
            Err(r) => {
                log::warn!("mail server connection refused (A_2075-01): {r}");
                Err(r)
            }
        }
    }
}

impl crate::driver::ServerCertificateVerifier for ServerCertificateCheck {
    fn verify(
        self: Arc<Self>,
        end_entity_der: Vec<u8>,
        context: CallContext,
        konnektor_id: Option<KonnektorId>,
    ) -> crate::contracts::BoxFuture<'static, Result<(), ServerCertRejected>> {
        Box::pin(async move {
            let now = self.clock.wall();
            self.check_at(&end_entity_der, &context, konnektor_id.as_ref(), now)
                .await
        })
    }
}
