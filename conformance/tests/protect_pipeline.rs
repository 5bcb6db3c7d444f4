//! The protection pipeline (core) against the Konnektor simulator (real CMS cryptography) and
//! a directory made of the test PKI: what comes out opens with the recipient's card and carries
//! the original mail (KOM-LE-A_2019, A_2299, A_2022, A_2024, A_2028, A_2176, Abbildung 8).

use std::num::NonZeroUsize;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use komle_conformance::pki::TestPki;
use komle_conformance::sim::config::{Fault, Operation, PinState, SimConfig};
use komle_conformance::sim::simulator::Simulator;
use komle_conformance::world::{OLD_AND_NEW_CARD, SENDER_CARD, SINGLE_CARD, World};
use komle_core::directory::{CacheConfig, CertificateCache};
use komle_core::konnektor::TransportError;
use komle_core::konnektor::{
    CallContext, KonnektorEndpoints, ServiceDirectory, decrypt_document, verify_document,
};
use komle_core::login_name::LoginName;
use komle_core::protect::{DirectoryUnavailable, Protection, Step};
use komle_core::secret::SecretBytes;
use komle_core::smtp::{ProtectJob, ProtectedMessage, ProtectionFailure};

struct Setup {
    pki: TestPki,
    world: World,
    sim: Simulator,
    endpoints: KonnektorEndpoints,
    now: SystemTime,
}

fn world(faults: &[(Operation, Fault)]) -> Setup {
    world_with(|c| c.faults = faults.iter().cloned().collect())
}

/// A world whose simulator configuration `adjust` changes (PIN states, faults).
fn world_with(adjust: impl FnOnce(&mut SimConfig)) -> Setup {
    let now = SystemTime::now();
    let mut world = World::generate(now).expect("test world");
    adjust(&mut world.sim_config);
    let sim = Simulator::new(world.sim_config.clone());
    let sds = sim
        .handle_get("/connector.sds", "https://konnektor.test")
        .body;
    let endpoints = ServiceDirectory::parse(&sds)
        .and_then(|d| d.endpoints())
        .expect("simulator's connector.sds");
    Setup {
        pki: world.pki.clone(),
        world,
        sim,
        endpoints,
        now,
    }
}

fn login() -> LoginName {
    LoginName::parse("praxis@komle.test#127.0.0.1:465#M1#CS1#WP1").unwrap()
}

fn mail(from: &str, to: &[&str]) -> Vec<u8> {
    format!(
        "From: Praxis <{from}>\r\nTo: {}\r\nSubject: Befund\r\nDate: Mon, 30 Jan 2012 13:14:12 +0100\r\nMessage-ID: <1@komle.test>\r\n\r\nStreng vertraulicher Befund.\r\n",
        to.join(", ")
    )
    .into_bytes()
}

/// Runs the pipeline to the end, the way a runtime does.
fn run(
    w: &Setup,
    cache: &mut CertificateCache,
    recipients: &[&str],
    message: Vec<u8>,
    calls: &mut Vec<String>,
) -> Result<ProtectedMessage, ProtectionFailure> {
    let job = ProtectJob {
        login: login(),
        envelope_from: w.pki.sender.address.clone(),
        recipients: recipients.iter().map(|s| s.to_string()).collect(),
        message: SecretBytes::from(message),
    };
    let mut p = Protection::new(job, w.endpoints.clone(), w.now);
    loop {
        match p.step(cache) {
            Step::LookUp(a) => {
                calls.push(format!("lookup {a}"));
                let entries = w.world.directory_entries(&a);
                p.directory_answer(cache, Ok::<_, DirectoryUnavailable>(entries));
            }
            Step::Call(c) => {
                calls.push(c.request.soap_action.rsplit('#').next().unwrap().to_owned());
                let r = w.sim.handle(c.request.soap_action, &c.request.body);
                p.konnektor_answer(cache, r.body);
            }
            Step::Done(r) => return r,
        }
    }
}

fn cache() -> CertificateCache {
    CertificateCache::new(CacheConfig {
        lifetime: Duration::from_secs(3600),
        capacity: NonZeroUsize::new(64).unwrap(),
    })
}

