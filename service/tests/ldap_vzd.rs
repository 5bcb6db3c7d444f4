//! The LDAP client against a real OpenLDAP slapd serving the test PKI, through the core's
//! selection rules: the lookup path of the send side (KOM-LE-A_2023, A_2022, A_17472, A_2178,
//! KOM-LE-A_2026).

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use komle_conformance::pki::TestPki;
use komle_conformance::slapd::{ADMIN_DN, ADMIN_PASSWORD, Slapd, SlapdConfig, TlsFiles};
use komle_core::directory::{
    CacheConfig, CacheLookup, CertificateCache, KeyAlgorithm, RetryDecision, RetryGuard, Selection,
    select, select_from_entries,
};
use komle_service::ldap::{DirectoryClient, LdapError, LdapSettings};

fn pki() -> &'static (TestPki, SystemTime) {
    static PKI: OnceLock<(TestPki, SystemTime)> = OnceLock::new();
    PKI.get_or_init(|| {
        let now = SystemTime::now();
        (TestPki::generate(now).expect("pki"), now)
    })
}

fn fixture() -> (Slapd, DirectoryClient) {
    let slapd = Slapd::start_with_pki(&pki().0, false).expect("slapd");
    let client =
        DirectoryClient::new(LdapSettings::new(slapd.url(), slapd.base_dn())).expect("client");
    (slapd, client)
}

fn selection(client: &DirectoryClient, address: &str, ecc: bool) -> Selection {
    let entries = smol::block_on(client.lookup(address)).expect("lookup");
    select_from_entries(&entries, pki().1, ecc).selection
}

fn usable_ders(s: Selection) -> Vec<Vec<u8>> {
    match s {
        Selection::Usable(c) => c.into_iter().map(|c| c.der).collect(),
        other => panic!("expected usable certificates, got {other:?}"),
    }
}

#[test]
fn a_2023_one_address_one_certificate() {
    let (_s, client) = fixture();
    let got = usable_ders(selection(&client, "single@komle.test", false));
    assert_eq!(got, vec![pki().0.single.enc[0].cert_der.clone()]);
}

#[test]
fn a_2023_lookup_is_case_insensitive_on_the_address() {
    let (_s, client) = fixture();
    let got = usable_ders(selection(&client, "Single@KOMLE.test", false));
    assert_eq!(got.len(), 1);
}

#[test]
fn a_2022_old_and_new_card_are_both_used() {
    let (_s, client) = fixture();
    let mut got = usable_ders(selection(&client, "oldnew@komle.test", false));
    let mut want: Vec<Vec<u8>> = pki()
        .0
        .old_and_new_card
        .enc
        .iter()
        .map(|k| k.cert_der.clone())
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn expired_certificate_leaves_no_valid_certificate() {
    let (_s, client) = fixture();
    assert_eq!(
        selection(&client, "expired@komle.test", true),
        Selection::NoValidCertificate
    );
}

#[test]
fn a_17472_ecc_certificate_only_with_ecc_capable_konnektor() {
    let (_s, client) = fixture();
    let algs = |ecc| match selection(&client, "eccrsa@komle.test", ecc) {
        Selection::Usable(c) => c.into_iter().map(|c| c.key_algorithm).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(algs(false), vec![KeyAlgorithm::Rsa]);
    let mut both = algs(true);
    both.sort_by_key(|a| *a == KeyAlgorithm::EccBrainpoolP256r1);
    assert_eq!(
        both,
        vec![KeyAlgorithm::Rsa, KeyAlgorithm::EccBrainpoolP256r1]
    );
}

#[test]
fn a_2178_two_telematik_ids_are_not_sent_to() {
    let (_s, client) = fixture();
    assert_eq!(
        selection(&client, "conflict@komle.test", true),
        Selection::ConflictingTelematikIds(vec![
            "1-CONFLICT-0006".into(),
            "1-CONFLICT-0007".into()
        ])
    );
}

#[test]
fn person_without_certificate_and_unknown_address() {
    let (_s, client) = fixture();
    let entries = smol::block_on(client.lookup("nocert@komle.test")).expect("lookup");
    assert_eq!(entries.len(), 1);
    assert!(entries[0].certificates.is_empty());
    assert_eq!(
        selection(&client, "nocert@komle.test", true),
        Selection::NoValidCertificate
    );
    let entries = smol::block_on(client.lookup("nobody@komle.test")).expect("lookup");
    assert!(entries.is_empty());
}

#[test]
fn entry_carries_dn_mail_and_kom_le_data() {
    let (_s, client) = fixture();
    let entries = smol::block_on(client.lookup("single@komle.test")).expect("lookup");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].dn, "uid=single,dc=data,dc=vzd");
    assert_eq!(entries[0].mail, vec!["single@komle.test".to_string()]);
    assert_eq!(
        entries[0].kom_le_data,
        vec!["1.0,single@komle.test".to_string()]
    );
}

