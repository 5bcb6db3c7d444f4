//! From the Konnektor's VerifyDocument answer to the facts the integrity check needs
//! (KOM-LE-A_2048, Tab_Verm_Sig_Prüf).
//!
//! WHY both places: a Konnektor names the reason for a signature that is not valid either as a
//! warning in `CONN:Status` or only inside the verification report, with `Status` OK: as
//! `SigMathOK`/`PathValiditySummary` results, a `ResultMinor` URI, or a gematik code in the
//! individual report's `ResultMessage`. Reading only `Status` turned a broken signature into
//! "Konnektor error" (06) and an unknown issuer into "valid" (07).

use crate::directory::inspect;
use crate::konnektor::KonnektorError;
use crate::konnektor::verify_document::{
    HighLevelResult, IndividualReport, RESULT_MAJOR_INVALID, VerifyDocumentResponse,
};
use crate::smime::integrity::{NoVerdict, Verification, VerifyResult};

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
            let status_code = warning
                .and_then(|w| w.code())
                .and_then(|c| u32::try_from(c).ok());
            let report_code = r
                .reports
                .iter()
                .find_map(|ir| ir.result_message.as_deref().and_then(gematik_code_in));
            let report_text = r.reports.iter().find_map(|ir| ir.result_message.clone());
            Verification {
                result: match r.high_level_result {
                    HighLevelResult::Valid => VerifyResult::Valid,
                    HighLevelResult::Invalid => VerifyResult::Invalid,
                    HighLevelResult::Inconclusive => VerifyResult::Inconclusive,
                },
                signer_name,
                telematik_id,
                signing_time: r.signing_time().map(str::to_owned),
                error_code: status_code.or(report_code),
                error_text: warning
                    .and_then(|w| w.message())
                    .map(str::to_owned)
                    .or(report_text),
                signature_broken: r.reports.iter().any(signature_broken),
                path_invalid: r
                    .reports
                    .iter()
                    .any(|ir| is_invalid(ir.certificate_path_valid.as_deref())),
                no_verdict: None,
            }
        }
        Err(e) => match e.gematik_code().and_then(|c| u32::try_from(c).ok()) {
            // A SOAP fault (or Status ERROR) with a gematik code is the Konnektor's verdict.
            Some(code) => Verification {
                error_code: Some(code),
                no_verdict: None,
                ..Verification::without_verdict(
                    NoVerdict::Unreadable,
                    format!("VerifyDocument fehlgeschlagen: {e}"),
                )
            },
            None => Verification::without_verdict(
                NoVerdict::Unreadable,
                format!("VerifyDocument fehlgeschlagen: {e}"),
            ),
        },
    }
}

/// `SigMathOK` invalid, or a `ResultMinor` naming an incorrect signature (OASIS DSS
/// `…:resultminor:invalid:IncorrectSignature`).
fn signature_broken(ir: &IndividualReport) -> bool {
    is_invalid(ir.signature_ok.as_deref())
        || ir
            .result_minor
            .as_deref()
            .is_some_and(|m| m.ends_with("IncorrectSignature"))
}

fn is_invalid(major: Option<&str>) -> bool {
    major.is_some_and(|m| m.trim() == RESULT_MAJOR_INVALID)
}

/// The first gematik error code (four digits standing alone) in a report's `ResultMessage`,
/// e.g. `4206: Zertifikatspfad …` or `Fehler 4264 (OCSP nicht erreichbar)`.
fn gematik_code_in(message: &str) -> Option<u32> {
    let bytes = message.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i - start == 4 {
                return message[start..i].parse().ok();
            }
        } else {
            i += 1;
        }
    }
    None
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
    use super::{common_name, gematik_code_in};

    #[test]
    fn signer_name_is_the_common_name() {
        assert_eq!(
            common_name("CN=Praxis Dr. X TEST-ONLY,O=1-2,C=DE"),
            "Praxis Dr. X TEST-ONLY"
        );
        assert_eq!(common_name("O=Nur Org,C=DE"), "O=Nur Org,C=DE");
    }

    #[test]
    fn the_gematik_code_is_the_first_four_digit_number_of_the_result_message() {
        assert_eq!(gematik_code_in("4206: Pfad ungültig"), Some(4206));
        assert_eq!(gematik_code_in("Fehler 4264 (OCSP)"), Some(4264));
        assert_eq!(gematik_code_in("Serie 123456, Code 4115"), Some(4115));
        assert_eq!(gematik_code_in("kein Code"), None);
    }
}
