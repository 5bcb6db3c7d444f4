//! A complete test world: the test PKI's practices as cards in the Konnektor simulator and as
//! entries of a directory, so a message can be protected for a recipient and opened again
//! with that recipient's card.
//!
//! Used by the in-process pipeline tests, the end-to-end suites (which load the same PKI into
//! slapd) and `komle-cm demo`.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::SystemTime;

use komle_core::directory::DirectoryEntry;

use crate::pki::{CmTlsSet, KeyMaterial, Person, PkiError, TestPki};
use crate::servers::{MailServers, ServerError};
use crate::sim::config::{Card, CardKind, PinState, SimConfig};
use crate::sim::keys::KeyMaterial as SimKey;

/// Card handles of the practices in the simulator.
pub const SENDER_CARD: &str = "SMCB-SENDER";
pub const SINGLE_CARD: &str = "SMCB-SINGLE";
pub const OLD_AND_NEW_CARD: &str = "SMCB-OLDNEW";
pub const ECC_AND_RSA_CARD: &str = "SMCB-ECCRSA";
/// The HBAs of the `single` practice's physicians A and B (UserIds `arzt-a`, `arzt-b`).
pub const HBA_A_CARD: &str = "HBA-A";
pub const HBA_B_CARD: &str = "HBA-B";

/// The PKI, the simulator configuration with every practice's card, and the directory.
pub struct World {
    pub pki: TestPki,
    pub sim_config: SimConfig,
    directory: HashMap<String, Vec<Vec<u8>>>,
    /// The `now` the PKI was generated for (the C.CM.TLS-CS set uses the same).
    generated_at: SystemTime,
    /// See [`World::cm_tls`].
    cm_tls: OnceLock<CmTlsSet>,
}

impl World {
    /// Generates the world with certificates valid around `now`.
    pub fn generate(now: SystemTime) -> Result<World, PkiError> {
        let pki = TestPki::generate(now)?;
        // The sender's SM-B comes first: GetCards lists it first, and it is the card the
        // Clientmodul signs with.
        let mut cards = vec![
            card(SENDER_CARD, &pki.sender),
            card(SINGLE_CARD, &pki.single),
            card(OLD_AND_NEW_CARD, &pki.old_and_new_card),
            card(ECC_AND_RSA_CARD, &pki.ecc_and_rsa),
            hba(HBA_A_CARD, &pki.hba_a),
            hba(HBA_B_CARD, &pki.hba_b),
        ];
        // One ICCSN per card, as in reality: the Clientmodul's card cache is keyed to it.
        for (i, c) in cards.iter_mut().enumerate() {
            c.iccsn = format!("80276883110000{:06}", 101 + i);
        }
        let sim_config = SimConfig {
            cards,
            trust_anchors: vec![pki.ca.cert_der.clone()],
            revoked_serials: pki
                .revoked_serials
                .iter()
                .map(|s| {
                    s.to_be_bytes()
                        .iter()
                        .copied()
                        .skip_while(|b| *b == 0)
                        .collect()
                })
                .collect(),
            ..SimConfig::default()
        };
        let directory = pki
            .persons()
            .into_iter()
            .map(|p| {
                (
                    p.address.clone(),
                    p.enc.iter().map(|k| k.cert_der.clone()).collect(),
                )
            })
            .collect();
        Ok(World {
            pki,
            sim_config,
            directory,
            generated_at: now,
            cm_tls: OnceLock::new(),
        })
    }

    /// The Clientmodul's C.CM.TLS-CS identities from this world's CA (valid, expired, and one
    /// from a CA nobody trusts) for mutual TLS with the mail servers (KOM-LE-A_2074).
    /// Generated on first use: four RSA keys, paid only by the beds that need them.
    pub fn cm_tls(&self) -> Result<&CmTlsSet, PkiError> {
        if let Some(set) = self.cm_tls.get() {
            return Ok(set);
        }
        let set = self.pki.cm_tls(self.generated_at)?;
        // Two threads may both generate it; the keys are deterministic, either result is fine.
        Ok(self.cm_tls.get_or_init(|| set))
    }

    /// What the directory returns for `address` (no entry: an empty list).
    pub fn directory_entries(&self, address: &str) -> Vec<DirectoryEntry> {
        self.directory
            .iter()
            .filter(|(a, _)| a.eq_ignore_ascii_case(address))
            .map(|(a, certs)| DirectoryEntry {
                dn: format!("mail={a},dc=data,dc=vzd"),
                mail: vec![a.clone()],
                certificates: certs.clone(),
                kom_le_data: vec![format!("1.0,{a}")],
            })
            .collect()
    }
}

fn sim_key(k: &KeyMaterial) -> SimKey {
    SimKey {
        cert_der: k.cert_der.clone(),
        private_key_pkcs8_der: k.private_key_pkcs8_der.clone(),
    }
}

fn card(handle: &str, p: &Person) -> Card {
    Card {
        handle: handle.into(),
        kind: CardKind::SmcB,
        iccsn: String::new(), // set per card by World::generate
        telematik_id: p.telematik_id.clone(),
        holder: p.uid.clone(),
        user_id: None,
        osig: p.osig.first().map(sim_key),
        enc: p.enc.iter().map(sim_key).collect(),
        pin: PinState::Verified,
    }
}

/// A physician's HBA: PIN.CH verified, the UserId is the person's `uid`.
fn hba(handle: &str, p: &Person) -> Card {
    Card {
        kind: CardKind::Hba,
        user_id: Some(p.uid.clone()),
        osig: None,
        ..card(handle, p)
    }
}

/// Makes the simulated Konnektor trust the CA of `servers` (a trust anchor of its
/// VerifyCertificate): without it, komle-cm's check of the MTA's and POP3 server's certificate
/// (KOM-LE-A_2075-01) finds them INVALID and every login gets 454 / `-ERR`.
pub fn trust_mail_servers(
    config: &mut SimConfig,
    servers: &MailServers,
) -> Result<(), ServerError> {
    config.trust_anchors.push(servers.tls().ca_der()?);
    Ok(())
}

/// Puts the certificate of `servers` on the simulated Konnektor's revocation list: its
/// VerifyCertificate then answers INVALID although the CA is trusted (KOM-LE-A_2075-01 tests).
pub fn revoke_mail_servers(
    config: &mut SimConfig,
    servers: &MailServers,
) -> Result<(), ServerError> {
    config.revoked_serials.push(servers.tls().server_serial()?);
    Ok(())
}
