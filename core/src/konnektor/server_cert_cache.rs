//! Cache of `VALID` verdicts on mail-server TLS certificates (A_22348), sans-IO: `now` comes in.
//!
//! A_22348 allows keeping a result "temporarily and tamper-proof", keyed by a unique identifier
//! such as the fingerprint, for at most the certificate's validity. So an entry is:
//! - keyed by the SHA-256 of the whole certificate DER the server presented: only that exact
//!   certificate finds it; a certificate differing in any byte (another key, another serial,
//!   a re-issued one with the same subject) is a miss and goes to the Konnektor;
//! - valid until `min(now + max_age, notAfter)`: the configured TTL (Tab_Konf_Param
//!   `TTL_ENC_CERT`, "gecachte ... Prüfergebnisse", 12 h by default) and never past notAfter;
//! - held in process memory only, never written anywhere (a file could be edited);
//! - only `VALID` verdicts are stored: `INCONCLUSIVE` is asked again next time, `INVALID`
//!   aborts anyway.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::time::{Duration, SystemTime};

use der::Decode;
use sha2::{Digest, Sha256};

/// SHA-256 of a certificate's DER.
pub type CertDigest = [u8; 32];

/// Computes the cache key of a certificate.
pub fn digest(der: &[u8]) -> CertDigest {
    Sha256::digest(der).into()
}

/// Why a `VALID` verdict was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotCached {
    /// The DER does not parse as an X.509 certificate, so notAfter is unknown.
    Unparsable,
    /// notAfter is already past (or the TTL is zero).
    AlreadyExpired,
}

/// The certificate's notAfter.
pub fn not_after(der: &[u8]) -> Result<SystemTime, NotCached> {
    let cert = x509_cert::Certificate::from_der(der).map_err(|_| NotCached::Unparsable)?;
    let d = cert.tbs_certificate.validity.not_after.to_unix_duration();
    Ok(SystemTime::UNIX_EPOCH + d)
}

/// The cache. Not shared by itself: the service holds it behind a lock.
#[derive(Debug)]
pub struct ServerCertCache {
    entries: HashMap<CertDigest, SystemTime>,
    max_age: Duration,
    capacity: NonZeroUsize,
}

impl ServerCertCache {
    /// `max_age` bounds every entry besides notAfter; `capacity` bounds the entries (mail
    /// servers are few; the bound only keeps a hostile peer from growing the map).
    pub fn new(max_age: Duration, capacity: NonZeroUsize) -> Self {
        ServerCertCache {
            entries: HashMap::new(),
            max_age,
            capacity,
        }
    }

    /// True when `der` was found `VALID` and the entry has not run out at `now`. An entry
    /// found run out is removed.
    pub fn is_valid(&mut self, der: &[u8], now: SystemTime) -> bool {
        let key = digest(der);
        match self.entries.get(&key) {
            Some(until) if now < *until => true,
            Some(_) => {
                self.entries.remove(&key);
                false
            }
            None => false,
        }
    }

    /// Stores a `VALID` verdict for `der`, until `min(now + max_age, notAfter)`; returns that
    /// time.
    pub fn store_valid(&mut self, der: &[u8], now: SystemTime) -> Result<SystemTime, NotCached> {
        let by_age = now.checked_add(self.max_age).unwrap_or(now);
        let until = not_after(der)?.min(by_age);
        if until <= now {
            return Err(NotCached::AlreadyExpired);
        }
        let key = digest(der);
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity.get() {
            self.entries.retain(|_, u| now < *u);
            if self.entries.len() >= self.capacity.get()
                && let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, u)| **u)
                    .map(|(k, _)| *k)
            {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(key, until);
        Ok(until)
    }

    /// Entries held (expired ones included until they are looked at).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_22348_unparsable_certificate_is_not_cached() {
        let mut c = ServerCertCache::new(Duration::from_secs(60), NonZeroUsize::MIN);
        assert_eq!(
            c.store_valid(b"not a certificate", SystemTime::UNIX_EPOCH),
            Err(NotCached::Unparsable)
        );
        assert!(c.is_empty());
    }

    #[test]
    fn a_22348_digest_differs_for_one_changed_byte() {
        let a = [1u8, 2, 3];
        let b = [1u8, 2, 4];
        assert_ne!(digest(&a), digest(&b));
    }
}
