//! KIM 1.5 on the receive side (gemSpec_CM_KOMLE V1.16 §3.4.4): a 1.5 message without KAS
//! content opens like a 1.0 one (A_21391-02); one announcing KAS content (A_23467
//! `X-KIM-KAS-Size`) is recognised as such, typed, and still answered with the 4008 error mail
//! until the KAS module handles it; a Konnektor refusing the call context answers `-ERR`
//! (Tab_POP3_Verbindung).

use std::num::NonZeroUsize;
use std::time::{Duration, SystemTime};

use komle_conformance::inprocess;
use komle_conformance::sim::config::{Fault, Operation};
use komle_conformance::sim::simulator::Simulator;
use komle_conformance::world::World;
use komle_core::directory::{CacheConfig, CertificateCache};
use komle_core::login_name::LoginName;
use komle_core::open::{self, CardCache, KasEvidence, Reception};
use komle_core::pop3::OpenJob;
use komle_core::secret::SecretBytes;
use komle_core::smime::DeliveryOptions;
use komle_core::smtp::ProtectJob;

/// A message from the world's sender to its `single` user, protected by the pipeline, with
/// its outer `X-KOM-LE-Version` replaced by `version` and `extra` added after it.
fn received(
    world: &World,
    sim: &Simulator,
    now: SystemTime,
    version: &str,
    extra: &str,
) -> Vec<u8> {
    let mut cache = CertificateCache::new(CacheConfig {
        lifetime: Duration::from_secs(60),
        capacity: NonZeroUsize::new(8).unwrap(),
    });
    let from = world.pki.sender.address.clone();
    let to = world.pki.single.address.clone();
    let mail = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: Befund\r\nDate: Fri, 27 Nov 2026 10:00:00 +0100\r\nMessage-ID: <k15@komle.test>\r\n\r\nKalium 4,1 mmol/l.\r\n"
    );
    let job = ProtectJob {
        login: LoginName::parse_smtp(&format!("{from}#127.0.0.1:465#M1#CS1#WP1")).unwrap(),
        envelope_from: from,
        recipients: vec![to],
        message: SecretBytes::from(mail.into_bytes()),
    };
    let outer = inprocess::protect(sim, world, &mut cache, job, now, &mut Vec::new())
        .expect("protected")
        .message;
    let outer = String::from_utf8(outer.as_slice().to_vec()).unwrap();
    let at = outer.find("X-KOM-LE-Version: ").expect("version header");
    let end = at + outer[at..].find("\r\n").unwrap() + 2;
    format!(
        "{}X-KOM-LE-Version: {version}\r\n{extra}{}",
        &outer[..at],
        &outer[end..]
    )
    .into_bytes()
}

fn job(world: &World, message: Vec<u8>) -> OpenJob {
    let to = &world.pki.single.address;
    OpenJob {
        login: LoginName::parse_pop3(&format!("{to}#127.0.0.1:995#M1#CS1#WP1")).unwrap(),
        message: SecretBytes::from(message),
    }
}

/// Drives a [`Reception`] against the simulator; returns it (for its typed findings), the
/// result and the operations called.
fn open_with(
    sim: &Simulator,
    job: OpenJob,
    now: SystemTime,
) -> (Reception, Result<String, String>, Vec<String>) {
    let mut r = Reception::new(
        job,
        inprocess::endpoints(sim),
        now,
        DeliveryOptions::default(),
    );
    let mut cards = CardCache::default();
    let mut calls = Vec::new();
    loop {
        match r.step() {
            open::Step::Call(c) => {
                calls.push(c.request.soap_action.rsplit('#').next().unwrap().to_owned());
                let answer = sim.handle(c.request.soap_action, &c.request.body);
                r.konnektor_answer(&mut cards, answer.body);
            }
            // Only a pipeline made `with_kas` asks; this one is not.
            open::Step::FetchKas(_) => {
                r.kas_fetched(Err(komle_core::kas::KasOpenError::DownloadFailed))
            }
            open::Step::Done(result) => {
                let result = result
                    .map(|m| String::from_utf8_lossy(m.message.as_slice()).into_owned())
                    .map_err(|f| f.reason);
                return (r, result, calls);
            }
        }
    }
}

