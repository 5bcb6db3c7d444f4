//! KIM 1.5 large messages in the service (gemSpec_CM_KOMLE V1.16 §3.2): the I/O around the
//! core's KAS logic ([`komle_core::kas`]) for [`crate::services::Pipeline`].
//!
//! Send: a client mail over 15 MiB (A_19357-02) is checked (A_19355-01 size, A_22341 x-kas
//! parts, A_19356-06 recipients' opt-in), encrypted with a key and IV drawn here from the OS
//! RNG (A_19358-01: the core stays deterministic), uploaded with `add_Attachment` (A_19363-03)
//! and replaced by the small KOM-LE message (A_19359-07), which then goes the 1.0 way. A send
//! that ends before that message is handed on deletes the uploaded data again
//! ([`StoredMailData`]).
//! Receive: the opt-in check before decryption (A_23512) and the download behind
//! [`komle_core::open::Step::FetchKas`].
//!
//! Memory (issue 17, figures in BENCHMARKS.md): the client mail is encrypted in place (the
//! plaintext is overwritten, never copied), so one send holds the mail once plus the small
//! message; one receive holds the fetched mail once: the delivered mail is built in its
//! buffer and dot-stuffed there. Nothing here logs content, keys or links.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use komle_core::directory::DirectoryEntry;
use komle_core::kas::{
    self, AccountLimits, CachedLimits, GcmIv, KasKey, KasLink, KasOpenError, KasSendError,
    SendRoute,
};
use komle_core::open::KasFetch;
use komle_core::secret::SecretBytes;
use komle_core::smime::addresses::remove_addresses;
use komle_core::smime::headers;
use komle_core::smtp::{Notice, ProtectJob, ProtectionFailure};

use crate::cli::RuntimeError;
use crate::config::{Config, KasSettings};
use crate::kas_client::{KasClient, KasClientSettings, MailMeta};
use crate::kas_discovery::{self, KasEndpoints};
use crate::services::Directory;

/// The KAS side of the pipeline: the client and the getLimits cache.
pub struct KasFlow {
    client: KasClient,
    /// Configured URLs or DNS-SD (A_19361-01).
    endpoints: KasEndpoints,
    /// getLimits answers per sender account, at most 24 h (A_22416); process memory only.
    limits: Mutex<HashMap<String, CachedLimits>>,
    /// Largest mail data fetched on receive: the structure's `size` is the sender's claim, and
    /// the download is held in memory.
    max_fetch: u64,
}

/// The way a client mail goes after [`KasFlow::prepare_send`].
pub enum SendPrepared {
    /// Up to 15 MiB: the job unchanged, the 1.0 way.
    Konnektor(ProtectJob),
    /// The mail data are on the KAS; `job` carries the small KOM-LE message and only the
    /// recipients with the large-message opt-in.
    Kas {
        job: ProtectJob,
        /// A_19356-06: the DSN to the sender naming the recipients removed for lack of the
        /// large-message opt-in.
        notice: Option<Notice>,
        /// Plaintext size (outer `X-KIM-KAS-Size`, A_23467).
        size: u64,
        /// The account's dataTimeToLive in days (outer `Expires`, A_22417).
        ttl_days: u32,
        /// The stored object: deleted again unless the caller keeps it once the small
        /// message is protected.
        stored: StoredMailData,
    },
}

/// Mail data this send stored on the KAS, deleted again (`DELETE /attachment/{id}`,
/// AttachmentService 2.4 `delete_MailData`) when dropped without [`StoredMailData::keep`]:
/// a send that ends before the protected message is handed to the session (Konnektor
/// failure, no recipient left, the session gone) must not leave the data on the sender's
/// quota until they expire.
///
/// WHY on Drop: every early return and a cancelled send (the client disconnected while the
/// message was being protected) is covered without a call at each exit. The deletion runs
/// detached on the `blocking` pool (bounded by CM_KAS_TIMEOUT); the client already has its
/// reply. Nothing logged names the link.
#[must_use = "dropping it deletes the stored mail data"]
pub struct StoredMailData {
    client: KasClient,
    link: Option<String>,
}

