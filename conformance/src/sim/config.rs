//! Configuration of the simulated Konnektor: cards, trust, offered versions, timing and faults.
//!
//! WHY data-only: tests build a Konnektor per scenario (ECC or not, blocked PIN, a failing
//! operation) without touching any files; the PKI generator hands over keys as PKCS#8 DER.

use std::collections::HashMap;
use std::time::Duration;

use super::keys::KeyMaterial;

/// Card type as reported in GetCards (`CARDCMN:CardType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardKind {
    SmcB,
    Hba,
}

impl CardKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CardKind::SmcB => "SMC-B",
            CardKind::Hba => "HBA",
        }
    }
}

/// One inserted card.
#[derive(Debug, Clone)]
pub struct Card {
    pub handle: String,
    pub kind: CardKind,
    pub iccsn: String,
    pub telematik_id: String,
    /// Holder name (HBA) or institution name (SMC-B), reported as `CardHolderName`.
    pub holder: String,
    /// HBA only: the user id the card belongs to.
    pub user_id: Option<String>,
    /// C.HCI.OSIG / C.SIG key used by SignDocument.
    pub osig: Option<KeyMaterial>,
    /// C.ENC keys (RSA and, with ECC, brainpoolP256r1) used by DecryptDocument.
    pub enc: Vec<KeyMaterial>,
    /// PIN.SMC / PIN.CH status; `Verified` by default.
    pub pin: PinState,
}

/// PIN status of a card (`CARD:PinStatusEnum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinState {
    Verified,
    Verifiable,
    Blocked,
    /// Verifiable, but the user types a wrong PIN at the terminal: VerifyPin answers
    /// `REJECTED` with 2 tries left and the card stays locked (KOM-LE-A_2058 tests).
    MistypedAtTerminal,
}

/// Offered service versions in `connector.sds`. ECC capable ⇔ SignatureService ≥ 7.4.1 and
/// EncryptionService ≥ 6.1.1 (A_17464).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceVersions {
    pub signature: String,
    pub encryption: String,
    pub certificate: String,
    pub event: String,
}

impl ServiceVersions {
    /// A current Konnektor (PTV4+): SignatureService 7.5.6, EncryptionService 6.1.2.
    pub fn ecc() -> Self {
        ServiceVersions {
            signature: "7.5.6".into(),
            encryption: "6.1.2".into(),
            certificate: "6.0.1".into(),
            event: "7.2.0".into(),
        }
    }

    /// An RSA-only Konnektor: SignatureService 7.4.0, EncryptionService 6.0.1.
    pub fn rsa_only() -> Self {
        ServiceVersions {
            signature: "7.4.0".into(),
            encryption: "6.0.1".into(),
            certificate: "6.0.1".into(),
            event: "7.2.0".into(),
        }
    }

    /// A_17464: both services at or above the ECC thresholds.
    pub fn ecc_capable(&self) -> bool {
        version_at_least(&self.signature, [7, 4, 1])
            && version_at_least(&self.encryption, [6, 1, 1])
    }
}

/// Compares a dotted version with `min`; unparsable parts count as 0.
pub fn version_at_least(v: &str, min: [u32; 3]) -> bool {
    let mut parts = [0u32; 3];
    for (slot, p) in parts.iter_mut().zip(v.split('.')) {
        *slot = p.trim().parse().unwrap_or(0);
    }
    parts >= min
}

/// Operations of the simulator (used as keys for latency and faults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    ServiceDirectory,
    GetCards,
    ReadCardCertificate,
    GetJobNumber,
    SignDocument,
    EncryptDocument,
    DecryptDocument,
    VerifyDocument,
    GetPinStatus,
    VerifyPin,
    VerifyCertificate,
}

