//! The services behind the SMTP session: the RCPT check (KOM-LE-A_2176) and message protection
//! (A_2019). Both run core's logic ([`komle_core::protect`]); this module only performs the
//! directory lookups and Konnektor calls that logic asks for.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use komle_core::directory::{CertificateCache, DirectoryEntry, SharedCache};
use komle_core::login_name::KonnektorId;
use komle_core::open::{self, CardCache, Reception};
use komle_core::pop3::{OpenFailure, OpenJob, OpenedMessage};
use komle_core::protect::{self, DirectoryUnavailable, KimSendInfo, Protection, Step};
use komle_core::smime::opened_mail::DeliveryOptions;
use komle_core::smtp::{ProtectJob, ProtectedMessage, ProtectionFailure, RecipientVerdict};

use crate::contracts::{BoxFuture, Opener, Protector, RecipientChecker};
use crate::konnektor_directory::KonnektorDirectory;
use crate::konnektor_http::{KonnektorHttp, TransportError as HttpTransportError};
use crate::server_cert_check::ServerCertificateCheck;
use crate::time_sync::Clock;

/// Handles shared by the daemon and the services the integrator builds.
#[derive(Clone)]
pub struct Runtime {
    /// Konnektor-corrected wall time (A_2230) for certificate validity checks.
    pub clock: Arc<Clock>,
    /// The Konnektor HTTPS transport (one connection pool).
    pub konnektor: KonnektorHttp,
}

/// What the SMTP sessions need from the directory and the Konnektor.
#[derive(Clone)]
pub struct Services {
    pub checker: Arc<dyn RecipientChecker>,
    pub protector: Arc<dyn Protector>,
    /// Opens messages fetched through the POP3 proxy.
    pub opener: Arc<dyn Opener>,
    /// The Konnektor's check of the MTA's and POP3 server's certificates (A_2075-01); `None`
    /// (tests, the demo) leaves the configured CA as the only gate.
    pub server_check: Option<Arc<dyn crate::driver::ServerCertificateVerifier>>,
}

/// Where directory entries come from: the VZD over LDAP in production, a table in the demo.
pub trait Directory: Send + Sync {
    fn lookup<'a>(
        &'a self,
        address: &'a str,
    ) -> BoxFuture<'a, Result<Vec<DirectoryEntry>, DirectoryUnavailable>>;
}

/// How Konnektor calls are made: HTTPS in production and in the demo.
pub trait Konnektor: Send + Sync {
    /// POSTs a SOAP request; `Err` says what failed at the transport level (no content).
    fn call<'a>(
        &'a self,
        url: &'a str,
        soap_action: &'static str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, HttpTransportError>>;
}

impl Konnektor for KonnektorHttp {
    fn call<'a>(
        &'a self,
        url: &'a str,
        soap_action: &'static str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, HttpTransportError>> {
        Box::pin(async move { self.post_soap(url, soap_action, body).await })
    }
}

/// A further Konnektor a login name may choose by its KonnektorId (A_21457, A_21517):
/// its transport and the endpoints its `connector.sds` offers.
#[derive(Clone)]
pub struct KonnektorTarget {
    pub konnektor: Arc<dyn Konnektor>,
    /// Its endpoints, read lazily and refreshed on connection problems (A_2076).
    pub directory: Arc<KonnektorDirectory>,
    /// The outer KIM 1.5 fields of messages this Konnektor protects (its `X-KIM-KONVersion`).
    pub kim: KimSendInfo,
}

/// What the client reads (SMTP `451`, POP3 `-ERR`) when its login names a KonnektorId with no
/// `[konnektor.<id>]`: the spec names no reply for it, and nothing may be signed or decrypted
/// by a Konnektor the client did not ask for.
pub const UNKNOWN_KONNEKTOR_ID: &str = "Die KonnektorId im Benutzernamen ist nicht konfiguriert";

