//! KOM-LE-A_2075-01 / A_22348 / A_2076 in the service: the mail server's TLS certificate is
//! checked with the Konnektor simulator's VerifyCertificate, VALID verdicts are cached by the
//! certificate's SHA-256 until at most notAfter (and the TTL), and connection problems make
//! the service directory be re-read and the call retried once. Most tests drive the
//! simulator in process (a Konnektor that can "move" or go down); the last ones go over HTTPS.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use komle_conformance::sim::server_certs::{ServerCertSet, ServerKey, server_cert_set};
use komle_conformance::sim::{Fault, Operation, SimConfig, Simulator};
use komle_core::konnektor::server_cert_verdict::NoVerdict;
use komle_core::konnektor::{CallContext, ServerCertRejected, TransportError as Kind};
use komle_service::contracts::BoxFuture;
use komle_service::konnektor_directory::{KonnektorDirectory, SdsSource};
use komle_service::konnektor_http::TransportError;
use komle_service::server_cert_check::{NO_CERTIFICATE, ServerCertificateCheck, end_entity};
use komle_service::services::Konnektor;
use komle_service::time_sync::Clock;

const NOW: u64 = 1_780_272_000;
const DAY: u64 = 86_400;

fn at(unix: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(unix)
}

fn certs(kind: ServerKey) -> &'static ServerCertSet {
    static RSA: OnceLock<ServerCertSet> = OnceLock::new();
    static ECC: OnceLock<ServerCertSet> = OnceLock::new();
    let cell = match kind {
        ServerKey::Rsa => &RSA,
        ServerKey::Ecc => &ECC,
    };
    cell.get_or_init(|| server_cert_set(kind, NOW).unwrap())
}

fn ctx() -> CallContext {
    CallContext {
        mandant_id: "m1".into(),
        client_system_id: "KIM".into(),
        workplace_id: "wp".into(),
        user_id: None,
    }
}

/// The simulator as the Konnektor, reachable at `base` (which can change: the Konnektor
/// "moves") unless `down`.
struct InProcess {
    sim: Simulator,
    base: Mutex<String>,
    down: AtomicBool,
    urls: Mutex<Vec<String>>,
    sds_reads: AtomicUsize,
}

impl InProcess {
    fn new(config: SimConfig) -> Arc<Self> {
        Arc::new(InProcess {
            sim: Simulator::new(config),
            base: Mutex::new("https://konnektor-a.test".into()),
            down: AtomicBool::new(false),
            urls: Mutex::new(Vec::new()),
            sds_reads: AtomicUsize::new(0),
        })
    }

    fn base(&self) -> String {
        self.base.lock().unwrap().clone()
    }

    fn verify_calls(&self) -> usize {
        self.sim
            .call_log()
            .iter()
            .filter(|c| c.operation == Operation::VerifyCertificate)
            .count()
    }
}

impl Konnektor for InProcess {
    fn call<'a>(
        &'a self,
        url: &'a str,
        soap_action: &'static str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, TransportError>> {
        self.urls.lock().unwrap().push(url.to_owned());
        let answer = if self.down.load(Ordering::SeqCst) || !url.starts_with(&self.base()) {
            Err(TransportError::ConnectionRefused("nobody listens".into()))
        } else {
            // HTTP 500 with a fault is a body too, as KonnektorHttp::post_soap returns it.
            Ok(self.sim.handle(soap_action, &body).body)
        };
        Box::pin(async move { answer })
    }
}

struct Sds(Arc<InProcess>);

impl SdsSource for Sds {
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<u8>, TransportError>> {
        self.0.sds_reads.fetch_add(1, Ordering::SeqCst);
        let answer = if self.0.down.load(Ordering::SeqCst) {
            Err(TransportError::ConnectionRefused("nobody listens".into()))
        } else {
            Ok(self.0.sim.handle_get("/connector.sds", &self.0.base()).body)
        };
        Box::pin(async move { answer })
    }
}

struct Bed {
    konnektor: Arc<InProcess>,
    directory: Arc<KonnektorDirectory>,
    check: ServerCertificateCheck,
}