impl Operation {
    /// The SOAP payload element's local name of the request.
    pub fn request_name(self) -> &'static str {
        match self {
            Operation::ServiceDirectory => "connector.sds",
            Operation::GetCards => "GetCards",
            Operation::ReadCardCertificate => "ReadCardCertificate",
            Operation::GetJobNumber => "GetJobNumber",
            Operation::SignDocument => "SignDocument",
            Operation::EncryptDocument => "EncryptDocument",
            Operation::DecryptDocument => "DecryptDocument",
            Operation::VerifyDocument => "VerifyDocument",
            Operation::GetPinStatus => "GetPinStatus",
            Operation::VerifyPin => "VerifyPin",
            Operation::VerifyCertificate => "VerifyCertificate",
        }
    }

    pub const ALL: [Operation; 11] = [
        Operation::ServiceDirectory,
        Operation::GetCards,
        Operation::ReadCardCertificate,
        Operation::GetJobNumber,
        Operation::SignDocument,
        Operation::EncryptDocument,
        Operation::DecryptDocument,
        Operation::VerifyDocument,
        Operation::GetPinStatus,
        Operation::VerifyPin,
        Operation::VerifyCertificate,
    ];

    /// Parses a request element's local name.
    pub fn from_request_name(name: &str) -> Option<Operation> {
        Operation::ALL
            .into_iter()
            .find(|o| o.request_name() == name)
    }
}

/// An injected failure for one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer HTTP 500 with a SOAP fault carrying `tel:Error` with this gematik code.
    SoapFault { code: u32, text: String },
    /// Never answer (the server holds the connection until the client gives up or it stops).
    Stall,
    /// Close the connection without answering.
    Drop,
}

/// Everything the simulator needs.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub cards: Vec<Card>,
    /// DER certificates VerifyDocument accepts as path ends.
    pub trust_anchors: Vec<Vec<u8>>,
    /// Serial numbers (big-endian content bytes) VerifyDocument and EncryptDocument treat as
    /// revoked.
    pub revoked_serials: Vec<Vec<u8>>,
    /// The revocation status cannot be obtained (OCSP responder unreachable): VerifyDocument
    /// answers a good signature with a good path INCONCLUSIVE and code 4264 in the report, and
    /// VerifyCertificate answers a good certificate INCONCLUSIVE.
    pub revocation_status_unavailable: bool,
    pub versions: ServiceVersions,
    pub latency: HashMap<Operation, Duration>,
    pub faults: HashMap<Operation, Fault>,
    /// Fixed "now" (Unix seconds) for validity checks and signingTime; `None` = system clock
    /// plus `clock_offset_secs`.
    pub now_unix: Option<u64>,
    pub clock_offset_secs: i64,
    /// Benchmarks only: answer a repeated crypto request (same document, card, recipients)
    /// with the stored answer instead of computing it again (`precomputed.rs` says what is
    /// excluded and why the key hits honestly).
    pub precomputed_answers: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            cards: Vec::new(),
            trust_anchors: Vec::new(),
            revoked_serials: Vec::new(),
            revocation_status_unavailable: false,
            versions: ServiceVersions::ecc(),
            latency: HashMap::new(),
            faults: HashMap::new(),
            now_unix: None,
            clock_offset_secs: 0,
            precomputed_answers: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_17464_ecc_capability_follows_the_version_thresholds() {
        assert!(ServiceVersions::ecc().ecc_capable());
        assert!(!ServiceVersions::rsa_only().ecc_capable());
        let mut v = ServiceVersions::ecc();
        v.encryption = "6.1.0".into();
        assert!(!v.ecc_capable());
        v.encryption = "6.1.1".into();
        v.signature = "7.4.1".into();
        assert!(v.ecc_capable());
        assert!(!version_at_least("garbage", [0, 0, 1]));
    }

    #[test]
    fn operation_names_round_trip() {
        for op in Operation::ALL {
            assert_eq!(Operation::from_request_name(op.request_name()), Some(op));
        }
        assert_eq!(Operation::from_request_name("Nope"), None);
    }
}
