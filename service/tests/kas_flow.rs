//! KIM 1.5 large messages through the service pipeline (gemSpec_CM_KOMLE V1.16 §3.2): the
//! send path stores the encrypted mail data on the KAS simulator (mutual TLS, AttachmentService
//! 2.4) and signs/encrypts the small KOM-LE message with the Konnektor simulator; the receive
//! path decrypts that message, fetches, decrypts and checks the mail data and delivers the
//! client mail. Directory in memory: who has the large-message opt-in (`1.5+`) is per test.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use komle_conformance::inprocess;
use komle_conformance::kas_sim::{KasSim, KasSimConfig};
use komle_conformance::sim::simulator::Simulator;
use komle_conformance::world::World;
use komle_core::directory::{CacheConfig, CertificateCache, DirectoryEntry};
use komle_core::kas::KONNEKTOR_LIMIT;
use komle_core::login_name::LoginName;
use komle_core::pop3::OpenJob;
use komle_core::protect::KimSendInfo;
use komle_core::secret::SecretBytes;
use komle_core::smime::DeliveryOptions;
use komle_core::smime::headers;
use komle_core::smtp::{ProtectJob, ProtectedMessage, ProtectionFailure};
use komle_service::contracts::{BoxFuture, Opener, Protector};
use komle_service::kas_client::{KasClient, KasClientSettings};
use komle_service::kas_flow::KasFlow;
use komle_service::konnektor_directory::KonnektorDirectory;
use komle_service::konnektor_http::TransportError;
use komle_service::services::{Konnektor, Pipeline, TableDirectory};
use komle_service::time_sync::Clock;

struct Sim(Simulator);

impl Konnektor for Sim {
    fn call<'a>(
        &'a self,
        _url: &'a str,
        soap_action: &'static str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, TransportError>> {
        let answer = self.0.handle(soap_action, &body).body;
        Box::pin(async move { Ok(answer) })
    }
}

fn world() -> &'static World {
    static W: std::sync::OnceLock<World> = std::sync::OnceLock::new();
    W.get_or_init(|| World::generate(SystemTime::now()).expect("world"))
}

struct Bed {
    kas: KasSim,
    pipeline: Pipeline,
}

/// A pipeline with the KAS; `opted_in` are the addresses whose komLeData says `1.5+`.
fn bed(config: KasSimConfig, opted_in: &[&str]) -> Bed {
    bed_fetching_at_most(config, opted_in, u64::MAX)
}

fn bed_fetching_at_most(config: KasSimConfig, opted_in: &[&str], max_fetch: u64) -> Bed {
    let world = world();
    let kas = KasSim::start(config).expect("KAS simulator");
    let (client_chain, client_key) = kas.tls.client_identity();
    let client = KasClient::new(KasClientSettings {
        base_url: kas.base_url(),
        timeout: Duration::from_secs(10),
        roots: vec![kas.tls.ca_der.clone()],
        client_chain,
        client_key,
        basic: None,
    })
    .expect("KAS client");
    let flow = KasFlow::new(client, Some(kas.limits_url())).with_max_fetch(max_fetch);
    let opted: Vec<String> = opted_in.iter().map(|a| a.to_ascii_lowercase()).collect();
    let directory = move |a: &str| -> Vec<DirectoryEntry> {
        world
            .directory_entries(a)
            .into_iter()
            .map(|mut e| {
                if opted.contains(&a.to_ascii_lowercase()) {
                    e.kom_le_data = vec![format!("1.5+,{a}")];
                }
                e
            })
            .collect()
    };
    let sim = Arc::new(Sim(Simulator::new(world.sim_config.clone())));
    let pipeline = Pipeline {
        directory: Arc::new(TableDirectory(directory)),
        konnektor: sim.clone(),
        konnektor_directory: Arc::new(KonnektorDirectory::fixed(inprocess::endpoints(&sim.0))),
        konnektoren: BTreeMap::new(),
        kim: KimSendInfo::default(),
        cache: Arc::new(Mutex::new(CertificateCache::new(CacheConfig {
            lifetime: Duration::from_secs(60),
            capacity: NonZeroUsize::new(8).expect("non-zero"),
        }))),
        clock: Arc::new(Clock::new()),
        delivery: DeliveryOptions::default(),
        cards: Default::default(),
        kas: Some(Arc::new(flow)),
    };
    Bed { kas, pipeline }
}

