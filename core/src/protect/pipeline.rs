//! The protection pipeline's state machine: the I/O steps around [`SendPlan`].
//!
//! Unlocking the SM-B lives in [`pin`], what happens after a refused EncryptDocument
//! (Abbildung 8) in [`refusal`].

mod pin;
mod refusal;

use std::collections::VecDeque;

use refusal::Probe;
use std::time::{SystemTime, UNIX_EPOCH};

use super::kim_headers::{self, KimSendInfo};
use super::outdated_notice;
use crate::directory::{
    CacheAccess, CacheLookup, DirectoryEntry, KomLeVersion, Selection, kom_le_version, select,
};
use crate::konnektor::call::{Awaited, PendingAnswer};
use crate::konnektor::{
    CallContext, KonnektorCall, KonnektorEndpoints, KonnektorError, SoapRequest, TransportError,
    encrypt_document, get_cards, get_job_number, get_pin_status, sign_document, verify_pin,
};
use crate::secret::SecretBytes;
use crate::smime::send_plan::{Lookup, Prepared, Protect, SendPlan, SendStart};
use crate::smime::wrap::SIGNED_ENTITY_HEADER;
use crate::smtp::{Notice, ProtectJob, ProtectedMessage, ProtectionFailure};

/// What the pipeline needs next. Not `#[non_exhaustive]` on purpose: a driver must handle
/// every step, and a new one must break it at compile time.
#[derive(Debug)]
pub enum Step {
    /// Look the address up in the directory and call [`Protection::directory_answer`].
    LookUp(String),
    /// Make the call and give the response body to [`Protection::konnektor_answer`], or the
    /// transport failure to [`Protection::transport_failed`].
    Call(KonnektorCall),
    /// Finished.
    Done(Result<ProtectedMessage, ProtectionFailure>),
}

/// The directory could not be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectoryUnavailable;

#[derive(Debug)]
enum State {
    /// Finding certificates (cache, then directory).
    Certificates,
    AwaitingCards,
    /// §3.8.1 activity 3: is the SM-B's PIN.SMC verified?
    AwaitingPinStatus,
    /// §3.8.1 activity 4: the user enters the PIN at the card terminal.
    AwaitingPinVerification,
    AwaitingJobNumber,
    AwaitingSignature {
        job_number: String,
    },
    /// Holds the EncryptDocument input until the request is built from it (then it is wiped).
    AwaitingEncryption {
        signed_entity: SecretBytes,
    },
    /// Abbildung 8: EncryptDocument was refused and the Konnektor does not say for which
    /// certificate, so each certificate of the attempt is offered alone (with a small fixed
    /// document, never the message) to find the ones it refuses.
    Probing(Probe),
    Finished,
}

/// One message on its way through the pipeline.
#[derive(Debug)]
pub struct Protection {
    job: ProtectJob,
    context: CallContext,
    endpoints: KonnektorEndpoints,
    now: SystemTime,
    state: State,
    sender: String,
    /// Addresses to find certificates for (recipients and sender, A_2022).
    addresses: Vec<String>,
    lookups: Vec<(String, Lookup)>,
    /// Addresses whose certificates came from the cache (retry rule of Abbildung 8).
    from_cache: Vec<String>,
    cache_consulted: bool,
    to_look_up: VecDeque<String>,
    /// The address of the outstanding [`Step::LookUp`].
    asked: Option<String>,
    /// Addresses looked up again after the Konnektor refused their cached certificates; a
    /// second refusal drops them (Abbildung 8 asks the directory once).
    re_asked: Vec<String>,
    /// Certificates the Konnektor refused for this message: never offered again, even when
    /// the directory returns them as replacements.
    refused: Vec<Vec<u8>>,
    /// The last EncryptDocument refusal, named in the 451 when nobody is left (A_2025).
    refusal: Option<String>,
    /// The plan made in `new`; it owns the message (moved out of the job, not copied) and is
    /// asked again when the Konnektor refused cached certificates (Abbildung 8).
    plan: Option<SendPlan>,
    prepared: Option<Protect>,
    card_handle: Option<String>,
    /// A [`Step::LookUp`] or [`Step::Call`] was handed out and its answer has not come yet.
    /// The EncryptDocument request is built once, from a buffer freed while building, so it
    /// cannot be handed out twice.
    pending: PendingAnswer,
    outcome: Option<Result<ProtectedMessage, ProtectionFailure>>,
    /// KIM 1.5 outer fields (A_21388-01, A_22417).
    kim: KimSendInfo,
    /// The KOM-LE version the directory (or the cache, A_22340) states per address
    /// (A_19356-06): for the KAS decision and the sender check (A_21387-01).
    versions: Vec<(String, KomLeVersion)>,
    /// The message's content lies on the KAS: `X-KOM-LE-Version: 1.5` (A_2100-02).
    kas_content: bool,
    /// The size of the mail data on the KAS, for the outer `X-KIM-KAS-Size` (A_23467).
    kas_size: Option<u64>,
}

