//! The opening pipeline's state machine: the Konnektor steps around the S/MIME open plan.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use super::card_cache::{CardCache, CertId};
use super::kas_content::{self, KasContent};
use super::verification::verification_from;
use crate::kas::{self, KasOpenError, KimAttachment, receive as kas_receive};
use crate::konnektor::call::{Awaited, PendingAnswer};
use crate::konnektor::get_pin_status::PinStatus;
use crate::konnektor::pin_request::{PIN_TYPE_CH, PIN_TYPE_SMC, PinRequest};
use crate::konnektor::read_card_certificate::CertRef;
use crate::konnektor::verify_pin::PinResult;
use crate::konnektor::{
    CallContext, KonnektorCall, KonnektorEndpoints, KonnektorError, TransportError,
    decrypt_document, get_cards, get_pin_status, read_card_certificate, verify_document,
    verify_pin,
};
use crate::pop3::{OpenFailure, OpenJob, OpenedMessage};
use crate::secret::SecretBytes;
use crate::smime::integrity::{NoVerdict, Verification};
use crate::smime::open_plan::{self, Decrypted, Opening, Retrieved, Verifying};
use crate::smime::opened_mail::DeliveryOptions;
use crate::smime::receive::{self, DecryptionFailure};

/// What the pipeline needs next. Not `#[non_exhaustive]` on purpose: a driver must handle
/// every step, and a new one must break it at compile time.
#[derive(Debug)]
pub enum Step {
    /// Make the call and give the response body to [`Reception::konnektor_answer`], or the
    /// transport failure to [`Reception::transport_failed`].
    Call(KonnektorCall),
    /// Finished: what the client gets.
    Done(Result<OpenedMessage, OpenFailure>),
    /// KIM 1.5 (only after [`Reception::with_kas`]): the decrypted, verified message carries
    /// the KIM-Attachment structure (A_19369-02). HEAD, `read_Attachment`, decrypt and check
    /// the mail data (A_19370-04, A_19371-04, A_19372-03), then give the client mail or the
    /// failure to [`Reception::kas_fetched`].
    FetchKas(KasFetch),
}

/// What to fetch from the KAS for one message.
#[derive(Debug, Clone)]
pub struct KasFetch {
    /// The structure from the decrypted message: link, key, hash, size.
    pub attachment: KimAttachment,
    /// The fetching user's address: the `recipient` header of `read_Attachment`.
    pub recipient: String,
}

/// Konnektor codes after which another card of the user may still hold the key, and after
/// which A_2047-02's 01 advice (insert the card, forward the mail to oneself) can help:
/// no RecipientInfo for this card's key (4253), card handle unknown or card removed (4101),
/// PIN blocked (4063), security state not reached, i.e. PIN not verified (4085).
const KEY_NOT_USABLE: [i64; 4] = [4253, 4101, 4063, 4085];
/// Konnektor codes for a document that is not a valid CMS structure (4115 ASN.1, 4112 format):
/// 02, wrong format.
const WRONG_FORMAT: [i64; 2] = [4115, 4112];
/// Konnektor codes for a call context it does not know: MandantId (4004), ClientSystemId
/// (4005), WorkplaceId (4006). Tab_POP3_Verbindung answers them with `-ERR`: the login name
/// is wrong, no mail can help.
const CONTEXT_REFUSED: core::ops::RangeInclusive<i64> = 4004..=4006;

/// The `-ERR` text when GetCards answers 4004–4006 (Tab_POP3_Verbindung, KOM-LE-A_2037-01).
pub const CONTEXT_REFUSED_REASON: &str =
    "Der Konnektor lehnt den Aufrufkontext ab (MandantId, ClientSystemId oder WorkplaceId)";

/// A card that may hold the fetching user's key, with the PIN that unlocks its C.ENC key.
#[derive(Debug, Clone)]
struct CardToTry {
    handle: String,
    /// PIN.SMC for the SM-B, PIN.CH for a HBA (gemSpec_CM_KOMLE §3.8.4, activity 5).
    pin_type: &'static str,
    /// From GetCards; the card cache is keyed to it (A_2061).
    iccsn: Option<String>,
}

/// The certificate IDs recipient-emails names for the fetching user (A_2043, A_2059).
#[derive(Clone)]
struct Wanted(Vec<CertId>);

impl core::fmt::Debug for Wanted {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Wanted({} certificate IDs)", self.0.len())
    }
}