fn bed_with(kind: ServerKey, ttl: Duration, tweak: impl FnOnce(&mut SimConfig)) -> Bed {
    let c = certs(kind);
    let mut config = SimConfig {
        trust_anchors: vec![c.anchor.clone()],
        revoked_serials: vec![c.revoked_serial.clone()],
        now_unix: Some(NOW),
        ..SimConfig::default()
    };
    tweak(&mut config);
    let konnektor = InProcess::new(config);
    let directory = Arc::new(KonnektorDirectory::new(Arc::new(Sds(konnektor.clone()))));
    let check = ServerCertificateCheck::new(
        konnektor.clone(),
        directory.clone(),
        Arc::new(Clock::new()),
        ttl,
    );
    Bed {
        konnektor,
        directory,
        check,
    }
}

fn bed(kind: ServerKey) -> Bed {
    bed_with(kind, Duration::from_secs(365 * DAY), |_| {})
}

fn check(bed: &Bed, der: &[u8], now: u64) -> Result<(), ServerCertRejected> {
    smol::block_on(bed.check.check_at(der, &ctx(), None, at(now)))
}

/// A_21457/A_21517 with A_2075-01: a login naming a KonnektorId has the mail server's
/// certificate checked by that Konnektor, not by the default one; an id without a
/// `[konnektor.<id>]` table has nobody to ask, so the server is not used.
#[test]
fn a_21457_a_2075_01_the_konnektor_the_login_names_checks_the_server_certificate() {
    let default = bed(ServerKey::Rsa);
    let second = bed(ServerKey::Rsa);
    let id = komle_core::login_name::KonnektorId::new("Konn_2").unwrap();
    let check = ServerCertificateCheck::new(
        default.konnektor.clone(),
        default.directory.clone(),
        Arc::new(Clock::new()),
        Duration::from_secs(DAY),
    )
    .with_konnektoren(
        [(
            id.clone(),
            (
                second.konnektor.clone() as Arc<dyn Konnektor>,
                second.directory.clone(),
            ),
        )]
        .into_iter()
        .collect(),
    );
    let der = &certs(ServerKey::Rsa).valid;
    assert_eq!(
        smol::block_on(check.check_at(der, &ctx(), Some(&id), at(NOW))),
        Ok(())
    );
    assert_eq!(
        second.konnektor.verify_calls(),
        1,
        "asked the named Konnektor"
    );
    assert_eq!(default.konnektor.verify_calls(), 0, "not the default one");

    let unknown = komle_core::login_name::KonnektorId::new("Konn_9").unwrap();
    let revoked = &certs(ServerKey::Rsa).revoked;
    assert_eq!(
        smol::block_on(check.check_at(revoked, &ctx(), Some(&unknown), at(NOW))),
        Err(ServerCertRejected::NotChecked(NoVerdict::NoEndpoint))
    );
    assert_eq!(
        default.konnektor.verify_calls() + second.konnektor.verify_calls(),
        1,
        "an unknown KonnektorId asks no Konnektor"
    );
}

#[test]
fn a_2075_01_valid_rsa_and_ecc_certificates_pass_and_a_22348_second_check_is_a_cache_hit() {
    for kind in [ServerKey::Rsa, ServerKey::Ecc] {
        let b = bed(kind);
        let der = &certs(kind).valid;
        assert_eq!(check(&b, der, NOW), Ok(()), "{kind:?}");
        assert_eq!(b.konnektor.verify_calls(), 1);
        assert_eq!(check(&b, der, NOW + 60), Ok(()));
        assert_eq!(
            b.konnektor.verify_calls(),
            1,
            "{kind:?}: the cache answered, no second Konnektor call"
        );
        assert_eq!(b.check.cached(), 1);
        assert_eq!(
            b.directory.sds_reads(),
            1,
            "connector.sds read once, lazily"
        );
    }
}

#[test]
fn a_22348_a_different_certificate_never_hits_the_cache() {
    let b = bed(ServerKey::Rsa);
    let c = certs(ServerKey::Rsa);
    check(&b, &c.valid, NOW).unwrap();
    check(&b, &c.other_valid, NOW).unwrap();
    assert_eq!(b.konnektor.verify_calls(), 2);
    // Same subject, same CA, one byte off: a miss, and the Konnektor finds it INVALID.
    let mut forged = c.valid.clone();
    let last = forged.len() - 1;
    forged[last] ^= 0x01;
    assert!(matches!(
        check(&b, &forged, NOW),
        Err(ServerCertRejected::Invalid { .. })
    ));
    assert_eq!(b.konnektor.verify_calls(), 3);
}