/// Directory, Konnektor, certificate cache and clock, shared by all sessions.
pub struct Pipeline {
    pub directory: Arc<dyn Directory>,
    /// The default Konnektor (`[konnektor]`), for logins without a KonnektorId.
    pub konnektor: Arc<dyn Konnektor>,
    /// The default Konnektor's endpoints, read lazily and refreshed on connection problems
    /// (A_2076).
    pub konnektor_directory: Arc<KonnektorDirectory>,
    /// `[konnektor.<id>]`: the Konnektoren a login may name (A_21457, A_21517).
    pub konnektoren: BTreeMap<KonnektorId, KonnektorTarget>,
    /// The outer KIM 1.5 fields (A_21388-01: `X-KIM-CMVersion`, `X-KIM-PTVersion`, the default
    /// Konnektor's `X-KIM-KONVersion`; A_22417 `Expires` once a TTL is known).
    pub kim: KimSendInfo,
    /// Process memory only (A_2026); a poisoned lock is recovered, the digests guard entries.
    pub cache: Arc<Mutex<CertificateCache>>,
    pub clock: Arc<Clock>,
    /// How opened messages are delivered (A_23165 switch from `[pop3]`).
    pub delivery: DeliveryOptions,
    /// Which card holds the key for an address (A_2060, A_2061; `TTL_EMAIL_ICCSN` 30 days),
    /// shared by all POP3 sessions; process memory only.
    pub cards: Arc<Mutex<CardCache>>,
    /// `[kas]`: KIM 1.5 large messages (gemSpec_CM_KOMLE V1.16 §3.2); `None` without it.
    pub kas: Option<Arc<crate::kas_flow::KasFlow>>,
}

impl Pipeline {
    /// The Konnektor a login chose (A_21457 SMTP, A_21517 POP3): the default without a
    /// KonnektorId, the configured one for a known id, `None` for an unknown id.
    pub fn konnektor_for(
        &self,
        id: Option<&KonnektorId>,
    ) -> Option<(&dyn Konnektor, &KonnektorDirectory, &KimSendInfo)> {
        match id {
            None => Some((
                self.konnektor.as_ref(),
                self.konnektor_directory.as_ref(),
                &self.kim,
            )),
            Some(id) => self
                .konnektoren
                .get(id)
                .map(|t| (t.konnektor.as_ref(), t.directory.as_ref(), &t.kim)),
        }
    }

    fn with_cache<T>(&self, f: impl FnOnce(&mut CertificateCache) -> T) -> T {
        let mut guard = match self.cache.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let before = guard.stats();
        let out = f(&mut guard);
        crate::stats::dependencies().cache_counted(before, guard.stats());
        out
    }

    /// Runs `f` on the protection pipeline on the CPU pool ([`crate::cpu_pool`]) with the
    /// shared certificate cache, handing the pipeline back.
    async fn off_executor<T: Send + 'static>(
        &self,
        mut p: Protection,
        f: impl FnOnce(&mut Protection, &mut SharedCache<'_>) -> T + Send + 'static,
    ) -> (Protection, T) {
        let cache = self.cache.clone();
        crate::cpu_pool::run(move || {
            let out = f(&mut p, &mut SharedCache(&cache));
            (p, out)
        })
        .await
    }
}

