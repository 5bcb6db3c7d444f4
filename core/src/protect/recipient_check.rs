//! The RCPT check of KOM-LE-A_2176: does the recipient have at least one usable encryption
//! certificate? Cache first (A_2026), the directory on a miss (A_2023).

use std::time::SystemTime;

use crate::directory::{CacheLookup, CertificateCache, DirectoryEntry, Selection, select};
use crate::smtp::RecipientVerdict;

/// The verdict for a selection of certificates.
pub fn verdict(selection: &Selection) -> RecipientVerdict {
    match selection {
        Selection::Usable(_) => RecipientVerdict::Usable,
        Selection::NoValidCertificate => RecipientVerdict::NoValidCertificate,
        Selection::ConflictingTelematikIds(_) => RecipientVerdict::ConflictingTelematikIds,
    }
}

/// Answers from the cache, or `None` when the directory must be asked.
pub fn check_cached(
    cache: &mut CertificateCache,
    address: &str,
    now: SystemTime,
    konnektor_ecc_capable: bool,
) -> Option<RecipientVerdict> {
    match cache.get(address, now) {
        CacheLookup::Hit(certs) => Some(verdict(
            &select(&certs, now, konnektor_ecc_capable).selection,
        )),
        CacheLookup::Miss => None,
    }
}

/// Answers from what the directory returned, and caches usable certificates. Unusable ones
/// are not cached, so a certificate published later is seen at the next attempt.
pub fn check_looked_up(
    cache: &mut CertificateCache,
    address: &str,
    entries: &[DirectoryEntry],
    now: SystemTime,
    konnektor_ecc_capable: bool,
) -> RecipientVerdict {
    let certs: Vec<Vec<u8>> = entries
        .iter()
        .flat_map(|e| e.certificates.iter().cloned())
        .collect();
    let selected = select(&certs, now, konnektor_ecc_capable);
    let v = verdict(&selected.selection);
    if v == RecipientVerdict::Usable {
        cache.insert(address, certs, now);
    }
    v
}