#[test]
fn a_21391_02_kim_1_5_message_without_kas_opens_with_its_results() {
    let now = SystemTime::now();
    let world = World::generate(now).unwrap();
    let sim = Simulator::new(world.sim_config.clone());
    let message = received(&world, &sim, now, "1.5", "");
    let (r, out, calls) = open_with(&sim, job(&world, message), now);
    let out = out.expect("opened");
    assert!(out.contains("X-KIM-DecryptionResult: 00\r\n"), "{out}");
    assert!(out.contains("X-KIM-IntegrityCheckResult: 01\r\n"), "{out}");
    assert!(out.contains("Kalium 4,1 mmol/l."));
    assert!(!out.contains("X-KIM-Fehlermeldung"), "{out}");
    assert!(calls.iter().any(|c| c == "DecryptDocument"));
    assert_eq!(r.kas_content(), None);
}

#[test]
fn a_23467_a_23512_kas_content_is_typed_and_still_becomes_the_4008_mail() {
    let now = SystemTime::now();
    let world = World::generate(now).unwrap();
    let sim = Simulator::new(world.sim_config.clone());
    let message = received(&world, &sim, now, "1.5", "X-KIM-KAS-Size: 25525700\r\n");
    let (r, out, calls) = open_with(&sim, job(&world, message), now);
    let out = out.expect("error mail");
    let kas = r.kas_content().expect("KAS content recognised");
    assert_eq!(kas.version, "1.5");
    assert_eq!(kas.evidence, KasEvidence::SizeHeader(Some(25_525_700)));
    assert!(out.contains("X-KIM-Fehlermeldung: 4008\r\n"), "{out}");
    assert!(out.contains("Content-Type: message/rfc822"), "{out}");
    // The reference is never decrypted here: no Konnektor call at all.
    assert!(calls.is_empty(), "{calls:?}");
}

#[test]
fn unknown_version_still_becomes_the_4008_mail() {
    let now = SystemTime::now();
    let world = World::generate(now).unwrap();
    let sim = Simulator::new(world.sim_config.clone());
    let message = received(&world, &sim, now, "2.0", "");
    let (_, out, calls) = open_with(&sim, job(&world, message), now);
    assert!(out.unwrap().contains("X-KIM-Fehlermeldung: 4008\r\n"));
    assert!(calls.is_empty());
}

#[test]
fn a_2037_01_tab_pop3_verbindung_konnektor_refusing_the_call_context_answers_err() {
    let now = SystemTime::now();
    let world = World::generate(now).unwrap();
    let sim = Simulator::new(world.sim_config.clone());
    let message = received(&world, &sim, now, "1.0", "");
    for code in [4004, 4005, 4006] {
        let mut config = world.sim_config.clone();
        config.faults.insert(
            Operation::GetCards,
            Fault::SoapFault {
                code,
                text: "Aufrufkontext ungueltig".into(),
            },
        );
        let refusing = Simulator::new(config);
        let (_, out, calls) = open_with(&refusing, job(&world, message.clone()), now);
        assert_eq!(out, Err(open::CONTEXT_REFUSED_REASON.to_owned()), "{code}");
        assert_eq!(calls, ["GetCards"], "{code}");
    }
    // Another GetCards fault stays the error mail with DecryptionResult 03 (A_2047-02).
    let mut config = world.sim_config.clone();
    config.faults.insert(
        Operation::GetCards,
        Fault::SoapFault {
            code: 4001,
            text: "intern".into(),
        },
    );
    let (_, out, _) = open_with(&Simulator::new(config), job(&world, message), now);
    assert!(out.unwrap().contains("X-KIM-DecryptionResult: 03"));
}