#[test]
fn a_22348_cached_verdict_ends_at_not_after() {
    let b = bed(ServerKey::Ecc);
    let c = certs(ServerKey::Ecc);
    check(&b, &c.valid, NOW).unwrap();
    check(&b, &c.valid, c.valid_not_after - 1).unwrap();
    assert_eq!(b.konnektor.verify_calls(), 1, "still within notAfter");
    // At notAfter the entry is gone and the Konnektor is asked again (its own clock still
    // says VALID, so the answer is VALID; what matters is that it was asked).
    check(&b, &c.valid, c.valid_not_after).unwrap();
    assert_eq!(b.konnektor.verify_calls(), 2);
}

#[test]
fn a_22348_cached_verdict_ends_after_the_configured_ttl() {
    let b = bed_with(ServerKey::Rsa, Duration::from_secs(600), |_| {});
    let der = &certs(ServerKey::Rsa).valid;
    check(&b, der, NOW).unwrap();
    check(&b, der, NOW + 599).unwrap();
    assert_eq!(b.konnektor.verify_calls(), 1);
    check(&b, der, NOW + 600).unwrap();
    assert_eq!(b.konnektor.verify_calls(), 2);
}

#[test]
fn a_2075_01_invalid_certificates_are_rejected_with_their_reason_and_never_cached() {
    for kind in [ServerKey::Rsa, ServerKey::Ecc] {
        let b = bed(kind);
        let c = certs(kind);
        for (der, code) in [(&c.expired, 1021), (&c.revoked, 1047), (&c.foreign, 1036)] {
            for _ in 0..2 {
                let r = check(&b, der, NOW).unwrap_err();
                assert_eq!(
                    r,
                    ServerCertRejected::Invalid { code: Some(code) },
                    "{kind:?}"
                );
                assert_eq!(
                    r.smtp_reply().line(),
                    b"454 4.7.0 Temporary authentication failure\r\n"
                );
                assert!(r.reason().contains(&code.to_string()), "{r}");
            }
        }
        assert_eq!(
            b.konnektor.verify_calls(),
            6,
            "{kind:?}: INVALID is asked every time"
        );
        assert_eq!(b.check.cached(), 0);
    }
}

#[test]
fn a_2075_01_inconclusive_is_used_but_not_cached() {
    let b = bed_with(ServerKey::Ecc, Duration::from_secs(3600), |c| {
        c.revocation_status_unavailable = true
    });
    let der = &certs(ServerKey::Ecc).valid;
    assert_eq!(check(&b, der, NOW), Ok(()));
    assert_eq!(check(&b, der, NOW), Ok(()));
    assert_eq!(b.konnektor.verify_calls(), 2);
    assert_eq!(b.check.cached(), 0);
}

#[test]
fn a_2076_connection_problem_rereads_the_service_directory_and_retries_once() {
    let b = bed(ServerKey::Rsa);
    let c = certs(ServerKey::Rsa);
    check(&b, &c.valid, NOW).unwrap();
    assert_eq!(b.directory.sds_reads(), 1);
    // The Konnektor moves: the cached endpoints now lead nowhere ("no connection").
    *b.konnektor.base.lock().unwrap() = "https://konnektor-b.test".into();
    check(&b, &c.other_valid, NOW).unwrap();
    assert_eq!(b.directory.sds_reads(), 2, "connector.sds re-read once");
    let urls = b.konnektor.urls.lock().unwrap().clone();
    assert_eq!(urls.len(), 3, "{urls:?}");
    assert!(urls[1].starts_with("https://konnektor-a.test/"), "{urls:?}");
    assert!(urls[2].starts_with("https://konnektor-b.test/"), "{urls:?}");
    assert_eq!(
        b.konnektor.verify_calls(),
        2,
        "the failed attempt never reached the Konnektor"
    );
}

