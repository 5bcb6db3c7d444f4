//! KAS discovery by DNS service discovery (A_19361-01, RFC 6763) against a real DNS server:
//! dnsmasq from Debian's `dnsmasq-base`, started per test on 127.0.0.1 and a free port
//! (`komle_conformance::servers::dnsmasq`), serving the PTR, SRV and TXT records of two KIM
//! providers under `kim.test`. The last test sends a large mail through `KasFlow` to the KAS
//! simulator found that way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use komle_conformance::kas_sim::{KasSim, KasSimConfig};
use komle_conformance::servers::dnsmasq::{DnsRecords, Dnsmasq};
use komle_core::directory::DirectoryEntry;
use komle_core::kas::KONNEKTOR_LIMIT;
use komle_core::login_name::LoginName;
use komle_core::secret::SecretBytes;
use komle_core::smtp::ProtectJob;
use komle_service::config::KasSettings;
use komle_service::kas_client::{KasClient, KasClientSettings};
use komle_service::kas_discovery::{
    DiscoveryError, DiscoverySettings, KasDiscovery, KasEndpoints, Service,
};
use komle_service::kas_flow::{KasFlow, SendPrepared};
use komle_service::services::TableDirectory;

const DOMAIN: &str = "kim.test";

/// Provider `a`: KAS and account manager on `localhost:<port>` (the KAS simulator's port when
/// one runs), two SRV records of which priority 0 wins, TXT `path=/`. Provider `b`: KAS on
/// `kas-b.kim.test:8443` under `/kas-b`. Provider `c`: PTR only (no SRV). Provider `d`: a TXT
/// path with a query part.
fn records(port: u16, ttl: u32) -> DnsRecords {
    DnsRecords::new()
        .ttl(ttl)
        .local_domain(DOMAIN)
        .and_then(|r| r.ptr("_kas._tcp.kim.test", "kas.a.kim.test"))
        .and_then(|r| r.ptr("_kas._tcp.kim.test", "kas.b.kim.test"))
        .and_then(|r| r.ptr("_kas._tcp.kim.test", "kas.c.kim.test"))
        .and_then(|r| r.ptr("_kas._tcp.kim.test", "kas.d.kim.test"))
        .and_then(|r| r.srv("kas.a.kim.test", "backup.a.kim.test", 9, 10, 0))
        .and_then(|r| r.srv("kas.a.kim.test", "localhost", port, 0, 5))
        .and_then(|r| r.txt("kas.a.kim.test", &["txtvers=1", "path=/"]))
        .and_then(|r| r.srv("kas.b.kim.test", "kas-b.kim.test", 8443, 0, 0))
        .and_then(|r| r.txt("kas.b.kim.test", &["txtvers=1", "path=/kas-b/"]))
        .and_then(|r| r.txt("kas.c.kim.test", &["txtvers=1"]))
        .and_then(|r| r.srv("kas.d.kim.test", "kas-d.kim.test", 443, 0, 0))
        .and_then(|r| r.txt("kas.d.kim.test", &["path=/x?y=1"]))
        .and_then(|r| r.ptr("_accmgr._tcp.kim.test", "am.a.kim.test"))
        .and_then(|r| r.srv("am.a.kim.test", "localhost", port, 0, 0))
        .expect("valid records")
}

fn discovery(dns: &Dnsmasq, timeout: Duration) -> KasDiscovery {
    KasDiscovery::new(DiscoverySettings {
        domain: DOMAIN.into(),
        dns_server: Some(dns.addr()),
        timeout,
    })
}

