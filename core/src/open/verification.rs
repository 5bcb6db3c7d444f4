//! From the Konnektor's VerifyDocument answer to the facts the integrity check needs
//! (KOM-LE-A_2048, A_2050).

use crate::directory::inspect;
use crate::konnektor::KonnektorError;
use crate::konnektor::verify_document::{HighLevelResult, VerifyDocumentResponse};
use crate::smime::integrity::{Verification, VerifyResult};

/// The verification facts from VerifyDocument's answer (or its failure).
pub fn verification_from(answer: Result<&VerifyDocumentResponse, &KonnektorError>) -> Verification {
    match answer {
        Ok(r) => {
            let signer = r.signer();
            let certificate = signer.and_then(|s| s.certificate.as_deref());
            let telematik_id = certificate
                .and_then(|der| inspect(der).ok())
                .and_then(|c| c.telematik_id);
            let signer_name = signer
                .and_then(|s| s.subject.as_deref())
                .map(common_name)
                .unwrap_or_else(|| "unbekannt".to_owned());
            let warning = r.status.warning.as_ref();
            Verification {
                result: match r.high_level_result {
                    HighLevelResult::Valid => VerifyResult::Valid,
                    HighLevelResult::Invalid => VerifyResult::Invalid,
                    HighLevelResult::Inconclusive => VerifyResult::Inconclusive,
                },
                signer_name,
                telematik_id,
                signing_time: r.signing_time().map(str::to_owned),
                error_code: warning
                    .and_then(|w| w.code())
                    .and_then(|c| u32::try_from(c).ok()),
                error_text: warning.and_then(|w| w.message()).map(str::to_owned),
            }
        }
        Err(e) => Verification {
            result: VerifyResult::Invalid,
            signer_name: "unbekannt".to_owned(),
            telematik_id: None,
            signing_time: None,
            error_code: e.gematik_code().and_then(|c| u32::try_from(c).ok()),
            error_text: Some(format!("VerifyDocument fehlgeschlagen: {e}")),
        },
    }
}

/// `CN=Praxis X,O=…` → `Praxis X`; the whole subject when there is no CN.
fn common_name(subject: &str) -> String {
    subject
        .split(',')
        .find_map(|rdn| rdn.trim().strip_prefix("CN="))
        .unwrap_or(subject)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::common_name;

    #[test]
    fn signer_name_is_the_common_name() {
        assert_eq!(
            common_name("CN=Praxis Dr. X TEST-ONLY,O=1-2,C=DE"),
            "Praxis Dr. X TEST-ONLY"
        );
        assert_eq!(common_name("O=Nur Org,C=DE"), "O=Nur Org,C=DE");
    }
}
