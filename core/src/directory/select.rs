//! Which certificates of one address the message is encrypted for (KOM-LE-A_2022, A_17472,
//! KOM-LE-A_2178).

use std::time::SystemTime;

use super::entry::DirectoryEntry;
use super::inspect::{InspectedCertificate, KeyAlgorithm, SkipReason, inspect};

/// The verdict for one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Encrypt for all of these (KOM-LE-A_2022: every valid encryption certificate, so the old
    /// and the new card of a recipient can both decrypt).
    Usable(Vec<InspectedCertificate>),
    /// Nothing usable: the address is treated as not encryptable (KOM-LE-A_2024).
    NoValidCertificate,
    /// The valid encryption certificates name different Telematik-IDs: the message must not be
    /// sent to this address (KOM-LE-A_2178) and the sender is told (KOM-LE-A_2192).
    ConflictingTelematikIds(Vec<String>),
}

/// A certificate that was left out, by its position in the input, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedCertificate {
    pub index: usize,
    pub reason: SkipReason,
}

/// The verdict plus what was skipped and why (for the log; carries no personal data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub selection: Selection,
    pub skipped: Vec<SkippedCertificate>,
}

/// Selects the certificates for one address from its DER certificates.
///
/// Order of the rules: unreadable, expired, not-yet-valid, non-encryption certificates are
/// dropped first; the Telematik-ID rule (KOM-LE-A_2178) is then applied to all remaining
/// certificates *including* ECC ones a non-ECC Konnektor cannot use, because they still belong
/// to the recipient and a conflict means the address is ambiguous; only then are ECC
/// certificates dropped when the Konnektor is not ECC capable (A_17472). Certificates without a
/// Telematik-ID do not take part in the conflict check. Duplicate DERs count once.
pub fn select(certificates: &[Vec<u8>], now: SystemTime, konnektor_ecc_capable: bool) -> Selected {
    let mut skipped = Vec::new();
    let mut valid: Vec<(usize, InspectedCertificate)> = Vec::new();
    for (index, der) in certificates.iter().enumerate() {
        if certificates[..index].contains(der) {
            continue;
        }
        match inspect(der).and_then(|c| c.usable_for_encryption_at(now).map(|()| c)) {
            Ok(cert) => valid.push((index, cert)),
            Err(reason) => skipped.push(SkippedCertificate { index, reason }),
        }
    }

    let mut ids: Vec<String> = valid
        .iter()
        .filter_map(|(_, c)| c.telematik_id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    if ids.len() > 1 {
        return Selected {
            selection: Selection::ConflictingTelematikIds(ids),
            skipped,
        };
    }

    let mut usable = Vec::new();
    for (index, cert) in valid {
        if cert.key_algorithm == KeyAlgorithm::EccBrainpoolP256r1 && !konnektor_ecc_capable {
            skipped.push(SkippedCertificate {
                index,
                reason: SkipReason::EccNotSupportedByKonnektor,
            });
        } else {
            usable.push(cert);
        }
    }
    skipped.sort_by_key(|s| s.index);
    let selection = if usable.is_empty() {
        Selection::NoValidCertificate
    } else {
        Selection::Usable(usable)
    };
    Selected { selection, skipped }
}

/// [`select`] over every certificate of every entry the directory returned for one address
/// (an address may appear in several entries; skipped indices count across all entries in order).
pub fn select_from_entries(
    entries: &[DirectoryEntry],
    now: SystemTime,
    konnektor_ecc_capable: bool,
) -> Selected {
    let all: Vec<Vec<u8>> = entries
        .iter()
        .flat_map(|e| e.certificates.iter().cloned())
        .collect();
    select(&all, now, konnektor_ecc_capable)
}