#[test]
fn a_19361_discovery_finds_the_kas_and_the_account_manager_of_the_senders_provider() {
    let dns = Dnsmasq::start(&records(4443, 300)).expect("dnsmasq");
    let d = discovery(&dns, Duration::from_secs(5));
    let a = d
        .discover(Service::Kas, Some("a.kim.test"))
        .unwrap_or_else(|e| panic!("{e}\n{}", dns.log_tail()));
    assert_eq!(a.instance, "kas.a.kim.test");
    assert_eq!(
        a.url(Service::Kas),
        "https://localhost:4443/attachments/v2.4",
        "SRV priority 0 wins, path=/ adds nothing"
    );
    let b = d.discover(Service::Kas, Some("B.Kim.Test")).expect("b");
    assert_eq!(
        b.url(Service::Kas),
        "https://kas-b.kim.test:8443/kas-b/attachments/v2.4"
    );
    let am = d
        .discover(Service::AccountManager, Some("a.kim.test"))
        .expect("account manager");
    assert_eq!(
        am.url(Service::AccountManager),
        "https://localhost:4443/AccountLimit/v1.1/limit",
        "no TXT record: empty base path"
    );
    // The only account manager instance serves every sender.
    assert_eq!(
        d.discover(Service::AccountManager, Some("elsewhere.example"))
            .expect("single instance"),
        am
    );
    // Four KAS instances and none of the sender's: no guess.
    assert_eq!(
        d.discover(Service::Kas, Some("elsewhere.example")),
        Err(DiscoveryError::NoInstanceForSender {
            service: "_kas._tcp.kim.test.".into(),
            sender_domain: "elsewhere.example".into(),
            instances: 4,
        })
    );
}

