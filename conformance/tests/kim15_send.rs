//! KIM 1.5 fields of the outer message on send (gemSpec_CM_KOMLE V1.16 §3.1): exact
//! `X-KIM-CMVersion`/`X-KIM-PTVersion`/`X-KIM-KONVersion` (A_21388-01), `Expires` (A_22417),
//! `X-KOM-LE-Version` 1.0 for a message without KAS content whatever the recipients' version
//! (gemSMIME_KOMLE KOM-LE-A_2100-02), 1.5 with KAS content; the recipients' `komLeData`
//! versions read and cached for the KAS decision (A_19356-06, A_22340); the sender check of
//! A_21387-01. With the Konnektor simulator; the results still open.

use std::num::NonZeroUsize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use komle_conformance::inprocess;
use komle_conformance::sim::simulator::Simulator;
use komle_conformance::world::World;
use komle_core::directory::{CacheConfig, CertificateCache, DirectoryEntry};
use komle_core::login_name::LoginName;
use komle_core::pop3::OpenJob;
use komle_core::protect::{self, KimSendInfo, Protection};
use komle_core::secret::SecretBytes;
use komle_core::smtp::ProtectJob;

/// 2026-12-07 14:00:00 UTC, inside the test PKI's validity (generated around it).
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_796_652_000)
}

fn info() -> KimSendInfo {
    KimSendInfo::new("ABC", "2.1.2-8", "1.5.0-2")
        .unwrap()
        .with_konnektor_version("<KoCo Konnektor><Konnektor><4.80.3><2.0.0><4.10.1>")
        .unwrap()
        .with_data_time_to_live(Duration::from_secs(90 * 86_400))
}

fn cache() -> CertificateCache {
    CertificateCache::new(CacheConfig {
        lifetime: Duration::from_secs(3600),
        capacity: NonZeroUsize::new(16).unwrap(),
    })
}

/// Protects a mail to `to` with the directory of `world`, the `komLeData` of addresses in
/// `kim15` replaced by `1.5+`; returns the outer header and the outer message.
fn send(
    world: &World,
    sim: &Simulator,
    cache: &mut CertificateCache,
    to: &[&str],
    kim15: &[&str],
) -> (String, Vec<u8>) {
    let versions: Vec<(&str, &str)> = kim15.iter().map(|a| (*a, "1.5+")).collect();
    let (header, outer, _, _) = send_with(world, sim, cache, to, &versions, false);
    (header, outer)
}

