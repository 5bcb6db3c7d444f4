//! The opening pipeline (core) against the Konnektor simulator: a protected message comes back
//! as the original mail with the verification note, headers and PDF report; gematik's sample 05
//! opens to the sample mail; what cannot be decrypted becomes the error mail (§3.3, A_2043 to
//! A_2050, A_2179).

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use komle_conformance::inprocess;
use komle_conformance::sim::config::{Card, CardKind, PinState, SimConfig};
use komle_conformance::sim::keys::KeyMaterial as SimKey;
use komle_conformance::sim::simulator::Simulator;
use komle_conformance::world::World;
use komle_core::directory::{CacheConfig, CertificateCache};
use komle_core::login_name::LoginName;
use komle_core::pop3::OpenJob;
use komle_core::secret::SecretBytes;
use komle_core::smtp::ProtectJob;

fn job(user: &str, message: &[u8]) -> OpenJob {
    OpenJob {
        login: LoginName::parse(&format!("{user}#127.0.0.1:995#M1#CS1#WP1")).unwrap(),
        message: SecretBytes::from(message.to_vec()),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A message from the world's sender to `to`, protected by the pipeline.
fn protected(world: &World, sim: &Simulator, to: &str, now: SystemTime) -> Vec<u8> {
    let mut cache = CertificateCache::new(CacheConfig {
        lifetime: Duration::from_secs(60),
        capacity: NonZeroUsize::new(8).unwrap(),
    });
    let from = world.pki.sender.address.clone();
    let mail = format!(
        "From: Praxis A <{from}>\r\nTo: <{to}>\r\nSubject: Laborwerte\r\nDate: Fri, 27 Nov 2026 10:00:00 +0100\r\nMessage-ID: <open-1@komle.test>\r\n\r\nKalium 4,1 mmol/l.\r\n"
    );
    let job = ProtectJob {
        login: LoginName::parse(&format!("{from}#127.0.0.1:465#M1#CS1#WP1")).unwrap(),
        envelope_from: from,
        recipients: vec![to.to_owned()],
        message: SecretBytes::from(mail.into_bytes()),
    };
    inprocess::protect(sim, world, &mut cache, job, now, &mut Vec::new())
        .expect("protected")
        .message
        .as_slice()
        .to_vec()
}

#[test]
fn a_2048_a_2179_protected_message_opens_with_note_headers_and_report() {
    let now = SystemTime::now();
    let world = World::generate(now).unwrap();
    let sim = Simulator::new(world.sim_config.clone());
    let to = world.pki.single.address.clone();
    let outer = protected(&world, &sim, &to, now);
    // Received mail carries trace headers from the mail service; they are kept.
    let mut received = b"Return-Path: <sender@komle.test>\r\nReceived: from mx by pop\r\n".to_vec();
    received.extend_from_slice(&outer);
    let mut calls = Vec::new();
    let opened = inprocess::open(&sim, job(&to, &received), now, &mut calls).unwrap();
    let out = text(opened.message.as_slice());
    assert_eq!(
        calls,
        [
            "GetCards",
            // A_2060: the first SM-B (the sender's) holds no certificate named for the
            // user, the second (single's) does.
            "ReadCardCertificate",
            "ReadCardCertificate",
            "GetPinStatus",
            "DecryptDocument",
            "VerifyDocument"
        ]
    );
    assert!(out.contains("Subject: Laborwerte"), "{out}");
    assert!(out.contains("Return-Path: <sender@komle.test>"), "{out}");
    assert!(out.contains("X-KIM-DecryptionResult: 00"), "{out}");
    assert!(out.contains("X-KIM-IntegrityCheckResult: 01"), "{out}");
    assert!(out.contains("Kalium 4,1 mmol/l."), "{out}");
    assert!(out.contains("Die Nachricht wurde entschl"), "{out}");
    assert!(out.contains("application/pdf"), "{out}");
    assert!(
        !out.contains("X-KOM-LE-Version"),
        "the outer wrapper is gone: {out}"
    );
}

#[test]
fn a_2046_message_for_a_card_that_is_not_present_becomes_the_error_mail() {
    let now = SystemTime::now();
    let world = World::generate(now).unwrap();
    let sim = Simulator::new(world.sim_config.clone());
    let to = world.pki.single.address.clone();
    let outer = protected(&world, &sim, &to, now);
    // The recipient's Konnektor has only another practice's card.
    let mut other = world.sim_config.clone();
    other
        .cards
        .retain(|c| c.handle == komle_conformance::world::OLD_AND_NEW_CARD);
    let other = Simulator::new(other);
    let opened = inprocess::open(&other, job(&to, &outer), now, &mut Vec::new()).unwrap();
    let out = text(opened.message.as_slice());
    assert!(out.contains("X-KIM-DecryptionResult: 01"), "{out}");
    assert!(out.contains("Schlüssel wurde nicht gefunden"), "{out}");
    assert!(out.contains("message/rfc822"), "original attached: {out}");
    assert!(
        out.contains("X-KOM-LE-Version: 1.0"),
        "original attached: {out}"
    );
}

#[test]
fn a_2040_plain_mail_passes_unchanged_without_konnektor_calls() {
    let now = SystemTime::now();
    let world = World::generate(now).unwrap();
    let sim = Simulator::new(world.sim_config.clone());
    let plain = b"From: a@b.de\r\nTo: c@d.de\r\nSubject: hallo\r\n\r\nkein KOM-LE\r\n";
    let mut calls = Vec::new();
    let opened = inprocess::open(&sim, job("c@d.de", plain), now, &mut calls).unwrap();
    assert_eq!(opened.message.as_slice(), plain);
    assert!(calls.is_empty(), "{calls:?}");
}

fn samples() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for up in here.ancestors() {
        let p = up.join("shared/spec/samples/smime-profil");
        if p.is_dir() {
            return p;
        }
    }
    panic!("gematik samples not found above {}", here.display());
}

fn pem_der(path: PathBuf) -> Vec<u8> {
    use base64::Engine as _;
    let pem = std::fs::read_to_string(path).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

/// gematik's sample 05 decrypts (DecryptDocument with recipient B's key yields exactly sample
/// 03, see the simulator's golden tests), but sample 03 itself is damaged: the tool that made it
/// turned every bare CR and LF inside the binary SignedData into CRLF, so its DER no longer
/// parses (42 bytes too many; sample 02 is the intact SignedData). The honest outcome is what
/// the Clientmodul reports: decrypted (00), integrity check "wrong format" (04), the outer
/// addressing kept, and no content presented as verified.
#[test]
fn gematik_sample_05_decrypts_and_its_damaged_signed_data_is_reported_as_wrong_format() {
    let dir = samples();
    let card = Card {
        handle: "SMCB-B".into(),
        kind: CardKind::SmcB,
        iccsn: "80276000000000000003".into(),
        telematik_id: "2-290003".into(),
        holder: "Zahnarztpraxis 2".into(),
        user_id: None,
        osig: None,
        enc: vec![SimKey {
            cert_der: pem_der(dir.join("recipientB/hci-enc-3-kim-bsp.pem")),
            private_key_pkcs8_der: pem_der(dir.join("recipientB/hci-enc-3-kim-bsp.prv.pem")),
        }],
        pin: PinState::Verified,
    };
    // Inside the validity of gematik's test certificates.
    let now_unix = 1_640_995_200; // 2022-01-01
    let sim = Simulator::new(SimConfig {
        cards: vec![card],
        now_unix: Some(now_unix),
        ..SimConfig::default()
    });
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(now_unix);
    let sample05 = std::fs::read(dir.join("inputEmail.txt.05.encryptedwrap")).unwrap();
    let mut calls = Vec::new();
    let opened = inprocess::open(
        &sim,
        job("musterempfaenger@komle.de", &sample05),
        now,
        &mut calls,
    )
    .unwrap();
    let out = text(opened.message.as_slice());
    assert_eq!(
        calls,
        [
            "GetCards",
            "ReadCardCertificate",
            "GetPinStatus",
            "DecryptDocument",
            "VerifyDocument"
        ]
    );
    assert!(out.contains("X-KIM-DecryptionResult: 00"), "{out}");
    assert!(out.contains("X-KIM-IntegrityCheckResult: 04"), "{out}");
    assert!(
        out.contains("To: Steffi Musterempfaenger <musterempfaenger@komle.de>"),
        "{out}"
    );
    assert!(out.contains("Die Nachricht wurde entschl"), "{out}");
    assert!(
        !out.contains("This is a message just to say hello."),
        "{out}"
    );
}

// --- Tab_Verm_Sig_Prüf / Tab_Fehlertext_Entschl through the pipeline, with a simulator that
// --- answers like a real Konnektor (issue 14).

use komle_conformance::inprocess::endpoints;
use komle_conformance::world::SENDER_CARD;
use komle_core::konnektor::TransportError;
use komle_core::open::{CardCache, Reception, Step};
use komle_core::smime::DeliveryOptions;

/// Opens `job` with `options` (the A_23165 switch) and returns the delivered mail.
fn open_with(sim: &Simulator, job: OpenJob, now: SystemTime, options: DeliveryOptions) -> Vec<u8> {
    let mut r = Reception::new(job, endpoints(sim), now, options);
    let mut cards = CardCache::default();
    loop {
        match r.step() {
            Step::Call(c) => {
                let answer = sim.handle(c.request.soap_action, &c.request.body);
                r.konnektor_answer(&mut cards, answer.body);
            }
            Step::FetchKas(_) => r.kas_fetched(Err(komle_core::kas::KasOpenError::DownloadFailed)),
            Step::Done(result) => return result.unwrap().message.as_slice().to_vec(),
        }
    }
}

fn head(mail: &str) -> &str {
    &mail[..mail.find("\r\n\r\n").unwrap_or(mail.len())]
}

/// The sender's Konnektor with the sender's SM-B signature key replaced by `osig`.
fn sender_konnektor_with(world: &World, osig: SimKey) -> Simulator {
    let mut c = world.sim_config.clone();
    let card = c
        .cards
        .iter_mut()
        .find(|c| c.handle == SENDER_CARD)
        .unwrap();
    card.osig = Some(osig);
    Simulator::new(c)
}

const MARKER: &str = "Kalium 4,1 mmol/l.";
const WARNING: &str = "Beim Empfang dieser KIM-Nachricht wurde eine Sicherheitsverletzung erkannt.";

/// Finding 1: a message signed with a self-made certificate carrying the sending practice's
/// name. The Konnektor cannot build the path (unknown issuer): INCONCLUSIVE with 4206 only in
/// the report. Before: 07 "valid" with the forged name and the content delivered.
#[test]
fn a_2050_05_a_23165_forged_sender_certificate_is_05_and_the_content_is_replaced() {
    let now = SystemTime::now();
    let world = World::generate(now).unwrap();
    let forged = world.pki.forged_osig(&world.pki.sender).unwrap();
    let forger = sender_konnektor_with(
        &world,
        SimKey {
            cert_der: forged.cert_der.clone(),
            private_key_pkcs8_der: forged.private_key_pkcs8_der.clone(),
        },
    );
    let to = world.pki.single.address.clone();
    let outer = protected(&world, &forger, &to, now);
    let sim = Simulator::new(world.sim_config.clone());
    let out = text(&open_with(
        &sim,
        job(&to, &outer),
        now,
        DeliveryOptions::default(),
    ));
    assert!(
        head(&out).contains("X-KIM-IntegrityCheckResult: 05\r\n"),
        "{out}"
    );
    assert!(!out.contains("X-KIM-IntegrityCheckResult: 07"), "{out}");
    assert!(!out.contains(MARKER), "forged content delivered: {out}");
    assert!(out.contains(WARNING), "{out}");
    assert!(!out.contains("Die Signatur wurde erfolgreich"), "{out}");
}

/// Finding 2: a broken signature (signed with a key that does not belong to the certificate)
/// is reported by the Konnektor only in the verification report (SigMathOK invalid, ResultMinor
/// IncorrectSignature) with Status OK. Before: 06 "Konnektor error".
#[test]
fn a_2050_05_broken_signature_reported_only_in_the_report_is_02() {
    let now = SystemTime::now();
    let world = World::generate(now).unwrap();
    let real = world.pki.sender.osig[0].clone();
    let wrong_key = world.pki.forged_osig(&world.pki.sender).unwrap();
    let broken = sender_konnektor_with(
        &world,
        SimKey {
            cert_der: real.cert_der.clone(),
            private_key_pkcs8_der: wrong_key.private_key_pkcs8_der.clone(),
        },
    );
    let to = world.pki.single.address.clone();
    let outer = protected(&world, &broken, &to, now);
    let sim = Simulator::new(world.sim_config.clone());
    let out = text(&open_with(
        &sim,
        job(&to, &outer),
        now,
        DeliveryOptions::default(),
    ));
    assert!(
        head(&out).contains("X-KIM-IntegrityCheckResult: 02\r\n"),
        "{out}"
    );
    assert!(!out.contains(MARKER), "{out}");
    assert!(out.contains(WARNING), "{out}");
}

/// Finding 5 / A_23165's alternative: with the switch on, the original is delivered despite
/// the failed check, the result in the header and appended to the text, no success Vermerk.
#[test]
fn a_23165_switch_delivers_the_original_with_the_failure_appended() {
    let now = SystemTime::now();
    let world = World::generate(now).unwrap();
    let forged = world.pki.forged_osig(&world.pki.sender).unwrap();
    let forger = sender_konnektor_with(
        &world,
        SimKey {
            cert_der: forged.cert_der,
            private_key_pkcs8_der: forged.private_key_pkcs8_der,
        },
    );
    let to = world.pki.single.address.clone();
    let outer = protected(&world, &forger, &to, now);
    let sim = Simulator::new(world.sim_config.clone());
    let options = DeliveryOptions {
        deliver_original_on_failure: true,
    };
    let out = text(&open_with(&sim, job(&to, &outer), now, options));
    assert!(
        head(&out).contains("X-KIM-IntegrityCheckResult: 05\r\n"),
        "{out}"
    );
    assert!(!out.contains(WARNING), "{out}");
    assert!(
        out.contains(&format!(
            "{MARKER}\r\n\r\n---------------------------------------------\r\nDie Nachricht wurde entschlüsselt.\r\nDer Zertifizierungspfad des Signaturzertifikats kann nicht validiert werden.\r\n"
        )),
        "{out}"
    );
    assert!(!out.contains("Die Signatur wurde erfolgreich"), "{out}");
}

/// Finding 4 (A_2179-01, A_2050-05): the notes are appended to the message text itself, not
/// put into a separate first part; 07 (4264, OCSP unreachable) carries the same Vermerk as 01.
#[test]
fn a_2179_01_a_2050_05_notes_are_appended_to_the_text_for_01_and_07() {
    let now = SystemTime::now();
    let world = World::generate(now).unwrap();
    let sim = Simulator::new(world.sim_config.clone());
    let to = world.pki.single.address.clone();
    let outer = protected(&world, &sim, &to, now);
    let mut no_ocsp = world.sim_config.clone();
    no_ocsp.revocation_status_unavailable = true;
    let no_ocsp = Simulator::new(no_ocsp);
    for (konnektor, id) in [(&sim, "01"), (&no_ocsp, "07")] {
        let out = text(&open_with(
            konnektor,
            job(&to, &outer),
            now,
            DeliveryOptions::default(),
        ));
        assert!(
            head(&out).contains(&format!("X-KIM-IntegrityCheckResult: {id}\r\n")),
            "{out}"
        );
        let body = &out[head(&out).len()..];
        let first_part = body.split("\r\n--KOMLE-").nth(1).unwrap_or_default();
        // The part ends with the notes (its last line end belongs to the next delimiter).
        assert!(
            first_part.ends_with(&format!(
                "{MARKER}\r\n\r\n---------------------------------------------\r\nDie Nachricht wurde entschlüsselt.\r\nDie Signatur wurde erfolgreich geprüft."
            )),
            "{id}: {first_part}"
        );
        assert_eq!(out.matches("Content-Type: text/plain").count(), 1, "{out}");
    }
}

/// Finding 3 (A_2047-02): a ciphertext corrupted in transit fails the Konnektor's tag check
/// (gematik code 4141). That is outside Tab_Fehlertext_Entschl: a vendor code starting with X,
/// not 01 "key not found" whose advice (insert the card, forward to yourself) cannot help.
#[test]
fn a_2047_02_corrupted_ciphertext_gets_a_vendor_code_not_key_not_found() {
    use base64::Engine as _;
    let now = SystemTime::now();
    let world = World::generate(now).unwrap();
    let sim = Simulator::new(world.sim_config.clone());
    let to = world.pki.single.address.clone();
    let outer = protected(&world, &sim, &to, now);
    let h = komle_core::smime::headers::parse(&outer).unwrap();
    let b64: String = String::from_utf8_lossy(&outer[h.body..])
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let mut cms = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    // The encrypted content is the bulk of the AuthEnvelopedData; its middle is ciphertext.
    let at = cms.len() * 2 / 3;
    cms[at] ^= 0x55;
    let mut corrupted = outer[..h.body].to_vec();
    komle_core::smime::outer::push_base64_lines(&mut corrupted, &cms);
    corrupted.extend_from_slice(b"\r\n");
    let mut calls = Vec::new();
    let opened = inprocess::open(&sim, job(&to, &corrupted), now, &mut calls).unwrap();
    let out = text(opened.message.as_slice());
    assert_eq!(
        calls,
        [
            "GetCards",
            "ReadCardCertificate",
            "ReadCardCertificate",
            "GetPinStatus",
            "DecryptDocument"
        ]
    );
    assert!(
        head(&out).contains("X-KIM-DecryptionResult: X4141\r\n"),
        "{out}"
    );
    assert!(!out.contains("X-KIM-DecryptionResult: 01"), "{out}");
    assert!(!out.contains("Karte gesteckt"), "{out}");
    assert!(out.contains("Fehlercode 4141"), "{out}");
    assert!(out.contains("message/rfc822"), "original attached: {out}");
}

/// Opens `job`, letting `tamper` replace the Konnektor's answer to an operation (by name).
fn open_tampered(
    sim: &Simulator,
    job: OpenJob,
    now: SystemTime,
    tamper: impl Fn(&str) -> Option<Result<Vec<u8>, TransportError>>,
) -> String {
    let mut r = Reception::new(job, endpoints(sim), now, DeliveryOptions::default());
    let mut cards = CardCache::default();
    loop {
        match r.step() {
            Step::Call(c) => {
                let op = c.request.soap_action.rsplit('#').next().unwrap_or_default();
                let answer = tamper(op)
                    .unwrap_or_else(|| Ok(sim.handle(c.request.soap_action, &c.request.body).body));
                match answer {
                    Ok(body) => r.konnektor_answer(&mut cards, body),
                    Err(e) => r.transport_failed(&mut cards, e),
                }
            }
            Step::FetchKas(_) => r.kas_fetched(Err(komle_core::kas::KasOpenError::DownloadFailed)),
            Step::Done(result) => return text(result.unwrap().message.as_slice()),
        }
    }
}

/// A_2047-02: an answer to DecryptDocument that is neither a result nor a gematik error is
/// outside Tab_Fehlertext_Entschl: vendor code X01, the original attached.
#[test]
fn a_2047_02_unreadable_decrypt_document_answer_is_x01() {
    let now = SystemTime::now();
    let world = World::generate(now).unwrap();
    let sim = Simulator::new(world.sim_config.clone());
    let to = world.pki.single.address.clone();
    let outer = protected(&world, &sim, &to, now);
    let out = open_tampered(&sim, job(&to, &outer), now, |op| {
        (op == "DecryptDocument").then(|| Ok(b"<kein SOAP".to_vec()))
    });
    assert!(
        head(&out).contains("X-KIM-DecryptionResult: X01\r\n"),
        "{out}"
    );
    assert!(out.contains("message/rfc822"), "{out}");
    assert!(!out.contains(MARKER), "{out}");
}

/// A_23165 / Tab_Verm_Sig_Prüf: a VerifyDocument fault with a code the table does not place is
/// 06; no answer (X01) and an unreadable answer (X02) are outside the table. Each replaces the
/// content by default.
#[test]
fn a_23165_verify_document_fault_unreachable_and_unreadable_are_06_x01_x02() {
    use komle_conformance::sim::config::{Fault, Operation};
    let now = SystemTime::now();
    let world = World::generate(now).unwrap();
    let sim = Simulator::new(world.sim_config.clone());
    let to = world.pki.single.address.clone();
    let outer = protected(&world, &sim, &to, now);
    let mut faulty = world.sim_config.clone();
    faulty.faults.insert(
        Operation::VerifyDocument,
        Fault::SoapFault {
            code: 4999,
            text: "injected".into(),
        },
    );
    let faulty = Simulator::new(faulty);
    type Answer = Option<Result<Vec<u8>, TransportError>>;
    let cases: [(&Simulator, Answer, &str); 3] = [
        (&faulty, None, "06"),
        (&sim, Some(Err(TransportError::Unreachable)), "X01"),
        (&sim, Some(Ok(b"<soap:Envelope/>".to_vec())), "X02"),
    ];
    for (konnektor, answer, id) in cases {
        let out = open_tampered(konnektor, job(&to, &outer), now, |op| {
            (op == "VerifyDocument").then(|| answer.clone()).flatten()
        });
        assert!(
            head(&out).contains(&format!("X-KIM-IntegrityCheckResult: {id}\r\n")),
            "{id}: {out}"
        );
        assert!(
            head(&out).contains("X-KIM-DecryptionResult: 00\r\n"),
            "{out}"
        );
        assert!(!out.contains(MARKER), "{id}: {out}");
        assert!(out.contains(WARNING), "{id}: {out}");
    }
}

/// Tab_Fehlertext_Entschl 03: DecryptDocument not answered; the table's text with the user's
/// address, the original attached.
#[test]
fn a_2047_02_konnektor_not_answering_decrypt_document_is_03() {
    let now = SystemTime::now();
    let world = World::generate(now).unwrap();
    let sim = Simulator::new(world.sim_config.clone());
    let to = world.pki.single.address.clone();
    let outer = protected(&world, &sim, &to, now);
    let out = open_tampered(&sim, job(&to, &outer), now, |op| {
        (op == "DecryptDocument").then_some(Err(TransportError::Timeout))
    });
    assert!(
        head(&out).contains("X-KIM-DecryptionResult: 03\r\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Die Entschlüsselung konnte nicht erfolgen, weil der Konnektor nicht antwortet. Stellen Sie sicher, dass der Konnektor wieder zur Verfügung steht und leiten Sie diese Nachricht an Ihre eigene E-Mail-Adresse ({to}) weiter. Beim nächsten Abholen wird der Entschlüsselungsvorgang wiederholt."
        )),
        "{out}"
    );
}

/// §3.8.4 activities 5-7 (finding 7, receive side): GetPinStatus before DecryptDocument; a
/// verifiable PIN is verified at the card terminal (VerifyPin), then the card decrypts. Before,
/// DecryptDocument was called with the card locked and the user got "key not found".
#[test]
fn a_2063_a_verifiable_pin_is_verified_before_decrypt_document() {
    let now = SystemTime::now();
    let world = World::generate(now).unwrap();
    let to = world.pki.single.address.clone();
    let outer = protected(&world, &Simulator::new(world.sim_config.clone()), &to, now);
    let mut locked = world.sim_config.clone();
    for c in &mut locked.cards {
        c.pin = PinState::Verifiable;
    }
    let locked = Simulator::new(locked);
    let mut calls = Vec::new();
    let opened = inprocess::open(&locked, job(&to, &outer), now, &mut calls).unwrap();
    let out = text(opened.message.as_slice());
    assert_eq!(
        calls,
        [
            "GetCards",
            "ReadCardCertificate",
            "ReadCardCertificate",
            "GetPinStatus",
            "VerifyPin",
            "DecryptDocument",
            "VerifyDocument"
        ]
    );
    assert!(
        head(&out).contains("X-KIM-DecryptionResult: 00\r\n"),
        "{out}"
    );
    assert!(out.contains(MARKER), "{out}");
}

/// KOM-LE-A_2063: when the card cannot be unlocked (PIN blocked), decryption is abandoned
/// without DecryptDocument; the error mail says so (vendor code X02, outside the table).
#[test]
fn a_2063_a_blocked_pin_abandons_decryption() {
    let now = SystemTime::now();
    let world = World::generate(now).unwrap();
    let to = world.pki.single.address.clone();
    let outer = protected(&world, &Simulator::new(world.sim_config.clone()), &to, now);
    let mut blocked = world.sim_config.clone();
    for c in &mut blocked.cards {
        c.pin = PinState::Blocked;
    }
    let blocked = Simulator::new(blocked);
    let mut calls = Vec::new();
    let opened = inprocess::open(&blocked, job(&to, &outer), now, &mut calls).unwrap();
    let out = text(opened.message.as_slice());
    assert_eq!(
        calls,
        [
            "GetCards",
            "ReadCardCertificate",
            "ReadCardCertificate",
            "GetPinStatus"
        ]
    );
    assert!(
        head(&out).contains("X-KIM-DecryptionResult: X02\r\n"),
        "{out}"
    );
    assert!(out.contains("konnte nicht freigeschaltet werden"), "{out}");
    assert!(out.contains("message/rfc822"), "{out}");
    assert!(!out.contains(MARKER), "{out}");
}

// --- Issue 14 finding 6: the right card for the right user (gemSpec_CM_KOMLE §3.4.4.2.1,
// --- §3.8.4, KOM-LE-A_2043–A_2045, A_2059–A_2062). Practice `single` has its SM-B and the
// --- HBAs of physicians A (`arzt-a`) and B (`arzt-b`) in one Konnektor.

use komle_conformance::sim::config::Operation;
use komle_conformance::world::{HBA_A_CARD, HBA_B_CARD, SINGLE_CARD};

/// The POP3 login of `user`, with a UserId (needed for HBA access) when given.
fn job_as(user: &str, user_id: Option<&str>, message: &[u8]) -> OpenJob {
    let uid = user_id.map(|u| format!("#{u}")).unwrap_or_default();
    OpenJob {
        login: LoginName::parse(&format!("{user}#127.0.0.1:995#M1#CS1#WP1{uid}")).unwrap(),
        message: SecretBytes::from(message.to_vec()),
    }
}

/// A message from the world's sender to all of `to`, protected by the pipeline.
fn protected_for(world: &World, to: &[&str], now: SystemTime) -> Vec<u8> {
    let sim = Simulator::new(world.sim_config.clone());
    let mut cache = CertificateCache::new(CacheConfig {
        lifetime: Duration::from_secs(60),
        capacity: NonZeroUsize::new(8).unwrap(),
    });
    let from = world.pki.sender.address.clone();
    let mail = format!(
        "From: <{from}>\r\nTo: {}\r\nSubject: Befund\r\nDate: Fri, 27 Nov 2026 10:00:00 +0100\r\nMessage-ID: <card-1@komle.test>\r\n\r\n{MARKER}\r\n",
        to.iter()
            .map(|a| format!("<{a}>"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let job = ProtectJob {
        login: LoginName::parse(&format!("{from}#127.0.0.1:465#M1#CS1#WP1")).unwrap(),
        envelope_from: from,
        recipients: to.iter().map(|a| (*a).to_owned()).collect(),
        message: SecretBytes::from(mail.into_bytes()),
    };
    inprocess::protect(&sim, world, &mut cache, job, now, &mut Vec::new())
        .expect("protected")
        .message
        .as_slice()
        .to_vec()
}

/// The card handles DecryptDocument was called with, in order.
fn decrypted_with(sim: &Simulator) -> Vec<String> {
    sim.call_log()
        .into_iter()
        .filter(|c| c.operation == Operation::DecryptDocument)
        .map(|c| c.card_handle.unwrap_or_default())
        .collect()
}

fn count(sim: &Simulator, op: Operation) -> usize {
    sim.call_log().iter().filter(|c| c.operation == op).count()
}

/// A_2043/A_2059: a message for physician A opens in A's session, with A's HBA and nothing
/// else; the card was found by comparing A's certificate IDs from recipient-emails with the
/// cards' C.ENC certificates (ReadCardCertificate, A_2060).
#[test]
fn a_2043_a_2059_message_for_hba_user_a_opens_only_with_a_card_in_a_session() {
    let now = SystemTime::now();
    let world = World::generate(now).unwrap();
    let a = world.pki.hba_a.address.clone();
    let outer = protected_for(&world, &[&a], now);
    let sim = Simulator::new(world.sim_config.clone());
    let opened = inprocess::open(
        &sim,
        job_as(&a, Some("arzt-a"), &outer),
        now,
        &mut Vec::new(),
    )
    .unwrap();
    let out = text(opened.message.as_slice());
    assert!(out.contains("X-KIM-DecryptionResult: 00"), "{out}");
    assert!(out.contains("X-KIM-IntegrityCheckResult: 01"), "{out}");
    assert!(out.contains(MARKER), "{out}");
    assert_eq!(decrypted_with(&sim), [HBA_A_CARD]);
    let log = sim.call_log();
    assert!(
        log.iter()
            .filter(|c| c.operation == Operation::GetPinStatus)
            .all(|c| c.card_handle.as_deref() == Some(HBA_A_CARD)),
        "PIN.CH asked only of A's HBA: {log:?}"
    );
    assert!(count(&sim, Operation::ReadCardCertificate) >= 1);
}

/// A_2045 and §3.4.4.2.1: physician B of the same practice (own HBA in the same Konnektor) and
/// the practice's SM-B user fetch the message for A: recipient-emails names no certificate for
/// them, so decryption counts as failed (Tab_Fehlertext_Entschl 01, the original attached),
/// and DecryptDocument is never called, least of all with A's card.
#[test]
fn a_2045_other_users_of_the_practice_get_01_and_a_card_is_never_used_for_them() {
    let now = SystemTime::now();
    let world = World::generate(now).unwrap();
    let a = world.pki.hba_a.address.clone();
    let outer = protected_for(&world, &[&a], now);
    for (user, user_id) in [
        (world.pki.hba_b.address.clone(), Some("arzt-b")),
        // A UserId in the login name does not make A's card B's: the address decides.
        (world.pki.hba_b.address.clone(), Some("arzt-a")),
        (world.pki.single.address.clone(), None),
    ] {
        let sim = Simulator::new(world.sim_config.clone());
        let opened =
            inprocess::open(&sim, job_as(&user, user_id, &outer), now, &mut Vec::new()).unwrap();
        let out = text(opened.message.as_slice());
        assert!(
            head(&out).contains("X-KIM-DecryptionResult: 01\r\n"),
            "{user}: {out}"
        );
        assert!(out.contains("Schlüssel wurde nicht gefunden"), "{out}");
        assert!(
            out.contains(&format!("({user})")),
            "own address named: {out}"
        );
        assert!(out.contains("message/rfc822"), "original attached: {out}");
        assert!(!out.contains(MARKER), "content leaked to {user}: {out}");
        assert!(!out.contains("X-KIM-DecryptionResult: 00"), "{out}");
        assert!(decrypted_with(&sim).is_empty(), "{:?}", sim.call_log());
        assert!(
            sim.call_log()
                .iter()
                .all(|c| c.card_handle.as_deref() != Some(HBA_A_CARD)),
            "A's card touched in {user}'s session: {:?}",
            sim.call_log()
        );
    }
}

/// A_2045: a message for A and B is opened by each with their own HBA only, although both
/// cards are in the Konnektor and both PINs are verified.
#[test]
fn a_2045_message_for_a_and_b_is_opened_by_each_with_the_own_card() {
    let now = SystemTime::now();
    let world = World::generate(now).unwrap();
    let a = world.pki.hba_a.address.clone();
    let b = world.pki.hba_b.address.clone();
    let outer = protected_for(&world, &[&a, &b], now);
    for (user, user_id, card) in [(&b, "arzt-b", HBA_B_CARD), (&a, "arzt-a", HBA_A_CARD)] {
        let sim = Simulator::new(world.sim_config.clone());
        let opened = inprocess::open(
            &sim,
            job_as(user, Some(user_id), &outer),
            now,
            &mut Vec::new(),
        )
        .unwrap();
        let out = text(opened.message.as_slice());
        assert!(out.contains("X-KIM-DecryptionResult: 00"), "{out}");
        assert!(out.contains(MARKER), "{out}");
        assert_eq!(decrypted_with(&sim), [card], "{user}");
    }
}

/// A_2059: a message for the practice's SM-B address opens with the SM-B (PIN.SMC), also when
/// the login carries a physician's UserId; no HBA is touched.
#[test]
fn a_2059_message_for_the_practice_address_opens_with_the_smb() {
    let now = SystemTime::now();
    let world = World::generate(now).unwrap();
    let practice = world.pki.single.address.clone();
    let outer = protected_for(&world, &[&practice], now);
    for user_id in [None, Some("arzt-a")] {
        let sim = Simulator::new(world.sim_config.clone());
        let opened = inprocess::open(
            &sim,
            job_as(&practice, user_id, &outer),
            now,
            &mut Vec::new(),
        )
        .unwrap();
        let out = text(opened.message.as_slice());
        assert!(out.contains("X-KIM-DecryptionResult: 00"), "{out}");
        assert!(out.contains(MARKER), "{out}");
        assert_eq!(decrypted_with(&sim), [SINGLE_CARD]);
        let log = sim.call_log();
        assert!(
            log.iter()
                .filter(|c| c.operation != Operation::ReadCardCertificate)
                .all(|c| !matches!(c.card_handle.as_deref(), Some(HBA_A_CARD | HBA_B_CARD))),
            "{log:?}"
        );
    }
}

/// A_2062: A logs in without a UserId: the HBA cannot be used (§3.4.2.2: the UserId is
/// required for HBA access), no other card holds A's key, decryption fails with 01.
#[test]
fn a_2062_hba_user_without_user_id_gets_01_and_no_decryption() {
    let now = SystemTime::now();
    let world = World::generate(now).unwrap();
    let a = world.pki.hba_a.address.clone();
    let outer = protected_for(&world, &[&a], now);
    let sim = Simulator::new(world.sim_config.clone());
    let opened = inprocess::open(&sim, job_as(&a, None, &outer), now, &mut Vec::new()).unwrap();
    let out = text(opened.message.as_slice());
    assert!(
        head(&out).contains("X-KIM-DecryptionResult: 01\r\n"),
        "{out}"
    );
    assert!(!out.contains(MARKER), "{out}");
    assert!(decrypted_with(&sim).is_empty());
}

/// A_2060/A_2061 with Tab_Konf_Param TTL_EMAIL_ICCSN (30 days): the card found for A's
/// certificate is remembered; the next message within the TTL needs GetCards only (the
/// remembered ICCSN is still listed), one after the TTL is looked up again. Time is the
/// pipeline's `now`, nothing reads a clock.
#[test]
fn a_2060_a_2061_card_cache_is_used_within_ttl_email_iccsn_and_refreshed_after() {
    let now = SystemTime::now();
    let world = World::generate(now).unwrap();
    let a = world.pki.hba_a.address.clone();
    let outer = protected_for(&world, &[&a], now);
    let sim = Simulator::new(world.sim_config.clone());
    let mut cards = CardCache::default();
    let open_at = |cards: &mut CardCache, at: SystemTime| {
        let before = count(&sim, Operation::ReadCardCertificate);
        let opened = inprocess::open_with_cards(
            &sim,
            cards,
            job_as(&a, Some("arzt-a"), &outer),
            at,
            &mut Vec::new(),
        )
        .unwrap();
        let out = text(opened.message.as_slice());
        assert!(out.contains("X-KIM-DecryptionResult: 00"), "{out}");
        count(&sim, Operation::ReadCardCertificate) - before
    };
    assert!(open_at(&mut cards, now) >= 1, "first message: cards read");
    assert_eq!(cards.len(), 1, "A_2061: the assignment is stored");
    let day = Duration::from_secs(86_400);
    assert_eq!(open_at(&mut cards, now + day), 0, "within the TTL: cache");
    assert_eq!(
        open_at(&mut cards, now + 29 * day),
        0,
        "still within the TTL"
    );
    assert!(
        open_at(&mut cards, now + 30 * day + Duration::from_secs(1)) >= 1,
        "after the TTL: looked up again"
    );
    assert_eq!(
        open_at(&mut cards, now + 31 * day),
        0,
        "refreshed entry used again"
    );
    assert_eq!(decrypted_with(&sim), vec![HBA_A_CARD; 5]);
}

/// §3.8.4 activity 2: a remembered card that GetCards no longer lists (pulled, another card
/// with another ICCSN in the slot) is not used blindly: the cards present are searched again,
/// and without A's card the message is not decrypted (A_2062).
#[test]
fn a_2060_remembered_card_that_is_gone_is_not_used() {
    let now = SystemTime::now();
    let world = World::generate(now).unwrap();
    let a = world.pki.hba_a.address.clone();
    let outer = protected_for(&world, &[&a], now);
    let mut cards = CardCache::default();
    let sim = Simulator::new(world.sim_config.clone());
    inprocess::open_with_cards(
        &sim,
        &mut cards,
        job_as(&a, Some("arzt-a"), &outer),
        now,
        &mut Vec::new(),
    )
    .unwrap();
    let mut without_a = world.sim_config.clone();
    without_a.cards.retain(|c| c.handle != HBA_A_CARD);
    let sim = Simulator::new(without_a);
    let opened = inprocess::open_with_cards(
        &sim,
        &mut cards,
        job_as(&a, Some("arzt-a"), &outer),
        now,
        &mut Vec::new(),
    )
    .unwrap();
    let out = text(opened.message.as_slice());
    assert!(
        head(&out).contains("X-KIM-DecryptionResult: 01\r\n"),
        "{out}"
    );
    assert!(count(&sim, Operation::ReadCardCertificate) >= 1);
    assert!(decrypted_with(&sim).is_empty());
}

/// §3.8.4 activity 3 when ReadCardCertificate fails: a card whose certificate the Konnektor
/// refuses to read cannot be shown to hold the user's key, so it is not used (01, A_2062);
/// no answer at all is Tab_Fehlertext_Entschl 03 like every unanswered call.
#[test]
fn a_2060_read_card_certificate_refused_is_01_and_unanswered_is_03() {
    use komle_conformance::sim::config::Fault;
    let now = SystemTime::now();
    let world = World::generate(now).unwrap();
    let a = world.pki.hba_a.address.clone();
    let outer = protected_for(&world, &[&a], now);

    let mut refusing = world.sim_config.clone();
    refusing.faults.insert(
        Operation::ReadCardCertificate,
        Fault::SoapFault {
            code: 4001,
            text: "injected".into(),
        },
    );
    let refusing = Simulator::new(refusing);
    let out = text(&open_with(
        &refusing,
        job_as(&a, Some("arzt-a"), &outer),
        now,
        DeliveryOptions::default(),
    ));
    assert!(
        head(&out).contains("X-KIM-DecryptionResult: 01\r\n"),
        "{out}"
    );
    assert!(decrypted_with(&refusing).is_empty());
    assert!(!out.contains(MARKER), "{out}");

    let sim = Simulator::new(world.sim_config.clone());
    let out = open_tampered(&sim, job_as(&a, Some("arzt-a"), &outer), now, |op| {
        (op == "ReadCardCertificate").then_some(Err(TransportError::Timeout))
    });
    assert!(
        head(&out).contains("X-KIM-DecryptionResult: 03\r\n"),
        "{out}"
    );
    assert!(decrypted_with(&sim).is_empty());
    assert!(!out.contains(MARKER), "{out}");
}

/// Issue 15, the guard of commit 680d8b3 now shared with the protection pipeline: a second
/// `step()` while DecryptDocument's answer is pending ends the pipeline with a failure. Before,
/// it built the call again, and for the last card that call went out without the message
/// (taken out by the first). An answer nobody asked for is refused the same way.
#[test]
fn a_second_step_while_an_answer_is_pending_fails_cleanly() {
    let now = SystemTime::now();
    let world = World::generate(now).unwrap();
    let sim = Simulator::new(world.sim_config.clone());
    let to = world.pki.single.address.clone();
    let outer = protected(&world, &sim, &to, now);
    let mut cards = CardCache::default();
    let options = DeliveryOptions::default();
    let mut r = Reception::new(job(&to, &outer), endpoints(&sim), now, options);
    loop {
        match r.step() {
            Step::Call(c) if c.request.soap_action.ends_with("DecryptDocument") => break,
            Step::Call(c) => {
                let answer = sim.handle(c.request.soap_action, &c.request.body);
                r.konnektor_answer(&mut cards, answer.body);
            }
            Step::FetchKas(_) => r.kas_fetched(Err(komle_core::kas::KasOpenError::DownloadFailed)),
            Step::Done(result) => panic!("finished before DecryptDocument: {result:?}"),
        }
    }
    match r.step() {
        Step::Done(Err(f)) => assert!(f.reason.contains("steht noch aus"), "{}", f.reason),
        other => panic!("a second step while the answer is pending: {other:?}"),
    }
    // The late answer changes nothing: the pipeline stays finished.
    r.konnektor_answer(&mut cards, b"<late/>".to_vec());
    match r.step() {
        Step::Done(Err(f)) => assert!(f.reason.contains("abgeschlossen"), "{}", f.reason),
        other => panic!("after the end: {other:?}"),
    }

    let mut r = Reception::new(job(&to, &outer), endpoints(&sim), now, options);
    r.transport_failed(&mut cards, TransportError::Timeout);
    match r.step() {
        Step::Done(Err(f)) => assert!(f.reason.contains("ohne Anfrage"), "{}", f.reason),
        other => panic!("an unasked answer: {other:?}"),
    }
}
