//! KOM-LE-A_2075-01: the Konnektor simulator answers VerifyCertificate with real checks —
//! chain to its trust anchors (RSA and ECDSA signatures), validity at its time, its revocation
//! list — for RSA and ECC server certificates; requests are built and answers parsed with
//! komle-core's `verify_certificate`, and every call lands in the simulator's call log.

use std::sync::OnceLock;

use komle_conformance::sim::server_certs::{ServerCertSet, ServerKey, server_cert_set};
use komle_conformance::sim::{Operation, SimConfig, Simulator};
use komle_core::konnektor::context::CallContext;
use komle_core::konnektor::verify_certificate::{
    self, VerificationResult, VerifyCertificateRequest, VerifyCertificateResponse,
};

const NOW: u64 = 1_780_272_000;

fn set(kind: ServerKey) -> &'static ServerCertSet {
    static RSA: OnceLock<ServerCertSet> = OnceLock::new();
    static ECC: OnceLock<ServerCertSet> = OnceLock::new();
    let cell = match kind {
        ServerKey::Rsa => &RSA,
        ServerKey::Ecc => &ECC,
    };
    cell.get_or_init(|| server_cert_set(kind, NOW).unwrap())
}

fn sim(kind: ServerKey) -> Simulator {
    let s = set(kind);
    Simulator::new(SimConfig {
        trust_anchors: vec![s.anchor.clone()],
        revoked_serials: vec![s.revoked_serial.clone()],
        now_unix: Some(NOW),
        ..SimConfig::default()
    })
}

fn verify(sim: &Simulator, der: &[u8]) -> VerifyCertificateResponse {
    let ctx = CallContext {
        mandant_id: "m".into(),
        client_system_id: "cs".into(),
        workplace_id: "wp".into(),
        user_id: None,
    };
    let req = verify_certificate::build(&VerifyCertificateRequest {
        context: &ctx,
        certificate: der,
    });
    let r = sim.handle(req.soap_action, &req.body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    verify_certificate::parse(&r.body).expect("schema-shaped answer")
}

fn check_all(kind: ServerKey) {
    let s = set(kind);
    let sim = sim(kind);
    let valid = verify(&sim, &s.valid);
    assert_eq!(valid.result, VerificationResult::Valid, "{kind:?}");
    assert_eq!(valid.reason_code(), None);

    let expired = verify(&sim, &s.expired);
    assert_eq!(expired.result, VerificationResult::Invalid, "{kind:?}");
    assert_eq!(expired.reason_code(), Some(1021));

    let revoked = verify(&sim, &s.revoked);
    assert_eq!(revoked.result, VerificationResult::Invalid, "{kind:?}");
    assert_eq!(revoked.reason_code(), Some(1047));

    let foreign = verify(&sim, &s.foreign);
    assert_eq!(foreign.result, VerificationResult::Invalid, "{kind:?}");
    assert_eq!(foreign.reason_code(), Some(1036));

    let log = sim.call_log();
    assert_eq!(log.len(), 4);
    assert!(
        log.iter()
            .all(|c| c.operation == Operation::VerifyCertificate)
    );
}

#[test]
fn a_2075_01_rsa_server_certificate_valid_expired_revoked_wrong_ca() {
    check_all(ServerKey::Rsa);
}

#[test]
fn a_2075_01_ecc_server_certificate_valid_expired_revoked_wrong_ca() {
    check_all(ServerKey::Ecc);
}

#[test]
fn a_2075_01_tampered_certificate_is_invalid() {
    // Flip a byte inside the subject: the CA's signature no longer covers it.
    for kind in [ServerKey::Rsa, ServerKey::Ecc] {
        let mut der = set(kind).valid.clone();
        let pos = der
            .windows(b"kim.test".len())
            .position(|w| w == b"kim.test")
            .expect("subject in DER");
        der[pos] ^= 0x01;
        let r = verify(&sim(kind), &der);
        assert_eq!(r.result, VerificationResult::Invalid, "{kind:?}");
        assert_eq!(r.reason_code(), Some(1024), "{kind:?}");
    }
}

#[test]
fn a_2075_01_the_anchor_decides_not_the_name() {
    // The same certificates against a Konnektor trusting the other key type's CA: nothing passes.
    let rsa_only = Simulator::new(SimConfig {
        trust_anchors: vec![set(ServerKey::Rsa).anchor.clone()],
        now_unix: Some(NOW),
        ..SimConfig::default()
    });
    let r = verify(&rsa_only, &set(ServerKey::Ecc).valid);
    assert_eq!(r.result, VerificationResult::Invalid);
    let r = verify(&rsa_only, &set(ServerKey::Rsa).valid);
    assert_eq!(r.result, VerificationResult::Valid);
}

#[test]
fn a_2075_01_revocation_status_unavailable_is_inconclusive() {
    let s = set(ServerKey::Ecc);
    let sim = Simulator::new(SimConfig {
        trust_anchors: vec![s.anchor.clone()],
        revocation_status_unavailable: true,
        now_unix: Some(NOW),
        ..SimConfig::default()
    });
    let r = verify(&sim, &s.valid);
    assert_eq!(r.result, VerificationResult::Inconclusive);
    assert_eq!(r.reason_code(), Some(4264));
    // A certificate that fails outright stays INVALID.
    assert_eq!(verify(&sim, &s.expired).result, VerificationResult::Invalid);
}

#[test]
fn a_2075_01_validity_follows_the_simulators_clock() {
    let s = set(ServerKey::Rsa);
    let later = Simulator::new(SimConfig {
        trust_anchors: vec![s.anchor.clone()],
        now_unix: Some(s.valid_not_after + 1),
        ..SimConfig::default()
    });
    let r = verify(&later, &s.valid);
    assert_eq!(r.result, VerificationResult::Invalid);
    assert_eq!(r.reason_code(), Some(1021));
}

#[test]
fn a_2075_01_garbage_instead_of_a_certificate_is_invalid_not_a_crash() {
    let r = verify(&sim(ServerKey::Rsa), b"\x30\x03\x02\x01");
    assert_eq!(r.result, VerificationResult::Invalid);
}