/// [`send`] with any `komLeData` version per address; also returns the notice to the sender.
fn send_with(
    world: &World,
    sim: &Simulator,
    cache: &mut CertificateCache,
    to: &[&str],
    versions: &[(&str, &str)],
    kas_content: bool,
) -> (String, Vec<u8>, Option<String>, Vec<Option<String>>) {
    let from = world.pki.sender.address.clone();
    let mail = format!(
        "From: <{from}>\r\nTo: {}\r\nSubject: Befund\r\nMessage-ID: <k15-send@komle.test>\r\nX-KIM-CMVersion: FORGED_9.9.9\r\nX-KIM-Dienstkennung: Arztbrief;Entlassbrief;V1.2\r\n\r\nText\r\n",
        to.iter()
            .map(|a| format!("<{a}>"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let job = ProtectJob {
        login: LoginName::parse_smtp(&format!("{from}#127.0.0.1:465#M1#CS1#WP1")).unwrap(),
        envelope_from: from,
        recipients: to.iter().map(|a| (*a).to_owned()).collect(),
        message: SecretBytes::from(mail.into_bytes()),
    };
    let entries = |a: &str| -> Vec<DirectoryEntry> {
        let mut e = world.directory_entries(a);
        if let Some((_, v)) = versions.iter().find(|(k, _)| k.eq_ignore_ascii_case(a)) {
            for entry in &mut e {
                entry.kom_le_data = vec![format!("{v},{a}")];
            }
        }
        e
    };
    let mut p = Protection::new(job, inprocess::endpoints(sim), now()).with_kim_info(info());
    p.set_kas_content(kas_content);
    let seen: Vec<Option<String>>;
    let protected = loop {
        match p.step(cache) {
            protect::Step::LookUp(a) => p.directory_answer(cache, Ok(entries(&a))),
            protect::Step::Call(c) => {
                let r = sim.handle(c.request.soap_action, &c.request.body);
                p.konnektor_answer(cache, r.body);
            }
            protect::Step::Done(r) => {
                seen = to
                    .iter()
                    .map(|a| p.kom_le_version_of(a).map(|v| v.to_string()))
                    .collect();
                break r.expect("protected");
            }
        }
    };
    let notice = protected
        .notice
        .map(|n| String::from_utf8_lossy(n.message.as_slice()).into_owned());
    let outer = protected.message.as_slice().to_vec();
    let text = String::from_utf8_lossy(&outer);
    let header = text[..text.find("\r\n\r\n").unwrap() + 2].to_owned();
    (header, outer, notice, seen)
}

fn fields<'a>(header: &'a str, name: &str) -> Vec<&'a str> {
    header
        .split("\r\n")
        .filter_map(|l| l.split_once(": "))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .collect()
}

fn opens(sim: &Simulator, to: &str, outer: Vec<u8>) -> String {
    let job = OpenJob {
        login: LoginName::parse_pop3(&format!("{to}#127.0.0.1:995#M1#CS1#WP1")).unwrap(),
        message: SecretBytes::from(outer),
    };
    let opened = inprocess::open(sim, job, now(), &mut Vec::new()).expect("opened");
    String::from_utf8_lossy(opened.message.as_slice()).into_owned()
}

#[test]
fn a_21388_01_a_22417_a_19356_06_recipient_with_kom_le_1_0_gets_1_0_and_the_kim_fields() {
    let world = World::generate(now()).unwrap();
    let sim = Simulator::new(world.sim_config.clone());
    let to = world.pki.single.address.clone();
    let (header, outer) = send(&world, &sim, &mut cache(), &[&to], &[]);
    assert_eq!(fields(&header, "X-KOM-LE-Version"), ["1.0"]);
    // The module's own values; the client's forged X-KIM-CMVersion is not copied outward.
    assert_eq!(fields(&header, "X-KIM-CMVersion"), ["ABC_2.1.2-8"]);
    assert_eq!(fields(&header, "X-KIM-PTVersion"), ["1.5.0-2"]);
    assert_eq!(
        fields(&header, "X-KIM-KONVersion"),
        ["<KoCo Konnektor><Konnektor><4.80.3><2.0.0><4.10.1>"]
    );
    // A_22417: sending time + dataTimeToLive (90 days).
    assert_eq!(
        fields(&header, "Expires"),
        ["Sun, 07 Mar 2027 14:00:00 +0000"]
    );
    // Other inner X-KIM-* fields are still copied (A_2193, Dienstkennung).
    assert_eq!(
        fields(&header, "X-KIM-Dienstkennung"),
        ["Arztbrief;Entlassbrief;V1.2"]
    );
    let opened = opens(&sim, &to, outer);
    assert!(
        opened.contains("X-KIM-DecryptionResult: 00\r\n"),
        "{opened}"
    );
    assert!(
        opened.contains("X-KIM-IntegrityCheckResult: 01\r\n"),
        "{opened}"
    );
}

#[test]
fn a_2100_02_message_without_kas_is_1_0_even_for_a_1_5_recipient_and_opens() {
    let world = World::generate(now()).unwrap();
    let sim = Simulator::new(world.sim_config.clone());
    let to = world.pki.single.address.clone();
    let (header, outer) = send(&world, &sim, &mut cache(), &[&to], &[&to]);
    // A 1.0 Clientmodul of the recipient (another workplace) can open it too.
    assert_eq!(fields(&header, "X-KOM-LE-Version"), ["1.0"]);
    let opened = opens(&sim, &to, outer);
    assert!(
        opened.contains("X-KIM-DecryptionResult: 00\r\n"),
        "{opened}"
    );
    assert!(
        opened.contains("X-KIM-IntegrityCheckResult: 01\r\n"),
        "{opened}"
    );
}

#[test]
fn a_2100_02_a_19356_06_kas_message_is_1_5_and_recipient_versions_are_known_per_address() {
    let world = World::generate(now()).unwrap();
    let sim = Simulator::new(world.sim_config.clone());
    let a = world.pki.single.address.clone();
    let b = world.pki.old_and_new_card.address.clone();
    let (header, outer, _, seen) = send_with(
        &world,
        &sim,
        &mut cache(),
        &[&a, &b],
        &[(&a, "1.5+"), (&b, "1.0")],
        true,
    );
    assert_eq!(fields(&header, "X-KOM-LE-Version"), ["1.5"]);
    assert_eq!(seen, [Some("1.5+".to_owned()), Some("1.0".to_owned())]);
    // Our own module opens 1.5 messages (A_21391-02).
    let opened = opens(&sim, &a, outer);
    assert!(
        opened.contains("X-KIM-DecryptionResult: 00\r\n"),
        "{opened}"
    );
}

#[test]
fn a_22340_recipient_version_comes_from_the_cache_on_the_next_message() {
    let world = World::generate(now()).unwrap();
    let sim = Simulator::new(world.sim_config.clone());
    let to = world.pki.single.address.clone();
    let mut cache = cache();
    let (_, _, _, seen) = send_with(&world, &sim, &mut cache, &[&to], &[(&to, "1.5+")], false);
    assert_eq!(seen, [Some("1.5+".to_owned())]);
    let hits_before = cache.stats().hits;
    // The directory would now say 1.0, but the cached answer (certificates and version) is used.
    let (_, _, _, seen) = send_with(&world, &sim, &mut cache, &[&to], &[], false);
    assert!(cache.stats().hits > hits_before);
    assert_eq!(seen, [Some("1.5+".to_owned())]);
}

#[test]
fn a_21388_01_konnektor_version_is_read_from_the_simulators_connector_sds() {
    let world = World::generate(now()).unwrap();
    let sim = Simulator::new(world.sim_config.clone());
    let sds = sim.handle_get("/connector.sds", "https://127.0.0.1:1").body;
    let v = protect::kim_headers::konnektor_version_from_sds(&sds).expect("product information");
    assert!(v.starts_with("<konnektor-sim>"), "{v}");
    assert_eq!(v.matches('<').count(), 5, "{v}");
}

#[test]
fn a_21387_01_sender_with_a_newer_version_in_the_directory_is_told_the_module_is_outdated() {
    let world = World::generate(now()).unwrap();
    let sim = Simulator::new(world.sim_config.clone());
    let from = world.pki.sender.address.clone();
    let to = world.pki.single.address.clone();
    let (header, _, notice, _) = send_with(
        &world,
        &sim,
        &mut cache(),
        &[&to],
        &[(&from, "1.6"), (&to, "1.5")],
        false,
    );
    // The message still goes out.
    assert_eq!(fields(&header, "X-KOM-LE-Version"), ["1.0"]);
    let notice = notice.expect("notice to the sender");
    assert!(notice.contains(&format!("To: <{from}>\r\n")), "{notice}");
    assert!(notice.contains("X-KIM-Fehlermeldung: 4017\r\n"), "{notice}");
    assert!(notice.contains("die Version 1.6 eingetragen"), "{notice}");
    // Same version, or 1.5+: no notice.
    let (_, _, notice, _) = send_with(
        &world,
        &sim,
        &mut cache(),
        &[&to],
        &[(&from, "1.5+")],
        false,
    );
    assert_eq!(notice, None);
    // With recipients left out, the one notice carries both codes.
    let gone = world.pki.no_certificate.address.clone();
    let (_, _, notice, _) = send_with(
        &world,
        &sim,
        &mut cache(),
        &[&to, &gone],
        &[(&from, "2.0")],
        false,
    );
    let notice = notice.expect("notice");
    assert!(notice.contains("X-KIM-Fehlermeldung: 4004\r\n"), "{notice}");
    assert!(notice.contains("X-KIM-Fehlermeldung: 4017\r\n"), "{notice}");
    assert!(notice.contains(&gone), "{notice}");
}