#[derive(Debug)]
enum State {
    Start,
    AwaitingCards(Opening, Wanted),
    /// §3.8.4 activity 3 (A_2060): ReadCardCertificate of the first candidate; the rest are
    /// asked in turn until one holds a certificate recipient-emails names for the user.
    AwaitingCertificate {
        opening: Opening,
        wanted: Wanted,
        candidates: VecDeque<CardToTry>,
    },
    /// §3.8.4 activity 5: is the first card's PIN verified?
    AwaitingPinStatus {
        opening: Opening,
        cards: VecDeque<CardToTry>,
    },
    /// §3.8.4 activity 6: the user enters the PIN at the card terminal.
    AwaitingPinVerification {
        opening: Opening,
        cards: VecDeque<CardToTry>,
    },
    /// Trying the cards in turn; the first is being asked.
    AwaitingDecryption {
        opening: Opening,
        cards: VecDeque<CardToTry>,
    },
    AwaitingVerification(Box<Verifying>),
    /// The KAS data are being fetched; the verification result waits with the message.
    AwaitingKas {
        verifying: Box<Verifying>,
        verification: Box<Verification>,
        inner: SecretBytes,
        fetch: KasFetch,
    },
    Finished,
}

/// One retrieved message on its way to the client.
#[derive(Debug)]
pub struct Reception {
    job: OpenJob,
    context: CallContext,
    endpoints: KonnektorEndpoints,
    now: i64,
    options: DeliveryOptions,
    state: State,
    outcome: Option<Result<OpenedMessage, OpenFailure>>,
    /// A [`Step::Call`] was handed out and its answer has not come yet: the last
    /// DecryptDocument request takes the message out of the opening, so it must not be built
    /// twice.
    pending: PendingAnswer,
    /// Set when the message turned out to carry KAS content (gemSpec_CM_KOMLE V1.16 §3.2.2).
    kas: Option<KasContent>,
    /// The runtime fetches KAS content ([`Step::FetchKas`]); without it such a message becomes
    /// the 4008 error mail.
    kas_enabled: bool,
}

impl Reception {
    /// Starts opening `job`; `now` is the Konnektor-synchronised wall-clock time (A_2230).
    pub fn new(
        job: OpenJob,
        endpoints: KonnektorEndpoints,
        now: SystemTime,
        options: DeliveryOptions,
    ) -> Self {
        let now = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        Self {
            context: job.login.call_context(),
            job,
            endpoints,
            now,
            options,
            state: State::Start,
            outcome: None,
            pending: PendingAnswer::default(),
            kas: None,
            kas_enabled: false,
        }
    }

    /// Lets the pipeline hand out [`Step::FetchKas`] for KIM 1.5 messages with KAS content
    /// (A_19369-02 ff.) instead of answering them with the 4008 error mail. The opt-in check
    /// (A_23512) is the runtime's, before the pipeline starts: it needs the directory.
    pub fn with_kas(mut self) -> Self {
        self.kas_enabled = true;
        self
    }

    /// The outcome of the last [`Step::FetchKas`]: the client mail (decrypted and checked
    /// against `hash` and `size`) or why not. Download failures (4006, 4013, A_19370-04,
    /// A_22412-01) give the error mail with the received message attached, to forward later;
    /// a failed decryption or hash check (4007, 4012, A_19371-04, A_19372-03) and an
    /// ambiguous structure replace the content with the spec's text. Ignored in any other
    /// state.
    pub fn kas_fetched(&mut self, fetched: Result<SecretBytes, KasOpenError>) {
        let State::AwaitingKas {
            verifying,
            verification,
            inner,
            ..
        } = core::mem::replace(&mut self.state, State::Finished)
        else {
            return;
        };
        let mail = match fetched {
            // Built in the fetched mail's own buffer: a large mail is held once (issue 17).
            Ok(client_mail) => {
                verifying.finish_with_fetched(&verification, self.now, self.options, client_mail)
            }
            Err(e @ (KasOpenError::DownloadFailed | KasOpenError::TooManyDownloads)) => {
                kas_receive::download_failed_mail(
                    self.job.message.as_slice(),
                    e,
                    &self.job.login.user,
                    self.now,
                )
            }
            Err(e) => {
                let replaced = kas_receive::replaced_body_mail(inner.as_slice(), e);
                verifying.finish_with_content(
                    &verification,
                    self.now,
                    self.options,
                    Some(&replaced),
                )
            }
        };
        self.deliver(SecretBytes::from(mail));
    }

