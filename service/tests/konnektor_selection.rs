//! Multi-Konnektor setups (A_21457 SMTP, A_21517 POP3): the KonnektorId of the login name picks
//! the Konnektor that signs, encrypts and decrypts; no id means the default `[konnektor]`, and
//! an id without `[konnektor.<id>]` is refused before any Konnektor call.

use komle_service::konnektor_directory::KonnektorDirectory;
use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use komle_conformance::inprocess;
use komle_conformance::sim::simulator::Simulator;
use komle_conformance::world::World;
use komle_core::directory::{CacheConfig, CertificateCache};
use komle_core::login_name::{KonnektorId, LoginName};
use komle_core::pop3::OpenJob;
use komle_core::protect::KimSendInfo;
use komle_core::secret::SecretBytes;
use komle_core::smime::DeliveryOptions;
use komle_core::smtp::ProtectJob;
use komle_service::contracts::{BoxFuture, Opener, Protector};
use komle_service::konnektor_http::TransportError;
use komle_service::services::{
    Konnektor, KonnektorTarget, Pipeline, TableDirectory, UNKNOWN_KONNEKTOR_ID,
};
use komle_service::time_sync::Clock;

/// The Konnektor simulator in process, recording the operations asked of it.
struct Recording {
    sim: Simulator,
    calls: Mutex<Vec<String>>,
}

impl Recording {
    fn new(world: &World) -> Arc<Self> {
        Arc::new(Self {
            sim: Simulator::new(world.sim_config.clone()),
            calls: Mutex::new(Vec::new()),
        })
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl Konnektor for Recording {
    fn call<'a>(
        &'a self,
        _url: &'a str,
        soap_action: &'static str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, TransportError>> {
        let operation = soap_action.rsplit('#').next().unwrap_or(soap_action);
        self.calls.lock().unwrap().push(operation.to_owned());
        let answer = self.sim.handle(soap_action, &body).body;
        Box::pin(async move { Ok(answer) })
    }
}

struct Setup {
    world: Arc<World>,
    default: Arc<Recording>,
    konn_1: Arc<Recording>,
    pipeline: Pipeline,
}

fn setup() -> Setup {
    let world = Arc::new(World::generate(SystemTime::now()).unwrap());
    let default = Recording::new(&world);
    let konn_1 = Recording::new(&world);
    let w = world.clone();
    let mut konnektoren = BTreeMap::new();
    konnektoren.insert(
        KonnektorId::new("Konn_1").unwrap(),
        KonnektorTarget {
            konnektor: konn_1.clone(),
            directory: Arc::new(KonnektorDirectory::fixed(inprocess::endpoints(&konn_1.sim))),
            kim: KimSendInfo::default()
                .with_konnektor_version("<Konn_1>")
                .unwrap(),
        },
    );
    let pipeline = Pipeline {
        directory: Arc::new(TableDirectory(move |a: &str| w.directory_entries(a))),
        konnektor: default.clone(),
        konnektor_directory: Arc::new(KonnektorDirectory::fixed(inprocess::endpoints(
            &default.sim,
        ))),
        konnektoren,
        kim: KimSendInfo::default()
            .with_konnektor_version("<Default>")
            .unwrap(),
        cache: Arc::new(Mutex::new(CertificateCache::new(CacheConfig {
            lifetime: Duration::from_secs(60),
            capacity: NonZeroUsize::new(8).unwrap(),
        }))),
        clock: Arc::new(Clock::new()),
        delivery: DeliveryOptions::default(),
        cards: Default::default(),
        kas: None,
    };
    Setup {
        world,
        default,
        konn_1,
        pipeline,
    }
}

fn protect_job(world: &World, konnektor: &str) -> ProtectJob {
    let from = world.pki.sender.address.clone();
    let to = world.pki.single.address.clone();
    let mail = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: Befund\r\nMessage-ID: <sel-1@komle.test>\r\n\r\nText\r\n"
    );
    ProtectJob {
        login: LoginName::parse_smtp(&format!("{from}#127.0.0.1:465#M1#CS1#WP1{konnektor}"))
            .unwrap(),
        envelope_from: from,
        recipients: vec![to],
        message: SecretBytes::from(mail.into_bytes()),
    }
}

