//! The protection pipeline's state machine: the I/O steps around [`SendPlan`].

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::directory::{CacheLookup, CertificateCache, DirectoryEntry, Selection, select};
use crate::konnektor::get_pin_status::PinStatus;
use crate::konnektor::pin_request::{PIN_TYPE_SMC, PinRequest};
use crate::konnektor::verify_pin::{PinResult, VerifyPinResponse};
use crate::konnektor::{
    CallContext, KonnektorEndpoints, KonnektorError, SoapRequest, encrypt_document, get_cards,
    get_job_number, get_pin_status, sign_document, verify_pin,
};
use crate::secret::SecretBytes;
use crate::smime::recipient_emails;
use crate::smime::send_plan::{Lookup, Prepared, Protect, SendPlan, SendStart};
use crate::smime::wrap::SIGNED_ENTITY_HEADER;
use crate::smtp::{Notice, ProtectJob, ProtectedMessage, ProtectionFailure};

/// A Konnektor call for the runtime: POST `request.body` to `url` with `request`'s SOAPAction.
#[derive(Debug)]
pub struct KonnektorCall {
    pub url: String,
    pub request: SoapRequest,
}

/// What the pipeline needs next.
#[derive(Debug)]
pub enum Step {
    /// Look the address up in the directory and call [`Protection::directory_answer`].
    LookUp(String),
    /// Make the call and give the response body (or a transport error) to
    /// [`Protection::konnektor_answer`].
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

/// The certificate-by-certificate check after a refused EncryptDocument.
#[derive(Debug)]
struct Probe {
    /// The refusal, as the 451 text should it come to that.
    refusal: String,
    /// (address, certificate) still to offer; the front one is being asked.
    queue: VecDeque<(String, Vec<u8>)>,
    /// Certificates the Konnektor refused on their own.
    refused: Vec<Vec<u8>>,
}

/// The document of a probe: not the message (which must not reach the Konnektor again for
/// a mere certificate check), just enough for EncryptDocument to run its certificate checks.
const PROBE_DOCUMENT: &[u8] = b"KOM-LE Clientmodul: Pruefung des Verschluesselungszertifikats\r\n";

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
    /// A [`Step::Call`] was handed out and its answer has not come yet. The EncryptDocument
    /// request is built once, from a buffer freed while building, so it cannot be handed out
    /// twice.
    awaiting_answer: bool,
    outcome: Option<Result<ProtectedMessage, ProtectionFailure>>,
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
            awaiting_answer: false,
            outcome: None,
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