    /// The KAS content the message announced (A_23467), once [`Reception::step`] has looked
    /// at it: such a message is delivered as the 4008 error mail until the KAS module takes
    /// this branch over.
    pub fn kas_content(&self) -> Option<&KasContent> {
        self.kas.as_ref()
    }

    /// Advances as far as possible and says what is needed next. After a [`Step::Call`] its
    /// answer must be given before calling this again.
    ///
    /// The DecryptDocument request for the last card to try takes the AuthEnvelopedData out of
    /// the opening: no retry can need it, and the request is then the only full-size buffer
    /// until the answer comes (a failure mail is built from the received message instead).
    pub fn step(&mut self) -> Step {
        // A failure recorded by an answer out of turn comes first: it says what went wrong.
        if let Some(outcome) = self.outcome.take() {
            self.state = State::Finished;
            return Step::Done(outcome);
        }
        if let Err(e) = self.pending.ensure_free() {
            // A second step while the answer is pending: building the call again would send
            // the last DecryptDocument with the message already taken out.
            self.state = State::Finished;
            return Step::Done(Err(OpenFailure {
                reason: e.reason().into(),
            }));
        }
        if let State::Start = self.state
            && let Some(kas) = kas_content::detect_outer(self.job.message.as_slice())
        {
            // Without a KAS client (no `[kas]`), the user gets the error mail with the
            // encrypted original, to forward once the module can fetch it.
            if !self.kas_enabled {
                let mail = receive::unsupported_version_mail(
                    self.job.message.as_slice(),
                    &kas.version,
                    self.now,
                );
                self.state = State::Finished;
                self.deliver(SecretBytes::from(mail));
            }
            self.kas = Some(kas);
        }
        if let State::Start = self.state {
            match open_plan::on_retrieve(self.job.message.as_slice(), self.now) {
                // A KOM-LE message is recognised by its outer header only; others pass.
                Retrieved::PassThrough => {
                    let message = core::mem::take(&mut self.job.message);
                    self.deliver(message);
                }
                Retrieved::Deliver(mail) => self.deliver(SecretBytes::from(mail)),
                Retrieved::Decrypt(opening) => {
                    // A_2043/A_2044/A_2059: only certificates recipient-emails names for the
                    // fetching user's address; none means the message is not for this user's
                    // keys, and no Konnektor call is made (A_2045, §3.4.4.2.1: decryption
                    // counts as failed, Tab_Fehlertext_Entschl 01).
                    let wanted: Vec<CertId> = opening
                        .entries_for(&self.job.login.user)
                        .into_iter()
                        .map(|r| CertId {
                            issuer: r.issuer.clone(),
                            serial: r.serial.clone(),
                        })
                        .collect();
                    if wanted.is_empty() {
                        self.decryption_failed(&opening, DecryptionFailure::KeyNotFound);
                    } else {
                        self.state = State::AwaitingCards(opening, Wanted(wanted));
                    }
                }
            }
        }
        if let Some(outcome) = self.outcome.take() {
            self.state = State::Finished;
            return Step::Done(outcome);
        }
        let last_try_cms = match &mut self.state {
            State::AwaitingDecryption { opening, cards } if cards.len() == 1 => {
                core::mem::take(&mut opening.cms)
            }
            _ => Vec::new(),
        };
        let card_service = self.endpoints.card_service.clone().unwrap_or_default();
        let step = match &self.state {
            State::AwaitingPinStatus { cards, .. } => Step::Call(KonnektorCall {
                url: card_service,
                request: get_pin_status::build(&self.pin_request(cards)),
            }),
            State::AwaitingPinVerification { cards, .. } => Step::Call(KonnektorCall {
                url: card_service,
                request: verify_pin::build(&self.pin_request(cards)),
            }),
            State::AwaitingCertificate { candidates, .. } => Step::Call(KonnektorCall {
                url: self.endpoints.certificate_service.clone(),
                request: read_card_certificate::build(
                    &read_card_certificate::ReadCardCertificateRequest {
                        context: &self.context,
                        card_handle: candidates.front().map_or("", |c| c.handle.as_str()),
                        cert_refs: &[CertRef::Enc],
                    },
                ),
            }),
            State::AwaitingCards(..) => Step::Call(KonnektorCall {
                url: self.endpoints.event_service.clone(),
                request: get_cards::build(&get_cards::GetCardsRequest {
                    context: &self.context,
                    card_type: None,
                }),
            }),
            State::AwaitingDecryption { opening, cards } => Step::Call(KonnektorCall {
                url: self.endpoints.encryption_service.clone(),
                request: decrypt_document::build(&decrypt_document::DecryptDocumentRequest {
                    context: &self.context,
                    card_handle: cards.front().map_or("", |c| c.handle.as_str()),
                    document: if cards.len() == 1 {
                        &last_try_cms
                    } else {
                        &opening.cms
                    },
                }),
            }),
            State::AwaitingVerification(v) => Step::Call(KonnektorCall {
                url: self.endpoints.signature_service.clone(),
                request: verify_document::build(&verify_document::VerifyDocumentRequest {
                    version: self.endpoints.signature_version,
                    context: &self.context,
                    signed_data: v.verify_input(),
                    return_report: true,
                }),
            }),
            State::AwaitingKas { fetch, .. } => Step::FetchKas(fetch.clone()),
            State::Start | State::Finished => Step::Done(Err(OpenFailure {
                reason: "Die Verarbeitung ist bereits abgeschlossen".into(),
            })),
        };
        if let Step::Call(_) = step {
            self.pending.handed_out(Awaited::Konnektor);
        }
        step
    }