#[test]
fn a_2076_konnektor_down_at_start_gives_a_typed_error_then_works() {
    let b = bed(ServerKey::Ecc);
    let der = &certs(ServerKey::Ecc).valid;
    b.konnektor.down.store(true, Ordering::SeqCst);
    let r = check(&b, der, NOW).unwrap_err();
    assert_eq!(
        r,
        ServerCertRejected::NotChecked(NoVerdict::Transport(Kind::Unreachable))
    );
    assert_eq!(r.smtp_reply().code, 454);
    assert!(b.directory.current().is_none());
    assert_eq!(b.directory.sds_reads(), 1);
    // Still down: another attempt reads the directory again, still a typed error.
    assert!(check(&b, der, NOW).is_err());
    assert_eq!(b.directory.sds_reads(), 2);
    b.konnektor.down.store(false, Ordering::SeqCst);
    assert_eq!(check(&b, der, NOW), Ok(()));
    assert_eq!(b.directory.sds_reads(), 3);
    assert_eq!(b.konnektor.verify_calls(), 1);
}

#[test]
fn a_2076_konnektor_going_down_after_start_refreshes_once_and_fails_typed() {
    let b = bed(ServerKey::Rsa);
    let c = certs(ServerKey::Rsa);
    check(&b, &c.valid, NOW).unwrap();
    b.konnektor.down.store(true, Ordering::SeqCst);
    let r = check(&b, &c.other_valid, NOW).unwrap_err();
    assert_eq!(
        r,
        ServerCertRejected::NotChecked(NoVerdict::Transport(Kind::Unreachable))
    );
    assert_eq!(b.directory.sds_reads(), 2, "one refresh, no loop");
    assert_eq!(
        b.konnektor.urls.lock().unwrap().len(),
        2,
        "no retry without fresh endpoints"
    );
    // The cached VALID verdict still serves the known certificate while it is down.
    assert_eq!(check(&b, &c.valid, NOW), Ok(()));
}

#[test]
fn a_2075_01_konnektor_fault_is_not_a_verdict_and_does_not_refresh() {
    let b = bed_with(ServerKey::Rsa, Duration::from_secs(3600), |c| {
        c.faults.insert(
            Operation::VerifyCertificate,
            Fault::SoapFault {
                code: 4000,
                text: "intern".into(),
            },
        );
    });
    let r = check(&b, &certs(ServerKey::Rsa).valid, NOW).unwrap_err();
    assert_eq!(
        r,
        ServerCertRejected::NotChecked(NoVerdict::Konnektor { code: Some(4000) })
    );
    assert_eq!(b.directory.sds_reads(), 1);
}

#[test]
fn a_2075_01_tab_smtp_verbindung_context_fault_is_501() {
    let b = bed_with(ServerKey::Rsa, Duration::from_secs(3600), |c| {
        c.faults.insert(
            Operation::VerifyCertificate,
            Fault::SoapFault {
                code: 4004,
                text: "Ungültige Mandanten-ID".into(),
            },
        );
    });
    let r = check(&b, &certs(ServerKey::Rsa).valid, NOW).unwrap_err();
    assert_eq!(r, ServerCertRejected::ContextRejected { code: 4004 });
    assert_eq!(r.smtp_reply().code, 501);
}