impl StoredMailData {
    fn new(client: KasClient, link: String) -> Self {
        Self {
            client,
            link: Some(link),
        }
    }

    /// The protected message goes to the MTA: the data stay on the KAS unless the MTA refuses
    /// it (the session then hands the link back, [`KasFlow::discard`]).
    pub fn keep(mut self) -> KasLink {
        KasLink::new(self.link.take().unwrap_or_default())
    }
}

impl std::fmt::Debug for StoredMailData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredMailData")
            .field("kept", &self.link.is_none())
            .finish_non_exhaustive()
    }
}

impl Drop for StoredMailData {
    fn drop(&mut self) {
        if let Some(link) = self.link.take() {
            delete_detached(self.client.clone(), KasLink::new(link));
        }
    }
}

/// `DELETE` of mail data nobody will fetch, detached on the `blocking` pool (bounded by
/// CM_KAS_TIMEOUT): the client already has its reply. Nothing logged names the link.
fn delete_detached(client: KasClient, link: KasLink) {
    blocking::unblock(move || match client.delete_attachment(link.expose()) {
        Ok(()) => log::info!("KAS: mail data of a message that was not sent deleted"),
        Err(e) => {
            let why = match e {
                crate::kas_client::KasError::Status(s) => format!("HTTP {s}"),
                _ => "no usable answer".to_owned(),
            };
            log::warn!(
                "KAS: deleting the mail data of a message that was not sent failed ({why}); \
                 they stay until they expire"
            );
        }
    })
    .detach();
}

fn failure(e: &KasSendError) -> ProtectionFailure {
    ProtectionFailure::with_reply(&e.reply())
}

/// Every `komLeData` value the directory holds for `address`.
fn kom_le_data(entries: &[DirectoryEntry]) -> Vec<String> {
    entries
        .iter()
        .flat_map(|e| e.kom_le_data.iter().cloned())
        .collect()
}

impl KasFlow {
    pub fn new(client: KasClient, limits_url: Option<String>) -> Self {
        Self::with_endpoints(client, KasEndpoints::Fixed { limits_url })
    }

    /// Like [`KasFlow::new`], with the endpoints given: [`KasEndpoints::Discovered`] looks up
    /// the KAS per sender domain and uses `client` with that base URL.
    pub fn with_endpoints(client: KasClient, endpoints: KasEndpoints) -> Self {
        Self {
            client,
            endpoints,
            limits: Mutex::new(HashMap::new()),
            max_fetch: crate::config::DEFAULT_KAS_MAX_MAIL_SIZE as u64,
        }
    }

    /// Sets the largest mail data fetched on receive (default `[kas] max_mail_size`'s, 500 MiB);
    /// a structure announcing more is answered like undecryptable data (4007), nothing is
    /// downloaded.
    pub fn with_max_fetch(mut self, bytes: u64) -> Self {
        self.max_fetch = bytes;
        self
    }

    /// From `[kas]`: the client identity from `client_certificate`/`client_key`, else the key
    /// store's `[upstream] client_identity` (A_19362, A_19368).
    ///
    /// # Errors
    /// [`RuntimeError`] naming the key when files or the identity cannot be read.
    pub fn from_config(kas: &KasSettings, config: &Config) -> Result<Self, RuntimeError> {
        let err = |key: &str, e: &dyn std::fmt::Display| RuntimeError(format!("[kas] {key}: {e}"));
        let (client_chain, client_key) = match (&kas.client_certificate, &kas.client_key) {
            (Some(cert), Some(key)) => (
                crate::tls::load_certificates(cert).map_err(|e| err("client_certificate", &e))?,
                crate::tls::load_private_key(key).map_err(|e| err("client_key", &e))?,
            ),
            _ => {
                let (Some(keys), Some(alias)) = (&config.keys, &config.upstream.client_identity)
                else {
                    return Err(err("client_certificate", &"missing"));
                };
                crate::tls::open_identity(keys, alias)
                    .map_err(|e| err("client identity", &e))?
                    .into_parts()
            }
        };
        let roots = match &kas.ca {
            Some(ca) => crate::tls::load_certificates(ca).map_err(|e| err("ca", &e))?,
            None => Vec::new(),
        };
        let client = KasClient::new(KasClientSettings {
            // With discovery the base URL is set per sender before each upload.
            base_url: kas.base_url.clone().unwrap_or_default(),
            timeout: kas.timeout,
            roots,
            client_chain,
            client_key,
            basic: None,
        })
        .map_err(|e| err("client identity", &e))?;
        Ok(
            Self::with_endpoints(client, KasEndpoints::from_settings(kas))
                .with_max_fetch(kas.max_mail_size as u64),
        )
    }