    /// The last [`Step::Call`] got no answer body; what that means depends on the call
    /// (Tab_Fehlertext_Entschl 03 for DecryptDocument, A_23165's X01 for VerifyDocument).
    pub fn transport_failed(&mut self, cards: &mut CardCache, error: TransportError) {
        self.answer(cards, Err(error));
    }

    /// The Konnektor's answer (the response body) to the last [`Step::Call`]. `cards` is the
    /// process-wide card cache (A_2060, A_2061): read after GetCards, written when
    /// ReadCardCertificate found the user's card.
    pub fn konnektor_answer(&mut self, cards: &mut CardCache, body: Vec<u8>) {
        self.answer(cards, Ok(body));
    }

    /// An answer out of turn ends an unfinished pipeline with a failure; a finished one
    /// ignores it.
    fn answer(&mut self, cards: &mut CardCache, body: Result<Vec<u8>, TransportError>) {
        if let Err(e) = self.pending.accept(Awaited::Konnektor) {
            if !matches!(self.state, State::Finished) {
                self.state = State::Finished;
                self.outcome = Some(Err(OpenFailure {
                    reason: e.reason().into(),
                }));
            }
            return;
        }
        match core::mem::replace(&mut self.state, State::Finished) {
            State::AwaitingCards(opening, wanted) => match body.as_deref().map(get_cards::parse) {
                Ok(Ok(listed)) => {
                    let candidates = self.candidates(&listed);
                    match self.cached_card(cards, &wanted, &candidates) {
                        // Activity 2: the remembered card is present.
                        Some(card) => self.try_card(opening, VecDeque::from([card])),
                        None if candidates.is_empty() => {
                            // A_2062: no card that could hold the key.
                            self.decryption_failed(&opening, DecryptionFailure::KeyNotFound);
                        }
                        None => {
                            self.state = State::AwaitingCertificate {
                                opening,
                                wanted,
                                candidates,
                            };
                        }
                    }
                }
                // Tab_POP3_Verbindung: the Konnektor refuses the login's call context.
                Ok(Err(e))
                    if e.gematik_code()
                        .is_some_and(|c| CONTEXT_REFUSED.contains(&c)) =>
                {
                    self.outcome = Some(Err(OpenFailure {
                        reason: CONTEXT_REFUSED_REASON.into(),
                    }));
                }
                Ok(Err(_)) | Err(_) => {
                    self.decryption_failed(&opening, DecryptionFailure::KonnektorUnavailable)
                }
            },
            State::AwaitingCertificate {
                opening,
                wanted,
                mut candidates,
            } => {
                let read = match body.as_deref().map(read_card_certificate::parse) {
                    Ok(r) => r,
                    Err(_) => {
                        return self
                            .decryption_failed(&opening, DecryptionFailure::KonnektorUnavailable);
                    }
                };
                let Some(card) = candidates.pop_front() else {
                    return self.decryption_failed(&opening, DecryptionFailure::KeyNotFound);
                };
                // A card without a readable C.ENC (refused, other card type) is no candidate.
                let matched = read.ok().and_then(|r| {
                    r.certificates
                        .iter()
                        .filter_map(|c| cert_id_of(&c.certificate))
                        .find(|id| wanted.0.contains(id))
                });
                match matched {
                    Some(id) => {
                        // Activity 4, A_2061.
                        if let Some(iccsn) = &card.iccsn {
                            cards.remember(&self.job.login.user, &id, iccsn, self.now);
                        }
                        self.try_card(opening, VecDeque::from([card]));
                    }
                    None if candidates.is_empty() => {
                        // A_2062: no present card holds a certificate named for the user.
                        self.decryption_failed(&opening, DecryptionFailure::KeyNotFound);
                    }
                    None => {
                        self.state = State::AwaitingCertificate {
                            opening,
                            wanted,
                            candidates,
                        };
                    }
                }
            }
            State::AwaitingDecryption { opening, mut cards } => {
                // The answer is the plaintext in base64: wiped when dropped (A_2005).
                let body = body.map(SecretBytes::from);
                match body.as_ref().map(|b| decrypt_document::parse(b.as_slice())) {
                    Ok(Ok(r)) => self.decrypted(opening, r.plaintext),
                    Ok(Err(e)) => {
                        cards.pop_front();
                        match failure_of(&e) {
                            DecryptionFailure::KeyNotFound if !cards.is_empty() => {
                                self.try_card(opening, cards);
                            }
                            f => self.decryption_failed(&opening, f),
                        }
                    }
                    Err(_) => {
                        self.decryption_failed(&opening, DecryptionFailure::KonnektorUnavailable)
                    }
                }
            }
            State::AwaitingPinStatus { opening, cards } => {
                match body.as_deref().map(get_pin_status::parse) {
                    Ok(Ok(r)) => match r.pin_status {
                        Some(PinStatus::Verified) => {
                            self.state = State::AwaitingDecryption { opening, cards };
                        }
                        Some(PinStatus::Verifiable) => {
                            self.state = State::AwaitingPinVerification { opening, cards };
                        }
                        // Blocked, transport or empty PIN: this card cannot be unlocked here.
                        _ => self.card_not_unlocked(opening, cards),
                    },
                    Ok(Err(_)) => self.card_not_unlocked(opening, cards),
                    Err(_) => {
                        self.decryption_failed(&opening, DecryptionFailure::KonnektorUnavailable)
                    }
                }
            }
            State::AwaitingPinVerification { opening, cards } => {
                match body.as_deref().map(verify_pin::parse) {
                    Ok(Ok(r)) if r.pin_result == PinResult::Ok => {
                        self.state = State::AwaitingDecryption { opening, cards };
                    }
                    Ok(_) => self.card_not_unlocked(opening, cards),
                    Err(_) => {
                        self.decryption_failed(&opening, DecryptionFailure::KonnektorUnavailable)
                    }
                }
            }
            State::AwaitingVerification(v) => {
                let verification = match body {
                    Ok(b) => verification_from(verify_document::parse(&b).as_ref()),
                    Err(e) => Verification::without_verdict(
                        NoVerdict::Unreachable,
                        format!("Konnektor nicht erreichbar: {e}"),
                    ),
                };
                if self.kas_enabled
                    && let Some(inner) = v.inner_mail()
                {
                    match kas::kas_content(&inner) {
                        Ok(None) => {}
                        Ok(Some(attachment)) => {
                            self.state = State::AwaitingKas {
                                verifying: v,
                                verification: Box::new(verification),
                                inner: SecretBytes::from(inner),
                                fetch: KasFetch {
                                    attachment,
                                    recipient: self.job.login.user.clone(),
                                },
                            };
                            return;
                        }
                        // A_19369-02: no unique, readable structure.
                        Err(e) => {
                            let replaced = kas_receive::replaced_body_mail(&inner, e);
                            let mail = v.finish_with_content(
                                &verification,
                                self.now,
                                self.options,
                                Some(&replaced),
                            );
                            self.deliver(SecretBytes::from(mail));
                            return;
                        }
                    }
                }
                let mail = v.finish(&verification, self.now, self.options);
                self.deliver(SecretBytes::from(mail));
            }
            other => self.state = other,
        }
    }