#[test]
fn a_19361_missing_or_bad_records_are_typed_errors_without_a_hang() {
    let mut dns = Dnsmasq::start(&records(4443, 300)).expect("dnsmasq");
    let d = discovery(&dns, Duration::from_secs(3));
    assert_eq!(
        d.discover(Service::Kas, Some("c.kim.test")),
        Err(DiscoveryError::NoSrv {
            instance: "kas.c.kim.test".into()
        })
    );
    assert_eq!(
        d.discover(Service::Kas, Some("d.kim.test")),
        Err(DiscoveryError::BadTxt {
            instance: "kas.d.kim.test".into(),
            reason: "path has characters outside a URL path"
        })
    );
    let other = KasDiscovery::new(DiscoverySettings {
        domain: "nothing.kim.test".into(),
        dns_server: Some(dns.addr()),
        timeout: Duration::from_secs(3),
    });
    assert_eq!(
        other.discover(Service::Kas, None),
        Err(DiscoveryError::NoInstance {
            service: "_kas._tcp.nothing.kim.test.".into()
        })
    );
    // No name server at all: an error within the timeout, not a hang.
    dns.stop();
    let started = Instant::now();
    let err = d
        .discover(Service::Kas, Some("a.kim.test"))
        .expect_err("server stopped");
    assert!(
        matches!(err, DiscoveryError::Timeout | DiscoveryError::Resolver(_)),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_19361_results_are_cached_for_their_dns_ttl() {
    let mut dns = Dnsmasq::start(&records(4443, 3)).expect("dnsmasq");
    let d = discovery(&dns, Duration::from_secs(2));
    let first = d.discover(Service::Kas, Some("a.kim.test")).expect("first");
    assert_eq!(
        dns.queries_for("_kas._tcp.kim.test"),
        1,
        "{}",
        dns.log_tail()
    );
    assert_eq!(
        d.discover(Service::Kas, Some("a.kim.test")),
        Ok(first.clone())
    );
    assert_eq!(
        dns.queries_for("_kas._tcp.kim.test"),
        1,
        "the second lookup is answered from the cache"
    );
    // Within the TTL the server is not needed at all.
    dns.stop();
    assert_eq!(d.discover(Service::Kas, Some("a.kim.test")), Ok(first));
    // After the TTL the records are asked for again (and the stopped server fails that).
    std::thread::sleep(Duration::from_millis(3_200));
    assert!(d.discover(Service::Kas, Some("a.kim.test")).is_err());
}

fn kas_settings(base_url: Option<&str>, dns: &Dnsmasq) -> KasSettings {
    KasSettings {
        base_url: base_url.map(str::to_owned),
        limits_url: base_url.map(|_| "https://am.example/AccountLimit/v1.1/limit".to_owned()),
        discovery_domain: Some(DOMAIN.into()),
        dns_server: Some(dns.addr()),
        timeout: Duration::from_secs(5),
        ca: None,
        client_certificate: None,
        client_key: None,
        max_mail_size: 1 << 20,
    }
}

#[test]
fn a_19361_configured_base_url_overrides_discovery() {
    let dns = Dnsmasq::start(&records(4443, 300)).expect("dnsmasq");
    let fixed = KasEndpoints::from_settings(&kas_settings(Some("https://kas.example/a"), &dns));
    assert!(matches!(fixed, KasEndpoints::Fixed { .. }));
    futures_lite::future::block_on(async {
        assert_eq!(fixed.kas_base_url(Some("a.kim.test")).await, Ok(None));
        assert_eq!(
            fixed.limits_url(Some("a.kim.test")).await.as_deref(),
            Some("https://am.example/AccountLimit/v1.1/limit")
        );
    });
    assert_eq!(dns.queries_for("_kas._tcp.kim.test"), 0, "no DNS-SD at all");
    assert_eq!(dns.queries_for("_accmgr._tcp.kim.test"), 0);

    let discovered = KasEndpoints::from_settings(&kas_settings(None, &dns));
    futures_lite::future::block_on(async {
        assert_eq!(
            discovered.kas_base_url(Some("a.kim.test")).await,
            Ok(Some("https://localhost:4443/attachments/v2.4".into()))
        );
        assert_eq!(
            discovered.limits_url(Some("a.kim.test")).await.as_deref(),
            Some("https://localhost:4443/AccountLimit/v1.1/limit")
        );
    });
    assert_eq!(dns.queries_for("_kas._tcp.kim.test"), 1);
}

fn large_mail(from: &str, to: &str) -> Vec<u8> {
    let mut mail = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: Gross\r\nMessage-ID: <dnssd@komle.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    .into_bytes();
    let line = b"Befund Kalium 4,1 mmol/l abcdefghijklmnopqrstuvwxyz 0123456789\r\n";
    while mail.len() <= KONNEKTOR_LIMIT as usize + 100_000 {
        mail.extend_from_slice(line);
    }
    mail
}

fn job(from: &str, to: &str) -> ProtectJob {
    ProtectJob {
        login: LoginName::parse_smtp(&format!("{from}#127.0.0.1:465#M1#CS1#WP1")).expect("login"),
        envelope_from: from.to_owned(),
        recipients: vec![to.to_owned()],
        message: SecretBytes::from(large_mail(from, to)),
    }
}

#[test]
fn a_19361_a_19363_a_large_mail_is_stored_on_the_discovered_kas() {
    let kas = KasSim::start(KasSimConfig::default()).expect("KAS simulator");
    let port: u16 = kas
        .base_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("port in the base URL");
    let dns = Dnsmasq::start(&records(port, 300)).expect("dnsmasq");
    let (client_chain, client_key) = kas.tls.client_identity();
    let client = KasClient::new(KasClientSettings {
        base_url: String::new(),
        timeout: Duration::from_secs(10),
        roots: vec![kas.tls.ca_der.clone()],
        client_chain,
        client_key,
        basic: None,
    })
    .expect("KAS client");
    let flow = KasFlow::with_endpoints(
        client,
        KasEndpoints::Discovered {
            discovery: Arc::new(discovery(&dns, Duration::from_secs(5))),
            limits_url: None,
        },
    );
    let directory = TableDirectory(|a: &str| {
        vec![DirectoryEntry {
            mail: vec![a.to_owned()],
            kom_le_data: vec![format!("1.5+,{a}")],
            ..DirectoryEntry::default()
        }]
    });
    let now = 1_800_000_000;
    let prepared = futures_lite::future::block_on(flow.prepare_send(
        job("arzt@a.kim.test", "praxis@b.kim.test"),
        &directory,
        now,
    ))
    .unwrap_or_else(|e| panic!("{}\n{}", e.reason, dns.log_tail()));
    assert!(matches!(prepared, SendPrepared::Kas { .. }));
    assert_eq!(kas.stored_count(), 1, "uploaded to the KAS found by DNS-SD");
    let recorded = kas.recorded();
    assert!(
        recorded
            .iter()
            .any(|r| r.method == "GET" && r.path == "/AccountLimit/v1.1/limit"),
        "getLimits at the discovered account manager: {:?}",
        recorded.iter().map(|r| &r.path).collect::<Vec<_>>()
    );

    // Provider c has no SRV record: the sender gets the KAS's "not reachable" reply
    // (451 + RSET, A_19363-03) and nothing is stored.
    let refused = futures_lite::future::block_on(flow.prepare_send(
        job("arzt@c.kim.test", "praxis@b.kim.test"),
        &directory,
        now,
    ));
    let Err(failure) = refused else {
        panic!("no KAS for provider c");
    };
    assert!(
        failure.reason.starts_with("451 4.4.0 "),
        "{}",
        failure.reason
    );
    assert_eq!(kas.stored_count(), 1);
}