/// A client mail of at least `size` bytes: a text body of numbered lines.
fn large_mail(from: &str, to: &[&str], marker: &str, size: usize) -> Vec<u8> {
    let mut mail = format!(
        "From: <{from}>\r\nTo: {}\r\nSubject: Gross {marker}\r\nMessage-ID: <{marker}@komle.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
        to.iter()
            .map(|t| format!("<{t}>"))
            .collect::<Vec<_>>()
            .join(", ")
    )
    .into_bytes();
    let mut i = 0u64;
    while mail.len() < size {
        mail.extend_from_slice(
            format!(
                "Zeile {i:09} Befund Kalium 4,1 mmol/l {marker} abcdefghijklmnopqrstuvwxyz\r\n"
            )
            .as_bytes(),
        );
        i += 1;
    }
    mail
}

fn protect(
    bed: &Bed,
    from: &str,
    rcpts: &[&str],
    mail: Vec<u8>,
) -> Result<ProtectedMessage, ProtectionFailure> {
    let job = ProtectJob {
        login: LoginName::parse_smtp(&format!("{from}#127.0.0.1:465#M1#CS1#WP1")).expect("login"),
        envelope_from: from.to_owned(),
        recipients: rcpts.iter().map(|r| (*r).to_owned()).collect(),
        message: SecretBytes::from(mail),
    };
    futures_lite::future::block_on(bed.pipeline.protect(job))
}

fn open(bed: &Bed, user: &str, outer: &[u8]) -> Vec<u8> {
    let job = OpenJob {
        login: LoginName::parse(&format!("{user}#127.0.0.1:995#M1#CS1#WP1")).expect("login"),
        message: SecretBytes::from(outer.to_vec()),
    };
    futures_lite::future::block_on(bed.pipeline.open(job))
        .expect("opened")
        .message
        .as_slice()
        .to_vec()
}

fn header(mail: &[u8], name: &str) -> Option<String> {
    let h = headers::parse(mail).ok()?;
    h.value(mail, name)
}

/// The Subject, RFC 2047 `=?UTF-8?B?…?=` words decoded (the error mails' subjects are German).
fn subject(mail: &[u8]) -> Option<String> {
    use base64::Engine;
    let raw = header(mail, "Subject")?;
    let mut out = String::new();
    for word in raw.split_whitespace() {
        match word
            .strip_prefix("=?UTF-8?B?")
            .and_then(|w| w.strip_suffix("?="))
        {
            Some(b64) => out.push_str(
                &String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).ok()?)
                    .ok()?,
            ),
            None => {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(word);
            }
        }
    }
    Some(out)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_19357_a_19359_a_19370_a_large_mail_goes_via_the_kas_and_opens_to_the_client_mail() {
    let w = world();
    let (from, to) = (w.pki.sender.address.as_str(), w.pki.single.address.as_str());
    let bed = bed(KasSimConfig::default(), &[to]);
    let size = KONNEKTOR_LIMIT as usize + 1_000_000;
    let mail = large_mail(from, &[to], "kas-1", size);
    let protected = protect(&bed, from, &[to], mail.clone()).expect("protected");
    let outer = protected.message.as_slice();
    assert!(
        outer.len() < 200_000,
        "only the small message travels: {}",
        outer.len()
    );
    assert_eq!(header(outer, "X-KOM-LE-Version").as_deref(), Some("1.5"));
    assert_eq!(
        header(outer, "X-KIM-KAS-Size").as_deref(),
        Some(mail.len().to_string().as_str()),
        "A_23467 in the outer header"
    );
    assert!(header(outer, "Expires").is_some(), "A_22417");
    assert_eq!(bed.kas.stored_count(), 1);
    assert!(
        bed.kas
            .recorded()
            .iter()
            .filter(|r| r.method == "POST")
            .all(|r| r.content_length_exact),
        "A_22427-01"
    );
    let opened = open(&bed, to, outer);
    assert_eq!(header(&opened, "Subject").as_deref(), Some("Gross kas-1"));
    assert!(
        header(&opened, "X-KIM-DecryptionResult").is_some(),
        "the 1.0 results"
    );
    let body_start = headers::parse(&mail).expect("header").body;
    assert!(
        contains(&opened, &mail[body_start..body_start + 4096]),
        "the client mail's text arrives"
    );
    let last = &mail[mail.len() - 200..];
    assert!(contains(&opened, last), "to its last line");
    assert!(
        !contains(&opened, b"x-kas"),
        "no KIM-Attachment structure left"
    );
}

#[test]
fn a_19357_fourteen_mib_goes_the_konnektor_way() {
    let w = world();
    let (from, to) = (w.pki.sender.address.as_str(), w.pki.single.address.as_str());
    let bed = bed(KasSimConfig::default(), &[to]);
    let mail = large_mail(from, &[to], "kas-2", 14 * 1024 * 1024);
    let protected = protect(&bed, from, &[to], mail).expect("protected");
    assert_eq!(
        header(protected.message.as_slice(), "X-KOM-LE-Version").as_deref(),
        Some("1.0")
    );
    assert!(header(protected.message.as_slice(), "X-KIM-KAS-Size").is_none());
    assert_eq!(bed.kas.stored_count(), 0);
}

