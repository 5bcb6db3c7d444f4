//! A ready-made Konnektor setup with freshly generated keys: one RSA test CA, one SM-B
//! `SMCB-1` (C.HCI.OSIG, RSA and brainpoolP256r1 C.HCI.ENC) and one HBA `HBA-1` (C.HP.ENC). Used
//! by the `konnektor-sim` binary and by tests that need "some" Konnektor.

use super::cert_issuer::{CertProfile, generate_rsa_key, issue, issue_for_spki};
use super::config::{Card, CardKind, PinState, SimConfig};
use super::error::SimError;
use super::keys::KeyMaterial;

const YEAR: u64 = 365 * 24 * 3600;

/// The generated setup.
#[derive(Debug, Clone)]
pub struct DemoSetup {
    pub config: SimConfig,
    pub ca: KeyMaterial,
}

fn leaf(ca: &KeyMaterial, subject: &str, serial: u64, now: u64) -> Result<KeyMaterial, SimError> {
    issue(
        &generate_rsa_key()?,
        subject,
        serial,
        now - YEAR,
        now + 2 * YEAR,
        CertProfile::Leaf {
            issuer: ca,
            tls_server: false,
        },
    )
}

/// A brainpoolP256r1 C.ENC certificate (signed by the RSA test CA).
pub fn ecc_leaf(
    ca: &KeyMaterial,
    subject: &str,
    serial: u64,
    now: u64,
) -> Result<KeyMaterial, SimError> {
    let (spki, pkcs8) = super::ecc::generate_bp256()?;
    issue_for_spki(
        spki,
        pkcs8,
        subject,
        serial,
        now - YEAR,
        now + 2 * YEAR,
        CertProfile::Leaf {
            issuer: ca,
            tls_server: false,
        },
    )
}

/// Generates the demo setup with certificates valid around `now` (Unix seconds).
pub fn demo_setup(now: u64) -> Result<DemoSetup, SimError> {
    let ca = issue(
        &generate_rsa_key()?,
        "CN=KOMLE-SIM-CA TEST-ONLY,O=Konnektor-Simulator,C=DE",
        1,
        now - 2 * YEAR,
        now + 5 * YEAR,
        CertProfile::Root,
    )?;
    let smcb = Card {
        handle: "SMCB-1".into(),
        kind: CardKind::SmcB,
        iccsn: "80276883110000095711".into(),
        telematik_id: "5-SMC-B-Testkarte-883110000095711".into(),
        holder: "Praxis Sim TEST-ONLY".into(),
        user_id: None,
        osig: Some(leaf(
            &ca,
            "CN=Praxis Sim OSIG TEST-ONLY,O=Praxis Sim,C=DE",
            100,
            now,
        )?),
        enc: vec![
            leaf(
                &ca,
                "CN=Praxis Sim ENC TEST-ONLY,O=Praxis Sim,C=DE",
                101,
                now,
            )?,
            ecc_leaf(
                &ca,
                "CN=Praxis Sim ENC ECC TEST-ONLY,O=Praxis Sim,C=DE",
                103,
                now,
            )?,
        ],
        pin: PinState::Verified,
    };
    let hba = Card {
        handle: "HBA-1".into(),
        kind: CardKind::Hba,
        iccsn: "80276883110000095712".into(),
        telematik_id: "1-HBA-Testkarte-883110000095712".into(),
        holder: "Dr. Sim Arzt".into(),
        user_id: Some("arzt1".into()),
        osig: None,
        enc: vec![leaf(
            &ca,
            "CN=Dr. Sim Arzt ENC TEST-ONLY,O=Praxis Sim,C=DE",
            102,
            now,
        )?],
        pin: PinState::Verified,
    };
    let config = SimConfig {
        cards: vec![smcb, hba],
        trust_anchors: vec![ca.cert_der.clone()],
        ..SimConfig::default()
    };
    Ok(DemoSetup { config, ca })
}