    /// The cards GetCards lists that may hold the user's key: every SM-B of the context and,
    /// when the login name carries a UserId (needed for HBA access, §3.4.2.2), the HBAs.
    fn candidates(&self, listed: &get_cards::GetCardsResponse) -> VecDeque<CardToTry> {
        let smbs = listed
            .cards
            .iter()
            .filter(|c| c.is_smb())
            .map(|c| CardToTry {
                handle: c.card_handle.clone(),
                pin_type: PIN_TYPE_SMC,
                iccsn: c.iccsn.clone(),
            });
        let hbas = listed
            .hbas()
            .filter(|_| self.context.user_id.is_some())
            .map(|c| CardToTry {
                handle: c.card_handle.clone(),
                pin_type: PIN_TYPE_CH,
                iccsn: c.iccsn.clone(),
            });
        smbs.chain(hbas).collect()
    }

    /// §3.8.4 activity 2 (A_2060): a cached card for one of the user's certificate IDs that
    /// GetCards still lists (same ICCSN).
    fn cached_card(
        &self,
        cards: &CardCache,
        wanted: &Wanted,
        candidates: &VecDeque<CardToTry>,
    ) -> Option<CardToTry> {
        wanted.0.iter().find_map(|id| {
            let iccsn = cards.lookup(&self.job.login.user, id, self.now)?;
            candidates
                .iter()
                .find(|c| c.iccsn.as_deref() == Some(iccsn))
                .cloned()
        })
    }