#[test]
fn filter_metacharacters_match_only_the_literal_address() {
    let (_s, client) = fixture();
    let entries = smol::block_on(client.lookup("star*(paren)@komle.test")).expect("lookup");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].mail, vec!["star*(paren)@komle.test".to_string()]);
    assert_eq!(
        usable_ders(selection(&client, "star*(paren)@komle.test", false)).len(),
        1
    );
    // Unescaped, each of these would match other people's entries (or break the filter).
    for probe in [
        "*",
        "*@komle.test",
        "s*",
        "star*",
        "*)(mail=*",
        "single@komle.test)(|(mail=*",
    ] {
        let entries = smol::block_on(client.lookup(probe)).expect("lookup");
        assert!(
            entries.is_empty(),
            "{probe:?} matched {} entries",
            entries.len()
        );
    }
}

#[test]
fn directory_down_is_unreachable_not_empty() {
    let (mut slapd, client) = fixture();
    assert_eq!(
        smol::block_on(client.lookup("single@komle.test"))
            .expect("up")
            .len(),
        1
    );
    slapd.stop();
    // The kept connection is dead and reconnecting fails: a distinct error, never "no entries".
    let err = smol::block_on(client.lookup("single@komle.test")).expect_err("down");
    assert!(matches!(err, LdapError::Unreachable(_)), "{err:?}");
    // A fresh client to the dead port fails the same way.
    let fresh =
        DirectoryClient::new(LdapSettings::new(slapd.url(), slapd.base_dn())).expect("client");
    assert!(matches!(
        fresh.lookup_blocking("single@komle.test"),
        Err(LdapError::Unreachable(_))
    ));
}