impl RecipientChecker for Pipeline {
    fn check<'a>(&'a self, address: &'a str) -> BoxFuture<'a, RecipientVerdict> {
        Box::pin(async move {
            // ECC capability (A_17464) comes from connector.sds: unknown while the Konnektor
            // cannot be reached, and then the RCPT gets the temporary 451.
            let ecc = match self.konnektor_directory.endpoints().await {
                Ok(e) => e.ecc_capable,
                Err(e) => {
                    log::warn!("RCPT check without Konnektor endpoints: {e}");
                    return RecipientVerdict::DirectoryUnavailable;
                }
            };
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

impl Protector for Pipeline {
    fn discard_kas_data(&self, link: komle_core::kas::KasLink) {
        match &self.kas {
            Some(kas) => kas.discard(link),
            None => log::warn!("KAS data to discard, but no KAS is configured"),
        }
    }

    fn protect(
        &self,
        job: ProtectJob,
    ) -> BoxFuture<'_, Result<ProtectedMessage, ProtectionFailure>> {
        Box::pin(async move {
            // KIM 1.5 (A_19357-02): over 15 MiB the mail data go to the KAS first and the
            // small KOM-LE message is what gets signed and encrypted below.
            let mut kas_size = None;
            let mut kas_notice = None;
            // Dropped on any way out below but a protected message: the KAS data go again.
            let mut kas_stored = None;
            let mut job = job;
            if let Some(kas) = &self.kas {
                let now = unix_seconds(self.clock.wall());
                match kas.prepare_send(job, self.directory.as_ref(), now).await? {
                    crate::kas_flow::SendPrepared::Konnektor(j) => job = j,
                    crate::kas_flow::SendPrepared::Kas {
                        job: j,
                        notice,
                        size,
                        ttl_days,
                        stored,
                    } => {
                        job = j;
                        kas_notice = notice;
                        kas_size = Some((size, ttl_days));
                        kas_stored = Some(stored);
                    }
                }
            }
            let Some((konnektor, directory, kim)) =
                self.konnektor_for(job.login.konnektor_id.as_ref())
            else {
                log::warn!("a login names a KonnektorId that is not configured");
                return Err(ProtectionFailure {
                    reason: UNKNOWN_KONNEKTOR_ID.to_owned(),
                });
            };
            let endpoints = directory.endpoints().await.map_err(|e| ProtectionFailure {
                reason: e.to_string(),
            })?;
            let mut kim = kim.clone();
            if let Some((_, ttl_days)) = kas_size {
                // A_22417: mail and KAS data expire together.
                kim = kim.with_data_time_to_live(std::time::Duration::from_secs(
                    u64::from(ttl_days) * 86_400,
                ));
            }
            let mut p =
                Protection::new(job, endpoints.clone(), self.clock.wall()).with_kim_info(kim);
            if let Some((size, _)) = kas_size {
                p.set_kas_size(size);
            }
            // Every pipeline step (building, encoding and parsing the message: the CPU-heavy
            // part) runs on the CPU pool, never on an executor thread, and reaches the
            // shared certificate cache only for its own short lookups and inserts
            // (`SharedCache`), never while it works on the message.
            loop {
                let step;
                (p, step) = self.off_executor(p, |p, c| p.step(c)).await;
                match step {
                    Step::LookUp(address) => {
                        let answer = self.directory.lookup(&address).await;
                        (p, ()) = self
                            .off_executor(p, move |p, c| p.directory_answer(c, answer))
                            .await;
                    }
                    Step::Call(call) => {
                        let answer = directory
                            .call(
                                konnektor,
                                &endpoints,
                                &call.url,
                                call.request.soap_action,
                                call.request.body,
                            )
                            .await;
                        if let Err(e) = &answer {
                            log::warn!("Konnektor call {} failed: {e}", call.request.soap_action);
                        }
                        (p, ()) = self
                            .off_executor(p, move |p, c| match answer {
                                Ok(body) => p.konnektor_answer(c, body),
                                Err(e) => p.transport_failed(c, e.kind()),
                            })
                            .await;
                    }
                    Step::Done(mut result) => {
                        // A_2025 (nobody left) ends the transaction like a failure. Handed
                        // on, the data's fate is the MTA's verdict: the session asks for
                        // them to be deleted if it refuses the message.
                        if let Ok(p) = &mut result
                            && !p.recipients.is_empty()
                            && let Some(stored) = kas_stored.take()
                        {
                            p.kas_link = Some(stored.keep());
                        }
                        return with_kas_notice(result, kas_notice);
                    }
                }
            }
        })
    }
}

/// A_19356-06: the DSN about recipients removed from a large mail goes to the sender after the
/// message. The session sends one notice; when the protection made its own (A_2024: no
/// certificate), that one is kept and the removal is only logged.
fn with_kas_notice(
    result: Result<ProtectedMessage, ProtectionFailure>,
    notice: Option<komle_core::smtp::Notice>,
) -> Result<ProtectedMessage, ProtectionFailure> {
    result.map(|mut p| {
        match (&p.notice, notice) {
            (None, Some(n)) => p.notice = Some(n),
            (Some(_), Some(_)) => {
                log::warn!("A_19356-06 notice not sent: the A_2024 notice takes the one slot")
            }
            _ => {}
        }
        p
    })
}

impl Opener for Pipeline {
    /// Runs core's receive pipeline (§3.4.4) with the Konnektor; decryption uses only the card
    /// holding the key recipient-emails names for the fetching user (A_2043–A_2045, A_2059 to
    /// A_2061, found through the shared card cache), failures the user should read become
    /// error mails.
    fn open(&self, job: OpenJob) -> BoxFuture<'_, Result<OpenedMessage, OpenFailure>> {
        Box::pin(async move {
            let Some((konnektor, directory, _)) =
                self.konnektor_for(job.login.konnektor_id.as_ref())
            else {
                log::warn!("a login names a KonnektorId that is not configured");
                return Err(OpenFailure {
                    reason: UNKNOWN_KONNEKTOR_ID.to_owned(),
                });
            };
            let endpoints = directory.endpoints().await.map_err(|e| OpenFailure {
                reason: e.to_string(),
            })?;
            // A_23512: the large-message opt-in is checked before anything is decrypted.
            if let Some(kas) = &self.kas
                && let Some(mail) = kas
                    .opt_in_refusal(
                        job.message.as_slice(),
                        &job.login.user,
                        self.directory.as_ref(),
                        unix_seconds(self.clock.wall()),
                    )
                    .await
            {
                return Ok(OpenedMessage {
                    message: mail.into(),
                });
            }
            let mut r = Reception::new(job, endpoints.clone(), self.clock.wall(), self.delivery);
            if self.kas.is_some() {
                r = r.with_kas();
            }
            // As in `protect`: decoding, parsing and rebuilding the message run on the CPU
            // pool, never on an executor thread.
            loop {
                let step;
                (r, step) = crate::cpu_pool::run(move || {
                    let step = r.step();
                    (r, step)
                })
                .await;
                match step {
                    open::Step::Call(call) => {
                        let answer = directory
                            .call(
                                konnektor,
                                &endpoints,
                                &call.url,
                                call.request.soap_action,
                                call.request.body,
                            )
                            .await;
                        if let Err(e) = &answer {
                            log::warn!("Konnektor call {} failed: {e}", call.request.soap_action);
                        }
                        let cards = self.cards.clone();
                        r = crate::cpu_pool::run(move || {
                            let mut c = cards.lock().unwrap_or_else(|p| p.into_inner());
                            match answer {
                                Ok(body) => r.konnektor_answer(&mut c, body),
                                Err(e) => r.transport_failed(&mut c, e.kind()),
                            }
                            drop(c);
                            r
                        })
                        .await;
                    }
                    open::Step::FetchKas(fetch) => {
                        let fetched = match &self.kas {
                            Some(kas) => kas.fetch(fetch).await,
                            None => Err(komle_core::kas::KasOpenError::DownloadFailed),
                        };
                        r = blocking::unblock(move || {
                            r.kas_fetched(fetched);
                            r
                        })
                        .await;
                    }
                    open::Step::Done(result) => return result,
                }
            }
        })
    }
}

/// Unix seconds of a wall-clock time (0 before 1970).
fn unix_seconds(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Reads a Konnektor's `connector.sds` and picks the endpoints (A_17464) and its product
/// information for `X-KIM-KONVersion` (A_21388-01); `table` names the configuration table in
/// errors.
fn discover(
    http: &KonnektorHttp,
    sds_url: &str,
    table: &str,
) -> Result<(Arc<KonnektorDirectory>, KimSendInfo), crate::cli::RuntimeError> {
    use crate::konnektor_directory::DirectoryError;
    let directory = Arc::new(KonnektorDirectory::over_http(http.clone(), sds_url));
    let first = http.get_blocking(sds_url);
    let sds = first.as_ref().ok().cloned();
    match directory.install(first) {
        Ok(_) | Err(DirectoryError::Unreachable(_)) => {}
        Err(DirectoryError::Unusable(e)) => {
            return Err(crate::cli::RuntimeError(format!(
                "[{table}] sds_url: connector.sds: {e}"
            )));
        }
    }
    let kim = KimSendInfo::default();
    let kim = match sds
        .as_deref()
        .and_then(protect::kim_headers::konnektor_version_from_sds)
    {
        Some(v) => kim.clone().with_konnektor_version(&v).unwrap_or(kim),
        None => {
            log::warn!(
                "[{table}] connector.sds unread or without product information: no X-KIM-KONVersion"
            );
            kim
        }
    };
    Ok((directory, kim))
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

/// The VZD over LDAP: `ldap3`'s blocking client run off the executor.
pub struct LdapDirectory(pub Arc<crate::ldap::DirectoryClient>);

impl Directory for LdapDirectory {
    fn lookup<'a>(
        &'a self,
        address: &'a str,
    ) -> BoxFuture<'a, Result<Vec<DirectoryEntry>, DirectoryUnavailable>> {
        Box::pin(async move {
            self.0.lookup(address).await.map_err(|e| {
                log::warn!("directory lookup failed: {e}");
                DirectoryUnavailable
            })
        })
    }
}

/// Builds the daemon's services from the configuration: the Konnektor's endpoints
/// (`connector.sds`, A_17464), the directory and the certificate cache.
pub fn build(
    config: &crate::config::Config,
    runtime: &Runtime,
) -> Result<Services, crate::cli::RuntimeError> {
    let (mut services, check) = build_with_server_check(config, runtime)?;
    if config.upstream.verify_server_certificate {
        services.server_check = Some(check);
    }
    Ok(services)
}

/// As [`build`], and the mail-server certificate check (KOM-LE-A_2075-01) sharing the same
/// Konnektor directory.
///
/// `connector.sds` is read once here; a Konnektor that cannot be reached does not fail the
/// start (A_2076: the directory is read again on first use and on connection problems, and
/// until then sessions get 4xx / `-ERR`). A directory that is readable but unusable (no
/// usable SignatureService, ...) is a configuration error and does fail the start.
pub fn build_with_server_check(
    config: &crate::config::Config,
    runtime: &Runtime,
) -> Result<(Services, Arc<ServerCertificateCheck>), crate::cli::RuntimeError> {
    use crate::cli::RuntimeError;
    // The default Konnektor and one per `[konnektor.<id>]` (A_21457/A_21517), each with its
    // own transport (TLS client authentication) and its own lazily read service directory.
    let (konnektor_directory, kim) =
        discover(&runtime.konnektor, &config.konnektor.sds_url, "konnektor")?;
    let mut konnektoren = BTreeMap::new();
    for (id, settings) in &config.konnektoren {
        let table = format!("konnektor.{id}");
        let http =
            KonnektorHttp::new(settings).map_err(|e| RuntimeError(format!("[{table}]: {e}")))?;
        let (directory, kim) = discover(&http, &settings.sds_url, &table)?;
        konnektoren.insert(
            id.clone(),
            KonnektorTarget {
                konnektor: Arc::new(http),
                directory,
                kim,
            },
        );
    }
    let d = &config.directory;
    let mut settings = crate::ldap::LdapSettings::new(&d.url, &d.base);
    settings.timeout = d.timeout;
    if let Some(ca) = &d.ca {
        let pem = std::fs::read(ca)
            .map_err(|e| RuntimeError(format!("[directory] ca: {}: {e}", ca.display())))?;
        settings.ca_pem = Some(pem);
    }
    if let (Some(dn), Some(pw)) = (&d.bind_dn, &d.bind_password) {
        settings.bind = Some((dn.clone(), pw.expose().to_owned()));
    }
    let client = crate::ldap::DirectoryClient::new(settings)
        .map_err(|e| RuntimeError(format!("[directory] url: {e}")))?;
    let capacity =
        std::num::NonZeroUsize::new(config.cache.capacity).unwrap_or(std::num::NonZeroUsize::MIN);
    let pipeline = Arc::new(Pipeline {
        directory: Arc::new(LdapDirectory(Arc::new(client))),
        konnektor: Arc::new(runtime.konnektor.clone()),
        konnektor_directory: konnektor_directory.clone(),
        konnektoren,
        kim,
        cache: Arc::new(Mutex::new(CertificateCache::new(
            komle_core::directory::CacheConfig {
                lifetime: config.cache.certificate_ttl,
                capacity,
            },
        ))),
        clock: runtime.clock.clone(),
        delivery: DeliveryOptions {
            deliver_original_on_failure: config
                .pop3
                .as_ref()
                .is_some_and(|p| p.deliver_original_on_integrity_failure),
        },
        cards: Arc::new(Mutex::new(CardCache::default())),
        kas: match &config.kas {
            Some(k) => Some(Arc::new(crate::kas_flow::KasFlow::from_config(k, config)?)),
            None => None,
        },
    });
    let server_check = Arc::new(
        ServerCertificateCheck::new(
            pipeline.konnektor.clone(),
            konnektor_directory,
            runtime.clock.clone(),
            config.cache.certificate_ttl,
        )
        .with_konnektoren(
            pipeline
                .konnektoren
                .iter()
                .map(|(id, t)| (id.clone(), (t.konnektor.clone(), t.directory.clone())))
                .collect(),
        ),
    );
    Ok((
        Services {
            checker: pipeline.clone(),
            protector: pipeline.clone(),
            opener: pipeline,
            server_check: None,
        },
        server_check,
    ))
}