    /// The sender account's limits: cached, else getLimits (A_22416). Unknown (no URL, or the
    /// account manager unreachable) is `None`: then only the 15 MiB rule applies and the KAS
    /// enforces its own limit.
    async fn limits(
        &self,
        account: &str,
        sender_domain: Option<&str>,
        now: i64,
    ) -> Option<AccountLimits> {
        let key = account.to_ascii_lowercase();
        {
            let cache = self.limits.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = cache.get(&key).filter(|c| c.is_fresh(now)) {
                return Some(c.limits.clone());
            }
        }
        let url = self.endpoints.limits_url(sender_domain).await?;
        let client = self.client.clone();
        match blocking::unblock(move || client.get_limits(&url)).await {
            Ok(limits) => {
                let mut cache = self.limits.lock().unwrap_or_else(|p| p.into_inner());
                cache.insert(
                    key,
                    CachedLimits {
                        limits: limits.clone(),
                        fetched_at: now,
                    },
                );
                Some(limits)
            }
            Err(e) => {
                log::warn!("getLimits failed ({e}); only the 15 MiB rule applies");
                None
            }
        }
    }

    /// Decides the route of `job` and, for the KAS route, stores the encrypted mail data on
    /// the KAS and swaps the message for the small KOM-LE message. `now` is TI time (Unix s).
    ///
    /// # Errors
    /// The spec's reply as a [`ProtectionFailure`] (the session sends it and RSET): 552 X.3.4
    /// above maxMailSize, 451 for x-kas parts, no opted-in recipient, an unreachable directory
    /// or KAS, 521 for a full KAS (A_22419-01).
    /// The MTA refused the message that points to the data under `link`: delete them
    /// (detached, like an unsent message's, [`StoredMailData`]).
    pub fn discard(&self, link: KasLink) {
        log::info!("KAS: the MTA refused a message with KAS content; deleting its mail data");
        delete_detached(self.client.clone(), link);
    }