impl Protection {
    /// Starts protecting `job`. `now` is the Konnektor-synchronised wall-clock time (A_2230),
    /// used for certificate validity and the notice's date.
    pub fn new(job: ProtectJob, endpoints: KonnektorEndpoints, now: SystemTime) -> Self {
        let context = job.login.call_context();
        let mut p = Self {
            context,
            endpoints,
            now,
            state: State::Certificates,
            sender: String::new(),
            addresses: Vec::new(),
            lookups: Vec::new(),
            from_cache: Vec::new(),
            cache_consulted: false,
            to_look_up: VecDeque::new(),
            asked: None,
            re_asked: Vec::new(),
            refused: Vec::new(),
            refusal: None,
            plan: None,
            prepared: None,
            card_handle: None,
            pending: PendingAnswer::default(),
            outcome: None,
            kim: KimSendInfo::default(),
            versions: Vec::new(),
            kas_content: false,
            kas_size: None,
            job,
        };
        // The plan takes the message over; the job keeps only the envelope.
        let message = core::mem::take(p.job.message.as_mut_vec());
        match SendPlan::start(message, &p.job.recipients) {
            Ok(SendStart::Forward(message)) => {
                // A_2029: a forwarded KOM-LE message goes out as it is.
                p.outcome = Some(Ok(ProtectedMessage {
                    message: SecretBytes::from(message),
                    recipients: p.job.recipients.clone(),
                    notice: None,
                    kas_link: None,
                }));
            }
            Ok(SendStart::Protect(plan)) => {
                p.sender = plan.sender().to_owned();
                p.addresses = plan.addresses_to_look_up();
                p.plan = Some(plan);
            }
            Err(_) => p.fail("Die Nachricht hat keinen gueltigen Absender (From/Sender)"),
        }
        p
    }

    /// Sets what the outer header carries beyond KOM-LE 1.0 (A_21388-01, A_22417); without
    /// it [`KimSendInfo::default`] applies.
    pub fn with_kim_info(mut self, info: KimSendInfo) -> Self {
        self.kim = info;
        self
    }

    /// Marks the message as carrying KAS content (set by the KAS branch): the outer header
    /// then says `X-KOM-LE-Version: 1.5` (gemSMIME_KOMLE KOM-LE-A_2100-02).
    pub fn set_kas_content(&mut self, kas_content: bool) {
        self.kas_content = kas_content;
    }

    /// The job's message is the small KOM-LE message of the KAS branch (A_19359-07) for mail
    /// data of `size` bytes: `X-KOM-LE-Version: 1.5` and, in the outer header too,
    /// `X-KIM-KAS-Size` (A_23467), which the receiver checks before it decrypts (A_23512).
    pub fn set_kas_size(&mut self, size: u64) {
        self.kas_content = true;
        self.kas_size = Some(size);
    }

