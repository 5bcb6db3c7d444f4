//! KIM 1.5 send path: mail data stored on the KAS for a message that is then not sent are
//! deleted again (`DELETE /attachment/{id}`, AttachmentService 2.4 `delete_MailData`), so a
//! failed send leaves nothing on the sender's quota (issue 17); a sent message keeps them.
//! The KAS simulator over mutual TLS, the Konnektor simulator in process.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use komle_conformance::inprocess;
use komle_conformance::kas_sim::{KasSim, KasSimConfig};
use komle_conformance::sim::config::{Fault, Operation, SimConfig};
use komle_conformance::sim::simulator::Simulator;
use komle_conformance::world::World;
use komle_core::directory::{CacheConfig, CertificateCache, DirectoryEntry};
use komle_core::kas::KONNEKTOR_LIMIT;
use komle_core::login_name::LoginName;
use komle_core::protect::KimSendInfo;
use komle_core::proxy_session::{Job, JobResult};
use komle_core::secret::SecretBytes;
use komle_core::smime::DeliveryOptions;
use komle_core::smtp::{ProtectJob, ProtectedMessage, ProtectionFailure};
use komle_service::contracts::{BoxFuture, Protector};
use komle_service::jobs::{ContractJobs, JobRunner};
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

/// A pipeline with the KAS simulator and a Konnektor simulator configured by `sim`; every
/// address has the large-message opt-in.
fn bed(sim: SimConfig) -> (KasSim, Pipeline) {
    let kas = KasSim::start(KasSimConfig::default()).expect("KAS simulator");
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
    let flow = KasFlow::new(client, Some(kas.limits_url()));
    let directory = move |a: &str| -> Vec<DirectoryEntry> {
        world()
            .directory_entries(a)
            .into_iter()
            .map(|mut e| {
                e.kom_le_data = vec![format!("1.5+,{a}")];
                e
            })
            .collect()
    };
    let sim = Arc::new(Sim(Simulator::new(sim)));
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
    (kas, pipeline)
}

/// A client mail just over 15 MiB (the KAS route, A_19357-02).
fn large_mail(from: &str, to: &str, marker: &str) -> Vec<u8> {
    let mut mail = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: Gross {marker}\r\n\
         Message-ID: <{marker}@komle.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    .into_bytes();
    let mut i = 0u64;
    while mail.len() <= KONNEKTOR_LIMIT as usize {
        mail.extend_from_slice(format!("Zeile {i:09} Befund {marker}\r\n").as_bytes());
        i += 1;
    }
    mail
}

fn protect(pipeline: &Pipeline, marker: &str) -> Result<ProtectedMessage, ProtectionFailure> {
    let w = world();
    let (from, to) = (w.pki.sender.address.as_str(), w.pki.single.address.as_str());
    let job = ProtectJob {
        login: LoginName::parse_smtp(&format!("{from}#127.0.0.1:465#M1#CS1#WP1")).expect("login"),
        envelope_from: from.to_owned(),
        recipients: vec![to.to_owned()],
        message: SecretBytes::from(large_mail(from, to, marker)),
    };
    futures_lite::future::block_on(pipeline.protect(job))
}

fn deletes(kas: &KasSim) -> usize {
    kas.recorded()
        .iter()
        .filter(|r| r.method == "DELETE")
        .count()
}

/// Polls until the KAS holds `n` objects (the deletion runs detached after the reply).
fn wait_stored(kas: &KasSim, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(15);
    while kas.stored_count() != n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    kas.stored_count()
}

/// A_19363-03 then A_2021: the data are on the KAS, then signing the small KOM-LE message fails
/// (451 to the client): the stored object is deleted again, nothing stays on the quota.
#[test]
fn a_19363_a_2021_signing_fails_after_the_upload_and_the_stored_data_are_deleted() {
    let mut sim = world().sim_config.clone();
    sim.faults.insert(
        Operation::SignDocument,
        Fault::SoapFault {
            code: 4085,
            text: "Signieren fehlgeschlagen".into(),
        },
    );
    let (kas, pipeline) = bed(sim);
    let failure = protect(&pipeline, "orphan-sign").expect_err("signing fails");
    assert!(
        failure.reply().is_none(),
        "the 451 of A_2021: {}",
        failure.reason
    );
    let posts = kas.recorded().iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts, 1, "the mail data were uploaded first");
    assert_eq!(wait_stored(&kas, 0), 0, "the stored object is gone");
    assert_eq!(deletes(&kas), 1, "deleted with one DELETE");
}

/// The control: a message that is protected and handed on keeps its data on the KAS (the
/// recipient fetches them later); no DELETE is sent.
#[test]
fn a_19363_a_sent_message_keeps_its_stored_data() {
    let (kas, pipeline) = bed(world().sim_config.clone());
    let protected = protect(&pipeline, "kept").expect("protected");
    assert!(!protected.recipients.is_empty());
    assert!(protected.kas_link.is_some(), "handed on with its link");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(kas.stored_count(), 1);
    assert_eq!(deletes(&kas), 0);
}

/// A_19363-03 after the hand-over: the MTA refuses the small KOM-LE message (after the dot or
/// to DATA), the session asks for the data to be deleted (`Job::DiscardKasData`; transcripts
/// `smtp/a_19363_kas_message_*`), and the driver's job runner deletes them on the KAS at once.
#[test]
fn a_19363_the_data_of_a_message_the_mta_refused_are_deleted() {
    let (kas, pipeline) = bed(world().sim_config.clone());
    let protected = protect(&pipeline, "refused").expect("protected");
    let link = protected.kas_link.expect("a KAS message carries its link");
    assert_eq!(kas.stored_count(), 1);
    let jobs = ContractJobs {
        protector: Some(Arc::new(pipeline)),
        ..ContractJobs::default()
    };
    let answer = jobs.run(Job::DiscardKasData { link });
    // Started when the job was handed over, not when its answer is awaited.
    assert_eq!(wait_stored(&kas, 0), 0, "the stored object is gone");
    assert_eq!(deletes(&kas), 1, "deleted with one DELETE");
    assert!(matches!(
        futures_lite::future::block_on(answer),
        JobResult::KasDataDiscarded
    ));
}
