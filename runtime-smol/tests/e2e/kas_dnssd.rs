//! KAS discovery (A_19361-01) through the real `komle-cm`: its `[kas]` section names no
//! `base_url`, only `discovery_domain` and `dns_server`; a real dnsmasq serves the PTR, SRV and
//! TXT records that lead to the KAS simulator (and its account manager). A 16 MiB mail is stored
//! on the KAS found that way; once the records are gone (server stopped, TTL over) the client
//! gets the KAS's "not reachable" reply, 451 (A_19363-03), and nothing is delivered.

use std::time::Duration;

use crate::common::clients::{self, Submission};
use crate::common::{Options, TestBed, header_of, password, world};
use komle_conformance::kas_sim::{KasSim, KasSimConfig};

const DELIVERY: Duration = Duration::from_secs(120);

/// The TTL of the records: short, so the test can outlive it.
const TTL: u32 = 1;

use crate::kas::KasByDnsSd;

fn mail(from: &str, to: &str, marker: &str) -> Vec<u8> {
    let mut mail = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: Gross {marker}\r\n\
         Date: Fri, 27 Nov 2026 10:00:00 +0100\r\nMessage-ID: <{marker}@komle.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    .into_bytes();
    while mail.len() < 16 * 1024 * 1024 {
        mail.extend_from_slice(b"Kalium 4,1 mmol/l abcdefghijklmnopqrstuvwxyz 0123456789\r\n");
    }
    mail
}

fn send(bed: &TestBed, from: &str, to: &str, mail: &[u8]) -> clients::Run {
    let login = bed.login(from);
    let pw = password(from);
    clients::curl(
        &Submission {
            server: bed.smtp_addr(),
            ca: bed.cm_ca_path(),
            user: &login,
            password: &pw,
            from,
            rcpts: &[to],
        },
        mail,
        &[],
    )
}

#[test]
fn a_19361_komle_cm_finds_the_kas_by_dns_sd_and_answers_451_without_it() {
    let kas = KasSim::start(KasSimConfig::default()).expect("KAS simulator");
    let found = KasByDnsSd::start(&kas, TTL, "5s");
    let mut dns = found.dns;
    let extra_config = found.kas_section;
    let bed = TestBed::start_with(Options {
        extra_config,
        ..Options::default()
    });
    let from = world().pki.sender.address.clone();
    let to = world().pki.single.address.clone();
    crate::common::ldap_modify(
        &bed.slapd,
        &world().pki.single.uid,
        &format!("replace: komLeData\nkomLeData: 1.5+,{to}\n"),
    );

    let run = send(&bed, &from, &to, &mail(&from, &to, "kas-dnssd-1"));
    assert!(
        run.success,
        "{}\n{}\n{}",
        run.transcript,
        bed.log(),
        dns.log_tail()
    );
    assert_eq!(kas.stored_count(), 1, "stored on the KAS found by DNS-SD");
    assert!(dns.queries_for("_kas._tcp.kim.test") >= 1);
    assert!(
        kas.recorded()
            .iter()
            .any(|r| r.method == "GET" && r.path == "/AccountLimit/v1.1/limit"),
        "getLimits at the discovered account manager"
    );
    let stored = bed.wait_delivered(&to, "kas-dnssd-1", 1, DELIVERY);
    assert!(header_of(&stored[0]).contains("X-KOM-LE-Version: 1.5"));

    // The records are gone: the cache lasts their TTL only, then the KAS is "not reachable".
    dns.stop();
    std::thread::sleep(Duration::from_millis(u64::from(TTL) * 1000 + 500));
    let run = send(&bed, &from, &to, &mail(&from, &to, "kas-dnssd-2"));
    assert_eq!(run.last_code(), Some(451), "{}", run.transcript);
    assert_eq!(kas.stored_count(), 1);
    bed.assert_not_delivered(&to, "kas-dnssd-2", Duration::from_secs(2));
    let log = bed.log();
    assert!(log.contains("KAS discovery failed"), "{log}");
}