    /// The next card: with a CardService, its PIN status first (§3.8.4 activities 5 and 6);
    /// a Konnektor without CardService 8.1 is asked to decrypt directly.
    fn try_card(&mut self, opening: Opening, cards: VecDeque<CardToTry>) {
        self.state = if self.endpoints.card_service.is_some() {
            State::AwaitingPinStatus { opening, cards }
        } else {
            State::AwaitingDecryption { opening, cards }
        };
    }

    /// KOM-LE-A_2063: unlocking the card failed; another card of the user may still hold the
    /// key, else decryption is abandoned.
    fn card_not_unlocked(&mut self, opening: Opening, mut cards: VecDeque<CardToTry>) {
        cards.pop_front();
        if cards.is_empty() {
            self.decryption_failed(&opening, DecryptionFailure::CardNotUnlocked);
        } else {
            self.try_card(opening, cards);
        }
    }

    fn pin_request<'a>(&'a self, cards: &'a VecDeque<CardToTry>) -> PinRequest<'a> {
        let card = cards.front();
        PinRequest {
            context: &self.context,
            card_handle: card.map_or("", |c| c.handle.as_str()),
            pin_type: card.map_or(PIN_TYPE_SMC, |c| c.pin_type),
        }
    }

    fn decrypted(&mut self, opening: Opening, plaintext: Vec<u8>) {
        match opening.decrypted(plaintext, self.now, self.options) {
            Decrypted::Verify(v) => self.state = State::AwaitingVerification(Box::new(v)),
            Decrypted::Deliver(mail) => self.deliver(SecretBytes::from(mail)),
        }
    }

    /// A_2046/A_2047: the client gets an error mail with the encrypted original attached, so
    /// it can be forwarded to oneself once the card is present.
    fn decryption_failed(&mut self, opening: &Opening, failure: DecryptionFailure) {
        let mail = opening.failed(
            self.job.message.as_slice(),
            failure,
            &self.job.login.user,
            self.now,
        );
        self.deliver(SecretBytes::from(mail));
    }

    fn deliver(&mut self, message: SecretBytes) {
        self.outcome = Some(Ok(OpenedMessage { message }));
    }
}

/// The IssuerAndSerialNumber of a certificate, in the form recipient-emails carries it.
fn cert_id_of(der: &[u8]) -> Option<CertId> {
    use der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let tbs = &cert.tbs_certificate;
    Some(CertId {
        issuer: tbs.issuer.to_der().ok()?,
        serial: tbs.serial_number.to_der().ok()?,
    })
}

/// A_2047-02: Tab_Fehlertext_Entschl for the codes it covers, an `X` code for the rest.
fn failure_of(e: &KonnektorError) -> DecryptionFailure {
    match e.gematik_code() {
        Some(c) if KEY_NOT_USABLE.contains(&c) => DecryptionFailure::KeyNotFound,
        Some(c) if WRONG_FORMAT.contains(&c) => DecryptionFailure::WrongFormat,
        Some(c) => match u32::try_from(c) {
            Ok(c) => DecryptionFailure::KonnektorCode(c),
            Err(_) => DecryptionFailure::UnreadableAnswer,
        },
        None => DecryptionFailure::UnreadableAnswer,
    }
}
