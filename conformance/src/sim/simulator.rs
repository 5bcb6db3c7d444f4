//! The simulated Konnektor as a plain library type: `handle(soap_action, body) -> SimResponse`.
//!
//! WHY independent of HTTP: unit tests and other harnesses call it directly; the HTTPS server
//! (`server.rs`) only adds transport, latency and the stall/drop behaviours the response asks for.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::config::{Card, Fault, Operation, PinState, SimConfig};
use super::error::SimError;
use super::precomputed::{self, AnswerMemo};
use super::soap_out::{self, NS_CRYPT_PREFIX, NS_SIG_PREFIX};
use super::xml::{self, Element};
use super::{ops_cards, ops_certificate, ops_encryption, ops_signature, sds};

/// What the transport should do with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseAction {
    /// Send status and body (after `delay`).
    Respond,
    /// Keep the connection open and never answer.
    Stall,
    /// Close the connection without answering.
    Drop,
}

/// An HTTP-level answer.
#[derive(Debug, Clone)]
pub struct SimResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Injected latency before answering.
    pub delay: Duration,
    pub action: ResponseAction,
}

const XML: &str = "text/xml; charset=UTF-8";

/// The call log keeps this many records (long benchmark runs must not grow it without bound).
const MAX_CALL_RECORDS: usize = 100_000;

/// One request the simulator parsed: which operation, on which card, for which user. Tests
/// check with it that a Clientmodul never used one user's card in another user's session
/// (KOM-LE-A_2045) and how often it asked for certificates (A_2060).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub operation: Operation,
    /// `CardHandle` of the request (the first one, e.g. in `PrivateKeyOnCard`).
    pub card_handle: Option<String>,
    /// `UserId` of the call context.
    pub user_id: Option<String>,
}

/// The simulator.
pub struct Simulator {
    config: SimConfig,
    job_counter: AtomicU32,
    pins: Mutex<HashMap<String, PinState>>,
    /// Present with `SimConfig::precomputed_answers`.
    memo: Option<AnswerMemo>,
    /// Crypto operations actually computed (SignDocument, EncryptDocument, DecryptDocument,
    /// VerifyDocument), whether they succeeded or not; answers from the memo do not count.
    crypto_operations: AtomicU64,
    calls: Mutex<Vec<CallRecord>>,
}

impl Simulator {
    pub fn new(config: SimConfig) -> Self {
        let pins = config
            .cards
            .iter()
            .map(|c| (c.handle.clone(), c.pin))
            .collect();
        let memo = config
            .precomputed_answers
            .then(|| AnswerMemo::new(precomputed::MAX_STORED_BYTES));
        Simulator {
            config,
            job_counter: AtomicU32::new(0),
            pins: Mutex::new(pins),
            memo,
            crypto_operations: AtomicU64::new(0),
            calls: Mutex::new(Vec::new()),
        }
    }

    /// How many crypto operations were computed (not answered from the memo).
    pub fn crypto_operations(&self) -> u64 {
        self.crypto_operations.load(Ordering::Relaxed)
    }