    /// Advances as far as possible without the runtime and says what is needed next. After a
    /// [`Step::LookUp`] or [`Step::Call`] its answer must be given before calling this again.
    pub fn step(&mut self, cache: &mut CertificateCache) -> Step {
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
                        return Step::LookUp(a);
                    }
                    self.certificates_complete();
                }
                State::Finished => {
                    return Step::Done(Err(ProtectionFailure {
                        reason: "Die Verarbeitung ist bereits abgeschlossen".into(),
                    }));
                }
                _ if self.awaiting_answer => {
                    self.state = State::Finished;
                    return Step::Done(Err(ProtectionFailure {
                        reason: "Interner Fehler: die Antwort des Konnektors steht noch aus".into(),
                    }));
                }
                _ => {
                    self.awaiting_answer = true;
                    return Step::Call(self.call_for_state());
                }
            }
        }
    }

    /// The directory's answer for the address of the last [`Step::LookUp`].
    pub fn directory_answer(
        &mut self,
        cache: &mut CertificateCache,
        entries: Result<Vec<DirectoryEntry>, DirectoryUnavailable>,
    ) {
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
                let found = match selection {
                    Selection::Usable(_) => {
                        cache.insert(&address, certs, self.now);
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

    /// The Konnektor's answer to the last [`Step::Call`]: the response body, or a transport
    /// error.
    pub fn konnektor_answer(
        &mut self,
        cache: &mut CertificateCache,
        body: Result<Vec<u8>, String>,
    ) {
        self.awaiting_answer = false;
        let Ok(body) = body else {
            self.fail("Der Konnektor ist nicht erreichbar");
            return;
        };
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
            State::AwaitingPinStatus => match get_pin_status::parse(&body) {
                Ok(r) => match r.pin_status {
                    Some(PinStatus::Verified) => self.state = State::AwaitingJobNumber,
                    Some(PinStatus::Verifiable) => self.state = State::AwaitingPinVerification,
                    // KOM-LE-A_2058: this SM-B cannot be unlocked here.
                    Some(PinStatus::Blocked) => self.fail(
                        "Die SM-B ist gesperrt (PIN.SMC blockiert); die Nachricht kann nicht signiert werden",
                    ),
                    Some(PinStatus::TransportPin | PinStatus::EmptyPin) => self.fail(
                        "Fuer die SM-B ist noch keine PIN gesetzt (Transport-PIN); die Nachricht kann nicht signiert werden",
                    ),
                    None => self.fail(
                        "Der PIN-Status der SM-B ist unbekannt; die Nachricht kann nicht signiert werden",
                    ),
                },
                Err(e) => self.fail_konnektor("GetPinStatus", &e),
            },
            State::AwaitingPinVerification => match verify_pin::parse(&body) {
                Ok(VerifyPinResponse {
                    pin_result: PinResult::Ok,
                    ..
                }) => self.state = State::AwaitingJobNumber,
                // KOM-LE-A_2058: unlocking failed, the signature is abandoned.
                Ok(r) => self.fail(&pin_failure(&r)),
                Err(e) => self.fail_konnektor("VerifyPin", &e),
            },
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
            State::Probing(mut probe) => {
                // Only whether it was refused matters; the probe's ciphertext is dropped.
                if let Some((_, cert)) = probe.queue.pop_front()
                    && encrypt_document::parse(&body).is_err()
                {
                    probe.refused.push(cert);
                }
                if probe.queue.is_empty() {
                    self.probed(cache, probe);
                } else {
                    self.state = State::Probing(probe);
                }
            }
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
            State::Probing(probe) => {
                let (address, cert) = probe
                    .queue
                    .front()
                    .map_or(("", &[][..]), |(a, c)| (a.as_str(), c.as_slice()));
                // The same request shape as the real one: one certificate, its
                // recipient-emails value, a fixed document.
                let attribute = recipient_emails::build(&[(address, cert)]).unwrap_or_default();
                KonnektorCall {
                    url: self.endpoints.encryption_service.clone(),
                    request: encrypt_document::build(&encrypt_document::EncryptDocumentRequest {
                        context: &self.context,
                        certificates: &[cert.to_vec()],
                        recipient_emails_attribute: &attribute,
                        document: PROBE_DOCUMENT,
                    }),
                }
            }
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

    fn consult_cache(&mut self, cache: &mut CertificateCache) {
        for a in &self.addresses {
            match cache.get(a, self.now) {
                CacheLookup::Hit(certs) => {
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

    /// Abbildung 8: EncryptDocument was refused. A refusal with a gematik code may be about
    /// certificates (revoked, no path to a trust anchor), but the Konnektor does not say which:
    /// every certificate of the attempt is offered alone to find out. Anything else (an
    /// unreadable answer) ends the attempt with 451.
    fn encryption_refused(&mut self, e: &KonnektorError) {
        let refusal = konnektor_failure("EncryptDocument", e);
        let mut queue: VecDeque<(String, Vec<u8>)> = VecDeque::new();
        for (address, l) in &self.lookups {
            if let Lookup::Found(certs) = l {
                for c in certs {
                    if !queue.iter().any(|(_, q)| q == c) {
                        queue.push_back((address.clone(), c.clone()));
                    }
                }
            }
        }
        if e.gematik_code().is_none() || queue.is_empty() {
            self.fail(&refusal);
            return;
        }
        self.prepared = None;
        self.state = State::Probing(Probe {
            refusal,
            queue,
            refused: Vec::new(),
        });
    }

    /// Every certificate was offered alone. Per Abbildung 8: an address whose refused
    /// certificate came from the cache is looked up in the directory once more (its cache
    /// entry is evicted); otherwise the refused certificates are no longer used, and an
    /// address left without any is removed from the message and named in the notice (A_2024,
    /// A_2028). Then the message is signed again (the signed recipient-emails must equal the
    /// new unprotected ones) and encrypted again.
    fn probed(&mut self, cache: &mut CertificateCache, probe: Probe) {
        if probe.refused.is_empty() {
            // Each certificate alone is fine: the refusal was not about certificates.
            self.fail(&probe.refusal);
            return;
        }
        cache.invalidate(&probe.refused);
        let mut kept = Vec::with_capacity(self.lookups.len());
        for (address, l) in core::mem::take(&mut self.lookups) {
            let Lookup::Found(certs) = l else {
                kept.push((address, l));
                continue;
            };
            if !certs.iter().any(|c| probe.refused.contains(c)) {
                kept.push((address, Lookup::Found(certs)));
                continue;
            }
            let cached = self.from_cache.iter().any(|a| a == &address);
            if cached && !self.re_asked.iter().any(|a| a == &address) {
                self.from_cache.retain(|a| a != &address);
                self.re_asked.push(address.clone());
                self.to_look_up.push_back(address);
                continue;
            }
            let left: Vec<Vec<u8>> = certs
                .into_iter()
                .filter(|c| !probe.refused.contains(c))
                .collect();
            kept.push((
                address,
                if left.is_empty() {
                    Lookup::Refused
                } else {
                    Lookup::Found(left)
                },
            ));
        }
        self.lookups = kept;
        self.refused.extend(probe.refused);
        self.refusal = Some(probe.refusal);
        self.state = State::Certificates;
    }

    fn pin_request(&self) -> PinRequest<'_> {
        PinRequest {
            context: &self.context,
            card_handle: self.card_handle.as_deref().unwrap_or_default(),
            pin_type: PIN_TYPE_SMC,
        }
    }

    /// Builds the outer message; `encrypted` is freed as soon as it is encoded into it.
    fn finish(&mut self, encrypted: Vec<u8>) {
        let Some(p) = self.prepared.take() else {
            self.fail("Interner Zustand ohne vorbereitete Nachricht");
            return;
        };
        let outer = p.finish(&encrypted);
        drop(encrypted);
        match outer {
            Ok(outer) => {
                let notice = p.sender_notice.map(|n| Notice {
                    envelope_from: self.sender.clone(),
                    recipient: self.sender.clone(),
                    message: SecretBytes::from(n),
                });
                self.outcome = Some(Ok(ProtectedMessage {
                    message: SecretBytes::from(outer),
                    recipients: p.recipients,
                    notice,
                }));
            }
            Err(_) => self.fail("Die verschluesselte Nachricht konnte nicht verpackt werden"),
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

/// The 451 text for a failed Konnektor operation, with its gematik code when there is one.
fn konnektor_failure(operation: &str, e: &KonnektorError) -> String {
    let code = e
        .gematik_code()
        .map(|c| format!(" (Fehler {c})"))
        .unwrap_or_default();
    format!("Konnektor-Operation {operation} fehlgeschlagen{code}")
}

/// KOM-LE-A_2058: why VerifyPin did not unlock the SM-B, for the 451 text.
fn pin_failure(r: &VerifyPinResponse) -> String {
    let why = match r.pin_result {
        PinResult::WasBlocked | PinResult::NowBlocked => "die PIN.SMC ist gesperrt".to_owned(),
        PinResult::TransportPin => "fuer die SM-B ist noch keine PIN gesetzt".to_owned(),
        PinResult::Rejected | PinResult::Error | PinResult::Ok => match r.left_tries {
            Some(n) => format!("die PIN-Eingabe ist fehlgeschlagen, noch {n} Versuche"),
            None => "die PIN-Eingabe ist fehlgeschlagen".to_owned(),
        },
    };
    format!(
        "Die SM-B konnte nicht freigeschaltet werden ({why}); die Nachricht kann nicht signiert werden"
    )
}

fn lookup(selection: Selection) -> Lookup {
    match selection {
        Selection::Usable(certs) => Lookup::Found(certs.into_iter().map(|c| c.der).collect()),
        Selection::NoValidCertificate => Lookup::NoCertificate,
        Selection::ConflictingTelematikIds(_) => Lookup::DifferentTelematikIds,
    }
}