#[test]
fn a_22419_kas_quota_507_is_521_and_other_kas_failures_451() {
    let w = world();
    let (from, to) = (w.pki.sender.address.as_str(), w.pki.single.address.as_str());
    let bed = bed(KasSimConfig::default(), &[to]);
    let size = KONNEKTOR_LIMIT as usize + 10;
    bed.kas.force_add_status(&[507, 500]);
    let f = protect(&bed, from, &[to], large_mail(from, &[to], "kas-3", size)).expect_err("507");
    assert_eq!(f.reply().map(|r| r.0), Some(521), "{}", f.reason);
    let f = protect(&bed, from, &[to], large_mail(from, &[to], "kas-4", size)).expect_err("500");
    assert_eq!(f.reply().map(|r| r.0), Some(451), "{}", f.reason);
    assert_eq!(bed.kas.stored_count(), 0);
}

#[test]
fn a_19363_kas_unreachable_is_451() {
    let w = world();
    let (from, to) = (w.pki.sender.address.as_str(), w.pki.single.address.as_str());
    let mut bed = bed(KasSimConfig::default(), &[to]);
    bed.kas.stop();
    let size = KONNEKTOR_LIMIT as usize + 10;
    let f = protect(&bed, from, &[to], large_mail(from, &[to], "kas-5", size)).expect_err("down");
    assert_eq!(f.reply().map(|r| r.0), Some(451), "{}", f.reason);
}

#[test]
fn a_19356_a_22341_no_opted_in_recipient_or_an_x_kas_part_is_451() {
    let w = world();
    let (from, to) = (w.pki.sender.address.as_str(), w.pki.single.address.as_str());
    let bed = bed(KasSimConfig::default(), &[]);
    let size = KONNEKTOR_LIMIT as usize + 10;
    let f = protect(&bed, from, &[to], large_mail(from, &[to], "kas-6", size)).expect_err("1.0");
    assert_eq!(f.reply().map(|r| r.0), Some(451), "{}", f.reason);
    let bed = self::bed(KasSimConfig::default(), &[to]);
    let mut mail = large_mail(from, &[to], "kas-7", size);
    let head_end = headers::parse(&mail).expect("header").body;
    mail.splice(
        head_end - 2..head_end - 2,
        b"Content-Disposition: x-kas\r\n".iter().copied(),
    );
    let f = protect(&bed, from, &[to], mail).expect_err("x-kas");
    assert!(
        f.reason.starts_with("451 ") && f.reason.contains("x-kas"),
        "{}",
        f.reason
    );
    assert_eq!(bed.kas.stored_count(), 0);
}

#[test]
fn a_19356_recipients_without_opt_in_are_left_out() {
    let w = world();
    let from = w.pki.sender.address.as_str();
    let (yes, no) = (
        w.pki.single.address.as_str(),
        w.pki.ecc_and_rsa.address.as_str(),
    );
    let bed = bed(KasSimConfig::default(), &[yes]);
    let size = KONNEKTOR_LIMIT as usize + 10;
    let p = protect(
        &bed,
        from,
        &[yes, no],
        large_mail(from, &[yes, no], "kas-8", size),
    )
    .expect("protected for one");
    assert_eq!(p.recipients, vec![yes.to_owned()]);
    let notice = p.notice.expect("A_19356-06: the sender is told");
    assert_eq!(notice.recipient, from);
    let text = String::from_utf8_lossy(notice.message.as_slice()).into_owned();
    assert!(text.contains("X-KIM-Fehlermeldung: 4001"), "{text}");
    assert!(
        text.contains(&format!("Final-Recipient: rfc822; {no}")),
        "{text}"
    );
    assert!(
        !text.contains(&format!("Final-Recipient: rfc822; {yes}")),
        "{text}"
    );
    assert!(!text.contains("Zeile 0"), "no content in the notice");
    // A_19363-03: the header was processed before the upload: the removed address is gone
    // from what the KAS stores for the recipient, and from the KAS's recipient list.
    let stored = bed.kas.recorded();
    assert_eq!(stored.iter().filter(|r| r.method == "POST").count(), 1);
    let small = String::from_utf8_lossy(p.message.as_slice()).into_owned();
    assert!(!small.contains(no), "the outer message does not name {no}");
}