    /// The KOM-LE version the directory states for `address` (A_19356-06; from the cache
    /// within A_22340's 24 h), once its certificates were looked up; `None` before that or
    /// when the cache had the certificates but no longer the version. An address without
    /// `komLeData` is 1.0.
    pub fn kom_le_version_of(&self, address: &str) -> Option<KomLeVersion> {
        self.versions
            .iter()
            .rev()
            .find(|(a, _)| a.eq_ignore_ascii_case(address))
            .map(|(_, v)| *v)
    }

    /// Advances as far as possible without the runtime and says what is needed next. After a
    /// [`Step::LookUp`] or [`Step::Call`] its answer must be given before calling this again.
    pub fn step<C: CacheAccess + ?Sized>(&mut self, cache: &mut C) -> Step {
        // A failure recorded by an answer out of turn comes first: it says what went wrong.
        if let Some(outcome) = self.outcome.take() {
            self.state = State::Finished;
            return Step::Done(outcome);
        }
        if let Err(e) = self.pending.ensure_free() {
            if matches!(self.state, State::Finished) {
                return finished();
            }
            self.state = State::Finished;
            return Step::Done(Err(ProtectionFailure {
                reason: e.reason().into(),
            }));
        }
        loop {
            if let Some(outcome) = self.outcome.take() {
                self.state = State::Finished;
                return Step::Done(outcome);
            }
            match self.state {
                State::Certificates => {
                    if !self.cache_consulted {
                        self.cache_consulted = true;
                        self.consult_cache(cache);
                    }
                    if let Some(a) = self.to_look_up.pop_front() {
                        self.asked = Some(a.clone());
                        self.pending.handed_out(Awaited::Directory);
                        return Step::LookUp(a);
                    }
                    self.certificates_complete();
                }
                State::Finished => return finished(),
                _ => {
                    self.pending.handed_out(Awaited::Konnektor);
                    return Step::Call(self.call_for_state());
                }
            }
        }
    }

    /// The directory's answer for the address of the last [`Step::LookUp`].
    pub fn directory_answer<C: CacheAccess + ?Sized>(
        &mut self,
        cache: &mut C,
        entries: Result<Vec<DirectoryEntry>, DirectoryUnavailable>,
    ) {
        if !self.accept(Awaited::Directory) {
            return;
        }
        let Some(address) = self.asked.take() else {
            return;
        };
        match entries {
            Ok(entries) => {
                // A certificate the Konnektor refused for this message is no replacement.
                let certs: Vec<Vec<u8>> = entries
                    .iter()
                    .flat_map(|e| e.certificates.iter().cloned())
                    .filter(|c| !self.refused.contains(c))
                    .collect();
                let selection = select(&certs, self.now, self.endpoints.ecc_capable).selection;
                let again = self.re_asked.iter().any(|a| a == &address);
                let version = kom_le_version::for_address(&entries, &address);
                cache.with_cache(|c| c.insert_kom_le_version(&address, version, self.now));
                self.versions.push((address.clone(), version));
                let found = match selection {
                    Selection::Usable(_) => {
                        cache.with_cache(|c| c.insert(&address, certs, self.now));
                        lookup(selection)
                    }
                    // Abbildung 8: no replacement for a refused certificate.
                    Selection::NoValidCertificate if again => Lookup::Refused,
                    other => lookup(other),
                };
                self.lookups.push((address, found));
            }
            Err(DirectoryUnavailable) => {
                self.fail("Der Verzeichnisdienst ist nicht erreichbar");
            }
        }
    }

    /// The last [`Step::Call`] got no answer body. Every transport failure ends the attempt
    /// (451 and RSET in the session, A_2021, A_2025). `cache` is taken like
    /// [`Self::konnektor_answer`]'s so a driver feeds both the same way.
    pub fn transport_failed<C: CacheAccess + ?Sized>(
        &mut self,
        _cache: &mut C,
        error: TransportError,
    ) {
        if !self.accept(Awaited::Konnektor) {
            return;
        }
        // The kind only: TransportError's text carries no content (the 451 reaches the client).
        self.fail(&format!("Der Konnektor ist nicht erreichbar ({error})"));
    }