/// Decrypts the outer message with `card_handle` and verifies the signature, returning the
/// signed content (the `message/rfc822` wrapper of the mail).
fn open(w: &Setup, outer: &[u8], card_handle: &str) -> Vec<u8> {
    let text = String::from_utf8(outer.to_vec()).unwrap();
    let (_, body) = text.split_once("\r\n\r\n").unwrap();
    let cms = STANDARD.decode(body.replace("\r\n", "")).unwrap();
    let ctx = login().call_context();
    let req = decrypt_document::build(&decrypt_document::DecryptDocumentRequest {
        context: &ctx,
        card_handle,
        document: &cms,
    });
    let plain = decrypt_document::parse(&w.sim.handle(req.soap_action, &req.body).body)
        .expect("DecryptDocument with the recipient's card")
        .plaintext;
    let head_end = plain.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&plain[..head_end]);
    assert!(head.contains("smime-type=signed-data"), "{head}");
    let signed_der = &plain[head_end + 4..];
    let ctx2: CallContext = ctx.clone();
    let vreq = verify_document::build(&verify_document::VerifyDocumentRequest {
        version: w.endpoints.signature_version,
        context: &ctx2,
        signed_data: signed_der,
        return_report: true,
    });
    let v = verify_document::parse(&w.sim.handle(vreq.soap_action, &vreq.body).body)
        .expect("VerifyDocument");
    assert_eq!(
        v.high_level_result,
        verify_document::HighLevelResult::Valid,
        "{v:?}"
    );
    // The signed content is inside the SignedData; the simulator's report of the econtent is
    // not needed: the DER carries it as an OCTET STRING.
    signed_der.to_vec()
}

#[test]
fn a_2019_message_is_signed_and_encrypted_for_recipient_and_sender() {
    let w = world(&[]);
    let mut c = cache();
    let mut calls = Vec::new();
    let to = w.pki.single.address.clone();
    let p = run(
        &w,
        &mut c,
        &[&to],
        mail(&w.pki.sender.address, &[&to]),
        &mut calls,
    )
    .expect("protected");
    assert_eq!(p.recipients, vec![to.clone()]);
    assert!(p.notice.is_none());
    let outer = p.message.as_slice();
    let text = String::from_utf8_lossy(outer);
    assert!(
        text.contains("Subject: KOM-LE-Nachricht\r\n"),
        "{text:.400}"
    );
    assert!(text.contains("X-KOM-LE-Version: 1.0\r\n"));
    assert!(text.contains("smime-type=authenticated-enveloped-data"));
    assert!(
        !text.contains("Streng vertraulich"),
        "content must not be in clear"
    );
    assert_eq!(
        calls,
        vec![
            format!("lookup {to}"),
            format!("lookup {}", w.pki.sender.address),
            "GetCards".into(),
            "GetPinStatus".into(),
            "GetJobNumber".into(),
            "SignDocument".into(),
            "EncryptDocument".into(),
        ]
    );
    // The recipient's card and the sender's card both open it (A_2022).
    for handle in [SINGLE_CARD, SENDER_CARD] {
        let signed = open(&w, outer, handle);
        let needle = b"Streng vertraulicher Befund.";
        assert!(
            String::from_utf8_lossy(&signed).contains("Streng")
                || signed.windows(needle.len()).any(|x| x == needle),
            "signed content carries the mail"
        );
    }
}

#[test]
fn a_2026_second_message_uses_the_cache_not_the_directory() {
    let w = world(&[]);
    let mut c = cache();
    let to = w.pki.single.address.clone();
    let mut first = Vec::new();
    run(
        &w,
        &mut c,
        &[&to],
        mail(&w.pki.sender.address, &[&to]),
        &mut first,
    )
    .unwrap();
    let mut second = Vec::new();
    run(
        &w,
        &mut c,
        &[&to],
        mail(&w.pki.sender.address, &[&to]),
        &mut second,
    )
    .unwrap();
    assert!(first.iter().any(|c| c.starts_with("lookup")));
    assert!(
        !second.iter().any(|c| c.starts_with("lookup")),
        "{second:?}"
    );
}

#[test]
fn a_2022_old_and_new_card_both_open_the_message() {
    let w = world(&[]);
    let mut c = cache();
    let to = w.pki.old_and_new_card.address.clone();
    let p = run(
        &w,
        &mut c,
        &[&to],
        mail(&w.pki.sender.address, &[&to]),
        &mut Vec::new(),
    )
    .unwrap();
    open(&w, p.message.as_slice(), OLD_AND_NEW_CARD);
}