#[test]
fn a_23512_kas_message_for_a_user_without_opt_in_is_the_4018_mail() {
    let w = world();
    let (from, to) = (w.pki.sender.address.as_str(), w.pki.single.address.as_str());
    let sender_side = bed(KasSimConfig::default(), &[to]);
    let size = KONNEKTOR_LIMIT as usize + 10;
    let p = protect(
        &sender_side,
        from,
        &[to],
        large_mail(from, &[to], "kas-9", size),
    )
    .expect("protected");
    // The same message fetched by a user whose directory entry lost the opt-in.
    let receiver = bed(KasSimConfig::default(), &[]);
    let opened = open(&receiver, to, p.message.as_slice());
    assert_eq!(
        header(&opened, "X-KIM-Fehlermeldung").as_deref(),
        Some("4018")
    );
    assert_eq!(
        subject(&opened).as_deref(),
        Some(komle_core::kas::LARGE_MESSAGES_NOT_ENABLED_SUBJECT)
    );
}

#[test]
fn a_19370_a_22412_download_refused_is_the_error_mail_with_the_code() {
    let w = world();
    let (from, to) = (w.pki.sender.address.as_str(), w.pki.single.address.as_str());
    let bed = bed(
        KasSimConfig {
            max_downloads: 0,
            ..KasSimConfig::default()
        },
        &[to],
    );
    let size = KONNEKTOR_LIMIT as usize + 10;
    let p = protect(&bed, from, &[to], large_mail(from, &[to], "kas-10", size)).expect("protected");
    let opened = open(&bed, to, p.message.as_slice());
    let code = header(&opened, "X-KIM-Fehlermeldung");
    assert!(
        matches!(code.as_deref(), Some("4013") | Some("4006")),
        "{code:?}"
    );
    assert_eq!(
        subject(&opened).as_deref(),
        Some(komle_core::kas::DOWNLOAD_FAILED_SUBJECT)
    );
}

#[test]
fn a_19372_mail_data_that_do_not_match_the_hash_become_the_4012_replacement() {
    use komle_core::kas::{GcmIv, cipher};
    use komle_core::open::{Reception, Step};
    let w = world();
    let (from, to) = (w.pki.sender.address.as_str(), w.pki.single.address.as_str());
    let bed = bed(KasSimConfig::default(), &[to]);
    let size = KONNEKTOR_LIMIT as usize + 10;
    let p = protect(&bed, from, &[to], large_mail(from, &[to], "kas-11", size)).expect("protected");
    // The recipient's side up to the KIM-Attachment structure, to learn link and key.
    let sim = Simulator::new(w.sim_config.clone());
    let job = OpenJob {
        login: LoginName::parse(&format!("{to}#127.0.0.1:995#M1#CS1#WP1")).expect("login"),
        message: SecretBytes::from(p.message.as_slice().to_vec()),
    };
    let mut r = Reception::new(
        job,
        inprocess::endpoints(&sim),
        SystemTime::now(),
        DeliveryOptions::default(),
    )
    .with_kas();
    let mut cards = Default::default();
    let fetch = loop {
        match r.step() {
            Step::Call(c) => r.konnektor_answer(
                &mut cards,
                sim.handle(c.request.soap_action, &c.request.body).body,
            ),
            Step::FetchKas(f) => break f,
            Step::Done(d) => panic!("no KAS step: {:?}", d.map(|m| m.message.as_slice().len())),
        }
    };
    // Same key, same length, other content: GCM verifies, the hash does not match.
    let other = cipher::seal(
        &fetch.attachment.key,
        GcmIv([7; 12]),
        &vec![b'x'; fetch.attachment.size as usize],
    )
    .expect("seals");
    let id = fetch.attachment.link.rsplit('/').next().expect("id");
    assert!(bed.kas.replace_data(id, other));
    let opened = open(&bed, to, p.message.as_slice());
    assert_eq!(
        header(&opened, "X-KIM-Fehlermeldung").as_deref(),
        Some("4012")
    );
    assert!(contains(&opened, "Sicherheitsverletzung".as_bytes()));
    assert!(
        !contains(&opened, b"xxxxxxxxxxxxxxxx"),
        "no unchecked data delivered"
    );
}

#[test]
fn a_19370_announced_size_above_the_fetch_limit_is_not_downloaded() {
    let w = world();
    let (from, to) = (w.pki.sender.address.as_str(), w.pki.single.address.as_str());
    let sender_side = bed(KasSimConfig::default(), &[to]);
    let size = KONNEKTOR_LIMIT as usize + 10;
    let p = protect(
        &sender_side,
        from,
        &[to],
        large_mail(from, &[to], "kas-12", size),
    )
    .expect("protected");
    let receiver = bed_fetching_at_most(KasSimConfig::default(), &[to], KONNEKTOR_LIMIT);
    let before = sender_side.kas.recorded().len();
    let opened = open(&receiver, to, p.message.as_slice());
    assert_eq!(
        header(&opened, "X-KIM-Fehlermeldung").as_deref(),
        Some("4007")
    );
    assert_eq!(
        sender_side.kas.recorded().len(),
        before,
        "no HEAD or GET reached the KAS"
    );
}