    /// Every request parsed so far, in order (memo answers of the precomputed mode excluded).
    pub fn call_log(&self) -> Vec<CallRecord> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The memo of the precomputed mode, if it is on.
    pub fn memo(&self) -> Option<&AnswerMemo> {
        self.memo.as_ref()
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The simulator's notion of "now" in Unix seconds (fixed or clock + offset).
    pub fn now_unix(&self) -> u64 {
        if let Some(fixed) = self.config.now_unix {
            return fixed;
        }
        let sys = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        sys.saturating_add_signed(self.config.clock_offset_secs)
    }

    pub(crate) fn card(&self, handle: &str) -> Result<&Card, SimError> {
        self.config
            .cards
            .iter()
            .find(|c| c.handle == handle)
            .ok_or_else(|| SimError::UnknownCard(handle.to_string()))
    }

    pub(crate) fn pin_state(&self, handle: &str) -> PinState {
        self.pins
            .lock()
            .ok()
            .and_then(|p| p.get(handle).copied())
            .unwrap_or(PinState::Verified)
    }

    pub(crate) fn set_pin_state(&self, handle: &str, state: PinState) {
        if let Ok(mut p) = self.pins.lock() {
            p.insert(handle.to_string(), state);
        }
    }

    /// `[A-Z]{3}-[0-9]{3}` (SignatureService JobNumber pattern), counting up.
    pub(crate) fn next_job_number(&self) -> String {
        let n = self.job_counter.fetch_add(1, Ordering::Relaxed) % 1000;
        format!("SIM-{n:03}")
    }

    fn base_response(&self, op: Operation, status: u16, body: Vec<u8>) -> SimResponse {
        SimResponse {
            status,
            content_type: XML,
            body,
            delay: self.config.latency.get(&op).copied().unwrap_or_default(),
            action: ResponseAction::Respond,
        }
    }

    /// Applies an injected fault for `op`, if one is configured.
    fn injected(&self, op: Operation) -> Option<SimResponse> {
        let fault = self.config.faults.get(&op)?;
        let mut resp = self.base_response(op, 500, Vec::new());
        match fault {
            Fault::SoapFault { code, text } => {
                resp.body =
                    soap_out::fault(*code, text, &soap_out::xs_date_time(self.now_unix()), false);
            }
            Fault::Stall => resp.action = ResponseAction::Stall,
            Fault::Drop => resp.action = ResponseAction::Drop,
        }
        Some(resp)
    }

    fn error_response(&self, op: Option<Operation>, e: &SimError, client: bool) -> SimResponse {
        let body = soap_out::fault(
            e.code(),
            &e.to_string(),
            &soap_out::xs_date_time(self.now_unix()),
            client,
        );
        match op {
            Some(op) => self.base_response(op, 500, body),
            None => SimResponse {
                status: 500,
                content_type: XML,
                body,
                delay: Duration::ZERO,
                action: ResponseAction::Respond,
            },
        }
    }

    /// Answers an HTTP GET: `/connector.sds` (ServiceDirectory), else 404. `base_url` is the
    /// server's own `https://host:port` so the endpoints point back at it.
    pub fn handle_get(&self, path: &str, base_url: &str) -> SimResponse {
        if path.trim_end_matches('/').ends_with("connector.sds") {
            if let Some(r) = self.injected(Operation::ServiceDirectory) {
                return r;
            }
            let body = sds::connector_sds(&self.config.versions, base_url).into_bytes();
            return self.base_response(Operation::ServiceDirectory, 200, body);
        }
        SimResponse {
            status: 404,
            content_type: "text/plain",
            body: b"not found".to_vec(),
            delay: Duration::ZERO,
            action: ResponseAction::Respond,
        }
    }

    /// Answers a SOAP POST. The operation is taken from the payload element (namespace and local
    /// name); a SOAPAction whose `#fragment` names another operation is rejected. In the
    /// precomputed mode a repeated crypto request is answered from the memo, without parsing.
    pub fn handle(&self, soap_action: &str, body: &[u8]) -> SimResponse {
        let Some(memo) = &self.memo else {
            return self.compute(soap_action, body).1;
        };
        let key = precomputed::request_key(soap_action, body);
        if let Some(stored) = memo.get(&key) {
            // Faults and latency configured for the operation still apply.
            if let Some(r) = self.injected(stored.op) {
                return r;
            }
            return self.base_response(stored.op, 200, stored.body);
        }
        let (op, response) = self.compute(soap_action, body);
        if let Some(op) = op
            && response.status == 200
            && response.action == ResponseAction::Respond
        {
            memo.put(key, op, &response.body);
        }
        response
    }

    /// Parses and answers a request; also returns the operation once it is known.
    fn compute(&self, soap_action: &str, body: &[u8]) -> (Option<Operation>, SimResponse) {
        let payload = match xml::parse(body).and_then(xml::soap_payload) {
            Ok(p) => p,
            Err(e) => return (None, self.error_response(None, &e, true)),
        };
        let op = match self.operation_of(&payload) {
            Ok(op) => op,
            Err(e) => return (None, self.error_response(None, &e, true)),
        };
        if let Ok(mut calls) = self.calls.lock()
            && calls.len() < MAX_CALL_RECORDS
        {
            calls.push(CallRecord {
                operation: op,
                card_handle: payload
                    .find_local("CardHandle")
                    .map(|e| e.text().to_owned()),
                user_id: payload.find_local("UserId").map(|e| e.text().to_owned()),
            });
        }
        (Some(op), self.answer(op, soap_action, &payload))
    }

    fn answer(&self, op: Operation, soap_action: &str, payload: &Element) -> SimResponse {
        let action = soap_action.trim().trim_matches('"');
        if let Some((_, frag)) = action.rsplit_once('#')
            && frag != op.request_name()
        {
            let e = SimError::BadRequest(format!("SOAPAction {action} does not match payload"));
            return self.error_response(Some(op), &e, true);
        }
        if let Some(r) = self.injected(op) {
            return r;
        }
        if precomputed::is_memoized(op) {
            self.crypto_operations.fetch_add(1, Ordering::Relaxed);
        }
        let result = match op {
            Operation::GetCards => ops_cards::get_cards(self, payload),
            Operation::ReadCardCertificate => ops_cards::read_card_certificate(self, payload),
            Operation::GetPinStatus => ops_cards::get_pin_status(self, payload),
            Operation::VerifyPin => ops_cards::verify_pin(self, payload),
            Operation::GetJobNumber => ops_signature::get_job_number(self, payload),
            Operation::SignDocument => ops_signature::sign_document(self, payload),
            Operation::VerifyDocument => ops_signature::verify_document(self, payload),
            Operation::EncryptDocument => ops_encryption::encrypt_document(self, payload),
            Operation::DecryptDocument => ops_encryption::decrypt_document(self, payload),
            Operation::VerifyCertificate => ops_certificate::verify_certificate(self, payload),
            Operation::ServiceDirectory => Err(SimError::BadRequest("use GET".into())),
        };
        match result {
            Ok(xml) => self.base_response(op, 200, soap_out::envelope(&xml)),
            Err(e) => {
                let client = matches!(e, SimError::BadRequest(_));
                self.error_response(Some(op), &e, client)
            }
        }
    }

    /// Maps the payload element to an operation, checking its service namespace against the
    /// versions this Konnektor offers.
    fn operation_of(&self, payload: &Element) -> Result<Operation, SimError> {
        let op = Operation::from_request_name(&payload.name)
            .ok_or_else(|| SimError::BadRequest(format!("unknown operation {}", payload.name)))?;
        let v = &self.config.versions;
        let expected = match op {
            Operation::GetCards => soap_out::NS_EVT.to_string(),
            Operation::ReadCardCertificate | Operation::VerifyCertificate => {
                soap_out::NS_CERT.to_string()
            }
            Operation::GetPinStatus | Operation::VerifyPin => soap_out::NS_CARD.to_string(),
            Operation::GetJobNumber | Operation::SignDocument | Operation::VerifyDocument => {
                soap_out::service_ns(NS_SIG_PREFIX, &v.signature)
            }
            Operation::EncryptDocument | Operation::DecryptDocument => {
                // EncryptionService 6.x requests all use the v6.1 namespace (the only schema).
                format!("{NS_CRYPT_PREFIX}1")
            }
            Operation::ServiceDirectory => String::new(),
        };
        if payload.ns != expected {
            return Err(SimError::BadRequest(format!(
                "{} in namespace {} (this Konnektor offers {expected})",
                payload.name, payload.ns
            )));
        }
        Ok(op)
    }
}

/// Decodes base64 element text, ignoring whitespace (line-wrapped base64 is common).
pub(crate) fn b64(el: &Element) -> Result<Vec<u8>, SimError> {
    let compact: String = el.text.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| SimError::BadRequest(format!("base64 in {}: {e}", el.name)))
}

pub(crate) fn b64_encode(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// The text of the first descendant with local name `name`, or a BadRequest naming it.
pub(crate) fn required<'a>(el: &'a Element, name: &str) -> Result<&'a Element, SimError> {
    el.find_local(name)
        .ok_or_else(|| SimError::BadRequest(format!("{name} missing")))
}
