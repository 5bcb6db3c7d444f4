//! The Clientmodul's cache of which card holds the key for an address (gemSpec_CM_KOMLE §3.8.4
//! activity 2, KOM-LE-A_2060, KOM-LE-A_2061): (e-mail address, certificate ID) → ICCSN.
//!
//! WHY: finding the card without the cache costs one ReadCardCertificate per inserted card and
//! message; with it, GetCards alone confirms that the remembered card is still present. Entries
//! live for `TTL_EMAIL_ICCSN` (Tab_Konf_Param: 30 days) counted in the pipeline's `now` (Unix
//! seconds), so the cache stays sans-IO and tests move time by passing another `now`.
//!
//! Process memory only, like the certificate cache. `Debug` shows counts, never addresses.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::time::Duration;

/// Tab_Konf_Param `TTL_EMAIL_ICCSN`: 30 days.
pub const TTL_EMAIL_ICCSN: Duration = Duration::from_secs(30 * 24 * 3600);

/// Entries kept at most; a practice has a handful of cards and addresses, so this bound is
/// only a guard against unbounded growth.
pub const DEFAULT_CAPACITY: usize = 1024;

/// A certificate ID as the recipient-emails attribute names it: IssuerAndSerialNumber, as the
/// DER of the issuer's Name and the DER of the serial INTEGER (both with tag and length).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CertId {
    pub issuer: Vec<u8>,
    pub serial: Vec<u8>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    /// Lower-cased: addresses compare case-insensitively (as in recipient-emails matching).
    address: String,
    cert: CertId,
}

#[derive(Clone)]
struct Entry {
    iccsn: String,
    stored_at: i64,
}

/// (address, certificate ID) → ICCSN with a time to live.
#[derive(Clone)]
pub struct CardCache {
    ttl_secs: i64,
    capacity: NonZeroUsize,
    entries: HashMap<Key, Entry>,
}

impl Default for CardCache {
    /// `TTL_EMAIL_ICCSN` and [`DEFAULT_CAPACITY`].
    fn default() -> Self {
        Self::new(
            TTL_EMAIL_ICCSN,
            NonZeroUsize::new(DEFAULT_CAPACITY).unwrap_or(NonZeroUsize::MIN),
        )
    }
}

impl core::fmt::Debug for CardCache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CardCache")
            .field("ttl_secs", &self.ttl_secs)
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl CardCache {
    pub fn new(ttl: Duration, capacity: NonZeroUsize) -> Self {
        Self {
            ttl_secs: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
            capacity,
            entries: HashMap::new(),
        }
    }

    /// How many entries are held (expired ones included until they are replaced or pruned).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The ICCSN remembered for `address` and `cert`, if stored less than the TTL before `now`.
    /// An entry from the future (the clock went back) counts as expired: it is looked up anew.
    pub fn lookup(&self, address: &str, cert: &CertId, now: i64) -> Option<&str> {
        let e = self.entries.get(&key(address, cert))?;
        let age = now.checked_sub(e.stored_at)?;
        (0..self.ttl_secs)
            .contains(&age)
            .then_some(e.iccsn.as_str())
    }

    /// KOM-LE-A_2061: remembers that the card `iccsn` holds the key of `cert` for `address`.
    pub fn remember(&mut self, address: &str, cert: &CertId, iccsn: &str, now: i64) {
        let k = key(address, cert);
        if !self.entries.contains_key(&k) && self.entries.len() >= self.capacity.get() {
            let ttl = self.ttl_secs;
            self.entries.retain(|_, e| {
                now.checked_sub(e.stored_at)
                    .is_some_and(|a| (0..ttl).contains(&a))
            });
            if self.entries.len() >= self.capacity.get()
                && let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.stored_at)
                    .map(|(k, _)| k.clone())
            {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(
            k,
            Entry {
                iccsn: iccsn.to_owned(),
                stored_at: now,
            },
        );
    }
}

fn key(address: &str, cert: &CertId) -> Key {
    Key {
        address: address.to_ascii_lowercase(),
        cert: cert.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> CertId {
        CertId {
            issuer: vec![0x30, 0x00],
            serial: vec![0x02, 0x01, n],
        }
    }

    #[test]
    fn a_2061_entry_is_found_within_the_ttl_and_not_after_it() {
        let mut c = CardCache::new(Duration::from_secs(100), NonZeroUsize::new(4).unwrap());
        c.remember("Arzt@Praxis.test", &id(1), "8027", 1_000);
        assert_eq!(c.lookup("arzt@praxis.test", &id(1), 1_099), Some("8027"));
        assert_eq!(c.lookup("arzt@praxis.test", &id(1), 1_100), None);
        assert_eq!(
            c.lookup("arzt@praxis.test", &id(1), 999),
            None,
            "clock went back"
        );
        assert_eq!(c.lookup("other@praxis.test", &id(1), 1_050), None);
        assert_eq!(c.lookup("arzt@praxis.test", &id(2), 1_050), None);
    }

    #[test]
    fn capacity_bounds_the_cache_expired_and_then_oldest_go_first() {
        let mut c = CardCache::new(Duration::from_secs(100), NonZeroUsize::new(2).unwrap());
        c.remember("a@x", &id(1), "1", 0);
        c.remember("b@x", &id(2), "2", 50);
        c.remember("c@x", &id(3), "3", 120); // a@x expired at 100
        assert_eq!(c.len(), 2);
        assert_eq!(c.lookup("b@x", &id(2), 120), Some("2"));
        c.remember("d@x", &id(4), "4", 130); // nothing expired: the oldest (b@x) goes
        assert_eq!(c.len(), 2);
        assert_eq!(c.lookup("b@x", &id(2), 130), None);
        assert_eq!(c.lookup("c@x", &id(3), 130), Some("3"));
        assert!(
            !format!("{c:?}").contains("c@x"),
            "Debug shows no addresses"
        );
    }
}
