//! After the Konnektor refused EncryptDocument (gemSpec_CM_KOMLE V1.0 Abbildung 8, V1.16
//! Abbildung 9): find the refused certificates, look cached ones up once more, drop the
//! addresses left without a certificate (A_2024, A_2028), then sign and encrypt again.
//!
//! The Konnektor checks every recipient certificate (TUC_KON_037) and aborts the whole call
//! when one fails, without saying which. So each certificate of the attempt is offered alone,
//! with a small fixed document: the same check, no message content, one call per certificate,
//! and only after a refusal.

use std::collections::VecDeque;

use super::{Protection, State, konnektor_failure};
use crate::directory::CacheAccess;
use crate::konnektor::KonnektorCall;
use crate::konnektor::{KonnektorError, encrypt_document};
use crate::smime::recipient_emails;
use crate::smime::send_plan::Lookup;

/// The document of a probe: not the message (which must not reach the Konnektor again for
/// a mere certificate check), just enough for EncryptDocument to run its certificate checks.
const PROBE_DOCUMENT: &[u8] = b"KOM-LE Clientmodul: Pruefung des Verschluesselungszertifikats\r\n";

/// The certificate-by-certificate check after a refused EncryptDocument.
#[derive(Debug)]
pub(super) struct Probe {
    /// The refusal, as the 451 text should it come to that.
    refusal: String,
    /// (address, certificate) still to offer; the front one is being asked.
    queue: VecDeque<(String, Vec<u8>)>,
    /// Certificates the Konnektor refused on their own.
    refused: Vec<Vec<u8>>,
}

impl Protection {
    /// EncryptDocument was refused. A refusal with a gematik code may be about certificates
    /// (revoked, no path to a trust anchor): probe each one. Anything else (an unreadable
    /// answer) ends the attempt with 451.
    pub(super) fn encryption_refused(&mut self, e: &KonnektorError) {
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

    /// The EncryptDocument request for the certificate at the front of the queue: the same
    /// shape as the real one (one certificate, its recipient-emails value), a fixed document.
    pub(super) fn probe_call(&self, probe: &Probe) -> KonnektorCall {
        let (address, cert) = probe
            .queue
            .front()
            .map_or(("", &[][..]), |(a, c)| (a.as_str(), c.as_slice()));
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

    /// The answer to a probe; only whether it was refused matters, the ciphertext is dropped.
    pub(super) fn probe_answer<C: CacheAccess + ?Sized>(
        &mut self,
        cache: &mut C,
        mut probe: Probe,
        body: &[u8],
    ) {
        if let Some((_, cert)) = probe.queue.pop_front()
            && encrypt_document::parse(body).is_err()
        {
            probe.refused.push(cert);
        }
        if probe.queue.is_empty() {
            self.probed(cache, probe);
        } else {
            self.state = State::Probing(probe);
        }
    }

    /// Every certificate was offered alone. An address whose refused certificate came from
    /// the cache is looked up in the directory once more (its cache entry is evicted);
    /// otherwise the refused certificates are no longer used, and an address left without any
    /// is removed from the message and named in the notice. Then the message is signed again
    /// (the signed recipient-emails must equal the new unprotected ones) and encrypted again.
    fn probed<C: CacheAccess + ?Sized>(&mut self, cache: &mut C, probe: Probe) {
        if probe.refused.is_empty() {
            // Each certificate alone is fine: the refusal was not about certificates.
            self.fail(&probe.refusal);
            return;
        }
        cache.with_cache(|c| c.invalidate(&probe.refused));
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
}
