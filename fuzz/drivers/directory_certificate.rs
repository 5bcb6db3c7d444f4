//! Certificate inspection and selection on directory data (A_17464, A_2030 ff.): the VZD is
//! outside our control, so any bytes as certificates or attributes must give a verdict, not a
//! panic. Input: `name\0value\0name\0value…`; every value is also tried as a certificate.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use komle_core::directory::{DirectoryEntry, Selection, inspect, select, select_from_entries};

/// One fuzz input; shared by the fuzz target and `core/tests/fuzz_regressions.rs`.
pub fn run(data: &[u8]) {
    let Some((&clock, rest)) = data.split_first() else {
        return;
    };
    // A moment between 1970 and ~2100, chosen by the input, to reach validity edges.
    let now = UNIX_EPOCH + Duration::from_secs(u64::from(clock) * 16_000_000);
    if let Ok(c) = inspect(rest) {
        let _ = c.validity_at(now);
        let _ = c.usable_for_encryption_at(now);
        let _ = c.usable_for_encryption_at(SystemTime::UNIX_EPOCH);
        let _ = c.is_encryption_type();
    }
    let mut fields = rest.split(|b| *b == 0);
    let mut attrs: Vec<(&str, Vec<Vec<u8>>)> = Vec::new();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        attrs.push((
            std::str::from_utf8(name).unwrap_or("userCertificate;binary"),
            vec![value.to_vec()],
        ));
    }
    let certs: Vec<Vec<u8>> = attrs.iter().flat_map(|(_, v)| v.iter().cloned()).collect();
    let entry = DirectoryEntry::from_attributes("cn=x", attrs.iter().map(|(n, v)| (*n, v.clone())));
    assert!(entry.certificates.len() <= certs.len());
    for ecc in [false, true] {
        let sel = select(&certs, now, ecc);
        assert!(sel.skipped.windows(2).all(|w| w[0].index < w[1].index));
        assert!(sel.skipped.iter().all(|s| s.index < certs.len()));
        match &sel.selection {
            Selection::Usable(c) => assert!(!c.is_empty()),
            Selection::ConflictingTelematikIds(ids) => assert!(ids.len() > 1),
            Selection::NoValidCertificate => {}
        }
        let _ = select_from_entries(std::slice::from_ref(&entry), now, ecc);
    }
}
