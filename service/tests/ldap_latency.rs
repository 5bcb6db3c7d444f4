//! Lookup latency, cold (LDAP every time, kept connection) vs. cached (KOM-LE-A_2026): medians
//! of many lookups in one run, printed as figures and as a ratio. Run with
//! `cargo test -p komle-service --test ldap_latency -- --nocapture` to see the numbers.

use std::time::{Duration, Instant, SystemTime};

use komle_conformance::pki::TestPki;
use komle_conformance::slapd::Slapd;
use komle_core::directory::{
    CacheConfig, CacheLookup, CertificateCache, Selection, select, select_from_entries,
};
use komle_service::ldap::{DirectoryClient, LdapSettings};

const ROUNDS: usize = 200;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn a_2026_cached_lookup_is_faster_than_directory_lookup() {
    let now = SystemTime::now();
    let pki = TestPki::generate(now).expect("pki");
    let slapd = Slapd::start_with_pki(&pki, false).expect("slapd");
    let client =
        DirectoryClient::new(LdapSettings::new(slapd.url(), slapd.base_dn())).expect("client");
    let addr = "oldnew@komle.test";

    // Warm-up: connect once, so "cold" measures a lookup, not the TCP handshake.
    client.lookup_blocking(addr).expect("warm-up");

    let mut cold = Vec::with_capacity(ROUNDS);
    let mut used = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let entries = smol::block_on(client.lookup(addr)).expect("lookup");
        let sel = select_from_entries(&entries, now, false).selection;
        cold.push(t.elapsed());
        let Selection::Usable(c) = sel else {
            panic!("expected usable")
        };
        used = c.into_iter().map(|c| c.der).collect();
    }

    let mut cache = CertificateCache::new(CacheConfig::default());
    cache.insert(addr, used, now);
    let mut cached = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let CacheLookup::Hit(c) = cache.get(addr, now) else {
            panic!("expected hit")
        };
        let sel = select(&c, now, false).selection;
        cached.push(t.elapsed());
        assert!(matches!(sel, Selection::Usable(ref v) if v.len() == 2));
    }

    let mut get_only = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let hit = cache.get(addr, now);
        get_only.push(t.elapsed());
        assert!(matches!(hit, CacheLookup::Hit(_)));
    }
    println!(
        "cache.get alone (digest check included): median {:?}",
        median(get_only)
    );

    let (cold, cached) = (median(cold), median(cached));
    let ratio = cold.as_secs_f64() / cached.as_secs_f64().max(1e-9);
    println!(
        "lookup latency over {ROUNDS} lookups, 2 certificates: cold (LDAP + select) median {:?}, \
         cached (cache + select) median {:?}, ratio {ratio:.1}x",
        cold, cached
    );
    assert!(
        cached < cold,
        "cache must beat the directory: {cached:?} vs {cold:?}"
    );
}