    /// Takes the answer the guard waits for; an answer out of turn ends the pipeline with a
    /// failure (a finished pipeline ignores it). `false`: do not process it.
    fn accept(&mut self, kind: Awaited) -> bool {
        match self.pending.accept(kind) {
            Ok(()) => true,
            Err(_) if matches!(self.state, State::Finished) => false,
            Err(e) => {
                self.fail(e.reason());
                false
            }
        }
    }

    /// The Konnektor's answer (the response body) to the last [`Step::Call`].
    pub fn konnektor_answer<C: CacheAccess + ?Sized>(&mut self, cache: &mut C, body: Vec<u8>) {
        if !self.accept(Awaited::Konnektor) {
            return;
        }
        match core::mem::replace(&mut self.state, State::Finished) {
            State::AwaitingCards => match get_cards::parse(&body) {
                Ok(cards) => match cards.smb() {
                    Some(card) => {
                        self.card_handle = Some(card.card_handle.clone());
                        // §3.8.1: PIN status first where the Konnektor offers a CardService;
                        // without one it is asked to sign directly.
                        self.state = if self.endpoints.card_service.is_some() {
                            State::AwaitingPinStatus
                        } else {
                            State::AwaitingJobNumber
                        };
                    }
                    // KOM-LE-A_2057.
                    None => self.fail("Keine SM-B im Kartenkontext gefunden"),
                },
                Err(e) => self.fail_konnektor("GetCards", &e),
            },
            State::AwaitingPinStatus => self.pin_status_answer(&body),
            State::AwaitingPinVerification => self.verify_pin_answer(&body),
            State::AwaitingJobNumber => match get_job_number::parse(&body) {
                Ok(job_number) => self.state = State::AwaitingSignature { job_number },
                Err(e) => self.fail_konnektor("GetJobNumber", &e),
            },
            // A_2021: a failed signature ends the attempt (451 + RSET in the session).
            State::AwaitingSignature { .. } => {
                // The SignedData carries the message (IncludeEContent): wipe the answer too.
                let body = SecretBytes::from(body);
                // A_2019 step 2: the SignedData is decoded straight behind the header of the
                // signed-data MIME entity, which is then the EncryptDocument input as it is.
                match sign_document::parse_after(body.as_slice(), SIGNED_ENTITY_HEADER) {
                    Ok(r) => {
                        self.state = State::AwaitingEncryption {
                            signed_entity: SecretBytes::from(r.signed_data),
                        }
                    }
                    Err(e) => self.fail_konnektor("SignDocument", &e),
                }
            }
            State::AwaitingEncryption { .. } => {
                let parsed = encrypt_document::parse(&body);
                // Ciphertext only; freed before the outer message is built.
                drop(body);
                match parsed {
                    Ok(r) => self.finish(r.encrypted),
                    Err(e) => self.encryption_refused(&e),
                }
            }
            State::Probing(probe) => self.probe_answer(cache, probe, &body),
            other => self.state = other,
        }
    }