    pub async fn prepare_send(
        &self,
        mut job: ProtectJob,
        directory: &dyn Directory,
        now: i64,
    ) -> Result<SendPrepared, ProtectionFailure> {
        let size = job.message.as_slice().len() as u64;
        if !kas::size_decision::exceeds_konnektor_limit(size) {
            return Ok(SendPrepared::Konnektor(job));
        }
        let sender_domain = kas_discovery::mail_domain(&job.envelope_from).map(str::to_owned);
        let limits = self
            .limits(&job.login.user, sender_domain.as_deref(), now)
            .await;
        if kas::route(size, limits.as_ref()).map_err(|e| failure(&e))? == SendRoute::Konnektor {
            return Ok(SendPrepared::Konnektor(job));
        }
        // A_19361-01: the sender's KAS before any work on the mail; not found is answered
        // like a KAS that is down (451 + RSET, A_19363-03).
        let client = match self.endpoints.kas_base_url(sender_domain.as_deref()).await {
            Ok(Some(url)) => self.client.with_base_url(&url),
            Ok(None) => self.client.clone(),
            Err(e) => {
                log::warn!("KAS discovery failed: {e}");
                return Err(failure(&KasSendError::UploadFailed(
                    kas::UploadFailure::Transport,
                )));
            }
        };
        // A_22341: a client mail that already carries KAS content is not stored again.
        let message = core::mem::take(job.message.as_mut_vec());
        let (message, parts) = blocking::unblock(move || {
            let parts = kas::kas_parts::scan(&message);
            (message, parts)
        })
        .await;
        let mut message = SecretBytes::from(message);
        if parts.count > 0 {
            return Err(failure(&KasSendError::ClientCarriesKasPart));
        }
        // A_19356-06: only recipients with the large-message opt-in (`1.5+`) get it.
        let mut data = Vec::with_capacity(job.recipients.len());
        for r in &job.recipients {
            match directory.lookup(r).await {
                Ok(entries) => data.push((r.clone(), kom_le_data(&entries))),
                Err(_) => {
                    return Err(ProtectionFailure::with_reply(
                        b"451 4.4.3 Der Verzeichnisdienst ist nicht erreichbar",
                    ));
                }
            }
        }
        let pairs: Vec<(&str, &[String])> =
            data.iter().map(|(a, d)| (a.as_str(), &d[..])).collect();
        let (kept, removed) =
            kas::split_large_message_recipients(&pairs).map_err(|e| failure(&e))?;
        let kept: Vec<String> = kept.into_iter().map(str::to_owned).collect();
        let removed: Vec<String> = removed.into_iter().map(str::to_owned).collect();
        let not_mail = || {
            ProtectionFailure::with_reply(
                b"451 4.6.0 Die Nachricht ist kein gueltiges Internet-Mail-Format",
            )
        };
        let head_end = headers::parse(message.as_slice())
            .map(|h| h.body)
            .map_err(|_| not_mail())?;
        // A_19363-03: header processing before the upload. A_19356-06: removed recipients
        // leave the To/Cc fields of what is stored, too (the header alone is rewritten, the
        // body is not copied).
        let mut notice = None;
        if !removed.is_empty() {
            log::info!(
                "KAS message: {} recipient(s) without the large-message opt-in left out",
                removed.len()
            );
            let header = SecretBytes::from(
                remove_addresses(&message.as_slice()[..head_end], &removed)
                    .map_err(|_| not_mail())?,
            );
            let h = headers::parse(header.as_slice()).map_err(|_| not_mail())?;
            let subject = h.value(header.as_slice(), "Subject").unwrap_or_default();
            let id = h.value(header.as_slice(), "Message-ID").unwrap_or_default();
            let removed_refs: Vec<&str> = removed.iter().map(String::as_str).collect();
            notice = Some(Notice {
                envelope_from: job.envelope_from.clone(),
                recipient: job.envelope_from.clone(),
                message: SecretBytes::from(kas::removed_notice::removed_recipients_notice(
                    &job.envelope_from,
                    subject.trim(),
                    id.trim(),
                    &removed_refs,
                    "komle-cm",
                    now,
                )),
            });
            message
                .as_mut_vec()
                .splice(0..head_end, header.as_slice().iter().copied());
        }
        let head_end = headers::parse(message.as_slice())
            .map(|h| h.body)
            .map_err(|_| not_mail())?;
        let header = SecretBytes::from(message.as_slice()[..head_end].to_vec());
        let message_id = headers::parse(header.as_slice())
            .ok()
            .and_then(|h| h.value(header.as_slice(), "Message-ID"))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty() && !v.contains(['\r', '\n']))
            .unwrap_or_else(|| format!("<{:032x}@komle-cm>", rand::random::<u128>()));
        let ttl_days = limits
            .as_ref()
            .and_then(|l| l.data_time_to_live_days)
            .unwrap_or(kas::account_limits::DEFAULT_TTL_DAYS);
        let expires = kas::expires(now, limits.as_ref());
        // A_19358-01: a fresh key and IV per message, from the OS RNG.
        let key = KasKey::from_bytes(rand::random());
        let iv = GcmIv(rand::random());
        let recipients = kept.clone();
        let stored = blocking::unblock(move || {
            // In place: the plaintext is overwritten by the ciphertext as the upload reads it,
            // never copied; the hash runs on a second thread just ahead. The buffer stays a
            // SecretBytes: an upload that fails half-way leaves plaintext in it, wiped on drop.
            let meta = MailMeta {
                message_id: &message_id,
                recipients: &recipients,
                expires: &expires,
            };
            let size = message.as_slice().len() as u64;
            let attachment = client.store_mail_data(meta, message.as_mut_vec(), &key, iv)?;
            Ok::<_, KasSendError>((attachment, size))
        })
        .await;
        let (attachment, size) = stored.map_err(|e| {
            log::warn!("KAS upload failed: {e}");
            failure(&e)
        })?;
        // From here on every way out but the caller's keep() deletes the object again.
        let stored = StoredMailData::new(self.client.clone(), attachment.link.clone());
        let small = kas::kas_message(header.as_slice(), &attachment).map_err(|_| {
            ProtectionFailure::with_reply(
                b"451 4.6.0 Die KOM-LE-Nachricht mit KAS-Inhalt konnte nicht gebaut werden",
            )
        })?;
        job.message = SecretBytes::from(small);
        job.recipients = kept;
        Ok(SendPrepared::Kas {
            job,
            notice,
            size,
            ttl_days,
            stored,
        })
    }

    /// A_23512, before anything is decrypted: a message announcing more than 15 MiB of KAS
    /// data for a user without the large-message opt-in becomes the 4018 mail. `None`: go on.
    pub async fn opt_in_refusal(
        &self,
        received: &[u8],
        user: &str,
        directory: &dyn Directory,
        now: i64,
    ) -> Option<Vec<u8>> {
        let announced = kas::receive::kas_size(received)?;
        if !kas::size_decision::exceeds_konnektor_limit(announced) {
            return None;
        }
        // An unreachable directory does not refuse: the KAS still checks the recipient.
        let data = match directory.lookup(user).await {
            Ok(entries) => kom_le_data(&entries),
            Err(_) => {
                log::warn!("directory unavailable for the large-message opt-in check");
                return None;
            }
        };
        kas::check_opt_in(received, &data, user)
            .err()
            .map(|_| kas::large_messages_not_enabled_mail(received, user, now))
    }

    /// [`komle_core::open::Step::FetchKas`]: HEAD, download, decrypt and check on the
    /// blocking pool (A_19370-04, A_19371-04, A_19372-03).
    ///
    /// # Errors
    /// [`KasOpenError`] with the table's code.
    pub async fn fetch(&self, fetch: KasFetch) -> Result<SecretBytes, KasOpenError> {
        if fetch.attachment.size > self.max_fetch {
            log::warn!(
                "KAS content of {} bytes announced, more than the {} fetched",
                fetch.attachment.size,
                self.max_fetch
            );
            return Err(KasOpenError::TooLarge);
        }
        let client = self.client.clone();
        blocking::unblock(move || {
            let size =
                usize::try_from(fetch.attachment.size).map_err(|_| KasOpenError::TooLarge)?;
            // Room for what the delivered mail adds around the client mail (header fields,
            // note, report, POP3 terminator): it is built in this buffer (issue 17).
            let mut out = SecretBytes::from(Vec::with_capacity(
                size.min(MAX_PREALLOCATED) + DELIVERY_HEADROOM,
            ));
            let result = client.fetch_into(&fetch.attachment, &fetch.recipient, out.as_mut_vec());
            match result {
                Ok(_) => Ok(out),
                Err(e) => {
                    log::warn!("KAS download failed: {e}");
                    Err(e)
                }
            }
        })
        .await
    }
}

/// Largest buffer reserved up front for a download (the structure's `size` is the sender's
/// claim; more is grown on demand and cut off by the opener past `size`).
const MAX_PREALLOCATED: usize = 512 * 1024 * 1024;

/// Bytes reserved beyond the client mail for the delivered mail built around it in the same
/// buffer (header fields, A_2179-01 note, PDF report, POP3 terminator); more grows the buffer.
const DELIVERY_HEADROOM: usize = 64 * 1024;

/// Shared handle as the pipeline holds it.
pub type SharedKasFlow = Arc<KasFlow>;
