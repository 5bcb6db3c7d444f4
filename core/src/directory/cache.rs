//! The encryption-certificate cache (KOM-LE-A_2026) and the retry rule of the send activity
//! (gemSpec_CM_KOMLE 3.2.4.1.1, Abbildung 8).
//!
//! Tamper protection: the cache lives in process memory only (never written to disk), and each
//! entry is bound to a SHA-256 digest over its address, certificates and expiry that is checked
//! on every use. An entry whose digest no longer matches is evicted and counts as a miss, so a
//! corrupted or swapped entry can at worst cost one directory lookup, never encrypt a message
//! for a wrong key.

use std::num::NonZeroUsize;
use std::time::{Duration, SystemTime};

use lru::LruCache;
use sha2::{Digest, Sha256};

use super::inspect::unix_seconds;
use super::kom_le_version::KomLeVersion;

/// Cache settings; the lifetime is configurable per KOM-LE-A_2026 (Tab_Konf_Param default 12 h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    pub lifetime: Duration,
    pub capacity: NonZeroUsize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            lifetime: Duration::from_secs(12 * 60 * 60),
            capacity: NonZeroUsize::new(4096).unwrap_or(NonZeroUsize::MIN),
        }
    }
}

/// Result of a cache lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLookup {
    /// The certificates cached for the address (DER), still to be re-checked against `now`.
    Hit(Vec<Vec<u8>>),
    Miss,
}

/// Counters for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    /// All misses, including the expired and tampered ones.
    pub misses: u64,
    pub expired: u64,
    pub tampered: u64,
    /// Entries evicted because the Konnektor rejected one of their certificates.
    pub invalidated: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    certificates: Vec<Vec<u8>>,
    expires_at: u64,
    digest: [u8; 32],
}

/// Longest time a KOM-LE version from the directory is reused (A_22340: at most 24 hours).
pub const KOM_LE_VERSION_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Per-address cache of the certificates used for encryption. `now` is always passed in.
#[derive(Debug)]
pub struct CertificateCache {
    entries: LruCache<String, Entry>,
    /// The KOM-LE version the directory stated with the certificates (A_22340), and until
    /// when (Unix seconds). It only chooses the `X-KOM-LE-Version` header, so a tampered value
    /// cannot redirect a message: no digest.
    versions: LruCache<String, (KomLeVersion, u64)>,
    lifetime: Duration,
    stats: CacheStats,
}

/// Addresses are looked up case-insensitively (the VZD's `mail` attribute matches that way).
fn key(address: &str) -> String {
    address.to_lowercase()
}

fn digest(key: &str, certificates: &[Vec<u8>], expires_at: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    // Length prefixes keep the encoding unambiguous (no two inputs share a byte stream).
    h.update((key.len() as u64).to_be_bytes());
    h.update(key.as_bytes());
    h.update((certificates.len() as u64).to_be_bytes());
    for c in certificates {
        h.update((c.len() as u64).to_be_bytes());
        h.update(c);
    }
    h.update(expires_at.to_be_bytes());
    h.finalize().into()
}

impl CertificateCache {
    pub fn new(config: CacheConfig) -> Self {
        CertificateCache {
            entries: LruCache::new(config.capacity),
            versions: LruCache::new(config.capacity),
            lifetime: config.lifetime,
            stats: CacheStats::default(),
        }
    }

    /// Looks up `address` at `now`. Expired and tampered entries are evicted and count as misses.
    pub fn get(&mut self, address: &str, now: SystemTime) -> CacheLookup {
        let k = key(address);
        let now = unix_seconds(now);
        let verdict = match self.entries.get(&k) {
            None => None,
            Some(e) if e.digest != digest(&k, &e.certificates, e.expires_at) => Some(Err(true)),
            Some(e) if now >= e.expires_at => Some(Err(false)),
            Some(e) => Some(Ok(e.certificates.clone())),
        };
        match verdict {
            Some(Ok(certs)) => {
                self.stats.hits += 1;
                CacheLookup::Hit(certs)
            }
            Some(Err(tampered)) => {
                self.entries.pop(&k);
                if tampered {
                    self.stats.tampered += 1;
                } else {
                    self.stats.expired += 1;
                }
                self.stats.misses += 1;
                CacheLookup::Miss
            }
            None => {
                self.stats.misses += 1;
                CacheLookup::Miss
            }
        }
    }

    /// Caches the certificates used for `address` from `now` for the configured lifetime.
    /// Cache only what was selected for encryption; an empty list is not cached (a person
    /// without a certificate is looked up again next time, they may have got one).
    pub fn insert(&mut self, address: &str, certificates: Vec<Vec<u8>>, now: SystemTime) {
        let k = key(address);
        if certificates.is_empty() {
            self.entries.pop(&k);
            return;
        }
        let expires_at = unix_seconds(now).saturating_add(self.lifetime.as_secs());
        let digest = digest(&k, &certificates, expires_at);
        self.entries.put(
            k,
            Entry {
                certificates,
                expires_at,
                digest,
            },
        );
    }

