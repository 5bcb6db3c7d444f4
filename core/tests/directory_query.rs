//! The LDAP query and entry parsing (KOM-LE-A_2023) and the cache (KOM-LE-A_2026).

use std::time::{Duration, SystemTime};

use komle_core::directory::{
    CacheConfig, CacheLookup, CertificateCache, DirectoryEntry, DirectoryQuery, RetryDecision,
    RetryGuard, escape_filter_value,
};
use proptest::prelude::*;

#[test]
fn a_2023_query_filters_on_mail_and_asks_for_binary_certificates() {
    let q = DirectoryQuery::for_address("dc=data,dc=vzd", "praxis@komle.test");
    assert_eq!(q.base_dn, "dc=data,dc=vzd");
    assert_eq!(q.filter, "(mail=praxis@komle.test)");
    assert!(q.attributes.iter().any(|a| a == "userCertificate;binary"));
    assert!(q.attributes.iter().any(|a| a == "komLeData"));
}

#[test]
fn rfc4515_metacharacters_are_escaped() {
    assert_eq!(
        escape_filter_value("a*b(c)d\\e\0f"),
        "a\\2ab\\28c\\29d\\5ce\\00f"
    );
    assert_eq!(escape_filter_value("*"), "\\2a");
    assert_eq!(escape_filter_value("müller@x.de"), "m\\c3\\bcller@x.de");
}

proptest! {
    #[test]
    fn escaped_value_is_printable_ascii_without_metacharacters(s in ".*") {
        let e = escape_filter_value(&s);
        prop_assert!(e.bytes().all(|b| (0x20..=0x7e).contains(&b)));
        prop_assert!(!e.contains('*') && !e.contains('(') && !e.contains(')'));
        // every backslash starts an escape of two hex digits, so the filter stays one value
        let b = e.as_bytes();
        let mut i = 0;
        let mut decoded = Vec::new();
        while i < b.len() {
            if b[i] == b'\\' {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                decoded.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                decoded.push(b[i]);
                i += 1;
            }
        }
        prop_assert_eq!(decoded, s.as_bytes().to_vec());
    }
}

#[test]
fn entry_accepts_certificate_attribute_with_and_without_binary_option() {
    let e = DirectoryEntry::from_attributes(
        "uid=x,dc=data,dc=vzd",
        vec![
            ("userCertificate;binary", vec![vec![1u8]]),
            ("USERCERTIFICATE", vec![vec![2u8]]),
            ("mail", vec![b"x@komle.test".to_vec()]),
            ("komLeData", vec![b"1.5+,x@komle.test".to_vec()]),
            ("cn", vec![b"ignored".to_vec()]),
            ("mail", vec![vec![0xff, 0xfe]]),
        ],
    );
    assert_eq!(e.certificates, vec![vec![1u8], vec![2u8]]);
    assert_eq!(e.mail, vec!["x@komle.test".to_string()]);
    assert_eq!(e.kom_le_data, vec!["1.5+,x@komle.test".to_string()]);
    assert_eq!(e.dn, "uid=x,dc=data,dc=vzd");
}

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn a_2026_cache_hit_miss_and_expiry() {
    let mut c = CertificateCache::new(CacheConfig {
        lifetime: Duration::from_secs(100),
        ..CacheConfig::default()
    });
    assert_eq!(c.get("a@x.de", t(0)), CacheLookup::Miss);
    c.insert("a@x.de", vec![vec![1], vec![2]], t(0));
    assert_eq!(
        c.get("A@X.de", t(99)),
        CacheLookup::Hit(vec![vec![1], vec![2]])
    );
    assert_eq!(c.get("a@x.de", t(100)), CacheLookup::Miss);
    let s = c.stats();
    assert_eq!((s.hits, s.misses, s.expired), (1, 2, 1));
    assert!(c.is_empty());
}

#[test]
fn a_2026_default_lifetime_is_12_hours() {
    assert_eq!(CacheConfig::default().lifetime, Duration::from_secs(43_200));
    let mut c = CertificateCache::new(CacheConfig::default());
    c.insert("a@x.de", vec![vec![1]], t(0));
    assert!(matches!(c.get("a@x.de", t(43_199)), CacheLookup::Hit(_)));
    assert_eq!(c.get("a@x.de", t(43_200)), CacheLookup::Miss);
}

#[test]
fn a_2026_capacity_evicts_least_recently_used() {
    let mut c = CertificateCache::new(CacheConfig {
        capacity: std::num::NonZeroUsize::new(2).unwrap(),
        ..CacheConfig::default()
    });
    c.insert("a@x.de", vec![vec![1]], t(0));
    c.insert("b@x.de", vec![vec![2]], t(0));
    assert!(matches!(c.get("a@x.de", t(1)), CacheLookup::Hit(_)));
    c.insert("c@x.de", vec![vec![3]], t(1));
    assert_eq!(c.get("b@x.de", t(2)), CacheLookup::Miss);
    assert!(matches!(c.get("a@x.de", t(2)), CacheLookup::Hit(_)));
    assert_eq!(c.len(), 2);
}

#[test]
fn empty_certificate_list_is_not_cached() {
    let mut c = CertificateCache::new(CacheConfig::default());
    c.insert("a@x.de", vec![], t(0));
    assert_eq!(c.get("a@x.de", t(1)), CacheLookup::Miss);
}

#[test]
fn abb8_rejected_cached_certificate_triggers_one_fresh_lookup() {
    let mut c = CertificateCache::new(CacheConfig::default());
    c.insert("a@x.de", vec![vec![1]], t(0));
    c.insert("b@x.de", vec![vec![2]], t(0));
    let mut guard = RetryGuard::new();
    assert_eq!(
        guard.on_rejected(&mut c, &[vec![1]]),
        RetryDecision::LookUpReplacements(vec!["a@x.de".into()])
    );
    assert_eq!(c.get("a@x.de", t(1)), CacheLookup::Miss);
    assert!(matches!(c.get("b@x.de", t(1)), CacheLookup::Hit(_)));
    // The fresh lookup returned the same (revoked) certificate; the second rejection is final.
    c.insert("a@x.de", vec![vec![1]], t(1));
    assert_eq!(guard.on_rejected(&mut c, &[vec![1]]), RetryDecision::GiveUp);
    assert_eq!(c.stats().invalidated, 2);
}

#[test]
fn abb8_rejection_of_uncached_certificate_gives_up_at_once() {
    let mut c = CertificateCache::new(CacheConfig::default());
    c.insert("a@x.de", vec![vec![1]], t(0));
    let mut guard = RetryGuard::new();
    assert_eq!(guard.on_rejected(&mut c, &[vec![9]]), RetryDecision::GiveUp);
    assert!(matches!(c.get("a@x.de", t(1)), CacheLookup::Hit(_)));
}
