//! How the protection pipeline reaches the certificate cache: briefly, only for the cache's
//! own small operations. A runtime shares one [`CertificateCache`] between sessions behind a
//! mutex ([`SharedCache`]); the pipeline locks it around a lookup or an insert and never while
//! it builds, encodes or parses a message, so a large message being signed on one thread does
//! not hold every other session's RCPT check (the issue-9 note). Tests pass the cache itself.

use std::sync::Mutex;

use super::CertificateCache;

/// Access to a [`CertificateCache`] for the length of one closure.
pub trait CacheAccess {
    /// Runs `f` with the cache (holding a lock, if any, only for `f`).
    fn with_cache<T>(&mut self, f: impl FnOnce(&mut CertificateCache) -> T) -> T;
}

impl CacheAccess for CertificateCache {
    fn with_cache<T>(&mut self, f: impl FnOnce(&mut CertificateCache) -> T) -> T {
        f(self)
    }
}

/// A cache shared between sessions. A poisoned lock is recovered: the entries are guarded by
/// their digests, not by the lock.
pub struct SharedCache<'a>(pub &'a Mutex<CertificateCache>);

impl CacheAccess for SharedCache<'_> {
    fn with_cache<T>(&mut self, f: impl FnOnce(&mut CertificateCache) -> T) -> T {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{CacheConfig, CacheLookup};
    use std::time::{Duration, SystemTime};

    #[test]
    fn shared_cache_reaches_the_same_entries_and_releases_the_lock() {
        let cache = Mutex::new(CertificateCache::new(CacheConfig {
            lifetime: Duration::from_secs(60),
            capacity: std::num::NonZeroUsize::MIN,
        }));
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        SharedCache(&cache).with_cache(|c| c.insert("a@b.de", vec![vec![1, 2, 3]], now));
        // The lock is free again: a second access (and a plain lock) succeed.
        assert!(cache.try_lock().is_ok());
        let hit =
            SharedCache(&cache).with_cache(|c| matches!(c.get("a@b.de", now), CacheLookup::Hit(_)));
        assert!(hit);
    }
}