    /// Remembers the KOM-LE version the directory states for `address` (A_22340), for the
    /// certificate lifetime but at most [`KOM_LE_VERSION_TTL`].
    pub fn insert_kom_le_version(&mut self, address: &str, version: KomLeVersion, now: SystemTime) {
        let ttl = self.lifetime.min(KOM_LE_VERSION_TTL).as_secs();
        let expires_at = unix_seconds(now).saturating_add(ttl);
        self.versions.put(key(address), (version, expires_at));
    }

    /// The remembered KOM-LE version of `address`, if still fresh at `now`.
    pub fn kom_le_version(&mut self, address: &str, now: SystemTime) -> Option<KomLeVersion> {
        let now = unix_seconds(now);
        match self.versions.get(&key(address)) {
            Some((v, expires_at)) if now < *expires_at => Some(*v),
            _ => None,
        }
    }

    /// Evicts every entry that holds one of `rejected` (DER certificates the Konnektor refused)
    /// and returns their addresses (lower-case): exactly the addresses whose certificates came
    /// from the cache and must be looked up afresh.
    pub fn invalidate(&mut self, rejected: &[Vec<u8>]) -> Vec<String> {
        let hit: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.certificates.iter().any(|c| rejected.contains(c)))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &hit {
            self.entries.pop(k);
        }
        self.stats.invalidated += hit.len() as u64;
        hit
    }

    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[cfg(test)]
    fn tamper(&mut self, address: &str, f: impl FnOnce(&mut Vec<Vec<u8>>, &mut u64)) {
        if let Some(e) = self.entries.peek_mut(&key(address)) {
            f(&mut e.certificates, &mut e.expires_at);
        }
    }
}

/// What to do after the Konnektor aborted encryption because of invalid certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryDecision {
    /// Some rejected certificates came from the cache: look these addresses up in the directory
    /// again (their cache entries are gone) and encrypt once more.
    LookUpReplacements(Vec<String>),
    /// None of the rejected certificates was cached, or the one retry was already spent: remove
    /// the affected recipients and inform the sender (KOM-LE-A_2024).
    GiveUp,
}

/// The retry rule of Abbildung 8 for one message: replacements are looked up once, then the
/// encryption is retried; a second rejection is final.
#[derive(Debug, Default)]
pub struct RetryGuard {
    retried: bool,
}

impl RetryGuard {
    pub fn new() -> Self {
        Self::default()
    }

    /// Call when the Konnektor rejected `rejected` (or, when it does not say which, all the
    /// certificates of the attempt).
    pub fn on_rejected(
        &mut self,
        cache: &mut CertificateCache,
        rejected: &[Vec<u8>],
    ) -> RetryDecision {
        let addresses = cache.invalidate(rejected);
        if self.retried || addresses.is_empty() {
            return RetryDecision::GiveUp;
        }
        self.retried = true;
        RetryDecision::LookUpReplacements(addresses)
    }
}

#[cfg(test)]
mod version_tests {
    use super::*;

    #[test]
    fn a_22340_kom_le_version_is_cached_at_most_24_hours_and_case_insensitively() {
        let mut c = CertificateCache::new(CacheConfig {
            lifetime: Duration::from_secs(48 * 3600),
            capacity: NonZeroUsize::new(4).unwrap(),
        });
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        c.insert_kom_le_version("A@kim.test", KomLeVersion::V1_5, t0);
        let hour = |h: u64| t0 + Duration::from_secs(h * 3600);
        assert_eq!(
            c.kom_le_version("a@KIM.test", hour(23)),
            Some(KomLeVersion::V1_5)
        );
        assert_eq!(c.kom_le_version("a@kim.test", hour(24)), None);
        assert_eq!(c.kom_le_version("b@kim.test", t0), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn cache() -> CertificateCache {
        CertificateCache::new(CacheConfig::default())
    }

    #[test]
    fn a_2026_tampered_certificate_is_evicted_and_counts_as_miss() {
        let mut c = cache();
        c.insert("a@x.de", vec![vec![1, 2, 3]], t(1000));
        c.tamper("a@x.de", |certs, _| certs[0][0] = 9);
        assert_eq!(c.get("a@x.de", t(1001)), CacheLookup::Miss);
        assert_eq!(c.stats().tampered, 1);
        assert_eq!(c.stats().misses, 1);
        assert!(c.is_empty());
    }

    #[test]
    fn a_2026_extended_expiry_is_detected_as_tampering() {
        let mut c = cache();
        c.insert("a@x.de", vec![vec![1]], t(1000));
        c.tamper("a@x.de", |_, exp| *exp += 1_000_000);
        assert_eq!(c.get("a@x.de", t(1001)), CacheLookup::Miss);
        assert_eq!(c.stats().tampered, 1);
    }

    #[test]
    fn a_2026_added_certificate_is_detected_as_tampering() {
        let mut c = cache();
        c.insert("a@x.de", vec![vec![1]], t(1000));
        c.tamper("a@x.de", |certs, _| certs.push(vec![6, 6, 6]));
        assert_eq!(c.get("a@x.de", t(1001)), CacheLookup::Miss);
        assert_eq!(c.stats().tampered, 1);
    }
}