    /// The Konnektor call the current state waits for. The SignDocument request is encoded
    /// from the plan's mail (no sign input buffer); the EncryptDocument input is taken out and
    /// wiped once its request is built. Either request is then the only full-size buffer
    /// besides the message, and the runtime frees it once sent.
    fn call_for_state(&mut self) -> KonnektorCall {
        let signed_entity = match &mut self.state {
            State::AwaitingEncryption { signed_entity } => core::mem::take(signed_entity),
            _ => SecretBytes::new(),
        };
        let empty = Vec::new();
        let prepared_attr = self
            .prepared
            .as_ref()
            .map_or(&empty, |p| &p.recipient_emails);
        match &self.state {
            State::AwaitingCards => KonnektorCall {
                url: self.endpoints.event_service.clone(),
                request: get_cards::build(&get_cards::GetCardsRequest {
                    context: &self.context,
                    card_type: None,
                }),
            },
            State::AwaitingPinStatus => KonnektorCall {
                url: self.endpoints.card_service.clone().unwrap_or_default(),
                request: get_pin_status::build(&self.pin_request()),
            },
            State::AwaitingPinVerification => KonnektorCall {
                url: self.endpoints.card_service.clone().unwrap_or_default(),
                request: verify_pin::build(&self.pin_request()),
            },
            State::Probing(probe) => self.probe_call(probe),
            State::AwaitingJobNumber => KonnektorCall {
                url: self.endpoints.signature_service.clone(),
                request: get_job_number::build(&get_job_number::GetJobNumberRequest {
                    version: self.endpoints.signature_version,
                    context: &self.context,
                }),
            },
            // The sign input is encoded from its parts: a small head and the plan's own mail.
            State::AwaitingSignature { job_number } => KonnektorCall {
                url: self.endpoints.signature_service.clone(),
                request: sign_document::build(&sign_document::SignDocumentRequest {
                    version: self.endpoints.signature_version,
                    context: &self.context,
                    card_handle: self.card_handle.as_deref().unwrap_or_default(),
                    job_number,
                    request_id: "KOMLE-1",
                    recipient_emails_attribute: prepared_attr,
                    document: &match (&self.prepared, &self.plan) {
                        (Some(p), Some(plan)) => p.sign_input_parts(plan),
                        _ => [&[][..], &[][..]],
                    },
                }),
            },
            State::AwaitingEncryption { .. } => KonnektorCall {
                url: self.endpoints.encryption_service.clone(),
                request: encrypt_document::build(&encrypt_document::EncryptDocumentRequest {
                    context: &self.context,
                    certificates: self
                        .prepared
                        .as_ref()
                        .map_or(&[][..], |p| &p.encryption_certificates),
                    recipient_emails_attribute: prepared_attr,
                    document: signed_entity.as_slice(),
                }),
            },
            // Only the waiting states ask for a call; `next` never gets here otherwise.
            State::Certificates | State::Finished => KonnektorCall {
                url: String::new(),
                request: SoapRequest {
                    soap_action: "",
                    body: Vec::new(),
                },
            },
        }
    }

    fn consult_cache<C: CacheAccess + ?Sized>(&mut self, cache: &mut C) {
        // One short lock for all addresses; the selection runs after it.
        let found: Vec<_> = cache.with_cache(|c| {
            self.addresses
                .iter()
                .map(|a| (c.get(a, self.now), c.kom_le_version(a, self.now)))
                .collect()
        });
        for (a, (looked_up, version)) in self.addresses.iter().zip(found) {
            match looked_up {
                CacheLookup::Hit(certs) => {
                    if let Some(v) = version {
                        self.versions.push((a.clone(), v));
                    }
                    let selection = select(&certs, self.now, self.endpoints.ecc_capable).selection;
                    self.from_cache.push(a.clone());
                    self.lookups.push((a.clone(), lookup(selection)));
                }
                CacheLookup::Miss => self.to_look_up.push_back(a.clone()),
            }
        }
    }

    /// Every address has an answer: let the S/MIME plan decide whom the message goes to
    /// (A_2022, A_2178, A_2024, A_2027, A_2028) and prepare the sign input.
    fn certificates_complete(&mut self) {
        let Some(plan) = &self.plan else {
            self.fail("Die Nachricht konnte nicht vorbereitet werden");
            return;
        };
        let now = self
            .now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        match plan.with_certificates(&self.lookups, now) {
            Ok(Prepared::Protect(p)) => {
                self.prepared = Some(p);
                self.state = if self.card_handle.is_some() {
                    State::AwaitingJobNumber
                } else {
                    State::AwaitingCards
                };
            }
            Ok(Prepared::NothingToSend { .. }) => {
                // A_2025: the session answers 451 with this text and sends RSET.
                let missing: Vec<&str> = self
                    .lookups
                    .iter()
                    .filter(|(_, l)| !matches!(l, Lookup::Found(c) if !c.is_empty()))
                    .map(|(a, _)| a.as_str())
                    .collect();
                let konnektor = self
                    .refusal
                    .as_deref()
                    .map(|r| format!("; {r}"))
                    .unwrap_or_default();
                self.fail(&format!(
                    "Die Nachricht konnte nicht verschluesselt werden, weil Verschluesselungszertifikate fuer {} nicht zugaenglich sind{konnektor}",
                    missing.join(", ")
                ));
            }
            Err(_) => self.fail("Die Nachricht ist kein gueltiges Internet-Mail-Format"),
        }
    }

