//! Cache first, directory second (gemSpec_CM_KOMLE 3.2.4.1.1 step 1, Abbildung 8): the glue
//! between [`CertificateCache`], the LDAP lookup done by the runtime, and [`select`].

use std::time::SystemTime;

use super::cache::{CacheLookup, CertificateCache};
use super::entry::DirectoryEntry;
use super::select::{Selected, Selection, select, select_from_entries};

/// Outcome of the cache pass over the addresses of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePass {
    /// Addresses answered from the cache, with their verdict at `now`.
    pub resolved: Vec<(String, Selected)>,
    /// Addresses the runtime must look up in the directory, then pass to [`resolve_from_directory`].
    pub need_lookup: Vec<String>,
}

/// Answers what the cache can. A cached entry whose certificates no longer select as usable
/// (e.g. expired meanwhile) is evicted and looked up again rather than failing the address.
pub fn resolve_from_cache(
    cache: &mut CertificateCache,
    addresses: &[String],
    now: SystemTime,
    konnektor_ecc_capable: bool,
) -> CachePass {
    let mut pass = CachePass {
        resolved: Vec::new(),
        need_lookup: Vec::new(),
    };
    for address in addresses {
        match cache.get(address, now) {
            CacheLookup::Hit(certs) => {
                let selected = select(&certs, now, konnektor_ecc_capable);
                if matches!(selected.selection, Selection::Usable(_)) {
                    pass.resolved.push((address.clone(), selected));
                } else {
                    cache.invalidate(&certs);
                    pass.need_lookup.push(address.clone());
                }
            }
            CacheLookup::Miss => pass.need_lookup.push(address.clone()),
        }
    }
    pass
}

/// Selects from fresh directory entries and caches the result (KOM-LE-A_2026).
///
/// What is cached is every valid encryption certificate *including* ECC ones, so a cache
/// filled while the Konnektor was not ECC capable still serves ECC certificates once it is
/// (A_17472 is applied on every use, not when filling). Conflicting Telematik-IDs and addresses
/// without usable certificates are not cached.
pub fn resolve_from_directory(
    cache: &mut CertificateCache,
    address: &str,
    entries: &[DirectoryEntry],
    now: SystemTime,
    konnektor_ecc_capable: bool,
) -> Selected {
    let all = select_from_entries(entries, now, true);
    if let Selection::Usable(certs) = &all.selection {
        cache.insert(address, certs.iter().map(|c| c.der.clone()).collect(), now);
    }
    if konnektor_ecc_capable {
        all
    } else {
        select_from_entries(entries, now, false)
    }
}