#[test]
fn a_2028_a_2024_recipient_without_certificate_is_dropped_and_sender_told() {
    let w = world(&[]);
    let mut c = cache();
    let good = w.pki.single.address.clone();
    let bad = w.pki.expired.address.clone();
    let p = run(
        &w,
        &mut c,
        &[&good, &bad],
        mail(&w.pki.sender.address, &[&good, &bad]),
        &mut Vec::new(),
    )
    .unwrap();
    assert_eq!(p.recipients, vec![good.clone()]);
    let notice = p.notice.expect("notice to the sender");
    assert_eq!(notice.recipient, w.pki.sender.address);
    let n = String::from_utf8_lossy(notice.message.as_slice()).into_owned();
    assert!(n.contains(&bad), "{n}");
    // The protected copy no longer names the dropped address (A_2028).
    let signed = open(&w, p.message.as_slice(), SINGLE_CARD);
    let signed = String::from_utf8_lossy(&signed).into_owned();
    assert!(!signed.contains(&bad));
}

#[test]
fn a_2025_nobody_encryptable_fails_with_the_addresses_named() {
    let w = world(&[]);
    let mut c = cache();
    let bad = w.pki.no_certificate.address.clone();
    let err = run(
        &w,
        &mut c,
        &[&bad],
        mail(&w.pki.sender.address, &[&bad]),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(err.reason.contains(&bad), "{err:?}");
}

#[test]
fn a_2021_signing_fault_fails_with_the_gematik_code() {
    let w = world(&[(
        Operation::SignDocument,
        Fault::SoapFault {
            code: 4085,
            text: "SM-B gesperrt".into(),
        },
    )]);
    let mut c = cache();
    let to = w.pki.single.address.clone();
    let err = run(
        &w,
        &mut c,
        &[&to],
        mail(&w.pki.sender.address, &[&to]),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(err.reason.contains("SignDocument"), "{err:?}");
    assert!(err.reason.contains("4085"), "{err:?}");
}

/// A Konnektor that refuses every EncryptDocument (whatever the certificate): the cached
/// certificates are looked up once more (Abbildung 8), then every address counts as refused and
/// nobody is left (A_2025): 451 naming the addresses and the Konnektor's code.
#[test]
fn abbildung_8_rejected_cached_certificates_are_looked_up_once_more() {
    let w = world(&[(
        Operation::EncryptDocument,
        Fault::SoapFault {
            code: 4111,
            text: "Zertifikat ungueltig".into(),
        },
    )]);
    let mut c = cache();
    let to = w.pki.single.address.clone();
    let sender = w.pki.sender.address.clone();
    for a in [&to, &sender] {
        let certs = w.world.directory_entries(a)[0].certificates.clone();
        c.insert(a, certs, w.now);
    }
    let mut calls = Vec::new();
    let err = run(&w, &mut c, &[&to], mail(&sender, &[&to]), &mut calls).unwrap_err();
    assert!(err.reason.contains("EncryptDocument"), "{err:?}");
    assert!(err.reason.contains("4111"), "{err:?}");
    assert!(err.reason.contains(&to), "{err:?}");
    let lookups: Vec<&String> = calls.iter().filter(|c| c.starts_with("lookup")).collect();
    assert_eq!(
        lookups.len(),
        2,
        "both cached addresses looked up again, once: {calls:?}"
    );
    // The directory answers with the refused certificates again: no replacement, so nobody
    // is left and the message is not signed a second time.
    assert_eq!(count(&calls, "SignDocument"), 1, "{calls:?}");
}

fn count(calls: &[String], what: &str) -> usize {
    calls.iter().filter(|c| *c == what).count()
}

/// Finding 8: a certificate straight from the directory that the Konnektor refuses (revoked,
/// TUC_KON_037) drops only its recipient: the directory is not asked again for it, the
/// message is signed again without it and goes to the others, the sender is told with
/// X-KIM-Fehlermeldung 4004 (Abbildung 8, A_2024, A_2028).
#[test]
fn abbildung_8_revoked_recipient_from_directory_is_dropped_and_sender_told() {
    let w = world(&[]);
    let mut c = cache();
    let good = w.pki.single.address.clone();
    let bad = w.pki.revoked.address.clone();
    let sender = w.pki.sender.address.clone();
    let mut calls = Vec::new();
    let p = run(
        &w,
        &mut c,
        &[&good, &bad],
        mail(&sender, &[&good, &bad]),
        &mut calls,
    )
    .expect("sent to the good recipient");
    assert_eq!(p.recipients, vec![good.clone()]);
    let notice = p.notice.expect("notice to the sender");
    assert_eq!(notice.recipient, sender);
    let n = String::from_utf8_lossy(notice.message.as_slice()).into_owned();
    assert!(n.contains("X-KIM-Fehlermeldung: 4004\r\n"), "{n}");
    assert!(n.contains(&bad), "{n}");
    assert!(!n.contains(&good), "{n}");
    assert_eq!(
        calls
            .iter()
            .filter(|c| *c == &format!("lookup {bad}"))
            .count(),
        1,
        "not cached, so not looked up again: {calls:?}"
    );
    assert_eq!(count(&calls, "SignDocument"), 2, "{calls:?}");
    let signed = String::from_utf8_lossy(&open(&w, p.message.as_slice(), SINGLE_CARD)).into_owned();
    assert!(!signed.contains(&bad), "removed from the protected copy");
    // The refused certificate is not kept for the next message.
    assert!(matches!(
        c.get(&bad, w.now),
        komle_core::directory::CacheLookup::Miss
    ));
}

/// Abbildung 8: a refused certificate that came from the cache makes the pipeline ask the
/// directory once more; the replacement it finds is used and nobody is dropped.
#[test]
fn abbildung_8_refused_cached_certificate_is_replaced_from_the_directory() {
    let w = world(&[]);
    let mut c = cache();
    let to = w.pki.single.address.clone();
    let sender = w.pki.sender.address.clone();
    // A stale cache entry: the address's certificate has since been revoked and replaced.
    let stale = w.world.directory_entries(&w.pki.revoked.address)[0]
        .certificates
        .clone();
    c.insert(&to, stale, w.now);
    let mut calls = Vec::new();
    let p = run(&w, &mut c, &[&to], mail(&sender, &[&to]), &mut calls)
        .expect("sent with the replacement");
    assert_eq!(p.recipients, vec![to.clone()]);
    assert!(p.notice.is_none(), "nobody left out");
    assert_eq!(
        calls
            .iter()
            .filter(|c| *c == &format!("lookup {to}"))
            .count(),
        1,
        "looked up once, after the refusal: {calls:?}"
    );
    open(&w, p.message.as_slice(), SINGLE_CARD);
}

/// Abbildung 8: when the directory returns the refused certificate again, it is no
/// replacement: the recipient is dropped after that one lookup, the rest still get the mail.
#[test]
fn abbildung_8_refused_cached_certificate_without_replacement_drops_the_recipient() {
    let w = world(&[]);
    let mut c = cache();
    let good = w.pki.single.address.clone();
    let bad = w.pki.revoked.address.clone();
    let sender = w.pki.sender.address.clone();
    let certs = w.world.directory_entries(&bad)[0].certificates.clone();
    c.insert(&bad, certs, w.now);
    let mut calls = Vec::new();
    let p = run(
        &w,
        &mut c,
        &[&good, &bad],
        mail(&sender, &[&good, &bad]),
        &mut calls,
    )
    .expect("sent to the good recipient");
    assert_eq!(p.recipients, vec![good.clone()]);
    assert_eq!(
        calls
            .iter()
            .filter(|c| *c == &format!("lookup {bad}"))
            .count(),
        1,
        "{calls:?}"
    );
    assert_eq!(count(&calls, "SignDocument"), 2, "{calls:?}");
    let n = String::from_utf8_lossy(p.notice.expect("notice").message.as_slice()).into_owned();
    assert!(
        n.contains(&bad) && n.contains("X-KIM-Fehlermeldung: 4004"),
        "{n}"
    );
}

/// A_2178/A_2192 at DATA: a recipient whose certificates carry different Telematik-IDs is
/// not sent to; the others are, and the sender gets the error mail with 4005.
#[test]
fn a_2192_conflicting_telematik_ids_recipient_is_dropped_and_sender_told() {
    let w = world(&[]);
    let mut c = cache();
    let good = w.pki.single.address.clone();
    let bad = w.pki.conflicting.address.clone();
    let p = run(
        &w,
        &mut c,
        &[&good, &bad],
        mail(&w.pki.sender.address, &[&good, &bad]),
        &mut Vec::new(),
    )
    .expect("sent to the good recipient");
    assert_eq!(p.recipients, vec![good.clone()]);
    let n = String::from_utf8_lossy(p.notice.expect("notice").message.as_slice()).into_owned();
    assert!(n.contains("X-KIM-Fehlermeldung: 4005\r\n"), "{n}");
    assert!(n.contains(&bad), "{n}");
}

/// Finding 9, KOM-LE-A_2028: a sender without a certificate is removed from From and the
/// message still goes to the recipients (only A_2025, no recipient, stops the send). The
/// sender's own card cannot open it, and the notice tells the sender so.
#[test]
fn a_2028_sender_without_certificate_is_removed_from_from_and_message_sent() {
    let w = world(&[]);
    let mut c = cache();
    let to = w.pki.single.address.clone();
    let sender = w.pki.no_certificate.address.clone();
    let p = run(&w, &mut c, &[&to], mail(&sender, &[&to]), &mut Vec::new())
        .expect("sent to the recipient");
    assert_eq!(p.recipients, vec![to.clone()]);
    let notice = p.notice.expect("notice to the sender");
    assert_eq!(notice.recipient, sender);
    let n = String::from_utf8_lossy(notice.message.as_slice()).into_owned();
    assert!(
        n.contains(&sender) && n.contains("X-KIM-Fehlermeldung: 4004"),
        "{n}"
    );
    let outer = String::from_utf8_lossy(p.message.as_slice()).into_owned();
    let head = outer.split("\r\n\r\n").next().unwrap();
    assert!(
        !head.contains(&sender),
        "outer From without the sender: {head}"
    );
    let signed = String::from_utf8_lossy(&open(&w, p.message.as_slice(), SINGLE_CARD)).into_owned();
    assert!(!signed.contains(&sender), "inner From without the sender");
}

/// Finding 9 with Abbildung 8: the sender's own certificate is refused by the Konnektor
/// (revoked): the sender is removed from From, the recipient still gets the message.
#[test]
fn a_2028_sender_with_revoked_certificate_is_removed_and_message_sent() {
    let w = world(&[]);
    let mut c = cache();
    let to = w.pki.single.address.clone();
    let sender = w.pki.revoked.address.clone();
    let p = run(&w, &mut c, &[&to], mail(&sender, &[&to]), &mut Vec::new())
        .expect("sent to the recipient");
    assert_eq!(p.recipients, vec![to.clone()]);
    let n = String::from_utf8_lossy(p.notice.expect("notice").message.as_slice()).into_owned();
    assert!(
        n.contains(&sender) && n.contains("X-KIM-Fehlermeldung: 4004"),
        "{n}"
    );
    let signed = String::from_utf8_lossy(&open(&w, p.message.as_slice(), SINGLE_CARD)).into_owned();
    assert!(!signed.contains(&sender), "inner From without the sender");
}

fn sender_pin(state: PinState) -> Setup {
    world_with(|c| {
        for card in &mut c.cards {
            if card.handle == SENDER_CARD {
                card.pin = state;
            }
        }
    })
}

/// Finding 7, §3.8.1: a locked SM-B (PIN verifiable) is unlocked with VerifyPin before
/// SignDocument, and the message goes out.
#[test]
fn a_2058_locked_smb_is_unlocked_with_verify_pin_before_signing() {
    let w = sender_pin(PinState::Verifiable);
    let mut c = cache();
    let to = w.pki.single.address.clone();
    let mut calls = Vec::new();
    let p = run(
        &w,
        &mut c,
        &[&to],
        mail(&w.pki.sender.address, &[&to]),
        &mut calls,
    )
    .expect("signed after VerifyPin");
    let konnektor: Vec<&str> = calls
        .iter()
        .filter(|c| !c.starts_with("lookup"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        konnektor,
        [
            "GetCards",
            "GetPinStatus",
            "VerifyPin",
            "GetJobNumber",
            "SignDocument",
            "EncryptDocument"
        ]
    );
    open(&w, p.message.as_slice(), SINGLE_CARD);
}

/// Finding 7, KOM-LE-A_2058: a blocked SM-B ends the send before SignDocument with a 451
/// text that says why.
#[test]
fn a_2058_blocked_smb_fails_with_a_text_naming_the_blocked_pin() {
    let w = sender_pin(PinState::Blocked);
    let mut c = cache();
    let to = w.pki.single.address.clone();
    let mut calls = Vec::new();
    let err = run(
        &w,
        &mut c,
        &[&to],
        mail(&w.pki.sender.address, &[&to]),
        &mut calls,
    )
    .unwrap_err();
    assert!(err.reason.contains("SM-B ist gesperrt"), "{err:?}");
    assert!(err.reason.contains("PIN"), "{err:?}");
    assert_eq!(count(&calls, "GetPinStatus"), 1, "{calls:?}");
    assert_eq!(count(&calls, "SignDocument"), 0, "{calls:?}");
}

/// The SignDocument/EncryptDocument requests are built from buffers freed while building
/// (issue 9), so asking for the next step again before answering must fail, not send a
/// request with an empty document.
#[test]
fn a_2019_step_again_before_the_answer_fails_instead_of_sending_an_empty_document() {
    let w = world(&[]);
    let mut c = cache();
    let to = w.pki.single.address.clone();
    let job = ProtectJob {
        login: login(),
        envelope_from: w.pki.sender.address.clone(),
        recipients: vec![to.clone()],
        message: SecretBytes::from(mail(&w.pki.sender.address, &[&to])),
    };
    let mut p = Protection::new(job, w.endpoints.clone(), w.now);
    let call = loop {
        match p.step(&mut c) {
            Step::LookUp(a) => {
                let entries = w.world.directory_entries(&a);
                p.directory_answer(&mut c, Ok::<_, DirectoryUnavailable>(entries));
            }
            Step::Call(call) => break call,
            Step::Done(r) => panic!("finished before any Konnektor call: {r:?}"),
        }
    };
    assert!(!call.request.body.is_empty());
    match p.step(&mut c) {
        Step::Done(Err(f)) => assert!(f.reason.contains("Antwort"), "{}", f.reason),
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// Issue 15: the shared pending-answer guard also matches the kind of answer. A directory
/// answer while a Konnektor call is pending (or a Konnektor answer before any call) ends the
/// attempt with a failure instead of being taken for the other.
#[test]
fn a_2019_an_answer_of_the_wrong_kind_fails_the_attempt() {
    let w = world(&[]);
    let mut c = cache();
    let to = w.pki.single.address.clone();
    let job = || ProtectJob {
        login: login(),
        envelope_from: w.pki.sender.address.clone(),
        recipients: vec![to.clone()],
        message: SecretBytes::from(mail(&w.pki.sender.address, &[&to])),
    };
    let mut p = Protection::new(job(), w.endpoints.clone(), w.now);
    loop {
        match p.step(&mut c) {
            Step::LookUp(a) => {
                let entries = w.world.directory_entries(&a);
                p.directory_answer(&mut c, Ok::<_, DirectoryUnavailable>(entries));
            }
            Step::Call(_) => break,
            Step::Done(r) => panic!("finished before any Konnektor call: {r:?}"),
        }
    }
    p.directory_answer(&mut c, Err(DirectoryUnavailable));
    match p.step(&mut c) {
        Step::Done(Err(f)) => assert!(f.reason.contains("ohne Anfrage"), "{}", f.reason),
        other => panic!("expected a failure, got {other:?}"),
    }
    let mut p = Protection::new(job(), w.endpoints.clone(), w.now);
    p.transport_failed(&mut c, TransportError::Unreachable);
    match p.step(&mut c) {
        Step::Done(Err(f)) => assert!(f.reason.contains("ohne Anfrage"), "{}", f.reason),
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// Finding 7, KOM-LE-A_2058: the user mistypes the PIN at the terminal; the signature is
/// abandoned with a 451 text that says the PIN entry failed and how many tries are left.
#[test]
fn a_2058_mistyped_pin_fails_with_the_tries_left_and_signs_nothing() {
    let w = sender_pin(PinState::MistypedAtTerminal);
    let mut c = cache();
    let to = w.pki.single.address.clone();
    let mut calls = Vec::new();
    let err = run(
        &w,
        &mut c,
        &[&to],
        mail(&w.pki.sender.address, &[&to]),
        &mut calls,
    )
    .unwrap_err();
    assert!(err.reason.contains("PIN-Eingabe"), "{err:?}");
    assert!(err.reason.contains("noch 2 Versuche"), "{err:?}");
    assert_eq!(count(&calls, "VerifyPin"), 1, "{calls:?}");
    assert_eq!(count(&calls, "SignDocument"), 0, "{calls:?}");
}

/// A_2025 after Abbildung 8: the only recipient's certificate is refused by the Konnektor
/// (revoked): nobody is left, 451 names the address and the Konnektor's code.
#[test]
fn a_2025_only_recipient_refused_at_encryption_fails_naming_it_and_the_code() {
    let w = world(&[]);
    let mut c = cache();
    let bad = w.pki.revoked.address.clone();
    let mut calls = Vec::new();
    let err = run(
        &w,
        &mut c,
        &[&bad],
        mail(&w.pki.sender.address, &[&bad]),
        &mut calls,
    )
    .unwrap_err();
    assert!(err.reason.contains(&bad), "{err:?}");
    assert!(err.reason.contains("EncryptDocument"), "{err:?}");
    assert!(err.reason.contains("4206"), "{err:?}");
    assert_eq!(count(&calls, "SignDocument"), 1, "{calls:?}");
}
