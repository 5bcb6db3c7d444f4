//! "Precomputed" (zero-cost) Konnektor for benchmarks: the answers of the four crypto
//! operations (SignDocument, EncryptDocument, DecryptDocument, VerifyDocument) are remembered
//! by a digest of the request, so once a request has been answered, the same request again is
//! answered with the stored bytes and no cryptography at all.
//!
//! WHY: the daemon benchmarks (BENCHMARKS.md section 2, issue 9) compare komle-cm against
//! sending straight to the MTA. A real Konnektor's cost (RSA-PSS over 25 MB, AES-GCM, card
//! access) is not the Clientmodul's, but the simulator pays it in the same process on the
//! same cores. With this mode, after one warm-up pass per distinct mail, the simulator only
//! reads the HTTP request, hashes it, looks it up and writes the stored answer. What is NOT
//! excluded, on purpose: the SOAP exchange over HTTPS (building and parsing ~1.37x base64
//! bodies, TLS both ways) — that is the Clientmodul's own cost with any Konnektor.
//!
//! What the key covers, and why it hits honestly: the SHA-256 of the SOAPAction and the whole
//! request body, except the text of `JobNumber` elements. Between two sends of the same mail
//! through komle-cm, the only part of these requests that changes is the SignDocument
//! JobNumber (fresh from GetJobNumber each time; it does not influence the answer). The sign
//! input is the mail as the client sent it (komle-cm adds no Date, Message-ID or trace
//! header), the signed-attribute list of recipient addresses is the same, and the
//! EncryptDocument request then carries the stored — hence identical — signature. Any other
//! difference (card, recipients, certificates, attributes, one byte of the document) misses
//! and is computed for real. Consequences to keep in mind: a hit repeats the stored answer's
//! signingTime / verification time, and card state changed since (a PIN blocked later) is not
//! consulted; fine for a benchmark, wrong for a validity or fault test. Injected faults and
//! latency of the operation still apply on a hit.
//!
//! Only successful (200) answers are stored, and only up to [`MAX_STORED_BYTES`] in all, so a
//! long-running demo with ever-new mails cannot grow without bound (beyond the cap it simply
//! computes again).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::config::Operation;

/// Upper bound of the stored answer bytes (a 25 MB mail's Sign + Encrypt answers are ~80 MB).
pub const MAX_STORED_BYTES: usize = 512 * 1024 * 1024;

/// The operations whose answers are remembered: those that do cryptography.
pub fn is_memoized(op: Operation) -> bool {
    matches!(
        op,
        Operation::SignDocument
            | Operation::EncryptDocument
            | Operation::DecryptDocument
            | Operation::VerifyDocument
    )
}

/// A stored answer.
#[derive(Debug, Clone)]
pub struct StoredAnswer {
    pub op: Operation,
    pub body: Vec<u8>,
}

/// Remembered answers by request digest, with hit/miss counters.
#[derive(Debug)]
pub struct AnswerMemo {
    /// The answers and the sum of their sizes.
    answers: Mutex<(HashMap<[u8; 32], StoredAnswer>, usize)>,
    max_bytes: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl AnswerMemo {
    /// A memo storing at most `max_bytes` of answers ([`MAX_STORED_BYTES`] in the simulator).
    pub fn new(max_bytes: usize) -> Self {
        AnswerMemo {
            answers: Mutex::new((HashMap::new(), 0)),
            max_bytes,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The stored answer for this request, if any (counts a hit or a miss).
    pub fn get(&self, key: &[u8; 32]) -> Option<StoredAnswer> {
        let found = self.answers.lock().ok().and_then(|a| a.0.get(key).cloned());
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Remembers a successful answer of a crypto operation (others are ignored).
    pub fn put(&self, key: [u8; 32], op: Operation, body: &[u8]) {
        if !is_memoized(op) {
            return;
        }
        if let Ok(mut a) = self.answers.lock() {
            let (map, stored) = &mut *a;
            if *stored + body.len() > self.max_bytes || map.contains_key(&key) {
                return;
            }
            *stored += body.len();
            map.insert(
                key,
                StoredAnswer {
                    op,
                    body: body.to_vec(),
                },
            );
        }
    }

    /// Requests answered from the memo.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Requests looked up but not found (computed, then stored if they were crypto).
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

/// The memo key of a request: SHA-256 over the SOAPAction and the body with the text of every
/// `…JobNumber>` element left out (see the module doc for why exactly that).
pub fn request_key(soap_action: &str, body: &[u8]) -> [u8; 32] {
    const TAG_END: &[u8] = b"JobNumber>";
    let mut h = Sha256::new();
    h.update((soap_action.len() as u64).to_be_bytes());
    h.update(soap_action.as_bytes());
    let mut rest = body;
    while let Some(pos) = memchr::memmem::find(rest, TAG_END) {
        let after_tag = pos + TAG_END.len();
        h.update(&rest[..after_tag]);
        // Skip the element text: everything up to the next markup. After a closing tag this is
        // whitespace at most, so leaving it out changes nothing that matters.
        let text_len = memchr::memchr(b'<', &rest[after_tag..]).unwrap_or(rest.len() - after_tag);
        rest = &rest[after_tag + text_len..];
    }
    h.update(rest);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_number_does_not_change_the_key_but_the_document_does() {
        let req = |job: &str, doc: &str| {
            format!(
                "<S:Envelope><S:Body><SIG:SignDocument><SIG:JobNumber>{job}</SIG:JobNumber>\
<SIG:SignRequest><dss:Base64Data>{doc}</dss:Base64Data></SIG:SignRequest></SIG:SignDocument>\
</S:Body></S:Envelope>"
            )
        };
        let a = request_key("x#SignDocument", req("SIM-001", "QUJD").as_bytes());
        assert_eq!(
            a,
            request_key("x#SignDocument", req("ABC-999", "QUJD").as_bytes())
        );
        assert_ne!(
            a,
            request_key("x#SignDocument", req("SIM-001", "QUJE").as_bytes())
        );
        assert_ne!(a, request_key("x#Other", req("SIM-001", "QUJD").as_bytes()));
        // A body without any JobNumber is hashed whole.
        assert_ne!(request_key("", b"abc"), request_key("", b"abd"));
    }

    #[test]
    fn only_crypto_answers_are_stored_and_the_size_is_capped() {
        let memo = AnswerMemo::new(10);
        memo.put([1; 32], Operation::GetJobNumber, b"job");
        assert!(memo.get(&[1; 32]).is_none());
        memo.put([2; 32], Operation::SignDocument, b"signed");
        assert_eq!(memo.get(&[2; 32]).unwrap().body, b"signed");
        memo.put([3; 32], Operation::SignDocument, b"too long");
        assert!(memo.get(&[3; 32]).is_none());
        assert_eq!((memo.hits(), memo.misses()), (1, 2));
    }
}