    /// Builds the outer message; `encrypted` is freed as soon as it is encoded into it.
    fn finish(&mut self, encrypted: Vec<u8>) {
        let Some(p) = self.prepared.take() else {
            self.fail("Interner Zustand ohne vorbereitete Nachricht");
            return;
        };
        let mut lines = self.kim.outer_lines(self.now);
        if let Some(size) = self.kas_size {
            lines.extend_from_slice(crate::kas::x_kim_kas_size_field(size).as_bytes());
        }
        let version = kim_headers::outer_version(self.kas_content);
        let fields = kim_headers::outer_fields(version, &lines);
        let outer = p.finish_with(&encrypted, &fields);
        drop(encrypted);
        match outer {
            Ok(outer) => {
                let notice = self.with_outdated_notice(p.sender_notice).map(|n| Notice {
                    envelope_from: self.sender.clone(),
                    recipient: self.sender.clone(),
                    message: SecretBytes::from(n),
                });
                self.outcome = Some(Ok(ProtectedMessage {
                    message: SecretBytes::from(outer),
                    recipients: p.recipients,
                    notice,
                    kas_link: None,
                }));
            }
            Err(_) => self.fail("Die verschluesselte Nachricht konnte nicht verpackt werden"),
        }
    }

    /// KOM-LE-A_21387-01: when the directory names a newer KOM-LE version for the sender
    /// than this module implements, the sender learns that the Clientmodul is outdated, in
    /// the notice it gets anyway or in one of its own.
    fn with_outdated_notice(&self, notice: Option<Vec<u8>>) -> Option<Vec<u8>> {
        let own = self
            .kom_le_version_of(&self.sender)
            .filter(|v| outdated_notice::is_outdated(*v));
        match (own, notice) {
            (None, notice) => notice,
            (Some(v), Some(mut n)) => {
                outdated_notice::append_to(&mut n, v);
                Some(n)
            }
            (Some(v), None) => {
                let now = self
                    .now
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
                Some(outdated_notice::notice(&self.sender, v, now))
            }
        }
    }

    fn fail_konnektor(&mut self, operation: &str, e: &KonnektorError) {
        self.fail(&konnektor_failure(operation, e));
    }

    fn fail(&mut self, reason: &str) {
        self.outcome = Some(Err(ProtectionFailure {
            reason: reason.to_owned(),
        }));
    }
}

/// What `step` answers once the pipeline has finished.
fn finished() -> Step {
    Step::Done(Err(ProtectionFailure {
        reason: "Die Verarbeitung ist bereits abgeschlossen".into(),
    }))
}

/// The 451 text for a failed Konnektor operation, with its gematik code when there is one.
fn konnektor_failure(operation: &str, e: &KonnektorError) -> String {
    let code = e
        .gematik_code()
        .map(|c| format!(" (Fehler {c})"))
        .unwrap_or_default();
    format!("Konnektor-Operation {operation} fehlgeschlagen{code}")
}

fn lookup(selection: Selection) -> Lookup {
    match selection {
        Selection::Usable(certs) => Lookup::Found(certs.into_iter().map(|c| c.der).collect()),
        Selection::NoValidCertificate => Lookup::NoCertificate,
        Selection::ConflictingTelematikIds(_) => Lookup::DifferentTelematikIds,
    }
}