#[test]
fn a_21457_smtp_login_with_konnektor_id_is_signed_and_encrypted_by_that_konnektor() {
    let s = setup();
    let job = protect_job(&s.world, "#Konn_1");
    let protected = futures_lite::future::block_on(s.pipeline.protect(job)).expect("protected");
    // A_21388-01: X-KIM-KONVersion names the Konnektor that protected the message.
    let outer = String::from_utf8_lossy(protected.message.as_slice()).into_owned();
    assert!(
        outer.contains("\r\nX-KIM-KONVersion: <Konn_1>\r\n"),
        "{outer}"
    );
    let calls = s.konn_1.calls();
    assert!(calls.iter().any(|c| c == "SignDocument"), "{calls:?}");
    assert!(calls.iter().any(|c| c == "EncryptDocument"), "{calls:?}");
    assert_eq!(s.default.calls(), Vec::<String>::new());
}

#[test]
fn a_21457_smtp_login_without_konnektor_id_uses_the_default_konnektor() {
    let s = setup();
    let job = protect_job(&s.world, "");
    let protected = futures_lite::future::block_on(s.pipeline.protect(job)).expect("protected");
    let outer = String::from_utf8_lossy(protected.message.as_slice()).into_owned();
    assert!(
        outer.contains("\r\nX-KIM-KONVersion: <Default>\r\n"),
        "{outer}"
    );
    assert!(s.default.calls().iter().any(|c| c == "SignDocument"));
    assert_eq!(s.konn_1.calls(), Vec::<String>::new());
}

#[test]
fn a_21457_unknown_konnektor_id_is_refused_without_any_konnektor_call() {
    let s = setup();
    let job = protect_job(&s.world, "#Konn_9");
    let failure = futures_lite::future::block_on(s.pipeline.protect(job)).unwrap_err();
    assert_eq!(failure.reason, UNKNOWN_KONNEKTOR_ID);
    let open = OpenJob {
        login: LoginName::parse_pop3("u@komle.test#127.0.0.1:995#M1#CS1#WP1#*#Konn_9").unwrap(),
        message: SecretBytes::from(b"X-KOM-LE-Version: 1.0\r\n\r\nAAAA\r\n".to_vec()),
    };
    let failure = futures_lite::future::block_on(s.pipeline.open(open)).unwrap_err();
    assert_eq!(failure.reason, UNKNOWN_KONNEKTOR_ID);
    assert!(s.default.calls().is_empty() && s.konn_1.calls().is_empty());
}

#[test]
fn a_21517_pop3_login_with_konnektor_id_decrypts_with_that_konnektor() {
    let s = setup();
    // Protected through the default Konnektor, fetched through Konn_1.
    let outer = futures_lite::future::block_on(s.pipeline.protect(protect_job(&s.world, "")))
        .expect("protected");
    let before = s.default.calls().len();
    let to = &s.world.pki.single.address;
    let open = OpenJob {
        login: LoginName::parse_pop3(&format!("{to}#127.0.0.1:995#M1#CS1#WP1#*#Konn_1")).unwrap(),
        message: outer.message,
    };
    let opened = futures_lite::future::block_on(s.pipeline.open(open)).expect("opened");
    let text = String::from_utf8_lossy(opened.message.as_slice()).into_owned();
    assert!(text.contains("X-KIM-DecryptionResult: 00"), "{text}");
    let calls = s.konn_1.calls();
    assert!(calls.iter().any(|c| c == "DecryptDocument"), "{calls:?}");
    assert_eq!(
        s.default.calls().len(),
        before,
        "the default Konnektor was asked"
    );
}