#[test]
fn a_2075_01_end_entity_is_the_servers_leaf_after_the_handshake() {
    let tls = komle_conformance::loopback_tls::LoopbackTls::generate("mta").unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut client = rustls::ClientConnection::new(tls.client_config(), name).unwrap();
    let mut server = rustls::ServerConnection::new(tls.server_config()).unwrap();
    assert_eq!(end_entity(&client), None);
    assert_eq!(
        NO_CERTIFICATE.to_string(),
        "TLS-Serverzertifikat nicht pruefbar: kein Serverzertifikat"
    );
    for _ in 0..10 {
        let mut buf = Vec::new();
        client.write_tls(&mut buf).unwrap();
        server.read_tls(&mut buf.as_slice()).unwrap();
        server.process_new_packets().unwrap();
        let mut buf = Vec::new();
        server.write_tls(&mut buf).unwrap();
        client.read_tls(&mut buf.as_slice()).unwrap();
        client.process_new_packets().unwrap();
        if !client.is_handshaking() && !server.is_handshaking() {
            break;
        }
    }
    assert!(!client.is_handshaking());
    let leaf = rustls_pemfile::certs(&mut tls.server_cert_pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(end_entity(&client), Some(leaf.as_ref()));
}

mod over_https {
    //! The same with the real transport: `KonnektorHttp` to the simulator's HTTPS server,
    //! assembled by `services::build_with_server_check` from a configuration.

    use std::net::{SocketAddr, TcpListener};

    use komle_conformance::sim::cert_issuer::{CertProfile, generate_rsa_key, issue};
    use komle_conformance::sim::server::{SimServer, TlsOptions};
    use komle_service::config::Config;
    use komle_service::konnektor_http::KonnektorHttp;
    use komle_service::services::{Runtime, build_with_server_check};

    use super::*;

    fn free_port() -> SocketAddr {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    }

    #[test]
    fn a_2076_daemon_start_with_konnektor_down_succeeds_and_checks_work_once_it_is_up() {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let ca = issue(
            &generate_rsa_key().unwrap(),
            "CN=Konnektor TLS CA TEST-ONLY,C=DE",
            1,
            now - 3600,
            now + 30 * DAY,
            CertProfile::Root,
        )
        .unwrap();
        let identity = issue(
            &generate_rsa_key().unwrap(),
            "CN=localhost,C=DE",
            2,
            now - 3600,
            now + 30 * DAY,
            CertProfile::Leaf {
                issuer: &ca,
                tls_server: true,
            },
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_path = dir.path().join("konnektor-ca.pem");
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &ca.cert_der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|l| std::str::from_utf8(l).unwrap())
            .collect();
        std::fs::write(
            &ca_path,
            format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                lines.join("\n")
            ),
        )
        .unwrap();
        let addr = free_port();
        let config = Config::parse(&format!(
            "[smtp]\nlisten = \"127.0.0.1:0\"\n[tls]\ncertificate = \"c.pem\"\nprivate_key = \"k.pem\"\n\
[konnektor]\nsds_url = \"https://{addr}/connector.sds\"\nca = \"{}\"\ntimeout = \"5s\"\n\
[directory]\nurl = \"ldap://127.0.0.1:1\"\nbase = \"dc=data,dc=vzd\"\n",
            ca_path.display()
        ))
        .unwrap();
        let runtime = Runtime {
            clock: Arc::new(Clock::new()),
            konnektor: KonnektorHttp::new(&config.konnektor).unwrap(),
        };
        // Nobody listens at the Konnektor's address: the start still succeeds.
        let (services, check) = build_with_server_check(&config, &runtime)
            .expect("a Konnektor that is down must not fail the start");
        // Until the Konnektor answers, RCPT checks are a temporary refusal (no ECC capability
        // known), never a crash.
        assert_eq!(
            smol::block_on(services.checker.check("praxis@kim.test")),
            komle_core::smtp::RecipientVerdict::DirectoryUnavailable
        );
        // Server certificates for "today" (the HTTPS simulator uses its real clock).
        let c = server_cert_set(ServerKey::Ecc, now).unwrap();
        let r = smol::block_on(check.check(&c.valid, &ctx())).unwrap_err();
        assert_eq!(
            r,
            ServerCertRejected::NotChecked(NoVerdict::Transport(Kind::Unreachable))
        );
        // The Konnektor comes up at the configured address.
        let server = SimServer::start(
            Simulator::new(SimConfig {
                trust_anchors: vec![c.anchor.clone()],
                revoked_serials: vec![c.revoked_serial.clone()],
                ..SimConfig::default()
            }),
            TlsOptions {
                server_identity: Some(identity),
                bind: Some(addr),
                ..TlsOptions::default()
            },
        )
        .unwrap();
        assert_eq!(smol::block_on(check.check(&c.valid, &ctx())), Ok(()));
        assert_eq!(
            smol::block_on(check.check(&c.revoked, &ctx())),
            Err(ServerCertRejected::Invalid { code: Some(1047) })
        );
        assert_eq!(smol::block_on(check.check(&c.valid, &ctx())), Ok(()));
        let verify_calls = server
            .simulator()
            .call_log()
            .iter()
            .filter(|c| c.operation == Operation::VerifyCertificate)
            .count();
        assert_eq!(
            verify_calls, 2,
            "the second VALID check came from the cache"
        );
    }
}