#[test]
fn connect_timeout_to_a_blackhole_is_unreachable() {
    // A listener that never answers the LDAP protocol: the operation timeout must fire.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("ldap://{}", listener.local_addr().expect("addr"));
    let mut settings = LdapSettings::new(&url, "dc=data,dc=vzd");
    settings.timeout = Duration::from_millis(300);
    let client = DirectoryClient::new(settings).expect("client");
    let t = std::time::Instant::now();
    assert!(matches!(
        client.lookup_blocking("a@b.de"),
        Err(LdapError::Unreachable(_))
    ));
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn ldaps_with_the_right_ca_works_and_with_another_ca_is_unreachable() {
    let (pki, _) = pki();
    let slapd = Slapd::start_with_pki(pki, true).expect("slapd");
    let url = slapd.ldaps_url().expect("ldaps");
    let mut settings = LdapSettings::new(url, slapd.base_dn());
    settings.ca_pem = Some(pki.ca.cert_pem().into_bytes());
    let client = DirectoryClient::new(settings.clone()).expect("client");
    assert_eq!(
        client
            .lookup_blocking("single@komle.test")
            .expect("ldaps")
            .len(),
        1
    );

    settings.ca_pem = Some(pki.single.enc[0].cert_pem().into_bytes());
    let wrong = DirectoryClient::new(settings).expect("client");
    assert!(matches!(
        wrong.lookup_blocking("single@komle.test"),
        Err(LdapError::Unreachable(_))
    ));
}

#[test]
fn bad_settings_are_config_errors() {
    assert!(matches!(
        DirectoryClient::new(LdapSettings::new("http://x", "dc=x")),
        Err(LdapError::Config(_))
    ));
    let mut s = LdapSettings::new("ldaps://127.0.0.1:1", "dc=x");
    s.ca_pem = Some(b"not pem".to_vec());
    assert!(matches!(DirectoryClient::new(s), Err(LdapError::Config(_))));
}

#[test]
fn bind_with_credentials_and_wrong_password() {
    let (pki, now) = pki();
    let slapd = Slapd::start(SlapdConfig {
        ldif: pki.ldif(true),
        tls: None::<TlsFiles>,
        kom_le_schema: true,
        require_bind: true,
    })
    .expect("slapd");
    let anon =
        DirectoryClient::new(LdapSettings::new(slapd.url(), slapd.base_dn())).expect("client");
    // Anonymous reads are refused: an LDAP error, not an empty (= "no certificate") answer.
    assert!(matches!(
        anon.lookup_blocking("single@komle.test"),
        Err(LdapError::Directory { rc: 50, .. })
    ));

    let mut settings = LdapSettings::new(slapd.url(), slapd.base_dn());
    settings.bind = Some((ADMIN_DN.into(), ADMIN_PASSWORD.into()));
    let bound = DirectoryClient::new(settings.clone()).expect("client");
    let entries = bound
        .lookup_blocking("single@komle.test")
        .expect("bound search");
    assert!(matches!(
        select_from_entries(&entries, *now, false).selection,
        Selection::Usable(_)
    ));

    settings.bind = Some((ADMIN_DN.into(), "wrong".into()));
    let wrong = DirectoryClient::new(settings).expect("client");
    assert_eq!(
        wrong.lookup_blocking("single@komle.test"),
        Err(LdapError::BindFailed(49))
    );
    // The password never appears in the settings' Debug output.
    let mut s = LdapSettings::new(slapd.url(), slapd.base_dn());
    s.bind = Some((ADMIN_DN.into(), ADMIN_PASSWORD.into()));
    assert!(!format!("{s:?}").contains(ADMIN_PASSWORD));
}

#[test]
fn size_limit_exceeded_is_a_distinct_error() {
    let ldif = "dn: dc=data,dc=vzd\nobjectClass: dcObject\nobjectClass: organization\ndc: data\no: x\n\n\
        dn: uid=a,dc=data,dc=vzd\nobjectClass: inetOrgPerson\nuid: a\ncn: a\nsn: a\nmail: dup@komle.test\n\n\
        dn: uid=b,dc=data,dc=vzd\nobjectClass: inetOrgPerson\nuid: b\ncn: b\nsn: b\nmail: dup@komle.test\n\n";
    let slapd = Slapd::start(SlapdConfig {
        ldif: ldif.into(),
        ..Default::default()
    })
    .expect("slapd");
    let mut settings = LdapSettings::new(slapd.url(), slapd.base_dn());
    settings.size_limit = 1;
    let client = DirectoryClient::new(settings.clone()).expect("client");
    assert_eq!(
        client.lookup_blocking("dup@komle.test"),
        Err(LdapError::TooManyResults)
    );
    settings.size_limit = 2;
    let client = DirectoryClient::new(settings).expect("client");
    assert_eq!(
        client.lookup_blocking("dup@komle.test").expect("two").len(),
        2
    );
}

#[test]
fn connection_is_reused_across_concurrent_lookups() {
    let (_s, client) = fixture();
    let addrs = [
        "single@komle.test",
        "oldnew@komle.test",
        "eccrsa@komle.test",
        "expired@komle.test",
    ];
    let counts = smol::block_on(async {
        let tasks: Vec<_> = addrs
            .iter()
            .map(|a| {
                let c = client.clone();
                let a = a.to_string();
                smol::spawn(async move { c.lookup(&a).await.map(|e| e[0].certificates.len()) })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("lookup"));
        }
        out
    });
    assert_eq!(counts, vec![1, 2, 2, 1]);
}

#[test]
fn a_2026_cache_hit_serves_without_directory_and_expires() {
    let (mut slapd, client) = fixture();
    let now = pki().1;
    let mut cache = CertificateCache::new(CacheConfig::default());
    let addr = "oldnew@komle.test";
    assert_eq!(cache.get(addr, now), CacheLookup::Miss);
    let entries = client.lookup_blocking(addr).expect("lookup");
    let used = usable_ders(select_from_entries(&entries, now, false).selection);
    cache.insert(addr, used.clone(), now);

    slapd.stop();
    let later = now + Duration::from_secs(3600);
    let CacheLookup::Hit(cached) = cache.get(addr, later) else {
        panic!("expected a hit")
    };
    assert_eq!(cached, used);
    // The cached certificates still go through the selection rules at the time of use.
    assert_eq!(
        usable_ders(select(&cached, later, false).selection).len(),
        2
    );

    let after_ttl = now + Duration::from_secs(12 * 3600);
    assert_eq!(cache.get(addr, after_ttl), CacheLookup::Miss);
    assert!(matches!(
        client.lookup_blocking(addr),
        Err(LdapError::Unreachable(_))
    ));
    let s = cache.stats();
    assert_eq!((s.hits, s.misses, s.expired), (1, 2, 1));
}

#[test]
fn abb8_revoked_cached_certificate_is_looked_up_once_more_then_given_up() {
    // Revocation is checked by the Konnektor, not locally: the revoked certificate passes the
    // local rules, gets cached, and is rejected at EncryptDocument (simulated here by serial).
    let (_s, client) = fixture();
    let (pki, now) = pki();
    let revoked_der = pki.revoked.enc[0].cert_der.clone();
    let konnektor_rejects = |certs: &[Vec<u8>]| -> Vec<Vec<u8>> {
        certs
            .iter()
            .filter(|c| **c == revoked_der)
            .cloned()
            .collect()
    };
    let mut cache = CertificateCache::new(CacheConfig::default());
    let addr = "revoked@komle.test";
    let lookup_and_cache = |cache: &mut CertificateCache| {
        let entries = client.lookup_blocking(addr).expect("lookup");
        let used = usable_ders(select_from_entries(&entries, *now, false).selection);
        cache.insert(addr, used.clone(), *now);
        used
    };
    lookup_and_cache(&mut cache);

    // Next message: served from the cache, rejected by the Konnektor.
    let CacheLookup::Hit(used) = cache.get(addr, *now) else {
        panic!("expected a hit")
    };
    let mut guard = RetryGuard::new();
    let rejected = konnektor_rejects(&used);
    assert_eq!(rejected.len(), 1);
    assert_eq!(
        guard.on_rejected(&mut cache, &rejected),
        RetryDecision::LookUpReplacements(vec![addr.to_string()])
    );
    // The replacement lookup finds the same certificate; the retry is rejected again: final.
    let used = lookup_and_cache(&mut cache);
    assert_eq!(
        guard.on_rejected(&mut cache, &konnektor_rejects(&used)),
        RetryDecision::GiveUp
    );
    assert_eq!(cache.get(addr, *now), CacheLookup::Miss);
}

#[test]
fn a_2026_cache_first_then_directory_and_ecc_survives_in_the_cache() {
    use komle_core::directory::{resolve_from_cache, resolve_from_directory};
    let (_s, client) = fixture();
    let now = pki().1;
    let mut cache = CertificateCache::new(CacheConfig::default());
    let addrs: Vec<String> = [
        "eccrsa@komle.test",
        "conflict@komle.test",
        "nobody@komle.test",
    ]
    .map(String::from)
    .into();

    let pass = resolve_from_cache(&mut cache, &addrs, now, false);
    assert!(pass.resolved.is_empty());
    assert_eq!(pass.need_lookup, addrs);
    for a in &pass.need_lookup {
        let entries = client.lookup_blocking(a).expect("lookup");
        let got = resolve_from_directory(&mut cache, a, &entries, now, false);
        match a.as_str() {
            "eccrsa@komle.test" => assert_eq!(usable_ders(got.selection).len(), 1),
            "conflict@komle.test" => {
                assert!(matches!(
                    got.selection,
                    Selection::ConflictingTelematikIds(_)
                ))
            }
            _ => assert_eq!(got.selection, Selection::NoValidCertificate),
        }
    }
    // Only the usable address was cached, with both certificates; an ECC-capable Konnektor
    // later gets the ECC one from the cache, a non-capable one still only RSA (A_17472).
    assert_eq!(cache.len(), 1);
    let pass = resolve_from_cache(&mut cache, &addrs, now, true);
    assert_eq!(pass.need_lookup, addrs[1..].to_vec());
    assert_eq!(pass.resolved[0].0, "eccrsa@komle.test");
    assert_eq!(usable_ders(pass.resolved[0].1.selection.clone()).len(), 2);
    let pass = resolve_from_cache(&mut cache, &addrs[..1], now, false);
    assert_eq!(usable_ders(pass.resolved[0].1.selection.clone()).len(), 1);
}

#[test]
fn cached_certificates_that_expired_meanwhile_are_looked_up_again() {
    use komle_core::directory::resolve_from_cache;
    let (pki, now) = pki();
    let mut cache = CertificateCache::new(CacheConfig {
        lifetime: Duration::from_secs(10 * 365 * 86_400),
        ..CacheConfig::default()
    });
    let addr = "single@komle.test".to_string();
    cache.insert(&addr, vec![pki.single.enc[0].cert_der.clone()], *now);
    // Two years later the certificate (valid one year) has expired though the entry has not.
    let later = *now + Duration::from_secs(2 * 365 * 86_400);
    let pass = resolve_from_cache(&mut cache, std::slice::from_ref(&addr), later, true);
    assert!(pass.resolved.is_empty());
    assert_eq!(pass.need_lookup, vec![addr]);
    assert!(cache.is_empty());
}

/// A fresh connection the directory drops in the middle of the first search (the failure
/// ldap3 reports as "premature end of search stream") is opened once more and the lookup
/// answered; a second drop is the caller's `Unreachable`. A relay in front of slapd drops the
/// connection at the search request.
#[test]
fn a_connection_dropped_during_the_search_is_reopened_once() {
    use komle_conformance::fault_relay::{Chunking, Direction, FaultKind, FaultRelay, Plan};
    let slapd = Slapd::start_with_pki(&pki().0, false).expect("slapd");
    let upstream = slapd
        .url()
        .trim_start_matches("ldap://")
        .parse()
        .expect("addr");
    let relay = FaultRelay::start(upstream, Chunking::Reads).expect("relay");
    let url = format!("ldap://{}", relay.addr());
    let plan = |lasting| Plan {
        direction: Direction::ToServer,
        chunk: 0,
        kind: FaultKind::Drop,
        lasting,
    };

    relay.arm(Some(plan(false)));
    let client = DirectoryClient::new(LdapSettings::new(&url, slapd.base_dn())).expect("client");
    let entries = smol::block_on(client.lookup("single@komle.test")).expect("answered");
    assert_eq!(entries.len(), 1);
    assert!(relay.fired().is_some(), "the first search was dropped");
    assert_eq!(relay.accepted(), 2, "one more connection, not more");

    relay.arm(Some(plan(true)));
    let client = DirectoryClient::new(LdapSettings::new(&url, slapd.base_dn())).expect("client");
    let e = smol::block_on(client.lookup("single@komle.test")).expect_err("dropped twice");
    assert!(matches!(e, LdapError::Unreachable(_)), "{e:?}");
    assert_eq!(
        relay.accepted(),
        4,
        "two connections for the second lookup, no third"
    );
}
